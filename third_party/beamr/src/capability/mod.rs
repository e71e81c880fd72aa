//! Capability facades for configuring runtime authority.

pub mod audit;
pub mod sandbox;

pub use audit::{
    CapabilityAuditEvent, CapabilityAuditSink, CapabilityOperation, StderrViolationHandler,
    ViolationHandler,
};
pub use sandbox::Sandbox;
