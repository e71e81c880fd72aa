//! `liminal_runtime_free` returns only after every callback's `free_user`
//! has run (issue 23): the fuzzer's API sequences (the committed corpus and
//! the inputs that once failed), replayed from several threads at once so
//! that shutdowns race each other's scheduler, timer and routing threads,
//! each checked right after its `liminal_runtime_free`.
//!
//! Two threads keep the cores busy meanwhile: the shutdown that failed
//! (issue 23) needed a scheduler worker descheduled at the wrong instant,
//! which an idle machine rarely does.
//!
//! `LIMINAL_SHUTDOWN_RACE_ROUNDS` (default 1) repeats the whole work list.

#[path = "../fuzz/fuzz_targets/sequence.rs"]
mod sequence;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// A late `free_user`, with its thread, once it has run (up to 2 s: a
/// diagnostic for a failure already found, not a synchronisation).
fn wait_for_late(run: &sequence::Run) -> Vec<(sequence::Kind, String)> {
    for _ in 0..200 {
        if run.leaked().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    run.late()
}

/// `LIMINAL_SHUTDOWN_RACE_<name>` as a count, or `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(format!("LIMINAL_SHUTDOWN_RACE_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Threads keeping the cores busy (`LIMINAL_SHUTDOWN_RACE_HOGS`, default 2).
fn hogs() -> usize {
    setting("HOGS", 2)
}

fn rounds() -> usize {
    setting("ROUNDS", 1)
}

/// Runs `work` (input paths, each `repeat` times) on `threads` threads
/// while two more keep the cores busy; returns one line per input whose
/// `user` pointers were not all freed when its runtime's free returned.
fn replay(work: &[PathBuf], repeat: usize, threads: usize) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let total = work.len() * repeat;
    let done = AtomicBool::new(false);
    let replay_one = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return;
        }
        let path = &work[i % work.len()];
        let data = std::fs::read(path).unwrap();
        let run = sequence::run(&data);
        let leaked = run.leaked_at_free();
        if !leaked.is_empty() {
            let late = wait_for_late(&run);
            failures.lock().unwrap().push(format!(
                "{}: not freed at liminal_runtime_free: {leaked:?}; freed later (kind, thread): {late:?}",
                path.display()
            ));
        }
    };
    let hog = || {
        let mut spins = 0u64;
        while !done.load(Ordering::Relaxed) {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    };
    std::thread::scope(|scope| {
        let hogs: Vec<_> = (0..hogs()).map(|_| scope.spawn(hog)).collect();
        let replayers: Vec<_> = (0..threads).map(|_| scope.spawn(replay_one)).collect();
        let results: Vec<_> = replayers.into_iter().map(|r| r.join()).collect();
        done.store(true, Ordering::Relaxed);
        for hog in hogs {
            hog.join().unwrap();
        }
        for result in results {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
    });
    failures.into_inner().unwrap()
}

#[test]
fn every_free_user_has_run_when_runtime_free_returns() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // One input alone (to chase a finding): LIMINAL_SHUTDOWN_RACE_INPUT,
    // on LIMINAL_SHUTDOWN_RACE_THREADS threads (default 2).
    if let Some(input) = std::env::var_os("LIMINAL_SHUTDOWN_RACE_INPUT") {
        let threads = setting("THREADS", 2);
        let work = vec![PathBuf::from(input); 1000];
        let failures = replay(&work, rounds(), threads);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        return;
    }
    let mut work = inputs(&root.join("regressions"));
    // The inputs that failed once, many times over, then the corpus.
    let corpus = inputs(&root.join("corpus/api_sequence"));
    work = work
        .iter()
        .cycle()
        .take(3000)
        .cloned()
        .chain(corpus)
        .collect();
    let failures = replay(&work, rounds(), 2);
    assert!(
        failures.is_empty(),
        "{} of {} runs:\n{}",
        failures.len(),
        work.len() * rounds(),
        failures.join("\n")
    );
}
