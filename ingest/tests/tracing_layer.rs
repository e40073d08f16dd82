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
        writer.written() + writer.dropped() + writer.refused() + writer.failed(),
        n + 1,
        "written {}, dropped {}, refused {}, failed {}",
        writer.written(),
        writer.dropped(),
        writer.refused(),
        writer.failed()
    );
    assert_eq!(writer.failed(), 0);
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
        // A field whose type conflicts with its column: the row is kept without it.
        tracing::debug!(i = "text", "step");
    });
    writer.flush().unwrap();
    assert_eq!(
        (writer.written(), writer.dropped(), writer.refused()),
        (2_001, 0, 0)
    );
    let stored: usize = rows(&e, "app_logs").iter().map(|b| b.num_rows()).sum();
    assert_eq!(stored, 2_001);
}

#[test]
fn closed_spans_become_rows_with_their_duration_fields_and_parents() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let options = Options::default().service("api").spans("spans");
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), options);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!(target: "app::http", "request", route = "/pay", status = tracing::field::Empty);
        {
            let _o = outer.enter();
            let inner = tracing::debug_span!(target: "app::db", "query", rows = 3u64);
            let _i = inner.enter();
            std::thread::sleep(std::time::Duration::from_millis(20));
            tracing::info!(target: "app::db", "inside");
        }
        outer.record("status", 200u64);
        // Idle time counts in the duration, not in busy time.
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(outer);
    });
    writer.flush().unwrap();
    let b = rows(&e, "spans");
    // By series (target, service, name), then time.
    assert_eq!(column(&b, "target"), ["app::db", "app::http"]);
    assert_eq!(column(&b, "name"), ["query", "request"]);
    assert_eq!(column(&b, "level"), ["debug", "info"]);
    assert_eq!(column(&b, "spans"), ["request", "-"]);
    assert_eq!(column(&b, "rows"), ["3", "-"]);
    assert_eq!(column(&b, "route"), ["-", "/pay"]);
    assert_eq!(column(&b, "status"), ["-", "200"]);
    assert_eq!(column(&b, "service"), ["api", "api"]);
    let nanos = |c| -> Vec<u64> { column(&b, c).iter().map(|s| s.parse().unwrap()).collect() };
    let (duration, busy) = (nanos("duration_ns"), nanos("busy_ns"));
    assert!(
        duration[0] >= 20_000_000 && busy[0] >= 20_000_000,
        "{duration:?} {busy:?}"
    );
    assert!(duration[1] >= 40_000_000, "{duration:?}");
    assert!(
        busy[1] >= 20_000_000 && busy[1] < duration[1],
        "{busy:?} {duration:?}"
    );
    // The span's start is its row's time: the outer span started first.
    let times: Vec<i64> = b
        .iter()
        .flat_map(|b| {
            let t = b.column_by_name("time").unwrap();
            let t = arrow_cast::cast(t, &arrow_schema::DataType::Int64).unwrap();
            let t = t
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            t.values().to_vec()
        })
        .collect();
    assert!(times[1] <= times[0], "{times:?}");
    assert_eq!(column(&rows(&e, "logs"), "spans"), ["request>query"]);
    assert_eq!((writer.written(), writer.dropped()), (3, 0));
}

#[test]
fn events_of_many_threads_are_all_written_even_after_their_thread_ends() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    // The writer would wait an hour: only the flush writes, after the threads ended.
    let options = Options {
        linger: std::time::Duration::from_secs(3600),
        ..Options::default()
    };
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), options);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..3_000u64 {
                        tracing::info!(target: "app", thread = t, i, "tick");
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    writer.flush().unwrap();
    let stored: usize = rows(&e, "logs").iter().map(|b| b.num_rows()).sum();
    assert_eq!(stored, 12_000);
    assert_eq!(
        (writer.written(), writer.dropped(), writer.refused()),
        (12_000, 0, 0)
    );
}

#[test]
fn odd_field_names_become_column_names_and_reserved_ones_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), Options::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(target: "app", größe = 503u64, http.route = "/pay", level = "loud", "unavailable");
    });
    writer.flush().unwrap();
    let b = rows(&e, "logs");
    assert_eq!(column(&b, "größe"), ["503"]);
    assert_eq!(column(&b, "http.route"), ["/pay"]);
    assert_eq!(column(&b, "level"), ["warn"]);
    assert_eq!(column(&b, "message"), ["unavailable"]);
    assert_eq!(writer.written(), 1);
}

/// A value whose `Debug` logs: the inner event is not recorded (and does not deadlock).
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::error!(target: "app", "from inside Debug");
        f.write_str("chatty")
    }
}

#[test]
fn an_event_recorded_while_recording_is_dropped_not_deadlocked() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), Options::default());
    // A scoped dispatcher does not pass on events recorded while it is dispatching one; a
    // global default may (when no thread has a scoped one), so the layer guards itself.
    // No other test of this file sets a global default.
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::set_global_default(dispatch).unwrap();
    tracing::info!(target: "app", value = ?Chatty, "outer");
    writer.flush().unwrap();
    assert_eq!(column(&rows(&e, "logs"), "value"), ["chatty"]);
    assert_eq!(writer.written(), 1);
    assert!(writer.dropped() <= 1);
}

#[test]
fn events_after_the_writer_stops_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), Options::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "app", "kept");
        drop(writer);
        tracing::info!(target: "app", "after");
    });
    assert_eq!(column(&rows(&e, "logs"), "message"), ["kept"]);
}

#[test]
fn conflicting_field_types_are_converted_when_lossless_and_left_out_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), Options::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "app", n = -3i64, "first");
        tracing::info!(target: "app", n = 5u64, "second");
        tracing::info!(target: "app", n = u64::MAX, "third");
        tracing::info!(target: "app", n = "many", "fourth");
    });
    writer.flush().unwrap();
    let b = rows(&e, "logs");
    assert_eq!(
        column(&b, "message"),
        ["first", "second", "third", "fourth"]
    );
    assert_eq!(column(&b, "n"), ["-3", "5", "-", "-"]);
    assert_eq!(
        (writer.written(), writer.refused(), writer.failed()),
        (4, 0, 0)
    );
}

#[test]
fn a_span_field_whose_debug_logs_in_the_span_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), Options::default().spans("spans"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(target: "app", "work", value = tracing::field::Empty);
        let _in = span.enter();
        span.record("value", tracing::field::debug(&Chatty));
        // The same span entered twice at once: busy time counts once.
        let _again = span.enter();
    });
    writer.flush().unwrap();
    assert_eq!(column(&rows(&e, "spans"), "value"), ["chatty"]);
    assert_eq!(column(&rows(&e, "logs"), "message"), ["from inside Debug"]);
}

#[test]
fn the_buffers_are_reserved_in_the_memory_budget_until_the_writer_stops() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let options = Options {
        buffer: 1000,
        buffer_bytes: 1 << 20,
        ..Options::default()
    };
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), options);
    // The writer's spare buffer, from the start.
    let spare = e.memory_reserved();
    assert!(spare > 1 << 20, "reserved: {spare}");
    let subscriber = tracing_subscriber::registry().with(layer);
    let dispatch = tracing::Dispatch::new(subscriber);
    // This thread records first, so that its buffer is its own: a thread that starts
    // recording later may take the buffer of a thread that has exited, or not, when
    // another test's thread took that thread's slot first (tests run in parallel).
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("first"));
    assert_eq!(e.memory_reserved(), 2 * spare);
    // Three threads recording at once: each alive while the others record, so each has
    // a buffer of its own.
    let all_recorded = Arc::new(std::sync::Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let dispatch = dispatch.clone();
            let all_recorded = Arc::clone(&all_recorded);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    tracing::info!(thread = i, "recorded");
                });
                all_recorded.wait();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // One buffer more for each recording thread, kept through the writer's passes.
    assert_eq!(e.memory_reserved(), 5 * spare);
    writer.flush().unwrap();
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("again"));
    writer.flush().unwrap();
    assert_eq!(e.memory_reserved(), 5 * spare);
    drop(writer);
    assert_eq!(e.memory_reserved(), 0, "given back when the writer stops");
    // A thread recording after that reserves nothing.
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("dropped"));
    assert_eq!(e.memory_reserved(), 0);
}

#[test]
fn a_thread_whose_buffer_the_budget_has_no_room_for_drops_and_counts_its_events() {
    let dir = tempfile::tempdir().unwrap();
    // Room for the writer's spare buffer and one recording thread's, not two.
    let options = Options {
        buffer: 1000,
        buffer_bytes: 1 << 20,
        ..Options::default()
    };
    let probe = {
        let e = engine(&dir.path().join("probe"));
        let (_layer, _writer) = tracing_layer::layer(Arc::clone(&e), options.clone());
        e.memory_reserved()
    };
    let e = Arc::new(
        Config::new(dir.path().join("db"))
            .background_flush(false)
            .memory_budget(2 * probe + probe / 2)
            .open()
            .unwrap(),
    );
    let (layer, writer) = tracing_layer::layer(Arc::clone(&e), options);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let (recorded_tx, recorded) = std::sync::mpsc::channel::<()>();
    let record = |n: usize| {
        let dispatch = dispatch.clone();
        let recorded = recorded_tx.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                for i in 0..n {
                    tracing::info!(i, "recorded");
                }
            });
            recorded.send(()).unwrap();
            // Stay alive (keeping the buffer) until told.
            let _ = rx.recv();
        });
        (t, tx)
    };
    let (first, first_done) = record(5);
    let (second, second_done) = record(5);
    recorded.recv().unwrap();
    recorded.recv().unwrap();
    // One of the two got a buffer; the other's events were dropped.
    writer.flush().unwrap();
    assert_eq!((writer.written(), writer.dropped()), (5, 5));
    assert_eq!(e.memory_reserved(), 2 * probe);
    for (t, done) in [(first, first_done), (second, second_done)] {
        drop(done);
        t.join().unwrap();
    }
    drop(writer);
    assert_eq!(e.memory_reserved(), 0);
}
