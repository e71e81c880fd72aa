//! Ordered keys: messages that share a key are delivered one at a time, in
//! the order their group accepted them.
//!
//! A key is the value of the group's key field, or the one given with the
//! dispatch ([`key::key_of`]). The waiting room keeps, beside its queue of
//! routable messages, an index by key ([`index::KeyIndex`]): per key the
//! sequence number of its *head* (the one message of the key that may be
//! routed, held or delayed) and the messages waiting behind it, ordered by
//! their acceptance sequence. Only heads enter the routable queue, so a key
//! never blocks another; the routing function still chooses a consumer for
//! each head over the live state.
//!
//! Every path back (a crash, a lease expiry, a release with or without a
//! delay, a remote worker's death) returns the head to the routable queue
//! while it stays its key's head: nothing later of its key moves. Only the
//! head's completion (acknowledged, dead-lettered, expired, dropped, shut
//! down) lets the next message of its key become the head. A key with
//! nothing waiting and nothing out is forgotten.
//!
//! See `docs/ORDERING.md` for the promise, the design and what a durable
//! store will need to rebuild the index.

pub(crate) mod index;
pub(crate) mod key;
pub(crate) mod sticky;

#[cfg(test)]
mod tests;
