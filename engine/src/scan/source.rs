//! The sources a scan reads: segments and in-memory chunks, oldest first.

use std::sync::Arc;

use crate::head::Chunk;
use crate::schema::ColumnDef;
use crate::segment::Segment;
use crate::series::SeriesKey;

/// One source of rows. A later source's row replaces an earlier one's of the same
/// (series, time) in a metric table.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Segment(Arc<Segment>),
    Chunk(Arc<Chunk>),
}

impl Source {
    pub fn columns(&self) -> &[ColumnDef] {
        match self {
            Source::Segment(s) => &s.meta().columns,
            Source::Chunk(c) => &c.batch.columns,
        }
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c.name == name)
    }

    /// The time range of the whole source.
    pub fn time_range(&self) -> (i64, i64) {
        match self {
            Source::Segment(s) => (s.meta().min_time, s.meta().max_time),
            Source::Chunk(c) => {
                let runs = &c.index().runs;
                let min = runs.iter().map(|r| r.min_time).min().unwrap_or(i64::MAX);
                let max = runs.iter().map(|r| r.max_time).max().unwrap_or(i64::MIN);
                (min, max)
            }
        }
    }

    /// The series entries of the source (a segment's series, a chunk's runs) whose keys
    /// meet every tag predicate (tag, any of values), in key order; all of them without
    /// predicates.
    pub fn matching(&self, tags: &[(String, Vec<String>)]) -> Vec<usize> {
        // Without predicates the tag index is not built.
        if tags.is_empty() {
            return (0..self.entry_count()).collect();
        }
        let candidates = match self {
            Source::Segment(s) => s.tag_index().candidates(tags),
            Source::Chunk(c) => c.tag_index().candidates(tags),
        };
        match candidates {
            // The index narrows nothing only without predicates (returned above).
            None => (0..self.entry_count()).collect(),
            Some(entries) => entries
                .into_iter()
                .map(|e| e as usize)
                .filter(|&e| matches(self.entry(e).0, tags))
                .collect(),
        }
    }

    /// How many series entries the source has (a segment's series, a chunk's runs: one
    /// per series).
    pub fn entry_count(&self) -> usize {
        match self {
            Source::Segment(s) => s.meta().series.len(),
            Source::Chunk(c) => c.index().runs.len(),
        }
    }

    /// Entry `entry`'s series key, and its min and max time in the source.
    pub fn entry(&self, entry: usize) -> (&SeriesKey, i64, i64) {
        match self {
            Source::Segment(s) => {
                let m = &s.meta().series[entry];
                (&m.key, m.min_time, m.max_time)
            }
            Source::Chunk(c) => {
                let r = &c.index().runs[entry];
                (&c.series[r.series as usize], r.min_time, r.max_time)
            }
        }
    }
}

/// Whether a series key meets every tag predicate (tag, any of values).
pub(crate) fn matches(key: &SeriesKey, tags: &[(String, Vec<String>)]) -> bool {
    tags.iter()
        .all(|(tag, values)| key.get(tag).is_some_and(|v| values.iter().any(|x| x == v)))
}
