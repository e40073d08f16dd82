//! Scans: reading a table's rows from a snapshot, series by series, in bounded memory.
//!
//! A scan finds the series that match its tag predicates and time range in every source
//! (segments oldest first, then in-memory chunks), and returns each series' rows in time
//! order, series in key order. Where only one source holds a stretch of a series, its
//! blocks are decoded one at a time and passed through; where sources overlap in time
//! (late or repeated writes), the overlapping stretch is merged, and for a metric table a
//! later source's row replaces an earlier one's of the same time.

mod assemble;
mod filter;
mod latest;
mod request;
pub(crate) mod source;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::{Schema, SchemaRef};
use arrow_select::filter::FilterBuilder;

pub use request::{CmpOp, FieldFilter, ScanMetrics, ScanRequest};

use crate::error::{Error, Result};
use crate::lifecycle::{Hide, SeriesHide};
use crate::schema::{ColumnDef, ColumnType, TIME_COLUMN, TableKind, TableSchema};
use crate::series::SeriesKey;
pub(crate) use assemble::Piece;
use filter::{Meets, field_filters};
pub(crate) use source::Source;

/// The part of one source that holds one series.
#[derive(Debug, Clone)]
struct Run {
    /// Index into the scan's sources: higher is newer.
    source: usize,
    /// The segment's series index entry, or the chunk's run.
    entry: usize,
    min_time: i64,
    max_time: i64,
}

/// A step of work: a series' stretch read from one source, or several merged.
#[derive(Debug)]
enum Work {
    /// Rows `[lo, hi)` of a segment, all within one block.
    SegmentRows {
        run: Run,
        block: usize,
        lo: usize,
        hi: usize,
    },
    /// A chunk's run for the series, within a time window (inclusive).
    ChunkRun { run: Run, window: (i64, i64) },
    /// Runs that overlap in time, merged within a time window (inclusive).
    Merge { runs: Vec<Run>, window: (i64, i64) },
}

/// An iterator of Arrow batches over a table's rows. Dropping it stops the scan.
#[derive(Debug)]
pub struct Scan {
    kind: TableKind,
    sources: Vec<Source>,
    min_time: i64,
    max_time: i64,
    batch_rows: usize,
    schema: SchemaRef,
    out: Vec<ColumnDef>,
    /// For each output column, its position among `needed` (tags: none).
    needed_index: Vec<Option<usize>>,
    /// Stored columns read from sources: `time` first, then the non-tag output columns.
    needed: Vec<ColumnDef>,
    /// For each source and needed column, the column's index in the source.
    colmap: Vec<Vec<Option<usize>>>,
    groups: Vec<(SeriesKey, Vec<Run>)>,
    next_group: usize,
    work: VecDeque<(SeriesKey, Work)>,
    pending: VecDeque<Piece>,
    pending_rows: usize,
    /// Per source and needed column, the block last decoded: its index, the row the array
    /// starts at, and the array.
    cache: HashMap<(usize, usize), (usize, usize, ArrayRef)>,
    /// Whether the output has the time column.
    time_wanted: bool,
    /// Stands for the time column where it is not read.
    no_time: ArrayRef,
    metrics: ScanMetrics,
    failed: bool,
    /// Per source, for latest rows: whether to read (and fill) a segment's cache of last
    /// rows.
    fill_cache: Vec<bool>,
    /// Rows deleted or expired, which the scan leaves out.
    hide: Option<Arc<Hide>>,
    /// The index among `needed` of the level column, read for retention by level.
    level_index: Option<usize>,
    /// What is hidden of the series last asked about: ((source, entry), hide).
    series_hide: Option<((usize, usize), Arc<SeriesHide>)>,
    /// How many of `needed` the output asked for (the level column may follow, read
    /// only to hide rows by level).
    out_needed: usize,
    /// The request's field filters on columns it returns, each with its index among
    /// `needed`.
    filters: Vec<(usize, FieldFilter)>,
}

/// Resolves the output columns of a request against a table's schema.
pub(crate) fn output_columns(schema: &TableSchema, req: &ScanRequest) -> Result<Vec<ColumnDef>> {
    match &req.columns {
        None => Ok(schema.columns.clone()),
        Some(names) => names
            .iter()
            .map(|n| {
                schema
                    .column(n)
                    .cloned()
                    .ok_or_else(|| Error::NoSuchColumn {
                        table: schema.name.clone(),
                        column: n.clone(),
                    })
            })
            .collect(),
    }
}

impl Scan {
    pub(crate) fn new(
        schema: &TableSchema,
        sources: Vec<Source>,
        req: &ScanRequest,
        hide: Option<Arc<Hide>>,
    ) -> Result<Scan> {
        let (part, parts) = req.partition;
        if part >= parts {
            return Err(Error::InvalidInput(format!(
                "partition {part} of {parts} does not exist: partitions are numbered from 0 to {}",
                parts.saturating_sub(1)
            )));
        }
        let out = output_columns(schema, req)?;
        let time_wanted = out.iter().any(|c| c.ty == ColumnType::Time);
        for (tag, _) in &req.tags {
            match schema.column(tag) {
                Some(c) if c.ty == ColumnType::Tag => {}
                Some(c) => {
                    return Err(Error::InvalidInput(format!(
                        "table {:?}: column {tag:?} is a {} column, not a tag; tag predicates name tags",
                        schema.name, c.ty
                    )));
                }
                None => {
                    return Err(Error::NoSuchColumn {
                        table: schema.name.clone(),
                        column: tag.clone(),
                    });
                }
            }
        }
        let arrow_schema: SchemaRef = Arc::new(Schema::new(
            out.iter()
                .map(|c| c.ty.arrow_field(&c.name))
                .collect::<Vec<_>>(),
        ));
        let mut needed = vec![ColumnDef::new(TIME_COLUMN, ColumnType::Time)];
        let mut needed_index = Vec::with_capacity(out.len());
        for c in &out {
            needed_index.push(match c.ty {
                ColumnType::Tag => None,
                ColumnType::Time => Some(0),
                _ => {
                    needed.push(c.clone());
                    Some(needed.len() - 1)
                }
            });
        }
        // Rows before the retention floor are expired under every rule: never read them.
        let floor = hide.as_ref().and_then(|h| h.floor());
        let raised;
        let req = match floor {
            Some(f) if f > req.min_time => {
                raised = ScanRequest {
                    min_time: f,
                    ..req.clone()
                };
                &raised
            }
            _ => req,
        };
        let out_needed = needed.len();
        let mut level_index = None;
        if hide.as_ref().is_some_and(|h| h.level_rules) {
            let level = schema.columns.iter().find(|c| c.ty == ColumnType::Level);
            if let Some(c) = level {
                level_index = Some(match needed.iter().position(|n| n.name == c.name) {
                    Some(i) => i,
                    None => {
                        needed.push(c.clone());
                        needed.len() - 1
                    }
                });
            }
        }
        let filters = field_filters(schema, req, &needed[..out_needed])?;
        let colmap = sources
            .iter()
            .map(|s| needed.iter().map(|c| s.column_index(&c.name)).collect())
            .collect();
        let mut metrics = ScanMetrics {
            segments_total: 0,
            ..Default::default()
        };
        let groups = plan(&sources, req, &mut metrics);
        Ok(Scan {
            kind: schema.kind,
            sources,
            min_time: req.min_time,
            max_time: req.max_time,
            batch_rows: req.batch_rows.max(1),
            schema: arrow_schema,
            out,
            needed_index,
            needed,
            colmap,
            groups,
            next_group: 0,
            work: VecDeque::new(),
            pending: VecDeque::new(),
            pending_rows: 0,
            cache: HashMap::new(),
            time_wanted,
            no_time: crate::batch::null_array(ColumnType::Time, 0),
            metrics,
            failed: false,
            fill_cache: Vec::new(),
            hide,
            level_index,
            series_hide: None,
            out_needed,
            filters,
        })
    }

    /// The schema of the returned batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// What the scan has done so far.
    pub fn metrics(&self) -> ScanMetrics {
        self.metrics
    }

    /// Queues the work for the next series; false when there are no more.
    fn plan_next_series(&mut self) -> bool {
        let Some((key, runs)) = self.groups.get(self.next_group).cloned() else {
            return false;
        };
        self.next_group += 1;
        // Decoded blocks of sources this series does not read are not needed again.
        self.cache
            .retain(|(source, _), _| runs.iter().any(|r| r.source == *source));
        let mut runs = runs;
        runs.sort_by_key(|r| (r.min_time, r.source));
        // Cluster runs whose time ranges overlap; a cluster of one passes through.
        let mut clusters: Vec<Vec<Run>> = Vec::new();
        let mut cluster_end = i64::MIN;
        for r in runs {
            match clusters.last_mut() {
                Some(c) if r.min_time <= cluster_end => {
                    cluster_end = cluster_end.max(r.max_time);
                    c.push(r);
                }
                _ => {
                    cluster_end = r.max_time;
                    clusters.push(vec![r]);
                }
            }
        }
        let window = (self.min_time, self.max_time);
        for mut cluster in clusters {
            if cluster.len() > 1 {
                cluster.sort_by_key(|r| r.source);
                self.plan_merge(&key, cluster);
                continue;
            }
            let run = cluster.pop().expect("one run");
            match &self.sources[run.source] {
                Source::Chunk(_) => self
                    .work
                    .push_back((key.clone(), Work::ChunkRun { run, window })),
                Source::Segment(seg) => {
                    for (block, lo, hi) in series_blocks(seg, run.entry) {
                        let run = run.clone();
                        let work = Work::SegmentRows { run, block, lo, hi };
                        self.work.push_back((key.clone(), work));
                    }
                }
            }
        }
        true
    }

    /// Queues the merge of overlapping runs in time windows of about [`MERGE_WINDOW_ROWS`]
    /// rows each (assuming rows spread evenly over the cluster's time range), so that a
    /// late row does not make the merge read a series' whole history at once.
    fn plan_merge(&mut self, key: &SeriesKey, runs: Vec<Run>) {
        let lo = runs
            .iter()
            .map(|r| r.min_time)
            .min()
            .unwrap_or(i64::MIN)
            .max(self.min_time);
        let hi = runs
            .iter()
            .map(|r| r.max_time)
            .max()
            .unwrap_or(i64::MAX)
            .min(self.max_time);
        if lo > hi {
            return;
        }
        let rows: usize = runs.iter().map(|r| self.run_len(r)).sum();
        let windows = rows.div_ceil(MERGE_WINDOW_ROWS).max(1) as i128;
        let span = hi as i128 - lo as i128 + 1;
        let width = ((span + windows - 1) / windows).max(1);
        let mut start = lo as i128;
        while start <= hi as i128 {
            let end = (start + width - 1).min(hi as i128);
            let window = (start as i64, end as i64);
            self.work.push_back((
                key.clone(),
                Work::Merge {
                    runs: runs.clone(),
                    window,
                },
            ));
            start = end + 1;
        }
    }

    /// Rows a run holds, whatever their times.
    fn run_len(&self, run: &Run) -> usize {
        match &self.sources[run.source] {
            Source::Segment(seg) => seg.meta().series[run.entry].row_count as usize,
            Source::Chunk(c) => {
                let r = &c.index().runs[run.entry];
                r.end - r.start
            }
        }
    }

    /// Does one step of work; false when the scan is complete.
    fn step(&mut self) -> Result<bool> {
        while self.work.is_empty() {
            if !self.plan_next_series() {
                return Ok(false);
            }
        }
        let (key, work) = self.work.pop_front().expect("not empty");
        let window = (self.min_time, self.max_time);
        let arrays = match work {
            Work::SegmentRows { run, block, lo, hi } => {
                self.segment_rows(&run, block, lo, hi, false, window)?
            }
            Work::ChunkRun { run, window } => {
                let arrays = self.chunk_run(&run, window, true)?;
                Some((arrays[0].len(), arrays))
            }
            Work::Merge { runs, window } => self.merge(&runs, window)?.map(|a| (a[0].len(), a)),
        };
        if let Some((len, arrays)) = arrays
            && len > 0
        {
            let piece = Piece { key, len, arrays };
            self.pending_rows += piece.len();
            self.pending.push_back(piece);
        }
        Ok(true)
    }

    /// Block `block` of needed column `k` of segment source `source` from its row `from`,
    /// decoded at least through row `end` (the array may hold more). Kept for the next
    /// call; one that needs rows outside those decoded decodes the block again.
    fn block(
        &mut self,
        source: usize,
        k: usize,
        block: usize,
        from: usize,
        end: usize,
    ) -> Result<Option<ArrayRef>> {
        let Some(col) = self.colmap[source][k] else {
            return Ok(None);
        };
        if let Some((b, start, a)) = self.cache.get(&(source, k))
            && *b == block
            && *start <= from
            && start + a.len() >= end
        {
            return Ok(Some(a.slice(from - start, a.len() - (from - start))));
        }
        let Source::Segment(seg) = &self.sources[source] else {
            unreachable!("segment source")
        };
        let (array, decoded) = seg.read_block_range(col, block, from, end)?;
        self.metrics.blocks_read += 1;
        self.metrics.values_decoded += decoded;
        self.cache.insert((source, k), (block, from, array.clone()));
        Ok(Some(array))
    }

    /// Rows `[lo, hi)` of a segment (one block) whose time is within `window`
    /// (inclusive). `for_merge`: the rows go into a merge of overlapping sources, which
    /// needs their time, and all of them: a block is skipped by the field filters only
    /// when it is passed through alone (in a merge, a newer row that fails a filter still
    /// replaces an older one of its time).
    fn segment_rows(
        &mut self,
        run: &Run,
        block: usize,
        lo: usize,
        hi: usize,
        for_merge: bool,
        window: (i64, i64),
    ) -> Result<Option<(usize, Vec<ArrayRef>)>> {
        let Source::Segment(seg) = &self.sources[run.source] else {
            unreachable!("segment source")
        };
        let seg = seg.clone();
        let meta = seg.meta();
        if !block_may_hold(&seg, block, window) {
            self.metrics.blocks_pruned += 1;
            return Ok(None);
        }
        if !for_merge && self.filters_rule_out(&seg, run.source, block)? {
            self.metrics.blocks_excluded += 1;
            return Ok(None);
        }
        let (bs, be) = meta.block_rows_range(block);
        let (mut a, mut b) = (lo - bs, hi - bs);
        // Where the series' rows end the block, its columns are decoded only through the
        // last row the window takes. Where other series follow in the block, they will want
        // the rest, so the block is decoded whole once; so it is in a merge, whose next
        // window wants the block's later rows.
        let prefix = hi == be && !for_merge;
        let inside = run.min_time >= window.0 && run.max_time <= window.1;
        // Time is decoded first only to find the rows within the window: around it where
        // that can be guessed, else from the block's first row. (`time` is the array and
        // the block row it starts at.)
        let mut time = None;
        if !inside {
            // (A merge's windows share one decode of the block.)
            let guess = if for_merge {
                None
            } else {
                self.seek_time(&seg, run, block, (a, b), window)?
            };
            let (t, start) = match guess {
                Some(found) => found,
                None => {
                    let until = if prefix { window.1 } else { i64::MAX };
                    (self.block_time(&seg, run.source, block, (a, b), until)?, 0)
                }
            };
            // (A guess starts at or after the series' first row, past rows before the window.)
            let a0 = a.max(start);
            let values =
                &t.as_primitive::<Int64Type>().values()[a0 - start..(b - start).min(t.len())];
            let first = values.partition_point(|&x| x < window.0);
            let last = values.partition_point(|&x| x <= window.1);
            (a, b) = (a0 + first, a0 + last.max(first));
            time = Some((t, start));
        }
        if a == b {
            return Ok(None);
        }
        // Decoded rows: `[from, end)` of the block.
        let (from, end) = if prefix { (a, b) } else { (0, be - bs) };
        let mask = if for_merge {
            None
        } else {
            match self.rows_meeting(run.source, block, (a, b), (from, end))? {
                Meets::Nothing => {
                    self.metrics.blocks_filtered += 1;
                    return Ok(None);
                }
                Meets::All => None,
                Meets::Rows(mask) => Some(mask),
            }
        };
        // Otherwise time is decoded, after the field filters, only when it is returned or
        // needed to hide rows.
        if time.is_none() && (for_merge || self.time_wanted || self.hide.is_some()) {
            time = self.block(run.source, 0, block, 0, end)?.map(|t| (t, 0));
        }
        let len = b - a;
        let mut arrays = Vec::with_capacity(self.needed.len());
        for k in 0..self.needed.len() {
            // Where the array starts: time from where it was decoded.
            let (array, start) = match (k, &time) {
                (0, Some((time, start))) => (time.clone(), *start),
                (0, None) => (self.no_time.clone(), a),
                _ => match self.block(run.source, k, block, from, end)? {
                    Some(array) => (array, from),
                    None => (crate::batch::null_array(self.needed[k].ty, len), a),
                },
            };
            let whole = array.len() == len || (k == 0 && time.is_none());
            arrays.push(if whole {
                array
            } else {
                array.slice(a - start, len)
            });
        }
        // Rows that cannot meet the field filters are left out before the other columns
        // go further; the time stand-in (time neither returned nor read) has no rows.
        let (len, arrays) = match mask {
            None => (len, arrays),
            Some(mask) => {
                let keep = FilterBuilder::new(&BooleanArray::new(mask, None))
                    .optimize()
                    .build();
                let stand_in = time.is_none();
                let arrays = arrays
                    .iter()
                    .enumerate()
                    .map(|(k, array)| {
                        if k == 0 && stand_in {
                            Ok(array.clone())
                        } else {
                            Ok(keep.filter(array)?)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.metrics.rows_filtered += len - keep.count();
                (keep.count(), arrays)
            }
        };
        // With rows hidden, time was read (above), so its length is the rows' count.
        match self.hidden(run) {
            Some(h) if !h.is_empty() => {
                let arrays = h.filter(arrays, self.level_index)?;
                Ok(Some((arrays[0].len(), arrays)))
            }
            _ => Ok(Some((len, arrays))),
        }
    }

    /// The time column of a series' rows `rows` (block-relative) in block `block` of a
    /// segment, decoded only around where `window` falls among them, and the block row
    /// the array starts at; the array holds every row of `rows` within the window.
    ///
    /// Where the window falls is guessed as if rows were spread evenly over their time
    /// range: the block's rows over its time statistics where the series has the block
    /// to itself, else the series' rows in the segment over its time range; with a
    /// margin of 5 % of those rows (and 64) on each side. `None` (decode from the block's
    /// first row instead) where the guess misses an edge of the window, or would not
    /// pay: where it is empty or takes more than half the series' rows in the block, or
    /// where the block has no resume points or they are further apart than the series
    /// has rows in it (the decode starts at the last one before the guess, and series
    /// that share a block share a whole decode).
    fn seek_time(
        &mut self,
        seg: &crate::segment::Segment,
        run: &Run,
        block: usize,
        rows: (usize, usize),
        window: (i64, i64),
    ) -> Result<Option<(ArrayRef, usize)>> {
        let Some(spacing) =
            self.colmap[run.source][0].and_then(|col| seg.range_start_spacing(col, block))
        else {
            return Ok(None);
        };
        let meta = seg.meta();
        let (bs, be) = meta.block_rows_range(block);
        // The rows the guess spreads the time range over, counted from the block's first
        // row, and that range: the block's where the series has it to itself (its rows
        // may go on in other blocks), the series' otherwise.
        let (first, count, min, max) = match meta.blocks[0][block].stats {
            Some(crate::segment::Stats::Int { min, max }) if rows == (0, be - bs) => {
                (0.0, (be - bs) as f64, min, max)
            }
            _ => {
                let series = &meta.series[run.entry];
                let first = series.row_start as f64 - bs as f64;
                (first, series.row_count as f64, run.min_time, run.max_time)
            }
        };
        let span = max as f64 - min as f64 + 1.0;
        let row_of = |t: i64| first + count * ((t as f64 - min as f64) / span);
        let margin = count * 0.05 + 64.0;
        let clamp = |r: f64| (r.max(rows.0 as f64) as usize).min(rows.1);
        let lo = clamp((row_of(window.0) - margin).floor());
        let hi = clamp((row_of(window.1) + margin).ceil()).max(lo);
        // A guess costs, on average, half a stretch between resume points more than the
        // rows it decodes; a whole decode, shared, costs each series about its rows in
        // the block.
        if hi == lo || rows.1 - rows.0 < spacing || 2 * (hi - lo) > rows.1 - rows.0 {
            return Ok(None);
        }
        let Some(t) = self.block(run.source, 0, block, lo, hi)? else {
            return Ok(None);
        };
        let values = &t.as_primitive::<Int64Type>().values()[..(rows.1 - lo).min(t.len())];
        let holds_start = lo == rows.0 || values.first().is_some_and(|&x| x < window.0);
        let holds_end = lo + values.len() == rows.1 || values.last().is_some_and(|&x| x > window.1);
        Ok((holds_start && holds_end).then_some((t, lo)))
    }

    /// The time column of block `block` of a segment, decoded at least through the rows
    /// of `rows` (block-relative: the series' rows in the block) at or before `until`.
    ///
    /// Where the series has the block to itself, the row where `until` falls is guessed
    /// from the block's time statistics, as if rows were spread evenly over its time
    /// range, with a margin; if the guess falls short (the last decoded time is not past
    /// `until`), the block is decoded whole. Otherwise (and for `until = i64::MAX`) the
    /// block is decoded whole.
    fn block_time(
        &mut self,
        seg: &crate::segment::Segment,
        source: usize,
        block: usize,
        rows: (usize, usize),
        until: i64,
    ) -> Result<ArrayRef> {
        let (bs, be) = seg.meta().block_rows_range(block);
        let n = be - bs;
        if rows == (0, n)
            && let Some(share) = time_share_through(seg, block, until)
        {
            let guess = ((n as f64 * share * 1.1) as usize + 64).min(n);
            let t = self
                .block(source, 0, block, 0, guess)?
                .expect("every segment has time");
            let past = t
                .as_primitive::<Int64Type>()
                .values()
                .last()
                .is_some_and(|&x| x > until);
            if t.len() == n || past {
                return Ok(t);
            }
        }
        Ok(self
            .block(source, 0, block, 0, n)?
            .expect("every segment has time"))
    }

    /// A chunk's rows of one series with time within `window`, in time order; for a
    /// metric table only the last row of each time. `filtered`: rows that cannot meet the
    /// field filters are left out (not so for a merge, as in [`Scan::segment_rows`]).
    fn chunk_run(
        &mut self,
        run: &Run,
        window: (i64, i64),
        filtered: bool,
    ) -> Result<Vec<ArrayRef>> {
        let Source::Chunk(chunk) = &self.sources[run.source] else {
            unreachable!("chunk source")
        };
        let chunk = chunk.clone();
        self.metrics.chunks_read += 1;
        let r = &chunk.index().runs[run.entry];
        let rows = &chunk.index().order[r.start..r.end];
        let times = chunk.batch.time().values();
        let first = rows.partition_point(|&i| times[i as usize] < window.0);
        let last = rows.partition_point(|&i| times[i as usize] <= window.1);
        let mut keep: Vec<u32> = Vec::with_capacity(last.saturating_sub(first));
        for (n, &i) in rows[first..last.max(first)].iter().enumerate() {
            let replaced = self.kind == TableKind::Metric
                && rows
                    .get(first + n + 1)
                    .is_some_and(|&next| times[next as usize] == times[i as usize])
                && first + n + 1 < last;
            if !replaced {
                keep.push(i);
            }
        }
        let mut indices = UInt32Array::from(keep);
        if filtered {
            indices = self.chunk_rows_meeting(run.source, indices)?;
        }
        let mut arrays = Vec::with_capacity(self.needed.len());
        for (k, col) in self.needed.iter().enumerate() {
            arrays.push(match self.colmap[run.source][k] {
                Some(c) => {
                    arrow_select::take::take(chunk.batch.arrays[c].as_ref(), &indices, None)?
                }
                None => crate::batch::null_array(col.ty, indices.len()),
            });
        }
        self.unhidden(run, arrays)
    }

    /// What is hidden of the series of `run` in its source.
    fn hidden(&mut self, run: &Run) -> Option<Arc<SeriesHide>> {
        let hide = self.hide.as_ref()?;
        let at = (run.source, run.entry);
        if let Some((cached, h)) = &self.series_hide
            && *cached == at
        {
            return Some(h.clone());
        }
        let key = match &self.sources[run.source] {
            Source::Segment(seg) => seg.meta().series[run.entry].key.clone(),
            Source::Chunk(c) => c.series[c.index().runs[run.entry].series as usize].clone(),
        };
        let h = Arc::new(hide.series(run.source, &key));
        self.series_hide = Some((at, h.clone()));
        Some(h)
    }

    /// The rows of `arrays` (rows of `run`, `time` first) that are neither deleted nor
    /// expired.
    fn unhidden(&mut self, run: &Run, arrays: Vec<ArrayRef>) -> Result<Vec<ArrayRef>> {
        match self.hidden(run) {
            Some(h) if !h.is_empty() => h.filter(arrays, self.level_index),
            _ => Ok(arrays),
        }
    }

    /// The rows of a run with time within `window` (a chunk run deduplicated),
    /// concatenated.
    fn run_rows(&mut self, run: &Run, window: (i64, i64)) -> Result<Vec<ArrayRef>> {
        match &self.sources[run.source] {
            Source::Chunk(_) => self.chunk_run(run, window, false),
            Source::Segment(seg) => {
                let seg = seg.clone();
                let mut parts: Vec<Vec<ArrayRef>> = Vec::new();
                for (block, a, b) in series_blocks(&seg, run.entry) {
                    // Blocks outside the window are passed over silently: merges visit
                    // the same series' blocks once per window.
                    if !block_may_hold(&seg, block, window) {
                        continue;
                    }
                    if let Some((_, p)) = self.segment_rows(run, block, a, b, true, window)? {
                        parts.push(p);
                    }
                }
                concat_parts(&self.needed, parts)
            }
        }
    }

    /// Merges the rows within `window` of runs that overlap in time: rows ordered by
    /// time, then source; for a metric table the newest source's row of each time is
    /// kept.
    fn merge(&mut self, runs: &[Run], window: (i64, i64)) -> Result<Option<Vec<ArrayRef>>> {
        let mut parts = Vec::with_capacity(runs.len());
        let mut order: Vec<(i64, usize, u32)> = Vec::new();
        let mut offset = 0u32;
        for run in runs {
            let arrays = self.run_rows(run, window)?;
            let t = arrays[0].as_primitive::<Int64Type>();
            order.extend(
                t.values()
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| (x, run.source, offset + i as u32)),
            );
            offset += t.len() as u32;
            parts.push(arrays);
        }
        if order.is_empty() {
            return Ok(None);
        }
        // Stable: within a source, rows keep their order.
        order.sort_by_key(|&(t, s, _)| (t, s));
        let mut keep = Vec::with_capacity(order.len());
        for (i, &(t, _, pos)) in order.iter().enumerate() {
            let replaced =
                self.kind == TableKind::Metric && order.get(i + 1).is_some_and(|n| n.0 == t);
            if !replaced {
                keep.push(pos);
            }
        }
        let all = concat_parts(&self.needed, parts)?;
        let indices = UInt32Array::from(keep);
        let arrays = all
            .iter()
            .map(|a| arrow_select::take::take(a.as_ref(), &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(arrays))
    }

    fn take_batch(&mut self) -> Result<RecordBatch> {
        let mut pieces = Vec::new();
        let mut rows = 0;
        while rows < self.batch_rows {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            let room = self.batch_rows - rows;
            if p.len() > room {
                pieces.push(p.slice(0, room));
                self.pending.push_front(p.slice(room, p.len() - room));
                rows += room;
            } else {
                rows += p.len();
                pieces.push(p);
            }
        }
        self.pending_rows -= rows;
        self.metrics.rows_returned += rows;
        assemble::assemble(&self.schema, &self.out, &self.needed_index, &pieces)
    }
}

impl Scan {
    /// The next stretch of one series' rows, as the stored columns the scan reads (`time`
    /// first, then the output's non-tag columns in output order), for compaction.
    pub(crate) fn next_piece(&mut self) -> Result<Option<Piece>> {
        while self.pending.is_empty() {
            if !self.step()? {
                return Ok(None);
            }
        }
        let mut piece = self.pending.pop_front().expect("not empty");
        self.pending_rows -= piece.len();
        piece.arrays.truncate(self.out_needed);
        Ok(Some(piece))
    }
}

impl Iterator for Scan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self.pending_rows < self.batch_rows {
            match self.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        if self.pending_rows == 0 {
            return None;
        }
        let batch = self.take_batch();
        if batch.is_err() {
            self.failed = true;
        }
        Some(batch)
    }
}

fn concat_parts(needed: &[ColumnDef], parts: Vec<Vec<ArrayRef>>) -> Result<Vec<ArrayRef>> {
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().expect("one part"));
    }
    if parts.is_empty() {
        return Ok(needed
            .iter()
            .map(|c| crate::batch::null_array(c.ty, 0))
            .collect());
    }
    (0..needed.len())
        .map(|k| {
            let cols: Vec<&dyn Array> = parts.iter().map(|p| p[k].as_ref()).collect();
            Ok(arrow_select::concat::concat(&cols)?)
        })
        .collect()
}

/// Rows a merge window should hold, about.
const MERGE_WINDOW_ROWS: usize = 8192;

/// The blocks holding a segment series' rows: (block, first row, end row), rows
/// counted in the segment.
pub(crate) fn series_blocks(
    seg: &crate::segment::Segment,
    entry: usize,
) -> Vec<(usize, usize, usize)> {
    let meta = seg.meta();
    let m = &meta.series[entry];
    let (lo, hi) = (m.row_start as usize, (m.row_start + m.row_count) as usize);
    (meta.block_of_row(lo)..=meta.block_of_row(hi - 1))
        .map(|block| {
            let (bs, be) = meta.block_rows_range(block);
            (block, lo.max(bs), hi.min(be))
        })
        .collect()
}

/// Whether a block's time statistics allow rows within `window`.
fn block_may_hold(seg: &crate::segment::Segment, block: usize, window: (i64, i64)) -> bool {
    match seg.meta().blocks[0][block].stats {
        Some(crate::segment::Stats::Int { min, max }) => max >= window.0 && min <= window.1,
        _ => true,
    }
}

/// About how many rows a scan of `req` reads (all partitions together): the rows of each
/// matching series in each source, times the share of the series' time range that the
/// request covers. `None` once the count reaches `cap` (the walk over the series index
/// stops there).
pub(crate) fn estimate_rows(sources: &[Source], req: &ScanRequest, cap: u64) -> Option<u64> {
    let share = |rows: u64, min: i64, max: i64| -> f64 {
        let (lo, hi) = (min.max(req.min_time), max.min(req.max_time));
        if lo > hi {
            return 0.0;
        }
        let part = (hi as f64 - lo as f64 + 1.0) / (max as f64 - min as f64 + 1.0);
        rows as f64 * part.min(1.0)
    };
    let cap = cap as f64;
    let mut rows = 0.0;
    for source in sources {
        let (lo, hi) = source.time_range();
        if hi < req.min_time || lo > req.max_time {
            continue;
        }
        for entry in source.matching(&req.tags) {
            rows += match source {
                Source::Segment(seg) => {
                    let m = &seg.meta().series[entry];
                    share(m.row_count, m.min_time, m.max_time)
                }
                Source::Chunk(c) => {
                    let r = &c.index().runs[entry];
                    share((r.end - r.start) as u64, r.min_time, r.max_time)
                }
            };
        }
        if rows >= cap {
            return None;
        }
    }
    Some(rows.ceil() as u64)
}

/// About how many rows a scan of `req` decodes (all partitions together): of each
/// matching series in a segment, its rows in every block whose time statistics meet the
/// request's range, from the block's first row (an estimate: a block with resume points
/// is decoded from the last one before the range) through the last row the range takes
/// where the series ends the block, and whole otherwise (as the scan decodes); in
/// memory, as [`estimate_rows`]. `None` once the count reaches `cap`.
///
/// More than [`estimate_rows`] where blocks start far before the range: a one-hour window
/// at the end of series' day-long blocks decodes the day. A lower bound where series
/// share blocks: the other series' rows of a block are decoded too, and not counted.
pub(crate) fn estimate_decoded_rows(
    sources: &[Source],
    req: &ScanRequest,
    cap: u64,
) -> Option<u64> {
    let window = (req.min_time, req.max_time);
    let mut rows = 0u64;
    for source in sources {
        let (lo, hi) = source.time_range();
        if hi < req.min_time || lo > req.max_time {
            continue;
        }
        match source {
            Source::Segment(seg) => {
                for entry in source.matching(&req.tags) {
                    let m = &seg.meta().series[entry];
                    if m.max_time < req.min_time || m.min_time > req.max_time {
                        continue;
                    }
                    for (block, lo, hi) in series_blocks(seg, entry) {
                        if block_may_hold(seg, block, window) {
                            rows += rows_decoded(seg, block, (lo, hi), req.max_time);
                        }
                    }
                    if rows >= cap {
                        return None;
                    }
                }
            }
            Source::Chunk(_) => {
                let chunk = estimate_rows(std::slice::from_ref(source), req, cap - rows)?;
                rows += chunk;
            }
        }
        if rows >= cap {
            return None;
        }
    }
    Some(rows)
}

/// About how many of a series' rows `rows` (segment rows, within block `block`) a scan
/// whose range ends at `until` decodes: those through `until` where the series ends the
/// block (assuming its rows spread evenly over the block's time range), else all.
fn rows_decoded(
    seg: &crate::segment::Segment,
    block: usize,
    rows: (usize, usize),
    until: i64,
) -> u64 {
    let all = (rows.1 - rows.0) as u64;
    let (_, end) = seg.meta().block_rows_range(block);
    match time_share_through(seg, block, until) {
        Some(share) if rows.1 == end => ((all as f64 * share).ceil() as u64).min(all),
        _ => all,
    }
}

/// The share (0 to 1) of block `block`'s time range, by its statistics, at or before
/// `until`; `None` where the block ends at or before `until` (or has no statistics), so
/// that the whole block is decoded. Where a block's rows fall, if spread evenly.
fn time_share_through(seg: &crate::segment::Segment, block: usize, until: i64) -> Option<f64> {
    match seg.meta().blocks[0][block].stats {
        Some(crate::segment::Stats::Int { min, max }) if until < max => {
            let share = (until as f64 - min as f64 + 1.0) / (max as f64 - min as f64 + 1.0);
            Some(share.clamp(0.0, 1.0))
        }
        _ => None,
    }
}

/// About how many rows a scan of `req` reads, counted coarsely for when
/// [`estimate_rows`] stops at its cap: every row of each source, times the share of the
/// source's time range that the request covers, whatever the tags ask.
pub(crate) fn estimate_rows_coarse(sources: &[Source], req: &ScanRequest) -> u64 {
    let mut rows = 0.0;
    for source in sources {
        let (min, max) = source.time_range();
        let (lo, hi) = (min.max(req.min_time), max.min(req.max_time));
        if lo > hi {
            continue;
        }
        let all = match source {
            Source::Segment(seg) => seg.meta().rows,
            Source::Chunk(c) => c
                .index()
                .runs
                .iter()
                .map(|r| (r.end - r.start) as u64)
                .sum(),
        };
        let part = (hi as f64 - lo as f64 + 1.0) / (max as f64 - min as f64 + 1.0);
        rows += all as f64 * part.min(1.0);
    }
    rows.ceil() as u64
}

/// About how many series a scan of `req` reads: the most matching series of any one
/// source whose time range meets the request's (a series in several sources is counted
/// once, and one in no source that holds the most is missed).
pub(crate) fn estimate_series(sources: &[Source], req: &ScanRequest) -> u64 {
    let mut most = 0;
    for source in sources {
        let (lo, hi) = source.time_range();
        if hi < req.min_time || lo > req.max_time {
            continue;
        }
        let series = if req.tags.is_empty() {
            source.entry_count()
        } else {
            source.matching(&req.tags).len()
        };
        most = most.max(series as u64);
    }
    most
}

/// Finds, per matching series in key order, the runs of every source.
fn plan(
    sources: &[Source],
    req: &ScanRequest,
    metrics: &mut ScanMetrics,
) -> Vec<(SeriesKey, Vec<Run>)> {
    let (part, parts) = req.partition;
    // Table-wide figures (segments in the table, segments no partition reads) are counted
    // by partition 0 alone, so that the sum over partitions stays true.
    let table_wide = usize::from(part == 0);
    let mut all: Vec<(SeriesKey, Run)> = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let (lo, hi) = source.time_range();
        let is_segment = usize::from(matches!(source, Source::Segment(_)));
        metrics.segments_total += is_segment * table_wide;
        if hi < req.min_time || lo > req.max_time {
            metrics.segments_pruned += is_segment * table_wide;
            continue;
        }
        let before = all.len();
        let mut matched = false;
        for entry in source.matching(&req.tags) {
            let (key, min_time, max_time) = source.entry(entry);
            if max_time < req.min_time || min_time > req.max_time {
                continue;
            }
            matched = true;
            if parts > 1 && key.stable_hash() % parts as u64 != part as u64 {
                continue;
            }
            all.push((
                key.clone(),
                Run {
                    source: i,
                    entry,
                    min_time,
                    max_time,
                },
            ));
        }
        if !matched {
            metrics.segments_pruned += is_segment * table_wide;
        }
        if all.len() > before {
            metrics.segments_read += is_segment;
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.source.cmp(&b.1.source)));
    let mut groups: Vec<(SeriesKey, Vec<Run>)> = Vec::new();
    for (key, run) in all {
        match groups.last_mut() {
            Some((k, runs)) if *k == key => runs.push(run),
            _ => groups.push((key, vec![run])),
        }
    }
    groups
}
