//! What recording a log event through the tracing layer costs the calling thread: each of
//! 200,000 `info!` events with two fields is timed, and the distribution printed.
//!
//! `cargo run --release -p sextant-ingest --example tracing_overhead [events]`

use std::sync::Arc;
use std::time::Instant;

use sextant_engine::Config;
use sextant_ingest::tracing_layer::{self, Options};
use tracing_subscriber::layer::SubscriberExt;

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let engine = Arc::new(
        Config::new(dir.path())
            .open()
            .expect("opening the database"),
    );
    let (layer, writer) = tracing_layer::layer(Arc::clone(&engine), Options::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    let mut nanos = Vec::with_capacity(events);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..events {
            let started = Instant::now();
            tracing::info!(target: "app::checkout", order = i as u64, gateway = "acme", "payment accepted");
            nanos.push(started.elapsed().as_nanos() as u64);
        }
    });
    writer.flush().expect("the writer thread runs");
    nanos.sort_unstable();
    let at = |q: f64| nanos[((nanos.len() as f64 * q) as usize).min(nanos.len() - 1)];
    println!("tracing layer, {events} events, calling thread, ns per event:");
    for (name, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("max", 1.0),
    ] {
        println!("  {name:>5}: {}", at(q));
    }
    println!(
        "written {}, dropped (buffer full) {}, refused {}",
        writer.written(),
        writer.dropped(),
        writer.refused()
    );
}
