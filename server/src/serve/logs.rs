//! The server's own log: its events (warnings and errors of the listeners, the telemetry
//! writer) on standard error, and as rows of the event table `sextant_logs` (service
//! `sextant`), where they can be queried beside everything else.

use std::sync::Arc;

use sextant_engine::Engine;
use sextant_ingest::tracing_layer::{self, LogWriter, Options};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer as _, fmt};

/// The table the server's log goes to.
pub const TABLE: &str = "sextant_logs";

/// Sends the process's `tracing` events at `info` and above to standard error and to
/// [`TABLE`]. The returned writer's drop writes what is left; drop it before closing the
/// database. Does nothing but return the writer when a subscriber is already set.
pub fn install(engine: Arc<Engine>) -> LogWriter {
    let (layer, writer) =
        tracing_layer::layer(engine, Options::default().table(TABLE).service("sextant"));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry()
        .with(stderr)
        .with(layer.with_filter(LevelFilter::INFO));
    let _ = tracing::subscriber::set_global_default(subscriber);
    writer
}
