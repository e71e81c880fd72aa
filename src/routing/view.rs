//! What routing sees of a consumer: the public [`ConsumerState`] view handed
//! to host routing functions, and the [`Candidate`] trait the built-ins read
//! live state through. Routing never touches a consumer's internals.

use std::sync::Arc;

/// A point-in-time view of one consumer, as handed to routing functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// The consumer's id, unique in its group.
    pub id: Arc<str>,
    /// Deliveries reserved for or held by it, not yet answered.
    pub in_flight: u32,
    /// The most deliveries it may hold at once.
    pub max_in_flight: u32,
    /// The host-reported depth of its own buffer.
    pub buffer_depth: u32,
    /// Its affinity tags.
    pub tags: Arc<[String]>,
}

impl ConsumerState {
    /// `max_in_flight - in_flight`, saturating at zero.
    #[must_use]
    pub fn available_capacity(&self) -> u32 {
        self.max_in_flight.saturating_sub(self.in_flight)
    }

    /// Whether it can take one more delivery.
    #[must_use]
    pub fn has_capacity(&self) -> bool {
        self.available_capacity() > 0
    }

    /// Whether it carries `tag`.
    #[must_use]
    pub fn has_affinity(&self, tag: &str) -> bool {
        self.tags.iter().any(|own| own == tag)
    }
}

/// A consumer as routing reads it: live figures, no internals.
pub(crate) trait Candidate: Send + Sync {
    /// Unique per runtime (an id may be reused by a later consumer).
    fn uid(&self) -> u64;
    /// The id, unique in its group.
    fn id(&self) -> &str;
    /// Reserved or held deliveries now.
    fn in_flight(&self) -> u32;
    /// Whether one more delivery may be reserved now.
    fn has_capacity(&self) -> bool;
    /// Whether it carries `tag`.
    fn has_tag(&self, tag: &str) -> bool;
    /// A copy for host routing functions.
    fn view(&self) -> ConsumerState;
}
