//! Routing functions: supervision (panic, timeout), hot deployment, identity,
//! built-ins.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use liminal::{
    Builtin, ConsumerSpec, Delivery, DispatchError, FieldValue, GroupOptions, Message,
    RoutingError, RoutingFunction, Runtime, RuntimeOptions, Verdict,
};

#[test]
fn routing_panic_is_contained_and_the_next_dispatch_is_healthy() {
    let runtime = runtime();
    let log = Log::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let routing = {
        let calls = Arc::clone(&calls);
        runtime.load_routing(b"panics-once", "panics-once", move |_m, views| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("routing bug");
            }
            views.first().map(|v| v.id.to_string())
        })
    };
    let hash = routing.hash();
    let group = runtime.group(routing, GroupOptions::default()).unwrap();
    group.register(acking("a", &log)).unwrap();
    let err = group.dispatch(msg(1)).unwrap_err();
    assert_eq!(
        err.dispatch_error(),
        Some(&DispatchError::Routing(RoutingError::Crashed(hash)))
    );
    for n in 0..20 {
        assert_eq!(group.dispatch(msg(n)).unwrap().delivered_to, "a");
    }
    assert_eq!(runtime.metrics().routing_failures, 1);
    assert_eq!(log.consumers().len(), 20);
}

#[test]
fn routing_timeout_is_contained_and_does_not_hold_up_later_dispatches() {
    let runtime = Runtime::new(RuntimeOptions {
        routing_timeout: Duration::from_millis(100),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let log = Log::default();
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    let stuck = runtime.load_routing(b"stuck", "stuck", move |_m, _v| {
        let _ = release_rx.recv();
        None
    });
    let hash = stuck.hash();
    let group = runtime.group(stuck, GroupOptions::default()).unwrap();
    group.register(acking("a", &log)).unwrap();
    let err = group.dispatch(msg(1)).unwrap_err();
    assert_eq!(
        err.dispatch_error(),
        Some(&DispatchError::Routing(RoutingError::TimedOut(hash)))
    );
    assert_eq!(runtime.abandoned_routing_lanes(), 1);
    // The stuck lane is still stuck; a healthy host function runs elsewhere.
    group
        .deploy(runtime.load_routing(b"healthy", "healthy", |_m, v| {
            v.first().map(|c| c.id.to_string())
        }))
        .unwrap();
    for n in 0..10 {
        assert_eq!(group.dispatch(msg(n)).unwrap().delivered_to, "a");
    }
    release_tx.send(()).unwrap();
    runtime.shutdown().unwrap();
}

/// A host routing function that answers `choice` once the test lets it:
/// each call waits on `entered` (the test sees it running), then on
/// `release`.
fn held_routing(
    runtime: &Runtime,
    name: &str,
    choice: Option<&str>,
) -> (RoutingFunction, Arc<Barrier>, Arc<Barrier>) {
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let choice = choice.map(str::to_owned);
    let function = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        runtime.load_routing(name.as_bytes(), name, move |_m, _v| {
            entered.wait();
            release.wait();
            choice.clone()
        })
    };
    (function, entered, release)
}

#[test]
fn hot_deploy_keeps_the_in_flight_version() {
    let runtime = runtime();
    let log = Log::default();
    let (v1, entered, release) = held_routing(&runtime, "v1", Some("a"));
    let v2 = runtime.load_routing(b"v2", "v2", |_m, _v| Some("b".into()));
    let group = runtime.group(v1, GroupOptions::default()).unwrap();
    group.register(acking("a", &log)).unwrap();
    group.register(acking("b", &log)).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    group
        .dispatch_async(msg(1), Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    entered.wait();
    let old = group.deploy(v2.clone()).unwrap();
    assert_eq!(old.name(), "v1");
    release.wait();
    assert_eq!(rx.recv_timeout(HANG).unwrap().unwrap().delivered_to, "a");
    assert_eq!(group.dispatch(msg(2)).unwrap().delivered_to, "b");
    assert!(group.routing().same_as(&v2));
}

/// A built-in deployed while a host function is deciding on the only
/// waiting message: the host function picks nobody, the message goes back
/// to the room after the deploy's own placement ran, and the built-in must
/// still place it (nothing else will change: one consumer with room).
#[test]
fn a_built_in_deployed_mid_evaluation_places_what_the_host_function_declined() {
    let runtime = runtime();
    let log = Log::default();
    let (nobody, entered, release) = held_routing(&runtime, "nobody", None);
    let group = runtime.group(nobody, GroupOptions::default()).unwrap();
    group.register(acking("a", &log)).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    group
        .dispatch_async(msg(1), Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    entered.wait();
    group
        .deploy(RoutingFunction::builtin(Builtin::FirstWithCapacity))
        .unwrap();
    release.wait();
    let outcome = rx.recv_timeout(HANG).expect("placed by the built-in");
    assert_eq!(outcome.unwrap().delivered_to, "a");
}

#[test]
fn identical_identity_bytes_load_once() {
    let runtime = runtime();
    let first = runtime.load_routing(b"same bytes", "first", |_m, _v| None);
    let second = runtime.load_routing(b"same bytes", "second", |_m, _v| Some("x".into()));
    assert!(first.same_as(&second));
    assert_eq!(second.name(), "first");
    assert_eq!(first.hash(), liminal::content_hash(b"same bytes"));
    let other = runtime.load_routing(b"other bytes", "other", |_m, _v| None);
    assert!(!first.same_as(&other));
    assert_ne!(first.hash(), other.hash());
    assert_eq!(
        RoutingFunction::builtin(Builtin::LeastLoaded).hash(),
        RoutingFunction::builtin(Builtin::LeastLoaded).hash()
    );
}

#[test]
fn host_routing_sees_live_state() {
    let runtime = runtime();
    let (tx, rx) = crossbeam_channel::unbounded();
    let routing = runtime.load_routing(b"observe", "observe", move |_m, views| {
        tx.send(views.to_vec()).unwrap();
        Some("a".into())
    });
    let group = runtime.group(routing, GroupOptions::default()).unwrap();
    let a = group
        .register(
            ConsumerSpec::push("a", |_d: &Delivery| Verdict::Defer)
                .max_in_flight(5)
                .buffer_depth(3)
                .tags(["gpu"]),
        )
        .unwrap();
    group.dispatch_async(msg(1), Box::new(|_r| {})).unwrap();
    let first = rx.recv_timeout(HANG).unwrap();
    assert_eq!(first[0].in_flight, 0);
    a.update(Some(9), Some(vec!["cpu".into()])).unwrap();
    group.dispatch_async(msg(2), Box::new(|_r| {})).unwrap();
    let second = rx.recv_timeout(HANG).unwrap();
    let view = &second[0];
    assert_eq!(view.in_flight, 1, "the first delivery is still held");
    assert_eq!(view.available_capacity(), 4);
    assert_eq!(view.buffer_depth, 9);
    assert!(view.has_affinity("cpu") && !view.has_affinity("gpu"));
}

#[test]
fn least_loaded_and_max_in_flight() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<liminal::DeliveryToken>();
    let deferring = |id: &str| {
        let tok_tx = tok_tx.clone();
        ConsumerSpec::push(id, move |d: &Delivery| {
            tok_tx.send(d.token()).unwrap();
            Verdict::Defer
        })
        .max_in_flight(1)
    };
    let a = group.register(deferring("a")).unwrap();
    let b = group.register(deferring("b")).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    for n in 0..3 {
        let tx = tx.clone();
        group
            .dispatch_async(
                msg(n),
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            )
            .unwrap();
    }
    // Two held (one each), the third waits for capacity.
    let first = tok_rx.recv_timeout(HANG).unwrap();
    let _second = tok_rx.recv_timeout(HANG).unwrap();
    assert_eq!((a.in_flight().unwrap(), b.in_flight().unwrap()), (1, 1));
    assert_eq!(group.waiting(), 1);
    // An answer frees a slot: the waiting message takes it at once.
    first.ack().unwrap();
    let third = tok_rx.recv_timeout(HANG).unwrap();
    assert_eq!(group.waiting(), 0);
    assert_eq!(a.in_flight().unwrap() + b.in_flight().unwrap(), 2);
    assert!(rx.recv_timeout(HANG).unwrap().is_ok());
    third.ack().unwrap();
}

#[test]
fn affinity_routes_by_tag() {
    let runtime = runtime();
    let group = group(
        &runtime,
        Builtin::Affinity {
            field: "pool".into(),
        },
    );
    let log = Log::default();
    group.register(acking("a", &log).tags(["cpu"])).unwrap();
    group
        .register(acking("b", &log).tags(["gpu", "cpu"]))
        .unwrap();
    let gpu = Message::new().with("pool", FieldValue::Text("gpu".into()));
    assert_eq!(group.dispatch(gpu).unwrap().delivered_to, "b");
    // Nobody carries "tpu" yet: the message waits until someone does.
    let tpu = Message::new().with("pool", FieldValue::Text("tpu".into()));
    let (tx, rx) = crossbeam_channel::bounded(1);
    group
        .dispatch_async(tpu, Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    assert_eq!(group.waiting(), 1);
    group
        .consumer("a")
        .unwrap()
        .update(None, Some(vec!["cpu".into(), "tpu".into()]))
        .unwrap();
    assert_eq!(rx.recv_timeout(HANG).unwrap().unwrap().delivered_to, "a");
}

#[test]
fn sticky_key_keeps_its_consumer_and_moves_minimally() {
    let runtime = runtime();
    let group = group(
        &runtime,
        Builtin::StickyKey {
            field: "key".into(),
        },
    );
    let log = Log::default();
    for id in ["a", "b", "c", "d"] {
        group.register(acking(id, &log)).unwrap();
    }
    let key = |k: i64| Message::new().with("key", FieldValue::Int(k));
    let before: Vec<String> = (0..200)
        .map(|k| group.dispatch(key(k)).unwrap().delivered_to)
        .collect();
    let again: Vec<String> = (0..200)
        .map(|k| group.dispatch(key(k)).unwrap().delivered_to)
        .collect();
    assert_eq!(before, again, "a key keeps its consumer");
    group.consumer("c").unwrap().leave().unwrap();
    assert!(
        group.consumer("c").is_none(),
        "leaving takes effect at once"
    );
    let after: Vec<String> = (0..200)
        .map(|k| group.dispatch(key(k)).unwrap().delivered_to)
        .collect();
    for (old, new) in before.iter().zip(&after) {
        if old != "c" {
            assert_eq!(old, new, "only keys of the departed consumer move");
        } else {
            assert_ne!(new, "c");
        }
    }
    assert!(before.iter().any(|c| c == "c"));
}
