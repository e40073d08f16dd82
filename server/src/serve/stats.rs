//! The server's own counters, shown at `/metrics` in Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sextant_engine::{Engine, Point};

/// Where telemetry arrives from: a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Influx line protocol over HTTP.
    LineProtocol,
    /// Prometheus remote write over HTTP.
    RemoteWrite,
    /// JSON lines over HTTP.
    JsonLines,
    /// StatsD over UDP.
    Statsd,
}

impl Source {
    const ALL: [Source; 4] = [
        Source::LineProtocol,
        Source::RemoteWrite,
        Source::JsonLines,
        Source::Statsd,
    ];

    fn label(self) -> &'static str {
        match self {
            Source::LineProtocol => "line_protocol",
            Source::RemoteWrite => "remote_write",
            Source::JsonLines => "json_lines",
            Source::Statsd => "statsd",
        }
    }
}

#[derive(Debug, Default)]
struct PerProtocol {
    requests: AtomicU64,
    rows: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

/// Counters of what the server received, wrote, refused and answered.
#[derive(Debug, Default)]
pub struct Stats {
    protocols: [PerProtocol; 4],
    statsd_metrics: AtomicU64,
    statsd_lost: AtomicU64,
    queries: AtomicU64,
    query_errors: AtomicU64,
    query_micros: AtomicU64,
    unauthorized: AtomicU64,
}

impl Stats {
    fn of(&self, source: Source) -> &PerProtocol {
        &self.protocols[source as usize]
    }

    /// A request (an HTTP body, a UDP packet) from `source` was received.
    pub fn request(&self, source: Source) {
        self.of(source).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Rows from `source` were written and acknowledged.
    pub fn written(&self, source: Source, rows: usize) {
        self.of(source)
            .rows
            .fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Lines from `source` were rejected as bad input.
    pub fn rejected(&self, source: Source, lines: usize) {
        self.of(source)
            .rejected
            .fetch_add(lines as u64, Ordering::Relaxed);
    }

    /// A request from `source` failed whole (refused, or the write failed).
    pub fn failed(&self, source: Source) {
        self.of(source).failed.fetch_add(1, Ordering::Relaxed);
    }

    /// StatsD metrics (lines) were accepted into the aggregator.
    pub fn statsd_metrics(&self, n: usize) {
        self.statsd_metrics.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// StatsD rows of a flush could not be written.
    pub fn statsd_lost(&self, rows: usize) {
        self.statsd_lost.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// A query ran, in `took`, and failed or not.
    pub fn query(&self, took: Duration, failed: bool) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.query_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if failed {
            self.query_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request without the token was refused.
    pub fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as rows of the server's own tables, stamped `time`: `sextant_ingest`
    /// (tag `protocol`; fields `requests`, `rows`, `rejected_lines`, `failed_requests`)
    /// and `sextant_queries` (`queries`, `errors`, `seconds`, `unauthorized_requests`,
    /// `statsd_metrics`, `statsd_lost_rows`). Counters count from the server's start, as
    /// Prometheus counters do.
    pub fn points(&self, time: i64) -> Vec<Point> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut points: Vec<Point> = Source::ALL
            .iter()
            .map(|&source| {
                let p = self.of(source);
                Point::metric("sextant_ingest")
                    .tag("protocol", source.label())
                    .field("requests", load(&p.requests))
                    .field("rows", load(&p.rows))
                    .field("rejected_lines", load(&p.rejected))
                    .field("failed_requests", load(&p.failed))
                    .time(time)
            })
            .collect();
        points.push(
            Point::metric("sextant_queries")
                .field("queries", load(&self.queries))
                .field("errors", load(&self.query_errors))
                .field("seconds", load(&self.query_micros) as f64 / 1e6)
                .field("unauthorized_requests", load(&self.unauthorized))
                .field("statsd_metrics", load(&self.statsd_metrics))
                .field("statsd_lost_rows", load(&self.statsd_lost))
                .time(time),
        );
        points
    }

    /// The counters in Prometheus' text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        type Field = fn(&PerProtocol) -> &AtomicU64;
        let families: [(&str, &str, Field); 4] = [
            (
                "sextant_ingest_requests_total",
                "Requests (HTTP bodies, UDP packets) received.",
                |p| &p.requests,
            ),
            (
                "sextant_ingest_rows_total",
                "Rows written and acknowledged.",
                |p| &p.rows,
            ),
            (
                "sextant_ingest_rejected_lines_total",
                "Lines rejected as bad input (the request's other lines were kept).",
                |p| &p.rejected,
            ),
            (
                "sextant_ingest_failed_requests_total",
                "Requests refused or failed whole.",
                |p| &p.failed,
            ),
        ];
        for (name, help, field) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for p in Source::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{protocol=\"{}\"}} {}",
                    p.label(),
                    load(field(self.of(p)))
                );
            }
        }
        let single = [
            (
                "sextant_statsd_metrics_total",
                "StatsD metrics accepted into the current interval.",
                load(&self.statsd_metrics),
            ),
            (
                "sextant_statsd_lost_rows_total",
                "StatsD rows of a flush the database refused.",
                load(&self.statsd_lost),
            ),
            (
                "sextant_queries_total",
                "SQL queries run.",
                load(&self.queries),
            ),
            (
                "sextant_query_errors_total",
                "SQL queries that failed.",
                load(&self.query_errors),
            ),
            (
                "sextant_unauthorized_requests_total",
                "HTTP requests refused for a missing or wrong token.",
                load(&self.unauthorized),
            ),
        ];
        for (name, help, value) in single {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sextant_query_seconds_total Time spent running SQL queries.\n# TYPE sextant_query_seconds_total counter\nsextant_query_seconds_total {}",
            load(&self.query_micros) as f64 / 1e6
        );
        out
    }
}

/// The storage's figures in Prometheus' text format: flush and compaction work, memory
/// against the budget, and each table's live segments by compaction level.
pub fn storage_metrics(engine: &Engine) -> String {
    let mut out = String::new();
    let c = engine.compaction_stats();
    let counters = [
        (
            "sextant_compactions_total",
            "Merges of segments done.",
            c.compactions as f64,
        ),
        (
            "sextant_compaction_segments_merged_total",
            "Segments merged away.",
            c.segments_merged as f64,
        ),
        (
            "sextant_flushed_bytes_total",
            "Bytes of segment files written by flushes.",
            c.bytes_flushed as f64,
        ),
        (
            "sextant_compaction_read_bytes_total",
            "Bytes of segment files read by compaction.",
            c.bytes_read as f64,
        ),
        (
            "sextant_compaction_written_bytes_total",
            "Bytes of segment files written by compaction.",
            c.bytes_written as f64,
        ),
        (
            "sextant_compaction_seconds_total",
            "Time spent merging.",
            c.busy.as_secs_f64(),
        ),
        (
            "sextant_compactions_deferred_total",
            "Background merges put off because the memory budget had no room for them.",
            c.deferred as f64,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let mut gauges = vec![
        (
            "sextant_write_amplification",
            "Bytes written to segment files per byte flushed.",
            c.write_amplification(),
        ),
        (
            "sextant_compaction_behind_seconds",
            "How long the background compactor has been merging without catching up.",
            c.behind.as_secs_f64(),
        ),
        (
            "sextant_memory_rows_bytes",
            "Bytes of rows held in memory, not yet in segments.",
            engine.memory_used() as f64,
        ),
        (
            "sextant_memory_reserved_bytes",
            "Bytes of the memory budget reserved by queries, compactions and log buffers.",
            engine.memory_reserved() as f64,
        ),
    ];
    if let Some(budget) = engine.memory_budget() {
        gauges.push((
            "sextant_memory_budget_bytes",
            "The memory budget.",
            budget as f64,
        ));
    }
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    // One family's samples together, as the text format asks.
    let (mut counts, mut sizes) = (String::new(), String::new());
    let snapshot = engine.snapshot();
    for table in snapshot.tables() {
        let Ok(segments) = engine.segments(table) else {
            continue;
        };
        let mut by_level: std::collections::BTreeMap<u8, (u64, u64)> = Default::default();
        for s in segments {
            let e = by_level.entry(s.level).or_default();
            e.0 += 1;
            e.1 += s.bytes;
        }
        // Label values escape backslashes, quotes and newlines.
        let label = table
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        for (level, (count, bytes)) in by_level {
            let labels = format!("{{table=\"{label}\",level=\"{level}\"}}");
            let _ = writeln!(counts, "sextant_segments{labels} {count}");
            let _ = writeln!(sizes, "sextant_segment_bytes{labels} {bytes}");
        }
    }
    let _ = write!(
        out,
        "# HELP sextant_segments Live segments, by table and compaction level.\n# TYPE sextant_segments gauge\n{counts}"
    );
    let _ = write!(
        out,
        "# HELP sextant_segment_bytes Bytes of live segments, by table and compaction level.\n# TYPE sextant_segment_bytes gauge\n{sizes}"
    );
    out
}
