//! The consumer's beamr process: drains its queue and runs the host's
//! delivery handler. It lives as long as the consumer; its exit is the
//! consumer's death (the exit watcher hears of it through the link).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use beamr::{NativeContext, NativeOutcome};
use parking_lot::Mutex;

use crate::base::beam::{Guarded, Slice};
use crate::consumer::core::{ConsumerCore, Next};
use crate::consumer::delivery::DeliveryHandler;
use crate::error::{Error, Result};

/// Deliveries handled per slice before yielding the worker to others.
const DELIVERIES_PER_SLICE: usize = 64;

pub(crate) struct ConsumerProcess {
    pub(crate) core: Arc<ConsumerCore>,
    /// `None` in pull mode: the process then only carries the link.
    pub(crate) handler: Option<Box<dyn DeliveryHandler>>,
}

impl Slice for ConsumerProcess {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        while ctx.recv().is_some() {}
        self.core.clear_wake();
        let Some(handler) = self.handler.as_mut() else {
            return NativeOutcome::Wait;
        };
        for _ in 0..DELIVERIES_PER_SLICE {
            let delivery = match self.core.start_next() {
                Next::Delivery(delivery) => delivery,
                Next::Injected => {
                    self.core.injected();
                    return NativeOutcome::Stop(self.core.exit_reason());
                }
                Next::Nothing => return NativeOutcome::Wait,
            };
            let delivery_id = delivery.delivery_id();
            match catch_unwind(AssertUnwindSafe(|| handler.deliver(&delivery))) {
                Ok(verdict) => {
                    if self.core.answered(delivery_id, verdict) {
                        return NativeOutcome::Stop(self.core.exit_reason());
                    }
                }
                Err(panic) => {
                    let message = crate::base::scope::panic_message(panic.as_ref());
                    self.core.panicked(Some(delivery_id), &message);
                    return NativeOutcome::Stop(self.core.exit_reason());
                }
            }
        }
        NativeOutcome::Continue
    }

    fn on_panic(&mut self, message: String) {
        self.core.panicked(None, &message);
    }
}

/// Start the process of `core`, linked to the exit watcher (so its death is
/// reported before anything can be forwarded to it).
pub(crate) fn start(
    core: &Arc<ConsumerCore>,
    handler: Option<Box<dyn DeliveryHandler>>,
) -> Result<()> {
    let handler = Mutex::new(handler);
    let process_core = Arc::clone(core);
    let factory: beamr::native::native_process::NativeHandlerFactory = Box::new(move || {
        Box::new(Guarded(ConsumerProcess {
            core: Arc::clone(&process_core),
            handler: handler.lock().take(),
        }))
    });
    core.services
        .spawn_watched(factory, Arc::clone(core) as _, |pid| core.set_pid(pid))
        .map(|_pid| ())
        .map_err(Error::SpawnFailed)
}
