//! The analyzer rule that plans gap filling: `date_bin_gapfill` in GROUP BY becomes
//! `date_bin` under a [`GapFill`] node, and `locf`/`interpolate` calls above it become
//! the node's fill columns.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, Between, BinaryExpr, Expr, Extension, LogicalPlan, Operator,
};
use datafusion::optimizer::AnalyzerRule;

use super::fill::{FillStrategy, can_interpolate};
use super::node::{FillColumn, GapFill, TimeBound};
use super::{DATE_BIN_GAPFILL, INTERPOLATE, LOCF};

/// Plans gap-filling queries (see the [module docs](super)); rejects `date_bin_gapfill`,
/// `locf` and `interpolate` where they mean nothing.
#[derive(Debug, Default)]
pub struct GapFillRule;

impl AnalyzerRule for GapFillRule {
    fn name(&self) -> &str {
        "sextant_gap_fill"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let plan = plan.transform_up_with_subqueries(rewrite_node)?;
        if !plan.transformed {
            return Ok(plan.data);
        }
        // Aggregates above a GapFill node became nullable: refresh every schema.
        plan.data
            .transform_up_with_subqueries(|p| p.recompute_schema().map(Transformed::yes))
            .map(|t| t.data)
    }
}

fn calls(e: &Expr, names: &[&str]) -> bool {
    e.exists(|e| Ok(matches!(e, Expr::ScalarFunction(f) if names.contains(&f.func.name()))))
        .unwrap_or(false)
}

fn rewrite_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if let LogicalPlan::Aggregate(agg) = &node
        && agg.group_expr.iter().any(|e| calls(e, &[DATE_BIN_GAPFILL]))
    {
        if agg.aggr_expr.iter().any(|e| calls(e, &[LOCF, INTERPOLATE])) {
            return plan_err!(
                "locf and interpolate apply to an aggregate, as in locf(avg(usage)), and cannot be inside one"
            );
        }
        return Ok(Transformed::yes(plan_gap_fill(agg)?));
    }
    let exprs = node.expressions();
    if exprs.iter().any(|e| calls(e, &[LOCF, INTERPOLATE])) {
        return Ok(Transformed::yes(rewrite_fills(node)?));
    }
    if exprs.iter().any(|e| calls(e, &[DATE_BIN_GAPFILL])) {
        return plan_err!(
            "date_bin_gapfill can only be used in GROUP BY (as in SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, avg(x) ... GROUP BY m), with bounds on time in WHERE"
        );
    }
    Ok(Transformed::no(node))
}

/// The aggregate grouped by `date_bin` instead, under a `GapFill` node.
fn plan_gap_fill(agg: &Aggregate) -> Result<LogicalPlan> {
    let mut found = None;
    for (i, e) in agg.group_expr.iter().enumerate() {
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        match inner {
            Expr::ScalarFunction(f) if f.func.name() == DATE_BIN_GAPFILL => {
                if found.is_some() {
                    return plan_err!("a query can group by date_bin_gapfill only once");
                }
                found = Some((i, f.clone()));
            }
            e if calls(e, &[DATE_BIN_GAPFILL]) => {
                return plan_err!(
                    "date_bin_gapfill must be a GROUP BY expression of its own, not inside {} (GROUPING SETS, CUBE and ROLLUP are not supported with it)",
                    e.schema_name()
                );
            }
            _ => {}
        }
    }
    let Some((time_index, f)) = found else {
        return plan_err!("date_bin_gapfill must be a GROUP BY expression of its own");
    };
    let time = match f.args.get(1) {
        Some(Expr::Column(c)) => c.clone(),
        Some(other) => {
            return plan_err!(
                "date_bin_gapfill needs a time column as its second argument, not {}",
                other.schema_name()
            );
        }
        None => {
            return plan_err!(
                "date_bin_gapfill takes an interval, a time column and an optional origin"
            );
        }
    };
    if f.args.len() > 3 {
        return plan_err!(
            "date_bin_gapfill takes an interval, a time column and an optional origin"
        );
    }
    for (what, arg) in [("interval", f.args.first()), ("origin", f.args.get(2))] {
        if let Some(arg) = arg
            && arg.any_column_refs()
        {
            return plan_err!(
                "the {what} of date_bin_gapfill must be a constant, not {}",
                arg.schema_name()
            );
        }
    }

    let (lower, upper) = time_bounds(&agg.input, &time);
    if lower.is_empty() || upper.is_empty() {
        let missing = match (lower.is_empty(), upper.is_empty()) {
            (true, true) => "neither",
            (true, false) => "no lower bound",
            _ => "no upper bound",
        };
        let t = &time.name;
        return plan_err!(
            "date_bin_gapfill needs both a lower and an upper bound on {t} in WHERE (as in {t} >= '2026-01-01T00:00:00Z' AND {t} < '2026-01-02T00:00:00Z'), but the query has {missing}"
        );
    }

    let name = agg.group_expr[time_index].schema_name().to_string();
    let date_bin = datafusion::functions::datetime::date_bin();
    let mut group_expr = agg.group_expr.clone();
    group_expr[time_index] =
        Expr::ScalarFunction(ScalarFunction::new_udf(date_bin, f.args.clone())).alias(name);
    let aggregate = Aggregate::try_new(Arc::clone(&agg.input), group_expr, agg.aggr_expr.clone())?;
    let group_indices = (0..agg.group_expr.len())
        .filter(|&i| i != time_index)
        .collect();
    let node = GapFill::try_new(
        Arc::new(LogicalPlan::Aggregate(aggregate)),
        time_index,
        group_indices,
        f.args[0].clone(),
        f.args.get(2).cloned(),
        lower,
        upper,
        Vec::new(),
    )?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}

/// The bounds on `time` in the filters right under the aggregate.
fn time_bounds(input: &LogicalPlan, time: &Column) -> (Vec<TimeBound>, Vec<TimeBound>) {
    let mut lower = Vec::new();
    let mut upper = Vec::new();
    let mut plan = input;
    while let LogicalPlan::Filter(filter) = plan {
        for pred in split_conjunction(&filter.predicate) {
            let bound = |e: &Expr, inclusive| TimeBound {
                expr: e.clone(),
                inclusive,
            };
            match pred {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    let op = if is_time(left, time) && is_constant(right) {
                        Some((*op, right.as_ref()))
                    } else if is_constant(left) && is_time(right, time) {
                        op.swap().map(|op| (op, left.as_ref()))
                    } else {
                        None
                    };
                    match op {
                        Some((Operator::Gt, v)) => lower.push(bound(v, false)),
                        Some((Operator::GtEq, v)) => lower.push(bound(v, true)),
                        Some((Operator::Lt, v)) => upper.push(bound(v, false)),
                        Some((Operator::LtEq, v)) => upper.push(bound(v, true)),
                        Some((Operator::Eq, v)) => {
                            lower.push(bound(v, true));
                            upper.push(bound(v, true));
                        }
                        _ => {}
                    }
                }
                Expr::Between(Between {
                    expr,
                    negated: false,
                    low,
                    high,
                }) if is_time(expr, time) && is_constant(low) && is_constant(high) => {
                    lower.push(bound(low, true));
                    upper.push(bound(high, true));
                }
                _ => {}
            }
        }
        plan = filter.input.as_ref();
    }
    (lower, upper)
}

fn is_time(e: &Expr, time: &Column) -> bool {
    match e {
        Expr::Column(c) => {
            c.name == time.name
                && (c.relation.is_none() || time.relation.is_none() || c.relation == time.relation)
        }
        // Only casts that keep the instant (to another timestamp unit or zone): a bound on
        // `CAST(time AS DATE)` or on an integer cast is not a bound on the instant.
        Expr::Cast(c) => is_timestamp(c.field.data_type()) && is_time(&c.expr, time),
        Expr::TryCast(c) => is_timestamp(c.field.data_type()) && is_time(&c.expr, time),
        _ => false,
    }
}

fn is_timestamp(t: &arrow_schema::DataType) -> bool {
    matches!(t, arrow_schema::DataType::Timestamp(..))
}

fn is_constant(e: &Expr) -> bool {
    !e.any_column_refs() && !e.is_volatile()
}

/// `node` with its `locf`/`interpolate` calls replaced by fill columns of the `GapFill`
/// node beneath it.
fn rewrite_fills(node: LogicalPlan) -> Result<LogicalPlan> {
    let inputs = node.inputs();
    let Some(gap_fill) = inputs
        .first()
        .and_then(|i| find_gap_fill(i))
        .filter(|_| inputs.len() == 1)
    else {
        return plan_err!(
            "locf and interpolate can only be used in the SELECT list of a query that groups by date_bin_gapfill(...)"
        );
    };
    let source = gap_fill.input.schema();
    let mut fills = Vec::new();
    let names = NamePreserver::new(&node);
    let exprs = node
        .expressions()
        .into_iter()
        .map(|e| {
            let saved = names.save(&e);
            let e = e.transform_up(|e| fill_call(e, &gap_fill, source, &mut fills))?;
            Ok(saved.restore(e.data))
        })
        .collect::<Result<Vec<_>>>()?;
    let new_input = replace_gap_fill(inputs[0], &gap_fill.with_fills(fills)?)?;
    node.with_new_exprs(exprs, vec![new_input])
}

fn fill_call(
    e: Expr,
    gap_fill: &GapFill,
    source: &DFSchema,
    fills: &mut Vec<FillColumn>,
) -> Result<Transformed<Expr>> {
    let Expr::ScalarFunction(f) = &e else {
        return Ok(Transformed::no(e));
    };
    let strategy = match f.func.name() {
        LOCF => FillStrategy::Locf,
        INTERPOLATE => FillStrategy::Interpolate,
        _ => return Ok(Transformed::no(e)),
    };
    let name = strategy.name();
    let column = match f.args.as_slice() {
        [Expr::Column(c)] => c,
        [other] => {
            return plan_err!(
                "{name} takes an aggregate, as in {name}(avg(usage)), not {}; put arithmetic outside, as in {name}(avg(usage)) * 2",
                other.schema_name()
            );
        }
        _ => return plan_err!("{name} takes one argument, an aggregate such as avg(usage)"),
    };
    let Ok(index) = source.index_of_column(column) else {
        return plan_err!(
            "{name} takes an aggregate of the gap-filled query, as in {name}(avg(usage)), not {column} (locf and interpolate do not nest)"
        );
    };
    if index == gap_fill.time_index || gap_fill.group_indices.contains(&index) {
        // GROUP BY columns are never null: nothing to fill.
        return Ok(Transformed::yes(Expr::Column(column.clone())));
    }
    let t = source.field(index).data_type();
    if strategy == FillStrategy::Interpolate && !can_interpolate(t) {
        return plan_err!(
            "interpolate needs an integer or floating point value, not {t}; use locf to fill other types"
        );
    }
    let out = e.schema_name().to_string();
    fills.push(FillColumn {
        name: out.clone(),
        source: index,
        strategy,
    });
    Ok(Transformed::yes(Expr::Column(Column::from_name(out))))
}

/// The `GapFill` node under `plan`, through HAVING filters and window nodes.
fn find_gap_fill(plan: &LogicalPlan) -> Option<GapFill> {
    match plan {
        LogicalPlan::Extension(ext) => ext.node.as_any().downcast_ref::<GapFill>().cloned(),
        LogicalPlan::Filter(f) => find_gap_fill(&f.input),
        LogicalPlan::Window(w) => find_gap_fill(&w.input),
        _ => None,
    }
}

/// `plan` with the `GapFill` node that [`find_gap_fill`] finds replaced by `new`.
fn replace_gap_fill(plan: &LogicalPlan, new: &GapFill) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Extension(_) => Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(new.clone()),
        })),
        _ => {
            let child = replace_gap_fill(plan.inputs()[0], new)?;
            plan.with_new_exprs(plan.expressions(), vec![child])
        }
    }
}
