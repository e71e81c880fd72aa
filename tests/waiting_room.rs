//! The bus contract (DESIGN.md §2c): where a message waits and for how long.
//! The waiting room across a crash of the last consumer, acknowledgement
//! leases, release with a delay, overflow policies, deadlines and timeouts,
//! drain, poison counting, and answers given from inside callbacks.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use crossbeam_channel::{Receiver, Sender};
use liminal::{
    Builtin, Consumer, ConsumerSpec, CrashKind, Delivery, DeliveryToken, DispatchError,
    DispatchFailure, DispatchOptions, DispatchResult, Error, FieldValue, Group, GroupOptions,
    LeasePolicy, Message, Overflow, RoutingFunction, Runtime, Verdict,
};

// ---- helpers ------------------------------------------------------------------

fn group_with(runtime: &Runtime, builtin: Builtin, options: GroupOptions) -> Group {
    runtime
        .group(RoutingFunction::builtin(builtin), options)
        .expect("group")
}

/// The `n` field of a message made by `msg`.
fn n_of(message: &Message) -> i64 {
    match message.get("n") {
        Some(FieldValue::Int(n)) => *n,
        other => panic!("message without an integer n: {other:?}"),
    }
}

/// A consumer that defers everything and hands the tokens to the test.
fn deferring(id: &str, tokens: &Sender<DeliveryToken>) -> ConsumerSpec {
    let tokens = tokens.clone();
    ConsumerSpec::push(id, move |d: &Delivery| {
        // The receiver is gone only once a test has failed.
        let _ = tokens.send(d.token());
        Verdict::Defer
    })
}

/// A completion that reports `(n, result)` on a channel.
fn report_to(n: i64, done: &Sender<(i64, DispatchResult)>) -> liminal::Completion {
    let done = done.clone();
    // The receiver is gone only once a test has failed.
    Box::new(move |result| {
        let _ = done.send((n, result));
    })
}

/// Dead letters as `(n, error)`.
fn dead_letters(group: &Group) -> Receiver<(i64, DispatchError)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    group
        .set_dead_letter_handler(Some(Arc::new(
            move |m: &Arc<Message>, f: &DispatchFailure| {
                tx.send((n_of(m), f.error.clone())).unwrap();
            },
        )))
        .unwrap();
    rx
}

fn expect_failure(result: liminal::Result<liminal::Outcome>) -> DispatchFailure {
    match result {
        Err(Error::Dispatch(failure)) => *failure,
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
}

/// CPU time (user + system) of the calling thread, from
/// `/proc/thread-self/stat` (fields 14 and 15, in clock ticks of 10 ms).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
    // The command name may hold spaces: fields are counted after its ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

// ---- 4. the last consumer crashes with a full waiting room -----------------------

/// The last consumer of a group crashes while it holds 100 deferred
/// deliveries and 900 more wait: nothing fails while the group is empty,
/// and a replacement registered afterwards gets all 1,000, each completed
/// exactly once.
#[test]
fn last_consumer_crashes_with_a_thousand_in_flight_then_a_replacement_joins() {
    const N: i64 = 1000;
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded();
    let first = group
        .register(deferring("w", &tok_tx).max_in_flight(100))
        .unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let mut accepted = HashSet::new();
    for n in 0..N {
        accepted.insert(
            group
                .dispatch_async(msg(n), report_to(n, &done_tx))
                .unwrap(),
        );
    }
    let stale: Vec<DeliveryToken> = (0..100)
        .map(|_| tok_rx.recv_timeout(HANG).expect("the first 100 are held"))
        .collect();
    assert_eq!(group.waiting(), 900);
    first.crash("its host went away").unwrap();
    // Its 100 came back into the room, on this thread, before crash returned.
    assert!(!first.is_alive());
    assert!(group.is_empty());
    assert_eq!(group.waiting(), 1000);
    assert_eq!(group.in_flight(), 1000);
    assert!(
        done_rx.try_recv().is_err(),
        "nothing fails for want of a consumer"
    );
    // Load pacing only (the gap of the report): the group stays empty a while.
    std::thread::sleep(Duration::from_millis(50));
    let log = Log::default();
    group
        .register(acking("w", &log).max_in_flight(100))
        .unwrap();
    let mut completed = HashMap::new();
    let (mut rerouted, mut handling) = (0, 0);
    for _ in 0..N {
        let (n, result) = done_rx.recv_timeout(HANG).expect("every message completes");
        let outcome = result.unwrap_or_else(|f| panic!("message {n} failed: {f}"));
        assert_eq!(outcome.delivered_to, "w");
        if outcome.rerouted_from.is_empty() {
            assert_eq!((outcome.crashed_holding, outcome.crashed_handling), (0, 0));
        } else {
            assert_eq!(outcome.rerouted_from, vec!["w"]);
            assert_eq!(outcome.crashed_holding + outcome.crashed_handling, 1);
            rerouted += 1;
            handling += outcome.crashed_handling;
        }
        assert!(
            completed.insert(outcome.dispatch_id, n).is_none(),
            "dispatch {} completed twice",
            outcome.dispatch_id
        );
    }
    assert_eq!(rerouted, 100, "exactly the held ones were re-routed");
    // The crash may find the callback of the 100th delivery still running
    // (the token is sent before it returns): at most that one was handled.
    assert!(handling <= 1, "{handling} counted as handled");
    let completed_ids: HashSet<u64> = completed.keys().copied().collect();
    assert_eq!(completed_ids, accepted);
    assert!(done_rx.try_recv().is_err(), "exactly one completion each");
    let by_replacement: HashSet<u64> = log.0.lock().unwrap().iter().map(|e| e.1).collect();
    assert_eq!(
        by_replacement, accepted,
        "the replacement received all of them"
    );
    assert_eq!(log.0.lock().unwrap().len(), N as usize);
    for token in stale {
        assert_eq!(
            token.ack(),
            Err(Error::StaleDelivery(token.delivery_id())),
            "the crashed consumer's late ack is fenced"
        );
    }
    assert_eq!(group.waiting(), 0);
    assert_eq!(group.in_flight(), 0);
    let metrics = runtime.metrics();
    assert_eq!((metrics.delivered, metrics.dead_lettered), (N as u64, 0));
}

// ---- 5. acknowledgement leases ---------------------------------------------------

struct LeaseSetup {
    runtime: Runtime,
    group: Group,
    sitter: Consumer,
    /// While true the sitter defers and keeps its tokens; then it acks.
    sit: Arc<AtomicBool>,
    tokens: Receiver<DeliveryToken>,
    crashes: Receiver<liminal::CrashReport>,
    worker_log: Log,
}

/// "a-sitter" (first in id order) never answers; "b-worker" acks.
fn lease_setup(policy: LeasePolicy) -> LeaseSetup {
    let runtime = runtime();
    let group = group_with(
        &runtime,
        Builtin::FirstWithCapacity,
        GroupOptions {
            ack_lease: Some(Duration::from_millis(50)),
            lease_policy: policy,
            ..GroupOptions::default()
        },
    );
    let (tok_tx, tokens) = crossbeam_channel::unbounded();
    let (crash_tx, crashes) = crash_channel();
    let sit = Arc::new(AtomicBool::new(true));
    let sitting = Arc::clone(&sit);
    let sitter = group
        .register(
            ConsumerSpec::push("a-sitter", move |d: &Delivery| {
                if sitting.load(Ordering::SeqCst) {
                    tok_tx.send(d.token()).unwrap();
                    Verdict::Defer
                } else {
                    Verdict::Ack
                }
            })
            .on_crash(move |report| crash_tx.send(report.clone()).unwrap()),
        )
        .unwrap();
    let worker_log = Log::default();
    group.register(acking("b-worker", &worker_log)).unwrap();
    LeaseSetup {
        runtime,
        group,
        sitter,
        sit,
        tokens,
        crashes,
        worker_log,
    }
}

/// Lease policy crash: the unanswered delivery goes to another consumer
/// after the lease, the sitter is reported (`LeaseExpired`) and dead, and
/// its late ack is fenced.
#[test]
fn lease_expiry_reroutes_and_crashes_the_sitter() {
    let s = lease_setup(LeasePolicy::Crash);
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let started = Instant::now();
    s.group
        .dispatch_async(msg(1), report_to(1, &done_tx))
        .unwrap();
    let token = s
        .tokens
        .recv_timeout(HANG)
        .expect("the sitter gets it first");
    let (_, result) = done_rx.recv_timeout(HANG).unwrap();
    let outcome = result.expect("re-routed and delivered");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "not before the lease"
    );
    assert_eq!(outcome.delivered_to, "b-worker");
    assert_eq!(outcome.rerouted_from, vec!["a-sitter"]);
    assert_eq!((outcome.lease_expired, outcome.attempts), (1, 2));
    assert_eq!(outcome.reroute_timings.len(), 1);
    let seen = s.worker_log.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].2, seen[0].3), (2, true), "attempt 2, redelivered");
    let report = s
        .crashes
        .recv_timeout(HANG)
        .expect("the sitter is reported");
    assert_eq!(report.consumer_id, "a-sitter");
    assert_eq!(report.kind, CrashKind::LeaseExpired);
    assert!(!report.alive);
    assert!(!s.sitter.is_alive(), "declared crashed");
    assert_eq!(token.ack(), Err(Error::StaleDelivery(token.delivery_id())));
    assert_eq!(s.group.dispatch(msg(2)).unwrap().delivered_to, "b-worker");
    assert!(s.crashes.try_recv().is_err(), "reported once");
    assert!(done_rx.try_recv().is_err(), "one completion");
    let metrics = s.runtime.metrics();
    assert_eq!((metrics.lease_expired, metrics.consumer_crashes), (1, 1));
    assert_eq!(metrics.delivered, 2);
}

/// Lease policy crash, with a message waiting when the lease expires: the
/// sitter, being declared crashed, must not be given that message (it
/// would die holding it, and the message would carry a crash it never
/// met, counted against it under `count_holding_crashes`). It waits for
/// the other consumer instead.
#[test]
fn lease_expiry_under_crash_policy_gives_the_dying_sitter_nothing_new() {
    let runtime = runtime();
    let group = group_with(
        &runtime,
        Builtin::FirstWithCapacity,
        GroupOptions {
            ack_lease: Some(Duration::from_millis(50)),
            lease_policy: LeasePolicy::Crash,
            count_holding_crashes: true,
            ..GroupOptions::default()
        },
    );
    let (sit_tx, sit_rx) = crossbeam_channel::unbounded();
    let (crash_tx, crashes) = crash_channel();
    group
        .register(
            deferring("a-sitter", &sit_tx)
                .max_in_flight(1)
                .on_crash(move |report| crash_tx.send(report.clone()).unwrap()),
        )
        .unwrap();
    let (busy_tx, busy_rx) = crossbeam_channel::unbounded();
    group
        .register(
            deferring("b-busy", &busy_tx)
                .max_in_flight(1)
                .ack_lease(HANG),
        )
        .unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    group
        .dispatch_async(msg(1), report_to(1, &done_tx))
        .unwrap();
    let _sat_on = sit_rx
        .recv_timeout(HANG)
        .expect("message 1 goes to the sitter");
    group
        .dispatch_async(msg(2), report_to(2, &done_tx))
        .unwrap();
    let busy = busy_rx.recv_timeout(HANG).expect("message 2 goes to b");
    group
        .dispatch_async(msg(3), report_to(3, &done_tx))
        .unwrap();
    assert_eq!(group.waiting(), 1, "message 3 waits: both are full");
    let report = crashes.recv_timeout(HANG).expect("the lease expires");
    assert_eq!(
        (report.kind, report.alive),
        (CrashKind::LeaseExpired, false)
    );
    // The sitter is dead; messages 1 and 3 wait for b.
    if let Ok((n, result)) = done_rx.try_recv() {
        panic!("message {n} completed while b is busy: {result:?}");
    }
    assert_eq!(group.waiting(), 2);
    busy.ack().unwrap();
    let mut results = HashMap::new();
    for _ in 0..3 {
        if let Some((n, result)) = results_next(&done_rx, &busy_rx) {
            results.insert(n, result);
        }
    }
    let one = results
        .remove(&1)
        .unwrap()
        .expect("message 1 re-routed to b");
    assert_eq!(
        (one.lease_expired, one.rerouted_from.clone()),
        (1, vec!["a-sitter".to_string()])
    );
    let three = results.remove(&3).unwrap().expect("message 3 delivered");
    assert_eq!(three.delivered_to, "b-busy");
    assert!(
        three.rerouted_from.is_empty() && three.crashed_holding == 0,
        "message 3 never met the sitter: {three:?}"
    );
}

/// Next completion, acking b's deliveries meanwhile.
fn results_next(
    done: &Receiver<(i64, DispatchResult)>,
    busy: &Receiver<DeliveryToken>,
) -> Option<(i64, DispatchResult)> {
    loop {
        crossbeam_channel::select! {
            recv(done) -> r => return r.ok(),
            recv(busy) -> t => t.ok()?.ack().unwrap(),
            default(HANG) => return None,
        }
    }
}

/// Lease policy quarantine: the unanswered delivery goes to another
/// consumer, the sitter is reported alive and paused, gets nothing new
/// until it answers something (here its late, fenced ack), then gets work
/// again.
#[test]
fn lease_expiry_under_quarantine_pauses_the_sitter_until_it_answers() {
    let s = lease_setup(LeasePolicy::Quarantine);
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    s.group
        .dispatch_async(msg(1), report_to(1, &done_tx))
        .unwrap();
    let token = s
        .tokens
        .recv_timeout(HANG)
        .expect("the sitter gets it first");
    let (_, result) = done_rx.recv_timeout(HANG).unwrap();
    let outcome = result.expect("re-routed and delivered");
    assert_eq!(outcome.delivered_to, "b-worker");
    assert_eq!(outcome.rerouted_from, vec!["a-sitter"]);
    assert_eq!(outcome.lease_expired, 1);
    let report = s
        .crashes
        .recv_timeout(HANG)
        .expect("the sitter is reported");
    assert_eq!(report.kind, CrashKind::LeaseExpired);
    assert!(report.alive, "quarantined, not dead");
    assert!(s.sitter.is_alive());
    assert!(s.sitter.is_paused());
    assert_eq!(s.group.len(), 2);
    // First in id order with a free slot, yet paused: nothing new for it.
    for n in 2..6 {
        assert_eq!(s.group.dispatch(msg(n)).unwrap().delivered_to, "b-worker");
    }
    assert!(
        s.tokens.try_recv().is_err(),
        "the paused sitter got nothing"
    );
    assert_eq!(s.sitter.in_flight().unwrap(), 0);
    // It answers (late: the delivery was taken back, so the ack is fenced).
    assert_eq!(token.ack(), Err(Error::StaleDelivery(token.delivery_id())));
    assert!(!s.sitter.is_paused(), "an answer ends the quarantine");
    s.sit.store(false, Ordering::SeqCst);
    assert_eq!(s.group.dispatch(msg(9)).unwrap().delivered_to, "a-sitter");
    assert!(s.crashes.try_recv().is_err());
    assert_eq!(s.runtime.metrics().consumer_crashes, 0);
}

/// A holder that extends its lease from a thread keeps the delivery past
/// several leases, and its ack completes the dispatch as delivered to it.
#[test]
fn extending_the_lease_keeps_the_delivery() {
    let runtime = runtime();
    let group = group_with(
        &runtime,
        Builtin::FirstWithCapacity,
        GroupOptions {
            ack_lease: Some(Duration::from_millis(50)),
            ..GroupOptions::default()
        },
    );
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded::<DeliveryToken>();
    let holder = group
        .register(ConsumerSpec::push("a-holder", move |d: &Delivery| {
            let token = d.token();
            token
                .extend_lease(Duration::from_millis(200))
                .expect("held: the lease can be extended");
            tok_tx.send(token).unwrap();
            Verdict::Defer
        }))
        .unwrap();
    let worker_log = Log::default();
    group.register(acking("b-worker", &worker_log)).unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    group
        .dispatch_async(msg(1), report_to(1, &done_tx))
        .unwrap();
    let token = tok_rx.recv_timeout(HANG).unwrap();
    let held_since = Instant::now();
    let extender = {
        let token = token.clone();
        std::thread::spawn(move || {
            let mut extensions = 0;
            // Six leases' worth; the 10 ms sleep only paces the extensions.
            while held_since.elapsed() < Duration::from_millis(300) {
                token
                    .extend_lease(Duration::from_millis(200))
                    .expect("still held");
                extensions += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            extensions
        })
    };
    assert!(extender.join().unwrap() > 0);
    assert!(held_since.elapsed() >= Duration::from_millis(300));
    assert!(done_rx.try_recv().is_err(), "not taken back");
    assert!(worker_log.0.lock().unwrap().is_empty());
    assert!(holder.is_alive());
    token.ack().expect("the holder's ack counts");
    let (_, result) = done_rx.recv_timeout(HANG).unwrap();
    let outcome = result.expect("delivered");
    assert_eq!(outcome.delivered_to, "a-holder");
    assert_eq!((outcome.attempts, outcome.lease_expired), (1, 0));
    assert!(outcome.rerouted_from.is_empty());
    assert_eq!(runtime.metrics().lease_expired, 0);
}

// ---- 6. release with a delay ----------------------------------------------------------

/// What "b" saw: when, which attempt, redelivered.
type Seen = Arc<Mutex<Vec<(Instant, u32, bool)>>>;

fn recording_acker(id: &str, seen: &Seen) -> ConsumerSpec {
    let seen = Arc::clone(seen);
    ConsumerSpec::push(id, move |d: &Delivery| {
        seen.lock()
            .unwrap()
            .push((Instant::now(), d.attempt(), d.redelivered()));
        Verdict::Ack
    })
}

/// `Verdict::Release(100 ms)`: redelivered to another consumer, no sooner
/// than 100 ms after the release, as attempt 2, flagged redelivered.
#[test]
fn release_verdict_redelivers_elsewhere_after_the_delay() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let released_at = Arc::new(Mutex::new(Vec::new()));
    let releasing = group
        .register({
            let released_at = Arc::clone(&released_at);
            ConsumerSpec::push("a", move |_d: &Delivery| {
                released_at.lock().unwrap().push(Instant::now());
                Verdict::Release(Duration::from_millis(100))
            })
        })
        .unwrap();
    let seen: Seen = Arc::default();
    group.register(recording_acker("b", &seen)).unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!((outcome.attempts, outcome.released), (2, 1));
    assert_eq!((outcome.crashed_handling, outcome.crashed_holding), (0, 0));
    assert!(outcome.rerouted_from.is_empty(), "a release is not a crash");
    let released_at = released_at.lock().unwrap().clone();
    let seen = seen.lock().unwrap().clone();
    assert_eq!((released_at.len(), seen.len()), (1, 1));
    let (redelivered_at, attempt, redelivered) = seen[0];
    let gap = redelivered_at.duration_since(released_at[0]);
    assert!(
        gap >= Duration::from_millis(100),
        "redelivered after {gap:?}"
    );
    assert_eq!((attempt, redelivered), (2, true));
    assert!(releasing.is_alive());
    let metrics = runtime.metrics();
    assert_eq!((metrics.released, metrics.consumer_crashes), (1, 0));
}

/// `DeliveryToken::release` behaves as the verdict does.
#[test]
fn release_through_the_token_redelivers_elsewhere_after_the_delay() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded();
    let releasing = group.register(deferring("a", &tok_tx)).unwrap();
    let seen: Seen = Arc::default();
    group.register(recording_acker("b", &seen)).unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    group
        .dispatch_async(msg(1), report_to(1, &done_tx))
        .unwrap();
    let token = tok_rx.recv_timeout(HANG).unwrap();
    let released_at = Instant::now();
    token.release(Duration::from_millis(100)).unwrap();
    assert_eq!(
        token.release(Duration::ZERO),
        Err(Error::StaleDelivery(token.delivery_id())),
        "a second answer is fenced"
    );
    let (_, result) = done_rx.recv_timeout(HANG).unwrap();
    let outcome = result.expect("delivered");
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!((outcome.attempts, outcome.released), (2, 1));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let gap = seen[0].0.duration_since(released_at);
    assert!(
        gap >= Duration::from_millis(100),
        "redelivered after {gap:?}"
    );
    assert_eq!((seen[0].1, seen[0].2), (2, true));
    assert!(releasing.is_alive());
    assert_eq!(releasing.in_flight().unwrap(), 0);
}

/// A release counts toward `max_attempts`: with 2, and every consumer
/// releasing, the message fails with `AttemptsExhausted(2)` (the third
/// consumer never sees it).
#[test]
fn release_counts_toward_max_attempts() {
    let runtime = runtime();
    let group = group_with(
        &runtime,
        Builtin::FirstWithCapacity,
        GroupOptions {
            max_attempts: 2,
            ..GroupOptions::default()
        },
    );
    let log = Log::default();
    for id in ["a", "b", "c"] {
        let log = log.clone();
        group
            .register(ConsumerSpec::push(id, move |d: &Delivery| {
                log.push(d);
                Verdict::Release(Duration::from_millis(10))
            }))
            .unwrap();
    }
    let letters = dead_letters(&group);
    let failure = expect_failure(group.dispatch(msg(1)));
    assert_eq!(failure.error, DispatchError::AttemptsExhausted(2));
    assert_eq!((failure.trail.released, failure.trail.attempts), (2, 2));
    assert!(!failure.is_poison(), "releases are no poison");
    assert_eq!(log.consumers(), vec!["a", "b"]);
    assert_eq!(
        letters.recv_timeout(HANG).unwrap(),
        (1, DispatchError::AttemptsExhausted(2))
    );
    assert_eq!(runtime.metrics().consumer_crashes, 0);
}

// ---- 7. overflow ----------------------------------------------------------------------

struct Full {
    runtime: Runtime,
    group: Group,
    tokens: Receiver<DeliveryToken>,
    done: Receiver<(i64, DispatchResult)>,
    done_tx: Sender<(i64, DispatchResult)>,
    held: DeliveryToken,
}

/// Waiting room 4, one consumer with one slot that defers; message 1 is
/// held and messages 2..=5 wait: the room is full.
fn full_group(overflow: Overflow) -> Full {
    let runtime = runtime();
    let group = group_with(
        &runtime,
        Builtin::FirstWithCapacity,
        GroupOptions {
            waiting_room: 4,
            overflow,
            ..GroupOptions::default()
        },
    );
    let (tok_tx, tokens) = crossbeam_channel::unbounded();
    group
        .register(deferring("solo", &tok_tx).max_in_flight(1))
        .unwrap();
    let (done_tx, done) = crossbeam_channel::unbounded();
    group
        .dispatch_async(msg(1), report_to(1, &done_tx))
        .unwrap();
    let held = tokens.recv_timeout(HANG).expect("message 1 is held");
    for n in 2..=5 {
        group
            .dispatch_async(msg(n), report_to(n, &done_tx))
            .unwrap();
    }
    assert_eq!(group.waiting(), 4);
    Full {
        runtime,
        group,
        tokens,
        done,
        done_tx,
        held,
    }
}

impl Full {
    /// Ack what is held and everything that follows; return the delivered `n`s.
    fn ack_all(&self, expected: usize) -> Vec<i64> {
        self.held.ack().unwrap();
        let mut delivered = Vec::new();
        for _ in 0..expected {
            let (n, result) = self.done.recv_timeout(HANG).unwrap();
            result.unwrap_or_else(|f| panic!("message {n} failed: {f}"));
            delivered.push(n);
            if delivered.len() < expected {
                self.tokens.recv_timeout(HANG).unwrap().ack().unwrap();
            }
        }
        assert!(self.done.try_recv().is_err(), "one completion each");
        delivered.sort_unstable();
        delivered
    }
}

/// Reject: the sixth dispatch (1 held + 4 waiting) is refused at once with
/// `QueueFull`, counted, and nothing else changes.
#[test]
fn overflow_reject() {
    let f = full_group(Overflow::Reject);
    assert_eq!(
        f.group.dispatch_async(msg(6), report_to(6, &f.done_tx)),
        Err(Error::QueueFull)
    );
    assert_eq!(f.runtime.metrics().rejected, 1);
    assert_eq!(f.group.waiting(), 4);
    assert_eq!(f.group.in_flight(), 5);
    assert_eq!(f.ack_all(5), vec![1, 2, 3, 4, 5]);
    let metrics = f.runtime.metrics();
    assert_eq!(
        (metrics.rejected, metrics.dropped, metrics.delivered),
        (1, 0, 5)
    );
}

/// Drop oldest: the sixth is accepted, the oldest *waiting* message (2)
/// fails with `Dropped` and goes to the dead-letter handler.
#[test]
fn overflow_drop_oldest() {
    let f = full_group(Overflow::DropOldest);
    let letters = dead_letters(&f.group);
    f.group
        .dispatch_async(msg(6), report_to(6, &f.done_tx))
        .expect("the new one is accepted");
    let (n, result) = f.done.recv_timeout(HANG).unwrap();
    assert_eq!(n, 2, "the oldest waiting one is dropped");
    assert_eq!(result.unwrap_err().error, DispatchError::Dropped);
    assert_eq!(
        letters.recv_timeout(HANG).unwrap(),
        (2, DispatchError::Dropped)
    );
    assert_eq!(f.group.waiting(), 4);
    let metrics = f.runtime.metrics();
    assert_eq!(
        (metrics.dropped, metrics.dead_lettered, metrics.rejected),
        (1, 1, 0)
    );
    assert_eq!(f.ack_all(5), vec![1, 3, 4, 5, 6]);
    assert!(letters.try_recv().is_err());
    assert_eq!(f.runtime.metrics().delivered, 5);
}

/// Block: the sixth dispatch blocks its thread until an acknowledgement
/// frees room, and returns only after it.
#[test]
fn overflow_block_waits_for_room() {
    let f = full_group(Overflow::Block(HANG));
    let (acking_tx, acking_rx) = crossbeam_channel::bounded::<()>(1);
    let (returned_tx, returned_rx) = crossbeam_channel::bounded(1);
    let blocked = {
        let group = f.group.clone();
        let done_tx = f.done_tx.clone();
        std::thread::spawn(move || {
            let result = group.dispatch_async(msg(6), report_to(6, &done_tx));
            // The ack thread signals just before it acks: if the dispatch
            // returned before that, it did not wait for room.
            let after_ack = acking_rx.try_recv().is_ok();
            returned_tx.send((result, after_ack)).unwrap();
        })
    };
    // Load pacing only: gives a dispatch that fails to block time to return.
    std::thread::sleep(Duration::from_millis(100));
    assert!(returned_rx.try_recv().is_err(), "still blocked");
    let acker = {
        let held = f.held.clone();
        std::thread::spawn(move || {
            acking_tx.send(()).unwrap();
            held.ack().unwrap();
        })
    };
    acker.join().unwrap();
    let (result, after_ack) = returned_rx.recv_timeout(HANG).unwrap();
    assert!(result.is_ok(), "accepted once there was room: {result:?}");
    assert!(after_ack, "returned only after the ack");
    blocked.join().unwrap();
    let (n, first) = f.done.recv_timeout(HANG).unwrap();
    assert_eq!(n, 1);
    first.expect("message 1 delivered");
    let mut delivered = vec![1];
    for _ in 0..5 {
        f.tokens.recv_timeout(HANG).unwrap().ack().unwrap();
        let (n, result) = f.done.recv_timeout(HANG).unwrap();
        result.expect("delivered");
        delivered.push(n);
    }
    delivered.sort_unstable();
    assert_eq!(delivered, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(f.runtime.metrics().rejected, 0);
}

/// Block with nobody acknowledging: `QueueFull` after the timeout, having
/// slept rather than spun.
#[test]
fn overflow_block_times_out_without_spinning() {
    let block = Duration::from_millis(300);
    let f = full_group(Overflow::Block(block));
    let (result, wall, cpu) = {
        let group = f.group.clone();
        let done_tx = f.done_tx.clone();
        std::thread::spawn(move || {
            let cpu_before = thread_cpu();
            let started = Instant::now();
            let result = group.dispatch_async(msg(6), report_to(6, &done_tx));
            let wall = started.elapsed();
            (result, wall, thread_cpu().saturating_sub(cpu_before))
        })
        .join()
        .unwrap()
    };
    assert_eq!(result, Err(Error::QueueFull));
    assert!(wall >= block, "returned after {wall:?}");
    assert!(
        cpu < wall / 2,
        "blocked thread used {cpu:?} of CPU in {wall:?}"
    );
    assert_eq!(f.runtime.metrics().rejected, 1);
    assert_eq!(f.group.waiting(), 4);
    assert_eq!(f.ack_all(5), vec![1, 2, 3, 4, 5]);
}

// ---- 8. deadlines and timeouts -------------------------------------------------------

/// A message waiting in an empty group past its own deadline: `Expired`,
/// dead-lettered, and the waiting room is empty again.
#[test]
fn deadline_expires_a_waiting_message() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let letters = dead_letters(&group);
    let started = Instant::now();
    let failure = expect_failure(group.dispatch_with(
        msg(1),
        &DispatchOptions {
            deadline: Some(Duration::from_millis(100)),
            ..DispatchOptions::default()
        },
    ));
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(failure.error, DispatchError::Expired);
    assert_eq!(failure.trail.attempts, 0);
    assert_eq!(
        letters.recv_timeout(HANG).unwrap(),
        (1, DispatchError::Expired)
    );
    assert_eq!(group.waiting(), 0);
    assert_eq!(group.in_flight(), 0);
    let metrics = runtime.metrics();
    assert_eq!((metrics.expired, metrics.dead_lettered), (1, 1));
}

/// A message held by a deferring consumer past its deadline: `Expired`,
/// the slot comes back, and the consumer's later ack is fenced.
#[test]
fn deadline_expires_a_held_message_and_fences_the_late_ack() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let letters = dead_letters(&group);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded();
    let holder = group.register(deferring("a", &tok_tx)).unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    group
        .dispatch_async_with(
            msg(1),
            &DispatchOptions {
                deadline: Some(Duration::from_millis(100)),
                ..DispatchOptions::default()
            },
            report_to(1, &done_tx),
        )
        .unwrap();
    let token = tok_rx.recv_timeout(HANG).expect("held");
    let (_, result) = done_rx.recv_timeout(HANG).unwrap();
    let failure = result.unwrap_err();
    assert_eq!(failure.error, DispatchError::Expired);
    assert_eq!(failure.trail.attempts, 1);
    assert_eq!(
        letters.recv_timeout(HANG).unwrap(),
        (1, DispatchError::Expired)
    );
    assert_eq!(token.ack(), Err(Error::StaleDelivery(token.delivery_id())));
    assert!(holder.is_alive());
    assert_eq!(holder.in_flight().unwrap(), 0, "the slot came back");
    assert_eq!(holder.delivered(), 0);
    assert!(done_rx.try_recv().is_err(), "one completion");
    assert_eq!(runtime.metrics().delivered, 0);
}

/// The group's default deadline applies to a dispatch without one; a
/// dispatch's own deadline overrides it.
#[test]
fn group_default_deadline_applies_when_the_dispatch_has_none() {
    let runtime = runtime();
    let group = group_with(
        &runtime,
        Builtin::LeastLoaded,
        GroupOptions {
            deadline: Some(Duration::from_millis(100)),
            ..GroupOptions::default()
        },
    );
    let letters = dead_letters(&group);
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    group
        .dispatch_async(msg(1), report_to(1, &done_tx))
        .unwrap();
    group
        .dispatch_async_with(
            msg(2),
            &DispatchOptions {
                deadline: Some(HANG),
                ..DispatchOptions::default()
            },
            report_to(2, &done_tx),
        )
        .unwrap();
    let (n, result) = done_rx.recv_timeout(HANG).unwrap();
    assert_eq!(n, 1);
    assert_eq!(result.unwrap_err().error, DispatchError::Expired);
    assert_eq!(
        letters.recv_timeout(HANG).unwrap(),
        (1, DispatchError::Expired)
    );
    assert_eq!(
        group.waiting(),
        1,
        "message 2 keeps its own, longer deadline"
    );
    let log = Log::default();
    group.register(acking("late", &log)).unwrap();
    let (n, result) = done_rx.recv_timeout(HANG).unwrap();
    assert_eq!(n, 2);
    assert_eq!(result.expect("delivered").delivered_to, "late");
    assert!(letters.try_recv().is_err());
}

/// A blocking dispatch's own timeout: `TimedOut`, the message withdrawn
/// (the consumer's later ack is fenced).
#[test]
fn blocking_dispatch_timeout() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded();
    let holder = group.register(deferring("a", &tok_tx)).unwrap();
    let started = Instant::now();
    let failure = expect_failure(group.dispatch_with(
        msg(1),
        &DispatchOptions {
            timeout: Some(Duration::from_millis(100)),
            ..DispatchOptions::default()
        },
    ));
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(failure.error, DispatchError::TimedOut);
    let token = tok_rx.recv_timeout(HANG).expect("it had been delivered");
    assert_eq!(token.ack(), Err(Error::StaleDelivery(token.delivery_id())));
    assert_eq!(holder.in_flight().unwrap(), 0);
    assert_eq!(group.in_flight(), 0);
    assert_eq!(runtime.metrics().timed_out, 1);
}

// ---- 9. drain under load -------------------------------------------------------------

/// What a drain in mid-stream saw.
struct Drained {
    left: usize,
    /// Completion callbacks that had run when drain returned.
    completed_at_return: usize,
    accepted: Vec<u64>,
    completions: HashMap<u64, usize>,
    consumer_deliveries: usize,
}

/// Four producers dispatch while two consumers ack; once 2,000 dispatches
/// have completed the test thread drains. Producers stop at `Draining`.
fn drain_in_mid_stream() -> Drained {
    const PRODUCERS: usize = 4;
    let runtime = runtime();
    let group = group(&runtime, Builtin::LeastLoaded);
    let log = Log::default();
    for id in ["a", "b"] {
        group.register(acking(id, &log)).unwrap();
    }
    let (completion_tx, completion_rx) = crossbeam_channel::unbounded::<u64>();
    let completed = Arc::new(AtomicUsize::new(0));
    let (midway_tx, midway_rx) = crossbeam_channel::bounded::<()>(1);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let group = group.clone();
            let completion_tx = completion_tx.clone();
            let completed = Arc::clone(&completed);
            let midway_tx = midway_tx.clone();
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for i in 0.. {
                    // Load pacing: keep about a thousand in flight.
                    while group.in_flight() > 1000 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let completion_tx = completion_tx.clone();
                    let completed = Arc::clone(&completed);
                    let midway_tx = midway_tx.clone();
                    let result = group.dispatch_async(
                        msg((p * 1_000_000 + i) as i64),
                        Box::new(move |r| {
                            let outcome = r.expect("delivered");
                            completion_tx.send(outcome.dispatch_id).unwrap();
                            if completed.fetch_add(1, Ordering::SeqCst) + 1 == 2000 {
                                let _ = midway_tx.try_send(());
                            }
                        }),
                    );
                    match result {
                        Ok(id) => accepted.push(id),
                        Err(Error::Draining) => return accepted,
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
                unreachable!()
            })
        })
        .collect();
    drop((midway_tx, completion_tx));
    midway_rx.recv_timeout(HANG).expect("the stream is flowing");
    let left = group.drain(HANG).unwrap();
    let completed_at_return = completed.load(Ordering::SeqCst);
    assert_eq!(group.in_flight(), 0);
    assert_eq!(
        group.dispatch_async(msg(-1), Box::new(|_| panic!("refused: never completed"))),
        Err(Error::Draining)
    );
    assert_eq!(group.dispatch(msg(-2)), Err(Error::Draining));
    let accepted: Vec<u64> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    assert!(accepted.len() > 2000);
    // Every completion ran before drain returned (checked strictly below);
    // collect them to check exactly one per accepted dispatch.
    let mut completions = HashMap::<u64, usize>::new();
    for _ in 0..accepted.len() {
        let id = completion_rx
            .recv_timeout(HANG)
            .expect("every accepted one completes");
        *completions.entry(id).or_default() += 1;
    }
    drop(group);
    drop(runtime);
    assert!(
        completion_rx.recv_timeout(HANG).is_err(),
        "no completion beyond one per accepted dispatch"
    );
    let consumer_deliveries = log.0.lock().unwrap().len();
    Drained {
        left,
        completed_at_return,
        accepted,
        completions,
        consumer_deliveries,
    }
}

/// Drain in mid-stream: later dispatches get `Draining`, drain reports
/// nothing left, and every accepted dispatch completes exactly once.
#[test]
fn drain_under_load() {
    let d = drain_in_mid_stream();
    assert_eq!(d.left, 0);
    assert_eq!(d.completions.len(), d.accepted.len());
    for id in &d.accepted {
        assert_eq!(
            d.completions.get(id),
            Some(&1),
            "dispatch {id}: exactly one completion"
        );
    }
    assert_eq!(d.consumer_deliveries, d.accepted.len());
}

/// Drain returns 0 only when every accepted dispatch has completed — its
/// completion callback included.
#[test]
fn drain_under_load_returns_only_after_every_completion_ran() {
    let d = drain_in_mid_stream();
    assert_eq!(d.left, 0);
    assert_eq!(
        d.completed_at_return,
        d.accepted.len(),
        "drain returned 0 before every accepted dispatch's completion had run"
    );
}

/// The same, reduced: one dispatch acked by its consumer, then drain. When
/// drain reports nothing left, the completion has run.
#[test]
fn drain_returns_only_after_the_completion_ran() {
    let runtime = runtime();
    let mut early = 0;
    for _ in 0..200 {
        let group = group(&runtime, Builtin::LeastLoaded);
        group.register(acking("a", &Log::default())).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        group
            .dispatch_async(
                msg(1),
                Box::new(move |_| flag.store(true, Ordering::SeqCst)),
            )
            .unwrap();
        assert_eq!(group.drain(HANG).unwrap(), 0);
        if !ran.load(Ordering::SeqCst) {
            early += 1;
        }
        group.close();
    }
    assert_eq!(
        early, 0,
        "drain returned 0 before the completion ran, {early} times in 200"
    );
}

// ---- 10. poison counting -------------------------------------------------------------

fn poison_group(runtime: &Runtime, count_holding_crashes: bool) -> Group {
    group_with(
        runtime,
        Builtin::FirstWithCapacity,
        GroupOptions {
            max_attempts: 1,
            count_holding_crashes,
            ..GroupOptions::default()
        },
    )
}

/// "a" defers message 1 and holds it; a sentinel message (0), which "a"
/// acks, proves its callback for message 1 has returned (a consumer runs
/// one callback at a time): from then on "a" merely *holds* message 1.
/// Without the sentinel, a crash declared the moment the token arrives may
/// find the callback still running, which rightly counts as handling.
fn holder_of_message_1(group: &Group, done_tx: &Sender<(i64, DispatchResult)>) -> Consumer {
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded();
    let holder = group
        .register(ConsumerSpec::push("a", move |d: &Delivery| {
            if n_of(d.message()) == 0 {
                Verdict::Ack
            } else {
                tok_tx.send(d.token()).unwrap();
                Verdict::Defer
            }
        }))
        .unwrap();
    group.dispatch_async(msg(1), report_to(1, done_tx)).unwrap();
    let _held = tok_rx.recv_timeout(HANG).expect("a holds message 1");
    assert_eq!(group.dispatch(msg(0)).unwrap().delivered_to, "a");
    holder
}

/// A consumer killed from outside while merely holding a deferred message
/// does not count against it: with max_attempts 1 it is still delivered
/// elsewhere, counted as one holding crash.
#[test]
fn holding_crash_does_not_count_toward_max_attempts() {
    let runtime = runtime();
    let group = poison_group(&runtime, false);
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let holder = holder_of_message_1(&group, &done_tx);
    let seen: Arc<Mutex<Vec<(u32, u32, bool)>>> = Arc::default();
    {
        let seen = Arc::clone(&seen);
        group
            .register(ConsumerSpec::push("b", move |d: &Delivery| {
                seen.lock().unwrap().push((
                    d.crashed_handling(),
                    d.crashed_holding(),
                    d.redelivered(),
                ));
                Verdict::Ack
            }))
            .unwrap();
    }
    holder.crash("killed from outside").unwrap();
    let (_, result) = done_rx.recv_timeout(HANG).unwrap();
    let outcome = result.expect("still delivered");
    assert_eq!(outcome.delivered_to, "b");
    assert_eq!((outcome.crashed_holding, outcome.crashed_handling), (1, 0));
    assert_eq!(outcome.rerouted_from, vec!["a"]);
    assert_eq!(*seen.lock().unwrap(), vec![(0, 1, true)]);
}

/// A consumer that answers `Verdict::Crash` died handling the message: with
/// max_attempts 1 the message is dead-lettered.
#[test]
fn handling_crash_counts_toward_max_attempts() {
    let runtime = runtime();
    let group = poison_group(&runtime, false);
    let log = Log::default();
    group.register(crashing("a", &log)).unwrap();
    group.register(acking("b", &log)).unwrap();
    let letters = dead_letters(&group);
    let failure = expect_failure(group.dispatch(msg(1)));
    assert_eq!(failure.error, DispatchError::AttemptsExhausted(1));
    assert_eq!(
        (
            failure.trail.crashed_handling,
            failure.trail.crashed_holding
        ),
        (1, 0)
    );
    assert_eq!(log.consumers(), vec!["a"], "b never sees it");
    assert_eq!(
        letters.recv_timeout(HANG).unwrap(),
        (1, DispatchError::AttemptsExhausted(1))
    );
    assert_eq!(runtime.metrics().attempts_exhausted, 1);
}

/// With `count_holding_crashes`, dying while merely holding counts too.
#[test]
fn holding_crash_counts_with_count_holding_crashes() {
    let runtime = runtime();
    let group = poison_group(&runtime, true);
    let log = Log::default();
    group.register(acking("b", &log)).unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let holder = holder_of_message_1(&group, &done_tx);
    holder.crash("killed from outside").unwrap();
    let (_, result) = done_rx.recv_timeout(HANG).unwrap();
    let failure = result.unwrap_err();
    assert_eq!(failure.error, DispatchError::AttemptsExhausted(1));
    assert_eq!(
        (
            failure.trail.crashed_holding,
            failure.trail.crashed_handling
        ),
        (1, 0)
    );
    assert!(log.consumers().is_empty(), "b never sees it");
}

// ---- 11. where the crash callback runs ------------------------------------------------

/// `Consumer::crash` runs the consumer's crash callback on the calling
/// thread, before it returns (200 rounds, each crash with a held delivery).
#[test]
fn crash_callback_runs_on_the_thread_that_declares_the_crash() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let log = Log::default();
    group.register(acking("z-backup", &log)).unwrap();
    let (tok_tx, tok_rx) = crossbeam_channel::unbounded();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    for round in 0..200 {
        let called_on = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&called_on);
        let victim = group
            .register(deferring("a-victim", &tok_tx).on_crash(move |_report| {
                recorder.lock().unwrap().push(std::thread::current().id());
            }))
            .unwrap();
        group
            .dispatch_async(msg(round), report_to(round, &done_tx))
            .unwrap();
        let _held = tok_rx.recv_timeout(HANG).expect("the victim holds it");
        victim.crash("declared").unwrap();
        assert_eq!(
            *called_on.lock().unwrap(),
            vec![std::thread::current().id()],
            "round {round}: the crash callback ran once, on the caller's thread, before crash returned"
        );
        let (n, result) = done_rx.recv_timeout(HANG).unwrap();
        assert_eq!(n, round);
        assert_eq!(result.expect("re-routed").delivered_to, "z-backup");
    }
}

// ---- 12. answers given from inside callbacks ------------------------------------------

/// A delivery callback makes its own consumer leave, then acks: the answer
/// the library waited for counts.
#[test]
fn callback_that_makes_its_own_consumer_leave_then_acks() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let me: Arc<Mutex<Option<Consumer>>> = Arc::default();
    let left = Arc::new(Mutex::new(None));
    let leaver = {
        let me = Arc::clone(&me);
        let left = Arc::clone(&left);
        group
            .register(ConsumerSpec::push("a-leaver", move |_d: &Delivery| {
                // Take the handle: no cycle between the consumer and its handler.
                if let Some(me) = me.lock().unwrap().take() {
                    *left.lock().unwrap() = Some(me.leave());
                }
                Verdict::Ack
            }))
            .unwrap()
    };
    *me.lock().unwrap() = Some(leaver.clone());
    let log = Log::default();
    group.register(acking("z-other", &log)).unwrap();
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "a-leaver");
    assert_eq!(outcome.attempts, 1);
    assert!(outcome.rerouted_from.is_empty());
    assert_eq!(*left.lock().unwrap(), Some(Ok(())));
    assert!(!leaver.is_alive());
    assert!(log.consumers().is_empty());
    assert_eq!(group.dispatch(msg(2)).unwrap().delivered_to, "z-other");
    assert_eq!(leaver.delivered(), 1);
}

/// A delivery callback closes its own group, then acks: delivered too.
#[test]
fn callback_that_closes_its_own_group_then_acks() {
    let runtime = runtime();
    let group = group(&runtime, Builtin::FirstWithCapacity);
    let own_group: Arc<Mutex<Option<Group>>> = Arc::new(Mutex::new(Some(group.clone())));
    let closed = Arc::new(AtomicBool::new(false));
    {
        let own_group = Arc::clone(&own_group);
        let closed = Arc::clone(&closed);
        group
            .register(ConsumerSpec::push("a-closer", move |_d: &Delivery| {
                if let Some(group) = own_group.lock().unwrap().take() {
                    group.close();
                    closed.store(true, Ordering::SeqCst);
                }
                Verdict::Ack
            }))
            .unwrap();
    }
    let outcome = group.dispatch(msg(1)).unwrap();
    assert_eq!(outcome.delivered_to, "a-closer");
    assert_eq!(outcome.attempts, 1);
    assert!(closed.load(Ordering::SeqCst));
    assert!(group.is_empty());
    assert_eq!(group.dispatch(msg(2)), Err(Error::Draining));
    assert_eq!(runtime.metrics().delivered, 1);
}
