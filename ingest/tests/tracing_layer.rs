//! The tracing layer: events become rows with their level, message, target, fields and
//! spans; nothing recorded is lost silently; Sextant's own events are not recorded.
#![cfg(feature = "tracing")]

use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use sextant_engine::{Config, Engine, ScanRequest};
use sextant_ingest::tracing_layer::{self, Options};
use tracing_subscriber::layer::SubscriberExt;

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    Arc::new(Config::new(dir).background_flush(false).open().unwrap())
}

fn rows(e: &Engine, table: &str) -> Vec<RecordBatch> {
    e.snapshot()
        .scan(&ScanRequest::new(table))
        .unwrap()
        .collect::<sextant_engine::Result<Vec<_>>>()
        .unwrap()
}

/// The value of `column` in every row, as text (null: "-").
fn column(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let Some(a) = b.column_by_name(column) else {
            out.extend(std::iter::repeat_n("-".to_string(), b.num_rows()));
            continue;
        };
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
fn events_become_rows_with_level_message_target_fields_and_spans() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), Options::default().service("api"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "app::http", status = 200u64, "served");
        let outer = tracing::info_span!("request", id = 7);
        let _o = outer.enter();
        let inner = tracing::debug_span!("db");
        let _i = inner.enter();
        tracing::warn!(target: "app::db", rows = -3i64, ratio = 0.5, cached = false, "slow query");
        tracing::error!(target: "app::db", fatal = true, "cannot continue");
        // Sextant's own events would write logs while writing logs: not recorded.
        tracing::error!(target: "sextant_engine::flush", "ignored");
    });
    writer.flush().unwrap();
    let b = rows(&e, "logs");
    // Rows come back by series (target, service), then time.
    assert_eq!(column(&b, "target"), ["app::db", "app::db", "app::http"]);
    assert_eq!(column(&b, "level"), ["warn", "fatal", "info"]);
    assert_eq!(
        column(&b, "message"),
        ["slow query", "cannot continue", "served"]
    );
    assert_eq!(column(&b, "service"), ["api", "api", "api"]);
    assert_eq!(column(&b, "spans"), ["request>db", "request>db", "-"]);
    assert_eq!(column(&b, "rows"), ["-3", "-", "-"]);
    assert_eq!(column(&b, "ratio"), ["0.5", "-", "-"]);
    assert_eq!(column(&b, "cached"), ["false", "-", "-"]);
    assert_eq!(column(&b, "status"), ["-", "-", "200"]);
    assert!(b.iter().all(|b| b.column_by_name("fatal").is_none()));
    assert_eq!(
        (writer.written(), writer.dropped(), writer.refused()),
        (3, 0, 0)
    );
}

#[test]
fn every_event_is_written_dropped_or_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let options = Options {
        buffer: 4,
        batch_rows: 2,
        ..Options::default()
    };
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), options);
    let subscriber = tracing_subscriber::registry().with(layer);
    let n = 5_000u64;
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            tracing::info!(target: "app", i, "tick");
        }
        tracing::info!(target: "app", i = "text", "tick");
    });
    writer.flush().unwrap();
    let stored: usize = rows(&e, "logs").iter().map(|b| b.num_rows()).sum();
    assert_eq!(writer.written(), stored as u64);
    assert_eq!(
        writer.written() + writer.dropped() + writer.refused(),
        n + 1,
        "written {}, dropped {}, refused {}",
        writer.written(),
        writer.dropped(),
        writer.refused()
    );
}

#[test]
fn a_blocking_layer_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let options = Options {
        buffer: 2,
        block_when_full: true,
        ..Options::default()
    };
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), options.table("app_logs"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..2_000u64 {
            tracing::debug!(i, "step");
        }
        // A field whose type conflicts with its column: refused, not written, counted.
        tracing::debug!(i = "text", "step");
    });
    writer.flush().unwrap();
    assert_eq!(
        (writer.written(), writer.dropped(), writer.refused()),
        (2_000, 0, 1)
    );
    let stored: usize = rows(&e, "app_logs").iter().map(|b| b.num_rows()).sum();
    assert_eq!(stored, 2_000);
}
