//! The dispatch conversation of one message: its state from acceptance to
//! its one completion. It waits in its group's waiting room until placed,
//! is forwarded to the chosen consumer (whose link to the exit watcher
//! exists since the consumer's birth), and is acknowledged, given back
//! (crash, leave, release, lease expiry: excluded, counted, routed again),
//! or ends failed (deadline, attempts, routing failure, shutdown).
//!
//! A conversation completes exactly once: the `completion` slot is taken by
//! whoever finishes it. Where it races with a consumer's answer, the
//! consumer's `take` of the attempt decides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;

use crate::base::scope::call_host;
use crate::base::timer::{Timer, TimerKey};
use crate::base::Services;
use crate::consumer::attempt::{Attempt, AttemptOwner, GiveBack};
use crate::consumer::core::ConsumerCore;
use crate::dispatch::options::GroupOptions;
use crate::dispatch::Completion;
use crate::error::DispatchError;
use crate::error::DispatchFailure;
use crate::message::Message;
use crate::outcome::{Outcome, RerouteTiming, Trail};
use crate::routing::view::Candidate;
use crate::store::record::Counts;

enum Stage {
    /// In the waiting room, being routed, or between choice and forward.
    Waiting,
    /// Forwarded to `consumer` as attempt `delivery_id`.
    Held {
        consumer: Arc<ConsumerCore>,
        delivery_id: u64,
    },
    /// Released with a delay: back in the room when the timer fires.
    Delayed(Option<TimerKey>),
    /// Completed.
    Done,
}

struct State {
    stage: Stage,
    excluded: Vec<u64>,
    trail: Trail,
    redeliver: bool,
    /// Failed attempts counted against `max_attempts`.
    failed: u32,
    waiting_since: Option<Instant>,
    deadline: Option<TimerKey>,
    /// An expiry that found the message between choice and forward.
    expiring: Option<DispatchError>,
    /// Taken, with the trail, by the one finisher (see [`State::finish`]).
    completion: Option<Completion>,
}

impl State {
    /// Done: the completion and the trail, taken in one step under the
    /// state's lock, so a second finisher (a shutdown racing an answer,
    /// say) finds neither and can never complete with an emptied trail.
    /// `None` when another finisher was first. Cancels the deadline.
    fn finish(&mut self, timer: &Timer) -> Option<(Completion, Trail)> {
        self.stage = Stage::Done;
        let completion = self.completion.take()?;
        if let Some(key) = self.deadline.take() {
            timer.cancel(key);
        }
        Some((completion, std::mem::take(&mut self.trail)))
    }
}

/// Where a conversation belongs (its group): what it needs from it.
pub(crate) trait ConversationHome: Send + Sync {
    fn services(&self) -> &Arc<Services>;
    fn options(&self) -> &GroupOptions;
    /// Wait again (after a give-back), in its old place.
    fn requeue(&self, conv: Arc<Conversation>);
    /// Its deadline passed while it waited: out of the waiting room.
    fn withdraw_waiting(&self, conv: &Conversation);
    /// Released with a delay: it waits on the timer meanwhile.
    fn delayed_started(&self);
    fn delayed_done(&self);
    /// It completed with `result`: out of the registry of accepted
    /// dispatches, and out of its key (its completion callback runs next).
    fn forget(&self, conv: &Conversation, result: &crate::dispatch::DispatchResult);
    /// Its completion callback returned.
    fn completed(&self);
    /// It failed (not at shutdown): tell the dead-letter handler.
    fn dead_letter(&self, message: &Arc<Message>, failure: &DispatchFailure);
}

pub(crate) struct Conversation {
    pub(crate) id: u64,
    /// Its group's acceptance sequence number (set once, at admission).
    seq: AtomicU64,
    me: Weak<Conversation>,
    message: Arc<Message>,
    home: Arc<dyn ConversationHome>,
    accepted: Instant,
    state: Mutex<State>,
}

impl Conversation {
    pub(crate) fn new(
        id: u64,
        message: Arc<Message>,
        home: Arc<dyn ConversationHome>,
        completion: Completion,
    ) -> Arc<Self> {
        let now = Instant::now();
        Arc::new_cyclic(|me| Self {
            id,
            seq: AtomicU64::new(0),
            me: me.clone(),
            message,
            home,
            accepted: now,
            state: Mutex::new(State {
                stage: Stage::Waiting,
                excluded: Vec::new(),
                trail: Trail {
                    dispatch_id: id,
                    ..Trail::default()
                },
                redeliver: false,
                failed: 0,
                waiting_since: Some(now),
                deadline: None,
                expiring: None,
                completion: Some(completion),
            }),
        })
    }

    pub(crate) fn message(&self) -> &Arc<Message> {
        &self.message
    }

    /// A message its group's store gave back after a restart: it keeps its
    /// counts, and counts as redelivered (a consumer may have seen it
    /// before the restart).
    pub(crate) fn recovered(
        id: u64,
        message: Arc<Message>,
        home: Arc<dyn ConversationHome>,
        completion: Completion,
        counts: Counts,
    ) -> Arc<Self> {
        let conv = Self::new(id, message, home, completion);
        {
            let mut state = conv.state.lock();
            state.failed = counts.failed;
            state.redeliver = true;
            state.trail.attempts = counts.attempts;
            state.trail.crashed_handling = counts.crashed_handling;
            state.trail.crashed_holding = counts.crashed_holding;
        }
        conv
    }

    /// Its attempt counts now.
    pub(crate) fn counts(&self) -> Counts {
        let state = self.state.lock();
        Counts {
            failed: state.failed,
            crashed_handling: state.trail.crashed_handling,
            crashed_holding: state.trail.crashed_holding,
            attempts: state.trail.attempts,
        }
    }

    /// Its group's acceptance sequence number (0 before admission).
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    pub(crate) fn set_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::Release);
    }

    /// Expire at `at` unless completed before.
    pub(crate) fn arm_deadline(self: &Arc<Self>, at: Instant) {
        let me: Weak<Self> = Arc::downgrade(self);
        let key = self.home.services().timer.at(at, move || {
            if let Some(conv) = me.upgrade() {
                conv.expire(DispatchError::Expired);
            }
        });
        let mut state = self.state.lock();
        if matches!(state.stage, Stage::Done) {
            drop(state);
            if let Some(key) = key {
                self.home.services().timer.cancel(key);
            }
        } else {
            state.deadline = key;
        }
    }

    /// The consumers it must not be routed to (uids).
    pub(crate) fn excluded(&self) -> Vec<u64> {
        self.state.lock().excluded.clone()
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state.lock().stage, Stage::Done)
    }

    /// Forward to `consumer`, whose slot the caller reserved for it.
    pub(crate) fn forward(self: &Arc<Self>, consumer: &Arc<ConsumerCore>) {
        let services = &self.home.services();
        let delivery_id = services.next_id();
        let attempt = {
            let mut state = self.state.lock();
            if matches!(state.stage, Stage::Done) {
                drop(state);
                consumer.unreserve();
                return;
            }
            if let Some(since) = state.waiting_since.take() {
                let waited = since.elapsed();
                state.trail.waited += waited;
                services.metrics.record_wait(waited);
            }
            state.trail.attempts += 1;
            state.stage = Stage::Held {
                consumer: Arc::clone(consumer),
                delivery_id,
            };
            Attempt {
                owner: Arc::clone(self) as Arc<dyn AttemptOwner>,
                delivery_id,
                number: state.trail.attempts,
                redelivered: state.redeliver,
                crashed_handling: state.trail.crashed_handling,
                crashed_holding: state.trail.crashed_holding,
            }
        };
        match consumer.forward(attempt) {
            Ok(()) => {
                let expiring = self.state.lock().expiring.take();
                if let Some(error) = expiring {
                    if consumer.withdraw(delivery_id) {
                        self.finish_failed(error);
                    }
                    return;
                }
                if let Some(window) = self.home.options().auto_ack_after {
                    let held = Arc::downgrade(consumer);
                    let _armed = services.timer.at(Instant::now() + window, move || {
                        if let Some(consumer) = held.upgrade() {
                            consumer.auto_ack(delivery_id);
                        }
                    });
                }
            }
            Err(_refused) => {
                // It died between the choice and the forward: route again
                // without it (it never saw the message).
                let mut state = self.state.lock();
                if matches!(state.stage, Stage::Held { delivery_id: d, .. } if d == delivery_id) {
                    state.trail.attempts -= 1;
                    state.excluded.push(consumer.uid());
                    state.stage = Stage::Waiting;
                    state.waiting_since = Some(Instant::now());
                    let expiring = state.expiring.take();
                    drop(state);
                    match expiring {
                        Some(error) => self.finish_failed(error),
                        None => self.home.requeue(Arc::clone(self)),
                    }
                }
            }
        }
    }

    /// The deadline passed (or the blocking caller's timeout): withdraw the
    /// message from wherever it is and fail it with `error`.
    pub(crate) fn expire(self: &Arc<Self>, error: DispatchError) {
        let mut state = self.state.lock();
        match std::mem::replace(&mut state.stage, Stage::Done) {
            Stage::Done => {}
            Stage::Held {
                consumer,
                delivery_id,
            } => {
                // The consumer's `take` decides: if an answer took the
                // attempt first, that answer completes the dispatch.
                state.stage = Stage::Held {
                    consumer: Arc::clone(&consumer),
                    delivery_id,
                };
                state.expiring = Some(error.clone());
                drop(state);
                if consumer.withdraw(delivery_id) {
                    self.finish_failed(error);
                }
            }
            Stage::Waiting => {
                drop(state);
                self.home.withdraw_waiting(self);
                self.finish_failed(error);
            }
            Stage::Delayed(key) => {
                drop(state);
                if let Some(key) = key {
                    self.home.services().timer.cancel(key);
                }
                self.home.delayed_done();
                self.finish_failed(error);
            }
        }
    }

    /// Fail it where it stands (it is in no consumer's hands).
    pub(crate) fn fail(self: &Arc<Self>, error: DispatchError) {
        self.state.lock().stage = Stage::Done;
        self.finish_failed(error);
    }

    fn release_delay_over(self: &Arc<Self>) {
        let mut state = self.state.lock();
        if matches!(state.stage, Stage::Delayed(_)) {
            state.stage = Stage::Waiting;
            state.waiting_since = Some(Instant::now());
            drop(state);
            self.home.delayed_done();
            self.home.requeue(Arc::clone(self));
        }
    }

    fn finish_failed(self: &Arc<Self>, error: DispatchError) {
        let finished = self.state.lock().finish(&self.home.services().timer);
        if let Some((completion, trail)) = finished {
            self.complete(completion, Err(DispatchFailure { error, trail }));
        }
    }

    /// Run the completion (taken, with the trail, by the one finisher).
    fn complete(self: &Arc<Self>, completion: Completion, result: crate::dispatch::DispatchResult) {
        let metrics = &self.home.services().metrics;
        match &result {
            Ok(_) => metrics.record_delivered(self.accepted.elapsed()),
            Err(failure) => metrics.record_failed(&failure.error),
        }
        // Out of the count of dispatches in flight before the completion
        // can wake a blocking caller; a drain still waits for the callback.
        // Out of its key before the dead-letter handler runs, so a handler
        // releasing a held key finds it held.
        self.home.forget(self, &result);
        if let Err(failure) = &result {
            if failure.error != DispatchError::ShutDown {
                self.home.dead_letter(&self.message, failure);
            }
        }
        let _ignored = call_host(move || completion(result));
        self.home.completed();
    }

    /// Shutdown: complete as shut down, wherever it is (its consumer's
    /// process is gone or going; nothing is withdrawn).
    pub(crate) fn shut_down(self: &Arc<Self>) {
        self.finish_failed(DispatchError::ShutDown);
    }
}

impl AttemptOwner for Conversation {
    fn dispatch_id(&self) -> u64 {
        self.id
    }

    fn message(&self) -> &Arc<Message> {
        &self.message
    }

    fn acknowledged(&self, delivery_id: u64, consumer_id: &str) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let (completion, trail) = {
            let mut state = self.state.lock();
            if !matches!(state.stage, Stage::Held { delivery_id: d, .. } if d == delivery_id) {
                return;
            }
            state.expiring = None;
            let Some(finished) = state.finish(&self.home.services().timer) else {
                return;
            };
            finished
        };
        me.complete(
            completion,
            Ok(Outcome {
                delivered_to: consumer_id.to_owned(),
                trail,
            }),
        );
    }

    fn given_back(&self, delivery_id: u64, consumer_uid: u64, consumer_id: &str, why: GiveBack) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let options = self.home.options();
        let metrics = &self.home.services().metrics;
        let mut state = self.state.lock();
        if !matches!(state.stage, Stage::Held { delivery_id: d, .. } if d == delivery_id) {
            return;
        }
        if let Some(error) = state.expiring.take() {
            drop(state);
            me.finish_failed(error);
            return;
        }
        state.excluded.push(consumer_uid);
        state.redeliver |= why.seen();
        let (counts, noticed) = match &why {
            GiveBack::Crashed {
                handling, observed, ..
            } => {
                if *handling {
                    state.trail.crashed_handling += 1;
                } else {
                    state.trail.crashed_holding += 1;
                }
                state.trail.rerouted_from.push(consumer_id.to_owned());
                (*handling || options.count_holding_crashes, Some(*observed))
            }
            GiveBack::Left { .. } => (false, None),
            GiveBack::Released { .. } => {
                state.trail.released += 1;
                metrics.record_released();
                (true, None)
            }
            GiveBack::LeaseExpired { observed, .. } => {
                state.trail.lease_expired += 1;
                metrics.record_lease_expired();
                state.trail.rerouted_from.push(consumer_id.to_owned());
                (true, Some(*observed))
            }
        };
        if counts {
            state.failed += 1;
            if state.failed >= options.max_attempts {
                let failed = state.failed;
                drop(state);
                me.finish_failed(DispatchError::AttemptsExhausted(failed));
                return;
            }
        }
        if let Some(noticed) = noticed {
            let timing = RerouteTiming {
                crash_noticed: noticed,
                reroute_initiated: Instant::now(),
            };
            metrics.record_reroute(timing.latency());
            state.trail.reroute_timings.push(timing);
        }
        match why {
            GiveBack::Released { delay } if !delay.is_zero() => {
                state.stage = Stage::Delayed(None);
                drop(state);
                self.home.delayed_started();
                let weak = Arc::downgrade(&me);
                let key = self
                    .home
                    .services()
                    .timer
                    .at(Instant::now() + delay, move || {
                        if let Some(conv) = weak.upgrade() {
                            conv.release_delay_over();
                        }
                    });
                let mut state = self.state.lock();
                if let Stage::Delayed(slot) = &mut state.stage {
                    *slot = key;
                    if key.is_none() {
                        // The timer is stopped: the runtime is shutting down.
                        state.stage = Stage::Waiting;
                        drop(state);
                        self.home.delayed_done();
                        self.home.requeue(me);
                    }
                } else if let Some(key) = key {
                    drop(state);
                    self.home.services().timer.cancel(key);
                }
            }
            _ => {
                state.stage = Stage::Waiting;
                state.waiting_since = Some(Instant::now());
                drop(state);
                self.home.requeue(me);
            }
        }
    }
}
