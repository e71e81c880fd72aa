//! The engine of one group: its membership, its routing slot, its waiting
//! room, and placement — choosing a consumer with the routing function over
//! live state and taking the slot in the same step.
//!
//! Every accepted message enters the waiting room, ordered by acceptance
//! (re-routes keep their place: oldest first). A *pump* places what it can:
//! for a built-in router inline on the calling thread, for a host routing
//! function through a job on the routing lane (one evaluation at a time,
//! over views taken just before the call, so a choice is never made on
//! stale figures). Pumps are combined: a thread that finds one running
//! leaves its request to the running one and returns. A pump runs whenever
//! a message arrives or capacity appears (an answer, a join, a larger
//! `max_in_flight`, a tag change), and stops early once the group has no
//! free slot.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::base::oneshot::{self, RecvError};
use crate::base::scope::{call_host, in_callback};
use crate::base::Services;
use crate::consumer::attempt::ConsumerHome;
use crate::consumer::core::ConsumerCore;
use crate::dispatch::conversation::Conversation;
use crate::dispatch::host_routing::HostPlacement;
use crate::dispatch::options::{DispatchOptions, GroupOptions, Overflow};
use crate::dispatch::Completion;
use crate::error::DispatchFailure;
use crate::error::{DispatchError, Error, Result};
use crate::message::Message;
use crate::outcome::{Outcome, Trail};
use crate::routing::builtin::Builtin;
use crate::routing::candidates::Candidates;
use crate::routing::function::{Kind, RoutingFunction};
use crate::routing::ring::Members;
use crate::routing::slot::RoutingSlot;
use crate::routing::supervisor::RoutingSupervisor;
use crate::routing::view::{Candidate, ConsumerState};
use crate::stats::GroupStats;

/// Called with every message that ends without a delivery (except at shutdown).
pub type DeadLetterHandler = Arc<dyn Fn(&Arc<Message>, &DispatchFailure) + Send + Sync + 'static>;

const OPEN: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

/// How often a placement whose reservation lost a race is retried at once.
const RESERVE_RETRIES: u32 = 3;

pub(crate) struct Room {
    /// Waiting messages, ordered by dispatch id (acceptance order).
    pub(crate) queue: VecDeque<Arc<Conversation>>,
    /// Released with a delay, waiting for their timer.
    delayed: usize,
    /// Taken out for a host routing evaluation.
    pub(crate) evaluating: usize,
    /// A host placement job is on the routing lane.
    pub(crate) lane_busy: bool,
    /// Something changed while the job ran: it starts over from the oldest.
    pub(crate) rescan: bool,
    /// The host placement job resumes after this dispatch id.
    pub(crate) cursor: u64,
}

impl Room {
    fn depth(&self) -> usize {
        self.queue.len() + self.delayed + self.evaluating
    }

    /// Insert in dispatch-id order (a re-route keeps its place).
    pub(crate) fn insert(&mut self, conv: Arc<Conversation>) {
        let position = self.queue.partition_point(|c| c.id < conv.id);
        self.queue.insert(position, conv);
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Conversation>> {
        let position = self.queue.partition_point(|c| c.id < id);
        if self.queue.get(position).is_some_and(|c| c.id == id) {
            self.queue.remove(position)
        } else {
            None
        }
    }
}

/// Counters of one group.
#[derive(Default)]
pub(crate) struct GroupCounters {
    pub(crate) rejected: std::sync::atomic::AtomicU64,
    pub(crate) dropped: std::sync::atomic::AtomicU64,
}

pub(crate) struct Dispatcher {
    pub(crate) name: String,
    pub(crate) services: Arc<Services>,
    pub(crate) routing: Arc<RoutingSupervisor>,
    pub(crate) options: GroupOptions,
    pub(crate) slot: RoutingSlot,
    members: RwLock<Arc<Members<ConsumerCore>>>,
    registration: Mutex<()>,
    /// Free slots over the members (see `ConsumerCore::reconcile`).
    pub(crate) free: AtomicI64,
    pub(crate) room: Mutex<Room>,
    room_space: Condvar,
    depth: AtomicUsize,
    pump_requested: AtomicBool,
    pumping: AtomicBool,
    convs: Mutex<HashMap<u64, Arc<Conversation>>>,
    drained: Condvar,
    accepting: AtomicU8,
    dead_letter: RwLock<Option<DeadLetterHandler>>,
    pub(crate) counters: GroupCounters,
    myself: Weak<Dispatcher>,
}

impl Dispatcher {
    pub(crate) fn new(
        services: Arc<Services>,
        routing: Arc<RoutingSupervisor>,
        function: RoutingFunction,
        options: GroupOptions,
    ) -> Arc<Self> {
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| format!("group-{}", services.next_id()));
        Arc::new_cyclic(|myself| Self {
            name,
            services,
            routing,
            options,
            slot: RoutingSlot::new(function),
            members: RwLock::new(Arc::new(Members::new(Vec::new()))),
            registration: Mutex::new(()),
            free: AtomicI64::new(0),
            room: Mutex::new(Room {
                queue: VecDeque::new(),
                delayed: 0,
                evaluating: 0,
                lane_busy: false,
                rescan: false,
                cursor: 0,
            }),
            room_space: Condvar::new(),
            depth: AtomicUsize::new(0),
            pump_requested: AtomicBool::new(false),
            pumping: AtomicBool::new(false),
            convs: Mutex::new(HashMap::new()),
            drained: Condvar::new(),
            accepting: AtomicU8::new(OPEN),
            dead_letter: RwLock::new(None),
            counters: GroupCounters::default(),
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

    /// Add a consumer built by `build` (which spawns its process), unless
    /// its id is taken. Holds the registration lock across, so two
    /// registrations of one id cannot both succeed.
    pub(crate) fn join(
        &self,
        id: &str,
        build: impl FnOnce() -> Result<Arc<ConsumerCore>>,
    ) -> Result<Arc<ConsumerCore>> {
        let _registering = self.registration.lock();
        if self.accepting.load(Ordering::Acquire) == CLOSED {
            return Err(Error::ShutDown);
        }
        if self.find(id).is_some() {
            return Err(Error::DuplicateConsumer(id.to_owned()));
        }
        let consumer = build()?;
        {
            let mut members = self.members.write();
            *members = Arc::new(members.with(Arc::clone(&consumer)));
        }
        if consumer.is_alive() {
            consumer.announce();
        } else {
            self.departed(consumer.uid());
        }
        Ok(consumer)
    }

    // ---- accepting ---------------------------------------------------------

    fn check_accepting(&self) -> Result<()> {
        match self.accepting.load(Ordering::Acquire) {
            OPEN => Ok(()),
            _ => Err(Error::Draining),
        }
    }

    /// Accept a dispatch: admit it to the waiting room (by the overflow
    /// policy), then place what can be placed.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        message: Arc<Message>,
        options: &DispatchOptions,
        completion: Completion,
    ) -> Result<Arc<Conversation>> {
        options.validate()?;
        if self.services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        self.check_accepting()?;
        let conv = Conversation::new(
            self.services.next_id(),
            message,
            Arc::clone(self),
            completion,
        );
        let mut dropped = Vec::new();
        {
            let mut room = self.room.lock();
            let mut block_until = None;
            while room.depth() >= self.options.waiting_room {
                match self.options.overflow {
                    Overflow::Reject => return Err(self.reject()),
                    Overflow::DropOldest => match room.queue.pop_front() {
                        Some(oldest) => {
                            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                            dropped.push(oldest);
                        }
                        None => return Err(self.reject()),
                    },
                    Overflow::Block(timeout) => {
                        if in_callback() {
                            return Err(self.reject());
                        }
                        let until = *block_until.get_or_insert_with(|| Instant::now() + timeout);
                        if self.room_space.wait_until(&mut room, until).timed_out()
                            && room.depth() >= self.options.waiting_room
                        {
                            return Err(self.reject());
                        }
                        if self.services.is_shut_down() {
                            return Err(Error::ShutDown);
                        }
                        self.check_accepting()?;
                    }
                }
            }
            {
                let mut convs = self.convs.lock();
                if self.services.is_shut_down() {
                    return Err(Error::ShutDown);
                }
                convs.insert(conv.id, Arc::clone(&conv));
            }
            room.insert(Arc::clone(&conv));
            self.depth.store(room.depth(), Ordering::Release);
        }
        self.services.metrics.record_dispatched();
        if let Some(ttl) = options.deadline.or(self.options.deadline) {
            conv.arm_deadline(Instant::now() + ttl);
        }
        for oldest in dropped {
            oldest.fail(DispatchError::Dropped);
        }
        self.pump();
        Ok(conv)
    }

    fn reject(&self) -> Error {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        self.services.metrics.record_rejected();
        Error::QueueFull
    }

    /// Dispatch and wait for the outcome (up to `options.timeout`).
    pub(crate) fn dispatch_blocking(
        self: &Arc<Self>,
        message: Arc<Message>,
        options: &DispatchOptions,
    ) -> Result<Outcome> {
        if in_callback() {
            return Err(Error::WouldDeadlock(
                "blocking dispatch from inside a callback; use the asynchronous dispatch".into(),
            ));
        }
        let (sender, receiver) = oneshot::channel();
        let conv = self.dispatch(
            message,
            options,
            Box::new(move |result| sender.send(result)),
        )?;
        let deadline = options.timeout.map(|timeout| Instant::now() + timeout);
        let spin = self.services.blocking_spin();
        let result = match receiver.recv(spin, deadline) {
            Err(RecvError::TimedOut) => {
                conv.expire(DispatchError::TimedOut);
                receiver.recv(Duration::ZERO, None)
            }
            other => other,
        };
        drop(conv);
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(failure)) => Err(Error::Dispatch(Box::new(failure))),
            Err(_) => Err(Error::Dispatch(Box::new(DispatchFailure {
                error: DispatchError::Conversation("completion dropped without a result".into()),
                trail: Trail::default(),
            }))),
        }
    }

    // ---- the waiting room ---------------------------------------------------

    /// A message given back (or refused by a consumer that just died) waits
    /// again, in its old place.
    pub(crate) fn requeue(self: &Arc<Self>, conv: Arc<Conversation>) {
        if self.accepting.load(Ordering::Acquire) == CLOSED {
            conv.fail(DispatchError::NoConsumerAvailable);
            return;
        }
        if self.services.is_shut_down() {
            conv.shut_down();
            return;
        }
        {
            let mut room = self.room.lock();
            room.insert(conv);
            self.depth.store(room.depth(), Ordering::Release);
        }
        self.pump();
    }

    /// Take a waiting message out of the room (its deadline passed).
    pub(crate) fn withdraw_waiting(&self, conv: &Conversation) {
        let mut room = self.room.lock();
        if room.remove(conv.id).is_some() {
            self.depth.store(room.depth(), Ordering::Release);
            self.room_space.notify_all();
        }
    }

    pub(crate) fn delayed_started(&self) {
        let mut room = self.room.lock();
        room.delayed += 1;
        self.depth.store(room.depth(), Ordering::Release);
    }

    pub(crate) fn delayed_done(&self) {
        let mut room = self.room.lock();
        room.delayed = room.delayed.saturating_sub(1);
        self.depth.store(room.depth(), Ordering::Release);
        self.room_space.notify_all();
    }

    /// Messages waiting now (in the room, released with a delay, or being routed).
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    pub(crate) fn note_depth(&self, room: &Room) {
        self.depth.store(room.depth(), Ordering::Release);
        self.room_space.notify_all();
    }

    // ---- placement ----------------------------------------------------------

    /// Place what can be placed. Combined: if a pump is running (on any
    /// thread, this one included), it picks up this request.
    pub(crate) fn pump(self: &Arc<Self>) {
        self.pump_requested.store(true, Ordering::SeqCst);
        while !self.pumping.swap(true, Ordering::SeqCst) {
            while self.pump_requested.swap(false, Ordering::SeqCst) {
                self.pump_once();
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

    fn place_waiting(self: &Arc<Self>, builtin: &Builtin) {
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
                match builtin.select(conv.message(), &candidates) {
                    Some(consumer) if consumer.try_reserve() => {
                        room.queue.remove(index);
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
        self.routing
            .submit(Arc::new(HostPlacement::new(Arc::downgrade(self))));
    }

    // ---- completion bookkeeping ---------------------------------------------

    pub(crate) fn forget(&self, id: u64) {
        let mut convs = self.convs.lock();
        convs.remove(&id);
        if convs.is_empty() {
            self.drained.notify_all();
        }
    }

    /// Accepted dispatches not completed yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.convs.lock().len()
    }

    pub(crate) fn set_dead_letter(&self, handler: Option<DeadLetterHandler>) {
        *self.dead_letter.write() = handler;
    }

    pub(crate) fn dead_letter(&self, message: &Arc<Message>, failure: &DispatchFailure) {
        let handler = self.dead_letter.read().clone();
        if let Some(handler) = handler {
            let _ignored = call_host(|| handler(message, failure));
        }
    }

    /// Redeploy: the next evaluation uses `function`; waiting messages are
    /// looked at again with it.
    pub(crate) fn deploy(self: &Arc<Self>, function: RoutingFunction) -> RoutingFunction {
        let old = self.slot.deploy(function);
        self.pump();
        old
    }

    // ---- lifecycle ----------------------------------------------------------

    /// Stop accepting, then wait until every accepted dispatch completed or
    /// `timeout` passed. Returns how many were left.
    pub(crate) fn drain(&self, timeout: Duration) -> Result<usize> {
        if in_callback() {
            return Err(Error::WouldDeadlock("drain from inside a callback".into()));
        }
        let _ =
            self.accepting
                .compare_exchange(OPEN, DRAINING, Ordering::AcqRel, Ordering::Acquire);
        self.room_space.notify_all();
        let deadline = Instant::now() + timeout;
        let mut convs = self.convs.lock();
        while !convs.is_empty() {
            if self.drained.wait_until(&mut convs, deadline).timed_out() {
                break;
            }
        }
        Ok(convs.len())
    }

    /// Its figures now.
    pub(crate) fn stats(&self) -> GroupStats {
        GroupStats {
            name: self.name.clone(),
            waiting: self.depth(),
            waiting_room: self.options.waiting_room,
            in_flight: self.in_flight(),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            draining: self.accepting.load(Ordering::Acquire) != OPEN,
            consumers: self.snapshot().iter().map(|c| c.stats()).collect(),
        }
    }

    /// The group is freed: accept nothing, every member leaves, and what
    /// waits or is held fails with `NoConsumerAvailable`. A delivery whose
    /// callback is running finishes, and its answer counts.
    pub(crate) fn close(self: &Arc<Self>) {
        self.accepting.store(CLOSED, Ordering::Release);
        let waiting: Vec<Arc<Conversation>> = {
            let mut room = self.room.lock();
            let waiting = room.queue.drain(..).collect();
            self.note_depth(&room);
            waiting
        };
        for conv in waiting {
            conv.fail(DispatchError::NoConsumerAvailable);
        }
        let _registering = self.registration.lock();
        for consumer in self.snapshot().iter() {
            let _already_gone = consumer.die_now(crate::consumer::core::Death::Leave);
        }
    }

    /// Runtime shutdown, first step: fail every accepted dispatch except
    /// those whose delivery callback is running now (`spare`): the shutdown
    /// waits for those, and their answer counts.
    pub(crate) fn shut_down_except(&self, spare: &[u64]) {
        let pending: Vec<Arc<Conversation>> = {
            let convs = self.convs.lock();
            convs
                .values()
                .filter(|conv| !spare.contains(&conv.id))
                .cloned()
                .collect()
        };
        {
            let mut room = self.room.lock();
            room.queue.clear();
            self.note_depth(&room);
        }
        for conv in pending {
            conv.shut_down();
        }
    }

    /// Dispatches whose delivery callback is running now.
    pub(crate) fn handling(&self) -> Vec<u64> {
        self.snapshot()
            .iter()
            .filter_map(|c| c.handling_dispatch())
            .collect()
    }

    /// Runtime shutdown, last step (the scheduler has stopped): fail what is
    /// left and let every consumer go.
    pub(crate) fn shut_down_rest(&self) {
        let pending: Vec<Arc<Conversation>> = self.convs.lock().values().cloned().collect();
        for conv in pending {
            conv.shut_down();
        }
        let members = std::mem::replace(
            &mut *self.members.write(),
            Arc::new(Members::new(Vec::new())),
        );
        for consumer in members.iter() {
            consumer.shut_down();
        }
        self.room_space.notify_all();
    }
}

impl ConsumerHome for Dispatcher {
    fn capacity_changed(&self, delta: i64) {
        self.free.fetch_add(delta, Ordering::AcqRel);
        if delta >= 0 && self.depth() > 0 {
            if let Some(me) = self.myself.upgrade() {
                me.pump();
            }
        }
    }

    fn departed(&self, consumer_uid: u64) {
        let mut members = self.members.write();
        if let Some(next) = members.without(consumer_uid) {
            *members = Arc::new(next);
        }
    }
}
