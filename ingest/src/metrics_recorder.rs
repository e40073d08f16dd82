//! The `metrics` crate's counters, gauges and histograms into Sextant: a
//! [`metrics::Recorder`] whose values are aggregated per interval exactly as StatsD
//! metrics are ([`crate::statsd`]), so a counter recorded here and one sent over StatsD
//! land in the same tables with the same columns.
//!
//! ```
//! use std::sync::Arc;
//! use sextant_engine::{Config, ScanRequest};
//! use sextant_ingest::metrics_recorder::{self, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let engine = Arc::new(Config::new(dir.path()).open()?);
//! let (recorder, flusher) = metrics_recorder::recorder(Arc::clone(&engine), Options::default());
//! // In a program: metrics::set_global_recorder(recorder)?; here, for this thread only:
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::counter!("http.requests", "route" => "/pay").increment(3);
//!     metrics::histogram!("http.latency_ms").record(12.5);
//! });
//! flusher.flush()?; // aggregates and writes now (otherwise every 10 s)
//! let rows: usize = engine.snapshot().scan(&ScanRequest::new("http_requests"))?
//!     .map(|b| b.map(|b| b.num_rows())).sum::<sextant_engine::Result<usize>>()?;
//! assert_eq!(rows, 1);
//! # Ok(()) }
//! ```
//!
//! # Rows
//!
//! Every [`Options::statsd`]`.flush_interval` (10 s) the flusher thread reads each metric
//! and hands it to a StatsD [`Aggregator`]: a counter's increase since the last flush as a
//! counter (`c`; nothing when it did not increase), a gauge's value as a gauge (`g`,
//! every interval), a histogram's samples since the last flush as a histogram (`h`).
//! Labels are the tags; in names, tag keys and tag values, the characters StatsD gives a
//! meaning (`:|@#,` and line ends) become `_`. See [`crate::statsd`] for the tables and
//! fields that come out (`value` and `rate` for counters, `value` for gauges, `count`,
//! `sum`, `mean`, percentiles ... for histograms, and the `metric_type` tag).
//!
//! `describe_*` calls are kept ([`MetricsFlusher::descriptions`]) and written once each to
//! the event table `metric_descriptions` (tags `metric` and `kind`, fields `unit` and
//! `description`).
//!
//! # Cost on the calling thread
//!
//! Recording goes to metrics-util's registry: an atomic add for a counter, an atomic
//! store for a gauge, a push onto a lock-free bucket for a histogram; the first use of a
//! metric (name and labels) registers it, which takes a lock. Nothing is written on the
//! calling thread.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use sextant_engine::{Engine, Point};

use crate::statsd::{self, Aggregator};

/// The event table `describe_*` calls are written to.
pub const DESCRIPTIONS_TABLE: &str = "metric_descriptions";

/// How the recorder aggregates.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The aggregation, as for StatsD (flush interval, percentiles, reservoir size ...).
    pub statsd: statsd::Options,
}

/// Why [`MetricsFlusher::flush`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// The engine refused the write.
    #[error("writing metrics: {0}")]
    Engine(#[from] sextant_engine::Error),
}

/// A `describe_*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The metric's name.
    pub metric: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its unit, if given (as the `metrics` crate names units: `count`, `milliseconds` ...).
    pub unit: Option<&'static str>,
    pub description: String,
}

struct Shared {
    registry: Registry<Key, AtomicStorage>,
    engine: Arc<Engine>,
    state: Mutex<State>,
}

/// What the flusher keeps between flushes.
struct State {
    aggregator: Aggregator,
    /// Each counter's value at the last flush.
    counted: HashMap<Key, u64>,
    descriptions: Vec<Description>,
    /// Descriptions not yet written.
    unwritten: usize,
    /// What [`MetricsFlusher::rejected`] counts.
    rejected: u64,
}

/// The recorder: install it with `metrics::set_global_recorder`.
pub struct SextantRecorder {
    shared: Arc<Shared>,
}

impl fmt::Debug for SextantRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SextantRecorder").finish_non_exhaustive()
    }
}

/// The flusher thread's handle: flush now, descriptions, and a last flush on drop.
pub struct MetricsFlusher {
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for MetricsFlusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsFlusher").finish_non_exhaustive()
    }
}

/// A recorder writing into `engine`, and the handle of the thread that flushes it every
/// interval.
pub fn recorder(engine: Arc<Engine>, options: Options) -> (SextantRecorder, MetricsFlusher) {
    let now = now_nanos();
    let interval = options.statsd.flush_interval;
    let shared = Arc::new(Shared {
        registry: Registry::atomic(),
        engine,
        state: Mutex::new(State {
            aggregator: Aggregator::new(options.statsd, now),
            counted: HashMap::new(),
            descriptions: Vec::new(),
            unwritten: 0,
            rejected: 0,
        }),
    });
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("sextant-metrics".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            // A failed write is retried with the next interval's.
                            let _ = shared.flush();
                        }
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .expect("spawning the metrics flusher thread")
    };
    (
        SextantRecorder {
            shared: Arc::clone(&shared),
        },
        MetricsFlusher {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        },
    )
}

impl MetricsFlusher {
    /// Aggregates what was recorded since the last flush and writes it now.
    pub fn flush(&self) -> Result<(), FlushError> {
        self.shared.flush()
    }

    /// Every `describe_*` call so far.
    pub fn descriptions(&self) -> Vec<Description> {
        self.shared.lock().descriptions.clone()
    }

    /// StatsD lines the aggregator rejected, and tables' rows of a flush the engine
    /// refused (one per table and flush), so far: a metric whose table has a column of
    /// another type, say.
    pub fn rejected(&self) -> u64 {
        self.shared.lock().rejected
    }
}

impl Drop for MetricsFlusher {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = self.shared.flush();
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `text` with the characters StatsD gives a meaning replaced by `_`.
fn clean(text: &str) -> String {
    text.replace([':', '|', '@', '#', ',', '\n', '\r'], "_")
}

/// `name` and `|#tags` of a StatsD line for `key`.
fn line_parts(key: &Key) -> (String, String) {
    let tags: Vec<String> = key
        .labels()
        .map(|l| format!("{}:{}", clean(l.key()), clean(l.value())))
        .collect();
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!("|#{}", tags.join(","))
    };
    (clean(key.name()), tags)
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush(&self) -> Result<(), FlushError> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut lines = String::new();
        self.registry.visit_counters(|key, counter| {
            let value = counter.load(Ordering::Relaxed);
            let last = state.counted.insert(key.clone(), value).unwrap_or(0);
            // A counter set lower (`absolute`) starts over.
            let increase = if value >= last { value - last } else { value };
            if increase > 0 {
                let (name, tags) = line_parts(key);
                lines.push_str(&format!("{name}:{increase}|c{tags}\n"));
            }
        });
        self.registry.visit_gauges(|key, gauge| {
            let value = f64::from_bits(gauge.load(Ordering::Relaxed));
            if value.is_finite() {
                let (name, tags) = line_parts(key);
                // StatsD reads a signed gauge as a change: set 0 first.
                if value < 0.0 {
                    lines.push_str(&format!("{name}:0|g{tags}\n"));
                }
                lines.push_str(&format!("{name}:{value}|g{tags}\n"));
            }
        });
        self.registry.visit_histograms(|key, bucket| {
            let (name, tags) = line_parts(key);
            bucket.clear_with(|values| {
                // Packed values (DogStatsD), a few hundred to a line.
                for chunk in values.chunks(256) {
                    let packed: Vec<String> = chunk
                        .iter()
                        .filter(|v| v.is_finite())
                        .map(|v| v.to_string())
                        .collect();
                    if !packed.is_empty() {
                        lines.push_str(&format!("{name}:{}|h{tags}\n", packed.join(":")));
                    }
                }
            });
        });
        let received = state.aggregator.ingest(lines.as_bytes());
        state.rejected += received.rejected_lines as u64;
        let now = now_nanos();
        let snapshot = self.engine.snapshot();
        let outcome = state.aggregator.flush(now, &snapshot);
        state.rejected += outcome.rejected_lines as u64;
        let mut batches = outcome.batches;
        let mut points: Vec<Point> = Vec::new();
        for d in &state.descriptions[state.descriptions.len() - state.unwritten..] {
            let mut p = Point::event(DESCRIPTIONS_TABLE)
                .tag("metric", d.metric.as_str())
                .tag("kind", d.kind)
                .field("description", d.description.as_str())
                .time(now);
            if let Some(unit) = d.unit {
                p = p.field("unit", unit);
            }
            points.push(p);
        }
        if !points.is_empty() {
            self.engine.write_points(&points)?;
            state.unwritten = 0;
        }
        if batches.is_empty() {
            return Ok(());
        }
        if self.engine.write_batches(batches.clone()).is_err() {
            // One table's conflict must not lose the others: table by table.
            for batch in batches.drain(..) {
                if self.engine.write_batches(vec![batch]).is_err() {
                    state.rejected += 1;
                }
            }
        }
        Ok(())
    }

    fn describe(&self, key: KeyName, kind: &'static str, unit: Option<Unit>, text: SharedString) {
        let mut state = self.lock();
        state.descriptions.push(Description {
            metric: key.as_str().to_string(),
            kind,
            unit: unit.map(|u| u.as_str()),
            description: text.to_string(),
        });
        state.unwritten += 1;
    }
}

impl Recorder for SextantRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.shared.describe(key, "counter", unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.shared.describe(key, "gauge", unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.shared.describe(key, "histogram", unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        self.shared
            .registry
            .get_or_create_counter(key, |c| Counter::from_arc(Arc::clone(c)))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        self.shared
            .registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(Arc::clone(g)))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        self.shared
            .registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(Arc::clone(h)))
    }
}
