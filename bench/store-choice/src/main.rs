//! Store choice for liminal's durable groups (issue 19): redb and fjall
//! measured in the shapes liminal's own `examples/durable_bench.rs` uses.
//!
//! `storebench ENGINE TEST DIR [N]`
//!
//! ENGINE: `redb`, `fjall`, or `file` (a bare append-only file: one
//! `write` + one `fdatasync` per commit, the floor any store sits on).
//! TEST:
//! - `w1`: one message at a time: insert + durable commit, then remove +
//!   durable commit (the ack); p50/p99 of the insert commit (N messages,
//!   default 2,000).
//! - `w2raw`: 64 threads, each inserting one message per durable commit
//!   through the engine's own API (N messages in all, default 20,000).
//! - `w2batch`: one thread, 256 messages per durable commit (N, default
//!   200,000).
//! - `w2group`: 64 threads, one message each per call, through a
//!   leader/follower group-commit wrapper (the one liminal's journal
//!   uses): the first waiter with no commit running takes everything
//!   queued and commits it in one durable transaction (N, default 100,000).
//! - `recovery`: insert N (default 1,000,000) records in batches of 1,000
//!   with non-durable commits and a durable last one, close, then time
//!   reopen + a scan keeping every (key, value) in memory.
//! - `space`: insert N (default 1,000,000), then delete them all (batches of
//!   1,000), report disk use at each step, after closing, and after the
//!   engine's compaction.
//! - `churn`: a queue's steady state: N (default 1,000,000) messages pass
//!   through with 10,000 pending at most (durable commits of 1,000
//!   inserts and 1,000 removals each); disk use at the end and at its largest.
//!
//! Records: a u64 sequence number (big-endian key) and a 200-byte value of
//! pseudo-random bytes (incompressible: fjall compresses with lz4 by
//! default; liminal does not compress).
//!
//! Sync policy: redb `Durability::Immediate` (redb's default) for durable
//! commits, `Durability::None` otherwise. fjall: `WriteBatch` with
//! `durability(Some(PersistMode::SyncData))` (`fdatasync` of the journal,
//! as liminal's log does) for durable commits, `PersistMode::Buffer`
//! otherwise. `file`: `fdatasync`.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PAYLOAD: usize = 200;

fn payload(seq: u64) -> Vec<u8> {
    // xorshift64*, seeded by the sequence number: incompressible bytes.
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(PAYLOAD);
    while out.len() < PAYLOAD {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(PAYLOAD);
    out
}

/// What every engine offers the measurements.
trait Engine: Send + Sync + Sized + 'static {
    fn open(dir: &Path) -> Res<Self>;
    /// One transaction: all of `puts` and `dels`, durable when `durable`.
    fn commit(&self, puts: &[(u64, Vec<u8>)], dels: &[u64], durable: bool) -> Res<()>;
    /// Every record, in key order (what a recovery rebuilds its pending
    /// set from).
    fn scan(&self) -> Res<Vec<(u64, Vec<u8>)>>;
    /// The engine's own compaction, if it has one (false if none).
    fn compact(&mut self) -> Res<bool>;
    /// Close cleanly (drop), so a later open is a normal reopen.
    fn close(self) {}
}

// ---------------------------------------------------------------- redb

#[cfg(feature = "redb")]
mod redb_engine {
    use super::*;
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");

    pub struct Redb {
        pub db: Database,
    }

    impl Engine for Redb {
        fn open(dir: &Path) -> Res<Self> {
            std::fs::create_dir_all(dir)?;
            let db = Database::create(dir.join("store.redb"))?;
            // Create the table once.
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?;
            txn.commit()?;
            Ok(Self { db })
        }

        fn commit(&self, puts: &[(u64, Vec<u8>)], dels: &[u64], durable: bool) -> Res<()> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            })?;
            {
                let mut table = txn.open_table(TABLE)?;
                for (k, v) in puts {
                    table.insert(*k, v.as_slice())?;
                }
                for k in dels {
                    table.remove(*k)?;
                }
            }
            txn.commit()?;
            Ok(())
        }

        fn scan(&self) -> Res<Vec<(u64, Vec<u8>)>> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                out.push((k.value(), v.value().to_vec()));
            }
            Ok(out)
        }

        fn compact(&mut self) -> Res<bool> {
            let mut rounds = 0;
            while self.db.compact(redb::CompactionMode::default())? {
                rounds += 1;
                if rounds > 100 {
                    break;
                }
            }
            Ok(true)
        }
    }
}

// ---------------------------------------------------------------- fjall

#[cfg(feature = "fjall")]
mod fjall_engine {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    pub struct Fjall {
        pub db: Database,
        pub ks: Keyspace,
    }

    impl Engine for Fjall {
        fn open(dir: &Path) -> Res<Self> {
            let db = Database::builder(dir).open()?;
            let ks = db.keyspace("pending", KeyspaceCreateOptions::default)?;
            Ok(Self { db, ks })
        }

        fn commit(&self, puts: &[(u64, Vec<u8>)], dels: &[u64], durable: bool) -> Res<()> {
            let mut batch = self.db.batch().durability(Some(if durable {
                PersistMode::SyncData
            } else {
                PersistMode::Buffer
            }));
            for (k, v) in puts {
                batch.insert(&self.ks, k.to_be_bytes(), v.as_slice());
            }
            for k in dels {
                batch.remove(&self.ks, k.to_be_bytes());
            }
            batch.commit()?;
            Ok(())
        }

        fn scan(&self) -> Res<Vec<(u64, Vec<u8>)>> {
            let mut out = Vec::new();
            for guard in self.ks.iter() {
                let (k, v) = guard.into_inner()?;
                let key = u64::from_be_bytes(k.as_ref().try_into()?);
                out.push((key, v.to_vec()));
            }
            Ok(out)
        }

        fn compact(&mut self) -> Res<bool> {
            // Flush the memtable into a table, then a major compaction
            // (which drops tombstones and what they cover at the last level).
            self.ks.rotate_memtable_and_wait()?;
            self.ks.major_compact()?;
            self.db.persist(PersistMode::SyncAll)?;
            Ok(true)
        }
    }
}

// ---------------------------------------------------------------- file

/// A bare append-only file: records framed as key, length, value (length
/// u32::MAX = deletion); one write and one fdatasync per durable commit.
/// The floor any store sits on (no index, no compaction).
struct FileLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Engine for FileLog {
    fn open(dir: &Path) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    fn commit(&self, puts: &[(u64, Vec<u8>)], dels: &[u64], durable: bool) -> Res<()> {
        use std::io::Write;
        let mut buf = Vec::with_capacity(puts.len() * (PAYLOAD + 12) + dels.len() * 12);
        for (k, v) in puts {
            buf.extend_from_slice(&k.to_le_bytes());
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
        for k in dels {
            buf.extend_from_slice(&k.to_le_bytes());
            buf.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        let mut file = self.file.lock().unwrap();
        file.write_all(&buf)?;
        if durable {
            file.sync_data()?;
        }
        Ok(())
    }

    fn scan(&self) -> Res<Vec<(u64, Vec<u8>)>> {
        let bytes = std::fs::read(&self.path)?;
        let mut live: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut at = 0;
        while at + 12 <= bytes.len() {
            let k = u64::from_le_bytes(bytes[at..at + 8].try_into()?);
            let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into()?);
            at += 12;
            if len == u32::MAX {
                live.remove(&k);
            } else {
                live.insert(k, bytes[at..at + len as usize].to_vec());
                at += len as usize;
            }
        }
        let mut out: Vec<_> = live.into_iter().collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        Ok(out)
    }

    fn compact(&mut self) -> Res<bool> {
        Ok(false)
    }
}

/// The same bare log, but its file is first extended to 64 MiB with
/// `set_len` (sparse, as fjall's journal does) and written at an offset:
/// appends then no longer change the file's size, so `fdatasync` has no
/// size to commit (only the blocks a write allocates). Used by `w1` only.
struct FilePre {
    file: Mutex<(std::fs::File, u64)>,
}

impl Engine for FilePre {
    fn open(dir: &Path) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.join("log"))?;
        file.set_len(64 << 20)?;
        file.sync_all()?;
        Ok(Self {
            file: Mutex::new((file, 0)),
        })
    }

    fn commit(&self, puts: &[(u64, Vec<u8>)], dels: &[u64], durable: bool) -> Res<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = Vec::new();
        for (k, v) in puts {
            buf.extend_from_slice(&k.to_le_bytes());
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
        for k in dels {
            buf.extend_from_slice(&k.to_le_bytes());
            buf.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        let mut guard = self.file.lock().unwrap();
        let (file, at) = &mut *guard;
        file.write_all_at(&buf, *at)?;
        *at += buf.len() as u64;
        if durable {
            file.sync_data()?;
        }
        Ok(())
    }

    fn scan(&self) -> Res<Vec<(u64, Vec<u8>)>> {
        Err("filepre measures w1 only".into())
    }

    fn compact(&mut self) -> Res<bool> {
        Ok(false)
    }
}

// ---------------------------------------------------------------- group commit

/// Leader/follower group commit over any engine, as liminal's journal does
/// over its log: each caller queues its record; the first caller that finds
/// no commit running takes the whole queue and commits it in one durable
/// transaction, then wakes everyone it covered.
struct GroupCommit<E: Engine> {
    engine: E,
    state: Mutex<GroupState>,
    done: Condvar,
    commits: AtomicU64,
}

#[derive(Default)]
struct GroupState {
    queue: Vec<(u64, Vec<u8>)>,
    appended: u64,
    committed: u64,
    committing: bool,
}

impl<E: Engine> GroupCommit<E> {
    fn new(engine: E) -> Self {
        Self {
            engine,
            state: Mutex::new(GroupState::default()),
            done: Condvar::new(),
            commits: AtomicU64::new(0),
        }
    }

    /// Returns once `record` is durable.
    fn put(&self, record: (u64, Vec<u8>)) -> Res<()> {
        let mut state = self.state.lock().unwrap();
        state.queue.push(record);
        state.appended += 1;
        let ticket = state.appended;
        loop {
            if state.committed >= ticket {
                return Ok(());
            }
            if !state.committing {
                state.committing = true;
                let batch = std::mem::take(&mut state.queue);
                let upto = state.appended;
                drop(state);
                let result = self.engine.commit(&batch, &[], true);
                self.commits.fetch_add(1, Ordering::Relaxed);
                state = self.state.lock().unwrap();
                state.committing = false;
                state.committed = upto;
                self.done.notify_all();
                result?;
            } else {
                state = self.done.wait(state).unwrap();
            }
        }
    }
}

// ---------------------------------------------------------------- measures

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn disk_use(dir: &Path) -> (u64, u64) {
    // (allocated bytes, apparent bytes), recursively.
    let mut allocated = 0;
    let mut apparent = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                let (a, b) = disk_use(&entry.path());
                allocated += a;
                apparent += b;
            } else {
                allocated += meta.blocks() * 512;
                apparent += meta.len();
            }
        }
    }
    (allocated, apparent)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn fresh(dir: &Path) -> Res<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn w1<E: Engine>(dir: &Path, n: usize) -> Res<()> {
    fresh(dir)?;
    let engine = E::open(dir)?;
    let mut put = Vec::with_capacity(n);
    let mut del = Vec::with_capacity(n);
    for seq in 0..n as u64 {
        let record = (seq, payload(seq));
        let started = Instant::now();
        engine.commit(std::slice::from_ref(&record), &[], true)?;
        put.push(started.elapsed());
        let started = Instant::now();
        engine.commit(&[], &[seq], true)?;
        del.push(started.elapsed());
    }
    put.sort_unstable();
    del.sort_unstable();
    println!(
        "RESULT w1 insert_p50_us={:.0} insert_p99_us={:.0} insert_p999_us={:.0} remove_p50_us={:.0} remove_p99_us={:.0} n={n}",
        percentile(&put, 0.50),
        percentile(&put, 0.99),
        percentile(&put, 0.999),
        percentile(&del, 0.50),
        percentile(&del, 0.99),
    );
    engine.close();
    Ok(())
}

const THREADS: usize = 64;

fn w2raw<E: Engine>(dir: &Path, n: usize) -> Res<()> {
    fresh(dir)?;
    let engine = Arc::new(E::open(dir)?);
    let per = n / THREADS;
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || -> Res<()> {
                for i in 0..per {
                    let seq = (t * per + i) as u64;
                    engine.commit(&[(seq, payload(seq))], &[], true)?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "worker panicked")??;
    }
    let took = started.elapsed();
    let total = per * THREADS;
    println!(
        "RESULT w2raw msg_per_s={:.0} commits_per_million={:.0} n={total} threads={THREADS}",
        total as f64 / took.as_secs_f64(),
        1e6
    );
    Ok(())
}

fn w2batch<E: Engine>(dir: &Path, n: usize) -> Res<()> {
    fresh(dir)?;
    let engine = E::open(dir)?;
    let batch = 256;
    let mut seq = 0u64;
    let mut commits = 0u64;
    let started = Instant::now();
    while (seq as usize) < n {
        let records: Vec<_> = (seq..seq + batch).map(|s| (s, payload(s))).collect();
        engine.commit(&records, &[], true)?;
        seq += batch;
        commits += 1;
    }
    let took = started.elapsed();
    println!(
        "RESULT w2batch msg_per_s={:.0} commits_per_million={:.0} n={seq} batch={batch}",
        seq as f64 / took.as_secs_f64(),
        commits as f64 * 1e6 / seq as f64
    );
    engine.close();
    Ok(())
}

fn w2group<E: Engine>(dir: &Path, n: usize) -> Res<()> {
    fresh(dir)?;
    let group = Arc::new(GroupCommit::new(E::open(dir)?));
    let per = n / THREADS;
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let group = group.clone();
            std::thread::spawn(move || -> Res<()> {
                for i in 0..per {
                    let seq = (t * per + i) as u64;
                    group.put((seq, payload(seq)))?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "worker panicked")??;
    }
    let took = started.elapsed();
    let total = per * THREADS;
    let commits = group.commits.load(Ordering::Relaxed);
    println!(
        "RESULT w2group msg_per_s={:.0} commits_per_million={:.0} n={total} threads={THREADS} commits={commits}",
        total as f64 / took.as_secs_f64(),
        commits as f64 * 1e6 / total as f64
    );
    Ok(())
}

fn fill<E: Engine>(engine: &E, n: usize) -> Res<()> {
    let chunk = 1000;
    let mut seq = 0u64;
    while (seq as usize) < n {
        let end = (seq + chunk).min(n as u64);
        let records: Vec<_> = (seq..end).map(|s| (s, payload(s))).collect();
        engine.commit(&records, &[], end as usize == n)?;
        seq = end;
    }
    Ok(())
}

fn recovery<E: Engine>(dir: &Path, n: usize) -> Res<()> {
    if std::env::var("REOPEN_ONLY").is_err() {
        fresh(dir)?;
        let engine = E::open(dir)?;
        let started = Instant::now();
        fill(&engine, n)?;
        let filled = started.elapsed();
        engine.close();
        println!("   filled {n} in {:.2} s", filled.as_secs_f64());
    }
    let (allocated, _) = disk_use(dir);
    let started = Instant::now();
    let engine = E::open(dir)?;
    let opened = started.elapsed();
    let pending = engine.scan()?;
    let took = started.elapsed();
    assert_eq!(pending.len(), n, "every record back");
    assert!(pending.iter().all(|(_, v)| v.len() == PAYLOAD));
    println!(
        "RESULT recovery reopen_scan_s={:.3} open_s={:.3} records={} disk_mb={:.0} s_per_gb={:.2}",
        took.as_secs_f64(),
        opened.as_secs_f64(),
        pending.len(),
        mb(allocated),
        took.as_secs_f64() / (allocated as f64 / 1e9)
    );
    drop(pending);
    engine.close();
    Ok(())
}

fn space<E: Engine>(dir: &Path, n: usize) -> Res<()> {
    fresh(dir)?;
    let engine = E::open(dir)?;
    let started = Instant::now();
    fill(&engine, n)?;
    let (full, _) = disk_use(dir);
    let chunk = 1000;
    let mut seq = 0u64;
    while (seq as usize) < n {
        let end = (seq + chunk).min(n as u64);
        let dels: Vec<u64> = (seq..end).collect();
        engine.commit(&[], &dels, end as usize == n)?;
        seq = end;
    }
    let (deleted, _) = disk_use(dir);
    let took = started.elapsed();
    engine.close();
    let (closed, _) = disk_use(dir);
    let mut engine = E::open(dir)?;
    let (reopened, _) = disk_use(dir);
    let started = Instant::now();
    let compacted = engine.compact()?;
    let compact_took = started.elapsed();
    // Give background work (fjall's flush/compaction threads) a moment.
    std::thread::sleep(Duration::from_secs(2));
    let (after, _) = disk_use(dir);
    let left = engine.scan()?.len();
    engine.close();
    let (closed_after, _) = disk_use(dir);
    println!(
        "RESULT space full_mb={:.1} deleted_mb={:.1} closed_mb={:.1} reopened_mb={:.1} compacted_mb={} closed_after_compact_mb={:.3} compact_s={:.2} insert_delete_s={:.1} left={left} n={n}",
        mb(full),
        mb(deleted),
        mb(closed),
        mb(reopened),
        if compacted { format!("{:.3}", mb(after)) } else { "none".into() },
        mb(closed_after),
        compact_took.as_secs_f64(),
        took.as_secs_f64(),
    );
    Ok(())
}

/// A queue's steady state: N messages pass through, at most `window`
/// pending at once (each commit adds 1,000 and removes the 1,000 that were
/// added `window` earlier); disk use at the end, and at its largest.
fn churn<E: Engine>(dir: &Path, n: usize) -> Res<()> {
    fresh(dir)?;
    let engine = E::open(dir)?;
    let window = 10_000u64;
    let chunk = 1000u64;
    let mut seq = 0u64;
    let mut peak = 0;
    let started = Instant::now();
    while (seq as usize) < n {
        let end = (seq + chunk).min(n as u64);
        let records: Vec<_> = (seq..end).map(|s| (s, payload(s))).collect();
        let dels: Vec<u64> = if seq >= window {
            (seq - window..end - window).collect()
        } else {
            Vec::new()
        };
        engine.commit(&records, &dels, true)?;
        seq = end;
        if seq % 100_000 == 0 {
            peak = peak.max(disk_use(dir).0);
        }
    }
    let took = started.elapsed();
    let (end_open, _) = disk_use(dir);
    let pending = engine.scan()?.len();
    engine.close();
    let (closed, _) = disk_use(dir);
    println!(
        "RESULT churn end_mb={:.1} peak_mb={:.1} closed_mb={:.1} pending={pending} live_mb={:.1} s={:.1} n={n}",
        mb(end_open),
        mb(peak.max(end_open)),
        mb(closed),
        mb(pending as u64 * (PAYLOAD as u64 + 8)),
        took.as_secs_f64()
    );
    Ok(())
}

fn run<E: Engine>(test: &str, dir: &Path, n: Option<usize>) -> Res<()> {
    match test {
        "w1" => w1::<E>(dir, n.unwrap_or(2_000)),
        "w2raw" => w2raw::<E>(dir, n.unwrap_or(20_000)),
        "w2batch" => w2batch::<E>(dir, n.unwrap_or(200_000)),
        "w2group" => w2group::<E>(dir, n.unwrap_or(100_000)),
        "recovery" => recovery::<E>(dir, n.unwrap_or(1_000_000)),
        "space" => space::<E>(dir, n.unwrap_or(1_000_000)),
        "churn" => churn::<E>(dir, n.unwrap_or(1_000_000)),
        other => Err(format!("unknown test {other}").into()),
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: storebench ENGINE TEST DIR [N]".into());
    }
    let dir = PathBuf::from(&args[2]);
    let n = args.get(3).map(|s| s.parse()).transpose()?;
    match args[0].as_str() {
        #[cfg(feature = "redb")]
        "redb" => run::<redb_engine::Redb>(&args[1], &dir, n),
        #[cfg(feature = "fjall")]
        "fjall" => run::<fjall_engine::Fjall>(&args[1], &dir, n),
        "file" => run::<FileLog>(&args[1], &dir, n),
        "filepre" => run::<FilePre>(&args[1], &dir, n),
        other => Err(format!("engine {other} not built in (features redb, fjall)").into()),
    }
}
