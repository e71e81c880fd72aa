//! The files of a store: a directory holding a lock file and numbered
//! segment files, each a header and then records (see [`super::record`]).
//!
//! Only one live process may hold a store: opening takes an exclusive
//! `flock` on its lock file, released by the kernel when the holder dies,
//! however it dies. Every opening starts a new segment and never writes to
//! an old one, so a torn tail of a segment stays where it is and is found
//! again (and reported again) until compaction deletes that segment.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::stats::StoreDropped as Dropped;
use crate::store::record::{self, Read, Record, MARKER};

/// The format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"LIMINALS";
/// Bytes of a segment header: magic, format version, store id, segment
/// number, first sequence number, check.
pub(crate) const HEADER: usize = 8 + 4 + 8 + 8 + 8 + 8;
const LOCK_FILE: &str = "LOCK";
const SUFFIX: &str = ".seg";

/// One record found by a scan, with where it lies.
pub(crate) struct Found {
    pub(crate) segment: u64,
    pub(crate) len: u64,
    pub(crate) record: Record,
}

/// Everything an opening read.
pub(crate) struct Scan {
    pub(crate) store_id: u64,
    /// The highest sequence number any segment header says was issued
    /// before it (so numbers resume after it even when every record of
    /// the old numbers was compacted away).
    pub(crate) first_seq: u64,
    /// Records in file order, oldest segment first.
    pub(crate) records: Vec<Found>,
    /// Existing segments (number, size in bytes), oldest first.
    pub(crate) segments: Vec<(u64, u64)>,
    pub(crate) dropped: Dropped,
}

/// An open store directory: its lock, and the segment being written.
pub(crate) struct Log {
    dir: PathBuf,
    _lock: File,
    store_id: u64,
    active: File,
    active_number: u64,
    active_len: u64,
}

fn io(context: &str, path: &Path, error: &std::io::Error) -> Error {
    Error::StoreFailed(format!("{context} {}: {error}", path.display()))
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016x}{SUFFIX}"))
}

/// Make a directory's entries durable (after creating or deleting a file).
fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| io("open directory", dir, &e))?;
    // SAFETY: a valid descriptor owned by `handle` for the whole call.
    if unsafe { libc::fsync(handle.as_raw_fd()) } != 0 {
        return Err(io("fsync directory", dir, &std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Write the data of `file` to stable storage.
pub(crate) fn sync_data(file: &File) -> std::io::Result<()> {
    // SAFETY: a valid descriptor owned by `file` for the whole call.
    if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("open", &path, &e))?;
    // SAFETY: a valid descriptor owned by `file`; flock takes no pointers.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::StoreLocked(dir.display().to_string()));
        }
        return Err(io("lock", &path, &error));
    }
    Ok(file)
}

fn header(store_id: u64, number: u64, first_seq: u64) -> [u8; HEADER] {
    let mut bytes = [0u8; HEADER];
    bytes[0..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&store_id.to_le_bytes());
    bytes[20..28].copy_from_slice(&number.to_le_bytes());
    bytes[28..36].copy_from_slice(&first_seq.to_le_bytes());
    let check = xxhash_rust::xxh3::xxh3_64(&bytes[..36]);
    bytes[36..44].copy_from_slice(&check.to_le_bytes());
    bytes
}

enum Header {
    Good { store_id: u64, first_seq: u64 },
    Newer(u32),
    Bad,
}

fn read_header(bytes: &[u8]) -> Header {
    if bytes.len() < HEADER || &bytes[0..8] != MAGIC {
        return Header::Bad;
    }
    let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    if xxhash_rust::xxh3::xxh3_64(&bytes[..36]) != field(36) {
        return Header::Bad;
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version > FORMAT_VERSION {
        return Header::Newer(version);
    }
    Header::Good {
        store_id: field(12),
        first_seq: field(28),
    }
}

/// The next intact record at or after `from`, if any.
fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    let marker = MARKER.to_le_bytes();
    let mut at = from;
    while at + record::FRAME <= bytes.len() {
        let next = bytes[at..]
            .windows(4)
            .position(|w| w == marker)
            .map(|p| at + p)?;
        if matches!(record::read(&bytes[next..]), Read::Record(..)) {
            return Some(next);
        }
        at = next + 1;
    }
    None
}

fn segments(dir: &Path) -> Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io("read", dir, &e))? {
        let entry = entry.map_err(|e| io("read", dir, &e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(SUFFIX) {
            if let Ok(number) = u64::from_str_radix(hex, 16) {
                numbers.push(number);
            }
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Read every segment of `dir`.
fn scan(dir: &Path) -> Result<Scan> {
    let mut scan = Scan {
        store_id: 0,
        first_seq: 0,
        records: Vec::new(),
        segments: Vec::new(),
        dropped: Dropped::default(),
    };
    let numbers = segments(dir)?;
    for &number in &numbers {
        let path = segment_path(dir, number);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut file| {
                let len = file.metadata()?.len();
                bytes.reserve_exact(usize::try_from(len).unwrap_or(0));
                file.read_to_end(&mut bytes)
            })
            .map_err(|e| io("read", &path, &e))?;
        scan.segments.push((number, bytes.len() as u64));
        match read_header(&bytes) {
            Header::Newer(version) => {
                return Err(Error::StoreFailed(format!(
                    "{} was written by a newer liminal (store format {version}; this build reads up to {FORMAT_VERSION})",
                    path.display()
                )))
            }
            Header::Bad => {
                // A segment shorter than its header died before the header
                // was durable: it held nothing acknowledged. A longer one
                // with a bad header is unreadable as a whole.
                if bytes.len() < HEADER {
                    scan.dropped.torn += u64::from(!bytes.is_empty());
                } else {
                    scan.dropped.segments += 1;
                }
                scan.dropped.bytes += bytes.len() as u64;
                continue;
            }
            Header::Good {
                store_id,
                first_seq,
            } => {
                if scan.store_id == 0 {
                    scan.store_id = store_id;
                }
                scan.first_seq = scan.first_seq.max(first_seq);
            }
        }
        let mut at = HEADER;
        while at < bytes.len() {
            match record::read(&bytes[at..]) {
                Read::Record(record, len) => {
                    scan.records.push(Found {
                        segment: number,
                        len: len as u64,
                        record,
                    });
                    at += len;
                }
                Read::Short | Read::Damaged => match resync(&bytes, at + 1) {
                    Some(next) => {
                        scan.dropped.damaged += 1;
                        scan.dropped.bytes += (next - at) as u64;
                        at = next;
                    }
                    None => {
                        scan.dropped.torn += 1;
                        scan.dropped.bytes += (bytes.len() - at) as u64;
                        at = bytes.len();
                    }
                },
            }
        }
    }
    Ok(scan)
}

pub(crate) fn new_store_id() -> u64 {
    let seed = format!(
        "{}-{:?}-{:?}",
        std::process::id(),
        std::time::SystemTime::now(),
        std::time::Instant::now()
    );
    xxhash_rust::xxh3::xxh3_64(seed.as_bytes()).max(1)
}

impl Log {
    /// Open (creating if needed) the store at `dir`: lock it, read what it
    /// holds, and start a new segment whose first sequence number follows
    /// every one issued before (`next_seq` is computed by the caller from
    /// the scan and passed to [`Log::start`]).
    pub(crate) fn open(dir: &Path) -> Result<(Self, Scan)> {
        fs::create_dir_all(dir).map_err(|e| io("create", dir, &e))?;
        let lock = lock(dir)?;
        let scan = scan(dir)?;
        let store_id = if scan.store_id == 0 {
            new_store_id()
        } else {
            scan.store_id
        };
        let next_number = scan.segments.last().map_or(1, |(n, _)| n + 1);
        let path = segment_path(dir, next_number);
        // A placeholder until `start` writes the header with the right
        // first sequence number (nothing is written before that).
        let active = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("create", &path, &e))?;
        Ok((
            Self {
                dir: dir.to_owned(),
                _lock: lock,
                store_id,
                active,
                active_number: next_number,
                active_len: 0,
            },
            scan,
        ))
    }

    /// Write the new segment's header (first sequence number `next_seq`)
    /// and make it and its directory entry durable.
    pub(crate) fn start(&mut self, next_seq: u64) -> Result<()> {
        let path = segment_path(&self.dir, self.active_number);
        self.active
            .write_all(&header(self.store_id, self.active_number, next_seq))
            .and_then(|()| sync_data(&self.active))
            .map_err(|e| io("write", &path, &e))?;
        self.active_len = HEADER as u64;
        sync_dir(&self.dir)
    }

    /// The store's id (the same for the life of the store).
    pub(crate) fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The segment being written.
    pub(crate) fn active(&self) -> u64 {
        self.active_number
    }

    /// Bytes in the segment being written.
    pub(crate) fn active_len(&self) -> u64 {
        self.active_len
    }

    /// Append `bytes` (whole records) to the active segment, without
    /// syncing.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.active.write_all(bytes)?;
        self.active_len += bytes.len() as u64;
        Ok(())
    }

    /// Make everything written so far durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        sync_data(&self.active)
    }

    /// Seal the active segment and start the next one (first sequence
    /// number `next_seq`). Returns the sealed segment's number.
    pub(crate) fn rotate(&mut self, next_seq: u64) -> Result<u64> {
        let sealed = self.active_number;
        let number = sealed + 1;
        let path = segment_path(&self.dir, number);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("create", &path, &e))?;
        self.active = file;
        self.active_number = number;
        self.active_len = 0;
        self.start(next_seq)?;
        Ok(sealed)
    }

    /// Delete a sealed segment (its records are all completed or moved).
    pub(crate) fn delete(&self, number: u64) -> Result<()> {
        let path = segment_path(&self.dir, number);
        fs::remove_file(&path).map_err(|e| io("delete", &path, &e))?;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_from_a_newer_format_is_recognised() {
        let mut bytes = header(5, 1, 1);
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let check = xxhash_rust::xxh3::xxh3_64(&bytes[..36]);
        bytes[36..44].copy_from_slice(&check.to_le_bytes());
        assert!(matches!(read_header(&bytes), Header::Newer(v) if v == FORMAT_VERSION + 1));
        assert!(matches!(
            read_header(&header(5, 1, 9)),
            Header::Good {
                store_id: 5,
                first_seq: 9
            }
        ));
        assert!(matches!(read_header(&bytes[..HEADER - 1]), Header::Bad));
    }
}
