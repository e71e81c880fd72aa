//! The store's records and their bytes.
//!
//! A segment file is a header followed by records. Every record is framed
//! as `marker (u32) | length of body (u32) | check (u32) | body`, all
//! little-endian, where the check is the low half of the body's XXH3-64.
//! The marker lets a reader find the next record after a damaged one; the
//! check lets it refuse anything that is not a whole record written by us.
//!
//! Bodies start with their kind: an accepted message (its group sequence
//! number, counts, deadline, key and the message itself), an attempt count
//! update, or a completion. Numbers and lengths are LEB128 varints, so a
//! message costs its payload, its fields and key, and about 26 bytes more.

use std::sync::Arc;

use crate::message::{FieldValue, Message};

/// Bytes in front of every record body.
pub(crate) const FRAME: usize = 12;
/// First bytes of every record frame.
pub(crate) const MARKER: u32 = 0x4c4d_5231; // "1RML" little-endian
/// Largest record body accepted on read (a message larger than this cannot
/// be stored: the dispatch is refused before anything is written).
pub(crate) const MAX_BODY: usize = 64 << 20;

const KIND_ACCEPTED: u8 = 1;
const KIND_ATTEMPTED: u8 = 2;
const KIND_COMPLETED: u8 = 3;

/// The failure counts of a message, kept so poison counting continues
/// where it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Failed attempts counted against the group's `max_attempts`.
    pub(crate) failed: u32,
    /// Attempts whose consumer died handling it.
    pub(crate) crashed_handling: u32,
    /// Attempts whose consumer died merely holding it.
    pub(crate) crashed_holding: u32,
    /// Attempts forwarded so far.
    pub(crate) attempts: u32,
}

/// One accepted message as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Accepted {
    /// The group's acceptance sequence number.
    pub(crate) seq: u64,
    /// Its deadline, in milliseconds since the Unix epoch (wall clock).
    pub(crate) deadline_unix_ms: Option<u64>,
    /// Its counts when written (a copy moved forward by compaction carries
    /// the counts of that moment).
    pub(crate) counts: Counts,
    /// The message, its ordering key included.
    pub(crate) message: Arc<Message>,
}

/// A record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    /// A message was accepted.
    Accepted(Accepted),
    /// A message's counts changed (a failed attempt).
    Attempted {
        /// Its sequence number.
        seq: u64,
        /// Its counts now.
        counts: Counts,
    },
    /// A message completed (acknowledged, dead-lettered, expired, dropped):
    /// it is never recovered.
    Completed {
        /// Its sequence number.
        seq: u64,
    },
}

impl Record {
    /// The sequence number it is about.
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Self::Accepted(accepted) => accepted.seq,
            Self::Attempted { seq, .. } | Self::Completed { seq } => *seq,
        }
    }

    /// Append it, framed, to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME]);
        match self {
            Self::Accepted(accepted) => {
                out.push(KIND_ACCEPTED);
                put_varint(out, accepted.seq);
                put_varint(out, accepted.deadline_unix_ms.map_or(0, |ms| ms.max(1)));
                put_counts(out, accepted.counts);
                put_message(out, &accepted.message);
            }
            Self::Attempted { seq, counts } => {
                out.push(KIND_ATTEMPTED);
                put_varint(out, *seq);
                put_counts(out, *counts);
            }
            Self::Completed { seq } => {
                out.push(KIND_COMPLETED);
                put_varint(out, *seq);
            }
        }
        let body_len = out.len() - start - FRAME;
        let check = checksum(&out[start + FRAME..]);
        out[start..start + 4].copy_from_slice(&MARKER.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&(body_len as u32).to_le_bytes());
        out[start + 8..start + 12].copy_from_slice(&check.to_le_bytes());
    }

    /// Its encoded length.
    #[cfg(test)]
    pub(crate) fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len()
    }
}

/// What a read at one offset found.
#[derive(Debug, PartialEq)]
pub(crate) enum Read {
    /// A whole record of `len` bytes (frame included).
    Record(Record, usize),
    /// Fewer bytes left than a frame or its body needs: a torn tail.
    Short,
    /// A frame whose marker, length, check or body is wrong.
    Damaged,
}

/// Read the record framed at the start of `bytes`.
pub(crate) fn read(bytes: &[u8]) -> Read {
    if bytes.len() < FRAME {
        return Read::Short;
    }
    let marker = u32::from_le_bytes(bytes[0..4].try_into().unwrap_or_default());
    if marker != MARKER {
        return Read::Damaged;
    }
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default()) as usize;
    if len == 0 || len > MAX_BODY {
        return Read::Damaged;
    }
    if bytes.len() < FRAME + len {
        return Read::Short;
    }
    let check = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    let body = &bytes[FRAME..FRAME + len];
    if checksum(body) != check {
        return Read::Damaged;
    }
    match decode(body) {
        Some(record) => Read::Record(record, FRAME + len),
        None => Read::Damaged,
    }
}

fn decode(body: &[u8]) -> Option<Record> {
    let mut r = Reader { bytes: body };
    let record = match r.u8()? {
        KIND_ACCEPTED => {
            let seq = r.varint()?;
            let deadline = r.varint()?;
            let counts = r.counts()?;
            let message = r.message()?;
            Record::Accepted(Accepted {
                seq,
                deadline_unix_ms: (deadline != 0).then_some(deadline),
                counts,
                message: Arc::new(message),
            })
        }
        KIND_ATTEMPTED => Record::Attempted {
            seq: r.varint()?,
            counts: r.counts()?,
        },
        KIND_COMPLETED => Record::Completed { seq: r.varint()? },
        _ => return None,
    };
    r.bytes.is_empty().then_some(record)
}

/// The check of a record body: the low half of its XXH3-64.
fn checksum(body: &[u8]) -> u32 {
    xxhash_rust::xxh3::xxh3_64(body) as u32
}

/// LEB128: seven bits a byte, low first, the high bit set on all but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_counts(out: &mut Vec<u8>, counts: Counts) {
    put_varint(out, u64::from(counts.failed));
    put_varint(out, u64::from(counts.crashed_handling));
    put_varint(out, u64::from(counts.crashed_holding));
    put_varint(out, u64::from(counts.attempts));
}

fn put_message(out: &mut Vec<u8>, message: &Message) {
    match message.ordering_key() {
        Some(key) => {
            out.push(1);
            put_bytes(out, key.as_bytes());
        }
        None => out.push(0),
    }
    put_varint(out, message.fields().len() as u64);
    for (name, value) in message.fields() {
        put_bytes(out, name.as_bytes());
        match value {
            FieldValue::Text(text) => {
                out.push(1);
                put_bytes(out, text.as_bytes());
            }
            FieldValue::Int(value) => {
                out.push(2);
                out.extend_from_slice(&value.to_le_bytes());
            }
            FieldValue::Double(value) => {
                out.push(3);
                out.extend_from_slice(&value.to_bits().to_le_bytes());
            }
            FieldValue::Bool(value) => {
                out.push(4);
                out.push(u8::from(*value));
            }
            FieldValue::Null => out.push(5),
        }
    }
    match message.payload() {
        Some(payload) => {
            out.push(1);
            put_bytes(out, payload);
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// A LEB128 varint of at most 10 bytes (a longer one, or one past
    /// 64 bits, is damage).
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn small(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    fn text(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }

    fn counts(&mut self) -> Option<Counts> {
        Some(Counts {
            failed: self.small()?,
            crashed_handling: self.small()?,
            crashed_holding: self.small()?,
            attempts: self.small()?,
        })
    }

    fn message(&mut self) -> Option<Message> {
        let key = match self.u8()? {
            0 => None,
            1 => Some(Arc::<str>::from(self.text()?)),
            _ => return None,
        };
        let count = usize::try_from(self.varint()?).ok()?;
        if count > self.bytes.len() {
            return None;
        }
        let mut message = Message::new();
        for _ in 0..count {
            let name = self.text()?;
            if message.get(&name).is_some() {
                return None;
            }
            let value = match self.u8()? {
                1 => FieldValue::Text(self.text()?),
                2 => FieldValue::Int(i64::from_le_bytes(self.take(8)?.try_into().ok()?)),
                3 => FieldValue::Double(f64::from_bits(u64::from_le_bytes(
                    self.take(8)?.try_into().ok()?,
                ))),
                4 => match self.u8()? {
                    0 => FieldValue::Bool(false),
                    1 => FieldValue::Bool(true),
                    _ => return None,
                },
                5 => FieldValue::Null,
                _ => return None,
            };
            message.set(name, value);
        }
        match self.u8()? {
            0 => {}
            1 => {
                message.set_payload(self.bytes()?.to_vec());
            }
            _ => return None,
        }
        Some(Message::with_key(message, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Record {
        let message = Message::new()
            .with("t", FieldValue::Text("héllo".into()))
            .with("i", FieldValue::Int(-3))
            .with("d", FieldValue::Double(2.5))
            .with("b", FieldValue::Bool(true))
            .with("n", FieldValue::Null)
            .with_payload(vec![0, 1, 2, 255]);
        Record::Accepted(Accepted {
            seq,
            deadline_unix_ms: Some(1_700_000_000_000),
            counts: Counts {
                failed: 2,
                crashed_handling: 1,
                crashed_holding: 1,
                attempts: 3,
            },
            message: Arc::new(Message::with_key(message, Some(Arc::from("acct-9")))),
        })
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        let records = [
            sample(7),
            Record::Attempted {
                seq: 7,
                counts: Counts {
                    failed: 1,
                    ..Counts::default()
                },
            },
            Record::Completed { seq: 7 },
            Record::Accepted(Accepted {
                seq: 8,
                deadline_unix_ms: None,
                counts: Counts::default(),
                message: Arc::new(Message::new()),
            }),
        ];
        let mut bytes = Vec::new();
        for record in &records {
            record.encode(&mut bytes);
        }
        let mut at = 0;
        for record in &records {
            match read(&bytes[at..]) {
                Read::Record(found, len) => {
                    assert_eq!(&found, record);
                    assert_eq!(len, record.encoded_len());
                    at += len;
                }
                other => panic!("expected a record, found {other:?}"),
            }
        }
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn a_record_costs_its_payload_and_at_most_32_bytes_more() {
        let message = Message::new().with_payload(vec![7u8; 200]);
        let record = Record::Accepted(Accepted {
            seq: 1_000_000,
            deadline_unix_ms: Some(1_800_000_000_000),
            counts: Counts::default(),
            message: Arc::new(message),
        });
        assert!(
            record.encoded_len() <= 200 + 32,
            "{} bytes",
            record.encoded_len()
        );
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Reader { bytes: &out }.varint(), Some(value), "{value}");
        }
        // Eleven bytes, or a tenth byte past 64 bits: damage, not a number.
        assert_eq!(Reader { bytes: &[0xff; 11] }.varint(), None);
        let mut past = vec![0xff; 9];
        past.push(0x02);
        assert_eq!(Reader { bytes: &past }.varint(), None);
    }

    #[test]
    fn a_torn_or_flipped_record_is_never_read_as_one() {
        let mut bytes = Vec::new();
        sample(1).encode(&mut bytes);
        for cut in 0..bytes.len() {
            assert_eq!(read(&bytes[..cut]), Read::Short, "cut at {cut}");
        }
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[at] ^= 1 << bit;
                assert!(
                    !matches!(read(&flipped), Read::Record(..)),
                    "flip of bit {bit} at {at} read as a record"
                );
            }
        }
    }
}
