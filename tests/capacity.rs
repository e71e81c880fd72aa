//! `max_in_flight` is a reservation taken atomically with the choice of a
//! consumer: concurrent dispatchers never push a consumer past it, whether
//! the router is a built-in or a host function, and a message that finds
//! no free slot waits (it is never failed) until an acknowledgement frees one.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use common::*;
use liminal::{
    Builtin, ConsumerSpec, Delivery, DeliveryToken, DispatchResult, GroupOptions, Verdict,
};

/// A deferring consumer's record of how many deliveries it holds: up when
/// its callback runs, down just *before* the token is acknowledged (so a
/// reading can never overstate what the library let it hold).
#[derive(Clone, Default)]
struct Holding {
    now: Arc<AtomicU32>,
    peak: Arc<AtomicU32>,
}

impl Holding {
    fn took_one(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn ack(&self, token: &DeliveryToken) {
        self.now.fetch_sub(1, Ordering::SeqCst);
        token.ack().expect("a held delivery can be acknowledged");
    }
    fn peak(&self) -> u32 {
        self.peak.load(Ordering::SeqCst)
    }
}

/// What a deferring consumer hands to the test: its holding record, the
/// token, and the dispatch id.
type Held = (Holding, DeliveryToken, u64);

fn deferring(
    id: &str,
    max_in_flight: u32,
    holding: &Holding,
    tokens: &crossbeam_channel::Sender<Held>,
) -> ConsumerSpec {
    let holding = holding.clone();
    let tokens = tokens.clone();
    ConsumerSpec::push(id, move |d: &Delivery| {
        holding.took_one();
        tokens
            .send((holding.clone(), d.token(), d.dispatch_id()))
            .unwrap();
        Verdict::Defer
    })
    .max_in_flight(max_in_flight)
}

/// 8 host threads dispatch at the same instant (a barrier) into 3 consumers
/// of one slot each, 200 times over: no consumer ever holds two, and every
/// dispatch is delivered exactly once.
#[test]
fn max_in_flight_is_a_reservation_under_concurrent_dispatch() {
    const ROUNDS: usize = 200;
    const THREADS: usize = 8;
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<Held>();
    let holdings: Vec<(String, Holding)> = ["a", "b", "c"]
        .iter()
        .map(|id| (id.to_string(), Holding::default()))
        .collect();
    for (id, holding) in &holdings {
        group.register(deferring(id, 1, holding, &tok_tx)).unwrap();
    }
    drop(tok_tx);
    // Acknowledges from another thread, counting deliveries per dispatch id.
    let acker = std::thread::spawn(move || {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for _ in 0..ROUNDS * THREADS {
            let (holding, token, dispatch_id) = tok_rx.recv_timeout(HANG).expect("a delivery");
            *seen.entry(dispatch_id).or_default() += 1;
            holding.ack(&token);
        }
        seen
    });
    let barrier = Arc::new(Barrier::new(THREADS));
    let outcomes: Vec<_> = (0..THREADS)
        .map(|t| {
            let group = group.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut outcomes = Vec::with_capacity(ROUNDS);
                for round in 0..ROUNDS {
                    barrier.wait();
                    let outcome = group
                        .dispatch(msg((round * THREADS + t) as i64))
                        .expect("delivered, never failed");
                    outcomes.push(outcome);
                }
                outcomes
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    let seen = acker.join().unwrap();
    for (id, holding) in &holdings {
        assert_eq!(
            holding.peak(),
            1,
            "consumer {id} held more than its one slot"
        );
    }
    assert_eq!(outcomes.len(), ROUNDS * THREADS);
    let mut ids: Vec<u64> = outcomes.iter().map(|o| o.dispatch_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), ROUNDS * THREADS, "one outcome per dispatch");
    assert_eq!(seen.len(), ROUNDS * THREADS);
    assert!(
        seen.values().all(|&n| n == 1),
        "every dispatch delivered exactly once"
    );
    for outcome in &outcomes {
        assert_eq!(outcome.attempts, 1);
        assert!(outcome.rerouted_from.is_empty());
        assert!(seen.contains_key(&outcome.dispatch_id));
    }
    assert_eq!(group.waiting(), 0);
    assert_eq!(group.in_flight(), 0);
    assert_eq!(runtime.metrics().delivered, (ROUNDS * THREADS) as u64);
}

/// A host routing function that respects the views' capacity, one consumer
/// with two slots that defers, six dispatches back to back: two are held,
/// four wait, and each acknowledgement lets exactly one more in.
#[test]
fn host_routing_respects_max_in_flight_and_the_rest_wait() {
    let runtime = runtime();
    let routing = runtime.load_routing(
        b"capacity.rs: first with room",
        "first-with-room",
        |_m, views| {
            views
                .iter()
                .find(|v| v.in_flight < v.max_in_flight)
                .map(|v| v.id.to_string())
        },
    );
    let group = runtime.group(routing, GroupOptions::default()).unwrap();
    let holding = Holding::default();
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<Held>();
    group
        .register(deferring("solo", 2, &holding, &tok_tx))
        .unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<DispatchResult>();
    let mut accepted = Vec::new();
    for n in 0..6 {
        let done_tx = done_tx.clone();
        accepted.push(
            group
                .dispatch_async(msg(n), Box::new(move |r| done_tx.send(r).unwrap()))
                .unwrap(),
        );
    }
    let mut held: std::collections::VecDeque<Held> = (0..2)
        .map(|_| tok_rx.recv_timeout(HANG).expect("two are placed"))
        .collect();
    assert_eq!(group.waiting(), 4, "the other four wait");
    assert_eq!(group.in_flight(), 6);
    assert!(
        tok_rx.try_recv().is_err(),
        "no third delivery while two are held"
    );
    for still_waiting in (0..4).rev() {
        let (h, token, _) = held.pop_front().unwrap();
        h.ack(&token);
        held.push_back(tok_rx.recv_timeout(HANG).expect("the ack lets one in"));
        assert_eq!(group.waiting(), still_waiting);
        assert!(tok_rx.try_recv().is_err(), "exactly one more per ack");
    }
    while let Some((h, token, _)) = held.pop_front() {
        h.ack(&token);
    }
    let mut delivered = Vec::new();
    for _ in 0..6 {
        let outcome = done_rx.recv_timeout(HANG).unwrap().expect("delivered");
        assert_eq!(outcome.delivered_to, "solo");
        delivered.push(outcome.dispatch_id);
    }
    assert!(done_rx.try_recv().is_err(), "exactly one completion each");
    delivered.sort_unstable();
    accepted.sort_unstable();
    assert_eq!(delivered, accepted);
    assert_eq!(holding.peak(), 2, "never more than its two slots");
    assert_eq!(group.waiting(), 0);
}

/// Two threads dispatch at the same instant (a barrier) and the router
/// (first with capacity) picks the same one-slot consumer for both: one is
/// held, the other waits and is delivered after the first is acknowledged;
/// neither fails.
#[test]
fn two_dispatchers_racing_for_one_slot() {
    const ROUNDS: usize = 100;
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let holding = Holding::default();
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<Held>();
    group
        .register(deferring("solo", 1, &holding, &tok_tx))
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(2));
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<DispatchResult>();
        let racers: Vec<_> = (0..2)
            .map(|t| {
                let group = group.clone();
                let barrier = Arc::clone(&barrier);
                let done_tx = done_tx.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    group
                        .dispatch_async(
                            msg((round * 2 + t) as i64),
                            Box::new(move |r| done_tx.send(r).unwrap()),
                        )
                        .expect("accepted")
                })
            })
            .collect();
        let mut ids: Vec<u64> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let (h, first, first_id) = tok_rx.recv_timeout(HANG).expect("one is placed");
        assert_eq!(group.waiting(), 1, "round {round}: the other waits");
        assert!(
            tok_rx.try_recv().is_err(),
            "round {round}: one slot, one delivery"
        );
        assert!(
            done_rx.try_recv().is_err(),
            "round {round}: nothing completed yet"
        );
        h.ack(&first);
        let first_outcome = done_rx.recv_timeout(HANG).unwrap().expect("delivered");
        assert_eq!(first_outcome.dispatch_id, first_id);
        let (h, second, second_id) = tok_rx.recv_timeout(HANG).expect("then the other");
        assert_ne!(first_id, second_id);
        h.ack(&second);
        let second_outcome = done_rx.recv_timeout(HANG).unwrap().expect("delivered");
        assert_eq!(second_outcome.dispatch_id, second_id);
        for outcome in [&first_outcome, &second_outcome] {
            assert_eq!(outcome.delivered_to, "solo");
            assert_eq!(outcome.attempts, 1);
        }
        let mut got = vec![first_id, second_id];
        got.sort_unstable();
        ids.sort_unstable();
        assert_eq!(got, ids);
        seen.lock().unwrap().extend(got);
    }
    assert_eq!(holding.peak(), 1);
    assert_eq!(seen.lock().unwrap().len(), ROUNDS * 2);
    assert_eq!(runtime.metrics().delivered, (ROUNDS * 2) as u64);
}
