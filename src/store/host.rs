//! A store the host owns (its SQLite, Postgres, its own log), behind two
//! calls: commit a batch durably, and scan what is stored.
//!
//! The host keeps opaque records by sequence number: `commit` stores (or
//! replaces) some and removes others in one durable step; `scan` gives back
//! every stored one. Each record is one of ours, framed and checked (see
//! [`super::record`]), so a damaged one is found and left out. Sequence
//! number 0 holds the store's own header: its id (the first half of every
//! message id) and how far sequence numbers were handed out, so numbers
//! are never issued twice even after every message that had them was
//! removed.

use crate::error::{Error, Result};
use crate::stats::StoreDropped;
use crate::store::log::{Found, Scan, FORMAT_VERSION};
use crate::store::record::{self, Read};

/// A host's own store for a durable group (see
/// [`crate::Runtime::durable_group_in`]). Calls come from one thread at a
/// time (the group's commit leader or its flusher), never concurrently.
pub trait HostStore: Send {
    /// Store every `(sequence number, record)` of `puts` (replacing a record
    /// stored under the same number), then remove every number of `removes`
    /// (a number not stored is no error; one may have been put in this same
    /// call, and is then removed), durably: when this returns `Ok`,
    /// all of it must survive the host's crash. One transaction is the
    /// natural shape. An `Err` stops the group's store: nothing more is
    /// accepted (a retry could not know what the failed call left).
    fn commit(&mut self, puts: &[(u64, &[u8])], removes: &[u64])
        -> std::result::Result<(), String>;

    /// Give every stored `(sequence number, record)` to `emit`, in any
    /// order.
    fn scan(&mut self, emit: &mut dyn FnMut(u64, &[u8])) -> std::result::Result<(), String>;
}

const META_MAGIC: &[u8; 8] = b"LIMINALH";
const META_LEN: usize = 8 + 4 + 8 + 8 + 8;
/// Sequence numbers reserved at a time (one header write per this many
/// messages).
const RESERVE: u64 = 1 << 16;

fn meta(store_id: u64, reserved: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(META_LEN);
    bytes.extend_from_slice(META_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&store_id.to_le_bytes());
    bytes.extend_from_slice(&reserved.to_le_bytes());
    let check = xxhash_rust::xxh3::xxh3_64(&bytes);
    bytes.extend_from_slice(&check.to_le_bytes());
    bytes
}

/// The header's store id and reservation; `Err` for a newer format.
fn read_meta(bytes: &[u8]) -> Result<Option<(u64, u64)>> {
    if bytes.len() != META_LEN || &bytes[..8] != META_MAGIC {
        return Ok(None);
    }
    let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    if xxhash_rust::xxh3::xxh3_64(&bytes[..META_LEN - 8]) != field(META_LEN - 8) {
        return Ok(None);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version > FORMAT_VERSION {
        return Err(Error::StoreFailed(format!(
            "the host's store was written by a newer liminal (store format {version}; this build reads up to {FORMAT_VERSION})"
        )));
    }
    Ok(Some((field(12), field(20))))
}

/// The host's store as the journal writes to it.
pub(crate) struct HostSink {
    store: Box<dyn HostStore>,
    store_id: u64,
    /// Sequence numbers up to this one may have been issued.
    reserved: u64,
}

/// What the journal hands a sink per record: its sequence number, where its
/// bytes lie in the commit buffer, and whether it is stored or removed.
pub(crate) struct Change {
    pub(crate) seq: u64,
    pub(crate) span: std::ops::Range<usize>,
    pub(crate) remove: bool,
}

impl HostSink {
    /// Scan the host's store: what it holds, as the journal reads a log.
    pub(crate) fn open(mut store: Box<dyn HostStore>, new_id: u64) -> Result<(Self, Scan)> {
        let mut scan = Scan {
            store_id: 0,
            first_seq: 0,
            records: Vec::new(),
            segments: Vec::new(),
            dropped: StoreDropped::default(),
        };
        let mut header = None;
        let mut newer = None;
        store
            .scan(&mut |seq, bytes| {
                if seq == 0 {
                    match read_meta(bytes) {
                        Ok(Some(found)) => header = Some(found),
                        Ok(None) => {
                            scan.dropped.damaged += 1;
                            scan.dropped.bytes += bytes.len() as u64;
                        }
                        Err(error) => newer = Some(error),
                    }
                    return;
                }
                match record::read(bytes) {
                    Read::Record(record, len) if len == bytes.len() && record.seq() == seq => {
                        scan.records.push(Found {
                            segment: 0,
                            len: len as u64,
                            record,
                        });
                    }
                    _ => {
                        scan.dropped.damaged += 1;
                        scan.dropped.bytes += bytes.len() as u64;
                    }
                }
            })
            .map_err(|e| Error::StoreFailed(format!("scanning the host's store failed: {e}")))?;
        if let Some(error) = newer {
            return Err(error);
        }
        // Sequence order: the journal reads records as a log would give them.
        scan.records.sort_by_key(|found| found.record.seq());
        let (store_id, reserved) = header.unwrap_or((new_id, 0));
        scan.store_id = store_id;
        scan.first_seq = reserved + 1;
        Ok((
            Self {
                store,
                store_id,
                reserved,
            },
            scan,
        ))
    }

    pub(crate) fn store_id(&self) -> u64 {
        self.store_id
    }

    /// Commit `changes` (records in `buffer`) in one call of the host's
    /// store, with a new header first when they use numbers past the
    /// reservation.
    pub(crate) fn commit(
        &mut self,
        buffer: &[u8],
        changes: &[Change],
    ) -> std::result::Result<(), String> {
        let mut puts: Vec<(u64, &[u8])> = Vec::with_capacity(changes.len() + 1);
        let mut removes = Vec::new();
        let highest = changes.iter().map(|c| c.seq).max().unwrap_or(0);
        let header;
        let reserved = if highest > self.reserved {
            let reserved = highest + RESERVE;
            header = meta(self.store_id, reserved);
            puts.push((0, &header));
            Some(reserved)
        } else {
            None
        };
        for change in changes {
            if change.remove {
                removes.push(change.seq);
            } else {
                puts.push((change.seq, &buffer[change.span.clone()]));
            }
        }
        // A record stored and removed in one batch (completed before its
        // commit) is removed: the host applies puts, then removes.
        self.store
            .commit(&puts, &removes)
            .map_err(|e| format!("the host's store failed to commit: {e}"))?;
        if let Some(reserved) = reserved {
            self.reserved = reserved;
        }
        Ok(())
    }
}
