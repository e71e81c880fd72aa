//! A routing slot: the function a group uses now, replaceable while running.

use parking_lot::RwLock;

use crate::routing::function::RoutingFunction;

/// Hot deployment: an evaluation takes the current version when it starts
/// and keeps it; the next evaluation sees whatever was deployed last.
pub(crate) struct RoutingSlot {
    current: RwLock<RoutingFunction>,
}

impl RoutingSlot {
    pub(crate) fn new(function: RoutingFunction) -> Self {
        Self {
            current: RwLock::new(function),
        }
    }

    pub(crate) fn current(&self) -> RoutingFunction {
        self.current.read().clone()
    }

    /// Install `function`; returns the one it replaced.
    pub(crate) fn deploy(&self, function: RoutingFunction) -> RoutingFunction {
        std::mem::replace(&mut *self.current.write(), function)
    }
}
