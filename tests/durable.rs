//! Durable groups: what a host accepted comes back after the host is gone,
//! in order, with its stable id; a store has one live holder; and a host
//! kill -9ed at random instants, again and again, loses nothing it
//! accepted.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::HANG;
use liminal::{
    Builtin, ConsumerSpec, Delivery, DispatchResult, Error, FieldValue, GroupOptions, Message,
    RecoveredHandler, RoutingFunction, Runtime, RuntimeOptions, StoreOptions, Verdict,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("liminal-durable-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ignore_recovered() -> RecoveredHandler {
    Arc::new(|_message: &Arc<Message>, _result: &DispatchResult| {})
}

fn number(message: &Message) -> i64 {
    match message.get("n") {
        Some(FieldValue::Int(n)) => *n,
        other => panic!("no n: {other:?}"),
    }
}

#[test]
fn accepted_messages_come_back_after_a_restart_in_key_order_with_their_ids() {
    let dir = scratch("restart");
    let store = StoreOptions::new(dir.join("store"));
    let options = GroupOptions {
        key_field: Some("k".into()),
        ..GroupOptions::default()
    };
    let routing = || RoutingFunction::builtin(Builtin::LeastLoaded);
    let (held_id, held_n) = {
        let runtime = common::runtime();
        let group = runtime
            .durable_group(
                routing(),
                options.clone(),
                store.clone(),
                ignore_recovered(),
            )
            .unwrap();
        for n in 0..20 {
            let key = if n % 2 == 0 { "a" } else { "b" };
            let message = Message::new()
                .with("n", FieldValue::Int(n))
                .with("k", FieldValue::Text(key.into()));
            group.dispatch_async(message, Box::new(|_| {})).unwrap();
        }
        let puller = group.register(ConsumerSpec::pull("p")).unwrap();
        let first = puller.next_delivery(HANG).unwrap();
        let acked = number(first.message());
        first.token().ack().unwrap();
        // The next one stays unanswered when the host goes.
        let held = puller.next_delivery(HANG).unwrap();
        assert_ne!(number(held.message()), acked);
        let held_id = held.message_id().into_owned();
        let held_n = number(held.message());
        runtime.shutdown().unwrap();
        (held_id, held_n)
    };
    let (sender, receiver) = crossbeam_channel::unbounded();
    let runtime = common::runtime();
    let handler: RecoveredHandler = Arc::new(move |message, result| {
        sender.send((number(message), result.is_ok())).unwrap();
    });
    let group = runtime
        .durable_group(routing(), options, store, handler)
        .unwrap();
    assert_eq!(group.store_stats().unwrap().recovered, 19);
    let stats = runtime.stats();
    let json: serde_json::Value = serde_json::from_str(&stats.to_json()).unwrap();
    let store = &json["groups"][0]["store"];
    assert_eq!(store["liminal.store.recovered"], 19, "{json}");
    assert_eq!(store["liminal.store.pending"], 19, "{json}");
    let text = stats.to_prometheus();
    assert!(
        text.lines()
            .any(|l| l.starts_with("liminal_store_recovered{") && l.ends_with(" 19")),
        "{text}"
    );
    let puller = group.register(ConsumerSpec::pull("p2")).unwrap();
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for _ in 0..19 {
        let delivery = puller.next_delivery(HANG).unwrap();
        let n = number(delivery.message());
        assert!(
            delivery.redelivered(),
            "a recovered message counts as redelivered"
        );
        if n == held_n {
            assert_eq!(
                delivery.message_id(),
                held_id,
                "the stable id survives the restart"
            );
        }
        let key = delivery.message().ordering_key().unwrap().to_owned();
        seen.entry(key).or_default().push(n);
        delivery.token().ack().unwrap();
    }
    for (key, numbers) in &seen {
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        assert_eq!(numbers, &sorted, "key {key} out of order");
    }
    assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 19);
    let mut ended = Vec::new();
    for _ in 0..19 {
        ended.push(receiver.recv_timeout(HANG).unwrap());
    }
    assert!(ended.iter().all(|(_, ok)| *ok));
    runtime.shutdown().unwrap();
    // Everything was acknowledged: nothing comes back a second time.
    let runtime = common::runtime();
    let group = runtime
        .durable_group(
            routing(),
            GroupOptions::default(),
            StoreOptions::new(dir.join("store")),
            ignore_recovered(),
        )
        .unwrap();
    assert_eq!(group.in_flight(), 0);
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn messages_left_in_the_store_when_the_group_closes_are_not_dead_letters() {
    let dir = scratch("not-dead");
    let store = StoreOptions::new(&dir);
    let routing = || RoutingFunction::builtin(Builtin::LeastLoaded);
    let runtime = common::runtime();
    for round in 0..2 {
        let group = runtime
            .durable_group(
                routing(),
                GroupOptions::default(),
                store.clone(),
                ignore_recovered(),
            )
            .unwrap();
        let (dead_tx, dead_rx) = crossbeam_channel::unbounded();
        group
            .set_dead_letter_handler(Some(Arc::new(move |message, failure| {
                dead_tx
                    .send((number(message), failure.error.clone()))
                    .unwrap();
            })))
            .unwrap();
        if round == 0 {
            for n in 0..2 {
                let message = Message::new().with("n", FieldValue::Int(n));
                group.dispatch_async(message, Box::new(|_| {})).unwrap();
            }
        } else {
            assert_eq!(group.store_stats().unwrap().recovered, 2);
        }
        // Closing fails them for their dispatchers (the group is gone) but
        // they stay stored: the handler hears nothing.
        group.close();
        assert_eq!(group.store_stats().unwrap().pending, 2);
        drop(group);
        assert!(
            dead_rx.try_recv().is_err(),
            "a stored message was dead-lettered"
        );
    }
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_held_by_a_live_group_is_refused_to_a_second() {
    let dir = scratch("locked");
    let store = StoreOptions::new(&dir);
    let runtime = common::runtime();
    let routing = || RoutingFunction::builtin(Builtin::LeastLoaded);
    let first = runtime
        .durable_group(
            routing(),
            GroupOptions::default(),
            store.clone(),
            ignore_recovered(),
        )
        .unwrap();
    match runtime.durable_group(
        routing(),
        GroupOptions::default(),
        store.clone(),
        ignore_recovered(),
    ) {
        Err(Error::StoreLocked(_)) => {}
        Err(other) => panic!("expected StoreLocked, got {other}"),
        Ok(_) => panic!("two groups hold one store"),
    }
    first.close();
    drop(first);
    let second = runtime
        .durable_group(
            routing(),
            GroupOptions::default(),
            store,
            ignore_recovered(),
        )
        .unwrap();
    second.close();
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_batch_is_accepted_in_order_and_a_full_room_refuses_its_tail_before_writing() {
    let dir = scratch("batch");
    let store = StoreOptions::new(&dir);
    let options = GroupOptions {
        waiting_room: 5,
        ..GroupOptions::default()
    };
    let routing = || RoutingFunction::builtin(Builtin::LeastLoaded);
    {
        let runtime = common::runtime();
        let group = runtime
            .durable_group(
                routing(),
                options.clone(),
                store.clone(),
                ignore_recovered(),
            )
            .unwrap();
        let batch: Vec<(Arc<Message>, liminal::Completion)> = (0..8)
            .map(|n| {
                let message = Arc::new(Message::new().with("n", FieldValue::Int(n)));
                let completion: liminal::Completion = Box::new(|_| {});
                (message, completion)
            })
            .collect();
        let results = group.dispatch_batch(batch, &liminal::DispatchOptions::default());
        assert_eq!(results.len(), 8);
        assert!(results[..5].iter().all(Result::is_ok), "{results:?}");
        assert!(
            results[5..]
                .iter()
                .all(|r| matches!(r, Err(Error::QueueFull))),
            "{results:?}"
        );
        assert_eq!(group.store_stats().unwrap().pending, 5);
        runtime.shutdown().unwrap();
    }
    let runtime = common::runtime();
    let group = runtime
        .durable_group(routing(), options, store, ignore_recovered())
        .unwrap();
    let puller = group.register(ConsumerSpec::pull("p")).unwrap();
    for expected in 0..5 {
        let delivery = puller.next_delivery(HANG).unwrap();
        assert_eq!(number(delivery.message()), expected);
        delivery.token().ack().unwrap();
    }
    assert_eq!(group.store_stats().unwrap().recovered, 5);
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_thread_dispatching_batches_gets_every_message_delivered_once_and_completed() {
    let dir = scratch("batches");
    let runtime = common::runtime();
    let group = runtime
        .durable_group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions::default(),
            StoreOptions::new(&dir),
            ignore_recovered(),
        )
        .unwrap();
    let (seen_tx, seen_rx) = crossbeam_channel::unbounded();
    for c in 0..4 {
        let seen_tx = seen_tx.clone();
        group
            .register(ConsumerSpec::push(format!("c{c}"), move |d: &Delivery| {
                seen_tx.send(number(d.message())).unwrap();
                Verdict::Ack
            }))
            .unwrap();
    }
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    for round in 0..10 {
        let batch: Vec<(Arc<Message>, liminal::Completion)> = (0..100)
            .map(|i| {
                let done_tx = done_tx.clone();
                let message = Arc::new(Message::new().with("n", FieldValue::Int(round * 100 + i)));
                let completion: liminal::Completion = Box::new(move |result| {
                    done_tx.send(result.is_ok()).unwrap();
                });
                (message, completion)
            })
            .collect();
        let results = group.dispatch_batch(batch, &liminal::DispatchOptions::default());
        assert!(results.iter().all(Result::is_ok));
    }
    let completed: Vec<bool> = (0..1000)
        .map(|_| done_rx.recv_timeout(HANG).unwrap())
        .collect();
    assert!(completed.iter().all(|ok| *ok));
    let mut seen: Vec<i64> = (0..1000)
        .map(|_| seen_rx.recv_timeout(HANG).unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    runtime.shutdown().unwrap();
    let runtime = common::runtime();
    let group = runtime
        .durable_group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions::default(),
            StoreOptions::new(&dir),
            ignore_recovered(),
        )
        .unwrap();
    assert_eq!(
        group.store_stats().unwrap().recovered,
        0,
        "acknowledged messages came back"
    );
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A host's own store, in memory (shared with the test, so it outlives
/// the runtimes): what a database table keyed by sequence number would do.
#[derive(Clone, Default)]
struct TableStore {
    rows: Arc<std::sync::Mutex<BTreeMap<u64, Vec<u8>>>>,
    commits: Arc<std::sync::atomic::AtomicUsize>,
}

impl liminal::HostStore for TableStore {
    fn commit(&mut self, puts: &[(u64, &[u8])], removes: &[u64]) -> Result<(), String> {
        let mut rows = self.rows.lock().unwrap();
        for (seq, record) in puts {
            rows.insert(*seq, record.to_vec());
        }
        for seq in removes {
            rows.remove(seq);
        }
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn scan(&mut self, emit: &mut dyn FnMut(u64, &[u8])) -> Result<(), String> {
        for (seq, record) in self.rows.lock().unwrap().iter() {
            emit(*seq, record);
        }
        Ok(())
    }
}

#[test]
fn a_hosts_own_store_keeps_what_was_accepted_and_gives_it_back_in_order() {
    let table = TableStore::default();
    let options = GroupOptions {
        key_field: Some("k".into()),
        ..GroupOptions::default()
    };
    let routing = || RoutingFunction::builtin(Builtin::LeastLoaded);
    let first_ids: Vec<String> = {
        let runtime = common::runtime();
        let group = runtime
            .durable_group_in(
                routing(),
                options.clone(),
                Box::new(table.clone()),
                ignore_recovered(),
            )
            .unwrap();
        for n in 0..10 {
            let message = Message::new()
                .with("n", FieldValue::Int(n))
                .with("k", FieldValue::Text(format!("k{}", n % 3)));
            group.dispatch_async(message, Box::new(|_| {})).unwrap();
        }
        // One is handled and acknowledged, one fails an attempt (release).
        let puller = group.register(ConsumerSpec::pull("p")).unwrap();
        let first = puller.next_delivery(HANG).unwrap();
        assert_eq!(number(first.message()), 0);
        first.token().ack().unwrap();
        let second = puller.next_delivery(HANG).unwrap();
        let id = second.message_id().into_owned();
        second.token().release(Duration::ZERO).unwrap();
        runtime.shutdown().unwrap();
        vec![id]
    };
    // Rows: the store's header (0) and the nine pending messages.
    assert_eq!(table.rows.lock().unwrap().len(), 10);
    let runtime = common::runtime();
    let group = runtime
        .durable_group_in(
            routing(),
            options,
            Box::new(table.clone()),
            ignore_recovered(),
        )
        .unwrap();
    assert_eq!(group.store_stats().unwrap().recovered, 9);
    let puller = group.register(ConsumerSpec::pull("p2")).unwrap();
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for _ in 0..9 {
        let delivery = puller.next_delivery(HANG).unwrap();
        let n = number(delivery.message());
        if delivery.message_id() == first_ids[0] {
            // Its released attempt was recorded: this is its second.
            assert_eq!(delivery.attempt(), 2, "the attempt count survived");
        }
        per_key
            .entry(delivery.message().ordering_key().unwrap().to_owned())
            .or_default()
            .push(n);
        delivery.token().ack().unwrap();
    }
    for numbers in per_key.values() {
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{per_key:?}");
    }
    runtime.shutdown().unwrap();
    // Everything acknowledged: only the header is left.
    assert_eq!(
        table
            .rows
            .lock()
            .unwrap()
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![0]
    );
}

// ---- host kill -9 ------------------------------------------------------------

const CHILD_DIR: &str = "LIMINAL_DURABLE_CHILD_DIR";
const CHILD_ROUND: &str = "LIMINAL_DURABLE_CHILD_ROUND";

fn append(path: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    // One write per line: a kill leaves whole lines (or none).
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The body of the host process the kill test starts (not a test of its
/// own: without the environment the parent sets, it returns at once). It
/// dispatches durable messages from two threads to four consumers that log
/// what they handle and acknowledge after a short random delay, until it is
/// killed; in the last round (`drain`) it only recovers, delivers what came
/// back, and exits.
#[test]
fn durable_host_process_body() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let round: String = std::env::var(CHILD_ROUND).unwrap();
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    println!("opening");
    let group = runtime
        .durable_group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions::default(),
            StoreOptions::new(dir.join("store")),
            ignore_recovered(),
        )
        .unwrap();
    println!("opened");
    for c in 0..4u64 {
        let handled = dir.join("handled.log");
        let mut state = c.wrapping_mul(0x9e37_79b9) ^ u64::from(std::process::id());
        group
            .register(
                ConsumerSpec::push(format!("c{c}"), move |d: &Delivery| {
                    let token =
                        String::from_utf8_lossy(d.message().payload().unwrap()).into_owned();
                    append(&handled, &format!("{token} {}", d.message_id()));
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Handling takes a moment (the workload, not a wait for anything).
                    std::thread::sleep(Duration::from_micros(state % 2000));
                    Verdict::Ack
                })
                .max_in_flight(4),
            )
            .unwrap();
    }
    if round == "drain" {
        let left = group.drain(Duration::from_secs(60)).unwrap();
        println!("drained {left}");
        runtime.shutdown().unwrap();
        return;
    }
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let group = group.clone();
            let round = round.clone();
            let dir = dir.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let token = format!("{round}-{t}-{i}");
                    append(&dir.join("attempted.log"), &token);
                    let message = Message::new()
                        .with("n", FieldValue::Int(i))
                        .with_payload(token.clone().into_bytes());
                    match group.dispatch_async(message, Box::new(|_| {})) {
                        Ok(_) => {
                            append(&dir.join("accepted.log"), &token);
                            println!("accepted {token}");
                        }
                        Err(Error::QueueFull) => {}
                        Err(other) => panic!("dispatch failed: {other}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn run_child(dir: &Path, round: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durable_host_process_body",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A host process dispatching durable messages is kill -9ed at random
/// moments (after a random number of acceptances; every fourth time as
/// soon as it starts opening its store, so during recovery or right
/// before), `LIMINAL_KILL_ROUNDS` times (default 12;
/// `scripts/durable-kill.sh` runs more), each time restarted on the same
/// store; a last run delivers what is left. Then:
/// every accepted message was handled, nothing handled was never
/// dispatched, and a message handled twice kept its stable id.
#[test]
fn a_host_killed_at_random_instants_loses_nothing_it_accepted() {
    let rounds: u32 = std::env::var("LIMINAL_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = scratch("kill");
    let mut seed = u64::from(std::process::id()) | 1;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = 1 + seed % 300;
        let mut child = run_child(&dir, &round.to_string());
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut accepted = 0;
        let during_recovery = round % 4 == 3;
        for line in stdout.lines() {
            let line = line.unwrap();
            if during_recovery && line.contains("opening") {
                break;
            }
            if line.starts_with("accepted ") {
                accepted += 1;
                if accepted == after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the host was not killed");
    }
    let mut last = run_child(&dir, "drain");
    let mut out = String::new();
    std::io::Read::read_to_string(last.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        last.wait().unwrap().success(),
        "the last host failed: {out}"
    );
    assert!(
        out.contains("drained 0"),
        "the last host left messages: {out}"
    );

    let attempted: BTreeSet<String> = lines(&dir.join("attempted.log")).into_iter().collect();
    let accepted: BTreeSet<String> = lines(&dir.join("accepted.log")).into_iter().collect();
    let mut handled: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut deliveries = 0usize;
    for line in lines(&dir.join("handled.log")) {
        let (token, id) = line.split_once(' ').unwrap();
        handled
            .entry(token.to_owned())
            .or_default()
            .insert(id.to_owned());
        deliveries += 1;
    }
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|t| !handled.contains_key(*t))
        .collect();
    assert!(
        lost.is_empty(),
        "{} accepted messages lost: {lost:?}",
        lost.len()
    );
    let invented: Vec<&String> = handled.keys().filter(|t| !attempted.contains(*t)).collect();
    assert!(
        invented.is_empty(),
        "handled but never dispatched: {invented:?}"
    );
    for (token, ids) in &handled {
        assert_eq!(ids.len(), 1, "{token} was delivered under two ids: {ids:?}");
    }
    let in_doubt = handled.keys().filter(|t| !accepted.contains(*t)).count();
    println!(
        "{rounds} kills: {} accepted, {} handled ({deliveries} deliveries, {} duplicates), {in_doubt} handled whose dispatch was cut off by the kill before it returned",
        accepted.len(),
        handled.len(),
        deliveries - handled.len()
    );
    assert!(accepted.len() as u32 >= rounds / 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
