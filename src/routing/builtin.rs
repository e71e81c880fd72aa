//! Built-in routing functions. Each respects `max in-flight`: a consumer
//! without capacity is never selected (and the reservation taken with the
//! choice enforces it in any case).

use std::sync::Arc;

use crate::message::{FieldValue, Message};
use crate::routing::candidates::Candidates;
use crate::routing::view::Candidate;

/// The built-in routers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// The first consumer in id order that has capacity.
    FirstWithCapacity,
    /// The consumer with the fewest deliveries in flight (ties: first in id order).
    LeastLoaded,
    /// Among consumers carrying the tag named by the message's text field
    /// `field`, the least loaded one. No such field or tag holder: none.
    Affinity {
        /// The message field that names the tag.
        field: String,
    },
    /// Consistent hashing (a hash ring) on the message's field `field`
    /// (text, integer or boolean): a key keeps its consumer while that
    /// consumer lives and has capacity, and moves minimally when membership
    /// changes (a full consumer's keys go to the next one on the ring
    /// meanwhile). No such field: none.
    StickyKey {
        /// The message field that holds the key.
        field: String,
    },
}

impl Builtin {
    pub(crate) fn identity(&self) -> String {
        match self {
            Self::FirstWithCapacity => "liminal.builtin.first_with_capacity".into(),
            Self::LeastLoaded => "liminal.builtin.least_loaded".into(),
            Self::Affinity { field } => format!("liminal.builtin.affinity:{field}"),
            Self::StickyKey { field } => format!("liminal.builtin.sticky_key:{field}"),
        }
    }

    /// Whether "none" from this router means nobody eligible has capacity
    /// (so no later message without exclusions can be placed either).
    pub(crate) fn capacity_only(&self) -> bool {
        matches!(self, Self::FirstWithCapacity | Self::LeastLoaded)
    }

    pub(crate) fn select<'a, C: Candidate>(
        &self,
        message: &Message,
        candidates: &Candidates<'a, C>,
    ) -> Option<&'a Arc<C>> {
        match self {
            Self::FirstWithCapacity => candidates.iter().find(|c| c.has_capacity()),
            Self::LeastLoaded => least_loaded(candidates.iter()),
            Self::Affinity { field } => {
                let tag = message.get(field)?.as_text()?;
                least_loaded(candidates.iter().filter(|c| c.has_tag(tag)))
            }
            Self::StickyKey { field } => {
                let key = key_bytes(message.get(field)?)?;
                candidates.ring_walk(&key).find(|c| c.has_capacity())
            }
        }
    }
}

fn least_loaded<'a, C: Candidate>(
    consumers: impl Iterator<Item = &'a Arc<C>>,
) -> Option<&'a Arc<C>> {
    let mut best: Option<(&'a Arc<C>, u32)> = None;
    for consumer in consumers {
        if !consumer.has_capacity() {
            continue;
        }
        let load = consumer.in_flight();
        if load == 0 {
            return Some(consumer);
        }
        if best.is_none_or(|(_, best_load)| load < best_load) {
            best = Some((consumer, load));
        }
    }
    best.map(|(consumer, _)| consumer)
}

fn key_bytes(value: &FieldValue) -> Option<Vec<u8>> {
    match value {
        FieldValue::Text(text) => Some(text.as_bytes().to_vec()),
        FieldValue::Int(value) => Some(value.to_string().into_bytes()),
        FieldValue::Bool(value) => Some(value.to_string().into_bytes()),
        FieldValue::Double(_) | FieldValue::Null => None,
    }
}
