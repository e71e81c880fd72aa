//! One host thread that fires deadlines: message deadlines, ack leases,
//! release delays, routing watchdogs and auto-ack windows. It sleeps on a
//! condition variable until the earliest deadline or an earlier new entry,
//! so nothing is polled. Entries can be cancelled, so memory follows what is
//! pending, not what was ever armed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::base::scope::CallbackScope;

type Action = Box<dyn FnOnce() + Send>;

/// Identifies one armed entry, for [`Timer::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    seq: u64,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<TimerKey, Action>,
    seq: u64,
    stopped: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The deadline thread. Actions run on it, one at a time, inside the
/// callback scope, and must be short.
pub(crate) struct Timer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Timer {
    pub(crate) fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("liminal-timer".into())
            .spawn(move || run(&worker))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Run `action` at `deadline`. Returns `None` (and drops the action) once
    /// stopped.
    pub(crate) fn at(
        &self,
        deadline: Instant,
        action: impl FnOnce() + Send + 'static,
    ) -> Option<TimerKey> {
        let mut state = self.shared.state.lock();
        if state.stopped {
            return None;
        }
        state.seq += 1;
        let key = TimerKey {
            deadline,
            seq: state.seq,
        };
        let earliest = state
            .entries
            .first_key_value()
            .is_none_or(|(head, _)| key < *head);
        state.entries.insert(key, Box::new(action));
        drop(state);
        if earliest {
            self.shared.wake.notify_one();
        }
        Some(key)
    }

    /// Cancel an entry; true when it had not fired yet (its action is
    /// dropped on this thread, after the timer's lock is released).
    pub(crate) fn cancel(&self, key: TimerKey) -> bool {
        let action = self.shared.state.lock().entries.remove(&key);
        action.is_some()
    }

    /// Entries waiting to fire.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.shared.state.lock().entries.len()
    }

    /// Stop the thread; pending actions are dropped without running.
    pub(crate) fn stop(&self) {
        let pending = {
            let mut state = self.shared.state.lock();
            state.stopped = true;
            std::mem::take(&mut state.entries)
        };
        self.shared.wake.notify_one();
        drop(pending);
        if let Some(thread) = self.thread.lock().take() {
            if thread.thread().id() != std::thread::current().id() {
                let _joined = thread.join();
            }
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    let mut state = shared.state.lock();
    loop {
        if state.stopped {
            return;
        }
        let now = Instant::now();
        let due = match state.entries.first_key_value() {
            None => {
                shared.wake.wait(&mut state);
                continue;
            }
            Some((head, _)) if head.deadline > now => {
                let deadline = head.deadline;
                let _timed_out = shared.wake.wait_until(&mut state, deadline);
                continue;
            }
            Some(_) => state.entries.pop_first(),
        };
        if let Some((_, action)) = due {
            drop(state);
            let _scope = CallbackScope::enter();
            let _outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(action));
            drop(_scope);
            state = shared.state.lock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_order_and_cancels() {
        let timer = Timer::start().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let now = Instant::now();
        let late = tx.clone();
        let cancelled = tx.clone();
        timer.at(now + Duration::from_millis(20), move || {
            late.send(2).unwrap()
        });
        let key = timer
            .at(now + Duration::from_millis(10), move || {
                cancelled.send(9).unwrap()
            })
            .unwrap();
        timer.at(now + Duration::from_millis(5), move || tx.send(1).unwrap());
        assert!(timer.cancel(key));
        assert!(!timer.cancel(key));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
        assert_eq!(timer.pending(), 0);
        timer.stop();
        assert!(timer.at(now, || {}).is_none());
    }
}
