//! The write-ahead log: every write is appended here before it is acknowledged, and
//! replayed on reopen until its rows are in segment files.
//!
//! The engine turns each write call (an atomic batch of rows for one table) into an opaque
//! payload and [`Wal::append`]s it, which assigns the next sequence number. How long the
//! caller then waits is the [`Durability`] setting ([`Wal::wait_durable`]). On reopen,
//! [`replay`] hands every intact record back in sequence order, cutting off a record that a
//! crash left half written (a *torn tail*). Files whose records are all in segments are
//! deleted with [`Wal::remove_obsolete`].
//!
//! # Files
//!
//! The log lives in `<db>/wal/`, as files named `{first_seq:020}.wal`: the sequence number
//! of the first record the file may hold, zero padded to 20 digits so that names sort in
//! sequence order (`00000000000000000042.wal`). A file holds the records from its
//! `first_seq` up to the next file's `first_seq`, exclusive. Only the newest file is
//! appended to; a new file is started (rotation) when the current one would grow past
//! [`WalOptions::max_file_bytes`], and at every [`Wal::create`]. Other names in the
//! directory are ignored.
//!
//! # Bytes
//!
//! ```text
//! WAL_FILE    := FILE_HEADER RECORD*
//! FILE_HEADER := MAGIC VERSION DB_TAG                     (16 bytes)
//! MAGIC       := "SXTWAL" 0x00 0x00                       (8 bytes)
//! VERSION     := u32 LE = 2                               (4 bytes)
//! DB_TAG      := u32 LE, the database's tag               (4 bytes)
//! RECORD      := LEN CRC SEQ PAYLOAD                      (16 + LEN bytes)
//! LEN         := u32 LE, payload length, at most 2^30 (1 GiB)
//! CRC         := u32 LE, CRC-32 (IEEE) of LEN's 4 bytes, SEQ's 8 bytes and PAYLOAD
//! SEQ         := u64 LE, sequence number, strictly increasing through the log
//! PAYLOAD     := LEN bytes, opaque to the log (the engine's encoded write)
//! ```
//!
//! | offset        | size | field    | contents                                              |
//! |---------------|------|----------|-------------------------------------------------------|
//! | file + 0      | 8    | magic    | `53 58 54 57 41 4c 00 00` (`SXTWAL\0\0`)              |
//! | file + 8      | 4    | version  | u32 LE, `2` (`1` is read too: see below)              |
//! | file + 12     | 4    | db tag   | u32 LE, the low 32 bits of the database id            |
//! | file + 16     | ...  | records  | back to back, no padding, no footer                   |
//! | record + 0    | 4    | len      | u32 LE, payload length in bytes, at most 1 GiB        |
//! | record + 4    | 4    | crc      | u32 LE, CRC-32 (IEEE) over `len`, `seq` and payload   |
//! | record + 8    | 8    | seq      | u64 LE, sequence number                               |
//! | record + 16   | len  | payload  | opaque                                                |
//!
//! The database tag tells this database's files from another's put in their place: the
//! engine writes the low 32 bits of the database id its manifest holds, and replay
//! refuses a file carrying another tag. Version 1 files (written before the tag) have
//! zeros there and are read as before.
//!
//! Integers are little endian. The checksum is the one `crc32fast` computes (the
//! reflected polynomial `0xEDB88320`, as zlib), fed `len` then `seq` then the payload.
//! Each record is written with one `write` of one buffer, header and payload together.
//! The writer numbers records consecutively, and replay checks that it finds them so.
//!
//! # Writing and durability
//!
//! [`Wal::append`] writes the record to the operating system and returns its sequence
//! number without waiting for the disk. [`Wal::wait_durable`] then waits according to
//! [`Durability`]: with [`Durability::Always`] until an `fsync` that began after the record
//! was written has completed (group commit: concurrent waiters share one `fsync`). Rotation
//! `fsync`s the old file before creating the new one, then `fsync`s the new file and the
//! directory, so only the last file can end in a half-written record. A failed write or
//! `fsync` *poisons* the log: every later append, wait and sync returns
//! [`Error::Poisoned`], because after a failed `fsync` the kernel may have dropped the
//! dirty pages and a retry could report success for data that is gone.
//!
//! # Recovery
//!
//! [`replay`] reads the files in name order and checks each header (wrong magic or
//! non-zero reserved bytes: [`Error::Corrupt`]; another version:
//! [`Error::UnsupportedVersion`]), each record's checksum, that sequence numbers increase
//! and that none is below its file's name, and that a file other than the last ends with
//! the record just before the next file's name (a file cut at a record boundary has lost
//! records). Missing numbers that segments already cover are allowed: a machine crash
//! under `Interval` or `Never` durability can lose WAL records whose rows were flushed.
//!
//! Damage at the end of the *last* file is what a crash leaves, a *torn tail*, and is cut
//! off by truncating the file at the start of the damaged record:
//!
//! - a record header cut short by the end of the file;
//! - a record whose declared length runs past the end of the file;
//! - a record failing its checksum that is the last in the file, or is followed only by
//!   zero bytes;
//! - zero bytes alone (padding a file system may leave after a crash);
//!
//! but the first three only when no intact record follows the damaged one: a damaged
//! length field in the middle of the file is damage, not a tear, and must not cut off the
//! records after it.
//!
//! A last file shorter than its header and holding a prefix of it or zeros, or holding
//! nothing but zeros, was being created at the crash and is removed. Any other damage (in
//! an earlier file, or before intact records) is an [`Error::Corrupt`] naming the file and
//! the record's offset; in salvage mode replay instead reports it, keeps the records before
//! it, skips the rest of that file, goes on with the next one, and modifies nothing.
//!
//! # Assumptions about the media
//!
//! A successful `fsync` of a file (and of its directory, for its name) makes its bytes
//! durable; a write cut by a crash may leave any prefix of its bytes, or zeros where the
//! file system allocated blocks but had not written them; damage that the checksum does
//! not catch (one chance in 2^32 per damaged record) is not detected.

mod reader;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use reader::{Record, Recovery, ReplayOptions, ReplayReport, TornTail, replay, replay_with};
pub use writer::Wal;

use crate::error::{Error, Result};

/// When an appended record counts as durable, that is, when [`Wal::wait_durable`] returns.
///
/// In every mode a record survives a crash of the process as soon as [`Wal::append`]
/// returns (it is in the operating system's page cache); the modes differ in what survives
/// a crash of the machine or a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// [`Wal::wait_durable`] returns only after an `fsync` covering the record has
    /// completed. Concurrent writers share `fsync`s (group commit): one waiter syncs on
    /// behalf of all records written before it started. Nothing acknowledged is lost.
    Always,
    /// A background thread `fsync`s at least this often (when anything was written);
    /// [`Wal::wait_durable`] returns at once. A machine crash loses at most about this much
    /// of acknowledged writes. Must be more than zero.
    Interval(Duration),
    /// [`Wal::wait_durable`] returns at once and the log `fsync`s only on rotation,
    /// [`Wal::sync`] and [`Wal::close`]; the operating system writes pages back when it
    /// likes (typically within 30 s on Linux).
    Never,
}

impl Default for Durability {
    /// `Interval(1 s)`: telemetry writers usually prefer throughput over the last second
    /// of data on a power cut, and a process crash loses nothing in any mode. Choose
    /// [`Durability::Always`] when an acknowledged write must survive a power cut.
    fn default() -> Self {
        Durability::Interval(Duration::from_secs(1))
    }
}

/// A test hook standing in front of the storage: each method is called just before the
/// engine writes to, `fsync`s or renames a file (or `fsync`s a directory) of the log, a
/// segment or the manifest, and an error it returns is treated as the failure of that
/// step (in the log, it poisons the log; a flush or compaction fails and is retried).
///
/// Every method defaults to `Ok(())`. Used to test failures of the Nth write, `fsync` or
/// rename, and to follow what is durable: every `fsync` the engine makes of a file or a
/// directory is announced to [`before_sync`](Faults::before_sync) (except recovery's cut
/// of a torn tail during [`Engine::open`](crate::Engine::open)), so a test can tell the
/// bytes a power cut would keep from those only written (`tests/src/durable.rs`).
pub trait Faults: Send + Sync + fmt::Debug {
    /// Called before each write to `path` (a file header or a record).
    fn before_write(&self, path: &Path) -> std::io::Result<()> {
        let _ = path;
        Ok(())
    }

    /// Called before each `fsync` of `path` (a WAL, segment or manifest file, or a
    /// directory).
    fn before_sync(&self, path: &Path) -> std::io::Result<()> {
        let _ = path;
        Ok(())
    }

    /// Called before each rename of `from` (a segment, manifest or WAL file written under
    /// a temporary name) to its final name.
    fn before_rename(&self, from: &Path) -> std::io::Result<()> {
        let _ = from;
        Ok(())
    }
}

/// How a [`Wal`] writes. `WalOptions::default()` gives the defaults documented on each
/// field.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// When an append is durable. Default: [`Durability::Interval`] of 1 second.
    pub durability: Durability,
    /// Size in bytes past which the log starts a new file: a record that would take the
    /// current file past this goes to a new file, unless the file holds no record yet (so
    /// a single record larger than this makes a file of its own). Default: 64 MiB.
    pub max_file_bytes: u64,
    /// Failure injection for tests; `None` (the default) in production.
    pub faults: Option<Arc<dyn Faults>>,
    /// Written into every file's header, so that replay can tell this database's files
    /// from another's (see [`ReplayOptions::db_tag`]). Default: 0.
    pub db_tag: u32,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            durability: Durability::default(),
            max_file_bytes: 64 << 20,
            faults: None,
            db_tag: 0,
        }
    }
}

/// The file name for a WAL file whose first record has sequence number `first_seq`.
fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// The first sequence number encoded in a WAL file name, or `None` for other names.
fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The WAL files in `dir`, sorted by first sequence number. A missing directory has none.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let name = entry.file_name();
        if let Some(first_seq) = name.to_str().and_then(parse_file_name) {
            files.push((first_seq, entry.path()));
        }
    }
    files.sort_unstable_by_key(|&(first_seq, _)| first_seq);
    Ok(files)
}

/// `fsync`s a directory, so that file creations, renames and removals in it are durable.
fn sync_dir(dir: &Path, faults: Option<&dyn Faults>) -> Result<()> {
    if let Some(f) = faults {
        f.before_sync(dir)
            .map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}
