//! Keeps the scheduler's worker awake while there is traffic.
//!
//! An idle beamr worker parks on a condition variable, and waking it costs an
//! OS thread wake-up per message (tens of microseconds on a small VM, plus
//! beamr's occasional lost wake-up that only its 5 ms idle timeout repairs).
//! The BEAM answers this by letting schedulers spin briefly before sleeping;
//! this process does the same for a beamr scheduler: after any activity it
//! keeps yielding (`Continue`) for a short linger, so the worker keeps
//! polling its run queue and a woken consumer is picked up at once. Once the
//! linger passes with no activity it parks, costing nothing while idle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beamr::{NativeContext, NativeOutcome};

use crate::base::beam::Slice;

pub(crate) struct LingerState {
    epoch: Instant,
    linger_ns: u64,
    active_until_ns: AtomicU64,
    parked: AtomicBool,
    pid: AtomicU64,
}

impl LingerState {
    pub(crate) fn new(linger: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            linger_ns: u64::try_from(linger.as_nanos()).unwrap_or(u64::MAX),
            active_until_ns: AtomicU64::new(0),
            parked: AtomicBool::new(true),
            pid: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.linger_ns > 0
    }

    pub(crate) fn set_pid(&self, pid: u64) {
        self.pid.store(pid, Ordering::Release);
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Note activity; returns the spinner's pid when it must be woken.
    pub(crate) fn touch(&self) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        let until = self.now_ns().saturating_add(self.linger_ns);
        self.active_until_ns.fetch_max(until, Ordering::AcqRel);
        if self.parked.load(Ordering::Acquire) && self.parked.swap(false, Ordering::AcqRel) {
            return Some(self.pid.load(Ordering::Acquire));
        }
        None
    }
}

pub(crate) struct Linger {
    pub(crate) state: Arc<LingerState>,
}

impl Slice for Linger {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        while ctx.recv().is_some() {}
        let state = &self.state;
        if state.now_ns() < state.active_until_ns.load(Ordering::Acquire) {
            return NativeOutcome::Continue;
        }
        state.parked.store(true, Ordering::Release);
        // A touch between the check and the flag would have found it unset
        // and not woken us: look once more.
        if state.now_ns() < state.active_until_ns.load(Ordering::Acquire)
            && state.parked.swap(false, Ordering::AcqRel)
        {
            return NativeOutcome::Continue;
        }
        NativeOutcome::Wait
    }

    fn on_panic(&mut self, _message: String) {}
}
