//! Errors returned by the Rust API.

use thiserror::Error;

/// Why a routing evaluation produced no selection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoutingError {
    /// The routing function panicked; the value is its content hash.
    #[error("routing function {0:#018x} crashed")]
    Crashed(u64),
    /// The routing function ran past the supervision timeout and was abandoned.
    #[error("routing function {0:#018x} timed out")]
    TimedOut(u64),
    /// The supervised process that runs the routing function could not start.
    #[error("routing process could not be spawned: {0}")]
    SpawnFailed(String),
}

/// Why an accepted dispatch ended without a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DispatchError {
    /// No live consumer is left for this message (none registered, or all excluded).
    #[error("no consumer available")]
    NoConsumerAvailable,
    /// The routing function named an id that is not among the eligible consumers.
    #[error("unknown consumer selected: {0}")]
    UnknownConsumerSelected(String),
    /// The routing function crashed, timed out, or could not be started.
    #[error("routing evaluation failed: {0}")]
    Routing(#[from] RoutingError),
    /// The message crashed the maximum number of consumers and was
    /// dead-lettered. Its last crash has no re-route timing.
    #[error("dead-lettered after {0} crashed attempts")]
    AttemptsExhausted(u32),
    /// The conversation could not be driven (infrastructure failure).
    #[error("conversation failed: {0}")]
    Conversation(String),
    /// The runtime shut down before the dispatch completed.
    #[error("runtime shut down")]
    ShutDown,
}

impl DispatchError {
    /// Whether trying the same message again later may succeed.
    #[must_use]
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Self::NoConsumerAvailable | Self::Routing(RoutingError::TimedOut(_))
        )
    }
}

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
    /// The delivery was already completed or re-routed; this completion is fenced off.
    #[error("stale delivery {0}: already completed or re-routed")]
    StaleDelivery(u64),
    /// The runtime (or the consumer) is shut down.
    #[error("shut down")]
    ShutDown,
    /// A wait ran out of time.
    #[error("timed out waiting")]
    TimedOut,
    /// The call would block a scheduler thread that it needs itself.
    #[error("would deadlock: {0}")]
    WouldDeadlock(String),
    /// A beamr process could not be spawned.
    #[error("spawn failed: {0}")]
    SpawnFailed(String),
    /// A dispatch was accepted but ended without a delivery.
    #[error(transparent)]
    Dispatch(Box<crate::dispatch::DispatchFailure>),
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
