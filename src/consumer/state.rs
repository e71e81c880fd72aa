//! What a routing function sees of a consumer.

use std::sync::Arc;

/// A point-in-time view of one consumer, as handed to routing functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// The consumer's id, unique in its group.
    pub id: Arc<str>,
    /// Deliveries forwarded to it and not yet acknowledged or re-routed.
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
