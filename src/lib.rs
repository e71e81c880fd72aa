//! liminal: fault-aware message dispatch on the beamr runtime.
//!
//! A [`Runtime`] owns one beamr scheduler. A [`Group`] holds consumers and a
//! routing function. Each dispatched [`Message`] gets its own conversation:
//! the routing function selects a consumer from a snapshot of the group, the
//! message is forwarded to the consumer's process (which is linked to the
//! runtime's exit watcher from birth), and the dispatch completes when the
//! consumer acknowledges. If the consumer's process exits first, the EXIT
//! arrives at once and the message is re-routed, never back to the consumer
//! that crashed.
//!
//! ```
//! use liminal::{Builtin, ConsumerSpec, GroupOptions, Message, FieldValue,
//!               RoutingFunction, Runtime, RuntimeOptions, Verdict};
//!
//! let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
//! let group = runtime
//!     .group(RoutingFunction::builtin(Builtin::LeastLoaded), GroupOptions::default())
//!     .unwrap();
//! group.register(ConsumerSpec::push("worker-1", |_d: &liminal::Delivery| Verdict::Ack)).unwrap();
//! let outcome = group
//!     .dispatch(Message::new().with("order", FieldValue::Int(7)))
//!     .unwrap();
//! assert_eq!(outcome.delivered_to, "worker-1");
//! ```

#![warn(missing_docs)]

mod consumer;
mod dispatch;
mod error;
mod group;
mod message;
mod metrics;
mod routing;
mod runtime;

/// The C ABI (see `include/liminal.h`).
pub mod ffi;

pub use consumer::{
    Consumer, ConsumerSpec, ConsumerState, CrashHandler, CrashReport, Delivery, DeliveryHandler,
    DeliveryMode, DeliveryToken, Verdict,
};
pub use dispatch::{Completion, DispatchFailure, DispatchResult, Outcome, RerouteTiming};
pub use error::{DispatchError, Error, Result, RoutingError};
pub use group::{DeadLetterHandler, Group, GroupOptions};
pub use message::{FieldValue, Message};
pub use metrics::{MetricsSnapshot, Percentiles};
pub use routing::{content_hash, Builtin, RouteFn, RoutingFunction};
pub use runtime::{in_library_thread, Runtime, RuntimeOptions};
