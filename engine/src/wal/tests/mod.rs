//! Tests of the write-ahead log, by concern: writing (`writer`), recovery from damage
//! (`replay`), and a throughput measurement (`throughput`, ignored by default).

mod replay;
mod throughput;
mod writer;

use std::path::{Path, PathBuf};

use super::record::{FILE_HEADER_LEN, RECORD_HEADER_LEN};
use super::*;

pub(super) type Records = Vec<(u64, Vec<u8>)>;

pub(super) fn options(durability: Durability, max_file_bytes: u64) -> WalOptions {
    WalOptions {
        durability,
        max_file_bytes,
        faults: None,
        db_tag: 0,
    }
}

/// A payload that differs by `i` and has length `len`.
pub(super) fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

/// Replays the log in `dir` as a database whose segments hold every record before the
/// oldest file would.
pub(super) fn replay_all(dir: &Path, salvage: bool) -> Result<(Records, ReplayReport)> {
    let covered = list_files(dir)?
        .first()
        .map_or(0, |(first, _)| first.saturating_sub(1));
    let mut got = Vec::new();
    let report = replay(dir, salvage, covered, |r| {
        got.push((r.seq, r.payload.to_vec()));
        Ok(())
    })?;
    Ok((got, report))
}

/// Appends `payloads` to a new log at `dir` starting at `first_seq`, closes it, and
/// returns the records written.
pub(super) fn write_log(
    dir: &Path,
    first_seq: u64,
    payloads: &[Vec<u8>],
    max_file_bytes: u64,
) -> Records {
    let wal = Wal::create(dir, first_seq, options(Durability::Never, max_file_bytes)).unwrap();
    let records: Records = payloads
        .iter()
        .map(|p| (wal.append(p).unwrap(), p.clone()))
        .collect();
    wal.close().unwrap();
    records
}

pub(super) fn wal_files(dir: &Path) -> Vec<PathBuf> {
    list_files(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// Offsets of the records in a well-formed WAL file.
pub(super) fn record_offsets(bytes: &[u8]) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    while pos < bytes.len() {
        offsets.push(pos as u64);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += RECORD_HEADER_LEN + len;
    }
    offsets
}

pub(super) fn corrupt_offset(err: &Error) -> (PathBuf, u64) {
    match err {
        Error::Corrupt { path, offset, .. } => (path.clone(), *offset),
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
}
