//! Soak: millions of messages from 4 producer threads while consumers crash,
//! join and leave at random, release messages, let acknowledgement leases
//! expire, routing functions are hot-deployed and fail now and then. A
//! message that finds no consumer free waits in the group's waiting room, so
//! the only failures are the ones the soak provokes (attempts exhausted,
//! routing crashes); each failure is counted by its reason. Checks at the
//! end: delivered + failed = sent, no failure for any other reason, nothing
//! stuck, every redelivery flagged, resident memory flat, clean shutdown;
//! reported besides: waiting-room depth and waiting time.
//!
//! `cargo run --release --example soak -- [messages] [report.md]`
//! (`scripts/soak.sh` runs it; CI runs a shortened version.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use liminal::{
    Builtin, ConsumerSpec, Delivery, DeliveryToken, DispatchError, DispatchOptions, DispatchResult,
    FieldValue, Group, GroupOptions, Message, RoutingError, RoutingFunction, Runtime,
    RuntimeOptions, Verdict,
};

const PRODUCERS: u64 = 4;
const WINDOW: usize = 256;
/// The acknowledgement lease of every third consumer: a delivery it forgets
/// is taken back after this and the consumer declared crashed (the chaos
/// mostly spares these consumers, or none would live that long).
const LEASE: Duration = Duration::from_millis(100);
/// The deadline of one message in a hundred: far beyond any wait here, so
/// an expiry means a message was stuck.
const DEADLINE: Duration = Duration::from_secs(10);

/// Failure reasons, in report order; the soak provokes only the first two.
const REASONS: [&str; 10] = [
    "attempts exhausted",
    "routing function crashed",
    "expired",
    "dropped",
    "timed out",
    "routing function timed out",
    "routing spawn failed",
    "unknown consumer selected",
    "group closed",
    "conversation failed or shut down",
];
const PROVOKED_REASONS: usize = 2;

fn reason(error: &DispatchError) -> usize {
    match error {
        DispatchError::AttemptsExhausted(_) => 0,
        DispatchError::Routing(RoutingError::Crashed(_)) => 1,
        DispatchError::Expired => 2,
        DispatchError::Dropped => 3,
        DispatchError::TimedOut => 4,
        DispatchError::Routing(RoutingError::TimedOut(_)) => 5,
        DispatchError::Routing(RoutingError::SpawnFailed(_)) => 6,
        DispatchError::UnknownConsumerSelected(_) => 7,
        DispatchError::NoConsumerAvailable => 8,
        DispatchError::Conversation(_) | DispatchError::ShutDown => 9,
    }
}

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
    /// Failures per index of [`REASONS`].
    failures: [AtomicU64; REASONS.len()],
    /// Deliveries a leased consumer deferred and never answered.
    forgotten: AtomicU64,
    /// Time in the waiting room over all completed messages, and the longest.
    waited_total_ns: AtomicU64,
    waited_max_ns: AtomicU64,
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

/// Every third consumer has an acknowledgement lease.
fn leased(n: u64) -> bool {
    n % 3 == 0
}

/// Chaos spares a leased consumer nine times in ten: the others live a few
/// milliseconds, shorter than any lease.
fn spared(id: &str, rng: &mut Rng) -> bool {
    let n = id.trim_start_matches('c').parse().unwrap_or(1);
    leased(n) && rng.below(10) != 0
}

fn consumer(group: &Group, n: u64, shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    let mut rng = Rng((n + 1) | 1);
    let leased = leased(n);
    let spec = ConsumerSpec::push(format!("c{n:08}"), move |d: &Delivery| {
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
            1..=4 => Verdict::Release(Duration::ZERO),
            5..=6 => Verdict::Release(Duration::from_millis(1)),
            7..=9 if leased => {
                // Deferred and forgotten: the lease takes it back.
                shared.forgotten.fetch_add(1, Ordering::Relaxed);
                Verdict::Defer
            }
            8..=2008 => {
                let _ = shared.deferred.send(d.token());
                Verdict::Defer
            }
            _ => Verdict::Ack,
        }
    })
    .max_in_flight(4096);
    let _ = group.register(if leased { spec.ack_lease(LEASE) } else { spec });
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
    let group_options = GroupOptions {
        name: Some("soak".into()),
        ..GroupOptions::default()
    };
    let group = runtime
        .group(host_routing(&runtime, 0), group_options)
        .expect("group");
    let (deferred_tx, deferred_rx) = crossbeam_channel::unbounded::<DeliveryToken>();
    let shared = Arc::new(Shared {
        seen: (0..total).map(|_| AtomicU8::new(0)).collect(),
        completed: (0..total).map(|_| AtomicU8::new(0)).collect(),
        flag_errors: AtomicU64::new(0),
        deferred: deferred_tx,
        delivered: AtomicU64::new(0),
        failures: Default::default(),
        forgotten: AtomicU64::new(0),
        waited_total_ns: AtomicU64::new(0),
        waited_max_ns: AtomicU64::new(0),
        done: AtomicU64::new(0),
    });
    let next_id = AtomicU64::new(0);
    for _ in 0..8 {
        consumer(&group, next_id.fetch_add(1, Ordering::Relaxed), &shared);
    }
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut rss = Vec::new();
    // Waiting-room depth, sampled with the progress check: (samples, sum, max).
    let mut depth = (0u64, 0u64, 0usize);
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
                        let spared = spared(&victim.id, &mut rng);
                        if let Some(c) = group.consumer(&victim.id).filter(|_| !spared) {
                            if c.crash("soak: chaos").is_ok() {
                                counts[0] += 1;
                            }
                        }
                    }
                    30..=59 if members.len() < 12 => {
                        consumer(&group, next_id.fetch_add(1, Ordering::Relaxed), &shared);
                        counts[1] += 1;
                    }
                    60..=89 if members.len() > 4 => {
                        let victim = &members[rng.below(members.len() as u64) as usize];
                        let spared = spared(&victim.id, &mut rng);
                        if let Some(c) = group.consumer(&victim.id).filter(|_| !spared) {
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
                        let options = DispatchOptions {
                            deadline: (seq % 100 == 0).then_some(DEADLINE),
                            ..DispatchOptions::default()
                        };
                        let completion = Box::new(move |r: DispatchResult| {
                            let s = &shared_done;
                            s.completed[index].fetch_add(1, Ordering::AcqRel);
                            let waited = match r {
                                Ok(outcome) => {
                                    s.delivered.fetch_add(1, Ordering::Relaxed);
                                    outcome.waited
                                }
                                Err(failure) => {
                                    s.failures[reason(&failure.error)]
                                        .fetch_add(1, Ordering::Relaxed);
                                    failure.waited
                                }
                            };
                            let waited = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
                            s.waited_total_ns.fetch_add(waited, Ordering::Relaxed);
                            s.waited_max_ns.fetch_max(waited, Ordering::Relaxed);
                            s.done.fetch_add(1, Ordering::Release);
                            let _ = permit_rx.recv();
                        });
                        if let Err(e) = group.dispatch_async_with(message, &options, completion) {
                            panic!("dispatch {seq} refused: {e}");
                        }
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
            let waiting = group.waiting();
            depth = (depth.0 + 1, depth.1 + waiting as u64, depth.2.max(waiting));
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
    let failures: Vec<u64> = shared
        .failures
        .iter()
        .map(|f| f.load(Ordering::Relaxed))
        .collect();
    let failed: u64 = failures.iter().sum();
    let unprovoked: u64 = failures[PROVOKED_REASONS..].iter().sum();
    let done = shared.done.load(Ordering::Acquire).max(1);
    let waited_mean_us = shared.waited_total_ns.load(Ordering::Relaxed) as f64 / done as f64 / 1e3;
    let waited_max_ms = shared.waited_max_ns.load(Ordering::Relaxed) as f64 / 1e6;
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
        && unprovoked == 0
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
    let _ = writeln!(report, "| failed (with a reason, below) | {failed} |");
    let _ = writeln!(
        report,
        "| failed for a reason the soak does not provoke | {unprovoked} |"
    );
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
        "| consumer crashes (chaos + random + leases) / joins / leaves / hot deploys | {} / {} / {} / {} |",
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
    let _ = writeln!(
        report,
        "| released deliveries / expired leases (forgotten deliveries) | {} / {} ({}) |",
        metrics.released,
        metrics.lease_expired,
        shared.forgotten.load(Ordering::Relaxed)
    );
    let _ = writeln!(report, "| stale (fenced) deferred acks | {stale_acks} |");
    let _ = writeln!(
        report,
        "| waiting-room depth, sampled every 20 ms: mean / max | {:.1} / {} |",
        depth.1 as f64 / depth.0.max(1) as f64,
        depth.2
    );
    let _ = writeln!(
        report,
        "| waiting time per message: mean / max | {waited_mean_us:.1} µs / {waited_max_ms:.1} ms |"
    );
    let w = &metrics.waiting_time;
    let _ = writeln!(
        report,
        "| waiting time per placement: p50 / p99 / max ({} placements) | {:.1} µs / {:.1} µs / {:.1} ms |",
        w.count,
        w.p50_ns as f64 / 1e3,
        w.p99_ns as f64 / 1e3,
        w.max_ns as f64 / 1e6
    );
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
    let _ = writeln!(
        report,
        "\nFailures by reason (the first {PROVOKED_REASONS} are provoked: random crash \
         verdicts, releases and expired leases use up attempts; the routing function \
         panics now and then):\n"
    );
    for (reason, count) in REASONS.iter().zip(&failures) {
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
