//! Snapshots: a consistent view of a database's tables for reading.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::error::{Error, Result};
use crate::lifecycle::Hide;
use crate::scan::{Scan, ScanMetrics, ScanRequest, Source};
use crate::schema::TableSchema;
use crate::segment::Segment;

/// One table as a snapshot sees it.
#[derive(Debug, Clone)]
pub(crate) struct TableView {
    pub schema: Arc<TableSchema>,
    /// Segments oldest first, then in-memory chunks oldest first.
    pub sources: Vec<Source>,
    /// The rows deleted or expired, which scans leave out.
    pub hide: Option<Arc<Hide>>,
}

/// A read-only view of the database at one moment: later writes and flushes do not change
/// what it returns. Cheap to take; holds segments and in-memory rows alive while it lives.
/// The default is a view of no tables, which holds nothing.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) tables: BTreeMap<String, TableView>,
}

/// What a table holds, for inspection and planning: its segments (with their series
/// index and per-block statistics) and its rows in memory.
#[derive(Debug, Clone)]
pub struct TableStats {
    /// The table's schema.
    pub schema: Arc<TableSchema>,
    /// Segments, oldest first. [`Segment::meta`] has the series index and block statistics.
    pub segments: Vec<Arc<Segment>>,
    /// Rows in memory, not yet in a segment (replaced rows of a metric table included).
    pub memory_rows: usize,
    /// In-memory chunks.
    pub memory_chunks: usize,
    /// Earliest and latest time of any row (in segments or in memory); `None` when the
    /// table has no rows.
    pub time_range: Option<(i64, i64)>,
}

impl TableStats {
    /// Rows in segments.
    pub fn segment_rows(&self) -> u64 {
        self.segments.iter().map(|s| s.meta().rows).sum()
    }

    /// Bytes of segment files.
    pub fn segment_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.file_len()).sum()
    }
}

impl Snapshot {
    /// The names of the tables, sorted.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// A table's schema.
    pub fn schema(&self, table: &str) -> Option<&TableSchema> {
        self.tables.get(table).map(|t| t.schema.as_ref())
    }

    fn view(&self, table: &str) -> Result<&TableView> {
        self.tables
            .get(table)
            .ok_or_else(|| Error::NoSuchTable(table.to_string()))
    }

    /// Scans a table: the rows of matching series within the time range, series in key
    /// order, each series' rows in time order, in batches of at most `batch_rows`.
    pub fn scan(&self, req: &ScanRequest) -> Result<Scan> {
        let view = self.view(&req.table)?;
        Scan::new(&view.schema, view.sources.clone(), req, view.hide.clone())
    }

    /// About how many rows a scan of `req` would read, from the series index alone (the
    /// rows of matching series, scaled by how much of their time range the request
    /// covers): for choosing how to run a query. `None` when the estimate reaches `cap`:
    /// the walk stops after the source where it does.
    pub fn estimate_rows(&self, req: &ScanRequest, cap: u64) -> Result<Option<u64>> {
        let view = self.view(&req.table)?;
        Ok(crate::scan::estimate_rows(&view.sources, req, cap))
    }

    /// About how many rows a scan of `req` decodes: of every block that holds some rows
    /// in range, its rows from the first through the range's last where the series ends
    /// the block, and all of them otherwise (see [`Snapshot::estimate_rows`] for what
    /// the scan returns). `None` once the count reaches `cap`.
    pub fn estimate_decoded_rows(&self, req: &ScanRequest, cap: u64) -> Result<Option<u64>> {
        let view = self.view(&req.table)?;
        Ok(crate::scan::estimate_decoded_rows(&view.sources, req, cap))
    }

    /// About how many rows a scan of `req` reads, without walking the series index:
    /// each source's rows times the share of its time range that the request covers,
    /// whatever its tags ask. Rough: rows bunched in part of a source's time range are
    /// counted as if spread over it.
    pub fn estimate_rows_coarse(&self, req: &ScanRequest) -> Result<u64> {
        let view = self.view(&req.table)?;
        Ok(crate::scan::estimate_rows_coarse(&view.sources, req))
    }

    /// About how many series a scan of `req` reads: the matching series of the source
    /// (segment or chunk in memory) that holds the most of them. An underestimate when
    /// series come and go from one source to the next.
    pub fn estimate_series(&self, req: &ScanRequest) -> Result<u64> {
        let view = self.view(&req.table)?;
        Ok(crate::scan::estimate_series(&view.sources, req))
    }

    /// The latest row (within the request's time range) of every matching series, one
    /// row per series in key order, read from the end of each source without scanning
    /// history.
    pub fn latest(&self, req: &ScanRequest) -> Result<RecordBatch> {
        Ok(self.latest_by(req, None)?.0)
    }

    /// Like [`Snapshot::latest`]; with `group_by` tags, the latest row of each group of
    /// series that share those tags' values (of equal times, the first series' in key
    /// order). Also returns what the scan read.
    pub fn latest_by(
        &self,
        req: &ScanRequest,
        group_by: Option<&[String]>,
    ) -> Result<(RecordBatch, ScanMetrics)> {
        let view = self.view(&req.table)?;
        Scan::new(&view.schema, view.sources.clone(), req, view.hide.clone())?.latest(group_by)
    }

    /// What a table holds.
    pub fn stats(&self, table: &str) -> Result<TableStats> {
        let view = self.view(table)?;
        let mut stats = TableStats {
            schema: view.schema.clone(),
            segments: Vec::new(),
            memory_rows: 0,
            memory_chunks: 0,
            time_range: None,
        };
        for s in &view.sources {
            let (lo, hi) = s.time_range();
            if lo <= hi {
                stats.time_range = Some(match stats.time_range {
                    None => (lo, hi),
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                });
            }
            match s {
                Source::Segment(seg) => stats.segments.push(seg.clone()),
                Source::Chunk(c) => {
                    stats.memory_rows += c.rows();
                    stats.memory_chunks += 1;
                }
            }
        }
        Ok(stats)
    }
}
