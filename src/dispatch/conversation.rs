//! The dispatch conversation of one message: select, forward over an
//! existing link, watch, and re-route on a crash until delivered or failed.
//!
//! The link that reports a consumer's death is the one it was spawned with
//! (to the runtime's exit watcher), so it exists before anything is ever
//! forwarded to it. A conversation is completed exactly once: the
//! `completion` slot is taken by whoever finishes it.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::consumer::inner::{ConsumerInner, Held};
use crate::dispatch::outcome::{Completion, DispatchFailure, Outcome, RerouteTiming};
use crate::error::{DispatchError, RoutingError};
use crate::group::GroupInner;
use crate::message::Message;
use crate::metrics::Metrics;
use crate::routing::candidates::Candidates;
use crate::routing::function::Kind;

#[derive(Default)]
struct Trail {
    excluded: Vec<u64>,
    rerouted_from: Vec<String>,
    timings: Vec<RerouteTiming>,
    crashes: u32,
    attempts: u32,
    redeliver: bool,
}

pub(crate) struct Conversation {
    pub(crate) id: u64,
    pub(crate) message: Arc<Message>,
    pub(crate) group: Arc<GroupInner>,
    accepted: Instant,
    trail: Mutex<Trail>,
    completion: Mutex<Option<Completion>>,
}

impl Conversation {
    pub(crate) fn new(
        id: u64,
        message: Arc<Message>,
        group: Arc<GroupInner>,
        completion: Completion,
    ) -> Self {
        Self {
            id,
            message,
            group,
            accepted: Instant::now(),
            trail: Mutex::new(Trail::default()),
            completion: Mutex::new(Some(completion)),
        }
    }

    fn take_completion(&self) -> Option<Completion> {
        let completion = self.completion.lock().take();
        if completion.is_some() {
            self.group.core.forget_conversation(self.id);
        }
        completion
    }

    pub(crate) fn delivered(&self, consumer_id: &str) {
        let Some(completion) = self.take_completion() else {
            return;
        };
        let metrics = &self.group.core.metrics;
        Metrics::bump(&metrics.delivered);
        metrics.record_dispatch(self.accepted.elapsed());
        let outcome = {
            let trail = self.trail.lock();
            Outcome {
                dispatch_id: self.id,
                delivered_to: consumer_id.to_owned(),
                rerouted_from: trail.rerouted_from.clone(),
                reroute_timings: trail.timings.clone(),
                attempts: trail.attempts,
            }
        };
        run_completion(completion, Ok(outcome));
    }

    pub(crate) fn fail(&self, error: DispatchError) {
        let Some(completion) = self.take_completion() else {
            return;
        };
        let failure = {
            let trail = self.trail.lock();
            DispatchFailure {
                error,
                dispatch_id: self.id,
                rerouted_from: trail.rerouted_from.clone(),
                reroute_timings: trail.timings.clone(),
                attempts: trail.attempts,
            }
        };
        let metrics = &self.group.core.metrics;
        if failure.error == DispatchError::ShutDown {
            Metrics::bump(&metrics.shut_down);
        } else {
            Metrics::bump(&metrics.dead_lettered);
            self.group.dead_letter(&self.message, &failure);
        }
        run_completion(completion, Err(failure));
    }
}

/// A host completion must not unwind into the library (or out of `Drop`).
fn run_completion(completion: Completion, result: crate::dispatch::DispatchResult) {
    let _ignored =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || completion(result)));
}

/// Step 1–4 of a dispatch: snapshot, route, forward (or fail).
pub(crate) fn advance(conv: Arc<Conversation>) {
    let core = Arc::clone(&conv.group.core);
    if core.is_shut_down() {
        conv.fail(DispatchError::ShutDown);
        return;
    }
    let excluded = conv.trail.lock().excluded.clone();
    let candidates = Candidates::new(conv.group.snapshot(), excluded);
    if candidates.is_empty() {
        conv.fail(DispatchError::NoConsumerAvailable);
        return;
    }
    let function = conv.group.slot.current();
    match &function.inner.kind {
        Kind::Builtin(builtin) => {
            let selected = builtin.select(&conv.message, &candidates).cloned();
            match selected {
                Some(consumer) => forward(conv, &consumer),
                None => conv.fail(DispatchError::NoConsumerAvailable),
            }
        }
        Kind::Host(_) => {
            let views = candidates.views();
            let message = Arc::clone(&conv.message);
            let supervisor = Arc::clone(&core.routing);
            let continuation = Box::new(move |result| selected(conv, &candidates, result));
            supervisor.submit(function, message, views, continuation);
        }
    }
}

fn selected(
    conv: Arc<Conversation>,
    candidates: &Candidates,
    result: Result<Option<String>, RoutingError>,
) {
    match result {
        Err(error) => {
            Metrics::bump(&conv.group.core.metrics.routing_failures);
            conv.fail(DispatchError::Routing(error));
        }
        Ok(None) => conv.fail(DispatchError::NoConsumerAvailable),
        Ok(Some(id)) => match candidates.find(&id) {
            Some(consumer) => {
                let consumer = Arc::clone(consumer);
                forward(conv, &consumer);
            }
            None => conv.fail(DispatchError::UnknownConsumerSelected(id)),
        },
    }
}

fn forward(conv: Arc<Conversation>, consumer: &Arc<ConsumerInner>) {
    let held = {
        let mut trail = conv.trail.lock();
        trail.attempts += 1;
        Held {
            conv: Arc::clone(&conv),
            attempt: trail.attempts,
            redelivered: trail.redeliver,
            seen: false,
        }
    };
    match consumer.forward(held) {
        Ok(delivery_id) => {
            if let Some(window) = conv.group.options.handoff_window {
                let watched = Arc::clone(consumer);
                let _armed = conv.group.core.timer.at(Instant::now() + window, move || {
                    watched.window_elapsed(delivery_id);
                });
            }
        }
        Err((_dead, held)) => {
            drop(held);
            {
                let mut trail = conv.trail.lock();
                trail.attempts -= 1;
                trail.excluded.push(consumer.pid());
            }
            advance(conv);
        }
    }
}

/// Step 5, the consumer died holding the attempt: exclude it and go back to
/// step 1, or dead-letter once the message has crashed enough consumers.
///
/// A crash counts against the message only if the consumer had been handed
/// it; a message still queued behind the one that crashed is re-routed
/// without counting (and is not a redelivery).
pub(crate) fn reroute(held: Held, consumer: &ConsumerInner, crashed: bool, observed: Instant) {
    let conv = held.conv;
    let metrics = &conv.group.core.metrics;
    let exhausted = {
        let mut trail = conv.trail.lock();
        trail.excluded.push(consumer.pid());
        if held.seen {
            trail.redeliver = true;
        }
        if crashed {
            if held.seen {
                trail.crashes += 1;
            }
            trail.rerouted_from.push(consumer.id.to_string());
        }
        let exhausted = crashed && held.seen && trail.crashes >= conv.group.options.max_attempts;
        if crashed && !exhausted {
            let timing = RerouteTiming {
                exit_observed: observed,
                reroute_initiated: Instant::now(),
            };
            metrics.record_reroute(timing.latency());
            trail.timings.push(timing);
        }
        exhausted.then_some(trail.crashes)
    };
    if let Some(crashes) = exhausted {
        conv.fail(DispatchError::AttemptsExhausted(crashes));
        return;
    }
    if crashed {
        Metrics::bump(&metrics.rerouted);
    }
    advance(conv);
}
