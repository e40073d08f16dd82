//! One PostgreSQL connection: pgwire's own loop, with a larger write buffer, and the
//! queries Sextant answers itself written straight into it ([`direct`]).
//!
//! pgwire's connection writes to its socket whenever 8 KiB of messages are waiting, so a
//! 100,000-row answer (5 to 9 MB) took about 700 `send` calls, each pushed through the
//! loopback's TCP stack on the server's core: 13 % of its time on that answer. Here the
//! socket is written once 240 KiB are waiting. Answers still go out whole at the end
//! (pgwire flushes at Sync and ReadyForQuery), but an answer whose rows come slowly
//! reaches the client in pieces of 240 KiB rather than 8 KiB. Between queries a buffer
//! grown past 64 KiB is let go, so idle connections hold little.
//!
//! Each message is first offered to [`direct::try_answer`], which answers the queries
//! whose rows Sextant writes itself and gives every other message back.
//!
//! Otherwise this follows pgwire 0.41.1's `process_socket` and
//! `process_socket_messages!` (src/tokio/server.rs): messages are read and answered by
//! pgwire's `process_message`, and errors sent by its `process_error`. It differs in
//! these ways, besides the buffer:
//! - the query handlers are `queries` (Sextant's [`Bounded`]), not the `handlers`';
//! - each Query and Execute that runs, and each Parse or Bind that fails, is counted in
//!   the server's query figures;
//! - after a FATAL error (a refused startup, a wrong password) the connection ends,
//!   where pgwire's loop reads on: it would answer the queries of a client that never
//!   logged in; after an I/O error it ends without sending the error.
//!
//! On a pgwire upgrade, compare the two again.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use datafusion_postgres::pgwire::api::PgWireServerHandlers;
use datafusion_postgres::pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use datafusion_postgres::pgwire::messages::PgWireFrontendMessage;
use datafusion_postgres::pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use futures::StreamExt;
use tokio::net::TcpStream;

use super::bounded::Bounded;
use super::direct::{self, Outcome};

/// How many bytes of messages wait before the socket is written (pgwire: 8 KiB). Below a
/// power of two, so that the row that crosses it seldom doubles the buffer again.
pub(super) const WRITE_BUFFER: usize = 240 * 1024;

/// The capacity of a write buffer kept between queries; a larger one is let go.
const IDLE_BUFFER: usize = 64 * 1024;

/// How long a client has to finish its startup (pgwire's own limit).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves one client on `socket` until it leaves: its startup, cancel requests and
/// errors with `handlers`, its queries with `queries` (the queries [`direct`] answers
/// there), every Query and Execute counted in its `stats`.
pub(super) async fn process<H: PgWireServerHandlers>(
    socket: TcpStream,
    handlers: H,
    queries: Arc<Bounded>,
) -> io::Result<()> {
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        () = &mut startup_timeout => return Ok(()),
        socket = negotiate_tls(socket, None) => socket?,
    };
    // None: the client asked for TLS directly, which is not offered.
    let Some(mut socket) = negotiated else {
        return Ok(());
    };
    socket.set_backpressure_boundary(WRITE_BUFFER);

    let startup_handler = handlers.startup_handler();
    let copy_handler = handlers.copy_handler();
    let cancel_handler = handlers.cancel_handler();
    let error_handler = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if starting {
            tokio::select! {
                () = &mut startup_timeout => None,
                message = socket.next() => message,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else {
            return Ok(());
        };
        // The client is leaving; some (asyncpg) wait for the socket to close.
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(is_extended_query) => is_extended_query,
            _ => message.is_extended_query(),
        };
        let counted = counted(socket.state(), &message);
        let started = Instant::now();
        let result = match direct::try_answer(&queries, &mut socket, message).await {
            Outcome::Answered(result) => result,
            Outcome::Passed(message) => {
                process_message(
                    message,
                    &mut socket,
                    startup_handler.clone(),
                    Arc::clone(&queries),
                    Arc::clone(&queries),
                    copy_handler.clone(),
                    cancel_handler.clone(),
                )
                .await
            }
        };
        match counted {
            Counted::Runs => queries.stats.query(started.elapsed(), result.is_err()),
            Counted::Prepares if result.is_err() => queries.stats.query(started.elapsed(), true),
            _ => {}
        }
        if let Err(mut e) = result {
            // The socket failed, or the client stopped reading (see `direct`): there is
            // no one to tell.
            if matches!(e, PgWireError::IoError(_)) {
                return Ok(());
            }
            error_handler.on_error(&socket, &mut e);
            let error = ErrorInfo::from(e);
            let fatal = error.is_fatal();
            process_error(
                &mut socket,
                PgWireError::UserError(Box::new(error)),
                is_extended_query,
            )
            .await?;
            // A refused startup, a wrong password, a broken protocol: the connection
            // ends here (pgwire's loop would read on, and answer queries of a client
            // that never logged in).
            if fatal {
                return Ok(());
            }
        }
        let buffer = socket.write_buffer_mut();
        if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER {
            *buffer = BytesMut::new();
        }
    }
}

/// How a message counts in the server's query figures.
enum Counted {
    /// A Query or Execute that runs: counted, failed or not.
    Runs,
    /// A Parse or Bind: counted only when it fails (the query it prepares then never
    /// runs: its Execute is discarded until Sync).
    Prepares,
    /// Anything else, and any message not read in ReadyForQuery (discarded after an
    /// error, or part of a startup or a COPY).
    Not,
}

fn counted(state: PgWireConnectionState, message: &PgWireFrontendMessage) -> Counted {
    if !matches!(state, PgWireConnectionState::ReadyForQuery) {
        return Counted::Not;
    }
    match message {
        PgWireFrontendMessage::Query(_) | PgWireFrontendMessage::Execute(_) => Counted::Runs,
        PgWireFrontendMessage::Parse(_) | PgWireFrontendMessage::Bind(_) => Counted::Prepares,
        _ => Counted::Not,
    }
}
