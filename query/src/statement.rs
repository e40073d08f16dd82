//! Prepared statements: SQL parsed, and its tables and functions resolved, once; run many
//! times with parameters (`$1`, `$2`, ...), as dashboards, alert rules and the Postgres
//! wire protocol run the same statement again and again.

use arrow_schema::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;

use crate::error::{Error, Result};

/// A SQL statement parsed and resolved against the tables once (see
/// [`Database::prepare`](crate::Database::prepare)).
///
/// Each run binds its parameters, then optimizes and plans the statement: time ranges
/// and tags given as parameters are pushed into the scans as if written in the SQL,
/// `now()` is the time of that run, and the rows read are those of that moment. What a
/// run saves is the parsing and the resolving of names.
#[derive(Debug, Clone)]
pub struct Statement {
    sql: String,
    /// Not optimized: the optimizer folds constants, which a parameter is not yet.
    plan: LogicalPlan,
    /// The type of `$1`, `$2`, ... where its use shows it (`time > $1`), else `None`.
    params: Vec<Option<DataType>>,
}

impl Statement {
    /// The statement of `plan`, checking its parameters are `$1` to `$n` without gaps.
    pub(crate) fn new(sql: &str, plan: LogicalPlan) -> Result<Statement> {
        let types = plan.get_parameter_types()?;
        let mut numbered = Vec::with_capacity(types.len());
        for (id, ty) in types {
            let n = id
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n >= 1)
                .ok_or_else(|| {
                    Error::Parameter(format!(
                        "parameter {id}: parameters are numbered $1, $2, ...; named ones are not supported"
                    ))
                })?;
            numbered.push((n, ty));
        }
        numbered.sort_by_key(|(n, _)| *n);
        let mut params = Vec::with_capacity(numbered.len());
        for (n, ty) in numbered {
            if n != params.len() + 1 {
                return Err(Error::Parameter(format!(
                    "parameter ${} is not used while ${n} is: parameters are numbered $1 to $n without gaps",
                    params.len() + 1
                )));
            }
            params.push(ty);
        }
        Ok(Statement {
            sql: sql.to_string(),
            plan,
            params,
        })
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The types of `$1`, `$2`, ..., where the statement's use of them shows one (`None`
    /// where it does not, as in `SELECT $1`). A value of another type is cast to it.
    pub fn parameter_types(&self) -> &[Option<DataType>] {
        &self.params
    }

    /// The columns a run returns.
    pub fn schema(&self) -> SchemaRef {
        self.plan.schema().inner().clone()
    }

    /// The plan, parameters in place.
    pub(crate) fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The plan with `values` in place of the parameters, each cast to its parameter's
    /// type.
    pub(crate) fn bind(&self, values: &[ScalarValue]) -> Result<LogicalPlan> {
        if values.len() != self.params.len() {
            return Err(Error::Parameter(format!(
                "the statement takes {} parameter(s); {} given",
                self.params.len(),
                values.len()
            )));
        }
        if values.is_empty() {
            return Ok(self.plan.clone());
        }
        let mut bound = Vec::with_capacity(values.len());
        for (i, (value, ty)) in values.iter().zip(&self.params).enumerate() {
            let value = match ty {
                Some(ty) if value.data_type() != *ty => value.cast_to(ty).map_err(|e| {
                    Error::Parameter(format!(
                        "parameter ${}: {value} (of type {}) cannot be read as {ty}: {e}",
                        i + 1,
                        value.data_type()
                    ))
                })?,
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
