//! Errors returned by the Rust API.

use thiserror::Error;

use crate::outcome::Trail;

/// Why a routing evaluation produced no selection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoutingError {
    /// The routing function panicked (or reported failure); the value is
    /// its content hash.
    #[error("routing function {0:#018x} crashed")]
    Crashed(u64),
    /// The routing function ran past the supervision timeout and was
    /// abandoned (or is still running such a call: calls never overlap).
    #[error("routing function {0:#018x} timed out")]
    TimedOut(u64),
    /// The supervised process that runs the routing function could not start.
    #[error("routing process could not be spawned: {0}")]
    SpawnFailed(String),
}

/// Why an accepted dispatch ended without a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DispatchError {
    /// Its group closed (was freed) while the message waited or was held.
    #[error("no consumer available: the group closed")]
    NoConsumerAvailable,
    /// The routing function named an id that is not among the eligible consumers.
    #[error("unknown consumer selected: {0}")]
    UnknownConsumerSelected(String),
    /// The routing function crashed, timed out, or could not be started.
    #[error("routing evaluation failed: {0}")]
    Routing(#[from] RoutingError),
    /// The message used up its failed attempts (see `GroupOptions::max_attempts`).
    #[error("dead-lettered after {0} failed attempts")]
    AttemptsExhausted(u32),
    /// The message's deadline passed before it was delivered.
    #[error("expired: not delivered by its deadline")]
    Expired,
    /// The blocking dispatch's own timeout passed; the message was withdrawn.
    #[error("timed out waiting for the outcome; the message was withdrawn")]
    TimedOut,
    /// The waiting room overflowed and this, the oldest message, was dropped.
    #[error("dropped: the oldest waiting message when the waiting room overflowed")]
    Dropped,
    /// The conversation could not be driven (infrastructure failure).
    #[error("conversation failed: {0}")]
    Conversation(String),
    /// The runtime shut down before the dispatch completed.
    #[error("runtime shut down")]
    ShutDown,
}

impl DispatchError {
    /// Whether dispatching the same message again later may succeed.
    #[must_use]
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Self::Routing(RoutingError::TimedOut(_))
                | Self::Expired
                | Self::TimedOut
                | Self::Dropped
        )
    }
}

/// A dispatch that ended without a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchFailure {
    /// Why.
    pub error: DispatchError,
    /// What happened on the way.
    pub trail: Trail,
}

impl DispatchFailure {
    /// Whether the message is poison that kills its consumers: it used up
    /// its attempts (`AttemptsExhausted`) and every failed attempt was a
    /// consumer dying *handling* it (its callback running with it, a crash
    /// answer, a worker process that died after `started`), none a release
    /// or an expired lease. The status stays `AttemptsExhausted`: this is
    /// the reason within it.
    #[must_use]
    pub fn is_poison(&self) -> bool {
        matches!(self.error, DispatchError::AttemptsExhausted(failed)
            if failed > 0 && failed == self.trail.crashed_handling)
    }
}

impl std::ops::Deref for DispatchFailure {
    type Target = Trail;

    fn deref(&self) -> &Trail {
        &self.trail
    }
}

impl std::fmt::Display for DispatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dispatch {} failed: {}",
            self.trail.dispatch_id, self.error
        )?;
        if !self.trail.rerouted_from.is_empty() {
            write!(
                f,
                " (failed holding it: {})",
                self.trail.rerouted_from.join(", ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for DispatchFailure {}

/// Errors of the API calls themselves (bad input, state, lifecycle).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// An argument was out of range or malformed; the text says which.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A consumer with this id is already registered in the group.
    #[error("duplicate consumer: {0}")]
    DuplicateConsumer(String),
    /// No consumer with this id is registered.
    #[error("unknown consumer: {0}")]
    UnknownConsumer(String),
    /// The consumer crashed or left; its handle can only be freed.
    #[error("consumer {0} is gone (crashed or left)")]
    ConsumerGone(String),
    /// The delivery was already answered, re-routed or withdrawn; this
    /// answer is fenced off.
    #[error("stale delivery {0}: already answered, re-routed or withdrawn")]
    StaleDelivery(u64),
    /// The runtime is shut down.
    #[error("shut down")]
    ShutDown,
    /// The group (or runtime) is draining: it accepts no new dispatches.
    #[error("draining: no new dispatches accepted")]
    Draining,
    /// The waiting room is full (overflow policy reject, or block timed out).
    #[error("waiting room full")]
    QueueFull,
    /// A wait ran out of time.
    #[error("timed out waiting")]
    TimedOut,
    /// The call would block a library thread it needs, or free what the
    /// caller stands on (made from inside a callback).
    #[error("would deadlock: {0}")]
    WouldDeadlock(String),
    /// A beamr process or thread could not be started.
    #[error("spawn failed: {0}")]
    SpawnFailed(String),
    /// A durable group's store is held by another live process.
    #[error("store locked by another process: {0}")]
    StoreLocked(String),
    /// A durable group's store could not be opened or read, or a write or
    /// sync failed (the store then accepts nothing more).
    #[error("store failed: {0}")]
    StoreFailed(String),
    /// A dispatch was accepted but ended without a delivery.
    #[error(transparent)]
    Dispatch(Box<DispatchFailure>),
}

/// Result type of the Rust API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The dispatch error inside, for [`Error::Dispatch`].
    #[must_use]
    pub fn dispatch_error(&self) -> Option<&DispatchError> {
        match self {
            Self::Dispatch(failure) => Some(&failure.error),
            _ => None,
        }
    }
}
