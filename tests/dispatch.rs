//! Dispatch, acknowledgement, re-routing and exclusion.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use liminal::{
    Builtin, ConsumerSpec, Delivery, DispatchError, DispatchOptions, Error, FieldValue,
    GroupOptions, Message, RoutingFunction, Verdict,
};

#[test]
fn delivers_to_the_consumer_the_router_selects() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    group.register(acking("b", &log)).unwrap();
    group.register(acking("a", &log)).unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "a");
    assert!(outcome.rerouted_from.is_empty());
    assert_eq!(outcome.attempts, 1);
    assert_eq!(log.consumers(), vec!["a"]);
    let ids: Vec<String> = group.consumers().iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, vec!["a", "b"], "kept in id order");
}

#[test]
fn payload_and_fields_reach_the_consumer() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let (tx, rx) = crossbeam_channel::unbounded();
    group
        .register(ConsumerSpec::push("a", move |d: &Delivery| {
            tx.send((
                d.message().payload().map(<[u8]>::to_vec),
                d.message().fields_json(),
            ))
            .unwrap();
            Verdict::Ack
        }))
        .unwrap();
    let message = Message::new()
        .with("tenant", FieldValue::Text("acme".into()))
        .with("x", FieldValue::Double(f64::NAN))
        .with_payload(b"hello".to_vec());
    group.dispatch(message).unwrap();
    let (payload, json) = rx.recv_timeout(HANG).unwrap();
    assert_eq!(payload.as_deref(), Some(&b"hello"[..]));
    assert_eq!(json, r#"{"tenant":"acme","x":null}"#);
}

#[test]
fn crash_while_holding_reroutes_excludes_and_reports() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    let (crash_tx, crash_rx) = crash_channel();
    group
        .register(
            crashing("a", &log).on_crash(move |report| crash_tx.send(report.clone()).unwrap()),
        )
        .unwrap();
    group.register(acking("b", &log)).unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!(outcome.rerouted_from, vec!["a"]);
    assert_eq!(outcome.reroute_timings.len(), 1);
    assert_eq!(outcome.attempts, 2);
    let report = crash_rx.recv_timeout(HANG).unwrap();
    assert_eq!(report.consumer_id, "a");
    assert_eq!(report.reason, "test crash");
    let entries = log.0.lock().unwrap().clone();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].0.as_str(), entries[0].2, entries[0].3),
        ("a", 1, false)
    );
    assert_eq!(
        (entries[1].0.as_str(), entries[1].2, entries[1].3),
        ("b", 2, true)
    );
    assert!(
        group.consumer("a").is_none(),
        "a dead consumer leaves its group"
    );
    let next = group.dispatch(msg(2)).unwrap();
    assert_eq!(next.delivered_to, "b");
    let metrics = runtime.metrics();
    assert_eq!(metrics.consumer_crashes, 1);
    assert_eq!(metrics.rerouted, 1);
    assert_eq!(metrics.delivered, 2);
    assert_eq!(metrics.reroute_latency.count, 1);
}

#[test]
fn panicking_handler_is_a_crash() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    let (crash_tx, crash_rx) = crash_channel();
    group
        .register(
            ConsumerSpec::push("a", |_d: &Delivery| -> Verdict { panic!("boom") })
                .on_crash(move |report| crash_tx.send(report.clone()).unwrap()),
        )
        .unwrap();
    group.register(acking("b", &log)).unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!(outcome.rerouted_from, vec!["a"]);
    let report = crash_rx.recv_timeout(HANG).unwrap();
    assert!(report.reason.contains("boom"), "{}", report.reason);
}

#[test]
fn consumer_dead_when_selected_is_rerouted_past() {
    let runtime = runtime();
    let log = Log::default();
    let (crash_tx, crash_rx) = crash_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let victim: Arc<std::sync::Mutex<Option<liminal::Consumer>>> = Arc::default();
    let routing = {
        let calls = Arc::clone(&calls);
        let victim = Arc::clone(&victim);
        runtime.load_routing(b"dead-when-selected", "prefer-a", move |_m, views| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // Kill "a" and wait until the watcher has processed its EXIT,
                // then select it anyway: the forward must find it dead.
                let a = victim.lock().unwrap().clone().unwrap();
                a.crash("killed before forward").unwrap();
                crash_rx.recv_timeout(HANG).unwrap();
                assert!(views.iter().any(|v| &*v.id == "a"));
                return Some("a".into());
            }
            views.first().map(|v| v.id.to_string())
        })
    };
    let group = runtime.group(routing, GroupOptions::default()).unwrap();
    let a = group
        .register(acking("a", &log).on_crash(move |r| crash_tx.send(r.clone()).unwrap()))
        .unwrap();
    *victim.lock().unwrap() = Some(a);
    group.register(acking("b", &log)).unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "b");
    assert!(outcome.rerouted_from.is_empty(), "never held by a");
    assert_eq!(log.consumers(), vec!["b"]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn errors_of_selection() {
    let runtime = runtime();
    // Nobody to take it: the message waits, until its deadline.
    let empty = group(&runtime, Builtin::LeastLoaded);
    let short = DispatchOptions {
        deadline: Some(Duration::from_millis(30)),
        ..DispatchOptions::default()
    };
    let err = empty.dispatch_with(msg(1), &short).unwrap_err();
    assert_eq!(err.dispatch_error(), Some(&DispatchError::Expired));
    assert_eq!(empty.waiting(), 0, "an expired message leaves the room");

    let log = Log::default();
    let unknown = runtime.load_routing(b"unknown", "ghost", |_m, _v| Some("ghost".into()));
    let group = runtime.group(unknown, GroupOptions::default()).unwrap();
    group.register(acking("a", &log)).unwrap();
    let err = group.dispatch(msg(1)).unwrap_err();
    assert_eq!(
        err.dispatch_error(),
        Some(&DispatchError::UnknownConsumerSelected("ghost".into()))
    );
    // A router that selects nobody leaves the message waiting, here until
    // the blocking caller's own timeout withdraws it.
    group
        .deploy(runtime.load_routing(b"none", "none", |_m, _v| None))
        .unwrap();
    let impatient = DispatchOptions {
        timeout: Some(Duration::from_millis(30)),
        ..DispatchOptions::default()
    };
    let err = group.dispatch_with(msg(1), &impatient).unwrap_err();
    assert_eq!(err.dispatch_error(), Some(&DispatchError::TimedOut));
    assert!(log.consumers().is_empty());
    let metrics = runtime.metrics();
    assert_eq!((metrics.expired, metrics.timed_out), (1, 1));
}

#[test]
fn bad_registrations_are_refused() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let log = Log::default();
    assert!(matches!(
        group.register(acking("", &log)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        group.register(acking("a", &log).max_in_flight(0)),
        Err(Error::InvalidArgument(_))
    ));
    group.register(acking("a", &log)).unwrap();
    assert!(matches!(
        group.register(acking("a", &log)),
        Err(Error::DuplicateConsumer(_))
    ));
    assert_eq!(group.len(), 1);
    assert!(matches!(
        runtime.group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions {
                max_attempts: 0,
                ..GroupOptions::default()
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn blocking_dispatch_from_a_callback_is_refused() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let (tx, rx) = crossbeam_channel::unbounded();
    let inner = group.clone();
    group
        .register(ConsumerSpec::push("a", move |_d: &Delivery| {
            tx.send(inner.dispatch(msg(9)).map(|_| ())).unwrap();
            Verdict::Ack
        }))
        .unwrap();
    group.dispatch(msg(1)).unwrap();
    assert!(matches!(
        rx.recv_timeout(HANG).unwrap(),
        Err(Error::WouldDeadlock(_))
    ));
}
