//! Ordered keys with remote workers (feature `remote`): a worker process
//! holding the head of a key is `kill -9`ed; through the one crash funnel
//! the head goes back to the front of its key, and a local consumer in the
//! same group then takes the key in order. Under chaos, local consumers and
//! remote workers mixed in one group keep every key in order (the checker
//! of `tests/common/chaos.rs`).
#![cfg(feature = "remote")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::chaos::{acker, chaotic, check, keyed, mix, tick, Record, Sent};
use common::remote::*;
use common::*;
use crossbeam_channel::unbounded;
use liminal::{
    ConsumerSpec, CrashKind, Delivery, DeliveryToken, FieldValue, GroupOptions, Message, Verdict,
    Worker, WorkerSpec,
};

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
    // The protocol carries each message's key to the worker.
    let mut held_keys: Vec<String> = (0..2)
        .map(|_| holder.expect("held").rsplit(' ').next().unwrap().to_owned())
        .collect();
    held_keys.sort();
    assert_eq!(held_keys, ["a", "b"]);
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

#[test]
fn local_consumers_and_remote_workers_in_one_group_keep_every_key_in_order() {
    const MESSAGES: usize = 4_000;
    const KEYS: usize = 100;
    let seed = 7;
    let group_options = GroupOptions {
        key_field: Some("key".into()),
        ..GroupOptions::default()
    };
    let host = Host::open("mixed", group_options, SECOND);
    let (records, recorded) = unbounded();
    let (deferred, tokens) = unbounded::<Option<(DeliveryToken, u64, u32)>>();
    let dead_records = records.clone();
    host.group
        .set_dead_letter_handler(Some(Arc::new(move |_m: &Arc<Message>, f| {
            let _ = dead_records.send(Record::Dead {
                dispatch: f.trail.dispatch_id,
                reason: f.error.clone(),
                at: tick(),
            });
        })))
        .unwrap();
    let acker = acker(tokens, records.clone());
    // Two workers in this process and two local consumers, each acking at
    // once or later and releasing; the crash is a worker process's kill -9.
    let workers: Vec<Worker> = (0..2u64)
        .map(|i| {
            let worker = Worker::connect(
                WorkerSpec {
                    group: "mixed".into(),
                    id: format!("worker-{i}"),
                    max_in_flight: 4,
                    tags: Vec::new(),
                    handler: Some(Box::new(chaotic(
                        seed + i,
                        records.clone(),
                        deferred.clone(),
                        false,
                    ))),
                },
                &options(None, Some(&host.endpoint), SECOND),
            )
            .expect("worker connects");
            worker.wait_joined(HANG).expect("joined");
            worker
        })
        .collect();
    let locals: Vec<_> = (0..2u64)
        .map(|i| {
            host.group
                .register(
                    ConsumerSpec::push(
                        format!("local-{i}"),
                        chaotic(seed + 10 + i, records.clone(), deferred.clone(), false),
                    )
                    .max_in_flight(4),
                )
                .unwrap()
        })
        .collect();
    let mut holder = WorkerProcess::spawn(&host.endpoint, "mixed", "holder", "hold", SECOND);
    holder.expect("joined");
    let (done, results) = completions();
    let mut sent = Sent::new();
    let mut ids = Vec::new();
    let mut next_seq = vec![0u64; KEYS];
    for n in 0..MESSAGES {
        let key = (mix(seed ^ n as u64) % KEYS as u64) as usize;
        let seq = next_seq[key];
        next_seq[key] += 1;
        let done = done.clone();
        let id = host
            .group
            .dispatch_async(
                keyed(key, seq),
                Box::new(move |r| {
                    let id = common::chaos::dispatch_id(&r);
                    drop(done.send((id, r)));
                }),
            )
            .expect("accepted");
        sent.insert(id, (key, seq));
        ids.push(id);
    }
    holder.expect("held");
    let _killed = holder.kill_9();
    let results = collect(&ids, &results);
    let _ = deferred.send(None);
    acker.join().unwrap();
    let dead_lettered = check(&sent, &results, recorded.try_iter().collect(), KEYS);
    let by_worker = results
        .values()
        .filter_map(|r| r.as_ref().ok())
        .filter(|o| o.delivered_to.starts_with("worker-"))
        .count();
    eprintln!(
        "{MESSAGES} messages over {KEYS} keys: {by_worker} acknowledged by remote workers, {dead_lettered} dead-lettered"
    );
    assert!(by_worker > 0, "the remote workers took part");
    let report = host.crashes.recv_timeout(HANG).expect("the holder's crash");
    assert_eq!(report.consumer_id, "holder");
    drop(locals);
    drop(workers);
}
