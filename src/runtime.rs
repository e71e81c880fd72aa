//! The runtime: the composition root. It starts the beamr scheduler and the
//! services, creates groups, interns routing functions, and shuts it all
//! down in order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use beamr::scheduler::Scheduler;
use parking_lot::Mutex;

use crate::base::scope::in_callback;
use crate::base::{beam, Services};
use crate::consumer::process::ProcessPool;
use crate::dispatch::dispatcher::{Dispatcher, RecoveredHandler};
use crate::dispatch::GroupOptions;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::message::Message;
use crate::metrics::MetricsSnapshot;
use crate::routing::function::{FunctionInner, RoutingFunction};
use crate::routing::supervisor::RoutingSupervisor;
use crate::routing::view::ConsumerState;
use crate::stats::Stats;
use crate::store::journal::Journal;
use crate::store::{HostStore, StoreOptions};

/// Runtime options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Scheduler worker threads (default 1: on two cores one worker beat two
    /// on latency; see BENCHMARKS.md). Between 1 and 64.
    pub scheduler_threads: usize,
    /// How long a host routing function may run (default 5 s).
    pub routing_timeout: Duration,
    /// How long a thread waiting for the library spins before it sleeps:
    /// a blocking dispatch waiting for its outcome, a worker lingering for
    /// work (default 20 µs; zero: sleep at once). Spinning yields the core
    /// on every few rounds, so on a busy machine it does not hold up the
    /// thread it waits for.
    pub spin: Duration,
    /// How long a scheduler worker that ran out of work keeps waiting for
    /// more inside the last process's slice — spinning, then asleep on a
    /// futex that every wake-up signals — before it parks in beamr (default
    /// 50 ms; zero: park at once). Costs no CPU while asleep; saves the OS
    /// wake-up and the beamr slice of every message that arrives meanwhile.
    pub linger: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            scheduler_threads: 1,
            routing_timeout: Duration::from_secs(5),
            spin: Duration::from_micros(20),
            linger: Duration::from_millis(50),
        }
    }
}

impl RuntimeOptions {
    fn validate(&self) -> Result<()> {
        if !(1..=64).contains(&self.scheduler_threads) {
            return Err(Error::InvalidArgument(
                "scheduler_threads must be between 1 and 64".into(),
            ));
        }
        if self.routing_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "routing_timeout must be positive".into(),
            ));
        }
        if self.spin > Duration::from_secs(1) || self.linger > Duration::from_secs(10) {
            return Err(Error::InvalidArgument(
                "spin is at most 1 s and linger at most 10 s".into(),
            ));
        }
        Ok(())
    }
}

/// Receives the runtime's statistics as JSON, periodically.
pub type StatsHandler = Box<dyn Fn(&str) + Send + Sync + 'static>;

type Groups = Arc<Mutex<Vec<Weak<Dispatcher>>>>;

/// A liminal runtime. Dropping it shuts it down.
pub struct Runtime {
    services: Arc<Services>,
    routing: Arc<RoutingSupervisor>,
    processes: Arc<ProcessPool>,
    scheduler: Mutex<Option<Arc<Scheduler>>>,
    groups: Groups,
    /// The periodic statistics: a generation (a new handler stops the old
    /// ticker) and the handler.
    stats_ticker: Arc<Mutex<(u64, Option<Arc<StatsHandler>>)>>,
    functions: Mutex<HashMap<u64, Weak<FunctionInner>>>,
    options: RuntimeOptions,
}

impl Runtime {
    /// Start a runtime. Errors: `InvalidArgument`, `SpawnFailed` when the
    /// scheduler or a thread cannot start.
    pub fn new(options: RuntimeOptions) -> Result<Self> {
        options.validate()?;
        let scheduler = beam::native_scheduler(options.scheduler_threads)
            .map_err(|error| Error::SpawnFailed(format!("scheduler: {error}")))?;
        let services =
            Services::start(&scheduler, options.spin, options.linger).map_err(|error| {
                scheduler.shutdown();
                Error::SpawnFailed(error)
            })?;
        let routing = RoutingSupervisor::new(
            options.routing_timeout,
            options.spin,
            options.linger,
            Arc::clone(&services.timer),
        );
        Ok(Self {
            services,
            routing,
            processes: Arc::default(),
            scheduler: Mutex::new(Some(scheduler)),
            groups: Arc::default(),
            stats_ticker: Arc::default(),
            functions: Mutex::new(HashMap::new()),
            options,
        })
    }

    /// The options it was started with.
    #[must_use]
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    fn check(&self) -> Result<()> {
        if self.services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// Create a consumer group routed by `routing`.
    pub fn group(&self, routing: RoutingFunction, options: GroupOptions) -> Result<Group> {
        options.validate()?;
        self.check()?;
        Ok(self.add_group(routing, options, None))
    }

    /// Open a durable group on the store `store`: a dispatch is accepted
    /// only once its message is on stable storage (by `store.sync`), its
    /// completion is recorded, and what the store holds accepted and not
    /// completed comes back now, in acceptance order, with its counts and
    /// deadline, waiting for consumers. Those recovered messages end in
    /// `recovered` (their dispatchers died with the old host), once each,
    /// on the thread that ends them; their dead letters also reach the
    /// group's dead-letter handler once installed. A message the host was
    /// handling when it died is delivered again (at least once): each
    /// delivery carries the message's stable id to deduplicate with.
    ///
    /// Errors: `InvalidArgument`, `ShutDown`, `StoreLocked` (another live
    /// process holds the store), `StoreFailed` (it cannot be created or
    /// read, or was written by a newer format).
    pub fn durable_group(
        &self,
        routing: RoutingFunction,
        options: GroupOptions,
        store: StoreOptions,
        recovered: RecoveredHandler,
    ) -> Result<Group> {
        options.validate()?;
        store.validate()?;
        self.check()?;
        let path = store.path.clone();
        let (journal, pending) = Journal::open(&path, store)?;
        let group = self.add_group(routing, options, Some(journal));
        group.dispatcher.recover(pending, &recovered);
        Ok(group)
    }

    /// [`Runtime::durable_group`] on the host's own store (its database,
    /// its log) instead of the embedded one: `store` commits each batch of
    /// records durably and gives them back on opening (see [`HostStore`]).
    /// Only one live group may use a store at a time: the host keeps that
    /// promise (the embedded store's lock does not apply here).
    ///
    /// Errors: `InvalidArgument`, `ShutDown`, `StoreFailed` (its scan
    /// failed, or it holds a newer format).
    pub fn durable_group_in(
        &self,
        routing: RoutingFunction,
        options: GroupOptions,
        store: Box<dyn HostStore>,
        recovered: RecoveredHandler,
    ) -> Result<Group> {
        options.validate()?;
        self.check()?;
        let (journal, pending) = Journal::open_host(store, StoreOptions::new("(host store)"))?;
        let group = self.add_group(routing, options, Some(journal));
        group.dispatcher.recover(pending, &recovered);
        Ok(group)
    }

    fn add_group(
        &self,
        routing: RoutingFunction,
        options: GroupOptions,
        store: Option<Arc<Journal>>,
    ) -> Group {
        let dispatcher = Dispatcher::new(
            Arc::clone(&self.services),
            Arc::clone(&self.routing),
            Arc::clone(&self.processes),
            routing,
            options,
            store,
        );
        let mut groups = self.groups.lock();
        groups.retain(|group| group.strong_count() > 0);
        groups.push(Arc::downgrade(&dispatcher));
        Group { dispatcher }
    }

    fn live_groups(&self) -> Vec<Arc<Dispatcher>> {
        live(&self.groups)
    }

    /// Statistics now: the metrics, and per group its waiting room and
    /// consumers.
    #[must_use]
    pub fn stats(&self) -> Stats {
        stats_of(&self.services, &self.groups)
    }

    /// Deliver [`Runtime::stats`] as JSON to `handler` every `interval`
    /// (on the timer thread), replacing any earlier handler; `None` stops.
    pub fn set_stats_handler(
        &self,
        interval: Duration,
        handler: Option<StatsHandler>,
    ) -> Result<()> {
        self.check()?;
        let generation = {
            let mut ticker = self.stats_ticker.lock();
            ticker.0 += 1;
            let old = std::mem::replace(&mut ticker.1, handler.map(Arc::new));
            drop(ticker);
            drop(old);
            self.stats_ticker.lock().0
        };
        if self.stats_ticker.lock().1.is_some() {
            arm_stats(
                Arc::clone(&self.services),
                Arc::clone(&self.groups),
                Arc::clone(&self.stats_ticker),
                generation,
                interval,
            );
        }
        Ok(())
    }

    /// Load a host routing function identified by `identity` bytes. Loading
    /// identical bytes again, while the first is still in use, returns that
    /// same function (and drops `function`).
    pub fn load_routing<F>(&self, identity: &[u8], name: &str, function: F) -> RoutingFunction
    where
        F: Fn(&Arc<Message>, &[ConsumerState]) -> Option<String> + Send + Sync + 'static,
    {
        let hash = crate::routing::content_hash(identity);
        let mut functions = self.functions.lock();
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
        self.services.metrics.snapshot()
    }

    /// Accepted dispatches not yet completed, over all groups.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.live_groups().iter().map(|g| g.in_flight()).sum()
    }

    /// Messages waiting for a consumer, over all groups.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.live_groups().iter().map(|g| g.placement.depth()).sum()
    }

    /// beamr processes alive in the runtime's scheduler (consumers', idle
    /// pooled ones, and the runtime's own few): a diagnostic for leaks.
    #[must_use]
    pub fn process_count(&self) -> usize {
        self.services.process_count()
    }

    /// Consumer processes idle in the pool, waiting for the next consumer.
    #[must_use]
    pub fn idle_processes(&self) -> usize {
        self.processes.idle()
    }

    /// Routing lanes abandoned because a host function ran past the timeout.
    #[must_use]
    pub fn abandoned_routing_lanes(&self) -> usize {
        self.routing.retired_lanes()
    }

    /// Whether it has shut down.
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.services.is_shut_down()
    }

    /// Drain every group (see [`Group::drain`]) within one `timeout`;
    /// returns how many dispatches were left.
    pub fn drain(&self, timeout: Duration) -> Result<usize> {
        if in_callback() {
            return Err(Error::WouldDeadlock("drain from inside a callback".into()));
        }
        self.check()?;
        let deadline = Instant::now() + timeout;
        let groups = self.live_groups();
        let mut left = 0;
        for group in &groups {
            group.drain(Duration::ZERO)?;
        }
        for group in &groups {
            left += group.drain(deadline.saturating_duration_since(Instant::now()))?;
        }
        Ok(left)
    }

    /// Shut down: every accepted dispatch not yet completed completes with
    /// `ShutDown`, exactly once — except one whose delivery callback is
    /// running: the shutdown waits for it, and its answer counts. Then the
    /// scheduler's threads are joined. Refused with `WouldDeadlock` from
    /// inside a callback.
    pub fn shutdown(&self) -> Result<()> {
        if in_callback() {
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
        self.services.extensions.stop();
        self.services.begin_shutdown();
        let groups = self.live_groups();
        let spare: Vec<u64> = groups.iter().flat_map(|g| g.handling()).collect();
        for group in &groups {
            group.shut_down_except(&spare);
        }
        self.services.timer.stop();
        self.routing.shutdown();
        scheduler.shutdown();
        self.services.detach_scheduler();
        for group in &groups {
            group.shut_down_rest();
        }
        drop(self.services.exits.clear());
        drop(self.stats_ticker.lock().1.take());
        // The last reference (see `Services::detach_scheduler`): the
        // processes, and the host callbacks they hold, go here and now.
        drop(scheduler);
        self.release_host_routing();
    }

    /// Release the host callbacks of every routing function loaded here,
    /// whoever still holds the function (a group, a routing handle): the
    /// lanes are stopped, nothing calls them again. A call that timed out
    /// and still runs keeps its callback until it returns.
    fn release_host_routing(&self) {
        let functions: Vec<_> = self
            .functions
            .lock()
            .drain()
            .filter_map(|(_, function)| function.upgrade())
            .collect();
        for function in functions {
            function.release_host();
        }
    }
}

fn live(groups: &Groups) -> Vec<Arc<Dispatcher>> {
    groups.lock().iter().filter_map(Weak::upgrade).collect()
}

fn stats_of(services: &Services, groups: &Groups) -> Stats {
    Stats {
        metrics: services.metrics.snapshot(),
        groups: live(groups).iter().map(|g| g.stats()).collect(),
    }
}

/// One tick of the periodic statistics, re-armed while its generation is
/// current (the timer stops at shutdown, which ends it).
fn arm_stats(
    services: Arc<Services>,
    groups: Groups,
    ticker: Arc<Mutex<(u64, Option<Arc<StatsHandler>>)>>,
    generation: u64,
    interval: Duration,
) {
    let timer = Arc::clone(&services.timer);
    let _armed = timer.at(Instant::now() + interval, move || {
        let handler = {
            let ticker = ticker.lock();
            if ticker.0 != generation {
                return;
            }
            ticker.1.clone()
        };
        let Some(handler) = handler else {
            return;
        };
        let json = stats_of(&services, &groups).to_json();
        let _ignored = crate::base::scope::call_host(|| handler(&json));
        drop(handler);
        arm_stats(services, groups, ticker, generation, interval);
    });
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if in_callback() {
            // Joining the scheduler from one of its own workers would never
            // return: finish the shutdown on a helper thread instead.
            let helper = Runtime {
                services: Arc::clone(&self.services),
                routing: Arc::clone(&self.routing),
                processes: Arc::clone(&self.processes),
                scheduler: Mutex::new(self.scheduler.lock().take()),
                groups: Arc::clone(&self.groups),
                stats_ticker: Arc::clone(&self.stats_ticker),
                functions: Mutex::new(HashMap::new()),
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
            .field("shut_down", &self.services.is_shut_down())
            .finish()
    }
}
