//! Framing: the file header and the record header, as bytes.
//!
//! Pure functions over byte slices; no I/O. See the module documentation of
//! [`crate::wal`] for the layout.

use std::path::Path;

use crate::error::{Error, Result};

/// The first 8 bytes of every WAL file.
pub(crate) const FILE_MAGIC: [u8; 8] = *b"SXTWAL\0\0";
/// The format version this build writes.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build reads: version 1 has zeros where version 2 has
/// the database tag.
pub(crate) const OLDEST_FORMAT_VERSION: u32 = 1;
/// Length of the file header: magic, version, database tag (zero in version 1).
pub(crate) const FILE_HEADER_LEN: usize = 16;
/// Length of a record header: `len`, `crc`, `seq`.
pub(crate) const RECORD_HEADER_LEN: usize = 16;
/// The largest payload a record may carry: 1 GiB.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// The 16 bytes every WAL file of the database tagged `db_tag` starts with.
pub(crate) fn file_header(db_tag: u32) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&FILE_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..].copy_from_slice(&db_tag.to_le_bytes());
    h
}

/// Checks a complete file header read from `path`. With `db_tag` given, a version 2
/// header must carry it (a version 1 header carries none and is accepted).
///
/// A wrong magic is [`Error::Corrupt`] at offset 0; non-zero reserved bytes (version 1)
/// or another database's tag (version 2) at offset 12; a version this build does not
/// read is [`Error::UnsupportedVersion`].
pub(crate) fn check_file_header(
    path: &Path,
    h: &[u8; FILE_HEADER_LEN],
    db_tag: Option<u32>,
) -> Result<()> {
    if h[..8] != FILE_MAGIC {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "not a write-ahead log file: the magic number is {:02x?}, expected {:02x?}",
                &h[..8],
                FILE_MAGIC
            ),
        ));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let tag = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if version == 1 && tag != 0 {
        return Err(Error::corrupt(
            path,
            12,
            "the reserved bytes of the file header are not zero",
        ));
    }
    match db_tag {
        Some(expected) if version >= 2 && tag != expected => Err(Error::corrupt(
            path,
            12,
            format!(
                "the file belongs to another database: its header carries database tag {tag:08x}, this database's is {expected:08x}"
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether `bytes` (at most a header long) could be the start of a header of a format
/// version this build reads, or are all zero: what a crash while creating a file leaves
/// behind, by this build or an older one.
pub(crate) fn is_partial_file_header(bytes: &[u8]) -> bool {
    if bytes.len() > FILE_HEADER_LEN {
        return false;
    }
    if bytes.iter().all(|&b| b == 0) {
        return true;
    }
    // Magic and version are known; the tag that follows may be any.
    let n = bytes.len().min(12);
    (OLDEST_FORMAT_VERSION..=FORMAT_VERSION).any(|version| {
        let mut known = [0u8; 12];
        known[..8].copy_from_slice(&FILE_MAGIC);
        known[8..].copy_from_slice(&version.to_le_bytes());
        known[..n] == bytes[..n]
    })
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    /// Payload length in bytes.
    pub(crate) len: u32,
    /// The stored checksum.
    pub(crate) crc: u32,
    /// The record's sequence number.
    pub(crate) seq: u64,
}

impl RecordHeader {
    /// Decodes the 16 header bytes. Any bytes decode; checking is the caller's job.
    pub(crate) fn decode(b: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
        RecordHeader {
            len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            crc: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            seq: u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        }
    }

    /// Whether `payload` matches the stored checksum.
    pub(crate) fn checks(&self, payload: &[u8]) -> bool {
        checksum(self.len, self.seq, payload) == self.crc
    }
}

/// crc32 (IEEE, as `crc32fast`) over the `len` bytes, the `seq` bytes and the payload.
pub(crate) fn checksum(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Replaces the contents of `out` with the framed record (header then payload), so that
/// it can be written with one `write_all`.
///
/// The caller has checked `payload.len() <= MAX_PAYLOAD`.
pub(crate) fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = payload.len() as u32;
    out.clear();
    out.reserve(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Checks a payload length before anything is framed or written.
pub(crate) fn check_payload_len(len: usize) -> Result<()> {
    if len > MAX_PAYLOAD {
        return Err(Error::InvalidInput(format!(
            "a write of {len} bytes is larger than the write-ahead log's limit of {MAX_PAYLOAD} bytes (1 GiB) per write; split it into smaller writes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_encodes_header_then_payload() {
        let mut out = Vec::new();
        encode(7, b"abc", &mut out);
        assert_eq!(out.len(), RECORD_HEADER_LEN + 3);
        let h = RecordHeader::decode(out[..RECORD_HEADER_LEN].try_into().unwrap());
        assert_eq!((h.len, h.seq), (3, 7));
        assert!(h.checks(&out[RECORD_HEADER_LEN..]));
        assert!(!h.checks(b"abd"));
    }

    #[test]
    fn checksum_covers_len_and_seq() {
        assert_ne!(checksum(3, 7, b"abc"), checksum(3, 8, b"abc"));
        assert_ne!(checksum(3, 7, b"abc"), checksum(4, 7, b"abc"));
    }

    #[test]
    fn file_header_checks() {
        let p = Path::new("x.wal");
        check_file_header(p, &file_header(7), Some(7)).unwrap();
        check_file_header(p, &file_header(7), None).unwrap();
        let mut h = file_header(7);
        h[0] = b'X';
        assert!(matches!(
            check_file_header(p, &h, Some(7)),
            Err(Error::Corrupt { offset: 0, .. })
        ));
        let mut h = file_header(7);
        h[8] = 3;
        assert!(matches!(
            check_file_header(p, &h, Some(7)),
            Err(Error::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            })
        ));
        assert!(is_partial_file_header(&file_header(7)[..5]));
        assert!(is_partial_file_header(&file_header(7)[..14]));
        assert!(is_partial_file_header(&[0; 9]));
        assert!(!is_partial_file_header(b"hello"));
        // A version 1 header, left header-only by an older build that was killed.
        let mut v1 = file_header(0);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(is_partial_file_header(&v1));
        assert!(is_partial_file_header(&v1[..10]));
        // A version this build does not read is not a leftover of one it wrote.
        let mut v3 = file_header(0);
        v3[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(!is_partial_file_header(&v3));
        assert!(!is_partial_file_header(&[0; FILE_HEADER_LEN + 1]));
    }

    #[test]
    fn file_header_names_another_databases_file() {
        let p = Path::new("x.wal");
        let err = check_file_header(p, &file_header(8), Some(7)).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { offset: 12, .. })
                && err.to_string().contains("another database"),
            "{err}"
        );
        // Version 1 carries no tag: accepted whatever this database's is, but its
        // reserved bytes must be zero.
        let mut v1 = file_header(0);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        check_file_header(p, &v1, Some(7)).unwrap();
        v1[15] = 1;
        assert!(matches!(
            check_file_header(p, &v1, None),
            Err(Error::Corrupt { offset: 12, .. })
        ));
    }

    #[test]
    fn oversized_payload_is_refused_with_advice() {
        check_payload_len(MAX_PAYLOAD).unwrap();
        let err = check_payload_len(MAX_PAYLOAD + 1).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("split")),
            "{err}"
        );
    }
}
