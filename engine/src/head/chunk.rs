//! A chunk: the rows of one write call (or of several coalesced ones) for one table,
//! immutable once made, with the series of each row.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

use ahash::AHashMap;
use arrow_array::{Array, StringArray};

use crate::batch::TableBatch;
use crate::schema::ColumnType;
use crate::series::{SeriesKey, TagIndex};

/// Rows of one table kept in memory until flushed.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Lowest WAL sequence number among the writes held.
    pub min_seq: u64,
    /// Highest WAL sequence number among the writes held; a snapshot sees the chunk when
    /// this is durable-and-visible.
    pub max_seq: u64,
    /// The rows, in arrival order.
    pub batch: TableBatch,
    /// The distinct series, indexed by local series id.
    pub series: Vec<SeriesKey>,
    /// The local series id of each row.
    pub row_series: Vec<u32>,
    index: OnceLock<ChunkIndex>,
    /// Which runs of the index hold each tag value, built when a scan first filters on tags.
    tag_index: OnceLock<TagIndex>,
}

/// Rows of a chunk ordered by series key, then time, then arrival.
#[derive(Debug)]
pub(crate) struct ChunkIndex {
    /// Row numbers in (series key, time, arrival) order.
    pub order: Vec<u32>,
    /// One run per series, in key order.
    pub runs: Vec<ChunkRun>,
}

/// The rows of one series in a chunk: `order[start..end]`.
#[derive(Debug, Clone)]
pub(crate) struct ChunkRun {
    pub series: u32,
    pub start: usize,
    pub end: usize,
    pub min_time: i64,
    pub max_time: i64,
}

impl Chunk {
    /// Makes a chunk of one write's rows, computing the series of each row.
    pub fn new(seq: u64, batch: TableBatch) -> Chunk {
        let (series, row_series) = series_of(&batch);
        Chunk {
            min_seq: seq,
            max_seq: seq,
            batch,
            series,
            row_series,
            index: OnceLock::new(),
            tag_index: OnceLock::new(),
        }
    }

    /// Joins chunks (in sequence order) into one, their columns united.
    pub fn coalesce(chunks: &[Arc<Chunk>]) -> crate::Result<Chunk> {
        let batches: Vec<&TableBatch> = chunks.iter().map(|c| &c.batch).collect();
        let batch = concat_batches(&batches)?;
        let (series, row_series) = series_of(&batch);
        Ok(Chunk {
            min_seq: chunks.first().map_or(0, |c| c.min_seq),
            max_seq: chunks.last().map_or(0, |c| c.max_seq),
            batch,
            series,
            row_series,
            index: OnceLock::new(),
            tag_index: OnceLock::new(),
        })
    }

    pub fn rows(&self) -> usize {
        self.batch.rows()
    }

    /// The rows sorted by series and time, computed on first use.
    pub fn index(&self) -> &ChunkIndex {
        self.index.get_or_init(|| build_index(self))
    }

    /// Which runs of [`Chunk::index`] hold each tag value (entries are indices into its
    /// `runs`), built on first use.
    pub fn tag_index(&self) -> &TagIndex {
        self.tag_index.get_or_init(|| {
            let runs = &self.index().runs;
            TagIndex::new(runs.iter().map(|r| &self.series[r.series as usize]))
        })
    }
}

fn build_index(chunk: &Chunk) -> ChunkIndex {
    let times = chunk.batch.time().values();
    // Rank local series ids by key.
    let mut by_key: Vec<u32> = (0..chunk.series.len() as u32).collect();
    by_key.sort_unstable_by(|a, b| chunk.series[*a as usize].cmp(&chunk.series[*b as usize]));
    let mut rank = vec![0u32; chunk.series.len()];
    for (r, &id) in by_key.iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    // Counting sort by rank keeps arrival order within a series.
    let mut counts = vec![0usize; chunk.series.len() + 1];
    for &s in &chunk.row_series {
        counts[rank[s as usize] as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let starts = counts.clone();
    let mut order = vec![0u32; chunk.row_series.len()];
    for (row, &s) in chunk.row_series.iter().enumerate() {
        let slot = &mut counts[rank[s as usize] as usize];
        order[*slot] = row as u32;
        *slot += 1;
    }
    let mut runs = Vec::with_capacity(by_key.len());
    for (r, &id) in by_key.iter().enumerate() {
        let (start, end) = (starts[r], starts[r + 1]);
        let rows = &mut order[start..end];
        // Stable: equal times keep arrival order, so the last of equal times is the newest.
        rows.sort_by_key(|&row| times[row as usize]);
        let min_time = times[rows[0] as usize];
        let max_time = times[rows[rows.len() - 1] as usize];
        runs.push(ChunkRun {
            series: id,
            start,
            end,
            min_time,
            max_time,
        });
    }
    ChunkIndex { order, runs }
}

/// The distinct series of a batch and each row's series id.
fn series_of(batch: &TableBatch) -> (Vec<SeriesKey>, Vec<u32>) {
    let tags: Vec<(&str, &StringArray)> = batch
        .columns
        .iter()
        .zip(&batch.arrays)
        .filter(|(c, _)| c.ty == ColumnType::Tag)
        .map(|(c, a)| {
            (
                c.name.as_str(),
                a.as_any().downcast_ref().expect("tags are Utf8"),
            )
        })
        .collect();
    let rows = batch.rows();
    if rows == 0 {
        // No rows, no series: every series listed must have rows (`build_index`).
        return (Vec::new(), Vec::new());
    }
    if tags.is_empty() {
        return (vec![SeriesKey::default()], vec![0; rows]);
    }
    let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let same = |a: usize, b: usize| {
        tags.iter().all(|(_, col)| {
            col.is_valid(a) == col.is_valid(b) && (col.is_null(a) || col.value(a) == col.value(b))
        })
    };
    // hash -> first local id with that hash; `next` chains ids whose hashes collide.
    let mut first: AHashMap<u64, u32> = AHashMap::new();
    let mut next: Vec<Option<u32>> = Vec::new();
    let mut representative: Vec<usize> = Vec::new();
    let mut row_series = Vec::with_capacity(rows);
    let mut last: Option<(u64, u32)> = None;
    for row in 0..rows {
        let mut h = state.build_hasher();
        for (_, col) in &tags {
            if col.is_valid(row) {
                h.write(col.value(row).as_bytes());
                h.write_u8(0xff);
            } else {
                h.write_u8(0xfe);
            }
        }
        let hash = h.finish();
        if let Some((lh, id)) = last
            && lh == hash
            && same(row, representative[id as usize])
        {
            row_series.push(id);
            continue;
        }
        let mut found = None;
        let mut cursor = first.get(&hash).copied();
        while let Some(id) = cursor {
            if same(row, representative[id as usize]) {
                found = Some(id);
                break;
            }
            cursor = next[id as usize];
        }
        let id = found.unwrap_or_else(|| {
            let id = representative.len() as u32;
            representative.push(row);
            next.push(first.insert(hash, id));
            id
        });
        last = Some((hash, id));
        row_series.push(id);
    }
    // Every name, then each new series' values (its tags that are set), interned at once.
    let set = |row: usize| {
        tags.iter()
            .enumerate()
            .filter(move |(_, (_, col))| col.is_valid(row))
    };
    let names = tags.iter().map(|(n, _)| *n);
    let values = representative
        .iter()
        .flat_map(|&row| set(row).map(move |(_, (_, col))| col.value(row)));
    let interned = crate::series::intern_all(names.chain(values));
    let (names, mut values) = interned.split_at(tags.len());
    let keys = representative
        .iter()
        .map(|&row| {
            let pairs: Vec<_> = set(row)
                .zip(values)
                .map(|((t, _), value)| (names[t].clone(), value.clone()))
                .collect();
            values = &values[pairs.len()..];
            SeriesKey::new(pairs)
        })
        .collect();
    (keys, row_series)
}

/// Concatenates batches of one table whose columns may differ, filling absent columns
/// with nulls. Columns are ordered by first appearance.
pub(crate) fn concat_batches(batches: &[&TableBatch]) -> crate::Result<TableBatch> {
    let first = batches.first().expect("at least one batch");
    let mut columns = first.columns.clone();
    for b in &batches[1..] {
        for c in &b.columns {
            if !columns.iter().any(|x| x.name == c.name) {
                columns.push(c.clone());
            }
        }
    }
    let mut arrays = Vec::with_capacity(columns.len());
    for col in &columns {
        let parts: Vec<arrow_array::ArrayRef> = batches
            .iter()
            .map(
                |b| match b.columns.iter().position(|c| c.name == col.name) {
                    Some(i) => b.arrays[i].clone(),
                    None => crate::batch::null_array(col.ty, b.rows()),
                },
            )
            .collect();
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        arrays.push(arrow_select::concat::concat(&refs)?);
    }
    TableBatch::try_new(first.table.clone(), first.kind, columns, arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Point;
    use crate::batch::point::batches_from_points;

    fn chunk(points: &[Point]) -> Chunk {
        Chunk::new(1, batches_from_points(points, 0).unwrap().remove(0))
    }

    #[test]
    fn rows_are_grouped_by_series_and_sorted_by_time() {
        let c = chunk(&[
            Point::metric("m").tag("h", "b").field("v", 1.0).time(30),
            Point::metric("m").tag("h", "a").field("v", 2.0).time(20),
            Point::metric("m").tag("h", "b").field("v", 3.0).time(10),
            Point::metric("m").field("v", 4.0).time(5),
            Point::metric("m").tag("h", "a").field("v", 5.0).time(20),
        ]);
        assert_eq!(c.series.len(), 3);
        let idx = c.index();
        // Key order: {} < {h=a} < {h=b}.
        let keys: Vec<_> = idx
            .runs
            .iter()
            .map(|r| format!("{:?}", c.series[r.series as usize]))
            .collect();
        assert_eq!(keys, ["{}", "{h=a}", "{h=b}"]);
        assert_eq!(idx.order, vec![3, 1, 4, 2, 0]);
        assert_eq!((idx.runs[2].min_time, idx.runs[2].max_time), (10, 30));
    }

    #[test]
    fn null_tags_and_missing_tags_are_the_same_series() {
        let b1 = batches_from_points(&[Point::metric("m").tag("x", "1").field("v", 1.0)], 0)
            .unwrap()
            .remove(0);
        let b2 = batches_from_points(&[Point::metric("m").tag("y", "2").field("v", 1.0)], 0)
            .unwrap()
            .remove(0);
        let b3 = batches_from_points(&[Point::metric("m").tag("x", "1").field("v", 1.0)], 0)
            .unwrap()
            .remove(0);
        let c = Chunk::coalesce(&[
            Arc::new(Chunk::new(1, b1)),
            Arc::new(Chunk::new(2, b2)),
            Arc::new(Chunk::new(3, b3)),
        ])
        .unwrap();
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.row_series, vec![0, 1, 0]);
        assert_eq!((c.min_seq, c.max_seq), (1, 3));
    }
}
