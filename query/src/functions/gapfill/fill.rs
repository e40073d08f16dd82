//! The gap-filling algorithm over one batch of complete groups: the bucket grid, the
//! merge of present buckets with it, and the `locf` and `interpolate` fills.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::compute::{partition, take};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;

/// The most buckets a gap-filling query may emit per group.
pub const MAX_BUCKETS: i64 = 10_000_000;

/// How a fill column fills the nulls of its source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum FillStrategy {
    /// Last observation carried forward within the group.
    Locf,
    /// Linear interpolation in time between the group's neighbouring non-null values.
    Interpolate,
}

impl FillStrategy {
    /// The SQL function that asks for this strategy.
    pub fn name(self) -> &'static str {
        match self {
            FillStrategy::Locf => super::LOCF,
            FillStrategy::Interpolate => super::INTERPOLATE,
        }
    }
}

/// Whether `interpolate` accepts values of this type.
pub(crate) fn can_interpolate(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Float32 | DataType::Float64) || t.is_null()
}

/// What a gap-filling operator computes, with every constant evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct GapFillParams {
    /// Bucket width in nanoseconds (positive).
    pub stride: i64,
    /// Start of the first bucket, in nanoseconds since the epoch.
    pub first: i64,
    /// Start of the last bucket, in nanoseconds since the epoch (`>= first`, or no bucket).
    pub last: i64,
    /// Index of the bucket column in the input.
    pub time_index: usize,
    /// Indices of the group columns in the input (the other GROUP BY columns).
    pub group_indices: Vec<usize>,
    /// Extra output columns: (source column index, strategy), appended after the input's.
    pub fills: Vec<(usize, FillStrategy)>,
}

impl GapFillParams {
    /// Parameters for buckets of `stride` ns from `origin` covering the inclusive range
    /// `[lower, upper]` (all in ns); errors for a bad stride or too many buckets.
    pub fn new(
        stride: i64,
        origin: i64,
        lower: i64,
        upper: i64,
        time_index: usize,
        group_indices: Vec<usize>,
        fills: Vec<(usize, FillStrategy)>,
    ) -> Result<Self> {
        if stride <= 0 {
            return plan_err!("date_bin_gapfill needs a positive interval, not {stride} ns");
        }
        let first = bin(stride, origin, lower);
        let last = bin(stride, origin, upper);
        // In i128: the span of two i64 times may not fit an i64.
        let buckets = (last as i128 - first as i128) / stride as i128 + 1;
        if last >= first && buckets > MAX_BUCKETS as i128 {
            return plan_err!(
                "date_bin_gapfill would emit {buckets} buckets per group, more than the {MAX_BUCKETS} allowed; widen the interval or narrow the time range"
            );
        }
        Ok(GapFillParams {
            stride,
            first,
            last,
            time_index,
            group_indices,
            fills,
        })
    }

    /// Number of buckets of the range.
    fn buckets(&self) -> usize {
        if self.last < self.first {
            0
        } else {
            // At most MAX_BUCKETS (checked in `new`).
            ((self.last as i128 - self.first as i128) / self.stride as i128 + 1) as usize
        }
    }
}

/// The start of the bucket holding `t`, as `date_bin` computes it.
pub(crate) fn bin(stride: i64, origin: i64, t: i64) -> i64 {
    let diff = t as i128 - origin as i128;
    let start = origin as i128 + diff.div_euclid(stride as i128) * stride as i128;
    start.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Nanoseconds per unit of a timestamp column.
pub(crate) fn unit_nanos(t: &DataType) -> Result<i64> {
    match t {
        DataType::Timestamp(unit, _) => Ok(match unit {
            TimeUnit::Second => 1_000_000_000,
            TimeUnit::Millisecond => 1_000_000,
            TimeUnit::Microsecond => 1_000,
            TimeUnit::Nanosecond => 1,
        }),
        other => plan_err!("date_bin_gapfill needs a timestamp column, not {other}"),
    }
}

/// The ranges of rows of `batch` that share group column values (one range if there are
/// no group columns).
pub(crate) fn group_ranges(
    batch: &RecordBatch,
    params: &GapFillParams,
) -> Result<Vec<Range<usize>>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    if params.group_indices.is_empty() {
        return Ok(std::iter::once(0..batch.num_rows()).collect());
    }
    let columns: Vec<ArrayRef> = params
        .group_indices
        .iter()
        .map(|&i| Arc::clone(batch.column(i)))
        .collect();
    Ok(partition(&columns)?.ranges())
}

/// Fills the groups `ranges` of `batch` (each ordered by bucket, nulls first) into one
/// output batch of `schema`: the input's columns, then the fill columns.
pub(crate) fn fill_groups(
    batch: &RecordBatch,
    ranges: &[Range<usize>],
    params: &GapFillParams,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let time_type = batch.column(params.time_index).data_type().clone();
    let factor = unit_nanos(&time_type)?;
    let times = arrow_cast::cast(batch.column(params.time_index), &DataType::Int64)?;
    let times = times.as_primitive::<Int64Type>();
    let buckets = params.buckets();
    let grid = |g: usize| (params.first + g as i64 * params.stride).div_euclid(factor);

    // Per output row: the input row (None for a gap), the bucket, and the group it is in.
    let mut source: Vec<Option<u32>> = Vec::new();
    let mut out_time: Vec<Option<i64>> = Vec::new();
    let mut group_row: Vec<u32> = Vec::new();
    let mut group_starts: Vec<usize> = Vec::with_capacity(ranges.len() + 1);
    for range in ranges {
        group_starts.push(source.len());
        let first_row = range.start as u32;
        let mut i = range.start;
        let mut push = |src: Option<usize>, t: Option<i64>| {
            source.push(src.map(|s| s as u32));
            out_time.push(t);
            group_row.push(first_row);
        };
        while i < range.end && times.is_null(i) {
            push(Some(i), None);
            i += 1;
        }
        let mut g = 0;
        loop {
            let grid_t = (g < buckets).then(|| grid(g));
            let row_t = (i < range.end).then(|| times.value(i));
            match (grid_t, row_t) {
                (None, None) => break,
                (Some(gt), Some(rt)) if rt == gt => {
                    push(Some(i), Some(rt));
                    i += 1;
                    g += 1;
                }
                (Some(gt), Some(rt)) if rt < gt => {
                    push(Some(i), Some(rt));
                    i += 1;
                }
                (Some(gt), _) => {
                    push(None, Some(gt));
                    g += 1;
                }
                (None, Some(rt)) => {
                    push(Some(i), Some(rt));
                    i += 1;
                }
            }
        }
    }
    group_starts.push(source.len());

    let source_idx = UInt32Array::from(source.clone());
    let group_idx = UInt32Array::from(group_row);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, column) in batch.columns().iter().enumerate() {
        columns.push(if c == params.time_index {
            arrow_cast::cast(&Int64Array::from(out_time.clone()), &time_type)?
        } else if params.group_indices.contains(&c) {
            take(column, &group_idx, None)?
        } else {
            take(column, &source_idx, None)?
        });
    }
    for &(src, strategy) in &params.fills {
        let column = batch.column(src);
        columns.push(match strategy {
            FillStrategy::Locf => locf(column, &source, &group_starts)?,
            FillStrategy::Interpolate => {
                let present = take(column, &source_idx, None)?;
                interpolate(&present, &out_time, &group_starts)?
            }
        });
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// `column` taken at `source`, each null replaced by the last non-null value of its group.
fn locf(column: &ArrayRef, source: &[Option<u32>], group_starts: &[usize]) -> Result<ArrayRef> {
    let mut indices: Vec<Option<u32>> = Vec::with_capacity(source.len());
    for w in group_starts.windows(2) {
        let mut last = None;
        for src in &source[w[0]..w[1]] {
            if let Some(s) = src
                && column.is_valid(*s as usize)
            {
                last = Some(*s);
            }
            indices.push(last);
        }
    }
    Ok(take(column, &UInt32Array::from(indices), None)?)
}

/// `values` with each null between two non-null values of its group replaced by the
/// straight line between them at its time; integers are rounded to the nearest.
fn interpolate(
    values: &ArrayRef,
    times: &[Option<i64>],
    group_starts: &[usize],
) -> Result<ArrayRef> {
    let t = values.data_type().clone();
    if !can_interpolate(&t) {
        return exec_err!("interpolate needs an integer or floating point value, not {t}");
    }
    let floats = arrow_cast::cast(values, &DataType::Float64)?;
    let floats = floats.as_primitive::<Float64Type>();
    let mut out: Vec<Option<f64>> = floats.iter().collect();
    for w in group_starts.windows(2) {
        let mut prev: Option<(i64, f64)> = None;
        let mut pending: Vec<usize> = Vec::new();
        for k in w[0]..w[1] {
            let Some(time) = times[k] else { continue };
            match out[k] {
                Some(v) => {
                    if let Some((t0, v0)) = prev {
                        for &p in &pending {
                            let tp = times[p].expect("pending rows have a time");
                            let frac = (tp - t0) as f64 / (time - t0) as f64;
                            out[p] = Some(v0 + (v - v0) * frac);
                        }
                    }
                    pending.clear();
                    prev = Some((time, v));
                }
                None => {
                    if prev.is_some() {
                        pending.push(k);
                    }
                }
            }
        }
    }
    let filled: ArrayRef = Arc::new(Float64Array::from(out));
    let filled = if t.is_integer() {
        let rounded: Float64Array = filled.as_primitive::<Float64Type>().unary(f64::round);
        Arc::new(rounded) as ArrayRef
    } else {
        filled
    };
    Ok(arrow_cast::cast(&filled, &t)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{StringArray, TimestampNanosecondArray};
    use arrow_schema::{Field, Schema};

    const MIN: i64 = 60_000_000_000;

    fn input(hosts: &[&str], minutes: &[i64], values: &[Option<f64>]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("m", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("host", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(
                    minutes.iter().map(|m| m * MIN).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(hosts.to_vec())),
                Arc::new(Float64Array::from(values.to_vec())),
            ],
        )
        .unwrap()
    }

    fn output_schema(input: &RecordBatch, fills: usize) -> SchemaRef {
        let mut fields: Vec<Field> = input
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for i in 0..fills {
            fields.push(Field::new(format!("fill{i}"), DataType::Float64, true));
        }
        Arc::new(Schema::new(fields))
    }

    fn floats(a: &ArrayRef) -> Vec<Option<f64>> {
        a.as_primitive::<Float64Type>().iter().collect()
    }

    #[test]
    fn bins_match_date_bin_before_and_after_the_origin() {
        assert_eq!(bin(10, 0, 25), 20);
        assert_eq!(bin(10, 0, -5), -10);
        assert_eq!(bin(10, 3, 2), -7);
        assert_eq!(bin(10, 3, 13), 13);
    }

    #[test]
    fn gaps_are_filled_per_group_with_locf_and_interpolate() {
        let batch = input(
            &["a", "a", "b"],
            &[1, 4, 2],
            &[Some(1.0), Some(4.0), Some(7.0)],
        );
        let params = GapFillParams::new(
            MIN,
            0,
            0,
            5 * MIN - 1,
            0,
            vec![1],
            vec![(2, FillStrategy::Locf), (2, FillStrategy::Interpolate)],
        )
        .unwrap();
        let ranges = group_ranges(&batch, &params).unwrap();
        assert_eq!(ranges, vec![0..2, 2..3]);
        let schema = output_schema(&batch, 2);
        let out = fill_groups(&batch, &ranges, &params, &schema).unwrap();
        assert_eq!(out.num_rows(), 10);
        let n = None;
        assert_eq!(
            floats(out.column(2)),
            [n, Some(1.0), n, n, Some(4.0), n, n, Some(7.0), n, n]
        );
        assert_eq!(
            floats(out.column(3)),
            [
                n,
                Some(1.0),
                Some(1.0),
                Some(1.0),
                Some(4.0),
                n,
                n,
                Some(7.0),
                Some(7.0),
                Some(7.0)
            ]
        );
        assert_eq!(
            floats(out.column(4)),
            [
                n,
                Some(1.0),
                Some(2.0),
                Some(3.0),
                Some(4.0),
                n,
                n,
                Some(7.0),
                n,
                n
            ]
        );
        let hosts: Vec<_> = out.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(hosts, ["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"]);
    }

    #[test]
    fn rows_outside_the_grid_are_kept_in_order() {
        let batch = input(&["a", "a"], &[-3, 1], &[Some(1.0), Some(2.0)]);
        let params = GapFillParams::new(MIN, 0, 0, 2 * MIN, 0, vec![1], vec![]).unwrap();
        let out = fill_groups(
            &batch,
            &[Range { start: 0, end: 2 }],
            &params,
            &output_schema(&batch, 0),
        )
        .unwrap();
        let times: Vec<i64> = arrow_cast::cast(out.column(0), &DataType::Int64)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|t| t / MIN)
            .collect();
        assert_eq!(times, [-3, 0, 1, 2]);
    }

    #[test]
    fn integers_interpolate_rounded() {
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(0), None, None, Some(10)]));
        let times = [Some(0), Some(1), Some(2), Some(3)];
        let out = interpolate(&values, &times, &[0, 4]).unwrap();
        let got: Vec<_> = out.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(got, [Some(0), Some(3), Some(7), Some(10)]);
    }

    #[test]
    fn bad_strides_and_huge_grids_are_errors() {
        let err = GapFillParams::new(0, 0, 0, 10, 0, vec![], vec![]).unwrap_err();
        assert!(err.to_string().contains("positive interval"), "{err}");
        let err = GapFillParams::new(1, 0, 0, i64::MAX / 2, 0, vec![], vec![]).unwrap_err();
        assert!(err.to_string().contains("narrow the time range"), "{err}");
        // Spans wider than an i64 of nanoseconds (about 292 years).
        let err = GapFillParams::new(1, 0, i64::MIN, i64::MAX, 0, vec![], vec![]).unwrap_err();
        assert!(err.to_string().contains("narrow the time range"), "{err}");
        let day = 86_400_000_000_000;
        let wide = GapFillParams::new(day, 0, i64::MIN + day, i64::MAX - day, 0, vec![], vec![]);
        // 2^64 ns is about 213,504 days.
        assert!((213_000..214_000).contains(&wide.unwrap().buckets()));
    }
}
