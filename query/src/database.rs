//! The handle an embedding program opens: write rows and logs, run SQL.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow_array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{LogicalPlan, Statement as DfStatement};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use parking_lot::Mutex;
use sextant_engine::{Config, Engine, Point, TableKind};

use crate::error::{Error, Result};
use crate::functions::gapfill::SextantQueryPlanner;
use crate::memory::BudgetPool;
use crate::plan_cache::PlanCache;
use crate::provider::{SextantSchema, SnapshotPlanner};
use crate::reuse::Kept;
use crate::statement::Statement;

/// What a client of a server may run: queries, not statements that create, change or
/// drop tables, insert rows, or set the session's options (shared by every caller).
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Limits and parallelism of queries.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// A query running longer is cancelled with [`Error::Timeout`]. Default: none.
    pub timeout: Option<Duration>,
    /// Memory the queries of the database may hold together in operators that track it
    /// (sorts, joins, aggregations, gap filling); past it a query fails with an error
    /// naming the limit. Queries also draw from the engine's
    /// [`Config::memory_budget`](sextant_engine::Config::memory_budget), shared with rows
    /// held in memory (see [`crate::memory`]). Default: none.
    pub memory_limit: Option<usize>,
    /// Partitions scans are split into (series are divided among them). Default: the
    /// number of cores.
    pub target_partitions: usize,
    /// Scans expected (from the series index) to decode fewer rows than this run as one
    /// partition, as splitting them costs more than it saves. A block is decoded from its
    /// first row, so a short window at the end of long blocks counts the blocks' rows, not
    /// the window's. DataFusion itself splits a
    /// one-partition input of more than `batch_size` (8192) rows round-robin for the
    /// operators above it. A scan of string columns is split sooner: the threshold is
    /// divided by 1 + 3 per string column read (by 4 for one). Default: 100,000; 0
    /// splits every scan.
    pub single_partition_rows: u64,
    /// Queries whose resolved plans are kept by their text (by [`Database::sql`] and
    /// every other way of running SQL text), so that running the same text again skips
    /// parsing it. Default: 256; 0 keeps none.
    pub plan_cache_size: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            timeout: None,
            memory_limit: None,
            target_partitions: std::thread::available_parallelism().map_or(1, |n| n.get()),
            single_partition_rows: 100_000,
            plan_cache_size: 256,
        }
    }
}

/// A Sextant database: the storage engine with SQL on top.
///
/// The synchronous methods run on a runtime of their own; inside async code use the
/// `_async` ones.
pub struct Database {
    /// Its own among the process's databases, given to the statements it prepares.
    id: u64,
    engine: Arc<Engine>,
    ctx: SessionContext,
    /// The statements of SQL text run before (see [`crate::plan_cache`]).
    plans: Mutex<PlanCache>,
    /// The context that kept plans run in, with the plan cache's generation it was made
    /// under (see [`Database::kept_task`]).
    kept_task: Mutex<Option<(u64, Arc<TaskContext>)>>,
    options: QueryOptions,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.engine.path())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (or creates) the database in `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(Config::new(path), QueryOptions::default())
    }

    /// Opens the database with engine and query options.
    pub fn open_with(config: Config, options: QueryOptions) -> Result<Database> {
        let engine = Arc::new(config.open()?);
        let mut session = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(options.target_partitions.max(1));
        session.options_mut().execution.time_zone = Some("UTC".into());
        // Scans estimate their rows (SextantScanExec::with_estimated_rows): small ones are
        // then not split across partitions, which costs more than it saves.
        session
            .options_mut()
            .execution
            .use_row_number_estimates_to_optimize_partitioning = true;
        let mut runtime_env = RuntimeEnvBuilder::new();
        if options.memory_limit.is_some() || engine.memory_budget().is_some() {
            let pool = BudgetPool::new(Arc::clone(&engine), options.memory_limit);
            runtime_env = runtime_env.with_memory_pool(Arc::new(pool));
        }
        let state = SessionStateBuilder::new()
            .with_config(session)
            .with_runtime_env(runtime_env.build_arc()?)
            .with_default_features()
            .with_query_planner(Arc::new(SnapshotPlanner {
                engine: Arc::clone(&engine),
                inner: Arc::new(SextantQueryPlanner),
            }))
            .with_physical_optimizer_rule(Arc::new(crate::top_by_time::TopByTimeRule))
            // After the top-by-time rule, which looks through DataFusion's aggregates.
            .with_physical_optimizer_rule(Arc::new(crate::run_aggregate::RunAggregateRule))
            // After the rules that place sorts, whose sort over an aggregate it takes.
            .with_physical_optimizer_rule(Arc::new(crate::bucket_aggregate::BucketAggregateRule))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog exists");
        let schema = SextantSchema::new(Arc::clone(&engine), options.single_partition_rows);
        catalog.register_schema("public", Arc::new(schema))?;
        let system = crate::system::SystemSchema::new(Arc::clone(&engine));
        catalog.register_schema(crate::system::SCHEMA, Arc::new(system))?;
        crate::functions::register(&ctx);
        ctx.add_optimizer_rule(Arc::new(crate::latest::LatestRowRule));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.target_partitions.max(1))
            .thread_name("sextant-query")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        static IDS: AtomicU64 = AtomicU64::new(0);
        Ok(Database {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            engine,
            ctx,
            plans: Mutex::new(PlanCache::new(options.plan_cache_size)),
            kept_task: Mutex::new(None),
            options,
            runtime,
        })
    }

    /// The storage engine, for everything the handle does not wrap (cloning the `Arc`
    /// shares it with another writer, such as a tracing layer).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The runtime queries run on, for a program that serves them (a server's tasks
    /// spawned here share its threads with the queries).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// The DataFusion session, to register more functions or tables. SQL text run before
    /// through [`sql`](Database::sql) keeps its resolved tables and functions, and, where
    /// its physical plan is kept, the session options it was planned under, until
    /// [`forget_plans`](Database::forget_plans).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Writes points atomically (see [`Engine::write_points`]).
    pub fn write_points(&self, points: &[Point]) -> Result<()> {
        Ok(self.engine.write_points(points)?)
    }

    /// Writes an Arrow batch atomically (see [`Engine::write_arrow`]).
    pub fn write_arrow(&self, table: &str, kind: TableKind, batch: &RecordBatch) -> Result<()> {
        Ok(self.engine.write_arrow(table, kind, batch)?)
    }

    /// Writes every table's rows in memory into segments.
    pub fn flush(&self) -> Result<()> {
        Ok(self.engine.flush()?)
    }

    /// Flushes `table` and merges its segments, each time window's into one (see
    /// [`Engine::compact`]); queries and writes go on meanwhile.
    pub fn compact(&self, table: &str) -> Result<()> {
        Ok(self.engine.compact(table)?)
    }

    /// Runs a SQL statement and returns all its batches.
    pub fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.runtime.block_on(self.sql_async(sql))
    }

    /// Runs a SQL statement and returns all its batches (async).
    ///
    /// A query's text is kept with its tables and functions resolved, so that running
    /// the same text again skips parsing it (see [`forget_plans`](Database::forget_plans));
    /// each run still reads the rows of its moment.
    pub async fn sql_async(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.with_timeout(self.collect(sql, SQLOptions::new()))
            .await
    }

    /// Forgets the SQL text kept by [`sql`](Database::sql), and the plans prepared
    /// statements keep for their next run: for a program that changed the session (a
    /// function registered again under the same name, an option set through
    /// [`session`](Database::session)) and wants SQL run before to see it. Statements run
    /// through `sql` that create or change tables or set options do this themselves.
    pub fn forget_plans(&self) {
        self.plans.lock().clear();
    }

    /// The number of SQL texts kept.
    #[cfg(test)]
    pub(crate) fn plans_kept(&self) -> usize {
        self.plans.lock().len()
    }

    /// Whether the SQL text is kept.
    #[cfg(test)]
    pub(crate) fn plan_kept(&self, sql: &str) -> bool {
        self.plans.lock().contains(sql)
    }

    /// Whether the SQL text is kept with a physical plan to run again.
    #[cfg(test)]
    pub(crate) fn physical_plan_kept(&self, sql: &str) -> bool {
        let mut plans = self.plans.lock();
        let generation = plans.generation();
        plans
            .get(sql)
            .is_some_and(|e| e.statement.kept_physical(&[], generation).is_some())
    }

    /// The physical plan of `sql` under `options` and the context to run it in. For a
    /// query: its kept physical plan renewed over the rows of this moment, or its kept
    /// statement planned, or the text planned (and kept, with its physical plan where
    /// that can be run again: see [`crate::reuse`]). Any other statement is executed,
    /// clearing what is kept unless it is a PREPARE, EXECUTE or DEALLOCATE.
    async fn plan(
        &self,
        sql: &str,
        options: SQLOptions,
    ) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
        let generation = self.plans.lock().generation();
        let kept = self.plans.lock().get(sql);
        if let Some(entry) = kept {
            // Checked without the cache's lock, which would otherwise wait on writers.
            let unchanged = entry.tables.iter().all(|(name, columns)| {
                self.engine
                    .schema(name)
                    .is_some_and(|s| s.columns.len() == *columns)
            });
            if unchanged {
                options.verify_plan(entry.statement.plan())?;
                return self.physical(&entry.statement, &[], generation).await;
            }
            self.plans.lock().remove(sql);
        }
        let plan = self.ctx.state().create_logical_plan(sql).await?;
        options.verify_plan(&plan)?;
        if matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_)) {
            // PREPARE, EXECUTE and DEALLOCATE change nothing a kept plan depends on;
            // SET and DDL may.
            let keeps = matches!(
                &plan,
                LogicalPlan::Statement(
                    DfStatement::Prepare(_) | DfStatement::Execute(_) | DfStatement::Deallocate(_)
                )
            );
            let frame = self.ctx.execute_logical_plan(plan).await;
            if !keeps {
                self.plans.lock().clear();
            }
            let frame = frame?;
            let task = Arc::new(frame.task_ctx());
            return Ok((frame.create_physical_plan().await?, task));
        }
        if read_only().verify_plan(&plan).is_ok()
            && let Ok(statement) = Statement::new(self.id, sql, plan.clone())
            && statement.parameter_types().is_empty()
        {
            // The entry's clone shares the physical plan the statement keeps.
            self.plans.lock().insert(sql, statement.clone(), generation);
            return self.physical(&statement, &[], generation).await;
        }
        let state = self.ctx.state();
        Ok((state.create_physical_plan(&plan).await?, state.task_ctx()))
    }

    /// The physical plan of `statement` run with `params` and the context to run it in:
    /// the plan it keeps from a run with the same values under the plan cache's
    /// `generation`, renewed over the rows of this moment, or a new plan (then kept if it
    /// can be run again: see [`crate::reuse`]).
    async fn physical(
        &self,
        statement: &Statement,
        params: &[ScalarValue],
        generation: u64,
    ) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
        if statement.database() != self.id {
            return Err(Error::OtherDatabase);
        }
        if let Some(kept) = statement.kept_physical(params, generation)
            && let Some(physical) = kept.renew(&Arc::new(self.engine.snapshot()))
        {
            return Ok((physical, self.kept_task(generation)));
        }
        let logical = statement.bind(params)?;
        let state = self.ctx.state();
        let physical = state.create_physical_plan(&logical).await?;
        if let Ok(Some(kept)) = Kept::of(&logical, &physical) {
            statement.keep_physical(params, generation, kept);
        }
        Ok((physical, state.task_ctx()))
    }

    /// The context for a plan kept under the plan cache's `generation`: made once per
    /// generation, as the kept plans are. Making one copies the session's settings and
    /// function registries, about a tenth of a one-host query's run.
    ///
    /// A runtime set through [`session`](Database::session) (a memory limit, a temporary
    /// directory) replaces the session's runtime, and is taken at once, as before.
    fn kept_task(&self, generation: u64) -> Arc<TaskContext> {
        let runtime = self.ctx.runtime_env();
        let mut kept = self.kept_task.lock();
        match &*kept {
            Some((g, task)) if *g == generation && Arc::ptr_eq(&task.runtime_env(), &runtime) => {
                task.clone()
            }
            _ => {
                let task = self.ctx.task_ctx();
                *kept = Some((generation, task.clone()));
                task
            }
        }
    }

    /// All the batches of `sql` under `options`.
    async fn collect(&self, sql: &str, options: SQLOptions) -> Result<Vec<RecordBatch>> {
        let (plan, task) = self.plan(sql, options).await?;
        Ok(datafusion::physical_plan::collect(plan, task).await?)
    }

    /// The batches of `sql` under `options` as a stream.
    async fn stream(&self, sql: &str, options: SQLOptions) -> Result<SendableRecordBatchStream> {
        let (plan, task) = self.plan(sql, options).await?;
        Ok(datafusion::physical_plan::execute_stream(plan, task)?)
    }

    /// Parses `sql` and resolves its tables and functions once, for
    /// [`execute`](Database::execute) to run many times with parameters (`$1`, `$2`,
    /// ...). Only queries can be prepared: statements that create, change or drop tables,
    /// insert or delete rows, or set options cannot (run them with [`sql`](Database::sql)).
    /// A statement holds the engine: the database cannot be opened again in this process
    /// while one is kept after [`close`](Database::close).
    ///
    /// ```
    /// # use sextant_query::Database;
    /// # use sextant_engine::Point;
    /// # use datafusion::common::ScalarValue;
    /// # fn main() -> sextant_query::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Database::open(dir.path())?;
    /// db.write_points(&[Point::metric("cpu").tag("host", "a").field("usage", 95.0).time(1)])?;
    /// let hot = db.prepare("SELECT count(*) AS n FROM cpu WHERE host = $1 AND usage > $2")?;
    /// let count = |host: &str| -> sextant_query::Result<String> {
    ///     let batches = db.execute(&hot, &[ScalarValue::from(host), ScalarValue::from(90.0)])?;
    ///     Ok(arrow_cast::display::array_value_to_string(batches[0].column(0), 0).unwrap())
    /// };
    /// assert_eq!(count("a")?, "1");
    /// assert_eq!(count("b")?, "0");
    /// # Ok(()) }
    /// ```
    pub fn prepare(&self, sql: &str) -> Result<Statement> {
        self.runtime.block_on(self.prepare_async(sql))
    }

    /// [`prepare`](Database::prepare), in async code.
    pub async fn prepare_async(&self, sql: &str) -> Result<Statement> {
        let plan = self.ctx.state().create_logical_plan(sql).await?;
        read_only().verify_plan(&plan)?;
        Statement::new(self.id, sql, plan)
    }

    /// Runs a prepared statement with `params` as `$1`, `$2`, .... Where the statement
    /// shows a parameter's type, text is read as that type (a string to a timestamp), with
    /// an error naming the parameter if it cannot be, and another value is cast to it when
    /// nothing is lost (an integer to a double; 2.5 stays 2.5 beside a BIGINT). The
    /// statement is optimized and planned for this run, over the rows of this moment,
    /// unless the run before had the same values and its plan can be run again (see
    /// [`Statement`]).
    pub fn execute(
        &self,
        statement: &Statement,
        params: &[ScalarValue],
    ) -> Result<Vec<RecordBatch>> {
        self.runtime.block_on(self.execute_async(statement, params))
    }

    /// [`execute`](Database::execute), in async code.
    pub async fn execute_async(
        &self,
        statement: &Statement,
        params: &[ScalarValue],
    ) -> Result<Vec<RecordBatch>> {
        let generation = self.plans.lock().generation();
        let run = async {
            let (physical, task) = self.physical(statement, params, generation).await?;
            Ok(datafusion::physical_plan::collect(physical, task).await?)
        };
        self.with_timeout(run).await
    }

    /// Runs a SQL query that may only read: statements that would create, change or drop
    /// tables, insert rows, or set the session's options (shared by every caller of a
    /// server) are refused with an error naming what is not allowed. For a server's
    /// clients.
    pub async fn sql_read_only(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.with_timeout(self.collect(sql, read_only())).await
    }

    /// [`sql_read_only`](Database::sql_read_only) as a stream, computed as it is pulled;
    /// dropping it cancels the query. The timeout does not apply: the caller controls how
    /// long it pulls.
    pub async fn sql_read_only_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        self.stream(sql, read_only()).await
    }

    async fn with_timeout(
        &self,
        run: impl Future<Output = Result<Vec<RecordBatch>>>,
    ) -> Result<Vec<RecordBatch>> {
        match self.options.timeout {
            None => run.await,
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(limit)),
            },
        }
    }

    /// Runs a SQL statement and returns its batches as a stream, computed as they are
    /// pulled; dropping the stream cancels the query. The timeout does not apply: the
    /// caller controls how long it pulls.
    pub async fn sql_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        self.stream(sql, SQLOptions::new()).await
    }

    /// Flushes everything and closes the engine.
    pub fn close(self) -> Result<()> {
        let Database {
            engine,
            ctx,
            plans,
            kept_task,
            runtime,
            ..
        } = self;
        // Kept plans hold the engine, and so may their context (through a memory pool).
        drop(plans);
        drop(kept_task);
        drop(ctx);
        drop(runtime);
        match Arc::try_unwrap(engine) {
            Ok(engine) => Ok(engine.close()?),
            // Something still holds the engine (a stream, another session's tables):
            // closed all the same; it can still be read.
            Err(engine) => Ok(engine.shutdown()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::common::ScalarValue;
    use sextant_engine::Point;

    use crate::Database;

    /// A statement run again with the values of its run before takes its kept plan; a
    /// SET through `sql` makes the next such run plan anew, under the new setting.
    #[test]
    fn a_set_reaches_the_next_run_of_a_kept_statement() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let points: Vec<Point> = (0..9)
            .map(|m| {
                Point::metric("cpu")
                    .tag("host", "a")
                    .field("usage", m as f64)
                    .time(m * 60_000_000_000)
            })
            .collect();
        db.write_points(&points).unwrap();
        let times = db
            .prepare("SELECT time FROM cpu WHERE host = $1 ORDER BY time")
            .unwrap();
        let a = [ScalarValue::from("a")];
        let largest_batch = || {
            let batches = db.execute(&times, &a).unwrap();
            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 9);
            batches.iter().map(|b| b.num_rows()).max().unwrap()
        };
        assert_eq!(largest_batch(), 9);
        let generation = db.plans.lock().generation();
        assert!(times.kept_physical(&a, generation).is_some(), "not kept");
        assert_eq!(largest_batch(), 9);
        db.sql("SET datafusion.execution.batch_size = 2").unwrap();
        assert_eq!(largest_batch(), 2);
    }

    #[test]
    fn the_context_of_kept_plans_is_made_once_and_renewed_by_a_set_or_a_new_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let generation = db.plans.lock().generation();
        let task = db.kept_task(generation);
        assert!(Arc::ptr_eq(&task, &db.kept_task(generation)), "made once");
        // A memory limit set through the session replaces its runtime, without a new
        // generation: kept plans take it at once.
        db.runtime()
            .block_on(async {
                let set = "SET datafusion.runtime.memory_limit = '1G'";
                db.session().sql(set).await?.collect().await
            })
            .unwrap();
        assert_eq!(db.plans.lock().generation(), generation);
        let renewed = db.kept_task(generation);
        assert!(!Arc::ptr_eq(&task.runtime_env(), &renewed.runtime_env()));
        assert!(Arc::ptr_eq(
            &renewed.runtime_env(),
            &db.session().runtime_env()
        ));
        // PREPARE, EXECUTE and DEALLOCATE through `sql` keep the plans.
        db.write_points(&[Point::metric("cpu").field("usage", 1.0).time(0)])
            .unwrap();
        let query = "SELECT count(*) FROM cpu";
        db.sql(query).unwrap();
        assert!(db.plan_kept(query));
        for statement in [
            "PREPARE p(DOUBLE) AS SELECT max(usage) + $1 FROM cpu",
            "EXECUTE p(41)",
            "DEALLOCATE p",
        ] {
            db.sql(statement).unwrap();
            assert!(db.plan_kept(query), "forgotten by {statement}");
        }
        assert_eq!(db.plans.lock().generation(), generation);
        // A SET through `sql` forgets the plans, and the context with them.
        db.sql("SET datafusion.execution.batch_size = 1234")
            .unwrap();
        let next = db.plans.lock().generation();
        assert_ne!(next, generation);
        assert_eq!(db.kept_task(next).session_config().batch_size(), 1234);
    }
}
