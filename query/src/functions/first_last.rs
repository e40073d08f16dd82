//! Selectors: `first(value, time)` and `last(value, time)`, the value at the earliest or
//! latest time of a group, as InfluxDB's `FIRST()` and `LAST()`.
//!
//! ```sql
//! SELECT host, last(usage_user, time) FROM cpu GROUP BY host
//! SELECT time_bucket(INTERVAL '1 minute', time) AS m, first(status, time) FROM http GROUP BY m
//! ```
//!
//! - `value` may be of any type; rows where it is null are skipped, so the answer is the
//!   earliest (latest) non-null value. Rows without a time are skipped too. A group with
//!   no such row gives null.
//! - `time` is a timestamp of any unit or an integer.
//! - Ties (several rows at the earliest or latest time) go to the greatest value, for
//!   `first` and `last` alike, so the answer does not depend on the order rows arrive in or
//!   on how the query is partitioned. (Values with no order among them, such as structs of
//!   different shapes, keep whichever came first.)
//!
//! The state of a group is its best (time, value) so far; partial states merge by the same
//! rule.

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef};
use arrow_cast::CastOptions;
use arrow_schema::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, not_impl_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// Which end of the time range a selector picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The earliest time: `first`.
    First,
    /// The latest time: `last`.
    Last,
}

impl End {
    /// Whether a sample at `candidate` beats one at `current`.
    fn beats(self, candidate: i64, current: i64) -> bool {
        match self {
            End::First => candidate < current,
            End::Last => candidate > current,
        }
    }
}

/// `first(value, time)` / `last(value, time)`: the non-null value at the earliest /
/// latest time of the group; ties go to the greatest value.
///
/// ```sql
/// SELECT host, last(usage_user, time) FROM cpu GROUP BY host
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    end: End,
    signature: Signature,
}

impl Selector {
    /// `first(value, time)`.
    pub fn first() -> AggregateUDF {
        Selector::udf(End::First)
    }

    /// `last(value, time)`.
    pub fn last() -> AggregateUDF {
        Selector::udf(End::Last)
    }

    fn udf(end: End) -> AggregateUDF {
        AggregateUDF::new_from_impl(Selector {
            end,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for Selector {
    fn name(&self) -> &str {
        match self.end {
            End::First => "first",
            End::Last => "last",
        }
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
        check_time_type(self.name(), time)?;
        Ok(vec![value.clone(), time.clone()])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn accumulator(&self, acc_args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        if acc_args.is_distinct {
            return not_impl_err!("{}(DISTINCT ...) is not supported", self.name());
        }
        Ok(Box::new(SelectorAccumulator::new(
            self.end,
            acc_args.return_type().clone(),
        )))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Field::new(
                format_state_name(args.name, "value"),
                args.return_type().clone(),
                true,
            )
            .into(),
            Field::new(format_state_name(args.name, "time"), DataType::Int64, true).into(),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// Checks that `t` can order samples: a timestamp of any unit, or an integer.
pub(super) fn check_time_type(function: &str, t: &DataType) -> Result<()> {
    if matches!(t, DataType::Timestamp(_, _)) || t.is_integer() {
        Ok(())
    } else {
        plan_err!("the time argument of {function} must be a timestamp or an integer, not {t}")
    }
}

/// A time column as `Int64` in its own unit. Integers that do not fit are an error rather
/// than a silently skipped row.
pub(super) fn time_values(array: &ArrayRef) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    Ok(arrow_cast::cast_with_options(
        array,
        &DataType::Int64,
        &options,
    )?)
}

/// Keeps the best (time, value) of one group.
#[derive(Debug)]
pub struct SelectorAccumulator {
    end: End,
    value_type: DataType,
    best: Option<(i64, ScalarValue)>,
}

impl SelectorAccumulator {
    /// An empty group for values of `value_type`.
    pub fn new(end: End, value_type: DataType) -> Self {
        SelectorAccumulator {
            end,
            value_type,
            best: None,
        }
    }

    /// Whether (time, value) should replace `self.best`.
    fn replaces(&self, time: i64, value: &ScalarValue) -> bool {
        match &self.best {
            None => true,
            Some((t, v)) => {
                self.end.beats(time, *t)
                    || (time == *t && value.partial_cmp(v) == Some(Ordering::Greater))
            }
        }
    }

    /// Offers every row with a value and a time; `times` is `Int64`.
    fn offer_rows(&mut self, values: &ArrayRef, times: &ArrayRef) -> Result<()> {
        let times = times.as_primitive::<Int64Type>();
        let value_nulls = values.logical_nulls();
        let mut best: Option<(usize, i64)> = None;
        for (i, t) in times.iter().enumerate() {
            let Some(t) = t else { continue };
            if value_nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                continue;
            }
            best = match best {
                None => Some((i, t)),
                Some((_, bt)) if self.end.beats(t, bt) => Some((i, t)),
                Some((b, bt)) if t == bt => {
                    let greater = ScalarValue::try_from_array(values, i)?
                        .partial_cmp(&ScalarValue::try_from_array(values, b)?)
                        == Some(Ordering::Greater);
                    Some(if greater { (i, t) } else { (b, bt) })
                }
                keep => keep,
            };
        }
        if let Some((i, t)) = best {
            let value = ScalarValue::try_from_array(values, i)?;
            if self.replaces(t, &value) {
                self.best = Some((t, value));
            }
        }
        Ok(())
    }

    fn best_value(&self) -> Result<ScalarValue> {
        match &self.best {
            Some((_, v)) => Ok(v.clone()),
            None => ScalarValue::try_from(&self.value_type),
        }
    }
}

impl Accumulator for SelectorAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let times = time_values(&values[1])?;
        self.offer_rows(&values[0], &times)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.offer_rows(&states[0], &states[1])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let time = self.best.as_ref().map(|(t, _)| *t);
        Ok(vec![self.best_value()?, ScalarValue::Int64(time)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.best_value()
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self
                .best
                .as_ref()
                .map_or(0, |(_, v)| v.size() - size_of_val(v))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
        UInt64Array,
    };
    use datafusion::arrow::compute::concat_batches;
    use sextant_engine::{Config, Point};

    use super::*;
    use crate::{Database, QueryOptions};

    fn array<A: Array + 'static>(a: A) -> ArrayRef {
        Arc::new(a)
    }

    fn times(t: &[Option<i64>]) -> ArrayRef {
        array(TimestampNanosecondArray::from(t.to_vec()).with_timezone("UTC"))
    }

    /// Runs `end` over `values` at `t` in one batch.
    fn select(end: End, values: ArrayRef, t: &[Option<i64>]) -> ScalarValue {
        let mut acc = SelectorAccumulator::new(end, values.data_type().clone());
        acc.update_batch(&[values, times(t)]).unwrap();
        acc.evaluate().unwrap()
    }

    #[test]
    fn first_and_last_pick_by_time_not_arrival_order() {
        let v = array(Float64Array::from(vec![3.0, 1.0, 4.0, 1.5, 9.0]));
        let t = [Some(30), Some(10), Some(40), Some(15), Some(20)];
        assert_eq!(
            select(End::First, Arc::clone(&v), &t),
            ScalarValue::Float64(Some(1.0))
        );
        assert_eq!(select(End::Last, v, &t), ScalarValue::Float64(Some(4.0)));
    }

    #[test]
    fn null_values_and_null_times_are_skipped() {
        let v = array(Int64Array::from(vec![None, Some(7), Some(8), None]));
        let t = [Some(1), Some(2), None, Some(9)];
        assert_eq!(
            select(End::First, Arc::clone(&v), &t),
            ScalarValue::Int64(Some(7))
        );
        assert_eq!(select(End::Last, v, &t), ScalarValue::Int64(Some(7)));
    }

    #[test]
    fn empty_and_all_null_groups_give_null_of_the_value_type() {
        let mut acc = SelectorAccumulator::new(End::Last, DataType::Utf8);
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Utf8(None));
        let v = array(StringArray::from(vec![None::<&str>, None]));
        assert_eq!(
            select(End::First, v, &[Some(1), Some(2)]),
            ScalarValue::Utf8(None)
        );
    }

    #[test]
    fn ties_go_to_the_greatest_value_whatever_the_order() {
        let t = [Some(5), Some(5), Some(5)];
        for order in [["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]] {
            let v = array(StringArray::from(order.to_vec()));
            assert_eq!(
                select(End::First, Arc::clone(&v), &t),
                ScalarValue::from("c")
            );
            assert_eq!(select(End::Last, v, &t), ScalarValue::from("c"));
        }
    }

    #[test]
    fn selectors_keep_u64_bool_and_integer_times() {
        let v = array(UInt64Array::from(vec![u64::MAX, 1]));
        let t = array(Int64Array::from(vec![2, 1]));
        let mut acc = SelectorAccumulator::new(End::Last, DataType::UInt64);
        acc.update_batch(&[v, t]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::UInt64(Some(u64::MAX)));

        let v = array(BooleanArray::from(vec![true, false]));
        assert_eq!(
            select(End::First, v, &[Some(2), Some(1)]),
            ScalarValue::Boolean(Some(false))
        );
    }

    #[test]
    fn merged_partial_states_give_the_overall_answer() {
        for end in [End::First, End::Last] {
            let mut a = SelectorAccumulator::new(end, DataType::Float64);
            let mut b = SelectorAccumulator::new(end, DataType::Float64);
            a.update_batch(&[
                array(Float64Array::from(vec![5.0, 6.0])),
                times(&[Some(50), Some(60)]),
            ])
            .unwrap();
            b.update_batch(&[
                array(Float64Array::from(vec![1.0, 9.0])),
                times(&[Some(10), Some(90)]),
            ])
            .unwrap();
            let empty = SelectorAccumulator::new(end, DataType::Float64).state();
            let states: Vec<Vec<ScalarValue>> =
                vec![a.state().unwrap(), empty.unwrap(), b.state().unwrap()];
            let columns: Vec<ArrayRef> = (0..2)
                .map(|c| ScalarValue::iter_to_array(states.iter().map(|s| s[c].clone())).unwrap())
                .collect();
            let mut merged = SelectorAccumulator::new(end, DataType::Float64);
            merged.merge_batch(&columns).unwrap();
            let expected = if end == End::First { 1.0 } else { 9.0 };
            assert_eq!(
                merged.evaluate().unwrap(),
                ScalarValue::Float64(Some(expected))
            );
        }
    }

    #[test]
    fn time_must_be_a_timestamp_or_an_integer() {
        let udf = Selector::first();
        let err = udf
            .inner()
            .coerce_types(&[DataType::Float64, DataType::Utf8])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("must be a timestamp or an integer")
        );
        assert!(
            udf.inner()
                .coerce_types(&[DataType::Utf8, DataType::UInt32])
                .is_ok()
        );
    }

    /// The cell at (`row`, `column`) of a query's answer, as text ("" for null).
    fn cell(batches: &[RecordBatch], column: usize, row: usize) -> String {
        let batch = concat_batches(&batches[0].schema(), batches).unwrap();
        arrow_cast::display::array_value_to_string(batch.column(column), row).unwrap()
    }

    /// A database split into four partitions, so partial states are merged.
    fn open(dir: &std::path::Path) -> Database {
        let options = QueryOptions {
            target_partitions: 4,
            ..QueryOptions::default()
        };
        Database::open_with(Config::new(dir), options).unwrap()
    }

    #[test]
    fn sql_first_and_last_per_host_and_overall() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let s = 1_000_000_000;
        let point = |host: &str, v: f64, t: i64| {
            Point::metric("cpu")
                .tag("host", host)
                .field("usage_user", v)
                .field("state", if v > 50.0 { "busy" } else { "idle" })
                .time(t * s)
        };
        // Written out of time order, half flushed to a segment, half in memory.
        db.write_points(&[
            point("a", 20.0, 3),
            point("a", 10.0, 1),
            point("b", 70.0, 5),
        ])
        .unwrap();
        db.flush().unwrap();
        db.write_points(&[point("a", 99.0, 2), point("b", 5.0, 0), point("c", 60.0, 4)])
            .unwrap();

        let out = db
            .sql(
                "SELECT host, first(usage_user, time) AS f, last(usage_user, time) AS l, \
                 last(state, time) AS st FROM cpu GROUP BY host ORDER BY host",
            )
            .unwrap();
        let rows: Vec<String> = (0..3)
            .map(|r| {
                (0..4)
                    .map(|c| cell(&out, c, r))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            rows,
            ["a 10.0 20.0 idle", "b 5.0 70.0 busy", "c 60.0 60.0 busy"]
        );

        let out = db
            .sql("SELECT first(host, time), last(host, time) FROM cpu")
            .unwrap();
        assert_eq!(
            (cell(&out, 0, 0), cell(&out, 1, 0)),
            ("b".into(), "b".into())
        );

        let out = db
            .sql("SELECT last(usage_user, time) FROM cpu WHERE host = 'none'")
            .unwrap();
        assert_eq!(cell(&out, 0, 0), "");

        let err = db
            .sql("SELECT first(DISTINCT usage_user, time) FROM cpu")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("first(DISTINCT ...) is not supported")
        );
    }
}
