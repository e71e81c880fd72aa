//! Per-group and per-dispatch options.

use std::time::Duration;

use crate::consumer::LeasePolicy;
use crate::error::{Error, Result};

/// What a dispatch does when its group's waiting room is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Refuse the new dispatch at once with [`Error::QueueFull`] (retriable).
    #[default]
    Reject,
    /// Block the dispatching thread until there is room, up to the
    /// duration; then [`Error::QueueFull`]. From inside a callback (where
    /// blocking is refused) it behaves as `Reject`.
    Block(Duration),
    /// Accept the new dispatch and fail the oldest waiting message with
    /// [`crate::DispatchError::Dropped`] (it goes to the dead-letter handler).
    DropOldest,
}

/// Per-group options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOptions {
    /// Its name in statistics (default `group-<n>`).
    pub name: Option<String>,
    /// Failed attempts after which a message is dead-lettered (default 3,
    /// at least 1). A failed attempt: its consumer died *handling* it (its
    /// callback was running with it, or it answered crash for it), released
    /// it, or let its lease expire. A consumer that died merely *holding* it
    /// counts only with `count_holding_crashes`.
    pub max_attempts: u32,
    /// Also count consumers that died merely holding a message (default false).
    pub count_holding_crashes: bool,
    /// Auto-acknowledgement for consumers that never acknowledge: a delivery
    /// counts as delivered once its consumer stayed alive this long after it
    /// was forwarded. `None` (default): only an acknowledgement completes a
    /// delivery. What it gives up: a consumer that crashes after the window
    /// loses the message silently, and every dispatch takes at least the
    /// window unless acknowledged earlier.
    pub auto_ack_after: Option<Duration>,
    /// Messages that may wait for a consumer at once (default 65,536, at
    /// least 1). Re-routes after a crash always get in.
    pub waiting_room: usize,
    /// What a new dispatch does when the waiting room is full.
    pub overflow: Overflow,
    /// Default deadline (time to live from acceptance) of each message;
    /// `None` (default): messages wait as long as it takes. A message not
    /// delivered by its deadline fails with [`crate::DispatchError::Expired`].
    pub deadline: Option<Duration>,
    /// Acknowledgement lease: a delivery not answered within it is taken
    /// back and routed to another consumer (`None`, the default: no lease).
    /// Consumers may override it; holders may extend it.
    pub ack_lease: Option<Duration>,
    /// What happens to a consumer whose lease expired.
    pub lease_policy: LeasePolicy,
    /// Ordered keys: the routing field whose value (text, or an integer in
    /// decimal) is each message's ordering key. Messages with the same key
    /// are delivered one at a time, in acceptance order; a message without
    /// the field is unordered (a key given with the dispatch wins). `None`
    /// (default): only keys given with the dispatch order messages.
    pub key_field: Option<String>,
    /// When a key's head fails (dead-lettered: attempts used up, expired,
    /// dropped, timed out), hold the key: its next message waits until
    /// [`crate::Group::release_key`]. `false` (default): the key moves on
    /// to its next message at once. A held key is not kept across a
    /// durable group's restart (its next message leads after it).
    pub hold_failed_keys: bool,
    /// Sticky keys: an ordered key's next message goes to the consumer its
    /// previous one went to, while that consumer is alive, not excluded
    /// (it did not fail this message) and has room; otherwise the routing
    /// function chooses. Keeps what a consumer cached about a key warm.
    /// `false` (default): the routing function chooses every time.
    pub sticky_keys: bool,
}

impl Default for GroupOptions {
    fn default() -> Self {
        Self {
            name: None,
            max_attempts: 3,
            count_holding_crashes: false,
            auto_ack_after: None,
            waiting_room: 65_536,
            overflow: Overflow::Reject,
            deadline: None,
            ack_lease: None,
            lease_policy: LeasePolicy::Crash,
            key_field: None,
            hold_failed_keys: false,
            sticky_keys: false,
        }
    }
}

fn positive(value: Option<Duration>, name: &str) -> Result<()> {
    if value == Some(Duration::ZERO) {
        return Err(Error::InvalidArgument(format!("{name} must be positive")));
    }
    Ok(())
}

impl GroupOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.name.as_deref() == Some("") {
            return Err(Error::InvalidArgument("name must not be empty".into()));
        }
        if self.max_attempts == 0 {
            return Err(Error::InvalidArgument(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.waiting_room == 0 {
            return Err(Error::InvalidArgument(
                "waiting_room must be at least 1".into(),
            ));
        }
        positive(self.auto_ack_after, "auto_ack_after")?;
        positive(self.deadline, "deadline")?;
        positive(self.ack_lease, "ack_lease")?;
        if let Overflow::Block(timeout) = self.overflow {
            positive(Some(timeout), "overflow block timeout")?;
        }
        if let Some(field) = &self.key_field {
            if field.is_empty() {
                return Err(Error::InvalidArgument("key_field must not be empty".into()));
            }
            if self.auto_ack_after.is_some() {
                return Err(Error::InvalidArgument(UNORDERABLE.into()));
            }
        }
        Ok(())
    }
}

/// Why a group with auto-acknowledgement cannot order keys.
pub(crate) const UNORDERABLE: &str =
    "ordered keys need explicit acknowledgements: the group auto-acknowledges";

/// Per-dispatch options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DispatchOptions {
    /// This message's deadline (time to live from now), overriding the
    /// group's default.
    pub deadline: Option<Duration>,
    /// Blocking dispatch only: how long to wait for the outcome. When it
    /// passes, the message is withdrawn (a later acknowledgement is fenced)
    /// and the dispatch fails with [`crate::DispatchError::TimedOut`].
    pub timeout: Option<Duration>,
    /// This message's ordering key, overriding the group's key field:
    /// non-empty UTF-8 of at most [`crate::ORDERING_KEY_MAX`] bytes, no NUL.
    pub key: Option<String>,
}

impl DispatchOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        positive(self.deadline, "deadline")?;
        positive(self.timeout, "timeout")?;
        if let Some(key) = &self.key {
            crate::ordering::key::validate(key)?;
        }
        Ok(())
    }
}
