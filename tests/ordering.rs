//! Ordered keys, flow by flow: a key waits for its head while other keys
//! pass; every path back (crash, release with and without delay, lease
//! expiry, leave) returns the head to the front of its key; a dead-lettered
//! or expired head lets its key move on; bad keys are refused with nothing
//! dispatched; routing functions and consumers see the key; statistics and
//! the listing of waiting keys. Synchronised on events, never on time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{runtime, HANG};
use crossbeam_channel::{unbounded, Receiver};
use liminal::{
    Builtin, ConsumerSpec, Delivery, DispatchError, DispatchOptions, Error, FieldValue, Group,
    GroupOptions, Message, RoutingFunction, Runtime, Verdict, ORDERING_KEY_MAX,
};

fn keyed_group(runtime: &Runtime, options: GroupOptions) -> Group {
    runtime
        .group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions {
                key_field: Some("account".into()),
                ..options
            },
        )
        .expect("group")
}

fn event(account: &str, n: i64) -> Message {
    Message::new()
        .with("account", FieldValue::Text(account.into()))
        .with("n", FieldValue::Int(n))
}

/// A consumer that defers everything and hands each delivery to the test.
fn deferring(group: &Group, id: &str) -> Receiver<Delivery> {
    let (sender, receiver) = unbounded();
    group
        .register(
            ConsumerSpec::push(id, move |d: &Delivery| {
                let _ = sender.send(d.clone());
                Verdict::Defer
            })
            .max_in_flight(8),
        )
        .expect("consumer");
    receiver
}

fn name(d: &Delivery) -> (String, i64) {
    let m = d.message();
    let account = m
        .get("account")
        .and_then(FieldValue::as_text)
        .unwrap_or("-");
    let Some(FieldValue::Int(n)) = m.get("n") else {
        panic!("no n")
    };
    (account.to_owned(), *n)
}

fn dispatch(group: &Group, message: Message) -> Receiver<liminal::DispatchResult> {
    let (sender, receiver) = unbounded();
    group
        .dispatch_async(
            message,
            Box::new(move |r| {
                let _ = sender.send(r);
            }),
        )
        .expect("accepted");
    receiver
}

#[test]
fn a_key_waits_for_its_head_while_other_keys_pass() {
    let runtime = runtime();
    // The test answers from outside the callbacks, which may still be
    // running: a crash then counts as "died handling it". Attempts are not
    // what this test is about.
    let group = keyed_group(
        &runtime,
        GroupOptions {
            max_attempts: 10,
            ..GroupOptions::default()
        },
    );
    let deliveries = deferring(&group, "c1");
    let _a1 = dispatch(&group, event("a", 1));
    let _a2 = dispatch(&group, event("a", 2));
    let _a3 = dispatch(&group, event("a", 3));
    let _b1 = dispatch(&group, event("b", 1));
    let _free = dispatch(&group, Message::new().with("n", FieldValue::Int(9)));
    let mut seen: Vec<Delivery> = (0..3)
        .map(|_| deliveries.recv_timeout(HANG).unwrap())
        .collect();
    let names: Vec<(String, i64)> = seen.iter().map(name).collect();
    assert_eq!(
        names,
        [("a".into(), 1), ("b".into(), 1), ("-".into(), 9)],
        "the key's head, the other key and the unordered message pass; a2 and a3 wait"
    );
    assert_eq!(group.waiting(), 2);
    let stats = group.ordering_stats();
    assert_eq!(
        (stats.keys, stats.keys_waiting, stats.longest_key_queue),
        (2, 1, 3)
    );
    let listed = group.waiting_keys(10);
    assert_eq!(listed.total, 1);
    assert_eq!(&*listed.keys[0].key, "a");
    assert_eq!(listed.keys[0].depth, 3);
    assert_eq!(seen[0].message().ordering_key(), Some("a"));
    assert_eq!(seen[2].message().ordering_key(), None);

    seen[0].token().ack().unwrap();
    let a2 = deliveries.recv_timeout(HANG).unwrap();
    assert_eq!(name(&a2), ("a".into(), 2));
    seen.push(a2);
    a_head_goes_back_to_the_front_of_its_key(&group, &deliveries, seen);
}

/// a2 is out; a3 waits behind it. Each path back re-delivers a2, never a3.
fn a_head_goes_back_to_the_front_of_its_key(
    group: &Group,
    deliveries: &Receiver<Delivery>,
    seen: Vec<Delivery>,
) {
    let a2 = seen.last().unwrap().clone();
    // Release without a delay: the same consumer is excluded, so a second
    // consumer takes it.
    let second = deferring(group, "c2");
    a2.token().release(Duration::ZERO).unwrap();
    let again = second.recv_timeout(HANG).unwrap();
    assert_eq!(name(&again), ("a".into(), 2));
    assert!(again.redelivered());
    // Release with a delay: it waits on its timer, a3 still behind it.
    let third = deferring(group, "c3");
    again.token().release(Duration::from_millis(1)).unwrap();
    let later = third.recv_timeout(HANG).unwrap();
    assert_eq!(name(&later), ("a".into(), 2));
    // A crash of its holder: back again, to a new consumer.
    let fourth = deferring(group, "c4");
    group.consumer("c3").unwrap().crash("test").unwrap();
    let after_crash = fourth.recv_timeout(HANG).unwrap();
    assert_eq!(name(&after_crash), ("a".into(), 2));
    assert_eq!(group.waiting_keys(10).keys[0].depth, 2);
    // Its holder leaves: back again (not counted as a failure).
    let fifth = deferring(group, "c5");
    group.consumer("c4").unwrap().leave().unwrap();
    let after_leave = fifth.recv_timeout(HANG).unwrap();
    assert_eq!(name(&after_leave), ("a".into(), 2));
    after_leave.token().ack().unwrap();
    let a3 = crossbeam_channel::select! {
        recv(deliveries) -> d => d,
        recv(second) -> d => d,
        recv(fifth) -> d => d,
        default(HANG) => panic!("a3 not delivered"),
    }
    .expect("a3 delivered");
    assert_eq!(name(&a3), ("a".into(), 3));
    assert_eq!(group.ordering_stats().keys_waiting, 0);
}

#[test]
fn a_lease_expiry_returns_the_head_to_the_front_of_its_key() {
    let runtime = runtime();
    let group = keyed_group(
        &runtime,
        GroupOptions {
            ack_lease: Some(Duration::from_millis(20)),
            ..GroupOptions::default()
        },
    );
    let sitter = deferring(&group, "sitter");
    let _a1 = dispatch(&group, event("a", 1));
    let _a2 = dispatch(&group, event("a", 2));
    assert_eq!(name(&sitter.recv_timeout(HANG).unwrap()), ("a".into(), 1));
    let (sender, taker) = unbounded();
    group
        .register(ConsumerSpec::push("taker", move |d: &Delivery| {
            let _ = sender.send(name(d));
            Verdict::Ack
        }))
        .unwrap();
    assert_eq!(taker.recv_timeout(HANG).unwrap(), ("a".into(), 1));
    assert_eq!(taker.recv_timeout(HANG).unwrap(), ("a".into(), 2));
}

#[test]
fn a_dead_lettered_head_lets_its_key_move_on_with_the_reason() {
    let runtime = runtime();
    let group = keyed_group(
        &runtime,
        GroupOptions {
            max_attempts: 1,
            ..GroupOptions::default()
        },
    );
    let dead = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&dead);
    group
        .set_dead_letter_handler(Some(Arc::new(move |m: &Arc<Message>, f| {
            log.lock()
                .unwrap()
                .push((m.ordering_key().map(str::to_owned), f.error.clone()));
        })))
        .unwrap();
    let (sender, handled) = unbounded();
    group
        .register(ConsumerSpec::push("c", move |d: &Delivery| {
            let (_, n) = name(d);
            let _ = sender.send(n);
            if n == 1 {
                Verdict::Release(Duration::ZERO)
            } else {
                Verdict::Ack
            }
        }))
        .unwrap();
    let first = dispatch(&group, event("a", 1));
    let second = dispatch(&group, event("a", 2));
    let failure = first.recv_timeout(HANG).unwrap().unwrap_err();
    assert_eq!(failure.error, DispatchError::AttemptsExhausted(1));
    assert!(second.recv_timeout(HANG).unwrap().is_ok());
    assert_eq!(handled.try_iter().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        *dead.lock().unwrap(),
        [(Some("a".to_owned()), DispatchError::AttemptsExhausted(1))]
    );
}

/// With `hold_failed_keys`, a key whose head is dead-lettered waits for the
/// host: its next message is not delivered (while another key's are) until
/// `release_key`, which the dead-letter handler may call itself.
#[test]
fn a_held_key_waits_after_its_head_fails_until_the_host_releases_it() {
    let runtime = runtime();
    let group = keyed_group(
        &runtime,
        GroupOptions {
            max_attempts: 1,
            hold_failed_keys: true,
            ..GroupOptions::default()
        },
    );
    let (dead_tx, dead_rx) = unbounded();
    group
        .set_dead_letter_handler(Some(Arc::new(move |m: &Arc<Message>, _f| {
            let _ = dead_tx.send(m.ordering_key().map(str::to_owned));
        })))
        .unwrap();
    let (sender, handled) = unbounded();
    group
        .register(ConsumerSpec::push("c", move |d: &Delivery| {
            let (account, n) = name(d);
            let _ = sender.send((account, n));
            if n == 1 {
                Verdict::Release(Duration::ZERO)
            } else {
                Verdict::Ack
            }
        }))
        .unwrap();
    let first = dispatch(&group, event("a", 1));
    let second = dispatch(&group, event("a", 2));
    assert!(first.recv_timeout(HANG).unwrap().is_err());
    assert_eq!(dead_rx.recv_timeout(HANG).unwrap().as_deref(), Some("a"));
    // Key b passes; a's next message is held back.
    let other = dispatch(&group, event("b", 3));
    assert!(other.recv_timeout(HANG).unwrap().is_ok());
    assert_eq!(group.ordering_stats().keys_held, 1);
    assert!(second.try_recv().is_err(), "a held key moved on");
    assert_eq!(
        handled.try_iter().collect::<Vec<_>>(),
        [("a".to_owned(), 1), ("b".to_owned(), 3)]
    );
    assert!(!group.release_key("b"), "b is not held");
    assert!(group.release_key("a"));
    assert!(second.recv_timeout(HANG).unwrap().is_ok());
    assert_eq!(handled.recv_timeout(HANG).unwrap(), ("a".to_owned(), 2));
    assert_eq!(group.ordering_stats().keys_held, 0);
    assert!(!group.release_key("a"), "released once");
}

/// The dead-letter handler itself may release the key it was told about:
/// the key is held before the handler runs.
#[test]
fn a_dead_letter_handler_can_release_the_key_it_is_told_about() {
    let runtime = runtime();
    let group = keyed_group(
        &runtime,
        GroupOptions {
            max_attempts: 1,
            hold_failed_keys: true,
            ..GroupOptions::default()
        },
    );
    let (released_tx, released_rx) = unbounded();
    let releaser = group.clone();
    group
        .set_dead_letter_handler(Some(Arc::new(move |m: &Arc<Message>, _f| {
            let key = m.ordering_key().unwrap_or_default();
            let _ = released_tx.send(releaser.release_key(key));
        })))
        .unwrap();
    group
        .register(ConsumerSpec::push("c", |d: &Delivery| {
            if name(d).1 == 1 {
                Verdict::Release(Duration::ZERO)
            } else {
                Verdict::Ack
            }
        }))
        .unwrap();
    let first = dispatch(&group, event("a", 1));
    let second = dispatch(&group, event("a", 2));
    assert!(first.recv_timeout(HANG).unwrap().is_err());
    assert!(
        released_rx.recv_timeout(HANG).unwrap(),
        "the key was held when the handler ran"
    );
    assert!(second.recv_timeout(HANG).unwrap().is_ok());
    group.close();
}

/// Sticky keys: a key keeps going to the consumer it first went to while
/// that one has room, though the routing function (least loaded) would
/// choose another; when it is gone, the routing function chooses again.
#[test]
fn a_sticky_key_stays_with_its_consumer_while_it_lives_and_has_room() {
    let runtime = runtime();
    let group = keyed_group(
        &runtime,
        GroupOptions {
            sticky_keys: true,
            ..GroupOptions::default()
        },
    );
    let (sender, handled) = unbounded::<Delivery>();
    let mut consumers = Vec::new();
    for id in ["c1", "c2"] {
        let sender = sender.clone();
        consumers.push(
            group
                .register(
                    ConsumerSpec::push(id, move |d: &Delivery| {
                        let _ = sender.send(d.clone());
                        // Number 0 is kept until the test answers it.
                        if name(d).1 == 0 {
                            Verdict::Defer
                        } else {
                            Verdict::Ack
                        }
                    })
                    .max_in_flight(4),
                )
                .unwrap(),
        );
    }
    let next = || {
        let d = handled.recv_timeout(HANG).unwrap();
        let (account, n) = name(&d);
        (d.consumer_id().to_owned(), account, n, d)
    };
    // c1 keeps b/0, so a/1 goes to the least loaded: c2.
    let _b0 = dispatch(&group, event("b", 0));
    let (who, _, _, b0) = next();
    assert_eq!(who, "c1");
    assert!(dispatch(&group, event("a", 1))
        .recv_timeout(HANG)
        .unwrap()
        .is_ok());
    assert_eq!(next().0, "c2");
    // c2 keeps c/0 and c1 lets b/0 go: c1 is now the least loaded, yet
    // key a stays with c2 (it has room).
    let _c0 = dispatch(&group, event("c", 0));
    let (who, _, _, c0) = next();
    assert_eq!(who, "c2");
    b0.token().ack().unwrap();
    for n in 2..8 {
        assert!(dispatch(&group, event("a", n))
            .recv_timeout(HANG)
            .unwrap()
            .is_ok());
        let (who, account, got, _) = next();
        assert_eq!((account.as_str(), got), ("a", n));
        assert_eq!(who, "c2", "key a left the consumer it sticks to");
    }
    // A key without history goes to the least loaded (c1).
    assert!(dispatch(&group, event("d", 1))
        .recv_timeout(HANG)
        .unwrap()
        .is_ok());
    assert_eq!(next().0, "c1");
    // c2 leaves: key a goes where the routing function says.
    c0.token().ack().unwrap();
    consumers[1].leave().unwrap();
    assert!(dispatch(&group, event("a", 8))
        .recv_timeout(HANG)
        .unwrap()
        .is_ok());
    assert_eq!(next().0, "c1");
}

#[test]
fn a_message_expiring_behind_its_key_leaves_and_the_key_keeps_its_order() {
    let runtime = runtime();
    let group = keyed_group(&runtime, GroupOptions::default());
    let deliveries = deferring(&group, "c");
    let _a1 = dispatch(&group, event("a", 1));
    let (sender, expired) = unbounded();
    group
        .dispatch_async_with(
            event("a", 2),
            &DispatchOptions {
                deadline: Some(Duration::from_millis(5)),
                ..DispatchOptions::default()
            },
            Box::new(move |r| {
                let _ = sender.send(r);
            }),
        )
        .unwrap();
    let _a3 = dispatch(&group, event("a", 3));
    let a1 = deliveries.recv_timeout(HANG).unwrap();
    let failure = expired.recv_timeout(HANG).unwrap().unwrap_err();
    assert_eq!(failure.error, DispatchError::Expired);
    assert_eq!(
        group.waiting_keys(1).keys[0].depth,
        2,
        "a1 out, a3 behind it"
    );
    a1.token().ack().unwrap();
    assert_eq!(
        name(&deliveries.recv_timeout(HANG).unwrap()),
        ("a".into(), 3)
    );
}

#[test]
fn explicit_keys_order_messages_without_a_key_field() {
    let runtime = runtime();
    let group = common::group(&runtime, Builtin::FirstWithCapacity);
    let deliveries = deferring(&group, "c");
    let keyed = |n: i64| {
        let (sender, _) = unbounded();
        group
            .dispatch_async_with(
                Message::new().with("n", FieldValue::Int(n)),
                &DispatchOptions {
                    key: Some("k".into()),
                    ..DispatchOptions::default()
                },
                Box::new(move |r| {
                    let _ = sender.send(r);
                }),
            )
            .unwrap();
    };
    keyed(1);
    keyed(2);
    let first = deliveries.recv_timeout(HANG).unwrap();
    assert_eq!(first.message().ordering_key(), Some("k"));
    assert_eq!(group.waiting(), 1);
    first.token().ack().unwrap();
    let second = deliveries.recv_timeout(HANG).unwrap();
    assert_eq!(name(&second).1, 2);
}

#[test]
fn host_routing_functions_see_the_key() {
    let runtime = runtime();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let function = runtime.load_routing(b"sees-keys", "sees-keys", move |m, views| {
        log.lock()
            .unwrap()
            .push(m.ordering_key().map(str::to_owned));
        views
            .iter()
            .find(|v| v.has_capacity())
            .map(|v| v.id.to_string())
    });
    let group = runtime
        .group(
            function,
            GroupOptions {
                key_field: Some("account".into()),
                ..GroupOptions::default()
            },
        )
        .unwrap();
    group
        .register(common::acking("c", &common::Log::default()))
        .unwrap();
    group.dispatch(event("a", 1)).unwrap();
    group
        .dispatch(Message::new().with("account", FieldValue::Int(42)))
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [Some("a".into()), Some("42".into())]);
}

#[test]
fn bad_keys_are_refused_with_nothing_dispatched() {
    let runtime = runtime();
    let group = keyed_group(&runtime, GroupOptions::default());
    let refused = |message: Message, key: Option<String>| {
        let options = DispatchOptions {
            key,
            ..DispatchOptions::default()
        };
        match group.dispatch_async_with(message, &options, Box::new(|_| panic!("completed"))) {
            Err(Error::InvalidArgument(detail)) => detail,
            other => panic!("accepted: {other:?}"),
        }
    };
    assert!(refused(event("a", 1), Some(String::new())).contains("empty"));
    let long = "x".repeat(ORDERING_KEY_MAX + 1);
    assert!(refused(event("a", 1), Some(long)).contains("limit"));
    assert!(refused(
        Message::new().with("account", FieldValue::Double(1.5)),
        None
    )
    .contains("double"));
    assert!(
        refused(Message::new().with("account", FieldValue::Bool(true)), None).contains("boolean")
    );
    assert!(refused(
        Message::new().with("account", FieldValue::Text(String::new())),
        None
    )
    .contains("empty"));
    let stats = runtime.stats();
    assert_eq!(stats.metrics.dispatched, 0);
    assert_eq!(group.in_flight(), 0);
    // A group that auto-acknowledges cannot keep order.
    let options = GroupOptions {
        key_field: Some("account".into()),
        auto_ack_after: Some(Duration::from_millis(1)),
        ..GroupOptions::default()
    };
    let refused_group = runtime.group(RoutingFunction::builtin(Builtin::LeastLoaded), options);
    assert!(matches!(refused_group, Err(Error::InvalidArgument(_))));
    let auto = runtime
        .group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions {
                auto_ack_after: Some(Duration::from_millis(1)),
                ..GroupOptions::default()
            },
        )
        .unwrap();
    let keyed = DispatchOptions {
        key: Some("k".into()),
        ..DispatchOptions::default()
    };
    assert!(matches!(
        auto.dispatch_async_with(Message::new(), &keyed, Box::new(|_| {})),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn stats_report_the_keys_in_json_and_prometheus() {
    let runtime = runtime();
    let group = keyed_group(
        &runtime,
        GroupOptions {
            name: Some("orders".into()),
            ..GroupOptions::default()
        },
    );
    let deliveries = deferring(&group, "c");
    let _receivers: Vec<_> = (1..=3).map(|n| dispatch(&group, event("a", n))).collect();
    let head = deliveries.recv_timeout(HANG).unwrap();
    let stats = runtime.stats();
    let json: serde_json::Value = serde_json::from_str(&stats.to_json()).unwrap();
    let g = &json["groups"][0];
    assert_eq!(g["liminal.ordering.keys"], 1);
    assert_eq!(g["liminal.ordering.keys_waiting"], 1);
    assert_eq!(g["liminal.ordering.longest_key_queue"], 3);
    assert!(g["liminal.ordering.oldest_head_age_ns"].is_u64());
    let text = stats.to_prometheus();
    assert!(text.contains("liminal_ordering_keys_waiting{messaging_system=\"liminal\",messaging_consumer_group_name=\"orders\"} 1"));
    assert!(text.contains("liminal_ordering_longest_key_queue{messaging_system=\"liminal\",messaging_consumer_group_name=\"orders\"} 3"));
    head.token().ack().unwrap();
}
