//! Routing: what a routing function sees (views and candidates), functions
//! and the hot-deploy slot, the built-ins, the hash ring, and supervised
//! execution of host functions. Knows nothing of consumers' internals.

pub(crate) mod builtin;
pub(crate) mod candidates;
pub(crate) mod function;
pub(crate) mod ring;
pub(crate) mod slot;
pub(crate) mod supervisor;
pub(crate) mod view;

pub use builtin::Builtin;
pub use function::{content_hash, RouteFn, RoutingFunction};
pub use view::ConsumerState;
