//! Supervised execution of host routing functions.
//!
//! A host function runs inside a long-lived beamr *router process* on a
//! dedicated one-worker scheduler (a *lane*), never on the caller's thread.
//! A panic kills that process (a successor takes over) and becomes
//! `crashed(hash)`. *Running* past the timeout (time spent queued behind
//! other evaluations does not count) becomes `timed_out(hash)`: the process
//! is killed and the lane retired, so the stuck worker thread holds up
//! nobody; the evaluations queued behind it move to a fresh lane. One
//! watchdog deadline per lane at a time, not one timer per evaluation.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use beamr::process::ExitReason;
use beamr::scheduler::Scheduler;
use beamr::{NativeContext, NativeOutcome};
use parking_lot::{Condvar, Mutex};

use crate::consumer::ConsumerState;
use crate::error::RoutingError;
use crate::message::Message;
use crate::routing::function::{Kind, RoutingFunction};
use crate::runtime::beam::{self, Guarded, Slice};
use crate::runtime::timer::Timer;

/// What to do with the selection.
pub(crate) type Continuation = Box<dyn FnOnce(Result<Option<String>, RoutingError>) + Send>;

struct Job {
    function: RoutingFunction,
    message: Arc<Message>,
    views: Vec<ConsumerState>,
    continuation: Mutex<Option<Continuation>>,
}

impl Job {
    /// Completes the job; only the first completion runs the continuation.
    fn finish(&self, result: Result<Option<String>, RoutingError>) -> bool {
        let continuation = self.continuation.lock().take();
        match continuation {
            Some(continuation) => {
                continuation(result);
                true
            }
            None => false,
        }
    }

    fn is_done(&self) -> bool {
        self.continuation.lock().is_none()
    }
}

/// The evaluation a lane is running, and since when.
struct Running {
    job: Arc<Job>,
    started: Instant,
}

struct LaneQueue {
    jobs: Mutex<VecDeque<Arc<Job>>>,
    running: Mutex<Option<Running>>,
    /// Signalled whenever `running` is cleared.
    idle: Condvar,
    /// A watchdog deadline is pending on the timer (set and cleared under `running`).
    watchdog_armed: AtomicBool,
    supervisor: Weak<RoutingSupervisor>,
    pid: AtomicU64,
    retired: AtomicBool,
    wake_pending: AtomicBool,
    needs_router: AtomicBool,
}

struct Lane {
    scheduler: Arc<Scheduler>,
    queue: Arc<LaneQueue>,
}

impl LaneQueue {
    /// The running evaluation returned (or panicked).
    fn finished(&self) {
        *self.running.lock() = None;
        self.idle.notify_all();
    }

    /// Mark `job` running, arming the lane's watchdog if none is pending.
    fn start(&self, job: &Arc<Job>) {
        let started = Instant::now();
        let mut running = self.running.lock();
        *running = Some(Running {
            job: Arc::clone(job),
            started,
        });
        if !self.watchdog_armed.swap(true, Ordering::AcqRel) {
            if let Some(supervisor) = self.supervisor.upgrade() {
                supervisor.arm_watchdog(started + supervisor.timeout);
            }
        }
    }
}

/// Evaluations handled per slice.
const JOBS_PER_SLICE: usize = 32;

struct RouterProcess {
    queue: Arc<LaneQueue>,
}

fn router_factory(queue: &Arc<LaneQueue>) -> beamr::native::native_process::NativeHandlerFactory {
    let queue = Arc::clone(queue);
    Box::new(move || {
        Box::new(Guarded(RouterProcess {
            queue: Arc::clone(&queue),
        }))
    })
}

impl Slice for RouterProcess {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        while ctx.recv().is_some() {}
        self.queue.wake_pending.store(false, Ordering::Release);
        for _ in 0..JOBS_PER_SLICE {
            if self.queue.retired.load(Ordering::Acquire) {
                return NativeOutcome::Stop(ExitReason::Normal);
            }
            let Some(job) = self.queue.jobs.lock().pop_front() else {
                return NativeOutcome::Wait;
            };
            if job.is_done() {
                continue;
            }
            let Kind::Host(function) = &job.function.inner.kind else {
                job.finish(Err(RoutingError::SpawnFailed(
                    "built-in routed through the supervisor".into(),
                )));
                continue;
            };
            self.queue.start(&job);
            let result = catch_unwind(AssertUnwindSafe(|| function(&job.message, &job.views)));
            self.queue.finished();
            match result {
                Ok(selection) => {
                    job.finish(Ok(selection));
                }
                Err(_panic) => {
                    // This process dies for the crash; a successor serves the rest.
                    match ctx.spawn_native(router_factory(&self.queue), None) {
                        Ok(pid) => {
                            self.queue.pid.store(pid, Ordering::Release);
                            ctx.send(pid, beamr::term::Term::atom(beamr::atom::Atom::OK));
                        }
                        Err(_) => self.queue.needs_router.store(true, Ordering::Release),
                    }
                    job.finish(Err(RoutingError::Crashed(job.function.hash())));
                    return NativeOutcome::Stop(ExitReason::Error);
                }
            }
        }
        NativeOutcome::Continue
    }

    fn on_panic(&mut self, _message: String) {
        self.queue.finished();
        self.queue.needs_router.store(true, Ordering::Release);
    }
}

/// Runs host routing functions under supervision.
pub(crate) struct RoutingSupervisor {
    lane: Mutex<Option<Lane>>,
    graveyard: Mutex<Vec<Lane>>,
    timeout: Duration,
    timer: Arc<Timer>,
    myself: Weak<RoutingSupervisor>,
    stopped: AtomicBool,
}

impl RoutingSupervisor {
    pub(crate) fn new(timeout: Duration, timer: Arc<Timer>) -> Arc<Self> {
        Arc::new_cyclic(|myself| Self {
            lane: Mutex::new(None),
            graveyard: Mutex::new(Vec::new()),
            timeout,
            timer,
            myself: myself.clone(),
            stopped: AtomicBool::new(false),
        })
    }

    fn arm_watchdog(&self, deadline: Instant) {
        let supervisor = self.myself.clone();
        let _armed = self.timer.at(deadline, move || {
            if let Some(supervisor) = supervisor.upgrade() {
                supervisor.watchdog();
            }
        });
    }

    /// The lane's deadline came: time out the evaluation that has run too
    /// long, or re-arm for the one running now, or stand down.
    fn watchdog(&self) {
        let mut expired = None;
        let mut moved = Vec::new();
        {
            let mut lane_slot = self.lane.lock();
            let Some(lane) = lane_slot.as_ref() else {
                return;
            };
            let running = lane.queue.running.lock();
            match running.as_ref() {
                None => lane.queue.watchdog_armed.store(false, Ordering::Release),
                Some(current) if current.started.elapsed() < self.timeout => {
                    self.arm_watchdog(current.started + self.timeout);
                }
                Some(current) => {
                    // `running` stays set until the function returns (if ever):
                    // shutdown must not join a worker that is still inside it.
                    expired = Some(Arc::clone(&current.job));
                    drop(running);
                    if let Some(lane) = lane_slot.take() {
                        lane.queue.retired.store(true, Ordering::Release);
                        lane.scheduler.terminate_process(
                            lane.queue.pid.load(Ordering::Acquire),
                            ExitReason::Kill,
                        );
                        moved.extend(lane.queue.jobs.lock().drain(..));
                        self.graveyard.lock().push(lane);
                    }
                }
            }
        }
        if let Some(job) = expired {
            job.finish(Err(RoutingError::TimedOut(job.function.hash())));
        }
        for other in moved {
            if let Err(detail) = self.enqueue(Arc::clone(&other)) {
                other.finish(Err(RoutingError::SpawnFailed(detail)));
            }
        }
    }

    /// Evaluate a host function; `continuation` runs exactly once, on the
    /// router process, the timer thread, or (for a spawn failure) here.
    pub(crate) fn submit(
        &self,
        function: RoutingFunction,
        message: Arc<Message>,
        views: Vec<ConsumerState>,
        continuation: Continuation,
    ) {
        let job = Arc::new(Job {
            function,
            message,
            views,
            continuation: Mutex::new(Some(continuation)),
        });
        if let Err(detail) = self.enqueue(Arc::clone(&job)) {
            job.finish(Err(RoutingError::SpawnFailed(detail)));
        }
    }

    fn enqueue(&self, job: Arc<Job>) -> Result<(), String> {
        let mut lane = self.lane.lock();
        // Checked under the lane lock, which shutdown holds while it sets
        // the flag: no lane is ever created after shutdown took the lanes.
        if self.stopped.load(Ordering::Acquire) {
            return Err("runtime shut down".into());
        }
        if lane.is_none() {
            *lane = Some(new_lane(self.myself.clone())?);
        }
        let Some(lane) = lane.as_ref() else {
            return Err("no routing lane".into());
        };
        if lane.queue.needs_router.swap(false, Ordering::AcqRel) {
            let pid = lane
                .scheduler
                .spawn_native(router_factory(&lane.queue))
                .map_err(|error| format!("router process: {error:?}"))?;
            lane.queue.pid.store(pid, Ordering::Release);
        }
        lane.queue.jobs.lock().push_back(job);
        if !lane.queue.wake_pending.swap(true, Ordering::AcqRel) {
            let _woken = beam::wake(&lane.scheduler, lane.queue.pid.load(Ordering::Acquire));
        }
        Ok(())
    }

    /// Stop every lane. A lane whose worker is stuck in a host function that
    /// never returned is abandoned (its thread is leaked, not joined).
    pub(crate) fn shutdown(&self) {
        let current = {
            let mut lane = self.lane.lock();
            self.stopped.store(true, Ordering::Release);
            lane.take()
        };
        let mut lanes: Vec<Lane> = self.graveyard.lock().drain(..).collect();
        lanes.extend(current);
        for lane in lanes {
            lane.queue.retired.store(true, Ordering::Release);
            let abandoned: Vec<Arc<Job>> = lane.queue.jobs.lock().drain(..).collect();
            drop(abandoned);
            // An evaluation in progress gets until its own deadline to return.
            let still_running = {
                let mut running = lane.queue.running.lock();
                while let Some(deadline) = running.as_ref().map(|r| r.started + self.timeout) {
                    if lane
                        .queue
                        .idle
                        .wait_until(&mut running, deadline)
                        .timed_out()
                    {
                        break;
                    }
                }
                running.is_some()
            };
            if still_running {
                std::mem::forget(lane.scheduler);
            } else {
                lane.scheduler.shutdown();
            }
        }
    }

    /// Lanes retired because a function never returned.
    pub(crate) fn retired_lanes(&self) -> usize {
        self.graveyard.lock().len()
    }
}

fn new_lane(supervisor: Weak<RoutingSupervisor>) -> Result<Lane, String> {
    let scheduler = beam::native_scheduler(1)?;
    let queue = Arc::new(LaneQueue {
        jobs: Mutex::new(VecDeque::new()),
        running: Mutex::new(None),
        idle: Condvar::new(),
        watchdog_armed: AtomicBool::new(false),
        supervisor,
        pid: AtomicU64::new(0),
        retired: AtomicBool::new(false),
        wake_pending: AtomicBool::new(false),
        needs_router: AtomicBool::new(false),
    });
    let pid = scheduler
        .spawn_native(router_factory(&queue))
        .map_err(|error| format!("router process: {error:?}"))?;
    queue.pid.store(pid, Ordering::Release);
    Ok(Lane { scheduler, queue })
}
