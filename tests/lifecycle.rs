//! Deferred acks, fencing, pull mode, hand-off windows, membership changes,
//! poison messages and dead letters.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use liminal::{
    Builtin, ConsumerSpec, Delivery, DeliveryToken, DispatchError, Error, FieldValue, GroupOptions,
    Message, RoutingFunction, Verdict,
};

#[test]
fn deferred_ack_from_another_thread() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<DeliveryToken>();
    let a = group
        .register(ConsumerSpec::push("a", move |d: &Delivery| {
            tok_tx.send(d.token()).unwrap();
            Verdict::Defer
        }))
        .unwrap();
    let acker = std::thread::spawn(move || {
        let token = tok_rx.recv_timeout(HANG).unwrap();
        token.ack().unwrap();
        token
    });
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "a");
    let token = acker.join().unwrap();
    assert_eq!(
        token.ack(),
        Err(Error::StaleDelivery(token.delivery_id())),
        "acked twice"
    );
    assert_eq!(a.state().in_flight, 0);
}

#[test]
fn ack_from_a_rerouted_attempt_is_fenced() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<DeliveryToken>();
    let a = group
        .register(ConsumerSpec::push("a", move |d: &Delivery| {
            tok_tx.send(d.token()).unwrap();
            Verdict::Defer
        }))
        .unwrap();
    let log = Log::default();
    group.register(acking("b", &log)).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    group
        .dispatch_async(msg(1), Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    let late = tok_rx.recv_timeout(HANG).unwrap();
    a.crash("declared by host").unwrap();
    let outcome = rx.recv_timeout(HANG).unwrap().unwrap();
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!(outcome.rerouted_from, vec!["a"]);
    assert_eq!(late.ack(), Err(Error::StaleDelivery(late.delivery_id())));
    assert_eq!(runtime.metrics().delivered, 1, "never counted twice");
    assert!(matches!(a.crash("again"), Err(Error::ConsumerGone(_))));
}

#[test]
fn consumer_crashes_itself_from_its_own_callback() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    let (crash_tx, crash_rx) = crash_channel();
    group
        .register(
            ConsumerSpec::push("a", |d: &Delivery| {
                d.token().crash("self-declared").unwrap();
                Verdict::Defer
            })
            .on_crash(move |r| crash_tx.send(r.clone()).unwrap()),
        )
        .unwrap();
    group.register(acking("b", &log)).unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!(outcome.rerouted_from, vec!["a"]);
    assert_eq!(crash_rx.recv_timeout(HANG).unwrap().reason, "self-declared");
}

#[test]
fn pull_mode_worker_thread() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let worker = group.register(ConsumerSpec::pull("puller")).unwrap();
    assert!(matches!(
        worker.next_delivery(Duration::from_millis(1)),
        Err(Error::TimedOut)
    ));
    let thread = {
        let worker = worker.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let d = worker.next_delivery(HANG).unwrap();
                seen.push(d.message().get("n").cloned());
                d.token().ack().unwrap();
            }
            seen
        })
    };
    for n in 0..3 {
        assert_eq!(group.dispatch(msg(n)).unwrap().delivered_to, "puller");
    }
    let seen = thread.join().unwrap();
    assert_eq!(
        seen,
        (0..3).map(|n| Some(FieldValue::Int(n))).collect::<Vec<_>>()
    );
    let push = group.register(acking("push", &Log::default())).unwrap();
    assert!(matches!(
        push.next_delivery(Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn pull_waiter_is_released_when_its_consumer_dies() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let worker = group.register(ConsumerSpec::pull("p")).unwrap();
    let waiting = {
        let worker = worker.clone();
        std::thread::spawn(move || worker.next_delivery(HANG))
    };
    worker.crash("worker thread died").unwrap();
    assert!(matches!(
        waiting.join().unwrap(),
        Err(Error::ConsumerGone(_))
    ));
}

#[test]
fn auto_ack_window_completes_without_ack() {
    let runtime = runtime();
    let group = runtime
        .group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions {
                auto_ack_after: Some(Duration::from_millis(20)),
                ..GroupOptions::default()
            },
        )
        .unwrap();
    let a = group
        .register(ConsumerSpec::push("a", |_d: &Delivery| Verdict::Defer))
        .unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "a");
    assert_eq!(a.state().in_flight, 0);
    assert!(runtime.metrics().dispatch_latency.p50_ns >= 20_000_000);
}

#[test]
fn membership_changes_between_and_during_dispatches() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<DeliveryToken>();
    let b = group
        .register(ConsumerSpec::push("b", move |d: &Delivery| {
            tok_tx.send(d.token()).unwrap();
            Verdict::Defer
        }))
        .unwrap();
    // In flight at b; then "a" joins (sorted first) and takes the next one.
    let (tx, rx) = crossbeam_channel::unbounded();
    let tx1 = tx.clone();
    group
        .dispatch_async(msg(1), Box::new(move |r| tx1.send(r).unwrap()))
        .unwrap();
    let held = tok_rx.recv_timeout(HANG).unwrap();
    group.register(acking("a", &log)).unwrap();
    assert_eq!(group.dispatch(msg(2)).unwrap().delivered_to, "a");
    // The in-flight dispatch was not disturbed by the join.
    held.ack().unwrap();
    assert_eq!(rx.recv_timeout(HANG).unwrap().unwrap().delivered_to, "b");
    // b leaves while holding another: re-routed to a, flagged, not a crash.
    let tx2 = tx.clone();
    group.consumer("a").unwrap().leave().unwrap();
    group
        .dispatch_async(msg(3), Box::new(move |r| tx2.send(r).unwrap()))
        .unwrap();
    let _held = tok_rx.recv_timeout(HANG).unwrap();
    group.register(acking("c", &log)).unwrap();
    b.leave().unwrap();
    let outcome = rx.recv_timeout(HANG).unwrap().unwrap();
    assert_eq!(outcome.delivered_to, "c");
    assert!(outcome.rerouted_from.is_empty(), "leaving is not crashing");
    let last = log.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.0.as_str(), last.2, last.3), ("c", 2, true));
    assert_eq!(runtime.metrics().consumer_crashes, 0);
}

#[test]
fn poison_message_is_dead_lettered_after_max_attempts() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    let crashes = Arc::new(Mutex::new(Vec::new()));
    let (crash_tx, crash_rx) = crash_channel();
    for id in ["a", "b", "c", "d", "e"] {
        let log = log.clone();
        let crashes = Arc::clone(&crashes);
        let crash_tx = crash_tx.clone();
        group
            .register(
                ConsumerSpec::push(id, move |d: &Delivery| {
                    log.push(d);
                    if d.message().get("poison").is_some() {
                        Verdict::Crash("poisoned".into())
                    } else {
                        Verdict::Ack
                    }
                })
                .on_crash(move |r| {
                    crashes.lock().unwrap().push(r.consumer_id.clone());
                    crash_tx.send(r.clone()).unwrap();
                }),
            )
            .unwrap();
    }
    let dead_letters = Arc::new(AtomicUsize::new(0));
    {
        let dead_letters = Arc::clone(&dead_letters);
        group
            .set_dead_letter_handler(Some(Arc::new(move |m: &Arc<Message>, f| {
                assert!(m.get("poison").is_some());
                assert_eq!(f.error, DispatchError::AttemptsExhausted(3));
                dead_letters.fetch_add(1, Ordering::SeqCst);
            })))
            .unwrap();
    }
    let poison = Message::new().with("poison", FieldValue::Bool(true));
    let err = group.dispatch(poison).unwrap_err();
    let Error::Dispatch(failure) = err else {
        panic!("expected a dispatch failure, got {err:?}")
    };
    assert_eq!(failure.error, DispatchError::AttemptsExhausted(3));
    assert_eq!(failure.rerouted_from, vec!["a", "b", "c"]);
    assert_eq!(failure.attempts, 3);
    assert!(failure.is_poison(), "every attempt killed its consumer");
    assert_eq!(dead_letters.load(Ordering::SeqCst), 1);
    assert_eq!(group.len(), 2, "the rest of the group survives");
    assert_eq!(group.dispatch(msg(1)).unwrap().delivered_to, "d");
    // Crash handlers run on the watcher after the re-routes; wait for the third.
    for _ in 0..3 {
        crash_rx.recv_timeout(HANG).unwrap();
    }
    assert_eq!(crashes.lock().unwrap().len(), 3);
    assert_eq!(runtime.metrics().dead_lettered, 1);
}

#[test]
fn fault_injection_crashes_at_next_delivery() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    let a = group.register(acking("a", &log)).unwrap();
    group.register(acking("b", &log)).unwrap();
    a.crash_at_next_delivery().unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!(outcome.rerouted_from, vec!["a"]);
    assert_eq!(log.consumers(), vec!["b"], "a's handler never saw it");
    let entries = log.0.lock().unwrap().clone();
    assert_eq!((entries[0].2, entries[0].3), (2, false), "not a redelivery");
    assert_eq!((outcome.crashed_handling, outcome.crashed_holding), (0, 1));
}

#[test]
fn injected_fault_does_not_count_against_the_message() {
    let runtime = runtime();
    let group = runtime
        .group(
            RoutingFunction::builtin(Builtin::FirstWithCapacity),
            GroupOptions {
                max_attempts: 1,
                ..GroupOptions::default()
            },
        )
        .unwrap();
    let log = Log::default();
    let a = group.register(acking("a", &log)).unwrap();
    group.register(acking("b", &log)).unwrap();
    a.crash_at_next_delivery().unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "b", "not dead-lettered");
    assert_eq!(runtime.metrics().dead_lettered, 0);
}

#[test]
fn group_close_fails_held_work_as_no_consumer() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    group
        .register(ConsumerSpec::push("a", |_d: &Delivery| Verdict::Defer))
        .unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    group
        .dispatch_async(msg(1), Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    // Built-in routing forwards before dispatch_async returns: "a" holds it.
    assert_eq!(group.consumer("a").unwrap().state().in_flight, 1);
    group.close();
    let failure = rx.recv_timeout(HANG).unwrap().unwrap_err();
    assert_eq!(failure.error, DispatchError::NoConsumerAvailable);
    assert!(group.is_empty());
}

/// A pull consumer that marks a delivery started and then dies counts as
/// having died *handling* it (against max attempts); one that dies merely
/// holding a pulled delivery does not.
#[test]
fn a_started_pulled_delivery_counts_as_handled_when_its_consumer_dies() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let first = group.register(ConsumerSpec::pull("first")).unwrap();
    let (done, results) = crossbeam_channel::unbounded();
    let id = group
        .dispatch_async(
            msg(1),
            Box::new(move |result| {
                let _sent = done.send(result);
            }),
        )
        .unwrap();
    let delivery = first.next_delivery(HANG).unwrap();
    assert_eq!(delivery.dispatch_id(), id);
    delivery.token().started().unwrap();
    first.crash("died working on it").unwrap();
    assert!(delivery.token().started().is_err(), "no longer held");
    let second = group.register(ConsumerSpec::pull("second")).unwrap();
    let again = second.next_delivery(HANG).unwrap();
    assert_eq!(again.crashed_handling(), 1);
    assert_eq!(again.crashed_holding(), 0);
    second.crash("died merely holding it").unwrap();
    let third = group.register(ConsumerSpec::pull("third")).unwrap();
    let last = third.next_delivery(HANG).unwrap();
    assert_eq!((last.crashed_handling(), last.crashed_holding()), (1, 1));
    last.token().ack().unwrap();
    let outcome = results.recv_timeout(HANG).unwrap().unwrap();
    assert_eq!(outcome.delivered_to, "third");
    assert_eq!(outcome.trail.crashed_handling, 1);
}
