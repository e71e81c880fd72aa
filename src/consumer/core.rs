//! The shared state of one consumer: its capacity (a reservation counter),
//! the attempts it holds, the queue its process drains, and its death.
//!
//! Every way a consumer can end goes through [`ConsumerCore::die`]: its
//! process exited (the exit watcher), its callback answered crash or
//! panicked (its own process), the host declared it crashed or made it leave
//! (the calling thread), its lease ran out under the crash policy (the timer
//! thread). Whoever gets there first hands every attempt it held back to its
//! owner, on that thread, and tells the crash handler.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::base::ids::IdMap;
use crate::base::timer::TimerKey;
use crate::base::Services;
use crate::consumer::attempt::{Attempt, ConsumerHome, GiveBack};
use crate::consumer::delivery::{Answer, Delivery, Verdict};
use crate::consumer::reporter::Reporter;
use crate::consumer::{CrashHandler, CrashKind, CrashReport, LeasePolicy};
use crate::error::{Error, Result};
use crate::routing::view::{Candidate, ConsumerState};
use crate::stats::ConsumerStats;

/// `state` bits: the low 32 are the reservations (in flight).
const COUNT: u64 = 0xFFFF_FFFF;
const PAUSED: u64 = 1 << 62;
const DEAD: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Forwarded, not yet handed to the callback or the pull thread.
    Queued,
    /// Its delivery callback is running with it.
    Handling,
    /// Handed over (deferred by the callback, or taken by the pull thread).
    Handed,
}

struct Held {
    attempt: Attempt,
    stage: Stage,
    lease: Option<TimerKey>,
    /// Its holder said it began work on it (a remote worker's `started`):
    /// dying now counts as dying handling it.
    started: bool,
}

#[derive(Default)]
struct Slots {
    alive: bool,
    held: IdMap<Held>,
    /// Push mode: forwarded, not yet handed to the delivery callback.
    inbox: VecDeque<u64>,
    /// Pull mode: forwarded, waiting for the host thread.
    ready: VecDeque<u64>,
    /// The delivery whose callback is running.
    handling: Option<u64>,
}

/// What carries a consumer: its process, told when the consumer is gone so
/// it can let go of it.
pub(crate) trait Carrier: Send + Sync {
    /// The consumer died or left.
    fn consumer_gone(&self);
}

/// What the push process does next.
pub(crate) enum Next {
    /// Run the callback with this delivery.
    Delivery(Delivery),
    /// Fault injection: die now, before handing anything over.
    Injected,
    /// Nothing to do.
    Nothing,
}

/// Why a consumer dies.
#[derive(Debug, Clone)]
pub(crate) enum Death {
    /// It crashed (`answered`: the delivery it answered crash for, which
    /// counts as handled).
    Crash {
        kind: CrashKind,
        reason: String,
        answered: Option<u64>,
    },
    /// It left gracefully: what its running callback answers still counts.
    Leave,
}

/// Per-consumer counters.
#[derive(Default)]
pub(crate) struct ConsumerCounters {
    pub(crate) delivered: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) lease_expiries: AtomicU64,
    pub(crate) crashed: AtomicBool,
}

/// Settings fixed at registration.
pub(crate) struct ConsumerSettings {
    pub(crate) id: Arc<str>,
    pub(crate) max_in_flight: u32,
    pub(crate) buffer_depth: u32,
    pub(crate) tags: Arc<[String]>,
    pub(crate) pull_mode: bool,
    pub(crate) lease: Option<Duration>,
    pub(crate) lease_policy: LeasePolicy,
    pub(crate) crash_handler: Option<CrashHandler>,
}

pub(crate) struct ConsumerCore {
    me: Weak<ConsumerCore>,
    uid: u64,
    pub(crate) id: Arc<str>,
    state: AtomicU64,
    max_in_flight: AtomicU32,
    /// Free slots last reported to the home (see `reconcile`).
    reported_free: Mutex<u32>,
    buffer_depth: AtomicU32,
    tags: RwLock<Arc<[String]>>,
    pid: AtomicU64,
    carrier: Mutex<Option<Weak<dyn Carrier>>>,
    pub(crate) pull_mode: bool,
    lease: Option<Duration>,
    lease_policy: LeasePolicy,
    slots: Mutex<Slots>,
    ready_signal: Condvar,
    /// A wake-up of its process is on its way (see `base::idle`).
    wake_pending: AtomicBool,
    pub(crate) crash_at_next_delivery: AtomicBool,
    reporter: Reporter,
    pub(crate) counters: ConsumerCounters,
    pub(crate) services: Arc<Services>,
    home: Weak<dyn ConsumerHome>,
}

impl ConsumerCore {
    pub(crate) fn new(
        settings: ConsumerSettings,
        services: Arc<Services>,
        home: Weak<dyn ConsumerHome>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            uid: services.next_id(),
            id: settings.id,
            state: AtomicU64::new(0),
            max_in_flight: AtomicU32::new(settings.max_in_flight),
            reported_free: Mutex::new(0),
            buffer_depth: AtomicU32::new(settings.buffer_depth),
            tags: RwLock::new(settings.tags),
            pid: AtomicU64::new(0),
            carrier: Mutex::new(None),
            pull_mode: settings.pull_mode,
            lease: settings.lease,
            lease_policy: settings.lease_policy,
            slots: Mutex::new(Slots {
                alive: true,
                ..Slots::default()
            }),
            ready_signal: Condvar::new(),
            wake_pending: AtomicBool::new(false),
            crash_at_next_delivery: AtomicBool::new(false),
            reporter: Reporter::new(settings.crash_handler),
            counters: ConsumerCounters::default(),
            services,
            home,
        })
    }

    pub(crate) fn pid(&self) -> u64 {
        self.pid.load(Ordering::Acquire)
    }

    pub(crate) fn set_pid(&self, pid: u64) {
        self.pid.store(pid, Ordering::Release);
    }

    pub(crate) fn set_carrier(&self, carrier: Weak<dyn Carrier>) {
        *self.carrier.lock() = Some(carrier);
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.state.load(Ordering::Acquire) & DEAD == 0
    }

    pub(crate) fn max_in_flight(&self) -> u32 {
        self.max_in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn buffer_depth(&self) -> u32 {
        self.buffer_depth.load(Ordering::Relaxed)
    }

    pub(crate) fn tags(&self) -> Arc<[String]> {
        Arc::clone(&self.tags.read())
    }

    // ---- capacity --------------------------------------------------------

    /// Take one slot, atomically with the check: never more than
    /// `max_in_flight` reservations, none for a dead or paused consumer.
    pub(crate) fn try_reserve(&self) -> bool {
        let max = u64::from(self.max_in_flight());
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current & (DEAD | PAUSED) != 0 || current & COUNT >= max {
                return false;
            }
            match self.state.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.reconcile();
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Give back a slot (an attempt ended, or a reservation went unused).
    fn release_slot(&self) {
        self.state.fetch_sub(1, Ordering::AcqRel);
        self.reconcile();
    }

    /// Report the change of free slots to the home since the last report.
    /// Every change of the state is followed by one, so the home's sum
    /// converges to the truth; an increase wakes whoever waits for room.
    fn reconcile(&self) {
        let state = self.state.load(Ordering::Acquire);
        let free = if state & (DEAD | PAUSED) != 0 {
            0
        } else {
            u64::from(self.max_in_flight()).saturating_sub(state & COUNT)
        };
        let free = u32::try_from(free).unwrap_or(u32::MAX);
        let delta = {
            let mut reported = self.reported_free.lock();
            let delta = i64::from(free) - i64::from(*reported);
            *reported = free;
            delta
        };
        if delta != 0 {
            if let Some(home) = self.home.upgrade() {
                home.capacity_changed(delta);
            }
        }
    }

    /// Tell the home about its capacity (after joining).
    pub(crate) fn announce(&self) {
        self.reconcile();
    }

    /// Change `max_in_flight` (at least 1).
    pub(crate) fn set_max_in_flight(&self, max: u32) {
        self.max_in_flight.store(max, Ordering::Release);
        self.reconcile();
    }

    pub(crate) fn update(&self, buffer_depth: Option<u32>, tags: Option<Arc<[String]>>) {
        if let Some(depth) = buffer_depth {
            self.buffer_depth.store(depth, Ordering::Relaxed);
        }
        if let Some(tags) = tags {
            *self.tags.write() = tags;
            // A tag change can make waiting messages routable.
            if let Some(home) = self.home.upgrade() {
                home.capacity_changed(0);
            }
        }
    }

    fn resume_if_paused(&self) {
        if self.state.fetch_and(!PAUSED, Ordering::AcqRel) & PAUSED != 0 {
            self.reconcile();
        }
    }

    /// Whether it is paused after a lease expiry (given nothing new).
    pub(crate) fn is_paused(&self) -> bool {
        self.state.load(Ordering::Acquire) & PAUSED != 0
    }

    // ---- forwarding ------------------------------------------------------

    /// Hand `attempt` over, using a slot reserved with [`Self::try_reserve`].
    /// A consumer that died since refuses (and the slot goes back): the
    /// caller routes the attempt elsewhere.
    pub(crate) fn forward(self: &Arc<Self>, attempt: Attempt) -> std::result::Result<(), Attempt> {
        let delivery_id = attempt.delivery_id;
        {
            let mut slots = self.slots.lock();
            if !slots.alive {
                drop(slots);
                self.release_slot();
                return Err(attempt);
            }
            let lease = self
                .lease
                .and_then(|lease| self.arm_lease(delivery_id, lease));
            slots.held.insert(
                delivery_id,
                Held {
                    attempt,
                    stage: Stage::Queued,
                    lease,
                    started: false,
                },
            );
            if self.pull_mode {
                slots.ready.push_back(delivery_id);
            } else {
                slots.inbox.push_back(delivery_id);
            }
        }
        if self.pull_mode {
            // A pull consumer's host thread takes it straight from the ready
            // queue: it keeps flowing even while a scheduler worker is held
            // by another consumer's slow callback.
            self.ready_signal.notify_all();
        } else {
            // A wake to a pid that already exited is dropped; its exit is
            // on the way to the watcher, which hands back what it held.
            let _woken = self.request_wake();
        }
        Ok(())
    }

    /// A reservation that will not be used (the owner completed meanwhile).
    pub(crate) fn unreserve(&self) {
        self.release_slot();
    }

    fn arm_lease(&self, delivery_id: u64, lease: Duration) -> Option<TimerKey> {
        let consumer = self.me.clone();
        self.services.timer.at(Instant::now() + lease, move || {
            if let Some(consumer) = consumer.upgrade() {
                consumer.lease_expired(delivery_id);
            }
        })
    }

    /// Wake its process unless a wake-up is already on its way (raising the
    /// wake flag, which lingering processes count). False when the process
    /// no longer exists.
    pub(crate) fn request_wake(&self) -> bool {
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return true;
        }
        self.services.activity.pending_up();
        self.services.wake(self.pid())
    }

    /// The process gives the worker back with work left: beamr runs it
    /// again without a wake-up, so its flag is raised here (counted as
    /// pending, as a woken process is) or a lingering process would hold
    /// the worker while it waits. Its next slice lowers it.
    pub(crate) fn yield_with_work(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.services.activity.pending_up();
        }
    }

    /// Called by the process before looking at its queue: a forward after
    /// this sends a new wake.
    pub(crate) fn clear_wake(&self) {
        if self.wake_pending.swap(false, Ordering::AcqRel) {
            self.services.activity.pending_down();
        }
    }

    /// Push mode: the next queued attempt, marked as handled by the
    /// callback. `Nothing` when nothing is queued, the consumer is dead, or
    /// the runtime is shutting down (no callback starts then).
    pub(crate) fn start_next(self: &Arc<Self>) -> Next {
        let mut slots = self.slots.lock();
        if !slots.alive || self.services.is_shut_down() {
            return Next::Nothing;
        }
        if !slots.inbox.is_empty() && self.take_injected_crash() {
            return Next::Injected;
        }
        while let Some(delivery_id) = slots.inbox.pop_front() {
            if let Some(held) = slots.held.get_mut(&delivery_id) {
                held.stage = Stage::Handling;
                let delivery = self.delivery(delivery_id, &held.attempt);
                slots.handling = Some(delivery_id);
                return Next::Delivery(delivery);
            }
        }
        Next::Nothing
    }

    /// Push mode: the callback of `delivery_id` returned.
    fn end_handling(&self, delivery_id: u64) {
        let mut slots = self.slots.lock();
        if slots.handling == Some(delivery_id) {
            slots.handling = None;
        }
        if let Some(held) = slots.held.get_mut(&delivery_id) {
            held.stage = Stage::Handed;
        }
    }

    /// Fault injection: whether to crash before handing the next delivery.
    fn take_injected_crash(&self) -> bool {
        self.crash_at_next_delivery.swap(false, Ordering::AcqRel)
    }

    /// Pull mode: wait up to `timeout` for the next delivery.
    pub(crate) fn next_ready(self: &Arc<Self>, timeout: Duration) -> Result<Delivery> {
        let deadline = Instant::now() + timeout;
        let mut slots = self.slots.lock();
        loop {
            if self.services.is_shut_down() {
                return Err(Error::ShutDown);
            }
            while let Some(delivery_id) = slots.ready.pop_front() {
                if let Some(held) = slots.held.get_mut(&delivery_id) {
                    held.stage = Stage::Handed;
                    return Ok(self.delivery(delivery_id, &held.attempt));
                }
            }
            if !slots.alive {
                return Err(Error::ConsumerGone(self.id.to_string()));
            }
            if self
                .ready_signal
                .wait_until(&mut slots, deadline)
                .timed_out()
                && slots.ready.is_empty()
            {
                return Err(Error::TimedOut);
            }
        }
    }

    fn delivery(self: &Arc<Self>, delivery_id: u64, attempt: &Attempt) -> Delivery {
        Delivery {
            consumer: Arc::clone(self) as Arc<dyn Answer>,
            delivery_id,
            dispatch_id: attempt.owner.dispatch_id(),
            attempt: attempt.number,
            redelivered: attempt.redelivered,
            crashed_handling: attempt.crashed_handling,
            crashed_holding: attempt.crashed_holding,
            message: Arc::clone(attempt.owner.message()),
            message_id: attempt.owner.message().stable_id().cloned(),
        }
    }

    // ---- answers ---------------------------------------------------------

    /// Remove one held attempt; whoever removes it owns its end.
    fn take(&self, delivery_id: u64) -> Option<Held> {
        let held = self.slots.lock().held.remove(&delivery_id)?;
        if let Some(key) = held.lease {
            self.services.timer.cancel(key);
        }
        self.release_slot();
        Some(held)
    }

    /// Whether it still holds `delivery_id`.
    pub(crate) fn holds(&self, delivery_id: u64) -> bool {
        self.slots.lock().held.contains_key(&delivery_id)
    }

    fn check_runtime(&self) -> Result<()> {
        if self.services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// Acknowledge: the dispatch completes as delivered here.
    pub(crate) fn ack(&self, delivery_id: u64) -> Result<()> {
        self.check_runtime()?;
        self.ack_unchecked(delivery_id)
    }

    fn ack_unchecked(&self, delivery_id: u64) -> Result<()> {
        self.resume_if_paused();
        let held = self
            .take(delivery_id)
            .ok_or(Error::StaleDelivery(delivery_id))?;
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        held.attempt.owner.acknowledged(delivery_id, &self.id);
        Ok(())
    }

    /// The auto-acknowledgement window of `delivery_id` passed with the
    /// consumer alive: count it as delivered (unless answered meanwhile).
    pub(crate) fn auto_ack(&self, delivery_id: u64) {
        if self.is_alive() {
            let _answered = self.ack_unchecked(delivery_id);
        }
    }

    /// Hand the attempt back without dying; it is routed elsewhere no
    /// sooner than `delay` from now.
    pub(crate) fn release(&self, delivery_id: u64, delay: Duration) -> Result<()> {
        self.check_runtime()?;
        self.release_unchecked(delivery_id, delay)
    }

    fn release_unchecked(&self, delivery_id: u64, delay: Duration) -> Result<()> {
        self.resume_if_paused();
        let held = self
            .take(delivery_id)
            .ok_or(Error::StaleDelivery(delivery_id))?;
        self.counters.released.fetch_add(1, Ordering::Relaxed);
        held.attempt.owner.given_back(
            delivery_id,
            self.uid,
            &self.id,
            GiveBack::Released { delay },
        );
        Ok(())
    }

    /// The push callback of `delivery_id` answered. Its answer counts even
    /// while the runtime shuts down or the consumer leaves: the library
    /// waited for it. Returns true when the consumer died of it.
    pub(crate) fn answered(&self, delivery_id: u64, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Ack => {
                self.end_handling(delivery_id);
                let _fenced = self.ack_unchecked(delivery_id);
                false
            }
            Verdict::Release(delay) => {
                self.end_handling(delivery_id);
                let _fenced = self.release_unchecked(delivery_id, delay);
                false
            }
            Verdict::Defer => {
                self.end_handling(delivery_id);
                if !self.is_alive() {
                    // It left while the callback ran: nobody will answer now.
                    if let Some(held) = self.take(delivery_id) {
                        held.attempt.owner.given_back(
                            delivery_id,
                            self.uid,
                            &self.id,
                            GiveBack::Left { seen: true },
                        );
                    }
                }
                false
            }
            Verdict::Crash(reason) => {
                self.die(
                    Death::Crash {
                        kind: CrashKind::Verdict,
                        reason,
                        answered: Some(delivery_id),
                    },
                    Instant::now(),
                );
                self.end_handling(delivery_id);
                true
            }
        }
    }

    /// The push callback of `delivery_id` panicked: the consumer dies of it.
    pub(crate) fn panicked(&self, delivery_id: Option<u64>, message: &str) {
        self.die(
            Death::Crash {
                kind: CrashKind::Panicked,
                reason: format!("delivery callback panicked: {message}"),
                answered: delivery_id,
            },
            Instant::now(),
        );
    }

    /// Fault injection fired: the consumer dies before handing anything over.
    pub(crate) fn injected(&self) {
        self.die(
            Death::Crash {
                kind: CrashKind::Injected,
                reason: "fault injected at delivery".into(),
                answered: None,
            },
            Instant::now(),
        );
    }

    /// Extend the lease of `delivery_id` to `by` from now.
    pub(crate) fn extend_lease(&self, delivery_id: u64, by: Duration) -> Result<()> {
        self.check_runtime()?;
        self.resume_if_paused();
        let mut slots = self.slots.lock();
        let held = slots
            .held
            .get_mut(&delivery_id)
            .ok_or(Error::StaleDelivery(delivery_id))?;
        if let Some(key) = held.lease.take() {
            self.services.timer.cancel(key);
        }
        held.lease = self.arm_lease(delivery_id, by);
        Ok(())
    }

    /// The holder answered crash for `delivery_id`: the consumer dies, and
    /// this attempt counts as handled by it.
    pub(crate) fn crash_for(&self, delivery_id: u64, reason: &str, kind: CrashKind) -> Result<()> {
        self.check_runtime()?;
        if !self.holds(delivery_id) {
            return Err(Error::StaleDelivery(delivery_id));
        }
        self.die_now(Death::Crash {
            kind,
            reason: reason.to_owned(),
            answered: Some(delivery_id),
        })
    }

    /// The deadline of its owner passed: take the attempt back without
    /// telling the owner (it asked). Later answers are fenced.
    pub(crate) fn withdraw(&self, delivery_id: u64) -> bool {
        self.take(delivery_id).is_some()
    }

    fn lease_expired(&self, delivery_id: u64) {
        let observed = Instant::now();
        let Some(held) = ({
            let mut slots = self.slots.lock();
            let held = slots.held.remove(&delivery_id);
            // Paused before its slot is freed, under either policy: the slot
            // must not go straight back to the consumer that sat on it (under
            // the crash policy it dies right after).
            if held.is_some() && slots.alive {
                self.state.fetch_or(PAUSED, Ordering::AcqRel);
            }
            held
        }) else {
            return;
        };
        self.release_slot();
        self.counters.lease_expiries.fetch_add(1, Ordering::Relaxed);
        let seen = held.stage != Stage::Queued;
        held.attempt.owner.given_back(
            delivery_id,
            self.uid,
            &self.id,
            GiveBack::LeaseExpired { seen, observed },
        );
        let reason = format!("acknowledgement lease expired on delivery {delivery_id}");
        match self.lease_policy {
            LeasePolicy::Crash => {
                self.die(
                    Death::Crash {
                        kind: CrashKind::LeaseExpired,
                        reason,
                        answered: None,
                    },
                    observed,
                );
            }
            LeasePolicy::Quarantine => {
                if self.is_alive() {
                    self.report(CrashKind::LeaseExpired, &reason, true);
                }
            }
        }
    }

    // ---- death -----------------------------------------------------------

    /// Die now, on this thread. False when it was already gone.
    pub(crate) fn die_now(&self, death: Death) -> Result<()> {
        if !self.die(death, Instant::now()) {
            return Err(Error::ConsumerGone(self.id.to_string()));
        }
        Ok(())
    }

    /// The one crash funnel: refuse further forwards, leave the group, hand
    /// back every held attempt (oldest first), tell the crash handler. Only
    /// the first call does anything; returns whether this was it.
    pub(crate) fn die(&self, death: Death, observed: Instant) -> bool {
        let graceful = matches!(death, Death::Leave);
        let taken = {
            let mut slots = self.slots.lock();
            if !slots.alive {
                return false;
            }
            slots.alive = false;
            self.state.fetch_or(DEAD, Ordering::AcqRel);
            slots.inbox.clear();
            slots.ready.clear();
            // A graceful leave lets the running callback finish: its answer counts.
            let keep = if graceful { slots.handling } else { None };
            let mut taken: Vec<(u64, Held)> = Vec::with_capacity(slots.held.len());
            let ids: Vec<u64> = slots.held.keys().copied().collect();
            for id in ids {
                if Some(id) != keep {
                    if let Some(held) = slots.held.remove(&id) {
                        taken.push((id, held));
                    }
                }
            }
            taken
        };
        self.ready_signal.notify_all();
        self.reconcile();
        if let Some(home) = self.home.upgrade() {
            home.departed(self.uid);
        }
        // Its process lets go of it (now, or after a running callback).
        let carrier = self.carrier.lock().take().and_then(|c| c.upgrade());
        if let Some(carrier) = carrier {
            carrier.consumer_gone();
        }
        let mut taken = taken;
        taken.sort_unstable_by_key(|(id, _)| *id);
        for (id, held) in taken {
            if let Some(key) = held.lease {
                self.services.timer.cancel(key);
            }
            self.state.fetch_sub(1, Ordering::AcqRel);
            let seen = held.stage != Stage::Queued;
            let why = match &death {
                Death::Crash { answered, .. } => GiveBack::Crashed {
                    handling: held.stage == Stage::Handling
                        || held.started
                        || Some(id) == *answered,
                    seen,
                    observed,
                },
                Death::Leave => GiveBack::Left { seen },
            };
            held.attempt.owner.given_back(id, self.uid, &self.id, why);
        }
        match death {
            Death::Crash { kind, reason, .. } => {
                self.counters.crashed.store(true, Ordering::Release);
                self.services.metrics.bump_consumer_crash();
                self.report(kind, &reason, false);
            }
            Death::Leave => self.reporter.close(),
        }
        true
    }

    fn report(&self, kind: CrashKind, reason: &str, alive: bool) {
        self.reporter.report(
            CrashReport {
                consumer_id: self.id.to_string(),
                kind,
                reason: reason.to_owned(),
                alive,
            },
            !alive,
        );
    }

    /// Runtime shutdown: the consumer is gone; what it held is dropped (its
    /// owners were completed already) and its crash handler released.
    pub(crate) fn shut_down(&self) {
        let held: Vec<Held> = {
            let mut slots = self.slots.lock();
            slots.alive = false;
            self.state.fetch_or(DEAD, Ordering::AcqRel);
            slots.inbox.clear();
            slots.ready.clear();
            slots.held.drain().map(|(_, held)| held).collect()
        };
        self.ready_signal.notify_all();
        drop(held);
        self.reporter.close();
    }

    /// Its figures now.
    pub(crate) fn stats(&self) -> ConsumerStats {
        ConsumerStats {
            id: self.id.to_string(),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight(),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            released: self.counters.released.load(Ordering::Relaxed),
            lease_expiries: self.counters.lease_expiries.load(Ordering::Relaxed),
            paused: self.is_paused(),
        }
    }

    /// The dispatch whose callback is running now, if any.
    pub(crate) fn handling_dispatch(&self) -> Option<u64> {
        let slots = self.slots.lock();
        let id = slots.handling?;
        slots
            .held
            .get(&id)
            .map(|held| held.attempt.owner.dispatch_id())
    }
}

impl Answer for ConsumerCore {
    fn consumer_id(&self) -> &str {
        &self.id
    }

    fn ack(&self, delivery_id: u64) -> Result<()> {
        ConsumerCore::ack(self, delivery_id)
    }

    fn crash_for(&self, delivery_id: u64, reason: &str) -> Result<()> {
        ConsumerCore::crash_for(self, delivery_id, reason, CrashKind::Declared)
    }

    fn crash_verdict(&self, delivery_id: u64, reason: &str) -> Result<()> {
        ConsumerCore::crash_for(self, delivery_id, reason, CrashKind::Verdict)
    }

    fn started(&self, delivery_id: u64, started: bool) -> Result<()> {
        match self.slots.lock().held.get_mut(&delivery_id) {
            Some(held) => {
                held.started = started;
                Ok(())
            }
            None => Err(Error::StaleDelivery(delivery_id)),
        }
    }

    fn holds(&self, delivery_id: u64) -> bool {
        ConsumerCore::holds(self, delivery_id)
    }

    fn release(&self, delivery_id: u64, delay: Duration) -> Result<()> {
        ConsumerCore::release(self, delivery_id, delay)
    }

    fn extend_lease(&self, delivery_id: u64, by: Duration) -> Result<()> {
        ConsumerCore::extend_lease(self, delivery_id, by)
    }
}

impl Candidate for ConsumerCore {
    fn uid(&self) -> u64 {
        self.uid
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn in_flight(&self) -> u32 {
        u32::try_from(self.state.load(Ordering::Acquire) & COUNT).unwrap_or(u32::MAX)
    }

    fn has_capacity(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        state & (DEAD | PAUSED) == 0 && state & COUNT < u64::from(self.max_in_flight())
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tags.read().iter().any(|own| own == tag)
    }

    fn view(&self) -> ConsumerState {
        ConsumerState {
            id: Arc::clone(&self.id),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight(),
            buffer_depth: self.buffer_depth(),
            tags: self.tags(),
        }
    }
}
