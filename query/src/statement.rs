//! Prepared statements: SQL parsed, and its tables and functions resolved, once; run many
//! times with parameters (`$1`, `$2`, ...), as dashboards, alert rules and the Postgres
//! wire protocol run the same statement again and again.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, LogicalPlan};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::reuse::Kept;

/// A SQL statement parsed and resolved against the tables once (see
/// [`Database::prepare`](crate::Database::prepare)).
///
/// Each run binds its parameters, then optimizes and plans the statement: time ranges
/// and tags given as parameters are pushed into the scans as if written in the SQL,
/// `now()` is the time of that run, and the rows read are those of that moment. What a
/// run saves is the parsing and the resolving of names; a run with the same values as
/// the one before also skips optimizing and planning, where the physical plan can be run
/// again over the rows of a later moment (see [`crate::reuse`]).
#[derive(Debug, Clone)]
pub struct Statement {
    /// The [`Database`](crate::Database) that prepared it (its id).
    database: u64,
    sql: String,
    /// Not optimized: the optimizer folds constants, which a parameter is not yet.
    plan: LogicalPlan,
    /// The type of `$1`, `$2`, ... where its use shows it (`time > $1`), else `None`.
    params: Vec<Option<DataType>>,
    /// The physical plan of the last run, when it can be run again; shared by clones.
    last: Arc<Mutex<Option<LastRun>>>,
}

/// A run's physical plan and what it was planned for.
#[derive(Debug)]
struct LastRun {
    values: Vec<ScalarValue>,
    /// The database's plan cache generation: options set since clear it.
    generation: u64,
    physical: Kept,
}

impl Statement {
    /// The id of the [`Database`](crate::Database) that prepared it.
    pub(crate) fn database(&self) -> u64 {
        self.database
    }

    /// The statement of `plan`, checking its parameters are `$1` to `$n` without gaps.
    pub(crate) fn new(database: u64, sql: &str, plan: LogicalPlan) -> Result<Statement> {
        let types = parameter_types(&plan)?;
        let mut numbered = Vec::with_capacity(types.len());
        for (id, ty) in types {
            let n = id
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n >= 1)
                .ok_or_else(|| Error::NamedParameter { name: id.clone() })?;
            numbered.push((n, ty));
        }
        numbered.sort_by_key(|(n, _)| *n);
        let mut params = Vec::with_capacity(numbered.len());
        for (n, ty) in numbered {
            if n != params.len() + 1 {
                return Err(Error::ParameterGap {
                    missing: params.len() + 1,
                    used: n,
                });
            }
            params.push(ty);
        }
        Ok(Statement {
            database,
            sql: sql.to_string(),
            plan,
            params,
            last: Arc::default(),
        })
    }

    /// The physical plan kept from a run with `values` under `generation`, if any.
    pub(crate) fn kept_physical(&self, values: &[ScalarValue], generation: u64) -> Option<Kept> {
        let last = self.last.lock();
        last.as_ref()
            .filter(|l| l.generation == generation && same_values(&l.values, values))
            .map(|l| l.physical.clone())
    }

    /// Keeps `physical` as the plan of a run with `values` under `generation`.
    pub(crate) fn keep_physical(&self, values: &[ScalarValue], generation: u64, physical: Kept) {
        *self.last.lock() = Some(LastRun {
            values: values.to_vec(),
            generation,
            physical,
        });
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The types of `$1`, `$2`, ..., where the statement's use of them shows one (`None`
    /// where it does not, as in `SELECT $1`). Text given for one is read as that type;
    /// another value is cast to it only when nothing is lost, else bound as it is.
    pub fn parameter_types(&self) -> &[Option<DataType>] {
        &self.params
    }

    /// The columns a run returns, when each value is of its parameter's type (a value
    /// bound as it is, such as 2.5 for a parameter typed BIGINT, can change the type of
    /// a column computed from it).
    pub fn schema(&self) -> SchemaRef {
        self.plan.schema().inner().clone()
    }

    /// The plan, parameters in place.
    pub(crate) fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The plan with `values` in place of the parameters, each bound as [`bind_as`]
    /// says.
    pub(crate) fn bind(&self, values: &[ScalarValue]) -> Result<LogicalPlan> {
        if values.len() != self.params.len() {
            return Err(Error::ParameterCount {
                expected: self.params.len(),
                given: values.len(),
            });
        }
        if values.is_empty() {
            return Ok(self.plan.clone());
        }
        let mut bound = Vec::with_capacity(values.len());
        for (i, (value, ty)) in values.iter().zip(&self.params).enumerate() {
            let value = match ty {
                Some(ty) if value.data_type() != *ty => {
                    bind_as(value, ty).map_err(|e| Error::ParameterType {
                        index: i + 1,
                        value: shortened(&value.to_string()),
                        found: value.data_type(),
                        expected: ty.clone(),
                        reason: shortened(&e.to_string()),
                    })?
                }
                _ => value.clone(),
            };
            bound.push(value);
        }
        Ok(self
            .plan
            .clone()
            .with_param_values(ParamValues::from(bound))?)
    }
}

/// `value` for a parameter DataFusion typed `ty`. Text (as text protocols send every
/// value) is read as `ty`, or refused. Any other value is cast only when nothing is lost,
/// else bound as it is, for the statement's own type rules to decide: DataFusion types a
/// parameter after the other side of its operator, which an interval beside a
/// timestamp (`now() - $1`) or a fraction beside an integer column does not match, and a
/// cast would truncate 2.5 to 2.
fn bind_as(value: &ScalarValue, ty: &DataType) -> datafusion::error::Result<ScalarValue> {
    if matches!(
        value.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return value.cast_to(ty);
    }
    match value.cast_to(ty) {
        Ok(cast)
            if cast
                .cast_to(&value.data_type())
                .is_ok_and(|back| back == *value) =>
        {
            Ok(cast)
        }
        _ => Ok(value.clone()),
    }
}

/// The type of each parameter of `plan` (by id, `$1`), from the first of its uses that
/// shows one: DataFusion's own look-up keeps the last use's, none if that use shows none.
fn parameter_types(plan: &LogicalPlan) -> Result<HashMap<String, Option<DataType>>> {
    let mut types: HashMap<String, Option<DataType>> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        // DataFusion gives `LIMIT $1` and `OFFSET $1` no type: a count of rows.
        if let LogicalPlan::Limit(limit) = node {
            for e in [&limit.skip, &limit.fetch].into_iter().flatten() {
                if let Expr::Placeholder(Placeholder { id, field: None }) = e.as_ref() {
                    let known = types.entry(id.clone()).or_insert(None);
                    known.get_or_insert(DataType::Int64);
                }
            }
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Placeholder(Placeholder { id, field }) = e {
                    let known = types.entry(id.clone()).or_insert(None);
                    if known.is_none() {
                        *known = field.as_ref().map(|f| f.data_type().clone());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(types)
}

/// Whether two runs' values are the same, types included: `ScalarValue`'s equality
/// ignores a timestamp's time zone, which an untyped parameter (`SELECT $1`) shows.
fn same_values(a: &[ScalarValue], b: &[ScalarValue]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a == b && a.data_type() == b.data_type())
}

/// `text` cut to its first 200 characters, saying how long it was, so that a message
/// quoting a value given by a program stays readable.
fn shortened(text: &str) -> String {
    const KEEP: usize = 200;
    match text.char_indices().nth(KEEP) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}... ({} characters)", &text[..end], text.chars().count()),
    }
}
