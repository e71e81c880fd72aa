//! What a consumer receives, and how it answers.

use std::sync::Arc;

use crate::consumer::inner::ConsumerInner;
use crate::error::Result;
use crate::message::Message;

/// A delivery handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Processed: the dispatch completes as delivered to this consumer.
    Ack,
    /// This consumer is broken: its process exits, and every delivery it
    /// holds is re-routed to another consumer.
    Crash(String),
    /// The host will answer later through [`Delivery::token`].
    Defer,
}

/// One delivery of a message to a consumer (one attempt of one dispatch).
#[derive(Clone)]
pub struct Delivery {
    pub(crate) consumer: Arc<ConsumerInner>,
    pub(crate) delivery_id: u64,
    pub(crate) dispatch_id: u64,
    pub(crate) attempt: u32,
    pub(crate) redelivered: bool,
    pub(crate) message: Arc<Message>,
}

impl Delivery {
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

    /// Whether an earlier attempt of this message may have been processed.
    #[must_use]
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The id of the consumer receiving it.
    #[must_use]
    pub fn consumer_id(&self) -> &str {
        &self.consumer.id
    }

    /// A token to acknowledge or crash this delivery later, from any thread.
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
            .field("consumer", &self.consumer.id)
            .field("delivery_id", &self.delivery_id)
            .field("dispatch_id", &self.dispatch_id)
            .field("attempt", &self.attempt)
            .field("redelivered", &self.redelivered)
            .finish_non_exhaustive()
    }
}

/// Completes a deferred delivery from any thread. A completion for an attempt
/// that was already completed or re-routed returns [`crate::Error::StaleDelivery`].
#[derive(Clone)]
pub struct DeliveryToken {
    consumer: Arc<ConsumerInner>,
    delivery_id: u64,
}

impl DeliveryToken {
    /// Acknowledge: the dispatch completes as delivered to this consumer.
    pub fn ack(&self) -> Result<()> {
        self.consumer.ack(self.delivery_id)
    }

    /// Declare the consumer crashed: it exits and all it holds is re-routed.
    pub fn crash(&self, reason: &str) -> Result<()> {
        if !self.consumer.holds(self.delivery_id) {
            return Err(crate::Error::StaleDelivery(self.delivery_id));
        }
        self.consumer.declare_crashed(reason)
    }

    /// The attempt this token completes.
    #[must_use]
    pub fn delivery_id(&self) -> u64 {
        self.delivery_id
    }
}

impl std::fmt::Debug for DeliveryToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryToken")
            .field("consumer", &self.consumer.id)
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

/// What the crash handler is told when its consumer dies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// The consumer's id.
    pub consumer_id: String,
    /// Why it died.
    pub reason: String,
}

/// Called once, when the consumer's process exits abnormally.
pub type CrashHandler = Box<dyn FnOnce(&CrashReport) + Send + 'static>;
