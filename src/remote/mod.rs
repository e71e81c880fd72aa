//! Consumers in other processes and on other hosts, over Zenoh (feature
//! `remote`). A host opens a group to workers ([`RemoteHost`]); a worker
//! connects to it ([`Worker`]). The wire protocol is `docs/PROTOCOL.md`:
//! any Zenoh client can be a worker.

pub(crate) mod config;
pub(crate) mod host;
pub(crate) mod own_thread;
pub(crate) mod protocol;
pub(crate) mod worker;

pub use config::{RemoteOptions, TlsFiles};
pub use host::RemoteHost;
pub use worker::{HostLostHandler, Worker, WorkerSpec, WorkerStatus};
