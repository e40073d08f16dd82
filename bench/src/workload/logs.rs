//! The application-logs workload (WORKLOADS.md §2): an event table `logs`.
//!
//! Exactly `events_per_second` events fall in each second of the range, at random
//! nanosecond offsets, emitted in time order. Each second's events are drawn from their own
//! random stream (keyed by the absolute second) and incidents from a stream per UTC day, so
//! the events of a given second are the same whatever range or batch size they are
//! generated with.
//!
//! ```
//! use sextant_bench::workload::logs::{LogsConfig, LogsGenerator};
//!
//! let mut config = LogsConfig::new(100, 1.0);
//! config.end_ns = config.start_ns + 60 * 1_000_000_000; // one minute
//! let mut generator = LogsGenerator::new(config)?;
//! let batch = generator.next_batch(1000).expect("rows");
//! assert_eq!(batch.len(), 1000);
//! assert!(batch.time.windows(2).all(|w| w[0] <= w[1]));
//! let record_batch = batch.to_record_batch(generator.tags())?;
//! assert_eq!(record_batch.num_columns(), 8);
//! # Ok::<(), sextant_bench::Error>(())
//! ```

mod templates;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::RngCore;

pub use templates::{MAX_MESSAGE_LEN, MIN_MESSAGE_LEN};

use super::ROLE_KEY;
use super::rng::{self, Normal, Rng, below, unit_f64};
use crate::error::{Result, invalid};
use crate::time::{NANOS_PER_DAY, NANOS_PER_SECOND, REFERENCE_START_NS};
use templates::Templates;

/// The table name.
pub const TABLE: &str = "logs";
/// The tag names, in schema order.
pub const TAGS: [&str; 3] = ["service", "host", "env"];

/// Service names for the first services; later ones are `service-<i>`.
const SERVICE_NAMES: [&str; 20] = [
    "api-gateway",
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "email",
    "frontend",
    "inventory",
    "notification",
    "orders",
    "payments",
    "recommendation",
    "search",
    "shipping",
    "user-profile",
    "ads",
    "analytics",
    "cache",
    "scheduler",
];
/// Share of hosts in production (the rest are staging).
const PRODUCTION_SHARE: f64 = 0.8;
/// How many services have incidents.
const INCIDENT_SERVICES: u32 = 3;
/// Incidents per incident service per UTC day.
const INCIDENTS_PER_DAY: u32 = 2;
/// Longest incident, in minutes (each lasts 1 to this many whole minutes).
const MAX_INCIDENT_MINUTES: u32 = 5;
/// The error share of an incident service during an incident.
pub const INCIDENT_ERROR_SHARE: f64 = 0.30;
/// Share of events that start a new trace; the rest join one of the second's recent traces.
const NEW_TRACE_SHARE: f64 = 0.5;
/// Share of events with a `duration_ms`.
const DURATION_SHARE: f64 = 0.5;

/// A log level, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `trace`
    Trace,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `fatal`
    Fatal,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// The share of events at each level outside incidents (WORKLOADS.md §2), in the order
    /// of [`Level::ALL`].
    pub const SHARES: [f64; 6] = [0.05, 0.20, 0.60, 0.10, 0.045, 0.005];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parameters of the logs workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsConfig {
    /// Number of services (default 20).
    pub services: u32,
    /// Number of hosts (default 100).
    pub hosts: u32,
    /// Events per second across all services (default 10,000).
    pub events_per_second: u32,
    /// First second, ns since the epoch, a whole second (default 2016-01-01T00:00:00Z).
    pub start_ns: i64,
    /// End of the range, exclusive, a whole second (default start + days).
    pub end_ns: i64,
    /// The seed every value is drawn from (default 1).
    pub seed: u64,
}

impl LogsConfig {
    /// `events_per_second` for `days` (rounded to whole seconds) from 2016-01-01, 20
    /// services, 100 hosts, seed 1.
    pub fn new(events_per_second: u32, days: f64) -> Self {
        let seconds = (days * (NANOS_PER_DAY / NANOS_PER_SECOND) as f64).round() as i64;
        LogsConfig {
            services: 20,
            hosts: 100,
            events_per_second,
            start_ns: REFERENCE_START_NS,
            end_ns: REFERENCE_START_NS + seconds * NANOS_PER_SECOND,
            seed: 1,
        }
    }

    /// The same configuration with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Number of whole seconds in the range.
    pub fn seconds(&self) -> u64 {
        ((self.end_ns - self.start_ns).max(0) / NANOS_PER_SECOND) as u64
    }

    /// Number of events: seconds x events_per_second.
    pub fn rows(&self) -> u64 {
        self.seconds() * u64::from(self.events_per_second)
    }

    /// Checks that the parameters make a non-empty workload.
    pub fn validate(&self) -> Result<()> {
        if self.services == 0 || self.services > 65_536 {
            return Err(invalid(
                "services",
                format!("must be 1 to 65536, got {}", self.services),
            ));
        }
        if self.hosts == 0 {
            return Err(invalid("hosts", "must be at least 1"));
        }
        if self.events_per_second == 0 {
            return Err(invalid("events_per_second", "must be at least 1"));
        }
        for (name, ns) in [("start_ns", self.start_ns), ("end_ns", self.end_ns)] {
            if ns % NANOS_PER_SECOND != 0 {
                return Err(invalid(name, format!("must be a whole second, got {ns}")));
            }
        }
        if self.end_ns <= self.start_ns {
            return Err(invalid(
                "end_ns",
                format!(
                    "must be after start_ns ({}), got {}",
                    self.start_ns, self.end_ns
                ),
            ));
        }
        Ok(())
    }
}

/// One host of the logs workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHost {
    /// `host_<i>`.
    pub name: String,
    /// `production` or `staging`, fixed per host.
    pub env: &'static str,
}

/// The tag values the batches' indexes refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTags {
    /// Service names, indexed by [`LogBatch::service`].
    pub services: Vec<String>,
    /// Hosts, indexed by [`LogBatch::host`]; a row's `env` is its host's.
    pub hosts: Vec<LogHost>,
    /// The hosts each service runs on.
    pub service_hosts: Vec<Vec<u32>>,
}

/// A time window in which one service's error share is [`INCIDENT_ERROR_SHARE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incident {
    /// Index into [`LogTags::services`].
    pub service: u32,
    /// Start, ns since the epoch, a whole minute.
    pub start_ns: i64,
    /// End, exclusive, a whole minute 1 to 5 minutes after the start.
    pub end_ns: i64,
}

/// Log events, column by column, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogBatch {
    /// Timestamps, ns since the epoch.
    pub time: Vec<i64>,
    /// Indexes into [`LogTags::services`].
    pub service: Vec<u32>,
    /// Indexes into [`LogTags::hosts`].
    pub host: Vec<u32>,
    /// Levels.
    pub level: Vec<Level>,
    /// All messages, one after another; see [`LogBatch::message`].
    pub message_data: String,
    /// The end offset in `message_data` of each message.
    pub message_ends: Vec<usize>,
    /// Trace ids, 16 bytes each.
    pub trace_id: Vec<[u8; 16]>,
    /// Durations in milliseconds, on about half the events.
    pub duration_ms: Vec<Option<f64>>,
}

impl LogBatch {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// The message of event `i`.
    pub fn message(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.message_ends[i - 1] };
        &self.message_data[start..self.message_ends[i]]
    }

    /// Removes all events, keeping the allocations.
    pub fn clear(&mut self) {
        self.time.clear();
        self.service.clear();
        self.host.clear();
        self.level.clear();
        self.message_data.clear();
        self.message_ends.clear();
        self.trace_id.clear();
        self.duration_ms.clear();
    }

    /// Appends rows `rows` of `other` (in that order).
    pub fn extend_from(&mut self, other: &LogBatch, rows: &[u32]) {
        for &i in rows {
            let i = i as usize;
            self.time.push(other.time[i]);
            self.service.push(other.service[i]);
            self.host.push(other.host[i]);
            self.level.push(other.level[i]);
            self.message_data.push_str(other.message(i));
            self.message_ends.push(self.message_data.len());
            self.trace_id.push(other.trace_id[i]);
            self.duration_ms.push(other.duration_ms[i]);
        }
    }

    /// The batch as Arrow, in [`schema`]'s layout, with tags looked up in `tags`.
    ///
    /// # Panics
    /// If an index is not in `tags` (pass the generator's own [`LogsGenerator::tags`]).
    pub fn to_record_batch(&self, tags: &LogTags) -> Result<RecordBatch> {
        let service = self
            .service
            .iter()
            .map(|&s| tags.services[s as usize].as_str());
        let host = self
            .host
            .iter()
            .map(|&h| tags.hosts[h as usize].name.as_str());
        let env = self.host.iter().map(|&h| tags.hosts[h as usize].env);
        let messages = (0..self.len()).map(|i| self.message(i));
        let trace_ids = self.trace_id.iter().map(trace_id_hex);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(self.time.clone()).with_timezone("UTC")),
            Arc::new(StringArray::from_iter_values(service)),
            Arc::new(StringArray::from_iter_values(host)),
            Arc::new(StringArray::from_iter_values(env)),
            Arc::new(StringArray::from_iter_values(
                self.level.iter().map(|l| l.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(messages)),
            Arc::new(StringArray::from_iter_values(trace_ids)),
            Arc::new(Float64Array::from(self.duration_ms.clone())),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// A trace id as 32 lower-case hex digits.
pub fn trace_id_hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Arrow schema of the logs table: `time` (Timestamp(ns, "UTC")); `service`, `host`,
/// `env` as Utf8 with metadata `{"sextant.role": "tag"}`; `level` as Utf8 with
/// `{"sextant.role": "level"}`; `message` and `trace_id` (32 hex digits) as Utf8; and
/// `duration_ms` as nullable Float64.
pub fn schema() -> SchemaRef {
    let role = |r: &str| HashMap::from([(ROLE_KEY.to_owned(), r.to_owned())]);
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("time", ts, false),
        Field::new("service", DataType::Utf8, false).with_metadata(role("tag")),
        Field::new("host", DataType::Utf8, false).with_metadata(role("tag")),
        Field::new("env", DataType::Utf8, false).with_metadata(role("tag")),
        Field::new("level", DataType::Utf8, false).with_metadata(role("level")),
        Field::new("message", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("duration_ms", DataType::Float64, true),
    ]))
}

/// Cumulative level thresholds over 2^32 for a set of shares.
fn thresholds(shares: [f64; 6]) -> [u64; 6] {
    let mut acc = 0.0;
    shares.map(|s| {
        acc += s;
        (acc * 4_294_967_296.0).round() as u64
    })
}

/// The state of the second being generated.
#[derive(Debug)]
struct Second {
    sec: i64,
    rng: Rng,
    /// Sorted nanosecond offsets of the second's events.
    offsets: Vec<u32>,
    next: usize,
    /// Whether each service is in an incident during this second.
    incident: Vec<bool>,
    /// Recent trace ids of this second (a ring).
    traces: [[u8; 16]; 8],
    trace_count: usize,
}

/// Streams the events of a [`LogsConfig`].
#[derive(Debug)]
pub struct LogsGenerator {
    config: LogsConfig,
    tags: LogTags,
    /// Cumulative service weights over 2^32 (Zipf: service i has weight 1 / (i + 1)).
    service_cdf: Vec<u64>,
    incident_services: Vec<u32>,
    templates: Templates,
    normal: &'static Normal,
    base_levels: [u64; 6],
    incident_levels: [u64; 6],
    /// Incidents of `incident_day`.
    incident_day: i64,
    day_incidents: Vec<Incident>,
    second: Option<Second>,
    /// The next second to start, ns since the epoch.
    next_second_ns: i64,
}

impl LogsGenerator {
    /// Draws the services' hosts, popularity and incident-prone services.
    pub fn new(config: LogsConfig) -> Result<Self> {
        config.validate()?;
        let mut rng = rng::rng_for(config.seed, rng::stream::LOGS_SETUP, 0);
        let services = (0..config.services)
            .map(|i| match SERVICE_NAMES.get(i as usize) {
                Some(name) => (*name).to_owned(),
                None => format!("service-{i}"),
            })
            .collect();
        let hosts = (0..config.hosts)
            .map(|i| LogHost {
                name: format!("host_{i}"),
                env: if unit_f64(rng.next_u64()) < PRODUCTION_SHARE {
                    "production"
                } else {
                    "staging"
                },
            })
            .collect();
        let per_service = (config.hosts / 4).max(1);
        let service_hosts = (0..config.services)
            .map(|_| {
                let mut chosen = sample_distinct(&mut rng, config.hosts, per_service);
                chosen.sort_unstable();
                chosen
            })
            .collect();
        let incident_services = sample_distinct(
            &mut rng,
            config.services,
            INCIDENT_SERVICES.min(config.services),
        );
        let total: f64 = (1..=config.services).map(|i| 1.0 / f64::from(i)).sum();
        let mut acc = 0.0;
        let service_cdf = (1..=config.services)
            .map(|i| {
                acc += 1.0 / f64::from(i) / total;
                (acc * 4_294_967_296.0).round() as u64
            })
            .collect();
        let other = (1.0 - INCIDENT_ERROR_SHARE) / (1.0 - Level::SHARES[4]);
        let mut incident_shares = Level::SHARES.map(|s| s * other);
        incident_shares[4] = INCIDENT_ERROR_SHARE;
        Ok(LogsGenerator {
            tags: LogTags {
                services,
                hosts,
                service_hosts,
            },
            service_cdf,
            incident_services,
            templates: Templates::new(),
            normal: Normal::get(),
            base_levels: thresholds(Level::SHARES),
            incident_levels: thresholds(incident_shares),
            incident_day: i64::MIN,
            day_incidents: Vec::new(),
            second: None,
            next_second_ns: config.start_ns,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LogsConfig {
        &self.config
    }

    /// The tag values that batches refer to by index.
    pub fn tags(&self) -> &LogTags {
        &self.tags
    }

    /// Number of distinct message templates (about 200).
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Every incident that overlaps the configured range, in time order.
    pub fn incidents(&self) -> Vec<Incident> {
        let first = self.config.start_ns.div_euclid(NANOS_PER_DAY);
        let last = (self.config.end_ns - 1).div_euclid(NANOS_PER_DAY);
        let mut all: Vec<Incident> = (first..=last)
            .flat_map(|day| self.incidents_of_day(day))
            .filter(|i| i.end_ns > self.config.start_ns && i.start_ns < self.config.end_ns)
            .collect();
        all.sort_by_key(|i| (i.start_ns, i.service));
        all
    }

    fn incidents_of_day(&self, day: i64) -> Vec<Incident> {
        let mut rng = rng::rng_for(self.config.seed, rng::stream::LOGS_INCIDENTS, day as u64);
        let mut incidents = Vec::new();
        for &service in &self.incident_services {
            for _ in 0..INCIDENTS_PER_DAY {
                let r = rng.next_u64();
                let minutes = 1 + below(r as u32, MAX_INCIDENT_MINUTES);
                let start_minute = below((r >> 32) as u32, 1440 - minutes);
                let start_ns =
                    day * NANOS_PER_DAY + i64::from(start_minute) * 60 * NANOS_PER_SECOND;
                incidents.push(Incident {
                    service,
                    start_ns,
                    end_ns: start_ns + i64::from(minutes) * 60 * NANOS_PER_SECOND,
                });
            }
        }
        incidents
    }

    /// Events not yet generated.
    pub fn remaining_rows(&self) -> u64 {
        let in_second = self.second.as_ref().map_or(0, |s| s.offsets.len() - s.next) as u64;
        let seconds = ((self.config.end_ns - self.next_second_ns) / NANOS_PER_SECOND) as u64;
        in_second + seconds * u64::from(self.config.events_per_second)
    }

    fn start_second(&mut self, sec_ns: i64) -> Second {
        let sec = sec_ns.div_euclid(NANOS_PER_SECOND);
        let day = sec_ns.div_euclid(NANOS_PER_DAY);
        if day != self.incident_day {
            self.day_incidents = self.incidents_of_day(day);
            self.incident_day = day;
        }
        let mut incident = vec![false; self.config.services as usize];
        for i in &self.day_incidents {
            if i.start_ns <= sec_ns && sec_ns < i.end_ns {
                incident[i.service as usize] = true;
            }
        }
        let mut rng = rng::rng_for(self.config.seed, rng::stream::LOGS_SECOND, sec as u64);
        let n = self.config.events_per_second as usize;
        let mut offsets: Vec<u32> = (0..n)
            .map(|_| below(rng.next_u32(), 1_000_000_000))
            .collect();
        offsets.sort_unstable();
        Second {
            sec,
            rng,
            offsets,
            next: 0,
            incident,
            traces: [[0; 16]; 8],
            trace_count: 0,
        }
    }

    /// Replaces `batch`'s events with the next (up to) `max_rows` events, reusing its
    /// allocations; returns the number of events, 0 at the end.
    pub fn fill(&mut self, batch: &mut LogBatch, max_rows: usize) -> usize {
        batch.clear();
        while batch.len() < max_rows {
            let mut second = match self.second.take() {
                Some(s) if s.next < s.offsets.len() => s,
                _ if self.next_second_ns < self.config.end_ns => {
                    let s = self.start_second(self.next_second_ns);
                    self.next_second_ns += NANOS_PER_SECOND;
                    s
                }
                _ => break,
            };
            let take = (max_rows - batch.len()).min(second.offsets.len() - second.next);
            for _ in 0..take {
                self.event(&mut second, batch);
            }
            self.second = Some(second);
        }
        batch.len()
    }

    fn event(&self, s: &mut Second, batch: &mut LogBatch) {
        let rng = &mut s.rng;
        batch
            .time
            .push(s.sec * NANOS_PER_SECOND + i64::from(s.offsets[s.next]));
        s.next += 1;
        let r = u64::from(rng.next_u32());
        let service = self.service_cdf.partition_point(|&c| c <= r);
        let service = service.min(self.service_cdf.len() - 1);
        let hosts = &self.tags.service_hosts[service];
        let host = hosts[below(rng.next_u32(), hosts.len() as u32) as usize];
        let levels = if s.incident[service] {
            &self.incident_levels
        } else {
            &self.base_levels
        };
        let r = u64::from(rng.next_u32());
        let level = Level::ALL[levels.iter().position(|&t| r < t).unwrap_or(2)];
        self.templates
            .render(level, &mut || rng.next_u32(), &mut batch.message_data);
        batch.message_ends.push(batch.message_data.len());
        let r = rng.next_u64();
        let trace = if s.trace_count == 0 || unit_f64(r) < NEW_TRACE_SHARE {
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            s.traces[s.trace_count % 8] = id;
            s.trace_count += 1;
            id
        } else {
            s.traces[below(r as u32, s.trace_count.min(8) as u32) as usize]
        };
        let r = rng.next_u64();
        let duration = (unit_f64(r) < DURATION_SHARE).then(|| {
            // Log-normal, median 12 ms, sigma 1.2; rounded to microseconds.
            let z = self.normal.sample(rng.next_u32());
            (rng::exp(rng::ln(12.0) + 1.2 * z) * 1000.0).round() / 1000.0
        });
        batch.service.push(service as u32);
        batch.host.push(host);
        batch.level.push(level);
        batch.trace_id.push(trace);
        batch.duration_ms.push(duration);
    }

    /// The next (up to) `max_rows` events in a new batch, or `None` at the end.
    pub fn next_batch(&mut self, max_rows: usize) -> Option<LogBatch> {
        let mut batch = LogBatch::default();
        (self.fill(&mut batch, max_rows) > 0).then_some(batch)
    }

    /// An iterator over batches of `rows_per_batch` events (the last may be shorter).
    pub fn batches(self, rows_per_batch: usize) -> LogBatches {
        LogBatches {
            generator: self,
            rows_per_batch: rows_per_batch.max(1),
        }
    }
}

/// `k` distinct values of 0..n in draw order (a partial Fisher-Yates shuffle).
fn sample_distinct(rng: &mut Rng, n: u32, k: u32) -> Vec<u32> {
    let mut all: Vec<u32> = (0..n).collect();
    for i in 0..k {
        let j = i + below(rng.next_u32(), n - i);
        all.swap(i as usize, j as usize);
    }
    all.truncate(k as usize);
    all
}

/// Iterator over a [`LogsGenerator`]'s batches; see [`LogsGenerator::batches`].
#[derive(Debug)]
pub struct LogBatches {
    generator: LogsGenerator,
    rows_per_batch: usize,
}

impl LogBatches {
    /// The generator, for its tags and configuration.
    pub fn generator(&self) -> &LogsGenerator {
        &self.generator
    }
}

impl Iterator for LogBatches {
    type Item = LogBatch;

    fn next(&mut self) -> Option<LogBatch> {
        self.generator.next_batch(self.rows_per_batch)
    }
}

#[cfg(test)]
mod tests;
