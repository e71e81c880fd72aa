//! Counters and latency distributions, readable as a [`MetricsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

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
    /// Deliveries re-routed away from a consumer that died holding them.
    pub rerouted: u64,
    /// Consumer processes that exited abnormally.
    pub consumer_crashes: u64,
    /// Dispatches that ended without a delivery (every error except shut-down).
    pub dead_lettered: u64,
    /// Routing evaluations that crashed, timed out or failed to start.
    pub routing_failures: u64,
    /// Dispatches failed because the runtime shut down.
    pub shut_down: u64,
    /// Acceptance to completion of delivered dispatches.
    pub dispatch_latency: Percentiles,
    /// Consumer EXIT observed to re-route initiated.
    pub reroute_latency: Percentiles,
}

/// Live metrics of one runtime.
pub(crate) struct Metrics {
    pub(crate) dispatched: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) rerouted: AtomicU64,
    pub(crate) consumer_crashes: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) routing_failures: AtomicU64,
    pub(crate) shut_down: AtomicU64,
    dispatch_latency: Mutex<Histogram<u64>>,
    reroute_latency: Mutex<Histogram<u64>>,
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

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            dispatched: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            rerouted: AtomicU64::new(0),
            consumer_crashes: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            routing_failures: AtomicU64::new(0),
            shut_down: AtomicU64::new(0),
            dispatch_latency: Mutex::new(histogram()),
            reroute_latency: Mutex::new(histogram()),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_dispatch(&self, latency: Duration) {
        self.dispatch_latency
            .lock()
            .saturating_record(nanos(latency));
    }

    pub(crate) fn record_reroute(&self, latency: Duration) {
        self.reroute_latency
            .lock()
            .saturating_record(nanos(latency));
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            dispatched: load(&self.dispatched),
            delivered: load(&self.delivered),
            rerouted: load(&self.rerouted),
            consumer_crashes: load(&self.consumer_crashes),
            dead_lettered: load(&self.dead_lettered),
            routing_failures: load(&self.routing_failures),
            shut_down: load(&self.shut_down),
            dispatch_latency: percentiles(&self.dispatch_latency.lock()),
            reroute_latency: percentiles(&self.reroute_latency.lock()),
        }
    }
}
