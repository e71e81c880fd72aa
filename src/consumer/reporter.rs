//! Crash reports to a host's handler: one at a time, in order, and never
//! into a handler that is already running on the same thread (a handler may
//! cause another report: it is queued, not a deadlock).

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::consumer::{CrashHandler, CrashReport};

/// Delivers crash reports to the host's handler one at a time, in order: a
/// report raised while another is being delivered is delivered right after
/// it, by the thread delivering the first. Closing drops the handler once
/// the last report is out.
pub(crate) struct Reporter {
    state: Mutex<ReporterState>,
}

struct ReporterState {
    handler: Option<CrashHandler>,
    queue: VecDeque<CrashReport>,
    busy: bool,
    closed: bool,
}

impl Reporter {
    pub(crate) fn new(handler: Option<CrashHandler>) -> Self {
        Self {
            state: Mutex::new(ReporterState {
                handler,
                queue: VecDeque::new(),
                busy: false,
                closed: false,
            }),
        }
    }

    pub(crate) fn report(&self, report: CrashReport, last: bool) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        state.queue.push_back(report);
        state.closed |= last;
        if state.busy {
            return;
        }
        state.busy = true;
        loop {
            let Some(next) = state.queue.pop_front() else {
                state.busy = false;
                let finished = state.closed.then(|| state.handler.take());
                drop(state);
                drop(finished);
                return;
            };
            let mut handler = state.handler.take();
            drop(state);
            if let Some(handler) = handler.as_mut() {
                let _ignored = crate::base::scope::call_host(|| handler(&next));
            }
            state = self.state.lock();
            state.handler = handler;
        }
    }

    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        if !state.busy {
            let handler = state.handler.take();
            drop(state);
            drop(handler);
        }
    }
}
