//! `ORDER BY time DESC LIMIT n` (and `ASC`) without scanning history.
//!
//! A top-n sort whose first key is a Sextant table's `time` column needs only the rows of
//! the most recent (or earliest) stretch of time that holds n rows. [`TopByTimeRule`] puts
//! a [`RecentFirstExec`] under such a sort. It runs the sort's input on successive time
//! ranges, starting at the newest (oldest) row of the table, each range as wide as three
//! times all earlier ones together, and stops as soon as the rows it has reach n. Every
//! row later (earlier) than the last range's far end is then in hand, so the sort above
//! still picks the exact answer, ties and further sort keys included.
//!
//! The input may hold projections, filters, coalescing, repartitioning and cooperative
//! scheduling wrappers between the sort
//! and the scan: a filter DataFusion evaluates (say `level >= 'error'`) just makes the
//! ranges grow until enough rows pass it, or the table's whole range is read.

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, collect,
};
use futures::StreamExt;

use crate::exec::SextantScanExec;

/// Top-n sorts of more rows than this scan history as before: the ranges' rows are held
/// in memory until the sort takes them.
const MAX_FETCH: usize = 1_000_000;

/// Puts a [`RecentFirstExec`] under each top-n sort on a Sextant table's `time`.
#[derive(Debug, Default)]
pub struct TopByTimeRule;

impl PhysicalOptimizerRule for TopByTimeRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(fetch) = sort.fetch().filter(|&f| f <= MAX_FETCH) else {
                return Ok(Transformed::no(node));
            };
            let first = &sort.expr()[0];
            let Some(column) = first.expr.downcast_ref::<Column>() else {
                return Ok(Transformed::no(node));
            };
            let input = sort.input();
            if input.is::<RecentFirstExec>() || !reaches_time(input, column.index()) {
                return Ok(Transformed::no(node));
            }
            let recent = RecentFirstExec::new(input.clone(), fetch, first.options.descending);
            let new_sort = SortExec::new(sort.expr().clone(), Arc::new(recent))
                .with_fetch(Some(fetch))
                .with_preserve_partitioning(false);
            Ok(Transformed::yes(
                Arc::new(new_sort) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sextant_top_by_time"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether output column `index` of `plan` is the `time` column of a Sextant scan that
/// returns every row, through nodes that pass rows and that column along unchanged.
fn reaches_time(plan: &Arc<dyn ExecutionPlan>, index: usize) -> bool {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        let field = scan.schema().fields().get(index).cloned();
        return scan.is_plain()
            && field.is_some_and(|f| {
                f.name() == "time" && matches!(f.data_type(), DataType::Timestamp(..))
            });
    }
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        return p
            .expr()
            .get(index)
            .and_then(|e| e.expr.downcast_ref::<Column>())
            .is_some_and(|c| reaches_time(p.input(), c.index()));
    }
    if let Some(f) = plan.downcast_ref::<FilterExec>() {
        let index = match f.projection() {
            Some(p) => match p.get(index) {
                Some(&i) => i,
                None => return false,
            },
            None => index,
        };
        return reaches_time(f.input(), index);
    }
    let passes = plan.is::<CoalescePartitionsExec>()
        || plan.is::<RepartitionExec>()
        || plan.is::<CooperativeExec>();
    passes && reaches_time(plan.children()[0], index)
}

/// Runs its input on widening time ranges from the newest (or oldest) row until the rows
/// reach `fetch`; see the [module](self) documentation. One output partition.
#[derive(Debug)]
pub struct RecentFirstExec {
    input: Arc<dyn ExecutionPlan>,
    fetch: usize,
    descending: bool,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl RecentFirstExec {
    /// Reads `input` newest first (`descending`) or oldest first until it has `fetch` rows.
    pub fn new(input: Arc<dyn ExecutionPlan>, fetch: usize, descending: bool) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        RecentFirstExec {
            input,
            fetch,
            descending,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for RecentFirstExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = if self.descending { "newest" } else { "oldest" };
        write!(
            f,
            "RecentFirstExec: {order} time ranges first, until {} rows",
            self.fetch
        )
    }
}

impl ExecutionPlan for RecentFirstExec {
    fn name(&self) -> &str {
        "RecentFirstExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.len() {
            1 => Ok(Arc::new(RecentFirstExec::new(
                children.remove(0),
                self.fetch,
                self.descending,
            ))),
            n => Err(DataFusionError::Internal(format!(
                "RecentFirstExec has one child, was given {n}"
            ))),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "RecentFirstExec has one partition, was asked for {partition}"
            )));
        }
        let run = Run {
            input: self.input.clone(),
            fetch: self.fetch,
            descending: self.descending,
            context,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            ranges: MetricBuilder::new(&self.metrics).counter("time_ranges_read", partition),
        };
        let batches = futures::stream::once(run.batches())
            .map(|r| match r {
                Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.input.schema(),
            batches,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One execution of a [`RecentFirstExec`].
struct Run {
    input: Arc<dyn ExecutionPlan>,
    fetch: usize,
    descending: bool,
    context: Arc<TaskContext>,
    baseline: BaselineMetrics,
    ranges: datafusion::physical_plan::metrics::Count,
}

impl Run {
    async fn batches(self) -> Result<Vec<RecordBatch>> {
        let Some(scan) = find_scan(&self.input) else {
            return Err(DataFusionError::Internal(
                "RecentFirstExec's input has no Sextant scan".into(),
            ));
        };
        let request = scan.request();
        let stats = scan
            .snapshot()
            .stats(&request.table)
            .map_err(crate::error::to_datafusion)?;
        let Some((first, last)) = stats.time_range else {
            return Ok(Vec::new());
        };
        let (lo, hi) = (
            i128::from(first.max(request.min_time)),
            i128::from(last.min(request.max_time)),
        );
        if lo > hi {
            return Ok(Vec::new());
        }
        // The first range is expected to hold twice the rows asked for, if rows were
        // spread evenly over the table's time.
        let rows = (stats.segment_rows() as i128 + stats.memory_rows as i128).max(1);
        let span = hi - lo + 1;
        let mut width = (span * 2 * self.fetch as i128 / rows).clamp(1, span);
        let mut batches = Vec::new();
        let mut got = 0usize;
        let (mut a, mut b) = if self.descending {
            (hi - width + 1, hi)
        } else {
            (lo, lo + width - 1)
        };
        loop {
            let plan = narrow(&self.input, a as i64, b as i64)?;
            let part = collect(plan, self.context.clone()).await?;
            self.ranges.add(1);
            got += part.iter().map(RecordBatch::num_rows).sum::<usize>();
            batches.extend(part);
            let done = if self.descending { a == lo } else { b == hi };
            if got >= self.fetch || done {
                break;
            }
            // The next range is three times as wide as all read so far.
            width = if self.descending {
                hi - a + 1
            } else {
                b - lo + 1
            } * 3;
            if self.descending {
                b = a - 1;
                a = (b - width + 1).max(lo);
            } else {
                a = b + 1;
                b = (a + width - 1).min(hi);
            }
        }
        self.baseline.record_output(got);
        self.baseline.done();
        Ok(batches)
    }
}

/// The Sextant scan under `plan` (the one [`reaches_time`] found).
fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&SextantScanExec> {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        return Some(scan);
    }
    plan.children().into_iter().find_map(find_scan)
}

/// A fresh copy of `plan` (operators keep state from one execution) whose Sextant scan
/// reads only times within `[a, b]`.
fn narrow(plan: &Arc<dyn ExecutionPlan>, a: i64, b: i64) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        return Ok(Arc::new(scan.with_time_range(a, b)));
    }
    let children = plan
        .children()
        .into_iter()
        .map(|c| narrow(c, a, b))
        .collect::<Result<Vec<_>>>()?;
    plan.clone().replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
    )
}
