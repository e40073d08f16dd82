//! Writing a segment from head chunks.
//!
//! The rows of the chunks are sorted by series key, then time (then arrival, so that for a
//! metric table the last write of a (series, time) is the one kept), every stored column
//! is cut into blocks of `block_rows` rows, and each block is encoded and checksummed.
//! The file is written under a temporary name, fsynced, renamed and its directory fsynced.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt64Type};
use arrow_array::{Array, ArrayRef};

use super::format::{self, BlockMeta, SegmentMeta, SeriesMeta, Stats, Trailer};
use crate::encoding::{self, Options};
use crate::error::{Error, Result};
use crate::head::Chunk;
use crate::schema::{ColumnDef, ColumnType, TableKind};
use crate::series::SeriesKey;

/// zstd level of the metadata section (small, written once per segment).
const META_ZSTD_LEVEL: i32 = 3;

/// What to write.
#[derive(Debug)]
pub(crate) struct SegmentSpec<'a> {
    pub table: &'a str,
    pub kind: TableKind,
    /// The table's columns; those absent from every chunk are left out.
    pub columns: &'a [ColumnDef],
    /// Chunks in sequence order.
    pub chunks: &'a [Arc<Chunk>],
    pub block_rows: u32,
    pub codec: &'a Options,
}

/// The name of the segment holding writes up to `max_seq`.
pub(crate) fn file_name(max_seq: u64) -> String {
    format!("{max_seq:020}.seg")
}

/// Writes the segment into `dir` and returns its path and metadata.
pub(crate) fn write(dir: &Path, spec: &SegmentSpec<'_>) -> Result<(PathBuf, SegmentMeta)> {
    let chunks = spec.chunks;
    let columns: Vec<ColumnDef> = spec
        .columns
        .iter()
        .filter(|c| c.ty == ColumnType::Time || chunks.iter().any(|ch| has_column(ch, &c.name)))
        .cloned()
        .collect();
    let (order, series) = sort_rows(chunks, spec.kind);
    let rows = order.len();
    if rows > u32::MAX as usize {
        return Err(Error::InvalidInput(format!(
            "table {:?}: {rows} rows are too many for one segment",
            spec.table
        )));
    }
    let max_seq = chunks.last().map_or(0, |c| c.max_seq);
    let path = dir.join(file_name(max_seq));
    let tmp = path.with_extension("seg.tmp");
    let file = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut offset = format::HEADER_LEN as u64;
    out.write_all(&format::header())
        .map_err(|e| Error::io("writing", &tmp, e))?;

    let block_rows = spec.block_rows.max(1) as usize;
    let mut blocks = Vec::with_capacity(columns.len());
    let mut buf = Vec::new();
    for col in &columns {
        if col.ty == ColumnType::Tag {
            blocks.push(Vec::new());
            continue;
        }
        let whole = gather(chunks, col, &order)?;
        let mut list = Vec::with_capacity(rows.div_ceil(block_rows));
        for start in (0..rows).step_by(block_rows) {
            let part = whole.slice(start, block_rows.min(rows - start));
            buf.clear();
            let stats = encode_block(col.ty, part.as_ref(), spec.codec, &mut buf);
            let crc = crc32fast::hash(&buf);
            buf.extend_from_slice(&crc.to_le_bytes());
            out.write_all(&buf)
                .map_err(|e| Error::io("writing", &tmp, e))?;
            let len = u32::try_from(buf.len()).map_err(|_| {
                Error::InvalidInput(format!(
                    "table {:?}: a block of column {:?} encodes to {} bytes, more than a segment block holds; lower block_rows",
                    spec.table,
                    col.name,
                    buf.len()
                ))
            })?;
            list.push(BlockMeta {
                offset,
                len,
                null_count: part.null_count() as u32,
                stats,
            });
            offset += buf.len() as u64;
        }
        blocks.push(list);
    }
    let times = chunks_time_range(&series);
    let meta = SegmentMeta {
        table: spec.table.to_string(),
        kind: spec.kind,
        min_seq: chunks.first().map_or(0, |c| c.min_seq),
        max_seq,
        rows: rows as u64,
        block_rows: block_rows as u32,
        min_time: times.0,
        max_time: times.1,
        columns,
        series,
        blocks,
    };
    let raw = format::encode_meta(&meta);
    let packed = zstd::bulk::compress(&raw, META_ZSTD_LEVEL)
        .map_err(|e| Error::io("compressing", &tmp, e))?;
    if raw.len() as u64 > format::MAX_META_LEN || packed.len() as u64 > format::MAX_META_LEN {
        return Err(Error::InvalidInput(format!(
            "table {:?}: the segment's index would take {} bytes, more than {}; flush more often",
            spec.table,
            raw.len(),
            format::MAX_META_LEN
        )));
    }
    let trailer = Trailer {
        meta_offset: offset,
        meta_len: packed.len() as u32,
        meta_raw_len: raw.len() as u32,
        meta_crc: crc32fast::hash(&packed),
    };
    out.write_all(&packed)
        .map_err(|e| Error::io("writing", &tmp, e))?;
    out.write_all(&trailer.encode())
        .map_err(|e| Error::io("writing", &tmp, e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io("writing", &tmp, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
    drop(file);
    // Read the new file back before it takes its place: a segment that would not open
    // must not be left where the next open would fail on it.
    if let Err(e) = super::Segment::open(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))?;
    crate::fs::sync_dir(dir)?;
    Ok((path, meta))
}

fn has_column(chunk: &Chunk, name: &str) -> bool {
    chunk.batch.columns.iter().any(|c| c.name == name)
}

fn chunks_time_range(series: &[SeriesMeta]) -> (i64, i64) {
    let min = series.iter().map(|s| s.min_time).min().unwrap_or(0);
    let max = series.iter().map(|s| s.max_time).max().unwrap_or(0);
    (min, max)
}

/// Orders every row of the chunks by (series key, time, arrival), dropping replaced rows
/// of a metric table. Returns (chunk, row) pairs and the series index.
fn sort_rows(chunks: &[Arc<Chunk>], kind: TableKind) -> (Vec<(usize, usize)>, Vec<SeriesMeta>) {
    // Global series ids, ranked by key.
    let mut global: HashMap<&SeriesKey, u32> = HashMap::new();
    let mut keys: Vec<&SeriesKey> = Vec::new();
    let local_to_global: Vec<Vec<u32>> = chunks
        .iter()
        .map(|c| {
            c.series
                .iter()
                .map(|k| {
                    *global.entry(k).or_insert_with(|| {
                        keys.push(k);
                        keys.len() as u32 - 1
                    })
                })
                .collect()
        })
        .collect();
    let mut ranked: Vec<u32> = (0..keys.len() as u32).collect();
    ranked.sort_unstable_by(|a, b| keys[*a as usize].cmp(keys[*b as usize]));
    let mut rank = vec![0u32; keys.len()];
    for (r, &g) in ranked.iter().enumerate() {
        rank[g as usize] = r as u32;
    }
    // Counting sort by series rank; chunk and row order (arrival) are kept within a series.
    let mut counts = vec![0usize; keys.len() + 1];
    for (c, chunk) in chunks.iter().enumerate() {
        for &s in &chunk.row_series {
            counts[rank[local_to_global[c][s as usize] as usize] as usize + 1] += 1;
        }
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let starts = counts.clone();
    let total = *counts.last().unwrap_or(&0);
    let mut order = vec![(0usize, 0usize, 0i64); total];
    for (c, chunk) in chunks.iter().enumerate() {
        let times = chunk.batch.time().values();
        for (row, &s) in chunk.row_series.iter().enumerate() {
            let slot = &mut counts[rank[local_to_global[c][s as usize] as usize] as usize];
            order[*slot] = (c, row, times[row]);
            *slot += 1;
        }
    }
    let mut out = Vec::with_capacity(total);
    let mut series = Vec::with_capacity(keys.len());
    for (r, &g) in ranked.iter().enumerate() {
        let group = &mut order[starts[r]..starts[r + 1]];
        if group.is_empty() {
            continue;
        }
        // Stable, so equal times keep arrival order.
        group.sort_by_key(|&(_, _, t)| t);
        let row_start = out.len() as u64;
        for i in 0..group.len() {
            let replaced = kind == TableKind::Metric
                && group.get(i + 1).is_some_and(|next| next.2 == group[i].2);
            if !replaced {
                out.push((group[i].0, group[i].1));
            }
        }
        series.push(SeriesMeta {
            key: keys[g as usize].clone(),
            row_start,
            row_count: out.len() as u64 - row_start,
            min_time: group[0].2,
            max_time: group[group.len() - 1].2,
        });
    }
    (out, series)
}

/// The values of one column for the ordered rows, nulls where a chunk lacks the column.
fn gather(chunks: &[Arc<Chunk>], col: &ColumnDef, order: &[(usize, usize)]) -> Result<ArrayRef> {
    let arrays: Vec<ArrayRef> = chunks
        .iter()
        .map(
            |c| match c.batch.columns.iter().position(|x| x.name == col.name) {
                Some(i) => c.batch.arrays[i].clone(),
                None => crate::batch::null_array(col.ty, c.rows()),
            },
        )
        .collect();
    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
    Ok(arrow_select::interleave::interleave(&refs, order)?)
}

/// Encodes one block of a column: `flags:u8 [validity_len:u32 validity] values`.
/// Returns the block's statistics.
fn encode_block(
    ty: ColumnType,
    array: &dyn Array,
    opts: &Options,
    out: &mut Vec<u8>,
) -> Option<Stats> {
    let nulls = array.logical_nulls().filter(|n| n.null_count() > 0);
    match &nulls {
        Some(n) => {
            out.push(1);
            let mut v = Vec::new();
            encoding::encode_bool(n.inner(), opts, &mut v);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(&v);
        }
        None => out.push(0),
    }
    match ty {
        ColumnType::Time | ColumnType::I64 => {
            let values: Vec<i64> = array.as_primitive::<Int64Type>().iter().flatten().collect();
            if ty == ColumnType::Time {
                encoding::encode_time(&values, opts, out);
            } else {
                encoding::encode_i64(&values, opts, out);
            }
            int_stats(values.iter().copied())
        }
        ColumnType::U64 => {
            let values: Vec<u64> = array
                .as_primitive::<UInt64Type>()
                .iter()
                .flatten()
                .collect();
            encoding::encode_u64(&values, opts, out);
            let min = values.iter().copied().min()?;
            let max = values.iter().copied().max()?;
            Some(Stats::UInt { min, max })
        }
        ColumnType::F64 => {
            let values: Vec<f64> = array
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .collect();
            encoding::encode_f64(&values, opts, out);
            let mut finite = values.iter().copied().filter(|v| !v.is_nan());
            let first = finite.next()?;
            let (min, max) = finite.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)));
            Some(Stats::Float { min, max })
        }
        ColumnType::Bool => {
            let b = array.as_boolean();
            let values: arrow_buffer::BooleanBuffer = b.iter().flatten().collect();
            encoding::encode_bool(&values, opts, out);
            int_stats(values.iter().map(i64::from))
        }
        ColumnType::Level => {
            let values: Vec<u8> = array.as_primitive::<UInt8Type>().iter().flatten().collect();
            encoding::encode_u8(&values, opts, out);
            int_stats(values.iter().map(|&v| v as i64))
        }
        ColumnType::Str => {
            let s = array.as_string::<i32>();
            let mut offsets = vec![0i32];
            let mut data = Vec::new();
            for v in s.iter().flatten() {
                data.extend_from_slice(v.as_bytes());
                offsets.push(data.len() as i32);
            }
            encoding::encode_strings(&offsets, &data, opts, out);
            None
        }
        ColumnType::Tag => unreachable!("tags are not stored in blocks"),
    }
}

fn int_stats(values: impl Iterator<Item = i64>) -> Option<Stats> {
    let mut it = values;
    let first = it.next()?;
    let (min, max) = it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)));
    Some(Stats::Int { min, max })
}
