//! The index of a waiting room by ordering key.
//!
//! Per key: the acceptance sequence number of its head (the one message of
//! the key that is out: routable, being routed, held by a consumer or
//! released with a delay) and the messages waiting behind it, sorted by
//! sequence number. The head itself is not kept here (whoever holds it does);
//! a key is forgotten as soon as its head completes with nothing behind it.
//!
//! Generic over what is kept for a waiting message, so it can be checked on
//! its own (see the state-machine test).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::stats::{OrderingStats, WaitingKey};

struct KeyQueue<T> {
    /// Sequence number of the key's head.
    head: u64,
    /// When the head became the head.
    head_since: Instant,
    /// Waiting behind the head, by sequence number.
    behind: VecDeque<(u64, T)>,
    /// The head failed and the key is held: nothing moves until the host
    /// releases it.
    held: bool,
}

pub(crate) struct KeyIndex<T> {
    keys: HashMap<Arc<str>, KeyQueue<T>>,
    /// The next acceptance sequence number (the first is 1).
    next_seq: u64,
    /// Messages waiting behind a head, over all keys.
    parked: usize,
}

impl<T> Default for KeyIndex<T> {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
            next_seq: 1,
            parked: 0,
        }
    }
}

impl<T> KeyIndex<T> {
    /// A new acceptance sequence number, greater than any seen.
    pub(crate) fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Issue sequence numbers after `seq` from now on (a recovered group:
    /// the highest its store ever issued, completed messages included, so
    /// no number is issued twice).
    pub(crate) fn resume_after(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
    }

    /// Accept message `seq` of `key`. Returns it back when it is its key's
    /// head now (route it); otherwise it waits behind the head, in sequence
    /// order. A sequence number given from outside (a recovered message)
    /// raises the counter past it, so re-accepting recovered messages in
    /// sequence order before new ones rebuilds every key's order.
    pub(crate) fn accept(&mut self, key: &Arc<str>, seq: u64, item: T, now: Instant) -> Option<T> {
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
        match self.keys.get_mut(&**key) {
            None => {
                self.keys.insert(
                    Arc::clone(key),
                    KeyQueue {
                        head: seq,
                        head_since: now,
                        behind: VecDeque::new(),
                        held: false,
                    },
                );
                Some(item)
            }
            Some(queue) => {
                let at = queue.behind.partition_point(|(s, _)| *s < seq);
                queue.behind.insert(at, (seq, item));
                self.parked += 1;
                None
            }
        }
    }

    /// Message `seq` of `key` completed (however it ended). If it was the
    /// head, the next one becomes the head and is returned (route it); if it
    /// waited behind the head, it leaves the queue. Unknown: nothing happens.
    pub(crate) fn complete(&mut self, key: &str, seq: u64, now: Instant) -> Option<T> {
        let queue = self.keys.get_mut(key)?;
        if queue.head != seq {
            if let Ok(at) = queue.behind.binary_search_by_key(&seq, |(s, _)| *s) {
                queue.behind.remove(at);
                self.parked -= 1;
            }
            return None;
        }
        match queue.behind.pop_front() {
            Some((next, item)) => {
                queue.head = next;
                queue.head_since = now;
                self.parked -= 1;
                Some(item)
            }
            None => {
                self.keys.remove(key);
                self.shrink();
                None
            }
        }
    }

    /// Message `seq` of `key` failed: if it is the head, hold the key (its
    /// next message waits until [`KeyIndex::release`]) and return true.
    pub(crate) fn hold(&mut self, key: &str, seq: u64, now: Instant) -> bool {
        match self.keys.get_mut(key) {
            Some(queue) if queue.head == seq && !queue.held => {
                queue.held = true;
                queue.head_since = now;
                true
            }
            _ => false,
        }
    }

    /// Let a held key move on: its next message becomes the head and is
    /// returned (route it); a key with nothing waiting is forgotten. `Err`
    /// when the key is not held.
    pub(crate) fn release(&mut self, key: &str, now: Instant) -> Result<Option<T>, ()> {
        match self.keys.get(key) {
            Some(queue) if queue.held => {}
            _ => return Err(()),
        }
        let head = self.keys.get(key).map_or(0, |q| q.head);
        if let Some(queue) = self.keys.get_mut(key) {
            queue.held = false;
        }
        Ok(self.complete(key, head, now))
    }

    /// The table keeps the capacity of its busiest moment: give most of it
    /// back once the keys are few again.
    fn shrink(&mut self) {
        let capacity = self.keys.capacity();
        if capacity > 1024 && self.keys.len() < capacity / 8 {
            self.keys.shrink_to(capacity / 4);
        }
    }

    /// Take out the oldest message waiting behind a head (the waiting room
    /// overflows). Its later completion finds nothing to do here.
    pub(crate) fn pop_oldest_parked(&mut self) -> Option<T> {
        let oldest = self
            .keys
            .iter()
            .filter_map(|(key, queue)| queue.behind.front().map(|(seq, _)| (*seq, key)))
            .min()
            .map(|(_, key)| Arc::clone(key))?;
        let queue = self.keys.get_mut(&oldest)?;
        let (_, item) = queue.behind.pop_front()?;
        self.parked -= 1;
        Some(item)
    }

    /// Forget every key; returns what waited behind heads.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.parked = 0;
        let keys = std::mem::take(&mut self.keys);
        keys.into_values()
            .flat_map(|queue| queue.behind.into_iter().map(|(_, item)| item))
            .collect()
    }

    /// Messages waiting behind a head.
    pub(crate) fn parked(&self) -> usize {
        self.parked
    }

    /// Keys with a head out (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The figures for statistics.
    pub(crate) fn stats(&self, now: Instant) -> OrderingStats {
        let mut stats = OrderingStats {
            keys: self.keys.len(),
            keys_held: self.keys.values().filter(|q| q.held).count(),
            ..OrderingStats::default()
        };
        for queue in self.keys.values().filter(|q| !q.behind.is_empty()) {
            stats.keys_waiting += 1;
            stats.longest_key_queue = stats.longest_key_queue.max(queue.behind.len() + 1);
            stats.oldest_head_age = stats
                .oldest_head_age
                .max(now.saturating_duration_since(queue.head_since));
        }
        stats
    }

    /// The keys with messages waiting behind their head, unsorted.
    pub(crate) fn waiting_keys(&self, now: Instant) -> Vec<WaitingKey> {
        self.keys
            .iter()
            .filter(|(_, queue)| !queue.behind.is_empty())
            .map(|(key, queue)| WaitingKey {
                key: Arc::clone(key),
                depth: queue.behind.len() + 1,
                head_age: now.saturating_duration_since(queue.head_since),
            })
            .collect()
    }

    /// The head's sequence number of `key` (tests).
    #[cfg(test)]
    pub(crate) fn head(&self, key: &str) -> Option<u64> {
        self.keys.get(key).map(|q| q.head)
    }

    /// The sequence numbers waiting behind `key`'s head (tests).
    #[cfg(test)]
    pub(crate) fn behind(&self, key: &str) -> Vec<u64> {
        self.keys
            .get(key)
            .map(|q| q.behind.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default()
    }
}

/// The deepest keys first (ties: the longest-held head first), at most `max`.
pub(crate) fn deepest(mut keys: Vec<WaitingKey>, max: usize) -> Vec<WaitingKey> {
    let order = |a: &WaitingKey, b: &WaitingKey| {
        b.depth
            .cmp(&a.depth)
            .then(b.head_age.cmp(&a.head_age))
            .then_with(|| a.key.cmp(&b.key))
    };
    if max < keys.len() {
        if max == 0 {
            return Vec::new();
        }
        keys.select_nth_unstable_by(max - 1, order);
        keys.truncate(max);
    }
    keys.sort_unstable_by(order);
    keys
}
