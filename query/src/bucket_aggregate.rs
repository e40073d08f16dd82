//! Aggregates by one time bucket, folded bucket by bucket and given in the buckets'
//! order, in place of DataFusion's aggregate and the sort above it.
//!
//! A query of one host over a few hours (`SELECT time_bucket('60 seconds', time) AS minute,
//! max(usage_user) .. WHERE hostname = 'h' .. GROUP BY minute ORDER BY minute`) reads a
//! few hundred rows on one partition. DataFusion runs it as a single aggregate under a
//! sort, and setting up those two operators' streams for each run (the hash table, the
//! accumulators, the sort's buffers and its ordering checks) took about a third of the
//! query's time in a profile of such a query run after other engines' queries
//! (`single-groupby-1-1-1` at scale 1000). [`BucketAggregateRule`] puts one
//! [`BucketAggregateExec`] in their place: each run of rows in one bucket (a series' rows
//! come in time order) is folded into that bucket's state, found in a sorted list, and the
//! buckets are given in the sort's order, cut at its limit (a limit of at most a million
//! over buckets of the scan's `time` goes to [`RecentFirstExec`] under the sort instead,
//! which this rule leaves alone).
//!
//! Taken: a sort whose only key is the group (either direction, with or without a limit)
//! over an aggregate of one partition (DataFusion's `Single` or `SinglePartitioned` mode)
//! whose only group is `date_bin` (`time_bucket`) of a fixed width over a column, over a
//! Sextant scan (or a filter over one), with the aggregates [`RunAggregateExec`] takes:
//! `min`, `max`, `sum` and `avg` of a `DOUBLE`, and `count`. The answer is the same to
//! the bit: each bucket's values are folded one by one in the order they come, from the
//! values DataFusion's accumulators start from.
//!
//! [`RunAggregateExec`]: crate::run_aggregate::RunAggregateExec
//! [`RecentFirstExec`]: crate::top_by_time::RecentFirstExec

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray,
};
use arrow_schema::{DataType, SchemaRef, SortOptions, TimeUnit};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::StreamExt;

use crate::run_aggregate::{Aggregate, Fold, extreme_step, folds, in_scan_order, replace_each};
use crate::top_by_time::date_bin;

/// Puts a [`BucketAggregateExec`] in place of each sort over an aggregate it can take.
#[derive(Debug, Default)]
pub struct BucketAggregateRule;

impl PhysicalOptimizerRule for BucketAggregateRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        replace_each(plan, BucketAggregateExec::try_new)
    }

    fn name(&self) -> &str {
        "sextant_bucket_aggregate"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// An aggregate by one time bucket in the buckets' order; see the [module](self)
/// documentation.
#[derive(Debug)]
pub struct BucketAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    /// The bucket of a row: `date_bin` over the input.
    bucket: Arc<dyn PhysicalExpr>,
    /// Each aggregate's argument and fold.
    aggregates: Vec<Aggregate>,
    /// The sort's order of the buckets, and its limit.
    order: SortOptions,
    fetch: Option<usize>,
    /// What it shows: the group, the aggregates and the order.
    display: String,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl BucketAggregateExec {
    /// The exec in place of `sort` and the aggregate under it, if it can take them.
    fn try_new(sort: &SortExec) -> Result<Option<Self>> {
        let Some(aggregate) = sort.input().downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        let input = aggregate.input();
        let group_by = aggregate.group_expr();
        let [key] = sort.expr().as_ref() else {
            return Ok(None);
        };
        if !matches!(
            aggregate.mode(),
            AggregateMode::Single | AggregateMode::SinglePartitioned
        ) || input.output_partitioning().partition_count() != 1
            || sort.properties().output_partitioning().partition_count() != 1
            || !in_scan_order(input)
            || !group_by.is_single()
            || group_by.expr().len() != 1
            || aggregate.limit_options().is_some()
            || key
                .expr
                .downcast_ref::<Column>()
                .is_none_or(|c| c.index() != 0)
        {
            return Ok(None);
        }
        let (bucket, _) = &group_by.expr()[0];
        let schema = aggregate.schema();
        let input_schema = input.schema();
        let bucket_type = bucket.data_type(&input_schema)?;
        if date_bin(bucket).is_none()
            || !matches!(bucket_type, DataType::Timestamp(TimeUnit::Nanosecond, _))
            || schema.field(0).data_type() != &bucket_type
        {
            return Ok(None);
        }
        let Some(aggregates) = folds(aggregate)? else {
            return Ok(None);
        };
        for (i, a) in aggregates.iter().enumerate() {
            let answer = match a.fold {
                Fold::Count => DataType::Int64,
                _ => DataType::Float64,
            };
            if schema.field(i + 1).data_type() != &answer {
                return Ok(None);
            }
        }
        let display = format!(
            "gby=[{}], aggr=[{}], order={}{}",
            group_by.expr()[0].1,
            aggregate
                .aggr_expr()
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", "),
            key,
            sort.fetch()
                .map_or(String::new(), |f| format!(", fetch={f}")),
        );
        // The sort's: its one partition, order, constants and equivalences.
        let properties = Arc::clone(sort.properties());
        Ok(Some(BucketAggregateExec {
            input: Arc::clone(input),
            bucket: Arc::clone(bucket),
            aggregates,
            order: key.options,
            fetch: sort.fetch(),
            display,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
}

impl DisplayAs for BucketAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BucketAggregateExec: {}", self.display)
    }
}

impl ExecutionPlan for BucketAggregateExec {
    fn name(&self) -> &str {
        "BucketAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for expr in std::iter::once(&self.bucket).chain(self.aggregates.iter().map(|a| &a.arg)) {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "BucketAggregateExec has one child, was given {}",
                children.len()
            )));
        }
        let input = children.remove(0);
        // The bucket and arguments are columns of the old input, by index.
        if input.schema() != self.input.schema()
            || input.output_partitioning().partition_count() != 1
        {
            return Err(DataFusionError::Internal(format!(
                "BucketAggregateExec's new input has the schema {} in {} partition(s), not {} in one",
                input.schema(),
                input.output_partitioning().partition_count(),
                self.input.schema()
            )));
        }
        Ok(Arc::new(BucketAggregateExec {
            input,
            bucket: Arc::clone(&self.bucket),
            aggregates: self.aggregates.clone(),
            order: self.order,
            fetch: self.fetch,
            display: self.display.clone(),
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "BucketAggregateExec has one partition, was asked for partition {partition}"
            )));
        }
        let input = self.input.execute(0, Arc::clone(&context))?;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let reservation =
            MemoryConsumer::new("BucketAggregateExec").register(context.memory_pool());
        let mut buckets = Buckets::new(self.aggregates.iter().map(|a| a.fold).collect());
        let bucket = Arc::clone(&self.bucket);
        let aggregates = self.aggregates.clone();
        let (order, fetch) = (self.order, self.fetch);
        let schema = Arc::clone(&self.schema);
        let batch_rows = context.session_config().batch_size().max(1);
        let out_schema = Arc::clone(&schema);
        let folded = async move {
            let mut input = input;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let timer = baseline.elapsed_compute().timer();
                buckets.fold(&batch, &bucket, &aggregates)?;
                reservation.try_resize(buckets.allocated_bytes())?;
                timer.done();
            }
            let timer = baseline.elapsed_compute().timer();
            // The answer's copy of the buckets' order and its arrays, before they are made.
            reservation.try_grow(buckets.answer_bytes())?;
            let answer = buckets.answer(&out_schema, order, fetch);
            timer.done();
            drop(buckets);
            let answer = answer?;
            // The answer is held until its last batch is read.
            reservation.try_resize(answer.get_array_memory_size())?;
            let mut batches = Vec::new();
            let mut offset = 0;
            while offset < answer.num_rows() {
                let rows = batch_rows.min(answer.num_rows() - offset);
                let batch = answer.slice(offset, rows);
                RecordOutput::record_output(&batch, &baseline);
                batches.push(Ok(batch));
                offset += rows;
            }
            baseline.done();
            let batches = futures::stream::iter(batches).map(move |batch| {
                let _held = &reservation;
                batch
            });
            Ok::<_, DataFusionError>(batches)
        };
        let stream = futures::stream::once(folded)
            .map(|r| match r {
                Ok(batches) => batches.left_stream(),
                Err(e) => futures::stream::iter([Err(e)]).right_stream(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The valid values of rows `range` of `values` (nulls marked by `nulls`) folded one by
/// one with `step` from `init`, and how many there were.
fn fold_run(
    (values, nulls, range): (&Float64Array, Option<&NullBuffer>, std::ops::Range<usize>),
    init: f64,
    step: impl Fn(f64, f64) -> f64,
) -> (f64, usize) {
    let all = values.values();
    match nulls {
        None => (
            all[range.clone()].iter().fold(init, |c, &v| step(c, v)),
            range.len(),
        ),
        Some(nulls) => range
            .filter(|&r| nulls.is_valid(r))
            .fold((init, 0), |(c, n), r| (step(c, all[r]), n + 1)),
    }
}

/// The buckets seen so far and each aggregate's state in each.
struct Buckets {
    /// Each bucket's start (ns; `None` for the null bucket, which sorts first) and its slot
    /// in the states, in order of start: a series' buckets come in order, so a new one
    /// is most often pushed at the end.
    slots: Vec<(Option<i64>, usize)>,
    /// The index in `slots` of the bucket found last: the next run's is most often the
    /// one after it (the next bucket of the series) or, for a new series, a bucket the
    /// one before had.
    last: usize,
    /// Each aggregate's fold.
    folds: Vec<Fold>,
    /// Per aggregate: per slot, the value folded so far (min, max, sum; avg's sum) and
    /// the values folded (count, avg's count; 0: none yet).
    values: Vec<Vec<f64>>,
    counts: Vec<Vec<u64>>,
}

impl Buckets {
    fn new(folds: Vec<Fold>) -> Self {
        Buckets {
            slots: Vec::new(),
            last: 0,
            values: vec![Vec::new(); folds.len()],
            counts: vec![Vec::new(); folds.len()],
            folds,
        }
    }

    /// About the bytes [`Buckets::answer`] allocates: the buckets in order, and a value
    /// (and a validity bit) per bucket in each column.
    fn answer_bytes(&self) -> usize {
        let ordered = std::mem::size_of::<(Option<i64>, usize)>();
        self.slots.len() * (ordered + 9 * (1 + self.folds.len()))
    }

    /// The bytes its lists have allocated.
    fn allocated_bytes(&self) -> usize {
        let states: usize = self
            .values
            .iter()
            .zip(&self.counts)
            .map(|(v, c)| v.capacity() * 8 + c.capacity() * 8)
            .sum();
        self.slots.capacity() * std::mem::size_of::<(Option<i64>, usize)>() + states
    }

    /// The slot of bucket `key`, made (each state at its start) if new.
    fn slot(&mut self, key: Option<i64>) -> usize {
        let next_up = self.last + 1;
        let at = if self.slots.get(self.last).is_some_and(|&(k, _)| k == key) {
            Ok(self.last)
        } else if self.slots.get(next_up).is_some_and(|&(k, _)| k == key) {
            Ok(next_up)
        } else if self.slots.last().is_none_or(|&(k, _)| k < key) {
            Err(self.slots.len())
        } else {
            self.slots.binary_search_by(|&(k, _)| k.cmp(&key))
        };
        let next = self.slots.len();
        let (index, slot) = match at {
            Ok(i) => (i, self.slots[i].1),
            Err(i) => {
                self.slots.insert(i, (key, next));
                (i, next)
            }
        };
        self.last = index;
        if slot == next {
            for (i, fold) in self.folds.iter().enumerate() {
                // The values DataFusion's grouped accumulators start from.
                self.values[i].push(match fold {
                    Fold::Min => f64::MAX,
                    Fold::Max => f64::MIN,
                    Fold::Sum | Fold::Avg | Fold::Count => 0.0,
                });
                self.counts[i].push(0);
            }
        }
        slot
    }

    /// Folds `batch`'s rows into their buckets, a run of rows in one bucket at a time.
    fn fold(
        &mut self,
        batch: &RecordBatch,
        bucket: &Arc<dyn PhysicalExpr>,
        aggregates: &[Aggregate],
    ) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = bucket.evaluate(batch)?.into_array(rows)?;
        let keys = keys
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "BucketAggregateExec's bucket is {}, not a timestamp in ns",
                    keys.data_type()
                ))
            })?;
        let (starts, key_nulls) = (keys.values(), keys.nulls().filter(|n| n.null_count() > 0));
        let key = |row: usize| {
            key_nulls
                .is_none_or(|n| n.is_valid(row))
                .then(|| starts[row])
        };
        // Per aggregate: its argument's values (none for a count) and which are null.
        let mut args = Vec::with_capacity(aggregates.len());
        for Aggregate { arg, fold } in aggregates {
            let arg = arg.evaluate(batch)?.into_array(rows)?;
            // Logical nulls: an untyped NULL is a NullArray without a null buffer.
            let nulls = arg.logical_nulls().filter(|n| n.null_count() > 0);
            let values = match fold {
                Fold::Count => None,
                _ => Some(
                    arg.as_primitive_opt::<Float64Type>()
                        .cloned()
                        .ok_or_else(|| {
                            DataFusionError::Internal(format!(
                                "BucketAggregateExec's argument is {}, not a DOUBLE",
                                arg.data_type()
                            ))
                        })?,
                ),
            };
            args.push((values, nulls));
        }
        let mut start = 0;
        while start < rows {
            let this = key(start);
            let mut end = start + 1;
            while end < rows && key(end) == this {
                end += 1;
            }
            let slot = self.slot(this);
            for (i, (values, nulls)) in args.iter().enumerate() {
                let count = &mut self.counts[i][slot];
                let value = &mut self.values[i][slot];
                let Some(values) = values else {
                    let null = nulls
                        .as_ref()
                        .map_or(0, |n| n.slice(start, end - start).null_count());
                    *count += (end - start - null) as u64;
                    continue;
                };
                let run = (values, nulls.as_ref(), start..end);
                let (v, n) = match self.folds[i] {
                    Fold::Min => fold_run(run, *value, |c, v| {
                        extreme_step(c, v, std::cmp::Ordering::Less)
                    }),
                    Fold::Max => fold_run(run, *value, |c, v| {
                        extreme_step(c, v, std::cmp::Ordering::Greater)
                    }),
                    _ => fold_run(run, *value, |c, v| c + v),
                };
                *value = v;
                *count += n as u64;
            }
            start = end;
        }
        Ok(())
    }

    /// The buckets in `order`, at most `fetch`, each with its aggregates' answers.
    fn answer(
        &self,
        schema: &SchemaRef,
        order: SortOptions,
        fetch: Option<usize>,
    ) -> Result<RecordBatch> {
        // The null bucket sorts first in `slots`, then the others in ascending order.
        let null = self.slots.first().filter(|(k, _)| k.is_none()).copied();
        let mut ordered: Vec<(Option<i64>, usize)> = self
            .slots
            .iter()
            .filter(|(k, _)| k.is_some())
            .copied()
            .collect();
        if order.descending {
            ordered.reverse();
        }
        if let Some(null) = null {
            if order.nulls_first {
                ordered.insert(0, null);
            } else {
                ordered.push(null);
            }
        }
        ordered.truncate(fetch.unwrap_or(usize::MAX));
        let tz = match schema.field(0).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "BucketAggregateExec's bucket column is {other}, not a timestamp"
                )));
            }
        };
        let mut columns: Vec<ArrayRef> = vec![Arc::new(
            ordered
                .iter()
                .map(|(k, _)| *k)
                .collect::<TimestampNanosecondArray>()
                .with_timezone_opt(tz),
        )];
        for ((values, counts), fold) in self.values.iter().zip(&self.counts).zip(&self.folds) {
            columns.push(match fold {
                Fold::Count => Arc::new(
                    ordered
                        .iter()
                        .map(|&(_, s)| counts[s] as i64)
                        .collect::<Int64Array>(),
                ),
                Fold::Avg => Arc::new(
                    ordered
                        .iter()
                        .map(|&(_, s)| (counts[s] > 0).then(|| values[s] / counts[s] as f64))
                        .collect::<Float64Array>(),
                ),
                _ => Arc::new(
                    ordered
                        .iter()
                        .map(|&(_, s)| (counts[s] > 0).then_some(values[s]))
                        .collect::<Float64Array>(),
                ),
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{Field, Schema};

    use super::*;

    /// The null bucket (of a null time, or where `date_bin` overflows, as with an origin
    /// far from the times) comes first or last as the sort's options say.
    #[test]
    fn the_null_bucket_goes_where_the_sort_puts_nulls() {
        let mut buckets = Buckets::new(vec![Fold::Count]);
        for key in [Some(2), None, Some(1)] {
            let slot = buckets.slot(key);
            buckets.counts[0][slot] += 1;
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("n", DataType::Int64, false),
        ]));
        let keys = |descending, nulls_first| {
            let order = SortOptions {
                descending,
                nulls_first,
            };
            let batch = buckets.answer(&schema, order, None).unwrap();
            let b = batch.column(0).as_primitive::<TimestampNanosecondType>();
            (0..b.len())
                .map(|i| b.is_valid(i).then(|| b.value(i)))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(false, false), [Some(1), Some(2), None]);
        assert_eq!(keys(false, true), [None, Some(1), Some(2)]);
        assert_eq!(keys(true, true), [None, Some(2), Some(1)]);
        assert_eq!(keys(true, false), [Some(2), Some(1), None]);
    }
}
