//! Placement through a host routing function: a job on the routing lane
//! that takes the group's waiting messages oldest first, one evaluation at
//! a time, with views taken just before each call. The choice is then
//! reserved; a choice that lost a race (the views said the consumer had
//! room) is evaluated again at once, a consumer the function chose without
//! room, or no choice, leaves the message waiting for the next change.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::consumer::core::ConsumerCore;
use crate::dispatch::conversation::Conversation;
use crate::dispatch::dispatcher::Dispatcher;
use crate::error::{DispatchError, RoutingError};
use crate::routing::candidates::Candidates;
use crate::routing::function::Kind;
use crate::routing::ring::Members;
use crate::routing::supervisor::{Evaluation, RouteJob};
use crate::routing::view::{Candidate, ConsumerState};

struct Current {
    conv: Arc<Conversation>,
    members: Arc<Members<ConsumerCore>>,
    excluded: Vec<u64>,
    views: Arc<[ConsumerState]>,
}

pub(crate) struct HostPlacement {
    dispatcher: Weak<Dispatcher>,
    current: Mutex<Option<Current>>,
}

impl HostPlacement {
    pub(crate) fn new(dispatcher: Weak<Dispatcher>) -> Self {
        Self {
            dispatcher,
            current: Mutex::new(None),
        }
    }
}

impl RouteJob for HostPlacement {
    fn next(&self) -> Option<Evaluation> {
        let dispatcher = self.dispatcher.upgrade()?;
        let function = dispatcher.slot.current();
        let mut room = dispatcher.room.lock();
        if !matches!(function.inner.kind, Kind::Host(_)) || dispatcher.services.is_shut_down() {
            room.lane_busy = false;
            return None;
        }
        loop {
            let has_room = dispatcher.free.load(std::sync::atomic::Ordering::Acquire) > 0;
            let cursor = room.cursor;
            let index = room.queue.partition_point(|c| c.id <= cursor);
            if !has_room || index >= room.queue.len() {
                if has_room && room.rescan {
                    room.rescan = false;
                    room.cursor = 0;
                    continue;
                }
                room.lane_busy = false;
                return None;
            }
            let Some(conv) = room.queue.remove(index) else {
                room.lane_busy = false;
                return None;
            };
            let members = dispatcher.snapshot();
            let excluded = conv.excluded();
            let views: Arc<[ConsumerState]> = Candidates::new(&members, &excluded).views().into();
            if views.is_empty() {
                room.cursor = conv.id;
                room.insert(conv);
                continue;
            }
            room.evaluating += 1;
            let message = Arc::clone(conv.message());
            *self.current.lock() = Some(Current {
                conv,
                members,
                excluded,
                views: Arc::clone(&views),
            });
            return Some(Evaluation {
                function,
                message,
                views,
            });
        }
    }

    fn finish(&self, result: Result<Option<String>, RoutingError>) {
        let Some(current) = self.current.lock().take() else {
            return;
        };
        let Some(dispatcher) = self.dispatcher.upgrade() else {
            return;
        };
        let Current {
            conv,
            members,
            excluded,
            views,
        } = current;
        let selected = match result {
            Err(error) => {
                self.settled(&dispatcher, None);
                conv.fail(DispatchError::Routing(error));
                return;
            }
            Ok(selected) => selected,
        };
        let Some(id) = selected else {
            self.settled(&dispatcher, Some((conv, true)));
            return;
        };
        let Some(consumer) = Candidates::new(&members, &excluded).find(&id).cloned() else {
            self.settled(&dispatcher, None);
            conv.fail(DispatchError::UnknownConsumerSelected(id));
            return;
        };
        if consumer.try_reserve() {
            self.settled(&dispatcher, None);
            conv.forward(&consumer);
            return;
        }
        // The views said it had room: another placement got there first,
        // evaluate again now. Otherwise the function chose a full consumer:
        // wait for the next change.
        let raced = views
            .iter()
            .any(|view| *view.id == *consumer.id() && view.has_capacity());
        self.settled(&dispatcher, Some((conv, !raced)));
    }
}

impl HostPlacement {
    /// The evaluation is over; put the message back unless it was placed or
    /// failed (`declined`: move the cursor past it).
    fn settled(&self, dispatcher: &Arc<Dispatcher>, back: Option<(Arc<Conversation>, bool)>) {
        let mut room = dispatcher.room.lock();
        room.evaluating = room.evaluating.saturating_sub(1);
        if let Some((conv, declined)) = back {
            if !conv.is_done() {
                if declined {
                    room.cursor = room.cursor.max(conv.id);
                }
                room.insert(conv);
            }
        }
        dispatcher.note_depth(&room);
    }
}
