//! Compaction: merging a table's small, adjacent segments into larger ones.
//!
//! # Policy
//!
//! Segments are grouped by **time window** ([`Config::compaction_window`], default one
//! day): a segment belongs to the window of its earliest time. Only segments adjacent in
//! the table's list (which is in sequence order) and of one window are merged, so that:
//!
//! - the merged segment's sequence range covers exactly its inputs' and no other
//!   segment's: a row of a (series, time) in a later segment still replaces one in an
//!   earlier segment (metric tables), whatever was merged;
//! - a compacted segment covers about one window, so that whole segments expire together.
//!
//! The newest window is still being written. There, as soon as [`fanout`] adjacent
//! segments are flush outputs (level 0), they are merged into one segment of level 1;
//! level-1 segments wait for the window to close. Once a later window has begun, an older
//! window's adjacent segments are merged into one. Without a memory budget, a row is so
//! written three times at most: by its flush, into a level-1 segment, and into its
//! window's final segment. An open window holds at most `fanout - 1` flush outputs
//! besides its level-1 segments, one for each `fanout` flushes (at the defaults, one per
//! 8 flushes of 64 MiB or 10 minutes).
//!
//! Under a memory budget, a merge takes only the first of its inputs (at least two) whose
//! buffers fit in a quarter of the budget, and the rest are merged with its output later:
//! a tight budget makes a closed window's merge a series of steps, each rewriting the
//! previous step's output.
//!
//! A segment holding rows a delete removed is rewritten without them, on its own if no
//! merge takes it first; so is one holding rows expired under every retention rule, on
//! [`Engine::compact`] only (the background compactor waits until all its rows have
//! expired and drops it whole). Rows expired under a shorter rule only (say, debug logs)
//! stay hidden in their segment until a merge takes it.
//!
//! Late rows (written after their window was compacted) land in a segment of their own,
//! which is adjacent to other windows' segments and stays apart until those are merged
//! with it.
//!
//! [`Engine::compact`](crate::Engine::compact) merges every window's adjacent segments
//! into one at once, whatever the policy would wait for.
//!
//! # Pacing
//!
//! While writes are arriving (one within the last second), a background merge works at
//! most [`compaction_share`] of the time (default: all of it) and sleeps the rest, so that
//! ingest can keep more of its rate on a small machine; idle, and on [`Engine::compact`],
//! it runs flat out.
//!
//! # Merging
//!
//! The inputs are read through the engine's scan, which merges each series' rows from
//! every input in time order, keeping the last write of a (series, time) for a metric
//! table and every row for an event table; each series' rows go into the segment writer
//! as they come. Memory is bounded by one decoded block per input and column and one
//! block of output per column: never a whole segment or column.
//!
//! [`Config::compaction_window`]: crate::Config::compaction_window
//! [`fanout`]: crate::Config::compaction_fanout
//! [`compaction_share`]: crate::Config::compaction_share

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::encoding::Options;
use crate::error::{Error, Result};
use crate::lifecycle::Hide;
use crate::manifest::SegmentEntry;
use crate::scan::{Scan, ScanRequest, Source};
use crate::schema::{ColumnDef, ColumnType, TableKind, TableSchema};
use crate::segment::Segment;
use crate::segment::writer::{BlockCut, Writer, WriterSpec};

/// The compaction settings of [`Config`](crate::Config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Policy {
    pub background: bool,
    pub window: Duration,
    pub fanout: usize,
    /// While writes arrive, background merges work at most this share of the time.
    pub share: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            background: true,
            window: Duration::from_secs(24 * 3600),
            fanout: 8,
            share: 1.0,
        }
    }
}

/// Paces a merge: while `busy` says writes are arriving, it sleeps between steps so that
/// the merge works at most `share` of the time, leaving the cores to ingest.
pub(crate) struct Pacer<'a> {
    share: f64,
    busy: &'a dyn Fn() -> bool,
    since: std::time::Instant,
}

impl std::fmt::Debug for Pacer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").field("share", &self.share).finish()
    }
}

impl<'a> Pacer<'a> {
    /// Work share `share` (1 or more: never sleeps) while `busy()`.
    pub fn new(share: f64, busy: &'a dyn Fn() -> bool) -> Self {
        Pacer {
            share,
            busy,
            since: std::time::Instant::now(),
        }
    }

    /// After a step: sleeps once 20 ms of work have gathered, if writes are arriving.
    fn tick(&mut self) {
        let worked = self.since.elapsed();
        if worked < Duration::from_millis(20) {
            return;
        }
        if self.share > 0.0 && self.share < 1.0 && (self.busy)() {
            std::thread::sleep(worked.mul_f64((1.0 - self.share) / self.share));
        }
        self.since = std::time::Instant::now();
    }
}

/// What compaction has done since the database was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Merges done.
    pub compactions: u64,
    /// Segments merged away (inputs).
    pub segments_merged: u64,
    /// Bytes of segment files written by flushes.
    pub bytes_flushed: u64,
    /// Bytes of segment files read as compaction input.
    pub bytes_read: u64,
    /// Bytes of segment files written by compaction.
    pub bytes_written: u64,
    /// Time spent merging.
    pub busy: Duration,
    /// Background merges put off because the memory budget had no room for their
    /// buffers (queries held it): they are tried again in a later round.
    pub deferred: u64,
    /// How long the background compactor has been merging without catching up with what
    /// the policy asks for: zero when nothing is due. Growing while ingest runs means
    /// compaction falls behind (segments pile up and queries slow down).
    pub behind: Duration,
}

impl CompactionStats {
    /// Bytes written to segment files (by flushes and compaction) per byte flushed: 1.0
    /// without compaction.
    pub fn write_amplification(&self) -> f64 {
        if self.bytes_flushed == 0 {
            return 1.0;
        }
        (self.bytes_flushed + self.bytes_written) as f64 / self.bytes_flushed as f64
    }
}

/// One live segment of a table, as the manifest lists it ([`Engine::segments`]).
///
/// [`Engine::segments`]: crate::Engine::segments
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its id: the file is `tables/<table>/<id as 20 digits>.seg`.
    pub id: u64,
    /// 0 for a flush's output; a merge's output is one above its inputs' highest.
    pub level: u8,
    /// Bytes of the file.
    pub bytes: u64,
    /// The lowest WAL sequence number whose rows it holds.
    pub min_seq: u64,
    /// The highest WAL sequence number whose rows it holds.
    pub max_seq: u64,
}

/// A merge the policy asks for: the positions of the inputs in the table's segment
/// list, and the level of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pick {
    pub inputs: Range<usize>,
    pub level: u8,
}

/// The window of a segment whose earliest time is `min_time`.
fn window_of(min_time: i64, window: Duration) -> i64 {
    let w = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX).max(1);
    min_time.div_euclid(w)
}

/// The next merge of a table whose segments (in list order) have these manifest entries
/// and earliest times; with `all`, every window's adjacent segments are merged whatever
/// their levels. A `dirty` segment (one holding deleted or expired rows) is rewritten on
/// its own when nothing else is due in its window.
pub(crate) fn pick(
    entries: &[SegmentEntry],
    min_times: &[i64],
    dirty: &[bool],
    policy: &Policy,
    all: bool,
) -> Option<Pick> {
    let windows: Vec<i64> = min_times
        .iter()
        .map(|&t| window_of(t, policy.window))
        .collect();
    let newest = *windows.iter().max()?;
    let mut start = 0;
    while start < entries.len() {
        let mut end = start + 1;
        while end < entries.len() && windows[end] == windows[start] {
            end += 1;
        }
        let run = start..end;
        let top = entries[run.clone()]
            .iter()
            .map(|e| e.level)
            .max()
            .unwrap_or(0);
        if run.len() >= 2 && (all || windows[start] < newest) {
            return Some(Pick {
                inputs: run,
                level: top.saturating_add(1),
            });
        }
        // The newest window: `fanout` adjacent flush outputs (level 0). Level-1 segments
        // wait for the window to close, so that no row is written more than three times
        // (flush, level 1, the window's final segment).
        let mut i = start;
        while i < end {
            let mut j = i + 1;
            while j < end && entries[j].level == entries[i].level {
                j += 1;
            }
            if entries[i].level == 0 && j - i >= policy.fanout {
                return Some(Pick {
                    inputs: i..i + policy.fanout,
                    level: entries[i].level.saturating_add(1),
                });
            }
            i = j;
        }
        // A segment alone in its window that holds rows readers no longer see.
        if let Some(i) = run.clone().find(|&i| dirty[i]) {
            return Some(Pick {
                inputs: i..i + 1,
                level: entries[i].level,
            });
        }
        start = end;
    }
    None
}

/// Blocks of a compacted metric table's segment cover this share of its window at most
/// (of a day: 12 hours), so that a query of part of the window decodes about that part.
/// Measured at 2 and 4 (`sextant-bench run`, scale 1000 x 1 day): 0.283 against 0.297
/// bytes per value, queries alike.
///
/// Measured again once a block was decoded only through a query's last row (scale 100,
/// Sextant alone, builds alternated, 3 rounds of `--runs 20`, medians). Against 2
/// spans, 4 (6-hour blocks) made double-groupby-all 18.0 to 15.9 ms, cpu-max-all-8 2.74
/// to 2.43 and single-groupby-5-1-1 0.13 to 0.10, but double-groupby-5 slower, 7.5-7.8 to
/// 8.3 in two sets of rounds (its window decodes the same rows from more blocks), and
/// took 0.297 bytes per value against 0.283; 8 spans (3-hour blocks, 0.324) were no
/// faster than 4 on the double-groupby queries. So 2 stays. Every block pays a fixed
/// cost (its entropy tables, its arrays). Resume points inside a block (segment format
/// 4: the decoder's state every thousand rows or more) spare a window the rows before
/// it, not that cost.
const METRIC_SPANS_PER_WINDOW: i64 = 2;

/// A metric series holds a block of its own within a span once it has this share of a
/// block's rows there (1,024 of 16,384).
const METRIC_MIN_ROWS_DIVISOR: u32 = 16;

/// Blocks of a compacted event table's segment cover this share of its window at most
/// (of a day: 6 hours), and a series holds a block of its own within a span once it
/// has a 64th of a block's rows there ([`EVENT_MIN_ROWS_DIVISOR`], 256 of 16,384).
///
/// Event series are sparse: the logs workload's 500 series hold a median of 1,812 events
/// a day. At the metric layout most of them got a day-long block of their own (906
/// rows in 12 hours is short of 1,024), too few rows for resume points, so a one-hour
/// window late in the day decoded the series' whole day. Measured on `sextant-bench
/// run --workload logs --events-per-second 20 --days 1 --runs 30 --no-parquet
/// --no-duckdb --no-tsink`, Sextant alone, layouts alternated for 8 rounds, medians,
/// over the metric layout: errors-per-service-per-minute 0.49, newest-warnings 0.62,
/// trace-rows 0.45, messages-containing 0.86, top-error-templates 0.88,
/// count-per-level-per-hour (a whole day, now in more blocks) 1.09 (1.01 in another 5
/// rounds); 11.04 bytes per value against 10.72. 3-hour spans with a 128th:
/// errors-per-service-per-minute 0.39, messages-containing 0.50, but
/// count-per-level-per-hour 1.12 and 11.48 bytes per value; 6-hour spans with a 32nd:
/// no better than a 64th, 10.91 bytes per value.
const EVENT_SPANS_PER_WINDOW: i64 = 4;

/// See [`EVENT_SPANS_PER_WINDOW`].
const EVENT_MIN_ROWS_DIVISOR: u32 = 64;

/// How a merge lays out its output's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub block_rows: u32,
    pub cut: BlockCut,
}

impl Layout {
    /// Blocks of at most `block_rows` rows, each within one span of the window (a
    /// half for a metric table, a quarter for an event table); a series with enough rows
    /// within a span (a 16th of `block_rows` for a metric table, a 64th for an event
    /// table) has blocks of its own there.
    pub fn of(policy: &Policy, block_rows: u32, kind: TableKind) -> Layout {
        let window = i64::try_from(policy.window.as_nanos()).unwrap_or(i64::MAX);
        let (spans, divisor) = match kind {
            TableKind::Metric => (METRIC_SPANS_PER_WINDOW, METRIC_MIN_ROWS_DIVISOR),
            TableKind::Event => (EVENT_SPANS_PER_WINDOW, EVENT_MIN_ROWS_DIVISOR),
        };
        Layout {
            block_rows,
            cut: BlockCut {
                span: (window / spans).max(1),
                min_rows: (block_rows / divisor).max(1),
            },
        }
    }
}

/// Bytes a value of a string column is counted at per byte of its encoded block: text
/// compresses about this well, so a decoded block takes about this many times its
/// encoded length.
const TEXT_EXPANSION: usize = 8;

/// Bytes a series key is counted at in a segment's index.
const SERIES_KEY_BYTES: usize = 64;

/// The memory a merge of `inputs` into blocks of `block_rows` rows holds at most, as the
/// memory budget counts it: one decoded block of every stored column of every input (the
/// scan's cursors), one block of output per column being gathered and then encoded
/// (counted twice), and the inputs' and output's series indexes. A value is counted at 8
/// bytes, a string column's block at [`TEXT_EXPANSION`] times its encoded length. An
/// estimate, on the high side; the merge reserves it before it starts.
pub(crate) fn merge_memory(inputs: &[Arc<Segment>], block_rows: u32) -> usize {
    let mut total = 0usize;
    // Bytes per row of each column, the most of any input's.
    let mut widest: std::collections::HashMap<&str, usize> = Default::default();
    for s in inputs {
        let meta = s.meta();
        let rows = (0..meta.block_count())
            .map(|b| {
                let (start, end) = meta.block_rows_range(b);
                end - start
            })
            .max()
            .unwrap_or(0);
        for (c, column) in meta.columns.iter().enumerate() {
            let block = match column.ty {
                ColumnType::Tag => 0,
                ColumnType::Str => {
                    let encoded = meta.blocks[c].iter().map(|b| b.len as usize).max();
                    rows * 8 + encoded.unwrap_or(0) * TEXT_EXPANSION
                }
                _ => rows * 8,
            };
            total = total.saturating_add(block);
            // The output's block of this column: at most `block_rows` of the widest rows.
            let per_row = block.checked_div(rows).unwrap_or(0);
            let w = widest.entry(column.name.as_str()).or_default();
            *w = (*w).max(per_row);
        }
        total = total.saturating_add(meta.series.len() * SERIES_KEY_BYTES * 2);
    }
    let output: usize = widest.values().sum::<usize>() * block_rows as usize * 2;
    total.saturating_add(output)
}

/// Merges `inputs` (adjacent segments of one table, oldest first) into new segment `id`
/// in `dir`, leaving out the rows `hide` hides, and opens it (`None` when no row is
/// left); stops with an error once `stop` is set.
#[allow(clippy::too_many_arguments)]
pub(crate) fn merge(
    dir: &Path,
    id: u64,
    schema: &TableSchema,
    inputs: &[Arc<Segment>],
    hide: Option<Arc<Hide>>,
    layout: Layout,
    codec: &Options,
    faults: Option<&Arc<dyn crate::wal::Faults>>,
    stop: &AtomicBool,
    pacer: &mut Pacer<'_>,
) -> Result<Option<Segment>> {
    // The columns of any input, in the table's order (time first).
    let columns: Vec<ColumnDef> = schema
        .columns
        .iter()
        .filter(|c| {
            inputs
                .iter()
                .any(|s| s.meta().columns.iter().any(|x| x.name == c.name))
        })
        .cloned()
        .collect();
    let seqs = (
        inputs.iter().map(|s| s.meta().min_seq).min().unwrap_or(0),
        inputs.iter().map(|s| s.meta().max_seq).max().unwrap_or(0),
    );
    let mut writer = Writer::create(
        dir,
        id,
        WriterSpec {
            table: &schema.name,
            kind: schema.kind,
            columns: &columns,
            block_rows: layout.block_rows,
            cut: Some(layout.cut),
            codec,
            seqs,
            faults,
        },
    )?;
    let sources = inputs
        .iter()
        .map(|s| Source::Segment(Arc::clone(s)))
        .collect();
    let request =
        ScanRequest::new(schema.name.clone()).columns(columns.iter().map(|c| c.name.clone()));
    let mut scan = Scan::new(schema, sources, &request, hide)?;
    let mut rows = 0;
    while let Some(piece) = scan.next_piece()? {
        // Closing does not wait for a long merge: the unfinished file is removed.
        if stop.load(Ordering::Relaxed) {
            return Err(Error::ReadOnly("closed"));
        }
        rows += piece.len();
        writer.push_series(&piece.key, &piece.arrays)?;
        pacer.tick();
    }
    if rows == 0 {
        // Every row was deleted or expired: no segment (the unfinished file goes).
        return Ok(None);
    }
    let (path, _) = writer.finish()?;
    Segment::open(&path).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    fn entries(levels: &[u8]) -> Vec<SegmentEntry> {
        levels
            .iter()
            .enumerate()
            .map(|(i, &level)| SegmentEntry {
                id: i as u64 + 1,
                file_len: 100,
                footer_crc: 0,
                min_seq: i as u64 * 10 + 1,
                max_seq: i as u64 * 10 + 10,
                level,
                deletes_applied: 0,
            })
            .collect()
    }

    fn policy(window_hours: u64, fanout: usize) -> Policy {
        Policy {
            background: true,
            window: Duration::from_secs(window_hours * 3600),
            fanout,
            share: 1.0,
        }
    }

    #[test]
    fn compaction_waits_for_fanout_segments_in_the_newest_window() {
        let p = policy(24, 4);
        let e = entries(&[0, 0, 0]);
        assert_eq!(pick(&e, &[0, HOUR, 2 * HOUR], &[false; 3], &p, false), None);
        let e = entries(&[0, 0, 0, 0]);
        let t = [0, HOUR, 2 * HOUR, 3 * HOUR];
        assert_eq!(
            pick(&e, &t, &vec![false; e.len()], &p, false),
            Some(Pick {
                inputs: 0..4,
                level: 1
            })
        );
        // A level-1 segment and three flushes: not yet.
        let e = entries(&[1, 0, 0, 0]);
        assert_eq!(pick(&e, &t, &vec![false; e.len()], &p, false), None);
        let e = entries(&[1, 0, 0, 0, 0]);
        let t = [0, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR];
        assert_eq!(
            pick(&e, &t, &vec![false; e.len()], &p, false),
            Some(Pick {
                inputs: 1..5,
                level: 1
            })
        );
        // Level-1 segments wait for the window to close, however many: no row is
        // written a third time before its window's final merge.
        let e = entries(&[1, 1, 1, 1, 0]);
        assert_eq!(pick(&e, &t, &vec![false; e.len()], &p, false), None);
    }

    #[test]
    fn compaction_merges_a_closed_window_whole_and_never_across_windows() {
        let p = policy(1, 8);
        // Two segments in hour 0, one in hour 1, two in hour 2.
        let e = entries(&[1, 0, 0, 0, 0]);
        let t = [0, HOUR / 2, HOUR, 2 * HOUR, 2 * HOUR + 1];
        assert_eq!(
            pick(&e, &t, &vec![false; e.len()], &p, false),
            Some(Pick {
                inputs: 0..2,
                level: 2
            })
        );
        // Hour 1 alone has nothing to merge; hour 2 is the newest and below the fanout.
        let e = entries(&[2, 0, 0, 0]);
        let t = [0, HOUR, 2 * HOUR, 2 * HOUR + 1];
        assert_eq!(pick(&e, &t, &vec![false; e.len()], &p, false), None);
        // Asked for all: the newest window too.
        assert_eq!(
            pick(&e, &t, &vec![false; e.len()], &p, true),
            Some(Pick {
                inputs: 2..4,
                level: 1
            })
        );
    }

    #[test]
    fn compaction_keeps_apart_windows_separated_by_a_late_segment() {
        let p = policy(1, 8);
        // Hour 0, hour 1, a late segment of hour 0, hour 1 again: no two adjacent share a
        // window, so nothing merges, even when asked for all.
        let e = entries(&[0, 0, 0, 0]);
        let t = [0, HOUR, 10, HOUR + 10];
        assert_eq!(pick(&e, &t, &vec![false; e.len()], &p, true), None);
    }

    #[test]
    fn compaction_rewrites_a_dirty_segment_alone_in_its_window() {
        let p = policy(1, 8);
        let e = entries(&[2, 2, 0]);
        let t = [0, HOUR, 2 * HOUR];
        assert_eq!(pick(&e, &t, &[false; 3], &p, false), None);
        assert_eq!(
            pick(&e, &t, &[false, true, false], &p, false),
            Some(Pick {
                inputs: 1..2,
                level: 2
            })
        );
    }

    #[test]
    fn write_amplification_counts_flushes_as_one() {
        let s = CompactionStats {
            bytes_flushed: 100,
            bytes_written: 150,
            ..CompactionStats::default()
        };
        assert_eq!(s.write_amplification(), 2.5);
        assert_eq!(CompactionStats::default().write_amplification(), 1.0);
    }
}
