//! Crash churn at full size: `cargo run --release --example churn -- [rounds]
//! [kind...]` (default 20,000 rounds of every kind; kinds: verdict,
//! declared, injected, routing-crash, routing-timeout). Prints one line per
//! kind and a Markdown table row; exits 1 when resident memory grew more
//! than 10 % after warm-up, or threads at all. The cost of a round, last
//! thousand against first, is a benchmark target (at most 2x), marked in the
//! row but never a failure: a ratio of times depends on what else the
//! machine runs.
//! `scripts/soak.sh` runs it at 20,000 rounds; 1,000,000 rounds of
//! `verdict` is the consumer-churn memory workload of the benchmarks.

#[path = "../tests/common/churn.rs"]
mod churn;

use churn::{churn, Failure};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let kinds: Vec<Failure> = {
        let named: Vec<Failure> = args
            .map(|name| match name.as_str() {
                "verdict" => Failure::Verdict,
                "declared" => Failure::Declared,
                "injected" => Failure::Injected,
                "routing-crash" => Failure::RoutingCrash,
                "routing-timeout" => Failure::RoutingTimeout,
                other => panic!("unknown kind {other}"),
            })
            .collect();
        if named.is_empty() {
            Failure::ALL.to_vec()
        } else {
            named
        }
    };
    let mut failed = false;
    println!("| failure | rounds | first 1k (us/round) | last 1k (us/round) | ratio | RSS after warm-up | RSS at end | growth | threads | beamr processes |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for kind in kinds {
        // A routing timeout costs tens of milliseconds per round.
        let (rounds, window) = if kind == Failure::RoutingTimeout {
            let rounds = (rounds / 20).max(400);
            (rounds, rounds / 10)
        } else {
            (rounds, 1_000.min(rounds / 4))
        };
        let report = churn(kind, rounds, window);
        let ok = report.rss_growth() <= 0.10 && report.threads_end <= report.threads_warm + 1;
        failed |= !ok;
        let cost = if report.cost_ratio() <= 2.0 {
            ""
        } else {
            " (cost over the 2x target)"
        };
        println!(
            "| {:?} | {} | {:.1} | {:.1} | {:.2}x{} | {:.1} MiB | {:.1} MiB | {:+.1} % | {} -> {} | {} -> {} |{}",
            report.failure,
            report.rounds,
            report.first_us,
            report.last_us,
            report.cost_ratio(),
            cost,
            report.rss_warm_kib as f64 / 1024.0,
            report.rss_end_kib as f64 / 1024.0,
            report.rss_growth() * 100.0,
            report.threads_warm,
            report.threads_end,
            report.processes_warm,
            report.processes_end,
            if ok { "" } else { " FAIL" }
        );
    }
    if failed {
        std::process::exit(1);
    }
}
