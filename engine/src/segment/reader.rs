//! Reading a segment: the file is memory-mapped, its trailer and metadata checked at
//! open, and each block checked (crc32) and decoded only when asked for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt8Array, UInt64Array,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use memmap2::Mmap;
use parking_lot::Mutex;

use super::format::{self, SegmentMeta, Trailer};
use crate::encoding;
use crate::error::{Error, Result};
use crate::schema::ColumnType;
use crate::series::TagIndex;

/// An open, immutable segment file.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    map: Mmap,
    meta: SegmentMeta,
    /// Per stored column, once asked for: the value of each series' last row, in series
    /// order (see [`Segment::last_values`]).
    last_values: Mutex<Vec<Option<ArrayRef>>>,
    /// Set once the segment is no longer live (compacted away): the file is removed when
    /// the last reader drops it.
    obsolete: AtomicBool,
    /// The series of each tag value, built when a scan first filters on tags.
    tag_index: OnceLock<TagIndex>,
}

impl Segment {
    /// Maps and checks a segment file: header, trailer, metadata checksum and layout.
    pub fn open(path: &Path) -> Result<Segment> {
        let map = crate::mmap::map(path)?;
        let meta = parse(path, &map)?;
        let last_values = Mutex::new(vec![None; meta.columns.len()]);
        Ok(Segment {
            path: path.to_path_buf(),
            map,
            meta,
            last_values,
            obsolete: AtomicBool::new(false),
            tag_index: OnceLock::new(),
        })
    }

    /// crc32 of the file's trailer (its last 40 bytes), which holds the checksum of the
    /// metadata: with the file's length, what the manifest checks the file by.
    pub fn footer_crc(&self) -> u32 {
        crc32fast::hash(&self.map[self.map.len() - format::TRAILER_LEN..])
    }

    /// Marks the segment as no longer live: its file is removed once nothing reads it.
    pub(crate) fn retire(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The segment's metadata.
    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// Which series hold each tag value (entries are indices into `meta().series`),
    /// built on first use.
    pub(crate) fn tag_index(&self) -> &TagIndex {
        self.tag_index
            .get_or_init(|| TagIndex::new(self.meta.series.iter().map(|m| &m.key)))
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Checks the checksum of every block and block filter, without decoding: salvage
    /// uses it to skip a segment whose damage would otherwise surface only when a block is
    /// read.
    pub fn verify(&self) -> Result<()> {
        for (c, blocks) in self.meta.blocks.iter().enumerate() {
            for (i, b) in blocks.iter().enumerate() {
                self.filter(c, i)?;
                let bytes = &self.map[b.offset as usize..(b.offset + b.len as u64) as usize];
                let (body, crc) = bytes.split_at(bytes.len() - 4);
                if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
                    return Err(Error::corrupt(
                        &self.path,
                        b.offset,
                        format!(
                            "block {i} of column {:?}: the checksum does not match",
                            self.meta.columns[c].name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The bits of the filter of block `block` of column `col`, checksum checked; `None`
    /// if the block has none.
    fn filter(&self, col: usize, block: usize) -> Result<Option<&[u8]>> {
        let Some(range) = self.meta.blocks[col][block].filter_range() else {
            return Ok(None);
        };
        let bytes = &self.map[range.start as usize..range.end as usize];
        let (bits, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(bits) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(Error::corrupt(
                &self.path,
                range.start,
                format!(
                    "the filter of block {block} of column {:?}: the checksum does not match",
                    self.meta.columns[col].name
                ),
            ));
        }
        Ok(Some(bits))
    }

    /// Whether block `block` of column `col` may hold `value`: false only when the
    /// block's filter rules it out. A block without a filter (not a string column, no
    /// non-null value, or a segment older than format 3) may hold anything.
    pub fn block_may_contain(&self, col: usize, block: usize, value: &[u8]) -> Result<bool> {
        Ok(match self.filter(col, block)? {
            Some(bits) => super::filter::may_contain(bits, value),
            None => true,
        })
    }

    /// Decodes block `block` of column `col` (an index into `meta().columns`; not a tag)
    /// into an array of the column's internal type.
    pub fn read_block(&self, col: usize, block: usize) -> Result<ArrayRef> {
        self.read_block_prefix(col, block, usize::MAX)
    }

    /// The first `want` rows of block `block` of column `col`, as [`Segment::read_block`]
    /// returns them (all of them if `want` is at least the block's rows). Numeric, time
    /// and level columns stop decoding after those rows; the checksum still covers the
    /// whole block.
    pub fn read_block_prefix(&self, col: usize, block: usize, want: usize) -> Result<ArrayRef> {
        Ok(self.read_block_range(col, block, 0, want)?.0)
    }

    /// For a time or integer column's block without nulls: the spacing of the rows from
    /// which [`Segment::read_block_range`] starts decoding (see
    /// [`encoding::range_start_spacing`]); `None` where it decodes from the block's first
    /// row. A hint read from the block's header, before its checksum is checked.
    pub fn range_start_spacing(&self, col: usize, block: usize) -> Option<usize> {
        let b = self.meta.blocks.get(col)?.get(block)?;
        if b.null_count > 0 {
            return None;
        }
        let start = usize::try_from(b.offset).ok()?;
        let bytes = self.map.get(start..start.checked_add(b.len as usize)?)?;
        match bytes.split_first() {
            Some((0, values)) => encoding::range_start_spacing(values),
            _ => None,
        }
    }

    /// Rows `[from, to)` of block `block` of column `col` (`to` capped at the block's
    /// rows), as [`Segment::read_block`] returns them. Numeric and time columns whose
    /// blocks have resume points start decoding at the last one at or before `from`; the
    /// others decode from the block's first row (through `to` where they can). The
    /// checksum still covers the whole block. Also returns how many values were decoded.
    pub fn read_block_range(
        &self,
        col: usize,
        block: usize,
        from: usize,
        to: usize,
    ) -> Result<(ArrayRef, usize)> {
        let column = &self.meta.columns[col];
        let b = &self.meta.blocks[col][block];
        let (start, end) = self.meta.block_rows_range(block);
        let rows = end - start;
        let bytes = &self.map[b.offset as usize..(b.offset + b.len as u64) as usize];
        let damaged = |what: String| {
            Error::corrupt(
                &self.path,
                b.offset,
                format!("block {block} of column {:?}: {what}", column.name),
            )
        };
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(damaged("the checksum does not match".into()));
        }
        let to = to.min(rows);
        decode_block(
            column.ty,
            body,
            rows,
            b.null_count as usize,
            from.min(to),
            to,
        )
        .map_err(damaged)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            // A file left behind (the removal failed, or a crash came first) is not in the
            // manifest and is removed by the next open.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Segment {
    /// The value of column `col` (an index into `meta().columns`; not a tag) in the last
    /// row of every series, in series order: what "latest row per series" queries read.
    ///
    /// Computed on first use by decoding the blocks that hold a series' last row, and kept
    /// for the life of the segment (one value per series: about 1/rows-per-series of the
    /// decoded column), so that repeated latest-row queries (dashboards polling the current
    /// state) decode nothing.
    pub fn last_values(&self, col: usize) -> Result<LastValues> {
        if let Some(values) = &self.last_values.lock()[col] {
            return Ok(LastValues {
                values: values.clone(),
                blocks_read: 0,
                values_decoded: 0,
            });
        }
        let mut parts: Vec<ArrayRef> = Vec::new();
        let (mut blocks_read, mut values_decoded) = (0, 0);
        let mut series = self.meta.series.iter().peekable();
        while let Some(first) = series.peek() {
            // The series whose last row is in the same block as this one's.
            let block = self.meta.block_of_row(last_row(first));
            let (start, _) = self.meta.block_rows_range(block);
            let mut rows = Vec::new();
            while let Some(s) = series.next_if(|s| self.meta.block_of_row(last_row(s)) == block) {
                rows.push((last_row(s) - start) as u32);
            }
            let array = self.read_block(col, block)?;
            blocks_read += 1;
            values_decoded += array.len();
            let indices = arrow_array::UInt32Array::from(rows);
            parts.push(arrow_select::take::take(&array, &indices, None)?);
        }
        let parts: Vec<&dyn arrow_array::Array> = parts.iter().map(|a| a.as_ref()).collect();
        let values = match parts.len() {
            0 => crate::batch::null_array(self.meta.columns[col].ty, 0),
            _ => arrow_select::concat::concat(&parts)?,
        };
        self.last_values.lock()[col] = Some(values.clone());
        Ok(LastValues {
            values,
            blocks_read,
            values_decoded,
        })
    }

    /// Whether [`Segment::last_values`] of any column is already computed.
    pub fn has_last_values(&self) -> bool {
        self.last_values.lock().iter().any(Option::is_some)
    }
}

/// The value of one column in the last row of every series of a segment, and what it
/// took to compute them (nothing, once computed).
#[derive(Debug, Clone)]
pub struct LastValues {
    /// One value per series, in series order.
    pub values: ArrayRef,
    /// Blocks decoded to compute them.
    pub blocks_read: usize,
    /// Values decoded to compute them.
    pub values_decoded: usize,
}

/// The segment row of a series' last (latest) row.
fn last_row(s: &super::format::SeriesMeta) -> usize {
    (s.row_start + s.row_count.max(1) - 1) as usize
}

fn parse(path: &Path, map: &[u8]) -> Result<SegmentMeta> {
    let len = map.len();
    let min = format::HEADER_LEN + format::TRAILER_LEN;
    if len < min {
        return Err(Error::corrupt(
            path,
            0,
            format!("the file has {len} bytes, a segment has at least {min}"),
        ));
    }
    if map[..8] != format::MAGIC {
        return Err(Error::corrupt(
            path,
            0,
            "the file does not start with the segment magic number",
        ));
    }
    let version = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes"));
    if !(format::OLDEST_VERSION..=format::VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: format::VERSION,
        });
    }
    if map[12..16] != [0; 4] {
        return Err(Error::corrupt(
            path,
            12,
            "the header's reserved bytes are not zero",
        ));
    }
    let trailer_at = len - format::TRAILER_LEN;
    let trailer =
        Trailer::decode(map[trailer_at..].try_into().expect("40 bytes")).map_err(|e| match e {
            Ok(found) => Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: format::VERSION,
            },
            Err(what) => Error::corrupt(path, trailer_at as u64, what),
        })?;
    let trailer_version = u32::from_le_bytes(map[len - 12..len - 8].try_into().expect("4 bytes"));
    if trailer_version != version {
        return Err(Error::corrupt(
            path,
            trailer_at as u64,
            format!("the trailer says format version {trailer_version}, the header {version}"),
        ));
    }
    let meta_end = trailer.meta_offset.checked_add(trailer.meta_len as u64);
    if trailer.meta_offset < format::HEADER_LEN as u64 || meta_end != Some(trailer_at as u64) {
        return Err(Error::corrupt(
            path,
            trailer_at as u64,
            "the trailer places the metadata outside the file",
        ));
    }
    let packed = &map[trailer.meta_offset as usize..trailer_at];
    if crc32fast::hash(packed) != trailer.meta_crc {
        return Err(Error::corrupt(
            path,
            trailer.meta_offset,
            "the metadata checksum does not match",
        ));
    }
    let raw_len = trailer.meta_raw_len as usize;
    if raw_len as u64 > format::MAX_META_LEN {
        return Err(Error::corrupt(
            path,
            trailer_at as u64,
            "the metadata claims an impossible size",
        ));
    }
    let raw = zstd::bulk::decompress(packed, raw_len)
        .ok()
        .filter(|r| r.len() == raw_len)
        .ok_or_else(|| {
            Error::corrupt(
                path,
                trailer.meta_offset,
                "the metadata does not decompress",
            )
        })?;
    format::decode_meta(&raw, trailer.meta_offset, version).map_err(|e| {
        Error::corrupt(
            path,
            trailer.meta_offset,
            format!(
                "the metadata is invalid: {} (at byte {} of the decompressed section)",
                e.what, e.offset
            ),
        )
    })
}

/// Decodes rows `[from, to)` of a block body (without its crc): `flags:u8 [validity_len:u32
/// validity] values`; also returns how many values were decoded to get them.
fn decode_block(
    ty: ColumnType,
    body: &[u8],
    rows: usize,
    null_count: usize,
    from: usize,
    to: usize,
) -> Result<(ArrayRef, usize), String> {
    let (&flags, rest) = body.split_first().ok_or("the block is empty")?;
    let (nulls, values) = match flags {
        0 => (None, rest),
        1 => {
            if rest.len() < 4 {
                return Err("the validity length is cut off".into());
            }
            let (n, rest) = rest.split_at(4);
            let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
            if n > rest.len() {
                return Err("the validity bitmap is cut off".into());
            }
            let (v, rest) = rest.split_at(n);
            let bits = encoding::decode_bool(v, rows).map_err(|e| e.to_string())?;
            (Some(NullBuffer::new(bits)), rest)
        }
        f => return Err(format!("unknown block flags {f}")),
    };
    let found_nulls = nulls.as_ref().map_or(0, |n| n.null_count());
    if found_nulls != null_count {
        return Err(format!(
            "the block has {found_nulls} nulls, the index says {null_count}"
        ));
    }
    let present = rows - null_count;
    // The numeric columns decode only rows `[from, to)`: the values of those that are
    // not null, `[first, last)` among the values.
    let want = to - from;
    let range_nulls = nulls.as_ref().map(|n| n.slice(from, want));
    let first = from - nulls.as_ref().map_or(0, |n| n.slice(0, from).null_count());
    let last = first + want - range_nulls.as_ref().map_or(0, |n| n.null_count());
    let err = |e: encoding::DecodeError| e.to_string();
    // Values decoded: from `start` through `last`, or the whole block.
    let mut start = 0;
    let mut decoded_to = present;
    let array: ArrayRef = match ty {
        ColumnType::Time => {
            let (v, s) = encoding::decode_time_range(values, present, first, last).map_err(err)?;
            (start, decoded_to) = (s, last);
            Arc::new(Int64Array::new(spread(v, &range_nulls, want)?, range_nulls))
        }
        ColumnType::I64 => {
            let (v, s) = encoding::decode_i64_range(values, present, first, last).map_err(err)?;
            (start, decoded_to) = (s, last);
            Arc::new(Int64Array::new(spread(v, &range_nulls, want)?, range_nulls))
        }
        ColumnType::U64 => {
            let (v, s) = encoding::decode_u64_range(values, present, first, last).map_err(err)?;
            (start, decoded_to) = (s, last);
            Arc::new(UInt64Array::new(
                spread(v, &range_nulls, want)?,
                range_nulls,
            ))
        }
        ColumnType::F64 => {
            let (v, s) = encoding::decode_f64_range(values, present, first, last).map_err(err)?;
            (start, decoded_to) = (s, last);
            Arc::new(Float64Array::new(
                spread(v, &range_nulls, want)?,
                range_nulls,
            ))
        }
        ColumnType::Level => {
            let (v, s) = encoding::decode_u8_range(values, present, first, last).map_err(err)?;
            (start, decoded_to) = (s, last);
            if v.iter().any(|&r| r > 5) {
                return Err("a level rank is above 5".into());
            }
            Arc::new(UInt8Array::new(spread(v, &range_nulls, want)?, range_nulls))
        }
        ColumnType::Bool => {
            let v = encoding::decode_bool(values, present).map_err(err)?;
            let bits: BooleanBuffer = match &nulls {
                None => v,
                Some(n) => {
                    let mut it = v.iter();
                    n.iter()
                        .map(|valid| valid && it.next().unwrap_or(false))
                        .collect()
                }
            };
            Arc::new(BooleanArray::new(bits, nulls))
        }
        ColumnType::Str => {
            let (offsets, data) = encoding::decode_strings(values, present).map_err(err)?;
            let offsets = match &nulls {
                None => offsets,
                Some(n) => {
                    let mut out = Vec::with_capacity(rows + 1);
                    out.push(0);
                    let mut it = offsets.windows(2);
                    let mut end = 0;
                    for valid in n.iter() {
                        if valid {
                            end = it.next().map_or(end, |w| w[1]);
                        }
                        out.push(end);
                    }
                    out
                }
            };
            if offsets.len() != rows + 1 {
                return Err("the string offsets do not match the row count".into());
            }
            let array = StringArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                data.into(),
                nulls,
            )
            .map_err(|e| format!("the strings are invalid: {e}"))?;
            Arc::new(array)
        }
        ColumnType::Tag => return Err("tags are not stored in blocks".into()),
    };
    // Booleans and strings are decoded whole, then cut.
    let array = if array.len() > want {
        array.slice(from, want)
    } else {
        array
    };
    Ok((array, decoded_to - start))
}

/// Places `present` values at the valid positions of a `rows`-long buffer.
fn spread<T: arrow_buffer::ArrowNativeType>(
    present: Vec<T>,
    nulls: &Option<NullBuffer>,
    rows: usize,
) -> Result<ScalarBuffer<T>, String> {
    // (The decoders return what was asked for; this guards the arrays built on it.)
    let expected = rows - nulls.as_ref().map_or(0, NullBuffer::null_count);
    if present.len() != expected {
        return Err(format!(
            "the block decoded {} values where {expected} were asked for",
            present.len()
        ));
    }
    Ok(match nulls {
        None => ScalarBuffer::from(present),
        Some(n) => {
            let mut out = vec![T::default(); rows];
            for (slot, v) in n.valid_indices().zip(present) {
                out[slot] = v;
            }
            ScalarBuffer::from(out)
        }
    })
}
