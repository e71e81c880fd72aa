//! Where a process's death is noticed: one trapping *exit watcher* process
//! per runtime, and a registry of who wants to hear about which pid.
//!
//! Every watched process is spawned *linked to the watcher*, so the link
//! exists before anything can be sent to it, and its exit arrives here as an
//! `{'EXIT', Pid, Reason}` message the moment it happens. The listener of
//! that pid is taken out of the registry (nothing stays behind per dead
//! process) and told.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use beamr::process::ExitReason;
use beamr::scheduler::Scheduler;
use beamr::{NativeContext, NativeOutcome};
use parking_lot::Mutex;

use crate::base::beam::{self, Guarded, Slice};

/// Told once when the process it watches exits.
pub(crate) trait ExitListener: Send + Sync {
    /// `observed` is when the exit was noticed.
    fn exited(&self, reason: ExitReason, observed: Instant);
}

/// Listeners by pid, and the watcher that feeds them.
#[derive(Default)]
pub(crate) struct Exits {
    listeners: Mutex<HashMap<u64, Arc<dyn ExitListener>>>,
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
            if let Some((pid, reason)) = beam::decode_exit(term) {
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

    /// Spawn a process linked to the watcher, with `listener` registered for
    /// its exit before it can run. A process that turns out dead at birth
    /// (beamr links to a dead peer without error and never reports it) is
    /// reported here and now.
    pub(crate) fn spawn_watched(
        &self,
        scheduler: &Scheduler,
        factory: beamr::native::native_process::NativeHandlerFactory,
        listener: Arc<dyn ExitListener>,
        on_pid: impl FnOnce(u64),
    ) -> Result<u64, String> {
        let watcher = self.watcher.load(Ordering::Acquire);
        let pid = {
            let mut listeners = self.listeners.lock();
            let pid = scheduler
                .spawn_native_link(watcher, factory)
                .map_err(|error| format!("process: {error:?}"))?;
            on_pid(pid);
            listeners.insert(pid, listener);
            pid
        };
        if scheduler.peek_exit_reason(watcher).is_some() {
            self.forget(pid);
            scheduler.terminate_process(pid, ExitReason::Kill);
            return Err("exit watcher is gone".into());
        }
        if let Some(reason) = scheduler.peek_exit_reason(pid) {
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
