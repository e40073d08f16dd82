//! Application logs into Sextant as they are emitted: a [`tracing_subscriber::Layer`] that
//! turns every `tracing` event into a row of a log table.
//!
//! ```
//! use std::sync::Arc;
//! use sextant_engine::{Config, ScanRequest};
//! use sextant_ingest::tracing_layer::{self, Options};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let engine = Arc::new(Config::new(dir.path()).open()?);
//! let (layer, writer) = tracing_layer::layer(Arc::clone(&engine), Options::default().service("checkout"));
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("payment", order = 42);
//!     let _in = span.enter();
//!     tracing::error!(gateway = "acme", latency_ms = 5000u64, "payment gateway timeout");
//! });
//! writer.flush()?; // everything recorded so far is written
//! let rows: usize = engine.snapshot().scan(&ScanRequest::new("logs"))?
//!     .map(|b| b.map(|b| b.num_rows())).sum::<sextant_engine::Result<usize>>()?;
//! assert_eq!(rows, 1);
//! # Ok(()) }
//! ```
//!
//! # Rows
//!
//! Each event is a row of the event table [`Options::table`] (`logs` by default):
//!
//! | column | from |
//! |---|---|
//! | `time` | when the event was recorded |
//! | `level` | the event's level; `fatal` when it has a field `fatal = true` (tracing has no fatal level) |
//! | `message` | the event's message (its `message` field) |
//! | `target` (tag) | the event's target, usually its module path |
//! | `service` (tag) | [`Options::service`], when set |
//! | `spans` | the names of the spans it was in, outermost first, joined by `>` (absent outside spans) |
//! | other fields | the event's fields, by name: integers, floats, booleans, and strings (anything else as its `Debug` text) |
//!
//! # Off the calling thread
//!
//! Recording an event builds its row and hands it to a writer thread through a bounded
//! buffer ([`Options::buffer`] rows); the writer writes what it has in one atomic write
//! at a time. When the buffer is full the event is dropped and counted
//! ([`LogWriter::dropped`]), so that a slow disk never stalls the application, unless
//! [`Options::block_when_full`] asks to wait instead. [`LogWriter::flush`] waits until
//! every event recorded before it is written; dropping the [`LogWriter`] writes the rest
//! and stops the thread.
//!
//! A write the engine refuses (a field whose type conflicts with the table's column) is
//! retried row by row, and the rows it still refuses are counted in
//! [`LogWriter::refused`]. Events whose target starts with `sextant` (Sextant's own) are
//! not recorded, so that writing logs never logs.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sextant_engine::{Engine, FieldValue, Level, LogRecord, Point};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// How the layer records events.
#[derive(Debug, Clone)]
pub struct Options {
    /// The event table rows go to. Default: `logs`.
    pub table: String,
    /// A `service` tag on every row, if set. Default: none.
    pub service: Option<String>,
    /// Rows the buffer between the application and the writer holds. Default: 65,536.
    pub buffer: usize,
    /// Whether a full buffer makes the recording thread wait (`true`) or drops the event
    /// and counts it (`false`, the default).
    pub block_when_full: bool,
    /// The most rows written at once. Default: 4,096.
    pub batch_rows: usize,
    /// How long the writer waits for more rows before writing what it has. Default:
    /// 200 ms.
    pub linger: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            table: "logs".into(),
            service: None,
            buffer: 65_536,
            block_when_full: false,
            batch_rows: 4_096,
            linger: Duration::from_millis(200),
        }
    }
}

impl Options {
    /// These options with a `service` tag on every row.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// These options writing to another table.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }
}

/// Why [`LogWriter::flush`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlushError {
    /// The writer thread is gone (it panicked, or the writer was stopped).
    #[error("the log writer thread has stopped; events recorded since are lost")]
    Stopped,
}

enum Message {
    Row(Point),
    Flush(SyncSender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    refused: AtomicU64,
    written: AtomicU64,
}

/// The layer: give it to a `tracing_subscriber::registry()` with `.with(layer)`.
pub struct SextantLayer {
    tx: SyncSender<Message>,
    options: Options,
    counters: Arc<Counters>,
}

impl fmt::Debug for SextantLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SextantLayer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The writer thread's handle: flush, counters, and (on drop) a final write.
#[derive(Debug)]
pub struct LogWriter {
    tx: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// A layer recording `tracing` events into `engine`, and the handle of its writer thread.
pub fn layer(engine: Arc<Engine>, options: Options) -> (SextantLayer, LogWriter) {
    let (tx, rx) = mpsc::sync_channel(options.buffer.max(1));
    let counters = Arc::new(Counters::default());
    let thread = {
        let counters = Arc::clone(&counters);
        let (batch_rows, linger) = (options.batch_rows.max(1), options.linger);
        std::thread::Builder::new()
            .name("sextant-logs".into())
            .spawn(move || write_loop(&engine, &rx, &counters, batch_rows, linger))
            .expect("spawning the log writer thread")
    };
    let layer = SextantLayer {
        tx: tx.clone(),
        options,
        counters: Arc::clone(&counters),
    };
    let writer = LogWriter {
        tx: Some(tx),
        thread: Some(thread),
        counters,
    };
    (layer, writer)
}

impl LogWriter {
    /// Waits until every event recorded before this call is written (or refused).
    pub fn flush(&self) -> Result<(), FlushError> {
        let tx = self.tx.as_ref().ok_or(FlushError::Stopped)?;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        tx.send(Message::Flush(done_tx))
            .map_err(|_| FlushError::Stopped)?;
        done_rx.recv().map_err(|_| FlushError::Stopped)
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Rows the engine refused (a field whose type conflicts with the table's column).
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Rows written.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Writes what is buffered; the thread ends once every sender (the layer's too)
        // is gone, so do not wait for it beyond the flush.
        let _ = self.flush();
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.is_finished()
        {
            let _ = thread.join();
        }
    }
}

fn write_loop(
    engine: &Engine,
    rx: &Receiver<Message>,
    counters: &Counters,
    batch_rows: usize,
    linger: Duration,
) {
    let mut rows: Vec<Point> = Vec::with_capacity(batch_rows);
    loop {
        let message = if rows.is_empty() {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(linger) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    write(engine, &mut rows, counters);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    write(engine, &mut rows, counters);
                    return;
                }
            }
        };
        match message {
            Message::Row(row) => {
                rows.push(row);
                if rows.len() >= batch_rows {
                    write(engine, &mut rows, counters);
                }
            }
            Message::Flush(done) => {
                write(engine, &mut rows, counters);
                let _ = done.send(());
            }
        }
    }
}

/// Writes `rows` at once; if the engine refuses them, one by one, counting the refused.
fn write(engine: &Engine, rows: &mut Vec<Point>, counters: &Counters) {
    if rows.is_empty() {
        return;
    }
    let n = rows.len() as u64;
    if engine.write_points(rows).is_ok() {
        counters.written.fetch_add(n, Ordering::Relaxed);
    } else {
        for row in rows.iter() {
            match engine.write_points(std::slice::from_ref(row)) {
                Ok(()) => counters.written.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.refused.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
    rows.clear();
}

/// The names of the spans an event is in, kept on each span.
struct SpanPath(String);

impl<S> Layer<S> for SextantLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let name = attrs.metadata().name();
        let path = match span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanPath>()
                .map(|parent| format!("{}>{name}", parent.0))
        }) {
            Some(path) => path,
            None => name.to_string(),
        };
        span.extensions_mut().insert(SpanPath(path));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target().starts_with("sextant") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = if fields.fatal {
            Level::Fatal
        } else {
            match *meta.level() {
                tracing::Level::TRACE => Level::Trace,
                tracing::Level::DEBUG => Level::Debug,
                tracing::Level::INFO => Level::Info,
                tracing::Level::WARN => Level::Warn,
                tracing::Level::ERROR => Level::Error,
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let mut record = LogRecord::new(self.options.table.as_str(), level, fields.message)
            .tag("target", meta.target())
            .time(now);
        if let Some(service) = &self.options.service {
            record = record.tag("service", service.as_str());
        }
        if let Some(span) = ctx.event_span(event)
            && let Some(path) = span.extensions().get::<SpanPath>()
        {
            record = record.field("spans", path.0.as_str());
        }
        for (name, value) in fields.values {
            record = record.field(name, value);
        }
        let message = Message::Row(record.into());
        if self.options.block_when_full {
            let _ = self.tx.send(message);
        } else if let Err(TrySendError::Full(_)) = self.tx.try_send(message) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An event's fields, as its row takes them.
#[derive(Default)]
struct Fields {
    message: String,
    fatal: bool,
    values: Vec<(&'static str, FieldValue)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: FieldValue) {
        // Columns the row sets itself are not overwritten by fields of the same name.
        if !matches!(
            field.name(),
            "time" | "level" | "target" | "service" | "spans"
        ) {
            self.values.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.push(field, FieldValue::Str(value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.push(field, FieldValue::Str(format!("{value:?}")));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "fatal" {
            self.fatal = value;
        } else {
            self.push(field, FieldValue::Bool(value));
        }
    }
}
