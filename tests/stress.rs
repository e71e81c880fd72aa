//! Shutdown with work in flight, and chaos: producers racing consumer crashes
//! and replacements. Every accepted message must end exactly once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use liminal::{Builtin, ConsumerSpec, Delivery, DispatchError, DispatchResult, Group, Verdict};

#[test]
fn shutdown_completes_ten_thousand_in_flight_exactly_once() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    for id in ["a", "b", "c", "d"] {
        group
            .register(ConsumerSpec::push(id, |_d: &Delivery| Verdict::Defer).max_in_flight(10_000))
            .unwrap();
    }
    let counts: Arc<Mutex<HashMap<u64, Vec<DispatchResult>>>> = Arc::default();
    let mut ids = Vec::new();
    for n in 0..10_000 {
        let counts = Arc::clone(&counts);
        let id = group
            .dispatch_async(
                msg(n),
                Box::new(move |r| {
                    let id = match &r {
                        Ok(o) => o.dispatch_id,
                        Err(f) => f.dispatch_id,
                    };
                    counts.lock().unwrap().entry(id).or_default().push(r);
                }),
            )
            .unwrap();
        ids.push(id);
    }
    assert_eq!(runtime.in_flight(), 10_000);
    runtime.shutdown().unwrap();
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), 10_000);
    for id in ids {
        let results = &counts[&id];
        assert_eq!(
            results.len(),
            1,
            "dispatch {id} completed {} times",
            results.len()
        );
        assert_eq!(
            results[0].as_ref().unwrap_err().error,
            DispatchError::ShutDown
        );
    }
    assert!(matches!(
        group.dispatch_async(msg(0), Box::new(|_r| {})),
        Err(liminal::Error::ShutDown)
    ));
    assert_eq!(runtime.metrics().shut_down, 10_000);
}

/// Spawns a consumer that acks, crashes now and then, and checks the
/// redelivery flag against what it has seen.
fn chaos_consumer(
    group: &Group,
    id: String,
    seen: &Arc<Mutex<HashMap<u64, u32>>>,
    flag_errors: &Arc<AtomicU64>,
) {
    let seen = Arc::clone(seen);
    let flag_errors = Arc::clone(flag_errors);
    let mut count = 0u64;
    let _ = group.register(
        ConsumerSpec::push(id, move |d: &Delivery| {
            count += 1;
            let mut seen = seen.lock().unwrap();
            // Redelivered exactly when an earlier attempt reached a handler.
            let previous = seen.insert(d.dispatch_id(), d.attempt());
            if d.redelivered() != previous.is_some() || previous.is_some_and(|p| p >= d.attempt()) {
                flag_errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(seen);
            if count % 4_999 == 0 {
                Verdict::Crash("chaos".into())
            } else {
                Verdict::Ack
            }
        })
        .max_in_flight(1_000_000),
    );
}

#[test]
fn chaos_every_message_ends_exactly_once() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 25_000;
    const WINDOW: usize = 256;
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let seen: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let flag_errors = Arc::new(AtomicU64::new(0));
    let next_consumer = AtomicU64::new(0);
    let new_id = || format!("c{:06}", next_consumer.fetch_add(1, Ordering::Relaxed));
    for _ in 0..6 {
        chaos_consumer(&group, new_id(), &seen, &flag_errors);
    }
    let completions: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Result<(), DispatchError>>();
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        // Chaos: every millisecond one consumer is crashed and one joins.
        let chaos = {
            let group = group.clone();
            let stop = Arc::clone(&stop);
            let (seen, flag_errors) = (Arc::clone(&seen), Arc::clone(&flag_errors));
            let new_id = &new_id;
            scope.spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(victim) = group.consumers().first() {
                        if let Some(c) = group.consumer(&victim.id) {
                            let _ = c.crash("chaos monkey");
                        }
                    }
                    chaos_consumer(&group, new_id(), &seen, &flag_errors);
                    rounds += 1;
                    // Load pacing, not synchronisation.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                rounds
            })
        };
        let mut producers = Vec::new();
        for p in 0..PRODUCERS {
            let group = group.clone();
            let completions = Arc::clone(&completions);
            let done_tx = done_tx.clone();
            producers.push(scope.spawn(move || {
                // Each producer keeps at most WINDOW messages in flight.
                let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(WINDOW);
                for n in 0..PER_PRODUCER {
                    permit_tx.send(()).unwrap();
                    let permit_rx = permit_rx.clone();
                    let completions = Arc::clone(&completions);
                    let done_tx = done_tx.clone();
                    let accepted = group.dispatch_async(
                        msg((p * PER_PRODUCER + n) as i64),
                        Box::new(move |r: DispatchResult| {
                            let id = match &r {
                                Ok(o) => o.dispatch_id,
                                Err(f) => f.dispatch_id,
                            };
                            *completions.lock().unwrap().entry(id).or_default() += 1;
                            done_tx.send(r.map(|_| ()).map_err(|f| f.error)).unwrap();
                            permit_rx.recv().unwrap();
                        }),
                    );
                    assert!(accepted.is_ok());
                }
            }));
        }
        for producer in producers {
            producer.join().unwrap();
        }
        let total = PRODUCERS * PER_PRODUCER;
        let mut delivered = 0u64;
        let failed = 0u64;
        for _ in 0..total {
            match done_rx.recv_timeout(HANG).expect("a message is stuck") {
                Ok(()) => delivered += 1,
                Err(error) => {
                    panic!("unexpected failure {error:?}");
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let rounds = chaos.join().unwrap();
        // Consumers crashed from outside only *held* their messages: no
        // message is poison for that, and none waits in vain (the group is
        // never empty for long), so every one is delivered.
        assert_eq!(delivered + failed, total);
        assert!(rounds > 10, "chaos ran {rounds} rounds");
        let completions = completions.lock().unwrap();
        assert_eq!(completions.len() as u64, total);
        assert!(
            completions.values().all(|&n| n == 1),
            "a message completed twice"
        );
        assert_eq!(flag_errors.load(Ordering::Relaxed), 0, "redelivery flags");
        let metrics = runtime.metrics();
        assert_eq!(metrics.delivered, delivered);
        assert!(metrics.consumer_crashes > 0 && metrics.rerouted > 0);
        eprintln!(
            "chaos: {total} messages, {delivered} delivered, {failed} failed, {rounds} chaos rounds, {} crashes, {} re-routes",
            metrics.consumer_crashes, metrics.rerouted
        );
    });
    assert_eq!(runtime.in_flight(), 0);
}
