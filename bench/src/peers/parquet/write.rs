//! The Parquet peer's data: a Parquet file of a generated workload, sorted by series then
//! time, written with bounded memory.

use std::collections::HashMap;
use std::path::Path;

use parquet::basic::ZstdLevel;

use crate::Result;
use crate::ingest::{RateSampler, progress};
use crate::output::parquet::ParquetSink;
use crate::workload::source::{RawBatch, WorkloadSpec};

/// Rows generated per batch while the file is written.
const BATCH_ROWS: usize = 65_536;

/// Rows converted to Arrow and written at once.
const WRITE_ROWS: usize = 65_536;

/// Rows held in memory while the Parquet file is written (about 90 bytes a cpu row, 170 a
/// log event, held twice while a pass is sorted): the series are taken in sort order, as
/// many per pass over the generator as fit in this budget.
pub const PASS_ROWS: u64 = 4_000_000;

/// What writing the Parquet file took.
#[derive(Debug, Clone)]
pub struct ParquetLoad {
    /// Rows written.
    pub rows: u64,
    /// Seconds of the whole write, generation, counting and sorting included.
    pub write_secs: f64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Row groups in the file.
    pub row_groups: usize,
    /// Passes over the generator (one to count the rows of each series, then one per group
    /// of series).
    pub passes: usize,
    /// Rows written per second over time, as [`RateSampler::samples`].
    pub samples: Vec<[f64; 2]>,
}

/// Writes the workload `spec` to a Parquet file at `path`: zstd (the parquet crate's
/// default level), at most `row_group_rows` rows per row group, sorted by the workload's
/// series columns then time, in its schema without Sextant's field metadata.
///
/// The generators emit rows in time order, so the file is written in passes that never
/// hold more than about [`PASS_ROWS`] rows: a first pass counts each series' rows; then the
/// series, in sort order, are cut into groups of at most that many rows, and each group
/// takes one pass over the generator that keeps its rows (in time order, as generated) and
/// writes them series by series.
pub fn write_parquet(
    spec: &WorkloadSpec,
    path: &Path,
    row_group_rows: usize,
    show_progress: bool,
) -> Result<ParquetLoad> {
    let mut sampler = RateSampler::new();
    let generator = spec.generator()?;
    let total = generator.remaining_rows();
    let tags = generator.tags();
    drop(generator);

    // Pass 0: rows per series; then each series' rank in sort order.
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for_each_batch(spec, |raw| {
        for i in 0..raw.len() {
            *counts.entry(raw.series(i)).or_default() += 1;
        }
        Ok(())
    })?;
    let mut series: Vec<u64> = counts.keys().copied().collect();
    series.sort_by(|&a, &b| tags.series_names(a).cmp(&tags.series_names(b)));
    let rank: HashMap<u64, u32> = series
        .iter()
        .enumerate()
        .map(|(r, &s)| (s, r as u32))
        .collect();
    let groups = group_ranks(series.iter().map(|s| counts[s]), PASS_ROWS);

    let mut sink = ParquetSink::create(path, &spec.schema(), row_group_rows, ZstdLevel::default())?;
    let bar = progress(show_progress, total);
    let mut rows = 0u64;
    for &(lo, hi) in &groups {
        // This group's rows, in generation (time) order, and their series' ranks.
        let mut kept = RawBatch::empty(spec);
        let mut ranks: Vec<u32> = Vec::new();
        let mut picked: Vec<u32> = Vec::new();
        for_each_batch(spec, |raw| {
            picked.clear();
            for i in 0..raw.len() {
                let r = rank[&raw.series(i)];
                if (lo..hi).contains(&r) {
                    picked.push(i as u32);
                    ranks.push(r);
                }
            }
            kept.extend_from(raw, &picked);
            Ok(())
        })?;
        // A stable sort by rank keeps each series' rows in time order.
        let mut order: Vec<u32> = (0..ranks.len() as u32).collect();
        order.sort_by_key(|&i| ranks[i as usize]);
        drop(ranks);
        for chunk in order.chunks(WRITE_ROWS) {
            let mut part = RawBatch::empty(spec);
            part.extend_from(&kept, chunk);
            sink.write(&tags.to_record_batch(&part)?)?;
            rows += part.len() as u64;
            bar.inc(part.len() as u64);
            sampler.observe(rows);
        }
    }
    bar.finish_and_clear();
    sampler.finish(rows);
    let written = sink.finish()?;
    Ok(ParquetLoad {
        rows,
        write_secs: sampler.elapsed(),
        bytes: written.bytes,
        row_groups: written.row_groups,
        passes: 1 + groups.len(),
        samples: sampler.samples,
    })
}

/// Runs `f` on every generated batch of `spec`.
fn for_each_batch(spec: &WorkloadSpec, mut f: impl FnMut(&RawBatch) -> Result<()>) -> Result<()> {
    let mut generator = spec.generator()?;
    let mut raw = RawBatch::empty(spec);
    while generator.fill(&mut raw, BATCH_ROWS) > 0 {
        f(&raw)?;
    }
    Ok(())
}

/// Cuts consecutive ranks with row counts `counts` into ranges `[lo, hi)` of at most
/// `budget` rows each (a single series of more rows gets a range of its own).
fn group_ranks(counts: impl IntoIterator<Item = u64>, budget: u64) -> Vec<(u32, u32)> {
    let mut groups = Vec::new();
    let (mut lo, mut rows) = (0u32, 0u64);
    let mut end = 0u32;
    for (r, n) in counts.into_iter().enumerate() {
        let r = r as u32;
        if r > lo && rows + n > budget {
            groups.push((lo, r));
            (lo, rows) = (r, 0);
        }
        rows += n;
        end = r + 1;
    }
    if end > lo {
        groups.push((lo, end));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_grouped_within_the_row_budget() {
        assert_eq!(group_ranks([3, 3, 3, 3], 6), vec![(0, 2), (2, 4)]);
        assert_eq!(group_ranks([10, 1, 1], 5), vec![(0, 1), (1, 3)]);
        assert_eq!(group_ranks([1, 10, 1], 5), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(group_ranks([], 5), Vec::<(u32, u32)>::new());
    }
}
