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

    /// Every series of the source: (key, entry index, min time, max time), in key order.
    pub fn series(&self) -> Vec<(SeriesKey, usize, i64, i64)> {
        match self {
            Source::Segment(s) => s
                .meta()
                .series
                .iter()
                .enumerate()
                .map(|(i, m)| (m.key.clone(), i, m.min_time, m.max_time))
                .collect(),
            Source::Chunk(c) => c
                .index()
                .runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        c.series[r.series as usize].clone(),
                        i,
                        r.min_time,
                        r.max_time,
                    )
                })
                .collect(),
        }
    }
}
