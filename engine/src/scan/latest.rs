//! The latest row of each series, found from the end of each source without scanning
//! history.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};

use super::{Piece, Run, Scan, ScanMetrics, Source, assemble, series_blocks};
use crate::error::Result;

impl Scan {
    /// The latest row within the time range of every matching series, one row per series
    /// in key order. Of rows with the same latest time, the newest write's is returned
    /// (for an event table, the last one written).
    ///
    /// With `group_by` tags, only the latest row of each group of series with the same
    /// values of those tags is returned (of equal times, the first series' in key order),
    /// groups in the key order of their series.
    pub(crate) fn latest(
        mut self,
        group_by: Option<&[String]>,
    ) -> Result<(RecordBatch, ScanMetrics)> {
        let groups = std::mem::take(&mut self.groups);
        // A segment's cache of last rows is filled by a scan that reads at least half of its
        // series; a narrower one (say of one host) reads its series' last block instead.
        let mut runs = vec![0usize; self.sources.len()];
        for (_, rs) in &groups {
            for r in rs {
                runs[r.source] += 1;
            }
        }
        self.fill_cache = self
            .sources
            .iter()
            .zip(&runs)
            .map(|(source, &n)| match source {
                Source::Segment(seg) => seg.has_last_values() || n * 2 >= seg.meta().series.len(),
                Source::Chunk(_) => false,
            })
            .collect();
        let mut pieces: Vec<Piece> = Vec::with_capacity(groups.len());
        // Per group of `group_by` values: its piece's index and the piece's time.
        let mut by_group: HashMap<Vec<Option<String>>, (usize, i64)> = HashMap::new();
        for (key, mut runs) in groups {
            runs.sort_by_key(|r| std::cmp::Reverse((r.max_time, r.source)));
            let mut best: Option<(i64, usize, Vec<ArrayRef>)> = None;
            for run in runs {
                if let Some((t, s, _)) = &best
                    && (run.max_time, run.source) < (*t, *s)
                {
                    // Every later run ends earlier still (sorted), so none can win.
                    break;
                }
                if let Some((t, row)) = self.last_row(&run)?
                    && best
                        .as_ref()
                        .is_none_or(|(bt, bs, _)| (t, run.source) > (*bt, *bs))
                {
                    best = Some((t, run.source, row));
                }
            }
            let Some((time, _, arrays)) = best else {
                continue;
            };
            let piece = Piece {
                key,
                len: 1,
                arrays,
            };
            let Some(tags) = group_by else {
                pieces.push(piece);
                continue;
            };
            let group = tags
                .iter()
                .map(|t| piece.key.get(t).map(str::to_string))
                .collect();
            match by_group.get_mut(&group) {
                None => {
                    by_group.insert(group, (pieces.len(), time));
                    pieces.push(piece);
                }
                Some((i, t)) => {
                    // Strictly later only: of equal times the first series in key order
                    // stays, whatever has been flushed.
                    if time > *t {
                        *t = time;
                        pieces[*i] = piece;
                    }
                }
            }
        }
        self.metrics.rows_returned += pieces.len();
        let batch = assemble::assemble(&self.schema, &self.out, &self.needed_index, &pieces)?;
        Ok((batch, self.metrics))
    }

    /// The last row of a run within the time range, with its time.
    fn last_row(&mut self, run: &Run) -> Result<Option<(i64, Vec<ArrayRef>)>> {
        let window = (self.min_time, self.max_time);
        let hidden = self.hidden(run).is_some_and(|h| h.may_hide(run.max_time));
        if let Source::Segment(seg) = &self.sources[run.source]
            && self.fill_cache[run.source]
            && run.max_time >= window.0
            && run.max_time <= window.1
            && !hidden
        {
            // The series' last row in the segment is inside the window: its values come
            // from the segment's cache of last rows, decoded once.
            let seg = Arc::clone(seg);
            let mut arrays = Vec::with_capacity(self.needed.len());
            arrays.push(Arc::new(Int64Array::from(vec![run.max_time])) as ArrayRef);
            for k in 1..self.needed.len() {
                arrays.push(match self.colmap[run.source][k] {
                    Some(col) => {
                        let last = seg.last_values(col)?;
                        self.metrics.blocks_read += last.blocks_read;
                        self.metrics.values_decoded += last.values_decoded;
                        last.values.slice(run.entry, 1)
                    }
                    None => crate::batch::null_array(self.needed[k].ty, 1),
                });
            }
            return Ok(Some((run.max_time, arrays)));
        }
        let arrays = match &self.sources[run.source] {
            Source::Chunk(_) => Some(self.chunk_run(run, window, false)?),
            Source::Segment(seg) => {
                let blocks = series_blocks(seg, run.entry);
                let mut found = None;
                // From the last block back, to the first holding a row in the range.
                for (block, a, b) in blocks.into_iter().rev() {
                    if let Some((_, arrays)) = self.segment_rows(run, block, a, b, true, window)?
                        && !arrays[0].is_empty()
                    {
                        found = Some(arrays);
                        break;
                    }
                }
                found
            }
        };
        Ok(arrays.filter(|a| !a[0].is_empty()).map(|arrays| {
            let n = arrays[0].len();
            let time = arrays[0].as_primitive::<Int64Type>().value(n - 1);
            (time, arrays.iter().map(|a| a.slice(n - 1, 1)).collect())
        }))
    }
}
