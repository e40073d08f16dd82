//! The protocol benchmark: what the ingestion crate (`sextant-ingest`) costs.
//!
//! - **Line protocol**: the TSBS cpu-only rows of the generator, rendered as line protocol
//!   requests before timing, parsed and written by one thread; beside it, in the same run,
//!   the same rows written through the columnar API (Arrow batches) into a second
//!   database. Rates are rows per second of time inside the parse and write calls.
//! - **StatsD**: packets of a service's usual mix (counters, some sampled; timers; gauges,
//!   some relative; histograms; sets; DogStatsD tags), built before timing, parsed and
//!   aggregated by one thread; metrics per second, and the cost of the flush that turns
//!   the interval's series into rows.
//! - **Facades**: the cost on the calling thread of a `tracing` event through the tracing
//!   layer and of a `metrics` counter increment and histogram record through the
//!   recorder, each call timed, after as many untimed calls (the buffers reach their
//!   working size); percentiles and the distribution.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sextant_engine::{Config, Engine};
use sextant_ingest::line_protocol;
use sextant_ingest::statsd::{Aggregator, Options as StatsdOptions};
use sextant_ingest::{metrics_recorder, tracing_layer};
use tracing_subscriber::layer::SubscriberExt;

use crate::ingest::{WriteOptions, write_workload};
use crate::output::influx;
use crate::workload::cpu::{self, CpuConfig, CpuGenerator};
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ProtocolOptions {
    /// Hosts of the cpu-only rows.
    pub scale: u32,
    /// Days of cpu-only rows.
    pub days: f64,
    /// Seed of the rows and the packets.
    pub seed: u64,
    /// Lines per line protocol request (and rows per columnar write).
    pub lines: usize,
    /// StatsD metrics.
    pub statsd_metrics: usize,
    /// Timed calls per facade.
    pub calls: usize,
    /// Directory of the two databases (emptied first).
    pub dir: PathBuf,
}

/// A rate: how many, in how many seconds.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Rows or metrics.
    pub count: u64,
    /// Seconds.
    pub secs: f64,
}

impl Rate {
    /// Count per second.
    pub fn per_sec(&self) -> f64 {
        self.count as f64 / self.secs.max(1e-9)
    }
}

/// The line protocol figures.
#[derive(Debug, Clone)]
pub struct LineProtocolReport {
    /// Bytes of line protocol.
    pub bytes: u64,
    /// Parse and write, together.
    pub total: Rate,
    /// Parse alone (within `total`).
    pub parse: Rate,
    /// The same rows through the columnar API.
    pub columnar: Rate,
}

/// The StatsD figures.
#[derive(Debug, Clone)]
pub struct StatsdReport {
    /// Packets.
    pub packets: usize,
    /// Bytes of the packets.
    pub bytes: u64,
    /// Parse and aggregate.
    pub ingest: Rate,
    /// Series at the flush.
    pub series: usize,
    /// Seconds of the flush into rows and of their write.
    pub flush_secs: f64,
}

/// One facade call's timings, nanoseconds, sorted.
#[derive(Debug, Clone)]
pub struct CallTimes {
    /// What was called.
    pub what: &'static str,
    /// Each call's nanoseconds, ascending.
    pub nanos: Vec<u64>,
}

impl CallTimes {
    /// The `q` quantile (0 to 1), nanoseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.nanos.len();
        if n == 0 {
            return 0;
        }
        self.nanos[((n as f64 * q) as usize).min(n - 1)]
    }

    /// Calls per bucket of [`BUCKETS_NS`] (the last: longer than every bound).
    pub fn distribution(&self) -> Vec<usize> {
        let mut counts = vec![0; BUCKETS_NS.len() + 1];
        for &n in &self.nanos {
            counts[BUCKETS_NS.partition_point(|&b| b < n)] += 1;
        }
        counts
    }
}

/// Upper bounds of the buckets of [`CallTimes::distribution`], nanoseconds.
pub const BUCKETS_NS: [u64; 8] = [100, 250, 500, 1_000, 2_000, 5_000, 10_000, 100_000];

/// The facade figures.
#[derive(Debug, Clone)]
pub struct FacadeReport {
    /// Per call kind.
    pub calls: Vec<CallTimes>,
    /// Events the tracing layer wrote, and dropped because its buffer was full, over the
    /// warm-up and timed calls.
    pub events_written: u64,
    /// See `events_written`.
    pub events_dropped: u64,
    /// Of `events_dropped`, those dropped during the timed calls (a dropped call returns
    /// early, so it is cheaper than one recorded: the percentiles include them).
    pub events_dropped_timed: u64,
}

/// Every figure of the protocol benchmark.
#[derive(Debug, Clone)]
pub struct ProtocolReport {
    /// Rows of cpu-only.
    pub rows: u64,
    /// Line protocol.
    pub line_protocol: LineProtocolReport,
    /// StatsD.
    pub statsd: StatsdReport,
    /// Facades.
    pub facades: FacadeReport,
}

impl ProtocolReport {
    /// The figures for people, as `sextant-bench protocols` prints them, of a run with `opts`.
    pub fn text(&self, opts: &ProtocolOptions) -> String {
        let mut out = String::new();
        self.write_text(opts, &mut out)
            .expect("writing to a String does not fail");
        out
    }

    fn write_text(&self, opts: &ProtocolOptions, out: &mut String) -> std::fmt::Result {
        use std::fmt::Write;
        let lp = &self.line_protocol;
        writeln!(
            out,
            "line protocol, cpu-only scale {} x {} days ({} rows, {:.0} MB, {}-line requests, one thread):",
            opts.scale,
            opts.days,
            self.rows,
            lp.bytes as f64 / 1e6,
            opts.lines
        )?;
        writeln!(
            out,
            "  parse + write  {:>10.0} rows/s  ({:.2} s; parse alone {:.0} rows/s, {:.0} % of the time)",
            lp.total.per_sec(),
            lp.total.secs,
            lp.parse.per_sec(),
            100.0 * lp.parse.secs / lp.total.secs.max(1e-9)
        )?;
        writeln!(
            out,
            "  columnar API   {:>10.0} rows/s  ({:.2} s, the same rows as Arrow batches; line protocol at {:.0} % of it)",
            lp.columnar.per_sec(),
            lp.columnar.secs,
            100.0 * lp.total.per_sec() / lp.columnar.per_sec().max(1e-9)
        )?;
        let s = &self.statsd;
        writeln!(
            out,
            "statsd ({} metrics in {} packets, {:.0} MB, one thread):",
            s.ingest.count,
            s.packets,
            s.bytes as f64 / 1e6
        )?;
        writeln!(
            out,
            "  parse + aggregate {:>10.0} metrics/s ({:.2} s); flush of {} series into rows and their write {:.1} ms",
            s.ingest.per_sec(),
            s.ingest.secs,
            s.series,
            s.flush_secs * 1e3
        )?;
        let f = &self.facades;
        writeln!(
            out,
            "facades, on the calling thread ({} timed calls each, after as many untimed):",
            opts.calls
        )?;
        for c in &f.calls {
            writeln!(
                out,
                "  {:<36} p50 {:>5} ns  p90 {:>5}  p99 {:>5}  p99.9 {:>6}  max {:>9}",
                c.what,
                c.quantile(0.5),
                c.quantile(0.9),
                c.quantile(0.99),
                c.quantile(0.999),
                c.quantile(1.0)
            )?;
            let counts = c.distribution();
            let mut line = String::from("    calls by ns:");
            let mut lower = 0;
            for (i, n) in counts.iter().enumerate() {
                match BUCKETS_NS.get(i) {
                    Some(upper) => line.push_str(&format!(" {lower}-{upper}: {n}")),
                    None => line.push_str(&format!(" >{lower}: {n}")),
                }
                lower = BUCKETS_NS.get(i).copied().unwrap_or(lower);
            }
            writeln!(out, "{line}")?;
        }
        writeln!(
            out,
            "  tracing layer: {} events written, {} dropped because the writer was behind (the drop policy), {} of them during the timed calls (the percentiles include those cheaper calls)",
            f.events_written, f.events_dropped, f.events_dropped_timed
        )?;
        Ok(())
    }
}

/// Runs the protocol benchmark.
pub fn run(opts: &ProtocolOptions) -> Result<ProtocolReport> {
    crate::measure::remove(&opts.dir)?;
    let config = CpuConfig::new(opts.scale, opts.days).with_seed(opts.seed);
    let line_protocol = line_protocol_rate(opts, &config)?;
    let statsd = statsd_rate(opts)?;
    let facades = facades(opts)?;
    crate::measure::remove(&opts.dir)?;
    Ok(ProtocolReport {
        rows: config.rows(),
        line_protocol,
        statsd,
        facades,
    })
}

fn open(dir: PathBuf) -> Result<Engine> {
    Ok(Config::new(dir).open()?)
}

fn line_protocol_rate(opts: &ProtocolOptions, config: &CpuConfig) -> Result<LineProtocolReport> {
    // The requests, rendered before timing.
    let mut generator = CpuGenerator::new(config.clone())?;
    let keys: Vec<Vec<u8>> = generator
        .hosts()
        .iter()
        .map(|h| influx::series_key(cpu::TABLE, cpu::TAGS.iter().copied().zip(h.tags())))
        .collect();
    let mut requests: Vec<Vec<u8>> = Vec::new();
    while let Some(batch) = generator.next_batch(opts.lines.max(1)) {
        let mut request = Vec::with_capacity(batch.len() * 300);
        for i in 0..batch.len() {
            let values = batch.fields.iter().map(|f| f[i]);
            influx::cpu_line(
                &mut request,
                &keys[batch.host[i] as usize],
                values,
                batch.time[i],
            );
        }
        requests.push(request);
    }
    let bytes = requests.iter().map(|r| r.len() as u64).sum();

    let engine = open(opts.dir.join("line-protocol"))?;
    let options = line_protocol::Options {
        max_request_bytes: usize::MAX,
        ..line_protocol::Options::default()
    };
    let (mut rows, mut parse_secs, mut total_secs) = (0u64, 0.0, 0.0);
    for request in &requests {
        let started = Instant::now();
        let outcome =
            line_protocol::parse(request, &options, 0, &engine.snapshot()).map_err(|e| {
                Error::Protocol {
                    protocol: "line protocol",
                    message: e.to_string(),
                }
            })?;
        parse_secs += started.elapsed().as_secs_f64();
        if outcome.rejected_lines > 0 {
            return Err(Error::Protocol {
                protocol: "line protocol",
                message: format!(
                    "{} lines rejected: {:?}",
                    outcome.rejected_lines,
                    outcome.rejected.first()
                ),
            });
        }
        rows += outcome.rows as u64;
        engine.write_batches(outcome.batches)?;
        total_secs += started.elapsed().as_secs_f64();
    }
    engine.close()?;
    drop(requests);

    let engine = open(opts.dir.join("columnar"))?;
    let columnar = write_workload(
        &engine,
        &WorkloadSpec::Cpu(config.clone()),
        &WriteOptions {
            batch_rows: opts.lines.max(1),
            threads: 1,
            progress: false,
        },
    )?;
    engine.close()?;
    Ok(LineProtocolReport {
        bytes,
        total: Rate {
            count: rows,
            secs: total_secs,
        },
        parse: Rate {
            count: rows,
            secs: parse_secs,
        },
        columnar: Rate {
            count: columnar.rows,
            secs: columnar.engine_secs,
        },
    })
}

/// Packets of `metrics` StatsD metrics: 200 metric names over 50 hosts and 4 routes, a
/// packet at most 1,432 bytes (an Ethernet frame's UDP payload).
fn statsd_packets(metrics: usize, seed: u64) -> Vec<Vec<u8>> {
    use std::io::Write as _;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let routes = ["/pay", "/cart", "/search", "/login"];
    let mut packets = Vec::new();
    let mut packet = Vec::with_capacity(1432);
    let mut line = Vec::with_capacity(256);
    for _ in 0..metrics {
        line.clear();
        let name = rng.random_range(0..200u32);
        let host = rng.random_range(0..50u32);
        let route = routes[rng.random_range(0..routes.len())];
        let tags = format!("|#env:prod,host:web-{host},route:{route}");
        // The kind follows the name, as in a real service: a metric is one kind.
        let _ = match name % 20 {
            0..=9 if name % 3 == 0 => write!(line, "app.requests.{name}:1|c|@0.1{tags}"),
            0..=9 => write!(
                line,
                "app.requests.{name}:{}|c{tags}",
                rng.random_range(1..5)
            ),
            10..=13 => write!(
                line,
                "app.latency.{name}:{:.3}|ms{tags}",
                rng.random::<f64>() * 250.0
            ),
            14..=15 if name % 2 == 0 => write!(
                line,
                "app.queue.{name}:+{}|g{tags}",
                rng.random_range(0..10)
            ),
            14..=15 => write!(line, "app.pool.{name}:{}|g{tags}", rng.random_range(0..100)),
            16..=18 => write!(
                line,
                "app.size.{name}:{}|h{tags}",
                rng.random_range(0..65_536)
            ),
            _ => write!(
                line,
                "app.users.{name}:user-{}|s{tags}",
                rng.random_range(0..10_000)
            ),
        };
        if packet.len() + line.len() + 1 > 1432 {
            packets.push(std::mem::take(&mut packet));
        }
        if !packet.is_empty() {
            packet.push(b'\n');
        }
        packet.extend_from_slice(&line);
    }
    if !packet.is_empty() {
        packets.push(packet);
    }
    packets
}

fn statsd_rate(opts: &ProtocolOptions) -> Result<StatsdReport> {
    let packets = statsd_packets(opts.statsd_metrics, opts.seed);
    let bytes = packets.iter().map(|p| p.len() as u64).sum();
    let mut aggregator = Aggregator::new(StatsdOptions::default(), 0);
    let started = Instant::now();
    let mut metrics = 0u64;
    for packet in &packets {
        let received = aggregator.ingest(packet);
        if received.rejected_lines > 0 {
            return Err(Error::Protocol {
                protocol: "statsd",
                message: format!(
                    "{} lines rejected: {:?}",
                    received.rejected_lines,
                    received.rejected.first()
                ),
            });
        }
        metrics += received.metrics as u64;
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    let series = aggregator.series();
    let engine = open(opts.dir.join("statsd"))?;
    let started = Instant::now();
    let outcome = aggregator.flush(10_000_000_000, &engine.snapshot());
    engine.write_batches(outcome.batches)?;
    let flush_secs = started.elapsed().as_secs_f64();
    engine.close()?;
    Ok(StatsdReport {
        packets: packets.len(),
        bytes,
        ingest: Rate {
            count: metrics,
            secs: ingest_secs,
        },
        series,
        flush_secs,
    })
}

/// Times each of `calls` calls of `f`, after `calls` untimed ones (then `warmed` runs).
fn time_calls(
    what: &'static str,
    calls: usize,
    warmed: impl FnOnce(),
    mut f: impl FnMut(usize),
) -> CallTimes {
    for i in 0..calls {
        f(i);
    }
    warmed();
    let mut nanos: Vec<u64> = (0..calls)
        .map(|i| {
            let started = Instant::now();
            f(i);
            started.elapsed().as_nanos() as u64
        })
        .collect();
    nanos.sort_unstable();
    CallTimes { what, nanos }
}

fn facades(opts: &ProtocolOptions) -> Result<FacadeReport> {
    let engine = Arc::new(open(opts.dir.join("facades"))?);
    let calls = opts.calls.max(1);
    let (layer, writer) = tracing_layer::layer(Arc::clone(&engine), Default::default());
    let subscriber = tracing_subscriber::registry().with(layer);
    let mut dropped_before = 0;
    let event = tracing::subscriber::with_default(subscriber, || {
        let warmed = || dropped_before = writer.dropped();
        time_calls("tracing info! with 2 fields", calls, warmed, |i| {
            tracing::info!(target: "app::checkout", order = i as u64, gateway = "acme", "payment accepted");
        })
    });
    writer.flush().map_err(|e| Error::Protocol {
        protocol: "tracing layer",
        message: e.to_string(),
    })?;
    let (events_written, events_dropped) = (writer.written(), writer.dropped());
    let events_dropped_timed = events_dropped - dropped_before;
    drop(writer);

    let (recorder, flusher) = metrics_recorder::recorder(Arc::clone(&engine), Default::default());
    let (counter, histogram) = metrics::with_local_recorder(&recorder, || {
        let counter = time_calls(
            "metrics counter! increment, 1 label",
            calls,
            || {},
            |_| {
                metrics::counter!("http.requests", "route" => "/pay").increment(1);
            },
        );
        let histogram = time_calls(
            "metrics histogram! record, 1 label",
            calls,
            || {},
            |i| {
                metrics::histogram!("http.latency_ms", "route" => "/pay").record(i as f64);
            },
        );
        (counter, histogram)
    });
    flusher.flush().map_err(|e| Error::Protocol {
        protocol: "metrics recorder",
        message: e.to_string(),
    })?;
    Ok(FacadeReport {
        calls: vec![event, counter, histogram],
        events_written,
        events_dropped,
        events_dropped_timed,
    })
}
