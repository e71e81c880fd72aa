//! Scheduler execution loop, wake/resume, and process lifecycle handling.

use std::sync::Arc;
use std::sync::atomic::Ordering;
#[cfg(feature = "telemetry")]
use std::time::Instant;

use crossbeam_queue::SegQueue;

use crate::error::ExecError;
use crate::ets::copy::OwnedTerm;
use crate::process::ExitReason;
use crate::scheduler::dirty::DirtyResult;
use crate::term::Term;

use super::{
    PriorityStealers, RunQueue, Scheduler, SharedState, SpawnRequest, lock_or_recover,
    spawning::materialize_spawn_request, steal, timer_integration,
};

impl Scheduler {
    /// Return a callback suitable for mailbox senders to wake `pid`.
    pub fn wake_notifier(&self, pid: u64) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || wake_process(&shared, pid)
    }

    /// Wake a process that is in the Waiting state after message arrival.
    pub fn wake_process(&self, pid: u64) {
        wake_process(&self.shared, pid);
    }

    /// Resume a hook-suspended process, returning true if the process was
    /// found in the wait set and re-enqueued.
    ///
    /// The resume is *sticky*: when it races the suspension's park sequence
    /// (or even the hook callback itself), it is recorded against the
    /// suspension's call id and consumed by the owning scheduler thread at
    /// the next opportunity, so an embedder resume is never lost. It is also
    /// identity-gated: it never resumes a dirty call or host await, whose
    /// only legal resume is their published completion.
    ///
    /// Call this only for a process the embedder actually hook-suspended
    /// (its slice hook returned `HookDecision::Suspend`). The stickiness
    /// has a footgun: a resume issued for a pid that is NOT hook-suspended
    /// arms the wildcard resume anyway, and the wildcard stays armed until
    /// the process's next hook suspension or its exit — that next hook
    /// suspension is consumed immediately (pre-resumed) instead of parking,
    /// so a premature or duplicate resume silently cancels one future hook
    /// suspend.
    pub fn resume_process(&self, pid: u64) -> bool {
        let resume_id = match self.shared.suspensions.get(&pid).map(|mirror| *mirror) {
            Some(mirror) if mirror.kind == crate::process::SuspensionKind::Hook => mirror.call_id,
            // A dirty call or host await must not be resumable from here.
            Some(_) => return false,
            // The resume raced the hook suspension's creation (the hook
            // callback runs before the record is installed): record a
            // wildcard consumed by the next hook suspension only.
            None => super::suspension::RESUME_ANY_HOOK,
        };
        self.shared.pending_resumes.insert(pid, resume_id);
        if self.shared.process_table.get(pid).is_none() {
            let _orphan = self.shared.pending_resumes.remove(&pid);
            return false;
        }
        timer_integration::resume_suspended(&self.shared, pid)
    }

    /// Shut down all worker threads after their current time slice.
    pub fn shutdown(&self) {
        {
            // Hold the slot lock through the bridge join: the bridge thread
            // is live until `shutdown()` returns, so releasing the lock after
            // a bare `take()` would let a concurrent `service_inventory()`
            // observe a false zero mid-join. Holding it makes the reader wait
            // for the joined state instead — the same discipline as the
            // pools' handle locks.
            let mut bridge_slot = lock_or_recover(&self.shared.io_bridge);
            if let Some(bridge) = bridge_slot.take() {
                bridge.shutdown();
            }
        }
        // The generic ring is stopped by its OWNER only (spec §3.5/§4): an
        // Owned ring joins its workers, a Shared injection is left for its
        // owner, a Disabled slot no-ops. `shutdown_owned` (not `.service()`)
        // is what makes the Shared case safe — `.service()` would stop a ring
        // this scheduler does not own.
        self.shared.io_ring.shutdown_owned();
        // §4 step 3 for the dirty pools, BEFORE the pools themselves stop:
        // close dirty intake (the DirtyCall arm refuses new submissions from
        // here on, ahead of any suspension side effect), then wake and JOIN
        // every live completion bridge. Bounded: a woken bridge exits without
        // waiting for its job, so a long or never-finishing job on an
        // embedder-owned SHARED pool cannot hold shutdown, retain this
        // scheduler's state past its own lifetime, or deliver a completion
        // into the dead scheduler.
        self.shared.drain_dirty_completions();
        #[cfg(feature = "readiness")]
        self.shared.deregister_shared_readiness();
        // Stop the dirty pools through their ServiceMode, OWNER-ONLY (spec §4):
        // an Owned pool joins its workers, a Shared injection is left for its
        // embedder-owner (commit 5 enables Shared dirty construction, so this
        // MUST NOT use `.service()` — that would stop a pool this scheduler does
        // not own), a Disabled slot is a no-op. `shutdown_owned` leaves the slot
        // readable so a post-shutdown inventory truthfully reports zero live
        // workers for the joined Owned pool.
        self.shared.dirty_cpu.shutdown_owned();
        self.shared.dirty_io.shutdown_owned();
        // File and standard rings, owner-only (spec §3.3/§3.4/§4). The standard
        // ring's stop is NEW this commit: it was previously joined only at the
        // last `Arc` drop, so a post-shutdown inventory reported a live worker;
        // joining it here makes that inventory truthful.
        self.shared.file_io_ring.shutdown_owned();
        self.shared.standard_io.shutdown_owned();
        // Distribution bundle, owner-only (spec §3.6/§4): an Owned bundle aborts
        // the drain and the connection read/accept/heartbeat lifecycle tasks, then
        // synchronously JOINS BOTH tokio runtime workers ("beamr-dist-send" and
        // "beamr-netkernel") before returning — replacing the former abort-only
        // stop that left the runtimes to a last-Arc Drop. A Disabled bundle
        // no-ops. Idempotent: a second shutdown finds both runtimes already taken.
        // `shutdown_owned` leaves the slot readable so the post-shutdown inventory
        // truthfully reports zero live runtime workers (commit-3 semantics).
        self.shared.distribution.shutdown_owned();
        #[cfg(feature = "readiness")]
        self.shared.readiness.shutdown_owned();
        self.shared.shutdown.store(true, Ordering::Release);
        #[cfg(test)]
        if let Some(hook) = self.shared.shutdown_dispatch_hook.get() {
            hook();
        }
        self.shared.wake_condvar.notify_all();
        let mut threads = lock_or_recover(&self.threads);
        for handle in threads.drain(..) {
            if let Err(payload) = handle.join() {
                std::panic::resume_unwind(payload);
            }
        }
        drop(threads);
        #[cfg(test)]
        if let Some(hook) = self.shared.terminal_admission_hook.get() {
            hook();
        }
        // Closed admission and joined workers leave no publisher or consumer
        // that can race the current request/body drain.
        for inject in &self.inject_queues {
            while let Some(request) = inject.pop() {
                let pid = request.pid;
                drop(request);
                #[cfg(test)]
                self.shared
                    .terminal_spawn_visits
                    .fetch_add(1, Ordering::Relaxed);
                let reason = self
                    .shared
                    .exit_tombstones
                    .get(&pid)
                    .unwrap_or(ExitReason::Killed);
                cleanup_exited_process(&self.shared, pid, reason);
            }
        }
        let remaining_pids: Vec<_> = self
            .shared
            .process_bodies
            .iter()
            .map(|entry| *entry.key())
            .collect();
        for pid in remaining_pids {
            #[cfg(test)]
            self.shared
                .terminal_body_visits
                .fetch_add(1, Ordering::Relaxed);
            let reason = self
                .shared
                .exit_tombstones
                .get(&pid)
                .unwrap_or(ExitReason::Killed);
            cleanup_exited_process(&self.shared, pid, reason);
        }
        self.shared.exit_completion_watches.settle_shutdown();
    }

    /// Block until the given process exits, returning its exit reason and
    /// the value in x(0) at the time of exit.
    ///
    /// The result is an owning deep copy made at the exit boundary: it stays
    /// valid after the process heap is freed, for as long as the caller holds
    /// it.
    pub fn run_until_exit(&self, pid: u64) -> (ExitReason, OwnedTerm) {
        loop {
            if let Some(reason) = self.shared.exit_tombstones.get(&pid) {
                let result = self
                    .shared
                    .exit_results
                    .remove(&pid)
                    .map(|(_, term)| term)
                    .unwrap_or_else(|| OwnedTerm::immediate(Term::NIL));
                return (reason, result);
            }
            let guard = lock_or_recover(&self.shared.wait_set);
            let timeout = std::time::Duration::from_millis(10);
            let _ = self.shared.wake_condvar.wait_timeout(guard, timeout);
        }
    }

    /// Non-blocking read of a dead process's exit reason.
    ///
    /// Returns `Some(reason)` when an exit tombstone exists for `pid`, and
    /// `None` when the process is still live, never existed, or otherwise has
    /// no tombstone. Unlike [`Scheduler::run_until_exit`], this never blocks
    /// and never waits for the process to exit.
    ///
    /// The read is non-consuming: the tombstone is left in place, so this can
    /// be called repeatedly and does not disturb `run_until_exit` or any other
    /// reader. Exit tombstones are written once at process teardown and are
    /// retained with a *bounded* guarantee: the most recent
    /// `TOMBSTONE_CAPACITY` exits are kept, evicting the oldest on overflow (FIFO). A peek after a
    /// process has exited therefore reliably observes the reason — including
    /// for a process terminated externally via
    /// [`Scheduler::terminate_process`] — *unless* more than
    /// `TOMBSTONE_CAPACITY` further processes have exited since, in which case
    /// the now-evicted tombstone reads back as `None`. The cap (64Ki) is sized
    /// so this is unreachable for any realistic supervisor poll latency.
    pub fn peek_exit_reason(&self, pid: u64) -> Option<ExitReason> {
        self.shared.exit_tombstones.get(&pid)
    }

    /// Non-blockingly consume a process's exit outcome exactly once.
    ///
    /// Returns `Some((reason, term))` after `pid` exits and `None` before exit
    /// or after the outcome was consumed. Outcomes are retained until consumed,
    /// independently of the bounded legacy tombstones used by
    /// [`Scheduler::peek_exit_reason`], so tombstone churn cannot turn a
    /// delivered exit event into a false not-yet-exited result.
    ///
    /// This additive outcome is independent of the legacy
    /// [`Scheduler::run_until_exit`] value and the diagnostic stores. Calling
    /// this method never consumes `run_until_exit`,
    /// [`Scheduler::take_exit_error`], or [`Scheduler::take_exit_exception`],
    /// and consuming any of those surfaces never consumes this outcome.
    pub fn take_exit_outcome(&self, pid: u64) -> Option<(ExitReason, OwnedTerm)> {
        self.shared.exit_tombstones.take_outcome(&pid)
    }

    /// Subscribe to this scheduler's bounded process-exit event stream.
    ///
    /// Exactly one subscription can be created for a scheduler's lifetime;
    /// later calls return `None`. Every process exit after successful
    /// subscription publishes [`super::ExitEvent::Exited`] only after
    /// [`Scheduler::take_exit_outcome`] can observe its retained outcome. The
    /// channel buffers at most [`super::EXIT_EVENT_CAPACITY`] events and never
    /// busy-polls. If that bound is exceeded, the receiver observes a typed
    /// [`super::ExitEvent::Lagged`] marker instead of a silent drop and can
    /// recover by taking outcomes for the process identifiers it tracks.
    ///
    /// Exit outcomes are retained until consumed even when their legacy
    /// tombstones or event notifications are evicted. Consumers should keep
    /// draining this single stream and take each outcome promptly so retained
    /// outcome memory remains proportional to their processing lag.
    pub fn subscribe_exit_events(&self) -> Option<super::ExitEventSubscription> {
        self.shared.exit_tombstones.subscribe()
    }

    /// Arm a notification-only, one-shot watch for a single process's exit.
    ///
    /// Contract (EXIT-001), stated the way the connection-event hub states
    /// its invariants:
    ///
    /// * **Notification-only.** A watch delivers `(pid, reason)` by value and
    ///   never consumes, inspects, or perturbs the retained outcome —
    ///   [`Scheduler::take_exit_outcome`] stays exactly-once for whoever owns
    ///   the draining subscription, no matter how many watches fire first.
    /// * **The exclusive subscription is unaffected.** The single
    ///   [`Scheduler::subscribe_exit_events`] slot, its event ordering, and
    ///   its `Lagged` overflow behaviour are identical with zero or thousands
    ///   of live watches.
    /// * **Registration answers are typed.** [`super::ExitWatchState::Live`]
    ///   arms a watch on a process that was present in the process table;
    ///   [`super::ExitWatchState::AlreadyExited`] reports a finalized pid
    ///   immediately, served from the durable outcome record (never the
    ///   bounded legacy tombstone), so it stays correct after both
    ///   legacy-tombstone eviction and outcome consumption;
    ///   [`super::ExitWatchState::NoRecord`] means no live process and no
    ///   durable record — the pid never ran under this scheduler — and arms
    ///   nothing, so no caller can block forever on an answer that cannot
    ///   arrive.
    /// * **Duplicate signals are absorbed by design.** Registration precedes
    ///   the already-dead check; when a concurrent exit fires while
    ///   registration is in flight, the retained-record answer and the fire
    ///   land in the same one-shot slot and the second is a no-op.
    /// * **A watch fires only after the exit is fully observable.** Fires are
    ///   appended after outcome installation and after the existing event
    ///   publication, so a watcher woken by a fire can immediately
    ///   [`Scheduler::take_exit_outcome`] (or [`Scheduler::peek_exit_reason`])
    ///   and find the state installed.
    /// * **Dropping a watch deregisters it.** Abandoned watches (a deadline
    ///   that expired, a command that errored early) do not accumulate.
    pub fn watch_exit(&self, pid: u64) -> super::ExitWatchState {
        match self.shared.exit_tombstones.watch(pid) {
            super::exit_events::StoreWatch::AlreadyExited(reason) => {
                super::ExitWatchState::AlreadyExited(reason)
            }
            super::exit_events::StoreWatch::Armed(watch) => {
                if self.shared.process_table.get(pid).is_some() {
                    return super::ExitWatchState::Live(watch);
                }
                // Not in the table: the pid either never ran or died between
                // the record check and this liveness check. Finalization
                // installs the durable record BEFORE removing the pid from
                // the process table, so re-checking the record closes that
                // window — a second miss proves the pid never ran here.
                match self.shared.exit_tombstones.finalized_reason(&pid) {
                    Some(reason) => super::ExitWatchState::AlreadyExited(reason),
                    None => super::ExitWatchState::NoRecord,
                }
            }
        }
    }

    /// Arm before checking the table, so removal cannot escape registration.
    /// An early exit record does not imply removal; outcome ownership is unchanged.
    pub fn watch_exit_completion(&self, pid: u64) -> super::ExitCompletionWatchState {
        let watch = self.shared.exit_completion_watches.register(pid);
        if self.shared.process_table.get(pid).is_some() {
            return super::ExitCompletionWatchState::Live(watch);
        }
        drop(watch);
        match self.shared.exit_tombstones.finalized_reason(&pid) {
            Some(reason) => super::ExitCompletionWatchState::AlreadyRemoved(pid, reason),
            None => super::ExitCompletionWatchState::NoRecord,
        }
    }

    /// Retrieve the execution error that caused a process to exit, if any.
    ///
    /// This diagnostic is consumed independently of [`Scheduler::take_exit_outcome`]:
    /// taking either value does not remove the other.
    pub fn take_exit_error(&self, pid: u64) -> Option<ExecError> {
        self.shared.exit_errors.remove(&pid).map(|(_, e)| e)
    }

    /// Retrieve the BEAM exception that caused a process to exit, if any.
    ///
    /// The exception terms are owning deep copies that remain valid after the
    /// process heap is freed.
    ///
    /// This diagnostic is consumed independently of [`Scheduler::take_exit_outcome`]:
    /// taking either value does not remove the other.
    pub fn take_exit_exception(&self, pid: u64) -> Option<super::OwnedException> {
        self.shared.exit_exceptions.remove(&pid).map(|(_, e)| e)
    }

    /// Wake a host-await-suspended process with a result term, resolving the
    /// target suspension's call id at publish time.
    ///
    /// Returns true when the result was published against the process's
    /// current host-await suspension. Returns false — dropping the result —
    /// when the process has no live host-await suspension (it never
    /// suspended, already completed, or the await timed out and its
    /// suspension was superseded). Embedders that re-submit work from a
    /// timeout re-entry should prefer [`Scheduler::wake_with_result_for`]
    /// with the call id returned by `ProcessContext::request_suspend`, which
    /// is race-free across re-entries.
    pub fn wake_with_result(&self, pid: u64, result: Term) -> bool {
        let Some(payload) = super::suspension::SuspensionResultPayload::host(result) else {
            return false;
        };
        let published = self.shared.publish_suspension_result_current(
            pid,
            crate::process::SuspensionKind::HostAwait,
            payload,
        );
        if published {
            wake_process(&self.shared, pid);
        }
        published
    }

    /// Wake a host-await-suspended process with a result term for the exact
    /// suspension identified by `call_id` (returned by
    /// `ProcessContext::request_suspend`).
    ///
    /// Returns true when published; false when the suspension is no longer
    /// current (stale completion — dropped, never applied at the wrong park
    /// position).
    pub fn wake_with_result_for(&self, pid: u64, call_id: u64, result: Term) -> bool {
        let Some(payload) = super::suspension::SuspensionResultPayload::host(result) else {
            return false;
        };
        let published = self.shared.publish_suspension_result(pid, call_id, payload);
        if published {
            wake_process(&self.shared, pid);
        }
        published
    }

    /// Wake a dirty-call-suspended process with a dirty native completion
    /// result, resolving the in-flight call's id at publish time.
    pub fn wake_with_dirty_result(&self, pid: u64, result: DirtyResult) -> bool {
        let published = self.shared.publish_suspension_result_current(
            pid,
            crate::process::SuspensionKind::DirtyCall,
            super::suspension::SuspensionResultPayload::Dirty(Box::new(result)),
        );
        if published {
            let _resumed = timer_integration::resume_suspended(&self.shared, pid);
        }
        published
    }

    /// Terminate a process externally, writing an exit tombstone so that
    /// `run_until_exit` returns with the given reason.
    pub fn terminate_process(&self, pid: u64, reason: ExitReason) {
        if self.shared.exit_tombstones.contains_key(&pid) {
            return;
        }
        cleanup_exited_process(&self.shared, pid, reason);
    }
}

pub(in crate::scheduler) fn scheduler_loop(
    shared: &Arc<SharedState>,
    queue: &RunQueue,
    my_index: usize,
    stealers: &[PriorityStealers],
    inject: &SegQueue<SpawnRequest>,
) {
    let mut last_victim = my_index;
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        drain_injected(shared, queue, inject);
        if my_index == 0 {
            if shared.replay_mode {
                timer_integration::tick_replay_timers(shared);
            } else {
                timer_integration::tick_timers(shared);
                drain_file_io_completions(shared);
            }
        }
        drain_woken(shared, queue, my_index);
        let pid = if shared.replay_mode {
            match next_replay_pid(shared, my_index) {
                Some(pid) => pid,
                None => {
                    park_thread(shared);
                    continue;
                }
            }
        } else {
            match queue.pop() {
                Some(pid) => pid,
                None => {
                    let (result, next_victim) =
                        steal::try_steal(queue, my_index, stealers, last_victim);
                    last_victim = next_victim;
                    match result {
                        steal::StealResult::Stolen { .. } => match queue.pop() {
                            Some(pid) => pid,
                            None => {
                                park_thread(shared);
                                continue;
                            }
                        },
                        steal::StealResult::Empty => {
                            park_thread(shared);
                            continue;
                        }
                    }
                }
            }
        };
        #[cfg(feature = "telemetry")]
        let executing_started = Instant::now();
        run_process(shared, queue, pid, my_index);
        #[cfg(feature = "telemetry")]
        shared.record_scheduler_executing(executing_started.elapsed());
    }
}

fn drain_injected(shared: &SharedState, queue: &RunQueue, inject: &SegQueue<SpawnRequest>) {
    while let Some(request) = inject.pop() {
        let pid = materialize_spawn_request(shared, request);
        if let Some(priority) = priority_for_pid(shared, pid) {
            queue.push_with_priority(pid, priority);
        }
    }
}

mod core;
mod native_slice;
use core::run_process;
pub(in crate::scheduler) use core::{cleanup_exited_process, finalize_exited_process};
use std::net::SocketAddr;

use super::process_slot::UdpActiveMessage;
use super::{ProcessSlot, ScheduledProcess};
use crate::atom::AtomTable;
use crate::io::IoResult;
use crate::io::resource::{FD_RESOURCE_WORDS, FdInner, FdMode, write_fd_resource};
use crate::process::Process;
use crate::term::boxed::write_tuple;
use crate::term::shared_binary::{alloc_binary, alloc_binary_word_count};
#[cfg(test)]
pub(in crate::scheduler) use core::{
    SliceOutcome, cleanup_if_tombstoned_after_store, execute_slice, store_runnable_process,
    take_runnable_process,
};
#[cfg(not(all(test, feature = "readiness")))]
pub(in crate::scheduler) fn wake_process(shared: &SharedState, pid: u64) {
    // A process parked under a result-gated suspension (dirty call, host
    // await, hook suspend) must stay parked: waking it schedules a slice
    // that would re-execute the parked call instruction and repeat its side
    // effect (double-submitting the dirty call or host request). The
    // delivery that prompted this wake is already queued; the suspension's
    // completion resumes the process and the merged mailbox is observed
    // then. Once a consumable event is published (matching result, file-I/O
    // completion, fired receive timer, matching resume) the wake is safe:
    // the slice-start gate consumes the event — and with nothing consumable
    // the gate re-parks without touching the process, so even a stray wake
    // is harmless.
    if shared.suspension_blocks_wake(pid) {
        return;
    }
    // The receive timer is deliberately NOT cancelled here. BEAM keeps the
    // receive-after timer armed across message wakeups: if the message does
    // not match, the process re-parks and the original deadline must still
    // fire. The timer is dropped when the receive completes (the
    // remove_message/timeout opcodes clear the ref, and the eventual stale
    // fire is discarded by the id check in `apply_expired_receive_timer`).
    let mut wait_set = lock_or_recover(&shared.wait_set);
    if let Some(scheduler_index) = wait_set.waiting.remove(&pid) {
        wait_set.woken.push((pid, scheduler_index));
        shared.wake_condvar.notify_all();
    }
}

#[cfg(all(test, feature = "readiness"))]
pub(in crate::scheduler) fn wake_process(shared: &SharedState, pid: u64) {
    // A process parked under a result-gated suspension (dirty call, host
    // await, hook suspend) must stay parked: waking it schedules a slice
    // that would re-execute the parked call instruction and repeat its side
    // effect (double-submitting the dirty call or host request). The
    // delivery that prompted this wake is already queued; the suspension's
    // completion resumes the process and the merged mailbox is observed
    // then. Once a consumable event is published (matching result, file-I/O
    // completion, fired receive timer, matching resume) the wake is safe:
    // the slice-start gate consumes the event — and with nothing consumable
    // the gate re-parks without touching the process, so even a stray wake
    // is harmless.
    #[cfg(all(test, feature = "readiness"))]
    crate::scheduler::teardown_admission_tests::record_live_operation(8);
    if shared.suspension_blocks_wake(pid) {
        return;
    }
    // The receive timer is deliberately NOT cancelled here. BEAM keeps the
    // receive-after timer armed across message wakeups: if the message does
    // not match, the process re-parks and the original deadline must still
    // fire. The timer is dropped when the receive completes (the
    // remove_message/timeout opcodes clear the ref, and the eventual stale
    // fire is discarded by the id check in `apply_expired_receive_timer`).
    #[cfg(all(test, feature = "readiness"))]
    crate::scheduler::teardown_admission_tests::record_live_operation(2);
    let mut wait_set = lock_or_recover(&shared.wait_set);
    #[cfg(all(test, feature = "readiness"))]
    crate::scheduler::teardown_admission_tests::record_live_operation(0);
    if let Some(scheduler_index) = wait_set.waiting.remove(&pid) {
        wait_set.woken.push((pid, scheduler_index));
        #[cfg(all(test, feature = "readiness"))]
        crate::scheduler::teardown_admission_tests::record_live_operation(9);
        shared.wake_condvar.notify_all();
    }
}

fn drain_file_io_completions(shared: &SharedState) {
    // A Disabled file ring has nothing to poll (spec §3.3): its facility is
    // absent, so no file op ever registered here.
    let Some(file_ring) = shared.file_io_ring.service() else {
        return;
    };
    for completion in file_ring
        .ring()
        .poll_completions(std::time::Duration::from_millis(0))
    {
        let op_id = completion.op_id;
        if let Some((_, (pid, continuation))) = shared.file_io_pending.remove(&op_id) {
            if let crate::native::FileIoContinuation::UdpActiveRecv { fd } = continuation {
                handle_udp_active_completion(shared, fd, completion);
            } else if let crate::native::FileIoContinuation::TcpActiveRecv { fd } = continuation {
                handle_tcp_active_completion(shared, fd, completion);
            } else {
                deliver_file_io_result(
                    shared,
                    pid,
                    crate::native::FileIoCompletion {
                        op_id,
                        continuation,
                        completion,
                    },
                );
            }
        } else if shared.file_io_canceled.remove(&op_id).is_none() {
            shared.file_io_orphans.insert(op_id, completion);
        }
    }
}

/// Insert a file-I/O completion for `pid` and wake the process if parked.
///
/// Exit cleanup (`cleanup_exited_process`) can purge the process table and
/// the pid's `file_io_results` entry between the `file_io_pending` removal
/// and the insert below; pids are never reused, so a freshly inserted
/// result would orphan permanently. The post-insert double-check — the same
/// pattern as `mark_fired_receive_timer` and `publish_suspension_result` —
/// closes that window: if the pid has vanished from the table, the
/// just-inserted entry is removed again.
pub(super) fn deliver_file_io_result(
    shared: &SharedState,
    pid: u64,
    result: crate::native::FileIoCompletion,
) {
    shared.file_io_results.insert(pid, result);
    if shared.process_table.get(pid).is_none() {
        let _orphan = shared.file_io_results.remove(&pid);
        return;
    }
    wake_process(shared, pid);
}

fn handle_udp_active_completion(
    shared: &SharedState,
    fd: std::sync::Arc<FdInner>,
    completion: crate::io::IoCompletion,
) {
    if fd.state() != crate::io::resource::FdState::Open {
        return;
    }
    let mode = fd.mode();
    if mode == FdMode::Passive {
        return;
    }
    match completion.result {
        Ok(IoResult::DatagramReceived { bytes, data, addr }) => {
            deliver_udp_active_datagram(shared, &fd, bytes, &data, addr);
            match mode {
                FdMode::Active => {
                    if let Some(op_id) = shared.submit_file_ring_op(crate::io::IoOp::RecvMsg {
                        fd: fd.fd(),
                        buf_len: 65_535,
                    }) {
                        shared.file_io_pending.insert(
                            op_id,
                            (
                                fd.controlling_process(),
                                crate::native::FileIoContinuation::UdpActiveRecv { fd },
                            ),
                        );
                    }
                }
                FdMode::ActiveOnce => fd.set_mode(FdMode::Passive),
                FdMode::Passive => {}
            }
        }
        Ok(_) | Err(_) => fd.set_mode(FdMode::Passive),
    }
}

fn deliver_udp_active_datagram(
    shared: &SharedState,
    fd: &std::sync::Arc<FdInner>,
    bytes: usize,
    data: &[u8],
    addr: SocketAddr,
) -> Option<Term> {
    let target = fd.controlling_process();
    let entry = shared.process_bodies.get(&target)?;
    let mut slot = super::lock_or_recover(&entry);
    match &mut *slot {
        ProcessSlot::Present(ScheduledProcess(process)) => {
            let message = build_udp_active_message_for_process(
                &shared.atom_table,
                process,
                fd,
                data.get(..bytes)?,
                addr,
            )?;
            process.mailbox_mut().push_owned(message);
        }
        ProcessSlot::Executing(metadata) => {
            metadata.pending_udp_messages.push(UdpActiveMessage {
                fd: std::sync::Arc::clone(fd),
                bytes: data.get(..bytes)?.to_vec(),
                addr,
            });
        }
        ProcessSlot::Absent => return None,
    }
    drop(slot);
    wake_process(shared, target);
    Some(Term::atom(crate::atom::Atom::OK))
}

fn handle_tcp_active_completion(
    shared: &SharedState,
    fd: std::sync::Arc<FdInner>,
    completion: crate::io::IoCompletion,
) {
    if fd.state() != crate::io::resource::FdState::Open {
        return;
    }
    let mode = fd.mode();
    if mode == FdMode::Passive {
        return;
    }
    match completion.result {
        Ok(IoResult::BytesRead(0, _)) => {
            // EOF / peer closed — deliver {tcp_closed, Socket} and stop.
            deliver_tcp_closed(shared, &fd);
        }
        Ok(IoResult::BytesRead(bytes_read, data)) => {
            let chunk = data.get(..bytes_read).unwrap_or(&data);
            deliver_tcp_active_data(shared, &fd, chunk);
            match mode {
                FdMode::Active => {
                    if let Some(op_id) = shared.submit_file_ring_op(crate::io::IoOp::Read {
                        fd: fd.fd(),
                        buf_len: 64 * 1024,
                        offset: u64::MAX,
                    }) {
                        shared.file_io_pending.insert(
                            op_id,
                            (
                                fd.controlling_process(),
                                crate::native::FileIoContinuation::TcpActiveRecv { fd },
                            ),
                        );
                    }
                }
                FdMode::ActiveOnce => fd.set_mode(FdMode::Passive),
                FdMode::Passive => {}
            }
        }
        Ok(_) | Err(_) => {
            deliver_tcp_closed(shared, &fd);
        }
    }
}

fn deliver_tcp_active_data(
    shared: &SharedState,
    fd: &std::sync::Arc<FdInner>,
    data: &[u8],
) -> Option<Term> {
    let target = fd.controlling_process();
    let entry = shared.process_bodies.get(&target)?;
    let mut slot = super::lock_or_recover(&entry);
    match &mut *slot {
        ProcessSlot::Present(ScheduledProcess(process)) => {
            let message =
                build_tcp_active_message_for_process(&shared.atom_table, process, fd, data)?;
            process.mailbox_mut().push_owned(message);
        }
        ProcessSlot::Executing(metadata) => {
            metadata
                .pending_tcp_messages
                .push(super::process_slot::TcpActiveMessage {
                    fd: std::sync::Arc::clone(fd),
                    bytes: data.to_vec(),
                });
        }
        ProcessSlot::Absent => return None,
    }
    drop(slot);
    wake_process(shared, target);
    Some(Term::atom(crate::atom::Atom::OK))
}

fn deliver_tcp_closed(shared: &SharedState, fd: &std::sync::Arc<FdInner>) -> Option<Term> {
    let target = fd.controlling_process();
    let entry = shared.process_bodies.get(&target)?;
    let mut slot = super::lock_or_recover(&entry);
    match &mut *slot {
        ProcessSlot::Present(ScheduledProcess(process)) => {
            let message = build_tcp_closed_message_for_process(&shared.atom_table, process, fd)?;
            process.mailbox_mut().push_owned(message);
        }
        ProcessSlot::Executing(metadata) => {
            // Queue an empty-data TCP message; the process will see {tcp_closed, Socket}
            // when the scheduler drains it. We use an empty bytes vec as the signal.
            metadata
                .pending_tcp_messages
                .push(super::process_slot::TcpActiveMessage {
                    fd: std::sync::Arc::clone(fd),
                    bytes: Vec::new(),
                });
        }
        ProcessSlot::Absent => return None,
    }
    drop(slot);
    wake_process(shared, target);
    Some(Term::atom(crate::atom::Atom::OK))
}

pub(in crate::scheduler) fn build_tcp_active_message_for_process(
    atom_table: &AtomTable,
    process: &mut Process,
    fd: &std::sync::Arc<FdInner>,
    data: &[u8],
) -> Option<Term> {
    if data.is_empty() {
        return build_tcp_closed_message_for_process(atom_table, process, fd);
    }
    let binary_words = alloc_binary_word_count(data.len());
    // {tcp, Socket, Data} = 1 header + 3 elements = 4 words, plus fd resource + binary
    let needed_words = FD_RESOURCE_WORDS + binary_words + 1 + 3;
    if crate::gc::ensure_space(process, needed_words, 0).is_err() {
        return None;
    }
    let socket = {
        // The message owns a strong FdInner reference; mark the allocation so
        // the GC release walk drops it. See `process::heap::AllocKind`.
        let heap = process
            .heap_mut()
            .alloc_slice_maybe_refcounted(FD_RESOURCE_WORDS)
            .ok()?;
        write_fd_resource(heap, std::sync::Arc::clone(fd))?
    };
    let binary = {
        // A large payload lands as a refcounted ProcBin; mark the allocation
        // so the GC release walk drops its Arc.
        let heap = process
            .heap_mut()
            .alloc_slice_maybe_refcounted(binary_words)
            .ok()?;
        alloc_binary(heap, data)?
    };
    let tcp = Term::atom(atom_table.intern("tcp"));
    let message_terms = [tcp, socket, binary];
    let heap = process
        .heap_mut()
        .alloc_slice(1 + message_terms.len())
        .ok()?;
    write_tuple(heap, &message_terms)
}

fn build_tcp_closed_message_for_process(
    atom_table: &AtomTable,
    process: &mut Process,
    fd: &std::sync::Arc<FdInner>,
) -> Option<Term> {
    // {tcp_closed, Socket} = 1 header + 2 elements = 3 words, plus fd resource
    let needed_words = FD_RESOURCE_WORDS + 1 + 2;
    if crate::gc::ensure_space(process, needed_words, 0).is_err() {
        return None;
    }
    let socket = {
        // The message owns a strong FdInner reference; mark the allocation so
        // the GC release walk drops it. See `process::heap::AllocKind`.
        let heap = process
            .heap_mut()
            .alloc_slice_maybe_refcounted(FD_RESOURCE_WORDS)
            .ok()?;
        write_fd_resource(heap, std::sync::Arc::clone(fd))?
    };
    let tcp_closed = Term::atom(atom_table.intern("tcp_closed"));
    let message_terms = [tcp_closed, socket];
    let heap = process
        .heap_mut()
        .alloc_slice(1 + message_terms.len())
        .ok()?;
    write_tuple(heap, &message_terms)
}

pub(in crate::scheduler) fn build_udp_active_message_for_process(
    atom_table: &AtomTable,
    process: &mut Process,
    fd: &std::sync::Arc<FdInner>,
    datagram: &[u8],
    addr: SocketAddr,
) -> Option<Term> {
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    let binary_words = alloc_binary_word_count(datagram.len());
    let needed_words = FD_RESOURCE_WORDS + binary_words + 1 + 4 + 1 + 5;
    if crate::gc::ensure_space(process, needed_words, 0).is_err() {
        return None;
    }
    let socket = {
        // The message owns a strong FdInner reference; mark the allocation so
        // the GC release walk drops it. See `process::heap::AllocKind`.
        let heap = process
            .heap_mut()
            .alloc_slice_maybe_refcounted(FD_RESOURCE_WORDS)
            .ok()?;
        write_fd_resource(heap, std::sync::Arc::clone(fd))?
    };
    let ip = {
        let octets = v4.ip().octets();
        let terms = [
            Term::try_small_int(i64::from(octets[0]))?,
            Term::try_small_int(i64::from(octets[1]))?,
            Term::try_small_int(i64::from(octets[2]))?,
            Term::try_small_int(i64::from(octets[3]))?,
        ];
        let heap = process.heap_mut().alloc_slice(1 + terms.len()).ok()?;
        write_tuple(heap, &terms)?
    };
    let binary = {
        // A large datagram lands as a refcounted ProcBin; mark the allocation
        // so the GC release walk drops its Arc.
        let heap = process
            .heap_mut()
            .alloc_slice_maybe_refcounted(binary_words)
            .ok()?;
        alloc_binary(heap, datagram)?
    };
    let udp = Term::atom(atom_table.intern("udp"));
    let port = Term::try_small_int(i64::from(v4.port()))?;
    let message_terms = [udp, socket, ip, port, binary];
    let heap = process
        .heap_mut()
        .alloc_slice(1 + message_terms.len())
        .ok()?;
    write_tuple(heap, &message_terms)
}

fn next_replay_pid(shared: &SharedState, my_index: usize) -> Option<u64> {
    let replay_driver = shared.replay_driver.as_ref()?;
    let guard = match replay_driver.lock() {
        Ok(guard) => guard,
        Err(error) => error.into_inner(),
    };
    let event = guard.peek_schedule()?;
    if event.scheduler_index != my_index || shared.process_table.get(event.pid).is_none() {
        return None;
    }
    Some(event.pid)
}

fn drain_woken(shared: &SharedState, queue: &RunQueue, my_index: usize) {
    let woken = {
        let mut wait_set = lock_or_recover(&shared.wait_set);
        let mut mine = Vec::new();
        wait_set.woken.retain(|(pid, sched_idx)| {
            if *sched_idx == my_index {
                mine.push(*pid);
                false
            } else {
                true
            }
        });
        mine
    };
    for pid in woken {
        if shared.process_table.get(pid).is_some() {
            queue.push_with_priority(pid, priority_for_pid(shared, pid).unwrap_or_default());
        }
    }
}

pub(in crate::scheduler) fn priority_for_pid(
    shared: &SharedState,
    pid: u64,
) -> Option<crate::process::Priority> {
    let entry = shared.process_bodies.get(&pid)?;
    match &*lock_or_recover(&entry) {
        super::ProcessSlot::Present(scheduled) => Some(scheduled.0.priority()),
        super::ProcessSlot::Executing(metadata) => Some(metadata.priority),
        super::ProcessSlot::Absent => None,
    }
}

/// Idle-park timeout for a normal scheduler worker.
///
/// A worker with no runnable process parks on `wake_condvar` for at most this
/// long before looping again to re-check the two event sources still polled
/// rather than notified: timer-wheel expiry and IO-ring completions
/// (spec §3.8). It is the VM's own idle tick. Exposed as a named constant so
/// the signed §3.8 wake-rate bound reads its floor from source rather than a
/// duplicated literal; changing it re-signs the bound (Q-F ruling).
pub const IDLE_PARK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(5);

/// Per-worker idle wake rate implied by [`IDLE_PARK_TIMEOUT`], in wakes/sec.
///
/// The per-worker half of the signed §3.8 formula. The per-process bound is
/// this value times the worker count the inventory attributes to the process
/// — not a config-claimed count — so the signed number and its enforcement
/// cannot drift (Waffles the Terrible signing note; Vesper Lynd sharpening).
/// Consumed only by the signed idle-wake assertion, hence test-scoped.
#[cfg(any(test, feature = "test-support"))]
pub const IDLE_WAKES_PER_SEC_PER_WORKER: u64 = 1000u64 / IDLE_PARK_TIMEOUT.as_millis() as u64;

fn park_thread(shared: &SharedState) {
    #[cfg(any(test, feature = "test-support"))]
    shared.idle_parks.fetch_add(1, Ordering::Relaxed);
    if shared.shutdown.load(Ordering::Acquire) {
        return;
    }
    let guard = lock_or_recover(&shared.wait_set);
    let timeout = IDLE_PARK_TIMEOUT;
    // Record the SAME local the wait consumes (not the constant): the seam
    // observes the duration actually passed to `wait_timeout`. If the wait's
    // argument is ever decoupled from `timeout`, this binding goes unused in
    // production builds and `-D warnings` fails the gate.
    #[cfg(any(test, feature = "test-support"))]
    shared
        .observed_park_timeout_millis
        .store(timeout.as_millis() as u64, Ordering::Relaxed);
    #[cfg(feature = "telemetry")]
    let idle_started = Instant::now();
    match shared.wake_condvar.wait_timeout(guard, timeout) {
        Ok(_) => {}
        Err(error) => {
            let _recovered = error.into_inner();
        }
    }
    #[cfg(feature = "telemetry")]
    shared.record_scheduler_idle(idle_started.elapsed());
}

#[cfg(test)]
mod socket_message_gc_tests {
    use super::*;
    use crate::term::boxed::{ProcBin, Tuple};
    use std::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn tcp_active_message_arcs_are_released_by_receiver_minor_gc() {
        let atoms = AtomTable::with_common_atoms();
        let fd = Arc::new(FdInner::new(-1, 7));
        let mut process = Process::new(7, 64);
        let data = vec![0xEE; 4096];

        let message = build_tcp_active_message_for_process(&atoms, &mut process, &fd, &data)
            .expect("tcp active message builds");
        let tuple = Tuple::new(message).expect("tcp active message is a tuple");
        let payload = tuple.get(2).expect("payload element");
        let observer = ProcBin::new(payload)
            .expect("a large payload lands as a refc binary")
            .shared_binary();
        assert_eq!(Arc::strong_count(&fd), 2);
        assert_eq!(observer.ref_count(), 2);

        crate::gc::collect_minor(&mut process).expect("minor GC succeeds");

        assert_eq!(
            Arc::strong_count(&fd),
            1,
            "receiver GC must release the socket FdResource Arc"
        );
        assert_eq!(
            observer.ref_count(),
            1,
            "receiver GC must release the payload's shared-bytes Arc"
        );
    }

    #[test]
    fn tcp_closed_message_fd_arc_is_released_by_receiver_minor_gc() {
        let atoms = AtomTable::with_common_atoms();
        let fd = Arc::new(FdInner::new(-1, 7));
        let mut process = Process::new(7, 64);

        let _message = build_tcp_active_message_for_process(&atoms, &mut process, &fd, &[])
            .expect("empty data builds a tcp_closed message");
        assert_eq!(Arc::strong_count(&fd), 2);

        crate::gc::collect_minor(&mut process).expect("minor GC succeeds");

        assert_eq!(
            Arc::strong_count(&fd),
            1,
            "receiver GC must release the socket FdResource Arc"
        );
    }

    #[test]
    fn udp_active_message_arcs_are_released_by_receiver_minor_gc() {
        let atoms = AtomTable::with_common_atoms();
        let fd = Arc::new(FdInner::new(-1, 7));
        let mut process = Process::new(7, 64);
        let datagram = vec![0xDF; 4096];
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4000));

        let message =
            build_udp_active_message_for_process(&atoms, &mut process, &fd, &datagram, addr)
                .expect("udp active message builds");
        let tuple = Tuple::new(message).expect("udp active message is a tuple");
        let payload = tuple.get(4).expect("payload element");
        let observer = ProcBin::new(payload)
            .expect("a large datagram lands as a refc binary")
            .shared_binary();
        assert_eq!(Arc::strong_count(&fd), 2);
        assert_eq!(observer.ref_count(), 2);

        crate::gc::collect_minor(&mut process).expect("minor GC succeeds");

        assert_eq!(
            Arc::strong_count(&fd),
            1,
            "receiver GC must release the socket FdResource Arc"
        );
        assert_eq!(
            observer.ref_count(),
            1,
            "receiver GC must release the datagram's shared-bytes Arc"
        );
    }
}
