//! The chaos harness of the ordered-key tests: a logical clock, what
//! consumers record, their dice, and the checker that proves per key that
//! every message started only after its predecessor completed, that only
//! dead-lettered messages (with their reason) were skipped, and that none
//! was lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use liminal::{
    Delivery, DeliveryToken, DispatchError, DispatchResult, FieldValue, Message, Verdict,
};

/// The logical clock: every record takes the next tick.
static CLOCK: AtomicU64 = AtomicU64::new(0);

pub fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

pub enum Record {
    /// A consumer's callback started an attempt of `dispatch`.
    Start { dispatch: u64, at: u64 },
    /// The attempt ended with an acknowledgement that was taken (`at` was
    /// read before acknowledging, so it precedes what the ack sets off).
    Acked {
        dispatch: u64,
        attempt: u32,
        at: u64,
    },
    /// The dead-letter handler got it, with its reason.
    Dead {
        dispatch: u64,
        reason: DispatchError,
        at: u64,
    },
}

/// splitmix64: the consumers' dice, from (seed, dispatch, attempt).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Deliveries deferred to the acker thread (`None` stops it).
pub type Deferred = Sender<Option<(DeliveryToken, u64, u32)>>;

/// A handler that records each start and then, by its dice, acks at once,
/// defers to the acker thread, releases (with or without a delay), or —
/// when `crashes` — crashes or sits on it until its lease expires.
pub fn chaotic(
    seed: u64,
    records: Sender<Record>,
    deferred: Deferred,
    crashes: bool,
) -> impl FnMut(&Delivery) -> Verdict + Send + 'static {
    move |d: &Delivery| {
        let dispatch = d.dispatch_id();
        let _ = records.send(Record::Start {
            dispatch,
            at: tick(),
        });
        let dice = mix(seed ^ mix(dispatch) ^ u64::from(d.attempt())) % 1000;
        match dice {
            0..=9 if crashes => Verdict::Crash("chaos".into()),
            10..=59 => Verdict::Release(Duration::ZERO),
            60..=79 => Verdict::Release(Duration::from_millis(1)),
            // Sit on it: the lease expires and the consumer is crashed.
            80..=89 if crashes => Verdict::Defer,
            90..=299 => {
                let _ = deferred.send(Some((d.token(), dispatch, d.attempt())));
                Verdict::Defer
            }
            _ => {
                let _ = records.send(Record::Acked {
                    dispatch,
                    attempt: d.attempt(),
                    at: tick(),
                });
                Verdict::Ack
            }
        }
    }
}

/// Acknowledges deferred deliveries from another thread until told to stop.
pub fn acker(
    tokens: Receiver<Option<(DeliveryToken, u64, u32)>>,
    records: Sender<Record>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for (token, dispatch, attempt) in tokens.iter().map_while(|t| t) {
            let at = tick();
            if token.ack().is_ok() {
                let _ = records.send(Record::Acked {
                    dispatch,
                    attempt,
                    at,
                });
            }
        }
    })
}

/// Message `seq` of key `key`.
pub fn keyed(key: usize, seq: u64) -> Message {
    Message::new()
        .with("key", FieldValue::Text(format!("k{key}")))
        .with("seq", FieldValue::Int(seq as i64))
}

/// The dispatch id a result belongs to.
pub fn dispatch_id(result: &DispatchResult) -> u64 {
    match result {
        Ok(outcome) => outcome.trail.dispatch_id,
        Err(failure) => failure.trail.dispatch_id,
    }
}

/// (key, sequence number within the key) of each dispatch.
pub type Sent = HashMap<u64, (usize, u64)>;

/// Proves the per-key promise over what was sent, how each dispatch ended
/// and what the consumers recorded; returns how many were dead-lettered.
pub fn check(
    sent: &Sent,
    results: &HashMap<u64, DispatchResult>,
    records: Vec<Record>,
    keys: usize,
) -> usize {
    let mut starts: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut acked: HashMap<(u64, u32), u64> = HashMap::new();
    let mut dead: HashMap<u64, (DispatchError, u64)> = HashMap::new();
    for record in records {
        match record {
            Record::Start { dispatch, at } => starts.entry(dispatch).or_default().push(at),
            Record::Acked {
                dispatch,
                attempt,
                at,
            } => assert!(acked.insert((dispatch, attempt), at).is_none()),
            Record::Dead {
                dispatch,
                reason,
                at,
            } => assert!(dead.insert(dispatch, (reason, at)).is_none()),
        }
    }
    // None lost: every dispatch completed exactly once (checked as they came).
    assert_eq!(results.len(), sent.len());
    // When each message completed, on the logical clock.
    let mut completed_at = HashMap::new();
    let mut dead_lettered = 0;
    for (id, result) in results {
        let at = match result {
            Ok(outcome) => *acked
                .get(&(*id, outcome.trail.attempts))
                .unwrap_or_else(|| panic!("{id} delivered without its acknowledgement recorded")),
            Err(failure) => {
                // Skipped only when dead-lettered, with its reason.
                assert!(
                    matches!(failure.error, DispatchError::AttemptsExhausted(_)),
                    "{id}: {failure}"
                );
                let (reason, at) = dead.get(id).expect("dead-lettered");
                assert_eq!(*reason, failure.error);
                dead_lettered += 1;
                *at
            }
        };
        completed_at.insert(*id, at);
    }
    // Per key, in sequence order: every start of a message comes after its
    // predecessor completed.
    let mut by_key: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
    for (id, (key, seq)) in sent {
        by_key[*key].push((*seq, *id));
    }
    let mut pairs = 0;
    for messages in &mut by_key {
        messages.sort_unstable();
        for pair in messages.windows(2) {
            let (before, after) = (pair[0].1, pair[1].1);
            let done = completed_at[&before];
            for start in starts.get(&after).into_iter().flatten() {
                assert!(
                    *start > done,
                    "message {after} started at {start} before its predecessor {before} completed at {done}"
                );
            }
            pairs += 1;
        }
    }
    assert!(pairs > 0);
    assert!(
        dead_lettered < sent.len() / 20,
        "{dead_lettered} dead-lettered"
    );
    dead_lettered
}
