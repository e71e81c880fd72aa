//! The callback scope: marks the threads that are running a host callback
//! (or any other library work), so calls that would block or free what the
//! caller stands on refuse to run there instead of deadlocking.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// While alive, the current thread counts as inside a callback.
pub(crate) struct CallbackScope(());

impl CallbackScope {
    pub(crate) fn enter() -> Self {
        DEPTH.with(|depth| depth.set(depth.get() + 1));
        Self(())
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Whether the calling thread is inside a library callback (or running
/// library work on a library thread).
#[must_use]
pub fn in_callback() -> bool {
    DEPTH.with(|depth| depth.get() > 0)
}

/// Run host code: inside the callback scope, with a panic contained.
/// Returns `None` when it panicked.
pub(crate) fn call_host<R>(body: impl FnOnce() -> R) -> Option<R> {
    let _scope = CallbackScope::enter();
    catch_unwind(AssertUnwindSafe(body)).ok()
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_nests_and_unwinds() {
        assert!(!in_callback());
        let outer = CallbackScope::enter();
        assert_eq!(call_host(in_callback), Some(true));
        assert_eq!(call_host(|| -> u8 { panic!("contained") }), None);
        assert!(in_callback());
        drop(outer);
        assert!(!in_callback());
    }
}
