//! How a worker waits for work without parking in beamr.
//!
//! An idle beamr worker parks on a condition variable with a 5 ms timeout,
//! and its park can miss a wake-up that lands between its last look at the
//! woken list and the wait (`park_thread`, `scheduler/execution.rs:994`):
//! that message then waits for the timeout. Waking a parked worker also
//! costs an OS wake-up per message, and each beamr slice of a native
//! process copies the ~9 KB process struct several times.
//!
//! So a consumer process that has run out of work does not return to beamr
//! at once: it *lingers* inside its slice, watching an [`Activity`] epoch
//! that every wake-up the library sends bumps. It spins briefly (yielding
//! the core on every round, so a busy machine's other threads — the
//! dispatching host thread among them — are not held up), then sleeps on a
//! futex-backed condition variable that every such wake-up signals, so no
//! wake-up is lost. Work for itself arrives: it carries on in the same
//! slice. Another process woken (a count of raised wake flags says so, so
//! one woken before this slice began counts too): it returns, and the
//! worker runs that one. Nothing for the whole linger: it returns and beamr
//! parks the worker.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Wake-ups of one scheduler, and the threads lingering for them.
pub(crate) struct Activity {
    epoch: AtomicU64,
    /// Processes woken and not yet running (counted by their wake flags).
    pending: std::sync::atomic::AtomicI64,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    signal: Condvar,
    stopped: AtomicBool,
    spin: Duration,
    linger: Duration,
}

/// Why a linger ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woke {
    /// A wake-up was sent since the epoch the linger started from.
    Activity,
    /// The linger passed with none (or the runtime is stopping).
    Idle,
}

impl Activity {
    pub(crate) fn new(spin: Duration, linger: Duration) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            pending: std::sync::atomic::AtomicI64::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            signal: Condvar::new(),
            stopped: AtomicBool::new(false),
            spin,
            linger,
        }
    }

    /// How long a waiter spins before it sleeps: not at all while the
    /// machine is crowded (see [`super::crowding`]).
    pub(crate) fn spin(&self) -> Duration {
        if self.spin.is_zero() || super::crowding::crowded() {
            Duration::ZERO
        } else {
            self.spin
        }
    }

    /// The current epoch: read it before looking for work, then linger from it.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A process's wake flag was raised: it waits to run.
    pub(crate) fn pending_up(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    /// A process's wake flag was lowered: it runs.
    pub(crate) fn pending_down(&self) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether some process was woken and has not started since: a
    /// lingering process must give the worker back.
    pub(crate) fn others_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// A wake-up was sent: lingering threads look again.
    pub(crate) fn touch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.signal.notify_all();
        }
    }

    /// Stop: every linger ends now, and later ones return at once.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.touch();
    }

    fn moved(&self, since: u64) -> bool {
        self.epoch.load(Ordering::SeqCst) != since || self.stopped.load(Ordering::SeqCst)
    }

    /// Wait (spin, then sleep) until the epoch moves past `since`, at most
    /// the linger.
    pub(crate) fn linger(&self, since: u64) -> Woke {
        if self.linger.is_zero() || self.stopped.load(Ordering::SeqCst) {
            return Woke::Idle;
        }
        let start = Instant::now();
        let mut rounds = super::crowding::Rounds::new(self.spin().min(self.linger));
        let mut round = 0u32;
        while rounds.next() {
            if self.moved(since) {
                return self.woke();
            }
            round = round.wrapping_add(1);
            if round % 8 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let deadline = start + self.linger;
        let mut guard = self.lock.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !self.moved(since) {
            if self.signal.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        if self.moved(since) {
            self.woke()
        } else {
            Woke::Idle
        }
    }

    fn woke(&self) -> Woke {
        if self.stopped.load(Ordering::SeqCst) {
            Woke::Idle
        } else {
            Woke::Activity
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_touch_ends_a_linger_and_none_is_lost() {
        let activity = Arc::new(Activity::new(
            Duration::from_micros(10),
            Duration::from_secs(30),
        ));
        for _ in 0..200 {
            let since = activity.epoch();
            let toucher = {
                let activity = Arc::clone(&activity);
                std::thread::spawn(move || activity.touch())
            };
            assert_eq!(activity.linger(since), Woke::Activity);
            toucher.join().unwrap();
        }
        let quiet = Activity::new(Duration::ZERO, Duration::from_millis(5));
        assert_eq!(quiet.linger(quiet.epoch()), Woke::Idle);
        activity.stop();
        assert_eq!(activity.linger(activity.epoch()), Woke::Idle);
    }
}
