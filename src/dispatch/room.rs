//! The waiting room of one group: the messages waiting for a consumer,
//! oldest first (a re-route keeps its place), plus the bookkeeping of the
//! host-routing job that walks it.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::dispatch::conversation::Conversation;
use crate::error::DispatchError;

#[derive(Default)]
pub(crate) struct Room {
    /// Waiting messages, ordered by dispatch id (acceptance order).
    pub(crate) queue: VecDeque<Arc<Conversation>>,
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
    /// Messages waiting: queued, delayed, or being routed.
    pub(crate) fn depth(&self) -> usize {
        self.queue.len() + self.delayed + self.evaluating
    }

    /// Insert in dispatch-id order.
    pub(crate) fn insert(&mut self, conv: Arc<Conversation>) {
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
