//! Zenoh is only ever called from threads this library owns. Zenoh panics
//! when called from a tokio current-thread runtime ("Zenoh runtime doesn't
//! support Tokio's current thread scheduler"), and a host may call us from
//! one: so opening, declaring and closing run on a short-lived thread of
//! ours, and puts go through a sender thread.

use crate::error::{Error, Result};

/// Run `work` on a fresh thread of ours and wait for its result.
pub(crate) fn on_own_thread<T: Send>(what: &str, work: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("liminal-zenoh-call".into())
            .spawn_scoped(scope, work)
            .map_err(|e| Error::SpawnFailed(format!("{what}: {e}")))?;
        handle.join().map_err(|panic| {
            Error::SpawnFailed(format!(
                "{what}: {}",
                crate::base::scope::panic_message(panic.as_ref())
            ))
        })
    })
}

/// What a sender thread takes: a message for a key, or `None` to stop.
pub(crate) type Outbox<M> = crossbeam_channel::Sender<Option<(String, M)>>;

/// A thread that encodes and puts what it is given, with congestion
/// control *block* (Zenoh's default, *drop*, loses messages under load),
/// until told to stop with `None`. Encoding happens here, off the callers'
/// threads (a scheduler worker among them).
pub(crate) fn start_sender<M: Send + 'static>(
    name: &str,
    session: zenoh::Session,
    encode: fn(&M) -> Vec<u8>,
) -> Result<(Outbox<M>, std::thread::JoinHandle<()>)> {
    use zenoh::Wait;
    let (outbox, queue) = crossbeam_channel::unbounded::<Option<(String, M)>>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while let Ok(Some((key, message))) = queue.recv() {
                let _put = session
                    .put(key, encode(&message))
                    .congestion_control(zenoh::qos::CongestionControl::Block)
                    .wait();
            }
        })
        .map_err(|e| Error::SpawnFailed(format!("{name}: {e}")))?;
    Ok((outbox, thread))
}

/// A Zenoh session whose last drop (which closes it) happens on a thread
/// of ours, wherever its owner is dropped.
pub(crate) struct OwnedSession(Option<zenoh::Session>);

impl OwnedSession {
    pub(crate) fn new(session: zenoh::Session) -> Self {
        Self(Some(session))
    }
}

impl std::ops::Deref for OwnedSession {
    type Target = zenoh::Session;

    fn deref(&self) -> &zenoh::Session {
        self.0.as_ref().expect("the session is there until dropped")
    }
}

impl Drop for OwnedSession {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            let _dropped = on_own_thread("zenoh session drop", move || drop(session));
        }
    }
}
