//! The runtime: one beamr scheduler and everything that lives in it.

pub(crate) mod beam;
mod spinner;
pub(crate) mod timer;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use beamr::process::ExitReason;
use beamr::scheduler::Scheduler;
use parking_lot::Mutex;

use crate::consumer::delivery::DeliveryHandler;
use crate::consumer::inner::ConsumerInner;
use crate::consumer::process::ConsumerProcess;
use crate::dispatch::conversation::Conversation;
use crate::dispatch::exit_watcher::{self, ExitWatcher};
use crate::error::{DispatchError, Error, Result};
use crate::group::{Group, GroupOptions};
use crate::message::Message;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::routing::function::{FunctionInner, RoutingFunction};
use crate::routing::supervisor::RoutingSupervisor;

use beam::Guarded;
use timer::Timer;

thread_local! {
    static LIBRARY_THREAD: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as running library work (a process slice, a
/// timer action) for as long as it lives. Blocking calls refuse to run there.
pub(crate) struct CallbackScope(());

impl CallbackScope {
    pub(crate) fn enter() -> Self {
        LIBRARY_THREAD.with(|depth| depth.set(depth.get() + 1));
        Self(())
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        LIBRARY_THREAD.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Whether the calling thread is running library work (a callback).
#[must_use]
pub fn in_library_thread() -> bool {
    LIBRARY_THREAD.with(|depth| depth.get() > 0)
}

/// Runtime options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Scheduler worker threads (default 1: on two cores one worker beat two
    /// on latency; see BENCHMARKS.md). At least 1.
    pub scheduler_threads: usize,
    /// How long a host routing function may run (default 5 s).
    pub routing_timeout: Duration,
    /// How long the scheduler worker keeps polling after the last activity
    /// instead of parking (default 200 µs; zero disables). Trades a little
    /// CPU while busy for latency: a parked worker costs an OS wake-up per
    /// message.
    pub spin_linger: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            scheduler_threads: 1,
            routing_timeout: Duration::from_secs(5),
            spin_linger: Duration::from_micros(200),
        }
    }
}

/// State shared by everything in one runtime. Holds only a `Weak` to the
/// scheduler: handlers keep `Arc<Core>`, and the scheduler must not be kept
/// alive (or dropped on its own worker) through them.
pub(crate) struct Core {
    scheduler: Weak<Scheduler>,
    pub(crate) metrics: Metrics,
    pub(crate) timer: Arc<Timer>,
    pub(crate) routing: Arc<RoutingSupervisor>,
    consumers: Mutex<HashMap<u64, Arc<ConsumerInner>>>,
    conversations: Mutex<HashMap<u64, Arc<Conversation>>>,
    functions: Mutex<HashMap<u64, Weak<FunctionInner>>>,
    next_id: AtomicU64,
    shut_down: AtomicBool,
    watcher_pid: AtomicU64,
    spin: Arc<spinner::SpinState>,
}

impl Core {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// How long a blocking dispatch spins before parking (only while the
    /// worker lingers too: spinning for a parked worker's wake-up is waste).
    pub(crate) fn blocking_spin(&self) -> Duration {
        if self.spin.enabled() {
            Duration::from_micros(100)
        } else {
            Duration::ZERO
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn wake(&self, pid: u64) -> bool {
        let Some(scheduler) = self.scheduler.upgrade() else {
            return false;
        };
        if let Some(spinner) = self.spin.touch() {
            let _woken = beam::wake(&scheduler, spinner);
        }
        beam::wake(&scheduler, pid)
    }

    /// Kill a consumer's process for the host, and handle its exit here and
    /// now. beamr defers the exit of a process whose callback is running
    /// until that callback returns; the host declared it gone, so what it
    /// holds is re-routed at once (a late acknowledgement is fenced off).
    /// The watcher's own EXIT for it later finds nothing left to do.
    pub(crate) fn terminate(self: &Arc<Self>, pid: u64, reason: ExitReason) -> Result<()> {
        let scheduler = self.scheduler.upgrade().ok_or(Error::ShutDown)?;
        if self.is_shut_down() {
            return Err(Error::ShutDown);
        }
        scheduler.terminate_process(pid, reason);
        drop(scheduler);
        exit_watcher::consumer_exited(self, pid, reason, Instant::now());
        Ok(())
    }

    pub(crate) fn take_consumer(&self, pid: u64) -> Option<Arc<ConsumerInner>> {
        self.consumers.lock().remove(&pid)
    }

    /// Accept a conversation; false once shutdown began (it is then not accepted).
    pub(crate) fn track_conversation(&self, conv: &Arc<Conversation>) -> bool {
        let mut conversations = self.conversations.lock();
        if self.is_shut_down() {
            return false;
        }
        conversations.insert(conv.id, Arc::clone(conv));
        drop(conversations);
        Metrics::bump(&self.metrics.dispatched);
        true
    }

    pub(crate) fn forget_conversation(&self, id: u64) {
        self.conversations.lock().remove(&id);
    }

    pub(crate) fn in_flight_dispatches(&self) -> usize {
        self.conversations.lock().len()
    }

    /// Spawn the consumer's process linked to the exit watcher.
    pub(crate) fn spawn_consumer(
        self: &Arc<Self>,
        consumer: &Arc<ConsumerInner>,
        handler: Option<Box<dyn DeliveryHandler>>,
    ) -> Result<()> {
        let scheduler = self.scheduler.upgrade().ok_or(Error::ShutDown)?;
        let watcher = self.watcher_pid.load(Ordering::Acquire);
        let handler = Mutex::new(handler);
        let process_inner = Arc::clone(consumer);
        let factory: beamr::native::native_process::NativeHandlerFactory = Box::new(move || {
            Box::new(Guarded(ConsumerProcess {
                inner: Arc::clone(&process_inner),
                handler: handler.lock().take(),
            }))
        });
        // Hold the registry lock across the spawn so an immediate exit finds
        // the consumer in it.
        let mut consumers = self.consumers.lock();
        let pid = scheduler
            .spawn_native_link(watcher, factory)
            .map_err(|error| Error::SpawnFailed(format!("consumer process: {error:?}")))?;
        consumer.set_pid(pid);
        consumers.insert(pid, Arc::clone(consumer));
        drop(consumers);
        // beamr links to a dead peer without error and then never reports
        // an exit: check both ends after the linked spawn.
        if scheduler.peek_exit_reason(watcher).is_some() {
            scheduler.terminate_process(pid, ExitReason::Kill);
            self.take_consumer(pid);
            return Err(Error::SpawnFailed("exit watcher is gone".into()));
        }
        if let Some(reason) = scheduler.peek_exit_reason(pid) {
            exit_watcher::consumer_exited(self, pid, reason, Instant::now());
        }
        Ok(())
    }
}

/// A liminal runtime. Dropping it shuts it down.
pub struct Runtime {
    core: Arc<Core>,
    scheduler: Mutex<Option<Arc<Scheduler>>>,
    options: RuntimeOptions,
}

impl Runtime {
    /// Start a runtime. Errors: `InvalidArgument` for zero threads or a zero
    /// timeout, `SpawnFailed` when the scheduler or a thread cannot start.
    pub fn new(options: RuntimeOptions) -> Result<Self> {
        if options.scheduler_threads == 0 || options.scheduler_threads > 64 {
            return Err(Error::InvalidArgument(
                "scheduler threads must be between 1 and 64".into(),
            ));
        }
        if options.routing_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "routing timeout must be positive".into(),
            ));
        }
        let scheduler = beam::native_scheduler(options.scheduler_threads)
            .map_err(|error| Error::SpawnFailed(format!("scheduler: {error}")))?;
        let timer = Arc::new(
            Timer::start().map_err(|error| Error::SpawnFailed(format!("timer: {error}")))?,
        );
        let routing = RoutingSupervisor::new(options.routing_timeout, Arc::clone(&timer));
        let core = Arc::new(Core {
            routing,
            scheduler: Arc::downgrade(&scheduler),
            metrics: Metrics::new(),
            timer,
            consumers: Mutex::new(HashMap::new()),
            conversations: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            shut_down: AtomicBool::new(false),
            watcher_pid: AtomicU64::new(0),
            spin: Arc::new(spinner::SpinState::new(options.spin_linger)),
        });
        let watcher_core = Arc::clone(&core);
        let watcher = scheduler
            .spawn_native_trap_exit(Box::new(move || {
                Box::new(Guarded(ExitWatcher {
                    core: Arc::clone(&watcher_core),
                }))
            }))
            .map_err(|error| Error::SpawnFailed(format!("exit watcher: {error:?}")))?;
        core.watcher_pid.store(watcher, Ordering::Release);
        if core.spin.enabled() {
            let state = Arc::clone(&core.spin);
            let spinner = scheduler
                .spawn_native(Box::new(move || {
                    Box::new(Guarded(spinner::Spinner {
                        state: Arc::clone(&state),
                    }))
                }))
                .map_err(|error| Error::SpawnFailed(format!("spinner: {error:?}")))?;
            core.spin.set_pid(spinner);
        }
        Ok(Self {
            core,
            scheduler: Mutex::new(Some(scheduler)),
            options,
        })
    }

    /// The options it was started with.
    #[must_use]
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Create a consumer group routed by `routing`.
    pub fn group(&self, routing: RoutingFunction, options: GroupOptions) -> Result<Group> {
        if self.core.is_shut_down() {
            return Err(Error::ShutDown);
        }
        Group::new(Arc::clone(&self.core), routing, options)
    }

    /// Load a host routing function identified by `identity` bytes. Loading
    /// identical bytes again, while the first is still in use, returns that
    /// same function (and drops `function`).
    pub fn load_routing<F>(&self, identity: &[u8], name: &str, function: F) -> RoutingFunction
    where
        F: Fn(&Arc<Message>, &[crate::consumer::ConsumerState]) -> Option<String>
            + Send
            + Sync
            + 'static,
    {
        let hash = crate::routing::content_hash(identity);
        let mut functions = self.core.functions.lock();
        if let Some(existing) = functions.get(&hash).and_then(Weak::upgrade) {
            return RoutingFunction { inner: existing };
        }
        let loaded = RoutingFunction::host(identity, name.to_owned(), Box::new(function));
        functions.retain(|_, weak| weak.strong_count() > 0);
        functions.insert(hash, Arc::downgrade(&loaded.inner));
        loaded
    }

    /// A snapshot of the metrics.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.core.metrics.snapshot()
    }

    /// Accepted dispatches not yet completed.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.core.in_flight_dispatches()
    }

    /// Routing lanes abandoned because a host function never returned.
    #[must_use]
    pub fn abandoned_routing_lanes(&self) -> usize {
        self.core.routing.retired_lanes()
    }

    /// Shut down: every accepted dispatch not yet completed completes with
    /// `ShutDown`, exactly once; then the scheduler's threads are joined.
    /// Waits for a delivery callback that is running to return. Refused with
    /// `WouldDeadlock` from a library thread.
    pub fn shutdown(&self) -> Result<()> {
        if in_library_thread() {
            return Err(Error::WouldDeadlock(
                "runtime shutdown from inside a callback".into(),
            ));
        }
        self.shutdown_now();
        Ok(())
    }

    fn shutdown_now(&self) {
        let Some(scheduler) = self.scheduler.lock().take() else {
            return;
        };
        let core = &self.core;
        let pending: Vec<Arc<Conversation>> = {
            let mut conversations = core.conversations.lock();
            core.shut_down.store(true, Ordering::Release);
            conversations.drain().map(|(_, conv)| conv).collect()
        };
        for conv in pending {
            conv.fail(DispatchError::ShutDown);
        }
        core.timer.stop();
        core.routing.shutdown();
        scheduler.shutdown();
        let consumers: Vec<Arc<ConsumerInner>> =
            core.consumers.lock().drain().map(|(_, c)| c).collect();
        for consumer in consumers {
            drop(consumer.mark_dead());
            consumer.drop_crash_handler();
        }
        drop(scheduler);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if in_library_thread() {
            // Joining the scheduler from one of its own workers would never
            // return: finish the shutdown on a helper thread instead.
            let scheduler = self.scheduler.lock().take();
            let core = Arc::clone(&self.core);
            let helper = Runtime {
                core,
                scheduler: Mutex::new(scheduler),
                options: self.options.clone(),
            };
            let _detached = std::thread::Builder::new()
                .name("liminal-shutdown".into())
                .spawn(move || drop(helper));
            return;
        }
        self.shutdown_now();
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("options", &self.options)
            .field("shut_down", &self.core.is_shut_down())
            .finish()
    }
}
