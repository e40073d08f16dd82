//! What recording costs the calling thread, through the tracing layer (an `info!` event
//! with two fields) and the metrics recorder (a `counter!` increment with a label, and a
//! `histogram!` record): each of 200,000 calls is timed, and the distribution printed.
//!
//! `cargo run --release -p sextant-ingest --example facade_overhead [calls]`

use std::sync::Arc;
use std::time::Instant;

use sextant_engine::Config;
use sextant_ingest::{metrics_recorder, tracing_layer};
use tracing_subscriber::layer::SubscriberExt;

fn print(what: &str, mut nanos: Vec<u64>) {
    nanos.sort_unstable();
    let at = |q: f64| nanos[((nanos.len() as f64 * q) as usize).min(nanos.len() - 1)];
    println!(
        "{what:<34} p50 {:>5} ns  p90 {:>5}  p99 {:>5}  p99.9 {:>6}  max {:>8}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

fn time(calls: usize, mut f: impl FnMut(usize)) -> Vec<u64> {
    (0..calls)
        .map(|i| {
            let started = Instant::now();
            f(i);
            started.elapsed().as_nanos() as u64
        })
        .collect()
}

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let engine = Arc::new(
        Config::new(dir.path())
            .open()
            .expect("opening the database"),
    );
    println!("{calls} calls each, on the calling thread:");

    let (layer, writer) = tracing_layer::layer(Arc::clone(&engine), Default::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    let nanos = tracing::subscriber::with_default(subscriber, || {
        time(
            calls,
            |i| tracing::info!(target: "app::checkout", order = i as u64, gateway = "acme", "payment accepted"),
        )
    });
    writer.flush().expect("the writer thread runs");
    print("tracing info! with 2 fields", nanos);
    println!(
        "  written {}, dropped (buffer full) {}",
        writer.written(),
        writer.dropped()
    );

    let (recorder, flusher) = metrics_recorder::recorder(Arc::clone(&engine), Default::default());
    let (counter, histogram) = metrics::with_local_recorder(&recorder, || {
        let counter = time(calls, |_| {
            metrics::counter!("http.requests", "route" => "/pay").increment(1)
        });
        let histogram = time(calls, |i| {
            metrics::histogram!("http.latency_ms", "route" => "/pay").record(i as f64)
        });
        (counter, histogram)
    });
    flusher.flush().expect("writing the metrics");
    print("metrics counter! increment, 1 label", counter);
    print("metrics histogram! record, 1 label", histogram);
}
