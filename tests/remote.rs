//! Remote consumers over Zenoh (feature `remote`): a worker process that is
//! killed, frozen or cut off is a crash like any other: what it held is
//! re-routed, excluding it, exactly once, and whatever it says later is
//! stale. Workers in this process cover the rest of the contract
//! (capacity, deadlines, poison counting, leave, shutdown, encoding).
#![cfg(feature = "remote")]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::remote::*;
use common::*;
use liminal::{
    ConsumerSpec, CrashKind, CrashReport, Delivery, DeliveryHandler, DeliveryToken, DispatchError,
    DispatchOptions, FieldValue, GroupOptions, LeasePolicy, Message, RemoteHost, Verdict, Worker,
    WorkerSpec, WorkerStatus,
};

const SECOND: Duration = Duration::from_secs(1);

/// Not a test: the body of a worker process (see `common::remote`).
#[test]
fn worker_process() {
    worker_main();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// A worker process holding 100 deferred deliveries is `kill -9`ed: all 100
/// are re-routed to the other workers (one remote, one local), none lost,
/// none twice, the crash reported as connection lost. Five rounds; the
/// kill → re-route times are printed (the 20-round figures are in
/// BENCHMARKS.md, from `examples/remote_bench.rs`).
#[test]
fn kill_9_of_a_worker_holding_100_reroutes_every_one() {
    const HELD: usize = 100;
    let host = Host::open("kill9", GroupOptions::default(), SECOND);
    let log = Log::default();
    let mut noticed = Vec::new();
    let mut rerouted = Vec::new();
    for round in 0..5 {
        let holder_id = format!("holder-{round}");
        let holder = WorkerProcess::spawn(&host.endpoint, "kill9", &holder_id, "hold", SECOND);
        holder.expect("joined");
        let (done, results) = completions();
        let ids = dispatch_n(&host.group, HELD, &done);
        for _ in 0..HELD {
            holder.expect("held");
        }
        let acker_id = format!("acker-{round}");
        let acker = WorkerProcess::spawn(&host.endpoint, "kill9", &acker_id, "ack", SECOND);
        acker.expect("joined");
        let local = host
            .group
            .register(acking(&format!("local-{round}"), &log))
            .unwrap();
        let mut holder = holder;
        let killed = holder.kill_9();
        let results = collect(&ids, &results);
        let report = host.crashes.recv_timeout(HANG).expect("crash reported");
        assert_eq!(report.consumer_id, holder_id, "{report:?}");
        assert_eq!(report.kind, CrashKind::ConnectionLost, "{report:?}");
        assert!(!report.alive);
        let mut last = Duration::ZERO;
        for (id, result) in results {
            let outcome = result.unwrap_or_else(|f| panic!("dispatch {id} failed: {f:?}"));
            assert_ne!(
                outcome.delivered_to, holder_id,
                "re-routed away from the dead"
            );
            assert!(
                outcome.delivered_to == acker_id || outcome.delivered_to == local.id(),
                "delivered to {}",
                outcome.delivered_to
            );
            assert_eq!(outcome.trail.rerouted_from, vec![holder_id.clone()]);
            assert_eq!(outcome.trail.attempts, 2);
            let timing = outcome.trail.reroute_timings[0];
            noticed.push(timing.crash_noticed.saturating_duration_since(killed));
            last = last.max(timing.reroute_initiated.saturating_duration_since(killed));
        }
        rerouted.push(last);
        assert!(host.crashes.try_recv().is_err(), "one crash per kill");
        local.leave().unwrap();
        acker.finish();
        wait_until(HANG, || host.remote.workers() == 0);
    }
    noticed.sort();
    rerouted.sort();
    println!(
        "kill -9 → crash noticed p50 {:?} max {:?}; kill -9 → all 100 re-routed p50 {:?} max {:?}",
        percentile(&noticed, 0.5),
        noticed[noticed.len() - 1],
        percentile(&rerouted, 0.5),
        rerouted[rerouted.len() - 1],
    );
}

/// A frozen worker (`SIGSTOP`) under quarantine: its deliveries are taken
/// back after the acknowledgement lease (re-routed, the worker reported
/// alive), then the worker is declared dead after its session lease
/// (session expired). Resumed, it comes back as a new incarnation.
#[test]
fn a_frozen_worker_loses_its_deliveries_after_the_ack_lease_then_expires() {
    let options = GroupOptions {
        ack_lease: Some(Duration::from_millis(200)),
        lease_policy: LeasePolicy::Quarantine,
        ..GroupOptions::default()
    };
    let host = Host::open("frozen", options, SECOND);
    let mut worker = WorkerProcess::spawn(&host.endpoint, "frozen", "w", "hold", SECOND);
    let first = worker.expect("joined");
    let (done, results) = completions();
    let ids = dispatch_n(&host.group, 10, &done);
    for _ in 0..10 {
        worker.expect("held");
    }
    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    worker.signal("STOP");
    let stopped = Instant::now();
    for (id, result) in collect(&ids, &results) {
        let outcome = result.unwrap_or_else(|f| panic!("dispatch {id} failed: {f:?}"));
        assert_eq!(outcome.delivered_to, "local");
        assert_eq!(outcome.trail.lease_expired, 1);
    }
    // One report per expired lease (the worker survives them), then its death.
    let mut quarantined = 0;
    let expired = loop {
        let report = host.crashes.recv_timeout(HANG).unwrap();
        if report.kind != CrashKind::LeaseExpired {
            break report;
        }
        assert!(report.alive);
        quarantined += 1;
    };
    let after = stopped.elapsed();
    assert_eq!(quarantined, 10);
    assert_eq!(expired.kind, CrashKind::SessionExpired, "{expired:?}");
    assert!(!expired.alive);
    println!("SIGSTOP → session expired at a 1 s lease: {after:?}");
    assert!(
        after >= Duration::from_millis(700),
        "expired early: {after:?}"
    );
    worker.signal("CONT");
    let second = worker.expect("joined");
    assert_ne!(first, second, "it came back as a new incarnation");
    // The worker knows its old deliveries were taken back: nothing is sent.
    worker.command("ack-all");
    assert_eq!(worker.expect("acked"), "0");
    assert_eq!(host.group.in_flight(), 0);
}

/// At a 100 ms session lease a frozen worker is declared dead within
/// about 100 ms; what it held is re-routed at once; when it resumes it
/// learns it was declared dead (answers to its old deliveries are refused
/// as stale on the worker) and comes back as a new incarnation.
#[test]
fn a_short_session_lease_expires_a_frozen_worker_fast() {
    let lease = Duration::from_millis(100);
    let host = Host::open("short", GroupOptions::default(), lease);
    let mut worker = WorkerProcess::spawn(&host.endpoint, "short", "w", "hold", lease);
    let first = worker.expect("joined");
    let (done, results) = completions();
    let ids = dispatch_n(&host.group, 20, &done);
    for _ in 0..20 {
        worker.expect("held");
    }
    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    worker.signal("STOP");
    let stopped = Instant::now();
    let report = host.crashes.recv_timeout(HANG).unwrap();
    let after = stopped.elapsed();
    assert_eq!(report.kind, CrashKind::SessionExpired, "{report:?}");
    println!("SIGSTOP → session expired at a 100 ms lease: {after:?}");
    for (id, result) in collect(&ids, &results) {
        let outcome = result.unwrap_or_else(|f| panic!("dispatch {id} failed: {f:?}"));
        assert_eq!(outcome.delivered_to, "local");
        // One death of the holder. The worker prints "held" inside its
        // handler, before it sends `deferred`: stopped in between, it died
        // *handling* the message (PROTOCOL.md), not holding it.
        assert_eq!(
            outcome.trail.crashed_holding + outcome.trail.crashed_handling,
            1,
            "{outcome:?}"
        );
        assert_eq!(outcome.trail.rerouted_from, ["w"]);
    }
    worker.signal("CONT");
    // Answers sent while the worker's session is still down are lost;
    // once it is back (as a new incarnation) they reach the host, stale.
    let second = worker.expect("joined");
    assert_ne!(first, second);
    worker.command("ack-all");
    assert_eq!(worker.expect("acked"), "0", "it knows they were taken back");
    assert_eq!(log.consumers().len(), 20, "each delivered once, locally");
}

/// A TCP proxy between a worker and the host that can cut every
/// connection and refuse new ones until healed.
struct Proxy {
    endpoint: String,
    cut: Arc<Mutex<(bool, Vec<std::net::TcpStream>)>>,
}

impl Proxy {
    fn start(to: &str) -> Self {
        let target = to.trim_start_matches("tcp/").to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("tcp/{}", listener.local_addr().unwrap());
        let cut: Arc<Mutex<(bool, Vec<std::net::TcpStream>)>> = Arc::default();
        let state = Arc::clone(&cut);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let mut guard = state.lock().unwrap();
                if guard.0 {
                    let _closed = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                guard.1.push(client.try_clone().unwrap());
                guard.1.push(server.try_clone().unwrap());
                drop(guard);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _copied = std::io::copy(&mut from, &mut to);
                        let _closed = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { endpoint, cut }
    }

    fn cut(&self) {
        let mut guard = self.cut.lock().unwrap();
        guard.0 = true;
        for stream in guard.1.drain(..) {
            let _closed = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.cut.lock().unwrap().0 = false;
    }
}

/// The network between host and worker is cut: the host re-routes what
/// the worker held; when the network heals, the worker learns it was
/// declared dead and comes back as a new incarnation.
#[test]
fn a_network_cut_reroutes_and_the_worker_starts_over() {
    let host = Host::open("cut", GroupOptions::default(), SECOND);
    let proxy = Proxy::start(&host.endpoint);
    let mut worker = WorkerProcess::spawn(&proxy.endpoint, "cut", "w", "hold", SECOND);
    let first = worker.expect("joined");
    let (done, results) = completions();
    let ids = dispatch_n(&host.group, 10, &done);
    for _ in 0..10 {
        worker.expect("held");
    }
    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    proxy.cut();
    let report = host.crashes.recv_timeout(HANG).unwrap();
    assert!(
        matches!(
            report.kind,
            CrashKind::ConnectionLost | CrashKind::SessionExpired
        ),
        "{report:?}"
    );
    for (id, result) in collect(&ids, &results) {
        let outcome = result.unwrap_or_else(|f| panic!("dispatch {id} failed: {f:?}"));
        assert_eq!(outcome.delivered_to, "local");
    }
    proxy.heal();
    let second = worker.expect("joined");
    assert_ne!(first, second, "back as a new incarnation");
    worker.command("ack-all");
    assert_eq!(worker.expect("acked"), "0", "it knows they were taken back");
    assert_eq!(log.consumers().len(), 10);
}

/// An in-process worker of `host`'s group, connected, not yet joined; with
/// no handler it takes its deliveries itself (pull mode).
fn connect(
    host: &Host,
    group: &str,
    id: &str,
    max_in_flight: u32,
    tags: Vec<String>,
    handler: Option<Box<dyn DeliveryHandler>>,
) -> Worker {
    Worker::connect(
        WorkerSpec {
            group: group.into(),
            id: id.into(),
            max_in_flight,
            tags,
            handler,
        },
        &options(None, Some(&host.endpoint), SECOND),
    )
    .expect("worker connects")
}

/// An in-process worker, joined and a consumer of the host's group.
fn worker(
    host: &Host,
    group: &str,
    id: &str,
    max_in_flight: u32,
    handler: impl FnMut(&Delivery) -> Verdict + Send + 'static,
) -> Worker {
    let worker = connect(
        host,
        group,
        id,
        max_in_flight,
        Vec::new(),
        Some(Box::new(handler)),
    );
    worker.wait_joined(HANG).expect("joined");
    // The acceptance comes just before the host makes it a consumer.
    wait_until(HANG, || host.group.consumer(id).is_some());
    worker
}

/// Why the host refused `worker` (it must refuse it).
fn refusal(worker: &Worker) -> String {
    match worker.wait_joined(HANG) {
        Err(liminal::Error::UnknownConsumer(reason)) => reason,
        other => panic!("{other:?}"),
    }
}

/// A handler that holds every delivery and passes its token on.
fn holding(
    tokens: &crossbeam_channel::Sender<DeliveryToken>,
) -> impl FnMut(&Delivery) -> Verdict + Send + 'static {
    let tokens = tokens.clone();
    move |d: &Delivery| {
        tokens.send(d.token()).unwrap();
        Verdict::Defer
    }
}

/// A remote worker is never sent more than its `max_in_flight`; the rest
/// waits (never fails) and is delivered as it answers.
#[test]
fn a_remote_workers_capacity_is_a_reservation_and_the_rest_waits() {
    let host = Host::open("cap", GroupOptions::default(), SECOND);
    let (tx, tokens) = crossbeam_channel::unbounded();
    let _worker = worker(&host, "cap", "w", 2, holding(&tx));
    let (done, results) = completions();
    let ids = dispatch_n(&host.group, 10, &done);
    let mut held = vec![
        tokens.recv_timeout(HANG).unwrap(),
        tokens.recv_timeout(HANG).unwrap(),
    ];
    wait_until(HANG, || host.group.waiting() == 8);
    assert!(tokens.try_recv().is_err(), "never more than 2 at once");
    let mut answered = 0;
    while let Some(token) = held.pop() {
        token.ack().unwrap();
        answered += 1;
        if answered <= 8 {
            held.push(tokens.recv_timeout(HANG).unwrap());
        }
        assert!(held.len() <= 2);
    }
    for (_, result) in collect(&ids, &results) {
        assert_eq!(result.unwrap().delivered_to, "w");
    }
}

/// A message waiting behind a full remote worker fails at its deadline.
#[test]
fn deadlines_hold_behind_a_full_remote_worker() {
    let host = Host::open("deadline", GroupOptions::default(), SECOND);
    let (tx, tokens) = crossbeam_channel::unbounded();
    let _worker = worker(&host, "deadline", "w", 1, holding(&tx));
    let (done, results) = completions();
    let first = dispatch_n(&host.group, 1, &done);
    let held = tokens.recv_timeout(HANG).unwrap();
    let started = Instant::now();
    let failure = host
        .group
        .dispatch_with(
            msg(1),
            &DispatchOptions {
                deadline: Some(Duration::from_millis(100)),
                ..DispatchOptions::default()
            },
        )
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(100));
    match failure {
        liminal::Error::Dispatch(f) => assert!(matches!(f.error, DispatchError::Expired), "{f:?}"),
        other => panic!("{other:?}"),
    }
    held.ack().unwrap();
    let results = collect(&first, &results);
    assert!(results.values().all(Result::is_ok));
}

/// A worker that answers crash is declared dead and comes back as a new
/// incarnation; the poison message counts each crash and is dead-lettered
/// after `max_attempts`.
#[test]
fn poison_is_counted_across_incarnations() {
    let options = GroupOptions {
        max_attempts: 2,
        ..GroupOptions::default()
    };
    let host = Host::open("poison", options, SECOND);
    let worker = worker(&host, "poison", "w", 4, |_d: &Delivery| {
        Verdict::Crash("poison".into())
    });
    let first = worker.incarnation();
    let failure = host.group.dispatch(msg(7)).unwrap_err();
    match failure {
        liminal::Error::Dispatch(f) => {
            assert!(
                matches!(f.error, DispatchError::AttemptsExhausted(2)),
                "{f:?}"
            );
            assert_eq!(f.trail.crashed_handling, 2);
            assert!(f.is_poison(), "crash answers are dying handling it: {f:?}");
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..2 {
        let report = host.crashes.recv_timeout(HANG).unwrap();
        assert_eq!(report.kind, CrashKind::Verdict, "{report:?}");
        assert!(report.reason.contains("poison"), "{report:?}");
    }
    worker.wait_joined(HANG).unwrap();
    assert_ne!(worker.incarnation(), first);
}

/// A release goes elsewhere and counts; fields and payload arrive intact.
#[test]
fn release_reroutes_and_messages_arrive_intact() {
    let host = Host::open("release", GroupOptions::default(), SECOND);
    let seen: Arc<Mutex<Vec<Message>>> = Arc::default();
    let record = Arc::clone(&seen);
    let _worker = worker(&host, "release", "w", 4, move |d: &Delivery| {
        record.lock().unwrap().push(d.message().clone());
        Verdict::Release(Duration::ZERO)
    });
    let message = Message::new()
        .with("text", FieldValue::Text("grüße/*$".into()))
        .with("int", FieldValue::Int(i64::MIN))
        .with("double", FieldValue::Double(0.1))
        .with("bool", FieldValue::Bool(true))
        .with("null", FieldValue::Null)
        .with_payload(vec![0, 255, 10, 13]);
    // The release reaches the host before a local consumer exists, so the
    // message waits for one.
    let (done, results) = completions();
    let dispatched = host
        .group
        .dispatch_async(
            message.clone(),
            Box::new(move |r| {
                let _sent = done.send((0, r));
            }),
        )
        .unwrap();
    wait_until(HANG, || !seen.lock().unwrap().is_empty());
    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    let (_, result) = results.recv_timeout(HANG).unwrap();
    let outcome = result.unwrap();
    assert_eq!(outcome.trail.dispatch_id, dispatched);
    assert_eq!(outcome.delivered_to, "local");
    assert_eq!(outcome.trail.released, 1);
    assert_eq!(seen.lock().unwrap()[0], message);
}

/// A worker that leaves gracefully hands back what it held (not a crash);
/// a host that closes tells its workers; nothing hangs.
#[test]
fn leaving_and_closing_are_graceful() {
    let host = Host::open("leave", GroupOptions::default(), SECOND);
    let (tx, tokens) = crossbeam_channel::unbounded();
    let leaving = worker(&host, "leave", "leaving", 8, holding(&tx));
    let (done, results) = completions();
    let ids = dispatch_n(&host.group, 5, &done);
    for _ in 0..5 {
        tokens.recv_timeout(HANG).unwrap();
    }
    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    leaving.close();
    for (_, result) in collect(&ids, &results) {
        let outcome = result.unwrap();
        assert_eq!(outcome.delivered_to, "local");
        assert_eq!(
            outcome.trail.crashed_holding + outcome.trail.crashed_handling,
            0
        );
    }
    assert!(host.crashes.try_recv().is_err(), "a leave is not a crash");

    let staying = worker(&host, "leave", "staying", 8, |_d: &Delivery| Verdict::Ack);
    let lost = host_lost_notices(&staying);
    let Host {
        remote, runtime, ..
    } = host;
    drop(remote);
    expect_host_lost(&lost, &staying);
    runtime.shutdown().unwrap();
    drop(staying);
}

/// Runtime shutdown closes its remote hosts (workers told) without a hang.
#[test]
fn runtime_shutdown_closes_remote_hosts() {
    let host = Host::open("shutdown", GroupOptions::default(), SECOND);
    let staying = worker(&host, "shutdown", "w", 8, |_d: &Delivery| Verdict::Ack);
    let lost = host_lost_notices(&staying);
    host.runtime.shutdown().unwrap();
    expect_host_lost(&lost, &staying);
    assert_eq!(host.remote.workers(), 0);
}

/// The worker's host-lost notices. Tests wait for one rather than poll the
/// worker's status: it leaves `HostGone` at once (it waits for a new host),
/// so a poll on a busy machine can miss it.
fn host_lost_notices(worker: &Worker) -> crossbeam_channel::Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    worker.set_host_lost_handler(Some(Box::new(move |reason: &str| {
        let _ = tx.send(reason.to_owned());
    })));
    rx
}

/// One notice that the host is gone (by its bye, or by its token if that
/// went first), and the worker no longer joined.
fn expect_host_lost(notices: &crossbeam_channel::Receiver<String>, worker: &Worker) {
    let reason = notices.recv_timeout(HANG).expect("told its host is gone");
    assert!(
        reason.contains("bye") || reason.contains("liveliness"),
        "{reason}"
    );
    assert_ne!(worker.status(), WorkerStatus::Joined);
}

/// A host's crash handler may declare another of its workers crashed (a
/// call the header allows in a crash callback): the second report is
/// delivered after the first, on the same thread, not a deadlock. Closing
/// the runtime releases the handler while the host handle still lives.
#[test]
fn a_crash_handler_may_declare_another_worker_crashed() {
    struct Released(crossbeam_channel::Sender<()>);
    impl Drop for Released {
        fn drop(&mut self) {
            let _sent = self.0.send(());
        }
    }
    let (released_tx, released) = crossbeam_channel::unbounded();
    let host = Host::open_reporting(
        "nested",
        GroupOptions::default(),
        |endpoint| options(Some(endpoint), None, SECOND),
        |group, crashes| {
            let group = group.clone();
            let released = Released(released_tx);
            Box::new(move |report: &CrashReport| {
                let _held = &released;
                if report.consumer_id == "w1" {
                    let other = group.consumer("w2").expect("w2 is a member");
                    other
                        .crash("declared by the crash handler")
                        .expect("declared");
                }
                let _sent = crashes.send(report.clone());
            })
        },
    );
    let _w1 = worker(&host, "nested", "w1", 1, |_d: &Delivery| Verdict::Ack);
    let _w2 = worker(&host, "nested", "w2", 1, |_d: &Delivery| Verdict::Ack);
    let first = host.group.consumer("w1").expect("w1 is a member");
    let declaring = std::thread::spawn(move || first.crash("declared by the test"));
    let mut seen: Vec<String> = (0..2)
        .map(|_| {
            host.crashes
                .recv_timeout(HANG)
                .expect("both reports, no deadlock")
        })
        .map(|report| {
            assert_eq!(report.kind, CrashKind::Declared);
            report.consumer_id
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["w1", "w2"]);
    declaring.join().unwrap().expect("w1 declared");
    assert!(
        released.try_recv().is_err(),
        "the handler lives while the host is open"
    );
    host.runtime.shutdown().expect("shut down");
    released
        .recv_timeout(HANG)
        .expect("closing the runtime released the handler");
    drop(host);
}

/// A joining worker that never answers the host's info query holds the
/// host's events thread for the query's timeout (5 s); the beats a healthy
/// worker sent meanwhile still count when they are read: it is not
/// declared dead for the host's own delay.
#[test]
fn a_stalled_join_does_not_expire_a_healthy_worker() {
    use zenoh::Wait;
    let lease = Duration::from_millis(200);
    let host = Host::open("stall", GroupOptions::default(), lease);
    let healthy = Worker::connect(
        WorkerSpec {
            group: "stall".into(),
            id: "healthy".into(),
            max_in_flight: 1,
            tags: Vec::new(),
            handler: Some(Box::new(|_d: &Delivery| Verdict::Ack)),
        },
        &options(None, Some(&host.endpoint), lease),
    )
    .expect("worker connects");
    healthy.wait_joined(HANG).expect("joined");

    // A mute joiner, in plain Zenoh: it holds every info query unanswered.
    let config = options(None, Some(&host.endpoint), lease)
        .zenoh_config()
        .expect("config");
    let session = zenoh::open(config).wait().expect("session");
    let held = Arc::new(Mutex::new(Vec::new()));
    let (asked_tx, asked) = crossbeam_channel::unbounded();
    let keep = Arc::clone(&held);
    let _info = session
        .declare_queryable("liminal/v2/stall/info/mute/inc1")
        .callback(move |query| {
            keep.lock().unwrap().push(query);
            let _sent = asked_tx.send(());
        })
        .wait()
        .expect("queryable");
    let (told_tx, told) = crossbeam_channel::unbounded();
    let _to = session
        .declare_subscriber("liminal/v2/stall/to/mute/inc1")
        .callback(move |_sample| {
            let _sent = told_tx.send(());
        })
        .wait()
        .expect("subscriber");
    let _token = session
        .liveliness()
        .declare_token("liminal/v2/stall/alive/mute/inc1")
        .wait()
        .expect("token");
    asked
        .recv_timeout(HANG)
        .expect("the host asks the mute joiner");
    told.recv_timeout(HANG)
        .expect("the host gives up on it (its refusal)");

    assert!(
        host.crashes.try_recv().is_err(),
        "the healthy worker was declared dead"
    );
    assert_eq!(healthy.status(), WorkerStatus::Joined);
    let outcome = host.group.dispatch(msg(1)).expect("delivered");
    assert_eq!(outcome.delivered_to, "healthy");
    drop(held);
}

/// Opening a host and connecting a worker block while their sessions open:
/// from inside a callback both are refused, not run.
#[test]
fn opening_and_connecting_are_refused_inside_a_callback() {
    let host = Host::open("inside", GroupOptions::default(), SECOND);
    let (tx, results) = crossbeam_channel::unbounded();
    let group = host.group.clone();
    let endpoint = host.endpoint.clone();
    let spec = ConsumerSpec::push("local", move |_d: &Delivery| {
        let opened = RemoteHost::open(&group, "other", &options(None, None, SECOND), None);
        let connected = Worker::connect(
            WorkerSpec {
                group: "inside".into(),
                id: "w".into(),
                max_in_flight: 1,
                tags: Vec::new(),
                handler: None,
            },
            &options(None, Some(&endpoint), SECOND),
        );
        let _sent = tx.send((opened.err(), connected.err()));
        Verdict::Ack
    });
    let _local = host.group.register(spec).expect("registered");
    host.group.dispatch(msg(1)).expect("delivered");
    match results.recv_timeout(HANG).expect("the callback ran") {
        (Some(liminal::Error::WouldDeadlock(_)), Some(liminal::Error::WouldDeadlock(_))) => {}
        other => panic!("{other:?}"),
    }
}

/// Two workers may not share an id: while the first incarnation lives the
/// second is refused *temporarily* (with a retry time); the library's
/// worker retries by itself and joins once the first has left. An id held
/// by a local consumer is refused permanently.
#[test]
fn a_duplicate_worker_id_is_refused() {
    let host = Host::open("dup", GroupOptions::default(), SECOND);
    let first = worker(&host, "dup", "w", 1, |_d: &Delivery| Verdict::Ack);
    let second = connect(&host, "dup", "w", 1, Vec::new(), None);
    wait_until(HANG, || {
        matches!(second.status(), WorkerStatus::Reincarnating(reason)
            if reason.contains("duplicate") && reason.contains("retry_after_ms"))
    });
    first.close();
    second.wait_joined(HANG).expect("joins once the id is free");
    // The acceptance comes just before the host makes it a consumer.
    wait_until(HANG, || host.remote.workers() == 1);

    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    let third = connect(&host, "dup", "local", 1, Vec::new(), None);
    let reason = refusal(&third);
    assert!(reason.contains("local consumer"), "{reason}");
}

/// A host refuses a worker whose session lease is longer than it accepts
/// (it could not notice that worker's death in time).
#[test]
fn a_worker_lease_longer_than_the_host_accepts_is_refused() {
    let host = Host::open("lease", GroupOptions::default(), Duration::from_millis(200));
    let worker = connect(&host, "lease", "w", 1, Vec::new(), None);
    let reason = refusal(&worker);
    assert!(reason.contains("lease"), "{reason}");
    assert_eq!(host.remote.workers(), 0);
}

/// Pull mode: deliveries wait for `next_delivery` and are answered through
/// the same token calls.
#[test]
fn a_pull_worker_takes_deliveries_itself() {
    let host = Host::open("pull", GroupOptions::default(), SECOND);
    let worker = connect(&host, "pull", "w", 4, vec!["gpu".into()], None);
    worker.wait_joined(HANG).unwrap();
    wait_until(HANG, || host.group.consumer("w").is_some());
    let tags: HashSet<String> = host.group.consumers()[0].tags.iter().cloned().collect();
    assert!(tags.contains("gpu"));
    let dispatcher = {
        let group = host.group.clone();
        std::thread::spawn(move || group.dispatch(msg(3)))
    };
    let delivery = worker.next_delivery(HANG).unwrap();
    assert_eq!(delivery.message().get("n"), Some(&FieldValue::Int(3)));
    delivery.token().ack().unwrap();
    assert_eq!(
        delivery.token().ack().unwrap_err().to_string(),
        liminal::Error::StaleDelivery(delivery.delivery_id()).to_string()
    );
    assert_eq!(dispatcher.join().unwrap().unwrap().delivered_to, "w");
}

/// A host listening with mutual TLS on a free port, and the certificates
/// of its test: an authority `ca` that signed the host's and `good`, and a
/// `rogue-ca` that signed `rogue`.
struct TlsHost {
    pki: Pki,
    good: (String, String),
    rogue: (String, String),
    host: Host,
    port: String,
}

impl TlsHost {
    fn open(test: &str, group: &str) -> Self {
        let pki = Pki::new(test);
        pki.authority("ca");
        pki.authority("rogue-ca");
        let host_cert = pki.leaf("host", "ca");
        let good = pki.leaf("good", "ca");
        let rogue = pki.leaf("rogue", "rogue-ca");
        let host_tls = pki.tls("ca", &host_cert);
        let mut port = String::new();
        let host = Host::open_with(group, GroupOptions::default(), |endpoint| {
            port = endpoint.rsplit(':').next().unwrap().to_owned();
            liminal::RemoteOptions {
                listen: vec![format!("tls/127.0.0.1:{port}")],
                tls: Some(host_tls),
                ..liminal::RemoteOptions::default()
            }
        });
        Self {
            pki,
            good,
            rogue,
            host,
            port,
        }
    }
}

/// Certificates made with the `openssl` command for one test.
struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("liminal-pki-{test}-{}", std::process::id()));
        let _removed = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        Self { dir }
    }

    fn openssl(&self, args: &[&str]) {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("the openssl command (scripts/ensure-tools.sh installs it)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// A self-signed certificate authority `name` (`name.pem`, `name.key`).
    fn authority(&self, name: &str) -> String {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        self.path(&pem)
    }

    /// A certificate `name` for localhost / 127.0.0.1 signed by `authority`.
    fn leaf(&self, name: &str, authority: &str) -> (String, String) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{authority}.pem"),
            "-CAkey",
            &format!("{authority}.key"),
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
        (self.path(&pem), self.path(&key))
    }

    fn tls(&self, authority: &str, leaf: &(String, String)) -> liminal::TlsFiles {
        liminal::TlsFiles {
            ca_certificate: self.path(&format!("{authority}.pem")),
            certificate: leaf.0.clone(),
            private_key: leaf.1.clone(),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.dir);
    }
}

/// A worker that tries to join with `remote`: whether the host accepted it
/// within two seconds.
fn joins(host: &Host, group: &str, remote: &liminal::RemoteOptions) -> bool {
    let worker = Worker::connect(
        WorkerSpec {
            group: group.into(),
            id: "w".into(),
            max_in_flight: 1,
            tags: Vec::new(),
            handler: Some(Box::new(|_d: &Delivery| Verdict::Ack)),
        },
        remote,
    )
    .expect("the worker's session opens (it connects in the background)");
    let joined = worker.wait_joined(Duration::from_secs(2));
    match joined {
        Ok(()) => true,
        Err(liminal::Error::TimedOut) => {
            assert_eq!(host.remote.workers(), 0);
            false
        }
        Err(other) => panic!("{other:?}"),
    }
}

/// With mutual TLS, only a worker whose certificate the host's authority
/// signed becomes a consumer; the same endpoint in the clear is refused.
#[test]
fn mutual_tls_keeps_out_a_worker_without_the_right_certificate() {
    let TlsHost {
        pki,
        good,
        rogue,
        host,
        port,
    } = TlsHost::open("mtls", "tls");
    let connect = vec![format!("tls/127.0.0.1:{port}")];
    let worker_options = |tls: liminal::TlsFiles| liminal::RemoteOptions {
        connect: connect.clone(),
        tls: Some(tls),
        ..liminal::RemoteOptions::default()
    };
    // Trusts the host, but presents a certificate the host does not trust.
    let mut impostor = pki.tls("ca", &rogue);
    impostor.ca_certificate = pki.path("ca.pem");
    assert!(!joins(&host, "tls", &worker_options(impostor)));
    let plain = liminal::RemoteOptions {
        connect: vec![format!("tcp/127.0.0.1:{port}")],
        ..liminal::RemoteOptions::default()
    };
    assert!(!joins(&host, "tls", &plain));
    assert!(joins(&host, "tls", &worker_options(pki.tls("ca", &good))));
}

/// With a users file on the host, a worker without valid credentials never
/// becomes a consumer.
#[test]
fn credentials_keep_out_a_worker_without_the_password() {
    let dir = std::env::temp_dir().join(format!("liminal-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.txt");
    std::fs::write(&users, "alice:s3cret\n").unwrap();
    let host = Host::open_with("auth", GroupOptions::default(), |endpoint| {
        liminal::RemoteOptions {
            users_file: Some(users.to_string_lossy().into_owned()),
            ..options(Some(endpoint), None, SECOND)
        }
    });
    let with = |credentials: Option<(&str, &str)>| liminal::RemoteOptions {
        credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
        ..options(None, Some(&host.endpoint), SECOND)
    };
    assert!(!joins(&host, "auth", &with(Some(("alice", "wrong")))));
    assert!(!joins(&host, "auth", &with(None)));
    assert!(joins(&host, "auth", &with(Some(("alice", "s3cret")))));
    let _removed = std::fs::remove_dir_all(&dir);
}

/// Anything but loopback or a unix socket in the clear needs the opt-in.
#[test]
fn listening_in_the_clear_off_loopback_needs_the_opt_in() {
    let runtime = runtime();
    let group = group(&runtime, liminal::Builtin::LeastLoaded);
    let open = liminal::RemoteOptions {
        listen: vec!["tcp/0.0.0.0:0".into()],
        ..liminal::RemoteOptions::default()
    };
    match liminal::RemoteHost::open(&group, "open", &open, None) {
        Err(liminal::Error::InvalidArgument(reason)) => assert!(reason.contains("TLS"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// The Python interpreter with the `eclipse-zenoh` package
/// (`LIMINAL_PYTHON`, default `python3`); scripts/test.sh makes one.
fn python_with_zenoh() -> String {
    let python = std::env::var("LIMINAL_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = std::process::Command::new(&python)
        .args(["-c", "import zenoh"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{python} cannot import zenoh: `pip install eclipse-zenoh==1.10.2` \
         (or set LIMINAL_PYTHON to an interpreter that can)"
    );
    python
}

fn python_worker(endpoint: &str, group: &str, id: &str, mode: &str) -> WorkerProcess {
    python_worker_with(endpoint, group, id, mode, &[])
}

/// A Python worker with extra environment (its TLS files, credentials).
fn python_worker_with(
    endpoint: &str,
    group: &str,
    id: &str,
    mode: &str,
    env: &[(&str, String)],
) -> WorkerProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/remote_worker.py");
    let mut command = std::process::Command::new(python_with_zenoh());
    command.args([script, endpoint, group, id, mode]);
    for (name, value) in env {
        command.env(name, value);
    }
    WorkerProcess::start(command)
}

/// Whether a Python worker said `joined` within two seconds (a worker kept
/// out says nothing: it never connects).
fn python_joins(host: &Host, worker: WorkerProcess) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(line) = worker
        .lines()
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        if line.contains("joined") {
            worker.finish();
            return true;
        }
    }
    assert_eq!(host.remote.workers(), 0);
    false
}

/// The Zenoh keys PROTOCOL.md gives a worker for mutual TLS and for
/// user/password work for a Python worker: with the right certificate or
/// password it joins; with a certificate the host's authority did not sign,
/// or a wrong password, it never becomes a consumer.
#[test]
fn a_python_worker_joins_with_mutual_tls_and_with_credentials() {
    let TlsHost {
        pki,
        good,
        rogue,
        host,
        port,
    } = TlsHost::open("py-mtls", "pytls");
    let endpoint = format!("tls/127.0.0.1:{port}");
    let tls = |leaf: &(String, String)| {
        vec![(
            "LIMINAL_WORKER_TLS",
            format!("{};{};{}", pki.path("ca.pem"), leaf.0, leaf.1),
        )]
    };
    let rogue_worker = python_worker_with(&endpoint, "pytls", "rogue", "ack", &tls(&rogue));
    assert!(!python_joins(&host, rogue_worker));
    let good_worker = python_worker_with(&endpoint, "pytls", "good", "ack", &tls(&good));
    assert!(python_joins(&host, good_worker));

    let dir = std::env::temp_dir().join(format!("liminal-py-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.txt");
    std::fs::write(&users, "alice:s3cret\n").unwrap();
    let host = Host::open_with("pyauth", GroupOptions::default(), |endpoint| {
        liminal::RemoteOptions {
            users_file: Some(users.to_string_lossy().into_owned()),
            ..options(Some(endpoint), None, SECOND)
        }
    });
    let credentials = |c: &str| vec![("LIMINAL_WORKER_CREDENTIALS", c.to_owned())];
    let wrong = python_worker_with(
        &host.endpoint,
        "pyauth",
        "w",
        "ack",
        &credentials("alice:nope"),
    );
    assert!(!python_joins(&host, wrong));
    let right = python_worker_with(
        &host.endpoint,
        "pyauth",
        "w",
        "ack",
        &credentials("alice:s3cret"),
    );
    assert!(python_joins(&host, right));
    let _removed = std::fs::remove_dir_all(&dir);
}

/// A worker written in Python with `eclipse-zenoh` from docs/PROTOCOL.md
/// alone, as a separate process: it receives fields and payload intact,
/// its crash answers count against a poison message (it comes back as a
/// new incarnation each time), and its `kill -9` re-routes what it held.
#[test]
fn a_python_worker_written_from_the_protocol_alone() {
    let options = GroupOptions {
        max_attempts: 2,
        ..GroupOptions::default()
    };
    let host = Host::open("py", options, SECOND);
    let worker = python_worker(&host.endpoint, "py", "py", "ack");
    let first = worker.expect("joined");
    let message = Message::new()
        .with("text", FieldValue::Text("héllo".into()))
        .with("int", FieldValue::Int(-42))
        .with("double", FieldValue::Double(2.5))
        .with("bool", FieldValue::Bool(false))
        .with("null", FieldValue::Null)
        .with_payload(vec![0xde, 0xad, 0x00, 0xff]);
    let outcome = host.group.dispatch(message).unwrap();
    assert_eq!(outcome.delivered_to, "py");
    let got = worker.expect("got");
    let expected = format!(
        "{} {} deadbeef",
        outcome.trail.dispatch_id,
        r#"{"bool": ["bool", false], "double": ["double", 2.5], "int": ["int", -42], "null": ["null", null], "text": ["text", "h\u00e9llo"]}"#
    )
    .replace("deadbeef", "dead00ff");
    assert_eq!(got, expected);

    let poison = Message::new().with("poison", FieldValue::Bool(true));
    match host.group.dispatch(poison).unwrap_err() {
        liminal::Error::Dispatch(f) => {
            assert!(
                matches!(f.error, DispatchError::AttemptsExhausted(2)),
                "{f:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..2 {
        let report = host.crashes.recv_timeout(HANG).unwrap();
        assert_eq!(report.kind, CrashKind::Verdict);
        assert!(
            report.reason.contains("python worker: poison"),
            "{report:?}"
        );
    }
    let again = worker.expect("joined");
    assert_ne!(first, again, "a new incarnation after its crash");
    worker.finish();
    wait_until(HANG, || host.remote.workers() == 0);
    if let Ok(report) = host.crashes.try_recv() {
        panic!("leaving is not a crash: {report:?}");
    }

    let holder = python_worker(&host.endpoint, "py", "py-holds", "hold");
    holder.expect("joined");
    let (done, results) = completions();
    let ids = dispatch_n(&host.group, 10, &done);
    for _ in 0..10 {
        holder.expect("held");
    }
    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    let mut holder = holder;
    holder.kill_9();
    for (id, result) in collect(&ids, &results) {
        let outcome = result.unwrap_or_else(|f| panic!("dispatch {id} failed: {f:?}"));
        assert_eq!(outcome.delivered_to, "local");
        assert_eq!(outcome.trail.rerouted_from, vec!["py-holds".to_owned()]);
    }
    let report = host.crashes.recv_timeout(HANG).unwrap();
    assert_eq!(report.kind, CrashKind::ConnectionLost, "{report:?}");
}

/// The host fences answers it no longer expects: a worker that does not
/// clear what it held when declared dead (this Python one keeps its held
/// deliveries across incarnations) sends acks of the dead incarnation; the
/// host ignores and counts them, and each dispatch completes exactly once.
#[test]
fn late_answers_of_a_dead_incarnation_are_fenced() {
    let host = Host::open("fence", GroupOptions::default(), SECOND);
    let mut worker = python_worker(&host.endpoint, "fence", "py", "hold");
    let first = worker.expect("joined");
    let (done, results) = completions();
    let ids = dispatch_n(&host.group, 10, &done);
    for _ in 0..10 {
        worker.expect("held");
    }
    let log = Log::default();
    host.group.register(acking("local", &log)).unwrap();
    worker.signal("STOP");
    let report = host.crashes.recv_timeout(HANG).unwrap();
    assert_eq!(report.kind, CrashKind::SessionExpired, "{report:?}");
    for (id, result) in collect(&ids, &results) {
        let outcome = result.unwrap_or_else(|f| panic!("dispatch {id} failed: {f:?}"));
        assert_eq!(outcome.delivered_to, "local");
    }
    worker.signal("CONT");
    let second = worker.expect("joined");
    assert_ne!(first, second);
    worker.command("ack-all");
    assert_eq!(worker.expect("acked"), "10");
    wait_until(HANG, || host.remote.stale_answers() == 10);
    assert_eq!(log.consumers().len(), 10, "each delivered once, locally");
}

/// Closing the group closes its remote host: workers are told (bye). The
/// worker's status is not watched: it moves on at once (it waits for a new
/// host), so a poll can miss it; the host-lost notice cannot be missed.
#[test]
fn closing_the_group_tells_its_workers() {
    let host = Host::open("close", GroupOptions::default(), SECOND);
    let staying = worker(&host, "close", "w", 8, |_d: &Delivery| Verdict::Ack);
    let lost = host_lost_notices(&staying);
    host.group.close();
    expect_host_lost(&lost, &staying);
    assert_eq!(host.remote.workers(), 0);
    assert!(lost.try_recv().is_err(), "told once");
}

/// Zenoh panics when called from a tokio current-thread runtime; the
/// library calls it only from threads of its own, so a host and a worker
/// driven from inside one work.
#[test]
fn hosts_and_workers_work_from_inside_a_tokio_current_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let host = Host::open("tokio", GroupOptions::default(), SECOND);
        let worker = worker(&host, "tokio", "w", 4, |_d: &Delivery| Verdict::Ack);
        let outcome = host.group.dispatch(msg(1)).unwrap();
        assert_eq!(outcome.delivered_to, "w");
        worker.close();
        host.remote.close();
    });
}

/// The next line of any of `processes` that starts with `prefix` (others
/// skipped): which process said it, and the rest of the line.
/// A durable host kill -9ed while a worker holds its messages: the new
/// host on the same store brings them back, the worker (rejoined) receives
/// them again under the same message ids, its answers complete them in the
/// new host (the recovered-message handler), and nothing stays pending.
/// What the worker held of the old host is dropped when it notices the
/// host lost: an answer naming the old incarnation would be stale, never
/// applied (the fencing of `late_answers_of_a_dead_incarnation_are_fenced`).
#[test]
fn a_durable_host_killed_while_a_worker_holds_its_messages_redelivers_them_under_the_same_ids() {
    const MESSAGES: usize = 5;
    let endpoint = free_endpoint();
    let group = "durable";
    let store = std::env::temp_dir().join(format!("liminal-remote-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let mut host = WorkerProcess::spawn_durable_host(&endpoint, group, &store);
    let first = host.expect("host");
    let mut worker = WorkerProcess::spawn(&endpoint, group, "w", "hold", SECOND);
    host.command("wait 1");
    host.expect("workers 1");
    host.command(&format!("dispatch {MESSAGES}"));
    let mut ids = HashSet::new();
    for _ in 0..MESSAGES {
        let held = worker.expect("held");
        let id = held.split_whitespace().nth(1).unwrap().to_owned();
        assert!(
            !id.starts_with(&first),
            "a durable message has its store's id: {held}"
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), MESSAGES);
    host.kill_9();
    let mut host = WorkerProcess::spawn_durable_host(&endpoint, group, &store);
    let second = host.expect("host");
    assert_ne!(second, first);
    host.command("wait 1");
    host.expect("workers 1");
    let mut again = HashSet::new();
    for _ in 0..MESSAGES {
        let held = worker.expect("held");
        again.insert(held.split_whitespace().nth(1).unwrap().to_owned());
    }
    assert_eq!(again, ids, "the recovered messages keep their ids");
    worker.command("ack-all");
    let mut completed = 0;
    while completed < MESSAGES {
        let line = host.lines().recv_timeout(HANG).expect("the host answers");
        assert!(!line.contains("recovered-failed"), "{line}");
        if line.contains("recovered-completed") {
            completed += 1;
        }
    }
    host.command("pending");
    assert_eq!(host.expect("pending"), "0");
    drop(worker);
    drop(host);
    let _ = std::fs::remove_dir_all(&store);
}

fn next_line(processes: &[&WorkerProcess], prefix: &str) -> (usize, String) {
    let deadline = Instant::now() + HANG;
    loop {
        let mut select = crossbeam_channel::Select::new();
        for process in processes {
            select.recv(process.lines());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let operation = select
            .select_timeout(left)
            .unwrap_or_else(|_| panic!("nobody said {prefix:?}"));
        let index = operation.index();
        let line = operation
            .recv(processes[index].lines())
            .expect("the process is running");
        if let Some(at) = line.find(prefix) {
            return (index, line[at + prefix.len()..].trim().to_owned());
        }
    }
}

/// A host *process* is `kill -9`ed while three Python workers and one
/// worker of this library hold its deliveries, and a new one is started on
/// the same endpoint: a new host incarnation. Every worker drops what it
/// held, joins the new host as a new incarnation, and holds the new host's
/// messages (whose delivery ids start over, so they collide with the old
/// ones). Then each Python worker sends, on purpose, an ack for every
/// delivery of the dead host on its *current* key (the library's worker
/// refuses to: its old deliveries answer `StaleDelivery`): the host counts
/// every one stale and none completes a message. Once the workers ack what
/// they hold, every new message completes exactly once. Rounds:
/// `LIMINAL_HOST_RESTART_ROUNDS` (default 3); the time from a new host's
/// start to all four workers rejoined is printed.
#[test]
fn host_restart_after_kill_9_no_old_answer_completes_a_new_message() {
    const PER_ROUND: usize = 20;
    let rounds: usize = std::env::var("LIMINAL_HOST_RESTART_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let endpoint = free_endpoint();
    let group = "restart";
    let mut host = WorkerProcess::spawn_host(&endpoint, group, SECOND);
    let mut incarnation = host.expect("host");
    let mut workers: Vec<WorkerProcess> = (0..3)
        .map(|i| python_worker(&endpoint, group, &format!("py{i}"), "hold"))
        .collect();
    workers.push(WorkerProcess::spawn(
        &endpoint, group, "rust", "hold", SECOND,
    ));
    host.command("wait 4");
    host.expect("workers 4");
    let mut rejoined = Vec::new();
    let mut stale_total = 0_u64;
    for round in 0..rounds {
        // The old host's messages, held.
        host.command(&format!("dispatch {PER_ROUND}"));
        let refs: Vec<&WorkerProcess> = workers.iter().collect();
        for _ in 0..PER_ROUND {
            let (_, held) = next_line(&refs, "held");
            assert!(held.contains(&format!(" {incarnation}-")), "{held}");
        }
        host.kill_9();
        let started = Instant::now();
        host = WorkerProcess::spawn_host(&endpoint, group, SECOND);
        let fresh = host.expect("host");
        assert_ne!(fresh, incarnation, "a new host incarnation");
        incarnation = fresh;
        host.command("wait 4");
        host.expect("workers 4");
        rejoined.push(started.elapsed());
        // Every worker was told its host was lost, then joined the new one.
        let refs: Vec<&WorkerProcess> = workers.iter().collect();
        let (mut lost, mut joined) = (HashSet::new(), HashSet::new());
        while joined.len() < workers.len() {
            let (who, line) = next_line(&refs, "");
            if line.contains("host-lost") {
                lost.insert(who);
            } else if line.contains("joined ") {
                let named = who == workers.len() - 1 || line.ends_with(&incarnation);
                if lost.contains(&who) && named {
                    joined.insert(who);
                }
            }
        }
        // The new host's messages, held (delivery ids start over).
        host.command(&format!("dispatch {PER_ROUND}"));
        for _ in 0..PER_ROUND {
            let (_, held) = next_line(&refs, "held");
            assert!(held.contains(&format!(" {incarnation}-")), "{held}");
        }
        // The old host's deliveries acked on purpose, naming the old host.
        let mut sent = 0_u64;
        for worker in &mut workers[..3] {
            worker.command("ack-stale");
            sent += worker.expect("sent-stale").parse::<u64>().unwrap();
        }
        stale_total += sent;
        assert!(sent > 0, "round {round}: the Python workers held something");
        let deadline = Instant::now() + HANG;
        loop {
            host.command("stale");
            let counted: u64 = loop {
                let line = host.lines().recv_timeout(HANG).expect("the host answers");
                assert!(
                    !line.contains("completed"),
                    "round {round}: an old answer completed a new message: {line}"
                );
                if let Some(count) = line.strip_prefix("stale ") {
                    break count.parse().unwrap();
                }
            };
            assert!(counted <= sent, "more stale answers than sent");
            if counted == sent {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {counted} of {sent} old answers counted stale"
            );
        }
        // Now the real answers: each new message completes exactly once.
        let rust = workers.len() - 1;
        for worker in &mut workers {
            worker.command("ack-all");
        }
        let mut acked = 0;
        for (i, worker) in workers.iter().enumerate() {
            let count: usize = worker.expect("acked").parse().unwrap();
            if i == rust {
                // Its old deliveries were dropped when the host was lost.
                assert!(count <= PER_ROUND);
            }
            acked += count;
        }
        assert_eq!(
            acked, PER_ROUND,
            "round {round}: only the new host's held deliveries ack"
        );
        let mut completed = HashSet::new();
        while completed.len() < PER_ROUND {
            let line = host.expect("completed");
            let id = line.split_whitespace().next().unwrap().to_owned();
            assert!(completed.insert(id.clone()), "{id} completed twice");
        }
        host.command("stale");
        assert_eq!(
            host.expect("stale"),
            sent.to_string(),
            "no answer lost or doubled"
        );
        assert!(
            host.lines()
                .try_iter()
                .all(|l| !l.contains("completed") && !l.contains("failed")),
            "round {round}: a message completed twice"
        );
    }
    rejoined.sort();
    println!(
        "host restart → all 4 workers rejoined, {rounds} rounds: p50 {:?}, p99 {:?}, max {:?}; \
         {stale_total} stale answers fenced",
        percentile(&rejoined, 0.5),
        percentile(&rejoined, 0.99),
        rejoined.last().unwrap()
    );
}

/// A message that kills every worker process that works on it (the Python
/// worker sends `started`, then `os._exit(1)`, as a segfault would) is
/// dead-lettered after `max_attempts`, each death counted as dying
/// *handling* it; the test restarts each killed worker, and every other
/// message is delivered. Without `started` those deaths would count as
/// merely holding it and the message would go on killing workers.
#[test]
fn poison_that_kills_workers_is_dead_lettered() {
    let options = GroupOptions {
        max_attempts: 3,
        ..GroupOptions::default()
    };
    let host = Host::open("poison", options, SECOND);
    let mut workers: std::collections::HashMap<String, WorkerProcess> = (0..3)
        .map(|i| {
            let id = format!("py{i}");
            let worker = python_worker(&host.endpoint, "poison", &id, "ack");
            worker.expect("joined");
            (id, worker)
        })
        .collect();
    let (done, results) = completions();
    let mut ids = dispatch_n(&host.group, 10, &done);
    let poison = Message::new().with("exit", FieldValue::Bool(true));
    let reply = done.clone();
    let poison_id = host
        .group
        .dispatch_async(
            poison,
            Box::new(move |result| {
                let id = match &result {
                    Ok(outcome) => outcome.trail.dispatch_id,
                    Err(failure) => failure.trail.dispatch_id,
                };
                let _sent = reply.send((id, result));
            }),
        )
        .unwrap();
    ids.push(poison_id);
    for _ in 0..3 {
        let report = host.crashes.recv_timeout(HANG).expect("a worker dies");
        assert_eq!(report.kind, CrashKind::ConnectionLost, "{report:?}");
        // Restart it under the same id (its old incarnation is dead).
        let restarted = python_worker(&host.endpoint, "poison", &report.consumer_id, "ack");
        restarted.expect("joined");
        workers.insert(report.consumer_id.clone(), restarted);
    }
    for (id, result) in collect(&ids, &results) {
        if id == poison_id {
            let failure = result.expect_err("the poison is dead-lettered");
            assert_eq!(failure.error, DispatchError::AttemptsExhausted(3));
            assert_eq!(failure.trail.crashed_handling, 3, "{failure:?}");
            assert_eq!(failure.trail.crashed_holding, 0, "{failure:?}");
            assert!(failure.is_poison(), "dead-lettered as poison: {failure:?}");
        } else {
            let outcome = result.unwrap_or_else(|f| panic!("dispatch {id} failed: {f:?}"));
            assert!(outcome.delivered_to.starts_with("py"));
        }
    }
    assert!(host.crashes.try_recv().is_err(), "only the poison killed");
    // The last one restarted may have seen its acceptance a moment before
    // the host made it a consumer.
    wait_until(HANG, || host.remote.workers() == 3);
    for (_, worker) in workers {
        worker.finish();
    }
}

/// The conformance suite for worker authors (`tests/python/conformance.py`,
/// eclipse-zenoh only) drives a host process (this test binary) through
/// every rule of docs/PROTOCOL.md: join and answers, a late info reply,
/// bad info, a wrong version, a lease out of bounds, a duplicate id,
/// `extend` without a lease, a late answer, a host restart.
#[test]
fn conformance_suite_drives_a_host_through_every_rule() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/conformance.py");
    let exe = std::env::current_exe().expect("test binary");
    let output = std::process::Command::new(python_with_zenoh())
        .arg(script)
        .arg(exe)
        .output()
        .expect("the conformance script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "conformance failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
}

/// The reverse conformance check (`tests/python/fake_host.py`): a fake host
/// written with eclipse-zenoh alone checks a worker's join, answers and
/// behaviour across a host restart; here against the Python worker and
/// against this library's worker.
#[test]
fn a_fake_host_checks_the_python_worker_and_this_librarys_worker() {
    let fake_host = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/fake_host.py");
    let python = python_with_zenoh();
    let exe = std::env::current_exe().expect("test binary");
    let worker_script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/remote_worker.py");
    let library_worker =
        format!("{WORKER_ENV}=\"$1;$2;$3;$4;1000\" exec \"$0\" --exact worker_process --nocapture");
    let workers: [Vec<String>; 2] = [
        vec![python.clone(), worker_script.into()],
        vec![
            "sh".into(),
            "-c".into(),
            library_worker,
            exe.to_string_lossy().into_owned(),
        ],
    ];
    for worker in workers {
        let output = std::process::Command::new(&python)
            .arg(fake_host)
            .args(&worker)
            .output()
            .expect("the fake host runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("3 checks passed"),
            "{worker:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
