//! `liminal_runtime` and its options: create, drain, shut down, free;
//! metrics, statistics; the version.

use std::ffi::c_char;
use std::time::Duration;

use crate::base::scope::in_callback;
use crate::ffi::boundary::{
    self, borrow_mut, copy_out, free_handle, guard, new_handle, out_ptr, with, Failure, Handle,
};
use crate::ffi::callbacks::{liminal_stats_callback, UserData};
use crate::ffi::error::liminal_status;
use crate::{Runtime, RuntimeOptions};

/// A runtime: one beamr scheduler and everything in it. Thread-safe.
pub struct liminal_runtime {
    pub(crate) runtime: Runtime,
}

impl Handle for liminal_runtime {
    const NAME: &'static str = "runtime";
}

/// Options for `liminal_runtime_new`. Not thread-safe: do not modify one
/// from two threads at once. Reusable: a runtime copies what it needs.
pub struct liminal_runtime_options {
    options: RuntimeOptions,
}

impl Handle for liminal_runtime_options {
    const NAME: &'static str = "options";
}

/// Create runtime options holding the defaults: 1 scheduler thread, a
/// 5000 ms routing timeout, a 20 µs spin, a 50 ms linger. `*out` owns them; free
/// with `liminal_runtime_options_free`.
#[no_mangle]
pub extern "C" fn liminal_runtime_options_new(
    out: *mut *mut liminal_runtime_options,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable, per the contract.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = new_handle(liminal_runtime_options {
            options: RuntimeOptions::default(),
        });
        Ok(())
    })
}

/// Free runtime options (NULL is accepted).
#[no_mangle]
pub extern "C" fn liminal_runtime_options_free(options: *mut liminal_runtime_options) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(options) };
}

fn set_runtime_option(
    options: *mut liminal_runtime_options,
    set: impl FnOnce(&mut RuntimeOptions) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle, not modified concurrently (documented).
        let options = unsafe { borrow_mut(options) }?;
        set(&mut options.options)
    })
}

/// Scheduler worker threads, 1 to 64 (default 1: on two cores one worker
/// beat two on latency). Errors: `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_runtime_options_set_scheduler_threads(
    options: *mut liminal_runtime_options,
    threads: u32,
) -> liminal_status {
    set_runtime_option(options, |o| {
        if !(1..=64).contains(&threads) {
            return Err(boundary::invalid(format!(
                "scheduler_threads: {threads} is not between 1 and 64"
            )));
        }
        o.scheduler_threads = threads as usize;
        Ok(())
    })
}

/// How long a routing callback may run, in milliseconds (default 5000,
/// at least 1). A call that runs longer fails its dispatch with
/// `LIMINAL_ROUTING_TIMED_OUT`: at the timeout if it is still running
/// (the call is abandoned on its thread), or when it returns if it returned
/// late: what a late call answered (a choice, none, a failure) is not used. Errors:
/// `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_runtime_options_set_routing_timeout_ms(
    options: *mut liminal_runtime_options,
    timeout_ms: u64,
) -> liminal_status {
    set_runtime_option(options, |o| {
        if timeout_ms == 0 {
            return Err(boundary::invalid("routing_timeout_ms: must be at least 1"));
        }
        o.routing_timeout = Duration::from_millis(timeout_ms);
        Ok(())
    })
}

/// How long, in microseconds, a thread waiting for the library spins
/// before it sleeps: a blocking dispatch waiting for its outcome, a worker
/// lingering for work (default 20; 0: sleep at once; at most 1,000,000).
/// The spin yields the core every few rounds, so it does not hold up the
/// thread it waits for; a spin that finds itself descheduled (a busy
/// machine) stops, and waits skip spinning for a while (10 ms, doubling up
/// to a second while it recurs). Errors: `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_runtime_options_set_spin_us(
    options: *mut liminal_runtime_options,
    spin_us: u64,
) -> liminal_status {
    set_runtime_option(options, |o| {
        if spin_us > 1_000_000 {
            return Err(boundary::invalid("spin_us: at most 1000000 (one second)"));
        }
        o.spin = Duration::from_micros(spin_us);
        Ok(())
    })
}

/// How long, in microseconds, a scheduler worker that ran out of work keeps
/// waiting for more (spinning, then asleep on a futex every wake-up
/// signals) before it parks (default 50,000; 0: park at once; at most
/// 10,000,000). Costs no CPU while asleep; saves an OS wake-up per message
/// that arrives meanwhile. Errors: `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_runtime_options_set_linger_us(
    options: *mut liminal_runtime_options,
    linger_us: u64,
) -> liminal_status {
    set_runtime_option(options, |o| {
        if linger_us > 10_000_000 {
            return Err(boundary::invalid(
                "linger_us: at most 10000000 (ten seconds)",
            ));
        }
        o.linger = Duration::from_micros(linger_us);
        Ok(())
    })
}

/// Create a runtime with `options` (borrowed; NULL means all defaults). On
/// success `*out` owns the runtime; free it with `liminal_runtime_free`.
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_SPAWN_FAILED`.
#[no_mangle]
pub extern "C" fn liminal_runtime_new(
    options: *const liminal_runtime_options,
    out: *mut *mut liminal_runtime,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable, per the contract.
        let out = unsafe { out_ptr(out, "out") }?;
        // SAFETY: NULL or a live handle.
        let options = unsafe { options.as_ref() }
            .map(|o| o.options.clone())
            .unwrap_or_default();
        let runtime = Runtime::new(options)?;
        *out = new_handle(liminal_runtime { runtime });
        Ok(())
    })
}

/// Stop accepting dispatches on every group (new ones get
/// `LIMINAL_DRAINING`), then wait up to `timeout_ms` until every accepted
/// dispatch completed (waiting messages still fail by their deadlines
/// meanwhile). `*left` (optional) receives how many had not completed.
/// Errors: `LIMINAL_SHUT_DOWN`; `LIMINAL_WOULD_DEADLOCK` from a callback.
#[no_mangle]
pub extern "C" fn liminal_runtime_drain(
    runtime: *const liminal_runtime,
    timeout_ms: u64,
    left: *mut usize,
) -> liminal_status {
    with(runtime, |r| {
        let count = r.runtime.drain(Duration::from_millis(timeout_ms))?;
        // SAFETY: NULL or writable.
        if let Some(left) = unsafe { left.as_mut() } {
            *left = count;
        }
        Ok(())
    })
}

/// Shut down without freeing: every accepted dispatch not yet completed
/// completes with `LIMINAL_SHUT_DOWN`, exactly once, on this thread —
/// except one whose delivery callback is running: the shutdown waits for
/// that callback, and its answer counts. Worker threads are joined.
/// Idempotent. Errors: `LIMINAL_WOULD_DEADLOCK` from a callback (nothing
/// happens then).
#[no_mangle]
pub extern "C" fn liminal_runtime_shutdown(runtime: *const liminal_runtime) -> liminal_status {
    with(runtime, |r| {
        r.runtime.shutdown()?;
        Ok(())
    })
}

/// Shut down (as `liminal_runtime_shutdown`) and free. NULL is accepted.
/// Groups, consumers, routing functions, deliveries and outcomes made from
/// it stay valid to free; every other call on them returns
/// `LIMINAL_SHUT_DOWN`. When it returns, every callback's `free_user` has
/// run — the callbacks of handles not freed yet (groups, consumers,
/// routing functions, kept deliveries) included — with two exceptions,
/// each finishing on its own thread: a routing function's whose call timed
/// out and still runs (its `free_user` runs when the call returns), and a
/// callback that another host thread's own call is running at that moment
/// (a completion or dead-letter callback run by that thread's
/// acknowledgement, release or declared crash: its `free_user` runs on
/// that thread when the callback returns). So a host may free its callback
/// state as soon as this returns and its own threads stopped calling the
/// library.
/// From inside a callback it returns `LIMINAL_WOULD_DEADLOCK` and frees
/// nothing.
#[no_mangle]
pub extern "C" fn liminal_runtime_free(runtime: *mut liminal_runtime) -> liminal_status {
    guard(|| {
        if runtime.is_null() {
            return Ok(());
        }
        if in_callback() {
            return Err(Failure::new(
                liminal_status::LIMINAL_WOULD_DEADLOCK,
                "liminal_runtime_free from inside a callback",
            ));
        }
        // SAFETY: non-NULL, made by `liminal_runtime_new`, given up by the caller.
        unsafe { free_handle(runtime) };
        Ok(())
    })
}

/// Counters and latency percentiles (nanoseconds) of a runtime.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct liminal_metrics {
    /// Dispatches accepted.
    pub dispatched: u64,
    /// Dispatches delivered (acknowledged).
    pub delivered: u64,
    /// Deliveries re-routed away from a consumer that failed holding them.
    pub rerouted: u64,
    /// Consumers that died of a crash (any kind).
    pub consumer_crashes: u64,
    /// Dispatches that ended without a delivery, shutdown excepted (the
    /// reasons below, routing failures included).
    pub dead_lettered: u64,
    /// … because the message used up its failed attempts.
    pub attempts_exhausted: u64,
    /// … because its deadline passed.
    pub expired: u64,
    /// … because a blocking dispatch's own timeout passed.
    pub timed_out: u64,
    /// … because it was dropped (oldest waiting) at overflow.
    pub dropped: u64,
    /// … because its group closed.
    pub group_closed: u64,
    /// … because routing failed (crashed, timed out, unknown id, spawn).
    pub routing_failures: u64,
    /// Dispatches completed with `LIMINAL_SHUT_DOWN`.
    pub shut_down: u64,
    /// New dispatches refused with `LIMINAL_QUEUE_FULL`.
    pub rejected: u64,
    /// Deliveries released by their consumer.
    pub released: u64,
    /// Deliveries whose acknowledgement lease expired.
    pub lease_expired: u64,
    /// Dispatches accepted and not completed now.
    pub in_flight: u64,
    /// Messages waiting for a consumer now, over all groups (as
    /// `liminal_group_waiting` counts them).
    pub waiting: u64,
    /// Delivered dispatches: acceptance to acknowledgement, median.
    pub dispatch_p50_ns: u64,
    /// … 99th percentile.
    pub dispatch_p99_ns: u64,
    /// … 99.9th percentile.
    pub dispatch_p999_ns: u64,
    /// … maximum.
    pub dispatch_max_ns: u64,
    /// Failure noticed to re-route initiated: number of samples.
    pub reroute_count: u64,
    /// … median.
    pub reroute_p50_ns: u64,
    /// … 99th percentile.
    pub reroute_p99_ns: u64,
    /// … maximum.
    pub reroute_max_ns: u64,
    /// Time in the waiting room per placement: median.
    pub waiting_p50_ns: u64,
    /// … 99th percentile.
    pub waiting_p99_ns: u64,
    /// … maximum.
    pub waiting_max_ns: u64,
}

/// Write a metrics snapshot to `*out`. Works after shutdown too (the last
/// figures).
#[no_mangle]
pub extern "C" fn liminal_runtime_metrics(
    runtime: *const liminal_runtime,
    out: *mut liminal_metrics,
) -> liminal_status {
    with(runtime, |r| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        let m = r.runtime.metrics();
        *out = liminal_metrics {
            dispatched: m.dispatched,
            delivered: m.delivered,
            rerouted: m.rerouted,
            consumer_crashes: m.consumer_crashes,
            dead_lettered: m.dead_lettered,
            attempts_exhausted: m.attempts_exhausted,
            expired: m.expired,
            timed_out: m.timed_out,
            dropped: m.dropped,
            group_closed: m.group_closed,
            routing_failures: m.routing_failures,
            shut_down: m.shut_down,
            rejected: m.rejected,
            released: m.released,
            lease_expired: m.lease_expired,
            in_flight: r.runtime.in_flight() as u64,
            waiting: r.runtime.waiting() as u64,
            dispatch_p50_ns: m.dispatch_latency.p50_ns,
            dispatch_p99_ns: m.dispatch_latency.p99_ns,
            dispatch_p999_ns: m.dispatch_latency.p999_ns,
            dispatch_max_ns: m.dispatch_latency.max_ns,
            reroute_count: m.reroute_latency.count,
            reroute_p50_ns: m.reroute_latency.p50_ns,
            reroute_p99_ns: m.reroute_latency.p99_ns,
            reroute_max_ns: m.reroute_latency.max_ns,
            waiting_p50_ns: m.waiting_time.p50_ns,
            waiting_p99_ns: m.waiting_time.p99_ns,
            waiting_max_ns: m.waiting_time.max_ns,
        };
        Ok(())
    })
}

/// Copy the runtime's statistics as one JSON object (runtime counters and
/// percentiles, then per group: waiting room and per-consumer figures;
/// names follow the OpenTelemetry messaging conventions where one exists)
/// into `buffer`, snprintf-style: `*len_out` (optional) receives the full
/// length; `LIMINAL_BUFFER_TOO_SMALL` when truncated (a NULL `buffer` with
/// `capacity` 0 asks only the length).
#[no_mangle]
pub extern "C" fn liminal_runtime_stats_json(
    runtime: *const liminal_runtime,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    with(runtime, |r| {
        let json = r.runtime.stats().to_json();
        // SAFETY: buffer/len_out per the contract.
        unsafe { copy_out(&json, buffer, capacity, len_out) }
    })
}

/// The same statistics in the Prometheus text exposition format, copied
/// like `liminal_runtime_stats_json`.
#[no_mangle]
pub extern "C" fn liminal_runtime_stats_prometheus(
    runtime: *const liminal_runtime,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    with(runtime, |r| {
        let text = r.runtime.stats().to_prometheus();
        // SAFETY: buffer/len_out per the contract.
        unsafe { copy_out(&text, buffer, capacity, len_out) }
    })
}

/// Deliver the statistics as JSON to `callback` every `interval_ms` (at
/// least 10), replacing any earlier stats callback (whose `free_user` runs
/// once its last call returned). A NULL `function` stops them, and then
/// `interval_ms` is ignored. The library
/// owns `callback` from this call on, even when it fails.
/// Errors: `LIMINAL_INVALID_ARGUMENT`, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_runtime_set_stats_callback(
    runtime: *const liminal_runtime,
    interval_ms: u64,
    callback: liminal_stats_callback,
) -> liminal_status {
    let user = UserData::new(callback.user, callback.free_user);
    with(runtime, move |r| {
        let Some(function) = callback.function else {
            r.runtime.set_stats_handler(Duration::ZERO, None)?;
            return Ok(());
        };
        if interval_ms < 10 {
            return Err(boundary::invalid("interval_ms: at least 10"));
        }
        r.runtime.set_stats_handler(
            Duration::from_millis(interval_ms),
            Some(Box::new(move |json: &str| {
                let text = boundary::c_string(json);
                // SAFETY: the host's callback, with a string valid for the call.
                unsafe { function(user.ptr(), text.as_ptr(), json.len()) };
            })),
        )?;
        Ok(())
    })
}

/// The library version, "MAJOR.MINOR.PATCH" (static). Compare with the
/// `LIMINAL_VERSION_*` macros of the header you compiled against.
#[no_mangle]
pub extern "C" fn liminal_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}
