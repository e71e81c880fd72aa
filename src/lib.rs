//! liminal: fault-aware message dispatch on the beamr runtime.
//!
//! Dependencies run one way, top to bottom:
//! `ffi` → `remote` → `runtime` → `group` → `dispatch` → `store` →
//! `ordering` → `consumer` → `routing` → `base` → `stats` → `metrics` →
//! `error` → `outcome`, `message`; nothing imports upward.
//!
//! A [`Runtime`] owns one beamr scheduler. A [`Group`] holds consumers, a
//! routing function and a waiting room. Each dispatched [`Message`] gets its
//! own conversation: it waits until the routing function, over the live
//! state of the group, chooses a consumer and that consumer's capacity is
//! reserved in the same step; it is forwarded to the consumer's process
//! (monitored by the runtime's exit watcher from birth), and the dispatch
//! completes when the consumer acknowledges. If the consumer dies first, the
//! message is re-routed at once, never back to the consumer that crashed.
//!
//! With the `remote` feature, a group can be opened to workers in other
//! processes or on other hosts over Zenoh (`RemoteHost`, `Worker`; the
//! wire protocol is `docs/PROTOCOL.md`).
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

mod base;
mod consumer;
mod dispatch;
mod error;
mod group;
mod message;
mod metrics;
mod ordering;
mod outcome;
#[cfg(feature = "remote")]
mod remote;
mod routing;
mod runtime;
mod stats;
mod store;

/// The C ABI (see `include/liminal.h`).
pub mod ffi;

pub use base::scope::in_callback;
pub use consumer::{
    Consumer, ConsumerSpec, CrashHandler, CrashKind, CrashReport, Delivery, DeliveryHandler,
    DeliveryMode, DeliveryToken, LeasePolicy, Verdict,
};
pub use dispatch::{
    Completion, DeadLetterHandler, DispatchOptions, DispatchResult, GroupOptions, Overflow,
    RecoveredHandler,
};
pub use error::{DispatchError, DispatchFailure, Error, Result, RoutingError};
pub use group::Group;
pub use message::{FieldValue, Message};
pub use metrics::{MetricsSnapshot, Percentiles};
pub use ordering::key::ORDERING_KEY_MAX;
pub use outcome::{Outcome, RerouteTiming, Trail};
#[cfg(feature = "remote")]
pub use remote::{
    HostLostHandler, RemoteHost, RemoteOptions, TlsFiles, Worker, WorkerSpec, WorkerStatus,
};
pub use routing::{content_hash, Builtin, ConsumerState, RouteFn, RoutingFunction};
pub use runtime::{Runtime, RuntimeOptions, StatsHandler};
pub use stats::{
    ConsumerStats, GroupStats, OrderingStats, Stats, StoreDropped, StoreStats, WaitingKey,
    WaitingKeys,
};
pub use store::{HostStore, StoreOptions, SyncPolicy};
