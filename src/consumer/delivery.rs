//! What a consumer receives, and how it answers.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::message::Message;

/// A delivery handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Processed: the dispatch completes as delivered to this consumer.
    Ack,
    /// This consumer is broken: it dies, and every delivery it holds is
    /// re-routed to another consumer. This delivery counts against the
    /// message (it died handling it).
    Crash(String),
    /// The host will answer later through [`Delivery::token`].
    Defer,
    /// Hand the message back without dying: it is routed to another
    /// consumer (never this one again), no sooner than the delay. Counts as
    /// a failed attempt of the message, not as a crash.
    Release(Duration),
}

/// How the holder of a delivery answers it: implemented by the consumer.
pub(crate) trait Answer: Send + Sync {
    /// The consumer's id.
    fn consumer_id(&self) -> &str;
    fn ack(&self, delivery_id: u64) -> Result<()>;
    fn crash_for(&self, delivery_id: u64, reason: &str) -> Result<()>;
    fn release(&self, delivery_id: u64, delay: Duration) -> Result<()>;
    fn extend_lease(&self, delivery_id: u64, by: Duration) -> Result<()>;
    /// Whether `delivery_id` is still held (not answered, not taken back).
    fn holds(&self, delivery_id: u64) -> bool;
    /// The holder's own callback answered crash for it (a remote worker's
    /// crash verdict): like `crash_for`, reported as a crash verdict.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    fn crash_verdict(&self, delivery_id: u64, reason: &str) -> Result<()> {
        self.crash_for(delivery_id, reason)
    }
    /// The holder began work on it (a remote worker's `started`, `started`
    /// true): dying from now on counts as dying handling it; or handed it
    /// on without working on it (`deferred`, false). `StaleDelivery` when
    /// it is no longer held.
    fn started(&self, delivery_id: u64, _started: bool) -> Result<()> {
        if self.holds(delivery_id) {
            Ok(())
        } else {
            Err(crate::error::Error::StaleDelivery(delivery_id))
        }
    }
}

/// One delivery of a message to a consumer (one attempt of one dispatch).
#[derive(Clone)]
pub struct Delivery {
    pub(crate) consumer: Arc<dyn Answer>,
    pub(crate) delivery_id: u64,
    pub(crate) dispatch_id: u64,
    pub(crate) attempt: u32,
    pub(crate) redelivered: bool,
    pub(crate) crashed_handling: u32,
    pub(crate) crashed_holding: u32,
    pub(crate) message: Arc<Message>,
    /// The message's stable id when it came from a remote host.
    pub(crate) message_id: Option<Arc<str>>,
}

impl Delivery {
    /// The message's stable id: the same for every attempt of the message,
    /// whichever consumer or worker incarnation receives it. A message of
    /// a durable group has its store's id (`<store id>-<sequence number>`,
    /// 16 hex digits, a dash, decimal), the same across host restarts on
    /// that store. Otherwise a delivery received by a remote worker has the
    /// id its host gave it (`<host incarnation>-<dispatch id>`, unique
    /// across host restarts), and a local delivery's is its dispatch id in
    /// decimal (unique in its runtime).
    #[must_use]
    pub fn message_id(&self) -> std::borrow::Cow<'_, str> {
        match &self.message_id {
            Some(id) => std::borrow::Cow::Borrowed(id),
            None => std::borrow::Cow::Owned(self.dispatch_id.to_string()),
        }
    }

    /// The message (fields and payload).
    #[must_use]
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, shared.
    #[must_use]
    pub fn message_arc(&self) -> &Arc<Message> {
        &self.message
    }

    /// The id of the dispatch this delivery belongs to (stable across attempts).
    #[must_use]
    pub fn dispatch_id(&self) -> u64 {
        self.dispatch_id
    }

    /// The id of this attempt (unique per runtime).
    #[must_use]
    pub fn delivery_id(&self) -> u64 {
        self.delivery_id
    }

    /// 1 for the first forward of the message, then 2, 3…
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether an earlier attempt of this message may have been processed
    /// (it reached a consumer's callback or pull thread): be idempotent.
    #[must_use]
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// Earlier attempts whose consumer died *handling* this message (its
    /// callback was running with it, or it answered crash for it).
    #[must_use]
    pub fn crashed_handling(&self) -> u32 {
        self.crashed_handling
    }

    /// Earlier attempts whose consumer died while merely *holding* it.
    #[must_use]
    pub fn crashed_holding(&self) -> u32 {
        self.crashed_holding
    }

    /// The id of the consumer receiving it.
    #[must_use]
    pub fn consumer_id(&self) -> &str {
        self.consumer.consumer_id()
    }

    /// A token to answer this delivery later, from any thread.
    #[must_use]
    pub fn token(&self) -> DeliveryToken {
        DeliveryToken {
            consumer: Arc::clone(&self.consumer),
            delivery_id: self.delivery_id,
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("consumer", &self.consumer.consumer_id())
            .field("delivery_id", &self.delivery_id)
            .field("dispatch_id", &self.dispatch_id)
            .field("attempt", &self.attempt)
            .field("redelivered", &self.redelivered)
            .finish_non_exhaustive()
    }
}

/// Answers a delivery from any thread. An answer for an attempt that was
/// already answered, re-routed or expired returns
/// [`crate::Error::StaleDelivery`] and changes nothing; after the runtime
/// shut down every answer returns [`crate::Error::ShutDown`].
#[derive(Clone)]
pub struct DeliveryToken {
    consumer: Arc<dyn Answer>,
    delivery_id: u64,
}

impl DeliveryToken {
    /// Acknowledge: the dispatch completes as delivered to this consumer.
    pub fn ack(&self) -> Result<()> {
        self.consumer.ack(self.delivery_id)
    }

    /// Declare the consumer crashed: it dies and all it holds is re-routed;
    /// this delivery counts against the message.
    pub fn crash(&self, reason: &str) -> Result<()> {
        self.consumer.crash_for(self.delivery_id, reason)
    }

    /// Hand the message back without dying (see [`Verdict::Release`]).
    pub fn release(&self, delay: Duration) -> Result<()> {
        self.consumer.release(self.delivery_id, delay)
    }

    /// Keep the delivery for `by` more from now (when the group or the
    /// consumer has an acknowledgement lease).
    pub fn extend_lease(&self, by: Duration) -> Result<()> {
        self.consumer.extend_lease(self.delivery_id, by)
    }

    /// The attempt this token answers.
    #[must_use]
    pub fn delivery_id(&self) -> u64 {
        self.delivery_id
    }

    /// Whether the attempt is still held (not answered, re-routed or
    /// withdrawn).
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.consumer.holds(self.delivery_id)
    }

    /// Answer crash as the holder's own verdict (a remote worker's callback
    /// answered crash): reported with [`crate::CrashKind::Verdict`].
    #[cfg(feature = "remote")]
    pub(crate) fn crash_as_verdict(&self, reason: &str) -> Result<()> {
        self.consumer.crash_verdict(self.delivery_id, reason)
    }

    /// Work on this delivery begins: if its consumer dies before answering
    /// it, that counts as dying *handling* it (against the message's
    /// maximum attempts), as when a push callback is running, not as merely
    /// holding it. For pull-mode consumers and deferred deliveries, whose
    /// work happens outside a callback. On a remote worker it sends
    /// `started` to the host. `StaleDelivery` when it is no longer held.
    pub fn started(&self) -> Result<()> {
        self.consumer.started(self.delivery_id, true)
    }

    /// Mark it started (`true`) or merely held again (see `Answer::started`).
    #[cfg(feature = "remote")]
    pub(crate) fn set_started(&self, started: bool) -> Result<()> {
        self.consumer.started(self.delivery_id, started)
    }
}

impl std::fmt::Debug for DeliveryToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryToken")
            .field("consumer", &self.consumer.consumer_id())
            .field("delivery_id", &self.delivery_id)
            .finish()
    }
}

/// Runs on the consumer's beamr process for each delivery, one at a time.
pub trait DeliveryHandler: Send + 'static {
    /// Process `delivery` and answer.
    fn deliver(&mut self, delivery: &Delivery) -> Verdict;
}

impl<F> DeliveryHandler for F
where
    F: FnMut(&Delivery) -> Verdict + Send + 'static,
{
    fn deliver(&mut self, delivery: &Delivery) -> Verdict {
        self(delivery)
    }
}
