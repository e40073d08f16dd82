//! The head: rows of a table kept in memory, readable at once, until flushed into a
//! segment.
//!
//! A head is a list of immutable [`Chunk`]s in WAL sequence order. Snapshots clone the
//! list (cheap: `Arc`s), so writers never wait for readers. Runs of small chunks (from
//! row-by-row writes) are coalesced so that scans do not meet thousands of tiny chunks.

pub(crate) mod chunk;

use std::sync::Arc;

pub(crate) use chunk::Chunk;

/// Chunks smaller than this many rows are coalesced when enough of them gather.
const SMALL_CHUNK_ROWS: usize = 4096;
/// How many small chunks may trail the head before they are coalesced.
const MAX_SMALL_CHUNKS: usize = 64;

/// The unflushed rows of one table.
#[derive(Debug, Default, Clone)]
pub(crate) struct Head {
    /// Chunks in sequence order.
    pub chunks: Vec<Arc<Chunk>>,
    /// Memory held by the chunks' arrays, in bytes.
    pub bytes: usize,
    /// Rows held.
    pub rows: usize,
    /// Clock time (ns) when the oldest chunk arrived.
    pub since: Option<i64>,
}

impl Head {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Lowest sequence number held, if any.
    pub fn min_seq(&self) -> Option<u64> {
        self.chunks.first().map(|c| c.min_seq)
    }

    /// Appends a chunk. Trailing small chunks whose writes are all visible (`<= visible`)
    /// are coalesced once there are many of them.
    pub fn push(&mut self, chunk: Chunk, now: i64, visible: u64) {
        self.bytes += chunk.batch.memory_size();
        self.rows += chunk.rows();
        self.since.get_or_insert(now);
        self.chunks.push(Arc::new(chunk));

        let small = self
            .chunks
            .iter()
            .rev()
            .take_while(|c| c.rows() < SMALL_CHUNK_ROWS)
            .filter(|c| c.max_seq <= visible)
            .count();
        if small >= MAX_SMALL_CHUNKS {
            let tail_start = self.chunks.len()
                - self
                    .chunks
                    .iter()
                    .rev()
                    .take_while(|c| c.rows() < SMALL_CHUNK_ROWS)
                    .count();
            // Only a prefix of the small tail that is visible may be joined.
            let visible_end = tail_start
                + self.chunks[tail_start..]
                    .iter()
                    .take_while(|c| c.max_seq <= visible)
                    .count();
            if visible_end - tail_start >= 2
                && let Ok(joined) = Chunk::coalesce(&self.chunks[tail_start..visible_end])
            {
                let old: usize = self.chunks[tail_start..visible_end]
                    .iter()
                    .map(|c| c.batch.memory_size())
                    .sum();
                self.bytes = self.bytes - old + joined.batch.memory_size();
                self.chunks
                    .splice(tail_start..visible_end, [Arc::new(joined)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Point;
    use crate::batch::point::batches_from_points;

    #[test]
    fn many_small_visible_chunks_are_coalesced() {
        let mut head = Head::default();
        for seq in 1..=200u64 {
            let b = batches_from_points(
                &[Point::metric("m").field("v", seq as f64).time(seq as i64)],
                0,
            )
            .unwrap()
            .remove(0);
            head.push(Chunk::new(seq, b), 0, 150);
        }
        assert_eq!(head.rows, 200);
        assert!(head.chunks.len() < 80, "{} chunks", head.chunks.len());
        // Sequence order and coverage are kept, and nothing invisible was joined.
        let mut expect = 1;
        for c in &head.chunks {
            assert_eq!(c.min_seq, expect);
            assert!(c.min_seq == c.max_seq || c.max_seq <= 150);
            expect = c.max_seq + 1;
        }
        assert_eq!(expect, 201);
    }
}
