//! One host thread that fires deadlines: routing supervision timeouts and
//! hand-off windows. It sleeps on a condition variable until the earliest
//! deadline or a new entry, so nothing is polled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

type Action = Box<dyn FnOnce() + Send>;

struct Entry {
    deadline: Instant,
    seq: u64,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    stopped: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The deadline thread. Actions run on it, one at a time, and must be short.
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

    /// Run `action` at `deadline`. Returns false (and drops the action) once stopped.
    pub(crate) fn at(&self, deadline: Instant, action: impl FnOnce() + Send + 'static) -> bool {
        let mut state = self.shared.state.lock();
        if state.stopped {
            return false;
        }
        state.seq += 1;
        let seq = state.seq;
        let earliest = state
            .heap
            .peek()
            .is_none_or(|Reverse(head)| deadline < head.deadline);
        state.heap.push(Reverse(Entry {
            deadline,
            seq,
            action: Box::new(action),
        }));
        drop(state);
        if earliest {
            self.shared.wake.notify_one();
        }
        true
    }

    /// Stop the thread; pending actions are dropped without running.
    pub(crate) fn stop(&self) {
        let pending = {
            let mut state = self.shared.state.lock();
            state.stopped = true;
            std::mem::take(&mut state.heap)
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
        match state.heap.peek() {
            None => shared.wake.wait(&mut state),
            Some(Reverse(head)) if head.deadline > now => {
                let deadline = head.deadline;
                let _timed_out = shared.wake.wait_until(&mut state, deadline);
            }
            Some(_) => {
                if let Some(Reverse(entry)) = state.heap.pop() {
                    drop(state);
                    let _scope = crate::runtime::CallbackScope::enter();
                    let _outcome =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(entry.action));
                    state = shared.state.lock();
                }
            }
        }
    }
}
