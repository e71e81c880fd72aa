//! Consumer groups: the public handle over a group's dispatch engine.

use std::sync::Arc;
use std::time::Duration;

use crate::consumer::core::{ConsumerCore, ConsumerSettings};
use crate::consumer::{Consumer, ConsumerSpec, DeliveryMode};
use crate::dispatch::dispatcher::{DeadLetterHandler, Dispatcher};
use crate::dispatch::{Completion, DispatchOptions, GroupOptions};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::outcome::Outcome;
use crate::routing::function::RoutingFunction;
use crate::routing::view::ConsumerState;
use crate::stats::{OrderingStats, StoreStats, WaitingKeys};

/// A consumer group: a routing function, a set of consumers ordered by id,
/// and a waiting room. Cloning shares the same group.
#[derive(Clone)]
pub struct Group {
    pub(crate) dispatcher: Arc<Dispatcher>,
}

impl Group {
    fn check(&self) -> Result<()> {
        if self.dispatcher.services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// Register a consumer: gives it a process (an idle one reused, or a
    /// new one monitored by the runtime's exit watcher) and adds it to the
    /// group. Errors: `InvalidArgument`,
    /// `DuplicateConsumer`, `ShutDown`, `SpawnFailed`.
    pub fn register(&self, spec: ConsumerSpec) -> Result<Consumer> {
        spec.validate()?;
        self.check()?;
        let dispatcher = &self.dispatcher;
        let options = &dispatcher.options;
        let id = spec.id;
        let (pull_mode, handler) = match spec.mode {
            DeliveryMode::Push(handler) => (false, Some(handler)),
            DeliveryMode::Pull => (true, None),
        };
        let settings = ConsumerSettings {
            id: Arc::from(id.as_str()),
            max_in_flight: spec.max_in_flight,
            buffer_depth: spec.buffer_depth,
            tags: Arc::from(spec.tags),
            pull_mode,
            lease: spec.ack_lease.or(options.ack_lease),
            lease_policy: options.lease_policy,
            crash_handler: spec.crash_handler,
        };
        let core = dispatcher.join(&id, || {
            let home = Arc::downgrade(&dispatcher.placement);
            let core = ConsumerCore::new(settings, Arc::clone(&dispatcher.services), home);
            crate::consumer::process::start(&core, handler, &dispatcher.processes)?;
            Ok(core)
        })?;
        Ok(Consumer { core })
    }

    /// The live consumer with this id.
    #[must_use]
    pub fn consumer(&self, id: &str) -> Option<Consumer> {
        self.dispatcher
            .placement
            .find(id)
            .map(|core| Consumer { core })
    }

    /// State views of every member, in id order (empty after shutdown).
    #[must_use]
    pub fn consumers(&self) -> Vec<ConsumerState> {
        self.dispatcher.placement.views()
    }

    /// Number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.dispatcher.placement.snapshot().len()
    }

    /// Whether the group has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The routing function in use now.
    #[must_use]
    pub fn routing(&self) -> RoutingFunction {
        self.dispatcher.placement.slot.current()
    }

    /// Hot-deploy `function`: evaluations already running keep their
    /// version, the next one uses this. Returns the replaced function.
    pub fn deploy(&self, function: RoutingFunction) -> Result<RoutingFunction> {
        self.check()?;
        Ok(self.dispatcher.deploy(function))
    }

    /// The options it was created with.
    #[must_use]
    pub fn options(&self) -> &GroupOptions {
        &self.dispatcher.options
    }

    /// Install (or clear) the dead-letter handler. The runtime's shutdown
    /// releases it (no dead letter comes after); refused with `ShutDown`
    /// from then on.
    pub fn set_dead_letter_handler(&self, handler: Option<DeadLetterHandler>) -> Result<()> {
        self.check()?;
        self.dispatcher.set_dead_letter(handler)
    }

    /// Dispatch and return at once; `completion` runs exactly once with the
    /// outcome or the failure (on a library thread, or on this thread before
    /// this returns). Returns the dispatch id. Refusals (`QueueFull`,
    /// `Draining`, `ShutDown`, `InvalidArgument`) do not call `completion`.
    pub fn dispatch_async(
        &self,
        message: impl Into<Arc<Message>>,
        completion: Completion,
    ) -> Result<u64> {
        self.dispatch_async_with(message, &DispatchOptions::default(), completion)
    }

    /// [`Group::dispatch_async`] with per-dispatch options.
    pub fn dispatch_async_with(
        &self,
        message: impl Into<Arc<Message>>,
        options: &DispatchOptions,
        completion: Completion,
    ) -> Result<u64> {
        let conv = self
            .dispatcher
            .dispatch(message.into(), options, completion)?;
        Ok(conv.id)
    }

    /// Dispatch many messages in one call, each with its own completion (as
    /// [`Group::dispatch_async_with`], with the same `options` for all);
    /// returns each one's dispatch id or refusal, in the order given. To a
    /// durable group the whole batch is written with one sync before this
    /// returns: the way for one thread to dispatch durable messages fast.
    pub fn dispatch_batch(
        &self,
        batch: Vec<(Arc<Message>, Completion)>,
        options: &DispatchOptions,
    ) -> Vec<Result<u64>> {
        self.dispatcher
            .dispatch_batch(batch, options)
            .into_iter()
            .map(|conv| conv.map(|conv| conv.id))
            .collect()
    }

    /// Dispatch and wait for the outcome. Refused with `WouldDeadlock` inside
    /// a callback.
    pub fn dispatch(&self, message: impl Into<Arc<Message>>) -> Result<Outcome> {
        self.dispatch_with(message, &DispatchOptions::default())
    }

    /// [`Group::dispatch`] with per-dispatch options (deadline, timeout).
    pub fn dispatch_with(
        &self,
        message: impl Into<Arc<Message>>,
        options: &DispatchOptions,
    ) -> Result<Outcome> {
        self.dispatcher.dispatch_blocking(message.into(), options)
    }

    /// Messages waiting for a consumer now (in the waiting room, behind
    /// their ordering key's head included, released with a delay, or being
    /// routed).
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.dispatcher.placement.depth()
    }

    /// At most `max` of its ordered keys that have messages waiting behind
    /// their head, deepest first (ties: the longest-held head first), with
    /// how many keys were waiting in all.
    #[must_use]
    pub fn waiting_keys(&self, max: usize) -> WaitingKeys {
        self.dispatcher.waiting_keys(max)
    }

    /// Let `key`, held after its head failed (with
    /// [`GroupOptions::hold_failed_keys`]), move on: its next message is
    /// routed. Returns whether the key was held.
    pub fn release_key(&self, key: &str) -> bool {
        self.dispatcher.placement.release_key(key)
    }

    /// Its ordered keys now (see [`OrderingStats`]).
    #[must_use]
    pub fn ordering_stats(&self) -> OrderingStats {
        self.dispatcher.placement.ordering_stats()
    }

    /// A durable group's store figures (`None` for a group without a store).
    #[must_use]
    pub fn store_stats(&self) -> Option<StoreStats> {
        self.dispatcher.store_stats()
    }

    /// Accepted dispatches not completed yet.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.dispatcher.in_flight()
    }

    /// Stop accepting new dispatches (they get `Draining`), then wait until
    /// every accepted one completed or `timeout` passed; returns how many
    /// were left. Waiting messages still fail by their deadlines meanwhile.
    /// Refused with `WouldDeadlock` inside a callback.
    pub fn drain(&self, timeout: Duration) -> Result<usize> {
        self.check()?;
        self.dispatcher.drain(timeout)
    }

    /// Close the group: it accepts nothing more, every member leaves, and
    /// what waits or is held fails with `NoConsumerAvailable` (a delivery
    /// whose callback is running finishes, and its answer counts).
    pub fn close(&self) {
        self.dispatcher.close();
    }

    /// Whether the group was closed (or its runtime shut down).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn is_closed(&self) -> bool {
        self.dispatcher.services.is_shut_down() || self.dispatcher.is_closed()
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("routing", &self.dispatcher.placement.slot.current())
            .field("members", &self.len())
            .field("waiting", &self.waiting())
            .finish()
    }
}
