//! Durable groups: the store that keeps what a group accepted until it is
//! completed, so a host killed at any instant loses nothing it accepted.
//!
//! A store is a directory of append-only segment files ([`log`]) with
//! checked records ([`record`]). The [`journal`] of a durable group writes
//! each accepted message there and acknowledges the dispatch only once an
//! `fdatasync` covers it (one sync for every dispatch that arrived while
//! the previous one ran: group commit); completions are recorded too, so
//! opening the group again gives back exactly what was accepted and not
//! completed, in acceptance order, with its counts and deadline.
//!
//! The group's dispatcher is the only user: it accepts through the journal,
//! tells it about completions and failed attempts, and re-admits what it
//! recovered. Nothing of the store is threaded through the conversation.

pub(crate) mod host;
pub(crate) mod journal;
pub(crate) mod log;
pub(crate) mod record;

#[cfg(test)]
mod tests;

pub use host::HostStore;

use std::path::PathBuf;
use std::time::Duration;

/// When the store's writes reach stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Every group commit is followed by `fdatasync`; a dispatch returns
    /// only once its message is on stable storage. The default.
    #[default]
    EveryCommit,
    /// A dispatch returns once its message is written to the operating
    /// system (it survives the host process being killed, however); the
    /// store is synced every interval. An operating-system crash or power
    /// loss may lose what was accepted during the last interval.
    Interval(Duration),
}

/// A durable group's store (see [`crate::Runtime::durable_group`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The store's directory (created if missing). One live process may
    /// hold it at a time.
    pub path: PathBuf,
    /// When writes reach stable storage.
    pub sync: SyncPolicy,
    /// Size at which a segment file is sealed and a new one started
    /// (default 64 MiB, at least 4 KiB). Sealed segments are deleted once
    /// nothing in them is pending.
    pub segment_bytes: u64,
}

impl StoreOptions {
    /// A store at `path` with the defaults (sync every commit, 64 MiB
    /// segments).
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sync: SyncPolicy::EveryCommit,
            segment_bytes: 64 << 20,
        }
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.path.as_os_str().is_empty() {
            return Err(crate::Error::InvalidArgument(
                "store path must not be empty".into(),
            ));
        }
        if self.segment_bytes < 4096 {
            return Err(crate::Error::InvalidArgument(
                "store segment_bytes must be at least 4096".into(),
            ));
        }
        if self.sync == SyncPolicy::Interval(Duration::ZERO) {
            return Err(crate::Error::InvalidArgument(
                "store sync interval must be positive".into(),
            ));
        }
        Ok(())
    }
}
