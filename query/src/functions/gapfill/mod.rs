//! Gap filling for charts: `date_bin_gapfill`, `locf` and `interpolate`, as InfluxDB 3 and
//! TimescaleDB users know them.
//!
//! ```sql
//! SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, host,
//!        avg(usage), locf(avg(usage)), interpolate(max(usage))
//! FROM cpu WHERE time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T01:00:00Z'
//! GROUP BY minute, host ORDER BY host, minute
//! ```
//!
//! - `date_bin_gapfill(interval, time [, origin])` (alias `time_bucket_gapfill`) groups like
//!   `date_bin` (same buckets, origin 1970-01-01 by default) and then emits every bucket of
//!   the query's time range for each group, including empty ones. The range comes from the
//!   bounds on `time` in WHERE (`>=`, `>`, `<`, `<=`, `BETWEEN`, ANDed with anything
//!   else): from the bucket holding the lower bound to the bucket holding the last instant
//!   the upper bound admits. Both bounds are required.
//! - Groups are the other GROUP BY columns; a group without any row in the range is not
//!   invented.
//! - Aggregates of empty buckets are null, unless wrapped: `locf(agg)` carries the group's
//!   last non-null value forward (null before its first one); `interpolate(agg)` draws a
//!   straight line in time between the group's neighbouring non-null values (null before
//!   the first and after the last; numbers only). Both fill nulls of present buckets too.
//! - The interval must be positive and without months or years.
//!
//! How it works: an analyzer rule ([`GapFillRule`]) turns the aggregate's
//! `date_bin_gapfill` into `date_bin` and puts a [`GapFill`] node above it, which
//! `locf`/`interpolate` calls of the SELECT list become extra columns of; the
//! [`GapFillPlanner`] turns that node into a [`GapFillExec`], which reads the aggregate
//! ordered by group and bucket, one group at a time.

mod exec;
mod fill;
mod node;
mod planner;
mod rule;

use std::sync::Arc;

use arrow_schema::DataType;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

pub use exec::GapFillExec;
pub use fill::{FillStrategy, GapFillParams};
pub use node::{FillColumn, GapFill, TimeBound};
pub use planner::{GapFillPlanner, SextantQueryPlanner};
pub use rule::GapFillRule;

/// Name of the gap-filling bucket function.
pub const DATE_BIN_GAPFILL: &str = "date_bin_gapfill";
/// Name of the carry-forward fill.
pub const LOCF: &str = "locf";
/// Name of the linear fill.
pub const INTERPOLATE: &str = "interpolate";

/// `date_bin_gapfill(interval, time [, origin])`: `date_bin`'s buckets, every one of the
/// query's time range. Only meaningful in GROUP BY, where [`GapFillRule`] replaces it;
/// evaluated anywhere else it is an error.
///
/// ```sql
/// SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, locf(avg(usage)) FROM cpu
/// WHERE time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T01:00:00Z' GROUP BY m
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateBinGapFill {
    date_bin: Arc<ScalarUDF>,
    aliases: Vec<String>,
}

impl DateBinGapFill {
    /// The function, also known as `time_bucket_gapfill`.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(DateBinGapFill {
            date_bin: datafusion::functions::datetime::date_bin(),
            aliases: vec!["time_bucket_gapfill".to_string()],
        })
    }
}

impl ScalarUDFImpl for DateBinGapFill {
    fn name(&self) -> &str {
        DATE_BIN_GAPFILL
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        self.date_bin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.date_bin.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<arrow_schema::FieldRef> {
        self.date_bin.return_field_from_args(args)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "date_bin_gapfill can only be used in GROUP BY of a query with bounds on time in WHERE"
        )
    }
}

/// `locf(aggregate)` and `interpolate(aggregate)`: how a gap-filling query fills the
/// nulls of an aggregate column. Rewritten by [`GapFillRule`]; evaluated anywhere else
/// they are an error.
///
/// ```sql
/// SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m,
///        locf(avg(usage)), interpolate(max(usage))
/// FROM cpu WHERE time BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T00:59:59Z' GROUP BY m
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FillFunction {
    strategy: FillStrategy,
    signature: Signature,
}

impl FillFunction {
    /// `locf(value)`: last observation carried forward.
    pub fn locf() -> ScalarUDF {
        FillFunction::udf(FillStrategy::Locf)
    }

    /// `interpolate(value)`: linear interpolation in time.
    pub fn interpolate() -> ScalarUDF {
        FillFunction::udf(FillStrategy::Interpolate)
    }

    fn udf(strategy: FillStrategy) -> ScalarUDF {
        ScalarUDF::new_from_impl(FillFunction {
            strategy,
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for FillFunction {
    fn name(&self) -> &str {
        self.strategy.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let t = &arg_types[0];
        if self.strategy == FillStrategy::Interpolate && !fill::can_interpolate(t) {
            return plan_err!(
                "interpolate needs an integer or floating point value, not {t}; use locf to fill other types"
            );
        }
        Ok(t.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "{}(...) can only be used in the SELECT list of a query that groups by date_bin_gapfill",
            self.name()
        )
    }
}
