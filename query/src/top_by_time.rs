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
//!
//! The sort's first key may also be a time bucket an aggregate groups by
//! (`GROUP BY time_bucket('1 minute', time) ... ORDER BY minute DESC LIMIT 5`, TSBS
//! groupby-orderby-limit): the aggregate then runs on each range, and each range starts
//! and ends on bucket boundaries, so that every group a range yields holds all of its
//! bucket's rows and no bucket is split between two ranges. The rows counted are then
//! groups, and every group left unread lies in an older (newer) bucket than every group
//! read.

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, execute_stream,
};
use futures::StreamExt;

use crate::exec::SextantScanExec;

/// Top-n sorts of more rows than this scan history as before: the sort holds that many
/// rows, and reading ranges until they hold as many saves little.
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
            if input.is::<RecentFirstExec>() {
                return Ok(Transformed::no(node));
            }
            let Some(key) = time_key(input, column.index()) else {
                return Ok(Transformed::no(node));
            };
            let recent = RecentFirstExec::new(input.clone(), fetch, first.options.descending, key);
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

/// What a top-n sort's first key is, as far as the ranges are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKey {
    /// The scan's `time`: a range may start and end anywhere.
    Time,
    /// `date_bin(stride, time, origin)` (`time_bucket`) that an aggregate groups by: a
    /// range starts and ends on the buckets' boundaries.
    Bucket {
        /// The buckets' width, ns (positive).
        stride: i64,
        /// A bucket boundary, ns.
        origin: i64,
    },
}

impl TimeKey {
    /// The start of the bucket holding `t` (`t` itself for [`TimeKey::Time`]).
    fn floor(self, t: i128) -> i128 {
        match self {
            TimeKey::Time => t,
            TimeKey::Bucket { stride, origin } => {
                let (stride, origin) = (i128::from(stride), i128::from(origin));
                origin + (t - origin).div_euclid(stride) * stride
            }
        }
    }

    /// The last instant of the bucket holding `t` (`t` itself for [`TimeKey::Time`]).
    fn ceil(self, t: i128) -> i128 {
        match self {
            TimeKey::Time => t,
            TimeKey::Bucket { stride, .. } => self.floor(t) + i128::from(stride) - 1,
        }
    }
}

/// How output column `index` of `plan` follows the `time` column of a Sextant scan that
/// returns every row: that column itself, passed along unchanged, or a time bucket of it
/// that an aggregate groups by; `None` when it is neither.
fn time_key(plan: &Arc<dyn ExecutionPlan>, index: usize) -> Option<TimeKey> {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        let field = scan.schema().fields().get(index).cloned()?;
        let is_time = scan.is_plain()
            && field.name() == "time"
            && matches!(field.data_type(), DataType::Timestamp(..));
        return is_time.then_some(TimeKey::Time);
    }
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        let c = p.expr().get(index)?.expr.downcast_ref::<Column>()?;
        return time_key(p.input(), c.index());
    }
    if let Some(f) = plan.downcast_ref::<FilterExec>() {
        let index = match f.projection() {
            Some(p) => *p.get(index)?,
            None => index,
        };
        return time_key(f.input(), index);
    }
    if let Some(a) = plan.downcast_ref::<AggregateExec>() {
        // The aggregate's first columns are its groups; a group of a partial aggregate
        // (or a plain column) is passed along, a bucket of the time is made here.
        let group_by = a.group_expr();
        if !group_by.is_single() || a.limit_options().is_some() {
            return None;
        }
        let expr = &group_by.expr().get(index)?.0;
        if let Some(c) = expr.downcast_ref::<Column>() {
            return time_key(a.input(), c.index());
        }
        let (column, key) = date_bin(expr)?;
        return (time_key(a.input(), column)? == TimeKey::Time).then_some(key);
    }
    let passes = plan.is::<CoalescePartitionsExec>()
        || plan.is::<RepartitionExec>()
        || plan.is::<CooperativeExec>();
    if passes {
        time_key(plan.children()[0], index)
    } else {
        None
    }
}

/// `date_bin(stride, column [, origin])` with a literal stride of a fixed number of
/// nanoseconds (no months) and a literal nanosecond origin: the column's index and the
/// buckets.
pub(crate) fn date_bin(expr: &Arc<dyn PhysicalExpr>) -> Option<(usize, TimeKey)> {
    let f = expr.downcast_ref::<ScalarFunctionExpr>()?;
    if f.fun().name() != "date_bin" {
        return None;
    }
    let args = f.args();
    let literal = |i: usize| args.get(i)?.downcast_ref::<Literal>().map(Literal::value);
    let stride = crate::functions::date_bin::stride_nanos(literal(0)?)?;
    let origin = match args.len() {
        2 => 0,
        3 => match literal(2)? {
            ScalarValue::TimestampNanosecond(Some(v), _) => *v,
            _ => return None,
        },
        _ => return None,
    };
    let column = args.get(1)?.downcast_ref::<Column>()?.index();
    Some((column, TimeKey::Bucket { stride, origin }))
}

/// Runs its input on widening time ranges from the newest (or oldest) row until the rows
/// reach `fetch`; see the [module](self) documentation. One output partition.
#[derive(Debug)]
pub struct RecentFirstExec {
    input: Arc<dyn ExecutionPlan>,
    fetch: usize,
    descending: bool,
    key: TimeKey,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl RecentFirstExec {
    /// Reads `input` newest first (`descending`) or oldest first until it has `fetch` rows,
    /// each range aligned to `key`'s buckets.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        fetch: usize,
        descending: bool,
        key: TimeKey,
    ) -> Self {
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
            key,
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
        )?;
        if let TimeKey::Bucket { stride, origin } = self.key {
            write!(f, ", ranges on {stride} ns buckets from {origin}")?;
        }
        Ok(())
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
                self.key,
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
            key: self.key,
            context,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            counters: RunCounters::new(&self.metrics, partition),
            next: None,
            current: None,
            got: 0,
        };
        let batches = futures::stream::unfold(run, |mut run| async move {
            let item = run.next_batch().await.transpose()?;
            Some((item, run))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.input.schema(),
            batches,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// What `EXPLAIN ANALYZE` shows of a [`RecentFirstExec`]: its ranges, and the sums of
/// what the scans of those ranges read.
struct RunCounters {
    ranges: Count,
    segments_read: Count,
    blocks_read: Count,
    values_decoded: Count,
    chunks_read: Count,
}

impl RunCounters {
    fn new(metrics: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        let count = |name: &'static str| MetricBuilder::new(metrics).counter(name, partition);
        RunCounters {
            ranges: count("time_ranges_read"),
            segments_read: count("segments_read"),
            blocks_read: count("blocks_read"),
            values_decoded: count("values_decoded"),
            chunks_read: count("memory_chunks_read"),
        }
    }

    /// Adds what the (finished) scan under `plan` read.
    fn add_scan(&self, plan: &Arc<dyn ExecutionPlan>) {
        let Some(metrics) = find_scan(plan).and_then(|s| s.metrics()) else {
            return;
        };
        for (count, name) in [
            (&self.segments_read, "segments_read"),
            (&self.blocks_read, "blocks_read"),
            (&self.values_decoded, "values_decoded"),
            (&self.chunks_read, "memory_chunks_read"),
        ] {
            if let Some(v) = metrics.sum_by_name(name) {
                count.add(v.as_usize());
            }
        }
    }
}

/// The ranges still to read: the table's times `[lo, hi]` (within the query's range),
/// the next range `[a, b]` and its width.
struct Ranges {
    lo: i128,
    hi: i128,
    a: i128,
    b: i128,
}

/// One execution of a [`RecentFirstExec`]: streams the batches of one range after the
/// other, holding none of them (the sort above keeps only its top rows).
struct Run {
    input: Arc<dyn ExecutionPlan>,
    fetch: usize,
    descending: bool,
    key: TimeKey,
    context: Arc<TaskContext>,
    baseline: BaselineMetrics,
    counters: RunCounters,
    /// `None` before the first range is planned; then the range to read next, if any.
    next: Option<Option<Ranges>>,
    /// The range being read: its plan and stream.
    current: Option<(Arc<dyn ExecutionPlan>, SendableRecordBatchStream)>,
    got: usize,
}

impl Run {
    /// The next batch, `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some((plan, stream)) = self.current.as_mut() {
                match stream.next().await {
                    Some(Ok(batch)) => {
                        self.got += batch.num_rows();
                        RecordOutput::record_output(&batch, &self.baseline);
                        return Ok(Some(batch));
                    }
                    Some(Err(e)) => {
                        self.current = None;
                        self.next = Some(None);
                        return Err(e);
                    }
                    None => {
                        self.counters.add_scan(plan);
                        self.current = None;
                        self.advance();
                    }
                }
            }
            if self.next.is_none() {
                self.next = Some(self.first_range()?);
            }
            let Some(Some(r)) = &self.next else {
                self.baseline.done();
                return Ok(None);
            };
            let plan = narrow(&self.input, r.a as i64, r.b as i64)?;
            let stream = execute_stream(plan.clone(), self.context.clone())?;
            self.counters.ranges.add(1);
            self.current = Some((plan, stream));
        }
    }

    /// The first range: from the table's end, as wide as should hold twice the rows asked
    /// for if the matching series' rows were spread evenly over the table's time (for
    /// buckets: as many buckets as groups asked for), aligned to the buckets.
    fn first_range(&self) -> Result<Option<Ranges>> {
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
            return Ok(None);
        };
        let (lo, hi) = (
            i128::from(first.max(request.min_time)),
            i128::from(last.min(request.max_time)),
        );
        if lo > hi {
            return Ok(None);
        }
        let span = hi - lo + 1;
        let width = match self.key {
            TimeKey::Time => {
                // Rows of the series and time range the scan reads (not the whole
                // table's).
                let rows = scan
                    .snapshot()
                    .estimate_rows(request, u64::MAX)
                    .map_err(crate::error::to_datafusion)?
                    .unwrap_or(u64::MAX);
                let rows = (rows as i128).max(1);
                span * 2 * self.fetch as i128 / rows
            }
            // As many buckets as groups asked for: enough when every bucket has a row.
            // Where date_bin overflows at an end of the range it gives NULL buckets,
            // which sort first (DESC) or last (ASC): then everything is read at once.
            TimeKey::Bucket { origin, .. } => {
                let fits = |t: i128| {
                    i64::try_from(t - i128::from(origin)).is_ok()
                        && i64::try_from(self.key.floor(t)).is_ok()
                };
                if fits(lo) && fits(hi) {
                    i128::from(self.key_stride()) * self.fetch as i128
                } else {
                    span
                }
            }
        }
        .clamp(1, span);
        let first = if self.descending {
            Ranges {
                lo,
                hi,
                a: hi - width + 1,
                b: hi,
            }
        } else {
            Ranges {
                lo,
                hi,
                a: lo,
                b: lo + width - 1,
            }
        };
        Ok(Some(self.aligned(first)))
    }

    /// The buckets' width (1 for the time itself).
    fn key_stride(&self) -> i64 {
        match self.key {
            TimeKey::Time => 1,
            TimeKey::Bucket { stride, .. } => stride,
        }
    }

    /// `r` with its open end moved out to a bucket boundary (within the table's times),
    /// so that no bucket is split between two ranges.
    fn aligned(&self, r: Ranges) -> Ranges {
        if self.descending {
            Ranges {
                a: self.key.floor(r.a).max(r.lo),
                ..r
            }
        } else {
            Ranges {
                b: self.key.ceil(r.b).min(r.hi),
                ..r
            }
        }
    }

    /// After a range: the next one, three times as wide as all read so far (and aligned),
    /// unless the rows reached `fetch` or the table's end was read.
    fn advance(&mut self) {
        let Some(Some(r)) = self.next.take() else {
            self.next = Some(None);
            return;
        };
        let at_end = if self.descending {
            r.a == r.lo
        } else {
            r.b == r.hi
        };
        if self.got >= self.fetch || at_end {
            self.next = Some(None);
            return;
        }
        let next = if self.descending {
            let width = (r.hi - r.a + 1) * 3;
            let b = r.a - 1;
            Ranges {
                a: (b - width + 1).max(r.lo),
                b,
                ..r
            }
        } else {
            let width = (r.b - r.lo + 1) * 3;
            let a = r.b + 1;
            Ranges {
                a,
                b: (a + width - 1).min(r.hi),
                ..r
            }
        };
        self.next = Some(Some(self.aligned(next)));
    }
}

/// The Sextant scan under `plan` (the one [`time_key`] found).
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

#[cfg(test)]
mod tests {
    use super::TimeKey;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn a_bucket_floors_and_ceils_to_its_boundaries_on_both_sides_of_the_origin() {
        let key = TimeKey::Bucket {
            stride: 5 * MIN,
            origin: MIN,
        };
        let m = i128::from(MIN);
        // Boundaries at ..., -4, 1, 6, 11, ... minutes.
        for (t, floor, ceil) in [
            (m, m, 6 * m - 1),
            (6 * m - 1, m, 6 * m - 1),
            (6 * m, 6 * m, 11 * m - 1),
            (0, -4 * m, m - 1),
            (-4 * m, -4 * m, m - 1),
            (-4 * m - 1, -9 * m, -4 * m - 1),
        ] {
            assert_eq!(key.floor(t), floor, "floor of {t}");
            assert_eq!(key.ceil(t), ceil, "ceil of {t}");
        }
        // The extremes of the time column, which ranges start and end at, in i128.
        let lowest = key.floor(i128::from(i64::MIN));
        assert!(lowest <= i128::from(i64::MIN) && lowest > i128::from(i64::MIN) - 5 * m);
        let highest = key.ceil(i128::from(i64::MAX));
        assert!(highest >= i128::from(i64::MAX) && highest < i128::from(i64::MAX) + 5 * m);
    }

    #[test]
    fn the_time_itself_is_its_own_floor_and_ceil() {
        for t in [i128::from(i64::MIN), -1, 0, 1, i128::from(i64::MAX)] {
            assert_eq!(TimeKey::Time.floor(t), t);
            assert_eq!(TimeKey::Time.ceil(t), t);
        }
    }
}
