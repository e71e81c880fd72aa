//! The host side: a group opened to workers on a Zenoh session.
//!
//! A worker that appears (its liveliness token) is asked what it is (its
//! info queryable), then registered in the group as an ordinary consumer
//! whose delivery handler sends each delivery over Zenoh and defers; its
//! answers come back on the worker's `from` key and answer the deferred
//! delivery. When the token goes (the worker's process died and its
//! connection closed, or its session expired) or the worker falls silent
//! for its lease, the local consumer dies through the one crash funnel:
//! every delivery it held is re-routed, excluding it.
//!
//! Threads: one that handles what arrives (joins, answers, beats, deaths,
//! in order), one that sends (Zenoh puts with congestion control *block*:
//! nothing is dropped by the transport), plus Zenoh's own.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use zenoh::sample::SampleKind;
use zenoh::Wait;

use crate::base::ids::IdMap;
use crate::base::scope::in_callback;
use crate::base::Services;
use crate::consumer::core::Death;
use crate::consumer::reporter::Reporter;
use crate::consumer::{
    Consumer, ConsumerSpec, CrashHandler, CrashKind, CrashReport, Delivery, DeliveryHandler,
    DeliveryToken, Verdict,
};
use crate::error::{Error, Result};
use crate::group::Group;
use crate::remote::config::RemoteOptions;
use crate::remote::own_thread::{on_own_thread, start_sender, Outbox, OwnedSession};
use crate::remote::protocol::{
    message_id, new_incarnation, valid_chunk, Answer, FromWorker, InfoError, JoinTerms, Keys,
    RefusalKind, ToWorker, WireDelivery, WorkerInfo, LEASE_FLOOR_MS, VERSION,
};

/// Dead incarnations remembered, so one that comes back (a frozen worker
/// resuming) is told to start over as a new one.
const DEAD_REMEMBERED: usize = 4096;

/// How long a worker of `lease` may be silent before it is declared dead.
fn silence_limit(lease: Duration) -> Duration {
    lease * 7 / 8
}

/// How long the host waits for a joining worker's info, all tries together.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times the host asks for a worker's info when the query ends
/// without a reply (a client that let the query go before replying).
const INFO_TRIES: u32 = 3;

/// The protocol version whose workers are told they speak an old one.
const OLD_VERSION: u32 = 1;

type WorkerKey = (String, String);

enum Event {
    Alive(WorkerKey),
    /// A worker of protocol version 1 announced itself.
    OldVersion(WorkerKey),
    Gone(WorkerKey, Instant),
    /// A message from a worker, stamped when it arrived (the events thread
    /// may run late on a busy machine: silence is measured from arrival).
    From(WorkerKey, Vec<u8>, Instant),
    /// Time to judge a worker's silence, stamped when the timer fired: the
    /// messages that arrived before it are ahead of it in the queue, so
    /// silence is measured up to the stamp, however late the thread runs.
    Check(WorkerKey, Instant),
    Stop,
}

/// What the local consumer of a worker needs to reach it.
struct Link {
    key: String,
    /// This host's incarnation.
    host: Arc<str>,
    /// The group's acknowledgement lease, in milliseconds.
    ack_lease_ms: Option<u64>,
    outbox: Outbox<ToWorker>,
    tokens: Mutex<IdMap<DeliveryToken>>,
}

struct RemoteHandler {
    link: Arc<Link>,
}

impl DeliveryHandler for RemoteHandler {
    fn deliver(&mut self, delivery: &Delivery) -> Verdict {
        self.link
            .tokens
            .lock()
            .insert(delivery.delivery_id(), delivery.token());
        let wire = WireDelivery {
            host: self.link.host.to_string(),
            delivery_id: delivery.delivery_id(),
            dispatch_id: delivery.dispatch_id(),
            message_id: match delivery.message_arc().stable_id() {
                // A durable group's id: the same after the host restarts.
                Some(id) => id.to_string(),
                None => message_id(&self.link.host, delivery.dispatch_id()),
            },
            lease_ms: self.link.ack_lease_ms,
            attempt: delivery.attempt(),
            redelivered: delivery.redelivered(),
            crashed_handling: delivery.crashed_handling(),
            crashed_holding: delivery.crashed_holding(),
            message: Arc::clone(delivery.message_arc()),
        };
        let _sent = self
            .link
            .outbox
            .send(Some((self.link.key.clone(), ToWorker::Delivery(wire))));
        Verdict::Defer
    }
}

/// One joined worker incarnation.
struct Joined {
    consumer: Consumer,
    link: Arc<Link>,
    lease: Duration,
    last_seen: Instant,
    beats: u64,
}

struct State {
    workers: HashMap<WorkerKey, Joined>,
    dead: VecDeque<WorkerKey>,
}

pub(crate) struct HostInner {
    group: Group,
    keys: Keys,
    /// The keys of protocol version 1, whose workers are refused.
    old_keys: Keys,
    /// This opening's incarnation: never reused.
    incarnation: Arc<str>,
    session: OwnedSession,
    max_lease: Duration,
    state: Mutex<State>,
    events: Sender<Event>,
    outbox: Mutex<Option<Outbox<ToWorker>>>,
    crash_reports: Reporter,
    closed: AtomicBool,
    stale_answers: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    declared: Mutex<Vec<Box<dyn Send>>>,
    myself: Weak<HostInner>,
}

/// A group opened to remote workers. Dropping it closes it.
pub struct RemoteHost {
    inner: Arc<HostInner>,
}

impl RemoteHost {
    /// Open `group` to workers of the group name `name` (a key-expression
    /// chunk) on a Zenoh session made from `options`. `on_crash` is told
    /// of every remote consumer that fails (connection lost, session
    /// expired, its own crash verdict, an expired ack lease). Blocks while
    /// the session opens: refused inside a callback (`WouldDeadlock`).
    pub fn open(
        group: &Group,
        name: &str,
        options: &RemoteOptions,
        on_crash: Option<CrashHandler>,
    ) -> Result<Self> {
        if in_callback() {
            return Err(Error::WouldDeadlock(
                "opening a remote host blocks: not from inside a callback".into(),
            ));
        }
        if !valid_chunk(name) {
            return Err(Error::InvalidArgument(format!(
                "remote group name {name:?}: non-empty, without / * $ ? # or a leading @"
            )));
        }
        let services = Arc::clone(&group.dispatcher.services);
        if services.is_shut_down() {
            return Err(Error::ShutDown);
        }
        let config = options.zenoh_config()?;
        let session = on_own_thread("zenoh session", || zenoh::open(config).wait())?
            .map_err(|e| Error::SpawnFailed(format!("zenoh session: {e}")))?;
        let (events, event_rx) = crossbeam_channel::unbounded();
        let (outbox, sender) =
            match start_sender("liminal-remote-send", session.clone(), ToWorker::encode) {
                Ok(started) => started,
                Err(error) => {
                    let _closed = on_own_thread("zenoh close", || session.close().wait());
                    return Err(error);
                }
            };
        let inner = Arc::new_cyclic(|myself| HostInner {
            group: group.clone(),
            keys: Keys::new(name),
            old_keys: Keys::of_version(name, OLD_VERSION),
            incarnation: Arc::from(new_incarnation()),
            session: OwnedSession::new(session),
            max_lease: options.lease,
            state: Mutex::new(State {
                workers: HashMap::new(),
                dead: VecDeque::new(),
            }),
            events,
            outbox: Mutex::new(Some(outbox)),
            crash_reports: Reporter::new(on_crash),
            closed: AtomicBool::new(false),
            stale_answers: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            declared: Mutex::new(Vec::new()),
            myself: myself.clone(),
        });
        inner.threads.lock().push(sender);
        if let Err(error) = inner.start(event_rx, &services) {
            inner.close();
            return Err(error);
        }
        // Closes with the runtime and with the group.
        let weak = Arc::downgrade(&inner) as Weak<dyn crate::base::Extension>;
        services.extensions.attach(weak.clone());
        group.dispatcher.extensions.attach(weak);
        Ok(Self { inner })
    }

    /// Remote consumers joined now.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.inner.state.lock().workers.len()
    }

    /// This opening's incarnation: 32 hex digits, random, never reused.
    /// It names the host's liveliness token, and every message the host
    /// sends; an answer that names another incarnation is stale.
    #[must_use]
    pub fn incarnation(&self) -> &str {
        &self.inner.incarnation
    }

    /// Answers that arrived for deliveries no longer held by their sender:
    /// already re-routed, expired or answered, from an incarnation
    /// declared dead, or naming another host incarnation (or none). They
    /// are never applied; this counts them.
    #[must_use]
    pub fn stale_answers(&self) -> u64 {
        self.inner.stale_answers.load(Ordering::Relaxed)
    }

    /// Close: workers are told (`bye`), remote consumers leave (what they
    /// held is re-routed), the session closes, the threads are joined.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl std::fmt::Debug for RemoteHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHost")
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}

impl HostInner {
    fn start(self: &Arc<Self>, event_rx: Receiver<Event>, services: &Arc<Services>) -> Result<()> {
        on_own_thread("zenoh declarations", || self.declare())??;
        let me = Arc::clone(self);
        let services = Arc::clone(services);
        let handler = std::thread::Builder::new()
            .name("liminal-remote-events".into())
            .spawn(move || {
                for event in event_rx {
                    if matches!(event, Event::Stop) {
                        break;
                    }
                    me.handle(event, &services);
                }
            })
            .map_err(|e| Error::SpawnFailed(format!("remote events: {e}")))?;
        self.threads.lock().push(handler);
        Ok(())
    }

    /// The host's token, and its subscribers to answers and to workers'
    /// tokens.
    fn declare(&self) -> Result<()> {
        let zenoh_error = |what: &str, e: zenoh::Error| Error::SpawnFailed(format!("{what}: {e}"));
        let token = self
            .session
            .liveliness()
            .declare_token(self.keys.host(&self.incarnation))
            .wait()
            .map_err(|e| zenoh_error("host token", e))?;
        let events = self.events.clone();
        let from = self
            .session
            .declare_subscriber(self.keys.all_worker_to_host())
            .callback(move |sample| {
                if let Some(worker) = Keys::worker_of(sample.key_expr().as_str()) {
                    let bytes = sample.payload().to_bytes().into_owned();
                    let _sent = events.send(Event::From(worker, bytes, Instant::now()));
                }
            })
            .wait()
            .map_err(|e| zenoh_error("answers subscriber", e))?;
        let events = self.events.clone();
        let alive = self
            .session
            .liveliness()
            .declare_subscriber(self.keys.alive_all())
            .history(true)
            .callback(move |sample| {
                let observed = Instant::now();
                if let Some(worker) = Keys::worker_of(sample.key_expr().as_str()) {
                    let event = match sample.kind() {
                        SampleKind::Put => Event::Alive(worker),
                        SampleKind::Delete => Event::Gone(worker, observed),
                    };
                    let _sent = events.send(event);
                }
            })
            .wait()
            .map_err(|e| zenoh_error("liveliness subscriber", e))?;
        let events = self.events.clone();
        let old = self
            .session
            .liveliness()
            .declare_subscriber(self.old_keys.alive_all())
            .history(true)
            .callback(move |sample| {
                if sample.kind() == SampleKind::Put {
                    if let Some(worker) = Keys::worker_of(sample.key_expr().as_str()) {
                        let _sent = events.send(Event::OldVersion(worker));
                    }
                }
            })
            .wait()
            .map_err(|e| zenoh_error("old-version subscriber", e))?;
        {
            let mut declared = self.declared.lock();
            declared.push(Box::new(token));
            declared.push(Box::new(from));
            declared.push(Box::new(alive));
            declared.push(Box::new(old));
        }
        Ok(())
    }

    fn send(&self, key: String, message: ToWorker) {
        if let Some(outbox) = self.outbox.lock().as_ref() {
            let _sent = outbox.send(Some((key, message)));
        }
    }

    fn handle(&self, event: Event, services: &Arc<Services>) {
        match event {
            Event::Alive(worker) => self.join(worker, services),
            Event::OldVersion(worker) => self.send(
                self.old_keys.host_to_worker(&worker.0, &worker.1),
                ToWorker::OldVersionRefused {
                    reason: format!(
                        "protocol {OLD_VERSION}: this host speaks protocol {VERSION} only \
                         (keys liminal/v{VERSION}/...); see docs/PROTOCOL.md"
                    ),
                },
            ),
            Event::Gone(worker, observed) => self.gone(&worker, observed),
            Event::From(worker, bytes, arrived) => self.from(&worker, &bytes, arrived),
            Event::Check(worker, due) => self.check(worker, due, services),
            Event::Stop => {}
        }
    }

    /// Tell `worker` it is not a consumer.
    fn refuse(
        &self,
        worker: &WorkerKey,
        kind: RefusalKind,
        reason: String,
        retry: Option<Duration>,
    ) {
        self.send(
            self.keys.host_to_worker(&worker.0, &worker.1),
            ToWorker::Refused {
                host: self.incarnation.to_string(),
                kind,
                reason,
                retry_after_ms: retry.map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX)),
            },
        );
    }

    fn refuse_dead(&self, worker: &WorkerKey, reason: String) {
        self.refuse(worker, RefusalKind::Dead, reason, None);
    }

    fn join(&self, worker: WorkerKey, services: &Arc<Services>) {
        let (id, incarnation) = (&worker.0, &worker.1);
        let to = self.keys.host_to_worker(id, incarnation);
        {
            let state = self.state.lock();
            if state.workers.contains_key(&worker) {
                return;
            }
            if state.dead.contains(&worker) {
                drop(state);
                self.refuse_dead(&worker, "this incarnation was declared dead".into());
                return;
            }
        }
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let permanent = |reason: String| self.refuse(&worker, RefusalKind::Permanent, reason, None);
        if !valid_chunk(id) || !valid_chunk(incarnation) {
            return permanent("invalid consumer id or incarnation".into());
        }
        let info = match self.ask_info(id, incarnation) {
            Ok(info) => info,
            Err(InfoError::Version(version)) => {
                return permanent(format!(
                    "protocol {version}: this host speaks protocol {VERSION} only"
                ))
            }
            Err(InfoError::Bad(reason)) => return permanent(format!("bad info reply: {reason}")),
        };
        if let Some(other) = info.host.as_deref().filter(|h| **h != *self.incarnation) {
            return self.refuse_dead(
                &worker,
                format!(
                    "this worker incarnation served host incarnation {other}; this is host \
                     incarnation {}: announce a new incarnation",
                    self.incarnation
                ),
            );
        }
        let max_ms = u64::try_from(self.max_lease.as_millis()).unwrap_or(u64::MAX);
        if info.lease_ms < LEASE_FLOOR_MS {
            return permanent(format!(
                "lease_ms {} is below the floor of {LEASE_FLOOR_MS} ms",
                info.lease_ms
            ));
        }
        if info.lease_ms > max_ms {
            return permanent(format!(
                "lease_ms {} is above this host's maximum of {max_ms} ms",
                info.lease_ms
            ));
        }
        let lease = Duration::from_millis(info.lease_ms);
        let Some(outbox) = self.outbox.lock().clone() else {
            return;
        };
        let options = self.group.options();
        let link = Arc::new(Link {
            key: to.clone(),
            host: Arc::clone(&self.incarnation),
            ack_lease_ms: options
                .ack_lease
                .map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
            outbox,
            tokens: Mutex::new(IdMap::default()),
        });
        // Refused now rather than after `joined`: an id in use, a closed group.
        if self.group.consumer(id).is_some() {
            let holder = {
                let state = self.state.lock();
                state
                    .workers
                    .iter()
                    .find(|((other, _), _)| other == id)
                    .map(|((_, inc), joined)| (inc.clone(), silence_limit(joined.lease)))
            };
            return match holder {
                // Clears when that incarnation leaves or is declared dead:
                // within its silence limit if it is gone.
                Some((other, limit)) => self.refuse(
                    &worker,
                    RefusalKind::Temporary,
                    format!(
                        "duplicate consumer id {id}: incarnation {other} holds it and has not \
                         been declared dead; announce a new incarnation after retry_after_ms"
                    ),
                    Some(limit),
                ),
                None => permanent(format!(
                    "duplicate consumer id {id}: a local consumer of the group holds it"
                )),
            };
        }
        if self.group.is_closed() {
            return permanent("the group is closed".into());
        }
        // Joined first: it travels ahead of the first delivery on the same
        // key. (A registration that still fails, in a race with a local one,
        // is refused right after it: the worker sees the refusal.)
        self.send(
            to.clone(),
            ToWorker::Joined {
                host: self.incarnation.to_string(),
                terms: JoinTerms {
                    ack_lease_ms: link.ack_lease_ms,
                    lease_policy: match options.lease_policy {
                        crate::consumer::LeasePolicy::Crash => "crash",
                        crate::consumer::LeasePolicy::Quarantine => "quarantine",
                    },
                    lease_ms: info.lease_ms,
                    silence_ms: u64::try_from(silence_limit(lease).as_millis()).unwrap_or(u64::MAX),
                },
            },
        );
        let host = self.myself.clone();
        let crashed_worker = worker.clone();
        let spec = ConsumerSpec::push(
            id.clone(),
            RemoteHandler {
                link: Arc::clone(&link),
            },
        )
        .max_in_flight(info.max_in_flight)
        .tags(info.tags)
        .on_crash(move |report: &CrashReport| {
            if let Some(host) = host.upgrade() {
                host.consumer_crashed(&crashed_worker, report);
            }
        });
        let consumer = match self.group.register(spec) {
            Ok(consumer) => consumer,
            Err(error) => return permanent(format!("not registered: {error}")),
        };
        let mut state = self.state.lock();
        if self.closed.load(Ordering::Acquire) {
            // Closed while joining: the close did not see this one.
            drop(state);
            let _gone = consumer.leave();
            return;
        }
        state.workers.insert(
            worker.clone(),
            Joined {
                consumer,
                link,
                lease,
                last_seen: Instant::now(),
                beats: 0,
            },
        );
        drop(state);
        self.arm_check(worker, silence_limit(lease), services);
    }

    /// Ask the worker what it is. The query names this host incarnation
    /// (`?host=<incarnation>`); a query that ends without a reply is asked
    /// again, up to [`INFO_TRIES`] times within [`INFO_TIMEOUT`].
    fn ask_info(&self, id: &str, incarnation: &str) -> std::result::Result<WorkerInfo, InfoError> {
        let deadline = Instant::now() + INFO_TIMEOUT;
        let selector = format!(
            "{}?host={}",
            self.keys.info(id, incarnation),
            self.incarnation
        );
        for _ in 0..INFO_TRIES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let replies = self
                .session
                .get(selector.as_str())
                .timeout(left)
                .wait()
                .map_err(|e| InfoError::Bad(format!("info query: {e}")))?;
            let Ok(reply) = replies.recv() else {
                continue;
            };
            let sample = reply
                .result()
                .map_err(|e| InfoError::Bad(format!("info query failed: {e:?}")))?;
            return WorkerInfo::decode(&sample.payload().to_bytes());
        }
        Err(InfoError::Bad(format!(
            "the worker did not reply to its info query (asked {INFO_TRIES} times within {} s)",
            INFO_TIMEOUT.as_secs()
        )))
    }

    fn arm_check(&self, worker: WorkerKey, after: Duration, services: &Arc<Services>) {
        let events = self.events.clone();
        let _armed = services.timer.at(Instant::now() + after, move || {
            let _sent = events.send(Event::Check(worker, Instant::now()));
        });
    }

    /// Is the worker still heard from? Declared dead after 7/8 of its
    /// lease without a packet (three and a half beat intervals missed): so
    /// a frozen worker is declared dead within its lease of freezing, timer
    /// and scheduling delays included.
    fn check(&self, worker: WorkerKey, due: Instant, services: &Arc<Services>) {
        let (silent, limit) = {
            let state = self.state.lock();
            let Some(joined) = state.workers.get(&worker) else {
                return;
            };
            (
                due.saturating_duration_since(joined.last_seen),
                silence_limit(joined.lease),
            )
        };
        if silent >= limit {
            self.lost(
                &worker,
                CrashKind::SessionExpired,
                format!(
                    "session expired: the worker was silent for {} ms",
                    silent.as_millis()
                ),
                Instant::now(),
            );
        } else {
            self.arm_check(worker, limit - silent, services);
        }
    }

    /// The worker's token went: its connection closed, or its session expired.
    fn gone(&self, worker: &WorkerKey, observed: Instant) {
        let classified = {
            let state = self.state.lock();
            state.workers.get(worker).map(|joined| {
                let silent = observed.saturating_duration_since(joined.last_seen);
                if silent * 4 >= joined.lease * 3 {
                    (
                        CrashKind::SessionExpired,
                        format!(
                            "session expired: the worker was silent for {} ms",
                            silent.as_millis()
                        ),
                    )
                } else {
                    (
                        CrashKind::ConnectionLost,
                        "connection lost: the worker's liveliness token went".to_owned(),
                    )
                }
            })
        };
        if let Some((kind, reason)) = classified {
            self.lost(worker, kind, reason, observed);
        }
    }

    fn lost(&self, worker: &WorkerKey, kind: CrashKind, reason: String, observed: Instant) {
        let Some(joined) = self.forget(worker) else {
            return;
        };
        joined.consumer.core.die(
            Death::Crash {
                kind,
                reason,
                answered: None,
            },
            observed,
        );
        self.refuse_dead(worker, "this incarnation was declared dead".into());
    }

    fn forget(&self, worker: &WorkerKey) -> Option<Joined> {
        let mut state = self.state.lock();
        let joined = state.workers.remove(worker)?;
        state.dead.push_back(worker.clone());
        while state.dead.len() > DEAD_REMEMBERED {
            state.dead.pop_front();
        }
        Some(joined)
    }

    /// The local consumer of `worker` failed (any reason): tell the worker
    /// (if it still listens) and the host.
    fn consumer_crashed(&self, worker: &WorkerKey, report: &CrashReport) {
        if !report.alive && self.forget(worker).is_some() {
            self.refuse_dead(worker, format!("declared dead: {}", report.reason));
        }
        self.crash_reports.report(report.clone(), false);
    }

    fn from(&self, worker: &WorkerKey, bytes: &[u8], arrived: Instant) {
        let Ok(message) = FromWorker::decode(bytes) else {
            return;
        };
        let stale = || {
            self.stale_answers.fetch_add(1, Ordering::Relaxed);
        };
        let (consumer, token) = {
            let mut state = self.state.lock();
            let Some(joined) = state.workers.get_mut(worker) else {
                // Unknown or dead incarnation: its answers are stale. A dead
                // one that still beats missed its refusal (it was cut off or
                // frozen then): tell it again.
                let dead = state.dead.contains(worker);
                drop(state);
                match message {
                    FromWorker::Answer { .. } => stale(),
                    // Every leave is answered, so the worker may go.
                    FromWorker::Leave => self.send(
                        self.keys.host_to_worker(&worker.0, &worker.1),
                        ToWorker::Bye {
                            host: self.incarnation.to_string(),
                        },
                    ),
                    FromWorker::Beat | FromWorker::Started { .. } | FromWorker::Deferred { .. }
                        if dead =>
                    {
                        self.refuse_dead(worker, "this incarnation was declared dead".into());
                    }
                    _ => {}
                }
                return;
            };
            joined.last_seen = joined.last_seen.max(arrived);
            let token = match &message {
                // An answer to another host incarnation (or to none) is
                // never looked up: its delivery id may be one of ours.
                FromWorker::Answer { host, .. }
                | FromWorker::Started { host, .. }
                | FromWorker::Deferred { host, .. }
                    if host.as_deref() != Some(&*self.incarnation) =>
                {
                    None
                }
                FromWorker::Answer {
                    delivery_id,
                    answer,
                    ..
                } => {
                    let mut tokens = joined.link.tokens.lock();
                    match answer {
                        Answer::Extend { .. } => tokens.get(delivery_id).cloned(),
                        _ => tokens.remove(delivery_id),
                    }
                }
                FromWorker::Started { delivery_id, .. }
                | FromWorker::Deferred { delivery_id, .. } => {
                    joined.link.tokens.lock().get(delivery_id).cloned()
                }
                FromWorker::Beat => {
                    joined.beats += 1;
                    if joined.beats % 64 == 0 {
                        // Deliveries taken back (lease, deadline) are not answered.
                        joined.link.tokens.lock().retain(|_, token| token.is_held());
                    }
                    None
                }
                FromWorker::Leave => None,
            };
            (joined.consumer.clone(), token)
        };
        match message {
            FromWorker::Beat => {}
            FromWorker::Leave => {
                if self.forget(worker).is_some() {
                    let _gone = consumer.leave();
                    // What it held is re-routed: it may undeclare now.
                    self.send(
                        self.keys.host_to_worker(&worker.0, &worker.1),
                        ToWorker::Bye {
                            host: self.incarnation.to_string(),
                        },
                    );
                }
            }
            FromWorker::Started { .. } | FromWorker::Deferred { .. } => {
                // Not an answer: a stale one changes nothing and is not counted.
                if let Some(token) = token {
                    let _marked = token.set_started(matches!(message, FromWorker::Started { .. }));
                }
            }
            FromWorker::Answer {
                answer,
                delivery_id,
                ..
            } => {
                if let (Answer::Extend { .. }, None) = (&answer, self.group.options().ack_lease) {
                    self.send(
                        self.keys.host_to_worker(&worker.0, &worker.1),
                        ToWorker::Error {
                            host: self.incarnation.to_string(),
                            delivery_id: Some(delivery_id),
                            reason: "extend: this group has no acknowledgement lease; \
                                     nothing was changed"
                                .into(),
                        },
                    );
                    return;
                }
                let Some(token) = token else {
                    return stale();
                };
                // The consumer fences what it no longer holds.
                let answered = match answer {
                    Answer::Ack => token.ack(),
                    Answer::Crash(reason) => token.crash_as_verdict(&reason),
                    Answer::Release { delay_ms } => token.release(Duration::from_millis(delay_ms)),
                    Answer::Extend { lease_ms } => {
                        token.extend_lease(Duration::from_millis(lease_ms))
                    }
                };
                if answered.is_err() {
                    stale();
                }
            }
        }
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let joined: Vec<Joined> = self.state.lock().workers.drain().map(|(_, j)| j).collect();
        for worker in &joined {
            self.send(
                worker.link.key.clone(),
                ToWorker::Bye {
                    host: self.incarnation.to_string(),
                },
            );
        }
        for worker in joined {
            let _gone = worker.consumer.leave();
        }
        let _stop = self.events.send(Event::Stop);
        if let Some(outbox) = self.outbox.lock().take() {
            let _stop = outbox.send(None);
        }
        let threads: Vec<JoinHandle<()>> = self.threads.lock().drain(..).collect();
        for thread in threads {
            if thread.thread().id() != std::thread::current().id() {
                let _joined = thread.join();
            }
        }
        // Reports still being delivered finish first; then the handler goes
        // (a C handler's `free_user` runs here, before the runtime is freed).
        self.crash_reports.close();
        let declared = std::mem::take(&mut *self.declared.lock());
        let _closed = on_own_thread("zenoh close", move || {
            drop(declared);
            self.session.close().wait()
        });
    }
}

impl crate::base::Extension for HostInner {
    fn shut_down(&self) {
        self.close();
    }
}
