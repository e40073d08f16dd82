//! The PostgreSQL wire protocol, through datafusion-postgres: `psql`, Grafana's
//! PostgreSQL data source and Postgres drivers run SQL (simple and extended protocol, with
//! parameters) on the database, read-only.
//!
//! Clients share one session, a copy of the database's (its options are the clients'
//! own; its catalog is the database's, with PostgreSQL's `pg_catalog` added, so `\d`
//! works). Statements other than queries, `EXPLAIN` of them, `SHOW`, cursors,
//! transactions and `SET` of a client's own variables are refused, so that no client can
//! create tables, write files or change the options others run with. Connections open at
//! shutdown are closed. With a password, clients give it in clear text (PostgreSQL's
//! `password` method; any user name). Not yet: the server's query timeout (a client's own
//! `statement_timeout` bounds planning only) and cancelling a query from the client.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, SetExpr, Statement};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::Sink;
use sextant_query::Database;
use tokio::sync::watch;

use crate::{Error, Result};

/// Serves the database on `addr` until `shutdown` turns true; connections open then are
/// closed with the listener.
pub async fn serve(
    addr: SocketAddr,
    db: &Database,
    password: Option<&str>,
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
        startup: Arc::new(Startup {
            password: password.map(|p| {
                CleartextPasswordAuthStartupHandler::new(
                    PasswordSource(p.to_string()),
                    DefaultServerParameterProvider::default(),
                )
            }),
        }),
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
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("accepting a PostgreSQL connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            },
            // Finished connections are reaped so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// The handlers of every connection: datafusion-postgres' session service, and the
/// password check if there is one.
struct Handlers {
    service: Arc<DfSessionService>,
    startup: Arc<Startup>,
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

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }
}

/// Connection startup: no authentication, or the password in clear text.
struct Startup {
    password:
        Option<CleartextPasswordAuthStartupHandler<PasswordSource, DefaultServerParameterProvider>>,
}

struct NoPassword;

impl NoopStartupHandler for NoPassword {}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &self.password {
            Some(check) => check.on_startup(client, message).await,
            None => NoPassword.on_startup(client, message).await,
        }
    }
}

/// The server's one password, whoever the user.
#[derive(Debug)]
struct PasswordSource(String);

// The trait's signature elides LoginInfo's lifetime; naming it does not match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl AuthSource for PasswordSource {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(None, self.0.as_bytes().to_vec()))
    }
}

/// Refuses every statement that could change something.
struct ReadOnly;

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
fn writes_into(body: &SetExpr) -> bool {
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
