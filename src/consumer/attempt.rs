//! The seam between a consumer and whoever gave it work. A consumer holds
//! *attempts*; it reports each one's end to the attempt's [`AttemptOwner`]
//! (acknowledged, or given back and why), and its own comings and goings to
//! its [`ConsumerHome`]. It knows nothing else about either: the same seam
//! lets a remote consumer stand where a local one stands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::Message;

/// Why an attempt came back without an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GiveBack {
    /// The consumer died holding it. `handling`: its callback was running
    /// with this delivery, or it answered crash for it (evidence against
    /// the message); otherwise it merely held it.
    Crashed {
        handling: bool,
        seen: bool,
        observed: Instant,
    },
    /// The consumer left (or its group closed): not a crash.
    Left { seen: bool },
    /// The consumer handed it back without dying; route it again no sooner
    /// than `delay` from now.
    Released { delay: Duration },
    /// Not answered within the acknowledgement lease.
    LeaseExpired { seen: bool, observed: Instant },
}

impl GiveBack {
    /// Whether the consumer had been handed the message (so it may have
    /// processed it: the next attempt is a redelivery).
    pub(crate) fn seen(&self) -> bool {
        match self {
            Self::Crashed { seen, .. } | Self::Left { seen } | Self::LeaseExpired { seen, .. } => {
                *seen
            }
            Self::Released { .. } => true,
        }
    }
}

/// What a consumer knows of the work it holds.
pub(crate) struct Attempt {
    pub(crate) owner: Arc<dyn AttemptOwner>,
    /// The id of this attempt (unique per runtime), chosen by the owner.
    pub(crate) delivery_id: u64,
    /// 1 for the first forward of the message, then 2, 3…
    pub(crate) number: u32,
    /// An earlier attempt may have been processed.
    pub(crate) redelivered: bool,
    /// Earlier attempts whose consumer died handling the message.
    pub(crate) crashed_handling: u32,
    /// Earlier attempts whose consumer died merely holding it.
    pub(crate) crashed_holding: u32,
}

/// The owner of an attempt: the dispatch conversation of its message.
pub(crate) trait AttemptOwner: Send + Sync {
    /// The dispatch id (stable across attempts).
    fn dispatch_id(&self) -> u64;
    /// The message.
    fn message(&self) -> &Arc<Message>;
    /// The consumer acknowledged attempt `delivery_id`.
    fn acknowledged(&self, delivery_id: u64, consumer_id: &str);
    /// Attempt `delivery_id` came back from consumer `consumer_uid`
    /// (`consumer_id`).
    fn given_back(&self, delivery_id: u64, consumer_uid: u64, consumer_id: &str, why: GiveBack);
}

/// Where a consumer belongs (its group): told when its free capacity
/// changes and when it is no longer a member.
pub(crate) trait ConsumerHome: Send + Sync {
    /// Its free capacity changed by `delta` slots.
    fn capacity_changed(&self, delta: i64);
    /// It is gone (died or left); it must not be routed to again.
    fn departed(&self, consumer_uid: u64);
}
