//! A state-machine test of the key index: a model of the waiting room
//! (routable queue, consumers' hands, delayed releases) drives the index
//! through random interleavings of dispatch, placement, ack, crash, lease
//! expiry, release (with and without a delay), expiry anywhere, dead
//! letters, overflow drops, drain, close and a host restart that re-accepts
//! what was uncompleted in sequence order. After every step the per-key
//! invariants are checked against the model.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::ordering::index::{deepest, KeyIndex};

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    /// Behind its key's head, in the index.
    Parked,
    /// In the routable queue.
    Routable,
    /// In a consumer's hands.
    Held,
    /// Released with a delay.
    Delayed,
    Done,
}

struct Msg {
    key: Option<Arc<str>>,
    seq: u64,
    place: Place,
}

struct Model {
    index: KeyIndex<usize>,
    msgs: Vec<Msg>,
    routable: VecDeque<usize>,
    /// Per key, the sequence numbers acknowledged, in acknowledgement order.
    acked: BTreeMap<Arc<str>, Vec<u64>>,
    keys: Vec<Arc<str>>,
    now: Instant,
}

impl Model {
    fn new(key_count: usize) -> Self {
        Self {
            index: KeyIndex::default(),
            msgs: Vec::new(),
            routable: VecDeque::new(),
            acked: BTreeMap::new(),
            keys: (0..key_count).map(|k| Arc::from(format!("k{k}"))).collect(),
            now: Instant::now(),
        }
    }

    fn in_place(&self, place: Place) -> Vec<usize> {
        (0..self.msgs.len())
            .filter(|&i| self.msgs[i].place == place)
            .collect()
    }

    fn pick(&self, rng: &mut Rng, place: Place) -> Option<usize> {
        let all = self.in_place(place);
        (!all.is_empty()).then(|| all[rng.below(all.len())])
    }

    fn route(&mut self, i: usize) {
        self.msgs[i].place = Place::Routable;
        self.routable.push_back(i);
    }

    fn dispatch(&mut self, rng: &mut Rng) {
        let key = (rng.below(5) > 0).then(|| Arc::clone(&self.keys[rng.below(self.keys.len())]));
        let seq = self.index.next_seq();
        let i = self.msgs.len();
        self.msgs.push(Msg {
            key: key.clone(),
            seq,
            place: Place::Parked,
        });
        match key {
            Some(key) => {
                if let Some(item) = self.index.accept(&key, seq, i, self.now) {
                    assert_eq!(item, i);
                    self.route(i);
                }
            }
            None => self.route(i),
        }
    }

    fn place(&mut self, rng: &mut Rng) {
        if self.routable.is_empty() {
            return;
        }
        let at = rng.below(self.routable.len());
        let i = self.routable.remove(at).unwrap();
        // Nothing earlier of its key is still uncompleted.
        if let Some(key) = &self.msgs[i].key {
            let seq = self.msgs[i].seq;
            assert!(
                self.msgs
                    .iter()
                    .filter(|m| m.key.as_ref() == Some(key) && m.seq < seq)
                    .all(|m| m.place == Place::Done),
                "{key}: {seq} placed before an earlier message completed"
            );
        }
        self.msgs[i].place = Place::Held;
    }

    /// `i` completes, from wherever it is.
    fn complete(&mut self, i: usize, acked: bool) {
        if self.msgs[i].place == Place::Routable {
            self.routable.retain(|&r| r != i);
        }
        self.msgs[i].place = Place::Done;
        let Some(key) = self.msgs[i].key.clone() else {
            return;
        };
        if acked {
            self.acked
                .entry(Arc::clone(&key))
                .or_default()
                .push(self.msgs[i].seq);
        }
        if let Some(next) = self.index.complete(&key, self.msgs[i].seq, self.now) {
            assert_eq!(self.msgs[next].place, Place::Parked);
            self.route(next);
        }
    }

    fn drop_oldest(&mut self) {
        let victim = self
            .routable
            .pop_front()
            .or_else(|| self.index.pop_oldest_parked());
        if let Some(i) = victim {
            self.msgs[i].place = Place::Routable;
            self.routable.retain(|&r| r != i);
            self.complete(i, false);
        }
    }

    fn close(&mut self) {
        let parked: BTreeSet<usize> = self.index.drain().into_iter().collect();
        assert_eq!(parked, self.in_place(Place::Parked).into_iter().collect());
        self.routable.clear();
        for m in &mut self.msgs {
            m.place = Place::Done;
        }
    }

    /// The host restarts: a new index gets every uncompleted message again,
    /// in sequence order (they come from the store in any order), held and
    /// delayed ones included (their consumers are gone with the host).
    fn restart(&mut self, rng: &mut Rng) {
        let mut alive: Vec<usize> = (0..self.msgs.len())
            .filter(|&i| self.msgs[i].place != Place::Done)
            .collect();
        for n in (1..alive.len()).rev() {
            alive.swap(n, rng.below(n + 1));
        }
        alive.sort_by_key(|&i| self.msgs[i].seq);
        let highest = self.msgs.iter().map(|m| m.seq).max().unwrap_or(0);
        self.index = KeyIndex::default();
        self.index.resume_after(highest);
        self.routable.clear();
        for &i in &alive {
            self.msgs[i].place = Place::Parked;
            match self.msgs[i].key.clone() {
                Some(key) => {
                    let seq = self.msgs[i].seq;
                    if self.index.accept(&key, seq, i, self.now).is_some() {
                        self.route(i);
                    }
                }
                None => self.route(i),
            }
        }
        let next = self.index.next_seq();
        assert!(next > highest, "a recovered index reuses sequence {next}");
        // `next` is spent: a gap in the numbers, which order ignores.
    }

    fn check(&self) {
        let mut by_key: BTreeMap<&Arc<str>, Vec<(u64, Place)>> = BTreeMap::new();
        for m in &self.msgs {
            if let (Some(key), true) = (&m.key, m.place != Place::Done) {
                by_key.entry(key).or_default().push((m.seq, m.place));
            }
        }
        for (key, mut live) in by_key.clone() {
            live.sort_unstable_by_key(|(seq, _)| *seq);
            let (head, head_place) = live[0];
            assert!(
                matches!(head_place, Place::Routable | Place::Held | Place::Delayed),
                "{key}: head {head} is {head_place:?}"
            );
            assert!(
                live[1..].iter().all(|(_, p)| *p == Place::Parked),
                "{key}: two messages out: {live:?}"
            );
            assert_eq!(self.index.head(key), Some(head), "{key}");
            let behind: Vec<u64> = live[1..].iter().map(|(s, _)| *s).collect();
            assert_eq!(self.index.behind(key), behind, "{key}");
        }
        for key in &self.keys {
            if !by_key.contains_key(key) {
                assert_eq!(
                    self.index.head(key),
                    None,
                    "{key} is kept with nothing in it"
                );
            }
        }
        assert_eq!(self.index.len(), by_key.len());
        assert_eq!(self.index.parked(), self.in_place(Place::Parked).len());
        for i in &self.routable {
            assert_eq!(self.msgs[*i].place, Place::Routable);
        }
        assert_eq!(self.routable.len(), self.in_place(Place::Routable).len());
        for (key, acked) in &self.acked {
            assert!(
                acked.windows(2).all(|w| w[0] < w[1]),
                "{key}: acknowledged out of order: {acked:?}"
            );
        }
        let stats = self.index.stats(self.now);
        let waiting: Vec<usize> = by_key.values().map(Vec::len).filter(|&n| n > 1).collect();
        assert_eq!(stats.keys, by_key.len());
        assert_eq!(stats.keys_waiting, waiting.len());
        assert_eq!(
            stats.longest_key_queue,
            waiting.iter().copied().max().unwrap_or(0)
        );
        let listed = deepest(self.index.waiting_keys(self.now), 3);
        assert_eq!(listed.len(), waiting.len().min(3));
        assert!(listed.windows(2).all(|w| w[0].depth >= w[1].depth));
        if let Some(first) = listed.first() {
            assert_eq!(first.depth, stats.longest_key_queue);
        }
    }

    fn step(&mut self, rng: &mut Rng, accepting: bool) {
        match rng.below(100) {
            0..=24 if accepting => self.dispatch(rng),
            0..=44 => self.place(rng),
            45..=59 => {
                if let Some(i) = self.pick(rng, Place::Held) {
                    self.complete(i, true);
                }
            }
            // A crash, a lease expiry, a remote worker's death, a release
            // without delay: back to the routable queue, still the head.
            60..=69 => {
                if let Some(i) = self.pick(rng, Place::Held) {
                    self.route(i);
                }
            }
            70..=74 => {
                if let Some(i) = self.pick(rng, Place::Held) {
                    self.msgs[i].place = Place::Delayed;
                }
            }
            75..=79 => {
                if let Some(i) = self.pick(rng, Place::Delayed) {
                    self.route(i);
                }
            }
            // A deadline passes, wherever the message is.
            80..=86 => {
                let live: Vec<usize> = (0..self.msgs.len())
                    .filter(|&i| self.msgs[i].place != Place::Done)
                    .collect();
                if !live.is_empty() {
                    self.complete(live[rng.below(live.len())], false);
                }
            }
            // Attempts exhausted: dead-lettered from a consumer's hands.
            87..=90 => {
                if let Some(i) = self.pick(rng, Place::Held) {
                    self.complete(i, false);
                }
            }
            91..=93 => self.drop_oldest(),
            94 => self.restart(rng),
            _ => {}
        }
    }
}

fn run(seed: u64, steps: usize, key_count: usize) {
    let mut rng = Rng::new(seed);
    let mut model = Model::new(key_count);
    for _ in 0..steps {
        model.step(&mut rng, true);
        model.check();
    }
    // Drain: nothing new; everything inside finishes.
    let mut guard = 0;
    while model.msgs.iter().any(|m| m.place != Place::Done) {
        model.step(&mut rng, false);
        model.check();
        guard += 1;
        assert!(guard < 1_000_000, "seed {seed}: the drain does not finish");
    }
    assert_eq!(
        model.index.len(),
        0,
        "seed {seed}: keys kept after the drain"
    );
    assert_eq!(model.index.parked(), 0);
    // Every keyed message was acknowledged or completed otherwise, and the
    // acknowledged ones of each key in sequence order (checked per step).
    let acked: usize = model.acked.values().map(Vec::len).sum();
    assert!(acked > 0, "seed {seed}: nothing acknowledged");
}

#[test]
fn any_interleaving_keeps_one_out_per_key_in_sequence_order() {
    for seed in 1..=300 {
        run(seed, 600, 1 + (seed as usize % 7));
    }
}

#[test]
fn many_keys_and_long_runs() {
    for seed in 1000..1004 {
        run(seed, 5_000, 100);
    }
}

#[test]
fn close_returns_everything_waiting_behind_a_head() {
    for seed in 1..=50 {
        let mut rng = Rng::new(seed);
        let mut model = Model::new(4);
        for _ in 0..300 {
            model.step(&mut rng, true);
        }
        model.check();
        model.close();
        assert_eq!(model.index.len(), 0);
        assert_eq!(model.index.parked(), 0);
    }
}

#[test]
fn a_recovered_message_older_than_its_key_head_waits_behind_it() {
    let now = Instant::now();
    let key: Arc<str> = Arc::from("k");
    let mut index = KeyIndex::default();
    assert_eq!(index.accept(&key, 7, 7usize, now), Some(7));
    assert_eq!(index.accept(&key, 9, 9, now), None);
    assert_eq!(index.accept(&key, 3, 3, now), None);
    assert_eq!(index.behind("k"), vec![3, 9]);
    assert!(index.next_seq() >= 10);
    assert_eq!(index.complete("k", 7, now), Some(3));
    assert_eq!(index.complete("k", 3, now), Some(9));
    assert_eq!(index.complete("k", 9, now), None);
    assert_eq!(index.len(), 0);
}
