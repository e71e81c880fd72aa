//! A quick measurement of the Rust core: blocking-dispatch latency,
//! asynchronous throughput with 4 consumers, and producers outrunning
//! consumers that hold 8 each (the rest waits in the group's waiting room).
//! The full benchmark suite (C ABI, peers) lives in `bench/`.
//!
//! `cargo run --release --example quick_bench [messages]`

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use liminal::{
    Builtin, ConsumerSpec, Delivery, Group, GroupOptions, Message, RoutingFunction, Runtime,
    RuntimeOptions, Verdict,
};

/// Dispatch `messages` asynchronously with at most `window` in flight;
/// returns the elapsed time once every completion ran.
fn run_async(
    group: &Group,
    messages: u64,
    window: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
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
    Ok(start.elapsed())
}

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
    let elapsed = run_async(&group, messages, window)?;
    println!(
        "async dispatch, {window} in flight: {messages} in {:.3}s = {:.0} msg/s",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64()
    );

    // Producers outrunning consumers: 4 × 8 slots for 1024 in flight.
    // A runtime of its own, so that its metrics are this run's alone.
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let narrow = runtime.group(
        RoutingFunction::builtin(Builtin::LeastLoaded),
        GroupOptions::default(),
    )?;
    for id in ["n0", "n1", "n2", "n3"] {
        narrow.register(ConsumerSpec::push(id, |_d: &Delivery| Verdict::Ack).max_in_flight(8))?;
    }
    let elapsed = run_async(&narrow, messages, window)?;
    let waiting = runtime.metrics().waiting_time;
    println!(
        "async dispatch, {window} in flight, 32 consumer slots: {:.0} msg/s; \
         waiting room: {} placements, p50={:.1}us p99={:.1}us max={:.1}ms",
        messages as f64 / elapsed.as_secs_f64(),
        waiting.count,
        waiting.p50_ns as f64 / 1e3,
        waiting.p99_ns as f64 / 1e3,
        waiting.max_ns as f64 / 1e6
    );
    Ok(())
}
