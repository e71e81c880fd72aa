//! Remote consumers measured (feature `remote`), one JSON line per result:
//!
//! ```text
//! cargo run --release --features remote --example remote_bench -- bench [N1 N2 ROUNDS]
//! cargo run --release --features remote --example remote_bench -- soak [MESSAGES] [REPORT]
//! cargo run --release --features remote --example remote_bench -- steady [SECONDS] [LEASE_MS]
//! ```
//!
//! - `bench`: a bare Zenoh query round trip to a worker process (the
//!   baseline) beside remote W1 (host → worker process → ack, one at a
//!   time), remote W2 (throughput with 1024 in flight) and remote W3
//!   (`kill -9` of a worker holding 100 deferred deliveries → all re-routed
//!   → acknowledged by another worker process), ROUNDS times; then a
//!   worker frozen with `SIGSTOP` → declared dead, at 1 s and 100 ms leases.
//! - `soak`: MESSAGES dispatched with 1024 in flight to 4 worker processes,
//!   one of which is killed and restarted at random every few hundred
//!   milliseconds; delivered + failed must equal sent, failures only for a
//!   reason the host chose. Appends a table to REPORT when given.
//! - `steady`: SECONDS of light traffic to 4 workers at a LEASE_MS session
//!   lease (run it beside a CPU hog): any crash report is a false expiry.
//!
//! Worker processes are this program again (`LIMINAL_TEST_WORKER` set).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::remote::{free_endpoint, options, Host, WorkerProcess, WORKER_ENV};
use liminal::{GroupOptions, Message};

const SECOND: Duration = Duration::from_secs(1);

fn main() {
    if std::env::var(WORKER_ENV).is_ok() {
        common::remote::worker_main();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    match args.first().map(String::as_str) {
        Some("bench") => bench(
            number(1, 20_000) as usize,
            number(2, 100_000) as usize,
            number(3, 20) as usize,
        ),
        Some("soak") => soak(number(1, 1_000_000) as usize, args.get(2).cloned()),
        Some("steady") => steady(number(1, 600), number(2, 100)),
        _ => {
            eprintln!("usage: remote_bench bench [N1 N2 ROUNDS] | soak [MESSAGES] [REPORT] | steady [SECONDS] [LEASE_MS]");
            std::process::exit(2);
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn latency_row(system: &str, workload: &str, mut ns: Vec<u64>, extra: &str) {
    ns.sort_unstable();
    println!(
        "{{\"system\":\"{system}\",\"workload\":\"{workload}\",\"n\":{},\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{}{extra}}}",
        ns.len(),
        percentile(&ns, 0.5),
        percentile(&ns, 0.99),
        percentile(&ns, 0.999),
        ns.last().copied().unwrap_or(0),
    );
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn bench(n1: usize, n2: usize, rounds: usize) {
    let host = Host::open("bench", GroupOptions::default(), SECOND);

    // The baseline: a bare Zenoh query to a queryable in another process,
    // 64 bytes each way, from a session of its own.
    let echo_endpoint = free_endpoint();
    let echo = WorkerProcess::spawn(&echo_endpoint, "bench", "echo", "echo", SECOND);
    echo.expect("joined");
    {
        use zenoh::Wait;
        let config = options(None, Some(&echo_endpoint), SECOND)
            .zenoh_config()
            .unwrap();
        let session = zenoh::open(config).wait().unwrap();
        let payload = vec![7u8; 64];
        // The new session learns of the queryable once connected: ask
        // until it answers (a query with no route gets no reply).
        let deadline = Instant::now() + Duration::from_secs(30);
        while session
            .get("bench/echo/echo")
            .wait()
            .unwrap()
            .recv()
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the echo queryable never answered"
            );
        }
        let mut samples = Vec::with_capacity(n1);
        for i in 0..n1 + 1000 {
            let start = Instant::now();
            let replies = session
                .get("bench/echo/echo")
                .payload(payload.clone())
                .wait()
                .unwrap();
            let reply = replies.recv().expect("a reply");
            assert!(reply.result().is_ok());
            if i >= 1000 {
                samples.push(nanos(start.elapsed()));
            }
        }
        latency_row("zenoh", "query-rtt", samples, ",\"bytes\":64");
        let _closed = session.close().wait();
    }
    echo.finish();

    // Remote W1: one at a time to a worker process that acks.
    let acker = WorkerProcess::spawn(&host.endpoint, "bench", "acker", "ack", SECOND);
    acker.expect("joined");
    host.wait_workers(1);
    let message = Arc::new(Message::new().with_payload(vec![7u8; 64]));
    let mut samples = Vec::with_capacity(n1);
    for i in 0..n1 + 1000 {
        let start = Instant::now();
        let outcome = host.group.dispatch(Arc::clone(&message)).unwrap();
        assert_eq!(outcome.delivered_to, "acker");
        if i >= 1000 {
            samples.push(nanos(start.elapsed()));
        }
    }
    latency_row("liminal-remote", "r1", samples, "");

    // Remote W2: 1024 in flight.
    let window = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for _ in 0..n2 {
        {
            let (count, freed) = &*window;
            let mut count = count.lock().unwrap();
            while *count >= 1024 {
                count = freed.wait(count).unwrap();
            }
            *count += 1;
        }
        let window = Arc::clone(&window);
        let failed = Arc::clone(&failed);
        host.group
            .dispatch_async(
                Arc::clone(&message),
                Box::new(move |result| {
                    if result.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    let (count, freed) = &*window;
                    *count.lock().unwrap() -= 1;
                    freed.notify_one();
                }),
            )
            .unwrap();
    }
    {
        let (count, freed) = &*window;
        let mut count = count.lock().unwrap();
        while *count > 0 {
            count = freed.wait(count).unwrap();
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    println!(
        "{{\"system\":\"liminal-remote\",\"workload\":\"r2\",\"n\":{n2},\"window\":1024,\"rate\":{:.0}}}",
        n2 as f64 / elapsed.as_secs_f64()
    );

    acker.finish();
    host.wait_workers(0);

    // Remote W3: kill -9 of a worker holding 100 → re-routed → acked by
    // another worker process. Each round: the holder joins alone and takes
    // all 100, then an acker joins, then the holder is killed.
    let mut noticed = Vec::new();
    let mut rerouted = Vec::new();
    let mut acked = Vec::new();
    for round in 0..rounds {
        let holder_id = format!("holder-{round}");
        let holder = WorkerProcess::spawn(&host.endpoint, "bench", &holder_id, "hold", SECOND);
        holder.expect("joined");
        let (done, results) = common::remote::completions();
        let ids = common::remote::dispatch_n(&host.group, 100, &done);
        for _ in 0..100 {
            holder.expect("held");
        }
        let acker_id = format!("acker-{round}");
        let acker = WorkerProcess::spawn(&host.endpoint, "bench", &acker_id, "ack", SECOND);
        acker.expect("joined");
        let mut holder = holder;
        let killed = holder.kill_9();
        // Every dispatch completes once; the last one's time is kept.
        let mut collected = std::collections::HashMap::new();
        while collected.len() < ids.len() {
            let (id, result) = results.recv_timeout(common::HANG).expect("completes");
            assert!(collected.insert(id, result).is_none(), "completed twice");
        }
        let all_acked = killed.elapsed();
        let mut last_reroute = Duration::ZERO;
        for (_, result) in collected {
            let outcome = result.expect("delivered");
            assert_eq!(outcome.delivered_to, acker_id);
            let timing = outcome.trail.reroute_timings[0];
            noticed.push(nanos(
                timing.crash_noticed.saturating_duration_since(killed),
            ));
            last_reroute =
                last_reroute.max(timing.reroute_initiated.saturating_duration_since(killed));
        }
        rerouted.push(nanos(last_reroute));
        acked.push(nanos(all_acked));
        acker.finish();
        host.wait_workers(0);
    }
    latency_row("liminal-remote", "r3-noticed", noticed, "");
    latency_row("liminal-remote", "r3-rerouted", rerouted, ",\"held\":100");
    latency_row("liminal-remote", "r3-acked", acked, ",\"held\":100");

    // A frozen worker (SIGSTOP): declared dead after its session lease.
    for lease_ms in [1000u64, 100] {
        let lease = Duration::from_millis(lease_ms);
        let host = Host::open("frozen", GroupOptions::default(), lease);
        let mut expired = Vec::new();
        for round in 0..rounds.min(10) {
            let id = format!("frozen-{round}");
            let worker = WorkerProcess::spawn(&host.endpoint, "frozen", &id, "ack", lease);
            worker.expect("joined");
            worker.signal("STOP");
            let stopped = Instant::now();
            let report = host
                .crashes
                .recv_timeout(common::HANG)
                .expect("declared dead");
            expired.push(nanos(stopped.elapsed()));
            assert_eq!(
                report.kind,
                liminal::CrashKind::SessionExpired,
                "{report:?}"
            );
            worker.signal("CONT");
            worker.finish();
        }
        latency_row(
            "liminal-remote",
            &format!("stop-expired-{lease_ms}ms"),
            expired,
            &format!(",\"lease_ms\":{lease_ms}"),
        );
    }
}

/// A tiny deterministic random sequence (no dependency for it).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn soak(messages: usize, report: Option<String>) {
    const WORKERS: usize = 4;
    let options = GroupOptions {
        deadline: Some(Duration::from_secs(60)),
        ..GroupOptions::default()
    };
    let host = Host::open("soak", options, SECOND);
    let spawn = |i: usize, generation: usize| {
        let worker = WorkerProcess::spawn(
            &host.endpoint,
            "soak",
            &format!("w{i}-{generation}"),
            "ack",
            SECOND,
        );
        worker.expect("joined");
        worker
    };
    let mut workers: Vec<WorkerProcess> = (0..WORKERS).map(|i| spawn(i, 0)).collect();
    host.wait_workers(WORKERS);
    let delivered = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let window = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let message = Arc::new(Message::new().with_payload(vec![1u8; 64]));
    let mut rng = Lcg(0x5eed);
    let mut kills = 0usize;
    let mut next_kill = Instant::now() + Duration::from_millis(200 + rng.next(400));
    let start = Instant::now();
    for _ in 0..messages {
        if Instant::now() >= next_kill {
            let victim = rng.next(WORKERS as u64) as usize;
            kills += 1;
            workers[victim].kill_9();
            workers[victim] = spawn(victim, kills);
            next_kill = Instant::now() + Duration::from_millis(200 + rng.next(400));
        }
        {
            let (count, freed) = &*window;
            let mut count = count.lock().unwrap();
            while *count >= 1024 {
                count = freed.wait(count).unwrap();
            }
            *count += 1;
        }
        let window = Arc::clone(&window);
        let delivered = Arc::clone(&delivered);
        let failures = Arc::clone(&failures);
        host.group
            .dispatch_async(
                Arc::clone(&message),
                Box::new(move |result| {
                    match result {
                        Ok(_) => {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(failure) => {
                            *failures
                                .lock()
                                .unwrap()
                                .entry(format!("{:?}", failure.error))
                                .or_default() += 1;
                        }
                    }
                    let (count, freed) = &*window;
                    *count.lock().unwrap() -= 1;
                    freed.notify_one();
                }),
            )
            .expect("accepted");
    }
    {
        let (count, freed) = &*window;
        let mut count = count.lock().unwrap();
        while *count > 0 {
            count = freed.wait(count).unwrap();
        }
    }
    let elapsed = start.elapsed();
    let delivered = delivered.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();
    let failed: u64 = failures.values().sum();
    let crashes = host.crashes.try_iter().count();
    let accounted = delivered + failed == messages as u64;
    println!(
        "{{\"system\":\"liminal-remote\",\"workload\":\"remote-soak\",\"n\":{messages},\"delivered\":{delivered},\"failed\":{failed},\"kills\":{kills},\"crash_reports\":{crashes},\"seconds\":{:.1},\"accounted\":{accounted}}}",
        elapsed.as_secs_f64()
    );
    if let Some(report) = report {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(report)
            .expect("report");
        let reasons = if failures.is_empty() {
            "none".to_owned()
        } else {
            failures
                .iter()
                .map(|(reason, n)| format!("{reason}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            file,
            "\n## Remote soak (`cargo run --release --features remote --example remote_bench -- soak {messages}`)\n\n\
             4 worker processes over Zenoh (loopback TCP), 1024 in flight; one worker \
             `kill -9`ed and restarted every 200–600 ms.\n\n\
             | sent | delivered | failed | failures by reason | kills | crash reports | time | delivered + failed = sent |\n\
             |---|---|---|---|---|---|---|---|\n\
             | {messages} | {delivered} | {failed} | {reasons} | {kills} | {crashes} | {:.1} s | {} |",
            elapsed.as_secs_f64(),
            if accounted { "yes" } else { "**no**" }
        )
        .expect("write");
    }
    drop(workers);
    if !accounted {
        std::process::exit(1);
    }
}

fn steady(seconds: u64, lease_ms: u64) {
    const WORKERS: usize = 4;
    let lease = Duration::from_millis(lease_ms);
    let host = Host::open("steady", GroupOptions::default(), lease);
    let workers: Vec<WorkerProcess> = (0..WORKERS)
        .map(|i| {
            let w = WorkerProcess::spawn(&host.endpoint, "steady", &format!("w{i}"), "ack", lease);
            w.expect("joined");
            w
        })
        .collect();
    host.wait_workers(WORKERS);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0u64;
    let message = Arc::new(Message::new().with_payload(vec![1u8; 64]));
    while Instant::now() < end {
        host.group
            .dispatch(Arc::clone(&message))
            .expect("delivered");
        sent += 1;
        // Light traffic: about a thousand a second.
        std::thread::sleep(Duration::from_millis(1));
    }
    let reports: Vec<_> = host.crashes.try_iter().collect();
    println!(
        "{{\"system\":\"liminal-remote\",\"workload\":\"steady\",\"seconds\":{seconds},\"lease_ms\":{lease_ms},\"workers\":{WORKERS},\"dispatched\":{sent},\"false_expiries\":{}}}",
        reports.len()
    );
    for report in &reports {
        eprintln!("false expiry: {report:?}");
    }
    drop(workers);
    if !reports.is_empty() {
        std::process::exit(1);
    }
}
