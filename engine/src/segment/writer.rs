//! Writing segments: a streaming [`Writer`] fed one series' rows at a time, and
//! [`write`], which feeds it from head chunks.
//!
//! The writer takes rows in segment order (series key, then time) and holds at most one
//! block's worth of them per column (plus what one call hands it): every `block_rows`
//! rows, each stored column's block is encoded, checksummed and appended to the file, so
//! a flush of a large head or a compaction of large segments writes in bounded memory.
//! Blocks are laid out block by block (every column's block 0, then every column's block
//! 1, ...); readers find them through the block index. The file is written under a
//! temporary name, fsynced, read back, renamed and its directory fsynced.
//!
//! [`write`] sorts the rows of the chunks by series key, then time (then arrival, so that
//! for a metric table the last write of a (series, time) is the one kept).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ahash::AHashMap;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt64Type};
use arrow_array::{Array, ArrayRef};

use super::filter;
use super::format::{self, BlockMeta, SegmentMeta, SeriesMeta, Stats, Trailer};
use crate::encoding::{self, Options};
use crate::error::{Error, Result};
use crate::fs::{Step, fault};
use crate::head::Chunk;
use crate::schema::{ColumnDef, ColumnType, TableKind};
use crate::series::SeriesKey;
use crate::wal::Faults;

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
    /// The test hook for failing writes, `fsync`s and the rename.
    pub faults: Option<&'a Arc<dyn Faults>>,
}

/// Writes the chunks' rows as segment `id` into `dir`; returns its path and metadata.
pub(crate) fn write(dir: &Path, id: u64, spec: &SegmentSpec<'_>) -> Result<(PathBuf, SegmentMeta)> {
    let chunks = spec.chunks;
    let columns: Vec<ColumnDef> = spec
        .columns
        .iter()
        .filter(|c| c.ty == ColumnType::Time || chunks.iter().any(|ch| has_column(ch, &c.name)))
        .cloned()
        .collect();
    let (order, series) = sort_rows(chunks, spec.kind);
    let seqs = (
        chunks.first().map_or(0, |c| c.min_seq),
        chunks.last().map_or(0, |c| c.max_seq),
    );
    let mut w = Writer::create(
        dir,
        id,
        WriterSpec {
            table: spec.table,
            kind: spec.kind,
            columns: &columns,
            block_rows: spec.block_rows,
            cut: None,
            codec: spec.codec,
            seqs,
            faults: spec.faults,
        },
    )?;
    // Whole blocks at a time, so that each column's block is gathered once and passed on
    // without copying.
    let block_rows = spec.block_rows.max(1) as usize;
    let sources: Vec<Vec<ArrayRef>> = columns
        .iter()
        .filter(|c| c.ty != ColumnType::Tag)
        .map(|c| column_arrays(chunks, c))
        .collect();
    for part in order.chunks(block_rows) {
        let arrays = sources
            .iter()
            .map(|arrays| {
                let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
                arrow_select::interleave::interleave(&refs, part)
            })
            .collect::<Result<Vec<_>, _>>()?;
        w.push_rows(&arrays)?;
    }
    w.set_series(series)?;
    w.finish()
}

/// The fixed properties of a segment being written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterSpec<'a> {
    pub table: &'a str,
    pub kind: TableKind,
    /// The segment's columns, `time` first; the arrays pushed are of its stored
    /// (non-tag) columns, in this order.
    pub columns: &'a [ColumnDef],
    pub block_rows: u32,
    /// Where [`Writer::push_series`] ends blocks early; `None`: every `block_rows` rows.
    pub cut: Option<BlockCut>,
    pub codec: &'a Options,
    /// The lowest and highest WAL sequence number whose rows the segment holds.
    pub seqs: (u64, u64),
    /// The test hook for failing writes, `fsync`s and the rename.
    pub faults: Option<&'a Arc<dyn Faults>>,
}

/// Blocks that each cover one span of time: a block holding at least `min_rows` rows
/// ends before a row whose time falls in another multiple of `span` (ns) than the row
/// before it. A series with many rows gets blocks of its own, each within one span, so
/// that a query of a few series or of part of the time decodes little else; series with
/// few rows share blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockCut {
    pub span: i64,
    pub min_rows: u32,
}

/// A segment being written, fed rows in segment order.
#[derive(Debug)]
pub(crate) struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    table: String,
    kind: TableKind,
    columns: Vec<ColumnDef>,
    /// For each column, its position among the pushed arrays (tags: none).
    stored: Vec<Option<usize>>,
    block_rows: usize,
    cut: Option<BlockCut>,
    /// The span (`time / cut.span`) of the last row pushed.
    last_span: Option<i64>,
    codec: Options,
    seqs: (u64, u64),
    /// Per stored column, rows pushed but not yet written as a block.
    pending: Vec<Vec<ArrayRef>>,
    pending_rows: usize,
    rows: u64,
    block_starts: Vec<u64>,
    blocks: Vec<Vec<BlockMeta>>,
    series: Vec<SeriesMeta>,
    buf: Vec<u8>,
    faults: Option<Arc<dyn Faults>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Unfinished or failed: the temporary file goes (once renamed, there is none).
        let _ = fs::remove_file(&self.tmp);
    }
}

impl Writer {
    /// Starts segment `id` in `dir`, under a temporary name.
    pub fn create(dir: &Path, id: u64, spec: WriterSpec<'_>) -> Result<Writer> {
        let path = dir.join(crate::manifest::segment_file_name(id));
        let tmp = path.with_extension("seg.tmp");
        let file = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        let faults = spec.faults.cloned();
        if let Err(e) = fault(faults.as_deref(), Step::Write, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&format::header())
            .map_err(|e| Error::io("writing", &tmp, e))?;
        let mut n = 0;
        let stored = spec
            .columns
            .iter()
            .map(|c| {
                (c.ty != ColumnType::Tag).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        Ok(Writer {
            path,
            tmp,
            out,
            offset: format::HEADER_LEN as u64,
            table: spec.table.to_string(),
            kind: spec.kind,
            columns: spec.columns.to_vec(),
            stored,
            block_rows: spec.block_rows.max(1) as usize,
            cut: spec.cut.filter(|c| c.span > 0),
            last_span: None,
            codec: *spec.codec,
            seqs: spec.seqs,
            pending: vec![Vec::new(); n],
            pending_rows: 0,
            rows: 0,
            block_starts: Vec::new(),
            blocks: vec![Vec::new(); spec.columns.len()],
            series: Vec::new(),
            buf: Vec::new(),
            faults,
        })
    }

    /// Appends rows of one series, in time order, after the rows pushed before; a series
    /// pushed in several calls must be pushed in consecutive calls. `arrays` holds the
    /// stored columns in [`WriterSpec::columns`] order, `time` first.
    pub fn push_series(&mut self, key: &SeriesKey, arrays: &[ArrayRef]) -> Result<()> {
        let len = arrays.first().map_or(0, |a| a.len());
        if len == 0 {
            return Ok(());
        }
        let times = arrays[0].as_primitive::<Int64Type>().values();
        let (first, last) = (times[0], times[len - 1]);
        match self.series.last_mut() {
            Some(s) if &s.key == key => {
                s.row_count += len as u64;
                s.max_time = last;
            }
            Some(s) if &s.key > key => {
                return Err(Error::InvalidInput(format!(
                    "table {:?}: series {key:?} was pushed after {:?}; segments hold series in key order",
                    self.table, s.key
                )));
            }
            _ => self.series.push(SeriesMeta {
                key: key.clone(),
                row_start: self.rows + self.pending_rows as u64,
                row_count: len as u64,
                min_time: first,
                max_time: last,
            }),
        }
        let Some(cut) = self.cut else {
            return self.push_rows(arrays);
        };
        // One span's rows at a time, ending the block first where the span changes.
        let mut i = 0;
        while i < len {
            let span = times[i].div_euclid(cut.span);
            if self.pending_rows >= cut.min_rows as usize && self.last_span != Some(span) {
                self.write_block(self.pending_rows)?;
            }
            let span_end = (span as i128 + 1) * cut.span as i128;
            let n = times[i..]
                .partition_point(|&t| (t as i128) < span_end)
                .min(self.block_rows - self.pending_rows);
            let part: Vec<ArrayRef> = arrays.iter().map(|a| a.slice(i, n)).collect();
            self.push_rows(&part)?;
            self.last_span = Some(span);
            i += n;
        }
        Ok(())
    }

    /// Appends rows without series bookkeeping; the caller gives the series index with
    /// [`Writer::set_series`] before finishing.
    fn push_rows(&mut self, arrays: &[ArrayRef]) -> Result<()> {
        let len = arrays.first().map_or(0, |a| a.len());
        if arrays.len() != self.pending.len() || arrays.iter().any(|a| a.len() != len) {
            return Err(Error::InvalidInput(format!(
                "table {:?}: {} arrays of unequal lengths were pushed for {} stored columns",
                self.table,
                arrays.len(),
                self.pending.len()
            )));
        }
        for (p, a) in self.pending.iter_mut().zip(arrays) {
            p.push(a.clone());
        }
        self.pending_rows += len;
        while self.pending_rows >= self.block_rows {
            self.write_block(self.block_rows)?;
        }
        Ok(())
    }

    fn set_series(&mut self, series: Vec<SeriesMeta>) -> Result<()> {
        self.series = series;
        Ok(())
    }

    /// Writes the first `rows` pending rows of every stored column as one block each.
    fn write_block(&mut self, rows: usize) -> Result<()> {
        for c in 0..self.columns.len() {
            let Some(k) = self.stored[c] else {
                continue;
            };
            let parts = std::mem::take(&mut self.pending[k]);
            let whole = if parts.len() == 1 {
                parts.into_iter().next().expect("one part")
            } else {
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                arrow_select::concat::concat(&refs)?
            };
            let part = whole.slice(0, rows);
            if whole.len() > rows {
                self.pending[k].push(whole.slice(rows, whole.len() - rows));
            }
            self.buf.clear();
            let ty = self.columns[c].ty;
            let stats = encode_block(ty, part.as_ref(), &self.codec, &mut self.buf);
            let crc = crc32fast::hash(&self.buf);
            self.buf.extend_from_slice(&crc.to_le_bytes());
            let block_len = self.buf.len();
            // A string block's filter follows it, with a crc32 of its own.
            if ty == ColumnType::Str
                && let Some(bits) =
                    filter::build(part.as_string::<i32>().iter().flatten().map(str::as_bytes))
            {
                self.buf.extend_from_slice(&bits);
                self.buf
                    .extend_from_slice(&crc32fast::hash(&bits).to_le_bytes());
            }
            fault(self.faults.as_deref(), Step::Write, &self.tmp)?;
            self.out
                .write_all(&self.buf)
                .map_err(|e| Error::io("writing", &self.tmp, e))?;
            let len = u32::try_from(self.buf.len()).map_err(|_| {
                Error::InvalidInput(format!(
                    "table {:?}: a block of column {:?} encodes to {} bytes (its filter included), more than a segment block holds; lower block_rows",
                    self.table,
                    self.columns[c].name,
                    self.buf.len()
                ))
            })?;
            self.blocks[c].push(BlockMeta {
                offset: self.offset,
                len: block_len as u32,
                null_count: part.null_count() as u32,
                stats,
                filter_len: len - block_len as u32,
            });
            self.offset += self.buf.len() as u64;
        }
        self.block_starts.push(self.rows);
        self.pending_rows -= rows;
        self.rows += rows as u64;
        Ok(())
    }

    /// Writes the last block, the metadata and the trailer, syncs the file, checks that it
    /// opens, and puts it in place. Returns its path and metadata.
    pub fn finish(mut self) -> Result<(PathBuf, SegmentMeta)> {
        self.complete()
    }

    fn complete(&mut self) -> Result<(PathBuf, SegmentMeta)> {
        if self.pending_rows > 0 {
            self.write_block(self.pending_rows)?;
        }
        let rows = self.rows;
        if rows > u32::MAX as u64 {
            return Err(Error::InvalidInput(format!(
                "table {:?}: {rows} rows are too many for one segment",
                self.table
            )));
        }
        let times = chunks_time_range(&self.series);
        let meta = SegmentMeta {
            table: self.table.clone(),
            kind: self.kind,
            min_seq: self.seqs.0,
            max_seq: self.seqs.1,
            rows,
            block_rows: self.block_rows as u32,
            min_time: times.0,
            max_time: times.1,
            columns: self.columns.clone(),
            series: std::mem::take(&mut self.series),
            block_starts: std::mem::take(&mut self.block_starts),
            blocks: std::mem::take(&mut self.blocks),
        };
        let tmp = &self.tmp;
        let raw = format::encode_meta(&meta);
        let packed = zstd::bulk::compress(&raw, META_ZSTD_LEVEL)
            .map_err(|e| Error::io("compressing", tmp, e))?;
        if raw.len() as u64 > format::MAX_META_LEN || packed.len() as u64 > format::MAX_META_LEN {
            return Err(Error::InvalidInput(format!(
                "table {:?}: the segment's index would take {} bytes, more than {}; flush more often",
                self.table,
                raw.len(),
                format::MAX_META_LEN
            )));
        }
        let trailer = Trailer {
            meta_offset: self.offset,
            meta_len: packed.len() as u32,
            meta_raw_len: raw.len() as u32,
            meta_crc: crc32fast::hash(&packed),
        };
        fault(self.faults.as_deref(), Step::Write, tmp)?;
        self.out
            .write_all(&packed)
            .map_err(|e| Error::io("writing", tmp, e))?;
        self.out
            .write_all(&trailer.encode())
            .map_err(|e| Error::io("writing", tmp, e))?;
        self.out.flush().map_err(|e| Error::io("writing", tmp, e))?;
        fault(self.faults.as_deref(), Step::Sync, tmp)?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io("syncing", tmp, e))?;
        // Read the new file back before it takes its place: a segment that would not open
        // must not be left where the next open would fail on it.
        super::Segment::open(tmp)?;
        fault(self.faults.as_deref(), Step::Rename, tmp)?;
        fs::rename(tmp, &self.path).map_err(|e| Error::io("renaming", tmp, e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::fs::sync_dir_with(dir, self.faults.as_deref())?;
        Ok((self.path.clone(), meta))
    }
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
    let mut global: AHashMap<&SeriesKey, u32> = AHashMap::new();
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

/// One column's array in each chunk, nulls where a chunk lacks the column.
fn column_arrays(chunks: &[Arc<Chunk>], col: &ColumnDef) -> Vec<ArrayRef> {
    chunks
        .iter()
        .map(
            |c| match c.batch.columns.iter().position(|x| x.name == col.name) {
                Some(i) => c.batch.arrays[i].clone(),
                None => crate::batch::null_array(col.ty, c.rows()),
            },
        )
        .collect()
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
