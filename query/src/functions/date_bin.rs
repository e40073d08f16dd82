//! `date_bin` (and `time_bucket`, its alias) as DataFusion's, hashed and compared by name.
//!
//! DataFusion's `date_bin` derives `Hash` over its signature, a list of every type
//! combination it accepts, and the optimizer hashes expressions many times per query
//! (`optimize_projections` collects them into sets): in a profile of planning
//! single-groupby-1-1-1, hashing that signature was about 14 % of the logical optimizer's
//! time. One `date_bin` is registered per session, so its name identifies it.
//!
//! Evaluation takes a shortcut for the common case, a nanosecond timestamp column binned
//! by a fixed width (no months): rows come from a scan in series and time order, so most
//! rows fall in the bucket of the row before, which a comparison finds without the
//! division DataFusion does for every row (a quarter of count-per-level-per-hour's time
//! in a profile). Where a bucket would overflow `i64`, the batch goes to DataFusion's
//! code, which gives NULL there. Every other method is DataFusion's.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, PrimitiveArray};
use arrow_schema::{DataType, FieldRef, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping,
};

/// DataFusion's `date_bin` with the alias `time_bucket`; see the [module](self)
/// documentation.
#[derive(Debug)]
pub(crate) struct DateBin {
    inner: Arc<dyn ScalarUDFImpl>,
    aliases: Vec<String>,
}

impl DateBin {
    /// The function, to register on a session.
    pub fn udf() -> ScalarUDF {
        let inner = Arc::clone(datafusion::functions::datetime::date_bin().inner());
        let mut aliases = inner.aliases().to_vec();
        aliases.push("time_bucket".to_string());
        ScalarUDF::new_from_impl(DateBin { inner, aliases })
    }
}

impl PartialEq for DateBin {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name() && self.aliases == other.aliases
    }
}

impl Eq for DateBin {}

impl Hash for DateBin {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
        self.aliases.hash(state);
    }
}

#[warn(clippy::missing_trait_methods)] // Delegates, so it should implement every method.
impl ScalarUDFImpl for DateBin {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(binned) = fixed_width(&args.args) {
            return Ok(binned);
        }
        self.inner.invoke_with_args(args)
    }

    fn with_updated_config(&self, _config: &ConfigOptions) -> Option<ScalarUDF> {
        None
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.preimage(args, lit_expr, info)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.struct_field_mapping(literal_args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.placement(args)
    }
}

/// `date_bin(stride, time [, origin])` of a nanosecond timestamp array by a literal stride
/// of a fixed, positive width and a literal nanosecond origin, as DataFusion bins it;
/// `None` for any other arguments, or where a bucket overflows `i64` (DataFusion gives
/// NULL there).
fn fixed_width(args: &[ColumnarValue]) -> Option<ColumnarValue> {
    let stride = match args.first()? {
        ColumnarValue::Scalar(s) => stride_nanos(s)?,
        ColumnarValue::Array(_) => return None,
    };
    let origin = match args.get(2) {
        None => 0,
        Some(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(Some(v), _))) => *v,
        Some(_) => return None,
    };
    let ColumnarValue::Array(array) = args.get(1)? else {
        return None;
    };
    if args.len() > 3
        || !matches!(
            array.data_type(),
            DataType::Timestamp(TimeUnit::Nanosecond, _)
        )
    {
        return None;
    }
    let times = array.as_primitive::<TimestampNanosecondType>();
    let values = bin(times.values(), stride, origin)?;
    let binned =
        PrimitiveArray::<TimestampNanosecondType>::new(values.into(), times.nulls().cloned())
            .with_data_type(array.data_type().clone());
    Some(ColumnarValue::Array(Arc::new(binned)))
}

/// The width in nanoseconds of a literal stride without months, if positive.
pub(crate) fn stride_nanos(stride: &ScalarValue) -> Option<i64> {
    const NANOS_PER_DAY: i64 = 86_400_000_000_000;
    let nanos = match stride {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => i64::from(v.days)
            .checked_mul(NANOS_PER_DAY)?
            .checked_add(v.nanoseconds)?,
        ScalarValue::IntervalDayTime(Some(v)) => i64::from(v.days)
            .checked_mul(NANOS_PER_DAY)?
            .checked_add(i64::from(v.milliseconds).checked_mul(1_000_000)?)?,
        _ => return None,
    };
    (nanos > 0).then_some(nanos)
}

/// The start of the bucket of each of `times`: `origin + floor((t - origin) / stride) *
/// stride`, `None` if one overflows. A row in the bucket of the row before takes its start
/// without dividing. Null rows are binned too: their values are arbitrary, and one that
/// overflows sends the batch to DataFusion like any other.
fn bin(times: &[i64], stride: i64, origin: i64) -> Option<Vec<i64>> {
    // The bucket of the last row binned, as [lo, hi) of `t - origin`, which every row
    // computes (DataFusion gives NULL where it overflows); empty to start with.
    let (mut lo, mut hi) = (0i64, 0i64);
    let mut start = 0i64;
    let mut out = Vec::with_capacity(times.len());
    for &t in times {
        let diff = t.checked_sub(origin)?;
        if !(lo <= diff && diff < hi) {
            lo = diff.checked_sub(diff.rem_euclid(stride))?;
            start = origin.checked_add(lo)?;
            // A saturated end leaves out the end's instant, which is binned anew.
            hi = lo.saturating_add(stride);
        }
        out.push(start);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DataFusion's binning of one value (`date_bin_nanos_interval`), for comparison.
    fn reference(t: i64, stride: i64, origin: i64) -> Option<i64> {
        let diff = t.checked_sub(origin)?;
        let rem = diff.checked_rem(stride)?;
        let mut delta = diff.checked_sub(rem)?;
        if diff < 0 && stride > 1 && delta != diff {
            delta = delta.checked_sub(stride)?;
        }
        origin.checked_add(delta)
    }

    #[test]
    fn bins_as_datafusion_does_in_and_out_of_order() {
        let minute = 60_000_000_000;
        let times = [
            0,
            1,
            minute - 1,
            minute,
            minute + 5,
            -1,
            -minute,
            -minute - 1,
            3 * minute + 7,
            2 * minute,
            i64::MAX - 3,
            i64::MAX,
        ];
        for stride in [1, 7, minute, 86_400_000_000_000] {
            for origin in [0, 13, -minute / 2] {
                let expected: Option<Vec<i64>> = times
                    .iter()
                    .map(|&t| reference(t, stride, origin))
                    .collect();
                assert_eq!(
                    bin(&times, stride, origin),
                    expected,
                    "stride {stride} origin {origin}"
                );
            }
        }
    }

    #[test]
    fn an_overflowing_bucket_is_left_to_datafusion() {
        // origin far below: t - origin overflows.
        assert_eq!(bin(&[i64::MAX], 10, -10), None);
        // ... also for a row in the bucket of a row before it that does not overflow.
        assert_eq!(reference(i64::MAX - 9, 1000, -10), None);
        assert_eq!(bin(&[i64::MAX - 20, i64::MAX - 9], 1000, -10), None);
        // The bucket of i64::MIN + 1 starts below i64::MIN.
        assert_eq!(bin(&[i64::MIN + 1], 10, 0), None);
        assert_eq!(reference(i64::MIN + 1, 10, 0), None);
    }

    /// `f(stride, times [, origin])`, `times` nanosecond timestamps with or without a
    /// time zone.
    fn invoke(
        f: &dyn ScalarUDFImpl,
        stride: i64,
        times: &dyn Array,
        origin: Option<i64>,
    ) -> Result<ColumnarValue> {
        use arrow_array::types::IntervalMonthDayNano;
        use arrow_schema::Field;
        let mut args = vec![
            ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(
                IntervalMonthDayNano::new(0, 0, stride),
            ))),
            ColumnarValue::Array(arrow_array::make_array(times.to_data())),
        ];
        let tz = match times.data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            other => panic!("{other}"),
        };
        if let Some(o) = origin {
            args.push(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
                Some(o),
                tz,
            )));
        }
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: times.len(),
            return_field: Arc::new(Field::new("r", times.data_type().clone(), true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    #[test]
    fn evaluates_as_datafusion_on_arrays_with_nulls_slices_and_time_zones() {
        let ours = DateBin::udf();
        let theirs = datafusion::functions::datetime::date_bin();
        let minute = 60_000_000_000i64;
        let times = arrow_array::TimestampNanosecondArray::from(vec![
            Some(-minute - 1),
            None,
            Some(-1),
            Some(0),
            Some(minute + 5),
            Some(minute + 6),
            None,
            Some(3 * minute),
            Some(i64::MAX - 20),
            Some(i64::MAX - 9),
        ]);
        for tz in [None, Some("UTC")] {
            let times = times.clone().with_timezone_opt(tz);
            for (offset, len) in [(0, 10), (1, 6), (3, 4), (8, 2)] {
                let slice = times.slice(offset, len);
                for stride in [1, 7, minute] {
                    for origin in [None, Some(13), Some(-10), Some(-minute / 2)] {
                        let want = invoke(theirs.inner().as_ref(), stride, &slice, origin)
                            .unwrap()
                            .into_array(len)
                            .unwrap();
                        let got = invoke(ours.inner().as_ref(), stride, &slice, origin)
                            .unwrap()
                            .into_array(len)
                            .unwrap();
                        assert_eq!(
                            got.as_ref(),
                            want.as_ref(),
                            "tz {tz:?} rows {offset}+{len} stride {stride} origin {origin:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn months_and_non_positive_strides_are_left_to_datafusion() {
        use arrow_array::types::IntervalMonthDayNano;
        let months = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(1, 0, 0)));
        assert_eq!(stride_nanos(&months), None);
        let zero = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(0, 0, 0)));
        assert_eq!(stride_nanos(&zero), None);
        let day = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(0, 1, 5)));
        assert_eq!(stride_nanos(&day), Some(86_400_000_000_005));
    }
}
