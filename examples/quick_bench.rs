//! A quick measurement of the Rust core: blocking-dispatch latency and
//! asynchronous throughput with 4 consumers. The full benchmark suite (C
//! ABI, peers) lives in `bench/`.
//!
//! `cargo run --release --example quick_bench [messages]`

use std::time::Instant;

use hdrhistogram::Histogram;
use liminal::{
    Builtin, ConsumerSpec, Delivery, GroupOptions, Message, RoutingFunction, Runtime,
    RuntimeOptions, Verdict,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let messages: u64 = std::env::args().nth(1).map_or(Ok(200_000), |a| a.parse())?;
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = runtime.group(
        RoutingFunction::builtin(Builtin::LeastLoaded),
        GroupOptions::default(),
    )?;
    for id in ["c0", "c1", "c2", "c3"] {
        group.register(ConsumerSpec::push(id, |_d: &Delivery| Verdict::Ack).max_in_flight(4096))?;
    }
    let mut latency = Histogram::<u64>::new(3)?;
    for _ in 0..messages / 4 {
        let start = Instant::now();
        group.dispatch(Message::new())?;
        latency.record(u64::try_from(start.elapsed().as_nanos())?)?;
    }
    println!(
        "blocking dispatch: n={} p50={:.1}us p99={:.1}us p99.9={:.1}us",
        latency.len(),
        latency.value_at_quantile(0.5) as f64 / 1e3,
        latency.value_at_quantile(0.99) as f64 / 1e3,
        latency.value_at_quantile(0.999) as f64 / 1e3
    );

    let window = 1024;
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(window);
    let start = Instant::now();
    for _ in 0..messages {
        permit_tx.send(())?;
        let permit_rx = permit_rx.clone();
        group.dispatch_async(
            Message::new(),
            Box::new(move |result| {
                assert!(result.is_ok());
                let _ = permit_rx.recv();
            }),
        )?;
    }
    // Taking every permit back means every completion has run.
    for _ in 0..window {
        permit_tx.send(())?;
    }
    let elapsed = start.elapsed();
    println!(
        "async dispatch, {window} in flight: {messages} in {:.3}s = {:.0} msg/s",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
