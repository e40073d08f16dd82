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
//! ([`super::rows::Rows::write`]), and the socket is written whenever [`WRITE_BUFFER`] bytes are
//! waiting. Every other message is pgwire's, as before.
//!
//! Around the rows, this does what pgwire's `on_query` and `on_execute` do: the
//! connection's state, RowDescription and ReadyForQuery for a simple query, the portal
//! left with no rows for an Execute, and CommandComplete (`SELECT n`). Errors go back to
//! the loop, which sends them with pgwire's `process_error`, as for pgwire's answers.
//!
//! The query's deadline and the client's cancel ([`Stop`]) end it while it is planned,
//! while its rows are computed, and while the socket is written: a client that stops
//! reading no longer holds its query past the timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::RowDescription;
use datafusion_postgres::pgwire::messages::extendedquery::Execute;
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
        other => Outcome::Passed(other),
    }
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
        connection
            .feed(PgWireBackendMessage::RowDescription(columns))
            .await?;
        send(connection, answer, &mut stop).await?;
    }
    connection.set_state(PgWireConnectionState::ReadyForQuery);
    let status = connection.transaction_status();
    connection
        .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
            status,
        )))
        .await?;
    Ok(())
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
                rows += writer.write(&batch, connection.write_buffer_mut())?;
                if connection.write_buffer().len() >= WRITE_BUFFER {
                    stop.or(async {
                        Ok(SinkExt::<PgWireBackendMessage>::flush(connection).await?)
                    })
                    .await?;
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
                stop.or(async { Ok(connection.feed(message).await?) })
                    .await?;
            }
        }
    }
    let done = Tag::new("SELECT").with_rows(rows);
    connection
        .feed(PgWireBackendMessage::CommandComplete(done.into()))
        .await?;
    Ok(())
}

/// What ends a query before its answer is sent: its deadline (the server's timeout, or
/// the client's `statement_timeout` when shorter), or the client's cancel.
struct Stop(Pin<Box<dyn Future<Output = PgWireError> + Send>>);

impl Stop {
    /// Starts the clock of the query starting now on `connection`, and listens for its
    /// cancel.
    async fn new<S>(queries: &Bounded, connection: &Connection<S>) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        let (deadline, timeout) = queries.deadline(connection);
        let listener = bounded::listen(bounded::cancel_handle(connection)).await;
        Self(Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => bounded::timed_out(timeout),
                () = bounded::cancelled(listener) => bounded::cancelled_by_client(),
            }
        }))
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
