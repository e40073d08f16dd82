//! The PostgreSQL wire protocol, through datafusion-postgres: `psql`, Grafana's
//! PostgreSQL data source and Postgres drivers run SQL (simple and extended protocol, with
//! parameters) on the database, read-only.
//!
//! Clients share one session of their own, apart from HTTP's, with PostgreSQL's catalog
//! (`pg_catalog`, so `\d` works). Statements other than queries, `EXPLAIN`, `SHOW`,
//! cursors, transactions and `SET` of client variables are refused, so that no client
//! can create tables in the session or change the options others run with.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::{DfSessionService, QueryHook};
use sextant_query::Database;
use tokio::sync::watch;

use crate::{Error, Result};

/// Serves the database on `addr` until `shutdown` turns true; connections open then are
/// closed with the listener.
pub async fn serve(
    addr: SocketAddr,
    db: &Database,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let bind = |e: std::io::Error| {
        Error::Usage(format!(
            "cannot listen for PostgreSQL clients on {addr}: {e}"
        ))
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    // Its own session: a copy of the database's state (catalog, functions, rules).
    let session = SessionContext::new_with_state(db.session().state());
    datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog(
        &session,
        "datafusion",
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )
    .map_err(|e| Error::Usage(format!("setting up PostgreSQL's catalog: {e}")))?;
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnly),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let handlers = Arc::new(Handlers {
        service: Arc::new(DfSessionService::new_with_hooks(Arc::new(session), hooks)),
    });
    super::say!("sextant: PostgreSQL listening on postgres://{local}");
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = Arc::clone(&handlers);
                    connections.spawn(async move {
                        let _ = datafusion_postgres::pgwire::tokio::process_socket(socket, None, handlers).await;
                    });
                }
                Err(e) => eprintln!("sextant: accepting a PostgreSQL connection: {e}"),
            },
            // Finished connections are reaped so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// The handlers of every connection: datafusion-postgres' session service, no password.
struct Handlers {
    service: Arc<DfSessionService>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.service)
    }

    fn extended_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    fn startup_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::auth::StartupHandler> {
        Arc::new(NoStartup)
    }
}

struct NoStartup;

impl NoopStartupHandler for NoStartup {}

/// Refuses every statement that could change something.
struct ReadOnly;

impl ReadOnly {
    fn check(statement: &Statement) -> Option<PgWireError> {
        let allowed = match statement {
            Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
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
            // Client variables (application_name, TimeZone, ...) are the client's own;
            // DataFusion's options are shared by every client.
            Statement::Set(set) => !statement_sets_session_options(set),
            _ => false,
        };
        (!allowed).then(|| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_string(),
                "25006".to_string(), // read_only_sql_transaction
                format!(
                    "this server is read-only: only queries (SELECT, EXPLAIN, SHOW) run here, not `{}`; write over HTTP or StatsD",
                    first_words(&statement.to_string())
                ),
            )))
        })
    }
}

/// Whether `SET` names one of DataFusion's options (`datafusion.*`).
fn statement_sets_session_options(set: &Set) -> bool {
    match set {
        Set::SingleAssignment { variable, .. } => variable
            .to_string()
            .to_lowercase()
            .starts_with("datafusion."),
        Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault { .. } => false,
        _ => true,
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
