//! The store alone: what it gives back after a clean close, after damage,
//! to a second opener, and after compaction.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
use crate::message::{FieldValue, Message};
use crate::store::journal::Journal;
use crate::store::log::HEADER;
use crate::store::record::{self, Read};
use crate::store::StoreOptions;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "liminal-store-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn message(n: u64) -> Arc<Message> {
    Arc::new(
        Message::new()
            .with("n", FieldValue::Int(n as i64))
            .with_payload(format!("payload-{n}").into_bytes()),
    )
}

fn number(message: &Message) -> u64 {
    match message.get("n") {
        Some(FieldValue::Int(n)) => *n as u64,
        other => panic!("no number: {other:?}"),
    }
}

/// Accept `count` messages and complete those `done` says; returns the
/// numbers left pending.
fn fill(dir: &Path, count: u64, done: impl Fn(u64) -> bool) -> BTreeSet<u64> {
    let (journal, recovered) = Journal::open(dir, StoreOptions::new(dir)).unwrap();
    assert!(recovered.is_empty());
    let mut pending = BTreeSet::new();
    for n in 0..count {
        let seq = journal.accept(&message(n), None, |seq, _| seq).unwrap();
        if done(n) {
            journal.completed(seq);
        } else {
            pending.insert(n);
        }
    }
    journal.close();
    pending
}

fn reopen(dir: &Path) -> (Arc<Journal>, Vec<u64>) {
    let (journal, recovered) = Journal::open(dir, StoreOptions::new(dir)).unwrap();
    let numbers = recovered.iter().map(|r| number(&r.message)).collect();
    (journal, numbers)
}

#[test]
fn what_was_accepted_and_not_completed_comes_back_in_order() {
    let dir = scratch("order");
    let pending = fill(&dir, 100, |n| n % 3 == 0);
    let (journal, numbers) = reopen(&dir);
    assert_eq!(numbers, pending.iter().copied().collect::<Vec<_>>());
    let stats = journal.stats();
    assert_eq!(stats.recovered, pending.len() as u64);
    assert!(stats.dropped.is_empty());
    journal.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_held_by_a_live_opener_is_refused() {
    let dir = scratch("locked");
    let (journal, _) = Journal::open(&dir, StoreOptions::new(&dir)).unwrap();
    match Journal::open(&dir, StoreOptions::new(&dir)) {
        Err(Error::StoreLocked(_)) => {}
        Err(other) => panic!("expected StoreLocked, got {other}"),
        Ok(_) => panic!("a second opener was let in"),
    }
    journal.close();
    drop(journal);
    let (again, _) = Journal::open(&dir, StoreOptions::new(&dir)).unwrap();
    again.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Where each record of the one segment file in `dir` lies: (start, end,
/// the message number it is about, whether it is an acceptance).
fn layout(bytes: &[u8], seq_to_number: &dyn Fn(u64) -> u64) -> Vec<(usize, usize, u64, bool)> {
    let mut at = HEADER;
    let mut out = Vec::new();
    while at < bytes.len() {
        match record::read(&bytes[at..]) {
            Read::Record(record, len) => {
                let accepted = matches!(record, record::Record::Accepted(_));
                out.push((at, at + len, seq_to_number(record.seq()), accepted));
                at += len;
            }
            other => panic!("undamaged store unreadable at {at}: {other:?}"),
        }
    }
    out
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// 1,000 damaged copies of a store with known contents (truncated at a
/// random offset, or a random byte flipped): each opens, gives back no
/// message that was never accepted, keeps every message whose records are
/// intact, and says what it dropped.
#[test]
fn a_damaged_store_keeps_every_intact_record_and_invents_none() {
    let dir = scratch("damage");
    let pending = fill(&dir, 60, |n| n % 4 == 1);
    let files = segment_files(&dir);
    // The store's one written segment (opening again adds an empty one).
    let written = files
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > HEADER as u64)
        .unwrap()
        .clone();
    let original = std::fs::read(&written).unwrap();
    // Sequence numbers were issued from 1 in message order.
    let records = layout(&original, &|seq| seq - 1);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let copy = scratch("damage-copy");
    for run in 0..1000 {
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).unwrap();
        let at = (next() % original.len() as u64) as usize;
        let mut bytes = original.clone();
        let truncated = run % 2 == 0;
        if truncated {
            bytes.truncate(at);
        } else {
            bytes[at] ^= 1 << (next() % 8);
        }
        std::fs::write(copy.join(written.file_name().unwrap()), &bytes).unwrap();
        let (journal, numbers) = reopen(&copy);
        let recovered: BTreeSet<u64> = numbers.iter().copied().collect();
        assert!(
            recovered.len() == numbers.len(),
            "a message came back twice"
        );
        assert!(
            recovered.iter().all(|n| *n < 60),
            "run {run}: a message never accepted came back: {recovered:?}"
        );
        // The records the damage touched, and those it cut off.
        let hit = |start: usize, end: usize| {
            if truncated {
                end > at
            } else {
                at >= start && at < end
            }
        };
        let header_hit = at < HEADER;
        if !header_hit {
            for &(start, end, n, accepted) in &records {
                let intact = !hit(start, end);
                let completed_intact = records
                    .iter()
                    .any(|&(s, e, m, acc)| m == n && !acc && !hit(s, e));
                if accepted && intact && !completed_intact {
                    assert!(
                        recovered.contains(&n),
                        "run {run} (damage at {at}, truncated {truncated}): intact message {n} lost"
                    );
                }
                if accepted && !intact {
                    assert!(
                        !recovered.contains(&n),
                        "run {run}: a damaged record was read"
                    );
                }
            }
            for n in &recovered {
                let completed_intact = records
                    .iter()
                    .any(|&(s, e, m, acc)| m == *n && !acc && !hit(s, e));
                assert!(
                    !completed_intact,
                    "run {run}: completed message {n} came back"
                );
            }
        }
        let dropped = journal.stats().dropped;
        // A cut exactly between two records leaves a shorter, whole store.
        let on_boundary = truncated && records.iter().any(|&(start, ..)| start == at);
        let damaged = !on_boundary;
        if damaged && at >= HEADER {
            assert!(
                !dropped.is_empty(),
                "run {run}: damage at {at} went unreported"
            );
        }
        journal.close();
    }
    assert!(pending.len() > 10);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
}

/// Space comes back: with small segments, acknowledging everything leaves
/// only the active segment, and a long-pending message does not pin the
/// segments after it.
#[test]
fn compaction_keeps_disk_use_proportional_to_what_is_pending() {
    let dir = scratch("compact");
    let mut options = StoreOptions::new(&dir);
    options.segment_bytes = 4096;
    let (journal, _) = Journal::open(&dir, options.clone()).unwrap();
    // One message stays pending for the whole run.
    journal.accept(&message(0), None, |seq, _| seq).unwrap();
    for n in 1..5000 {
        let seq = journal.accept(&message(n), None, |seq, _| seq).unwrap();
        journal.completed(seq);
    }
    // Commit the last completions.
    journal.accept(&message(5000), None, |seq, _| seq).unwrap();
    let stats = journal.stats();
    assert_eq!(stats.pending, 2);
    assert!(
        stats.disk_bytes <= 2 * stats.pending_bytes + 3 * 4096 + HEADER as u64,
        "disk {} for {} pending bytes",
        stats.disk_bytes,
        stats.pending_bytes
    );
    assert!(
        stats.bytes_written > 50 * 4096,
        "the run spanned many segments"
    );
    journal.close();
    drop(journal);
    let (journal, numbers) = Journal::open(&dir, options).unwrap();
    let numbers: Vec<u64> = numbers.iter().map(|r| number(&r.message)).collect();
    assert_eq!(numbers, vec![0, 5000]);
    journal.close();
    std::fs::remove_dir_all(&dir).unwrap();
}
