//! Where a process's death is noticed: one *exit watcher* process per
//! runtime, and a registry of who wants to hear about which pid.
//!
//! Every watched process is put under the watcher's beamr *monitor* as soon
//! as it is spawned, before anything can be sent to it, and its exit
//! arrives here as a `{'DOWN', Ref, process, Pid, Reason}` message the
//! moment it happens. The listener of that pid is taken out of the registry
//! (nothing stays behind per dead process) and told.
//!
//! A monitor, not a link: beamr 0.21.1 leaks a link whose peer exits while
//! the watcher is in the middle of a slice (`store_runnable_process`,
//! `scheduler/execution/core.rs:352`, adds the slot's links back but never
//! removes the stale ones; the watcher's link list then grows by one such
//! exit at a time and is scanned quadratically on every watcher slice).
//! Monitors are reconciled both ways there, and never deliver an exit twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use beamr::process::ExitReason;
use beamr::scheduler::Scheduler;
use beamr::{NativeContext, NativeOutcome};
use parking_lot::Mutex;

use crate::base::beam::{self, Guarded, Slice};
use crate::base::ids::IdMap;

/// Told once when the process it watches exits.
pub(crate) trait ExitListener: Send + Sync {
    /// `observed` is when the exit was noticed.
    fn exited(&self, reason: ExitReason, observed: Instant);
}

/// Listeners by pid, and the watcher that feeds them.
#[derive(Default)]
pub(crate) struct Exits {
    listeners: Mutex<IdMap<Arc<dyn ExitListener>>>,
    watcher: AtomicU64,
}

/// EXITs handled per slice.
const EXITS_PER_SLICE: usize = 256;

struct Watcher {
    exits: Arc<Exits>,
}

impl Slice for Watcher {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        for _ in 0..EXITS_PER_SLICE {
            let Some(term) = ctx.recv() else {
                return NativeOutcome::Wait;
            };
            let observed = Instant::now();
            if let Some((pid, reason)) = beam::decode_down(term) {
                self.exits.notify(pid, reason, observed);
            }
        }
        NativeOutcome::Continue
    }

    fn on_panic(&mut self, _message: String) {}
}

impl Exits {
    /// Start the watcher process on `scheduler`.
    pub(crate) fn start(self: &Arc<Self>, scheduler: &Scheduler) -> Result<(), String> {
        let exits = Arc::clone(self);
        let pid = scheduler
            .spawn_native_trap_exit(Box::new(move || {
                Box::new(Guarded(Watcher {
                    exits: Arc::clone(&exits),
                }))
            }))
            .map_err(|error| format!("exit watcher: {error:?}"))?;
        self.watcher.store(pid, Ordering::Release);
        Ok(())
    }

    /// Spawn a process monitored by the watcher, with `listener` registered
    /// for its exit before anything can be sent to it. A process that turns
    /// out dead at birth is reported here and now.
    pub(crate) fn spawn_watched(
        &self,
        scheduler: &Scheduler,
        factory: beamr::native::native_process::NativeHandlerFactory,
        listener: Arc<dyn ExitListener>,
        on_pid: impl FnOnce(u64),
    ) -> Result<u64, String> {
        let watcher = self.watcher.load(Ordering::Acquire);
        if scheduler.peek_exit_reason(watcher).is_some() {
            return Err("exit watcher is gone".into());
        }
        let pid = {
            let mut listeners = self.listeners.lock();
            let pid = scheduler
                .spawn_native(factory)
                .map_err(|error| format!("process: {error:?}"))?;
            on_pid(pid);
            listeners.insert(pid, listener);
            pid
        };
        // A target already gone gets an immediate DOWN, or an error here.
        if scheduler.monitor(watcher, pid).is_err() {
            let reason = scheduler
                .peek_exit_reason(pid)
                .unwrap_or(ExitReason::NoProc);
            self.notify(pid, reason, Instant::now());
        }
        Ok(pid)
    }

    /// Stop listening for `pid` (its death was handled another way); true
    /// when it was still registered.
    pub(crate) fn forget(&self, pid: u64) -> bool {
        self.listeners.lock().remove(&pid).is_some()
    }

    fn notify(&self, pid: u64, reason: ExitReason, observed: Instant) {
        let listener = self.listeners.lock().remove(&pid);
        if let Some(listener) = listener {
            listener.exited(reason, observed);
        }
    }

    /// Drop every listener (at shutdown, after the scheduler stopped).
    pub(crate) fn clear(&self) -> Vec<Arc<dyn ExitListener>> {
        self.listeners.lock().drain().map(|(_, l)| l).collect()
    }
}
