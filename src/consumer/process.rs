//! The consumer's beamr process: drains its queue and runs the host's
//! delivery handler. Its exit *is* the consumer's crash.

use std::sync::Arc;
use std::time::Instant;

use beamr::process::ExitReason;
use beamr::{NativeContext, NativeOutcome};

use crate::consumer::delivery::{DeliveryHandler, Verdict};
use crate::consumer::inner::ConsumerInner;
use crate::dispatch::exit_watcher;
use crate::runtime::beam::Slice;

/// Deliveries handled per slice before yielding the worker to others.
const DELIVERIES_PER_SLICE: usize = 64;

pub(crate) struct ConsumerProcess {
    pub(crate) inner: Arc<ConsumerInner>,
    /// `None` in pull mode.
    pub(crate) handler: Option<Box<dyn DeliveryHandler>>,
}

impl Slice for ConsumerProcess {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        while ctx.recv().is_some() {}
        self.inner.clear_wake();
        // Pull mode: forwards go straight to the host's ready queue; the
        // process only carries the link.
        let Some(handler) = self.handler.as_mut() else {
            return NativeOutcome::Wait;
        };
        for _ in 0..DELIVERIES_PER_SLICE {
            // Once shutdown began, every dispatch has completed as shut down:
            // no callback starts for what is still queued.
            if self.inner.core.is_shut_down() {
                return NativeOutcome::Wait;
            }
            let Some(delivery) = self.inner.next_inbox() else {
                return NativeOutcome::Wait;
            };
            if self
                .inner
                .crash_at_next_delivery
                .swap(false, std::sync::atomic::Ordering::AcqRel)
            {
                return self.crash("fault injected at delivery");
            }
            let verdict = handler.deliver(&delivery);
            match verdict {
                Verdict::Ack => {
                    // A stale ack (already re-routed elsewhere) is fenced off.
                    let _fenced = self.inner.ack(delivery.delivery_id);
                }
                Verdict::Defer => {}
                Verdict::Crash(reason) => return self.crash(&reason),
            }
        }
        NativeOutcome::Continue
    }

    fn on_panic(&mut self, message: String) {
        let _stop = self.crash(&format!("delivery handler panicked: {message}"));
    }
}

impl ConsumerProcess {
    /// The consumer dies here: it hands back what it holds for re-routing
    /// before its process exits, so the re-route does not wait for beamr's
    /// exit processing. The EXIT its link then delivers to the watcher finds
    /// nothing left to do; an exit this process did not choose (a kill)
    /// still goes through the watcher.
    fn crash(&self, reason: &str) -> NativeOutcome {
        self.inner.note_crash_reason(reason);
        exit_watcher::consumer_exited(
            &self.inner.core,
            self.inner.pid(),
            ExitReason::Error,
            Instant::now(),
        );
        NativeOutcome::Stop(ExitReason::Error)
    }
}
