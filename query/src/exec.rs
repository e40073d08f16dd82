//! The physical scan of a Sextant table: partitions of series read in parallel, each a
//! stream of Arrow batches pulled from the engine on demand.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::common::Statistics;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::Stream;
use sextant_engine::{Scan, ScanMetrics, ScanRequest, Snapshot};

/// Scans one Sextant table.
#[derive(Debug)]
pub struct SextantScanExec {
    snapshot: Arc<Snapshot>,
    request: ScanRequest,
    partitions: usize,
    limit: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// Return only the latest row of each series (`Some(None)`), or of each group of
    /// series sharing the values of the given tags.
    latest: Option<Option<Vec<String>>>,
    /// About how many rows the scan returns (see `SextantTable::scan`): DataFusion
    /// splits only scans worth splitting and builds a join's hash table on its smaller
    /// side by it.
    estimated_rows: Option<usize>,
    /// Filters pushed into the scan while the plan was optimized, filled while the query
    /// runs (a hash join's keys); read when a partition starts (see
    /// [`crate::runtime_filter`]).
    runtime_filters: Vec<Arc<dyn PhysicalExpr>>,
}

impl SextantScanExec {
    /// A scan of `request` (its partition is set per partition) over `partitions`
    /// partitions, returning at most `limit` rows per partition.
    pub fn new(
        snapshot: Arc<Snapshot>,
        request: ScanRequest,
        schema: SchemaRef,
        partitions: usize,
        limit: Option<usize>,
    ) -> Self {
        let partitions = partitions.max(1);
        SextantScanExec {
            snapshot,
            request,
            partitions,
            limit,
            properties: properties(&schema, partitions),
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
            latest: None,
            estimated_rows: None,
            runtime_filters: Vec::new(),
        }
    }

    /// The same scan, telling DataFusion (as inexact statistics) about how many rows it
    /// returns; the optimizer then splits only scans worth splitting.
    pub fn with_estimated_rows(self, rows: usize) -> Self {
        SextantScanExec {
            estimated_rows: Some(rows),
            ..self
        }
    }

    /// The same scan returning only the latest row (within the time range) of each series,
    /// or with `group_by` tags of each group of series sharing their values. It runs as
    /// one partition: the rows are few, and a group's series must meet.
    pub fn latest_rows(self, group_by: Option<Vec<String>>) -> Self {
        SextantScanExec {
            latest: Some(group_by),
            estimated_rows: None,
            partitions: 1,
            properties: properties(&self.schema, 1),
            ..self
        }
    }

    /// The request each partition runs (with its own partition index).
    pub fn request(&self) -> &ScanRequest {
        &self.request
    }

    /// The snapshot the scan reads.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Whether the scan returns every row of its range (not only latest rows).
    pub fn is_plain(&self) -> bool {
        self.latest.is_none()
    }

    /// The same scan narrowed to times within `[min_time, max_time]` (and its own range).
    pub fn with_time_range(&self, min_time: i64, max_time: i64) -> Self {
        let mut request = self.request.clone();
        request.min_time = request.min_time.max(min_time);
        request.max_time = request.max_time.min(max_time);
        SextantScanExec {
            snapshot: self.snapshot.clone(),
            request,
            partitions: self.partitions,
            limit: self.limit,
            schema: self.schema.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
            latest: self.latest.clone(),
            estimated_rows: None,
            runtime_filters: self.runtime_filters.clone(),
        }
    }

    /// The same scan (with fresh metrics) reading `snapshot`: a plan kept and run again
    /// reads the rows of the moment it runs (see [`crate::reuse`]).
    pub(crate) fn with_snapshot(&self, snapshot: Arc<Snapshot>) -> Self {
        SextantScanExec {
            snapshot,
            estimated_rows: self.estimated_rows,
            ..self.with_time_range(i64::MIN, i64::MAX)
        }
    }

    /// Whether filters filled while the query runs were pushed into the scan.
    pub(crate) fn has_runtime_filters(&self) -> bool {
        !self.runtime_filters.is_empty()
    }

    /// The same scan (with fresh metrics) keeping `filters` as its runtime filters.
    fn with_runtime_filters(&self, filters: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        SextantScanExec {
            estimated_rows: self.estimated_rows,
            runtime_filters: filters,
            ..self.with_time_range(i64::MIN, i64::MAX)
        }
    }
}

fn properties(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema.clone()),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

impl DisplayAs for SextantScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.request;
        write!(
            f,
            "SextantScanExec: table={}, partitions={}",
            r.table, self.partitions
        )?;
        if let Some(cols) = &r.columns {
            write!(f, ", projection=[{}]", cols.join(", "))?;
        }
        if r.min_time != i64::MIN || r.max_time != i64::MAX {
            write!(f, ", time=[{}, {}]", r.min_time, r.max_time)?;
        }
        for (tag, values) in &r.tags {
            write!(f, ", {tag} IN ({})", values.join(", "))?;
        }
        for field in &r.fields {
            write!(
                f,
                ", blocks where {} {} {}",
                field.column, field.op, field.value
            )?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        for filter in &self.runtime_filters {
            write!(f, ", runtime filter {filter}")?;
        }
        match &self.latest {
            None => {}
            Some(None) => write!(f, ", mode=latest row per series")?,
            Some(Some(tags)) if tags.is_empty() => write!(f, ", mode=latest row")?,
            Some(Some(tags)) => write!(f, ", mode=latest row per {}", tags.join(", "))?,
        }
        Ok(())
    }
}

impl ExecutionPlan for SextantScanExec {
    fn name(&self) -> &str {
        "SextantScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    /// The runtime filters: DataFusion fills a hash join's filter only when it finds the
    /// filter among the expressions of the join's probe side.
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for filter in &self.runtime_filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    /// The same scan without its runtime filters. A plan run again (a recursive query's
    /// step) gets new operators above it, which do not fill the filters this one kept:
    /// their values would be those of the last run.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(self.with_runtime_filters(Vec::new())))
    }

    /// Keeps the filters pushed after the plan is built that are filled while the query
    /// runs over the scan's time or tags (a hash join's keys), to narrow the scan by when
    /// it starts if they are complete by then (see [`crate::runtime_filter::narrow`] for
    /// why that is sound). They are reported as not pushed down: a `FilterExec` above
    /// still applies its own; the operators that make such filters (hash joins, sorts,
    /// aggregates) never apply them again.
    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let filters: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|f| f.filter)
            .collect();
        let unapplied = vec![PushedDown::No; filters.len()];
        let propagation = FilterPushdownPropagation::with_parent_pushdown_result(unapplied);
        // Filters known when the plan is built reached the scan as logical filters; only
        // those filled while the query runs are new, and only a plain scan reads rows it
        // could skip.
        let filters: Vec<_> = filters
            .into_iter()
            .filter(|f| crate::runtime_filter::is_runtime(f, &self.schema))
            .collect();
        if phase != FilterPushdownPhase::Post || filters.is_empty() || !self.is_plain() {
            return Ok(propagation);
        }
        let mut kept = self.runtime_filters.clone();
        kept.extend(filters);
        Ok(propagation.with_updated_node(Arc::new(self.with_runtime_filters(kept))))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "SextantScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let request = self.request.clone().partition(partition, self.partitions);
        let counters = Counters::new(&self.metrics, partition);
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        if let Some(group_by) = &self.latest {
            let timer = baseline.elapsed_compute().timer();
            let (batch, metrics) = self
                .snapshot
                .latest_by(&request, group_by.as_deref())
                .map_err(crate::error::to_datafusion)?;
            timer.done();
            counters.add(&metrics);
            let batch = match self.limit {
                Some(l) if batch.num_rows() > l => batch.slice(0, l),
                _ => batch,
            };
            RecordOutput::record_output(&batch, &baseline);
            baseline.done();
            let stream = futures::stream::iter([Ok(batch)]);
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                stream,
            )));
        }
        // With runtime filters the scan starts at the first poll: a hash join above has
        // usually built its table and filled them by then (not always, for example when
        // the join buffers its probe side; the scan then reads its whole range).
        let (scan, start) = if self.runtime_filters.is_empty() {
            let scan = self
                .snapshot
                .scan(&request)
                .map_err(crate::error::to_datafusion)?;
            (Some(scan), None)
        } else {
            let start = Start {
                snapshot: Arc::clone(&self.snapshot),
                request,
                filters: self.runtime_filters.clone(),
            };
            (None, Some(start))
        };
        Ok(Box::pin(ScanStream {
            scan,
            start,
            schema: self.schema.clone(),
            remaining: self.limit,
            baseline,
            counters,
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some(rows) = self.estimated_rows {
            let rows = match partition {
                Some(_) => rows.div_ceil(self.partitions),
                None => rows,
            };
            let rows = self.limit.map_or(rows, |l| rows.min(l));
            stats.num_rows = Precision::Inexact(rows);
        }
        Ok(Arc::new(stats))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }
}

/// The scan's figures shown by `EXPLAIN ANALYZE`, per partition.
#[derive(Debug)]
struct Counters {
    segments_total: Count,
    segments_pruned: Count,
    segments_read: Count,
    blocks_read: Count,
    blocks_pruned: Count,
    blocks_filtered: Count,
    blocks_excluded: Count,
    rows_filtered: Count,
    values_decoded: Count,
    chunks_read: Count,
}

impl Counters {
    fn new(metrics: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        let metric = |name: &'static str| MetricBuilder::new(metrics).counter(name, partition);
        Counters {
            segments_total: metric("segments_total"),
            segments_pruned: metric("segments_pruned"),
            segments_read: metric("segments_read"),
            blocks_read: metric("blocks_read"),
            blocks_pruned: metric("blocks_pruned"),
            blocks_filtered: metric("blocks_filtered"),
            blocks_excluded: metric("blocks_excluded"),
            rows_filtered: metric("rows_filtered"),
            values_decoded: metric("values_decoded"),
            chunks_read: metric("memory_chunks_read"),
        }
    }

    fn add(&self, m: &ScanMetrics) {
        self.segments_total.add(m.segments_total);
        self.segments_pruned.add(m.segments_pruned);
        self.segments_read.add(m.segments_read);
        self.blocks_read.add(m.blocks_read);
        self.blocks_pruned.add(m.blocks_pruned);
        self.blocks_filtered.add(m.blocks_filtered);
        self.blocks_excluded.add(m.blocks_excluded);
        self.rows_filtered.add(m.rows_filtered);
        self.values_decoded.add(m.values_decoded);
        self.chunks_read.add(m.chunks_read);
    }
}

/// A scan to start at the first poll, narrowed by runtime filters.
struct Start {
    snapshot: Arc<Snapshot>,
    request: ScanRequest,
    filters: Vec<Arc<dyn PhysicalExpr>>,
}

impl Start {
    /// The scan of the request narrowed by the filters as they are now.
    fn scan(mut self, schema: &SchemaRef) -> Result<Scan> {
        for filter in &self.filters {
            crate::runtime_filter::narrow(&mut self.request, schema, filter)?;
        }
        self.snapshot
            .scan(&self.request)
            .map_err(crate::error::to_datafusion)
    }
}

/// One partition's batches, pulled from the engine as DataFusion asks; dropping the
/// stream drops the scan.
struct ScanStream {
    scan: Option<Scan>,
    /// The scan not yet started (see [`Start`]).
    start: Option<Start>,
    schema: SchemaRef,
    remaining: Option<usize>,
    baseline: BaselineMetrics,
    counters: Counters,
}

impl ScanStream {
    fn finish(&mut self) {
        if let Some(scan) = self.scan.take() {
            self.counters.add(&scan.metrics());
        }
        self.baseline.done();
    }
}

impl Stream for ScanStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(start) = this.start.take() {
            let timer = this.baseline.elapsed_compute().timer();
            let scan = start.scan(&this.schema);
            timer.done();
            match scan {
                Ok(scan) => this.scan = Some(scan),
                Err(e) => {
                    this.finish();
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        let Some(scan) = this.scan.as_mut() else {
            return Poll::Ready(None);
        };
        if this.remaining == Some(0) {
            this.finish();
            return Poll::Ready(None);
        }
        let timer = this.baseline.elapsed_compute().timer();
        let next = scan.next();
        timer.done();
        match next {
            None => {
                this.finish();
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                this.finish();
                Poll::Ready(Some(Err(crate::error::to_datafusion(e))))
            }
            Some(Ok(mut batch)) => {
                if let Some(left) = this.remaining.as_mut() {
                    if batch.num_rows() > *left {
                        batch = batch.slice(0, *left);
                    }
                    *left -= batch.num_rows();
                }
                RecordOutput::record_output(&batch, &this.baseline);
                Poll::Ready(Some(Ok(batch)))
            }
        }
    }
}

impl RecordBatchStream for ScanStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
