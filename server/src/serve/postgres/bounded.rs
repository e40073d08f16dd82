//! Every PostgreSQL client's query is bounded by the server's query timeout (or the
//! client's own `statement_timeout`, when shorter) and can be cancelled by the client:
//! psql's Ctrl-C, or a driver's `cancel()`, sends a CancelRequest on a second connection
//! with the key the server gave at startup, as PostgreSQL does.
//!
//! A query has two phases here. datafusion-postgres plans it in `do_query` (where pgwire
//! already listens for a cancel) and answers with a stream of rows that runs the plan as
//! pgwire sends them, after `do_query` has returned. The deadline covers both phases; the
//! rows' stream listens for a cancel of its own, and ends with PostgreSQL's error 57014
//! (`query_canceled`) when either comes. Dropping the stream stops the plan.
//!
//! The queries Sextant answers and sends whole (a simple query of queries, an Execute
//! without a row limit of a query without parameters) are answered by [`super::direct`]
//! before pgwire sees them, under the same deadline and cancel. The handlers here answer
//! the rest: other statements and queries with parameters (datafusion-postgres'), and
//! an Execute with a row limit of a query without parameters, through
//! [`answer::answer`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{Response, SendableRowStream, Tag};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, ConnectionHandle};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, Parser};
use futures::channel::oneshot;
use futures::{Sink, Stream};
use tokio::time::Instant;

use super::answer;
use crate::serve::Stats;

/// datafusion-postgres' session service, with queries answered by Sextant
/// ([`answer`]), every query bounded in time and cancellable.
pub(super) struct Bounded {
    pub service: Arc<DfSessionService>,
    /// The service's session, which queries answered here run in.
    pub session: Arc<SessionContext>,
    /// The parser datafusion-postgres parses with (PostgreSQL's dialect, with rewrites
    /// for what clients send that DataFusion does not know).
    pub parser: PostgresCompatibilityParser,
    /// The server's query timeout.
    pub timeout: Duration,
    /// The server's counters: each Query and Execute that runs, and each Parse or Bind
    /// that fails, with its time and whether it failed (counted by the connection's
    /// loop).
    pub stats: Arc<Stats>,
}

/// The key under which datafusion-postgres keeps a client's `SET statement_timeout`, in
/// milliseconds, in the connection's metadata.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

impl Bounded {
    /// The time the query starting now must end by, and the timeout it is: the server's,
    /// or the client's `statement_timeout` when that is shorter.
    pub(super) fn deadline<C: ClientInfo + ?Sized>(&self, client: &C) -> (Instant, Duration) {
        let own = client
            .metadata()
            .get(STATEMENT_TIMEOUT_KEY)
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        let timeout = own.map_or(self.timeout, |own| own.min(self.timeout));
        (Instant::now() + timeout, timeout)
    }
}

/// Answers `DEALLOCATE [PREPARE] name | ALL`, which drivers send to drop statements
/// they prepared over the protocol (psycopg after a rollback, or past its cache).
/// DataFusion would read the name as one of its SQL-level statements, which Sextant
/// refuses to make, and fail. `None` for other statements.
///
/// A name is dropped from the connection's statements (unquoted, it is folded to lower
/// case, as PostgreSQL does); one not there is PostgreSQL's error 26000. `ALL` is
/// answered as done but drops nothing: the store cannot list its statements. A name
/// prepared again replaces its statement, so clients that prepare again see no
/// difference; an old name still binds until the connection ends.
fn deallocate<S: PortalStore + ?Sized>(
    store: &S,
    statement: &Statement,
) -> PgWireResult<Option<Response>> {
    let Statement::Deallocate { name, .. } = statement else {
        return Ok(None);
    };
    let name = match name.quote_style {
        Some(_) => name.value.clone(),
        None => name.value.to_lowercase(),
    };
    if name == "all" {
        return Ok(Some(Response::Execution(Tag::new("DEALLOCATE ALL"))));
    }
    if store.get_statement(&name).is_none() {
        return Err(pg_error(
            "26000",
            format!("prepared statement \"{name}\" does not exist"),
        ));
    }
    store.rm_statement(&name);
    Ok(Some(Response::Execution(Tag::new("DEALLOCATE"))))
}

/// Whether the client's transaction has failed: every statement but `BEGIN`, `COMMIT`
/// and `ROLLBACK` (datafusion-postgres' to answer) is then refused. datafusion-postgres
/// refuses only those its earlier hooks do not answer, and still answered `SET` and
/// `SHOW` there.
pub(super) fn in_failed_transaction<C: ClientInfo + ?Sized>(client: &C) -> bool {
    client.transaction_status() == TransactionStatus::Error
}

fn controls_transaction(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::StartTransaction { .. } | Statement::Commit { .. } | Statement::Rollback { .. }
    )
}

/// datafusion-postgres' refusal in a failed transaction (PostgreSQL's own code is
/// 25P02), kept the same whichever answers.
fn transaction_aborted() -> PgWireError {
    pg_error(
        "25P01",
        "current transaction is aborted, commands ignored until end of transaction block"
            .to_string(),
    )
}

/// Listens for the client's cancel of the query starting now (replacing the listener of
/// the one before), if the connection has a cancel handle.
pub(super) async fn listen(handle: Option<Arc<ConnectionHandle>>) -> Option<oneshot::Receiver<()>> {
    match handle {
        Some(handle) => Some(handle.start_query().await),
        None => None,
    }
}

/// Resolves when `listener` hears a cancel; never without one, or once the next query's
/// listener replaced it (its sender dropped), which is no cancel.
async fn cancelled(listener: Option<oneshot::Receiver<()>>) {
    if let Some(listener) = listener
        && listener.await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await
}

/// The connection's cancel handle, registered at startup.
pub(super) fn cancel_handle<C: ClientInfo + ?Sized>(client: &C) -> Option<Arc<ConnectionHandle>> {
    client
        .session_extensions()
        .get::<Arc<ConnectionHandle>>()
        .map(|handle| Arc::clone(&*handle))
}

#[async_trait]
impl SimpleQueryHandler for Bounded {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (deadline, timeout) = self.deadline(client);
        let handle = cancel_handle(client);
        let planned = tokio::time::timeout_at(deadline, async {
            // Queries (and DEALLOCATE) only, answered here; anything else (or SQL that
            // does not parse, for datafusion-postgres' error) is datafusion-postgres'. In
            // a failed transaction, statements that cannot end it are refused here, the
            // rest are datafusion-postgres'.
            let statements = match self.parser.parse(query) {
                Ok(statements) if !in_failed_transaction(client) => statements,
                // None ends the transaction, so every one would be refused.
                Ok(statements) if !statements.iter().any(controls_transaction) => {
                    return Err(transaction_aborted());
                }
                _ => return SimpleQueryHandler::do_query(&*self.service, client, query).await,
            };
            if let [one] = &statements[..]
                && let Some(response) = deallocate(client.portal_store(), one)?
            {
                return Ok(vec![response]);
            }
            // Queries are answered by `direct` before they reach here; the rest are
            // datafusion-postgres'.
            SimpleQueryHandler::do_query(&*self.service, client, query).await
        });
        let responses = planned.await.map_err(|_| timed_out(timeout))??;
        Ok(responses
            .into_iter()
            .map(|response| bound(response, deadline, timeout, handle.clone()))
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Bounded {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.service.query_parser()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (deadline, timeout) = self.deadline(client);
        let handle = cancel_handle(client);
        let planned = tokio::time::timeout_at(deadline, async {
            // A query without parameters, planned at Parse, is answered here; with
            // parameters, datafusion-postgres binds them.
            if in_failed_transaction(client) {
                if let (_, Some((statement, _))) = &portal.statement.statement
                    && !controls_transaction(statement)
                {
                    return Err(transaction_aborted());
                }
                return ExtendedQueryHandler::do_query(&*self.service, client, portal, max_rows)
                    .await;
            }
            if let (_, Some((statement, _))) = &portal.statement.statement
                && let Some(response) = deallocate(client.portal_store(), statement)?
            {
                return Ok(response);
            }
            if let Some(plan) = answered_here(portal) {
                let options = FormatOptions::from_client_metadata(client.metadata());
                let format = &portal.result_column_format;
                let answer = answer::answer(&self.session, plan.clone(), format, options);
                return Ok(Response::Query(answer.await?));
            }
            ExtendedQueryHandler::do_query(&*self.service, client, portal, max_rows).await
        });
        let response = planned.await.map_err(|_| timed_out(timeout))??;
        Ok(bound(response, deadline, timeout, handle))
    }
}

/// The plan of a portal Sextant answers itself: a query without parameters (planned at
/// Parse). Others are datafusion-postgres'.
pub(super) fn answered_here(
    portal: &Portal<<DfSessionService as ExtendedQueryHandler>::Statement>,
) -> Option<&LogicalPlan> {
    match &portal.statement.statement {
        (_, Some((statement, plan)))
            if answer::is_query(statement)
                && portal.parameters.is_empty()
                && plan
                    .get_parameter_types()
                    .is_ok_and(|types| types.is_empty()) =>
        {
            Some(plan)
        }
        _ => None,
    }
}

/// A query's answer whose rows stop at `deadline` or at a cancel.
fn bound(
    response: Response,
    deadline: Instant,
    timeout: Duration,
    handle: Option<Arc<ConnectionHandle>>,
) -> Response {
    let Response::Query(mut answer) = response else {
        return response;
    };
    let rows = std::mem::replace(&mut answer.data_rows, Box::pin(futures::stream::empty()));
    // pgwire listened for a cancel only while the query was planned; the rows listen
    // from their first poll on.
    let stop = async move { stopped(deadline, timeout, listen(handle).await).await };
    answer.data_rows = Box::pin(Stopping {
        rows,
        stop: Some(Box::pin(stop)),
        // The stop is polled first, so that it listens for a cancel from the start.
        unchecked: ROWS_BETWEEN_CHECKS,
    });
    Response::Query(answer)
}

/// How many rows [`Stopping`] passes on before it looks at its stop again, while rows
/// come without waiting: a batch's rows come at once, and looking costs more than a row.
const ROWS_BETWEEN_CHECKS: u32 = 256;

/// Rows until `stop` resolves; then its error, and the end.
struct Stopping {
    rows: SendableRowStream,
    stop: Option<Pin<Box<dyn Future<Output = PgWireError> + Send>>>,
    /// Rows passed on since `stop` was last polled.
    unchecked: u32,
}

impl Stream for Stopping {
    type Item = PgWireResult<DataRow>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(stop) = this.stop.as_mut() else {
            return Poll::Ready(None);
        };
        // The stop is polled before every wait for rows (so that it wakes the task) and
        // every ROWS_BETWEEN_CHECKS rows between.
        let polled_rows = this.unchecked < ROWS_BETWEEN_CHECKS;
        if polled_rows && let Poll::Ready(row) = this.rows.as_mut().poll_next(cx) {
            this.unchecked += 1;
            return Poll::Ready(row);
        }
        this.unchecked = 0;
        if let Poll::Ready(error) = stop.as_mut().poll(cx) {
            this.stop = None;
            // The plan stops here: its stream is dropped.
            this.rows = Box::pin(futures::stream::empty());
            return Poll::Ready(Some(Err(error)));
        }
        if polled_rows {
            // The rows were polled above, and will wake the task.
            return Poll::Pending;
        }
        this.rows.as_mut().poll_next(cx)
    }
}

/// The error that stops a query: at `deadline`, its `timeout` passed; or the cancel
/// `listener` hears first.
pub(super) async fn stopped(
    deadline: Instant,
    timeout: Duration,
    listener: Option<oneshot::Receiver<()>>,
) -> PgWireError {
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => timed_out(timeout),
        () = cancelled(listener) => cancelled_by_client(),
    }
}

/// PostgreSQL's error for a query past its time (57014, `query_canceled`).
fn timed_out(timeout: Duration) -> PgWireError {
    query_canceled(format!(
        "canceling statement due to statement timeout: the query ran longer than {}",
        humantime::format_duration(timeout)
    ))
}

/// PostgreSQL's error for a query the client cancelled.
fn cancelled_by_client() -> PgWireError {
    query_canceled("canceling statement due to user request".to_string())
}

fn query_canceled(message: String) -> PgWireError {
    pg_error("57014", message)
}

/// An error the client reads as PostgreSQL's, with its SQLSTATE `code`.
fn pg_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message,
    )))
}
