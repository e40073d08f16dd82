//! The metrics recorder: counters, gauges and histograms recorded through the `metrics`
//! macros land, per flush, in the tables and columns StatsD metrics of the same name
//! would, and descriptions are kept.
#![cfg(feature = "metrics")]

use std::sync::Arc;

use arrow_array::RecordBatch;
use sextant_engine::{Config, Engine, ScanRequest};
use sextant_ingest::metrics_recorder::{self, Description, Options};

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    Arc::new(Config::new(dir).background_flush(false).open().unwrap())
}

fn scan(e: &Engine, table: &str) -> Vec<RecordBatch> {
    e.snapshot()
        .scan(&ScanRequest::new(table))
        .unwrap()
        .collect::<sextant_engine::Result<Vec<_>>>()
        .unwrap()
}

/// The values of `column` in every row, as text (null: "-").
fn column(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let a = b
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}"));
        let texts = arrow_cast::display::ArrayFormatter::try_new(
            a.as_ref(),
            &arrow_cast::display::FormatOptions::default().with_null("-"),
        )
        .unwrap();
        out.extend((0..a.len()).map(|i| texts.value(i).to_string()));
    }
    out
}

#[test]
fn counters_gauges_and_histograms_are_aggregated_per_flush() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (recorder, flusher) = metrics_recorder::recorder(Arc::clone(&e), Options::default());
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("http.requests", "route" => "/pay").increment(3);
        metrics::counter!("http.requests", "route" => "/pay").increment(2);
        metrics::counter!("http.requests", "route" => "/home|x").increment(1);
        metrics::gauge!("queue.depth").set(-5.0);
        for v in 1..=100 {
            metrics::histogram!("http.latency_ms", "route" => "/pay").record(v as f64);
        }
    });
    flusher.flush().unwrap();
    // The second interval counts only what came since the first flush.
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("http.requests", "route" => "/pay").increment(4);
    });
    flusher.flush().unwrap();

    let b = scan(&e, "http_requests");
    assert_eq!(column(&b, "route"), ["/home_x", "/pay", "/pay"]);
    assert_eq!(column(&b, "metric_type"), ["counter"; 3]);
    assert_eq!(column(&b, "value"), ["1", "5", "4"]);

    let b = scan(&e, "queue_depth");
    assert_eq!(column(&b, "metric_type"), ["gauge", "gauge"]);
    assert_eq!(
        column(&b, "value"),
        ["-5.0", "-5.0"],
        "gauges every interval"
    );

    let b = scan(&e, "http_latency_ms");
    assert_eq!(column(&b, "metric_type"), ["histogram"]);
    assert_eq!(column(&b, "count"), ["100"]);
    assert_eq!(column(&b, "sum"), ["5050.0"]);
    assert_eq!(column(&b, "lower"), ["1.0"]);
    assert_eq!(column(&b, "upper"), ["100.0"]);
    assert_eq!(column(&b, "99_percentile"), ["100.0"]);
    assert_eq!(flusher.rejected(), 0);
}

#[test]
fn descriptions_are_kept_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (recorder, flusher) = metrics_recorder::recorder(Arc::clone(&e), Options::default());
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_histogram!(
            "http.latency_ms",
            metrics::Unit::Milliseconds,
            "time to answer a request"
        );
        metrics::describe_counter!("signups", "accounts created");
    });
    assert_eq!(
        flusher.descriptions(),
        [
            Description {
                metric: "http.latency_ms".into(),
                kind: "histogram",
                unit: Some("milliseconds"),
                description: "time to answer a request".into(),
            },
            Description {
                metric: "signups".into(),
                kind: "counter",
                unit: None,
                description: "accounts created".into(),
            },
        ]
    );
    flusher.flush().unwrap();
    flusher.flush().unwrap();
    let b = scan(&e, metrics_recorder::DESCRIPTIONS_TABLE);
    // By series: (kind, metric).
    assert_eq!(column(&b, "metric"), ["signups", "http.latency_ms"]);
    assert_eq!(column(&b, "unit"), ["-", "milliseconds"]);
}

#[test]
fn a_recorded_counter_and_a_statsd_counter_share_one_table_layout() {
    use sextant_ingest::statsd::Aggregator;
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (recorder, flusher) = metrics_recorder::recorder(Arc::clone(&e), Options::default());
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("jobs.done", "queue" => "mail").increment(7);
    });
    flusher.flush().unwrap();
    let mut statsd = Aggregator::new(Default::default(), 0);
    statsd.ingest(b"jobs.done:2|c|#queue:mail");
    let outcome = statsd.flush(10_000_000_000, &e.snapshot());
    assert_eq!(outcome.rejected_lines, 0, "{:?}", outcome.rejected);
    e.write_batches(outcome.batches).unwrap();
    let b = scan(&e, "jobs_done");
    assert_eq!(column(&b, "value"), ["2", "7"]);
}
