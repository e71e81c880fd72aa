//! Soak: millions of messages from 4 producer threads while consumers crash,
//! join and leave at random, routing functions are hot-deployed and fail now
//! and then. Checks at the end: delivered + failed = sent, nothing stuck,
//! every redelivery flagged, resident memory flat, clean shutdown.
//!
//! `cargo run --release --example soak -- [messages] [report.md]`
//! (`scripts/soak.sh` runs it; CI runs a shortened version.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liminal::{
    Builtin, ConsumerSpec, Delivery, DeliveryToken, DispatchError, DispatchResult, FieldValue,
    Group, GroupOptions, Message, RoutingError, RoutingFunction, Runtime, RuntimeOptions, Verdict,
};

const PRODUCERS: u64 = 4;
const WINDOW: usize = 256;

/// A small deterministic generator (xorshift), so runs are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Shared {
    /// Per message: 1 once a handler has seen it.
    seen: Vec<AtomicU8>,
    /// Per message: completions received.
    completed: Vec<AtomicU8>,
    flag_errors: AtomicU64,
    deferred: crossbeam_channel::Sender<DeliveryToken>,
    delivered: AtomicU64,
    failures: Mutex<std::collections::BTreeMap<String, u64>>,
    done: AtomicU64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn consumer(group: &Group, id: String, shared: &Arc<Shared>, seed: u64) {
    let shared = Arc::clone(shared);
    let mut rng = Rng(seed | 1);
    let _ = group.register(
        ConsumerSpec::push(id, move |d: &Delivery| {
            let seq = match d.message().get("seq") {
                Some(FieldValue::Int(seq)) => *seq as usize,
                _ => return Verdict::Crash("message without seq".into()),
            };
            let before = shared.seen[seq].swap(1, Ordering::AcqRel);
            if d.redelivered() != (before == 1) {
                shared.flag_errors.fetch_add(1, Ordering::Relaxed);
            }
            match rng.below(20_000) {
                0 => Verdict::Crash("soak: random consumer crash".into()),
                1..=2000 => {
                    let _ = shared.deferred.send(d.token());
                    Verdict::Defer
                }
                _ => Verdict::Ack,
            }
        })
        .max_in_flight(4096),
    );
}

fn host_routing(runtime: &Runtime, version: u64) -> RoutingFunction {
    let calls = AtomicU64::new(0);
    runtime.load_routing(
        format!("soak.least_loaded.v{version}").as_bytes(),
        "soak-host",
        move |_m, views| {
            // Fails now and then: a panic is a routing crash for that dispatch.
            if calls.fetch_add(1, Ordering::Relaxed) % 50_000 == 49_999 {
                panic!("soak: routing function failure");
            }
            views
                .iter()
                .filter(|v| v.has_capacity())
                .min_by_key(|v| v.in_flight)
                .map(|v| v.id.to_string())
        },
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map_or(10_000_000, |a| a.parse().expect("message count"));
    let report_path = args.next();
    std::panic::set_hook(Box::new(|_| {})); // expected routing panics stay quiet

    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let group = runtime
        .group(host_routing(&runtime, 0), GroupOptions::default())
        .expect("group");
    let (deferred_tx, deferred_rx) = crossbeam_channel::unbounded::<DeliveryToken>();
    let shared = Arc::new(Shared {
        seen: (0..total).map(|_| AtomicU8::new(0)).collect(),
        completed: (0..total).map(|_| AtomicU8::new(0)).collect(),
        flag_errors: AtomicU64::new(0),
        deferred: deferred_tx,
        delivered: AtomicU64::new(0),
        failures: Mutex::new(Default::default()),
        done: AtomicU64::new(0),
    });
    let next_id = AtomicU64::new(0);
    for _ in 0..8 {
        let n = next_id.fetch_add(1, Ordering::Relaxed);
        consumer(&group, format!("c{n:08}"), &shared, n + 1);
    }
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut rss = Vec::new();
    let (chaos_counts, stale_acks) = std::thread::scope(|scope| {
        // Deferred acks arrive later, from another thread (stale ones fenced).
        let acker = scope.spawn(|| {
            let mut stale = 0u64;
            loop {
                match deferred_rx.recv_timeout(Duration::from_millis(5)) {
                    Ok(token) => {
                        if token.ack().is_err() {
                            stale += 1;
                        }
                    }
                    Err(_) if stop.load(Ordering::Acquire) => return stale,
                    Err(_) => {}
                }
            }
        });
        // Chaos: crash, join, leave and hot deploy at random, ~1000/s.
        let chaos = scope.spawn(|| {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut counts = [0u64; 4];
            let mut version = 0;
            while !stop.load(Ordering::Relaxed) {
                let members = group.consumers();
                match rng.below(100) {
                    0..=29 if members.len() > 4 => {
                        let victim = &members[rng.below(members.len() as u64) as usize];
                        if let Some(c) = group.consumer(&victim.id) {
                            if c.crash("soak: chaos").is_ok() {
                                counts[0] += 1;
                            }
                        }
                    }
                    30..=59 if members.len() < 12 => {
                        let n = next_id.fetch_add(1, Ordering::Relaxed);
                        consumer(&group, format!("c{n:08}"), &shared, n + 1);
                        counts[1] += 1;
                    }
                    60..=89 if members.len() > 4 => {
                        let victim = &members[rng.below(members.len() as u64) as usize];
                        if let Some(c) = group.consumer(&victim.id) {
                            if c.leave().is_ok() {
                                counts[2] += 1;
                            }
                        }
                    }
                    90 => {
                        version += 1;
                        let next = if version % 3 == 0 {
                            RoutingFunction::builtin(Builtin::LeastLoaded)
                        } else {
                            host_routing(&runtime, version % 4)
                        };
                        drop(group.deploy(next));
                        counts[3] += 1;
                    }
                    _ => {}
                }
                // Pacing of the chaos itself, not synchronisation.
                std::thread::sleep(Duration::from_micros(1000));
            }
            counts
        });
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let group = group.clone();
                let shared = Arc::clone(&shared);
                scope.spawn(move || {
                    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(WINDOW);
                    let mut seq = p;
                    while seq < total {
                        permit_tx.send(()).expect("permit");
                        let permit_rx = permit_rx.clone();
                        let shared_done = Arc::clone(&shared);
                        let message = Message::new().with("seq", FieldValue::Int(seq as i64));
                        let index = seq as usize;
                        group
                            .dispatch_async(
                                message,
                                Box::new(move |r: DispatchResult| {
                                    shared_done.completed[index].fetch_add(1, Ordering::AcqRel);
                                    match r {
                                        Ok(_) => {
                                            shared_done.delivered.fetch_add(1, Ordering::Relaxed);
                                        }
                                        Err(f) => {
                                            let key = match f.error {
                                                DispatchError::Routing(RoutingError::Crashed(
                                                    _,
                                                )) => "routing function crashed".to_owned(),
                                                DispatchError::Routing(RoutingError::TimedOut(
                                                    _,
                                                )) => "routing function timed out".to_owned(),
                                                other => other.to_string(),
                                            };
                                            *shared_done
                                                .failures
                                                .lock()
                                                .expect("lock")
                                                .entry(key)
                                                .or_default() += 1;
                                        }
                                    }
                                    shared_done.done.fetch_add(1, Ordering::Release);
                                    let _ = permit_rx.recv();
                                }),
                            )
                            .expect("accepted");
                        seq += PRODUCERS;
                    }
                    for _ in 0..WINDOW {
                        permit_tx.send(()).expect("drain");
                    }
                })
            })
            .collect();
        // Sample resident memory every 10 % of the run; a run that makes no
        // progress for 30 s has stuck messages.
        let mut next_sample = total / 10;
        let (mut last_done, mut last_progress) = (0, Instant::now());
        while !producers.iter().all(|p| p.is_finished()) {
            let done = shared.done.load(Ordering::Acquire);
            if done >= next_sample {
                rss.push((done, rss_kib()));
                next_sample += total / 10;
            }
            if done != last_done {
                (last_done, last_progress) = (done, Instant::now());
            } else if last_progress.elapsed() > Duration::from_secs(30) {
                eprintln!("soak: no progress for 30 s at {done}/{total}: messages are stuck");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(20)); // sampling cadence
        }
        for p in producers {
            p.join().expect("producer");
        }
        rss.push((shared.done.load(Ordering::Acquire), rss_kib()));
        stop.store(true, Ordering::Release);
        let counts = chaos.join().expect("chaos");
        (counts, acker.join().expect("acker"))
    });
    let elapsed = started.elapsed();
    let in_flight_before_shutdown = runtime.in_flight();
    let metrics = runtime.metrics();
    runtime.shutdown().expect("shutdown");

    let sent = total;
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let failed: u64 = shared.failures.lock().expect("lock").values().sum();
    let twice = shared
        .completed
        .iter()
        .filter(|c| c.load(Ordering::Relaxed) > 1)
        .count();
    let never = shared
        .completed
        .iter()
        .filter(|c| c.load(Ordering::Relaxed) == 0)
        .count();
    let flag_errors = shared.flag_errors.load(Ordering::Relaxed);
    // The first sample includes allocator and table warm-up; flatness is
    // judged from the second sample on, and only on runs long enough to mean
    // something.
    let enforce_rss = total >= 2_000_000;
    let first_rss = rss.get(1).or(rss.first()).map_or(0, |r| r.1);
    let last_rss = rss.last().map_or(0, |r| r.1);
    let growth = if first_rss > 0 {
        last_rss as f64 / first_rss as f64 - 1.0
    } else {
        0.0
    };
    let ok = delivered + failed == sent
        && twice == 0
        && never == 0
        && flag_errors == 0
        && in_flight_before_shutdown == 0
        && (!enforce_rss || growth < 0.10);

    let mut report = String::new();
    let _ = writeln!(report, "# liminal soak report\n");
    let _ = writeln!(
        report,
        "Command: `cargo run --release --example soak -- {total}` ({:.1} s, {:.0} messages/s)\n",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    let _ = writeln!(report, "| check | value |\n|---|---|");
    let _ = writeln!(report, "| sent | {sent} |");
    let _ = writeln!(report, "| delivered | {delivered} |");
    let _ = writeln!(report, "| failed (with a reason) | {failed} |");
    let _ = writeln!(
        report,
        "| delivered + failed = sent | {} |",
        delivered + failed == sent
    );
    let _ = writeln!(
        report,
        "| completed twice / never (stuck) | {twice} / {never} |"
    );
    let _ = writeln!(
        report,
        "| redeliveries not flagged (or flagged wrongly) | {flag_errors} |"
    );
    let _ = writeln!(
        report,
        "| in flight before shutdown | {in_flight_before_shutdown} |"
    );
    let _ = writeln!(
        report,
        "| consumer crashes (chaos + random) / joins / leaves / hot deploys | {} / {} / {} / {} |",
        metrics.consumer_crashes, chaos_counts[1], chaos_counts[2], chaos_counts[3]
    );
    let _ = writeln!(
        report,
        "| chaos crashes declared by the host | {} |",
        chaos_counts[0]
    );
    let _ = writeln!(report, "| re-routed deliveries | {} |", metrics.rerouted);
    let _ = writeln!(
        report,
        "| routing failures | {} |",
        metrics.routing_failures
    );
    let _ = writeln!(report, "| stale (fenced) deferred acks | {stale_acks} |");
    let _ = writeln!(
        report,
        "| resident memory, second → last sample | {:.1} → {:.1} MiB ({:+.1} %{}) |",
        first_rss as f64 / 1024.0,
        last_rss as f64 / 1024.0,
        growth * 100.0,
        if enforce_rss {
            ""
        } else {
            "; not checked under 2M messages"
        }
    );
    let _ = writeln!(report, "\nFailures by reason:\n");
    for (reason, count) in shared.failures.lock().expect("lock").iter() {
        let _ = writeln!(report, "- {reason}: {count}");
    }
    let _ = writeln!(
        report,
        "\nResident memory samples (completed dispatches → KiB): {rss:?}\n"
    );
    let _ = writeln!(report, "Result: **{}**", if ok { "pass" } else { "FAIL" });
    print!("{report}");
    if let Some(path) = report_path {
        std::fs::write(&path, &report).expect("write report");
    }
    std::process::exit(if ok { 0 } else { 1 });
}
