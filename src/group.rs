//! Consumer groups: a routing slot plus a set of consumers ordered by id,
//! read by each dispatch as an immutable snapshot.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::consumer::inner::ConsumerInner;
use crate::consumer::{Consumer, ConsumerSpec, ConsumerState, DeliveryMode};
use crate::dispatch::conversation::{self, Conversation};
use crate::dispatch::oneshot;
use crate::dispatch::{Completion, DispatchFailure, Outcome};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::routing::function::RoutingFunction;
use crate::routing::ring::Membership;
use crate::routing::slot::RoutingSlot;
use crate::runtime::{in_library_thread, Core};

/// Called with every message that ends without a delivery (except at shutdown).
pub type DeadLetterHandler = Arc<dyn Fn(&Arc<Message>, &DispatchFailure) + Send + Sync + 'static>;

/// Per-group dispatch options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOptions {
    /// Crashed attempts after which a message is dead-lettered (default 3, at least 1).
    pub max_attempts: u32,
    /// Reference mode: a delivery also counts as done once its consumer
    /// stayed alive this long without acknowledging. `None` (default):
    /// only an acknowledgement completes a delivery.
    pub handoff_window: Option<Duration>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            handoff_window: None,
        }
    }
}

impl GroupOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::InvalidArgument(
                "max attempts must be at least 1".into(),
            ));
        }
        if self.handoff_window == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument(
                "hand-off window must be positive".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) struct GroupInner {
    pub(crate) core: Arc<Core>,
    pub(crate) slot: RoutingSlot,
    pub(crate) options: GroupOptions,
    members: RwLock<Arc<Membership>>,
    registration: Mutex<()>,
    dead_letter: RwLock<Option<DeadLetterHandler>>,
}

impl GroupInner {
    pub(crate) fn snapshot(&self) -> Arc<Membership> {
        Arc::clone(&self.members.read())
    }

    fn find(&self, id: &str) -> Option<Arc<ConsumerInner>> {
        let members = self.snapshot();
        let index = members.binary_search_by(|c| (*c.id).cmp(id)).ok()?;
        Some(Arc::clone(&members[index]))
    }

    fn insert_member(&self, consumer: Arc<ConsumerInner>) {
        let mut members = self.members.write();
        let mut next: Vec<Arc<ConsumerInner>> = members.iter().cloned().collect();
        let position = next
            .binary_search_by(|c| c.id.cmp(&consumer.id))
            .unwrap_or_else(|position| position);
        next.insert(position, consumer);
        *members = Arc::new(Membership::new(next));
    }

    /// Remove the member whose process is `pid` (an id may have been reused).
    pub(crate) fn remove_member(&self, pid: u64) {
        let mut members = self.members.write();
        if members.iter().any(|c| c.pid() == pid) {
            let next = members.iter().filter(|c| c.pid() != pid).cloned().collect();
            *members = Arc::new(Membership::new(next));
        }
    }

    pub(crate) fn dead_letter(&self, message: &Arc<Message>, failure: &DispatchFailure) {
        let handler = self.dead_letter.read().clone();
        if let Some(handler) = handler {
            let _ignored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler(message, failure);
            }));
        }
    }
}

/// A consumer group. Cloning shares the same group.
#[derive(Clone)]
pub struct Group {
    pub(crate) inner: Arc<GroupInner>,
}

impl Group {
    pub(crate) fn new(
        core: Arc<Core>,
        routing: RoutingFunction,
        options: GroupOptions,
    ) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            inner: Arc::new(GroupInner {
                core,
                slot: RoutingSlot::new(routing),
                options,
                members: RwLock::new(Arc::new(Membership::new(Vec::new()))),
                registration: Mutex::new(()),
                dead_letter: RwLock::new(None),
            }),
        })
    }

    /// Register a consumer: spawns its process, linked to the runtime's exit
    /// watcher, and adds it to the group. Errors: `InvalidArgument`,
    /// `DuplicateConsumer`, `ShutDown`, `SpawnFailed`.
    pub fn register(&self, spec: ConsumerSpec) -> Result<Consumer> {
        spec.validate()?;
        let core = &self.inner.core;
        if core.is_shut_down() {
            return Err(Error::ShutDown);
        }
        let _registering = self.inner.registration.lock();
        if self.inner.find(&spec.id).is_some() {
            return Err(Error::DuplicateConsumer(spec.id));
        }
        let (pull_mode, handler) = match spec.mode {
            DeliveryMode::Push(handler) => (false, Some(handler)),
            DeliveryMode::Pull => (true, None),
        };
        let inner = Arc::new(ConsumerInner::new(
            Arc::from(spec.id.as_str()),
            spec.max_in_flight,
            spec.buffer_depth,
            Arc::from(spec.tags),
            pull_mode,
            spec.crash_handler,
            Arc::clone(core),
            Arc::downgrade(&self.inner),
        ));
        core.spawn_consumer(&inner, handler)?;
        self.inner.insert_member(Arc::clone(&inner));
        if !inner.is_alive() {
            self.inner.remove_member(inner.pid());
        }
        Ok(Consumer { inner })
    }

    /// The consumer with this id, if registered and alive.
    #[must_use]
    pub fn consumer(&self, id: &str) -> Option<Consumer> {
        self.inner.find(id).map(|inner| Consumer { inner })
    }

    /// State views of every member, in id order.
    #[must_use]
    pub fn consumers(&self) -> Vec<ConsumerState> {
        self.inner.snapshot().iter().map(|c| c.state()).collect()
    }

    /// Number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.snapshot().len()
    }

    /// Whether the group has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The routing function in use now.
    #[must_use]
    pub fn routing(&self) -> RoutingFunction {
        self.inner.slot.current()
    }

    /// Hot-deploy `function`: evaluations already running keep their version,
    /// the next one uses this. Returns the replaced function.
    pub fn deploy(&self, function: RoutingFunction) -> RoutingFunction {
        self.inner.slot.deploy(function)
    }

    /// The dispatch options.
    #[must_use]
    pub fn options(&self) -> &GroupOptions {
        &self.inner.options
    }

    /// Install (or clear) the dead-letter handler.
    pub fn set_dead_letter_handler(&self, handler: Option<DeadLetterHandler>) {
        *self.inner.dead_letter.write() = handler;
    }

    /// Dispatch and return at once. `completion` runs exactly once, with the
    /// outcome or the failure, on a library thread or (for a failure found
    /// before anything was forwarded) on this thread before this returns.
    /// Returns the dispatch id. Only `ShutDown` refuses the message, and then
    /// `completion` is not called.
    pub fn dispatch_async(
        &self,
        message: impl Into<Arc<Message>>,
        completion: Completion,
    ) -> Result<u64> {
        let core = &self.inner.core;
        let id = core.next_id();
        let conv = Arc::new(Conversation::new(
            id,
            message.into(),
            Arc::clone(&self.inner),
            completion,
        ));
        if !core.track_conversation(&conv) {
            return Err(Error::ShutDown);
        }
        conversation::advance(conv);
        Ok(id)
    }

    /// Dispatch and wait for the outcome. Refused with `WouldDeadlock` on a
    /// library thread (inside a delivery, routing or completion callback).
    pub fn dispatch(&self, message: impl Into<Arc<Message>>) -> Result<Outcome> {
        if in_library_thread() {
            return Err(Error::WouldDeadlock(
                "blocking dispatch from a library thread; use dispatch_async".into(),
            ));
        }
        let (sender, receiver) = oneshot::channel();
        self.dispatch_async(message, Box::new(move |result| sender.send(result)))?;
        match receiver.recv(self.inner.core.blocking_spin()) {
            Some(Ok(outcome)) => Ok(outcome),
            Some(Err(failure)) => Err(Error::Dispatch(Box::new(failure))),
            None => Err(Error::Dispatch(Box::new(DispatchFailure {
                error: crate::error::DispatchError::Conversation(
                    "completion dropped without a result".into(),
                ),
                dispatch_id: 0,
                rerouted_from: Vec::new(),
                reroute_timings: Vec::new(),
                attempts: 0,
            }))),
        }
    }

    /// Every member leaves (their held deliveries are re-routed, and with no
    /// members left, fail as `NoConsumerAvailable`).
    pub fn close(&self) {
        for consumer in self.inner.snapshot().iter() {
            consumer.drop_crash_handler();
            let _already_gone = consumer.stop();
        }
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("routing", &self.inner.slot.current())
            .field("members", &self.len())
            .finish()
    }
}
