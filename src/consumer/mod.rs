//! Consumers: long-lived beamr processes that stand for the host's workers.
//! A consumer holds *attempts* and reports to their owner; it does not know
//! what a conversation or a group is.

pub(crate) mod attempt;
pub(crate) mod core;
pub(crate) mod delivery;
pub(crate) mod process;
pub(crate) mod reporter;

use std::sync::Arc;
use std::time::Duration;

pub use delivery::{Delivery, DeliveryHandler, DeliveryToken, Verdict};

use crate::error::{Error, Result};
use crate::routing::view::{Candidate, ConsumerState};
use core::{ConsumerCore, Death};

/// How a consumer receives its deliveries.
pub enum DeliveryMode {
    /// The handler runs on the consumer's process for each delivery.
    Push(Box<dyn DeliveryHandler>),
    /// A host thread calls [`Consumer::next_delivery`] and answers through the token.
    Pull,
}

/// Why a consumer is reported to its crash handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashKind {
    /// Its delivery callback answered crash.
    Verdict,
    /// Its delivery callback panicked (or, from C++, threw).
    Panicked,
    /// The host declared it crashed (or answered crash through a token).
    Declared,
    /// Fault injection (`crash_at_next_delivery`).
    Injected,
    /// Its process exited without being asked to (killed from outside).
    Exited,
    /// It did not answer a delivery within the acknowledgement lease.
    /// Whether it survives depends on the group's [`LeasePolicy`].
    LeaseExpired,
    /// A remote worker's connection closed (its process died, or the link
    /// was cut).
    ConnectionLost,
    /// A remote worker fell silent for (7/8 of) its session lease (frozen,
    /// or its host stopped answering).
    SessionExpired,
}

/// What the crash handler is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// The consumer's id.
    pub consumer_id: String,
    /// The kind of failure.
    pub kind: CrashKind,
    /// A readable reason.
    pub reason: String,
    /// Whether the consumer is still alive (a lease expiry under
    /// [`LeasePolicy::Quarantine`]); false when it died.
    pub alive: bool,
}

/// Called for each lease expiry the consumer survives, and once when it
/// dies of a crash. Never called for a graceful leave.
pub type CrashHandler = Box<dyn FnMut(&CrashReport) + Send + 'static>;

/// What happens to a consumer that lets an acknowledgement lease expire.
/// Either way, the delivery is taken back and routed to another consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeasePolicy {
    /// It is declared crashed: everything it holds is re-routed.
    #[default]
    Crash,
    /// It is kept, but given nothing new until it answers something.
    Quarantine,
}

/// Everything needed to register a consumer.
pub struct ConsumerSpec {
    pub(crate) id: String,
    pub(crate) max_in_flight: u32,
    pub(crate) buffer_depth: u32,
    pub(crate) tags: Vec<String>,
    pub(crate) mode: DeliveryMode,
    pub(crate) crash_handler: Option<CrashHandler>,
    pub(crate) ack_lease: Option<Duration>,
}

impl ConsumerSpec {
    /// A push-mode consumer whose `handler` answers each delivery.
    pub fn push(id: impl Into<String>, handler: impl DeliveryHandler) -> Self {
        Self::with_mode(id, DeliveryMode::Push(Box::new(handler)))
    }

    /// A pull-mode consumer: a host thread waits for deliveries.
    pub fn pull(id: impl Into<String>) -> Self {
        Self::with_mode(id, DeliveryMode::Pull)
    }

    fn with_mode(id: impl Into<String>, mode: DeliveryMode) -> Self {
        Self {
            id: id.into(),
            max_in_flight: 64,
            buffer_depth: 0,
            tags: Vec::new(),
            mode,
            crash_handler: None,
            ack_lease: None,
        }
    }

    /// Most deliveries held at once (default 64, at least 1). Enforced: a
    /// slot is reserved atomically with the choice of this consumer.
    #[must_use]
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Initial buffer depth reported to routing functions.
    #[must_use]
    pub fn buffer_depth(mut self, depth: u32) -> Self {
        self.buffer_depth = depth;
        self
    }

    /// Affinity tags.
    #[must_use]
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// This consumer's acknowledgement lease, overriding the group's.
    #[must_use]
    pub fn ack_lease(mut self, lease: Duration) -> Self {
        self.ack_lease = Some(lease);
        self
    }

    /// Told about lease expiries and about its crash (see [`CrashHandler`]).
    #[must_use]
    pub fn on_crash(mut self, handler: impl FnMut(&CrashReport) + Send + 'static) -> Self {
        self.crash_handler = Some(Box::new(handler));
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.id.is_empty() {
            return Err(Error::InvalidArgument("consumer id is empty".into()));
        }
        if self.max_in_flight == 0 {
            return Err(Error::InvalidArgument(
                "max_in_flight must be at least 1".into(),
            ));
        }
        validate_tags(&self.tags)?;
        if self.ack_lease == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument("ack_lease must be positive".into()));
        }
        Ok(())
    }
}

fn validate_tags(tags: &[String]) -> Result<()> {
    if tags.iter().any(String::is_empty) {
        return Err(Error::InvalidArgument(
            "affinity tags must not be empty".into(),
        ));
    }
    Ok(())
}

/// A handle to a registered consumer. Cloning it shares the same consumer.
#[derive(Clone)]
pub struct Consumer {
    pub(crate) core: Arc<ConsumerCore>,
}

impl Consumer {
    fn check(&self) -> Result<()> {
        if self.core.services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    fn check_alive(&self) -> Result<()> {
        self.check()?;
        if !self.core.is_alive() {
            return Err(Error::ConsumerGone(self.core.id.to_string()));
        }
        Ok(())
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.core.id
    }

    /// Its current state view.
    #[must_use]
    pub fn state(&self) -> ConsumerState {
        self.core.view()
    }

    /// Reserved or held deliveries now. Errors: `ShutDown`.
    pub fn in_flight(&self) -> Result<u32> {
        self.check()?;
        Ok(self.core.in_flight())
    }

    /// Whether it is alive (registered, not crashed, not left, runtime up).
    #[must_use]
    pub fn is_alive(&self) -> bool {
        self.core.is_alive() && !self.core.services.is_shut_down()
    }

    /// Whether it is paused after an expired lease (see [`LeasePolicy::Quarantine`]).
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.core.is_paused()
    }

    /// The pid of its beamr process.
    #[must_use]
    pub fn pid(&self) -> u64 {
        self.core.pid()
    }

    /// Update the buffer depth and/or tags seen by routing functions.
    /// Errors: `InvalidArgument`, `ShutDown`, `ConsumerGone`.
    pub fn update(&self, buffer_depth: Option<u32>, tags: Option<Vec<String>>) -> Result<()> {
        if let Some(tags) = &tags {
            validate_tags(tags)?;
        }
        self.check_alive()?;
        self.core.update(buffer_depth, tags.map(Arc::from));
        Ok(())
    }

    /// Change its `max_in_flight` (at least 1). Lowering it below what it
    /// holds takes nothing away; it gets nothing new until below the limit.
    pub fn set_max_in_flight(&self, max: u32) -> Result<()> {
        if max == 0 {
            return Err(Error::InvalidArgument(
                "max_in_flight must be at least 1".into(),
            ));
        }
        self.check_alive()?;
        self.core.set_max_in_flight(max);
        Ok(())
    }

    /// Declare it crashed: it dies now, on this thread (its crash handler
    /// runs here), every delivery it held is re-routed, and its process is
    /// killed. Errors: `ShutDown`, `ConsumerGone` if it is already gone.
    pub fn crash(&self, reason: &str) -> Result<()> {
        self.check()?;
        self.core.die_now(Death::Crash {
            kind: CrashKind::Declared,
            reason: reason.to_owned(),
            answered: None,
        })
    }

    /// Fault injection: crash at the next delivery it receives, before its
    /// handler sees it (the message is neither redelivered-flagged nor
    /// counted against). Errors: `ShutDown`, `ConsumerGone`.
    pub fn crash_at_next_delivery(&self) -> Result<()> {
        self.check_alive()?;
        self.core
            .crash_at_next_delivery
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Leave the group: no new deliveries; what it held is re-routed (not
    /// counted as a crash); a delivery whose callback is running finishes
    /// and its answer counts. Its crash handler is released uncalled.
    /// Errors: `ShutDown`, `ConsumerGone` if it is already gone.
    pub fn leave(&self) -> Result<()> {
        self.check()?;
        self.core.die_now(Death::Leave)
    }

    /// Pull mode: wait up to `timeout` for the next delivery. Answer it with
    /// [`Delivery::token`]. Errors: `TimedOut`; `ConsumerGone` once the
    /// consumer crashed or left; `ShutDown`; `InvalidArgument` for a
    /// push-mode consumer.
    pub fn next_delivery(&self, timeout: Duration) -> Result<Delivery> {
        if !self.core.pull_mode {
            return Err(Error::InvalidArgument(
                "next_delivery on a push-mode consumer".into(),
            ));
        }
        self.check()?;
        self.core.next_ready(timeout)
    }

    /// Deliveries acknowledged by it so far.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.core
            .counters
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.core.id)
            .field("pid", &self.core.pid())
            .finish()
    }
}
