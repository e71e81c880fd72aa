mod core;
mod service;
mod types;

pub(in crate::scheduler) use core::{RouteHome, ServiceConsumerId};
pub use service::SharedReadiness;
pub(in crate::scheduler) use service::{ReadinessConsumer, ReadinessService};
pub use types::{Generation, Interest, ReadinessBuildError, ReadinessError, ReadinessToken};
