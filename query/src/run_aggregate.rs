//! Partial aggregation over runs of the scan's order, in place of hashing every row.
//!
//! A Sextant scan returns each series' rows together, in time order. When a query groups
//! by tags (constant within a series) and a time bucket (`time_bucket`/`date_bin` of the
//! time, which only grows within a series), the rows of a group follow one another, so
//! that the groups of a batch are its runs of equal keys. [`RunAggregateRule`] puts a
//! [`RunAggregateExec`] in place of DataFusion's partial `AggregateExec` over such a scan:
//! it finds the runs ([`partition`], on the dictionaries' keys for tags) and folds each
//! run's values in a tight loop, emitting one partial row per run with the partial
//! aggregate's own schema, which the final aggregate above merges as before. A group cut
//! by a batch boundary (or a series whose key repeats) gives two partial rows; the final
//! aggregate adds them up, so the answer is the same (up to the order in which floats
//! are summed, as with another partitioning), and only the hashing of every input row
//! is saved. Except with NaN: DataFusion's `min` and `max` take a value that does not
//! compare with the one held, so with a NaN among a group's values the answer depends on
//! the order in which they are folded (in DataFusion's own plans, on the partitioning):
//! a group whose rows come in runs of several series, one of them with a NaN followed by
//! other values, can get another of its values here than through DataFusion's hash
//! table.
//!
//! A filter between the scan and the aggregate (`WHERE level = 'error'`) keeps the order,
//! so the runs are still there. A log table's `level` column may be a group too, though it
//! changes from row to row: it has at most six values, so each run's rows are put in
//! order of level (a counting sort) and the runs of (other groups, level) folded as
//! before.
//!
//! Taken: `min`, `max`, `sum` and `avg` of a `DOUBLE` expression, and `count` of any
//! expression, none `DISTINCT`, ordered or filtered; groups that are tag columns or a
//! bucket of fixed width of the scan's `time`, and at most one `level` column. Anything
//! else keeps DataFusion's aggregation. (The answer does not depend on the order, only
//! the work: a group cut into many runs still adds up.)

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt8Type};
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, UInt8Array,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, SchemaRef};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::kernels::partition::partition;
use datafusion::arrow::compute::take;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::functions_aggregate::{average::Avg, count, min_max::Max, min_max::Min, sum::Sum};
use datafusion::logical_expr::{AggregateUDFImpl, ColumnarValue};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;
use sextant_engine::schema::ROLE_KEY;

use crate::exec::SextantScanExec;
use crate::top_by_time::date_bin;

/// Puts a [`RunAggregateExec`] in place of each partial aggregate it can take.
#[derive(Debug, Default)]
pub struct RunAggregateRule;

impl PhysicalOptimizerRule for RunAggregateRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        replace_each(plan, RunAggregateExec::try_new)
    }

    fn name(&self) -> &str {
        "sextant_run_aggregate"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What an aggregate folds a run into: its partial state's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    /// `min`: one `DOUBLE`, null for a run without values.
    Min,
    /// `max`: one `DOUBLE`, null for a run without values.
    Max,
    /// `sum`: one `DOUBLE`, null for a run without values.
    Sum,
    /// `avg`: the values' count (`UBIGINT`) and sum (`DOUBLE`), both null when none.
    Avg,
    /// `count`: the non-null values (`BIGINT`).
    Count,
}

impl Fold {
    /// The fold of aggregate function `fun` over an argument of type `arg`, if its
    /// partial state is `state` (the types this module builds). The function is known by
    /// its type, not its name, which a registered function could take.
    pub(crate) fn of(
        fun: &dyn AggregateUDFImpl,
        arg: &DataType,
        state: &[DataType],
    ) -> Option<Fold> {
        use DataType::{Float64, Int64, UInt64};
        let fold = if fun.is::<Min>() {
            Fold::Min
        } else if fun.is::<Max>() {
            Fold::Max
        } else if fun.is::<Sum>() {
            Fold::Sum
        } else if fun.is::<Avg>() {
            Fold::Avg
        } else if fun.is::<count::Count>() {
            Fold::Count
        } else {
            return None;
        };
        let fits = match fold {
            Fold::Min | Fold::Max | Fold::Sum => *arg == Float64 && state == [Float64],
            Fold::Avg => *arg == Float64 && state == [UInt64, Float64],
            Fold::Count => state == [Int64],
        };
        fits.then_some(fold)
    }
}

/// `plan` with each node of type `N` replaced by what `take` makes of it, where it makes
/// something (the plan's leaves first).
pub(crate) fn replace_each<N: ExecutionPlan + 'static, E: ExecutionPlan + 'static>(
    plan: Arc<dyn ExecutionPlan>,
    take: impl Fn(&N) -> Result<Option<E>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(found) = node.downcast_ref::<N>() else {
            return Ok(Transformed::no(node));
        };
        Ok(match take(found)? {
            Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// One aggregate: its argument and fold.
#[derive(Debug, Clone)]
pub(crate) struct Aggregate {
    pub(crate) arg: Arc<dyn PhysicalExpr>,
    pub(crate) fold: Fold,
}

/// The folds of `aggregate`'s aggregates, in order, if every one of them is a [`Fold`]
/// of one argument, without `DISTINCT`, `ORDER BY` or `FILTER`.
pub(crate) fn folds(aggregate: &AggregateExec) -> Result<Option<Vec<Aggregate>>> {
    if aggregate.filter_expr().iter().any(Option::is_some) {
        return Ok(None);
    }
    let input_schema = aggregate.input().schema();
    let mut aggregates = Vec::new();
    for expr in aggregate.aggr_expr() {
        let args = expr.expressions();
        if expr.is_distinct() || !expr.order_bys().is_empty() || args.len() != 1 {
            return Ok(None);
        }
        let state: Vec<DataType> = expr
            .state_fields()?
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let arg = args[0].data_type(&input_schema)?;
        let Some(fold) = Fold::of(expr.fun().inner().as_ref(), &arg, &state) else {
            return Ok(None);
        };
        aggregates.push(Aggregate {
            arg: Arc::clone(&args[0]),
            fold,
        });
    }
    Ok(Some(aggregates))
}

/// A partial aggregate computed run by run; see the [module](self) documentation.
#[derive(Debug)]
pub struct RunAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    groups: Vec<Arc<dyn PhysicalExpr>>,
    /// Which group is a `level` column, whose values change within a run.
    level: Option<usize>,
    aggregates: Vec<Aggregate>,
    /// What it shows: the partial aggregate's groups and aggregates.
    display: String,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl RunAggregateExec {
    /// The exec in place of `aggregate`, if it can take it.
    fn try_new(aggregate: &AggregateExec) -> Result<Option<Self>> {
        let input = aggregate.input();
        let group_by = aggregate.group_expr();
        if *aggregate.mode() != AggregateMode::Partial
            || !in_scan_order(input)
            || !group_by.is_single()
            || group_by.is_empty()
            || aggregate.limit_options().is_some()
        {
            return Ok(None);
        }
        let input_schema = input.schema();
        let role = |expr: &Arc<dyn PhysicalExpr>| {
            let c = expr.downcast_ref::<Column>()?;
            input_schema
                .field(c.index())
                .metadata()
                .get(ROLE_KEY)
                .cloned()
        };
        let follows_series = |expr: &Arc<dyn PhysicalExpr>| {
            role(expr).is_some_and(|r| r == "tag")
                || date_bin(expr).is_some_and(|(c, _)| input_schema.field(c).name() == "time")
        };
        let mut level = None;
        for (i, (expr, _)) in group_by.expr().iter().enumerate() {
            if follows_series(expr) {
                continue;
            }
            let small = role(expr).is_some_and(|r| r == "level")
                && matches!(
                    expr.data_type(&input_schema)?,
                    DataType::Dictionary(k, _) if *k == DataType::UInt8
                );
            if !small || level.is_some() {
                return Ok(None);
            }
            level = Some(i);
        }
        let Some(aggregates) = folds(aggregate)? else {
            return Ok(None);
        };
        let schema = aggregate.schema();
        let properties = properties(&schema, input);
        let display = format!(
            "gby=[{}], aggr=[{}]",
            group_by
                .expr()
                .iter()
                .map(|(_, name)| name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            aggregate
                .aggr_expr()
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Some(RunAggregateExec {
            input: Arc::clone(input),
            groups: group_by.expr().iter().map(|(e, _)| Arc::clone(e)).collect(),
            level,
            aggregates,
            display,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
}

/// The exec's properties: its schema, and as many partitions as its input (how the
/// input's rows are partitioned is said in its columns, not the exec's).
fn properties(schema: &SchemaRef, input: &Arc<dyn ExecutionPlan>) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(schema)),
        Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

impl DisplayAs for RunAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunAggregateExec: mode=Partial, {}", self.display)
    }
}

impl ExecutionPlan for RunAggregateExec {
    fn name(&self) -> &str {
        "RunAggregateExec"
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
        for expr in self
            .groups
            .iter()
            .chain(self.aggregates.iter().map(|a| &a.arg))
        {
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
                "RunAggregateExec has one child, was given {}",
                children.len()
            )));
        }
        let input = children.remove(0);
        // The groups and arguments are columns of the old input, by index.
        if input.schema() != self.input.schema() {
            return Err(DataFusionError::Internal(format!(
                "RunAggregateExec's new input has the schema {}, not {}",
                input.schema(),
                self.input.schema()
            )));
        }
        let properties = properties(&self.schema, &input);
        Ok(Arc::new(RunAggregateExec {
            input,
            groups: self.groups.clone(),
            level: self.level,
            aggregates: self.aggregates.clone(),
            display: self.display.clone(),
            schema: Arc::clone(&self.schema),
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let input_rows: Count = MetricBuilder::new(&self.metrics).counter("input_rows", partition);
        let runs = Runs {
            groups: self.groups.clone(),
            level: self.level,
            aggregates: self.aggregates.clone(),
            schema: Arc::clone(&self.schema),
        };
        let batches = input.filter_map(move |batch| {
            let out = batch.and_then(|batch| {
                let timer = baseline.elapsed_compute().timer();
                input_rows.add(batch.num_rows());
                let out = runs.fold(&batch);
                timer.done();
                if let Ok(Some(b)) = &out {
                    RecordOutput::record_output(b, &baseline);
                }
                out
            });
            futures::future::ready(out.transpose())
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// What a partition's stream folds each batch with.
struct Runs {
    groups: Vec<Arc<dyn PhysicalExpr>>,
    /// Which group is a `level` column (a dictionary with `u8` keys).
    level: Option<usize>,
    aggregates: Vec<Aggregate>,
    schema: SchemaRef,
}

impl Runs {
    /// One partial row per run of equal group keys in `batch`; `None` for an empty batch.
    fn fold(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(None);
        }
        let mut keys = self
            .groups
            .iter()
            .map(|g| g.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        // With a level group and only counts, each run of the other groups is counted
        // per level where it lies (see `count_by_level`).
        if let Some(level) = self.level
            && self.aggregates.iter().all(|a| a.fold == Fold::Count)
        {
            return self.count_by_level(batch, keys, level).map(Some);
        }
        // With a level group, each run of the other groups is put in order of level
        // first, and the rows (keys and arguments alike) taken in that order.
        let order = match self.level {
            None => None,
            Some(level) => {
                let runs = runs_besides(&keys, level, rows)?;
                let order = by_level(keys[level].as_ref(), &runs)?;
                for k in &mut keys {
                    *k = take(k.as_ref(), &order, None)?;
                }
                Some(order)
            }
        };
        let ranges = partition(&comparable(keys.iter()))?.ranges();
        let starts = UInt32Array::from_iter_values(ranges.iter().map(|r| r.start as u32));
        let mut columns = keys
            .iter()
            .map(|k| Ok(take(k.as_ref(), &starts, None)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        for aggregate in &self.aggregates {
            let mut values = aggregate.arg.evaluate(batch)?.into_array(rows)?;
            if let Some(order) = &order {
                values = take(values.as_ref(), order, None)?;
            }
            if aggregate.fold == Fold::Count {
                // Logical nulls: an untyped NULL is a NullArray without a null buffer.
                let nulls = values.logical_nulls();
                let counts = ranges.iter().map(|r| {
                    let null = nulls
                        .as_ref()
                        .map_or(0, |n| n.slice(r.start, r.len()).null_count());
                    (r.len() - null) as i64
                });
                columns.push(Arc::new(Int64Array::from_iter_values(counts)));
                continue;
            }
            let values = values.as_primitive::<Float64Type>();
            let runs = ranges.iter().map(|r| Run::of(values, r.clone()));
            match aggregate.fold {
                Fold::Min => columns.push(Arc::new(
                    runs.map(|run| extreme(&run, std::cmp::Ordering::Less))
                        .collect::<Float64Array>(),
                )),
                Fold::Max => columns.push(Arc::new(
                    runs.map(|run| extreme(&run, std::cmp::Ordering::Greater))
                        .collect::<Float64Array>(),
                )),
                Fold::Sum => columns.push(Arc::new(
                    runs.map(|run| sum(&run).map(|(_, s)| s))
                        .collect::<Float64Array>(),
                )),
                Fold::Avg => {
                    // A run without values has a null count as well as a null sum, as
                    // DataFusion's partial state does: the final aggregate takes a
                    // non-null count for a value seen.
                    let (counts, sums): (Vec<Option<u64>>, Vec<Option<f64>>) = runs
                        .map(|run| sum(&run).map_or((None, None), |(n, s)| (Some(n), Some(s))))
                        .unzip();
                    columns.push(Arc::new(UInt64Array::from(counts)));
                    columns.push(Arc::new(Float64Array::from(sums)));
                }
                Fold::Count => unreachable!("counted above"),
            }
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?))
    }
}

impl Runs {
    /// [`Runs::fold`] of a batch whose aggregates are all counts, grouped by `keys` of
    /// which `keys[level]` is the level: the rows of each run of the other keys are
    /// counted per level key without being put in order. The partial rows come as the
    /// ordered path makes them: per run, by level key, nulls last.
    fn count_by_level(
        &self,
        batch: &RecordBatch,
        keys: Vec<ArrayRef>,
        level: usize,
    ) -> Result<RecordBatch> {
        let runs = runs_besides(&keys, level, batch.num_rows())?;
        let levels = level_dictionary(keys[level].as_ref())?;
        // A row's slot is its level's dictionary key; a null's is the slot after the last
        // value, so that nulls come last as in the sorted path.
        let null = levels.values().len().min(usize::from(u8::MAX) + 1);
        let codes = levels.keys().values();
        let key_nulls = levels.keys().nulls();
        let slot = |row: usize| {
            if key_nulls.is_some_and(|n| n.is_null(row)) {
                null
            } else {
                usize::from(codes[row]).min(null)
            }
        };
        let width = null + 1;
        // What each count leaves out: no row (`count(*)`, or a column without nulls),
        // the rows a null buffer marks, or every row (a null literal).
        enum Skips {
            Nothing,
            Rows(NullBuffer),
            All,
        }
        let skips = self
            .aggregates
            .iter()
            .map(|a| {
                Ok(match a.arg.evaluate(batch)? {
                    ColumnarValue::Scalar(s) if s.is_null() => Skips::All,
                    ColumnarValue::Scalar(_) => Skips::Nothing,
                    // Logical nulls: an untyped NULL is a NullArray without a null buffer.
                    ColumnarValue::Array(a) => match a.logical_nulls() {
                        Some(n) if n.null_count() > 0 => Skips::Rows(n),
                        _ => Skips::Nothing,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Per run and level slot: the rows, and per count the rows with a value. Each
        // partial row takes the other keys from its run's first row and the level from
        // its slot.
        let mut seen = vec![0i64; width];
        let mut valid = vec![0i64; width * skips.len()];
        let mut run_rows: Vec<u32> = Vec::new();
        let mut level_keys: Vec<Option<u8>> = Vec::new();
        let mut out: Vec<Vec<i64>> = vec![Vec::new(); skips.len()];
        for run in runs {
            seen.fill(0);
            valid.fill(0);
            if key_nulls.is_none() {
                for &code in &codes[run.clone()] {
                    seen[usize::from(code).min(null)] += 1;
                }
            } else {
                for row in run.clone() {
                    seen[slot(row)] += 1;
                }
            }
            for (a, skip) in skips.iter().enumerate() {
                if let Skips::Rows(nulls) = skip {
                    for row in run.clone() {
                        valid[a * width + slot(row)] += i64::from(nulls.is_valid(row));
                    }
                }
            }
            for (s, &n) in seen.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                run_rows.push(run.start as u32);
                // A slot below `null` is a key of the dictionary, so it fits in a u8.
                level_keys.push((s < null).then_some(s as u8));
                for (a, (column, skip)) in out.iter_mut().zip(&skips).enumerate() {
                    column.push(match skip {
                        Skips::Nothing => n,
                        Skips::Rows(_) => valid[a * width + s],
                        Skips::All => 0,
                    });
                }
            }
        }
        let run_rows = UInt32Array::from(run_rows);
        let level_column: ArrayRef = Arc::new(DictionaryArray::<UInt8Type>::try_new(
            UInt8Array::from(level_keys),
            Arc::clone(levels.values()),
        )?);
        let mut columns = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if i == level {
                    Ok(Arc::clone(&level_column))
                } else {
                    Ok(take(k.as_ref(), &run_rows, None)?)
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        columns.extend(
            out.into_iter()
                .map(|c| Arc::new(Int64Array::from(c)) as ArrayRef),
        );
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// The arrays runs are found on: a dictionary's keys stand for it, since equal keys are
/// equal values, and equal values under two keys only cut a run in two.
fn comparable<'a>(keys: impl Iterator<Item = &'a ArrayRef>) -> Vec<ArrayRef> {
    keys.map(|k| match k.as_any_dictionary_opt() {
        Some(d) => d.keys().slice(0, d.keys().len()),
        None => Arc::clone(k),
    })
    .collect()
}

/// The runs of equal values of every key but `keys[level]`, over a batch of `rows` rows:
/// the whole batch when there is no other key.
fn runs_besides(
    keys: &[ArrayRef],
    level: usize,
    rows: usize,
) -> Result<Vec<std::ops::Range<usize>>> {
    let others = comparable(
        keys.iter()
            .enumerate()
            .filter(|(i, _)| *i != level)
            .map(|(_, k)| k),
    );
    if others.is_empty() {
        return Ok(std::iter::once(0..rows).collect());
    }
    Ok(partition(&others)?.ranges())
}

/// The level group's array as the dictionary with `u8` keys that the scan returns.
fn level_dictionary(level: &dyn Array) -> Result<&DictionaryArray<UInt8Type>> {
    level.as_dictionary_opt::<UInt8Type>().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "RunAggregateExec's level group is {}, not a dictionary with u8 keys",
            level.data_type()
        ))
    })
}

/// The rows of each of `runs` (ranges that tile the batch, in order) in order of the
/// key of `level` (a dictionary with `u8` keys), nulls last, otherwise as they were: a
/// counting sort within each run.
fn by_level(level: &dyn Array, runs: &[std::ops::Range<usize>]) -> Result<UInt32Array> {
    let level = level_dictionary(level)?;
    // A dictionary's keys index its values; nulls go in the slot after the last value.
    let null = level.values().len();
    let keys = level.keys();
    let slot = |row: usize| {
        if keys.is_null(row) {
            null
        } else {
            usize::from(keys.value(row)).min(null)
        }
    };
    let mut order = Vec::with_capacity(keys.len());
    let mut starts = vec![0usize; null + 2];
    for run in runs {
        starts.fill(0);
        for row in run.clone() {
            starts[slot(row) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let base = order.len();
        order.resize(base + run.len(), 0u32);
        for row in run.clone() {
            let s = &mut starts[slot(row)];
            order[base + *s] = row as u32;
            *s += 1;
        }
    }
    Ok(UInt32Array::from(order))
}

/// Whether `plan` returns a plain Sextant scan's rows in its order: the scan itself, or
/// a filter (which leaves out rows but keeps the order) or DataFusion's
/// `CooperativeExec` (which only yields to the runtime now and then) over such.
pub(crate) fn in_scan_order(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(scan) = plan.downcast_ref::<SextantScanExec>() {
        return scan.is_plain();
    }
    if let Some(coop) = plan.downcast_ref::<CooperativeExec>() {
        return in_scan_order(coop.input());
    }
    match plan.downcast_ref::<FilterExec>() {
        Some(filter) => in_scan_order(filter.input()),
        None => false,
    }
}

/// One run's values of an aggregate's argument.
struct Run<'a> {
    values: &'a [f64],
    /// Which values are valid; `None` when every one is.
    nulls: Option<NullBuffer>,
}

impl<'a> Run<'a> {
    /// The rows `range` of `values`: a slice of the values, and of the null buffer only
    /// if one of these rows is null, so that a run's fold does not depend on the other
    /// rows of its batch.
    fn of(values: &'a Float64Array, range: std::ops::Range<usize>) -> Run<'a> {
        let nulls = values
            .nulls()
            .map(|n| n.slice(range.start, range.len()))
            .filter(|n| n.null_count() > 0);
        Run {
            values: &values.values()[range],
            nulls,
        }
    }

    /// The valid values.
    fn valid(&self) -> impl Iterator<Item = f64> + '_ {
        let nulls = self.nulls.as_ref();
        self.values
            .iter()
            .enumerate()
            .filter(move |(i, _)| nulls.is_none_or(|n| n.is_valid(*i)))
            .map(|(_, &v)| v)
    }
}

/// The min (`wanted` Less) or max (Greater) of `run`'s values, `None` when it has none,
/// folded exactly as DataFusion's grouped min/max folds: from `f64::MAX` (`f64::MIN`),
/// taking a value that compares `wanted` with the current one, or does not compare
/// (NaN), so that -0.0 against 0.0 and NaN within a run come out as they do through
/// hashing (a NaN across runs: see the [module](self) documentation).
fn extreme(run: &Run<'_>, wanted: std::cmp::Ordering) -> Option<f64> {
    let start = if wanted == std::cmp::Ordering::Less {
        f64::MAX
    } else {
        f64::MIN
    };
    let fold = |cur: f64, new: f64| extreme_step(cur, new, wanted);
    if run.nulls.is_none() {
        let values = run.values;
        (!values.is_empty()).then(|| values.iter().fold(start, |c, &v| fold(c, v)))
    } else {
        let mut seen = false;
        let folded = run.valid().fold(start, |c, v| {
            seen = true;
            fold(c, v)
        });
        seen.then_some(folded)
    }
}

/// One step of [`extreme`]'s fold: `new` if it compares `wanted` with `cur` or does not
/// compare (NaN), else `cur`.
pub(crate) fn extreme_step(cur: f64, new: f64, wanted: std::cmp::Ordering) -> f64 {
    match new.partial_cmp(&cur) {
        Some(o) if o != wanted => cur,
        _ => new,
    }
}

/// The count and sum of `run`'s values, `None` when it has none.
fn sum(run: &Run<'_>) -> Option<(u64, f64)> {
    if run.nulls.is_none() {
        let values = run.values;
        (!values.is_empty()).then(|| (values.len() as u64, sum_in_lanes(values)))
    } else {
        let (n, s) = run.valid().fold((0u64, 0.0), |(n, s), v| (n + 1, s + v));
        (n > 0).then_some((n, s))
    }
}

/// Values added in at once: eight sums in flight, so that the additions do not wait on
/// one another.
const LANES: usize = 8;

/// The sum of `values`, added in [`LANES`] interleaved sums that are then added up. The
/// order of the additions differs from one after the other (so may the last bits, as with
/// another partitioning); each sum starts from -0.0 as `Iterator::sum` does, so that
/// values that are all -0.0 sum to -0.0.
fn sum_in_lanes(values: &[f64]) -> f64 {
    let mut lanes = [-0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().chain(rest).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_nulls_folds_alike_whatever_the_rest_of_its_batch_holds() {
        let values = Float64Array::from(vec![
            Some(0.1),
            Some(0.2),
            Some(0.3),
            Some(1e16),
            None,
            Some(2.0),
            None,
            None,
        ]);
        let dense = Float64Array::from(vec![0.1, 0.2, 0.3]);
        // Rows 0..3 have no null: the same fold as an array without any.
        let run = Run::of(&values, 0..3);
        assert!(run.nulls.is_none());
        assert_eq!(
            sum(&run).map(|(n, s)| (n, s.to_bits())),
            sum(&Run::of(&dense, 0..3)).map(|(n, s)| (n, s.to_bits()))
        );
        // Some rows null: only the valid ones count.
        let some = Run::of(&values, 3..6);
        assert_eq!(sum(&some), Some((2, 1e16 + 2.0)));
        assert_eq!(extreme(&some, std::cmp::Ordering::Less), Some(2.0));
        assert_eq!(extreme(&some, std::cmp::Ordering::Greater), Some(1e16));
        // Every row null: no value, as DataFusion's partial state has it.
        let none = Run::of(&values, 6..8);
        assert_eq!(sum(&none), None);
        assert_eq!(extreme(&none, std::cmp::Ordering::Greater), None);
    }

    #[test]
    fn lane_sums_add_every_value_once() {
        for n in [1usize, 7, 8, 9, 17, 100] {
            let values: Vec<f64> = (1..=n).map(|i| i as f64).collect();
            assert_eq!(
                sum_in_lanes(&values),
                (n * (n + 1) / 2) as f64,
                "{n} values"
            );
        }
        assert!(sum_in_lanes(&[-0.0; 11]).is_sign_negative());
        assert!(sum_in_lanes(&[1.0, f64::NAN, 2.0]).is_nan());
        assert_eq!(sum_in_lanes(&[f64::INFINITY; 9]), f64::INFINITY);
    }
}
