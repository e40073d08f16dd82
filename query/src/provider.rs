//! Sextant tables as DataFusion tables.

use std::sync::Arc;

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::plan_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableType, source_as_provider};
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use sextant_engine::{ColumnType, Delete, Engine, ScanRequest, Snapshot, TableSchema};

use crate::exec::SextantScanExec;
use crate::filters;

/// A scan decoding one string column (log messages) is split at this many times fewer
/// rows than [`QueryOptions::single_partition_rows`](crate::QueryOptions), as a string
/// costs several numbers' decoding; each further string column adds this less one to
/// the divisor. Measured on `sextant-bench run --workload
/// logs --events-per-second 20 --days 1 --runs 30 --no-parquet --no-duckdb --no-tsink`
/// (6 rounds alternated, medians) against counting a string's rows as a number's:
/// messages-containing 0.66 and top-error-templates 0.58 of the time at 4, the same at
/// 12, the other four log queries alike.
const STRING_ROW_COST: u64 = 4;

/// Every table of an engine, looked up afresh for each query so that new tables, new
/// columns and rows written a moment ago are seen.
#[derive(Debug)]
pub struct SextantSchema {
    engine: Arc<Engine>,
    single_partition_rows: u64,
}

impl SextantSchema {
    /// The tables of `engine`; scans expected to read fewer than `single_partition_rows`
    /// rows run as one partition (see [`crate::QueryOptions::single_partition_rows`]).
    pub fn new(engine: Arc<Engine>, single_partition_rows: u64) -> Self {
        SextantSchema {
            engine,
            single_partition_rows,
        }
    }
}

#[async_trait]
impl SchemaProvider for SextantSchema {
    fn table_names(&self) -> Vec<String> {
        self.engine
            .snapshot()
            .tables()
            .map(str::to_string)
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(SextantTable::new(Arc::clone(&self.engine), name).map(|t| {
            Arc::new(t.with_single_partition_rows(self.single_partition_rows))
                as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.engine.schema(name).is_some()
    }
}

/// The rows a query reads, taken once when it is planned (by [`SnapshotPlanner`]) so
/// that every scan of it (two tables, or one table twice as in a self-join) reads the
/// same moment.
#[derive(Debug)]
pub(crate) struct QuerySnapshot(pub Arc<Snapshot>);

/// The session's query planner: takes the [`QuerySnapshot`] of a query that reads an
/// engine's tables (unless its session state already has one), then plans with `inner`.
/// Every way a query is planned goes through it: `Database`, a server's sessions, alert
/// rules.
#[derive(Debug)]
pub(crate) struct SnapshotPlanner {
    pub engine: Arc<Engine>,
    pub inner: Arc<dyn QueryPlanner + Send + Sync>,
}

#[async_trait]
impl QueryPlanner for SnapshotPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let has_one = session.config().get_extension::<QuerySnapshot>().is_some();
        let state = session.as_any().downcast_ref::<SessionState>();
        match state {
            Some(state) if !has_one && reads_engine(plan) => {
                let mut state = state.clone();
                let snapshot = QuerySnapshot(Arc::new(self.engine.snapshot()));
                state.config_mut().set_extension(Arc::new(snapshot));
                self.inner.create_physical_plan(plan, &state).await
            }
            _ => self.inner.create_physical_plan(plan, session).await,
        }
    }
}

/// Whether `plan` scans a table of the engine.
fn reads_engine(plan: &LogicalPlan) -> bool {
    let mut found = false;
    each_scan(plan, |_, table| {
        found = table.is_some();
        !found
    });
    found
}

/// Calls `f` with each table scan of `plan` (subqueries included) and its provider
/// as a [`SextantTable`] (`None` for any other table), until `f` returns false.
pub(crate) fn each_scan(
    plan: &LogicalPlan,
    mut f: impl FnMut(&datafusion::logical_expr::TableScan, Option<&SextantTable>) -> bool,
) {
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = source_as_provider(&scan.source).ok();
            let table = provider
                .as_deref()
                .and_then(|p| p.downcast_ref::<SextantTable>());
            if !f(scan, table) {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// One table of an engine: each query's scans read the rows of the moment it is
/// planned, and `DELETE` deletes from it.
#[derive(Debug, Clone)]
pub struct SextantTable {
    engine: Arc<Engine>,
    schema: TableSchema,
    arrow: SchemaRef,
    /// What scans return: every row, or only latest rows (see [`crate::latest`]).
    rows: Rows,
    /// Scans expected to read fewer rows run as one partition.
    single_partition_rows: u64,
}

/// What a table's scans return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// Every row.
    All,
    /// Only the latest row of each series; with `group_by` tags, only the latest row of
    /// each group of series sharing those tags' values.
    Latest {
        /// Tags whose values make a group; `None`: each series is its own group.
        group_by: Option<Vec<String>>,
    },
}

impl SextantTable {
    /// The table `name` of the engine, if it exists. A plan kept (a prepared statement,
    /// an alert rule) holds the engine, not a snapshot, so segments merged away since
    /// can be removed.
    pub fn new(engine: Arc<Engine>, name: &str) -> Option<Self> {
        let schema = TableSchema::clone(engine.schema(name)?.as_ref());
        let arrow = schema.arrow_schema();
        Some(SextantTable {
            engine,
            schema,
            arrow,
            rows: Rows::All,
            single_partition_rows: 0,
        })
    }

    /// The same table, whose scans expected to read fewer than `rows` rows run as one
    /// partition.
    pub fn with_single_partition_rows(self, rows: u64) -> Self {
        SextantTable {
            single_partition_rows: rows,
            ..self
        }
    }

    /// The same table, whose scans return the given rows.
    pub fn with_rows(&self, rows: Rows) -> Self {
        SextantTable {
            rows,
            ..self.clone()
        }
    }

    /// What scans of this table return.
    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    /// The engine's schema of the table.
    pub fn table_schema(&self) -> &TableSchema {
        &self.schema
    }
}

#[async_trait]
impl TableProvider for SextantTable {
    fn schema(&self) -> SchemaRef {
        self.arrow.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if filters::supported(f, &self.schema) {
                    TableProviderFilterPushDown::Exact
                } else if !filters::field_filters(f, &self.schema).is_empty() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let pushed = filters::analyze(filters, &self.schema);
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.arrow.fields().len()).collect(),
        };
        let schema: SchemaRef = Arc::new(Schema::new(
            indices
                .iter()
                .map(|&i| self.arrow.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        if pushed.is_empty() {
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let mut request = ScanRequest::new(&self.schema.name)
            .columns(indices.iter().map(|&i| self.schema.columns[i].name.clone()))
            .time_between(pushed.min_time, pushed.max_time);
        for (tag, values) in pushed.tags {
            request = request.tag_in(tag, values);
        }
        for f in filters {
            if !filters::supported(f, &self.schema) {
                request
                    .fields
                    .extend(filters::field_filters(f, &self.schema));
            }
        }
        // The rows are those of the moment the query is planned (its QuerySnapshot),
        // not of the moment the table was looked up: a logical plan kept and planned
        // again (an alert rule, a prepared statement) sees the rows written since.
        // Tables are never dropped and columns never removed, so the names looked up are
        // still there.
        let snapshot = match state.config().get_extension::<QuerySnapshot>() {
            Some(query) => Arc::clone(&query.0),
            None => Arc::new(self.engine.snapshot()),
        };
        // A small scan runs as one partition: splitting it costs more than it saves. The
        // estimate is only compared with that threshold and with DataFusion's batch size
        // (see SextantScanExec::with_estimated_rows), so counting stops past both. A
        // string column's rows cost more to decode, so scans of strings split sooner.
        let batch_size = state.config().batch_size() as u64;
        let strings = indices
            .iter()
            .filter(|&&i| self.schema.columns[i].ty == ColumnType::Str)
            .count() as u64;
        let threshold = self.single_partition_rows / (1 + (STRING_ROW_COST - 1) * strings);
        let cap = self.single_partition_rows.max(batch_size + 1);
        let estimate = match self.rows {
            Rows::All => snapshot
                .estimate_rows(&request, cap)
                .map_err(crate::error::to_datafusion)?,
            Rows::Latest { .. } => None,
        };
        // The work is the rows decoded, not returned: a short window at the end of long
        // blocks decodes them from their first row, and is worth splitting.
        let small = match (&self.rows, estimate) {
            (Rows::All, Some(n)) if n < threshold => snapshot
                .estimate_decoded_rows(&request, threshold)
                .map_err(crate::error::to_datafusion)?
                .is_some(),
            _ => false,
        };
        let partitions = if small {
            1
        } else {
            state.config().target_partitions()
        };
        // DataFusion puts the smaller side of a join (by these estimates) into its hash
        // table. Past the cap the rows are counted by source, not series; a scan of
        // latest rows returns one row per series at most.
        let rows = match (&self.rows, estimate) {
            (Rows::All, Some(rows)) => rows,
            (Rows::All, None) => snapshot
                .estimate_rows_coarse(&request)
                .map_err(crate::error::to_datafusion)?,
            (Rows::Latest { .. }, _) => snapshot
                .estimate_series(&request)
                .map_err(crate::error::to_datafusion)?,
        };
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        let exec = SextantScanExec::new(snapshot, request, schema, partitions, limit);
        Ok(Arc::new(match &self.rows {
            Rows::All => exec.with_estimated_rows(rows),
            Rows::Latest { group_by } => {
                exec.latest_rows(group_by.clone()).with_estimated_rows(rows)
            }
        }))
    }

    /// `DELETE FROM t WHERE ...` with conditions on time ranges and tags (those the scan
    /// answers exactly: see [`filters`]), through [`Engine::delete`]: durable when it
    /// returns, hidden from later queries at once, removed by compaction. Returns the
    /// number of rows deleted, counted just before.
    async fn delete_from(
        &self,
        _state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let engine = &self.engine;
        let name = &self.schema.name;
        // An empty list is also what DataFusion passes for a WHERE clause it folded away
        // (`WHERE false`, or a subquery it turned into a join): never read it as "all".
        if filters.is_empty() {
            return plan_err!(
                "DELETE FROM {name} needs a WHERE clause on time or tags; to delete every row, name the whole time range (WHERE time >= '1970-01-01' deletes every row from 1970 on)"
            );
        }
        let unsupported: Vec<String> = filters
            .iter()
            .filter(|f| !filters::supported(f, &self.schema))
            .map(|f| f.to_string())
            .collect();
        if !unsupported.is_empty() {
            return plan_err!(
                "DELETE FROM {name} supports only conditions on the time column (<, <=, >, >=, =, BETWEEN with constants) and on tags (= or IN with strings), joined by AND; not: {}",
                unsupported.join(", ")
            );
        }
        let pushed = filters::analyze(&filters, &self.schema);
        let mut delete = Delete::all().time_range(pushed.min_time, pushed.max_time);
        let mut request = ScanRequest::new(name)
            .columns(["time"])
            .time_between(pushed.min_time, pushed.max_time);
        for (tag, values) in pushed.tags {
            request = request.tag_in(tag.clone(), values.clone());
            delete = delete.tag_in(tag, values);
        }
        let count = if pushed.min_time > pushed.max_time {
            0
        } else {
            let mut count = 0u64;
            let scan = engine
                .snapshot()
                .scan(&request)
                .map_err(crate::error::to_datafusion)?;
            for batch in scan {
                count += batch.map_err(crate::error::to_datafusion)?.num_rows() as u64;
            }
            engine
                .delete(name, &delete)
                .map_err(crate::error::to_datafusion)?;
            count
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "count",
            DataType::UInt64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(UInt64Array::from(vec![count]))],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            None,
        )?)
    }
}
