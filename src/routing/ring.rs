//! The consistent-hash ring behind the sticky-key router: each consumer owns
//! a few points on a 64-bit circle; a key belongs to the first point at or
//! after its hash. A key keeps its consumer while that consumer lives, and
//! when membership changes only the keys of the consumers that came or went
//! move. Lookup is a binary search, so it does not grow with the group the
//! way scanning every consumer per message would.

use std::sync::{Arc, OnceLock};

use crate::consumer::inner::ConsumerInner;

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
    fn build(members: &[Arc<ConsumerInner>]) -> Self {
        let mut points: Vec<(u64, u32)> = members
            .iter()
            .enumerate()
            .flat_map(|(index, consumer)| {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                (0..POINTS_PER_CONSUMER).map(move |r| (point(&consumer.id, r), index))
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
pub(crate) struct Membership {
    pub(crate) list: Vec<Arc<ConsumerInner>>,
    ring: OnceLock<Ring>,
}

impl Membership {
    pub(crate) fn new(list: Vec<Arc<ConsumerInner>>) -> Self {
        Self {
            list,
            ring: OnceLock::new(),
        }
    }

    pub(crate) fn ring(&self) -> &Ring {
        self.ring.get_or_init(|| Ring::build(&self.list))
    }
}

impl std::ops::Deref for Membership {
    type Target = [Arc<ConsumerInner>];

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}
