//! The shared state of one consumer: its process, the deliveries it holds,
//! and the queue its process drains.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use beamr::process::ExitReason;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::consumer::delivery::{CrashHandler, CrashReport, Delivery};
use crate::consumer::state::ConsumerState;
use crate::dispatch::conversation::Conversation;
use crate::error::{Error, Result};
use crate::group::GroupInner;
use crate::runtime::{beam, Core};

/// One attempt of a conversation, held by the consumer it was forwarded to.
pub(crate) struct Held {
    pub(crate) conv: Arc<Conversation>,
    pub(crate) attempt: u32,
    pub(crate) redelivered: bool,
    /// Handed to the delivery handler or the pull thread. Only a crash after
    /// that counts against the message (and makes the next attempt a
    /// redelivery): one still queued cannot have caused it.
    pub(crate) seen: bool,
}

#[derive(Default)]
struct Slots {
    alive: bool,
    held: HashMap<u64, Held>,
    /// Push mode: forwarded, not yet handed to the delivery handler.
    inbox: VecDeque<u64>,
    /// Pull mode: forwarded, waiting for the host thread.
    ready: VecDeque<u64>,
}

/// Why forwarding failed.
pub(crate) struct Dead;

pub(crate) struct ConsumerInner {
    pub(crate) id: Arc<str>,
    pub(crate) max_in_flight: u32,
    buffer_depth: AtomicU32,
    tags: RwLock<Arc<[String]>>,
    in_flight: AtomicU32,
    pid: AtomicU64,
    pub(crate) pull_mode: bool,
    slots: Mutex<Slots>,
    ready_signal: Condvar,
    wake_pending: AtomicBool,
    /// Set by the first crash or leave the host asks for; later ones fail.
    retired: AtomicBool,
    pub(crate) crash_at_next_delivery: AtomicBool,
    crash_reason: Mutex<Option<String>>,
    crash_handler: Mutex<Option<CrashHandler>>,
    pub(crate) core: Arc<Core>,
    pub(crate) group: Weak<GroupInner>,
}

impl ConsumerInner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: Arc<str>,
        max_in_flight: u32,
        buffer_depth: u32,
        tags: Arc<[String]>,
        pull_mode: bool,
        crash_handler: Option<CrashHandler>,
        core: Arc<Core>,
        group: Weak<GroupInner>,
    ) -> Self {
        Self {
            id,
            max_in_flight,
            buffer_depth: AtomicU32::new(buffer_depth),
            tags: RwLock::new(tags),
            in_flight: AtomicU32::new(0),
            pid: AtomicU64::new(0),
            pull_mode,
            slots: Mutex::new(Slots {
                alive: true,
                ..Slots::default()
            }),
            ready_signal: Condvar::new(),
            wake_pending: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            crash_at_next_delivery: AtomicBool::new(false),
            crash_reason: Mutex::new(None),
            crash_handler: Mutex::new(crash_handler),
            core,
            group,
        }
    }

    pub(crate) fn pid(&self) -> u64 {
        self.pid.load(Ordering::Acquire)
    }

    pub(crate) fn set_pid(&self, pid: u64) {
        self.pid.store(pid, Ordering::Release);
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn has_capacity(&self) -> bool {
        self.in_flight() < self.max_in_flight
    }

    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.read().iter().any(|own| own == tag)
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.retired.load(Ordering::Acquire) && self.slots.lock().alive
    }

    /// Claim the one crash-or-leave the host may ask for.
    fn retire(&self) -> Result<()> {
        if self.retired.swap(true, Ordering::AcqRel) || !self.slots.lock().alive {
            return Err(Error::UnknownConsumer(self.id.to_string()));
        }
        Ok(())
    }

    pub(crate) fn state(&self) -> ConsumerState {
        ConsumerState {
            id: Arc::clone(&self.id),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight,
            buffer_depth: self.buffer_depth.load(Ordering::Relaxed),
            tags: Arc::clone(&self.tags.read()),
        }
    }

    pub(crate) fn update(&self, buffer_depth: Option<u32>, tags: Option<Arc<[String]>>) {
        if let Some(depth) = buffer_depth {
            self.buffer_depth.store(depth, Ordering::Relaxed);
        }
        if let Some(tags) = tags {
            *self.tags.write() = tags;
        }
    }

    /// Take one attempt. The caller already checked nothing; a dead consumer
    /// refuses, which the conversation treats as "re-route past it".
    pub(crate) fn forward(&self, held: Held) -> Result<u64, (Dead, Held)> {
        let delivery_id = self.core.next_id();
        {
            let mut slots = self.slots.lock();
            if !slots.alive {
                return Err((Dead, held));
            }
            slots.held.insert(delivery_id, held);
            if self.pull_mode {
                slots.ready.push_back(delivery_id);
            } else {
                slots.inbox.push_back(delivery_id);
            }
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        if self.pull_mode {
            // A pull consumer's host thread takes it straight from the ready
            // queue: it keeps flowing even while a scheduler worker is held
            // by another consumer's slow callback.
            self.ready_signal.notify_all();
            return Ok(delivery_id);
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A wake to a pid that already exited is dropped; its EXIT is on
            // the way to the watcher, which re-routes what it held.
            let _woken = self.core.wake(self.pid());
        }
        Ok(delivery_id)
    }

    /// Remove one held attempt; whoever removes it owns its completion.
    pub(crate) fn finish(&self, delivery_id: u64) -> Option<Held> {
        let held = self.slots.lock().held.remove(&delivery_id);
        if held.is_some() {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        held
    }

    pub(crate) fn holds(&self, delivery_id: u64) -> bool {
        self.slots.lock().held.contains_key(&delivery_id)
    }

    pub(crate) fn ack(&self, delivery_id: u64) -> Result<()> {
        let held = self
            .finish(delivery_id)
            .ok_or(Error::StaleDelivery(delivery_id))?;
        held.conv.delivered(&self.id);
        Ok(())
    }

    /// Hand-off window elapsed with the consumer alive: count it as delivered.
    pub(crate) fn window_elapsed(&self, delivery_id: u64) {
        if let Some(held) = self.finish(delivery_id) {
            held.conv.delivered(&self.id);
        }
    }

    /// Kill the consumer's process and re-route what it held (at once, see
    /// `Core::terminate`).
    pub(crate) fn declare_crashed(&self, reason: &str) -> Result<()> {
        self.retire()?;
        self.note_crash_reason(reason);
        self.leave_group();
        self.core.terminate(self.pid(), ExitReason::Error)
    }

    /// Leave: the process exits normally and what it held is re-routed
    /// without counting as a crash.
    pub(crate) fn stop(&self) -> Result<()> {
        self.retire()?;
        self.leave_group();
        self.core.terminate(self.pid(), ExitReason::Normal)
    }

    /// Out of the group's membership: the next snapshot no longer has it.
    pub(crate) fn leave_group(&self) {
        if let Some(group) = self.group.upgrade() {
            group.remove_member(self.pid());
        }
    }

    pub(crate) fn note_crash_reason(&self, reason: &str) {
        let mut slot = self.crash_reason.lock();
        if slot.is_none() {
            *slot = Some(reason.to_owned());
        }
    }

    pub(crate) fn crash_reason(&self) -> Option<String> {
        self.crash_reason.lock().clone()
    }

    /// The process exited: refuse further forwards and hand back every held
    /// attempt, oldest first.
    pub(crate) fn mark_dead(&self) -> Vec<Held> {
        let mut held: Vec<(u64, Held)> = {
            let mut slots = self.slots.lock();
            slots.alive = false;
            slots.inbox.clear();
            slots.ready.clear();
            slots.held.drain().collect()
        };
        self.in_flight.store(0, Ordering::Relaxed);
        self.ready_signal.notify_all();
        held.sort_unstable_by_key(|(id, _)| *id);
        held.into_iter().map(|(_, held)| held).collect()
    }

    pub(crate) fn report_crash(&self, reason: &str) {
        let handler = self.crash_handler.lock().take();
        if let Some(handler) = handler {
            let report = CrashReport {
                consumer_id: self.id.to_string(),
                reason: reason.to_owned(),
            };
            let _ignored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler(&report);
            }));
        }
    }

    pub(crate) fn drop_crash_handler(&self) {
        drop(self.crash_handler.lock().take());
    }

    /// Called by the consumer process before draining: a forward after this
    /// sends a new wake.
    pub(crate) fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    /// Next forwarded attempt to hand to the handler, as a [`Delivery`].
    pub(crate) fn next_inbox(self: &Arc<Self>) -> Option<Delivery> {
        let mut slots = self.slots.lock();
        while let Some(delivery_id) = slots.inbox.pop_front() {
            if let Some(delivery) = self.delivery_locked(&mut slots, delivery_id) {
                return Some(delivery);
            }
        }
        None
    }

    fn delivery_locked(self: &Arc<Self>, slots: &mut Slots, delivery_id: u64) -> Option<Delivery> {
        let held = slots.held.get_mut(&delivery_id)?;
        held.seen = true;
        Some(Delivery {
            consumer: Arc::clone(self),
            delivery_id,
            dispatch_id: held.conv.id,
            attempt: held.attempt,
            redelivered: held.redelivered,
            message: Arc::clone(&held.conv.message),
        })
    }

    /// Pull mode: wait up to `timeout` for the next delivery.
    pub(crate) fn next_ready(self: &Arc<Self>, timeout: Duration) -> Result<Delivery> {
        let deadline = Instant::now() + timeout;
        let mut slots = self.slots.lock();
        loop {
            while let Some(delivery_id) = slots.ready.pop_front() {
                if let Some(delivery) = self.delivery_locked(&mut slots, delivery_id) {
                    return Ok(delivery);
                }
            }
            if !slots.alive {
                return Err(Error::ShutDown);
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

    pub(crate) fn exit_reason_text(&self, reason: ExitReason) -> String {
        self.crash_reason()
            .unwrap_or_else(|| beam::reason_text(reason).to_owned())
    }
}
