//! Ordered keys under chaos, with a checker. Many messages over many keys
//! (each carries its key's sequence number), several consumers that ack at
//! once or later from another thread, crash, release (with and without a
//! delay) or sit on a delivery until its lease expires; consumers that die
//! are replaced and others leave and join as the run goes. Every consumer
//! records, on one logical clock, when it started each attempt and when it
//! ended it. The checker proves per key that every message started only
//! after its predecessor completed, that none was skipped unless
//! dead-lettered (with its reason), and that none was lost.
//!
//! CI size here (the full size runs in `scripts/soak.sh`); the clock is
//! logical, nothing is timed.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::chaos::{acker, chaotic, check, dispatch_id, keyed, mix, tick, Deferred, Record, Sent};
use common::{runtime, HANG};
use crossbeam_channel::{select, unbounded, Sender};
use liminal::{
    Builtin, ConsumerSpec, CrashReport, DeliveryToken, DispatchResult, Group, GroupOptions,
    Message, RoutingFunction, Runtime,
};

struct World {
    group: Group,
    records: Sender<Record>,
    deferred: Deferred,
    crashes: Sender<CrashReport>,
    seed: u64,
    joined: u64,
}

impl World {
    fn join(&mut self) -> String {
        self.joined += 1;
        let id = format!("c{:04}", self.joined);
        let (records, deferred, crashes, seed) = (
            self.records.clone(),
            self.deferred.clone(),
            self.crashes.clone(),
            self.seed,
        );
        let spec = ConsumerSpec::push(id.clone(), chaotic(seed, records, deferred, true))
            .max_in_flight(4)
            .on_crash(move |report: &CrashReport| {
                let _ = crashes.send(report.clone());
            });
        self.group.register(spec).expect("consumer joins");
        id
    }
}

/// A consumer that died is replaced by a new one.
fn replace(world: &mut World, live: &mut Vec<String>, report: CrashReport) {
    if !report.alive {
        live.retain(|id| *id != report.consumer_id);
        live.push(world.join());
    }
}

fn run(runtime: &Runtime, routing: RoutingFunction, seed: u64, messages: usize, keys: usize) {
    let group = runtime
        .group(
            routing,
            GroupOptions {
                key_field: Some("key".into()),
                ack_lease: Some(Duration::from_millis(20)),
                // Everything is dispatched up front.
                waiting_room: messages.max(1),
                ..GroupOptions::default()
            },
        )
        .expect("group");
    let (records, recorded) = unbounded();
    let (deferred, tokens) = unbounded::<Option<(DeliveryToken, u64, u32)>>();
    let (crashes, crashed) = unbounded();
    let dead_records = records.clone();
    group
        .set_dead_letter_handler(Some(Arc::new(move |m: &Arc<Message>, f| {
            assert!(m.ordering_key().is_some());
            let _ = dead_records.send(Record::Dead {
                dispatch: f.trail.dispatch_id,
                reason: f.error.clone(),
                at: tick(),
            });
        })))
        .unwrap();
    let acker = acker(tokens, records.clone());
    let mut world = World {
        group: group.clone(),
        records,
        deferred,
        crashes,
        seed,
        joined: 0,
    };
    let mut live: Vec<String> = (0..8).map(|_| world.join()).collect();
    let (done, completions) = unbounded::<DispatchResult>();
    let mut sent = Sent::new();
    let mut next_seq = vec![0u64; keys];
    for n in 0..messages {
        let key = (mix(seed ^ n as u64) % keys as u64) as usize;
        let seq = next_seq[key];
        next_seq[key] += 1;
        let done = done.clone();
        let id = group
            .dispatch_async(keyed(key, seq), Box::new(move |r| drop(done.send(r))))
            .expect("accepted");
        sent.insert(id, (key, seq));
        while let Ok(report) = crashed.try_recv() {
            replace(&mut world, &mut live, report);
        }
    }
    let mut results = HashMap::new();
    while results.len() < messages {
        select! {
            recv(completions) -> r => {
                let r = r.unwrap();
                let id = dispatch_id(&r);
                assert!(results.insert(id, r).is_none(), "dispatch {id} completed twice");
                // Churn: now and then a consumer leaves and another joins.
                if results.len() % 997 == 0 && !live.is_empty() {
                    let leaving = live.remove((mix(seed ^ results.len() as u64) % live.len() as u64) as usize);
                    if let Some(consumer) = group.consumer(&leaving) {
                        let _ = consumer.leave();
                    }
                    live.push(world.join());
                }
            }
            recv(crashed) -> report => replace(&mut world, &mut live, report.unwrap()),
            default(HANG) => panic!("hung with {} of {messages} completed", results.len()),
        }
    }
    // Nothing is kept for a key with nothing out and nothing waiting.
    assert_eq!(group.ordering_stats().keys, 0);
    assert_eq!(group.waiting(), 0);
    let _ = world.deferred.send(None);
    drop(world);
    group.close();
    acker.join().unwrap();
    let dead_lettered = check(&sent, &results, recorded.try_iter().collect(), keys);
    // The chaos happened: every path back was taken.
    let m = runtime.metrics();
    eprintln!(
        "{messages} messages over {keys} keys: {} consumers joined, {} crashes, {} re-routes, \
         {} releases, {} lease expiries, {dead_lettered} dead-lettered",
        world_joined(&live),
        m.consumer_crashes,
        m.rerouted,
        m.released,
        m.lease_expired
    );
    assert!(m.consumer_crashes > 0 && m.rerouted > 0 && m.released > 0 && m.lease_expired > 0);
}

fn world_joined(live: &[String]) -> String {
    live.iter().max().cloned().unwrap_or_default()
}

/// `LIMINAL_ORDERING_CHAOS=messages,keys` sizes the least-loaded run (CI:
/// 20,000 over 500; `scripts/soak.sh` runs 1,000,000 over 10,000).
fn size() -> (usize, usize) {
    std::env::var("LIMINAL_ORDERING_CHAOS")
        .ok()
        .and_then(|v| {
            let (messages, keys) = v.split_once(',')?;
            Some((messages.trim().parse().ok()?, keys.trim().parse().ok()?))
        })
        .unwrap_or((20_000, 500))
}

#[test]
fn chaos_least_loaded_keeps_every_key_in_order() {
    let runtime = runtime();
    let (messages, keys) = size();
    run(
        &runtime,
        RoutingFunction::builtin(Builtin::LeastLoaded),
        1,
        messages,
        keys,
    );
}

#[test]
fn chaos_host_routing_keeps_every_key_in_order() {
    let runtime = runtime();
    // A host function that spreads keys: the consumer with room whose
    // position follows the key's hash.
    let function = runtime.load_routing(b"chaos-spread", "chaos-spread", |m, views| {
        let key = m.ordering_key()?;
        let free: Vec<_> = views.iter().filter(|v| v.has_capacity()).collect();
        let hash = key.bytes().fold(0u64, |h, b| mix(h ^ u64::from(b)));
        (!free.is_empty()).then(|| free[(hash % free.len() as u64) as usize].id.to_string())
    });
    run(&runtime, function, 2, 8_000, 200);
}
