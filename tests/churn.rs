//! Crash churn: the cost of a register / dispatch / leave round must not
//! depend on how many consumers (or routing calls) failed before, and
//! memory and threads must stay flat. Each failure kind runs alone (they
//! measure the whole process). Sizes: `LIMINAL_CHURN_ROUNDS` (default
//! 20,000; routing timeouts a twentieth, each costs tens of milliseconds);
//! `examples/churn.rs` runs the full size in the soak.

mod common;

use std::sync::Mutex;

use common::churn::{churn, ChurnReport, Failure};

static ALONE: Mutex<()> = Mutex::new(());

fn rounds(failure: Failure) -> (usize, usize) {
    let rounds: usize = std::env::var("LIMINAL_CHURN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    if failure == Failure::RoutingTimeout {
        let rounds = (rounds / 20).max(400);
        (rounds, rounds / 10)
    } else {
        (rounds, 1_000.min(rounds / 4))
    }
}

fn check(failure: Failure) -> ChurnReport {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (rounds, window) = rounds(failure);
    let report = churn(failure, rounds, window);
    eprintln!(
        "churn {:?}: {} rounds, first {:.1} us, last {:.1} us (x{:.2}), rss {} -> {} KiB ({:+.1} %), threads {} -> {}",
        report.failure,
        report.rounds,
        report.first_us,
        report.last_us,
        report.cost_ratio(),
        report.rss_warm_kib,
        report.rss_end_kib,
        report.rss_growth() * 100.0,
        report.threads_warm,
        report.threads_end
    );
    // The cost per round (first against last) is printed above and measured
    // in the benchmarks (W10): a ratio of times fails on a busy machine, so
    // this test asserts only memory and threads.
    assert!(
        report.rss_growth() <= 0.10,
        "{failure:?}: resident memory grew {:+.1} % after warm-up",
        report.rss_growth() * 100.0
    );
    assert!(
        report.threads_end <= report.threads_warm + 1,
        "{failure:?}: threads grew {} -> {}",
        report.threads_warm,
        report.threads_end
    );
    report
}

#[test]
fn consumers_crashing_by_verdict() {
    check(Failure::Verdict);
}

#[test]
fn consumers_declared_crashed_by_the_host() {
    check(Failure::Declared);
}

#[test]
fn consumers_killed_by_fault_injection() {
    check(Failure::Injected);
}

#[test]
fn routing_functions_that_crash() {
    check(Failure::RoutingCrash);
}

#[test]
fn routing_functions_that_time_out() {
    check(Failure::RoutingTimeout);
}
