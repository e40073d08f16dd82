//! Physical planning of the `GapFill` node: its constants are evaluated here, so that
//! `now()` in a bound means the query's start, as everywhere else in the query.

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Schema, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue, internal_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::exec::GapFillExec;
use super::fill::{GapFillParams, unit_nanos};
use super::node::{GapFill, TimeBound};

/// The session's query planner: DataFusion's, plus Sextant's extension nodes.
#[derive(Debug, Default)]
pub struct SextantQueryPlanner;

#[async_trait]
impl QueryPlanner for SextantQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(GapFillPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// Plans [`GapFill`] nodes as [`GapFillExec`].
#[derive(Debug, Default)]
pub struct GapFillPlanner;

#[async_trait]
impl ExtensionPlanner for GapFillPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(gap_fill) = node.as_any().downcast_ref::<GapFill>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("GapFill has one input");
        };
        let eval = |e: &Expr| evaluate(e, planner, session, planning_ctx);
        let stride = stride_nanos(&eval(&gap_fill.stride)?)?;
        let origin = match &gap_fill.origin {
            Some(e) => nanos(&eval(e)?, "origin")?,
            None => 0,
        };
        let time_type = gap_fill
            .input
            .schema()
            .field(gap_fill.time_index)
            .data_type();
        let unit = unit_nanos(time_type)?;
        if stride % unit != 0 {
            return plan_err!(
                "the interval of date_bin_gapfill must be a whole number of the time column's unit ({unit} ns), not {stride} ns"
            );
        }
        // Exclusive bounds move by one unit of the time column.
        let bound = |b: &TimeBound, step: i64| -> Result<i64> {
            let v = nanos(&eval(&b.expr)?, "time bound")?;
            Ok(if b.inclusive {
                v
            } else {
                v.saturating_add(step)
            })
        };
        let mut lower = i64::MIN;
        for b in &gap_fill.lower {
            lower = lower.max(bound(b, unit)?);
        }
        let mut upper = i64::MAX;
        for b in &gap_fill.upper {
            upper = upper.min(bound(b, -unit)?);
        }
        let fills = gap_fill
            .fills
            .iter()
            .map(|f| (f.source, f.strategy))
            .collect();
        let params = GapFillParams::new(
            stride,
            origin,
            lower,
            upper,
            gap_fill.time_index,
            gap_fill.group_indices.clone(),
            fills,
        )?;
        let schema = Arc::clone(node.schema().inner());
        Ok(Some(Arc::new(GapFillExec::new(
            Arc::clone(input),
            params,
            schema,
        ))))
    }
}

/// The value of a constant expression.
fn evaluate(
    expr: &Expr,
    planner: &dyn PhysicalPlanner,
    session: &dyn Session,
    planning_ctx: &PhysicalPlanningContext,
) -> Result<ScalarValue> {
    let physical = planner.create_physical_expr(expr, &DFSchema::empty(), session, planning_ctx)?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&batch)? {
        ColumnarValue::Scalar(s) => Ok(s),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
    }
}

/// A timestamp constant in nanoseconds since the epoch.
fn nanos(v: &ScalarValue, what: &str) -> Result<i64> {
    match v.cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, None)) {
        Ok(ScalarValue::TimestampNanosecond(Some(n), _)) => Ok(n),
        Ok(_) => plan_err!("the {what} of date_bin_gapfill is null"),
        Err(_) => plan_err!("the {what} of date_bin_gapfill must be a timestamp, not {v}"),
    }
}

/// An interval constant in nanoseconds, as `date_bin` reads its stride; months are
/// refused (their length varies).
fn stride_nanos(v: &ScalarValue) -> Result<i64> {
    if let Some(n) = crate::functions::date_bin::stride_nanos(v) {
        return Ok(n);
    }
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months != 0 => plan_err!(
            "date_bin_gapfill does not support intervals of months or years ({v}); use days, hours, minutes or seconds"
        ),
        ScalarValue::IntervalMonthDayNano(Some(_)) | ScalarValue::IntervalDayTime(Some(_)) => {
            plan_err!("date_bin_gapfill needs a positive interval, not {v}")
        }
        other => {
            plan_err!("the first argument of date_bin_gapfill must be an interval, not {other}")
        }
    }
}
