//! Routing: functions, the hot-deploy slot, built-ins and supervised execution.

pub(crate) mod builtin;
pub(crate) mod candidates;
pub(crate) mod function;
pub(crate) mod ring;
pub(crate) mod slot;
pub(crate) mod supervisor;

pub use builtin::Builtin;
pub use function::{content_hash, RouteFn, RoutingFunction};
