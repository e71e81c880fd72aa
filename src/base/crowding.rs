//! Whether spinning can pay right now.
//!
//! A thread that spins for work keeps a core; on a machine with a spare
//! core that is the cheapest wait there is (no OS wake-up). On a crowded
//! machine it is the most expensive: when the spinner shares its core with
//! a busy thread, a yield or a preemption hands that thread the core for a
//! whole time slice, and the spinner sees the work it waited for only then
//! — a 4 ms stall at this kernel's tick, measured beside one CPU-bound
//! thread. A thread asleep on a futex is run as soon as it is woken.
//!
//! So a spinning wait watches its own loop: a round that took far longer
//! than a round takes (the thread was off its core) means the machine is
//! crowded. The wait stops spinning at once, and every wait skips spinning
//! for a while: 10 ms at first, doubling on each new sign up to a second,
//! back to 10 ms after two quiet seconds. Process-wide: the machine is
//! shared by every runtime in the process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// A spin round longer than this: the thread was descheduled for a time
/// slice (a hypervisor's or an interrupt's shorter hiccups do not count).
pub(crate) const DESCHEDULED: Duration = Duration::from_millis(1);

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
const FORGET_AFTER: Duration = Duration::from_secs(2);

struct Crowding {
    started: Instant,
    /// No spinning until then (nanoseconds since `started`).
    pause_until: AtomicU64,
    /// The pause the next sign of crowding starts.
    pause: AtomicU64,
    /// The last sign of crowding (nanoseconds since `started`).
    last_sign: AtomicU64,
}

static CROWDING: LazyLock<Crowding> = LazyLock::new(|| Crowding {
    started: Instant::now(),
    pause_until: AtomicU64::new(0),
    pause: AtomicU64::new(nanos(FIRST_PAUSE)),
    last_sign: AtomicU64::new(0),
});

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn now() -> u64 {
    nanos(CROWDING.started.elapsed())
}

/// Whether waits should skip spinning now.
pub(crate) fn crowded() -> bool {
    now() < CROWDING.pause_until.load(Ordering::Relaxed)
}

/// A spinning wait was descheduled: pause spinning everywhere.
pub(crate) fn descheduled() {
    let c = &*CROWDING;
    let now = now();
    let quiet = now.saturating_sub(c.last_sign.swap(now, Ordering::Relaxed));
    let pause = if quiet > nanos(FORGET_AFTER) {
        nanos(FIRST_PAUSE)
    } else {
        c.pause.load(Ordering::Relaxed)
    };
    c.pause
        .store((pause * 2).min(nanos(LONGEST_PAUSE)), Ordering::Relaxed);
    c.pause_until.fetch_max(now + pause, Ordering::Relaxed);
}

/// One spinning wait's rounds: [`Rounds::next`] says whether to go on.
pub(crate) struct Rounds {
    until: Instant,
    last: Instant,
}

impl Rounds {
    /// Spin up to `spin` from now.
    pub(crate) fn new(spin: Duration) -> Self {
        let now = Instant::now();
        Self {
            until: now + spin,
            last: now,
        }
    }

    /// Whether to spin another round: not past the spin, and not after a
    /// round that shows the thread was descheduled (then spinning pauses).
    pub(crate) fn next(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.last) > DESCHEDULED {
            descheduled();
            return false;
        }
        self.last = now;
        now < self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descheduled_round_pauses_spinning() {
        let mut rounds = Rounds::new(Duration::from_secs(1));
        assert!(rounds.next());
        std::thread::sleep(DESCHEDULED * 4);
        assert!(!rounds.next(), "a long round ends the spin");
        assert!(crowded(), "and pauses spinning");
    }
}
