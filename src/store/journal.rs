//! The journal of one durable group: group commit over the store's log,
//! admission in acceptance order, the index of pending messages,
//! compaction.
//!
//! **Group commit.** A dispatch encodes its record into a shared buffer and
//! waits until the synced offset covers it. The first waiter that finds no
//! sync running becomes the leader: it takes the whole buffer, writes it
//! and calls `fdatasync` once for everyone in it, then wakes them. Records
//! that need no waiter (completions, attempt counts) go into the same
//! buffer and a flusher thread commits them when no dispatch does.
//!
//! **Order.** Sequence numbers are issued as records enter the buffer, and
//! the leader of the commit that made a batch durable admits its messages
//! to the waiting room in that order before it wakes their dispatchers, so
//! the order a group's keys see before a restart is the order the store
//! gives back after it. (Admitting is all the leader does for others: what
//! may run host code, a dropped message's completion, runs on each
//! dispatcher's own thread afterwards.)
//!
//! **Records nobody waits for** (completions, attempt counts) ride with the
//! next commit; when no dispatch comes, the flusher thread commits them
//! within [`LAZY_COMMIT`].
//!
//! **A failed sync poisons the journal**: the kernel may have dropped the
//! pages it could not write, so a retry that succeeds proves nothing. Every
//! waiting and later dispatch fails with `StoreFailed`; what was
//! acknowledged before stays acknowledged.
//!
//! **Compaction.** Segments are deleted oldest first once nothing in them
//! is pending. When old segments hold little that is pending but pin much
//! disk, their pending messages are written again into the active segment
//! (same sequence numbers, current counts) and the old segment goes once
//! that write is durable.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::stats::{StoreDropped as Dropped, StoreStats};
use crate::store::host::{Change, HostSink, HostStore};
use crate::store::log::Log;
use crate::store::record::{Accepted, Counts, Record};
use crate::store::{StoreOptions, SyncPolicy};

/// How long a completion or attempt record may wait for a dispatch's commit
/// to ride with before the flusher commits it alone. A crash in this window
/// delivers the completed message again (a duplicate, never a loss).
pub(crate) const LAZY_COMMIT: Duration = Duration::from_millis(10);

/// Admits one durable message to the waiting room (run by a commit's
/// leader, in sequence order, once the message is durable).
type Admission = Box<dyn FnOnce() + Send>;

/// A message the store gave back on opening.
pub(crate) struct Recovered {
    pub(crate) seq: u64,
    /// The message, with its ordering key and stable id.
    pub(crate) message: Arc<Message>,
    /// Its deadline, if it had one (wall clock).
    pub(crate) deadline: Option<SystemTime>,
    pub(crate) counts: Counts,
}

/// A pending message, as the journal tracks it.
struct Pending {
    /// The segment its newest copy is in (`None` until written).
    segment: Option<u64>,
    len: u64,
    deadline_unix_ms: Option<u64>,
    counts: Counts,
    message: Arc<Message>,
}

/// A buffered record: the message it is about, where its bytes lie in the
/// buffer, and what it does once written.
struct Entry {
    seq: u64,
    span: std::ops::Range<usize>,
    what: What,
}

enum What {
    /// A new message: its segment becomes the one written; its admission
    /// runs once it is durable.
    Accepted(Option<Admission>),
    /// A pending message written again by compaction, out of `from`.
    Moved { from: u64 },
    /// Its counts changed.
    Attempted,
    /// It completed.
    Completed,
}

/// Where a journal's records go.
enum Sink {
    /// The embedded store: a directory of segment files.
    Log(Log),
    /// The host's own store.
    Host(HostSink),
}

#[derive(Default)]
struct Segment {
    /// Pending messages whose newest copy is here.
    pending: u64,
    bytes: u64,
}

struct State {
    buffer: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes ever put in the buffer, and bytes durable (or, with an
    /// interval policy, written).
    appended: u64,
    committed: u64,
    committing: bool,
    poisoned: Option<String>,
    closing: bool,
    next_seq: u64,
    pending: HashMap<u64, Pending>,
    pending_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    /// The segment whose pending messages are being written again.
    moving: Option<u64>,
}

/// Figures kept outside the state's lock.
#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
    sync_max_nanos: AtomicU64,
    bytes_written: AtomicU64,
}

pub(crate) struct Journal {
    state: Mutex<State>,
    /// Dispatches wait here for their commit.
    committed: Condvar,
    /// The flusher waits here for records nobody else will commit.
    flush: Condvar,
    /// The store; `None` once closed (its lock released).
    sink: Mutex<Option<Sink>>,
    options: StoreOptions,
    /// Whether the records go to the host's own store.
    host: bool,
    store_id: u64,
    recovered: u64,
    dropped: Dropped,
    counters: Counters,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .max(1)
}

impl Journal {
    /// Open the store at `dir`: lock it, read it, and return what is
    /// pending in sequence order.
    pub(crate) fn open(dir: &Path, options: StoreOptions) -> Result<(Arc<Self>, Vec<Recovered>)> {
        let (log, scan) = Log::open(dir)?;
        Self::start(Sink::Log(log), scan, options)
    }

    /// Open on the host's own store: read it and return what is pending in
    /// sequence order (`options` gives only the sync policy's absence: the
    /// host's commit is durable when it returns).
    pub(crate) fn open_host(
        store: Box<dyn HostStore>,
        options: StoreOptions,
    ) -> Result<(Arc<Self>, Vec<Recovered>)> {
        let (sink, scan) = HostSink::open(store, crate::store::log::new_store_id())?;
        Self::start(Sink::Host(sink), scan, options)
    }

    fn start(
        mut sink: Sink,
        scan: crate::store::log::Scan,
        options: StoreOptions,
    ) -> Result<(Arc<Self>, Vec<Recovered>)> {
        let store_id = match &sink {
            Sink::Log(log) => log.store_id(),
            Sink::Host(host) => host.store_id(),
        };
        let mut pending: HashMap<u64, Pending> = HashMap::with_capacity(scan.records.len());
        let mut segments: BTreeMap<u64, Segment> = BTreeMap::new();
        for &(number, bytes) in &scan.segments {
            segments.insert(number, Segment { pending: 0, bytes });
        }
        let mut highest = scan.first_seq.saturating_sub(1);
        for found in scan.records {
            highest = highest.max(found.record.seq());
            match found.record {
                Record::Accepted(accepted) => {
                    let previous = pending.insert(
                        accepted.seq,
                        Pending {
                            segment: Some(found.segment),
                            len: found.len,
                            deadline_unix_ms: accepted.deadline_unix_ms,
                            counts: accepted.counts,
                            // Not shared yet: no copy.
                            message: Message::identified(
                                accepted.message,
                                Arc::from(message_id(store_id, accepted.seq)),
                            ),
                        },
                    );
                    if let Some(Pending {
                        segment: Some(old), ..
                    }) = previous
                    {
                        if let Some(segment) = segments.get_mut(&old) {
                            segment.pending -= 1;
                        }
                    }
                    if let Some(segment) = segments.get_mut(&found.segment) {
                        segment.pending += 1;
                    }
                }
                Record::Attempted { seq, counts } => {
                    if let Some(entry) = pending.get_mut(&seq) {
                        entry.counts = counts;
                    }
                }
                Record::Completed { seq } => {
                    if let Some(Pending {
                        segment: Some(old), ..
                    }) = pending.remove(&seq)
                    {
                        if let Some(segment) = segments.get_mut(&old) {
                            segment.pending -= 1;
                        }
                    }
                }
            }
        }
        let next_seq = highest + 1;
        if let Sink::Log(log) = &mut sink {
            log.start(next_seq)?;
            segments.insert(
                log.active(),
                Segment {
                    pending: 0,
                    bytes: log.active_len(),
                },
            );
        }
        let mut recovered: Vec<Recovered> = pending
            .iter()
            .map(|(&seq, entry)| Recovered {
                seq,
                message: Arc::clone(&entry.message),
                deadline: entry
                    .deadline_unix_ms
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                counts: entry.counts,
            })
            .collect();
        recovered.sort_unstable_by_key(|r| r.seq);
        let pending_bytes = pending.values().map(|p| p.len).sum();
        let host = matches!(sink, Sink::Host(_));
        let journal = Arc::new(Self {
            state: Mutex::new(State {
                buffer: Vec::new(),
                entries: Vec::new(),
                appended: 0,
                committed: 0,
                committing: false,
                poisoned: None,
                closing: false,
                next_seq,
                pending,
                pending_bytes,
                segments,
                moving: None,
            }),
            committed: Condvar::new(),
            flush: Condvar::new(),
            sink: Mutex::new(Some(sink)),
            options,
            host,
            store_id,
            recovered: recovered.len() as u64,
            dropped: scan.dropped,
            counters: Counters::default(),
            flusher: Mutex::new(None),
        });
        journal.compact()?;
        let weak = Arc::downgrade(&journal);
        let flusher = std::thread::Builder::new()
            .name("liminal-store".into())
            .spawn(move || flush_loop(&weak))
            .map_err(|e| Error::SpawnFailed(format!("store flusher: {e}")))?;
        *journal.flusher.lock() = Some(flusher);
        Ok((journal, recovered))
    }

    /// The stable id of message `seq` of this store.
    pub(crate) fn message_id(&self, seq: u64) -> Arc<str> {
        Arc::from(message_id(self.store_id, seq))
    }

    /// Accept `message`: write its record, wait until it is durable, and
    /// return what `admit` returned. `admit` gets the message's sequence
    /// number and the message carrying its stable id; it runs once the
    /// record is durable, in sequence order among this journal's messages
    /// (on the thread that led the commit, which may be another
    /// dispatcher's: keep it to admitting). Fails with `StoreFailed` once
    /// the journal is poisoned or closed (nothing was acknowledged then,
    /// and `admit` never runs).
    pub(crate) fn accept<R: Send + 'static>(
        &self,
        message: &Arc<Message>,
        deadline: Option<SystemTime>,
        admit: impl FnOnce(u64, Arc<Message>) -> R + Send + 'static,
    ) -> Result<R> {
        let mut results = self.accept_many(vec![(Arc::clone(message), deadline, admit)])?;
        results
            .pop()
            .flatten()
            .ok_or_else(|| Error::StoreFailed("admitting a durable message panicked".into()))
    }

    /// [`Journal::accept`] for many messages at once: their records go into
    /// one commit (one sync) and they are admitted in the order given.
    /// Returns each admission's result (`None` where one panicked).
    pub(crate) fn accept_many<R: Send + 'static, F>(
        &self,
        messages: Vec<(Arc<Message>, Option<SystemTime>, F)>,
    ) -> Result<Vec<Option<R>>>
    where
        F: FnOnce(u64, Arc<Message>) -> R + Send + 'static,
    {
        let slots: Vec<Arc<Mutex<Option<R>>>> = messages
            .iter()
            .map(|_| Arc::new(Mutex::new(None)))
            .collect();
        let mut state = self.state.lock();
        if let Some(reason) = state.refusal() {
            return Err(Error::StoreFailed(reason));
        }
        for ((message, deadline, admit), slot) in messages.into_iter().zip(&slots) {
            let deadline_unix_ms = deadline.map(unix_ms);
            let seq = state.next_seq;
            state.next_seq += 1;
            let identified = Message::identified(Arc::clone(&message), self.message_id(seq));
            let record = Record::Accepted(Accepted {
                seq,
                deadline_unix_ms,
                counts: Counts::default(),
                message: Arc::clone(&identified),
            });
            let slot = Arc::clone(slot);
            let admission: Admission = Box::new(move || {
                let admitted = admit(seq, identified);
                *slot.lock() = Some(admitted);
            });
            let len = state.push(&record, seq, What::Accepted(Some(admission)));
            state.pending.insert(
                seq,
                Pending {
                    segment: None,
                    len,
                    deadline_unix_ms,
                    counts: Counts::default(),
                    message,
                },
            );
            state.pending_bytes += len;
        }
        let end = state.appended;
        self.wait_committed(&mut state, end)?;
        drop(state);
        Ok(slots.into_iter().map(|slot| slot.lock().take()).collect())
    }

    /// Message `seq` completed (acknowledged, dead-lettered, expired,
    /// dropped, refused): it is never recovered once this is written. Does
    /// not wait: a crash before the flusher's next commit recovers it again
    /// (a duplicate, never a loss).
    pub(crate) fn completed(&self, seq: u64) {
        let mut state = self.state.lock();
        if state.refusal().is_some() {
            return;
        }
        if let Some(entry) = state.pending.remove(&seq) {
            state.pending_bytes -= entry.len;
            if let Some(segment) = entry.segment.and_then(|s| state.segments.get_mut(&s)) {
                segment.pending -= 1;
            }
        }
        state.push(&Record::Completed { seq }, seq, What::Completed);
        drop(state);
        self.flush.notify_one();
    }

    /// Message `seq`'s counts changed (a failed attempt). Does not wait: a
    /// crash before the next commit recovers the older counts.
    pub(crate) fn attempted(&self, seq: u64, counts: Counts) {
        let mut state = self.state.lock();
        if state.refusal().is_some() {
            return;
        }
        let record = match state.pending.get_mut(&seq) {
            Some(entry) if entry.counts != counts => {
                entry.counts = counts;
                if self.host {
                    // A host's store keeps one record per message: the
                    // whole message again, with its new counts.
                    Record::Accepted(Accepted {
                        seq,
                        deadline_unix_ms: entry.deadline_unix_ms,
                        counts,
                        message: Arc::clone(&entry.message),
                    })
                } else {
                    Record::Attempted { seq, counts }
                }
            }
            _ => return,
        };
        state.push(&record, seq, What::Attempted);
        drop(state);
        self.flush.notify_one();
    }

    /// Commit what is buffered, stop the flusher and let the store go (its
    /// lock is released: another group or process may open it now).
    pub(crate) fn close(&self) {
        {
            let mut state = self.state.lock();
            // Until nothing is left: a commit's admissions may add records
            // (a refused message's completion) while it runs.
            while state.refusal().is_none() && state.appended > state.committed {
                let end = state.appended;
                if self.wait_committed(&mut state, end).is_err() {
                    break;
                }
            }
            state.closing = true;
        }
        self.committed.notify_all();
        self.flush.notify_all();
        let flusher = self.flusher.lock().take();
        if let Some(flusher) = flusher {
            if flusher.thread().id() != std::thread::current().id() {
                let _ = flusher.join();
            }
        }
        let sink = self.sink.lock().take();
        drop(sink);
    }

    /// Its figures now.
    pub(crate) fn stats(&self) -> StoreStats {
        let state = self.state.lock();
        let c = &self.counters;
        let syncs = c.syncs.load(Ordering::Relaxed);
        StoreStats {
            pending: state.pending.len() as u64,
            pending_bytes: state.pending_bytes,
            disk_bytes: state.segments.values().map(|s| s.bytes).sum(),
            segments: state.segments.len() as u64,
            syncs,
            sync_mean_us: c
                .sync_nanos
                .load(Ordering::Relaxed)
                .checked_div(syncs)
                .unwrap_or(0)
                / 1000,
            sync_max_us: c.sync_max_nanos.load(Ordering::Relaxed) / 1000,
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            recovered: self.recovered,
            dropped: self.dropped.clone(),
            failed: state.poisoned.clone(),
        }
    }

    // ---- commit --------------------------------------------------------------

    /// Wait (leading a commit when none runs) until `end` is committed.
    fn wait_committed(
        &self,
        state: &mut parking_lot::MutexGuard<'_, State>,
        end: u64,
    ) -> Result<()> {
        loop {
            if let Some(reason) = &state.poisoned {
                return Err(Error::StoreFailed(reason.clone()));
            }
            if state.committed >= end {
                return Ok(());
            }
            if state.committing {
                self.committed.wait(state);
            } else {
                self.lead(state);
            }
        }
    }

    /// Commit the buffer: called with the state locked and no commit
    /// running; returns with the state locked again.
    fn lead(&self, state: &mut parking_lot::MutexGuard<'_, State>) {
        state.committing = true;
        let buffer = std::mem::take(&mut state.buffer);
        let entries = std::mem::take(&mut state.entries);
        let end = state.appended;
        let next_seq = state.next_seq;
        let sync = self.options.sync == SyncPolicy::EveryCommit;
        let written = parking_lot::MutexGuard::unlocked(state, || {
            self.write(&buffer, &entries, sync, next_seq)
        });
        match written {
            Ok((segment, sealed)) => {
                if let Some((old, bytes)) = sealed {
                    if let Some(entry) = state.segments.get_mut(&old) {
                        entry.bytes = bytes;
                    }
                }
                let admissions = state.note_written(entries, segment, buffer.len() as u64);
                if !admissions.is_empty() {
                    parking_lot::MutexGuard::unlocked(state, || {
                        for admission in admissions {
                            // A panic leaves its dispatcher's result empty
                            // (it reports StoreFailed); the others go on.
                            let _ =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(admission));
                        }
                    });
                }
                state.committed = end;
            }
            Err(reason) => {
                state.poisoned = Some(reason);
                // The admissions that will never run hold their dispatches'
                // completions: the host's `free_user` may call back into
                // the library, so they go with no lock held (and before
                // their dispatchers are woken to report the failure).
                parking_lot::MutexGuard::unlocked(state, || drop(entries));
            }
        }
        state.committing = false;
        self.committed.notify_all();
        if state.poisoned.is_none() {
            let deletable = state.deletable();
            let movable = state.movable(self.options.segment_bytes);
            if !deletable.is_empty() {
                parking_lot::MutexGuard::unlocked(state, || self.delete(&deletable));
                for number in deletable {
                    state.segments.remove(&number);
                }
            }
            if let Some(old) = movable {
                state.move_forward(old);
                self.flush.notify_one();
            }
        }
    }

    /// Write `bytes` to the log (rotating first when the active segment is
    /// full), sync when `sync`. Returns the segment written and the one
    /// sealed, if any, with its final size.
    fn write(
        &self,
        bytes: &[u8],
        entries: &[Entry],
        sync: bool,
        next_seq: u64,
    ) -> std::result::Result<(u64, Option<(u64, u64)>), String> {
        let mut sink = self.sink.lock();
        let log = match sink.as_mut() {
            None => return Err("the store is closed".into()),
            Some(Sink::Host(host)) => {
                let changes: Vec<Change> = entries
                    .iter()
                    .map(|entry| Change {
                        seq: entry.seq,
                        span: entry.span.clone(),
                        remove: matches!(entry.what, What::Completed),
                    })
                    .collect();
                let started = Instant::now();
                host.commit(bytes, &changes)?;
                self.counters
                    .bytes_written
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                self.note_sync(started.elapsed());
                return Ok((0, None));
            }
            Some(Sink::Log(log)) => log,
        };
        let mut sealed = None;
        if log.active_len() >= self.options.segment_bytes && !bytes.is_empty() {
            let size = log.active_len();
            let old = log.rotate(next_seq).map_err(|e| e.to_string())?;
            sealed = Some((old, size));
        }
        log.write(bytes)
            .map_err(|e| format!("write to the store failed: {e}"))?;
        self.counters
            .bytes_written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if sync {
            let started = Instant::now();
            log.sync()
                .map_err(|e| format!("fdatasync of the store failed: {e}"))?;
            self.note_sync(started.elapsed());
        }
        Ok((log.active(), sealed))
    }

    fn note_sync(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let c = &self.counters;
        c.syncs.fetch_add(1, Ordering::Relaxed);
        c.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
        c.sync_max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    fn delete(&self, numbers: &[u64]) {
        let sink = self.sink.lock();
        let Some(Sink::Log(log)) = sink.as_ref() else {
            return;
        };
        for &number in numbers {
            // A segment that cannot be deleted only costs disk: its
            // records are all completed or written again later.
            let _kept = log.delete(number);
        }
    }

    /// Delete what is deletable now (at open).
    fn compact(&self) -> Result<()> {
        let deletable = self.state.lock().deletable();
        self.delete(&deletable);
        let mut state = self.state.lock();
        for number in deletable {
            state.segments.remove(&number);
        }
        Ok(())
    }

    /// The flusher's work: commit what no dispatch is waiting for (within
    /// [`LAZY_COMMIT`] of its arrival, unless a dispatch's commit takes it
    /// first); with an interval policy, also sync at the interval.
    /// Returns false once the journal closes.
    fn flush_once(&self) -> bool {
        let mut state = self.state.lock();
        if state.closing {
            return false;
        }
        let interval = match self.options.sync {
            SyncPolicy::EveryCommit => None,
            SyncPolicy::Interval(interval) => Some(interval),
        };
        if state.poisoned.is_some() {
            self.flush.wait(&mut state);
            return true;
        }
        if state.appended == state.committed || state.committing {
            match interval {
                None => self.flush.wait(&mut state),
                Some(interval) => {
                    let idle = self.flush.wait_for(&mut state, interval).timed_out();
                    if idle && state.poisoned.is_none() && !state.closing {
                        drop(state);
                        self.sync_interval();
                    }
                }
            }
            return true;
        }
        // Something waits to be committed: give a dispatch's commit the
        // chance to take it along, then commit it here.
        let since = state.committed;
        let _ = self.flush.wait_for(&mut state, LAZY_COMMIT);
        if !state.closing
            && !state.committing
            && state.poisoned.is_none()
            && state.committed == since
            && state.appended > state.committed
        {
            self.lead(&mut state);
        }
        true
    }

    fn sync_interval(&self) {
        let started = Instant::now();
        let result = match self.sink.lock().as_ref() {
            Some(Sink::Log(log)) => log.sync(),
            _ => return,
        };
        match result {
            Ok(()) => self.note_sync(started.elapsed()),
            Err(e) => {
                self.state.lock().poisoned = Some(format!("fdatasync of the store failed: {e}"));
                self.committed.notify_all();
            }
        }
    }
}

fn flush_loop(journal: &std::sync::Weak<Journal>) {
    loop {
        let Some(journal) = journal.upgrade() else {
            return;
        };
        if !journal.flush_once() {
            return;
        }
    }
}

/// The stable id of message `seq` of store `store_id`.
fn message_id(store_id: u64, seq: u64) -> String {
    format!("{store_id:016x}-{seq}")
}

impl State {
    /// Why nothing more can be written, if so.
    fn refusal(&self) -> Option<String> {
        if let Some(reason) = &self.poisoned {
            return Some(reason.clone());
        }
        self.closing.then(|| "the store is closed".to_owned())
    }

    /// Buffer `record`; returns its length.
    fn push(&mut self, record: &Record, seq: u64, what: What) -> u64 {
        let before = self.buffer.len();
        record.encode(&mut self.buffer);
        let len = (self.buffer.len() - before) as u64;
        self.appended += len;
        self.entries.push(Entry {
            seq,
            span: before..self.buffer.len(),
            what,
        });
        len
    }

    /// Records were written to `segment`: track where pending messages are.
    /// Returns the admissions of the new messages, in sequence order.
    fn note_written(&mut self, entries: Vec<Entry>, segment: u64, bytes: u64) -> Vec<Admission> {
        self.segments.entry(segment).or_default().bytes += bytes;
        let mut admissions = Vec::new();
        for Entry { seq, what, .. } in entries {
            match what {
                What::Accepted(admission) => {
                    if let Some(pending) = self.pending.get_mut(&seq) {
                        pending.segment = Some(segment);
                        self.segments.entry(segment).or_default().pending += 1;
                    }
                    admissions.extend(admission);
                }
                What::Moved { from } => {
                    self.moving = None;
                    if let Some(pending) = self.pending.get_mut(&seq) {
                        if pending.segment == Some(from) {
                            pending.segment = Some(segment);
                            if let Some(old) = self.segments.get_mut(&from) {
                                old.pending -= 1;
                            }
                            self.segments.entry(segment).or_default().pending += 1;
                        }
                    }
                }
                What::Attempted | What::Completed => {}
            }
        }
        admissions
    }

    /// Sealed segments, oldest first, with nothing pending in them and
    /// nothing pending in any older one.
    fn deletable(&self) -> Vec<u64> {
        let active = self.segments.keys().next_back().copied();
        self.segments
            .iter()
            .take_while(|(number, segment)| Some(**number) != active && segment.pending == 0)
            .map(|(number, _)| *number)
            .collect()
    }

    /// The oldest sealed segment, when its pending messages are worth
    /// writing again: the disk holds more than twice what is pending plus
    /// two segments.
    fn movable(&self, segment_bytes: u64) -> Option<u64> {
        let disk: u64 = self.segments.values().map(|s| s.bytes).sum();
        if disk <= 2 * self.pending_bytes + 2 * segment_bytes {
            return None;
        }
        let active = self.segments.keys().next_back().copied();
        let (&oldest, segment) = self.segments.iter().next()?;
        (self.moving.is_none() && Some(oldest) != active && segment.pending > 0).then_some(oldest)
    }

    /// Buffer a new copy of every pending message of segment `old`.
    fn move_forward(&mut self, old: u64) {
        let mut seqs: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.segment == Some(old))
            .map(|(seq, _)| *seq)
            .collect();
        seqs.sort_unstable();
        if !seqs.is_empty() {
            self.moving = Some(old);
        }
        for seq in seqs {
            let Some(pending) = self.pending.get(&seq) else {
                continue;
            };
            let record = Record::Accepted(Accepted {
                seq,
                deadline_unix_ms: pending.deadline_unix_ms,
                counts: pending.counts,
                message: Arc::clone(&pending.message),
            });
            self.push(&record, seq, What::Moved { from: old });
        }
    }
}
