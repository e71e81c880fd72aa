//! The crash-churn workload: each round registers a consumer that fails and
//! a healthy backup, dispatches one message (re-routed to the backup), and
//! lets the backup leave; or, for routing, makes the group's routing
//! function crash or run past its timeout once per round. The cost of a
//! round must not depend on how many came before, and memory must stay
//! flat. Shared by `tests/churn.rs` (CI size) and `examples/churn.rs` (full
//! size, soak and benchmark).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use liminal::{
    Builtin, ConsumerSpec, Delivery, DeliveryToken, DispatchError, DispatchOptions, FieldValue,
    GroupOptions, Message, RoutingError, RoutingFunction, Runtime, RuntimeOptions, Verdict,
};

/// How the failing party fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its delivery callback answers crash.
    Verdict,
    /// The host declares it crashed while it holds the message.
    Declared,
    /// Fault injection: it crashes at its next delivery.
    Injected,
    /// The routing function panics on one message per round.
    RoutingCrash,
    /// The routing function runs past the routing timeout once per round.
    RoutingTimeout,
}

impl Failure {
    /// Every kind, in order.
    pub const ALL: [Failure; 5] = [
        Failure::Verdict,
        Failure::Declared,
        Failure::Injected,
        Failure::RoutingCrash,
        Failure::RoutingTimeout,
    ];
}

/// What one churn run measured.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    pub failure: Failure,
    pub rounds: usize,
    /// Mean cost of a round over the first and the last `window` rounds.
    pub first_us: f64,
    pub last_us: f64,
    pub window: usize,
    /// Resident memory after the warm-up (the first window) and at the end.
    pub rss_warm_kib: u64,
    pub rss_end_kib: u64,
    /// Threads of the process after the warm-up and at the end.
    pub threads_warm: usize,
    pub threads_end: usize,
    /// beamr processes after the warm-up and at the end.
    pub processes_warm: usize,
    pub processes_end: usize,
}

impl ChurnReport {
    pub fn cost_ratio(&self) -> f64 {
        self.last_us / self.first_us
    }

    pub fn rss_growth(&self) -> f64 {
        self.rss_end_kib as f64 / self.rss_warm_kib as f64 - 1.0
    }
}

pub fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

fn message(n: i64) -> Message {
    Message::new().with("n", FieldValue::Int(n))
}

type Hook = Arc<Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static>>;

/// Puts the previous panic hook back.
struct RestoreHook(Option<Hook>);

impl Drop for RestoreHook {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            std::panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}

/// The cost of the first and the last `window` rounds, kept in constant
/// memory (a vector of every round's cost would itself grow the resident
/// memory this workload checks).
struct Costs {
    rounds: usize,
    window: usize,
    seen: usize,
    first: Duration,
    last: Duration,
}

impl Costs {
    fn new(rounds: usize, window: usize) -> Self {
        Self {
            rounds,
            window,
            seen: 0,
            first: Duration::ZERO,
            last: Duration::ZERO,
        }
    }

    fn push(&mut self, cost: Duration) {
        // The first window starts after a short warm-up: caches, pools and
        // tables filling up are not growth.
        let warm_up = self.window / 4;
        if (warm_up..warm_up + self.window).contains(&self.seen) {
            self.first += cost;
        }
        if self.seen >= self.rounds - self.window {
            self.last += cost;
        }
        self.seen += 1;
    }

    fn first_mean_us(&self) -> f64 {
        self.first.as_secs_f64() / self.window as f64 * 1e6
    }

    fn last_mean_us(&self) -> f64 {
        self.last.as_secs_f64() / self.window as f64 * 1e6
    }
}

/// Run `rounds` rounds of `failure`, timing each; `window` rounds at each end
/// are compared.
pub fn churn(failure: Failure, rounds: usize, window: usize) -> ChurnReport {
    assert!(rounds >= 2 * window && window > 0);
    // Long enough that a busy machine does not time out the healthy calls.
    let timeout_ms = 10;
    let runtime = Runtime::new(RuntimeOptions {
        routing_timeout: Duration::from_millis(if failure == Failure::RoutingTimeout {
            timeout_ms
        } else {
            5_000
        }),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let mut costs = Costs::new(rounds, window);
    let mut rss_warm_kib = 0;
    let mut threads_warm = 0;
    let mut processes_warm = 0;
    match failure {
        Failure::Verdict | Failure::Declared | Failure::Injected => {
            let group = runtime
                .group(
                    RoutingFunction::builtin(Builtin::LeastLoaded),
                    GroupOptions::default(),
                )
                .expect("group");
            let (token_tx, token_rx) = crossbeam_channel::unbounded::<DeliveryToken>();
            for round in 0..rounds {
                let started = Instant::now();
                // Ids sort the failing one first: least-loaded ties go to it.
                let failing_id = format!("a{round:09}");
                let spec = match failure {
                    Failure::Verdict => ConsumerSpec::push(&failing_id, |_d: &Delivery| {
                        Verdict::Crash("churn".into())
                    }),
                    Failure::Declared => {
                        let token_tx = token_tx.clone();
                        ConsumerSpec::push(&failing_id, move |d: &Delivery| {
                            token_tx.send(d.token()).expect("test alive");
                            Verdict::Defer
                        })
                    }
                    _ => ConsumerSpec::push(&failing_id, |_d: &Delivery| Verdict::Ack),
                };
                let failing = group.register(spec).expect("register");
                let backup = group
                    .register(ConsumerSpec::push(
                        format!("b{round:09}"),
                        |_d: &Delivery| Verdict::Ack,
                    ))
                    .expect("register");
                if failure == Failure::Injected {
                    failing.crash_at_next_delivery().expect("alive");
                }
                let outcome = if failure == Failure::Declared {
                    let (tx, rx) = crossbeam_channel::bounded(1);
                    group
                        .dispatch_async(
                            message(round as i64),
                            Box::new(move |r| tx.send(r).expect("test alive")),
                        )
                        .expect("accepted");
                    token_rx
                        .recv_timeout(Duration::from_secs(30))
                        .expect("held by the failing consumer");
                    failing.crash("declared by the host").expect("alive");
                    rx.recv_timeout(Duration::from_secs(30))
                        .expect("completed")
                        .expect("delivered")
                } else {
                    group.dispatch(message(round as i64)).expect("delivered")
                };
                assert_eq!(outcome.delivered_to, backup.id());
                assert_eq!(outcome.rerouted_from, vec![failing_id]);
                backup.leave().expect("alive");
                costs.push(started.elapsed());
                if round + 1 == window {
                    rss_warm_kib = rss_kib();
                    threads_warm = threads();
                    processes_warm = runtime.process_count();
                }
            }
            assert!(group.is_empty(), "nothing left in the group");
        }
        Failure::RoutingCrash | Failure::RoutingTimeout => {
            // The expected routing panics are not news: keep them off stderr.
            let previous = Arc::new(std::panic::take_hook());
            let fallback = Arc::clone(&previous);
            std::panic::set_hook(Box::new(move |info| {
                if !info.to_string().contains("(churn)") {
                    fallback(info);
                }
            }));
            let _restore = RestoreHook(Some(previous));
            let (returned_tx, returned_rx) = crossbeam_channel::unbounded::<()>();
            let slow = Duration::from_millis(2 * timeout_ms);
            let routing = runtime.load_routing(b"churn routing", "churn", move |m, views| {
                if m.get("fail").is_some() {
                    if failure == Failure::RoutingCrash {
                        panic!("routing crash (churn)");
                    }
                    // The behaviour under test: a routing call that runs
                    // past the timeout.
                    std::thread::sleep(slow);
                    let _ = returned_tx.send(());
                    return None;
                }
                views.first().map(|v| v.id.to_string())
            });
            let hash = routing.hash();
            let group = runtime
                .group(routing, GroupOptions::default())
                .expect("group");
            let failing = Message::new().with("fail", FieldValue::Bool(true));
            let failing = Arc::new(failing);
            for round in 0..rounds {
                let started = Instant::now();
                let consumer = group
                    .register(ConsumerSpec::push(
                        format!("c{round:09}"),
                        |_d: &Delivery| Verdict::Ack,
                    ))
                    .expect("register");
                let error = group.dispatch(Arc::clone(&failing)).expect_err("fails");
                let expected = match failure {
                    Failure::RoutingCrash => RoutingError::Crashed(hash),
                    _ => RoutingError::TimedOut(hash),
                };
                assert_eq!(
                    error.dispatch_error(),
                    Some(&DispatchError::Routing(expected))
                );
                if failure == Failure::RoutingTimeout {
                    // The abandoned call returns; then the function is usable again.
                    returned_rx
                        .recv_timeout(Duration::from_secs(30))
                        .expect("the slow call returns");
                    while runtime.abandoned_routing_lanes() > 0 {
                        std::thread::yield_now();
                    }
                }
                // Bounded, so that a message the lanes never place fails the
                // test with the group's state instead of hanging it. A
                // healthy call descheduled past the 10 ms timeout (a busy
                // machine) times out as promised: dispatch it again.
                let healthy = DispatchOptions {
                    timeout: Some(Duration::from_secs(120)),
                    ..DispatchOptions::default()
                };
                let outcome = loop {
                    match group.dispatch_with(message(round as i64), &healthy) {
                        Ok(outcome) => break outcome,
                        Err(error)
                            if failure == Failure::RoutingTimeout
                                && error.dispatch_error()
                                    == Some(&DispatchError::Routing(RoutingError::TimedOut(
                                        hash,
                                    ))) =>
                        {
                            while runtime.abandoned_routing_lanes() > 0 {
                                std::thread::yield_now();
                            }
                        }
                        Err(error) => panic!(
                            "round {round}: the healthy dispatch after a routing failure: {error}; \
                             abandoned lanes {}; stats {}",
                            runtime.abandoned_routing_lanes(),
                            runtime.stats().to_json()
                        ),
                    }
                };
                assert_eq!(outcome.delivered_to, consumer.id());
                consumer.leave().expect("alive");
                costs.push(started.elapsed());
                if round + 1 == window {
                    rss_warm_kib = rss_kib();
                    threads_warm = threads();
                    processes_warm = runtime.process_count();
                }
            }
        }
    }
    let report = ChurnReport {
        failure,
        rounds,
        first_us: costs.first_mean_us(),
        last_us: costs.last_mean_us(),
        window,
        rss_warm_kib,
        rss_end_kib: rss_kib(),
        threads_warm,
        threads_end: threads(),
        processes_warm,
        processes_end: runtime.process_count(),
    };
    runtime.shutdown().expect("shutdown");
    report
}
