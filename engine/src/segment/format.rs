//! The segment file's header, trailer and metadata section, as bytes.
//!
//! See docs/FORMAT.md for the grammar; this module is its implementation.

use std::sync::Arc;

use crate::bytes::{Put, Reader, Short};
use crate::schema::{ColumnDef, ColumnType, TableKind};
use crate::series::SeriesKey;

/// First 8 bytes of every segment file, and its last 8.
pub const MAGIC: [u8; 8] = *b"SXTSEG\0\0";
/// The segment format version this build writes.
pub const VERSION: u32 = 4;
/// The oldest segment format version this build reads. Version 3 differs only in having
/// no resumable codecs (integer codec `0x06`, PLANE mode 4), which the reader then never
/// meets; version 2 also in having no block filters (the block index has no
/// `filter_len`); version 1 also in its block layout (every block but the last holds
/// exactly `block_rows` rows, so the block index lists no row counts).
pub const OLDEST_VERSION: u32 = 1;
/// The first version whose block entries have a `filter_len`.
const FILTERS_SINCE: u32 = 3;
/// Bytes in the header: magic, version, 4 reserved.
pub const HEADER_LEN: usize = 16;
/// Bytes in the trailer.
pub const TRAILER_LEN: usize = 40;
/// Most rows a block may hold (bounds what decoding one block allocates).
pub const MAX_BLOCK_ROWS: u32 = 1 << 20;
/// Largest metadata section accepted, compressed or not (bounds allocation on damage).
pub const MAX_META_LEN: u64 = 1 << 30;

/// Min and max of a block's non-null values, in the column's own type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stats {
    /// Time, i64, bool (0/1) and level (rank) columns.
    Int { min: i64, max: i64 },
    /// u64 columns.
    UInt { min: u64, max: u64 },
    /// f64 columns (NaN ignored).
    Float { min: f64, max: f64 },
}

/// Where one column's block lies and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockMeta {
    /// Offset of the block in the file.
    pub offset: u64,
    /// Length of the block including its trailing crc32.
    pub len: u32,
    /// Null values in the block.
    pub null_count: u32,
    /// Min/max of the non-null values, if any (none for strings and all-null blocks).
    pub stats: Option<Stats>,
    /// Length of the block's filter including its trailing crc32, 0 for none: string
    /// blocks with a non-null value have one (from format 3), right after the block.
    pub filter_len: u32,
}

impl BlockMeta {
    /// Where the block's filter lies (its crc32 included), if it has one.
    pub fn filter_range(&self) -> Option<std::ops::Range<u64>> {
        let start = self.offset + self.len as u64;
        (self.filter_len > 0).then(|| start..start + self.filter_len as u64)
    }
}

/// One series in a segment: its key, its rows and their time range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesMeta {
    /// The series' tags.
    pub key: SeriesKey,
    /// First row of the series.
    pub row_start: u64,
    /// Rows of the series (sorted by time).
    pub row_count: u64,
    /// Earliest time.
    pub min_time: i64,
    /// Latest time.
    pub max_time: i64,
}

/// The metadata section of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMeta {
    /// The table.
    pub table: String,
    /// The table's kind.
    pub kind: TableKind,
    /// Lowest WAL sequence number whose rows the segment holds.
    pub min_seq: u64,
    /// Highest WAL sequence number whose rows the segment holds: every write of this table
    /// up to it is in this or an earlier segment.
    pub max_seq: u64,
    /// Rows.
    pub rows: u64,
    /// Most rows a block holds.
    pub block_rows: u32,
    /// Earliest time.
    pub min_time: i64,
    /// Latest time.
    pub max_time: i64,
    /// Columns, `time` first; tags are not stored in blocks (the series index has them).
    pub columns: Vec<ColumnDef>,
    /// Series in key order.
    pub series: Vec<SeriesMeta>,
    /// The first row of each block (the same for every stored column), ascending from 0.
    pub block_starts: Vec<u64>,
    /// For each column (tags: empty), its blocks.
    pub blocks: Vec<Vec<BlockMeta>>,
}

impl SegmentMeta {
    /// Number of blocks of each stored column.
    pub fn block_count(&self) -> usize {
        self.block_starts.len()
    }

    /// The rows `[start, end)` of block `b`.
    pub fn block_rows_range(&self, b: usize) -> (usize, usize) {
        let end = self.block_starts.get(b + 1).copied().unwrap_or(self.rows);
        (self.block_starts[b] as usize, end as usize)
    }

    /// The block holding row `row` (less than `rows`).
    pub fn block_of_row(&self, row: usize) -> usize {
        self.block_starts
            .partition_point(|&s| s <= row as u64)
            .saturating_sub(1)
    }
}

/// The block starts of a version-1 segment: every `block_rows` rows.
fn fixed_block_starts(rows: u64, block_rows: u32) -> Vec<u64> {
    (0..rows).step_by(block_rows.max(1) as usize).collect()
}

fn put_stats(out: &mut Vec<u8>, stats: Option<Stats>) {
    match stats {
        None => {
            out.put_u8(0);
            out.put_u64(0);
            out.put_u64(0);
        }
        Some(Stats::Int { min, max }) => {
            out.put_u8(1);
            out.put_i64(min);
            out.put_i64(max);
        }
        Some(Stats::UInt { min, max }) => {
            out.put_u8(2);
            out.put_u64(min);
            out.put_u64(max);
        }
        Some(Stats::Float { min, max }) => {
            out.put_u8(3);
            out.put_u64(min.to_bits());
            out.put_u64(max.to_bits());
        }
    }
}

fn get_stats(r: &mut Reader<'_>) -> Result<Option<Stats>, Short> {
    let kind = r.u8()?;
    let (a, b) = (r.u64()?, r.u64()?);
    Ok(match kind {
        0 => None,
        1 => Some(Stats::Int {
            min: a as i64,
            max: b as i64,
        }),
        2 => Some(Stats::UInt { min: a, max: b }),
        3 => Some(Stats::Float {
            min: f64::from_bits(a),
            max: f64::from_bits(b),
        }),
        _ => return r.fail(format!("unknown statistics kind {kind}")),
    })
}

/// Encodes the metadata section (before compression).
pub(crate) fn encode_meta(meta: &SegmentMeta) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_str16(&meta.table);
    out.put_u8(meta.kind.to_byte());
    out.put_u64(meta.min_seq);
    out.put_u64(meta.max_seq);
    out.put_u64(meta.rows);
    out.put_u32(meta.block_rows);
    out.put_i64(meta.min_time);
    out.put_i64(meta.max_time);
    out.put_u16(meta.columns.len() as u16);
    for c in &meta.columns {
        out.put_str16(&c.name);
        out.put_u8(c.ty.to_byte());
    }
    // Tag dictionaries: the sorted distinct values of each tag column.
    let tag_names: Vec<&str> = meta
        .columns
        .iter()
        .filter(|c| c.ty == ColumnType::Tag)
        .map(|c| c.name.as_str())
        .collect();
    let mut dicts: Vec<Vec<&str>> = vec![Vec::new(); tag_names.len()];
    for s in &meta.series {
        for (name, value) in s.key.tags() {
            if let Some(t) = tag_names.iter().position(|n| **n == **name) {
                dicts[t].push(value);
            }
        }
    }
    for d in &mut dicts {
        d.sort_unstable();
        d.dedup();
        out.put_u32(d.len() as u32);
        for v in d.iter() {
            out.put_str32(v);
        }
    }
    out.put_u32(meta.series.len() as u32);
    for s in &meta.series {
        for (t, name) in tag_names.iter().enumerate() {
            let idx = match s.key.get(name) {
                Some(v) => {
                    dicts[t]
                        .binary_search(&v)
                        .expect("value is in the dictionary")
                        + 1
                }
                None => 0,
            };
            out.put_u32(idx as u32);
        }
        out.put_u64(s.row_start);
        out.put_u64(s.row_count);
        out.put_i64(s.min_time);
        out.put_i64(s.max_time);
    }
    out.put_u32(meta.block_count() as u32);
    for (b, _) in meta.block_starts.iter().enumerate() {
        let (start, end) = meta.block_rows_range(b);
        out.put_u32((end - start) as u32);
    }
    for (c, blocks) in meta.columns.iter().zip(&meta.blocks) {
        if c.ty == ColumnType::Tag {
            continue;
        }
        for b in blocks {
            out.put_u64(b.offset);
            out.put_u32(b.len);
            out.put_u32(b.null_count);
            put_stats(&mut out, b.stats);
            out.put_u32(b.filter_len);
        }
    }
    out
}

/// Decodes and checks the metadata section of a segment of format `version`. `data_end`
/// is where the blocks end (the metadata's offset): every block must lie within
/// `[HEADER_LEN, data_end)`.
pub(crate) fn decode_meta(bytes: &[u8], data_end: u64, version: u32) -> Result<SegmentMeta, Short> {
    let mut r = Reader::new(bytes);
    let table = r.str16()?.to_string();
    let kind_at = r.position();
    let kind = TableKind::from_byte(r.u8()?).ok_or_else(|| Short {
        offset: kind_at,
        what: "unknown table kind".into(),
    })?;
    let min_seq = r.u64()?;
    let max_seq = r.u64()?;
    let rows = r.u64()?;
    let block_rows = r.u32()?;
    let min_time = r.i64()?;
    let max_time = r.i64()?;
    if block_rows == 0 || block_rows > MAX_BLOCK_ROWS || rows > u32::MAX as u64 {
        return r.fail(format!(
            "{rows} rows in blocks of {block_rows} is not a valid layout"
        ));
    }
    let ncols = r.u16()? as usize;
    let mut columns = Vec::with_capacity(ncols);
    for _ in 0..ncols {
        let name = r.str16()?.to_string();
        let at = r.position();
        let ty = ColumnType::from_byte(r.u8()?).ok_or_else(|| Short {
            offset: at,
            what: "unknown column type".into(),
        })?;
        columns.push(ColumnDef::new(name, ty));
    }
    if columns.first().map(|c| c.ty) != Some(ColumnType::Time) {
        return r.fail("the first column is not the time column");
    }
    let tag_names: Vec<Arc<str>> = columns
        .iter()
        .filter(|c| c.ty == ColumnType::Tag)
        .map(|c| crate::series::intern(&c.name))
        .collect();
    let mut dicts: Vec<Vec<Arc<str>>> = Vec::with_capacity(tag_names.len());
    for _ in &tag_names {
        let n = r.len_u32(r.remaining() / 4)?;
        let mut d = Vec::with_capacity(n);
        for _ in 0..n {
            d.push(crate::series::intern(r.str32()?));
        }
        dicts.push(d);
    }
    let per_series = 4 * tag_names.len() + 32;
    let nseries = r.len_u32(r.remaining() / per_series)?;
    let mut series = Vec::with_capacity(nseries);
    let mut expect_start = 0u64;
    for _ in 0..nseries {
        let mut pairs = Vec::with_capacity(tag_names.len());
        for (t, name) in tag_names.iter().enumerate() {
            let at = r.position();
            let idx = r.u32()? as usize;
            if idx > 0 {
                let value = dicts[t].get(idx - 1).ok_or_else(|| Short {
                    offset: at,
                    what: format!("tag value {idx} is not in the dictionary"),
                })?;
                pairs.push((name.clone(), value.clone()));
            }
        }
        let s = SeriesMeta {
            key: SeriesKey::new(pairs),
            row_start: r.u64()?,
            row_count: r.u64()?,
            min_time: r.i64()?,
            max_time: r.i64()?,
        };
        if s.row_start != expect_start || s.row_count == 0 || s.min_time > s.max_time {
            return r.fail("the series index does not tile the rows in order");
        }
        expect_start = s.row_start + s.row_count;
        if let Some(prev) = series.last().map(|p: &SeriesMeta| &p.key)
            && *prev >= s.key
        {
            return r.fail("the series index is not in key order");
        }
        series.push(s);
    }
    if expect_start != rows {
        return r.fail(format!(
            "the series index covers {expect_start} rows, the segment {rows}"
        ));
    }
    let stored = columns.iter().filter(|c| c.ty != ColumnType::Tag).count();
    let nblocks = r.u32()? as usize;
    let block_starts = if version == 1 {
        let expected_blocks = (rows as usize).div_ceil(block_rows as usize);
        if nblocks != expected_blocks {
            return r.fail(format!(
                "{nblocks} blocks listed, {expected_blocks} expected"
            ));
        }
        // Checked before the starts are laid out: a crafted row count must not allocate.
        if nblocks.saturating_mul(stored).saturating_mul(33) > r.remaining() {
            return r.fail("the block index is shorter than its count says");
        }
        fixed_block_starts(rows, block_rows)
    } else {
        if nblocks > rows as usize || nblocks.saturating_mul(4) > r.remaining() {
            return r.fail(format!("{nblocks} blocks listed for {rows} rows"));
        }
        let mut starts = Vec::with_capacity(nblocks);
        let mut start = 0u64;
        for _ in 0..nblocks {
            let n = r.u32()?;
            if n == 0 || n > block_rows {
                return r.fail(format!(
                    "a block of {n} rows, in a segment of at most {block_rows} a block"
                ));
            }
            starts.push(start);
            start += n as u64;
        }
        if start != rows {
            return r.fail(format!("the blocks hold {start} rows, the segment {rows}"));
        }
        starts
    };
    let entry_len = if version >= FILTERS_SINCE { 37 } else { 33 };
    if nblocks.saturating_mul(stored).saturating_mul(entry_len) > r.remaining() {
        return r.fail("the block index is shorter than its count says");
    }
    let mut blocks = Vec::with_capacity(columns.len());
    for c in &columns {
        if c.ty == ColumnType::Tag {
            blocks.push(Vec::new());
            continue;
        }
        let mut list = Vec::with_capacity(nblocks);
        for _ in 0..nblocks {
            let at = r.position();
            let b = BlockMeta {
                offset: r.u64()?,
                len: r.u32()?,
                null_count: r.u32()?,
                stats: get_stats(&mut r)?,
                filter_len: if version >= FILTERS_SINCE {
                    r.u32()?
                } else {
                    0
                },
            };
            let end = (b.offset.checked_add(b.len as u64))
                .and_then(|e| e.checked_add(b.filter_len as u64));
            if b.offset < HEADER_LEN as u64 || b.len < 4 || end.is_none_or(|e| e > data_end) {
                return Err(Short {
                    offset: at,
                    what: format!(
                        "a block of column {:?} lies outside the data section",
                        c.name
                    ),
                });
            }
            let whole_buckets = (b.filter_len as usize)
                .checked_sub(4)
                .is_some_and(|n| n > 0 && n.is_multiple_of(super::filter::BUCKET_BYTES));
            if b.filter_len > 0 && c.ty != ColumnType::Str {
                return Err(Short {
                    offset: at,
                    what: format!(
                        "a block of column {:?} has a filter of {} bytes: only string \
                         columns have one",
                        c.name, b.filter_len,
                    ),
                });
            }
            if b.filter_len > 0 && !whole_buckets {
                return Err(Short {
                    offset: at,
                    what: format!(
                        "a block of column {:?} has a filter of {} bytes, not whole {}-byte \
                         buckets (at least one) and a crc32",
                        c.name,
                        b.filter_len,
                        super::filter::BUCKET_BYTES
                    ),
                });
            }
            list.push(b);
        }
        blocks.push(list);
    }
    if !r.is_empty() {
        return r.fail(format!("{} bytes follow the block index", r.remaining()));
    }
    Ok(SegmentMeta {
        table,
        kind,
        min_seq,
        max_seq,
        rows,
        block_rows,
        min_time,
        max_time,
        columns,
        series,
        block_starts,
        blocks,
    })
}

/// The fixed-size trailer at the end of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the (compressed) metadata section.
    pub meta_offset: u64,
    /// Its length on disk.
    pub meta_len: u32,
    /// Its length once decompressed.
    pub meta_raw_len: u32,
    /// crc32 of the metadata section as on disk.
    pub meta_crc: u32,
}

impl Trailer {
    /// The trailer's bytes:
    /// `meta_offset:u64 meta_len:u32 meta_raw_len:u32 meta_crc:u32 trailer_crc:u32
    /// reserved:u32 version:u32 magic:8`, trailer_crc covering the 20 bytes before it.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut out = Vec::with_capacity(TRAILER_LEN);
        out.put_u64(self.meta_offset);
        out.put_u32(self.meta_len);
        out.put_u32(self.meta_raw_len);
        out.put_u32(self.meta_crc);
        let crc = crc32fast::hash(&out);
        out.put_u32(crc);
        out.put_u32(0);
        out.put_u32(VERSION);
        out.extend_from_slice(&MAGIC);
        out.try_into().expect("40 bytes")
    }

    /// Parses a trailer; the error says what is wrong. A version other than
    /// [`VERSION`] is returned as `Err(Ok(version))` for the caller to report.
    pub fn decode(bytes: &[u8; TRAILER_LEN]) -> Result<Trailer, Result<u32, String>> {
        if bytes[32..] != MAGIC {
            return Err(Err(
                "the file does not end with the segment magic number".into()
            ));
        }
        let version = u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes"));
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(Ok(version));
        }
        let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
        if crc32fast::hash(&bytes[..20]) != crc {
            return Err(Err("the trailer's checksum does not match".into()));
        }
        if bytes[24..28] != [0; 4] {
            return Err(Err("the trailer's reserved bytes are not zero".into()));
        }
        Ok(Trailer {
            meta_offset: u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes")),
            meta_len: u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
            meta_raw_len: u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")),
            meta_crc: u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
        })
    }
}

/// The header's bytes: magic, version, 4 reserved zero bytes.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}
