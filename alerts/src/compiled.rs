//! A rule checked against the database and planned once; run at any evaluation time.
//!
//! The SQL is parsed and its logical plan built (names resolved against the current
//! tables) once, when the rule is loaded. Each evaluation optimizes that plan with the
//! evaluation time as the statement's time, so `eval_time()` and `now()` become a literal
//! and time ranges are pushed into the scans, and runs it.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, Float64Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use parking_lot::Mutex;
use sextant_query::Database;

use crate::error::RuleError;
use crate::rule::{DEFAULT_VALUE_COLUMN, Rule};
use crate::state::{Labels, Sample};
use crate::template;

/// The label every instance carries: its rule's name.
pub const ALERTNAME: &str = "alertname";
/// The label a rule's `severity` sets.
pub const SEVERITY: &str = "severity";

/// A rule ready to run.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub rule: Rule,
    /// The plan; `None` until the tables the rule reads exist.
    planned: Mutex<Option<Arc<Planned>>>,
    /// The rule's own labels (severity and `alertname` included), under the columns'.
    base: Labels,
}

/// A rule's logical plan and what its columns are.
#[derive(Debug)]
struct Planned {
    plan: LogicalPlan,
    value: Option<usize>,
    labels: Vec<(usize, String)>,
}

/// Makes `eval_time()` known to the session: the statement's time, as `now()` is (an
/// alias of the session's `now`).
pub(crate) fn register_eval_time(ctx: &SessionContext) {
    if ctx.udf("eval_time").is_ok() {
        return;
    }
    if let Ok(now) = ctx.udf("now") {
        ctx.register_udf(now.as_ref().clone().with_aliases(["eval_time"]));
    }
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The tables `sql` reads that do not exist (yet); an error if it does not parse.
fn missing_tables(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, String> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state
        .sql_to_statement(sql, &dialect)
        .map_err(|e| e.to_string())?;
    let is_query = matches!(
        &statement,
        datafusion::sql::parser::Statement::Statement(s)
            if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_))
    );
    if !is_query {
        return Err("a rule's SQL must be a query (SELECT ...)".to_string());
    }
    let tables = state
        .resolve_table_references(&statement)
        .map_err(|e| e.to_string())?;
    Ok(tables
        .into_iter()
        .filter(|t| !ctx.table_exist(t.clone()).unwrap_or(false))
        .map(|t| t.to_string())
        .collect())
}

/// Plans `rule` and checks its columns; the error names the field at fault.
async fn plan(ctx: &SessionContext, rule: &Rule) -> Result<Planned, (&'static str, String)> {
    let planned = async {
        let df = ctx.sql_with_options(&rule.sql, read_only()).await?;
        let plan = df.logical_plan().clone();
        // Optimizing and planning it once finds what only shows then (a function's
        // argument types, say).
        ctx.state().create_physical_plan(&plan).await?;
        Ok::<_, datafusion::error::DataFusionError>(plan)
    };
    let plan = planned.await.map_err(|e| ("sql", e.to_string()))?;
    let schema = plan.schema();
    let mut value = None;
    let mut labels = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if field.name() == &rule.value_column {
            if !is_number(field.data_type()) {
                return Err((
                    "value_column",
                    format!(
                        "the value column {:?} is of type {}; it must be a number",
                        rule.value_column,
                        field.data_type()
                    ),
                ));
            }
            value = Some(i);
        } else {
            labels.push((i, field.name().clone()));
        }
    }
    if value.is_none() && rule.value_column != DEFAULT_VALUE_COLUMN {
        let columns: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err((
            "value_column",
            format!(
                "the query returns no column {:?}; its columns are {}",
                rule.value_column,
                columns.join(", ")
            ),
        ));
    }
    Ok(Planned {
        plan,
        value,
        labels,
    })
}

impl Compiled {
    /// Checks `rule` against the database, adding what is wrong to `errors`. A rule that
    /// reads tables not created yet is kept, with a warning: it is planned at the first
    /// evaluation that finds them (until then its evaluations fail, saying which table is
    /// missing).
    pub fn new(
        db: &Database,
        rule: Rule,
        errors: &mut Vec<RuleError>,
        warnings: &mut Vec<RuleError>,
    ) -> Option<Compiled> {
        let problem = |field: &str, message: String| RuleError {
            rule: rule.name.clone(),
            field: field.to_string(),
            message,
        };
        let ctx = db.session();
        let mut base = rule.labels.clone();
        if let Some(severity) = &rule.severity {
            base.insert(SEVERITY.to_string(), severity.clone());
        }
        base.insert(ALERTNAME.to_string(), rule.name.clone());
        let missing = match missing_tables(ctx, &rule.sql) {
            Ok(missing) => missing,
            Err(e) => {
                errors.push(problem("sql", e));
                return None;
            }
        };
        let planned = if missing.is_empty() {
            match db.runtime().block_on(plan(ctx, &rule)) {
                Ok(p) => Some(Arc::new(p)),
                Err((field, message)) => {
                    errors.push(problem(field, message));
                    return None;
                }
            }
        } else {
            warnings.push(problem(
                "sql",
                format!(
                    "no table {} yet; the rule is planned once it exists",
                    missing.join(", ")
                ),
            ));
            None
        };
        // Every annotation must render; with the columns as labels when they are known.
        let mut sample = base.clone();
        if let Some(p) = &planned {
            for (_, name) in &p.labels {
                sample.insert(name.clone(), "x".to_string());
            }
        }
        let mut ok = true;
        for (name, text) in &rule.annotations {
            let checked = match &planned {
                Some(p) => template::check(text, &rule.name, &sample, p.value.map(|_| 0.0)),
                None => template::render(text, &rule.name, &sample, Some(0.0)),
            };
            if let Err(e) = checked {
                errors.push(problem(&format!("annotations.{name}"), e));
                ok = false;
            }
        }
        ok.then_some(Compiled {
            rule,
            planned: Mutex::new(planned),
            base,
        })
    }

    /// The plan, made now if the rule's tables have appeared since it was loaded.
    async fn planned(&self, ctx: &SessionContext) -> Result<Arc<Planned>, String> {
        if let Some(p) = self.planned.lock().as_ref() {
            return Ok(Arc::clone(p));
        }
        let missing = missing_tables(ctx, &self.rule.sql)?;
        if !missing.is_empty() {
            return Err(format!("there is no table {} yet", missing.join(", ")));
        }
        let p = Arc::new(
            plan(ctx, &self.rule)
                .await
                .map_err(|(field, e)| format!("{field}: {e}"))?,
        );
        *self.planned.lock() = Some(Arc::clone(&p));
        Ok(p)
    }

    /// Runs the rule at evaluation time `t` (ns since the Unix epoch), giving up after
    /// `timeout`.
    pub async fn run(
        &self,
        ctx: &SessionContext,
        t: i64,
        timeout: Duration,
    ) -> Result<Vec<Sample>, String> {
        let planned = self.planned(ctx).await?;
        let run = async {
            let mut state = ctx.state();
            state.execution_props_mut().query_execution_start_time =
                Some(chrono::DateTime::from_timestamp_nanos(t));
            let physical = state.create_physical_plan(&planned.plan).await?;
            datafusion::physical_plan::collect(physical, state.task_ctx()).await
        };
        let batches = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(batches)) => batches,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                return Err(format!(
                    "the query ran longer than the rule's interval of {} and was cancelled",
                    humantime::format_duration(timeout)
                ));
            }
        };
        let mut samples = Vec::new();
        for batch in &batches {
            self.samples(&planned, batch, &mut samples)?;
        }
        Ok(samples)
    }

    fn samples(
        &self,
        planned: &Planned,
        batch: &RecordBatch,
        out: &mut Vec<Sample>,
    ) -> Result<(), String> {
        let options = FormatOptions::default();
        let formatters = planned
            .labels
            .iter()
            .map(|(i, name)| {
                let column = batch.column(*i);
                ArrayFormatter::try_new(column.as_ref(), &options)
                    .map(|f| (column, name, f))
                    .map_err(|e| format!("showing column {name:?} as text: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let values = match planned.value {
            None => None,
            Some(i) => {
                let cast = arrow_cast::cast(batch.column(i), &DataType::Float64)
                    .map_err(|e| format!("reading the value column as a number: {e}"))?;
                Some(
                    cast.as_any()
                        .downcast_ref::<Float64Array>()
                        .expect("cast to Float64 gives a Float64Array")
                        .clone(),
                )
            }
        };
        for row in 0..batch.num_rows() {
            let mut labels = self.base.clone();
            for (column, name, formatter) in &formatters {
                if column.is_valid(row) {
                    labels.insert(name.to_string(), formatter.value(row).to_string());
                }
            }
            labels.insert(ALERTNAME.to_string(), self.rule.name.clone());
            let value = values
                .as_ref()
                .and_then(|v| v.is_valid(row).then(|| v.value(row)));
            out.push(Sample { labels, value });
        }
        Ok(())
    }
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Null)
}
