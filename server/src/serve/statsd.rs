//! StatsD over UDP: packets into an aggregator on a thread of its own, written to the
//! database at every flush interval and at shutdown.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sextant_engine::Error as EngineError;
use sextant_ingest::Outcome;
use sextant_ingest::statsd::{Aggregator, Error as StatsdError, Options};
use sextant_query::Database;

use super::stats::{Source, Stats};
use crate::{Error, Result};

/// The largest UDP payload.
const MAX_PACKET: usize = 65_535;
/// How long a receive waits before the thread looks at the clock and the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// The receive buffer asked of the kernel.
const RECEIVE_BUFFER: usize = 16 << 20;
/// How many times a flush refused for back-pressure is retried before its rows are lost.
const FLUSH_RETRIES: u32 = 20;

/// The StatsD listener's thread.
#[derive(Debug)]
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` and starts receiving; prints the address bound.
    pub fn start(
        addr: SocketAddr,
        db: Arc<Database>,
        stats: Arc<Stats>,
        flush_interval: Duration,
    ) -> Result<Listener> {
        let bind = |e| Error::Usage(format!("cannot listen for StatsD on UDP {addr}: {e}"));
        let socket = bind_udp(addr).map_err(bind)?;
        socket.set_read_timeout(Some(POLL)).map_err(bind)?;
        let local = socket.local_addr().map_err(bind)?;
        super::say!("sextant: StatsD listening on udp://{local}");
        let stop = Arc::new(AtomicBool::new(false));
        let options = Options {
            flush_interval,
            ..Options::default()
        };
        let flag = Arc::clone(&stop);
        // Intervals are written on a thread of their own, so that an fsync or the
        // database pushing back never stops the receiving.
        let (intervals, to_write) = std::sync::mpsc::sync_channel::<Outcome<StatsdError>>(4);
        let writer_stats = Arc::clone(&stats);
        let reader_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("sextant-statsd-write".into())
            .spawn(move || {
                for outcome in to_write {
                    write(outcome, &db, &writer_stats);
                }
            })
            .map_err(|e| Error::Usage(format!("cannot start the StatsD thread: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("sextant-statsd".into())
            .spawn(move || {
                let aggregator = Aggregator::new(options, now());
                receive(&socket, aggregator, &reader_db, &intervals, &stats, &flag);
                drop(intervals);
                let _ = writer.join();
            })
            .map_err(|e| Error::Usage(format!("cannot start the StatsD thread: {e}")))?;
        Ok(Listener { stop, thread })
    }

    /// Stops receiving and writes the current interval.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| Error::Usage("the StatsD thread panicked".into()))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The UDP socket, with a receive buffer large enough for a burst of about a second at
/// 200,000 metrics/s (the kernel may cap it at `net.core.rmem_max`).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn receive(
    socket: &UdpSocket,
    mut aggregator: Aggregator,
    db: &Database,
    intervals: &SyncSender<Outcome<StatsdError>>,
    stats: &Stats,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                stats.request(Source::Statsd);
                let received = aggregator.ingest(&buf[..n]);
                stats.statsd_metrics(received.metrics);
                stats.rejected(Source::Statsd, received.rejected_lines);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => tracing::warn!("receiving StatsD: {e}"),
        }
        let stopping = stop.load(Ordering::Relaxed);
        let now = now();
        if stopping || aggregator.flush_due(now) {
            let outcome = aggregator.flush(now, &db.engine().snapshot());
            // Blocks only when the writer is four intervals behind.
            let _ = intervals.send(outcome);
        }
        if stopping {
            return;
        }
    }
}

/// Writes an interval's rows, retrying while the database pushes back.
fn write(outcome: Outcome<StatsdError>, db: &Database, stats: &Stats) {
    stats.rejected(Source::Statsd, outcome.rejected_lines);
    for r in &outcome.rejected {
        tracing::warn!("StatsD flush: {}", r.error);
    }
    if outcome.batches.is_empty() {
        return;
    }
    let rows = outcome.rows;
    let mut attempt = 0;
    loop {
        match db.engine().write_batches(outcome.batches.clone()) {
            Ok(()) => {
                stats.written(Source::Statsd, rows);
                return;
            }
            Err(EngineError::Backpressure { retry_after, .. }) if attempt < FLUSH_RETRIES => {
                attempt += 1;
                std::thread::sleep(retry_after);
            }
            Err(e) => {
                tracing::error!(rows, "StatsD flush failed: {e}");
                stats.statsd_lost(rows);
                stats.failed(Source::Statsd);
                return;
            }
        }
    }
}
