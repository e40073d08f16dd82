//! Counters and gauges as Prometheus reads them, as aggregates over a group (typically
//! `GROUP BY <series tags>, time_bucket(...)`):
//!
//! - `increase(value, time)`: how much a counter grew over the group's samples, counting
//!   resets: a sample lower than the one before means the counter restarted from zero, so
//!   the value before the reset is added back, as Prometheus does.
//! - `rate(value, time)`: `increase` per second, divided by the seconds between the
//!   group's first and last sample.
//! - `delta(value, time)`: last minus first, for gauges (no reset handling).
//!
//! ```sql
//! SELECT time_bucket(INTERVAL '1 minute', time) AS m, host, rate(requests, time)
//! FROM http GROUP BY m, host ORDER BY m
//! ```
//!
//! Unlike Prometheus, Sextant does not extrapolate to the edges of the window: `increase`
//! is `last - first + resets` over the samples present, and `rate` divides it by the time
//! the samples span, not by the bucket width. So `increase` over a one-minute bucket with
//! samples every 15 s covers the 45 s between the first and last sample.
//!
//! - `value` is any number, read as `Float64` (integers past 2^53 lose precision); the
//!   result is `Float64`.
//! - `time` is a timestamp of any unit, or an integer read as nanoseconds (Sextant's unit).
//! - Rows with a null value or time are skipped. With fewer than two samples all three
//!   give null (as Prometheus gives no point), and so does `rate` when all samples share
//!   one time.
//! - Samples may arrive in any order: the state is every (time, value) pair, sorted by
//!   time when the group is evaluated, so partial states merge by concatenation. Samples at
//!   the same time are ordered by value.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, ListArray};
use arrow_schema::{DataType, Field, FieldRef, TimeUnit};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::common::{ScalarValue, exec_err, not_impl_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::first_last::{check_time_type, time_values};

/// What a counter aggregate computes from a group's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterKind {
    /// `increase`: last - first, adding back the value before each reset.
    Increase,
    /// `rate`: the increase per second between the first and last sample.
    Rate,
    /// `delta`: last - first.
    Delta,
}

impl CounterKind {
    fn name(self) -> &'static str {
        match self {
            CounterKind::Increase => "increase",
            CounterKind::Rate => "rate",
            CounterKind::Delta => "delta",
        }
    }
}

/// `increase(value, time)`, `rate(value, time)` and `delta(value, time)`.
///
/// ```sql
/// SELECT host, increase(requests, time) AS served FROM http
/// WHERE time >= now() - INTERVAL '1 hour' GROUP BY host
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Counter {
    kind: CounterKind,
    signature: Signature,
}

impl Counter {
    /// `increase(value, time)`.
    pub fn increase() -> AggregateUDF {
        Counter::udf(CounterKind::Increase)
    }

    /// `rate(value, time)`.
    pub fn rate() -> AggregateUDF {
        Counter::udf(CounterKind::Rate)
    }

    /// `delta(value, time)`.
    pub fn delta() -> AggregateUDF {
        Counter::udf(CounterKind::Delta)
    }

    fn udf(kind: CounterKind) -> AggregateUDF {
        AggregateUDF::new_from_impl(Counter {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for Counter {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [value, time] = arg_types else {
            return plan_err!(
                "{} takes two arguments, a value and its time, but was given {}",
                self.name(),
                arg_types.len()
            );
        };
        if !(value.is_numeric() || *value == DataType::Null) {
            return plan_err!(
                "the value argument of {} must be a number, not {value}",
                self.name()
            );
        }
        check_time_type(self.name(), time)?;
        Ok(vec![DataType::Float64, time.clone()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, acc_args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        if acc_args.is_distinct {
            return not_impl_err!("{}(DISTINCT ...) is not supported", self.name());
        }
        let time_type = acc_args.expr_fields[1].data_type();
        Ok(Box::new(CounterAccumulator::new(self.kind, time_type)))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        let list = |name: &str, item: DataType| -> FieldRef {
            Field::new(
                format_state_name(args.name, name),
                DataType::List(Arc::new(Field::new_list_field(item, true))),
                true,
            )
            .into()
        };
        Ok(vec![
            list("times", DataType::Int64),
            list("values", DataType::Float64),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// The units of a time column in one second (integers are nanoseconds).
fn units_per_second(time_type: &DataType) -> f64 {
    match time_type {
        DataType::Timestamp(TimeUnit::Second, _) => 1.0,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1e3,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1e6,
        _ => 1e9,
    }
}

/// Keeps every (time, value) sample of one group.
#[derive(Debug)]
pub struct CounterAccumulator {
    kind: CounterKind,
    units_per_second: f64,
    /// (time in the column's unit, value), in arrival order until evaluated.
    samples: Vec<(i64, f64)>,
}

impl CounterAccumulator {
    /// An empty group whose times are of `time_type`.
    pub fn new(kind: CounterKind, time_type: &DataType) -> Self {
        CounterAccumulator {
            kind,
            units_per_second: units_per_second(time_type),
            samples: Vec::new(),
        }
    }

    /// Appends the samples with both a time (`Int64`) and a value (`Float64`).
    fn push(&mut self, times: &dyn Array, values: &dyn Array) -> Result<()> {
        if times.len() != values.len() {
            return exec_err!(
                "{} was given {} times but {} values",
                self.kind.name(),
                times.len(),
                values.len()
            );
        }
        let times = times.as_primitive::<Int64Type>();
        let values = values.as_primitive::<Float64Type>();
        self.samples.reserve(times.len());
        for (t, v) in times.iter().zip(values.iter()) {
            if let (Some(t), Some(v)) = (t, v) {
                self.samples.push((t, v));
            }
        }
        Ok(())
    }

    /// The answer over the samples, which it sorts.
    fn compute(&mut self) -> Option<f64> {
        if self.samples.len() < 2 {
            return None;
        }
        self.samples
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (first_time, first) = self.samples[0];
        let (last_time, last) = self.samples[self.samples.len() - 1];
        let increase = || {
            let resets: f64 = self
                .samples
                .windows(2)
                .filter(|w| w[1].1 < w[0].1)
                .map(|w| w[0].1)
                .sum();
            last - first + resets
        };
        match self.kind {
            CounterKind::Delta => Some(last - first),
            CounterKind::Increase => Some(increase()),
            CounterKind::Rate => {
                let span = (i128::from(last_time) - i128::from(first_time)) as f64;
                (span > 0.0).then(|| increase() / (span / self.units_per_second))
            }
        }
    }
}

impl Accumulator for CounterAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = arrow_cast::cast(&values[0], &DataType::Float64)?;
        let t = time_values(&values[1])?;
        self.push(&t, &v)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let times = states[0].as_list::<i32>();
        let values = states[1].as_list::<i32>();
        for i in 0..times.len() {
            if times.is_null(i) || values.is_null(i) {
                continue;
            }
            self.push(&times.value(i), &values.value(i))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |values: ArrayRef| {
            let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            let offsets = OffsetBuffer::from_lengths([values.len()]);
            ScalarValue::List(Arc::new(ListArray::new(field, offsets, values, None)))
        };
        let times: Int64Array = self.samples.iter().map(|s| s.0).collect();
        let values: Float64Array = self.samples.iter().map(|s| s.1).collect();
        Ok(vec![list(Arc::new(times)), list(Arc::new(values))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.compute()))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.samples.capacity() * size_of::<(i64, f64)>()
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{RecordBatch, TimestampMillisecondArray, TimestampNanosecondArray};
    use datafusion::arrow::compute::concat_batches;
    use sextant_engine::{Config, Point};

    use super::*;
    use crate::{Database, QueryOptions};

    const S: i64 = 1_000_000_000;

    /// One batch of (seconds, value) samples, nanosecond timestamps.
    fn batch(samples: &[(Option<i64>, Option<f64>)]) -> [ArrayRef; 2] {
        let v: Float64Array = samples.iter().map(|s| s.1).collect();
        let t: TimestampNanosecondArray = samples.iter().map(|s| s.0.map(|t| t * S)).collect();
        [Arc::new(v), Arc::new(t.with_timezone("UTC"))]
    }

    fn ns() -> DataType {
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
    }

    fn run(kind: CounterKind, samples: &[(Option<i64>, Option<f64>)]) -> Option<f64> {
        let mut acc = CounterAccumulator::new(kind, &ns());
        acc.update_batch(&batch(samples)).unwrap();
        match acc.evaluate().unwrap() {
            ScalarValue::Float64(v) => v,
            other => panic!("not a Float64: {other:?}"),
        }
    }

    fn some(samples: &[(i64, f64)]) -> Vec<(Option<i64>, Option<f64>)> {
        samples.iter().map(|&(t, v)| (Some(t), Some(v))).collect()
    }

    #[test]
    fn increase_adds_back_the_value_before_each_reset() {
        // 10 -> 15 (+5), reset to 3 (+3), -> 8 (+5), reset to 2 (+2): 15.
        let s = some(&[(0, 10.0), (10, 15.0), (20, 3.0), (30, 8.0), (40, 2.0)]);
        assert_eq!(run(CounterKind::Increase, &s), Some(15.0));
        assert_eq!(run(CounterKind::Rate, &s), Some(15.0 / 40.0));
        assert_eq!(run(CounterKind::Delta, &s), Some(-8.0));
    }

    #[test]
    fn samples_are_ordered_by_time_not_arrival() {
        let s = some(&[(30, 8.0), (0, 10.0), (20, 3.0), (40, 2.0), (10, 15.0)]);
        assert_eq!(run(CounterKind::Increase, &s), Some(15.0));
        assert_eq!(run(CounterKind::Delta, &s), Some(-8.0));
    }

    #[test]
    fn rate_is_per_second_of_the_span_the_samples_cover() {
        // 60 requests over the 45 s between first and last sample, not the 60 s bucket.
        let s = some(&[(15, 60.0), (0, 40.0), (45, 100.0), (30, 80.0)]);
        assert_eq!(run(CounterKind::Rate, &s), Some(60.0 / 45.0));

        // Millisecond timestamps are scaled by their own unit.
        let mut acc = CounterAccumulator::new(
            CounterKind::Rate,
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        );
        let v: ArrayRef = Arc::new(Float64Array::from(vec![0.0, 10.0]));
        let t: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![0, 2_000]));
        acc.update_batch(&[v, t]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(5.0)));
    }

    #[test]
    fn nulls_are_skipped() {
        let s = [
            (Some(0), Some(1.0)),
            (Some(5), None),
            (None, Some(100.0)),
            (Some(10), Some(4.0)),
        ];
        assert_eq!(run(CounterKind::Increase, &s), Some(3.0));
        assert_eq!(run(CounterKind::Rate, &s), Some(0.3));
    }

    #[test]
    fn fewer_than_two_samples_or_no_time_span_give_null() {
        for kind in [CounterKind::Increase, CounterKind::Rate, CounterKind::Delta] {
            assert_eq!(run(kind, &[]), None);
            assert_eq!(run(kind, &some(&[(3, 7.0)])), None);
            assert_eq!(run(kind, &[(Some(1), Some(1.0)), (Some(2), None)]), None);
        }
        let same_time = some(&[(3, 7.0), (3, 9.0)]);
        assert_eq!(run(CounterKind::Rate, &same_time), None);
        assert_eq!(run(CounterKind::Increase, &same_time), Some(2.0));
    }

    #[test]
    fn merged_partial_states_interleaved_in_time_give_the_overall_answer() {
        // The same series split across two partitions, interleaved in time, with a reset
        // whose two sides land in different partitions.
        let mut a = CounterAccumulator::new(CounterKind::Increase, &ns());
        let mut b = CounterAccumulator::new(CounterKind::Increase, &ns());
        a.update_batch(&batch(&some(&[(0, 10.0), (20, 3.0)])))
            .unwrap();
        b.update_batch(&batch(&some(&[(30, 8.0), (10, 15.0)])))
            .unwrap();
        let states = [
            a.state().unwrap(),
            CounterAccumulator::new(CounterKind::Increase, &ns())
                .state()
                .unwrap(),
            b.state().unwrap(),
        ];
        let columns: Vec<ArrayRef> = (0..2)
            .map(|c| ScalarValue::iter_to_array(states.iter().map(|s| s[c].clone())).unwrap())
            .collect();
        for kind in [CounterKind::Increase, CounterKind::Rate, CounterKind::Delta] {
            let mut merged = CounterAccumulator::new(kind, &ns());
            merged.merge_batch(&columns).unwrap();
            let expected = match kind {
                CounterKind::Increase => 13.0,
                CounterKind::Rate => 13.0 / 30.0,
                CounterKind::Delta => -2.0,
            };
            assert_eq!(
                merged.evaluate().unwrap(),
                ScalarValue::Float64(Some(expected))
            );
        }
    }

    #[test]
    fn value_must_be_a_number() {
        let err = Counter::rate()
            .inner()
            .coerce_types(&[DataType::Utf8, ns()])
            .unwrap_err();
        assert!(err.to_string().contains("must be a number, not Utf8"));
        let types = Counter::rate()
            .inner()
            .coerce_types(&[DataType::UInt64, DataType::Int64])
            .unwrap();
        assert_eq!(types, [DataType::Float64, DataType::Int64]);
    }

    /// The cell at (`row`, `column`) of a query's answer, as text ("" for null).
    fn cell(batches: &[RecordBatch], column: usize, row: usize) -> String {
        let batch = concat_batches(&batches[0].schema(), batches).unwrap();
        arrow_cast::display::array_value_to_string(batch.column(column), row).unwrap()
    }

    #[test]
    fn sql_rate_per_minute_and_host() {
        let dir = tempfile::tempdir().unwrap();
        let options = QueryOptions {
            target_partitions: 4,
            ..QueryOptions::default()
        };
        let db = Database::open_with(Config::new(dir.path()), options).unwrap();
        let point = |host: &str, requests: u64, t: i64| {
            Point::metric("http")
                .tag("host", host)
                .field("requests", requests)
                .field("in_flight", requests as i64 % 7)
                .time(t * S)
        };
        // Host a: 0 s..45 s every 15 s, restarting at 30 s; minute 1 has a single sample.
        // Host b: steady 2/s. Written newest first, partly flushed.
        let mut points = vec![
            point("a", 100, 0),
            point("a", 160, 15),
            point("a", 30, 30),
            point("a", 60, 45),
            point("a", 90, 60),
        ];
        points.extend((0..8).map(|i| point("b", 1000 + 30 * i as u64, 15 * i)));
        points.reverse();
        db.write_points(&points[..6]).unwrap();
        db.flush().unwrap();
        db.write_points(&points[6..]).unwrap();

        let out = db
            .sql(
                "SELECT time_bucket(INTERVAL '1 minute', time) AS m, host, \
                 rate(requests, time) AS r, increase(requests, time) AS i, \
                 delta(in_flight, time) AS d \
                 FROM http GROUP BY m, host ORDER BY m, host",
            )
            .unwrap();
        let rows: Vec<String> = (0..4)
            .map(|r| {
                (0..5)
                    .map(|c| cell(&out, c, r))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        // a, minute 0: 100 -> 160 (+60), reset to 30 (+30), -> 60 (+30) = 120 over 45 s.
        // in_flight: 100 % 7 = 2 first, 60 % 7 = 4 last.
        // b, minute 0: 1000 -> 1090 over 45 s; in_flight 6 -> 5. Minute 1: 1120 -> 1210,
        // in_flight 0 -> 6.
        assert_eq!(
            rows,
            [
                "1970-01-01T00:00:00Z a 2.6666666666666665 120.0 2.0",
                "1970-01-01T00:00:00Z b 2.0 90.0 -1.0",
                "1970-01-01T00:01:00Z a   ",
                "1970-01-01T00:01:00Z b 2.0 90.0 6.0",
            ]
        );

        // The whole range, from the flushed segment and memory together.
        let out = db
            .sql("SELECT host, increase(requests, time) FROM http GROUP BY host ORDER BY host")
            .unwrap();
        assert_eq!(
            (cell(&out, 1, 0), cell(&out, 1, 1)),
            ("150.0".into(), "210.0".into())
        );
    }
}
