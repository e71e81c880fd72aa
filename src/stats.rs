//! Statistics of a runtime: its metrics, and per group its waiting room and
//! per consumer its figures, rendered as JSON or as Prometheus text. Names
//! follow the OpenTelemetry messaging conventions where one exists
//! (`messaging.system`, `messaging.client.sent.messages`,
//! `messaging.client.consumed.messages`, `messaging.consumer.group.name`,
//! `error.type`); the rest are `liminal.*`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::metrics::{MetricsSnapshot, Percentiles};

/// One consumer's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Its id.
    pub id: String,
    /// Reserved or held deliveries now.
    pub in_flight: u32,
    /// Its `max_in_flight`.
    pub max_in_flight: u32,
    /// Deliveries it acknowledged.
    pub delivered: u64,
    /// Deliveries it released.
    pub released: u64,
    /// Its expired acknowledgement leases.
    pub lease_expiries: u64,
    /// Whether it is paused after a lease expiry.
    pub paused: bool,
}

/// A group's ordered keys now. A key *waits* when messages wait behind its
/// head (the one message of the key that may be routed or held); a key's
/// queue is its head plus the messages behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderingStats {
    /// Keys with a message out or waiting.
    pub keys: usize,
    /// Keys with messages waiting behind their head.
    pub keys_waiting: usize,
    /// The longest queue of one waiting key (head included; 0 when none waits).
    pub longest_key_queue: usize,
    /// How long the longest-held head of a waiting key has been its key's
    /// head (zero when no key waits).
    pub oldest_head_age: Duration,
    /// Keys held after their head failed, until the host releases them
    /// (with [`crate::GroupOptions::hold_failed_keys`]).
    pub keys_held: usize,
}

/// One key with messages waiting behind its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingKey {
    /// The key.
    pub key: Arc<str>,
    /// Its messages not completed: the head plus those behind it.
    pub depth: usize,
    /// How long its head has been its head.
    pub head_age: Duration,
}

/// A bounded list of a group's waiting keys, deepest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitingKeys {
    /// At most the number asked for, deepest first (ties: longest-held head first).
    pub keys: Vec<WaitingKey>,
    /// How many keys were waiting in all.
    pub total: usize,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// Its name.
    pub name: String,
    /// Messages waiting now.
    pub waiting: usize,
    /// The waiting room's capacity.
    pub waiting_room: usize,
    /// Accepted dispatches not completed.
    pub in_flight: usize,
    /// New dispatches refused because the room was full.
    pub rejected: u64,
    /// Oldest waiting messages dropped at overflow.
    pub dropped: u64,
    /// Whether it accepts no new dispatches (draining or closed).
    pub draining: bool,
    /// Its ordered keys.
    pub ordering: OrderingStats,
    /// Its members, in id order.
    pub consumers: Vec<ConsumerStats>,
    /// Its store, for a durable group.
    pub store: Option<StoreStats>,
}

/// What opening a store found damaged and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreDropped {
    /// Damaged stretches inside segments (a flipped byte, a torn write
    /// followed by later records): skipped up to the next intact record.
    pub damaged: u64,
    /// Torn tails: an unfinished last record of a segment (a kill while it
    /// was being written; it was never acknowledged).
    pub torn: u64,
    /// Segments whose header was unreadable (left out whole).
    pub segments: u64,
    /// Bytes left out in all.
    pub bytes: u64,
}

impl StoreDropped {
    /// Whether nothing was dropped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.damaged == 0 && self.torn == 0 && self.segments == 0
    }
}

/// A durable group's store figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Messages accepted and not completed.
    pub pending: u64,
    /// Bytes of their newest records.
    pub pending_bytes: u64,
    /// Bytes of the segment files.
    pub disk_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// `fdatasync` calls made, their mean and longest duration.
    pub syncs: u64,
    /// Mean duration of a sync, microseconds.
    pub sync_mean_us: u64,
    /// Longest sync, microseconds.
    pub sync_max_us: u64,
    /// Bytes written since the store was opened.
    pub bytes_written: u64,
    /// Messages given back when the store was opened.
    pub recovered: u64,
    /// What opening found damaged and left out.
    pub dropped: StoreDropped,
    /// Why the store stopped accepting (a failed write or sync), if it did.
    pub failed: Option<String>,
}

/// A runtime's statistics at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The runtime's metrics.
    pub metrics: MetricsSnapshot,
    /// Its live groups.
    pub groups: Vec<GroupStats>,
}

/// A durable group's store figures (under `"store"` in its group's JSON).
fn store_json(s: &StoreStats) -> Value {
    json!({
        "liminal.store.pending": s.pending,
        "liminal.store.pending_bytes": s.pending_bytes,
        "liminal.store.disk_bytes": s.disk_bytes,
        "liminal.store.segments": s.segments,
        "liminal.store.syncs": s.syncs,
        "liminal.store.sync_mean_us": s.sync_mean_us,
        "liminal.store.sync_max_us": s.sync_max_us,
        "liminal.store.bytes_written": s.bytes_written,
        "liminal.store.recovered": s.recovered,
        "liminal.store.dropped_damaged": s.dropped.damaged,
        "liminal.store.dropped_torn": s.dropped.torn,
        "liminal.store.dropped_segments": s.dropped.segments,
        "liminal.store.dropped_bytes": s.dropped.bytes,
        "liminal.store.failed": s.failed,
    })
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({
        "count": p.count,
        "p50_ns": p.p50_ns,
        "p99_ns": p.p99_ns,
        "p999_ns": p.p999_ns,
        "max_ns": p.max_ns,
    })
}

impl Stats {
    fn failures(&self) -> [(&'static str, u64); 7] {
        let m = &self.metrics;
        [
            ("attempts_exhausted", m.attempts_exhausted),
            ("expired", m.expired),
            ("timed_out", m.timed_out),
            ("dropped", m.dropped),
            ("group_closed", m.group_closed),
            ("routing_failed", m.routing_failures),
            ("shut_down", m.shut_down),
        ]
    }

    /// As one JSON object.
    #[must_use]
    pub fn to_json(&self) -> String {
        let m = &self.metrics;
        let failures: serde_json::Map<String, Value> = self
            .failures()
            .iter()
            .map(|(name, count)| ((*name).to_owned(), json!(count)))
            .collect();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                let mut group = json!({
                    "messaging.consumer.group.name": g.name,
                    "liminal.waiting_room.depth": g.waiting,
                    "liminal.waiting_room.capacity": g.waiting_room,
                    "liminal.dispatch.in_flight": g.in_flight,
                    "liminal.dispatch.rejected": g.rejected,
                    "liminal.dispatch.dropped": g.dropped,
                    "liminal.group.draining": g.draining,
                    "liminal.ordering.keys": g.ordering.keys,
                    "liminal.ordering.keys_waiting": g.ordering.keys_waiting,
                    "liminal.ordering.longest_key_queue": g.ordering.longest_key_queue,
                    "liminal.ordering.oldest_head_age_ns": nanos(g.ordering.oldest_head_age),
                    "liminal.ordering.keys_held": g.ordering.keys_held,
                    "consumers": g.consumers.iter().map(|c| json!({
                        "liminal.consumer.id": c.id,
                        "liminal.consumer.in_flight": c.in_flight,
                        "liminal.consumer.max_in_flight": c.max_in_flight,
                        "messaging.client.consumed.messages": c.delivered,
                        "liminal.consumer.released": c.released,
                        "liminal.consumer.lease_expiries": c.lease_expiries,
                        "liminal.consumer.paused": c.paused,
                    })).collect::<Vec<_>>(),
                });
                if let (Some(store), Some(object)) = (&g.store, group.as_object_mut()) {
                    object.insert("store".into(), store_json(store));
                }
                group
            })
            .collect();
        json!({
            "messaging.system": "liminal",
            "messaging.client.sent.messages": m.dispatched,
            "messaging.client.consumed.messages": m.delivered,
            "liminal.dispatch.failed": failures,
            "liminal.dispatch.dead_lettered": m.dead_lettered,
            "liminal.dispatch.rejected": m.rejected,
            "liminal.delivery.rerouted": m.rerouted,
            "liminal.delivery.released": m.released,
            "liminal.delivery.lease_expired": m.lease_expired,
            "liminal.consumer.crashes": m.consumer_crashes,
            "liminal.dispatch.duration": percentiles_json(&m.dispatch_latency),
            "liminal.reroute.duration": percentiles_json(&m.reroute_latency),
            "liminal.waiting_room.duration": percentiles_json(&m.waiting_time),
            "groups": groups,
        })
        .to_string()
    }

    /// In the Prometheus text exposition format.
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let m = &self.metrics;
        let sys = "messaging_system=\"liminal\"";
        let mut out = String::new();
        for (name, help, value) in [
            (
                "liminal_messages_sent_total",
                "Dispatches accepted.",
                m.dispatched,
            ),
            (
                "liminal_messages_consumed_total",
                "Dispatches delivered.",
                m.delivered,
            ),
            (
                "liminal_messages_rejected_total",
                "Dispatches refused: waiting room full.",
                m.rejected,
            ),
            (
                "liminal_deliveries_rerouted_total",
                "Deliveries re-routed after a failure.",
                m.rerouted,
            ),
            (
                "liminal_deliveries_released_total",
                "Deliveries released by their consumer.",
                m.released,
            ),
            (
                "liminal_deliveries_lease_expired_total",
                "Acknowledgement leases expired.",
                m.lease_expired,
            ),
            (
                "liminal_consumer_crashes_total",
                "Consumers that died of a crash.",
                m.consumer_crashes,
            ),
        ] {
            family(
                &mut out,
                name,
                "counter",
                help,
                [(sys.to_owned(), value.to_string())],
            );
        }
        family(
            &mut out,
            "liminal_messages_failed_total",
            "counter",
            "Dispatches ended without a delivery, by error type.",
            self.failures()
                .iter()
                .map(|(kind, value)| (format!("{sys},error_type=\"{kind}\""), value.to_string())),
        );
        for (name, help, p) in [
            (
                "liminal_dispatch_duration_seconds",
                "Acceptance to acknowledgement.",
                &m.dispatch_latency,
            ),
            (
                "liminal_reroute_duration_seconds",
                "Failure noticed to re-route initiated.",
                &m.reroute_latency,
            ),
            (
                "liminal_waiting_duration_seconds",
                "Time in the waiting room per placement.",
                &m.waiting_time,
            ),
        ] {
            let quantiles = [("0.5", p.p50_ns), ("0.99", p.p99_ns), ("0.999", p.p999_ns)]
                .into_iter()
                .map(|(q, ns)| (format!("{sys},quantile=\"{q}\""), seconds(ns)));
            family(&mut out, name, "summary", help, quantiles);
            let _ = writeln!(out, "{name}_count{{{sys}}} {}", p.count);
        }
        let group_labels = |g: &GroupStats| {
            format!(
                "{sys},messaging_consumer_group_name=\"{}\"",
                escape(&g.name)
            )
        };
        let per_group = |value: fn(&GroupStats) -> String| {
            self.groups
                .iter()
                .map(|g| (group_labels(g), value(g)))
                .collect::<Vec<_>>()
        };
        family(
            &mut out,
            "liminal_waiting_room_depth",
            "gauge",
            "Messages waiting for a consumer.",
            per_group(|g| g.waiting.to_string()),
        );
        family(
            &mut out,
            "liminal_group_in_flight",
            "gauge",
            "Accepted dispatches not completed.",
            per_group(|g| g.in_flight.to_string()),
        );
        for (name, help, value) in [
            (
                "liminal_ordering_keys",
                "Ordering keys with a message out or waiting.",
                (|g| g.ordering.keys.to_string()) as fn(&GroupStats) -> String,
            ),
            (
                "liminal_ordering_keys_waiting",
                "Ordering keys with messages waiting behind their head.",
                |g| g.ordering.keys_waiting.to_string(),
            ),
            (
                "liminal_ordering_longest_key_queue",
                "Messages of the longest waiting key, head included.",
                |g| g.ordering.longest_key_queue.to_string(),
            ),
            (
                "liminal_ordering_oldest_head_age_seconds",
                "How long the longest-held head of a waiting key has been its head.",
                |g| seconds(nanos(g.ordering.oldest_head_age)),
            ),
            (
                "liminal_ordering_keys_held",
                "Keys held after their head failed, until the host releases them.",
                |g| g.ordering.keys_held.to_string(),
            ),
        ] {
            family(&mut out, name, "gauge", help, per_group(value));
        }
        // Durable groups only: a group without a store has no sample.
        let per_store = |value: fn(&StoreStats) -> u64| {
            self.groups
                .iter()
                .filter_map(|g| Some((group_labels(g), value(g.store.as_ref()?).to_string())))
                .collect::<Vec<_>>()
        };
        for (name, kind, help, value) in [
            (
                "liminal_store_pending",
                "gauge",
                "Messages a durable group's store holds accepted and not completed.",
                (|s| s.pending) as fn(&StoreStats) -> u64,
            ),
            (
                "liminal_store_disk_bytes",
                "gauge",
                "Bytes of a durable group's store files.",
                |s| s.disk_bytes,
            ),
            (
                "liminal_store_syncs_total",
                "counter",
                "fdatasync calls (or host-store commits) made by a durable group's store.",
                |s| s.syncs,
            ),
            (
                "liminal_store_recovered",
                "gauge",
                "Messages a durable group's store gave back when it was opened.",
                |s| s.recovered,
            ),
            (
                "liminal_store_dropped_bytes",
                "gauge",
                "Bytes a durable group's store left out as damaged when it was opened.",
                |s| s.dropped.bytes,
            ),
        ] {
            family(&mut out, name, kind, help, per_store(value));
        }
        let per_consumer = |value: fn(&ConsumerStats) -> String| {
            self.groups
                .iter()
                .flat_map(move |g| {
                    g.consumers.iter().map(move |c| {
                        (
                            format!(
                                "{sys},messaging_consumer_group_name=\"{}\",consumer=\"{}\"",
                                escape(&g.name),
                                escape(&c.id)
                            ),
                            value(c),
                        )
                    })
                })
                .collect::<Vec<_>>()
        };
        family(
            &mut out,
            "liminal_consumer_in_flight",
            "gauge",
            "Deliveries reserved for or held by a consumer.",
            per_consumer(|c| c.in_flight.to_string()),
        );
        family(
            &mut out,
            "liminal_consumer_delivered_total",
            "counter",
            "Deliveries a consumer acknowledged.",
            per_consumer(|c| c.delivered.to_string()),
        );
        family(
            &mut out,
            "liminal_consumer_lease_expiries_total",
            "counter",
            "Acknowledgement leases a consumer let expire.",
            per_consumer(|c| c.lease_expiries.to_string()),
        );
        out
    }
}

fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn seconds(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
