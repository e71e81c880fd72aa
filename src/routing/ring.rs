//! The consistent-hash ring behind the sticky-key router: each consumer owns
//! a few points on a 64-bit circle; a key belongs to the first point at or
//! after its hash. A key keeps its consumer while that consumer lives, and
//! when membership changes only the keys of the consumers that came or went
//! move. Lookup is a binary search, so it does not grow with the group the
//! way scanning every consumer per message would.

use std::sync::{Arc, OnceLock};

use crate::routing::view::Candidate;

/// Points per consumer: enough to spread keys evenly over small groups.
const POINTS_PER_CONSUMER: u32 = 16;

pub(crate) struct Ring {
    /// (point, index into the membership list), sorted by point.
    points: Vec<(u64, u32)>,
}

fn point(id: &str, replica: u32) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(id.as_bytes());
    hasher.update(&replica.to_le_bytes());
    hasher.digest()
}

impl Ring {
    fn build<'a>(ids: impl Iterator<Item = &'a str>) -> Self {
        let mut points: Vec<(u64, u32)> = ids
            .enumerate()
            .flat_map(|(index, id)| {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                (0..POINTS_PER_CONSUMER).map(move |r| (point(id, r), index))
            })
            .collect();
        points.sort_unstable();
        Self { points }
    }

    /// Indexes of consumers in ring order starting at `key`'s point (each
    /// consumer may appear more than once).
    pub(crate) fn walk(&self, key: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let hash = xxhash_rust::xxh3::xxh3_64(key);
        let start = self.points.partition_point(|(p, _)| *p < hash);
        let (before, from) = self.points.split_at(start.min(self.points.len()));
        from.iter()
            .chain(before.iter())
            .map(|(_, index)| *index as usize)
    }
}

/// One immutable membership snapshot: consumers in id order, and the ring
/// built from them the first time a sticky-key dispatch needs it.
pub(crate) struct Members<C> {
    list: Vec<Arc<C>>,
    ring: OnceLock<Ring>,
}

impl<C: Candidate> Members<C> {
    pub(crate) fn new(list: Vec<Arc<C>>) -> Self {
        Self {
            list,
            ring: OnceLock::new(),
        }
    }

    pub(crate) fn ring(&self) -> &Ring {
        self.ring
            .get_or_init(|| Ring::build(self.list.iter().map(|c| c.id())))
    }

    /// The member with this id.
    pub(crate) fn find(&self, id: &str) -> Option<&Arc<C>> {
        let index = self.list.binary_search_by(|c| c.id().cmp(id)).ok()?;
        self.list.get(index)
    }

    /// A copy with `consumer` inserted in id order.
    pub(crate) fn with(&self, consumer: Arc<C>) -> Self {
        let mut next = self.list.clone();
        let position = next
            .binary_search_by(|c| c.id().cmp(consumer.id()))
            .unwrap_or_else(|position| position);
        next.insert(position, consumer);
        Self::new(next)
    }

    /// A copy without the consumer `uid` (None when it was not a member).
    pub(crate) fn without(&self, uid: u64) -> Option<Self> {
        if !self.list.iter().any(|c| c.uid() == uid) {
            return None;
        }
        Some(Self::new(
            self.list
                .iter()
                .filter(|c| c.uid() != uid)
                .cloned()
                .collect(),
        ))
    }
}

impl<C> std::ops::Deref for Members<C> {
    type Target = [Arc<C>];

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}
