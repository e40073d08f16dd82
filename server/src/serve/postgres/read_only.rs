//! The read-only guard: statements that could change something are refused before they
//! are planned.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, SetExpr, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Refuses every statement that could change something.
pub(super) struct ReadOnly;

/// Variables a client may `SET` for itself (datafusion-postgres keeps them per
/// connection); every other `SET` would change options all clients share.
const CLIENT_VARIABLES: [&str; 9] = [
    "application_name",
    "datestyle",
    "extra_float_digits",
    "search_path",
    "statement_timeout",
    "client_encoding",
    "bytea_output",
    "intervalstyle",
    "client_min_messages",
];

impl ReadOnly {
    fn check(statement: &Statement) -> Option<PgWireError> {
        (!Self::allowed(statement)).then(|| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_string(),
                "25006".to_string(), // read_only_sql_transaction
                format!(
                    "this server is read-only: only queries (SELECT, EXPLAIN of a query, SHOW) and SET of a client's own variables run here, not `{}`; write over HTTP or StatsD",
                    first_words(&statement.to_string())
                ),
            )))
        })
    }

    fn allowed(statement: &Statement) -> bool {
        match statement {
            Statement::Query(query) => !writes_into(&query.body),
            // What EXPLAIN (ANALYZE) runs must be allowed itself.
            Statement::Explain { statement, .. } => Self::allowed(statement),
            Statement::ExplainTable { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. } => true,
            Statement::Set(set) => is_client_set(set),
            _ => false,
        }
    }
}

/// Whether a query's body is a `SELECT ... INTO` (which creates a table), anywhere in
/// set operations or parentheses.
pub(super) fn writes_into(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.into.is_some(),
        SetExpr::Query(query) => writes_into(&query.body),
        SetExpr::SetOperation { left, right, .. } => writes_into(left) || writes_into(right),
        _ => false,
    }
}

/// Whether `SET` changes only the client's own variables: `SET TIME ZONE` (kept per
/// connection) or one of [`CLIENT_VARIABLES`], named without quotes.
fn is_client_set(set: &Set) -> bool {
    match set {
        Set::SetTimeZone { local: false, .. } => true,
        Set::SingleAssignment {
            scope: None,
            hivevar: false,
            variable,
            ..
        } => {
            let name = variable.to_string().to_lowercase();
            CLIENT_VARIABLES.contains(&name.as_str())
        }
        _ => false,
    }
}

/// The first few words of a statement, for an error message.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        ReadOnly::check(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        ReadOnly::check(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        ReadOnly::check(statement).map(Err)
    }
}
