//! Ordered keys across a remote worker's death (feature `remote`): a worker
//! process holding the head of a key is `kill -9`ed; through the one crash
//! funnel the head goes back to the front of its key, and a local consumer
//! in the same group then takes the key in order.
#![cfg(feature = "remote")]

mod common;

use std::time::Duration;

use common::remote::*;
use common::*;
use crossbeam_channel::unbounded;
use liminal::{ConsumerSpec, CrashKind, Delivery, FieldValue, GroupOptions, Message, Verdict};

const SECOND: Duration = Duration::from_secs(1);

/// Not a test: the body of a worker process (see `common::remote`).
#[test]
fn worker_process() {
    worker_main();
}

fn event(account: &str, n: i64) -> Message {
    Message::new()
        .with("account", FieldValue::Text(account.into()))
        .with("n", FieldValue::Int(n))
}

#[test]
fn a_killed_worker_holding_a_keys_head_gives_it_back_to_the_front_of_its_key() {
    let options = GroupOptions {
        key_field: Some("account".into()),
        ..GroupOptions::default()
    };
    let host = Host::open("ordered", options, SECOND);
    let mut holder = WorkerProcess::spawn(&host.endpoint, "ordered", "remote", "hold", SECOND);
    holder.expect("joined");
    let (done, results) = completions();
    let mut ids = Vec::new();
    for (account, n) in [("a", 1), ("a", 2), ("a", 3), ("b", 1)] {
        let done = done.clone();
        ids.push(
            host.group
                .dispatch_async(
                    event(account, n),
                    Box::new(move |r| {
                        let id = match &r {
                            Ok(outcome) => outcome.trail.dispatch_id,
                            Err(failure) => failure.trail.dispatch_id,
                        };
                        drop(done.send((id, r)));
                    }),
                )
                .unwrap(),
        );
    }
    // The worker holds the heads a1 and b1; a2 and a3 wait behind a1.
    holder.expect("held");
    holder.expect("held");
    assert_eq!(host.group.waiting(), 2);
    assert_eq!(host.group.waiting_keys(4).keys[0].depth, 3);

    let (seen, order) = unbounded();
    host.group
        .register(ConsumerSpec::push("local", move |d: &Delivery| {
            let m = d.message();
            let Some(FieldValue::Int(n)) = m.get("n") else {
                return Verdict::Crash("no n".into());
            };
            let _ = seen.send((m.ordering_key().unwrap_or("-").to_owned(), *n));
            Verdict::Ack
        }))
        .unwrap();
    assert_eq!(
        host.group.waiting(),
        2,
        "nothing of key a passes its held head"
    );
    let _killed = holder.kill_9();
    let results = collect(&ids, &results);
    let report = host.crashes.recv_timeout(HANG).expect("crash reported");
    assert_eq!(report.kind, CrashKind::ConnectionLost, "{report:?}");
    let handled: Vec<(String, i64)> = order.try_iter().collect();
    let of = |key: &str| -> Vec<i64> {
        handled
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| *n)
            .collect()
    };
    assert_eq!(of("a"), [1, 2, 3]);
    assert_eq!(of("b"), [1]);
    for id in &ids[..1] {
        let outcome = results[id].as_ref().expect("delivered");
        assert_eq!(outcome.delivered_to, "local");
        assert_eq!(outcome.trail.rerouted_from, ["remote"]);
    }
    assert!(results.values().all(Result::is_ok));
    assert_eq!(
        host.group.ordering_stats().keys,
        0,
        "nothing kept for idle keys"
    );
}
