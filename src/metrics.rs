//! Counters and latency distributions of one runtime, readable as a
//! [`MetricsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::error::DispatchError;

/// Latency percentiles of one distribution, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Number of samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
}

/// A point-in-time copy of a runtime's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Dispatches accepted.
    pub dispatched: u64,
    /// Dispatches completed with a delivery.
    pub delivered: u64,
    /// Deliveries re-routed away from a consumer that failed holding them
    /// (crashed, or let the lease expire).
    pub rerouted: u64,
    /// Consumers that died of a crash (any kind).
    pub consumer_crashes: u64,
    /// Dispatches that ended without a delivery, shutdown excepted (the sum
    /// of the reasons below and the routing failures).
    pub dead_lettered: u64,
    /// … because the message used up its failed attempts.
    pub attempts_exhausted: u64,
    /// … because its deadline passed.
    pub expired: u64,
    /// … because a blocking dispatch's own timeout passed.
    pub timed_out: u64,
    /// … because it was the oldest waiting message when the waiting room overflowed.
    pub dropped: u64,
    /// … because its group closed while it waited or was held.
    pub group_closed: u64,
    /// Routing evaluations that crashed, timed out, failed to start, or chose an unknown id.
    pub routing_failures: u64,
    /// Dispatches completed with shut-down.
    pub shut_down: u64,
    /// New dispatches refused because the waiting room was full.
    pub rejected: u64,
    /// Deliveries released by their consumer.
    pub released: u64,
    /// Deliveries whose acknowledgement lease expired.
    pub lease_expired: u64,
    /// Acceptance to acknowledgement of delivered dispatches.
    pub dispatch_latency: Percentiles,
    /// Failure noticed to re-route initiated.
    pub reroute_latency: Percentiles,
    /// Time spent in the waiting room per placement.
    pub waiting_time: Percentiles,
}

/// Live metrics of one runtime.
pub(crate) struct Metrics {
    dispatched: AtomicU64,
    delivered: AtomicU64,
    rerouted: AtomicU64,
    consumer_crashes: AtomicU64,
    dead_lettered: AtomicU64,
    attempts_exhausted: AtomicU64,
    expired: AtomicU64,
    timed_out: AtomicU64,
    dropped: AtomicU64,
    group_closed: AtomicU64,
    routing_failures: AtomicU64,
    shut_down: AtomicU64,
    rejected: AtomicU64,
    released: AtomicU64,
    lease_expired: AtomicU64,
    dispatch_latency: Mutex<Histogram<u64>>,
    reroute_latency: Mutex<Histogram<u64>>,
    waiting_time: Mutex<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour at 3 significant digits; the bounds are constants that
    // hdrhistogram accepts, so construction cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("constant histogram bounds are valid")
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    Percentiles {
        count: histogram.len(),
        p50_ns: histogram.value_at_quantile(0.50),
        p99_ns: histogram.value_at_quantile(0.99),
        p999_ns: histogram.value_at_quantile(0.999),
        max_ns: histogram.max(),
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            dispatched: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            rerouted: AtomicU64::new(0),
            consumer_crashes: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            attempts_exhausted: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            group_closed: AtomicU64::new(0),
            routing_failures: AtomicU64::new(0),
            shut_down: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            released: AtomicU64::new(0),
            lease_expired: AtomicU64::new(0),
            dispatch_latency: Mutex::new(histogram()),
            reroute_latency: Mutex::new(histogram()),
            waiting_time: Mutex::new(histogram()),
        }
    }

    pub(crate) fn record_dispatched(&self) {
        bump(&self.dispatched);
    }

    pub(crate) fn record_rejected(&self) {
        bump(&self.rejected);
    }

    pub(crate) fn record_released(&self) {
        bump(&self.released);
    }

    pub(crate) fn record_lease_expired(&self) {
        bump(&self.lease_expired);
    }

    pub(crate) fn bump_consumer_crash(&self) {
        bump(&self.consumer_crashes);
    }

    pub(crate) fn record_delivered(&self, latency: Duration) {
        bump(&self.delivered);
        self.dispatch_latency
            .lock()
            .saturating_record(nanos(latency));
    }

    /// A dispatch ended without a delivery.
    pub(crate) fn record_failed(&self, error: &DispatchError) {
        let counter = match error {
            DispatchError::ShutDown => {
                bump(&self.shut_down);
                return;
            }
            DispatchError::AttemptsExhausted(_) => &self.attempts_exhausted,
            DispatchError::Expired => &self.expired,
            DispatchError::TimedOut => &self.timed_out,
            DispatchError::Dropped => &self.dropped,
            DispatchError::NoConsumerAvailable => &self.group_closed,
            DispatchError::Routing(_)
            | DispatchError::UnknownConsumerSelected(_)
            | DispatchError::Conversation(_) => &self.routing_failures,
        };
        bump(counter);
        bump(&self.dead_lettered);
    }

    pub(crate) fn record_reroute(&self, latency: Duration) {
        bump(&self.rerouted);
        self.reroute_latency
            .lock()
            .saturating_record(nanos(latency));
    }

    pub(crate) fn record_wait(&self, waited: Duration) {
        self.waiting_time.lock().saturating_record(nanos(waited));
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            dispatched: load(&self.dispatched),
            delivered: load(&self.delivered),
            rerouted: load(&self.rerouted),
            consumer_crashes: load(&self.consumer_crashes),
            dead_lettered: load(&self.dead_lettered),
            attempts_exhausted: load(&self.attempts_exhausted),
            expired: load(&self.expired),
            timed_out: load(&self.timed_out),
            dropped: load(&self.dropped),
            group_closed: load(&self.group_closed),
            routing_failures: load(&self.routing_failures),
            shut_down: load(&self.shut_down),
            rejected: load(&self.rejected),
            released: load(&self.released),
            lease_expired: load(&self.lease_expired),
            dispatch_latency: percentiles(&self.dispatch_latency.lock()),
            reroute_latency: percentiles(&self.reroute_latency.lock()),
            waiting_time: percentiles(&self.waiting_time.lock()),
        }
    }
}
