//! The PostgreSQL wire protocol, through datafusion-postgres: `psql`, Grafana's
//! PostgreSQL data source and Postgres drivers run SQL (simple and extended protocol, with
//! parameters) on the database, read-only.
//!
//! Clients share one session, a copy of the database's (its options are the clients'
//! own; its catalog is the database's, with PostgreSQL's `pg_catalog` added, so `\d`
//! works). Statements other than queries, `EXPLAIN` of them, `SHOW`, cursors,
//! transactions and `SET` of a client's own variables are refused ([`read_only`]), so
//! that no client can create tables, write files or change the options others run with.
//! Every query ends at the server's query timeout, or the client's `statement_timeout`
//! when shorter, and a client can cancel its query as PostgreSQL's clients do
//! ([`bounded`]). At most `--postgres-connections` clients are connected at once; the
//! next is refused with PostgreSQL's "too many connections" (53300). Connections open at
//! shutdown are closed. With a password, clients give it in clear text (PostgreSQL's
//! `password` method; any user name); a wrong one is logged with the client's address.

mod answer;
mod bounded;
mod connection;
mod direct;
mod read_only;
mod rows;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::Sink;
use sextant_query::Database;
use tokio::sync::{Semaphore, watch};

use self::bounded::Bounded;
use self::read_only::ReadOnly;
use super::{Options, Stats};
use crate::{Error, Result};

/// How many refused connections may be in flight at once (each is told why, then
/// closed); past it a connection is closed unanswered.
const REFUSALS: usize = 64;

/// Serves the database on `addr` until `shutdown` turns true; connections open then are
/// closed with the listener. Every Query and Execute is counted in `stats`.
pub async fn serve(
    addr: SocketAddr,
    db: &Database,
    options: &Options,
    stats: &Arc<Stats>,
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
    let session = Arc::new(SessionContext::new_with_state(db.session().state()));
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
    // Connections are registered with their cancel keys at startup.
    let connections_by_key = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        queries: Arc::new(Bounded {
            service: Arc::new(DfSessionService::new_with_hooks(
                Arc::clone(&session),
                hooks,
            )),
            session,
            parser: PostgresCompatibilityParser::new(),
            timeout: options.query_timeout,
            stats: Arc::clone(stats),
        }),
        startup: Arc::new(Startup {
            password: options.postgres_password.as_ref().map(|p| {
                CleartextPasswordAuthStartupHandler::new(
                    PasswordSource(p.clone()),
                    DefaultServerParameterProvider::default(),
                )
                .with_connection_manager(Arc::clone(&connections_by_key))
            }),
            connections: Arc::clone(&connections_by_key),
        }),
        cancel: Arc::new(DefaultCancelHandler::new(connections_by_key)),
    });
    // Cancel requests come on connections of their own: at the limit they are still
    // heard.
    let full = Arc::new(Full {
        limit: options.postgres_connections,
        cancel: Arc::clone(&handlers.cancel),
    });
    let admitted = Arc::new(Semaphore::new(options.postgres_connections));
    let refusing = Arc::new(Semaphore::new(REFUSALS));
    super::say!("sextant: PostgreSQL listening on postgres://{local}");
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    if let Ok(permit) = Arc::clone(&admitted).try_acquire_owned() {
                        let handlers = Arc::clone(&handlers);
                        let queries = Arc::clone(&handlers.queries);
                        connections.spawn(async move {
                            let _ = connection::process(socket, handlers, queries).await;
                            drop(permit);
                        });
                    } else if let Ok(permit) = Arc::clone(&refusing).try_acquire_owned() {
                        tracing::warn!(client = %peer, "a PostgreSQL client was refused: as many clients are connected as --postgres-connections allows ({})", full.limit);
                        let full = Arc::clone(&full);
                        // Refused at startup, which ends the connection: none of its
                        // queries runs.
                        let queries = Arc::clone(&handlers.queries);
                        connections.spawn(async move {
                            let _ = connection::process(socket, full, queries).await;
                            drop(permit);
                        });
                    }
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

/// The handlers of every connection: datafusion-postgres' session service bounded in
/// time (the connection's loop answers queries with it), the password check if there
/// is one, and cancel requests.
struct Handlers {
    queries: Arc<Bounded>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// Connection startup: no authentication, or the password in clear text; either way the
/// connection is registered for cancel requests.
struct Startup {
    password:
        Option<CleartextPasswordAuthStartupHandler<PasswordSource, DefaultServerParameterProvider>>,
    connections: Arc<ConnectionManager>,
}

struct NoPassword(Arc<ConnectionManager>);

impl NoopStartupHandler for NoPassword {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.0))
    }
}

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
        let started = match &self.password {
            Some(check) => check.on_startup(client, message).await,
            None => {
                NoPassword(Arc::clone(&self.connections))
                    .on_startup(client, message)
                    .await
            }
        };
        if let Err(PgWireError::InvalidPassword(user)) = &started {
            tracing::warn!(client = %client.socket_addr(), user, "a PostgreSQL client gave a wrong password");
        }
        started
    }
}

/// The handlers of a connection past the limit: its startup is answered with
/// PostgreSQL's "too many connections" (53300), and it is closed.
struct Full {
    limit: usize,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Full {
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Refuse { limit: self.limit })
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

struct Refuse {
    limit: usize,
}

#[async_trait]
impl StartupHandler for Refuse {
    async fn on_startup<C>(
        &self,
        _client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(_) => {
                Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".to_string(),
                    "53300".to_string(), // too_many_connections
                    format!(
                        "sorry, too many clients already: this server takes {} at once (--postgres-connections)",
                        self.limit
                    ),
                ))))
            }
            _ => Ok(()),
        }
    }
}

/// The server's one password, whoever the user.
#[derive(Debug)]
struct PasswordSource(super::Secret);

// The trait's signature elides LoginInfo's lifetime; naming it does not match it.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl AuthSource for PasswordSource {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(None, self.0.expose().as_bytes().to_vec()))
    }
}
