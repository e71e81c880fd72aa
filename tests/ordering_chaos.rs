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
//! CI size here; the clock is logical, nothing is timed.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{runtime, HANG};
use crossbeam_channel::{select, unbounded, Sender};
use liminal::{
    Builtin, ConsumerSpec, CrashReport, Delivery, DeliveryToken, DispatchError, DispatchResult,
    FieldValue, Group, GroupOptions, Message, RoutingFunction, Runtime, Verdict,
};

/// The logical clock: every record takes the next tick.
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

enum Record {
    /// A consumer's callback started attempt `attempt` of `dispatch`.
    Start { dispatch: u64, at: u64 },
    /// The attempt ended with an acknowledgement that was taken (`at` was
    /// read before acknowledging, so it precedes what the ack sets off).
    Acked {
        dispatch: u64,
        attempt: u32,
        at: u64,
    },
    /// The dead-letter handler got it, with its reason.
    Dead {
        dispatch: u64,
        reason: DispatchError,
        at: u64,
    },
}

/// splitmix64: the consumers' dice, from (seed, dispatch, attempt).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct World {
    group: Group,
    records: Sender<Record>,
    deferred: Sender<Option<(DeliveryToken, u64, u32)>>,
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
        let spec = ConsumerSpec::push(id.clone(), move |d: &Delivery| {
            let dispatch = d.dispatch_id();
            let _ = records.send(Record::Start {
                dispatch,
                at: tick(),
            });
            let dice = mix(seed ^ mix(dispatch) ^ u64::from(d.attempt())) % 1000;
            match dice {
                0..=9 => Verdict::Crash("chaos".into()),
                10..=59 => Verdict::Release(Duration::ZERO),
                60..=79 => Verdict::Release(Duration::from_millis(1)),
                // Sit on it: the lease expires and the consumer is crashed.
                80..=89 => Verdict::Defer,
                90..=299 => {
                    let _ = deferred.send(Some((d.token(), dispatch, d.attempt())));
                    Verdict::Defer
                }
                _ => {
                    let _ = records.send(Record::Acked {
                        dispatch,
                        attempt: d.attempt(),
                        at: tick(),
                    });
                    Verdict::Ack
                }
            }
        })
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

/// (key, sequence number within the key) of each dispatch.
type Sent = HashMap<u64, (usize, u64)>;

fn run(runtime: &Runtime, routing: RoutingFunction, seed: u64, messages: usize, keys: usize) {
    let group = runtime
        .group(
            routing,
            GroupOptions {
                key_field: Some("key".into()),
                ack_lease: Some(Duration::from_millis(20)),
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
    // Acknowledges deferred deliveries from another thread.
    let ack_records = records.clone();
    let acker = std::thread::spawn(move || {
        for (token, dispatch, attempt) in tokens.iter().map_while(|t| t) {
            let at = tick();
            if token.ack().is_ok() {
                let _ = ack_records.send(Record::Acked {
                    dispatch,
                    attempt,
                    at,
                });
            }
        }
    });
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
        let message = Message::new()
            .with("key", FieldValue::Text(format!("k{key}")))
            .with("seq", FieldValue::Int(seq as i64));
        let done = done.clone();
        let id = group
            .dispatch_async(message, Box::new(move |r| drop(done.send(r))))
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
                let id = match &r {
                    Ok(outcome) => outcome.trail.dispatch_id,
                    Err(failure) => failure.trail.dispatch_id,
                };
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

fn check(
    sent: &Sent,
    results: &HashMap<u64, DispatchResult>,
    records: Vec<Record>,
    keys: usize,
) -> usize {
    let mut starts: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut acked: HashMap<(u64, u32), u64> = HashMap::new();
    let mut dead: HashMap<u64, (DispatchError, u64)> = HashMap::new();
    for record in records {
        match record {
            Record::Start { dispatch, at } => starts.entry(dispatch).or_default().push(at),
            Record::Acked {
                dispatch,
                attempt,
                at,
            } => assert!(acked.insert((dispatch, attempt), at).is_none()),
            Record::Dead {
                dispatch,
                reason,
                at,
            } => assert!(dead.insert(dispatch, (reason, at)).is_none()),
        }
    }
    // None lost: every dispatch completed exactly once (checked as they came).
    assert_eq!(results.len(), sent.len());
    // When each message completed, on the logical clock.
    let mut completed_at = HashMap::new();
    let mut dead_lettered = 0;
    for (id, result) in results {
        let at = match result {
            Ok(outcome) => *acked
                .get(&(*id, outcome.trail.attempts))
                .unwrap_or_else(|| panic!("{id} delivered without its acknowledgement recorded")),
            Err(failure) => {
                // Skipped only when dead-lettered, with its reason.
                assert!(
                    matches!(failure.error, DispatchError::AttemptsExhausted(_)),
                    "{id}: {failure}"
                );
                let (reason, at) = dead.get(id).expect("dead-lettered");
                assert_eq!(*reason, failure.error);
                dead_lettered += 1;
                *at
            }
        };
        completed_at.insert(*id, at);
    }
    // Per key, in sequence order: every start of a message comes after its
    // predecessor completed.
    let mut by_key: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
    for (id, (key, seq)) in sent {
        by_key[*key].push((*seq, *id));
    }
    let mut pairs = 0;
    for messages in &mut by_key {
        messages.sort_unstable();
        for pair in messages.windows(2) {
            let (before, after) = (pair[0].1, pair[1].1);
            let done = completed_at[&before];
            for start in starts.get(&after).into_iter().flatten() {
                assert!(
                    *start > done,
                    "message {after} started at {start} before its predecessor {before} completed at {done}"
                );
            }
            pairs += 1;
        }
    }
    assert!(pairs > 0);
    assert!(
        dead_lettered < sent.len() / 20,
        "{dead_lettered} dead-lettered"
    );
    dead_lettered
}

#[test]
fn chaos_least_loaded_keeps_every_key_in_order() {
    let runtime = runtime();
    run(
        &runtime,
        RoutingFunction::builtin(Builtin::LeastLoaded),
        1,
        20_000,
        500,
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
