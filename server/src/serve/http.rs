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
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::arrow::array::RecordBatch;
use serde_json::json;
use sextant_alerts::Evaluator;
use sextant_engine::Error as EngineError;
use sextant_ingest::{Outcome, jsonl, line_protocol, remote_write};
use sextant_query::{Database, Error as QueryError};
use tokio::sync::watch;

use super::Options;
use super::stats::{Source, Stats};
use crate::{Error, Result};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct App {
    db: Arc<Database>,
    alerts: Option<Arc<Evaluator>>,
    stats: Arc<Stats>,
    token: Option<Arc<str>>,
    max_body: usize,
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
            token: options.token.as_deref().map(Arc::from),
            max_body: options.max_body,
        }
    }
}

/// How long requests in flight at shutdown get to finish.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` on `addr` until `stopped` turns true, then lets requests in flight finish
/// for up to [`GRACE`] (a client that never finishes does not hold the shutdown).
pub async fn serve(addr: SocketAddr, app: App, stopped: watch::Receiver<bool>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen for HTTP on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("cannot listen for HTTP on {addr}: {e}")))?;
    super::say!("sextant: HTTP listening on http://{local}");
    let max_body = app.max_body;
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
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .with_state(app);
    let server =
        axum::serve(listener, router).with_graceful_shutdown(super::until(stopped.clone()));
    let grace = async {
        super::until(stopped).await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| Error::Usage(format!("the HTTP listener failed: {e}"))),
        () = grace => {
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
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal error",
        _ => "invalid",
    };
    let body = json!({"code": code, "message": message.to_string()});
    (status, axum::Json(body)).into_response()
}

/// Refuses a request without the server's token before its body is read (every path but
/// `/health`): a client without it cannot make the server take a body.
async fn require_token(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.uri().path() != "/health"
        && let Err(r) = authorize(&app, request.headers())
    {
        return r.into_response();
    }
    next.run(request).await
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
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
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
        app.stats.prometheus(),
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

async fn sql_answer(app: App, headers: HeaderMap, sql: String) -> Response {
    let answer = Answer::of(&headers);
    let started = Instant::now();
    let result = app.db.sql_read_only(&sql).await;
    app.stats.query(started.elapsed(), result.is_err());
    let batches = match result {
        Ok(b) => b,
        Err(e) => return error(query_status(&e), e),
    };
    match tokio::task::spawn_blocking(move || encode(&batches, answer)).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, answer.content_type())], bytes).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
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

/// The answer's bytes in `answer`'s format.
fn encode(batches: &[RecordBatch], answer: Answer) -> Result<Vec<u8>> {
    use datafusion::arrow::{csv, ipc, json};
    let mut out = Vec::new();
    match answer {
        Answer::Json => {
            let mut w = json::ArrayWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            // The writer writes nothing for no batches.
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
        }
        Answer::JsonLines => crate::output::print(batches, crate::output::Format::Json, &mut out)?,
        Answer::Csv => {
            let mut w = csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                w.write(b)?;
            }
        }
        Answer::ArrowStream => {
            if let Some(first) = batches.first() {
                let mut w = ipc::writer::StreamWriter::try_new(&mut out, &first.schema())?;
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
        }
    }
    Ok(out)
}
