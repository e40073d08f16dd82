//! One PostgreSQL connection: pgwire's own loop (`pgwire::tokio::process_socket`), with
//! a larger write buffer.
//!
//! pgwire's connection writes to its socket whenever 8 KiB of messages are waiting, so a
//! 100,000-row answer (5 to 9 MB) took about 700 `send` calls, each pushed through the
//! loopback's TCP stack on the server's core: 13 % of its time on that answer. Here the
//! socket is written once 256 KiB are waiting. Nothing else differs from pgwire's loop,
//! which this follows (pgwire 0.41): the messages are read and answered by pgwire's
//! `process_message`, and errors sent by its `process_error`.

use std::io;
use std::time::Duration;

use datafusion_postgres::pgwire::api::PgWireServerHandlers;
use datafusion_postgres::pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState};
use datafusion_postgres::pgwire::messages::PgWireFrontendMessage;
use datafusion_postgres::pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use futures::StreamExt;
use tokio::net::TcpStream;

/// How many bytes of messages wait before the socket is written (pgwire: 8 KiB). A
/// connection's buffer grows to this while it sends a large answer.
const WRITE_BUFFER: usize = 256 * 1024;

/// How long a client has to finish its startup (pgwire's own limit).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves one client on `socket` with `handlers` until it leaves.
pub(super) async fn process<H: PgWireServerHandlers>(
    socket: TcpStream,
    handlers: H,
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
    let simple_query_handler = handlers.simple_query_handler();
    let extended_query_handler = handlers.extended_query_handler();
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
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            startup_handler.clone(),
            simple_query_handler.clone(),
            extended_query_handler.clone(),
            copy_handler.clone(),
            cancel_handler.clone(),
        )
        .await
        {
            error_handler.on_error(&socket, &mut e);
            process_error(&mut socket, e, is_extended_query).await?;
        }
    }
}
