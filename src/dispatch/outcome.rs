//! What a dispatch ends with.

use std::time::{Duration, Instant};

use crate::error::DispatchError;

/// One re-route: when the consumer's EXIT was observed, and when the
/// re-route of this message was initiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RerouteTiming {
    /// The EXIT of the consumer holding the message was observed.
    pub exit_observed: Instant,
    /// The message's re-route was initiated.
    pub reroute_initiated: Instant,
}

impl RerouteTiming {
    /// `reroute_initiated - exit_observed`.
    #[must_use]
    pub fn latency(&self) -> Duration {
        self.reroute_initiated
            .saturating_duration_since(self.exit_observed)
    }
}

/// A delivered dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The dispatch id (also seen by consumers).
    pub dispatch_id: u64,
    /// The consumer that acknowledged it.
    pub delivered_to: String,
    /// Consumers that crashed while holding it, in order.
    pub rerouted_from: Vec<String>,
    /// One timing per entry of `rerouted_from`.
    pub reroute_timings: Vec<RerouteTiming>,
    /// Forwards made, the successful one included.
    pub attempts: u32,
}

/// A dispatch that ended without a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchFailure {
    /// Why.
    pub error: DispatchError,
    /// The dispatch id.
    pub dispatch_id: u64,
    /// Consumers that crashed while holding it, in order.
    pub rerouted_from: Vec<String>,
    /// One timing per entry of `rerouted_from`.
    pub reroute_timings: Vec<RerouteTiming>,
    /// Forwards made.
    pub attempts: u32,
}

impl std::fmt::Display for DispatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dispatch {} failed: {}", self.dispatch_id, self.error)
    }
}

impl std::error::Error for DispatchFailure {}

/// How an accepted dispatch ends.
pub type DispatchResult = Result<Outcome, DispatchFailure>;

/// Receives the result of an asynchronous dispatch, exactly once.
pub type Completion = Box<dyn FnOnce(DispatchResult) + Send + 'static>;
