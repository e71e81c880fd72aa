//! Supervised execution of host routing functions.
//!
//! A host function runs inside a long-lived beamr *router process* on a
//! dedicated one-worker scheduler (a *lane*), never on a caller's thread.
//! The lane runs *jobs*: a job hands out one evaluation at a time (a group
//! placing its waiting messages), and jobs take turns, one evaluation each.
//!
//! A panic is contained and becomes `crashed(hash)`; the router carries on.
//! *Running* past the timeout (time spent queued does not count) becomes
//! `timed_out(hash)`: the lane is retired so its stuck worker holds up
//! nobody, and its jobs move to a fresh lane; once the stuck call returns,
//! the retired lane's thread is joined (so timeouts do not accumulate
//! threads). Calls of one function never overlap: while a call that timed
//! out is still running, evaluations of that function fail at once as
//! timed out. One watchdog deadline per lane at a time, not one timer per
//! evaluation.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use beamr::process::ExitReason;
use beamr::scheduler::Scheduler;
use beamr::{NativeContext, NativeOutcome};
use parking_lot::{Condvar, Mutex};

use crate::base::beam::{self, Guarded, Slice};
use crate::base::idle::{Activity, Woke};
use crate::base::timer::Timer;
use crate::error::RoutingError;
use crate::message::Message;
use crate::routing::function::{Kind, RoutingFunction};
use crate::routing::view::ConsumerState;

/// One call of a host routing function.
pub(crate) struct Evaluation {
    pub(crate) function: RoutingFunction,
    pub(crate) message: Arc<Message>,
    pub(crate) views: Arc<[ConsumerState]>,
}

/// Work for a lane: a source of evaluations, and where their results go.
pub(crate) trait RouteJob: Send + Sync {
    /// The next evaluation, or `None` when the job has nothing to evaluate
    /// now (the lane then drops it; its owner submits it again later).
    fn next(&self) -> Option<Evaluation>;
    /// The result of the evaluation `next` handed out last: called exactly
    /// once per evaluation, on the lane (or on the timer thread when it
    /// timed out).
    fn finish(&self, result: Result<Option<String>, RoutingError>);
}

/// The evaluation a lane is running, and since when.
struct Running {
    job: Arc<dyn RouteJob>,
    function: RoutingFunction,
    started: Instant,
    /// Finished by the watchdog (timed out): the lane must not finish it.
    abandoned: bool,
}

struct LaneQueue {
    jobs: Mutex<VecDeque<Arc<dyn RouteJob>>>,
    /// New jobs: the router lingers for them before it parks (see `base::idle`).
    activity: Activity,
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
    /// Mark an evaluation running, arming the lane's watchdog if none is pending.
    fn start(&self, job: &Arc<dyn RouteJob>, function: &RoutingFunction) {
        let started = Instant::now();
        let mut running = self.running.lock();
        *running = Some(Running {
            job: Arc::clone(job),
            function: function.clone(),
            started,
            abandoned: false,
        });
        if !self.watchdog_armed.swap(true, Ordering::AcqRel) {
            if let Some(supervisor) = self.supervisor.upgrade() {
                supervisor.arm_watchdog(started + supervisor.timeout);
            }
        }
    }

    /// The running evaluation returned (or panicked). False when the
    /// watchdog had already given up on it.
    fn finished(&self) -> bool {
        let running = self.running.lock().take();
        self.idle.notify_all();
        running.is_some_and(|running| !running.abandoned)
    }

    fn push(&self, job: Arc<dyn RouteJob>) {
        self.jobs.lock().push_back(job);
        self.activity.touch();
    }
}

/// Evaluations handled per slice.
const EVALUATIONS_PER_SLICE: usize = 32;

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
        for _ in 0..EVALUATIONS_PER_SLICE {
            if self.queue.retired.load(Ordering::Acquire) {
                return NativeOutcome::Stop(ExitReason::Normal);
            }
            let epoch = self.queue.activity.epoch();
            let Some(job) = self.queue.jobs.lock().pop_front() else {
                // Linger for the next job instead of parking at once.
                self.queue.wake_pending.store(false, Ordering::Release);
                match self.queue.activity.linger(epoch) {
                    Woke::Activity => continue,
                    Woke::Idle => return NativeOutcome::Wait,
                }
            };
            let Some(evaluation) = job.next() else {
                continue;
            };
            let function = &evaluation.function;
            let Kind::Host(host) = &function.inner.kind else {
                job.finish(Err(RoutingError::SpawnFailed(
                    "built-in routed through the supervisor".into(),
                )));
                self.queue.push(job);
                continue;
            };
            let Some(call) = host.get() else {
                job.finish(Err(RoutingError::SpawnFailed(
                    "routing function released: the runtime shut down".into(),
                )));
                self.queue.push(job);
                continue;
            };
            if function.inner.abandoned_call.load(Ordering::Acquire) {
                job.finish(Err(RoutingError::TimedOut(function.hash())));
                self.queue.push(job);
                continue;
            }
            let started = Instant::now();
            self.queue.start(&job, function);
            let result = catch_unwind(AssertUnwindSafe(|| {
                call(&evaluation.message, &evaluation.views)
            }));
            if !self.queue.finished() {
                // Timed out: the watchdog failed this evaluation and moved
                // the job to a fresh lane. The call is over now.
                function
                    .inner
                    .abandoned_call
                    .store(false, Ordering::Release);
                return NativeOutcome::Stop(ExitReason::Normal);
            }
            // A call that ran past the timeout fails its dispatch as timed
            // out, whatever it returned, even when the watchdog (on the
            // timer thread, which a busy machine can hold up) had not got
            // to it: the promise is about the call, not about the timer.
            let overran = self
                .queue
                .supervisor
                .upgrade()
                .is_some_and(|supervisor| started.elapsed() >= supervisor.timeout);
            let outcome = match result {
                _ if overran => Err(RoutingError::TimedOut(function.hash())),
                Ok(selection) => Ok(selection),
                // Contained: the evaluation fails as crashed, and the
                // router carries on (an exit would leave beamr bookkeeping
                // behind for every crash).
                Err(_panic) => Err(RoutingError::Crashed(function.hash())),
            };
            job.finish(outcome);
            self.queue.push(job);
        }
        NativeOutcome::Continue
    }

    fn on_panic(&mut self, _message: String) {
        self.queue.finished();
        self.queue.needs_router.store(true, Ordering::Release);
    }
}

/// Schedulers of lanes whose worker never came back from a host function.
/// Kept reachable (not forgotten) so leak checkers see them as still in use.
static ABANDONED_LANES: Mutex<Vec<Arc<Scheduler>>> = Mutex::new(Vec::new());

/// Runs host routing functions under supervision.
pub(crate) struct RoutingSupervisor {
    lane: Mutex<Option<Lane>>,
    graveyard: Mutex<Vec<Lane>>,
    timeout: Duration,
    spin: Duration,
    linger: Duration,
    timer: Arc<Timer>,
    myself: Weak<RoutingSupervisor>,
    stopped: AtomicBool,
}

impl RoutingSupervisor {
    pub(crate) fn new(
        timeout: Duration,
        spin: Duration,
        linger: Duration,
        timer: Arc<Timer>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|myself| Self {
            lane: Mutex::new(None),
            graveyard: Mutex::new(Vec::new()),
            timeout,
            spin,
            linger,
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
            let mut running = lane.queue.running.lock();
            match running.as_mut() {
                None => lane.queue.watchdog_armed.store(false, Ordering::Release),
                Some(current) if current.started.elapsed() < self.timeout => {
                    self.arm_watchdog(current.started + self.timeout);
                }
                Some(current) => {
                    // `running` stays set until the function returns (if ever):
                    // shutdown must not join a worker that is still inside it.
                    current.abandoned = true;
                    current
                        .function
                        .inner
                        .abandoned_call
                        .store(true, Ordering::Release);
                    expired = Some((Arc::clone(&current.job), current.function.hash()));
                    drop(running);
                    if let Some(lane) = lane_slot.take() {
                        lane.queue.retired.store(true, Ordering::Release);
                        lane.queue.activity.stop();
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
        if let Some((job, hash)) = expired {
            job.finish(Err(RoutingError::TimedOut(hash)));
            moved.insert(0, job);
        }
        for job in moved {
            self.submit(job);
        }
    }

    /// Run `job` on the lane. If no lane can be started, its evaluations
    /// fail with `SpawnFailed` right here.
    pub(crate) fn submit(&self, job: Arc<dyn RouteJob>) {
        if let Err(detail) = self.enqueue(Arc::clone(&job)) {
            while job.next().is_some() {
                job.finish(Err(RoutingError::SpawnFailed(detail.clone())));
            }
        }
    }

    fn enqueue(&self, job: Arc<dyn RouteJob>) -> Result<(), String> {
        self.reap();
        let mut lane = self.lane.lock();
        // Checked under the lane lock, which shutdown holds while it sets
        // the flag: no lane is ever created after shutdown took the lanes.
        if self.stopped.load(Ordering::Acquire) {
            return Err("runtime shut down".into());
        }
        if lane.is_none() {
            *lane = Some(new_lane(self.myself.clone(), self.spin, self.linger)?);
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
        lane.queue.push(job);
        if !lane.queue.wake_pending.swap(true, Ordering::AcqRel) {
            let _woken = beam::wake(&lane.scheduler, lane.queue.pid.load(Ordering::Acquire));
        }
        Ok(())
    }

    /// Join the threads of retired lanes whose stuck call has returned.
    fn reap(&self) {
        let finished: Vec<Lane> = {
            let mut graveyard = self.graveyard.lock();
            if graveyard.is_empty() {
                return;
            }
            let (finished, stuck) = graveyard
                .drain(..)
                .partition(|lane| lane.queue.running.lock().is_none());
            *graveyard = stuck;
            finished
        };
        for lane in finished {
            lane.scheduler.shutdown();
        }
    }

    /// Stop every lane. A call in progress gets until the routing timeout
    /// has passed since it started (a call that already timed out gets one
    /// more timeout) to return; a lane whose call still runs after that is
    /// abandoned: its thread keeps running until the call returns.
    pub(crate) fn shutdown(&self) {
        let current = {
            let mut lane = self.lane.lock();
            self.stopped.store(true, Ordering::Release);
            lane.take()
        };
        let mut lanes: Vec<Lane> = self.graveyard.lock().drain(..).collect();
        lanes.extend(current);
        let now = Instant::now();
        for lane in lanes {
            lane.queue.retired.store(true, Ordering::Release);
            lane.queue.activity.stop();
            let queued: Vec<Arc<dyn RouteJob>> = lane.queue.jobs.lock().drain(..).collect();
            drop(queued);
            let still_running = {
                let mut running = lane.queue.running.lock();
                while let Some(started) = running.as_ref().map(|r| r.started) {
                    let deadline = (started + self.timeout)
                        .max(now + self.timeout.min(Duration::from_secs(1)));
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
                ABANDONED_LANES.lock().push(lane.scheduler);
            } else {
                lane.scheduler.shutdown();
            }
        }
    }

    /// Retired lanes whose call that ran past the timeout has not returned.
    pub(crate) fn retired_lanes(&self) -> usize {
        self.reap();
        self.graveyard.lock().len()
    }
}

fn new_lane(
    supervisor: Weak<RoutingSupervisor>,
    spin: Duration,
    linger: Duration,
) -> Result<Lane, String> {
    let scheduler = beam::native_scheduler(1)?;
    let queue = Arc::new(LaneQueue {
        jobs: Mutex::new(VecDeque::new()),
        activity: Activity::new(spin, linger),
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
