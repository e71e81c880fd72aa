//! A one-value channel for the blocking dispatch: the waiter spins briefly
//! before parking, because most dispatches complete within microseconds and
//! an OS park/unpark pair costs more than that.

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
    /// The value, or `None` if the sender was dropped without sending.
    pub(crate) fn recv(self, spin: Duration) -> Option<T> {
        let deadline = Instant::now() + spin;
        while !self.0.ready.load(Ordering::Acquire) && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let mut slot = self.0.value.lock();
        while !self.0.ready.load(Ordering::Acquire) {
            self.0.signal.wait(&mut slot);
        }
        slot.take()
    }
}
