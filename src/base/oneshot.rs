//! A one-value channel for blocking calls: the waiter spins briefly before
//! parking, because most dispatches complete within microseconds and an OS
//! park/unpark pair costs more than that; it yields while it spins, so on a
//! machine whose cores are all busy it does not hold the core that would
//! produce the value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

struct Slot<T> {
    ready: AtomicBool,
    value: Mutex<Option<T>>,
    signal: Condvar,
}

/// Sends the value, once.
pub(crate) struct Sender<T>(Arc<Slot<T>>);
/// Waits for the value.
pub(crate) struct Receiver<T>(Arc<Slot<T>>);

/// Why no value came.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecvError {
    /// The sender was dropped without sending.
    Dropped,
    /// The deadline passed first.
    TimedOut,
}

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        ready: AtomicBool::new(false),
        value: Mutex::new(None),
        signal: Condvar::new(),
    });
    (Sender(Arc::clone(&slot)), Receiver(slot))
}

impl<T> Sender<T> {
    pub(crate) fn send(self, value: T) {
        let mut slot = self.0.value.lock();
        *slot = Some(value);
        self.0.ready.store(true, Ordering::Release);
        drop(slot);
        self.0.signal.notify_one();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // A sender dropped without sending still releases the waiter.
        if !self.0.ready.swap(true, Ordering::AcqRel) {
            let _guard = self.0.value.lock();
            self.0.signal.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The value; spins up to `spin` (yielding) before parking, and gives up
    /// at `deadline`.
    pub(crate) fn recv(&self, spin: Duration, deadline: Option<Instant>) -> Result<T, RecvError> {
        if !spin.is_zero() {
            // Stops early when the thread was descheduled (see `crowding`).
            let mut rounds = super::crowding::Rounds::new(spin);
            let mut round = 0u32;
            while !self.0.ready.load(Ordering::Acquire) && rounds.next() {
                round += 1;
                if round % 16 == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        let mut slot = self.0.value.lock();
        while !self.0.ready.load(Ordering::Acquire) {
            match deadline {
                Some(deadline) => {
                    if self.0.signal.wait_until(&mut slot, deadline).timed_out()
                        && !self.0.ready.load(Ordering::Acquire)
                    {
                        return Err(RecvError::TimedOut);
                    }
                }
                None => self.0.signal.wait(&mut slot),
            }
        }
        slot.take().ok_or(RecvError::Dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_drop_and_timeout() {
        let (tx, rx) = channel();
        std::thread::spawn(move || tx.send(7));
        assert_eq!(rx.recv(Duration::from_micros(50), None), Ok(7));
        let (tx, rx) = channel::<u8>();
        drop(tx);
        assert_eq!(rx.recv(Duration::ZERO, None), Err(RecvError::Dropped));
        let (_tx, rx) = channel::<u8>();
        let soon = Instant::now() + Duration::from_millis(5);
        assert_eq!(
            rx.recv(Duration::ZERO, Some(soon)),
            Err(RecvError::TimedOut)
        );
    }
}
