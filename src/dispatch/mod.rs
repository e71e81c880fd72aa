//! Dispatch: the per-group engine (waiting room and placement), the
//! per-message conversation, placement through host routing functions, and
//! options.

pub(crate) mod conversation;
pub(crate) mod dispatcher;
pub(crate) mod host_routing;
pub(crate) mod options;

pub use dispatcher::DeadLetterHandler;
pub use options::{DispatchOptions, GroupOptions, Overflow};

use crate::error::DispatchFailure;
use crate::outcome::Outcome;

/// How an accepted dispatch ends.
pub type DispatchResult = Result<Outcome, DispatchFailure>;

/// Receives the result of an asynchronous dispatch, exactly once.
pub type Completion = Box<dyn FnOnce(DispatchResult) + Send + 'static>;
