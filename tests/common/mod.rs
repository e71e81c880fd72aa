//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod chaos;
pub mod churn;
#[cfg(feature = "remote")]
pub mod remote;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use liminal::{
    Builtin, ConsumerSpec, CrashReport, Delivery, Group, GroupOptions, Message, RoutingFunction,
    Runtime, RuntimeOptions, Verdict,
};

/// Long enough that only a hang reaches it.
pub const HANG: Duration = Duration::from_secs(30);

pub fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions::default()).expect("runtime starts")
}

pub fn group(runtime: &Runtime, builtin: Builtin) -> Group {
    runtime
        .group(RoutingFunction::builtin(builtin), GroupOptions::default())
        .expect("group")
}

/// One delivery seen by a consumer: (consumer, dispatch id, attempt, redelivered).
pub type Entry = (String, u64, u32, bool);

/// A record of who received what.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<Entry>>>);

impl Log {
    pub fn push(&self, d: &Delivery) {
        self.0.lock().unwrap().push((
            d.consumer_id().to_owned(),
            d.dispatch_id(),
            d.attempt(),
            d.redelivered(),
        ));
    }
    pub fn consumers(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|e| e.0.clone()).collect()
    }
}

/// A consumer that acks everything and logs it.
pub fn acking(id: &str, log: &Log) -> ConsumerSpec {
    let log = log.clone();
    ConsumerSpec::push(id, move |d: &Delivery| {
        log.push(d);
        Verdict::Ack
    })
}

/// A consumer that crashes on every delivery.
pub fn crashing(id: &str, log: &Log) -> ConsumerSpec {
    let log = log.clone();
    ConsumerSpec::push(id, move |d: &Delivery| {
        log.push(d);
        Verdict::Crash("test crash".into())
    })
}

/// A crash handler that reports on a channel.
pub fn crash_channel() -> (Sender<CrashReport>, Receiver<CrashReport>) {
    crossbeam_channel::unbounded()
}

pub fn msg(n: i64) -> Message {
    Message::new().with("n", liminal::FieldValue::Int(n))
}
