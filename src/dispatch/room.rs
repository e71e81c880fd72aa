//! The waiting room of one group: the messages waiting for a consumer,
//! oldest first (a re-route keeps its place), plus the bookkeeping of the
//! host-routing job that walks it. Messages of an ordered key wait in the
//! key index until they are their key's head; only heads are routable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::dispatch::conversation::Conversation;
use crate::error::DispatchError;
use crate::ordering::index::KeyIndex;
use crate::ordering::sticky::StickyKeys;

#[derive(Default)]
pub(crate) struct Room {
    /// Routable messages, ordered by dispatch id (acceptance order).
    pub(crate) queue: VecDeque<Arc<Conversation>>,
    /// Ordered keys: their heads, and the messages waiting behind them.
    pub(crate) keys: KeyIndex<Arc<Conversation>>,
    /// Sticky keys: the consumer each key last went to.
    pub(crate) sticky: StickyKeys,
    /// Released with a delay, waiting for their timer.
    pub(crate) delayed: usize,
    /// Taken out for a host routing evaluation.
    pub(crate) evaluating: usize,
    /// A host placement job is on the routing lane.
    pub(crate) lane_busy: bool,
    /// Something changed while the job ran: it starts over from the oldest.
    pub(crate) rescan: bool,
    /// The host placement job resumes after this dispatch id.
    pub(crate) cursor: u64,
    /// Closed for good (the group closed, or the runtime shuts down): what
    /// a message that would wait here again completes with instead. Set
    /// under the room's lock when the room is emptied, so no message can
    /// slip in after it (a conversation left in the room would hold its
    /// group alive through a reference cycle, and with it the group's host
    /// callbacks).
    pub(crate) closed: Option<DispatchError>,
}

impl Room {
    /// Messages waiting: queued, behind their key's head, delayed, or
    /// being routed.
    pub(crate) fn depth(&self) -> usize {
        self.queue.len() + self.keys.parked() + self.delayed + self.evaluating
    }

    /// A new message: it gets its acceptance sequence number (unless its
    /// group's store gave it one), then waits in the routable queue, or
    /// behind its key's head.
    pub(crate) fn admit(&mut self, conv: Arc<Conversation>) {
        let seq = match conv.seq() {
            0 => self.keys.next_seq(),
            given => {
                self.keys.resume_after(given);
                given
            }
        };
        conv.set_seq(seq);
        let routable = match conv.message().ordering_key_arc() {
            Some(key) => {
                let key = Arc::clone(key);
                self.keys.accept(&key, seq, conv, Instant::now())
            }
            None => Some(conv),
        };
        if let Some(conv) = routable {
            self.insert(conv);
        }
    }

    /// `conv` completed: if it was its key's head, the next message of the
    /// key becomes routable (returns whether one did), unless `hold` (it
    /// failed and the group holds failed keys): then the key is held.
    pub(crate) fn completed(&mut self, conv: &Conversation, hold: bool) -> bool {
        let Some(key) = conv.message().ordering_key() else {
            return false;
        };
        if hold && self.keys.hold(key, conv.seq(), Instant::now()) {
            return false;
        }
        match self.keys.complete(key, conv.seq(), Instant::now()) {
            Some(next) => {
                self.insert(next);
                true
            }
            None => false,
        }
    }

    /// Let a held key move on (see [`KeyIndex::release`]); returns whether
    /// it was held.
    pub(crate) fn release_key(&mut self, key: &str) -> bool {
        match self.keys.release(key, Instant::now()) {
            Ok(Some(next)) => {
                self.insert(next);
                true
            }
            Ok(None) => true,
            Err(()) => false,
        }
    }

    /// The oldest routable message, or, when none is, the oldest waiting
    /// behind a key's head (overflow: drop the oldest).
    pub(crate) fn pop_oldest(&mut self) -> Option<Arc<Conversation>> {
        self.queue
            .pop_front()
            .or_else(|| self.keys.pop_oldest_parked())
    }

    /// Empty it (close): everything routable or waiting behind a key.
    pub(crate) fn drain(&mut self) -> Vec<Arc<Conversation>> {
        let mut waiting: Vec<Arc<Conversation>> = self.queue.drain(..).collect();
        waiting.extend(self.keys.drain());
        waiting
    }

    /// Insert in dispatch-id order.
    pub(crate) fn insert(&mut self, conv: Arc<Conversation>) {
        if self.queue.back().is_none_or(|last| last.id < conv.id) {
            self.queue.push_back(conv);
            return;
        }
        let position = self.queue.partition_point(|c| c.id < conv.id);
        self.queue.insert(position, conv);
    }

    /// Take dispatch `id` out, if it waits here.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Arc<Conversation>> {
        let position = self.queue.partition_point(|c| c.id < id);
        if self.queue.get(position).is_some_and(|c| c.id == id) {
            self.queue.remove(position)
        } else {
            None
        }
    }

    /// The first message after the host job's cursor.
    pub(crate) fn take_after_cursor(&mut self) -> Option<Arc<Conversation>> {
        let cursor = self.cursor;
        let index = self.queue.partition_point(|c| c.id <= cursor);
        self.queue.remove(index)
    }
}
