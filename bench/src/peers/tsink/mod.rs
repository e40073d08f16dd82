//! tsink 0.10 (crates.io `tsink`, an embedded Prometheus-style TSDB) as a peer: the cpu-only
//! rows loaded through its API and the TSBS devops queries answered through its native
//! select API. Built only with the `tsink` feature. In `sextant-bench run` it runs in a
//! process of its own ([`process`]); its load makes two phases, `write` and `flush`
//! ([`process::TsinkProcess::engine`]), and it answers through [`super::Engine`].
//!
//! # Layout and loading
//!
//! As Prometheus-compatible stores (and TSBS's loaders for them) lay cpu-only out: one metric
//! per field, `cpu_<field>` (`cpu_usage_user`, ...), one series per host and field, with the
//! host's 10 tags as labels. Every value is one tsink point, so a cpu row is 10 points.
//! Rows go in from one thread through `insert_rows` in batches (10 points per cpu row),
//! nanosecond timestamps, the WAL synced as Sextant's ([`LoadOptions::durability`]: every
//! second by default), retention not enforced (the data is from 2016).
//!
//! # Queries
//!
//! tsink selects the points of one series (metric and full label set) in a time range,
//! optionally downsampled into buckets with an aggregate. The answers are built from that:
//!
//! - Series are found with `select_series` (metric plus a `hostname` matcher), as a user who
//!   knows only the host name would.
//! - tsink's buckets start at the query's start, whereas `time_bucket` aligns them to the
//!   epoch; windows start at any second, so each series is queried twice: the head
//!   `[start, next boundary)` as one bucket, labelled with the boundary before `start`, and
//!   `[next boundary, end)`, whose buckets then fall on the epoch-aligned boundaries.
//! - tsink aggregates within one series. Where a query takes the max over several hosts
//!   (single-groupby-*-8-*, cpu-max-all-8, groupby-orderby-limit), the per-series maxima are
//!   combined here, which is exact for a max.
//! - high-cpu-1 and high-cpu-all are [`Unanswered::NotAvailable`]: tsink's select API has no
//!   predicate on values, and its PromQL filters samples at evaluation steps, so
//!   `usage_user > 90` would be a filter in this code over every raw point of the window (and
//!   a join of the 10 metrics' points by timestamp), not tsink answering.
//! - The newest points are read as a user of a store that grows at its end reads them: a
//!   window just before the end (the end of the data, standing for "now"), widened fourfold
//!   until it holds what is asked for. lastpoint is the `Last` aggregate of each of a host's
//!   10 series in such a window (from the last minute); groupby-orderby-limit downsamples
//!   each host's usage_user in such a window (from the last 5 minutes) until 5 minutes
//!   hold points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::tsink::{
    Aggregation, DataPoint, Label, MetricSeries, QueryOptions, Row, SeriesMatcher, SeriesSelection,
    Storage, StorageBuilder, TimestampPrecision, TsinkError, WalSyncMode,
};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use sextant_engine::Durability;

use super::Unanswered;
use crate::ingest::RateSampler;
use crate::measure::Answer;
use crate::memory::{PeakScope, PhaseMemory};
use crate::queries::{DevopsKind, DevopsQuery, HOUR, MINUTE, Window};
use crate::workload::cpu::{CpuBatch, CpuConfig, CpuGenerator, FIELD_COUNT, FIELDS, TAGS};
use crate::{Error, Result};

pub mod process;

const PEER: &str = "tsink";

/// Why tsink cannot answer high-cpu-*.
const NO_VALUE_PREDICATE: &str = "tsink's select API takes series and a time range, with no \
    predicate on values; its PromQL `cpu_usage_user > 90` filters samples at evaluation steps \
    (with a lookback), not the stored points, and high-cpu returns all 10 fields of each \
    matching row, a join of 10 series by timestamp: either way client code over every raw \
    point, not tsink answering";

/// `e`, with the store's last background error when it has one: a failed background worker
/// (flush, compaction) shuts tsink down, and later calls say only "Storage is shutting
/// down".
fn failed_in(storage: &dyn Storage, e: TsinkError) -> Error {
    let mut message = e.to_string();
    if let Some(cause) = storage
        .observability_snapshot()
        .health
        .last_background_error
    {
        message.push_str(&format!(" (its last background error: {cause})"));
    }
    Error::Peer {
        peer: PEER,
        message,
    }
}

fn failed(e: TsinkError) -> Error {
    Error::Peer {
        peer: PEER,
        message: e.to_string(),
    }
}

/// The tsink metric of a cpu field: `cpu_<field>`.
pub fn metric(field: &str) -> String {
    format!("cpu_{field}")
}

/// What loading tsink took.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TsinkLoad {
    /// cpu rows loaded.
    pub rows: u64,
    /// tsink points written (10 per row).
    pub points: u64,
    /// Seconds inside `insert_rows` calls.
    pub write_secs: f64,
    /// Seconds of the whole load, generation and building tsink's rows included.
    pub wall_secs: f64,
    /// Seconds of `close` (flushing what is in memory to segments).
    pub close_secs: f64,
    /// Seconds to reopen the closed store for the queries.
    pub reopen_secs: f64,
    /// The wait after reopening for tsink's background compaction ([`settle`]).
    pub settle: Settle,
    /// Bytes of every file in the data directory after `close`.
    pub bytes: u64,
    /// The loading rate over time: `[seconds since the start, rows/s]`, as Sextant's.
    pub samples: Vec<[f64; 2]>,
    /// Peak resident memory of the writes (generation included).
    pub write_memory: (Option<u64>, PeakScope),
    /// Peak resident memory of `close`.
    pub close_memory: (Option<u64>, PeakScope),
    /// Background flush and compaction failures during the load (tsink retries them).
    pub background_errors: u64,
    /// The last of them.
    pub last_background_error: Option<String>,
}

/// A tsink store holding the cpu-only rows, open for queries.
pub struct TsinkPeer {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
}

impl std::fmt::Debug for TsinkPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsinkPeer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// How tsink is loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// cpu rows per `insert_rows` call (10 points each).
    pub batch_rows: usize,
    /// Sextant's durability, mapped to tsink's WAL sync mode: `Always` to `PerAppend`,
    /// `Interval(d)` to `Periodic(d)`, `Never` to `Periodic` of an hour (tsink has no mode
    /// that leaves syncing to the operating system).
    pub durability: Durability,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

fn sync_mode(durability: Durability) -> WalSyncMode {
    match durability {
        Durability::Always => WalSyncMode::PerAppend,
        Durability::Interval(d) => WalSyncMode::Periodic(d),
        Durability::Never => WalSyncMode::Periodic(Duration::from_secs(3600)),
    }
}

fn open(dir: &Path, durability: Durability) -> Result<Arc<dyn Storage>> {
    StorageBuilder::new()
        .with_data_path(dir)
        .with_timestamp_precision(TimestampPrecision::Nanoseconds)
        .with_wal_sync_mode(sync_mode(durability))
        // By default tsink stops taking writes after one failed background flush or
        // compaction. At scale 1000 its flush worker failed that way ("IO error: No such
        // file or directory") in every load tried, so it carries on and retries instead;
        // the failures are counted in the load's figures, and the answers' checksums show
        // whether any data was lost.
        .with_background_fail_fast(false)
        .with_retention_enforced(false)
        .build()
        .map_err(failed)
}

/// The longest [`TsinkPeer::load`] waits for tsink's compaction after reopening.
const SETTLE_LIMIT: Duration = Duration::from_secs(900);

/// How the wait for tsink's background compaction ended.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Settle {
    /// Seconds waited.
    pub secs: f64,
    /// Compaction passes that compacted something meanwhile.
    pub compactions: u64,
    /// Whether a pass found nothing to compact; false: gave up at the limit.
    pub settled: bool,
}

/// Waits, for at most `limit`, until tsink's compactor finds nothing to compact.
///
/// A reopened tsink may compact what it flushed in a background thread that wakes every 5
/// seconds, on the cores every engine's timed queries run on; the wait keeps such work out
/// of the timings. (At scale 1000 every engine's queries ran two to three times slower with
/// tsink loaded than without, but at 135749c the wait found no compaction left to do, so
/// that slowdown has another cause.) Each pass calls the numeric compactor and then the
/// blob compactor, each counted as a run; once two runs in a row compacted nothing and
/// failed nowhere, one of them was a numeric pass that found nothing left.
fn settle(storage: &dyn Storage, limit: Duration) -> Settle {
    let start = Instant::now();
    let counters = || {
        let c = storage.observability_snapshot().compaction;
        (c.runs_total, c.success_total + c.errors_total)
    };
    let (runs, changes) = counters();
    let mut quiet = Quiet::new(runs, changes);
    loop {
        let (runs, changes) = counters();
        let settled = quiet.observe(runs, changes);
        if settled || start.elapsed() >= limit {
            return Settle {
                secs: start.elapsed().as_secs_f64(),
                compactions: quiet.changes - quiet.first_changes,
                settled,
            };
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The rule of [`settle`] over readings of the compactor's counters: runs, and runs that
/// compacted something or failed.
#[derive(Debug)]
struct Quiet {
    first_changes: u64,
    /// Runs when the count of changes last moved.
    quiet_from: u64,
    changes: u64,
}

impl Quiet {
    fn new(runs: u64, changes: u64) -> Quiet {
        Quiet {
            first_changes: changes,
            quiet_from: runs,
            changes,
        }
    }

    /// Takes a reading; true once two runs in a row changed nothing.
    fn observe(&mut self, runs: u64, changes: u64) -> bool {
        if changes != self.changes {
            (self.quiet_from, self.changes) = (runs, changes);
            return false;
        }
        runs >= self.quiet_from + 2
    }
}

impl TsinkPeer {
    /// Creates a tsink store in `dir` (emptied first), writes the cpu workload of `config`
    /// from one thread in `insert_rows` calls of `opts.batch_rows` cpu rows (10 points
    /// each), closes it to flush everything to disk, measures the directory, reopens it, and
    /// waits until its background compaction is done ([`settle`]). The clocks start once
    /// the store is open, as Sextant's do.
    pub fn load(
        config: &CpuConfig,
        dir: &Path,
        opts: &LoadOptions,
    ) -> Result<(TsinkPeer, TsinkLoad)> {
        let batch_rows = opts.batch_rows.max(1);
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|source| Error::Io {
                action: "removing",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let storage = open(dir, opts.durability)?;
        let mut generator = CpuGenerator::new(config.clone())?;
        let labels: Vec<Vec<Label>> = generator
            .hosts()
            .iter()
            .map(|h| {
                TAGS.iter()
                    .zip(h.tags())
                    .map(|(name, value)| Label::new(*name, value))
                    .collect()
            })
            .collect();
        let metrics: Vec<String> = FIELDS.iter().map(|f| metric(f)).collect();
        let mut batch = CpuBatch::default();
        let mut points = Vec::with_capacity(batch_rows * FIELD_COUNT);
        let mut in_engine = Duration::ZERO;
        let mut rows = 0u64;
        let started = Instant::now();
        let memory = PhaseMemory::start();
        let mut sampler = RateSampler::new();
        let bar = crate::ingest::progress(opts.progress, config.rows());
        while generator.fill(&mut batch, batch_rows) > 0 {
            points.clear();
            for i in 0..batch.len() {
                let host = &labels[batch.host[i] as usize];
                for (f, name) in metrics.iter().enumerate() {
                    points.push(Row::with_labels(
                        name.as_str(),
                        host.clone(),
                        DataPoint::new(batch.time[i], batch.fields[f][i]),
                    ));
                }
            }
            let t = Instant::now();
            storage
                .insert_rows(&points)
                .map_err(|e| failed_in(storage.as_ref(), e))?;
            in_engine += t.elapsed();
            rows += batch.len() as u64;
            bar.inc(batch.len() as u64);
            sampler.observe(rows);
        }
        sampler.finish(rows);
        bar.finish_and_clear();
        let wall_secs = started.elapsed().as_secs_f64();
        let write_memory = memory.peak();
        let health = storage.observability_snapshot().health;
        let memory = PhaseMemory::start();
        let t = Instant::now();
        storage
            .close()
            .map_err(|e| failed_in(storage.as_ref(), e))?;
        drop(storage);
        let close_secs = t.elapsed().as_secs_f64();
        let close_memory = memory.peak();
        let bytes = crate::measure::disk_usage(dir)?.2;
        let t = Instant::now();
        let storage = open(dir, opts.durability)?;
        let reopen_secs = t.elapsed().as_secs_f64();
        let settle = settle(storage.as_ref(), SETTLE_LIMIT);
        let load = TsinkLoad {
            rows,
            points: rows * FIELD_COUNT as u64,
            write_secs: in_engine.as_secs_f64(),
            wall_secs,
            close_secs,
            reopen_secs,
            settle,
            bytes,
            samples: sampler.samples,
            write_memory,
            close_memory,
            background_errors: health.background_errors_total,
            last_background_error: health.last_background_error,
        };
        Ok((
            TsinkPeer {
                storage,
                dir: dir.to_path_buf(),
            },
            load,
        ))
    }

    /// The answer to `query`, in the form of [`Answer`] (the same columns and rows as the
    /// SQL of [`DevopsQuery::sql`] gives), or why there is none.
    pub fn answer(&self, query: &DevopsQuery) -> std::result::Result<Answer, Unanswered> {
        let batch = self.batch(query)?;
        Ok(Answer::new(&[batch], query.is_ordered())?)
    }

    /// Why tsink cannot answer `query`, or `None` when it can.
    pub fn unavailable(query: &DevopsQuery) -> Option<&'static str> {
        match query.kind {
            DevopsKind::HighCpu { .. } => Some(NO_VALUE_PREDICATE),
            _ => None,
        }
    }

    /// The native calls that answer `query`, for the report (where SQL engines show their
    /// statement).
    pub fn calls(query: &DevopsQuery) -> String {
        let hosts = query.hostnames().len();
        let per_bucket = |metrics: usize, bucket: &str, agg: &str| {
            format!(
                "per metric (cpu_<field> x {metrics}): select_series of the {hosts} host(s) by \
                 hostname, then per series select_with_options downsampled to 1 {bucket} with \
                 {agg} (head and aligned rest); max across hosts in client code, one thread"
            )
        };
        match query.kind {
            DevopsKind::SingleGroupby { metrics, .. } => per_bucket(metrics, "minute", "Max"),
            DevopsKind::CpuMaxAll { .. } => per_bucket(FIELD_COUNT, "hour", "Max"),
            DevopsKind::DoubleGroupby { metrics } => format!(
                "per metric (cpu_<field> x {metrics}): select_series of all hosts, then per \
                 series select_with_options downsampled to 1 hour with Avg, one thread"
            ),
            DevopsKind::HighCpu { .. } => NO_VALUE_PREDICATE.to_owned(),
            DevopsKind::Lastpoint => "select_series(cpu_usage_user) for the hosts, then per host \
                 and field select_with_options with the Last aggregation over the minute before \
                 the data's end, widened fourfold until it holds a point; one thread"
                .to_owned(),
            DevopsKind::GroupbyOrderbyLimit => "select_series(cpu_usage_user) of all hosts, then \
                 per series select_with_options downsampled to 1 minute with Max over the 5 \
                 minutes before the end, widened fourfold until 5 minutes hold points; max per \
                 minute and the newest 5 in client code, one thread"
                .to_owned(),
        }
    }

    /// The answer to `query` as one batch with the columns of [`DevopsQuery::sql`]'s answer,
    /// or why there is none.
    pub fn batch(&self, query: &DevopsQuery) -> std::result::Result<RecordBatch, Unanswered> {
        if let Some(reason) = Self::unavailable(query) {
            return Err(Unanswered::NotAvailable(reason));
        }
        Ok(match query.kind {
            DevopsKind::SingleGroupby { metrics, .. } => {
                self.max_per_bucket(query, metrics, MINUTE, "minute")?
            }
            DevopsKind::CpuMaxAll { .. } => {
                self.max_per_bucket(query, FIELD_COUNT, HOUR, "hour")?
            }
            DevopsKind::DoubleGroupby { metrics } => self.double_groupby(query, metrics)?,
            DevopsKind::HighCpu { .. } => return Err(Unanswered::NotAvailable(NO_VALUE_PREDICATE)),
            DevopsKind::Lastpoint => self.lastpoint(query.window.end_ns)?,
            DevopsKind::GroupbyOrderbyLimit => self.groupby_orderby_limit(query)?,
        })
    }

    /// Every series of `metric` (one per host).
    fn series(&self, metric: &str) -> Result<Vec<MetricSeries>> {
        let selection = SeriesSelection::new().with_metric(metric);
        self.storage.select_series(&selection).map_err(failed)
    }

    /// The series of `metric` of the hosts named `hosts`: one look-up with an equality
    /// matcher for one host, with a regex of the names for several. tsink anchors the regex
    /// itself and reads an alternation of plain names (`host_<i>`) as a list it looks up in
    /// its index.
    fn series_of_hosts(&self, metric: &str, hosts: &[String]) -> Result<Vec<MetricSeries>> {
        let matcher = match hosts {
            [] => return Ok(Vec::new()),
            [one] => SeriesMatcher::equal("hostname", one.as_str()),
            _ => SeriesMatcher::regex_match("hostname", hosts.join("|")),
        };
        let selection = SeriesSelection::new()
            .with_metric(metric)
            .with_matcher(matcher);
        self.storage.select_series(&selection).map_err(failed)
    }

    /// The latest point of `series` before `end`: `Last` over the minute before `end`,
    /// widened fourfold until it holds a point or reaches the epoch.
    fn last_before(&self, series: &MetricSeries, end: i64) -> Result<Option<(i64, f64)>> {
        let mut span = MINUTE;
        loop {
            let start = end.saturating_sub(span).max(0);
            let last = self.select(series, start, end, None, Aggregation::Last)?;
            if let Some(&point) = last.first() {
                return Ok(Some(point));
            }
            if start == 0 {
                return Ok(None);
            }
            span = span.saturating_mul(4);
        }
    }

    /// One tsink query: the points of `series` in `[start, end)`, downsampled into buckets
    /// of `interval` starting at `start` if `interval` is given, aggregated with `agg`.
    fn select(
        &self,
        series: &MetricSeries,
        start: i64,
        end: i64,
        interval: Option<i64>,
        agg: Aggregation,
    ) -> Result<Vec<(i64, f64)>> {
        let opts = QueryOptions::new(start, end).with_labels(series.labels.clone());
        let opts = match interval {
            Some(i) => opts.with_downsample(i, agg),
            None => opts.with_aggregation(agg),
        };
        let points = match self.storage.select_with_options(&series.name, opts) {
            Ok(points) => points,
            Err(TsinkError::NoDataPoints { .. }) => Vec::new(),
            Err(e) => return Err(failed(e)),
        };
        points
            .into_iter()
            .map(|p| match p.value_as_f64() {
                Some(v) => Ok((p.timestamp, v)),
                None => Err(Error::Peer {
                    peer: PEER,
                    message: format!(
                        "{} holds a value that is not a float: {:?}",
                        series.name, p.value
                    ),
                }),
            })
            .collect()
    }

    /// `agg` of `series` per epoch-aligned bucket of `interval` in `window`: the head up to
    /// the first boundary as one query, the rest (aligned) as another.
    fn buckets(
        &self,
        series: &MetricSeries,
        window: Window,
        interval: i64,
        agg: Aggregation,
    ) -> Result<Vec<(i64, f64)>> {
        let floor = window.start_ns.div_euclid(interval) * interval;
        let boundary = if floor == window.start_ns {
            floor
        } else {
            floor + interval
        };
        let mut out = Vec::new();
        let head_end = boundary.min(window.end_ns);
        if window.start_ns < head_end {
            let head = self.select(series, window.start_ns, head_end, Some(interval), agg)?;
            out.extend(head.into_iter().map(|(_, v)| (floor, v)));
        }
        if boundary < window.end_ns {
            out.extend(self.select(series, boundary, window.end_ns, Some(interval), agg)?);
        }
        Ok(out)
    }

    /// single-groupby and cpu-max-all: max of the first `metrics` fields per bucket over the
    /// query's hosts.
    fn max_per_bucket(
        &self,
        query: &DevopsQuery,
        metrics: usize,
        interval: i64,
        bucket: &str,
    ) -> Result<RecordBatch> {
        let mut rows: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
        let hosts = query.hostnames();
        for (m, field) in FIELDS[..metrics].iter().enumerate() {
            for series in self.series_of_hosts(&metric(field), &hosts)? {
                for (t, v) in self.buckets(&series, query.window, interval, Aggregation::Max)? {
                    let cell = &mut rows.entry(t).or_insert_with(|| vec![None; metrics])[m];
                    *cell = Some(cell.map_or(v, |c: f64| c.max(v)));
                }
            }
        }
        let times: Vec<i64> = rows.keys().copied().collect();
        let mut columns: Vec<(String, ArrayRef)> = vec![(bucket.to_owned(), timestamps(times))];
        for (m, field) in FIELDS[..metrics].iter().enumerate() {
            let values: Float64Array = rows.values().map(|r| r[m]).collect();
            columns.push((format!("max_{field}"), Arc::new(values)));
        }
        Ok(RecordBatch::try_from_iter(columns)?)
    }

    /// double-groupby: mean of the first `metrics` fields per (hour, host), all hosts.
    fn double_groupby(&self, query: &DevopsQuery, metrics: usize) -> Result<RecordBatch> {
        let mut rows: BTreeMap<(i64, String), Vec<Option<f64>>> = BTreeMap::new();
        for (m, field) in FIELDS[..metrics].iter().enumerate() {
            for series in self.series(&metric(field))? {
                let host = label(&series, "hostname")?.to_owned();
                for (t, v) in self.buckets(&series, query.window, HOUR, Aggregation::Avg)? {
                    rows.entry((t, host.clone()))
                        .or_insert_with(|| vec![None; metrics])[m] = Some(v);
                }
            }
        }
        let times: Vec<i64> = rows.keys().map(|(t, _)| *t).collect();
        let hosts: StringArray = rows.keys().map(|(_, h)| Some(h.as_str())).collect();
        let mut columns: Vec<(String, ArrayRef)> = vec![
            ("hour".to_owned(), timestamps(times)),
            ("hostname".to_owned(), Arc::new(hosts)),
        ];
        for (m, field) in FIELDS[..metrics].iter().enumerate() {
            let values: Float64Array = rows.values().map(|r| r[m]).collect();
            columns.push((format!("mean_{field}"), Arc::new(values)));
        }
        Ok(RecordBatch::try_from_iter(columns)?)
    }

    /// lastpoint: each host's latest row (time, tags, fields), by hostname.
    fn lastpoint(&self, end: i64) -> Result<RecordBatch> {
        let mut hosts = self.series(&metric(FIELDS[0]))?;
        hosts.sort_by(|a, b| {
            let name =
                |s: &MetricSeries| label(s, "hostname").map(str::to_owned).unwrap_or_default();
            name(a).cmp(&name(b))
        });
        let mut times = Vec::with_capacity(hosts.len());
        let mut tags: Vec<Vec<String>> = (0..TAGS.len())
            .map(|_| Vec::with_capacity(hosts.len()))
            .collect();
        let mut fields: Vec<Vec<Option<f64>>> = (0..FIELD_COUNT)
            .map(|_| Vec::with_capacity(hosts.len()))
            .collect();
        for series in &hosts {
            let mut time = None;
            for (f, field) in FIELDS.iter().enumerate() {
                let one = MetricSeries {
                    name: metric(field),
                    labels: series.labels.clone(),
                };
                let Some((t, v)) = self.last_before(&one, end)? else {
                    fields[f].push(None);
                    continue;
                };
                if time.is_some_and(|time| time != t) {
                    return Err(Error::Peer {
                        peer: PEER,
                        message: format!(
                            "the latest points of a host's fields differ in time: {series:?}"
                        ),
                    });
                }
                time = Some(t);
                fields[f].push(Some(v));
            }
            times.push(time.unwrap_or_default());
            for (t, name) in TAGS.iter().enumerate() {
                tags[t].push(label(series, name)?.to_owned());
            }
        }
        let mut columns: Vec<(String, ArrayRef)> = vec![("time".to_owned(), timestamps(times))];
        for (name, values) in TAGS.iter().zip(tags) {
            columns.push(((*name).to_owned(), Arc::new(StringArray::from(values))));
        }
        for (name, values) in FIELDS.iter().zip(fields) {
            columns.push(((*name).to_owned(), Arc::new(Float64Array::from(values))));
        }
        Ok(RecordBatch::try_from_iter(columns)?)
    }

    /// groupby-orderby-limit: max(usage_user) per minute over all hosts for time < the end,
    /// the newest 5 minutes.
    fn groupby_orderby_limit(&self, query: &DevopsQuery) -> Result<RecordBatch> {
        let series = self.series(&metric(FIELDS[0]))?;
        let end = query.window.end_ns;
        // The newest 5 minutes with points lie in the last 5 minutes before the end, unless
        // the data thins out there: widen 4 times until 5 minutes hold points, or the window
        // reaches the epoch. Once it holds 5, no newer minute lies outside it.
        let mut span = 5 * MINUTE;
        let mut rows: BTreeMap<i64, f64> = BTreeMap::new();
        loop {
            // Starts on a whole minute, so that the buckets are aligned as they are.
            let start = (end.saturating_sub(span)).div_euclid(MINUTE) * MINUTE;
            let start = start.max(0);
            rows.clear();
            for s in &series {
                for (t, v) in self.buckets(s, Window::new(start, end), MINUTE, Aggregation::Max)? {
                    let cell = rows.entry(t).or_insert(v);
                    *cell = cell.max(v);
                }
            }
            if rows.len() >= 5 || start == 0 {
                break;
            }
            span = span.saturating_mul(4);
        }
        let newest: Vec<(i64, f64)> = rows.into_iter().rev().take(5).collect();
        let times = newest.iter().map(|(t, _)| *t).collect();
        let values: Float64Array = newest.iter().map(|(_, v)| Some(*v)).collect();
        Ok(RecordBatch::try_from_iter([
            ("minute", timestamps(times)),
            ("max(cpu.usage_user)", Arc::new(values) as ArrayRef),
        ])?)
    }
}

/// Timestamps as Arrow, as Sextant's `time` column (ns, UTC).
fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

/// The value of label `name` of `series`.
fn label<'a>(series: &'a MetricSeries, name: &str) -> Result<&'a str> {
    series
        .labels
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.value.as_str())
        .ok_or_else(|| Error::Peer {
            peer: PEER,
            message: format!("series {} has no label {name}", series.name),
        })
}

#[cfg(test)]
mod tests {
    use super::Quiet;

    #[test]
    fn compaction_is_settled_only_after_two_runs_in_a_row_change_nothing() {
        let mut q = Quiet::new(0, 0);
        assert!(!q.observe(0, 0), "no run yet");
        assert!(
            !q.observe(1, 0),
            "one quiet run: the blob compactor's, maybe"
        );
        assert!(!q.observe(3, 1), "a pass compacted");
        assert!(!q.observe(4, 1), "one quiet run since");
        assert!(!q.observe(6, 2), "another compaction");
        assert!(q.observe(8, 2), "two quiet runs in a row");
        assert_eq!(q.changes - q.first_changes, 2);
    }
}
