//! The worker side: a consumer in another process (or on another host),
//! connected to a host's group over Zenoh. It announces itself with a
//! liveliness token per *incarnation* (a fresh id each time it starts, or
//! starts over after the host declared it dead), says what it is on its
//! info queryable, receives deliveries on its `to` key and answers on its
//! `from` key, with a beat four times per lease.
//!
//! Deliveries reach the host's delivery handler on the worker's own
//! delivery thread (push mode) or wait for [`Worker::next_delivery`] (pull
//! mode); either way they are answered through the ordinary
//! [`Delivery`] / [`crate::DeliveryToken`] calls.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use parking_lot::{Condvar, Mutex};
use zenoh::Wait;

use crate::base::ids::IdMap;
use crate::base::scope::in_callback;
use crate::consumer::delivery::Answer as AnswerDelivery;
use crate::consumer::{Delivery, DeliveryHandler, Verdict};
use crate::error::{Error, Result};
use crate::remote::config::RemoteOptions;
use crate::remote::own_thread::{on_own_thread, start_sender, Outbox, OwnedSession};
use crate::remote::protocol::{
    new_incarnation, valid_chunk, Answer, FromWorker, Keys, RefusalKind, ToWorker, WorkerInfo,
};
use zenoh::sample::SampleKind;

/// Told when the host this worker served is lost (its liveliness token
/// went, a new host incarnation replaced it, or it closed): the reason.
/// What the worker held from it is dropped (answers to it return
/// `StaleDelivery`); the worker joins the next host incarnation by itself.
/// Runs on the worker's delivery thread, after every delivery of the lost
/// host and before any of the next; by then the worker's status is no
/// longer `Joined`.
pub type HostLostHandler = Box<dyn FnMut(&str) + Send + 'static>;

/// What a worker is.
pub struct WorkerSpec {
    /// The group name on the host (a key-expression chunk).
    pub group: String,
    /// The consumer id (a key-expression chunk, unique in the group).
    pub id: String,
    /// Most deliveries held at once.
    pub max_in_flight: u32,
    /// Affinity tags.
    pub tags: Vec<String>,
    /// Push mode: runs on the worker's delivery thread for each delivery;
    /// `None`: pull mode ([`Worker::next_delivery`]).
    pub handler: Option<Box<dyn DeliveryHandler>>,
}

/// Where a worker stands with its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerStatus {
    /// Announced, not yet accepted.
    Joining,
    /// A consumer of the group.
    Joined,
    /// The host refused this worker as it is (the reason): a bad name,
    /// protocol or lease, or an id a local consumer holds. It does not retry.
    Refused(String),
    /// The previous incarnation is over (the reason: the host declared it
    /// dead, the host was lost or restarted, or its id was still held by an
    /// incarnation not yet declared dead); a new one is being announced
    /// (after the host's `retry_after_ms` for the last).
    Reincarnating(String),
    /// The host said goodbye (it closed). A new host incarnation of the
    /// group, when one appears, is joined by a new incarnation.
    HostGone,
    /// This worker was closed.
    Closed,
}

struct Incarnation {
    id: String,
    outstanding: Mutex<IdMap<()>>,
    declared: Mutex<Vec<Box<dyn Send>>>,
    /// The host incarnation that joined it: it serves no other.
    host: Mutex<Option<String>>,
    /// The group's acknowledgement lease, as `joined` said.
    ack_lease_ms: Mutex<Option<u64>>,
    /// Its host said bye: the next host incarnation is joined by a new one.
    host_closed: AtomicBool,
}

impl Incarnation {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            id: new_incarnation(),
            outstanding: Mutex::new(IdMap::default()),
            declared: Mutex::new(Vec::new()),
            host: Mutex::new(None),
            ack_lease_ms: Mutex::new(None),
            host_closed: AtomicBool::new(false),
        })
    }

    fn host(&self) -> Option<String> {
        self.host.lock().clone()
    }
}

/// What the delivery thread handles, in order.
enum WorkerEvent {
    /// A host message on incarnation `.0`'s `to` key.
    To(String, Vec<u8>),
    /// A host incarnation's token appeared.
    HostUp(String),
    /// A host incarnation's token went.
    HostDown(String),
    /// Retry after a temporary refusal of incarnation `.0`.
    Retry(String, String),
    /// Look at `closed`.
    Wake,
}

pub(crate) struct WorkerInner {
    keys: Keys,
    id: String,
    info: WorkerInfo,
    session: OwnedSession,
    incarnation: Mutex<Arc<Incarnation>>,
    status: Mutex<WorkerStatus>,
    status_changed: Condvar,
    ready: Mutex<VecDeque<Delivery>>,
    ready_signal: Condvar,
    pull_mode: bool,
    lease: Duration,
    /// Set when closing starts: deliveries that still arrive are not handled.
    leaving: AtomicBool,
    /// Set once the host let go (or did not answer in time): answers refused.
    closed: AtomicBool,
    events: crossbeam_channel::Sender<WorkerEvent>,
    outbox: Outbox<FromWorker>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    host_lost: Mutex<Option<HostLostHandler>>,
    /// The host watcher (its liveliness subscriber).
    watcher: Mutex<Option<Box<dyn Send>>>,
}

/// A worker connected to a host. Dropping it leaves the group gracefully.
pub struct Worker {
    inner: Arc<WorkerInner>,
}

impl Worker {
    /// Connect and announce. Errors: `InvalidArgument` (names, options),
    /// `SpawnFailed` (the Zenoh session or a thread could not start),
    /// `WouldDeadlock` inside a callback (it blocks while the session opens).
    pub fn connect(spec: WorkerSpec, options: &RemoteOptions) -> Result<Self> {
        if in_callback() {
            return Err(Error::WouldDeadlock(
                "connecting a worker blocks: not from inside a callback".into(),
            ));
        }
        if !valid_chunk(&spec.group) || !valid_chunk(&spec.id) {
            return Err(Error::InvalidArgument(
                "group name and consumer id: non-empty, without / * $ ? # or a leading @".into(),
            ));
        }
        if spec.max_in_flight == 0 {
            return Err(Error::InvalidArgument(
                "max_in_flight must be at least 1".into(),
            ));
        }
        let config = options.zenoh_config()?;
        let session = on_own_thread("zenoh session", || zenoh::open(config).wait())?
            .map_err(|e| Error::SpawnFailed(format!("zenoh session: {e}")))?;
        let (outbox, sender) =
            match start_sender("liminal-worker-send", session.clone(), FromWorker::encode) {
                Ok(started) => started,
                Err(error) => {
                    let _closed = on_own_thread("zenoh close", || session.close().wait());
                    return Err(error);
                }
            };
        let (events, event_rx) = crossbeam_channel::unbounded();
        let lease = options.lease;
        let inner = Arc::new(WorkerInner {
            keys: Keys::new(&spec.group),
            id: spec.id,
            info: WorkerInfo {
                max_in_flight: spec.max_in_flight,
                tags: spec.tags,
                lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
                host: None,
            },
            session: OwnedSession::new(session),
            incarnation: Mutex::new(Incarnation::new()),
            status: Mutex::new(WorkerStatus::Joining),
            status_changed: Condvar::new(),
            ready: Mutex::new(VecDeque::new()),
            ready_signal: Condvar::new(),
            pull_mode: spec.handler.is_none(),
            lease,
            leaving: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            events,
            outbox,
            threads: Mutex::new(vec![sender]),
            host_lost: Mutex::new(None),
            watcher: Mutex::new(None),
        });
        let started = on_own_thread("zenoh declarations", || {
            inner.watch_host()?;
            let first = Arc::clone(&inner.incarnation.lock());
            inner.announce(&first)
        })
        .and_then(|announced| announced)
        .and_then(|()| inner.start(event_rx, spec.handler, lease));
        if let Err(error) = started {
            // Closed at once: nothing joined, no leave to wait for.
            inner.set_status(WorkerStatus::Closed);
            inner.close();
            return Err(error);
        }
        Ok(Self { inner })
    }

    /// Wait up to `timeout` until the host accepted this worker. Errors:
    /// `TimedOut` (also while a temporary refusal is waited out: the
    /// worker retries by itself); `UnknownConsumer` (refused permanently:
    /// the reason); `ShutDown` (the host closed, or this worker did).
    pub fn wait_joined(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut status = self.inner.status.lock();
        loop {
            match &*status {
                WorkerStatus::Joined => return Ok(()),
                WorkerStatus::Refused(reason) => {
                    return Err(Error::UnknownConsumer(format!(
                        "refused by the host: {reason}"
                    )))
                }
                WorkerStatus::HostGone | WorkerStatus::Closed => return Err(Error::ShutDown),
                _ => {}
            }
            if self
                .inner
                .status_changed
                .wait_until(&mut status, deadline)
                .timed_out()
            {
                return Err(Error::TimedOut);
            }
        }
    }

    /// Where it stands.
    #[must_use]
    pub fn status(&self) -> WorkerStatus {
        self.inner.status.lock().clone()
    }

    /// The current incarnation's id.
    #[must_use]
    pub fn incarnation(&self) -> String {
        self.inner.incarnation.lock().id.clone()
    }

    /// The incarnation of the host that joined the current incarnation
    /// (`None` while it is not joined).
    #[must_use]
    pub fn host_incarnation(&self) -> Option<String> {
        self.inner.incarnation.lock().host()
    }

    /// Be told when the host is lost (see [`HostLostHandler`]); `None`
    /// stops it. Replaces the previous handler (dropped on the calling
    /// thread, or on the delivery thread if it is running then).
    pub fn set_host_lost_handler(&self, handler: Option<HostLostHandler>) {
        let old = std::mem::replace(&mut *self.inner.host_lost.lock(), handler);
        drop(old);
    }

    /// Pull mode: wait up to `timeout` for the next delivery. Errors:
    /// `TimedOut`, `ShutDown` (closed), `InvalidArgument` (push mode).
    pub fn next_delivery(&self, timeout: Duration) -> Result<Delivery> {
        if !self.inner.pull_mode {
            return Err(Error::InvalidArgument(
                "next_delivery on a push-mode worker".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        let mut ready = self.inner.ready.lock();
        loop {
            if let Some(delivery) = ready.pop_front() {
                return Ok(delivery);
            }
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(Error::ShutDown);
            }
            if self
                .inner
                .ready_signal
                .wait_until(&mut ready, deadline)
                .timed_out()
                && ready.is_empty()
            {
                return Err(Error::TimedOut);
            }
        }
    }

    /// Leave gracefully: the host re-routes what this worker still holds
    /// (not as a crash), then the session closes.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.inner.id)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Answers of one incarnation's deliveries, sent to the host.
struct RemoteAnswer {
    worker: Weak<WorkerInner>,
    incarnation: Arc<Incarnation>,
    consumer_id: Arc<str>,
}

impl RemoteAnswer {
    fn answer(&self, delivery_id: u64, answer: Answer, finishes: bool) -> Result<()> {
        let Some(worker) = self.worker.upgrade() else {
            return Err(Error::ShutDown);
        };
        if worker.closed.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        {
            let mut outstanding = self.incarnation.outstanding.lock();
            let held = if finishes {
                outstanding.remove(&delivery_id).is_some()
            } else {
                outstanding.contains_key(&delivery_id)
            };
            if !held {
                return Err(Error::StaleDelivery(delivery_id));
            }
        }
        worker.send(
            &self.incarnation,
            FromWorker::Answer {
                host: self.incarnation.host(),
                delivery_id,
                answer,
            },
        );
        Ok(())
    }
}

impl AnswerDelivery for RemoteAnswer {
    fn consumer_id(&self) -> &str {
        &self.consumer_id
    }

    fn ack(&self, delivery_id: u64) -> Result<()> {
        self.answer(delivery_id, Answer::Ack, true)
    }

    fn crash_for(&self, delivery_id: u64, reason: &str) -> Result<()> {
        self.answer(delivery_id, Answer::Crash(reason.to_owned()), true)
    }

    fn release(&self, delivery_id: u64, delay: Duration) -> Result<()> {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.answer(delivery_id, Answer::Release { delay_ms }, true)
    }

    fn extend_lease(&self, delivery_id: u64, by: Duration) -> Result<()> {
        if self.incarnation.ack_lease_ms.lock().is_none() && self.holds(delivery_id) {
            return Err(Error::InvalidArgument(
                "extend_lease: the host's group has no acknowledgement lease".into(),
            ));
        }
        let lease_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX).max(1);
        self.answer(delivery_id, Answer::Extend { lease_ms }, false)
    }

    fn holds(&self, delivery_id: u64) -> bool {
        self.incarnation
            .outstanding
            .lock()
            .contains_key(&delivery_id)
    }

    fn started(&self, delivery_id: u64, started: bool) -> Result<()> {
        let Some(worker) = self.worker.upgrade() else {
            return Err(Error::ShutDown);
        };
        if worker.closed.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        if !self.holds(delivery_id) {
            return Err(Error::StaleDelivery(delivery_id));
        }
        let host = self.incarnation.host();
        worker.send(
            &self.incarnation,
            if started {
                FromWorker::Started { host, delivery_id }
            } else {
                FromWorker::Deferred { host, delivery_id }
            },
        );
        Ok(())
    }
}

impl WorkerInner {
    /// Declare `incarnation`: its `to` subscriber, its info queryable, then
    /// its liveliness token (the host joins it on the token).
    fn announce(&self, incarnation: &Arc<Incarnation>) -> Result<()> {
        let zenoh_error = |what: &str, e: zenoh::Error| Error::SpawnFailed(format!("{what}: {e}"));
        let events = self.events.clone();
        let inc = incarnation.id.clone();
        let to = self
            .session
            .declare_subscriber(self.keys.host_to_worker(&self.id, &incarnation.id))
            .callback(move |sample| {
                let bytes = sample.payload().to_bytes().into_owned();
                let _sent = events.send(WorkerEvent::To(inc.clone(), bytes));
            })
            .wait()
            .map_err(|e| zenoh_error("deliveries subscriber", e))?;
        let info_key = self.keys.info(&self.id, &incarnation.id);
        let info = self.info.clone();
        let reply_key = info_key.clone();
        // Weak: the queryable is kept by the incarnation itself.
        let serving = Arc::downgrade(incarnation);
        let queryable = self
            .session
            .declare_queryable(info_key)
            .callback(move |query| {
                let info = WorkerInfo {
                    host: serving.upgrade().and_then(|i| i.host()),
                    ..info.clone()
                };
                let _replied = query.reply(reply_key.clone(), info.encode()).wait();
            })
            .wait()
            .map_err(|e| zenoh_error("info queryable", e))?;
        let token = self
            .session
            .liveliness()
            .declare_token(self.keys.alive(&self.id, &incarnation.id))
            .wait()
            .map_err(|e| zenoh_error("liveliness token", e))?;
        let mut declared = incarnation.declared.lock();
        declared.push(Box::new(to));
        declared.push(Box::new(queryable));
        declared.push(Box::new(token));
        Ok(())
    }

    /// Watch the host's liveliness tokens: a new host incarnation, or the
    /// loss of the one served, ends the current incarnation.
    fn watch_host(&self) -> Result<()> {
        let events = self.events.clone();
        let subscriber = self
            .session
            .liveliness()
            .declare_subscriber(self.keys.host_all())
            .history(true)
            .callback(move |sample| {
                if let Some(host) = Keys::host_of(sample.key_expr().as_str()) {
                    let _sent = events.send(match sample.kind() {
                        SampleKind::Put => WorkerEvent::HostUp(host),
                        SampleKind::Delete => WorkerEvent::HostDown(host),
                    });
                }
            })
            .wait()
            .map_err(|e| Error::SpawnFailed(format!("host watcher: {e}")))?;
        *self.watcher.lock() = Some(Box::new(subscriber));
        Ok(())
    }

    /// The host this incarnation served is lost: take the status it leaves
    /// the worker in (first, so that whoever the handler tells sees the
    /// worker no longer joined), drop what it held, tell the delivery code.
    fn host_lost(&self, incarnation: &Incarnation, reason: &str, status: WorkerStatus) {
        self.set_status(status);
        incarnation.outstanding.lock().clear();
        self.ready.lock().clear();
        let handler = self.host_lost.lock().take();
        if let Some(mut handler) = handler {
            let _ran = crate::base::scope::call_host(|| handler(reason));
            let mut slot = self.host_lost.lock();
            if slot.is_none() {
                *slot = Some(handler);
            }
        }
    }

    /// The host declared this incarnation dead: what it held was re-routed;
    /// start over as a new one (a new consumer for the host).
    /// The incarnation lock is held throughout, and a leaving worker does
    /// not come back: a close either sees the old incarnation (and this
    /// does nothing) or the new one fully announced (and leaves it).
    fn reincarnate(&self) {
        let mut current = self.incarnation.lock();
        if self.leaving.load(Ordering::Acquire) {
            return;
        }
        let fresh = Incarnation::new();
        let old = std::mem::replace(&mut *current, Arc::clone(&fresh));
        drop(std::mem::take(&mut *old.declared.lock()));
        self.ready.lock().clear();
        if self.announce(&fresh).is_err() {
            self.set_status(WorkerStatus::Refused(
                "could not announce a new incarnation".into(),
            ));
        }
    }

    fn set_status(&self, status: WorkerStatus) {
        *self.status.lock() = status;
        self.status_changed.notify_all();
    }

    fn send(&self, incarnation: &Incarnation, message: FromWorker) {
        let key = self.keys.worker_to_host(&self.id, &incarnation.id);
        let _sent = self.outbox.send(Some((key, message)));
    }

    fn start(
        self: &Arc<Self>,
        event_rx: Receiver<WorkerEvent>,
        handler: Option<Box<dyn DeliveryHandler>>,
        lease: Duration,
    ) -> Result<()> {
        let me = Arc::clone(self);
        let deliveries = std::thread::Builder::new()
            .name("liminal-worker-deliveries".into())
            .spawn(move || me.deliveries(&event_rx, handler))
            .map_err(|e| Error::SpawnFailed(format!("worker thread: {e}")))?;
        let me = Arc::downgrade(self);
        let beat = lease / 4;
        let beats = std::thread::Builder::new()
            .name("liminal-worker-beat".into())
            .spawn(move || loop {
                let Some(worker) = me.upgrade() else {
                    return;
                };
                if worker.closed.load(Ordering::Acquire) {
                    return;
                }
                let incarnation = Arc::clone(&worker.incarnation.lock());
                worker.send(&incarnation, FromWorker::Beat);
                // Until the next beat. A close sets the status to Closed
                // under this lock, so checking it here loses no wake-up.
                let mut status = worker.status.lock();
                if *status == WorkerStatus::Closed {
                    return;
                }
                let _woken = worker.status_changed.wait_for(&mut status, beat);
            })
            .map_err(|e| Error::SpawnFailed(format!("worker beat thread: {e}")))?;
        let mut threads = self.threads.lock();
        threads.push(deliveries);
        threads.push(beats);
        Ok(())
    }

    fn deliveries(
        self: &Arc<Self>,
        event_rx: &Receiver<WorkerEvent>,
        mut handler: Option<Box<dyn DeliveryHandler>>,
    ) {
        for event in event_rx {
            if self.closed.load(Ordering::Acquire) {
                break;
            }
            let incarnation = Arc::clone(&self.incarnation.lock());
            let bytes = match event {
                WorkerEvent::Wake => continue,
                WorkerEvent::HostUp(host) => {
                    // A new host incarnation: the one served (or said bye)
                    // is gone, whatever its token says yet.
                    if incarnation.host().is_some_and(|served| served != host) {
                        let why = format!("a new host incarnation {host}");
                        if !incarnation.host_closed.load(Ordering::Acquire) {
                            self.host_lost(
                                &incarnation,
                                &format!("host incarnation {host} replaced the one served"),
                                WorkerStatus::Reincarnating(why.clone()),
                            );
                        }
                        self.start_over(why);
                    }
                    continue;
                }
                WorkerEvent::HostDown(host) => {
                    if incarnation.host().as_deref() == Some(&*host)
                        && !incarnation.host_closed.load(Ordering::Acquire)
                    {
                        let why = format!("host incarnation {host} was lost");
                        self.host_lost(
                            &incarnation,
                            "the host's liveliness token went",
                            WorkerStatus::Reincarnating(why.clone()),
                        );
                        self.start_over(why);
                    }
                    continue;
                }
                WorkerEvent::Retry(id, reason) => {
                    if incarnation.id == id {
                        self.start_over(reason);
                    }
                    continue;
                }
                WorkerEvent::To(id, bytes) => {
                    if incarnation.id != id {
                        continue; // for an incarnation that is over
                    }
                    bytes
                }
            };
            let Ok(message) = ToWorker::decode(&bytes) else {
                continue;
            };
            let served = incarnation.host();
            if served.as_deref().is_some_and(|h| h != message.host()) {
                continue; // from another host incarnation: stale
            }
            match message {
                ToWorker::Joined { host, terms } => {
                    *incarnation.ack_lease_ms.lock() = terms.ack_lease_ms;
                    *incarnation.host.lock() = Some(host);
                    self.set_status(WorkerStatus::Joined);
                }
                ToWorker::Bye { .. } => {
                    // What it held was re-routed: answers to it are stale.
                    incarnation.host_closed.store(true, Ordering::Release);
                    // A bye that answers this worker's own leave is no loss.
                    if served.is_some() && !self.leaving.load(Ordering::Acquire) {
                        self.host_lost(
                            &incarnation,
                            "the host closed the group (bye)",
                            WorkerStatus::HostGone,
                        );
                    }
                    self.set_status(WorkerStatus::HostGone);
                }
                ToWorker::Refused {
                    reason,
                    kind: RefusalKind::Permanent,
                    ..
                } => {
                    self.set_status(WorkerStatus::Refused(reason));
                }
                ToWorker::Refused {
                    reason,
                    kind: RefusalKind::Temporary,
                    retry_after_ms,
                    ..
                } => {
                    self.set_status(WorkerStatus::Reincarnating(reason.clone()));
                    self.retry_after(
                        &incarnation,
                        Duration::from_millis(retry_after_ms.unwrap_or(0)),
                        reason,
                    );
                }
                ToWorker::Refused {
                    reason,
                    kind: RefusalKind::Dead,
                    ..
                } => {
                    // Declared dead: what it held was re-routed.
                    incarnation.outstanding.lock().clear();
                    self.start_over(reason);
                }
                ToWorker::Error { .. } | ToWorker::OldVersionRefused { .. } => {}
                ToWorker::Delivery(_) if self.leaving.load(Ordering::Acquire) => {}
                ToWorker::Delivery(wire) => {
                    incarnation.outstanding.lock().insert(wire.delivery_id, ());
                    let delivery = Delivery {
                        consumer: Arc::new(RemoteAnswer {
                            worker: Arc::downgrade(self),
                            incarnation: Arc::clone(&incarnation),
                            consumer_id: Arc::from(self.id.as_str()),
                        }),
                        delivery_id: wire.delivery_id,
                        dispatch_id: wire.dispatch_id,
                        attempt: wire.attempt,
                        redelivered: wire.redelivered,
                        crashed_handling: wire.crashed_handling,
                        crashed_holding: wire.crashed_holding,
                        message: wire.message,
                        message_id: Some(Arc::from(wire.message_id)),
                    };
                    match handler.as_mut() {
                        Some(handler) => {
                            // Dying from now on counts as dying handling it.
                            self.send(
                                &incarnation,
                                FromWorker::Started {
                                    host: Some(wire.host),
                                    delivery_id: wire.delivery_id,
                                },
                            );
                            if self.run_handler(handler.as_mut(), &delivery) {
                                // Deferred: no longer being worked on here.
                                self.send(
                                    &incarnation,
                                    FromWorker::Deferred {
                                        host: incarnation.host(),
                                        delivery_id: delivery.delivery_id,
                                    },
                                );
                            }
                        }
                        None => {
                            self.ready.lock().push_back(delivery);
                            self.ready_signal.notify_all();
                        }
                    }
                }
            }
        }
        drop(handler);
    }

    /// End the current incarnation and announce a new one.
    fn start_over(&self, reason: String) {
        self.set_status(WorkerStatus::Reincarnating(reason));
        self.reincarnate();
    }

    /// After a temporary refusal: a new incarnation once `after` passed.
    fn retry_after(&self, incarnation: &Incarnation, after: Duration, reason: String) {
        let events = self.events.clone();
        let id = incarnation.id.clone();
        let _spawned = std::thread::Builder::new()
            .name("liminal-worker-retry".into())
            .spawn(move || {
                std::thread::sleep(after);
                let _sent = events.send(WorkerEvent::Retry(id, reason));
            });
    }

    /// Run the push handler and send its verdict; true when it deferred.
    fn run_handler(&self, handler: &mut dyn DeliveryHandler, delivery: &Delivery) -> bool {
        let verdict = crate::base::scope::call_host(|| handler.deliver(delivery))
            .unwrap_or_else(|| Verdict::Crash("delivery handler panicked".into()));
        let token = delivery.token();
        let _answered = match verdict {
            Verdict::Ack => token.ack(),
            Verdict::Crash(reason) => token.crash(&reason),
            Verdict::Release(delay) => token.release(delay),
            Verdict::Defer => return true,
        };
        false
    }

    fn close(&self) {
        if self.leaving.swap(true, Ordering::AcqRel) {
            return;
        }
        let incarnation = Arc::clone(&self.incarnation.lock());
        self.send(&incarnation, FromWorker::Leave);
        {
            // The host answers a leave with a bye once what this worker held
            // is re-routed. Undeclaring the token before that could let its
            // disappearance overtake the leave and read as a crash.
            // Nobody to answer when the session reaches no peer at all (the
            // host is unreachable): no wait then.
            let reachable = on_own_thread("zenoh peers", || {
                self.session.info().peers_zid().wait().next().is_some()
            })
            .unwrap_or(false);
            let deadline = Instant::now()
                + if reachable {
                    self.lease
                } else {
                    Duration::ZERO
                };
            let mut status = self.status.lock();
            while matches!(
                *status,
                WorkerStatus::Joined | WorkerStatus::Joining | WorkerStatus::Reincarnating(_)
            ) && !self
                .status_changed
                .wait_until(&mut status, deadline)
                .timed_out()
            {}
        }
        self.closed.store(true, Ordering::Release);
        self.set_status(WorkerStatus::Closed);
        self.ready_signal.notify_all();
        // Wakes the delivery thread, which sees `closed` and ends.
        let _woken = self.events.send(WorkerEvent::Wake);
        let _stop = self.outbox.send(None);
        let threads: Vec<JoinHandle<()>> = self.threads.lock().drain(..).collect();
        for thread in threads {
            if thread.thread().id() != std::thread::current().id() {
                let _joined = thread.join();
            }
        }
        let declared = std::mem::take(&mut *self.incarnation.lock().declared.lock());
        let watcher = self.watcher.lock().take();
        let _closed = on_own_thread("zenoh close", move || {
            drop(declared);
            drop(watcher);
            self.session.close().wait()
        });
    }
}
