//! Physical plans run again: a query's text seen before (and a prepared statement run
//! with the values of its run before) skips DataFusion's optimizer and physical planner
//! (about 0.6 ms of a one-host query) when its plan can be run again over the rows of a
//! later moment.
//!
//! A physical plan can be when nothing in it was decided by the rows it first read or by
//! the moment it was planned, and no state of one run can reach another:
//!
//! - no function in it is other than immutable: `now()` is folded into a constant by
//!   the optimizer, so a plan of `time > now() - INTERVAL '1 hour'` is planned each time;
//!   nor does it read a session variable (`@@name`), which the planner folds too;
//! - every table it reads is an engine table, and every leaf is a Sextant scan or a
//!   node without input rows (`EmptyExec`, `PlaceholderRowExec`): a system table's rows
//!   are copied into its plan, and its `count(*)` answered there from its statistics;
//! - every node is of a kind known to keep no state across runs once rebuilt
//!   ([`RENEWABLE`]); DataFusion's default [`ExecutionPlan::reset_state`] does not promise
//!   that (a scalar subquery's node shares its results with the expressions that read
//!   them, which a rebuilt node does not renew);
//! - no node fills a filter while it runs (DataFusion's dynamic filters: a hash join's
//!   keys, `max(x)` without groups), and no scan holds one: the filter would be shared
//!   by every run. A top-k sort (`ORDER BY .. LIMIT`) fills one with its bound, and gets
//!   a new one when renewed: its plan is kept when no other node holds that filter.
//!
//! What the first planning read from the rows (the estimates that set a scan's number of
//! partitions and a join's sides) only tunes the work; a kept plan is planned again once
//! the tables it reads hold more than twice, or less than half, the rows they held then
//! (see [`Kept::renew`]). Each run takes a new snapshot for all its scans, and every
//! other node is rebuilt with its state reset, so that runs never share state, even at
//! once. The plan kept reads an empty snapshot, so that it holds no segment alive.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use sextant_engine::Snapshot;

use crate::exec::SextantScanExec;
use crate::provider::each_scan;

/// The nodes a kept plan may hold: each, rebuilt by `replace_children` and
/// `reset_state`, starts afresh (checked against DataFusion 55's sources and ours), and
/// none evaluates an expression holding state of its own.
const RENEWABLE: &[&str] = &[
    // Leaves.
    "SextantScanExec",
    "EmptyExec",
    "PlaceholderRowExec",
    // Sextant's operators.
    "RunAggregateExec",
    "BucketAggregateExec",
    "RecentFirstExec",
    "GapFillExec",
    // DataFusion's, as the TSBS and log queries use them.
    "ProjectionExec",
    "FilterExec",
    "AggregateExec",
    "SortExec",
    // A top-k sort (`ORDER BY .. LIMIT`): see RENEWS_ITS_FILTER.
    "SortExec(TopK)",
    "SortPreservingMergeExec",
    "CoalescePartitionsExec",
    "CoalesceBatchesExec",
    "RepartitionExec",
    "GlobalLimitExec",
    "LocalLimitExec",
    "BoundedWindowAggExec",
    "WindowAggExec",
    "UnionExec",
    "CooperativeExec",
];

/// Rows below which a change in a table's size never calls for planning again: a plan's
/// choices (one partition or several) change only past 100,000 rows, or a quarter of
/// that for a scan of a string column (see `STRING_ROW_COST` in the provider), which a
/// kept plan of a small table may then cross without being planned again.
const SLACK_ROWS: u64 = 50_000;

/// A physical plan kept to run again (see the [module](self) documentation).
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// Reading an empty snapshot.
    plan: Arc<dyn ExecutionPlan>,
    /// The engine tables its scans read.
    tables: Vec<String>,
    /// Their rows when it was planned.
    rows: u64,
}

impl Kept {
    /// `physical`, planned from `logical`, kept if it can be run again.
    pub fn of(logical: &LogicalPlan, physical: &Arc<dyn ExecutionPlan>) -> Result<Option<Kept>> {
        if !(reads_only_engine_tables(logical) && immutable(logical) && renewable(physical)) {
            return Ok(None);
        }
        let mut tables = BTreeSet::new();
        let mut snapshot = None;
        scans(physical, &mut |scan| {
            tables.insert(scan.request().table.clone());
            snapshot.get_or_insert_with(|| Arc::clone(scan.snapshot()));
        });
        let tables: Vec<String> = tables.into_iter().collect();
        let rows = snapshot.map_or(0, |s| rows_of(&s, &tables));
        Ok(Some(Kept {
            plan: renew(physical, &Arc::new(Snapshot::default()))?,
            tables,
            rows,
        }))
    }

    /// The plan renewed to run over `snapshot`; `None` when it should be planned again
    /// (its tables grew or shrank past twice or half their rows, or renewing it failed).
    pub fn renew(&self, snapshot: &Arc<Snapshot>) -> Option<Arc<dyn ExecutionPlan>> {
        let now = rows_of(snapshot, &self.tables);
        let (small, large) = (now.min(self.rows), now.max(self.rows));
        if large > small.saturating_mul(2).saturating_add(SLACK_ROWS) {
            return None;
        }
        renew(&self.plan, snapshot).ok()
    }
}

/// The rows of `tables` in `snapshot` (segments and memory).
fn rows_of(snapshot: &Snapshot, tables: &[String]) -> u64 {
    tables
        .iter()
        .filter_map(|t| snapshot.stats(t).ok())
        .map(|s| s.segment_rows() + s.memory_rows as u64)
        .sum()
}

/// Calls `f` with each Sextant scan of `plan`.
fn scans(plan: &Arc<dyn ExecutionPlan>, f: &mut dyn FnMut(&SextantScanExec)) {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        f(scan);
    }
    for child in plan.children() {
        scans(child, f);
    }
}

/// Whether every table `plan` (and its subqueries) reads is an engine table. Another
/// table's rows can be folded into the plan itself: the physical optimizer answers
/// `count(*)` of a system table from its exact statistics.
fn reads_only_engine_tables(plan: &LogicalPlan) -> bool {
    let mut yes = true;
    each_scan(plan, |_, table| {
        yes = table.is_some();
        yes
    });
    yes
}

/// Whether every function in `plan` (and its subqueries) is immutable, and no
/// expression reads a session variable.
fn immutable(plan: &LogicalPlan) -> bool {
    let mut yes = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let fixed = match e {
                    Expr::ScalarFunction(f) => {
                        f.func.signature().volatility == Volatility::Immutable
                    }
                    Expr::AggregateFunction(f) => {
                        f.func.signature().volatility == Volatility::Immutable
                    }
                    Expr::WindowFunction(f) => {
                        f.fun.signature().volatility == Volatility::Immutable
                    }
                    Expr::ScalarVariable(..) => false,
                    _ => true,
                };
                if !fixed {
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

/// The nodes among [`RENEWABLE`] that may fill a filter while they run, as each one's
/// `reset_state` gives it a new filter: a top-k sort (`ORDER BY .. LIMIT`) keeps its
/// bound in one (checked against DataFusion 55's `SortExec::reset_state`).
const RENEWS_ITS_FILTER: &[&str] = &["SortExec(TopK)"];

/// Whether every node of `plan` can be renewed (see the module documentation).
fn renewable(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut filled = BTreeSet::new();
    nodes_renewable(plan, &mut filled) && !read_by_others(plan, &filled)
}

/// Whether every node of `plan` is renewable on its own; the ids of the filters its
/// nodes fill go into `filled`.
fn nodes_renewable(plan: &Arc<dyn ExecutionPlan>, filled: &mut BTreeSet<u64>) -> bool {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        return !scan.has_runtime_filters();
    }
    let name = plan.name();
    if !RENEWABLE.contains(&name) {
        return false;
    }
    for filter in plan.dynamic_expressions_produced() {
        match filter.expression_id() {
            Some(id) if RENEWS_ITS_FILTER.contains(&name) => filled.insert(id),
            _ => return false,
        };
    }
    plan.children()
        .into_iter()
        .all(|child| nodes_renewable(child, filled))
}

/// Whether a node of `plan` holds one of the `filled` filters that it does not fill
/// itself (a filter pushed into another node): its renewed filler would fill a new
/// filter, and the holder would go on reading the old one.
fn read_by_others(plan: &Arc<dyn ExecutionPlan>, filled: &BTreeSet<u64>) -> bool {
    if filled.is_empty() {
        return false;
    }
    let own: BTreeSet<u64> = plan
        .dynamic_expressions_produced()
        .iter()
        .filter_map(|f| f.expression_id())
        .collect();
    let mut read = false;
    let _ = plan.apply_expressions(&mut |root| {
        root.apply(|e| {
            if let Some(id) = e.expression_id()
                && filled.contains(&id)
                && !own.contains(&id)
            {
                read = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    read || plan
        .children()
        .into_iter()
        .any(|child| read_by_others(child, filled))
}

/// A copy of `plan` (which [`Kept::of`] accepted) to run once more: its scans read
/// `snapshot`, and every other node is new, its state reset.
fn renew(
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
            // A top-k's bound that the scan holds too (it compares a tag).
            "SELECT host, usage FROM cpu ORDER BY usage DESC, host LIMIT 1",
            "SELECT a.host, count(*) AS n FROM cpu a JOIN cpu b ON a.host = b.host \
             AND a.time = b.time GROUP BY a.host ORDER BY a.host",
            "SELECT host, usage FROM cpu WHERE usage > (SELECT avg(usage) FROM cpu) \
             ORDER BY host, usage",
            "SELECT count(*) AS n FROM sextant.segments",
        ];
        let before: Vec<String> = queries.iter().map(|q| text(&db.sql(q).unwrap())).collect();
        for q in queries {
            assert!(!db.physical_plan_kept(q), "kept: {q}");
            assert!(db.plan_kept(q), "its statement is kept: {q}");
        }
        write(&db, 10..20);
        db.flush().unwrap();
        for (q, old) in queries.iter().zip(&before) {
            let new = text(&db.sql(q).unwrap());
            assert_ne!(&new, old, "{q}");
        }
        assert!(text(&db.sql(queries[1]).unwrap()).contains("19"));
    }

    /// A top-k whose bound another node holds (as DataFusion puts it into a `FilterExec`
    /// above a plain sort below the top-k) is not kept; the same top-k alone is.
    #[test]
    fn a_top_k_whose_bound_another_node_holds_is_not_renewable() {
        use std::sync::Arc;

        use arrow_schema::{DataType, Field, Schema};
        use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions::col};
        use datafusion::physical_plan::ExecutionPlan;
        use datafusion::physical_plan::empty::EmptyExec;
        use datafusion::physical_plan::filter::FilterExec;
        use datafusion::physical_plan::sorts::sort::SortExec;

        use super::{ChildrenPropertiesMode, ReplaceChildrenOptions};

        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let input: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::clone(&schema)));
        let order =
            LexOrdering::new([PhysicalSortExpr::new_default(col("x", &schema).unwrap())]).unwrap();
        let top = Arc::new(SortExec::new(order, Arc::clone(&input)).with_fetch(Some(1)));
        assert!(super::renewable(
            &(Arc::clone(&top) as Arc<dyn ExecutionPlan>)
        ));
        let bound = top.dynamic_expressions_produced().remove(0);
        let holder: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(bound, input).unwrap());
        let plan = Arc::clone(&top)
            .replace_children(
                vec![holder],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
            )
            .unwrap();
        assert_eq!(plan.dynamic_expressions_produced().len(), 1);
        assert!(!super::renewable(&plan));
    }

    /// A top-k whose bound no other node reads is kept: each run fills a bound of its
    /// own, also two runs at once.
    #[test]
    fn a_kept_top_k_fills_a_bound_of_its_own_in_each_run() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        write(&db, 0..10);
        let queries = [
            "SELECT host, max(usage) AS m FROM cpu GROUP BY host ORDER BY m DESC, host LIMIT 1",
            "SELECT date_bin(INTERVAL '2 minutes', time) AS t, max(usage) AS m FROM cpu \
             WHERE time < '1970-01-01T01:00:00Z' GROUP BY t ORDER BY t DESC LIMIT 2",
        ];
        let rt = db.runtime().clone();
        for (i, q) in queries.iter().enumerate() {
            let first = text(&db.sql(q).unwrap());
            assert!(db.physical_plan_kept(q), "not kept: {q}");
            // A run started before the writes reads its own moment, with its own bound.
            let stream = rt.block_on(db.sql_stream(q)).unwrap();
            write(&db, 10 * (i as i64 + 1)..10 * (i as i64 + 2));
            let again = text(&db.sql(q).unwrap());
            assert_ne!(again, first, "{q}");
            assert_eq!(again, text(&db.sql(&format!("{q} ")).unwrap()), "{q}");
            let streamed = rt
                .block_on(datafusion::physical_plan::common::collect(stream))
                .unwrap();
            assert_eq!(text(&streamed), first, "{q}");
        }
    }

    /// A one-host query by time bucket, answered by `BucketAggregateExec`, is kept and
    /// each run reads the rows of its own moment.
    #[test]
    fn a_kept_bucket_aggregate_reads_the_rows_of_each_run() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        write(&db, 0..10);
        let sql = "SELECT date_bin(INTERVAL '2 minutes', time) AS t, max(usage) AS m, \
                   count(*) AS n FROM cpu WHERE host = 'a' GROUP BY t ORDER BY t";
        let plan = text(&db.sql(&format!("EXPLAIN {sql}")).unwrap());
        assert!(plan.contains("BucketAggregateExec"), "{plan}");
        let first = text(&db.sql(sql).unwrap());
        assert!(db.physical_plan_kept(sql));
        write(&db, 10..20);
        let again = text(&db.sql(sql).unwrap());
        assert_ne!(again, first);
        assert_eq!(again, text(&db.sql(&format!("{sql} ")).unwrap()));
    }

    /// Two runs of one kept plan at once each read the rows of their own moment.
    #[test]
    fn runs_of_a_kept_plan_at_once_do_not_share_rows_or_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        write(&db, 0..10);
        let sql =
            "SELECT host, count(*) AS n, sum(usage) AS s FROM cpu GROUP BY host ORDER BY host";
        let first = text(&db.sql(sql).unwrap());
        assert!(db.physical_plan_kept(sql));
        let rt = db.runtime().clone();
        let stream = rt.block_on(db.sql_stream(sql)).unwrap();
        write(&db, 10..20);
        let second = text(&db.sql(sql).unwrap());
        assert_ne!(first, second);
        let streamed = rt
            .block_on(datafusion::physical_plan::common::collect(stream))
            .unwrap();
        assert_eq!(text(&streamed), first);
    }
}
