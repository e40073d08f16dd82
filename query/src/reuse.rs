//! Physical plans run again: a query's text seen before skips DataFusion's optimizer and
//! physical planner (about 0.6 ms of a one-host query) when its plan can be run again
//! over the rows of a later moment.
//!
//! A physical plan can be when nothing in it was decided by the rows it first read or by
//! the moment it was planned:
//!
//! - no function in it is other than immutable: `now()` is folded into a constant by
//!   the optimizer, so a plan of `time > now() - INTERVAL '1 hour'` is planned each time;
//! - every table it reads is an engine table, and every leaf is a Sextant scan or a
//!   node without input rows (`EmptyExec`, `PlaceholderRowExec`): a system table's rows
//!   are copied into its plan, and its `count(*)` answered there from its statistics;
//! - no operator fills a filter while it runs (DataFusion's dynamic filters: a hash
//!   join's keys, a top-k's bound, `max(x)` without groups), and no scan holds one: the
//!   filter would be shared by every run, with the values of the last, and an
//!   aggregate's is kept across runs by DataFusion itself.
//!
//! What the first planning read from the rows (the estimates that set a scan's number of
//! partitions and a join's sides) only tunes the work. Each run takes a new snapshot for
//! all its scans ([`renew`]), and every other operator is rebuilt with its state reset
//! ([`ExecutionPlan::reset_state`]), so that runs never share state, even at once.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use sextant_engine::Snapshot;

use crate::exec::SextantScanExec;
use crate::provider::SextantTable;

/// Whether `physical`, planned from `logical`, may be run again by [`renew`].
pub(crate) fn reusable(logical: &LogicalPlan, physical: &Arc<dyn ExecutionPlan>) -> bool {
    reads_only_engine_tables(logical) && immutable(logical) && renewable(physical)
}

/// Whether every table `plan` (and its subqueries) reads is an engine table. Another
/// table's rows can be folded into the plan itself: the physical optimizer answers
/// `count(*)` of a system table from its exact statistics.
fn reads_only_engine_tables(plan: &LogicalPlan) -> bool {
    let mut yes = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && !source_as_provider(&scan.source)
                .is_ok_and(|p| p.downcast_ref::<SextantTable>().is_some())
        {
            yes = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    yes
}

/// Whether every function in `plan` (and its subqueries) is immutable.
fn immutable(plan: &LogicalPlan) -> bool {
    let mut yes = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let volatility = match e {
                    Expr::ScalarFunction(f) => Some(f.func.signature().volatility),
                    Expr::AggregateFunction(f) => Some(f.func.signature().volatility),
                    Expr::WindowFunction(f) => Some(f.fun.signature().volatility),
                    _ => None,
                };
                if volatility.is_some_and(|v| v != Volatility::Immutable) {
                    yes = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if yes {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    yes
}

/// Whether every node of `plan` can be renewed (see the module documentation).
fn renewable(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        return !scan.has_runtime_filters();
    }
    let children = plan.children();
    if children.is_empty() {
        return plan.downcast_ref::<EmptyExec>().is_some()
            || plan.downcast_ref::<PlaceholderRowExec>().is_some();
    }
    plan.dynamic_expressions_produced().is_empty() && children.into_iter().all(renewable)
}

/// A copy of `plan` (which [`reusable`] accepted) to run once more: its scans read
/// `snapshot`, and every other node is new, its state reset.
pub(crate) fn renew(
    plan: &Arc<dyn ExecutionPlan>,
    snapshot: &Arc<Snapshot>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        return Ok(Arc::new(scan.with_snapshot(Arc::clone(snapshot))));
    }
    let children = plan
        .children()
        .into_iter()
        .map(|child| renew(child, snapshot))
        .collect::<Result<Vec<_>>>()?;
    // The new children have the old ones' properties: same scans, same operators.
    let rebuilt = Arc::clone(plan).replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
    )?;
    rebuilt.reset_state()
}

#[cfg(test)]
mod tests {
    use arrow_array::RecordBatch;
    use sextant_engine::Point;

    use crate::Database;

    const MIN: i64 = 60_000_000_000;

    fn write(db: &Database, minutes: std::ops::Range<i64>) {
        let mut points = Vec::new();
        for host in ["a", "b"] {
            for m in minutes.clone() {
                points.push(
                    Point::metric("cpu")
                        .tag("host", host)
                        .field("usage", m as f64)
                        .time(m * MIN),
                );
            }
        }
        db.write_points(&points).unwrap();
    }

    fn text(batches: &[RecordBatch]) -> String {
        arrow_cast::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string()
    }

    /// A kept plan run again answers as the same SQL planned afresh does, after writes,
    /// flushes, deletes and compaction, and holds no merged segment.
    #[test]
    fn a_kept_plan_reads_the_rows_of_each_run() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let sql = "SELECT host, date_bin(INTERVAL '10 minutes', time) AS t, count(*) AS n, \
                   max(usage) AS m, avg(usage) AS a FROM cpu \
                   WHERE time < '1970-01-01T01:00:00Z' GROUP BY host, t ORDER BY host, t";
        write(&db, 0..5);
        db.sql(sql).unwrap();
        assert!(db.physical_plan_kept(sql));
        let steps: [&dyn Fn(&Database); 5] = [
            &|db| write(db, 5..30),
            &|db| db.flush().unwrap(),
            &|db| write(db, 30..90),
            &|db| {
                db.sql("DELETE FROM cpu WHERE host = 'b' AND time < '1970-01-01T00:20:00Z'")
                    .unwrap();
            },
            &|db| db.compact("cpu").unwrap(),
        ];
        for (i, step) in steps.iter().enumerate() {
            step(&db);
            let again = text(&db.sql(sql).unwrap());
            // Other text is planned afresh.
            let fresh = format!("{sql}{}", " ".repeat(i + 1));
            assert_eq!(again, text(&db.sql(&fresh).unwrap()));
        }
        assert!(
            text(&db.sql(sql).unwrap())
                .contains("| b    | 1970-01-01T00:50:00Z | 10 | 59.0 | 54.5 |")
        );
        let segments = std::fs::read_dir(dir.path().join("cpu"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
                })
                .count()
            })
            .unwrap_or(0);
        assert!(segments <= 1, "{segments} segments left after compaction");
    }

    /// Plans that depend on the moment or fill filters while they run are planned each
    /// time, and still answer right.
    #[test]
    fn plans_of_now_and_of_filled_filters_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        write(&db, 0..10);
        let queries = [
            "SELECT count(*) AS n FROM cpu WHERE time > now() - INTERVAL '100 years'",
            "SELECT host, usage FROM cpu ORDER BY usage DESC, host LIMIT 1",
            "SELECT a.host, count(*) AS n FROM cpu a JOIN cpu b ON a.host = b.host \
             AND a.time = b.time GROUP BY a.host ORDER BY a.host",
        ];
        let before: Vec<String> = queries.iter().map(|q| text(&db.sql(q).unwrap())).collect();
        for q in queries {
            assert!(!db.physical_plan_kept(q), "kept: {q}");
            assert!(db.plan_kept(q), "its statement is kept: {q}");
        }
        write(&db, 10..20);
        for (q, old) in queries.iter().zip(&before) {
            let new = text(&db.sql(q).unwrap());
            assert_ne!(&new, old, "{q}");
        }
        assert!(text(&db.sql(queries[1]).unwrap()).contains("19"));
    }
}
