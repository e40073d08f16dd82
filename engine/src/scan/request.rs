//! What a scan asks for.

use crate::batch::FieldValue;

/// A scan of one table: which columns, which time range, which series.
///
/// ```
/// use sextant_engine::ScanRequest;
/// let req = ScanRequest::new("cpu")
///     .columns(["time", "hostname", "usage_user"])
///     .time_range(0, 3_600_000_000_000)
///     .tag_in("hostname", ["host_1", "host_7"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRequest {
    /// The table.
    pub table: String,
    /// The columns to return, in this order; `None` returns every column of the table.
    pub columns: Option<Vec<String>>,
    /// Earliest time returned, inclusive (ns). Default: `i64::MIN`.
    pub min_time: i64,
    /// Latest time returned, inclusive (ns). Default: `i64::MAX`.
    pub max_time: i64,
    /// Tag predicates, all of which a series must meet: the tag's value is one of the
    /// listed values (a series without the tag never matches).
    pub tags: Vec<(String, Vec<String>)>,
    /// Field filters, a hint: rows that cannot meet every one of them are left out (a
    /// segment's block in which none can is skipped, the columns other than the filters'
    /// not decoded), but the rows of stretches merged with overlapping sources are
    /// returned whether they meet them or not, and so are floats that meet a filter only
    /// in one of the orders [`FieldFilter`] names; the caller filters them. A filter
    /// whose column the scan does not return is not used.
    pub fields: Vec<FieldFilter>,
    /// Rows per returned batch, at most. Default: 16,384, a block's rows in the default
    /// configuration. Every batch costs the query engine above the scan some work of its
    /// own (allocations, its expressions' setup, repartitioning), so fewer, longer batches
    /// answer faster; the README's "Batches of a block's rows" has the figures, 8,192 and
    /// 32,768 among them.
    pub batch_rows: usize,
    /// Return only the series of partition `.0` out of `.1` (by a stable hash of the series
    /// key), so that scans can run in parallel over disjoint series. Default: `(0, 1)`.
    pub partition: (usize, usize),
}

impl ScanRequest {
    /// Every row and column of `table`.
    pub fn new(table: impl Into<String>) -> Self {
        ScanRequest {
            table: table.into(),
            columns: None,
            min_time: i64::MIN,
            max_time: i64::MAX,
            tags: Vec::new(),
            fields: Vec::new(),
            batch_rows: 16_384,
            partition: (0, 1),
        }
    }

    /// Returns only these columns, in this order.
    pub fn columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Returns rows with `min_time <= time < end` (ns).
    pub fn time_range(mut self, min_time: i64, end: i64) -> Self {
        self.min_time = min_time;
        self.max_time = end.saturating_sub(1);
        if end == i64::MIN {
            // Nothing is before the earliest time: an empty range.
            (self.min_time, self.max_time) = (i64::MAX, i64::MIN);
        }
        self
    }

    /// Returns rows with `min_time <= time <= max_time` (ns).
    pub fn time_between(mut self, min_time: i64, max_time: i64) -> Self {
        self.min_time = min_time;
        self.max_time = max_time;
        self
    }

    /// Keeps series whose tag `tag` equals one of `values`.
    pub fn tag_in<S: Into<String>>(
        mut self,
        tag: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        self.tags
            .push((tag.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// Keeps series whose tag `tag` equals `value`.
    pub fn tag_eq(self, tag: impl Into<String>, value: impl Into<String>) -> Self {
        self.tag_in(tag, [value.into()])
    }

    /// Skips blocks of segments in which no row has `column op value` (see
    /// [`ScanRequest::fields`]).
    pub fn field_filter(mut self, column: impl Into<String>, op: CmpOp, value: FieldValue) -> Self {
        self.fields.push(FieldFilter {
            column: column.into(),
            op,
            value,
        });
        self
    }

    /// Sets the most rows per batch.
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Scans only partition `index` of `count` (`index < count`, else the scan is an
    /// error).
    pub fn partition(mut self, index: usize, count: usize) -> Self {
        self.partition = (index, count);
        self
    }
}

/// A comparison of a field with a value of the field's type (see [`ScanRequest::fields`]),
/// or of the level column with a level's name ([`FieldValue::Str`]), by severity.
/// A null meets no filter. Floats are taken to meet it if they do under IEEE 754
/// comparison or in total order (`f64::total_cmp`: a NaN above every number, or below
/// every number when its sign bit is set; -0.0 below 0.0), a zero value also as its
/// opposite: a block is skipped only when no row meets it in any of these.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldFilter {
    /// The field or the level column (not `time` or a tag).
    pub column: String,
    /// How the field compares with the value.
    pub op: CmpOp,
    /// A value of the field's type; for the level, a level's name (any case).
    pub value: FieldValue,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl std::fmt::Display for CmpOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        })
    }
}

/// What a scan did, for `EXPLAIN ANALYZE` and for tuning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanMetrics {
    /// Segments in the table when the snapshot was taken (counted by partition 0 of a
    /// partitioned scan).
    pub segments_total: usize,
    /// Segments skipped whole: time range or tags ruled them out (counted by partition 0).
    pub segments_pruned: usize,
    /// Segments this scan read series of (each partition counts the segments it reads).
    pub segments_read: usize,
    /// Blocks decoded (per column; a block decoded again for more of its rows counts
    /// again).
    pub blocks_read: usize,
    /// Stretches of blocks (one series' rows in one block: a block holding several
    /// series counts once per series read) skipped by the block's time statistics.
    pub blocks_pruned: usize,
    /// Stretches of blocks (as for `blocks_pruned`) skipped because none of their rows met
    /// the field filters: the filter columns were decoded (and time, when the stretch
    /// crosses the time range), the others not.
    pub blocks_filtered: usize,
    /// Stretches of blocks (as for `blocks_pruned`) skipped because a string field's block
    /// filter rules out the value an equality filter asks for: nothing was decoded.
    pub blocks_excluded: usize,
    /// Rows read (of segment blocks and memory) but left out because they cannot meet
    /// the field filters.
    pub rows_filtered: usize,
    /// Values (not nulls) decoded from segment blocks, from where each decode started
    /// (a resume point, or the block's first value) through the last one needed. Planes
    /// that cannot start inside (zstd, rANS without resume points) decode more than this
    /// counts.
    pub values_decoded: usize,
    /// In-memory chunks read.
    pub chunks_read: usize,
    /// Rows returned.
    pub rows_returned: usize,
}
