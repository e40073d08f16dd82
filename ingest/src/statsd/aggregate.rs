//! The StatsD aggregator: metrics in, one row per series and flush interval out.

use std::borrow::Cow;
use std::time::Duration;

use ahash::{AHashMap, AHashSet};
use sextant_engine::TableKind;
use sextant_engine::schema::{MAX_COLUMNS, MAX_NAME_LEN, TIME_COLUMN, validate_name};

use super::{Error, Kind, Metric, Value, parse_line};
use crate::columns::{Conflict, Tables, Value as Cell};
use crate::outcome::snippet;
use crate::{Outcome, Rejected, Schemas};

/// How the [`Aggregator`] reads and summarises metrics.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often [`Aggregator::flush_due`] says a flush is due. Default: 10 s.
    pub flush_interval: Duration,
    /// The percentiles of timers, histograms and distributions, each a field named
    /// `<p>_percentile`. Default: 50, 90, 95, 99.
    pub percentiles: Vec<f64>,
    /// Values kept per summarised series and interval for percentiles. Default: 1000.
    pub reservoir_size: usize,
    /// What `.` in metric names becomes in table names; `None` keeps the dots. Default:
    /// `Some('_')`, as Telegraf's `metric_separator`.
    pub name_separator: Option<char>,
    /// Most series held at once (gauges are held until dropped with
    /// [`Aggregator::forget_gauges`]); metrics of further series are rejected. Default:
    /// 100,000.
    pub max_series: usize,
    /// Most distinct members a set series holds per interval; past it, members not yet
    /// seen are not counted, so `value` is a lower bound. Default: 100,000.
    pub max_set_members: usize,
    /// The longest line accepted, in bytes. Default: 8,192.
    pub max_line_bytes: usize,
    /// How many rejected lines [`Aggregator::ingest`] keeps with their reason (all are
    /// counted). Default: 100.
    pub max_errors: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flush_interval: Duration::from_secs(10),
            percentiles: vec![50.0, 90.0, 95.0, 99.0],
            reservoir_size: 1000,
            name_separator: Some('_'),
            max_series: 100_000,
            max_set_members: 100_000,
            max_line_bytes: 8192,
            max_errors: 100,
        }
    }
}

/// What [`Aggregator::ingest`] did with a packet.
#[derive(Debug, Default)]
pub struct Received {
    /// Lines accepted.
    pub metrics: usize,
    /// The first rejected lines with their reasons.
    pub rejected: Vec<Rejected<Error>>,
    /// How many lines were rejected in all.
    pub rejected_lines: usize,
}

/// Running summary of a timer, histogram or distribution series.
#[derive(Debug, Clone)]
struct Summary {
    weight: f64,
    sum: f64,
    mean: f64,
    m2: f64,
    lower: f64,
    upper: f64,
    seen: u64,
    sample: Vec<f64>,
}

#[derive(Debug, Clone)]
enum State {
    Counter(f64),
    Gauge(f64),
    Summary(Box<Summary>),
    Set(AHashSet<String>),
}

#[derive(Debug, Clone)]
struct Series {
    table: String,
    kind: Kind,
    tags: Vec<(String, String)>,
    state: State,
    touched: bool,
}

/// Aggregates StatsD metrics per flush interval (see the [module docs](super)).
#[derive(Debug)]
pub struct Aggregator {
    options: Options,
    percentile_names: Vec<String>,
    last_flush: i64,
    index: AHashMap<String, usize>,
    series: Vec<Series>,
    rng: u64,
    key: String,
}

impl Aggregator {
    /// An aggregator whose first interval starts at `start` (nanoseconds since the Unix
    /// epoch).
    pub fn new(options: Options, start: i64) -> Self {
        let percentile_names = options
            .percentiles
            .iter()
            .map(|p| format!("{p}_percentile"))
            .collect();
        Aggregator {
            options,
            percentile_names,
            last_flush: start,
            index: AHashMap::new(),
            series: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
            key: String::new(),
        }
    }

    /// How many series are held.
    pub fn series(&self) -> usize {
        self.series.len()
    }

    /// Whether a flush interval has passed since the last flush (or the start).
    pub fn flush_due(&self, now: i64) -> bool {
        let interval = i64::try_from(self.options.flush_interval.as_nanos()).unwrap_or(i64::MAX);
        now.saturating_sub(self.last_flush) >= interval
    }

    /// Parses a packet (lines separated by `\n`) and adds its metrics, rejecting bad
    /// lines alone.
    pub fn ingest(&mut self, packet: &[u8]) -> Received {
        let mut received = Received::default();
        let max_errors = self.options.max_errors;
        let reject = |received: &mut Received, line, error| {
            received.rejected_lines += 1;
            if received.rejected.len() < max_errors {
                received.rejected.push(Rejected { line, error });
            }
        };
        for (i, raw) in packet.split(|&b| b == b'\n').enumerate() {
            let raw = raw.trim_ascii();
            if raw.is_empty() {
                continue;
            }
            if raw.len() > self.options.max_line_bytes {
                let (bytes, limit) = (raw.len(), self.options.max_line_bytes);
                reject(&mut received, i + 1, Error::LineTooLong { bytes, limit });
                continue;
            }
            let result = match std::str::from_utf8(raw) {
                Ok(line) => parse_line(line).and_then(|m| self.add(&m)),
                Err(e) => Err(Error::NotUtf8 {
                    offset: e.valid_up_to(),
                }),
            };
            match result {
                Ok(()) => received.metrics += 1,
                Err(e) => reject(&mut received, i + 1, e),
            }
        }
        received
    }

    /// Adds one parsed metric to its series.
    pub fn add(&mut self, metric: &Metric<'_>) -> Result<(), Error> {
        let table: Cow<'_, str> = match self.options.name_separator {
            Some(c) if metric.name().contains('.') => metric
                .name()
                .replace('.', c.encode_utf8(&mut [0; 4]))
                .into(),
            _ => metric.name().into(),
        };
        let mut tags: Vec<(&str, &str)> = metric.tags().collect();
        tags.sort_by(|a, b| a.0.cmp(b.0));
        // A key given twice keeps its last value: the sort is stable, so reversed, the
        // last of each run of equal keys comes first, which `dedup_by_key` keeps.
        tags.reverse();
        tags.dedup_by_key(|t| t.0);
        tags.reverse();
        self.key.clear();
        self.key.push_str(metric.kind().metric_type());
        self.key.push('\u{0}');
        self.key.push_str(&table);
        for (k, v) in &tags {
            self.key.push('\u{1}');
            self.key.push_str(k);
            self.key.push('\u{2}');
            self.key.push_str(v);
        }
        let s = match self.index.get(self.key.as_str()) {
            Some(&s) => s,
            None => self.new_series(metric, &table, &tags)?,
        };
        let rate = metric.sample_rate();
        let reservoir = self.options.reservoir_size;
        let max_members = self.options.max_set_members;
        let series = &mut self.series[s];
        series.touched = true;
        for value in metric.values() {
            match (&mut series.state, value) {
                (State::Counter(sum), Value::Number(x)) => *sum += x / rate,
                (State::Gauge(g), Value::Number(x)) => *g = x,
                (State::Gauge(g), Value::Delta(d)) => *g += d,
                (State::Summary(summary), Value::Number(x)) => {
                    summary.add(x, 1.0 / rate, reservoir, &mut self.rng)
                }
                (State::Set(set), Value::Member(m)) => {
                    if set.len() < max_members && !set.contains(m) {
                        set.insert(m.to_string());
                    }
                }
                _ => unreachable!("values match their metric's kind"),
            }
        }
        Ok(())
    }

    fn new_series(
        &mut self,
        metric: &Metric<'_>,
        table: &str,
        tags: &[(&str, &str)],
    ) -> Result<usize, Error> {
        if self.series.len() >= self.options.max_series {
            return Err(Error::TooManySeries {
                limit: self.options.max_series,
                name: snippet(metric.name(), 64),
            });
        }
        if let Err(e) = validate_name("table", table) {
            return Err(Error::BadName {
                what: "metric name",
                name: snippet(metric.name(), 64),
                reason: e.to_string(),
            });
        }
        let kind = metric.kind();
        for (k, _) in tags {
            let reason = if k.len() > MAX_NAME_LEN || k.chars().any(char::is_control) {
                Some("a tag key is 1 to 128 bytes without control characters".to_string())
            } else if *k == TIME_COLUMN || *k == "metric_type" {
                Some(format!("{k:?} is set by the aggregator"))
            } else if self.field_names(kind).any(|f| f == *k) {
                Some(format!(
                    "it is also the name of a field of {} rows",
                    kind.metric_type()
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Error::BadName {
                    what: "tag key",
                    name: snippet(k, 64),
                    reason,
                });
            }
        }
        let state = match kind {
            Kind::Counter => State::Counter(0.0),
            Kind::Gauge => State::Gauge(0.0),
            Kind::Set => State::Set(AHashSet::new()),
            _ => State::Summary(Box::new(Summary::new())),
        };
        self.series.push(Series {
            table: table.to_string(),
            kind,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state,
            touched: false,
        });
        self.index.insert(self.key.clone(), self.series.len() - 1);
        Ok(self.series.len() - 1)
    }

    fn field_names(&self, kind: Kind) -> impl Iterator<Item = &str> {
        let fixed: &[&str] = match kind {
            Kind::Counter => &["value", "rate"],
            Kind::Gauge | Kind::Set => &["value"],
            _ => &["count", "sum", "mean", "stddev", "upper", "lower", "median"],
        };
        let percentiles = if kind.is_summary() {
            &self.percentile_names[..]
        } else {
            &[]
        };
        fixed
            .iter()
            .copied()
            .chain(percentiles.iter().map(String::as_str))
    }

    /// Emits a row for every series that got metrics since the last flush, stamped
    /// `now`, and starts a new interval. Rows whose columns conflict with another row of
    /// the flush or with the stored table (looked up in `schemas`) are rejected with
    /// `line` 0 and an error naming the series' table and column.
    pub fn flush(&mut self, now: i64, schemas: &dyn Schemas) -> Outcome<Error> {
        let elapsed = match now.saturating_sub(self.last_flush) {
            d if d > 0 => d as f64 / 1e9,
            _ => self.options.flush_interval.as_secs_f64().max(1e-9),
        };
        let mut out = Outcome::new();
        let mut tables = Tables::new(schemas);
        let mut fields: Vec<(&str, Cell<'_>)> = Vec::new();
        for series in &mut self.series {
            if !series.touched {
                continue;
            }
            fields.clear();
            let (kind, table) = (series.kind, series.table.as_str());
            match &mut series.state {
                State::Counter(sum) => {
                    fields.push(("value", Cell::I64(sum.round() as i64)));
                    fields.push(("rate", Cell::F64(*sum / elapsed)));
                }
                State::Gauge(g) => fields.push(("value", Cell::F64(*g))),
                State::Set(set) => fields.push(("value", Cell::I64(set.len() as i64))),
                State::Summary(s) => {
                    s.sample.sort_unstable_by(f64::total_cmp);
                    fields.push(("count", Cell::I64(s.weight.round() as i64)));
                    fields.push(("sum", Cell::F64(s.sum)));
                    fields.push(("mean", Cell::F64(s.mean)));
                    fields.push(("stddev", Cell::F64((s.m2 / s.weight).max(0.0).sqrt())));
                    fields.push(("upper", Cell::F64(s.upper)));
                    fields.push(("lower", Cell::F64(s.lower)));
                    fields.push(("median", Cell::F64(s.median())));
                    for (p, name) in self.options.percentiles.iter().zip(&self.percentile_names) {
                        fields.push((name, Cell::F64(s.percentile(*p))));
                    }
                }
            }
            let metric_type = kind.metric_type();
            let tags = std::iter::once(("metric_type", Cell::Tag(metric_type)))
                .chain(series.tags.iter().map(|(k, v)| (k.as_str(), Cell::Tag(v))));
            let result = match tables.table(table, TableKind::Metric) {
                Err(c) => Err((String::new(), c)),
                Ok(t) => {
                    let types = tags.clone().chain(fields.iter().copied());
                    let types = types.map(|(n, v)| (n, v.column_type()));
                    let checked = tables.check(t, types);
                    checked.map(|()| t).map_err(|(col, c)| (col.to_string(), c))
                }
            };
            match result {
                Ok(t) => {
                    tables.push(t, now, tags.chain(fields.iter().copied()));
                    out.rows += 1;
                }
                Err((column, c)) => {
                    out.reject(0, conflict(table, metric_type, column, c), usize::MAX)
                }
            }
        }
        out.batches = match tables.finish() {
            Ok(batches) => batches,
            Err(e) => {
                out.reject(0, Error::Engine(e.to_string()), usize::MAX);
                Vec::new()
            }
        };
        // Start the next interval: gauges keep their value, the rest start afresh.
        let mut kept = Vec::with_capacity(self.series.len());
        self.index.clear();
        for mut series in self.series.drain(..) {
            if let State::Gauge(_) = series.state {
                series.touched = false;
                self.key.clear();
                series_key(&mut self.key, &series);
                self.index.insert(self.key.clone(), kept.len());
                kept.push(series);
            }
        }
        self.series = kept;
        self.last_flush = now;
        out
    }

    /// Drops every gauge's value (so a later `+n` starts from 0).
    pub fn forget_gauges(&mut self) {
        self.series
            .retain(|s| !matches!(s.state, State::Gauge(_)) || s.touched);
        self.index.clear();
        for (i, series) in self.series.iter().enumerate() {
            self.key.clear();
            series_key(&mut self.key, series);
            self.index.insert(self.key.clone(), i);
        }
    }
}

fn series_key(key: &mut String, series: &Series) {
    key.push_str(series.kind.metric_type());
    key.push('\u{0}');
    key.push_str(&series.table);
    for (k, v) in &series.tags {
        key.push('\u{1}');
        key.push_str(k);
        key.push('\u{2}');
        key.push_str(v);
    }
}

fn conflict(table: &str, metric_type: &'static str, column: String, c: Conflict) -> Error {
    let table = table.to_string();
    match c {
        Conflict::Type {
            existing,
            offered,
            stored,
        } => Error::TypeConflict {
            table,
            column,
            existing,
            offered,
            stored,
            metric_type,
        },
        Conflict::Kind { existing } => Error::KindConflict { table, existing },
        Conflict::TooManyColumns => Error::TooManyColumns {
            table,
            limit: MAX_COLUMNS,
        },
    }
}

impl Summary {
    fn new() -> Self {
        Summary {
            weight: 0.0,
            sum: 0.0,
            mean: 0.0,
            m2: 0.0,
            lower: f64::INFINITY,
            upper: f64::NEG_INFINITY,
            seen: 0,
            sample: Vec::new(),
        }
    }

    /// Adds `x` counted `w` times (1 / sample rate): weighted Welford for mean and
    /// variance, and Algorithm R for the reservoir (one entry per value received).
    fn add(&mut self, x: f64, w: f64, reservoir: usize, rng: &mut u64) {
        self.weight += w;
        self.sum += x * w;
        let delta = x - self.mean;
        self.mean += delta * w / self.weight;
        self.m2 += w * delta * (x - self.mean);
        self.lower = self.lower.min(x);
        self.upper = self.upper.max(x);
        self.seen += 1;
        if self.sample.len() < reservoir {
            self.sample.push(x);
        } else if reservoir > 0 {
            // xorshift64*
            *rng ^= *rng >> 12;
            *rng ^= *rng << 25;
            *rng ^= *rng >> 27;
            let r = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let j = (r % self.seen) as usize;
            if j < reservoir {
                self.sample[j] = x;
            }
        }
    }

    /// The middle of the sorted sample, or the mean of its two middle values (Telegraf's
    /// `median`).
    fn median(&self) -> f64 {
        let n = self.sample.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => self.sample[n / 2],
            _ => (self.sample[n / 2 - 1] + self.sample[n / 2]) / 2.0,
        }
    }

    /// Telegraf's rule: the value at `floor(n * p / 100)` of the sorted sample.
    fn percentile(&self, p: f64) -> f64 {
        if self.sample.is_empty() {
            return f64::NAN;
        }
        let i = (self.sample.len() as f64 * p / 100.0) as usize;
        self.sample[i.min(self.sample.len() - 1)]
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
