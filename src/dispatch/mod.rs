//! Dispatch: the per-message conversation, the group's waiting room and
//! placement (built-in and host routing, reservations), the engine that
//! accepts dispatches and ends them, and the options.

pub(crate) mod conversation;
pub(crate) mod dispatcher;
pub(crate) mod options;
pub(crate) mod placement;
pub(crate) mod room;

pub use dispatcher::{DeadLetterHandler, RecoveredHandler};
pub use options::{DispatchOptions, GroupOptions, Overflow};

use crate::error::DispatchFailure;
use crate::outcome::Outcome;

/// How an accepted dispatch ends.
pub type DispatchResult = Result<Outcome, DispatchFailure>;

/// Receives the result of an asynchronous dispatch, exactly once.
pub type Completion = Box<dyn FnOnce(DispatchResult) + Send + 'static>;
