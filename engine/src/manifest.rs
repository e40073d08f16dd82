//! The manifest: which segment files are live, with what identity, in one file replaced
//! atomically.
//!
//! ```text
//! MANIFEST  := MAGIC VERSION BODY_LEN BODY CRC
//! BODY      := DB_ID GENERATION NEXT_SEGMENT_ID NEXT_DELETE_ID WAL_NEWEST TABLE_COUNT
//!              TABLE* LIFECYCLE_COUNT LIFECYCLE*           (WAL_NEWEST: version 2 on)
//! TABLE     := NAME KIND FLUSHED_SEQ NEWEST COLUMNS SEGMENT_COUNT SEGMENT*
//!              (COLUMNS := COLUMN_COUNT (NAME TYPE)*: version 2 on)
//! SEGMENT   := ID FILE_LEN FOOTER_CRC MIN_SEQ MAX_SEQ LEVEL DELETES_APPLIED
//! LIFECYCLE := NAME [RETENTION] DELETE_COUNT DELETE*
//! ```
//!
//! A segment file is live exactly when the manifest lists it: a file in a table directory
//! that it does not list is the leftover of a crash (a flush or compaction that had not yet
//! recorded its output, or a compaction's input not yet removed) and is removed on open.
//! A listed file that is missing, or whose length or footer checksum differs from what is
//! listed (a file of another database put in its place), is an error naming the file.
//!
//! The manifest is written whole to `MANIFEST.tmp`, fsynced, renamed over `MANIFEST` and
//! the directory fsynced: a crash leaves the old manifest or the new one, never a mix.
//! See docs/FORMAT.md for every byte.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bytes::{Put, Reader, Short};
use crate::error::{Error, Result};
use crate::fs::{Step, fault};
use crate::lifecycle::{Delete, DeleteEntry, Lifecycles, Retention, RowMatch, TableLifecycle};
use crate::schema::{ColumnDef, ColumnType, Level, TableKind};
use crate::segment::Segment;
use crate::wal::Faults;

/// First 8 bytes of the manifest.
pub(crate) const MAGIC: [u8; 8] = *b"SXTMANI\0";
/// The manifest format version this build writes.
pub(crate) const VERSION: u32 = 2;
/// The oldest manifest format version this build reads (version 1 has no `wal_newest`).
pub(crate) const OLDEST_VERSION: u32 = 1;
/// The manifest's file name in the database directory.
pub(crate) const FILE_NAME: &str = "MANIFEST";
/// Largest manifest body accepted (bounds allocation on damage).
const MAX_BODY_LEN: usize = 1 << 30;

/// The live segments of every table, and the database's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Drawn at random when the database is created; tells its files from another's.
    pub db_id: u128,
    /// Raised by one at every write of the manifest.
    pub generation: u64,
    /// The id the next segment file gets (ids are never reused).
    pub next_segment_id: u64,
    /// The id the next delete gets (ids are never reused).
    pub next_delete_id: u64,
    /// The write-ahead log file appended to when the manifest was written (its first
    /// sequence number; 0 when unknown): that file, or a newer one, must exist on open.
    pub wal_newest: u64,
    pub tables: BTreeMap<String, TableEntry>,
    /// Retention settings and deletes of tables (which need not have segments yet).
    pub lifecycles: Lifecycles,
}

/// One table's live segments, in sequence order (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableEntry {
    pub kind: TableKind,
    /// Every write of the table up to this sequence number is in its segments (or was
    /// deleted before it reached one).
    pub flushed_seq: u64,
    /// The latest time of any row flushed (deleted and compacted-away ones included), so
    /// that retention's reference time does not go back on reopen.
    pub newest: i64,
    /// The table's columns when it was last flushed (version 2 on; empty in version 1),
    /// so that a table all of whose rows were deleted or expired keeps its schema.
    pub columns: Vec<ColumnDef>,
    pub segments: Vec<SegmentEntry>,
}

/// What identifies a live segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    /// The file is `tables/<table>/<id as 20 digits>.seg`.
    pub id: u64,
    pub file_len: u64,
    /// crc32 of the file's last 40 bytes (its trailer), which hold the checksum of its
    /// metadata: a different file of the same length has a different footer.
    pub footer_crc: u32,
    /// The WAL sequence numbers whose rows the segment holds: its rows of a (series,
    /// time) replace those of segments with lower ones (metric tables).
    pub min_seq: u64,
    pub max_seq: u64,
    /// 0 for a flush's output; a compaction's output is one above its inputs' highest.
    pub level: u8,
    /// Every delete with an id up to this one has been applied to the segment's rows
    /// (they were removed before it was written); later ones are applied when reading.
    pub deletes_applied: u64,
}

impl SegmentEntry {
    /// The entry of an open segment with id `id`.
    pub fn of(id: u64, segment: &Segment) -> SegmentEntry {
        SegmentEntry {
            id,
            file_len: segment.file_len(),
            footer_crc: segment.footer_crc(),
            min_seq: segment.meta().min_seq,
            max_seq: segment.meta().max_seq,
            level: 0,
            deletes_applied: 0,
        }
    }

    /// Checks that `segment` is the file this entry lists.
    pub fn check(&self, segment: &Segment) -> Result<()> {
        let path = segment.path();
        if segment.file_len() != self.file_len {
            return Err(Error::corrupt(
                path,
                0,
                format!(
                    "the file is {} bytes long but the manifest lists a segment of {} bytes: it is not the file this database wrote",
                    segment.file_len(),
                    self.file_len
                ),
            ));
        }
        if segment.footer_crc() != self.footer_crc {
            return Err(Error::corrupt(
                path,
                segment.file_len() - crate::segment::format::TRAILER_LEN as u64,
                format!(
                    "the footer's checksum is {:#010x} but the manifest lists {:#010x}: it is not the file this database wrote",
                    segment.footer_crc(),
                    self.footer_crc
                ),
            ));
        }
        let m = segment.meta();
        if (m.min_seq, m.max_seq) != (self.min_seq, self.max_seq) {
            return Err(Error::corrupt(
                path,
                0,
                format!(
                    "the segment holds sequence numbers {} to {} but the manifest lists {} to {}",
                    m.min_seq, m.max_seq, self.min_seq, self.max_seq
                ),
            ));
        }
        Ok(())
    }
}

/// The file name of segment `id`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The id in a segment file name, if it is one.
pub(crate) fn segment_id(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl Manifest {
    /// A manifest for a new database, with a fresh id.
    pub fn new() -> Manifest {
        Manifest {
            db_id: random_u128(),
            generation: 0,
            next_segment_id: 1,
            next_delete_id: 1,
            wal_newest: 0,
            tables: BTreeMap::new(),
            lifecycles: BTreeMap::new(),
        }
    }

    /// The manifest's path in database directory `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads the manifest of the database in `dir`, if it has one.
    pub fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = Manifest::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        Manifest::decode(&path, &bytes).map(Some)
    }

    /// Writes the manifest with the next generation number, atomically (see the module
    /// docs).
    pub fn store(&mut self, dir: &Path, faults: Option<&dyn Faults>) -> Result<()> {
        self.generation += 1;
        let bytes = self.encode();
        let path = Manifest::path(dir);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        fault(faults, Step::Write, &tmp)?;
        f.write_all(&bytes)
            .map_err(|e| Error::io("writing", &tmp, e))?;
        fault(faults, Step::Sync, &tmp)?;
        f.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
        fault(faults, Step::Rename, &tmp)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))?;
        crate::fs::sync_dir_with(dir, faults)
    }

    /// Allocates the id of a new segment file.
    pub fn allocate_segment_id(&mut self) -> u64 {
        let id = self.next_segment_id;
        self.next_segment_id += 1;
        id
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_u64(self.db_id as u64);
        body.put_u64((self.db_id >> 64) as u64);
        body.put_u64(self.generation);
        body.put_u64(self.next_segment_id);
        body.put_u64(self.next_delete_id);
        body.put_u64(self.wal_newest);
        body.put_u32(self.tables.len() as u32);
        for (name, t) in &self.tables {
            body.put_str16(name);
            body.put_u8(t.kind.to_byte());
            body.put_u64(t.flushed_seq);
            body.put_i64(t.newest);
            body.put_u32(t.columns.len() as u32);
            for c in &t.columns {
                body.put_str16(&c.name);
                body.put_u8(c.ty.to_byte());
            }
            body.put_u32(t.segments.len() as u32);
            for s in &t.segments {
                body.put_u64(s.id);
                body.put_u64(s.file_len);
                body.put_u32(s.footer_crc);
                body.put_u64(s.min_seq);
                body.put_u64(s.max_seq);
                body.put_u8(s.level);
                body.put_u64(s.deletes_applied);
            }
        }
        body.put_u32(self.lifecycles.len() as u32);
        for (name, l) in &self.lifecycles {
            body.put_str16(name);
            match &l.retention {
                None => body.put_u8(0),
                Some(r) => {
                    body.put_u8(1);
                    put_retention(&mut body, r);
                }
            }
            body.put_u32(l.deletes.len() as u32);
            for d in &l.deletes {
                body.put_u64(d.id);
                body.put_u64(d.seq);
                body.put_i64(d.delete.min_time);
                body.put_i64(d.delete.max_time);
                put_tags(&mut body, &d.delete.tags);
            }
        }
        let mut out = Vec::with_capacity(body.len() + 20);
        out.extend_from_slice(&MAGIC);
        out.put_u32(VERSION);
        out.put_u32(body.len() as u32);
        out.extend_from_slice(&body);
        out.put_u32(crc32fast::hash(&body));
        out
    }

    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest> {
        let damaged = |offset: usize, what: String| Error::corrupt(path, offset as u64, what);
        if bytes.len() < 20 || bytes[..8] != MAGIC {
            return Err(damaged(
                0,
                "the file does not start with the manifest magic number".into(),
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        if len > MAX_BODY_LEN || bytes.len() != 16 + len + 4 {
            return Err(damaged(
                12,
                format!(
                    "the body is declared {len} bytes long but the file holds {}",
                    bytes.len().saturating_sub(20)
                ),
            ));
        }
        let body = &bytes[16..16 + len];
        let stored = u32::from_le_bytes(bytes[16 + len..].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(damaged(
                16,
                format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        decode_body(body, version).map_err(|e| damaged(16 + e.offset, e.what))
    }
}

fn decode_body(body: &[u8], version: u32) -> Result<Manifest, Short> {
    let mut r = Reader::new(body);
    let lo = r.u64()?;
    let hi = r.u64()?;
    let generation = r.u64()?;
    let next_segment_id = r.u64()?;
    let next_delete_id = r.u64()?;
    if next_segment_id == 0 || next_delete_id == 0 {
        return r.fail("the next segment and delete ids start at 1, not 0");
    }
    let wal_newest = if version >= 2 { r.u64()? } else { 0 };
    let table_count = r.len_u32(body.len())?;
    let mut tables = BTreeMap::new();
    for _ in 0..table_count {
        let name = r.str16()?.to_string();
        let kind = TableKind::from_byte(r.u8()?);
        let Some(kind) = kind else {
            return r.fail(format!("table {name:?} has an unknown kind"));
        };
        let flushed_seq = r.u64()?;
        let newest = r.i64()?;
        let mut columns = Vec::new();
        if version >= 2 {
            let count = r.len_u32(body.len() / 3)?;
            for _ in 0..count {
                let column = r.str16()?.to_string();
                let Some(ty) = ColumnType::from_byte(r.u8()?) else {
                    return r.fail(format!(
                        "column {column:?} of table {name:?} has an unknown type"
                    ));
                };
                columns.push(ColumnDef::new(column, ty));
            }
        }
        let count = r.len_u32(body.len() / 45)?;
        let mut segments = Vec::with_capacity(count);
        for _ in 0..count {
            let entry = SegmentEntry {
                id: r.u64()?,
                file_len: r.u64()?,
                footer_crc: r.u32()?,
                min_seq: r.u64()?,
                max_seq: r.u64()?,
                level: r.u8()?,
                deletes_applied: r.u64()?,
            };
            if entry.id >= next_segment_id {
                return r.fail(format!(
                    "segment id {} is not below the next id {next_segment_id}",
                    entry.id
                ));
            }
            segments.push(entry);
        }
        if tables
            .insert(
                name.clone(),
                TableEntry {
                    kind,
                    flushed_seq,
                    newest,
                    columns,
                    segments,
                },
            )
            .is_some()
        {
            return r.fail(format!("table {name:?} is listed twice"));
        }
    }
    let lifecycle_count = r.len_u32(body.len())?;
    let mut lifecycles = BTreeMap::new();
    for _ in 0..lifecycle_count {
        let name = r.str16()?.to_string();
        let retention = match r.u8()? {
            0 => None,
            1 => Some(get_retention(&mut r)?),
            other => return r.fail(format!("retention flag {other} is neither 0 nor 1")),
        };
        let count = r.len_u32(body.len() / 36)?;
        let mut deletes = Vec::with_capacity(count);
        for _ in 0..count {
            let id = r.u64()?;
            let seq = r.u64()?;
            let min_time = r.i64()?;
            let max_time = r.i64()?;
            let tags = get_tags(&mut r)?;
            if id >= next_delete_id {
                return r.fail(format!(
                    "delete id {id} is not below the next id {next_delete_id}"
                ));
            }
            deletes.push(DeleteEntry {
                id,
                seq,
                delete: Delete {
                    min_time,
                    max_time,
                    tags,
                },
            });
        }
        let l = TableLifecycle { retention, deletes };
        if lifecycles.insert(name.clone(), l).is_some() {
            return r.fail(format!("the lifecycle of table {name:?} is listed twice"));
        }
    }
    if !r.is_empty() {
        return r.fail(format!("{} bytes follow the last table", r.remaining()));
    }
    Ok(Manifest {
        db_id: u128::from(lo) | (u128::from(hi) << 64),
        generation,
        next_segment_id,
        next_delete_id,
        wal_newest,
        tables,
        lifecycles,
    })
}

fn nanos(d: &std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn put_tags(out: &mut Vec<u8>, tags: &[(String, Vec<String>)]) {
    out.put_u32(tags.len() as u32);
    for (t, values) in tags {
        out.put_str16(t);
        out.put_u32(values.len() as u32);
        for v in values {
            out.put_str32(v);
        }
    }
}

fn get_tags(r: &mut Reader<'_>) -> Result<Vec<(String, Vec<String>)>, Short> {
    let n = r.len_u32(r.remaining() / 6)?;
    let mut tags = Vec::with_capacity(n);
    for _ in 0..n {
        let t = r.str16()?.to_string();
        let count = r.len_u32(r.remaining() / 4)?;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(r.str32()?.to_string());
        }
        tags.push((t, values));
    }
    Ok(tags)
}

fn put_retention(out: &mut Vec<u8>, r: &Retention) {
    match &r.default {
        None => {
            out.put_u8(0);
            out.put_u64(0);
        }
        Some(d) => {
            out.put_u8(1);
            out.put_u64(nanos(d));
        }
    }
    out.put_u32(r.rules.len() as u32);
    for (m, keep) in &r.rules {
        put_tags(out, &m.tags);
        match m.levels {
            None => {
                out.put_u8(0);
                out.put_u8(0);
                out.put_u8(0);
            }
            Some((lo, hi)) => {
                out.put_u8(1);
                out.put_u8(lo.rank());
                out.put_u8(hi.rank());
            }
        }
        out.put_u64(nanos(keep));
    }
}

fn get_retention(r: &mut Reader<'_>) -> Result<Retention, Short> {
    let has_default = r.u8()?;
    let default_ns = r.u64()?;
    let default = match has_default {
        0 => None,
        1 => Some(std::time::Duration::from_nanos(default_ns)),
        other => return r.fail(format!("default flag {other} is neither 0 nor 1")),
    };
    let n = r.len_u32(r.remaining() / 15)?;
    let mut rules = Vec::with_capacity(n);
    for _ in 0..n {
        let tags = get_tags(r)?;
        let has_levels = r.u8()?;
        let (lo, hi) = (r.u8()?, r.u8()?);
        let levels = match (has_levels, Level::from_rank(lo), Level::from_rank(hi)) {
            (0, _, _) => None,
            (1, Some(lo), Some(hi)) => Some((lo, hi)),
            _ => return r.fail("a retention rule's level range is not valid"),
        };
        let keep = std::time::Duration::from_nanos(r.u64()?);
        rules.push((RowMatch { tags, levels }, keep));
    }
    Ok(Retention { rules, default })
}

/// 128 random bits from the standard library's randomly keyed hasher, mixed with the
/// time and process id.
fn random_u128() -> u128 {
    let mut out = 0u128;
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        out = (out << 64) | u128::from(h.finish());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut m = Manifest::new();
        m.next_segment_id = 10;
        m.tables.insert(
            "cpu".into(),
            TableEntry {
                kind: TableKind::Metric,
                flushed_seq: 41,
                newest: 1_000,
                columns: vec![
                    ColumnDef::new("time", ColumnType::Time),
                    ColumnDef::new("host", ColumnType::Tag),
                ],
                segments: vec![
                    SegmentEntry {
                        id: 3,
                        file_len: 4096,
                        footer_crc: 0xdead_beef,
                        min_seq: 1,
                        max_seq: 40,
                        level: 1,
                        deletes_applied: 2,
                    },
                    SegmentEntry {
                        id: 9,
                        file_len: 512,
                        footer_crc: 7,
                        min_seq: 41,
                        max_seq: 41,
                        level: 0,
                        deletes_applied: 0,
                    },
                ],
            },
        );
        m.tables.insert(
            "logs".into(),
            TableEntry {
                kind: TableKind::Event,
                flushed_seq: 9,
                newest: i64::MIN,
                columns: vec![],
                segments: vec![],
            },
        );
        m.next_delete_id = 4;
        m.lifecycles.insert(
            "logs".into(),
            TableLifecycle {
                retention: Some(
                    Retention::keep(std::time::Duration::from_secs(90 * 86400))
                        .rule(
                            RowMatch::all().levels(Level::Trace, Level::Debug),
                            std::time::Duration::from_secs(86400),
                        )
                        .rule(
                            RowMatch::all().tag_in("service", ["batch", "cron"]),
                            std::time::Duration::from_secs(3 * 86400),
                        ),
                ),
                deletes: vec![DeleteEntry {
                    id: 3,
                    seq: 77,
                    delete: Delete::all().time_range(5, 10).tag_eq("customer", "acme"),
                }],
            },
        );
        m.lifecycles.insert("cpu".into(), TableLifecycle::default());
        m
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(Path::new("M"), &bytes).unwrap(), m);
    }

    #[test]
    fn manifest_store_replaces_the_file_and_raises_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let mut m = sample();
        m.store(dir.path(), None).unwrap();
        m.store(dir.path(), None).unwrap();
        let loaded = Manifest::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.generation, 2);
        assert_eq!(loaded, m);
        assert!(!dir.path().join("MANIFEST.tmp").exists());
    }

    #[test]
    fn manifest_every_damaged_byte_is_an_error_naming_the_file() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                match Manifest::decode(Path::new("db/MANIFEST"), &b) {
                    Err(Error::Corrupt { path, .. } | Error::UnsupportedVersion { path, .. }) => {
                        assert_eq!(path, Path::new("db/MANIFEST"));
                    }
                    other => panic!("byte {i} flipped: {other:?}"),
                }
            }
        }
        for len in 0..bytes.len() {
            assert!(Manifest::decode(Path::new("M"), &bytes[..len]).is_err());
        }
    }

    #[test]
    fn manifest_ids_differ_between_databases() {
        assert_ne!(Manifest::new().db_id, Manifest::new().db_id);
    }

    #[test]
    fn segment_ids_parse_only_from_segment_names() {
        assert_eq!(
            segment_id(Path::new("a/00000000000000000042.seg")),
            Some(42)
        );
        assert_eq!(segment_id(Path::new("a/42.seg")), None);
        assert_eq!(
            segment_id(Path::new("a/00000000000000000042.seg.tmp")),
            None
        );
        assert_eq!(
            segment_id(Path::new(&segment_file_name(7))),
            Some(7),
            "names and ids round trip"
        );
    }
}
