//! Answers written straight into the connection's write buffer.
//!
//! pgwire sends an answer's rows one message at a time through its connection's `Sink`:
//! each row is polled from a stream, passed to the `Sink`, encoded by its codec (a copy
//! into the write buffer) and dropped. For a 100,000-row answer that took as long again
//! as half the query. Here the connection loop ([`super::connection`]) gives the
//! messages that run a query Sextant answers itself ([`answer`]) to [`try_answer`]
//! before pgwire sees them: a simple query all of whose statements are queries, and an
//! Execute without a row limit of a portal planned at Parse without parameters. Each
//! batch's rows are written into the connection's write buffer as whole messages
//! ([`super::rows::Rows::writer`]), and the socket is written whenever [`WRITE_BUFFER`] bytes are
//! waiting. Every other message is pgwire's, as before.
//!
//! Around the rows, this does what pgwire's `on_query` and `on_execute` do: the
//! connection's state, RowDescription and ReadyForQuery for a simple query, the portal
//! left with no rows for an Execute, and CommandComplete (`SELECT n`). Two differences:
//! an Execute's CommandComplete waits in the buffer for the client's Sync or Flush (as
//! PostgreSQL's does; pgwire writes it at once), and the portal is left suspended with no
//! rows rather than finished (executed again, either answers `SELECT 0`). Errors go back
//! to the loop, which sends them with pgwire's `process_error`, as for pgwire's answers.
//!
//! The query's deadline and the client's cancel ([`Stop`]) end it while it is planned,
//! while its rows are computed, and while the socket is written. A client that has not
//! taken its answer when its query stops has a few seconds more ([`GRACE`]) to read it
//! and why it stopped; then its connection is closed, so that a client that stops
//! reading holds neither its query nor its connection.
//!
//! A Bind whose result formats do not match its query's columns is refused here with
//! PostgreSQL's error, before pgwire takes it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::pgwire::api::portal::{Format, Portal, PortalExecutionState};
use datafusion_postgres::pgwire::api::query::ExtendedQueryHandler;
use datafusion_postgres::pgwire::api::results::{QueryResponse, Tag};
use datafusion_postgres::pgwire::api::store::{Entry, PortalStore};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::RowDescription;
use datafusion_postgres::pgwire::messages::extendedquery::{Bind, Execute};
use datafusion_postgres::pgwire::messages::response::ReadyForQuery;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::server::PgWireMessageServerCodec;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use super::answer::{self, Answer, AnswerRows};
use super::bounded::{self, Bounded};
use super::connection::WRITE_BUFFER;

/// The statements of a connection's extended queries, as datafusion-postgres keeps them.
type PgStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// A client's connection, as pgwire's loop holds it.
pub(super) type Connection<S> = Framed<S, PgWireMessageServerCodec<PgStatement>>;

/// What [`try_answer`] did with a message.
pub(super) enum Outcome {
    /// Answered here, or failed with the error to send.
    Answered(PgWireResult<()>),
    /// Not one answered here: pgwire's to answer.
    Passed(PgWireFrontendMessage),
}

/// Answers `message` if it runs a query Sextant answers itself and sends whole (see the
/// module's documentation); otherwise gives it back.
pub(super) async fn try_answer<S>(
    queries: &Bounded,
    connection: &mut Connection<S>,
    message: PgWireFrontendMessage,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    // Anything else (a failed transaction's refusals among it) is pgwire's.
    if !matches!(connection.state(), PgWireConnectionState::ReadyForQuery)
        || bounded::in_failed_transaction(connection)
    {
        return Outcome::Passed(message);
    }
    match message {
        PgWireFrontendMessage::Query(query) => match queries_in(queries, &query.query) {
            Some(statements) => Outcome::Answered(simple(queries, connection, statements).await),
            None => Outcome::Passed(PgWireFrontendMessage::Query(query)),
        },
        PgWireFrontendMessage::Execute(execute) => {
            match executed_here(connection, &execute).await {
                Some((portal, plan)) => {
                    Outcome::Answered(execute_portal(queries, connection, &portal, plan).await)
                }
                None => Outcome::Passed(PgWireFrontendMessage::Execute(execute)),
            }
        }
        PgWireFrontendMessage::Bind(bind) => match formats_mismatch(connection, &bind) {
            Some(error) => Outcome::Answered(Err(error)),
            None => Outcome::Passed(PgWireFrontendMessage::Bind(bind)),
        },
        other => Outcome::Passed(other),
    }
}

/// PostgreSQL's error for a Bind that gives result formats one by one (more than one
/// code) but not one for each of the query's columns. pgwire would take it and panic
/// when it looks up a missing column's format.
fn formats_mismatch<S>(connection: &Connection<S>, bind: &Bind) -> Option<PgWireError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let formats = bind.result_column_format_codes.len();
    if formats <= 1 {
        return None;
    }
    let name = bind.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
    let Some(Entry::Value(statement)) = connection.portal_store().get_statement(name) else {
        return None;
    };
    let (_, Some((_, plan))) = &statement.statement else {
        return None;
    };
    let columns = plan.schema().fields().len();
    (formats != columns).then(|| {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_string(),
            "08P01".to_string(), // protocol_violation
            format!("bind message has {formats} result formats but query has {columns} columns"),
        )))
    })
}

/// The statements of a simple query's `sql` if all are queries answered here; `None`
/// for anything else (SQL that does not parse, no statement, any other statement).
fn queries_in(queries: &Bounded, sql: &str) -> Option<Vec<Statement>> {
    let statements = queries.parser.parse(sql).ok()?;
    (!statements.is_empty() && statements.iter().all(answer::is_query)).then_some(statements)
}

/// A simple query's statements, each answered with its columns, rows and
/// CommandComplete, then ReadyForQuery.
async fn simple<S>(
    queries: &Bounded,
    connection: &mut Connection<S>,
    statements: Vec<Statement>,
) -> PgWireResult<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    connection.set_state(PgWireConnectionState::QueryInProgress);
    let mut stop = Stop::new(queries, connection).await;
    for statement in statements {
        let options = FormatOptions::from_client_metadata(connection.metadata());
        let started = async {
            let plan = answer::plan(&queries.session, statement).await?;
            answer::start(&queries.session, plan, &Format::UnifiedText, options).await
        };
        let answer = stop.or(started).await?;
        let columns = RowDescription::new(answer.fields.iter().map(Into::into).collect());
        let columns = PgWireBackendMessage::RowDescription(columns);
        stop.write(connection.feed(columns)).await?;
        send(connection, answer, &mut stop).await?;
    }
    connection.set_state(PgWireConnectionState::ReadyForQuery);
    let status = connection.transaction_status();
    let ready = PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(status));
    stop.write_last(connection.send(ready)).await
}

/// The portal `execute` names and its plan, if it is answered here: executed to its
/// end, not started, and planned at Parse without parameters.
async fn executed_here<S>(
    connection: &Connection<S>,
    execute: &Execute,
) -> Option<(Arc<Portal<PgStatement>>, LogicalPlan)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    if execute.max_rows != 0 {
        return None;
    }
    let name = execute.name.as_deref().unwrap_or(DEFAULT_NAME);
    let Some(Entry::Value(portal)) = connection.portal_store().get_portal(name) else {
        return None;
    };
    let plan = bounded::answered_here(&portal)?.clone();
    matches!(*portal.state().lock().await, PortalExecutionState::Initial).then_some((portal, plan))
}

/// A portal's rows and CommandComplete (its columns were described at Describe).
async fn execute_portal<S>(
    queries: &Bounded,
    connection: &mut Connection<S>,
    portal: &Portal<PgStatement>,
    plan: LogicalPlan,
) -> PgWireResult<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    connection.set_state(PgWireConnectionState::QueryInProgress);
    let mut stop = Stop::new(queries, connection).await;
    let options = FormatOptions::from_client_metadata(connection.metadata());
    let format = &portal.result_column_format;
    let answer = stop
        .or(answer::start(&queries.session, plan, format, options))
        .await?;
    // Executed again, the portal has no rows left, as after pgwire's own Execute.
    let rest = QueryResponse::new(Arc::new(Vec::new()), futures::stream::empty());
    portal.start(rest).await;
    send(connection, answer, &mut stop).await?;
    connection.set_state(PgWireConnectionState::ReadyForQuery);
    Ok(())
}

/// Sends `answer`'s rows and its CommandComplete.
async fn send<S>(
    connection: &mut Connection<S>,
    answer: Answer,
    stop: &mut Stop,
) -> PgWireResult<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let mut rows = 0;
    match answer.rows {
        AnswerRows::Written {
            mut batches,
            writer,
        } => {
            while let Some(batch) = stop
                .or(async { batches.next().await.transpose().map_err(answer::api_error) })
                .await?
            {
                // A buffer's worth of rows at a time, so that a batch of long rows does
                // not grow the buffer past it.
                let mut batch_rows = writer.writer(&batch)?;
                while !batch_rows.is_done() {
                    rows += batch_rows.write(connection.write_buffer_mut(), WRITE_BUFFER)?;
                    if connection.write_buffer().len() >= WRITE_BUFFER {
                        let flushed = SinkExt::<PgWireBackendMessage>::flush(connection);
                        stop.write(flushed).await?;
                    }
                }
            }
        }
        AnswerRows::ArrowPg(mut data_rows) => {
            while let Some(row) = stop
                .or(async { data_rows.next().await.transpose() })
                .await?
            {
                rows += 1;
                let message = PgWireBackendMessage::DataRow(row);
                stop.write(connection.feed(message)).await?;
            }
        }
    }
    let done = Tag::new("SELECT").with_rows(rows);
    let done = PgWireBackendMessage::CommandComplete(done.into());
    stop.write(connection.feed(done)).await
}

/// What ends a query before its answer is sent: its deadline (the server's timeout, or
/// the client's `statement_timeout` when shorter), or the client's cancel.
struct Stop(Pin<Box<dyn Future<Output = PgWireError> + Send>>);

/// How long a client that has not taken what was written by the time its query stops
/// has to take it (and read why it stopped) before its connection is closed.
const GRACE: Duration = Duration::from_secs(5);

impl Stop {
    /// Starts the clock of the query starting now on `connection`, and listens for its
    /// cancel.
    async fn new<S>(queries: &Bounded, connection: &Connection<S>) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        let (deadline, timeout) = queries.deadline(connection);
        let listener = bounded::listen(bounded::cancel_handle(connection)).await;
        Self(Box::pin(bounded::stopped(deadline, timeout, listener)))
    }

    /// `write`, a part of the answer, to the client. If the stop comes while the client
    /// is not taking what is written, it has [`GRACE`] more to take it, after which the
    /// stop's error is returned; past that, the connection is to be closed (an I/O
    /// error, which the connection's loop answers by closing it): a client that stopped
    /// reading holds neither its query nor its connection.
    async fn write(&mut self, write: impl Future<Output = io::Result<()>>) -> PgWireResult<()> {
        self.deliver(write, false).await
    }

    /// `write` of the answer's last message, as [`Stop::write`]; taken within the grace,
    /// the answer is whole, and no error follows it.
    async fn write_last(
        &mut self,
        write: impl Future<Output = io::Result<()>>,
    ) -> PgWireResult<()> {
        self.deliver(write, true).await
    }

    async fn deliver(
        &mut self,
        write: impl Future<Output = io::Result<()>>,
        last: bool,
    ) -> PgWireResult<()> {
        tokio::pin!(write);
        let stopped = tokio::select! {
            biased;
            written = &mut write => return Ok(written?),
            error = &mut self.0 => error,
        };
        match tokio::time::timeout(GRACE, write).await {
            Ok(written) => {
                written?;
                if last { Ok(()) } else { Err(stopped) }
            }
            Err(_) => Err(PgWireError::IoError(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client did not read its answer in the {GRACE:?} after: {stopped}"),
            ))),
        }
    }

    /// `work`'s result, or the stop's error if it comes first. The stop is looked at
    /// first, so that work that never waits (batches computed as fast as they are
    /// asked for) still ends at the deadline.
    async fn or<T>(&mut self, work: impl Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
        tokio::select! {
            biased;
            error = &mut self.0 => Err(error),
            result = work => result,
        }
    }
}
