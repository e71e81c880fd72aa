//! Low-level services every other part uses: the beamr scheduler surface,
//! the exit watcher, the deadline timer, the idle linger of workers, the
//! callback scope, a one-value channel, and ids. Nothing here knows what a consumer,
//! a group or a conversation is.

pub(crate) mod beam;
pub(crate) mod crowding;
pub(crate) mod exits;
pub(crate) mod idle;
pub(crate) mod ids;
pub(crate) mod oneshot;
pub(crate) mod scope;
pub(crate) mod timer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use beamr::scheduler::Scheduler;

use crate::metrics::Metrics;
use exits::{ExitListener, Exits};
use idle::Activity;
use timer::Timer;

/// The services of one runtime. Holds only a `Weak` to the scheduler:
/// process handlers keep `Arc<Services>`, and the scheduler must not be kept
/// alive (or dropped on its own worker) through them. The `Weak` is upgraded
/// only under its read lock and detached at shutdown under the write lock:
/// so no thread racing the shutdown (a host thread answering a delivery,
/// say) can end up holding the last `Arc` and drop the scheduler — and with
/// it the consumer processes and the host callbacks they hold — after the
/// runtime's free returned.
pub(crate) struct Services {
    scheduler: parking_lot::RwLock<Weak<Scheduler>>,
    pub(crate) timer: Arc<Timer>,
    pub(crate) metrics: Metrics,
    pub(crate) exits: Arc<Exits>,
    /// Wake-ups sent to the scheduler's processes (see [`idle`]).
    pub(crate) activity: Activity,
    ids: AtomicU64,
    shut_down: AtomicBool,
    /// Parts that must stop with the runtime (remote hosts: workers told,
    /// sessions closed), first thing at shutdown.
    pub(crate) extensions: Extensions,
}

/// Something attached to a runtime or a group that stops with it.
pub(crate) trait Extension: Send + Sync {
    /// The runtime is shutting down, or the group closing.
    fn shut_down(&self);
}

/// What is attached to one owner (held weakly: dropping an extension
/// detaches it).
#[derive(Default)]
pub(crate) struct Extensions(parking_lot::Mutex<Vec<std::sync::Weak<dyn Extension>>>);

impl Extensions {
    /// Attach `extension`: stopped by [`Extensions::stop`].
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn attach(&self, extension: std::sync::Weak<dyn Extension>) {
        let mut attached = self.0.lock();
        attached.retain(|e| e.strong_count() > 0);
        attached.push(extension);
    }

    /// Stop what is attached (on the calling thread, outside the lock).
    pub(crate) fn stop(&self) {
        let attached: Vec<_> = self.0.lock().drain(..).collect();
        for extension in attached.iter().filter_map(std::sync::Weak::upgrade) {
            extension.shut_down();
        }
    }
}

impl Services {
    /// Start the timer thread and the exit watcher. Waiters spin up to
    /// `spin`; a worker out of work lingers up to `linger` (see [`idle`]).
    pub(crate) fn start(
        scheduler: &Arc<Scheduler>,
        spin: Duration,
        linger: Duration,
    ) -> Result<Arc<Self>, String> {
        let timer = Arc::new(Timer::start().map_err(|error| format!("timer: {error}"))?);
        let exits = Arc::new(Exits::default());
        exits.start(scheduler)?;
        Ok(Arc::new(Self {
            scheduler: parking_lot::RwLock::new(Arc::downgrade(scheduler)),
            timer,
            metrics: Metrics::new(),
            exits,
            activity: Activity::new(spin, linger),
            ids: AtomicU64::new(1),
            shut_down: AtomicBool::new(false),
            extensions: Extensions::default(),
        }))
    }

    /// A fresh id, unique in this runtime (never 0).
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Mark shut down (and end every linger); true for the first caller.
    pub(crate) fn begin_shutdown(&self) -> bool {
        let first = !self.shut_down.swap(true, Ordering::AcqRel);
        self.activity.stop();
        first
    }

    /// How long a blocking call spins before parking.
    pub(crate) fn blocking_spin(&self) -> Duration {
        self.activity.spin()
    }

    /// Wake a native process whose work sits in a Rust queue: through beamr
    /// (if the process is parked there) and through the activity epoch (if
    /// a process lingers for work).
    pub(crate) fn wake(&self, pid: u64) -> bool {
        let woken = self
            .with_scheduler(|scheduler| beam::wake(scheduler, pid))
            .unwrap_or(false);
        self.activity.touch();
        woken
    }

    /// beamr processes alive in the scheduler.
    pub(crate) fn process_count(&self) -> usize {
        self.with_scheduler(|s| s.process_count()).unwrap_or(0)
    }

    /// Run `body` on the scheduler unless it was detached (shutdown).
    fn with_scheduler<R>(&self, body: impl FnOnce(&Arc<Scheduler>) -> R) -> Option<R> {
        // Recursive: a writer waiting must not deadlock a nested reader.
        let weak = self.scheduler.read_recursive();
        let scheduler = weak.upgrade()?;
        let result = body(&scheduler);
        // Dropped under the read lock: never the last reference (the
        // runtime holds one until it has detached the scheduler).
        drop(scheduler);
        Some(result)
    }

    /// Shutdown: no thread reaches the scheduler through these services
    /// any more. Returns once every thread that was using it has let go, so
    /// the caller holds the last reference.
    pub(crate) fn detach_scheduler(&self) {
        *self.scheduler.write() = Weak::new();
    }

    /// Spawn a process watched by the exit watcher, `listener` told of its exit.
    pub(crate) fn spawn_watched(
        &self,
        factory: beamr::native::native_process::NativeHandlerFactory,
        listener: Arc<dyn ExitListener>,
        on_pid: impl FnOnce(u64),
    ) -> Result<u64, String> {
        let spawned = self
            .with_scheduler(|scheduler| {
                self.exits
                    .spawn_watched(scheduler, factory, listener, on_pid)
            })
            .unwrap_or_else(|| Err("runtime shut down".into()));
        // A lingering worker must let the new process run.
        self.activity.touch();
        spawned
    }
}
