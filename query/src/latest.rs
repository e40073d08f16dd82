//! Latest row per series without scanning history.
//!
//! `SELECT DISTINCT ON (host) * FROM cpu ORDER BY host, time DESC` (the TSBS `lastpoint`
//! query) and `SELECT host, last_value(usage ORDER BY time) FROM cpu GROUP BY host` both
//! become an aggregate, grouped by tags, of `first_value(.. ORDER BY time DESC)` /
//! `last_value(.. ORDER BY time)` (and `max(time)`) over a table scan. The answer of such
//! an aggregate only depends on the latest row of each series: the latest row of a group
//! of series is the latest of their latest rows. This optimizer rule lets the scan return
//! only those rows, which the engine finds from the end of each segment and chunk.
//!
//! When the aggregate has group columns (all tags), the scan returns just the latest row
//! of each group and the aggregate becomes a projection of that row.
//!
//! The rule applies only when every filter was pushed into the scan (time ranges and tag
//! predicates): a filter on a field could reject a series' latest row and make an older
//! one the answer.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{AggregateFunction, NullTreatment};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, Projection, SortExpr};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use sextant_engine::ColumnType;

use crate::provider::{Rows, SextantTable};

/// Rewrites latest-row aggregates to read only each series' latest row.
#[derive(Debug, Default)]
pub struct LatestRowRule;

impl OptimizerRule for LatestRowRule {
    fn name(&self) -> &str {
        "sextant_latest_row"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let LogicalPlan::TableScan(scan) = agg.input.as_ref() else {
            return Ok(Transformed::no(plan));
        };
        let Ok(provider) = source_as_provider(&scan.source) else {
            return Ok(Transformed::no(plan));
        };
        let Some(table) = provider.downcast_ref::<SextantTable>() else {
            return Ok(Transformed::no(plan));
        };
        if table.rows() != &Rows::All || scan.fetch.is_some() {
            return Ok(Transformed::no(plan));
        }
        let Some(group_by) = qualifies(agg, table) else {
            return Ok(Transformed::no(plan));
        };
        let grouped = !group_by.is_empty();
        let mut new_scan = scan.clone();
        let rows = Rows::Latest {
            group_by: Some(group_by),
        };
        new_scan.source = provider_as_source(Arc::new(table.with_rows(rows)));
        let input = Arc::new(LogicalPlan::TableScan(new_scan));
        if !grouped {
            // Without groups the aggregate still has to answer (NULLs) over no rows.
            let new = Aggregate::try_new(input, agg.group_expr.clone(), agg.aggr_expr.clone())?;
            return Ok(Transformed::yes(LogicalPlan::Aggregate(new)));
        }
        // One row per group: each aggregate's value is its argument in that row.
        let exprs = agg
            .group_expr
            .iter()
            .chain(&agg.aggr_expr)
            .zip(agg.schema.iter())
            .map(|(e, (qualifier, field))| {
                let value = match unalias(e) {
                    Expr::AggregateFunction(f) => f.params.args[0].clone(),
                    e => e.clone(),
                };
                value.alias_qualified(qualifier.cloned(), field.name())
            })
            .collect::<Vec<_>>();
        let projection = Projection::try_new(exprs, input)?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    }
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => a.expr.as_ref(),
        e => e,
    }
}

/// If the aggregate groups by tags only and each aggregate picks the latest row: the
/// group's tags.
fn qualifies(agg: &Aggregate, table: &SextantTable) -> Option<Vec<String>> {
    let ty = |e: &Expr| match e {
        Expr::Column(c) => table.table_schema().column(&c.name).map(|d| d.ty),
        _ => None,
    };
    let mut groups = Vec::new();
    for g in &agg.group_expr {
        match (g, ty(g)) {
            (Expr::Column(c), Some(ColumnType::Tag)) => groups.push(c.name.clone()),
            _ => return None,
        }
    }
    let latest = !agg.aggr_expr.is_empty()
        && agg.aggr_expr.iter().all(|e| {
            let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
                return false;
            };
            if params.distinct
                || params.filter.is_some()
                || params.null_treatment == Some(NullTreatment::IgnoreNulls)
            {
                return false;
            }
            // Sort keys other than the group's own columns: exactly `time`, in the
            // direction that puts the latest row first (first_value) or last (last_value).
            let keys: Vec<&SortExpr> = params
                .order_by
                .iter()
                .filter(|s| !matches!(&s.expr, Expr::Column(c) if groups.contains(&c.name)))
                .collect();
            let by_time = |asc: bool| {
                keys.len() == 1 && keys[0].asc == asc && ty(&keys[0].expr) == Some(ColumnType::Time)
            };
            match func.name() {
                "first_value" => by_time(false),
                "last_value" => by_time(true),
                "max" => {
                    params.order_by.is_empty()
                        && params.args.len() == 1
                        && ty(&params.args[0]) == Some(ColumnType::Time)
                }
                _ => false,
            }
        });
    latest.then_some(groups)
}
