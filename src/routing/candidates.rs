//! The consumers a routing evaluation may choose from: one group snapshot
//! minus the consumers already excluded for this message.

use std::sync::Arc;

use crate::consumer::inner::ConsumerInner;
use crate::consumer::ConsumerState;
use crate::routing::ring::Membership;

pub(crate) struct Candidates {
    members: Arc<Membership>,
    excluded: Vec<u64>,
}

impl Candidates {
    pub(crate) fn new(members: Arc<Membership>, excluded: Vec<u64>) -> Self {
        Self { members, excluded }
    }

    /// Eligible consumers, in group (id) order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<ConsumerInner>> {
        self.members
            .iter()
            .filter(move |consumer| !self.excluded.contains(&consumer.pid()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The eligible consumer with this id.
    pub(crate) fn find(&self, id: &str) -> Option<&Arc<ConsumerInner>> {
        let index = self
            .members
            .binary_search_by(|consumer| (*consumer.id).cmp(id))
            .ok()?;
        let consumer = &self.members[index];
        (!self.excluded.contains(&consumer.pid())).then_some(consumer)
    }

    /// Eligible consumers in ring order from `key` (sticky-key routing).
    pub(crate) fn ring_walk<'a>(
        &'a self,
        key: &[u8],
    ) -> impl Iterator<Item = &'a Arc<ConsumerInner>> + 'a {
        self.members
            .ring()
            .walk(key)
            .map(move |index| &self.members[index])
            .filter(move |consumer| !self.excluded.contains(&consumer.pid()))
    }

    pub(crate) fn views(&self) -> Vec<ConsumerState> {
        self.iter().map(|consumer| consumer.state()).collect()
    }
}
