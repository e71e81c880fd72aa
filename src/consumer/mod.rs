//! Consumers: long-lived beamr processes that stand for the host's workers.

pub(crate) mod delivery;
pub(crate) mod inner;
pub(crate) mod process;
pub(crate) mod state;

use std::sync::Arc;
use std::time::Duration;

pub use delivery::{CrashHandler, CrashReport, Delivery, DeliveryHandler, DeliveryToken, Verdict};
pub use state::ConsumerState;

use crate::error::{Error, Result};
use inner::ConsumerInner;

/// How a consumer receives its deliveries.
pub enum DeliveryMode {
    /// The handler runs on the consumer's process for each delivery.
    Push(Box<dyn DeliveryHandler>),
    /// A host thread calls [`Consumer::next_delivery`] and answers through the token.
    Pull,
}

/// Everything needed to register a consumer.
pub struct ConsumerSpec {
    pub(crate) id: String,
    pub(crate) max_in_flight: u32,
    pub(crate) buffer_depth: u32,
    pub(crate) tags: Vec<String>,
    pub(crate) mode: DeliveryMode,
    pub(crate) crash_handler: Option<CrashHandler>,
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
        }
    }

    /// Most deliveries held at once (default 64, must be at least 1).
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

    /// Called once with the consumer id and the reason when it crashes.
    #[must_use]
    pub fn on_crash(mut self, handler: impl FnOnce(&CrashReport) + Send + 'static) -> Self {
        self.crash_handler = Some(Box::new(handler));
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.id.is_empty() {
            return Err(Error::InvalidArgument("consumer id is empty".into()));
        }
        if self.max_in_flight == 0 {
            return Err(Error::InvalidArgument(
                "max in-flight must be at least 1".into(),
            ));
        }
        if self.tags.iter().any(String::is_empty) {
            return Err(Error::InvalidArgument(
                "affinity tags must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// A handle to a registered consumer. Cloning it shares the same consumer.
#[derive(Clone)]
pub struct Consumer {
    pub(crate) inner: Arc<ConsumerInner>,
}

impl Consumer {
    /// Its id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Its current state view.
    #[must_use]
    pub fn state(&self) -> ConsumerState {
        self.inner.state()
    }

    /// Whether its process is still alive.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    /// The pid of its beamr process.
    #[must_use]
    pub fn pid(&self) -> u64 {
        self.inner.pid()
    }

    /// Update the buffer depth and/or tags seen by routing functions.
    pub fn update(&self, buffer_depth: Option<u32>, tags: Option<Vec<String>>) -> Result<()> {
        if let Some(tags) = &tags {
            if tags.iter().any(String::is_empty) {
                return Err(Error::InvalidArgument(
                    "affinity tags must not be empty".into(),
                ));
            }
        }
        self.inner.update(buffer_depth, tags.map(Arc::from));
        Ok(())
    }

    /// Declare it crashed: its process is killed, the crash handler is told
    /// `reason`, and every delivery it held is re-routed elsewhere.
    pub fn crash(&self, reason: &str) -> Result<()> {
        self.inner.declare_crashed(reason)
    }

    /// Fault injection: crash at the next delivery it receives, before its
    /// handler sees it.
    pub fn crash_at_next_delivery(&self) {
        self.inner
            .crash_at_next_delivery
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Leave the group: no new deliveries; what it held is re-routed (flagged
    /// as redelivered, not counted as a crash). Its crash handler is dropped
    /// without being called.
    pub fn leave(&self) -> Result<()> {
        self.inner.drop_crash_handler();
        self.inner.stop()
    }

    /// Pull mode: wait up to `timeout` for the next delivery. Answer it with
    /// [`Delivery::token`]. Errors: `TimedOut`, `ShutDown` once the consumer
    /// is dead, `InvalidArgument` for a push-mode consumer.
    pub fn next_delivery(&self, timeout: Duration) -> Result<Delivery> {
        if !self.inner.pull_mode {
            return Err(Error::InvalidArgument(
                "next_delivery on a push-mode consumer".into(),
            ));
        }
        self.inner.next_ready(timeout)
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.inner.id)
            .field("pid", &self.inner.pid())
            .finish()
    }
}
