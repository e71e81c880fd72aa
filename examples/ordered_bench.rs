//! What order costs: asynchronous throughput unordered and ordered (10 and
//! 10,000 keys) in the same run (O1); one key alone beside the blocking
//! round trip (O2); how soon a key moves on when the consumer holding its
//! head crashes (O3: crash noticed → head re-routed and acknowledged → the
//! key's next message handled); the other keys' latency with one hot key
//! among 10,000 (O4); what 10M distinct keys leave behind (O5); and the
//! other keys' throughput beside one poison key (O6).
//!
//! `cargo run --release --example ordered_bench [messages]`

use std::time::{Duration, Instant};

use liminal::{
    Builtin, ConsumerSpec, Delivery, DispatchOptions, Group, GroupOptions, Message,
    RoutingFunction, Runtime, RuntimeOptions, Verdict,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn group(runtime: &Runtime) -> Res<Group> {
    let group = runtime.group(
        RoutingFunction::builtin(Builtin::LeastLoaded),
        GroupOptions::default(),
    )?;
    for c in 0..4 {
        group.register(
            ConsumerSpec::push(format!("c{c}"), |_: &Delivery| Verdict::Ack).max_in_flight(4096),
        )?;
    }
    Ok(group)
}

/// `messages` asynchronous dispatches, at most `window` in flight, message
/// `i` keyed `i % keys` (`keys` 0: unordered). Returns messages per second.
fn throughput(group: &Group, messages: u64, window: usize, keys: u64) -> Res<f64> {
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(window);
    // Few keys: their names made once; many (O5): made per message, so
    // nothing of them is kept here.
    let names: Vec<String> = if keys <= 100_000 {
        (0..keys).map(|k| format!("key-{k}")).collect()
    } else {
        Vec::new()
    };
    let started = Instant::now();
    for i in 0..messages {
        permit_tx.send(())?;
        let permit_rx = permit_rx.clone();
        let options = DispatchOptions {
            key: (keys > 0).then(|| match names.get((i % keys) as usize) {
                Some(name) => name.clone(),
                None => format!("key-{}", i % keys),
            }),
            ..DispatchOptions::default()
        };
        group.dispatch_async_with(
            Message::new(),
            &options,
            Box::new(move |result| {
                assert!(result.is_ok());
                let _ = permit_rx.recv();
            }),
        )?;
    }
    for _ in 0..window {
        permit_tx.send(())?;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// O3: a key's head is held by a consumer that crashes; time from the
/// crash to the key's next message being handled.
fn crash_to_next(rounds: usize) -> Res<Vec<Duration>> {
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = runtime.group(
        RoutingFunction::builtin(Builtin::LeastLoaded),
        GroupOptions::default(),
    )?;
    let (handled_tx, handled_rx) = crossbeam_channel::unbounded::<(String, Instant)>();
    // The holder keeps what it gets; the other acknowledges.
    let holder_tx = handled_tx.clone();
    let mut samples = Vec::with_capacity(rounds);
    let other = handled_tx.clone();
    group.register(ConsumerSpec::push("other", move |d: &Delivery| {
        let text = d
            .message()
            .payload()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let _ = other.send((text.unwrap_or_default(), Instant::now()));
        Verdict::Ack
    }))?;
    // Least loaded, ties to the first id: "holder-…" takes each head.
    for round in 0..rounds {
        let holder_tx = holder_tx.clone();
        let holder = group.register(ConsumerSpec::push(
            format!("holder-{round}"),
            move |_: &Delivery| {
                let _ = holder_tx.send(("held".into(), Instant::now()));
                Verdict::Defer
            },
        ))?;
        let key = DispatchOptions {
            key: Some(format!("k{round}")),
            ..DispatchOptions::default()
        };
        group.dispatch_async_with(
            Message::new().with_payload(b"head".to_vec()),
            &key,
            Box::new(|_| {}),
        )?;
        let (what, _) = handled_rx.recv_timeout(Duration::from_secs(10))?;
        assert_eq!(what, "held");
        group.dispatch_async_with(
            Message::new().with_payload(b"next".to_vec()),
            &key,
            Box::new(|_| {}),
        )?;
        let crashed = Instant::now();
        holder.crash("benchmark")?;
        loop {
            let (what, at) = handled_rx.recv_timeout(Duration::from_secs(10))?;
            if what == "next" {
                samples.push(at - crashed);
                break;
            }
        }
    }
    runtime.shutdown()?;
    Ok(samples)
}

/// O4: messages over 10,000 keys, every other one to a hot key when `hot`;
/// the dispatch-to-completion latency of the messages of the other keys.
fn other_keys_latency(group: &Group, messages: u64, hot: bool) -> Res<Vec<Duration>> {
    let window = 1024;
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(window);
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(messages as usize)));
    for i in 0..messages {
        permit_tx.send(())?;
        let permit_rx = permit_rx.clone();
        let is_hot = hot && i % 2 == 0;
        let key = if is_hot {
            "hot".to_owned()
        } else {
            format!("key-{}", i % 10_000)
        };
        let options = DispatchOptions {
            key: Some(key),
            ..DispatchOptions::default()
        };
        let samples = std::sync::Arc::clone(&samples);
        let sent = Instant::now();
        group.dispatch_async_with(
            Message::new(),
            &options,
            Box::new(move |result| {
                assert!(result.is_ok());
                if !is_hot {
                    if let Ok(mut samples) = samples.lock() {
                        samples.push(sent.elapsed());
                    }
                }
                let _ = permit_rx.recv();
            }),
        )?;
    }
    for _ in 0..window {
        permit_tx.send(())?;
    }
    let samples = samples.lock().map_err(|_| "poisoned")?.clone();
    Ok(samples)
}

/// O6: `messages` over 10,000 keys, with every 100th message of a poison
/// key (its consumer releases it until it is dead-lettered) when `poison`.
/// Returns the rate of the other keys' messages.
fn other_keys_beside_poison(messages: u64, poison: bool) -> Res<f64> {
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = runtime.group(
        RoutingFunction::builtin(Builtin::LeastLoaded),
        GroupOptions::default(),
    )?;
    for c in 0..4 {
        group.register(
            ConsumerSpec::push(format!("c{c}"), |d: &Delivery| {
                if d.message().ordering_key() == Some("poison") {
                    Verdict::Release(Duration::ZERO)
                } else {
                    Verdict::Ack
                }
            })
            .max_in_flight(4096),
        )?;
    }
    let window = 1024;
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(window);
    let others = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    for i in 0..messages {
        permit_tx.send(())?;
        let permit_rx = permit_rx.clone();
        let is_poison = poison && i % 100 == 0;
        let key = if is_poison {
            "poison".to_owned()
        } else {
            format!("key-{}", i % 10_000)
        };
        let options = DispatchOptions {
            key: Some(key),
            ..DispatchOptions::default()
        };
        let others = std::sync::Arc::clone(&others);
        group.dispatch_async_with(
            Message::new(),
            &options,
            Box::new(move |result| {
                assert_eq!(result.is_ok(), !is_poison);
                if !is_poison {
                    others.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = permit_rx.recv();
            }),
        )?;
    }
    for _ in 0..window {
        permit_tx.send(())?;
    }
    let rate =
        others.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    runtime.shutdown()?;
    Ok(rate)
}

/// Resident memory now, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| {
            statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

fn main() -> Res<()> {
    let messages: u64 = std::env::args().nth(1).map_or(Ok(200_000), |a| a.parse())?;
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = group(&runtime)?;
    if let Ok(keys) = std::env::var("LIMINAL_BENCH_KEYS") {
        // Profiling aid: one shape only.
        let rate = throughput(&group, messages, 1024, keys.parse()?)?;
        println!("{keys} keys: {rate:.0} msg/s");
        return Ok(());
    }
    // Warm up, then the three shapes in turn, twice, in one run.
    throughput(&group, messages / 4, 1024, 0)?;
    for pass in 1..=2 {
        let unordered = throughput(&group, messages, 1024, 0)?;
        let ten = throughput(&group, messages, 1024, 10)?;
        let many = throughput(&group, messages, 1024, 10_000)?;
        println!(
            "O1 pass {pass}: unordered {unordered:.0} msg/s; 10 keys {ten:.0} ({:.2}x); 10,000 keys {many:.0} ({:.2}x) (1,024 in flight, 4 consumers)",
            ten / unordered,
            many / unordered
        );
    }
    let mut round_trips = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let started = Instant::now();
        group.dispatch(Message::new())?;
        round_trips.push(started.elapsed());
    }
    let w1 = percentile(&mut round_trips, 0.5);
    let single = throughput(&group, messages / 4, 1024, 1)?;
    println!(
        "O2 one key, 1,024 dispatched ahead: {single:.0} msg/s; blocking round trip p50 {:.1} us, 1/p50 = {:.0} msg/s ({:.2}x)",
        w1.as_secs_f64() * 1e6,
        1.0 / w1.as_secs_f64(),
        single * w1.as_secs_f64()
    );
    runtime.shutdown()?;
    let mut samples = crash_to_next(300)?;
    let p50 = percentile(&mut samples, 0.5);
    let p99 = percentile(&mut samples, 0.99);
    println!(
        "O3 holder of a key's head crashes -> the key's next message handled: p50 {:.1} us, p99 {:.1} us ({} rounds)",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        samples.len()
    );

    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = crate::group(&runtime)?;
    for hot in [false, true] {
        let mut samples = other_keys_latency(&group, messages, hot)?;
        let p50 = percentile(&mut samples, 0.5);
        let p99 = percentile(&mut samples, 0.99);
        println!(
            "O4 10,000 keys{}: the other keys' dispatch -> completion p50 {:.1} us, p99 {:.1} us ({} messages)",
            if hot { " plus one hot key taking every other message" } else { "" },
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            samples.len()
        );
    }

    let distinct: u64 = std::env::var("LIMINAL_BENCH_DISTINCT_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    // Warm the allocator with a run of the same size over few keys first,
    // so what stays after the distinct keys is theirs.
    throughput(&group, distinct.min(1_000_000), 1024, 10)?;
    let before = rss_kib();
    let started = Instant::now();
    throughput(&group, distinct, 1024, distinct)?;
    let after = rss_kib();
    let keys = group.ordering_stats().keys;
    println!(
        "O5 {distinct} distinct keys in {:.1} s: {keys} keys kept afterwards; resident memory {before} KiB before, {after} KiB after ({:+.2} bytes per key seen)",
        started.elapsed().as_secs_f64(),
        (after as f64 - before as f64) * 1024.0 / distinct as f64
    );
    runtime.shutdown()?;

    for pass in 1..=2 {
        let clean = other_keys_beside_poison(1_000_000, false)?;
        let poisoned = other_keys_beside_poison(1_000_000, true)?;
        println!(
            "O6 pass {pass}: 1M messages over 10,000 keys: the others {clean:.0} msg/s alone, {poisoned:.0} msg/s beside a poison key taking every 100th message ({:.2}x)",
            poisoned / clean
        );
    }
    Ok(())
}
