//! The engine of one group: accepting dispatches (by the overflow policy),
//! the registry of accepted ones (each completes exactly once), the
//! blocking dispatch, dead letters, drain, close and shutdown. Placement
//! itself — membership, waiting room, routing, reservations — is in
//! [`Placement`].

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::base::ids::IdMap;
use crate::base::oneshot::{self, RecvError};
use crate::base::scope::{call_host, in_callback};
use crate::base::Services;
use crate::consumer::core::{ConsumerCore, Death};
use crate::consumer::process::ProcessPool;
use crate::dispatch::conversation::{Conversation, ConversationHome};
use crate::dispatch::options::{DispatchOptions, GroupOptions, Overflow, UNORDERABLE};
use crate::dispatch::placement::{Placement, Refused};
use crate::dispatch::Completion;
use crate::error::{DispatchError, DispatchFailure, Error, Result};
use crate::message::Message;
use crate::ordering::key::key_of;
use crate::outcome::{Outcome, Trail};
use crate::routing::function::RoutingFunction;
use crate::routing::supervisor::RoutingSupervisor;
use crate::routing::view::Candidate;
use crate::stats::{GroupStats, WaitingKeys};
use crate::store::journal::{Journal, Recovered};

/// Called with every message that ends without a delivery (except at shutdown).
pub type DeadLetterHandler = Arc<dyn Fn(&Arc<Message>, &DispatchFailure) + Send + Sync + 'static>;

/// Receives the end of every message a durable group's store gave back
/// when the group was opened (their dispatchers died with the old host),
/// once per message, on the thread that ended it.
pub type RecoveredHandler =
    Arc<dyn Fn(&Arc<Message>, &crate::dispatch::DispatchResult) + Send + Sync + 'static>;

const OPEN: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

/// The accepted dispatches of a group.
#[derive(Default)]
struct Registry {
    /// Accepted, not completed.
    accepted: IdMap<Arc<Conversation>>,
    /// Completed, their completion callback still running (a drain waits
    /// for those too).
    completing: usize,
}

impl Registry {
    fn is_empty(&self) -> bool {
        self.accepted.is_empty() && self.completing == 0
    }
}

pub(crate) struct Dispatcher {
    pub(crate) name: String,
    pub(crate) services: Arc<Services>,
    pub(crate) options: GroupOptions,
    pub(crate) placement: Arc<Placement>,
    /// The runtime's pool of consumer processes.
    pub(crate) processes: Arc<ProcessPool>,
    registration: Mutex<()>,
    convs: Mutex<Registry>,
    drained: Condvar,
    accepting: AtomicU8,
    dead_letter: RwLock<Option<DeadLetterHandler>>,
    rejected: AtomicU64,
    dropped: AtomicU64,
    /// Parts that close with the group (remote hosts: workers told).
    pub(crate) extensions: crate::base::Extensions,
    /// A durable group's journal.
    store: Option<Arc<Journal>>,
}

impl Dispatcher {
    pub(crate) fn new(
        services: Arc<Services>,
        routing: Arc<RoutingSupervisor>,
        processes: Arc<ProcessPool>,
        function: RoutingFunction,
        options: GroupOptions,
        store: Option<Arc<Journal>>,
    ) -> Arc<Self> {
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| format!("group-{}", services.next_id()));
        let sticky = options.sticky_keys;
        Arc::new(Self {
            name,
            services,
            options,
            placement: Placement::new(function, routing, sticky),
            processes,
            registration: Mutex::new(()),
            convs: Mutex::new(Registry::default()),
            drained: Condvar::new(),
            accepting: AtomicU8::new(OPEN),
            dead_letter: RwLock::new(None),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            extensions: crate::base::Extensions::default(),
            store,
        })
    }

    /// Bring back what the store recovered, in acceptance order, before
    /// anything new is accepted: each waits in the room (behind its key's
    /// head, if it has a key), keeps its counts and absolute deadline, and
    /// ends in `handler`.
    pub(crate) fn recover(self: &Arc<Self>, recovered: Vec<Recovered>, handler: &RecoveredHandler) {
        let mut convs = Vec::with_capacity(recovered.len());
        let mut deadlines = Vec::new();
        let now = (Instant::now(), SystemTime::now());
        for entry in recovered {
            let home: Arc<dyn ConversationHome> = Arc::clone(self) as _;
            let handler = Arc::clone(handler);
            let message = Arc::clone(&entry.message);
            let conv = Conversation::recovered(
                self.services.next_id(),
                entry.message,
                home,
                Box::new(move |result| handler(&message, &result)),
                entry.counts,
            );
            conv.set_seq(entry.seq);
            if let Some(at) = entry.deadline {
                let left = at.duration_since(now.1).unwrap_or(Duration::ZERO);
                deadlines.push((Arc::clone(&conv), now.0 + left));
            }
            convs.push(conv);
        }
        {
            let mut registry = self.convs.lock();
            for conv in &convs {
                registry.accepted.insert(conv.id, Arc::clone(conv));
            }
        }
        self.placement.readmit(convs);
        for (conv, at) in deadlines {
            conv.arm_deadline(at);
        }
    }

    /// Add a consumer built by `build` (which spawns its process), unless
    /// its id is taken. Holds the registration lock across, so two
    /// registrations of one id cannot both succeed.
    pub(crate) fn join(
        &self,
        id: &str,
        build: impl FnOnce() -> Result<Arc<ConsumerCore>>,
    ) -> Result<Arc<ConsumerCore>> {
        let _registering = self.registration.lock();
        // Under the registration lock, which shutdown takes to let the
        // members go: a consumer joins before that, or is refused.
        if self.accepting.load(Ordering::Acquire) == CLOSED || self.services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        if self.placement.find(id).is_some() {
            return Err(Error::DuplicateConsumer(id.to_owned()));
        }
        let consumer = build()?;
        self.placement.add_member(&consumer);
        if consumer.is_alive() {
            consumer.announce();
        } else {
            use crate::consumer::attempt::ConsumerHome;
            self.placement.departed(consumer.uid());
        }
        Ok(consumer)
    }

    // ---- accepting ---------------------------------------------------------

    /// Whether the group was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.accepting.load(Ordering::Acquire) == CLOSED
    }

    fn check_accepting(&self) -> Result<()> {
        if self.services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        match self.accepting.load(Ordering::Acquire) {
            OPEN => Ok(()),
            _ => Err(Error::Draining),
        }
    }

    /// Accept a dispatch: admit it to the waiting room (by the overflow
    /// policy), then place what can be placed. A durable group writes it to
    /// its store first and admits it once that write is durable.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        message: Arc<Message>,
        options: &DispatchOptions,
        completion: Completion,
    ) -> Result<Arc<Conversation>> {
        options.validate()?;
        self.check_accepting()?;
        let message = self.keyed(message, options)?;
        let ttl = options.deadline.or(self.options.deadline);
        let Some(journal) = &self.store else {
            let (conv, dropped) = self.admit(message, 0, completion)?;
            return Ok(self.settle(conv, dropped, ttl));
        };
        // A full room refuses before anything is written.
        if self.options.overflow == Overflow::Reject
            && self.placement.depth() >= self.options.waiting_room
        {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            self.services.metrics.record_rejected();
            return Err(Error::QueueFull);
        }
        let deadline = ttl.map(|ttl| SystemTime::now() + ttl);
        let me = Arc::clone(self);
        let admitted = journal.accept(&message, deadline, move |seq, message| {
            me.admit_durable(message, seq, completion)
        })?;
        let (conv, dropped) = admitted?;
        Ok(self.settle(conv, dropped, ttl))
    }

    /// [`Dispatcher::admit`] for a message its store just made durable: if
    /// the room refuses it now (it filled meanwhile, the group began to
    /// drain or shuts down), it was never accepted, and its completion is
    /// recorded before the commit that wrote it ends (so a store closing
    /// right after still records it).
    fn admit_durable(
        self: &Arc<Self>,
        message: Arc<Message>,
        seq: u64,
        completion: Completion,
    ) -> Result<(Arc<Conversation>, Vec<Arc<Conversation>>)> {
        let admitted = self.admit(message, seq, completion);
        if admitted.is_err() {
            if let Some(journal) = &self.store {
                journal.completed(seq);
            }
        }
        admitted
    }

    /// Accept many dispatches in one call, in the order given; returns each
    /// one's result. A durable group writes them all in one commit (one
    /// sync), which is what makes one dispatching thread fast; a full room
    /// refuses the ones it has no place for before anything is written.
    pub(crate) fn dispatch_batch(
        self: &Arc<Self>,
        batch: Vec<(Arc<Message>, Completion)>,
        options: &DispatchOptions,
    ) -> Vec<Result<Arc<Conversation>>> {
        let Some(journal) = &self.store else {
            return batch
                .into_iter()
                .map(|(message, completion)| self.dispatch(message, options, completion))
                .collect();
        };
        let ttl = options.deadline.or(self.options.deadline);
        let deadline = ttl.map(|ttl| SystemTime::now() + ttl);
        let mut room = match self.options.overflow {
            Overflow::Reject => self
                .options
                .waiting_room
                .saturating_sub(self.placement.depth()),
            _ => usize::MAX,
        };
        let mut results: Vec<Option<Result<Arc<Conversation>>>> = Vec::with_capacity(batch.len());
        let mut writes = Vec::new();
        let mut positions = Vec::new();
        let valid = options.validate();
        for (message, completion) in batch {
            let keyed = valid
                .clone()
                .and_then(|()| self.check_accepting())
                .and_then(|()| self.keyed(message, options));
            match keyed {
                Err(error) => results.push(Some(Err(error))),
                Ok(_) if room == 0 => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    self.services.metrics.record_rejected();
                    results.push(Some(Err(Error::QueueFull)));
                }
                Ok(message) => {
                    room -= 1;
                    let me = Arc::clone(self);
                    positions.push(results.len());
                    results.push(None);
                    writes.push((
                        Arc::clone(&message),
                        deadline,
                        move |seq: u64, message: Arc<Message>| {
                            me.admit_durable(message, seq, completion)
                        },
                    ));
                }
            }
        }
        match journal.accept_many(writes) {
            Err(error) => {
                for position in positions {
                    results[position] = Some(Err(error.clone()));
                }
            }
            Ok(admitted) => {
                for (position, admitted) in positions.into_iter().zip(admitted) {
                    results[position] = Some(match admitted {
                        Some(Ok((conv, dropped))) => Ok(self.settle(conv, dropped, ttl)),
                        Some(Err(error)) => Err(error),
                        None => Err(Error::StoreFailed(
                            "admitting a durable message panicked".into(),
                        )),
                    });
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::StoreFailed("not dispatched".into()))))
            .collect()
    }

    /// `message` with its ordering key (refused when the key is bad, or
    /// when the group auto-acknowledges).
    fn keyed(&self, message: Arc<Message>, options: &DispatchOptions) -> Result<Arc<Message>> {
        let key = key_of(
            &message,
            options.key.as_deref(),
            self.options.key_field.as_deref(),
        )?;
        if key.is_some() && self.options.auto_ack_after.is_some() {
            return Err(Error::InvalidArgument(UNORDERABLE.into()));
        }
        Ok(Message::keyed(message, key))
    }

    /// Admit a new message (with its store's sequence number, or 0) to the
    /// waiting room by the overflow policy. Returns it with the oldest
    /// messages it pushed out (drop-oldest), which the caller fails. Runs
    /// no host code: a durable group's commit leader runs it for others.
    fn admit(
        self: &Arc<Self>,
        message: Arc<Message>,
        seq: u64,
        completion: Completion,
    ) -> Result<(Arc<Conversation>, Vec<Arc<Conversation>>)> {
        let home: Arc<dyn ConversationHome> = Arc::clone(self) as _;
        let conv = Conversation::new(self.services.next_id(), message, home, completion);
        conv.set_seq(seq);
        let track = || {
            let mut convs = self.convs.lock();
            // Under the registry's lock, which shutdown takes after setting
            // its flag: a dispatch is either refused or failed by shutdown.
            self.check_accepting()?;
            convs.accepted.insert(conv.id, Arc::clone(&conv));
            Ok(())
        };
        let admitted = self.placement.admit(
            &conv,
            self.options.waiting_room,
            self.options.overflow,
            || self.check_accepting(),
            track,
        );
        match admitted {
            Ok(dropped) => Ok((conv, dropped)),
            Err(Refused::Full) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                self.services.metrics.record_rejected();
                Err(Error::QueueFull)
            }
            Err(Refused::Other(error)) => Err(error),
        }
    }

    /// After admission, on the dispatching thread: count it, arm its
    /// deadline, fail what it pushed out.
    fn settle(
        &self,
        conv: Arc<Conversation>,
        dropped: Vec<Arc<Conversation>>,
        ttl: Option<Duration>,
    ) -> Arc<Conversation> {
        self.services.metrics.record_dispatched();
        if let Some(ttl) = ttl {
            conv.arm_deadline(Instant::now() + ttl);
        }
        for oldest in dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            oldest.fail(DispatchError::Dropped);
        }
        conv
    }

    /// Dispatch and wait for the outcome (up to `options.timeout`).
    pub(crate) fn dispatch_blocking(
        self: &Arc<Self>,
        message: Arc<Message>,
        options: &DispatchOptions,
    ) -> Result<Outcome> {
        if in_callback() {
            return Err(Error::WouldDeadlock(
                "blocking dispatch from inside a callback; use the asynchronous dispatch".into(),
            ));
        }
        let (sender, receiver) = oneshot::channel();
        let conv = self.dispatch(
            message,
            options,
            Box::new(move |result| sender.send(result)),
        )?;
        let deadline = options.timeout.map(|timeout| Instant::now() + timeout);
        let result = match receiver.recv(self.services.blocking_spin(), deadline) {
            Err(RecvError::TimedOut) => {
                conv.expire(DispatchError::TimedOut);
                receiver.recv(Duration::ZERO, None)
            }
            other => other,
        };
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(failure)) => Err(Error::Dispatch(Box::new(failure))),
            Err(_) => Err(Error::Dispatch(Box::new(DispatchFailure {
                error: DispatchError::Conversation("completion dropped without a result".into()),
                trail: Trail::default(),
            }))),
        }
    }

    /// Accepted dispatches not completed yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.convs.lock().accepted.len()
    }

    /// Install (or clear) the dead-letter handler. Refused once the runtime
    /// shuts down (checked under the handler's lock, which shutdown takes to
    /// release it: a handler is never installed after that).
    pub(crate) fn set_dead_letter(&self, handler: Option<DeadLetterHandler>) -> Result<()> {
        let mut slot = self.dead_letter.write();
        if self.services.is_shut_down() {
            drop(slot);
            drop(handler);
            return Err(Error::ShutDown);
        }
        let replaced = std::mem::replace(&mut *slot, handler);
        drop(slot);
        // The host's `free_user` runs outside the lock (once its last call
        // returned: a call in progress holds its own reference).
        drop(replaced);
        Ok(())
    }

    /// Redeploy: the next evaluation uses `function`; waiting messages are
    /// looked at again with it.
    pub(crate) fn deploy(&self, function: RoutingFunction) -> RoutingFunction {
        let old = self.placement.slot.deploy(function);
        self.placement.pump();
        old
    }

    /// Its figures now.
    pub(crate) fn stats(&self) -> GroupStats {
        GroupStats {
            name: self.name.clone(),
            waiting: self.placement.depth(),
            waiting_room: self.options.waiting_room,
            in_flight: self.in_flight(),
            rejected: self.rejected.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            draining: self.accepting.load(Ordering::Acquire) != OPEN,
            ordering: self.placement.ordering_stats(),
            store: self.store_stats(),
            consumers: self
                .placement
                .snapshot()
                .iter()
                .map(|c| c.stats())
                .collect(),
        }
    }

    /// Its store's figures, for a durable group.
    pub(crate) fn store_stats(&self) -> Option<crate::stats::StoreStats> {
        self.store.as_ref().map(|journal| journal.stats())
    }

    /// At most `max` of its keys with messages waiting behind their head,
    /// deepest first.
    pub(crate) fn waiting_keys(&self, max: usize) -> WaitingKeys {
        self.placement.waiting_keys(max)
    }

    // ---- lifecycle ----------------------------------------------------------

    /// Stop accepting, then wait until every accepted dispatch completed or
    /// `timeout` passed. Returns how many were left.
    pub(crate) fn drain(&self, timeout: Duration) -> Result<usize> {
        if in_callback() {
            return Err(Error::WouldDeadlock("drain from inside a callback".into()));
        }
        let _ =
            self.accepting
                .compare_exchange(OPEN, DRAINING, Ordering::AcqRel, Ordering::Acquire);
        self.placement.wake_blocked();
        let deadline = Instant::now() + timeout;
        let mut convs = self.convs.lock();
        while !convs.is_empty() {
            if self.drained.wait_until(&mut convs, deadline).timed_out() {
                break;
            }
        }
        Ok(convs.accepted.len() + convs.completing)
    }

    /// The group is freed: accept nothing, every member leaves, and what
    /// waits or is held fails with `NoConsumerAvailable`. A delivery whose
    /// callback is running finishes, and its answer counts.
    pub(crate) fn close(&self) {
        self.accepting.store(CLOSED, Ordering::Release);
        self.extensions.stop();
        self.placement.wake_blocked();
        for conv in self.placement.close(DispatchError::NoConsumerAvailable) {
            conv.fail(DispatchError::NoConsumerAvailable);
        }
        {
            let _registering = self.registration.lock();
            for consumer in self.placement.snapshot().iter() {
                let _already_gone = consumer.die_now(Death::Leave);
            }
        }
        self.close_store();
    }

    /// A durable group's store records what is buffered and is let go:
    /// what was not completed stays in it for the next opening.
    fn close_store(&self) {
        if let Some(journal) = &self.store {
            journal.close();
        }
    }

    /// Whether a dispatch that ended with `error` (`None`: delivered) ends
    /// its message for good (its store records the completion). A message
    /// failed only because its host is going away (the runtime shuts down,
    /// the group closes) stays pending in the store.
    fn ends_for_good(&self, error: Option<&DispatchError>) -> bool {
        match error {
            Some(DispatchError::ShutDown) => false,
            Some(DispatchError::NoConsumerAvailable) => {
                !self.is_closed() && !self.services.is_shut_down()
            }
            _ => true,
        }
    }

    /// Dispatches whose delivery callback is running now.
    pub(crate) fn handling(&self) -> Vec<u64> {
        self.placement
            .snapshot()
            .iter()
            .filter_map(|c| c.handling_dispatch())
            .collect()
    }

    /// Runtime shutdown, first step: fail every accepted dispatch except
    /// those whose delivery callback is running now (`spare`): the shutdown
    /// waits for those, and their answer counts.
    pub(crate) fn shut_down_except(&self, spare: &[u64]) {
        let pending: Vec<Arc<Conversation>> = self
            .convs
            .lock()
            .accepted
            .values()
            .filter(|conv| !spare.contains(&conv.id))
            .cloned()
            .collect();
        drop(self.placement.close(DispatchError::ShutDown));
        self.placement.wake_blocked();
        for conv in pending {
            conv.shut_down();
        }
    }

    /// Runtime shutdown, last step (the scheduler has stopped): fail what is
    /// left and let every consumer go.
    pub(crate) fn shut_down_rest(&self) {
        let pending: Vec<Arc<Conversation>> =
            self.convs.lock().accepted.values().cloned().collect();
        for conv in pending {
            conv.shut_down();
        }
        let members = {
            let _registering = self.registration.lock();
            self.placement.clear_members()
        };
        for consumer in members.iter() {
            consumer.shut_down();
        }
        self.placement.wake_blocked();
        // No dead letter comes after shutdown: the host's handler goes now,
        // even if the group's handle lives on.
        let handler = self.dead_letter.write().take();
        drop(handler);
        self.close_store();
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.close_store();
    }
}

impl ConversationHome for Dispatcher {
    fn services(&self) -> &Arc<Services> {
        &self.services
    }

    fn options(&self) -> &GroupOptions {
        &self.options
    }

    fn requeue(&self, conv: Arc<Conversation>) {
        if let Some(journal) = &self.store {
            journal.attempted(conv.seq(), conv.counts());
        }
        // The room decides under its lock: a check of the group's flags
        // here could pass just before a close or a shutdown empties the
        // room, and the message would then wait in it for ever.
        if let Err((conv, error)) = self.placement.requeue(conv) {
            conv.fail(error);
        }
    }

    fn withdraw_waiting(&self, conv: &Conversation) {
        self.placement.withdraw(conv.id);
    }

    fn delayed_started(&self) {
        self.placement.delayed_started();
    }

    fn delayed_done(&self) {
        self.placement.delayed_done();
    }

    fn forget(&self, conv: &Conversation, result: &crate::dispatch::DispatchResult) {
        if let Some(journal) = &self.store {
            if self.ends_for_good(result.as_ref().err().map(|f| &f.error)) {
                journal.completed(conv.seq());
            }
        }
        {
            let mut convs = self.convs.lock();
            if convs.accepted.remove(&conv.id).is_some() {
                convs.completing += 1;
            }
        }
        let hold = self.options.hold_failed_keys
            && result
                .as_ref()
                .err()
                .is_some_and(|f| self.ends_for_good(Some(&f.error)));
        self.placement.completed(conv, hold);
    }

    fn completed(&self) {
        let mut convs = self.convs.lock();
        convs.completing = convs.completing.saturating_sub(1);
        if convs.is_empty() {
            self.drained.notify_all();
        }
    }

    fn dead_letter(&self, message: &Arc<Message>, failure: &DispatchFailure) {
        if self.store.is_some() && !self.ends_for_good(Some(&failure.error)) {
            // It stays in the store for the group's next opening: not dead.
            return;
        }
        let handler = self.dead_letter.read().clone();
        if let Some(handler) = handler {
            let _ignored = call_host(|| handler(message, failure));
        }
    }
}
