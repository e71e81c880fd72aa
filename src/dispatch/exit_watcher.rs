//! Where a consumer's death turns into re-routes.
//!
//! One trapping process per runtime. Every consumer process is spawned
//! *linked to it*, so the link exists before the consumer can be selected,
//! and its exit arrives here as an `{'EXIT', Pid, Reason}` message the moment
//! it happens. The watcher then takes the consumer out of its group, tells
//! the crash handler, and re-routes every delivery the consumer held.

use std::sync::Arc;
use std::time::Instant;

use beamr::process::ExitReason;
use beamr::{NativeContext, NativeOutcome};

use crate::dispatch::conversation;
use crate::metrics::Metrics;
use crate::runtime::beam::{self, Slice};
use crate::runtime::Core;

/// EXITs handled per slice.
const EXITS_PER_SLICE: usize = 256;

pub(crate) struct ExitWatcher {
    pub(crate) core: Arc<Core>,
}

impl Slice for ExitWatcher {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        for _ in 0..EXITS_PER_SLICE {
            let Some(term) = ctx.recv() else {
                return NativeOutcome::Wait;
            };
            let observed = Instant::now();
            if let Some((pid, reason)) = beam::decode_exit(term) {
                consumer_exited(&self.core, pid, reason, observed);
            }
        }
        NativeOutcome::Continue
    }

    fn on_panic(&mut self, _message: String) {}
}

/// Also called at registration when a consumer turns out dead at birth.
pub(crate) fn consumer_exited(core: &Arc<Core>, pid: u64, reason: ExitReason, observed: Instant) {
    let Some(consumer) = core.take_consumer(pid) else {
        return;
    };
    let held = consumer.mark_dead();
    if let Some(group) = consumer.group.upgrade() {
        group.remove_member(pid);
    }
    let crashed = reason != ExitReason::Normal || consumer.crash_reason().is_some();
    if crashed {
        Metrics::bump(&core.metrics.consumer_crashes);
    }
    // Re-route first: the host's crash callback must not delay the messages.
    for attempt in held {
        conversation::reroute(attempt, &consumer, crashed, observed);
    }
    if crashed {
        consumer.report_crash(&consumer.exit_reason_text(reason));
    } else {
        consumer.drop_crash_handler();
    }
}
