//! `liminal_runtime`: create, shut down, free; metrics; version.

use std::ffi::c_char;
use std::time::Duration;

use crate::ffi::boundary::{self, borrow, guard, into_handle, out_ptr, take_handle, Failure};
use crate::ffi::error::liminal_status;
use crate::{Runtime, RuntimeOptions};

/// A runtime: one beamr scheduler and everything in it. Thread-safe.
pub struct liminal_runtime {
    pub(crate) runtime: Runtime,
}

/// Counters and latency percentiles (nanoseconds) of a runtime.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct liminal_metrics {
    /// Dispatches accepted.
    pub dispatched: u64,
    /// Dispatches delivered (acknowledged).
    pub delivered: u64,
    /// Deliveries re-routed away from a consumer that crashed holding them.
    pub rerouted: u64,
    /// Consumer processes that exited abnormally.
    pub consumer_crashes: u64,
    /// Dispatches that ended without a delivery (dead letters; not shutdown).
    pub dead_lettered: u64,
    /// Routing evaluations that crashed, timed out or failed to start.
    pub routing_failures: u64,
    /// Dispatches completed with `LIMINAL_SHUT_DOWN`.
    pub shut_down: u64,
    /// Dispatches currently accepted and not completed.
    pub in_flight: u64,
    /// Delivered dispatches: acceptance to acknowledgement, median.
    pub dispatch_p50_ns: u64,
    /// … 99th percentile.
    pub dispatch_p99_ns: u64,
    /// … 99.9th percentile.
    pub dispatch_p999_ns: u64,
    /// … maximum.
    pub dispatch_max_ns: u64,
    /// Consumer EXIT observed to re-route initiated, number of samples.
    pub reroute_count: u64,
    /// … median.
    pub reroute_p50_ns: u64,
    /// … 99th percentile.
    pub reroute_p99_ns: u64,
    /// … maximum.
    pub reroute_max_ns: u64,
}

/// Create a runtime. `scheduler_threads` 0 means the default (1);
/// `routing_timeout_ms` 0 means the default (5000). On success `*out` owns
/// the runtime; free it with `liminal_runtime_free`.
///
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT` (more than 64
/// threads), `LIMINAL_SPAWN_FAILED`.
#[no_mangle]
pub extern "C" fn liminal_runtime_new(
    scheduler_threads: u32,
    routing_timeout_ms: u64,
    out: *mut *mut liminal_runtime,
) -> liminal_status {
    guard(|| {
        // SAFETY: `out` is NULL or writable per the header contract.
        let out = unsafe { out_ptr(out, "out") }?;
        let mut options = RuntimeOptions::default();
        if scheduler_threads != 0 {
            options.scheduler_threads = usize::try_from(scheduler_threads)
                .map_err(|_| boundary::invalid("scheduler_threads out of range"))?;
        }
        if routing_timeout_ms != 0 {
            options.routing_timeout = Duration::from_millis(routing_timeout_ms);
        }
        let runtime = Runtime::new(options)?;
        *out = into_handle(liminal_runtime { runtime });
        Ok(())
    })
}

/// Shut down without freeing: every accepted dispatch not yet completed
/// completes with `LIMINAL_SHUT_DOWN`, exactly once; worker threads are
/// joined. Waits for a delivery callback that is running to return.
/// Idempotent. Errors: `LIMINAL_NULL_ARGUMENT`; `LIMINAL_WOULD_DEADLOCK` when
/// called from a library callback (nothing happens then).
#[no_mangle]
pub extern "C" fn liminal_runtime_shutdown(runtime: *const liminal_runtime) -> liminal_status {
    guard(|| {
        // SAFETY: `runtime` is NULL or a live handle.
        let runtime = unsafe { borrow(runtime, "runtime") }?;
        runtime.runtime.shutdown()?;
        Ok(())
    })
}

/// Shut down (as `liminal_runtime_shutdown`) and free. NULL is accepted and
/// does nothing. Groups, consumers, routing functions and deliveries made
/// from it stay valid to free, and their calls return `LIMINAL_SHUT_DOWN`.
/// From inside a library callback it returns `LIMINAL_WOULD_DEADLOCK` and
/// frees nothing: free the runtime from a host thread.
#[no_mangle]
pub extern "C" fn liminal_runtime_free(runtime: *mut liminal_runtime) -> liminal_status {
    guard(|| {
        if runtime.is_null() {
            return Ok(());
        }
        if crate::in_library_thread() {
            return Err(Failure::new(
                liminal_status::LIMINAL_WOULD_DEADLOCK,
                "liminal_runtime_free from inside a callback",
            ));
        }
        // SAFETY: non-NULL, made by `liminal_runtime_new`, given up by the caller.
        drop(unsafe { take_handle(runtime) });
        Ok(())
    })
}

/// Write a metrics snapshot to `*out`.
#[no_mangle]
pub extern "C" fn liminal_runtime_metrics(
    runtime: *const liminal_runtime,
    out: *mut liminal_metrics,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live handle / writable struct, per the contract.
        let runtime = unsafe { borrow(runtime, "runtime") }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        let snapshot = runtime.runtime.metrics();
        *out = liminal_metrics {
            dispatched: snapshot.dispatched,
            delivered: snapshot.delivered,
            rerouted: snapshot.rerouted,
            consumer_crashes: snapshot.consumer_crashes,
            dead_lettered: snapshot.dead_lettered,
            routing_failures: snapshot.routing_failures,
            shut_down: snapshot.shut_down,
            in_flight: runtime.runtime.in_flight() as u64,
            dispatch_p50_ns: snapshot.dispatch_latency.p50_ns,
            dispatch_p99_ns: snapshot.dispatch_latency.p99_ns,
            dispatch_p999_ns: snapshot.dispatch_latency.p999_ns,
            dispatch_max_ns: snapshot.dispatch_latency.max_ns,
            reroute_count: snapshot.reroute_latency.count,
            reroute_p50_ns: snapshot.reroute_latency.p50_ns,
            reroute_p99_ns: snapshot.reroute_latency.p99_ns,
            reroute_max_ns: snapshot.reroute_latency.max_ns,
        };
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
