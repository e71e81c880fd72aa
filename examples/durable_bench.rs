//! Durable groups measured: the disk's own fsync floor, durable dispatch
//! latency at one in flight (D1), throughput with many dispatching threads
//! sharing group commits (D2), and recovery time of a store with many
//! pending messages (D3). Every figure comes with the sync policy it used
//! and the fsyncs it cost.
//!
//! `cargo run --release --example durable_bench [dir] [messages]`
//! (dir: where the stores go, default a directory under the system's temp
//! directory; it must be on the disk you want to measure).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use liminal::{
    Builtin, ConsumerSpec, Delivery, GroupOptions, Message, RecoveredHandler, RoutingFunction,
    Runtime, RuntimeOptions, StoreOptions, SyncPolicy, Verdict,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{name}: p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us ({} samples)",
        us(percentile(&samples, 0.50)),
        us(percentile(&samples, 0.99)),
        us(percentile(&samples, 0.999)),
        samples.len()
    );
}

/// The floor: write 256 bytes and fdatasync them, again and again.
fn fsync_floor(dir: &Path, rounds: usize) -> Res<()> {
    let path = dir.join("floor");
    let mut file = std::fs::File::create(&path)?;
    let block = [7u8; 256];
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        file.write_all(&block)?;
        // SAFETY: a valid descriptor owned by `file`.
        if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        samples.push(started.elapsed());
    }
    std::fs::remove_file(path)?;
    report("fsync floor (256-byte write + fdatasync)", samples);
    Ok(())
}

fn ignore() -> RecoveredHandler {
    Arc::new(|_, _| {})
}

fn store(dir: &Path, name: &str, sync: SyncPolicy) -> StoreOptions {
    let path = dir.join(name);
    let _ = std::fs::remove_dir_all(&path);
    let mut options = StoreOptions::new(path);
    options.sync = sync;
    options
}

fn acking_group(runtime: &Runtime, store: StoreOptions) -> Res<liminal::Group> {
    let options = GroupOptions {
        waiting_room: 1 << 20,
        ..GroupOptions::default()
    };
    let group = runtime.durable_group(
        RoutingFunction::builtin(Builtin::LeastLoaded),
        options,
        store,
        ignore(),
    )?;
    for c in 0..4 {
        group.register(
            ConsumerSpec::push(format!("c{c}"), |_: &Delivery| Verdict::Ack).max_in_flight(1024),
        )?;
    }
    Ok(group)
}

fn payload() -> Message {
    Message::new().with_payload(vec![0u8; 200])
}

/// D1: one blocking durable dispatch at a time, to 4 acking consumers.
fn d1(dir: &Path, messages: usize) -> Res<()> {
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = acking_group(&runtime, store(dir, "d1", SyncPolicy::EveryCommit))?;
    let mut samples = Vec::with_capacity(messages);
    for _ in 0..messages {
        let started = Instant::now();
        group.dispatch(payload())?;
        samples.push(started.elapsed());
    }
    let stats = group.store_stats().unwrap_or_default();
    report(
        "D1 durable blocking dispatch, 1 in flight, fsync every commit",
        samples,
    );
    println!(
        "   fsyncs {} (mean {} us, max {} us) for {messages} messages",
        stats.syncs, stats.sync_mean_us, stats.sync_max_us
    );
    runtime.shutdown()?;
    Ok(())
}

/// D2: `threads` threads dispatching asynchronously (each returns once its
/// message is durable), to 4 acking consumers.
fn d2(dir: &Path, messages: usize, threads: usize, sync: SyncPolicy, label: &str) -> Res<()> {
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = acking_group(&runtime, store(dir, "d2", sync))?;
    let per_thread = messages / threads;
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let group = group.clone();
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    group
                        .dispatch_async(payload(), Box::new(|_| {}))
                        .expect("accepted");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| "a dispatching thread panicked")?;
    }
    let left = group.drain(Duration::from_secs(120))?;
    let elapsed = started.elapsed();
    let total = per_thread * threads;
    let stats = group.store_stats().unwrap_or_default();
    println!(
        "D2 {label}, {threads} dispatching threads: {:.0} msg/s ({total} messages, {left} left), {} fsyncs ({:.0} per million messages, mean {} us)",
        total as f64 / elapsed.as_secs_f64(),
        stats.syncs,
        stats.syncs as f64 * 1e6 / total as f64,
        stats.sync_mean_us
    );
    runtime.shutdown()?;
    Ok(())
}

/// D2 from one thread: batches of `batch` messages (`dispatch_batch`: one
/// sync per batch), at most `window` messages unacknowledged.
fn d2_batches(dir: &Path, messages: usize, batch: usize, window: usize) -> Res<()> {
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let group = acking_group(&runtime, store(dir, "d2b", SyncPolicy::EveryCommit))?;
    let (permit_tx, permit_rx) = crossbeam_channel::bounded::<()>(window);
    let started = Instant::now();
    let mut sent = 0;
    while sent < messages {
        let items: Vec<(Arc<Message>, liminal::Completion)> = (0..batch)
            .map(|_| {
                permit_tx.send(()).expect("permit");
                let permit_rx = permit_rx.clone();
                let completion: liminal::Completion = Box::new(move |_| {
                    let _ = permit_rx.recv();
                });
                (Arc::new(payload()), completion)
            })
            .collect();
        for result in group.dispatch_batch(items, &liminal::DispatchOptions::default()) {
            result?;
        }
        sent += batch;
    }
    let left = group.drain(Duration::from_secs(120))?;
    let elapsed = started.elapsed();
    let stats = group.store_stats().unwrap_or_default();
    println!(
        "D2 one thread, batches of {batch}, {window} in flight, fsync every commit: {:.0} msg/s ({sent} messages, {left} left), {} fsyncs ({:.0} per million messages, mean {} us)",
        sent as f64 / elapsed.as_secs_f64(),
        stats.syncs,
        stats.syncs as f64 * 1e6 / sent as f64,
        stats.sync_mean_us
    );
    runtime.shutdown()?;
    Ok(())
}

/// D3: accept `pending` messages with no consumer, close, and time the
/// reopening that brings them all back.
fn d3(dir: &Path, pending: usize) -> Res<()> {
    let reopen_only = std::env::var("LIMINAL_BENCH_ONLY").as_deref() == Ok("D3-reopen");
    let mut options = StoreOptions::new(dir.join("d3"));
    options.sync = SyncPolicy::Interval(Duration::from_millis(100));
    if !reopen_only {
        let _ = std::fs::remove_dir_all(&options.path);
        let runtime = Runtime::new(RuntimeOptions::default())?;
        let group = runtime.durable_group(
            RoutingFunction::builtin(Builtin::LeastLoaded),
            GroupOptions {
                waiting_room: pending + 1,
                ..GroupOptions::default()
            },
            options.clone(),
            ignore(),
        )?;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let group = group.clone();
                std::thread::spawn(move || {
                    for _ in 0..pending / 4 {
                        group
                            .dispatch_async(payload(), Box::new(|_| {}))
                            .expect("accepted");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().map_err(|_| "a dispatching thread panicked")?;
        }
        runtime.shutdown()?;
    }
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let started = Instant::now();
    let group = runtime.durable_group(
        RoutingFunction::builtin(Builtin::LeastLoaded),
        GroupOptions {
            waiting_room: pending + 1,
            ..GroupOptions::default()
        },
        options,
        ignore(),
    )?;
    let took = started.elapsed();
    let stats = group.store_stats().unwrap_or_default();
    println!(
        "D3 recovery: {} pending back in {:.2} s ({} MB on disk, {:.2} s per GB)",
        stats.recovered,
        took.as_secs_f64(),
        stats.disk_bytes >> 20,
        took.as_secs_f64() / (stats.disk_bytes as f64 / 1e9)
    );
    runtime.shutdown()?;
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(
        || std::env::temp_dir().join(format!("liminal-durable-bench-{}", std::process::id())),
        PathBuf::from,
    );
    let messages: usize = args.next().map_or(Ok(200_000), |m| m.parse())?;
    std::fs::create_dir_all(&dir)?;
    if let Ok(only) = std::env::var("LIMINAL_BENCH_ONLY") {
        // D3 alone (D3-reopen: reopen the store an earlier D3 left).
        d3(&dir, 1_000_000)?;
        if only == "D3" {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }
    fsync_floor(&dir, 2000)?;
    d1(&dir, 2000)?;
    for threads in [8, 64] {
        d2(
            &dir,
            messages,
            threads,
            SyncPolicy::EveryCommit,
            "fsync every commit",
        )?;
    }
    d2_batches(&dir, messages, 256, 1024)?;
    d2(
        &dir,
        messages,
        64,
        SyncPolicy::Interval(Duration::from_millis(100)),
        "fsync every 100 ms",
    )?;
    d3(&dir, 1_000_000)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
