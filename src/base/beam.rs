//! The small surface of beamr that liminal uses: a native-only scheduler,
//! panic-safe handlers, wake-ups and DOWN/EXIT decoding.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use beamr::atom::Atom;
use beamr::module::ModuleRegistry;
use beamr::process::ExitReason;
use beamr::scheduler::{NativeBifs, Scheduler, SchedulerConfig, SchedulerServices};
use beamr::term::boxed::Tuple;
use beamr::term::Term;
use beamr::{NativeContext, NativeHandler, NativeOutcome};

use crate::base::scope::{self, CallbackScope};

/// Start a scheduler with exactly `threads` workers and no ancillary services.
pub(crate) fn native_scheduler(threads: usize) -> Result<Arc<Scheduler>, String> {
    let config = SchedulerConfig {
        thread_count: Some(threads),
        dirty_cpu_threads: Some(0),
        dirty_io_threads: Some(0),
        ..SchedulerConfig::default()
    };
    Scheduler::with_services(
        config,
        SchedulerServices::minimal(),
        Arc::new(ModuleRegistry::new()),
        NativeBifs::none(),
    )
    .map(Arc::new)
}

/// Wake a native process whose work sits in a Rust queue. Returns false when
/// the process no longer exists.
pub(crate) fn wake(scheduler: &Scheduler, pid: u64) -> bool {
    scheduler.enqueue_atom_message(pid, Atom::OK)
}

/// Runs a slice body under `catch_unwind`: a panic becomes `Stop(Error)` (after
/// `on_panic` saw its message) instead of killing the scheduler worker.
pub(crate) struct Guarded<F>(pub(crate) F);

/// A slice body.
pub(crate) trait Slice: Send + 'static {
    fn run(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome;
    fn on_panic(&mut self, message: String);
}

impl<F: Slice> NativeHandler for Guarded<F> {
    fn handle(&mut self, ctx: &mut NativeContext<'_>) -> NativeOutcome {
        let _scope = CallbackScope::enter();
        match catch_unwind(AssertUnwindSafe(|| self.0.run(ctx))) {
            Ok(outcome) => outcome,
            Err(panic) => {
                let message = scope::panic_message(panic.as_ref());
                let _ignored = catch_unwind(AssertUnwindSafe(|| self.0.on_panic(message)));
                NativeOutcome::Stop(ExitReason::Error)
            }
        }
    }
}

/// Decode `{'DOWN', Ref, process, Pid, Reason}` (a monitor fired) or
/// `{'EXIT', Pid, Reason}` (a link fired).
pub(crate) fn decode_down(term: Term) -> Option<(u64, ExitReason)> {
    let tuple = Tuple::new(term)?;
    let (pid, reason) = match tuple.arity() {
        5 if tuple.get(0)?.as_atom()? == Atom::DOWN => (tuple.get(3)?, tuple.get(4)?),
        3 if tuple.get(0)?.as_atom()? == Atom::EXIT => (tuple.get(1)?, tuple.get(2)?),
        _ => return None,
    };
    let reason = match reason.as_atom() {
        Some(atom) if atom == Atom::NORMAL => ExitReason::Normal,
        Some(atom) if atom == Atom::KILL => ExitReason::Kill,
        Some(atom) if atom == Atom::KILLED => ExitReason::Killed,
        Some(atom) if atom == Atom::NOPROC => ExitReason::NoProc,
        Some(atom) if atom == Atom::NOCONNECTION => ExitReason::NoConnection,
        _ => ExitReason::Error,
    };
    Some((pid.as_pid()?, reason))
}
