//! Telemetry into Sextant: parsers for the ways telemetry arrives, each producing the
//! engine's write batches ([`TableBatch`](sextant_engine::TableBatch)es, built column by
//! column) for [`Engine::write_batches`](sextant_engine::Engine::write_batches).
//!
//! | module | input | tables |
//! |---|---|---|
//! | [`line_protocol`] | InfluxDB line protocol (and a writer back to it) | metric tables, one per measurement |
//! | [`jsonl`] | JSON lines of logs and events (pino, bunyan, structlog, zap, slog, logrus, ...) | event tables with a `level` column, `logs` by default |
//! | [`remote_write`] | Prometheus remote write 1.0 (snappy protobuf) | metric tables, one per metric name, labels as tags, field `value` |
//! | [`statsd`] | StatsD with DogStatsD tags, aggregated per flush interval | metric tables, one per metric name, laid out as Telegraf does |
//! | `metrics_recorder` (feature `metrics`, on by default) | the application's own `metrics` counters, gauges and histograms, in process | as [`statsd`] |
//! | `tracing_layer` (feature `tracing`, on by default) | the application's own `tracing` events (and closed spans, if asked), in process, written off the calling thread | event tables, `logs` by default (and `spans`) |
//!
//! Parsers never panic on any input. A bad line is rejected alone with its 1-based number
//! and a sentence saying why, and the good lines of the same request are kept, as
//! InfluxDB does ([`Outcome`]). A line whose types conflict with the stored table is one
//! of those bad lines: parsers look stored schemas up through [`Schemas`], which the
//! engine's [`Snapshot`](sextant_engine::Snapshot) implements.
//!
//! ```
//! use sextant_engine::{Config, ScanRequest};
//! use sextant_ingest::line_protocol::{self, Options, Precision};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let engine = Config::new(dir.path()).open()?;
//! let request = b"\
//! cpu,host=web-1 usage_user=12.5,cores=8i 1700000000
//! cpu,host=web-2 usage_user=80.25 1700000000
//! #comment: a line with a bad value follows
//! cpu,host=web-3 usage_user=high 1700000000
//! mem,host=web-1 free=1024u,swapping=false 1700000000
//! ";
//! let now = 1_700_000_001_000_000_000; // for lines without a timestamp
//! let options = Options::default().precision(Precision::Seconds);
//! let outcome = line_protocol::parse(request, &options, now, &engine.snapshot())?;
//! assert_eq!(outcome.rows, 3);
//! assert_eq!(outcome.rejected[0].line, 4);
//! engine.write_batches(outcome.batches)?;
//!
//! let rows: usize = engine
//!     .snapshot()
//!     .scan(&ScanRequest::new("cpu"))?
//!     .map(|batch| batch.map(|b| b.num_rows()))
//!     .sum::<sextant_engine::Result<usize>>()?;
//! assert_eq!(rows, 2);
//! # Ok(()) }
//! ```

mod columns;
pub mod jsonl;
pub mod line_protocol;
#[cfg(feature = "metrics")]
pub mod metrics_recorder;
mod outcome;
pub mod remote_write;
mod schemas;
pub mod statsd;
#[cfg(feature = "tracing")]
pub mod tracing_layer;

pub use outcome::{Outcome, Rejected};
pub use schemas::{NoSchemas, Schemas};
