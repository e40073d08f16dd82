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
//! With [`Options::spans`], each closed span is a row of that event table too:
//!
//! | column | from |
//! |---|---|
//! | `time` | when the span was created |
//! | `level`, `target` (tag), `service` (tag) | as for events |
//! | `name` (tag) | the span's name |
//! | `duration_ns` | nanoseconds from creation to close |
//! | `busy_ns` | nanoseconds the span was entered (the rest of `duration_ns` it was idle) |
//! | `spans` | the names of the spans it was in, outermost first (absent for a root span) |
//! | other fields | the span's fields, their latest values (`Span::record` included) |
//!
//! A field named like a column the layer sets (`time`, `level`, `target`, `service`,
//! `spans`, `message`; for spans also `name`, `duration_ns`, `busy_ns`) is left out. A
//! field name the engine does not accept as a column name has each such character
//! replaced by `_`; a field repeated in one event keeps its last value.
//!
//! # Off the calling thread
//!
//! Recording an event appends it to a buffer of the recording thread's own (its text
//! formatted into a string the buffer reuses, so that once the buffers have grown to
//! their working size recording allocates nothing), under a lock that only the writer
//! thread also takes, once per pass. The writer takes every thread's buffer every
//! [`Options::linger`], or sooner when one holds 4,096 rows, and writes its rows as column
//! batches of at most [`Options::batch_rows`] rows, each one atomic write.
//!
//! A thread's buffer holds at most [`Options::buffer`] rows and about
//! [`Options::buffer_bytes`] bytes of text. When it is full the event is dropped and
//! counted ([`LogWriter::dropped`]), so that a slow disk never stalls the application,
//! unless [`Options::block_when_full`] asks to wait instead. [`LogWriter::flush`] waits
//! until every event recorded before it is written; dropping the [`LogWriter`] writes the
//! rest and stops the thread (events recorded later are dropped and counted).
//!
//! A field whose type conflicts with the table's column is converted when nothing is lost
//! (an unsigned integer into a signed column and back, an integer a float holds exactly
//! into a float column); otherwise the row is written without that field. Rows that still
//! cannot be written (the table is a metric table, has too many columns) are counted in
//! [`LogWriter::refused`]. A write the memory budget pushes back is retried for up to
//! about ten seconds; rows of a write the engine fails (a disk error, the budget still
//! full) are counted in [`LogWriter::failed`], and [`LogWriter::last_error`] says why. Events of the library's own crates
//! (targets starting with `sextant_engine`, `sextant_query`, `sextant_ingest`) and events
//! recorded on the writer thread are not recorded, so that writing logs never logs, and
//! neither is an event recorded while the layer is recording another on the same thread
//! (from inside a field's `Debug` implementation).

mod capture;
mod write;

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use sextant_engine::Engine;
use thread_local::ThreadLocal;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use capture::{Row, Shard, SpanRow, Val};

/// How the layer records events.
#[derive(Debug, Clone)]
pub struct Options {
    /// The event table rows go to. Default: `logs`.
    pub table: String,
    /// The event table closed spans go to, if any. Default: none (spans are only the
    /// `spans` column of events).
    pub spans_table: Option<String>,
    /// A `service` tag on every row, if set. Default: none.
    pub service: Option<String>,
    /// Rows each recording thread's buffer holds (about 200 bytes each, with two fields).
    /// Default: 16,384. Each buffer's most memory (these rows, with two fields each, and
    /// `buffer_bytes`) is reserved in the engine's memory budget from its thread's first
    /// event until the [`LogWriter`] stops, and so is one more for the writer's when the
    /// budget has room for it. While the budget has no room for a thread's buffer, its
    /// events are dropped and counted.
    pub buffer: usize,
    /// Bytes of text (messages and string fields) each recording thread's buffer holds
    /// before it counts as full. Default: 4 MiB.
    pub buffer_bytes: usize,
    /// Whether a full buffer makes the recording thread wait (`true`) or drops the event
    /// and counts it (`false`, the default).
    pub block_when_full: bool,
    /// The most rows written at once. Default: 8,192.
    pub batch_rows: usize,
    /// How often the writer takes what was recorded and writes it: the longest an event
    /// waits to be written, unless the writer is behind. Default: 50 ms.
    pub linger: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            table: "logs".into(),
            spans_table: None,
            service: None,
            buffer: 16_384,
            buffer_bytes: 4 << 20,
            block_when_full: false,
            batch_rows: 8_192,
            linger: Duration::from_millis(50),
        }
    }
}

impl Options {
    /// These options with a `service` tag on every row.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// These options writing events to another table.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// These options writing each closed span as a row of event table `table` (`spans`,
    /// say), with its duration.
    pub fn spans(mut self, table: impl Into<String>) -> Self {
        self.spans_table = Some(table.into());
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

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    written: AtomicU64,
}

/// What the layer, the writer thread and the [`LogWriter`] share.
struct Shared {
    options: Options,
    /// Each recording thread's buffer.
    shards: ThreadLocal<Mutex<Shard>>,
    counters: Counters,
    /// Set when the [`LogWriter`] is dropped: the writer makes a last pass and ends.
    stopped: AtomicBool,
    /// Flushes waiting for the writer's next pass to end.
    flushes: Mutex<Vec<SyncSender<()>>>,
    /// The writer thread, to wake it.
    writer: std::sync::OnceLock<Thread>,
    /// Why the last failed write failed.
    last_error: Mutex<Option<String>>,
    /// The engine, to reserve the buffers' memory in its budget (weak: the layer, which
    /// may outlive the writer, does not keep the engine open).
    engine: Weak<Engine>,
    /// Bytes reserved in the engine's budget for the buffers; `None` once given back.
    reserved: Mutex<Option<usize>>,
}

impl Shared {
    /// Reserves one buffer's most memory in the engine's budget; false when the budget
    /// has no room (or the writer has stopped and given the reservations back).
    fn reserve_buffer(&self) -> bool {
        let per_row = std::mem::size_of::<Row>() + 2 * std::mem::size_of::<(&str, Val)>();
        let bytes = self.options.buffer.max(1) * per_row + self.options.buffer_bytes.max(1);
        let mut reserved = self.reserved.lock();
        let Some(total) = reserved.as_mut() else {
            return false;
        };
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        let fits = engine.try_reserve_memory(bytes).is_ok();
        if fits {
            *total += bytes;
        }
        // The engine is dropped after the lock: never inside it.
        drop(reserved);
        fits
    }

    /// Gives back what [`Shared::reserve_buffer`] reserved.
    fn release_buffers(&self, engine: &Engine) {
        if let Some(total) = self.reserved.lock().take() {
            engine.release_memory(total);
        }
    }

    fn wake_writer(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    /// Runs `f` on this thread's buffer, unless it is full (then the event is dropped
    /// and counted, or waits with [`Options::block_when_full`]) or this thread is already
    /// recording (an event from inside a field's `Debug`).
    fn capture(&self, f: impl FnOnce(&mut Shard)) {
        thread_local! {
            static RECORDING: Cell<bool> = const { Cell::new(false) };
        }
        /// Clears the thread's recording flag however `capture` ends (a `Debug` that
        /// panics included).
        struct Recording;
        impl Drop for Recording {
            fn drop(&mut self) {
                RECORDING.with(|r| r.set(false));
            }
        }
        if RECORDING.with(|r| r.replace(true)) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _recording = Recording;
        let (rows, bytes) = (self.options.buffer.max(1), self.options.buffer_bytes.max(1));
        let shard = self.shards.get_or(|| Mutex::new(Shard::default()));
        let mut guard = shard.lock();
        // A buffer is used once its memory is reserved in the engine's budget; until the
        // budget has room, the thread's events are dropped and counted.
        if !guard.reserved {
            if !self.reserve_buffer() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            guard.reserved = true;
        }
        loop {
            // Checked under the shard's lock: the writer's last pass closes every shard
            // it takes, so a row is either taken by it or dropped and counted here.
            if guard.closed || self.stopped.load(Ordering::SeqCst) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if !guard.is_full(rows, bytes) {
                break;
            }
            drop(guard);
            self.wake_writer();
            if !self.options.block_when_full {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
            guard = shard.lock();
        }
        f(&mut guard);
        let wake = guard.rows.len() == WAKE_ROWS.min(rows.div_ceil(4))
            || guard.text.len() >= bytes.div_ceil(4);
        drop(guard);
        if wake {
            self.wake_writer();
        }
    }
}

/// Rows in one thread's buffer at which the recording thread wakes the writer before its
/// [`Options::linger`] is up: small enough that the buffers stay in cache and reach their
/// working size soon, large enough that waking (a system call) is rare.
const WAKE_ROWS: usize = 4_096;

/// The layer: give it to a `tracing_subscriber::registry()` with `.with(layer)`.
pub struct SextantLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SextantLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SextantLayer")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// The writer thread's handle: flush, counters, and (on drop) a final write.
pub struct LogWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogWriter")
            .field("counters", &self.shared.counters)
            .finish_non_exhaustive()
    }
}

/// A layer recording `tracing` events into `engine`, and the handle of its writer thread.
pub fn layer(engine: Arc<Engine>, options: Options) -> (SextantLayer, LogWriter) {
    let shared = Arc::new(Shared {
        options,
        shards: ThreadLocal::new(),
        counters: Counters::default(),
        stopped: AtomicBool::new(false),
        flushes: Mutex::new(Vec::new()),
        writer: std::sync::OnceLock::new(),
        last_error: Mutex::new(None),
        engine: Arc::downgrade(&engine),
        reserved: Mutex::new(Some(0)),
    });
    // The writer's spare buffer: if the budget has no room for it, rows are written
    // from it all the same (it is the buffers of recording threads that wait for room).
    shared.reserve_buffer();
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("sextant-logs".into())
            .spawn(move || write_loop(&engine, &shared))
            .expect("spawning the log writer thread")
    };
    let _ = shared.writer.set(thread.thread().clone());
    let layer = SextantLayer {
        shared: Arc::clone(&shared),
    };
    let writer = LogWriter {
        shared,
        thread: Some(thread),
    };
    (layer, writer)
}

impl LogWriter {
    /// Waits until every event recorded before this call has been handled: written, or
    /// counted as refused or failed.
    pub fn flush(&self) -> Result<(), FlushError> {
        let thread = self.thread.as_ref().ok_or(FlushError::Stopped)?;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.shared.flushes.lock().push(done_tx);
        self.shared.wake_writer();
        loop {
            match done_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => return Ok(()),
                Err(RecvTimeoutError::Timeout) if !thread.is_finished() => {}
                Err(_) => return Err(FlushError::Stopped),
            }
        }
    }

    /// Events dropped because the buffer was full (or the writer had stopped).
    pub fn dropped(&self) -> u64 {
        self.shared.counters.dropped.load(Ordering::Relaxed)
    }

    /// Rows not written because a field's type conflicts with the table's column.
    pub fn refused(&self) -> u64 {
        self.shared.counters.refused.load(Ordering::Relaxed)
    }

    /// Rows lost because the engine failed their write (a disk error, the memory
    /// budget).
    pub fn failed(&self) -> u64 {
        self.shared.counters.failed.load(Ordering::Relaxed)
    }

    /// Why the last write counted in [`LogWriter::failed`] failed, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().clone()
    }

    /// Rows written.
    pub fn written(&self) -> u64 {
        self.shared.counters.written.load(Ordering::Relaxed)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // The writer's last pass writes everything recorded before this point.
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.wake_writer();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(engine: &Engine, shared: &Shared) {
    /// However the writer ends (its last pass, or a panic), recording stops: events are
    /// dropped and counted, and no recording thread waits for room that never comes.
    struct Exit<'a>(&'a Shared, &'a Engine);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            self.0.stopped.store(true, Ordering::SeqCst);
            self.0.release_buffers(self.1);
        }
    }
    let _exit = Exit(shared, engine);
    WRITER.with(|w| w.set(true));
    let mut spare = Shard::default();
    loop {
        let stopping = shared.stopped.load(Ordering::SeqCst);
        let flushes = std::mem::take(&mut *shared.flushes.lock());
        let mut pass = write::Pass::new(engine, shared);
        for shard in shared.shards.iter() {
            {
                let mut guard = shard.lock();
                guard.closed = stopping;
                if guard.rows.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *guard, &mut spare);
                // The swap moved the flags into `spare`: set them on what stays.
                guard.closed = stopping;
                guard.reserved = spare.reserved;
            }
            pass.write(&spare);
            spare.clear();
        }
        for done in flushes {
            let _ = done.send(());
        }
        if stopping {
            return;
        }
        if shared.flushes.lock().is_empty() {
            std::thread::park_timeout(shared.options.linger);
        }
    }
}

thread_local! {
    /// Set on writer threads: what they record is not recorded.
    static WRITER: Cell<bool> = const { Cell::new(false) };
}

/// Whether an event of `target` is the library's own (the engine, the query layer, this
/// crate), or is recorded by a writer thread: recording it could write logs while writing
/// logs.
fn is_own(target: &str) -> bool {
    ["sextant_engine", "sextant_query", "sextant_ingest"]
        .iter()
        .any(|own| target.starts_with(own))
        || WRITER.with(Cell::get)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What a span keeps: the path events in it record, and its row in the spans table.
struct SpanData {
    /// The names of the spans from the outermost to this one, joined by `>`.
    path: Arc<str>,
    /// With [`Options::spans`]: the span's row, and its timing.
    row: Option<Box<SpanTiming>>,
}

struct SpanTiming {
    row: SpanRow,
    created: Instant,
    /// How many times the span is entered now (nested, or on several threads), and
    /// since when it has been entered at all.
    depth: u32,
    entered: Option<Instant>,
    busy: Duration,
}

impl<S> Layer<S> for SextantLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let meta = attrs.metadata();
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanData>()
                .map(|d| Arc::clone(&d.path))
        });
        let path: Arc<str> = match &parent {
            Some(parent) => format!("{parent}>{}", meta.name()).into(),
            None => meta.name().into(),
        };
        let row = self.shared.options.spans_table.as_ref().map(|_| {
            let mut row = SpanRow {
                name: meta.name(),
                target: meta.target(),
                level: *meta.level(),
                start: now_nanos(),
                parent,
                fields: Vec::new(),
            };
            attrs.record(&mut row);
            Box::new(SpanTiming {
                row,
                created: Instant::now(),
                depth: 0,
                entered: None,
                busy: Duration::ZERO,
            })
        });
        // `replace`, not `insert`: a second layer of this kind on the same registry
        // shares the data (the latest layer's) rather than panicking.
        span.extensions_mut().replace(SpanData { path, row });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.shared.options.spans_table.is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        // Recorded with no lock held: a value's `Debug` may record events in this span.
        let mut recorded = SpanRow::fields_only();
        values.record(&mut recorded);
        if let Some(SpanData { row: Some(t), .. }) = span.extensions_mut().get_mut() {
            t.row.merge(recorded);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanData { row: Some(t), .. }) = span.extensions_mut().get_mut()
        {
            if t.depth == 0 {
                t.entered = Some(Instant::now());
            }
            t.depth += 1;
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanData { row: Some(t), .. }) = span.extensions_mut().get_mut()
        {
            t.depth = t.depth.saturating_sub(1);
            if t.depth == 0
                && let Some(entered) = t.entered.take()
            {
                t.busy += entered.elapsed();
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(SpanData { row: Some(t), .. }) = span.extensions_mut().remove() else {
            return;
        };
        if is_own(t.row.target) {
            return;
        }
        let duration = t.created.elapsed().as_nanos();
        let busy = t.busy.as_nanos();
        let (duration, busy) = (
            u64::try_from(duration).unwrap_or(u64::MAX),
            u64::try_from(busy).unwrap_or(u64::MAX),
        );
        self.shared
            .capture(|shard| shard.push_span(&t.row, duration, busy));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if is_own(meta.target()) {
            return;
        }
        let spans = ctx.event_span(event).and_then(|s| {
            s.extensions()
                .get::<SpanData>()
                .map(|d| Arc::clone(&d.path))
        });
        let time = now_nanos();
        self.shared.capture(|shard| {
            shard.push_event(time, *meta.level(), meta.target(), spans, |v| {
                event.record(v)
            });
        });
    }
}
