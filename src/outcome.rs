//! What a dispatch ends with: a [`Trail`] of what happened to the message,
//! and, when delivered, the consumer that acknowledged it (a failure is a
//! [`crate::DispatchFailure`]: the error and the same trail).

use std::time::{Duration, Instant};

/// One re-route away from a failed consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RerouteTiming {
    /// The failure was noticed: the consumer's exit observed, its crash
    /// verdict or declaration received, or its lease found expired.
    pub crash_noticed: Instant,
    /// The message's re-route was initiated.
    pub reroute_initiated: Instant,
}

impl RerouteTiming {
    /// `reroute_initiated - crash_noticed`.
    #[must_use]
    pub fn latency(&self) -> Duration {
        self.reroute_initiated
            .saturating_duration_since(self.crash_noticed)
    }
}

/// What happened to a message on its way, delivered or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    /// The dispatch id (also seen by consumers).
    pub dispatch_id: u64,
    /// Forwards made (the successful one included).
    pub attempts: u32,
    /// Consumers that failed while holding it (crashed, or let its lease
    /// expire), in order.
    pub rerouted_from: Vec<String>,
    /// One timing per re-route initiated after such a failure. A message
    /// failed for exhausting its attempts has none for its last failure, so
    /// this may be one shorter than `rerouted_from`.
    pub reroute_timings: Vec<RerouteTiming>,
    /// Consumers that died handling it (callback running, or answered crash).
    pub crashed_handling: u32,
    /// Consumers that died merely holding it.
    pub crashed_holding: u32,
    /// Times a consumer released it.
    pub released: u32,
    /// Times its acknowledgement lease expired.
    pub lease_expired: u32,
    /// Total time spent in the waiting room.
    pub waited: Duration,
}

/// A delivered dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The consumer that acknowledged it.
    pub delivered_to: String,
    /// What happened on the way.
    pub trail: Trail,
}

impl std::ops::Deref for Outcome {
    type Target = Trail;

    fn deref(&self) -> &Trail {
        &self.trail
    }
}
