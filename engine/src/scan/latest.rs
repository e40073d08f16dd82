//! The latest row of each series, found from the end of each source without scanning
//! history.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, RecordBatch};

use super::{Piece, Run, Scan, Source, assemble, series_blocks};
use crate::error::Result;

impl Scan {
    /// The latest row within the time range of every matching series, one row per series
    /// in key order. Of rows with the same latest time, the newest write's is returned
    /// (for an event table, the last one written).
    pub(crate) fn latest(mut self) -> Result<RecordBatch> {
        let groups = std::mem::take(&mut self.groups);
        let mut pieces = Vec::with_capacity(groups.len());
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
            if let Some((_, _, arrays)) = best {
                pieces.push(Piece {
                    key,
                    len: 1,
                    arrays,
                });
            }
        }
        self.metrics.rows_returned += pieces.len();
        assemble::assemble(&self.schema, &self.out, &self.needed_index, &pieces)
    }

    /// The last row of a run within the time range, with its time.
    fn last_row(&mut self, run: &Run) -> Result<Option<(i64, Vec<ArrayRef>)>> {
        let window = (self.min_time, self.max_time);
        let arrays = match &self.sources[run.source] {
            Source::Chunk(_) => Some(self.chunk_run(run, window)?),
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
