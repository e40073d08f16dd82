//! The HTTP listener: writes in line protocol, remote write and JSON lines; SQL; health
//! and the server's own counters.
//!
//! Every write answers 204 when all its lines were written; 400 with a JSON body naming
//! the bad lines (number and reason) when some were rejected, the good ones being written
//! all the same (InfluxDB's partial write); 413 when the body is too large; 503 with
//! `Retry-After` when the database's memory budget pushes back (nothing written).

use std::collections::HashMap;
use std::fmt::Display;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::arrow::array::RecordBatch;
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use sextant_alerts::Evaluator;
use sextant_engine::Error as EngineError;
use sextant_ingest::{Outcome, jsonl, line_protocol, remote_write};
use sextant_query::{Database, Error as QueryError};
use tokio::sync::{Semaphore, watch};

use super::Options;
use super::stats::{Source, Stats};
use crate::{Error, Result};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct App {
    db: Arc<Database>,
    alerts: Option<Arc<Evaluator>>,
    stats: Arc<Stats>,
    token: Option<super::Secret>,
    max_body: usize,
    read_timeout: std::time::Duration,
    query_timeout: std::time::Duration,
    connections: usize,
}

impl App {
    pub fn new(
        db: Arc<Database>,
        alerts: Option<Arc<Evaluator>>,
        stats: Arc<Stats>,
        options: &Options,
    ) -> App {
        App {
            db,
            alerts,
            stats,
            token: options.token.clone(),
            max_body: options.max_body,
            read_timeout: options.read_timeout,
            query_timeout: options.query_timeout,
            connections: options.http_connections,
        }
    }
}

/// How long requests in flight at shutdown get to finish.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How many refused connections may be in flight at once (each is answered 503, then
/// closed); past it a connection is closed unanswered.
const REFUSALS: usize = 64;

/// Serves `app` on `addr` until `stopped` turns true, then lets requests in flight finish
/// for up to [`GRACE`] (a client that never finishes does not hold the shutdown).
///
/// A connection must send each request's head within `--read-timeout` of the server
/// waiting for it (so an idle keep-alive connection is closed after that long), and its
/// body within `--read-timeout` of the head; at most `--http-connections` are open at
/// once, and the next is answered 503 and closed.
pub async fn serve(addr: SocketAddr, app: App, stopped: watch::Receiver<bool>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen for HTTP on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("cannot listen for HTTP on {addr}: {e}")))?;
    super::say!("sextant: HTTP listening on http://{local}");
    let (max_body, limit, read_timeout) = (app.max_body, app.connections, app.read_timeout);
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v2/write", post(write_line_protocol))
        .route("/write", post(write_line_protocol))
        .route("/api/v1/write", post(write_remote))
        .route("/api/v1/logs", post(write_logs))
        .route("/api/v1/sql", get(sql_get).post(sql_post))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/backtest", get(backtest))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(app.clone(), admit))
        .with_state(app);
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .keep_alive(true);
    let mut refuse = http.clone();
    refuse.keep_alive(false);
    let refusal = hyper::service::service_fn(move |_| async move {
        let mut answer = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many connections: this server takes {limit} at once (--http-connections); try again"
            ),
        );
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
        Ok::<_, std::convert::Infallible>(answer)
    });
    let admitted = Arc::new(Semaphore::new(limit));
    let refusing = Arc::new(Semaphore::new(REFUSALS));
    let graceful = GracefulShutdown::new();
    let stop = super::until(stopped.clone());
    tokio::pin!(stop);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("accepting an HTTP connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = socket.set_nodelay(true);
        let io = TokioIo::new(socket);
        if let Ok(permit) = Arc::clone(&admitted).try_acquire_owned() {
            let connection = graceful.watch(http.serve_connection(io, service.clone()));
            tokio::spawn(async move {
                // A client that goes away or times out ends its connection; nothing to do.
                let _ = connection.await;
                drop(permit);
            });
        } else if let Ok(permit) = Arc::clone(&refusing).try_acquire_owned() {
            tracing::warn!(client = %peer, "an HTTP client was refused: as many connections are open as --http-connections allows ({limit})");
            let connection = refuse.serve_connection(io, refusal);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(read_timeout, connection).await;
                drop(permit);
            });
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(()),
        () = tokio::time::sleep(GRACE) => {
            tracing::warn!("HTTP requests still open {GRACE:?} after shutdown began are dropped");
            Ok(())
        }
    }
}

/// A JSON error answer: `{"code": ..., "message": ...}`, as InfluxDB answers.
fn error(status: StatusCode, message: impl Display) -> Response {
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        StatusCode::REQUEST_TIMEOUT => "request timeout",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal error",
        _ => "invalid",
    };
    let body = json!({"code": code, "message": message.to_string()});
    (status, axum::Json(body)).into_response()
}

/// Admits a request: refuses one without the server's token before its body is read
/// (every path but `/health`), so that a client without it cannot make the server take
/// a body; then reads the body within `--read-timeout` (408 past it) and `--max-body`
/// (413), so that a client sending slowly holds no handler.
async fn admit(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/health" {
        // Open to all, so it takes no body: none is read.
        let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
            || request
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|n| n != "0");
        if has_body {
            return Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "/health takes no body")
                .into_response();
        }
        return next.run(request).await;
    }
    if let Err(r) = authorize(&app, request.headers()) {
        return r.into_response();
    }
    let (parts, body) = request.into_parts();
    match read_body(body, &parts.headers, app.max_body, app.read_timeout).await {
        Ok(body) => next.run(Request::from_parts(parts, body)).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The whole body, read by `timeout` from now, of at most `max` bytes.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Body, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes (--max-body)"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunks = body.into_data_stream();
    let mut read = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    loop {
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Err(_) => {
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request's body did not arrive within {} (--read-timeout)",
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            Ok(None) => return Ok(Body::from(read)),
            Ok(Some(Err(e))) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request's body: {e}"),
                ));
            }
            Ok(Some(Ok(chunk))) => {
                if read.len() + chunk.len() > max {
                    return Err(too_large());
                }
                read.extend_from_slice(&chunk);
            }
        }
    }
}

/// Refuses a request without the server's token (`Authorization: Bearer T` or `Token T`).
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = &app.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("Token "))
        });
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.expose().as_bytes())) {
        Ok(())
    } else {
        app.stats.unauthorized();
        Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "this server needs a token: send `Authorization: Bearer <token>`",
        ))
    }
}

/// Compares without stopping at the first difference, so timing does not tell a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body, gunzipped when `Content-Encoding: gzip`, at most `max` bytes either way.
fn body(headers: &HeaderMap, raw: Bytes, max: usize) -> Result<Bytes, Refusal> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding {
        "identity" | "" => Ok(raw),
        "gzip" => {
            let mut out = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(&raw[..]).take(max as u64 + 1);
            decoder.read_to_end(&mut out).map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not valid gzip: {e}"),
                )
            })?;
            if out.len() > max {
                return Err(Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {max} bytes once decompressed"),
                ));
            }
            Ok(out.into())
        }
        other => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not supported; send gzip or none"),
        )),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Why a request was refused whole: its status, a sentence, and for back-pressure the
/// seconds to wait.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Display) -> Refusal {
        Refusal {
            status,
            message: message.to_string(),
            retry_after: None,
        }
    }

    /// A failed write: the client's fault, the budget's, or the server's.
    fn of_write(e: EngineError) -> Refusal {
        match e {
            EngineError::Backpressure { retry_after, .. } => Refusal {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e)
            },
            EngineError::InvalidInput(ref m)
                if m.contains("larger than the whole memory budget") =>
            {
                Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, e)
            }
            EngineError::InvalidInput(_)
            | EngineError::SeriesLimit { .. }
            | EngineError::TypeConflict { .. }
            | EngineError::TableKindConflict { .. } => Refusal::new(StatusCode::BAD_REQUEST, e),
            _ => Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    fn into_response(self) -> Response {
        let mut response = error(self.status, self.message);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Parses off the runtime's threads, writes the good rows, and answers.
async fn ingest<E, F>(app: App, source: Source, parse: F) -> Response
where
    E: Display + Send + 'static,
    F: FnOnce(&Database) -> std::result::Result<Outcome<E>, Refusal> + Send + 'static,
{
    app.stats.request(source);
    let db = Arc::clone(&app.db);
    let task = tokio::task::spawn_blocking(move || {
        let mut outcome = parse(&db)?;
        let batches = std::mem::take(&mut outcome.batches);
        if !batches.is_empty() {
            db.engine()
                .write_batches(batches)
                .map_err(Refusal::of_write)?;
        }
        Ok::<_, Refusal>(outcome)
    });
    let outcome = match task.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(refusal)) => {
            app.stats.failed(source);
            return refusal.into_response();
        }
        Err(e) => {
            app.stats.failed(source);
            return error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    };
    app.stats.written(source, outcome.rows);
    if outcome.is_complete() {
        return StatusCode::NO_CONTENT.into_response();
    }
    app.stats.rejected(source, outcome.rejected_lines);
    let rejected: Vec<_> = outcome
        .rejected
        .iter()
        .map(|r| json!({"line": r.line, "error": r.error.to_string()}))
        .collect();
    let first = outcome
        .rejected
        .first()
        .map(|r| format!("; the first: line {}: {}", r.line, r.error))
        .unwrap_or_default();
    let body = json!({
        "code": "invalid",
        "message": format!(
            "partial write: {} line(s) rejected, {} row(s) written{first}",
            outcome.rejected_lines, outcome.rows
        ),
        "rows_written": outcome.rows,
        "lines_rejected": outcome.rejected_lines,
        "rejected": rejected,
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn write_line_protocol(
    State(app): State<App>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let precision = match params.get("precision").map(String::as_str) {
        None | Some("") => line_protocol::Precision::Nanoseconds,
        Some(p) => match line_protocol::Precision::from_param(p) {
            Some(p) => p,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("precision {p:?} is not one of ns, us, ms, s"),
                );
            }
        },
    };
    let max_body = app.max_body;
    let options = line_protocol::Options {
        max_request_bytes: max_body,
        ..line_protocol::Options::default().precision(precision)
    };
    ingest(app, Source::LineProtocol, move |db| {
        let input = body(&headers, raw, max_body)?;
        line_protocol::parse(&input, &options, now(), &db.engine().snapshot()).map_err(|e| {
            let status = match e {
                line_protocol::Error::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Refusal::new(status, e)
        })
    })
    .await
}

async fn write_remote(State(app): State<App>, raw: Bytes) -> Response {
    let options = remote_write::Options {
        max_request_bytes: app.max_body,
        ..remote_write::Options::default()
    };
    ingest(app, Source::RemoteWrite, move |db| {
        remote_write::parse(&raw, &options, &db.engine().snapshot()).map_err(|e| {
            let status = match e {
                remote_write::Error::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            Refusal::new(status, e)
        })
    })
    .await
}

async fn write_logs(State(app): State<App>, headers: HeaderMap, raw: Bytes) -> Response {
    let max_body = app.max_body;
    let options = jsonl::Options {
        max_request_bytes: max_body,
        ..jsonl::Options::default()
    };
    ingest(app, Source::JsonLines, move |db| {
        let input = body(&headers, raw, max_body)?;
        jsonl::parse(&input, &options, now(), &db.engine().snapshot()).map_err(|e| {
            let status = match e {
                jsonl::Error::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            Refusal::new(status, e)
        })
    })
    .await
}

async fn health() -> Response {
    axum::Json(json!({"status": "pass"})).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.stats.prometheus() + &super::stats::storage_metrics(app.db.engine()),
    )
        .into_response()
}

/// The pending and firing alerts, in the shape of Prometheus' `/api/v1/alerts`.
async fn alerts(State(app): State<App>) -> Response {
    match &app.alerts {
        Some(ev) => axum::Json(sextant_alerts::api::alerts(ev)).into_response(),
        None => axum::Json(json!({"status": "success", "data": {"alerts": []}})).into_response(),
    }
}

/// The rules and their health, in the shape of Prometheus' `/api/v1/rules`.
async fn rules(State(app): State<App>) -> Response {
    match &app.alerts {
        Some(ev) => axum::Json(sextant_alerts::api::rules(ev, "rules")).into_response(),
        None => axum::Json(json!({"status": "success", "data": {"groups": []}})).into_response(),
    }
}

/// A backtest of a loaded rule: `?rule=NAME&from=TIME&to=TIME` (RFC 3339, `now`, or
/// `now-6h`; `to` defaults to now).
async fn backtest(
    State(app): State<App>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(ev) = app.alerts.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "no rules are loaded: start the server with --rules FILE",
        );
    };
    let (Some(rule), Some(from)) = (params.get("rule"), params.get("from")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the rule as `rule` and the range as `from` and `to` (RFC 3339, now, or now-6h)",
        );
    };
    let now = now();
    let to = params.get("to").map_or("now", String::as_str);
    let range = sextant_alerts::api::parse_time(from, now)
        .and_then(|f| Ok((f, sextant_alerts::api::parse_time(to, now)?)));
    let (from, to) = match range {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let rule = rule.clone();
    let run = tokio::task::spawn_blocking(move || ev.backtest(&rule, from, to)).await;
    match run {
        Ok(Ok(report)) => axum::Json(sextant_alerts::api::backtest(&report)).into_response(),
        Ok(Err(e @ sextant_alerts::Error::NoSuchRule(_))) => error(StatusCode::NOT_FOUND, e),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn sql_get(
    State(app): State<App>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match params.get("q") {
        Some(sql) => sql_answer(app, headers, sql.clone()).await,
        None => error(
            StatusCode::BAD_REQUEST,
            "give the SQL as the `q` parameter, or POST it as the body",
        ),
    }
}

async fn sql_post(State(app): State<App>, headers: HeaderMap, raw: Bytes) -> Response {
    match String::from_utf8(raw.to_vec()) {
        Ok(sql) => sql_answer(app, headers, sql).await,
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("the SQL is not UTF-8: {e}"),
        ),
    }
}

/// How an answer is sent, by the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Json,
    JsonLines,
    Csv,
    ArrowStream,
}

impl Answer {
    fn of(headers: &HeaderMap) -> Answer {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/vnd.apache.arrow.stream") {
            Answer::ArrowStream
        } else if accept.contains("text/csv") {
            Answer::Csv
        } else if accept.contains("application/x-ndjson") || accept.contains("application/jsonl") {
            Answer::JsonLines
        } else {
            Answer::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Answer::Json => "application/json",
            Answer::JsonLines => "application/x-ndjson",
            Answer::Csv => "text/csv",
            Answer::ArrowStream => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Runs a read-only query and streams its answer: the query is planned and its first
/// batch computed before the answer starts, so that an error up to then (most of them:
/// bad SQL, memory, time, for aggregations the whole run) gets its own status. An error
/// or the query's timeout later ends the answer short, its chunked body unterminated,
/// which clients report as an incomplete answer. Rows are encoded as they come, so a
/// large answer is never held whole.
async fn sql_answer(app: App, headers: HeaderMap, sql: String) -> Response {
    let answer = Answer::of(&headers);
    let started = Instant::now();
    let timeout = app.query_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let db = Arc::clone(&app.db);
    let opened = tokio::time::timeout_at(deadline, async move {
        let mut batches = db.sql_read_only_stream(&sql).await?;
        let first = batches.next().await.transpose()?;
        Ok::<_, QueryError>((batches, first))
    })
    .await;
    let (batches, first) = match opened {
        Ok(Ok(opened)) => opened,
        failed => {
            let e = match failed {
                Ok(Err(e)) => e,
                _ => QueryError::Timeout(timeout),
            };
            app.stats.query(started.elapsed(), true);
            return error(query_status(&e), e);
        }
    };
    let state = Answering {
        encoder: Encoder::new(answer, batches.schema()),
        batches: Some(batches),
        first,
        stats: app.stats,
    };
    let body = futures::stream::unfold(state, move |mut state| async move {
        let batches = state.batches.as_mut()?;
        if !state.encoder.pending.is_empty() {
            let head = std::mem::take(&mut state.encoder.pending);
            return Some((Ok(Bytes::from(head)), state));
        }
        let next = match state.first.take() {
            Some(batch) => Some(Ok(batch)),
            None => match tokio::time::timeout_at(deadline, batches.next()).await {
                Ok(next) => next,
                Err(_) => Some(Err(datafusion::error::DataFusionError::Execution(format!(
                    "the query ran longer than its timeout of {}",
                    humantime::format_duration(timeout)
                )))),
            },
        };
        let chunk = match next {
            Some(Ok(batch)) => state.encoder.batch(&batch),
            Some(Err(e)) => {
                tracing::warn!("a SQL answer over HTTP was cut short: {e}");
                state.stats.query(started.elapsed(), true);
                state.batches = None;
                Err(Error::from(QueryError::Query(e)))
            }
            None => {
                state.stats.query(started.elapsed(), false);
                state.batches = None;
                state.encoder.finish()
            }
        };
        Some((chunk.map(Bytes::from), state))
    });
    (
        [(header::CONTENT_TYPE, answer.content_type())],
        Body::from_stream(body),
    )
        .into_response()
}

/// A SQL answer being sent.
struct Answering {
    encoder: Encoder,
    /// The query's batches; `None` once they ended or failed.
    batches: Option<datafusion::execution::SendableRecordBatchStream>,
    /// The batch computed before the answer started.
    first: Option<RecordBatch>,
    stats: Arc<Stats>,
}

/// An answer's bytes in its format, a batch at a time.
struct Encoder {
    answer: Answer,
    /// Whether a row was written (JSON: the opening bracket is out; CSV: the header).
    started: bool,
    /// Arrow IPC's writer, over the bytes not yet sent.
    arrow: Option<datafusion::arrow::ipc::writer::StreamWriter<Vec<u8>>>,
    /// Bytes produced before the first batch.
    pending: Vec<u8>,
}

impl Encoder {
    fn new(answer: Answer, schema: datafusion::arrow::datatypes::SchemaRef) -> Encoder {
        let mut encoder = Encoder {
            answer,
            started: false,
            arrow: None,
            pending: Vec::new(),
        };
        if answer == Answer::ArrowStream {
            match datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema) {
                Ok(mut w) => {
                    encoder.pending = std::mem::take(w.get_mut());
                    encoder.arrow = Some(w);
                }
                // A schema Arrow IPC cannot write: reported at the first batch.
                Err(e) => tracing::warn!("an Arrow IPC answer cannot start: {e}"),
            }
        }
        encoder
    }

    /// The bytes of one batch.
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        use datafusion::arrow::{csv, json};
        let mut out = Vec::new();
        match self.answer {
            Answer::Json => {
                let mut rows = Vec::new();
                let mut w = json::ArrayWriter::new(&mut rows);
                w.write(batch)?;
                w.finish()?;
                // `[row,row]`: the rows without their brackets, after `[` or `,`.
                if rows.len() > 2 {
                    out.push(if self.started { b',' } else { b'[' });
                    out.extend_from_slice(&rows[1..rows.len() - 1]);
                    self.started = true;
                }
            }
            Answer::JsonLines => {
                crate::output::print(
                    std::slice::from_ref(batch),
                    crate::output::Format::Json,
                    &mut out,
                )?;
            }
            Answer::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .with_header(!self.started)
                    .build(&mut out);
                w.write(batch)?;
                self.started = true;
            }
            Answer::ArrowStream => {
                let w = self.arrow.as_mut().ok_or_else(|| {
                    Error::Usage("the answer's schema cannot be written as Arrow IPC".into())
                })?;
                w.write(batch)?;
                out = std::mem::take(w.get_mut());
            }
        }
        Ok(out)
    }

    /// The bytes that end the answer.
    fn finish(&mut self) -> Result<Vec<u8>> {
        match self.answer {
            Answer::Json if self.started => Ok(b"]".to_vec()),
            Answer::Json => Ok(b"[]".to_vec()),
            Answer::ArrowStream => match self.arrow.as_mut() {
                Some(w) => {
                    w.finish()?;
                    Ok(std::mem::take(w.get_mut()))
                }
                None => Ok(Vec::new()),
            },
            Answer::JsonLines | Answer::Csv => Ok(Vec::new()),
        }
    }
}

/// The status of a failed query: the client's SQL (400), memory (503), its time (504),
/// or the server (500).
fn query_status(e: &QueryError) -> StatusCode {
    use datafusion::error::DataFusionError as D;
    match e {
        QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        QueryError::Query(e) => match e.find_root() {
            D::ResourcesExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
            D::SQL(..) | D::Plan(_) | D::SchemaError(..) | D::NotImplemented(_) => {
                StatusCode::BAD_REQUEST
            }
            D::Execution(_) => StatusCode::BAD_REQUEST, // a cast of a bad value, say
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
