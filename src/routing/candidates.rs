//! The consumers one routing evaluation may choose from: a membership
//! snapshot minus the consumers already excluded for this message.

use std::sync::Arc;

use crate::routing::ring::Members;
use crate::routing::view::{Candidate, ConsumerState};

pub(crate) struct Candidates<'a, C> {
    members: &'a Members<C>,
    excluded: &'a [u64],
}

impl<'a, C: Candidate> Candidates<'a, C> {
    pub(crate) fn new(members: &'a Members<C>, excluded: &'a [u64]) -> Self {
        Self { members, excluded }
    }

    fn eligible(&self, consumer: &C) -> bool {
        !self.excluded.contains(&consumer.uid())
    }

    /// Eligible consumers, in group (id) order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Arc<C>> + '_ {
        self.members.iter().filter(move |c| self.eligible(c))
    }

    /// The eligible consumer with this id.
    pub(crate) fn find(&self, id: &str) -> Option<&'a Arc<C>> {
        self.members.find(id).filter(|c| self.eligible(c))
    }

    /// Eligible consumers in ring order from `key` (sticky-key routing).
    pub(crate) fn ring_walk(&self, key: &[u8]) -> impl Iterator<Item = &'a Arc<C>> + '_ {
        let members = self.members;
        members
            .ring()
            .walk(key)
            .map(move |index| &members[index])
            .filter(move |c| self.eligible(c))
    }

    /// Views of the eligible consumers, for a host routing function.
    pub(crate) fn views(&self) -> Vec<ConsumerState> {
        self.iter().map(|c| c.view()).collect()
    }
}
