//! The C ABI. One file per C-visible concept, plus `boundary` (panic guard,
//! pointer and string checks, handle casts). Every exported function catches
//! panics, checks its pointers and strings, and returns a status.

#![allow(non_camel_case_types)]
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub(crate) mod boundary;
pub mod consumer;
pub mod dispatch;
pub mod error;
pub mod group;
pub mod message;
pub mod routing;
pub mod runtime;
