//! Remote test helpers (feature `remote`): a host over a real Zenoh
//! session, and worker *processes* (this test binary re-run with
//! `LIMINAL_TEST_WORKER` set) that can be killed, stopped and cut off.
//!
//! A worker process speaks on stdout, one line per event:
//! `joined <incarnation>`, `held <dispatch_id>`, `acked <count>`; and takes
//! commands on stdin: `ack-all` (answer ack to every delivery it holds);
//! end of input closes it gracefully.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use liminal::{
    Builtin, CrashHandler, CrashReport, Delivery, DeliveryToken, DispatchResult, Group,
    GroupOptions, RemoteHost, RemoteOptions, RoutingFunction, Runtime, Verdict, Worker, WorkerSpec,
    WorkerStatus,
};

use super::HANG;

/// The environment variable that turns this test binary into a worker.
pub const WORKER_ENV: &str = "LIMINAL_TEST_WORKER";

/// The environment variable that turns this test binary into a host.
pub const HOST_ENV: &str = "LIMINAL_TEST_HOST";

/// A free loopback TCP endpoint.
pub fn free_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    format!("tcp/127.0.0.1:{port}")
}

/// Options of one side: listen on or connect to `endpoint`, with `lease`.
pub fn options(listen: Option<&str>, connect: Option<&str>, lease: Duration) -> RemoteOptions {
    RemoteOptions {
        listen: listen.map(str::to_owned).into_iter().collect(),
        connect: connect.map(str::to_owned).into_iter().collect(),
        lease,
        ..RemoteOptions::default()
    }
}

/// A host: a runtime, a group opened to workers, the crash reports.
pub struct Host {
    pub remote: RemoteHost,
    pub group: Group,
    pub endpoint: String,
    pub crashes: Receiver<CrashReport>,
    pub runtime: Runtime,
}

impl Host {
    /// A host listening on a free loopback endpoint.
    pub fn open(name: &str, group_options: GroupOptions, max_lease: Duration) -> Self {
        Self::open_with(name, group_options, |endpoint| {
            options(Some(endpoint), None, max_lease)
        })
    }

    /// A host whose options are made from its endpoint by `make`.
    pub fn open_with(
        name: &str,
        group_options: GroupOptions,
        make: impl FnOnce(&str) -> RemoteOptions,
    ) -> Self {
        Self::open_reporting(name, group_options, make, |_group, crash_tx| {
            Box::new(move |report: &CrashReport| {
                let _sent = crash_tx.send(report.clone());
            })
        })
    }

    /// A host whose crash handler is made by `handler` from its group and
    /// the sender of [`Host::crashes`].
    pub fn open_reporting(
        name: &str,
        group_options: GroupOptions,
        make: impl FnOnce(&str) -> RemoteOptions,
        handler: impl FnOnce(&Group, Sender<CrashReport>) -> CrashHandler,
    ) -> Self {
        let runtime = super::runtime();
        let group = runtime
            .group(
                RoutingFunction::builtin(Builtin::LeastLoaded),
                group_options,
            )
            .expect("group");
        let endpoint = free_endpoint();
        let (crash_tx, crashes) = crossbeam_channel::unbounded();
        let remote = RemoteHost::open(
            &group,
            name,
            &make(&endpoint),
            Some(handler(&group, crash_tx)),
        )
        .expect("remote host opens");
        Self {
            remote,
            group,
            endpoint,
            crashes,
            runtime,
        }
    }

    /// Wait until `n` workers joined.
    pub fn wait_workers(&self, n: usize) {
        wait_until(HANG, || self.remote.workers() == n);
    }
}

/// Wait for a condition on state this test cannot be told about by an
/// event (counts inside the library), checking every millisecond; panic
/// after `timeout`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not reached in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One completed dispatch: its id and result.
pub type Done = (u64, DispatchResult);

/// Completions of async dispatches, by dispatch id, on a channel.
pub fn completions() -> (Sender<Done>, Receiver<Done>) {
    crossbeam_channel::unbounded()
}

/// Dispatch `n` numbered messages; their results arrive on `done`, keyed
/// by dispatch id.
pub fn dispatch_n(group: &Group, n: usize, done: &Sender<Done>) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let done = done.clone();
            group
                .dispatch_async(
                    super::msg(i64::try_from(i).unwrap()),
                    Box::new(move |result| {
                        let id = match &result {
                            Ok(outcome) => outcome.trail.dispatch_id,
                            Err(failure) => failure.trail.dispatch_id,
                        };
                        let _sent = done.send((id, result));
                    }),
                )
                .expect("dispatch accepted")
        })
        .collect()
}

/// Collect exactly one result for each of `ids`, failing on a second one
/// for any dispatch or on a hang.
pub fn collect(ids: &[u64], done: &Receiver<Done>) -> HashMap<u64, DispatchResult> {
    let mut results = HashMap::new();
    while results.len() < ids.len() {
        let (id, result) = done.recv_timeout(HANG).expect("every dispatch completes");
        assert!(ids.contains(&id), "a completion for unknown dispatch {id}");
        assert!(
            results.insert(id, result).is_none(),
            "dispatch {id} completed twice"
        );
    }
    // Nothing completes twice later either (checked for a moment).
    if let Ok((id, _)) = done.recv_timeout(Duration::from_millis(50)) {
        panic!("dispatch {id} completed twice");
    }
    results
}

/// A worker process.
pub struct WorkerProcess {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl WorkerProcess {
    /// Start this test binary as a worker: `mode` is `ack` or `hold`.
    pub fn spawn(endpoint: &str, group: &str, id: &str, mode: &str, lease: Duration) -> Self {
        let exe = std::env::current_exe().expect("test binary");
        let spec = format!("{endpoint};{group};{id};{mode};{}", lease.as_millis());
        let mut command = Command::new(exe);
        command
            .args(["--exact", "worker_process", "--nocapture"])
            .env(WORKER_ENV, spec);
        Self::start(command)
    }

    /// Start any worker program that speaks the same lines.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Start this test binary as a host process listening on `endpoint`,
    /// serving group `group` (see [`host_main`]).
    pub fn spawn_host(endpoint: &str, group: &str, max_lease: Duration) -> Self {
        Self::spawn_host_spec(format!("{endpoint};{group};{}", max_lease.as_millis()))
    }

    /// A host process whose group is durable, on the store at `store`.
    pub fn spawn_durable_host(endpoint: &str, group: &str, store: &std::path::Path) -> Self {
        Self::spawn_host_spec(format!("{endpoint};{group};1000;0;{}", store.display()))
    }

    fn spawn_host_spec(spec: String) -> Self {
        let exe = std::env::current_exe().expect("test binary");
        let mut command = Command::new(exe);
        command
            .args(["--exact", "worker_process", "--nocapture"])
            .env(HOST_ENV, spec);
        Self::start(command)
    }

    /// Its output lines, as they come.
    pub fn lines(&self) -> &Receiver<String> {
        &self.lines
    }

    /// What follows `prefix` on the next line that has it (others skipped).
    pub fn expect(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(HANG)
                .unwrap_or_else(|_| panic!("worker never said {prefix:?}"));
            // The test harness's own "test worker_process ... " may begin
            // the first line.
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_owned();
            }
        }
    }

    /// Send a command line.
    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("worker reads commands");
        stdin.flush().expect("flush");
    }

    /// Send a signal (`kill -s`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {signal}");
    }

    /// `kill -9`, returning the instant just before it was sent.
    pub fn kill_9(&mut self) -> Instant {
        let before = Instant::now();
        self.child.kill().expect("kill -9");
        let _status = self.child.wait();
        before
    }

    /// Close stdin (the worker leaves gracefully) and wait for it.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let _status = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _status = self.child.wait();
    }
}

/// A host process: runs when [`HOST_ENV`] is set
/// (`<endpoint>;<group>;<max lease ms>[;<ack lease ms, 0: none>[;<store
/// directory: a durable group>]]`). Says `host <incarnation>` once open;
/// takes commands on stdin: `wait <n>` (says `workers <n>` once `n` workers
/// joined), `dispatch <n>` (dispatches `n` messages; says `completed
/// <dispatch id> <consumer>` or `failed <dispatch id> <error>` for each),
/// `stale` (says `stale <count>`), `pending` (a durable group: says
/// `pending <messages in its store>`). A durable group's recovered messages
/// say `recovered-completed <n>` or `recovered-failed <n>` as they end.
pub fn host_main() {
    let Ok(spec) = std::env::var(HOST_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(';').collect();
    let (endpoint, name, lease_ms, ack_lease_ms, store) = match parts[..] {
        [endpoint, name, lease_ms] => (endpoint, name, lease_ms, "0", None),
        [endpoint, name, lease_ms, ack] => (endpoint, name, lease_ms, ack, None),
        [endpoint, name, lease_ms, ack, store] => (endpoint, name, lease_ms, ack, Some(store)),
        _ => panic!("bad {HOST_ENV}: {spec}"),
    };
    let lease = Duration::from_millis(lease_ms.parse().expect("lease"));
    let ack_lease: u64 = ack_lease_ms.parse().expect("ack lease");
    let runtime = super::runtime();
    let group_options = GroupOptions {
        ack_lease: (ack_lease > 0).then(|| Duration::from_millis(ack_lease)),
        ..GroupOptions::default()
    };
    let routing = RoutingFunction::builtin(Builtin::LeastLoaded);
    let group = match store {
        None => runtime.group(routing, group_options),
        Some(store) => runtime.durable_group(
            routing,
            group_options,
            liminal::StoreOptions::new(store),
            Arc::new(|message: &Arc<liminal::Message>, result: &DispatchResult| {
                let n = match message.get("n") {
                    Some(liminal::FieldValue::Int(n)) => *n,
                    _ => -1,
                };
                match result {
                    Ok(_) => println!("recovered-completed {n}"),
                    Err(failure) => println!("recovered-failed {n} {}", failure.error),
                }
            }),
        ),
    }
    .expect("group");
    let remote = RemoteHost::open(&group, name, &options(Some(endpoint), None, lease), None)
        .expect("remote host opens");
    println!("host {}", remote.incarnation());
    let mut next = 0_i64;
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|n| n.parse::<usize>().ok()),
        ) {
            (Some("wait"), Some(n)) => {
                wait_until(HANG, || remote.workers() == n);
                println!("workers {n}");
            }
            (Some("dispatch"), Some(n)) => {
                for _ in 0..n {
                    next += 1;
                    group
                        .dispatch_async(
                            super::msg(next),
                            Box::new(|result| match result {
                                Ok(outcome) => println!(
                                    "completed {} {}",
                                    outcome.trail.dispatch_id, outcome.delivered_to
                                ),
                                Err(failure) => {
                                    println!(
                                        "failed {} {}",
                                        failure.trail.dispatch_id, failure.error
                                    );
                                }
                            }),
                        )
                        .expect("dispatch accepted");
                }
            }
            (Some("stale"), _) => println!("stale {}", remote.stale_answers()),
            (Some("pending"), _) => println!(
                "pending {}",
                group.store_stats().map_or(0, |stats| stats.pending)
            ),
            _ => panic!("unknown host command {line}"),
        }
    }
    std::process::exit(0);
}

/// The worker side of [`WorkerProcess`]: runs when [`WORKER_ENV`] is set.
pub fn worker_main() {
    host_main();
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(';').collect();
    let [endpoint, group, id, mode, lease_ms] = parts[..] else {
        panic!("bad {WORKER_ENV}: {spec}");
    };
    let lease = Duration::from_millis(lease_ms.parse().expect("lease"));
    if mode == "echo" {
        return echo_main(endpoint, id);
    }
    let held: Arc<Mutex<Vec<DeliveryToken>>> = Arc::default();
    let hold = mode == "hold";
    let holding = Arc::clone(&held);
    let handler = move |d: &Delivery| {
        if hold {
            holding.lock().unwrap().push(d.token());
            let key = d.message().ordering_key().unwrap_or("-").to_owned();
            println!("held {} {} {key}", d.dispatch_id(), d.message_id());
            Verdict::Defer
        } else {
            Verdict::Ack
        }
    };
    let worker = Worker::connect(
        WorkerSpec {
            group: group.into(),
            id: id.into(),
            max_in_flight: 1000,
            tags: Vec::new(),
            handler: Some(Box::new(handler)),
        },
        &options(None, Some(endpoint), lease),
    )
    .expect("worker connects");
    worker.set_host_lost_handler(Some(Box::new(|reason: &str| {
        println!("host-lost {reason}");
    })));
    let worker = Arc::new(worker);
    let watcher = Arc::clone(&worker);
    std::thread::spawn(move || {
        // Says `joined` for each incarnation that joins.
        let mut said = String::new();
        loop {
            if watcher.wait_joined(HANG).is_err() {
                return;
            }
            let incarnation = watcher.incarnation();
            if incarnation != said && watcher.status() == WorkerStatus::Joined {
                println!("joined {incarnation}");
                said = incarnation;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "ack-all" {
            let tokens: Vec<DeliveryToken> = std::mem::take(&mut *held.lock().unwrap());
            let acked = tokens.iter().filter(|t| t.ack().is_ok()).count();
            println!("acked {acked}");
        }
    }
    worker.close();
    std::process::exit(0);
}

/// A bare Zenoh queryable, listening on `endpoint`, that answers every
/// query on `bench/echo/<id>` with its payload: the baseline for a remote
/// delivery's round trip. (Peers do not forward for each other: the
/// asking session connects to this one directly.)
fn echo_main(endpoint: &str, id: &str) {
    use zenoh::Wait;
    let config = options(Some(endpoint), None, Duration::from_secs(1))
        .zenoh_config()
        .expect("config");
    let session = zenoh::open(config).wait().expect("session");
    let key = format!("bench/echo/{id}");
    let _queryable = session
        .declare_queryable(&key)
        .callback(move |query| {
            let payload = query
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            let _replied = query.reply(query.key_expr().clone(), payload).wait();
        })
        .wait()
        .expect("queryable");
    println!("joined echo");
    for _line in std::io::stdin().lines() {}
    std::process::exit(0);
}
