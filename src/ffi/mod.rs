//! The C ABI. One file per C type (runtime, message, routing, group,
//! snapshot, key list, consumer, delivery, dispatch options, outcome; remote hosts
//! and workers in one), the callback
//! types and `user` ownership in `callbacks`, status codes and the last
//! error in `error`, and the boundary helpers (panic guard, handle casts,
//! pointer and string checks) in `boundary`. Every exported function
//! catches panics, checks its pointers and strings, and returns a status.
//!
//! The modules are declared in the order the header presents them.

#![allow(non_camel_case_types)]
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub(crate) mod boundary;

// Status codes and the last error.
pub mod error;

// Callback types and their contracts.
pub mod callbacks;

// The runtime and its options.
pub mod runtime;

// Messages.
pub mod message;

// Routing functions.
pub mod routing;

// Groups and their options.
pub mod group;

// A host's own store for durable groups.
pub(crate) mod store;

// Snapshots of a group.
pub mod snapshot;

// Lists of a group's waiting ordering keys.
pub mod keys;

// Consumers and their options.
pub mod consumer;

// Deliveries.
pub mod delivery;

// Dispatch and its options.
pub mod dispatch;

// Outcomes.
pub mod outcome;

// Remote consumers: the host side and the worker side.
pub mod remote;
