//! The consumer's beamr process: drains its queue and runs the host's
//! delivery handler. Processes are pooled: when its consumer dies or
//! leaves, the process lets that consumer (and its handler: its `free_user`
//! runs then, after the last call returned) go and waits, idle, for the
//! next consumer registered in the runtime.
//!
//! Why a pool: beamr 0.21.1 keeps about 240 bytes per exited process for
//! the scheduler's lifetime (exit tombstone outcomes, `LinkSet.dead`,
//! `MonitorSet.dead`: `scheduler/exit_tombstones.rs:245`,
//! `supervision/link.rs:117`, `supervision/monitor.rs:41`), and rehashes
//! those tables under global locks as they grow. A consumer's crash is a
//! Rust-side event (the crash funnel in `core.rs`), so its process need
//! not exit: with reuse, a host that replaces consumers all day keeps the
//! same few processes and nothing grows. Idle processes beyond
//! [`IDLE_PROCESSES`] do exit.
//!
//! The assignment (consumer + handler) sits in the process's slot. The
//! process takes it out while it works and puts it back after; whoever
//! finds the slot holding a dead consumer's assignment — the dying thread
//! when the process is idle, else the process itself after its callback
//! returned — releases it and returns the slot to the pool, so the next
//! registration finds it there.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use beamr::process::ExitReason;
use beamr::{NativeContext, NativeOutcome};
use parking_lot::Mutex;

use crate::base::beam::{Guarded, Slice};
use crate::base::exits::ExitListener;
use crate::base::idle::Woke;
use crate::base::Services;
use crate::consumer::core::{Carrier, ConsumerCore, Death, Next};
use crate::consumer::delivery::DeliveryHandler;
use crate::consumer::CrashKind;
use crate::error::{Error, Result};

/// Deliveries handled per slice before yielding the worker to others.
const DELIVERIES_PER_SLICE: usize = 64;

/// Idle consumer processes kept for reuse, per runtime.
pub(crate) const IDLE_PROCESSES: usize = 256;

/// What a process serves: a consumer and, in push mode, its handler.
struct Assignment {
    core: Arc<ConsumerCore>,
    handler: Option<Box<dyn DeliveryHandler>>,
}

/// One pooled process, as the library sees it.
pub(crate) struct ProcessSlot {
    me: Weak<ProcessSlot>,
    pid: AtomicU64,
    pool: Weak<ProcessPool>,
    services: Arc<Services>,
    /// The assignment, when the process is not working on it.
    assignment: Mutex<Option<Assignment>>,
    /// The consumer it serves (told if the process itself dies).
    serving: Mutex<Option<Arc<ConsumerCore>>>,
}

impl ProcessSlot {
    fn pid(&self) -> u64 {
        self.pid.load(Ordering::Acquire)
    }

    /// If the assignment it holds is a dead consumer's, take it out (the
    /// caller drops it once the lock is released: dropping runs the host's
    /// `free_user`) and return to the pool. `keep` false: the pool is full,
    /// the process must exit.
    fn let_go(&self, slot: &mut Option<Assignment>) -> LetGo {
        if slot.as_ref().is_none_or(|a| a.core.is_alive()) {
            return LetGo {
                finished: None,
                keep: true,
            };
        }
        let finished = slot.take();
        if let Some(finished) = &finished {
            // Its wake flag must not stay counted as pending.
            finished.core.clear_wake();
        }
        self.serving.lock().take();
        let keep = match (self.me.upgrade(), self.pool.upgrade()) {
            (Some(me), Some(pool)) => {
                let mut idle = pool.idle.lock();
                let room = idle.len() < IDLE_PROCESSES;
                if room {
                    idle.push(me);
                }
                room
            }
            _ => false,
        };
        LetGo { finished, keep }
    }
}

/// What `ProcessSlot::let_go` did.
struct LetGo {
    finished: Option<Assignment>,
    keep: bool,
}

impl Carrier for ProcessSlot {
    fn consumer_gone(&self) {
        let let_go = {
            let mut assignment = self.assignment.lock();
            // None: the process is working on it and lets go after its callback.
            assignment.is_some().then(|| self.let_go(&mut assignment))
        };
        match let_go {
            Some(LetGo {
                finished,
                keep: true,
            }) => drop(finished),
            // Busy, or the pool is full (the process exits): wake it.
            other => {
                drop(other);
                let _woken = self.services.wake(self.pid());
            }
        }
    }
}

impl ExitListener for ProcessSlot {
    fn exited(&self, reason: ExitReason, observed: Instant) {
        let serving = self.serving.lock().take();
        if let Some(core) = serving {
            let text = match reason {
                ExitReason::Normal => "its process exited",
                ExitReason::Kill | ExitReason::Killed => "its process was killed",
                ExitReason::Error => "its process exited with an error",
                ExitReason::NoConnection => "its process lost its connection",
                ExitReason::NoProc => "its process did not exist",
            };
            core.die(
                Death::Crash {
                    kind: CrashKind::Exited,
                    reason: text.to_owned(),
                    answered: None,
                },
                observed,
            );
        }
    }
}

/// Idle processes of one runtime.
#[derive(Default)]
pub(crate) struct ProcessPool {
    idle: Mutex<Vec<Arc<ProcessSlot>>>,
}

impl ProcessPool {
    /// Idle processes now.
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

pub(crate) struct ConsumerProcess {
    slot: Arc<ProcessSlot>,
}

impl ConsumerProcess {
    /// Put the assignment back (or let it go if its consumer died).
    /// False when the process must exit.
    fn put_back(&self, assignment: Assignment) -> bool {
        let let_go = {
            let mut slot = self.slot.assignment.lock();
            *slot = Some(assignment);
            self.slot.let_go(&mut slot)
        };
        let_go.keep
    }

    fn exit(&self) -> NativeOutcome {
        self.slot.services.exits.forget(self.slot.pid());
        NativeOutcome::Stop(ExitReason::Normal)
    }
}

impl Slice for ConsumerProcess {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        while ctx.recv().is_some() {}
        let (let_go, taken) = {
            let mut slot = self.slot.assignment.lock();
            let let_go = self.slot.let_go(&mut slot);
            (let_go, slot.take())
        };
        if !let_go.keep {
            return self.exit();
        }
        drop(let_go);
        let Some(mut current) = taken else {
            return NativeOutcome::Wait;
        };
        // Lowered here for pull consumers too (their process never serves).
        current.core.clear_wake();
        let mut outcome = NativeOutcome::Wait;
        if let Some(handler) = current.handler.as_mut() {
            let core = &current.core;
            let activity = &core.services.activity;
            let mut served = 0;
            loop {
                let epoch = activity.epoch();
                core.clear_wake();
                let delivery = match core.start_next() {
                    Next::Delivery(delivery) => delivery,
                    Next::Injected => {
                        core.injected();
                        break;
                    }
                    Next::Nothing => {
                        if !core.is_alive() || activity.others_pending() {
                            break;
                        }
                        match activity.linger(epoch) {
                            Woke::Activity => continue,
                            Woke::Idle => break,
                        }
                    }
                };
                let delivery_id = delivery.delivery_id();
                match catch_unwind(AssertUnwindSafe(|| handler.deliver(&delivery))) {
                    Ok(verdict) => {
                        core.answered(delivery_id, verdict);
                    }
                    Err(panic) => {
                        let message = crate::base::scope::panic_message(panic.as_ref());
                        core.panicked(Some(delivery_id), &message);
                    }
                }
                served += 1;
                if served == DELIVERIES_PER_SLICE {
                    // Give the worker to others; come back for the rest.
                    core.yield_with_work();
                    outcome = NativeOutcome::Continue;
                    break;
                }
            }
        }
        if !self.put_back(current) {
            return self.exit();
        }
        outcome
    }

    fn on_panic(&mut self, message: String) {
        if let Some(core) = self.slot.serving.lock().clone() {
            core.panicked(None, &message);
        }
    }
}

/// Give `core` a process: an idle one from the pool, or a new one watched
/// by the exit watcher (so its death is reported before anything can be
/// forwarded to it).
pub(crate) fn start(
    core: &Arc<ConsumerCore>,
    handler: Option<Box<dyn DeliveryHandler>>,
    pool: &Arc<ProcessPool>,
) -> Result<()> {
    let assignment = Assignment {
        core: Arc::clone(core),
        handler,
    };
    let reused = pool.idle.lock().pop();
    if let Some(slot) = reused {
        core.set_pid(slot.pid());
        core.set_carrier(Arc::downgrade(&slot) as Weak<dyn Carrier>);
        *slot.serving.lock() = Some(Arc::clone(core));
        *slot.assignment.lock() = Some(assignment);
        if !core.request_wake() {
            // The process is gone after all (shutdown): nobody will serve.
            return Err(Error::ShutDown);
        }
        return Ok(());
    }
    let slot = Arc::new_cyclic(|me| ProcessSlot {
        me: me.clone(),
        pid: AtomicU64::new(0),
        pool: Arc::downgrade(pool),
        services: Arc::clone(&core.services),
        assignment: Mutex::new(Some(assignment)),
        serving: Mutex::new(Some(Arc::clone(core))),
    });
    core.set_carrier(Arc::downgrade(&slot) as Weak<dyn Carrier>);
    let process_slot = Arc::clone(&slot);
    let factory: beamr::native::native_process::NativeHandlerFactory = Box::new(move || {
        Box::new(Guarded(ConsumerProcess {
            slot: Arc::clone(&process_slot),
        }))
    });
    core.services
        .spawn_watched(factory, Arc::clone(&slot) as _, |pid| {
            slot.pid.store(pid, Ordering::Release);
            core.set_pid(pid);
        })
        .map(|_pid| ())
        .map_err(Error::SpawnFailed)
}
