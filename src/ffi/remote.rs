//! Remote consumers from C: a group opened to workers over Zenoh (host
//! side), and the worker side. Present in every build; a library built
//! without the `remote` feature refuses to open either with
//! `LIMINAL_UNSUPPORTED` (`liminal_has_remote()` tells which).

// Without the feature most parameters go unread: the calls only refuse.
#![cfg_attr(not(feature = "remote"), allow(unused_variables, unused_imports))]

use std::ffi::c_char;

use crate::ffi::boundary::{
    self, borrow_mut, free_handle, guard, new_handle, out_ptr, utf8, with, Failure, Handle,
};
use crate::ffi::callbacks::{
    liminal_crash_callback, liminal_delivery_callback, liminal_host_lost_callback, UserData,
};
use crate::ffi::consumer::liminal_consumer_options;
use crate::ffi::delivery::liminal_delivery;
use crate::ffi::error::liminal_status;
use crate::ffi::group::liminal_group;

#[cfg(feature = "remote")]
use crate::remote::{RemoteHost, RemoteOptions, TlsFiles, Worker};

#[cfg(not(feature = "remote"))]
type RemoteOptions = ();
#[cfg(not(feature = "remote"))]
type RemoteHost = ();
#[cfg(not(feature = "remote"))]
type Worker = ();

#[cfg(not(feature = "remote"))]
fn unsupported() -> Failure {
    Failure::new(
        liminal_status::LIMINAL_UNSUPPORTED,
        "this library was built without remote consumers (cargo feature `remote`)",
    )
}

/// Whether this library was built with remote consumers (the `remote`
/// feature). Without them `liminal_remote_options_new` still makes options
/// (so one program builds against either library), every option setter,
/// `liminal_group_open_remote` and `liminal_worker_new` return
/// `LIMINAL_UNSUPPORTED`, and no remote or worker handle can exist (the
/// calls that take one return `LIMINAL_NULL_ARGUMENT` for the NULL a refused
/// open leaves).
#[no_mangle]
pub extern "C" fn liminal_has_remote() -> bool {
    cfg!(feature = "remote")
}

/// How a host or a worker reaches the other side. Not thread-safe for
/// modification; reusable.
pub struct liminal_remote_options {
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    options: RemoteOptions,
}

impl Handle for liminal_remote_options {
    const NAME: &'static str = "options";
}

/// Create remote options holding the defaults: no endpoint, no TLS, no
/// credentials, a 1000 ms lease, insecure endpoints refused. `*out` owns
/// them; free with `liminal_remote_options_free`.
#[no_mangle]
pub extern "C" fn liminal_remote_options_new(
    out: *mut *mut liminal_remote_options,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = new_handle(liminal_remote_options {
            options: RemoteOptions::default(),
        });
        Ok(())
    })
}

/// Free remote options (NULL is accepted).
#[no_mangle]
pub extern "C" fn liminal_remote_options_free(options: *mut liminal_remote_options) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(options) };
}

#[cfg_attr(not(feature = "remote"), allow(unused_variables))]
fn set_remote_option(
    options: *mut liminal_remote_options,
    set: impl FnOnce(&mut RemoteOptions) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle, not modified concurrently (documented).
        let options = unsafe { borrow_mut(options) }?;
        #[cfg(feature = "remote")]
        return set(&mut options.options);
        #[cfg(not(feature = "remote"))]
        return Err(unsupported());
    })
}

/// An endpoint argument: UTF-8 `protocol/address`.
///
/// # Safety
/// `endpoint` is NULL or NUL-terminated.
unsafe fn endpoint_arg(endpoint: *const c_char) -> Result<String, Failure> {
    // SAFETY: as this function's own contract.
    let endpoint = unsafe { utf8(endpoint, "endpoint") }?;
    if !endpoint.contains('/') {
        return Err(boundary::invalid(
            "endpoint: protocol/address, e.g. tcp/127.0.0.1:7447",
        ));
    }
    Ok(endpoint.to_owned())
}

/// Add an endpoint to listen on (UTF-8, e.g. `tcp/127.0.0.1:7447`,
/// `tls/0.0.0.0:7447`, `unixsock-stream//tmp/liminal.sock`). Anything but
/// loopback or a unix socket needs TLS, or `allow_insecure`.
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_remote_options_add_listen(
    options: *mut liminal_remote_options,
    endpoint: *const c_char,
) -> liminal_status {
    set_remote_option(options, |o| {
        // SAFETY: NUL-terminated per the contract.
        let endpoint = unsafe { endpoint_arg(endpoint) }?;
        #[cfg(feature = "remote")]
        o.listen.push(endpoint);
        Ok(())
    })
}

/// Add an endpoint to connect to (as `liminal_remote_options_add_listen`).
#[no_mangle]
pub extern "C" fn liminal_remote_options_add_connect(
    options: *mut liminal_remote_options,
    endpoint: *const c_char,
) -> liminal_status {
    set_remote_option(options, |o| {
        // SAFETY: NUL-terminated per the contract.
        let endpoint = unsafe { endpoint_arg(endpoint) }?;
        #[cfg(feature = "remote")]
        o.connect.push(endpoint);
        Ok(())
    })
}

/// Mutual TLS (for `tls/` endpoints): PEM files of the certificate authority
/// both sides trust, and of this side's certificate and private key. A
/// peer without a certificate signed by that CA never connects.
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_remote_options_set_tls(
    options: *mut liminal_remote_options,
    ca_certificate_file: *const c_char,
    certificate_file: *const c_char,
    private_key_file: *const c_char,
) -> liminal_status {
    set_remote_option(options, |o| {
        // SAFETY: NUL-terminated per the contract.
        let ca = unsafe { utf8(ca_certificate_file, "ca_certificate_file") }?;
        // SAFETY: as above.
        let cert = unsafe { utf8(certificate_file, "certificate_file") }?;
        // SAFETY: as above.
        let key = unsafe { utf8(private_key_file, "private_key_file") }?;
        for (name, path) in [
            ("ca_certificate_file", ca),
            ("certificate_file", cert),
            ("private_key_file", key),
        ] {
            if !std::path::Path::new(path).is_file() {
                return Err(boundary::invalid(format!(
                    "{name}: {path} is not a readable file"
                )));
            }
        }
        #[cfg(feature = "remote")]
        {
            o.tls = Some(TlsFiles {
                ca_certificate: ca.to_owned(),
                certificate: cert.to_owned(),
                private_key: key.to_owned(),
            });
        }
        Ok(())
    })
}

/// The user and password this side presents (UTF-8, non-empty).
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_remote_options_set_credentials(
    options: *mut liminal_remote_options,
    user: *const c_char,
    password: *const c_char,
) -> liminal_status {
    set_remote_option(options, |o| {
        // SAFETY: NUL-terminated per the contract.
        let user = unsafe { utf8(user, "user") }?;
        // SAFETY: as above.
        let password = unsafe { utf8(password, "password") }?;
        if user.is_empty() || password.is_empty() {
            return Err(boundary::invalid(
                "credentials: user and password must not be empty",
            ));
        }
        #[cfg(feature = "remote")]
        {
            o.credentials = Some((user.to_owned(), password.to_owned()));
        }
        Ok(())
    })
}

/// A file of accepted `user:password` lines: a peer that cannot present
/// one of them never connects.
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_remote_options_set_users_file(
    options: *mut liminal_remote_options,
    path: *const c_char,
) -> liminal_status {
    set_remote_option(options, |o| {
        // SAFETY: NUL-terminated per the contract.
        let path = unsafe { utf8(path, "path") }?;
        if !std::path::Path::new(path).is_file() {
            return Err(boundary::invalid(format!(
                "users file: {path} is not a readable file"
            )));
        }
        #[cfg(feature = "remote")]
        {
            o.users_file = Some(path.to_owned());
        }
        Ok(())
    })
}

/// The session lease in milliseconds (default 1000, at least 50). On a
/// host: the longest lease a worker may advertise (a worker silent for 7/8
/// of its lease is declared gone: `LIMINAL_CRASH_SESSION_EXPIRED`). On a worker:
/// its lease (it sends a beat four times per lease).
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_remote_options_set_lease_ms(
    options: *mut liminal_remote_options,
    lease_ms: u64,
) -> liminal_status {
    set_remote_option(options, |o| {
        if lease_ms < 50 {
            return Err(boundary::invalid("lease_ms: at least 50"));
        }
        #[cfg(feature = "remote")]
        {
            o.lease = std::time::Duration::from_millis(lease_ms);
        }
        Ok(())
    })
}

/// Allow endpoints that are neither loopback, nor a unix socket, nor TLS
/// (default false: in the clear, anyone on the network can read deliveries
/// and pose as a worker).
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_remote_options_set_allow_insecure(
    options: *mut liminal_remote_options,
    allow: bool,
) -> liminal_status {
    set_remote_option(options, |o| {
        #[cfg(feature = "remote")]
        {
            o.allow_insecure = allow;
        }
        let _ = allow;
        Ok(())
    })
}

/// A group opened to remote workers (host side). Thread-safe.
pub struct liminal_remote {
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    host: RemoteHost,
}

impl Handle for liminal_remote {
    const NAME: &'static str = "remote";
}

/// Open `group` to workers over Zenoh, under the group name `name` (UTF-8,
/// a key-expression chunk: no `/ * $ ? #`, no leading `@`), with `options`
/// (borrowed; endpoints required). A worker that announces itself is asked
/// what it is and joins the group as a consumer; when its process dies (its
/// connection closes) or it falls silent for its lease, its deliveries are
/// re-routed and `on_crash` (owned by the library from this call on) is told
/// (`LIMINAL_CRASH_CONNECTION_LOST`, `LIMINAL_CRASH_SESSION_EXPIRED`, or the
/// worker's own crash verdict `LIMINAL_CRASH_VERDICT`; also
/// `LIMINAL_CRASH_LEASE_EXPIRED`, and `LIMINAL_CRASH_DECLARED` /
/// `LIMINAL_CRASH_INJECTED` when the host declares one crashed). The crash
/// callback runs inside the callback scope on the thread that noticed: the
/// library's remote-events thread (connection lost, session expired, a
/// crash answer), the timer thread (an expired ack lease), the thread that
/// called `liminal_consumer_crash`, or a scheduler thread
/// (`liminal_consumer_crash_at_next_delivery`). Never two at once: a report
/// raised while another is being delivered (on another thread, or by the
/// callback itself) is delivered right after it, by the thread delivering
/// the first. It may make non-blocking calls (`liminal_consumer_crash` of
/// another worker included), not free this handle. Its `free_user` runs
/// when the handle is freed or the runtime is. Starts two threads (events,
/// sender) plus Zenoh's own pools (see the README). `*out` owns the handle;
/// free it to close (workers are told). Errors: `LIMINAL_NULL_ARGUMENT`,
/// `LIMINAL_INVALID_ARGUMENT`, `LIMINAL_SPAWN_FAILED` (the session or a
/// thread), `LIMINAL_SHUT_DOWN`, `LIMINAL_WOULD_DEADLOCK` from a callback
/// (it blocks while the session opens), `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_group_open_remote(
    group: *const liminal_group,
    name: *const c_char,
    options: *const liminal_remote_options,
    on_crash: liminal_crash_callback,
    out: *mut *mut liminal_remote,
) -> liminal_status {
    let crash_user = UserData::new(on_crash.user, on_crash.free_user);
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(group, move |g| {
        // SAFETY: NUL-terminated per the contract.
        let name = unsafe { utf8(name, "name") }?;
        // SAFETY: NULL or a live handle.
        let options = unsafe { boundary::borrow(options) }?;
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        #[cfg(feature = "remote")]
        {
            let on_crash = on_crash.function.map(|function| {
                Box::new(move |report: &crate::CrashReport| {
                    let id = boundary::c_string(&report.consumer_id);
                    let reason = boundary::c_string(&report.reason);
                    // SAFETY: the host's callback, with strings valid for the call.
                    unsafe {
                        function(
                            crash_user.ptr(),
                            id.as_ptr(),
                            report.kind.into(),
                            reason.as_ptr(),
                            report.alive,
                        )
                    };
                }) as crate::CrashHandler
            });
            let host = RemoteHost::open(&g.group, name, &options.options, on_crash)?;
            *out = new_handle(liminal_remote { host });
            Ok(())
        }
        #[cfg(not(feature = "remote"))]
        {
            drop(crash_user);
            Err(unsupported())
        }
    })
}

/// Remote consumers joined now. Errors: `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_remote_workers(
    remote: *const liminal_remote,
    out: *mut usize,
) -> liminal_status {
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(remote, |r| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        #[cfg(feature = "remote")]
        {
            *out = r.host.workers();
        }
        Ok(())
    })
}

/// Copy this opening's *incarnation* into `buffer`, snprintf-style
/// (`*len_out`, optional, receives its length): 32 hex digits, random,
/// never reused. It names the host's liveliness token and every message the
/// host sends; a worker's answer that names another incarnation is stale.
/// Errors: `LIMINAL_BUFFER_TOO_SMALL`, `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_remote_incarnation(
    remote: *const liminal_remote,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(remote, |r| {
        #[cfg(feature = "remote")]
        let result = {
            // SAFETY: buffer/len_out per the contract.
            unsafe { boundary::copy_out(r.host.incarnation(), buffer, capacity, len_out) }
        };
        #[cfg(not(feature = "remote"))]
        let result = Err(unsupported());
        result
    })
}

/// Answers received that were never applied, so far: for a delivery
/// already re-routed, expired or answered, from a worker incarnation
/// declared dead, or naming another host incarnation (or none: a worker
/// still answering a host that was restarted). Errors:
/// `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_remote_stale_answers(
    remote: *const liminal_remote,
    out: *mut u64,
) -> liminal_status {
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(remote, |r| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        #[cfg(feature = "remote")]
        {
            *out = r.host.stale_answers();
        }
        Ok(())
    })
}

/// Close and free (NULL is accepted): workers are told (`bye`), remote
/// consumers leave (what they held is re-routed), the session closes and
/// the threads are joined. Also happens at `liminal_runtime_free`. Blocks
/// (the threads are joined): not from a callback.
#[no_mangle]
pub extern "C" fn liminal_remote_free(remote: *mut liminal_remote) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(remote) };
}

/// A worker: a consumer in this process, of a group on a host reached over
/// Zenoh. Thread-safe.
pub struct liminal_worker {
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    worker: Worker,
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    id: std::sync::Arc<std::ffi::CString>,
}

impl Handle for liminal_worker {
    const NAME: &'static str = "worker";
}

/// Connect a worker to the host serving group `group_name`, as consumer
/// `consumer_id` (both UTF-8 key-expression chunks), with `consumer_options`
/// (borrowed; NULL: max in flight 64, no tags; its ack lease is the host's
/// business) and `remote_options` (borrowed; endpoints required). It
/// announces a fresh *incarnation*; wait for the host with
/// `liminal_worker_wait_joined`. If the host declares it dead (it fell
/// silent, or answered crash), it announces a new incarnation by itself;
/// so it does when the host it served is lost or restarted (it watches the
/// host's liveliness token; see `liminal_worker_set_host_lost`), and after
/// a temporary refusal (its id still held by an incarnation not yet
/// declared dead), once the host's `retry_after_ms` passed. Its session
/// connects to the endpoints of `remote_options` and listens on none
/// unless listen endpoints are given.
///
/// `on_delivery` (owned from this call on): push mode, or NULL for pull
/// mode (`liminal_worker_next_delivery`). Here the delivery callback runs
/// on the worker's own delivery thread, one delivery at a time, inside the
/// callback scope like every callback (library calls that would block —
/// `liminal_worker_wait_joined`, `_next_delivery` with a timeout, a
/// blocking dispatch, `liminal_worker_new`, `liminal_group_open_remote` —
/// return `LIMINAL_WOULD_DEADLOCK`); it may block itself: later deliveries
/// wait behind it, and so do the host's other messages to this worker
/// (joined, bye, a refusal), which the same thread handles. It must not free
/// its own worker. Its verdict answers the delivery; `LIMINAL_VERDICT_DEFER` keeps
/// it to answer later through a kept copy (`liminal_delivery_keep`,
/// `_ack`, `_crash`, `_release`, `_extend_lease`), from any thread. Before
/// each call the worker tells the host it started the delivery (so a
/// process that dies while the callback runs counts against the message,
/// as a local consumer whose callback was running does), and after a
/// `LIMINAL_VERDICT_DEFER` that it only holds it. `_extend_lease` returns
/// `LIMINAL_INVALID_ARGUMENT` when the host's group has no acknowledgement
/// lease. On a
/// worker an answer returns `LIMINAL_OK` once queued for the sender thread,
/// `LIMINAL_STALE_DELIVERY` when the worker already knows the delivery was
/// taken back (the host declared this incarnation dead, or closed), and
/// `LIMINAL_SHUT_DOWN` once the worker was freed; the host ignores any
/// answer it no longer expects, so an `LIMINAL_OK` here does not mean the
/// host counted it. Returns once the session is open
/// (about half a second when the host is not reachable yet: the worker
/// keeps trying to connect). Starts three threads (deliveries,
/// beats, sender) plus Zenoh's own pools (see the README), and a
/// short-lived one that waits out each temporary refusal.
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_SPAWN_FAILED`, `LIMINAL_WOULD_DEADLOCK` from a callback (it
/// blocks while the session opens), `LIMINAL_UNSUPPORTED`.
#[no_mangle]
pub extern "C" fn liminal_worker_new(
    group_name: *const c_char,
    consumer_id: *const c_char,
    on_delivery: liminal_delivery_callback,
    consumer_options: *const liminal_consumer_options,
    remote_options: *const liminal_remote_options,
    out: *mut *mut liminal_worker,
) -> liminal_status {
    let delivery_user = UserData::new(on_delivery.user, on_delivery.free_user);
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    guard(move || {
        // SAFETY: NUL-terminated per the contract.
        let group = unsafe { utf8(group_name, "group_name") }?;
        // SAFETY: as above.
        let id = unsafe { utf8(consumer_id, "consumer_id") }?;
        // SAFETY: NULL or a live handle.
        let remote = unsafe { boundary::borrow(remote_options) }?;
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        #[cfg(feature = "remote")]
        {
            let c_id = std::sync::Arc::new(boundary::c_string(id));
            // SAFETY: NULL or a live handle.
            let defaults = crate::ffi::consumer::liminal_consumer_options::default();
            let options = unsafe { consumer_options.as_ref() }.unwrap_or(&defaults);
            let (max_in_flight, tags) = (options.max_in_flight(), options.tags().to_vec());
            let handler = on_delivery.function.map(|function| {
                Box::new(crate::ffi::consumer::CDelivery::new(
                    function,
                    delivery_user,
                    std::sync::Arc::clone(&c_id),
                )) as Box<dyn crate::DeliveryHandler>
            });
            let worker = Worker::connect(
                crate::remote::WorkerSpec {
                    group: group.to_owned(),
                    id: id.to_owned(),
                    max_in_flight,
                    tags,
                    handler,
                },
                &remote.options,
            )?;
            *out = new_handle(liminal_worker { worker, id: c_id });
            Ok(())
        }
        #[cfg(not(feature = "remote"))]
        {
            drop(delivery_user);
            Err(unsupported())
        }
    })
}

/// Wait up to `timeout_ms` until the host accepted this worker. The host
/// sends its acceptance just before it makes the worker a consumer of the
/// group (so that it arrives ahead of any delivery): a dispatch the host
/// makes right after this returns may not see the worker yet; the host
/// counts it in `liminal_remote_workers` once it is a consumer. Errors:
/// `LIMINAL_TIMED_OUT` (also while a temporary refusal is being waited
/// out: the worker retries by itself); `LIMINAL_UNKNOWN_CONSUMER` (refused
/// permanently: the last error says why); `LIMINAL_SHUT_DOWN` (the host
/// closed the group, or the worker is closing); `LIMINAL_WOULD_DEADLOCK`
/// from a callback; `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_worker_wait_joined(
    worker: *const liminal_worker,
    timeout_ms: u64,
) -> liminal_status {
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(worker, |w| {
        if crate::in_callback() {
            return Err(Failure::new(
                liminal_status::LIMINAL_WOULD_DEADLOCK,
                "waiting for the host inside a callback",
            ));
        }
        #[cfg(feature = "remote")]
        w.worker
            .wait_joined(std::time::Duration::from_millis(timeout_ms))?;
        Ok(())
    })
}

/// Pull mode: wait up to `timeout_ms` for the next delivery. `*out` owns it:
/// answer it (`liminal_delivery_ack` …), then `liminal_delivery_free`.
/// Errors: `LIMINAL_TIMED_OUT`, `LIMINAL_SHUT_DOWN` (the worker closed),
/// `LIMINAL_INVALID_ARGUMENT` (push mode), `LIMINAL_WOULD_DEADLOCK` from a
/// callback with a timeout above 0, `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_worker_next_delivery(
    worker: *const liminal_worker,
    timeout_ms: u64,
    out: *mut *mut liminal_delivery,
) -> liminal_status {
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(worker, |w| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        if crate::in_callback() && timeout_ms > 0 {
            return Err(Failure::new(
                liminal_status::LIMINAL_WOULD_DEADLOCK,
                "waiting for a delivery inside a callback",
            ));
        }
        #[cfg(feature = "remote")]
        {
            let delivery = w
                .worker
                .next_delivery(std::time::Duration::from_millis(timeout_ms))?;
            *out = new_handle(liminal_delivery::new(
                delivery,
                std::sync::Arc::clone(&w.id),
            ));
        }
        Ok(())
    })
}

/// Copy the current incarnation's id into `buffer`, snprintf-style
/// (`*len_out`, optional, receives its length). Errors:
/// `LIMINAL_BUFFER_TOO_SMALL`, `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_worker_incarnation(
    worker: *const liminal_worker,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(worker, |w| {
        #[cfg(feature = "remote")]
        let result = {
            let incarnation = w.worker.incarnation();
            // SAFETY: buffer/len_out per the contract.
            unsafe { boundary::copy_out(&incarnation, buffer, capacity, len_out) }
        };
        #[cfg(not(feature = "remote"))]
        let result = Err(unsupported());
        result
    })
}

/// Copy the incarnation of the host that joined the worker's current
/// incarnation into `buffer`, snprintf-style (`*len_out`, optional,
/// receives its length); the empty string while it is not joined. Errors:
/// `LIMINAL_BUFFER_TOO_SMALL`, `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_worker_host_incarnation(
    worker: *const liminal_worker,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(worker, |w| {
        #[cfg(feature = "remote")]
        let result = {
            let host = w.worker.host_incarnation().unwrap_or_default();
            // SAFETY: buffer/len_out per the contract.
            unsafe { boundary::copy_out(&host, buffer, capacity, len_out) }
        };
        #[cfg(not(feature = "remote"))]
        let result = Err(unsupported());
        result
    })
}

/// Be told when the host this worker served is lost (see
/// `liminal_host_lost_fn`): `on_host_lost` is owned by the library from
/// this call on, even when it fails; a NULL `function` clears it. The
/// previous callback's `free_user` runs before this returns (or, if that
/// callback is running, right after it returns). Set it right after
/// `liminal_worker_new`: a host lost before then is not told. Errors:
/// `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_worker_set_host_lost(
    worker: *const liminal_worker,
    on_host_lost: liminal_host_lost_callback,
) -> liminal_status {
    let user = UserData::new(on_host_lost.user, on_host_lost.free_user);
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    with(worker, move |w| {
        #[cfg(feature = "remote")]
        {
            let id = std::sync::Arc::clone(&w.id);
            let handler = on_host_lost.function.map(|function| {
                Box::new(move |reason: &str| {
                    let reason = boundary::c_string(reason);
                    // SAFETY: the host's callback, with strings valid for the call.
                    unsafe { function(user.ptr(), id.as_ptr(), reason.as_ptr()) };
                }) as crate::remote::HostLostHandler
            });
            w.worker.set_host_lost_handler(handler);
        }
        #[cfg(not(feature = "remote"))]
        drop(user);
        Ok(())
    })
}

/// Leave and free (NULL is accepted): the host re-routes what this worker
/// still holds (not as a crash) and answers with a bye, which this waits
/// for (up to the worker's lease when the host does not answer; not at all
/// when no host is reachable); then the session closes and the threads are
/// joined, which waits for a delivery callback still running. Blocks: not
/// from a callback.
#[no_mangle]
pub extern "C" fn liminal_worker_free(worker: *mut liminal_worker) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(worker) };
}
