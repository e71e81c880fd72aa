//! Placement for one group: choosing a consumer with the routing function
//! over live state and taking its slot in the same step.
//!
//! Every accepted message enters the waiting room. A *pump* places what it
//! can: with a built-in router inline on the calling thread; with a host
//! routing function through a job on the routing lane, one evaluation at a
//! time over views taken just before the call, so a choice is never made on
//! stale figures. Then the slot is reserved: a choice that lost a race (the
//! views said the consumer had room) is evaluated again at once; a consumer
//! chosen without room, or no choice, leaves the message waiting for the
//! next change. Pumps are combined: a thread that finds one running leaves
//! its request to it and returns. A pump runs whenever a message arrives
//! or capacity appears (an answer, a join, a larger `max_in_flight`, a tag
//! change), and stops early once no member has a free slot.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::base::scope::in_callback;
use crate::consumer::attempt::ConsumerHome;
use crate::consumer::core::ConsumerCore;
use crate::dispatch::conversation::Conversation;
use crate::dispatch::options::Overflow;
use crate::dispatch::room::Room;
use crate::error::{DispatchError, Error, Result, RoutingError};
use crate::ordering::index::deepest;
use crate::ordering::sticky::StickyKeys;
use crate::routing::builtin::Builtin;
use crate::routing::candidates::Candidates;
use crate::routing::function::{Kind, RoutingFunction};
use crate::routing::ring::Members;
use crate::routing::slot::RoutingSlot;
use crate::routing::supervisor::{Evaluation, RouteJob, RoutingSupervisor};
use crate::routing::view::{Candidate, ConsumerState};
use crate::stats::{OrderingStats, WaitingKeys};

/// How often a placement whose reservation lost a race is retried at once.
const RESERVE_RETRIES: u32 = 3;

/// Why a new message was not admitted to the waiting room.
pub(crate) enum Refused {
    /// The room is full (counted as rejected).
    Full,
    /// Something else (shutdown, draining) said no.
    Other(Error),
}

pub(crate) struct Placement {
    pub(crate) slot: RoutingSlot,
    routing: Arc<RoutingSupervisor>,
    members: RwLock<Arc<Members<ConsumerCore>>>,
    /// Free slots over the members (see `ConsumerCore::reconcile`).
    free: AtomicI64,
    room: Mutex<Room>,
    room_space: Condvar,
    depth: AtomicUsize,
    pump_requested: AtomicBool,
    pumping: AtomicBool,
    myself: Weak<Placement>,
}

impl Placement {
    /// `sticky`: ordered keys prefer the consumer they last went to.
    pub(crate) fn new(
        function: RoutingFunction,
        routing: Arc<RoutingSupervisor>,
        sticky: bool,
    ) -> Arc<Self> {
        Arc::new_cyclic(|myself| Self {
            slot: RoutingSlot::new(function),
            routing,
            members: RwLock::new(Arc::new(Members::new(Vec::new()))),
            free: AtomicI64::new(0),
            room: Mutex::new(Room {
                sticky: StickyKeys::new(sticky),
                ..Room::default()
            }),
            room_space: Condvar::new(),
            depth: AtomicUsize::new(0),
            pump_requested: AtomicBool::new(false),
            pumping: AtomicBool::new(false),
            myself: myself.clone(),
        })
    }

    // ---- membership --------------------------------------------------------

    pub(crate) fn snapshot(&self) -> Arc<Members<ConsumerCore>> {
        Arc::clone(&self.members.read())
    }

    pub(crate) fn find(&self, id: &str) -> Option<Arc<ConsumerCore>> {
        self.snapshot().find(id).cloned()
    }

    pub(crate) fn views(&self) -> Vec<ConsumerState> {
        self.snapshot().iter().map(|c| c.view()).collect()
    }

    /// Add a member (its capacity is announced by the caller afterwards).
    pub(crate) fn add_member(&self, consumer: &Arc<ConsumerCore>) {
        let mut members = self.members.write();
        *members = Arc::new(members.with(Arc::clone(consumer)));
    }

    /// Forget every member (shutdown); returns them.
    pub(crate) fn clear_members(&self) -> Arc<Members<ConsumerCore>> {
        std::mem::replace(
            &mut *self.members.write(),
            Arc::new(Members::new(Vec::new())),
        )
    }

    // ---- the waiting room ---------------------------------------------------

    /// Admit a new message by the overflow policy, then place what can be
    /// placed. `track` runs under the room's lock once admission is certain
    /// (it registers the dispatch, or refuses it). Returns the messages
    /// dropped to make room.
    pub(crate) fn admit(
        &self,
        conv: &Arc<Conversation>,
        capacity: usize,
        overflow: Overflow,
        accepting: impl Fn() -> Result<()>,
        track: impl FnOnce() -> Result<()>,
    ) -> std::result::Result<Vec<Arc<Conversation>>, Refused> {
        let mut dropped = Vec::new();
        {
            let mut room = self.room.lock();
            let mut block_until = None;
            while room.depth() >= capacity {
                match overflow {
                    Overflow::Reject => return Err(Refused::Full),
                    Overflow::DropOldest => match room.pop_oldest() {
                        Some(oldest) => dropped.push(oldest),
                        None => return Err(Refused::Full),
                    },
                    Overflow::Block(timeout) => {
                        if in_callback() {
                            return Err(Refused::Full);
                        }
                        let until = *block_until.get_or_insert_with(|| Instant::now() + timeout);
                        if self.room_space.wait_until(&mut room, until).timed_out()
                            && room.depth() >= capacity
                        {
                            return Err(Refused::Full);
                        }
                        accepting().map_err(Refused::Other)?;
                    }
                }
            }
            track().map_err(Refused::Other)?;
            room.admit(Arc::clone(conv));
            self.note_depth(&room);
        }
        self.pump();
        Ok(dropped)
    }

    /// Let a held key move on; returns whether it was held.
    pub(crate) fn release_key(&self, key: &str) -> bool {
        let released = {
            let mut room = self.room.lock();
            let released = room.release_key(key);
            self.note_depth(&room);
            released
        };
        if released {
            self.pump();
        }
        released
    }

    /// Messages its group's store recovered wait again, in the order
    /// given (always let in, as a re-route is: they were accepted before).
    pub(crate) fn readmit(&self, convs: Vec<Arc<Conversation>>) {
        {
            let mut room = self.room.lock();
            for conv in convs {
                room.admit(conv);
            }
            self.note_depth(&room);
        }
        self.pump();
    }

    /// A message given back (or refused by a consumer that just died) waits
    /// again, in its old place. Once the room is closed it is handed back
    /// with the error to complete it with.
    pub(crate) fn requeue(
        &self,
        conv: Arc<Conversation>,
    ) -> std::result::Result<(), (Arc<Conversation>, DispatchError)> {
        {
            let mut room = self.room.lock();
            if let Some(error) = &room.closed {
                return Err((conv, error.clone()));
            }
            room.insert(conv);
            self.note_depth(&room);
        }
        self.pump();
        Ok(())
    }

    /// Take a waiting message out of the room (its deadline passed).
    pub(crate) fn withdraw(&self, id: u64) {
        let mut room = self.room.lock();
        if room.remove(id).is_some() {
            self.note_depth(&room);
        }
    }

    /// Close the room for good and empty it (the group closed, or the
    /// runtime shuts down): a message given back later completes with
    /// `error` (the first close's) instead of waiting here.
    pub(crate) fn close(&self, error: DispatchError) -> Vec<Arc<Conversation>> {
        let mut room = self.room.lock();
        room.closed.get_or_insert(error);
        let waiting = room.drain();
        self.note_depth(&room);
        waiting
    }

    /// `conv` completed: the next message of its key, if any, may be routed.
    pub(crate) fn completed(&self, conv: &Conversation, hold: bool) {
        if conv.message().ordering_key().is_none() {
            return;
        }
        let promoted = {
            let mut room = self.room.lock();
            let promoted = room.completed(conv, hold);
            self.note_depth(&room);
            promoted
        };
        if promoted {
            self.pump();
        }
    }

    /// Its ordered keys now.
    pub(crate) fn ordering_stats(&self) -> OrderingStats {
        self.room.lock().keys.stats(Instant::now())
    }

    /// At most `max` of its waiting keys, deepest first.
    pub(crate) fn waiting_keys(&self, max: usize) -> WaitingKeys {
        let keys = self.room.lock().keys.waiting_keys(Instant::now());
        let total = keys.len();
        WaitingKeys {
            keys: deepest(keys, max),
            total,
        }
    }

    pub(crate) fn delayed_started(&self) {
        let mut room = self.room.lock();
        room.delayed += 1;
        self.note_depth(&room);
    }

    pub(crate) fn delayed_done(&self) {
        let mut room = self.room.lock();
        room.delayed = room.delayed.saturating_sub(1);
        self.note_depth(&room);
    }

    /// Messages waiting now (in the room, released with a delay, or being routed).
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    fn note_depth(&self, room: &Room) {
        self.depth.store(room.depth(), Ordering::Release);
        self.room_space.notify_all();
    }

    /// Wake dispatches blocked on a full room (to see shutdown or draining).
    pub(crate) fn wake_blocked(&self) {
        let _room = self.room.lock();
        self.room_space.notify_all();
    }

    // ---- placement ----------------------------------------------------------

    /// Place what can be placed. Combined: if a pump is running (on any
    /// thread, this one included), it picks up this request.
    pub(crate) fn pump(&self) {
        let Some(me) = self.myself.upgrade() else {
            return;
        };
        self.pump_requested.store(true, Ordering::SeqCst);
        while !self.pumping.swap(true, Ordering::SeqCst) {
            while self.pump_requested.swap(false, Ordering::SeqCst) {
                me.pump_once();
            }
            self.pumping.store(false, Ordering::SeqCst);
            if !self.pump_requested.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    fn pump_once(self: &Arc<Self>) {
        let function = self.slot.current();
        match &function.inner.kind {
            Kind::Builtin(builtin) => self.place_waiting(builtin),
            Kind::Host(_) => self.start_host_placement(),
        }
    }

    fn place_waiting(&self, builtin: &Builtin) {
        let mut placed = Vec::new();
        {
            let mut room = self.room.lock();
            if room.queue.is_empty() {
                return;
            }
            let members = self.snapshot();
            let mut index = 0;
            let mut retries = 0;
            while index < room.queue.len() && self.free.load(Ordering::Acquire) > 0 {
                let conv = Arc::clone(&room.queue[index]);
                let excluded = conv.excluded();
                let candidates = Candidates::new(&members, &excluded);
                if let Some(consumer) = sticky_choice(&room, &conv, &candidates) {
                    room.queue.remove(index);
                    placed.push((conv, consumer));
                    retries = 0;
                    continue;
                }
                match builtin.select(conv.message(), &candidates) {
                    Some(consumer) if consumer.try_reserve() => {
                        room.queue.remove(index);
                        room.sticky
                            .took(conv.message().ordering_key_arc(), &consumer.id);
                        placed.push((conv, Arc::clone(consumer)));
                        retries = 0;
                    }
                    Some(_) if retries < RESERVE_RETRIES => retries += 1,
                    Some(_) => {
                        index += 1;
                        retries = 0;
                        self.pump_requested.store(true, Ordering::SeqCst);
                    }
                    None if builtin.capacity_only() && excluded.is_empty() => break,
                    None => index += 1,
                }
            }
            if !placed.is_empty() {
                self.note_depth(&room);
            }
        }
        for (conv, consumer) in placed {
            conv.forward(&consumer);
        }
    }

    fn start_host_placement(self: &Arc<Self>) {
        {
            let mut room = self.room.lock();
            if room.queue.is_empty() {
                return;
            }
            if room.lane_busy {
                room.rescan = true;
                return;
            }
            if self.free.load(Ordering::Acquire) <= 0 {
                return;
            }
            room.lane_busy = true;
            room.rescan = false;
            room.cursor = 0;
        }
        self.routing.submit(Arc::new(HostPlacement {
            placement: Arc::downgrade(self),
            current: Mutex::new(None),
        }));
    }
}

impl ConsumerHome for Placement {
    fn capacity_changed(&self, delta: i64) {
        self.free.fetch_add(delta, Ordering::AcqRel);
        if delta >= 0 && self.depth() > 0 {
            self.pump();
        }
    }

    fn departed(&self, consumer_uid: u64) {
        let mut members = self.members.write();
        if let Some(next) = members.without(consumer_uid) {
            *members = Arc::new(next);
        }
    }
}

/// The consumer `conv`'s key last went to, reserved for it, when the group
/// has sticky keys and that consumer is a candidate with room.
fn sticky_choice(
    room: &Room,
    conv: &Conversation,
    candidates: &Candidates<'_, ConsumerCore>,
) -> Option<Arc<ConsumerCore>> {
    let id = room.sticky.preferred(conv.message().ordering_key())?;
    let consumer = candidates.find(id)?;
    consumer.try_reserve().then(|| Arc::clone(consumer))
}

/// The evaluation a host placement job has out.
struct Current {
    conv: Arc<Conversation>,
    members: Arc<Members<ConsumerCore>>,
    excluded: Vec<u64>,
    views: Arc<[ConsumerState]>,
}

/// Placement through a host routing function: a job on the routing lane
/// that takes the group's waiting messages oldest first.
struct HostPlacement {
    placement: Weak<Placement>,
    current: Mutex<Option<Current>>,
}

impl RouteJob for HostPlacement {
    fn next(&self) -> Option<Evaluation> {
        let placement = self.placement.upgrade()?;
        let function = placement.slot.current();
        let mut room = placement.room.lock();
        if !matches!(function.inner.kind, Kind::Host(_)) {
            // A built-in was deployed while this job ran: its pump found
            // the room short of what this job had out, so pump again now
            // for what came back (it would otherwise wait for the next
            // change).
            room.lane_busy = false;
            let waiting = !room.queue.is_empty();
            drop(room);
            if waiting {
                placement.pump();
            }
            return None;
        }
        loop {
            let has_room = placement.free.load(Ordering::Acquire) > 0;
            let next = if has_room {
                room.take_after_cursor()
            } else {
                None
            };
            let Some(conv) = next else {
                if has_room && room.rescan {
                    room.rescan = false;
                    room.cursor = 0;
                    continue;
                }
                room.lane_busy = false;
                return None;
            };
            let members = placement.snapshot();
            let excluded = conv.excluded();
            if let Some(consumer) =
                sticky_choice(&room, &conv, &Candidates::new(&members, &excluded))
            {
                placement.note_depth(&room);
                drop(room);
                conv.forward(&consumer);
                room = placement.room.lock();
                continue;
            }
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

    fn finish(&self, result: std::result::Result<Option<String>, RoutingError>) {
        let Some(current) = self.current.lock().take() else {
            return;
        };
        let Some(placement) = self.placement.upgrade() else {
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
                self.settled(&placement, None);
                conv.fail(DispatchError::Routing(error));
                return;
            }
            Ok(selected) => selected,
        };
        let Some(id) = selected else {
            self.settled(&placement, Some((conv, true)));
            return;
        };
        let Some(consumer) = Candidates::new(&members, &excluded).find(&id).cloned() else {
            self.settled(&placement, None);
            conv.fail(DispatchError::UnknownConsumerSelected(id));
            return;
        };
        if consumer.try_reserve() {
            placement
                .room
                .lock()
                .sticky
                .took(conv.message().ordering_key_arc(), &consumer.id);
            self.settled(&placement, None);
            conv.forward(&consumer);
            return;
        }
        // The views said it had room: another placement got there first,
        // evaluate again now. Otherwise the function chose a full consumer:
        // wait for the next change.
        let raced = views
            .iter()
            .any(|view| *view.id == *consumer.id() && view.has_capacity());
        self.settled(&placement, Some((conv, !raced)));
    }
}

impl HostPlacement {
    /// The evaluation is over; put the message back unless it was placed or
    /// failed (`declined`: move the cursor past it).
    fn settled(&self, placement: &Placement, back: Option<(Arc<Conversation>, bool)>) {
        let mut room = placement.room.lock();
        room.evaluating = room.evaluating.saturating_sub(1);
        let mut refused = None;
        if let Some((conv, declined)) = back {
            if let Some(error) = &room.closed {
                refused = Some((conv, error.clone()));
            } else if !conv.is_done() {
                if declined {
                    room.cursor = room.cursor.max(conv.id);
                }
                room.insert(conv);
            }
        }
        placement.note_depth(&room);
        drop(room);
        // Closed while it was evaluated: it completes here (a no-op when the
        // close already completed it).
        if let Some((conv, error)) = refused {
            conv.fail(error);
        }
    }
}
