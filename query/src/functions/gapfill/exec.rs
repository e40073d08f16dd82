//! `GapFillExec`: the physical gap-filling operator.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use arrow_array::RecordBatch;
use arrow_schema::{SchemaRef, SortOptions};
use datafusion::arrow::compute::concat_batches;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, OrderingRequirements, PhysicalExpr, PhysicalSortExpr,
    PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{Stream, StreamExt};

use super::fill::{GapFillParams, fill_groups, group_ranges};

/// Fills the gaps of an aggregate's output: reads it as one partition ordered by the group
/// columns then the bucket, and emits every bucket of the range for each group. Each
/// input batch's complete groups are filled into one output batch (groups x buckets rows,
/// not counted against the memory limit); the last, unfinished group is kept and joined to
/// the next batch.
#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    params: Arc<GapFillParams>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl GapFillExec {
    /// Gap filling of `input` into `schema` (the input's columns, then one per fill).
    pub fn new(input: Arc<dyn ExecutionPlan>, params: GapFillParams, schema: SchemaRef) -> Self {
        let mut eq = EquivalenceProperties::new(Arc::clone(&schema));
        eq.add_ordering(
            sort_columns(&input.schema(), &params)
                .into_iter()
                .map(|c| PhysicalSortExpr::new(c, SortOptions::default())),
        );
        let properties = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        GapFillExec {
            input,
            params: Arc::new(params),
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// What the operator computes.
    pub fn params(&self) -> &GapFillParams {
        &self.params
    }
}

/// The group columns, then the bucket column.
fn sort_columns(input: &SchemaRef, params: &GapFillParams) -> Vec<Arc<dyn PhysicalExpr>> {
    params
        .group_indices
        .iter()
        .chain([&params.time_index])
        .map(|&i| Arc::new(Column::new(input.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
        .collect()
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = self.input.schema();
        let p = &self.params;
        write!(
            f,
            "GapFillExec: time={}, groups=[{}], stride={}ns, buckets=[{}, {}]",
            input.field(p.time_index).name(),
            p.group_indices
                .iter()
                .map(|&i| input.field(i).name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p.stride,
            p.first,
            p.last
        )?;
        for (i, (_, strategy)) in p.fills.iter().enumerate() {
            let name = self.schema.field(input.fields().len() + i).name();
            write!(f, ", {name}={}", strategy.name())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
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

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let requirement = LexRequirement::new(
            sort_columns(&self.input.schema(), &self.params)
                .into_iter()
                .map(|c| PhysicalSortRequirement::new(c, Some(SortOptions::default()))),
        );
        vec![requirement.map(OrderingRequirements::new)]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "GapFillExec has exactly one child".into(),
            ));
        }
        Ok(Arc::new(GapFillExec::new(
            children.remove(0),
            GapFillParams::clone(&self.params),
            Arc::clone(&self.schema),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "GapFillExec has one partition, not partition {partition}"
            )));
        }
        let reservation = MemoryConsumer::new("GapFillExec").register(context.memory_pool());
        Ok(Box::pin(GapFillStream {
            input: self.input.execute(0, context)?,
            reservation,
            params: Arc::clone(&self.params),
            schema: Arc::clone(&self.schema),
            pending: None,
            done: false,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The rows of the group that may continue in the next batch are held back in `pending`;
/// every group before it is complete and filled as soon as its batch arrives.
///
/// The memory pool is charged for the batch being filled (which `pending` slices) and the
/// filled output, until the next batch replaces them: a fill that makes far more rows
/// than it was given fails with the pool's error rather than growing unseen.
struct GapFillStream {
    input: SendableRecordBatchStream,
    reservation: MemoryReservation,
    params: Arc<GapFillParams>,
    schema: SchemaRef,
    pending: Option<RecordBatch>,
    done: bool,
    baseline: BaselineMetrics,
}

impl GapFillStream {
    /// Takes a batch in; returns the filled complete groups, if any.
    fn push(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let buf = match self.pending.take() {
            Some(pending) => concat_batches(&batch.schema(), [&pending, &batch])?,
            None => batch,
        };
        self.reservation.try_resize(buf.get_array_memory_size())?;
        let mut ranges = group_ranges(&buf, &self.params)?;
        let Some(last) = ranges.pop() else {
            return Ok(None);
        };
        self.pending = Some(buf.slice(last.start, last.len()));
        if ranges.is_empty() {
            return Ok(None);
        }
        let out = fill_groups(&buf, &ranges, &self.params, &self.schema)?;
        self.reservation
            .try_resize(buf.get_array_memory_size() + out.get_array_memory_size())?;
        Ok(Some(out))
    }

    /// Fills the last group.
    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        match self.pending.take() {
            None => Ok(None),
            Some(p) => {
                let all = std::iter::once(0..p.num_rows()).collect::<Vec<_>>();
                let out = fill_groups(&p, &all, &self.params, &self.schema)?;
                self.reservation.try_resize(out.get_array_memory_size())?;
                Ok(Some(out))
            }
        }
    }
}

impl Stream for GapFillStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let out = match ready!(self.input.poll_next_unpin(cx)) {
                Some(Ok(batch)) => self.push(batch),
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    self.baseline.done();
                    let last = self.finish();
                    // The stream ends here: what it held goes with the last batch.
                    self.reservation.free();
                    last
                }
            };
            match out {
                Ok(Some(batch)) if batch.num_rows() > 0 => {
                    self.baseline.record_output(batch.num_rows());
                    return Poll::Ready(Some(Ok(batch)));
                }
                Ok(_) => continue,
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl RecordBatchStream for GapFillStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
