//! Dispatch: the per-message conversation, its outcome, and the watcher that
//! turns a consumer's exit into re-routes.

pub(crate) mod conversation;
pub(crate) mod exit_watcher;
pub(crate) mod oneshot;
pub(crate) mod outcome;

pub use outcome::{Completion, DispatchFailure, DispatchResult, Outcome, RerouteTiming};
