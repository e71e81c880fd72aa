//! Low-level services every other part uses: the beamr scheduler surface,
//! the exit watcher, the deadline timer, the worker linger, the callback
//! scope, a one-value channel, and ids. Nothing here knows what a consumer,
//! a group or a conversation is.

pub(crate) mod beam;
pub(crate) mod exits;
pub(crate) mod linger;
pub(crate) mod oneshot;
pub(crate) mod scope;
pub(crate) mod timer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use beamr::scheduler::Scheduler;

use crate::metrics::Metrics;
use exits::{ExitListener, Exits};
use linger::LingerState;
use timer::Timer;

/// The services of one runtime. Holds only a `Weak` to the scheduler:
/// process handlers keep `Arc<Services>`, and the scheduler must not be kept
/// alive (or dropped on its own worker) through them.
pub(crate) struct Services {
    scheduler: Weak<Scheduler>,
    pub(crate) timer: Arc<Timer>,
    pub(crate) metrics: Metrics,
    pub(crate) exits: Arc<Exits>,
    linger: Arc<LingerState>,
    ids: AtomicU64,
    shut_down: AtomicBool,
}

impl Services {
    /// Start the timer thread, the exit watcher and the linger process.
    pub(crate) fn start(scheduler: &Arc<Scheduler>, linger: Duration) -> Result<Arc<Self>, String> {
        let timer = Arc::new(Timer::start().map_err(|error| format!("timer: {error}"))?);
        let exits = Arc::new(Exits::default());
        exits.start(scheduler)?;
        let linger = Arc::new(LingerState::new(linger));
        if linger.enabled() {
            let state = Arc::clone(&linger);
            let pid = scheduler
                .spawn_native(Box::new(move || {
                    Box::new(beam::Guarded(linger::Linger {
                        state: Arc::clone(&state),
                    }))
                }))
                .map_err(|error| format!("linger process: {error:?}"))?;
            linger.set_pid(pid);
        }
        Ok(Arc::new(Self {
            scheduler: Arc::downgrade(scheduler),
            timer,
            metrics: Metrics::new(),
            exits,
            linger,
            ids: AtomicU64::new(1),
            shut_down: AtomicBool::new(false),
        }))
    }

    /// A fresh id, unique in this runtime (never 0).
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Mark shut down; true for the first caller.
    pub(crate) fn begin_shutdown(&self) -> bool {
        !self.shut_down.swap(true, Ordering::AcqRel)
    }

    /// How long a blocking call spins before parking (only while the worker
    /// lingers too: spinning for a parked worker's wake-up is waste).
    pub(crate) fn blocking_spin(&self) -> Duration {
        if self.linger.enabled() {
            Duration::from_micros(50)
        } else {
            Duration::ZERO
        }
    }

    /// Wake a native process whose work sits in a Rust queue (and the
    /// linger process, so the worker keeps polling for a while).
    pub(crate) fn wake(&self, pid: u64) -> bool {
        let Some(scheduler) = self.scheduler.upgrade() else {
            return false;
        };
        if let Some(linger) = self.linger.touch() {
            let _woken = beam::wake(&scheduler, linger);
        }
        beam::wake(&scheduler, pid)
    }

    /// beamr processes alive in the scheduler.
    pub(crate) fn process_count(&self) -> usize {
        self.scheduler.upgrade().map_or(0, |s| s.process_count())
    }

    /// Spawn a process watched by the exit watcher, `listener` told of its exit.
    pub(crate) fn spawn_watched(
        &self,
        factory: beamr::native::native_process::NativeHandlerFactory,
        listener: Arc<dyn ExitListener>,
        on_pid: impl FnOnce(u64),
    ) -> Result<u64, String> {
        let scheduler = self.scheduler.upgrade().ok_or("runtime shut down")?;
        self.exits
            .spawn_watched(&scheduler, factory, listener, on_pid)
    }
}
