//! The TSBS devops `cpu-only` workload (WORKLOADS.md §1) and its noisy-float variant (§3).
//!
//! `scale` hosts report 10 CPU fields every 10 s. Each host's tags are drawn once from the
//! seed; each field is a random walk clamped to [0, 100]. Rows come time-major (epoch by
//! epoch, hosts in order) in columnar [`CpuBatch`]es, so any number of rows can be made
//! without holding them: the generator keeps only each host's ten walk states and random
//! stream (about 130 bytes a host).
//!
//! Every host has its own random stream, so the values do not depend on the batch size.
//!
//! ```
//! use sextant_bench::workload::cpu::{CpuConfig, CpuGenerator};
//!
//! let config = CpuConfig::new(10, 1.0);
//! let mut generator = CpuGenerator::new(config)?;
//! assert_eq!(generator.hosts()[3].hostname, "host_3");
//! let batch = generator.next_batch(25).expect("rows");
//! assert_eq!(batch.len(), 25);
//! assert_eq!(batch.host[12], 2); // epoch 1, host 2
//! let record_batch = batch.to_record_batch(generator.hosts())?;
//! assert_eq!(record_batch.num_columns(), 21);
//! # Ok::<(), sextant_bench::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::{Rng as _, RngCore};

use super::ROLE_KEY;
use super::rng::{self, Normal, Rng, unit_f64};
use crate::error::{Result, invalid};
use crate::time::{NANOS_PER_DAY, NANOS_PER_SECOND, REFERENCE_START_NS};

/// The table name.
pub const TABLE: &str = "cpu";
/// Number of fields.
pub const FIELD_COUNT: usize = 10;
/// The field names, in order.
pub const FIELDS: [&str; FIELD_COUNT] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];
/// The tag names, in the order of [`CpuHost::tags`].
pub const TAGS: [&str; 10] = [
    "hostname",
    "region",
    "datacenter",
    "rack",
    "os",
    "arch",
    "team",
    "service",
    "service_version",
    "service_environment",
];
/// The TSBS log interval, 10 s, in ns.
pub const INTERVAL_NS: i64 = 10 * NANOS_PER_SECOND;

/// Regions and their datacenters (zones).
const REGIONS: [(&str, &[&str]); 9] = [
    (
        "us-east-1",
        &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"],
    ),
    ("us-west-1", &["us-west-1a", "us-west-1b"]),
    ("us-west-2", &["us-west-2a", "us-west-2b", "us-west-2c"]),
    ("eu-west-1", &["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    ("eu-central-1", &["eu-central-1a", "eu-central-1b"]),
    ("ap-southeast-1", &["ap-southeast-1a", "ap-southeast-1b"]),
    ("ap-southeast-2", &["ap-southeast-2a", "ap-southeast-2b"]),
    ("ap-northeast-1", &["ap-northeast-1a", "ap-northeast-1c"]),
    ("sa-east-1", &["sa-east-1a", "sa-east-1b", "sa-east-1c"]),
];
const OS: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const ARCH: [&str; 2] = ["x64", "x86"];
const TEAM: [&str; 4] = ["SF", "NYC", "LON", "CHI"];
const ENVIRONMENT: [&str; 3] = ["production", "staging", "test"];

/// Which values the fields carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CpuVariant {
    /// TSBS `cpu-only`: the walk's state truncated to an integer (emitted as an integral f64).
    CpuOnly,
    /// WORKLOADS.md §3: the walk's full-precision f64 state.
    NoisyFloats,
}

/// Parameters of the cpu workload.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CpuConfig {
    /// Number of hosts (TSBS `scale`; standard 4000).
    pub scale: u32,
    /// First timestamp, ns since the epoch (default 2016-01-01T00:00:00Z).
    pub start_ns: i64,
    /// End of the time range, exclusive, ns since the epoch (default start + days).
    pub end_ns: i64,
    /// Time between a host's rows, ns (default 10 s).
    pub interval_ns: i64,
    /// The seed every value is drawn from (default 1).
    pub seed: u64,
    /// Integer-valued (default) or full-precision fields.
    pub variant: CpuVariant,
}

impl CpuConfig {
    /// `scale` hosts for `days` days from 2016-01-01, 10 s interval, seed 1, integer values.
    /// `days` may be fractional; the range is rounded to whole nanoseconds.
    pub fn new(scale: u32, days: f64) -> Self {
        CpuConfig {
            scale,
            start_ns: REFERENCE_START_NS,
            end_ns: REFERENCE_START_NS + (days * NANOS_PER_DAY as f64).round() as i64,
            interval_ns: INTERVAL_NS,
            seed: 1,
            variant: CpuVariant::CpuOnly,
        }
    }

    /// The same configuration with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same configuration with another variant.
    pub fn with_variant(mut self, variant: CpuVariant) -> Self {
        self.variant = variant;
        self
    }

    /// Number of epochs: `(end - start) / interval`, rounded down.
    pub fn epochs(&self) -> u64 {
        if self.interval_ns <= 0 || self.end_ns <= self.start_ns {
            return 0;
        }
        ((self.end_ns - self.start_ns) / self.interval_ns) as u64
    }

    /// Number of rows: epochs x scale.
    pub fn rows(&self) -> u64 {
        self.epochs() * u64::from(self.scale)
    }

    /// Checks that the parameters make a non-empty workload.
    pub fn validate(&self) -> Result<()> {
        if self.scale == 0 {
            return Err(invalid("scale", "must be at least 1 host"));
        }
        if self.interval_ns <= 0 {
            return Err(invalid(
                "interval_ns",
                format!("must be positive, got {}", self.interval_ns),
            ));
        }
        if self.epochs() == 0 {
            return Err(invalid(
                "end_ns",
                format!(
                    "the range [{}, {}) holds no {} ns interval",
                    self.start_ns, self.end_ns, self.interval_ns
                ),
            ));
        }
        Ok(())
    }
}

/// One host's tags, fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuHost {
    /// `host_<i>`.
    pub hostname: String,
    /// One of the 9 regions.
    pub region: &'static str,
    /// A zone of `region`.
    pub datacenter: &'static str,
    /// `0` to `99`.
    pub rack: String,
    /// `Ubuntu16.10`, `Ubuntu16.04LTS` or `Ubuntu15.10`.
    pub os: &'static str,
    /// `x64` or `x86`.
    pub arch: &'static str,
    /// `SF`, `NYC`, `LON` or `CHI`.
    pub team: &'static str,
    /// `0` to `19`.
    pub service: String,
    /// `0` or `1`.
    pub service_version: String,
    /// `production`, `staging` or `test`.
    pub service_environment: &'static str,
}

impl CpuHost {
    /// The tag values, in the order of [`TAGS`].
    pub fn tags(&self) -> [&str; 10] {
        [
            &self.hostname,
            self.region,
            self.datacenter,
            &self.rack,
            self.os,
            self.arch,
            self.team,
            &self.service,
            &self.service_version,
            self.service_environment,
        ]
    }

    fn draw(index: u32, rng: &mut Rng) -> CpuHost {
        let (region, zones) = REGIONS[rng.random_range(0..REGIONS.len())];
        CpuHost {
            hostname: format!("host_{index}"),
            region,
            datacenter: zones[rng.random_range(0..zones.len())],
            rack: rng.random_range(0..100u32).to_string(),
            os: OS[rng.random_range(0..OS.len())],
            arch: ARCH[rng.random_range(0..ARCH.len())],
            team: TEAM[rng.random_range(0..TEAM.len())],
            service: rng.random_range(0..20u32).to_string(),
            service_version: rng.random_range(0..2u32).to_string(),
            service_environment: ENVIRONMENT[rng.random_range(0..ENVIRONMENT.len())],
        }
    }
}

/// Rows of the cpu table, column by column. Row `i` is host `host[i]` at `time[i]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuBatch {
    /// Timestamps, ns since the epoch.
    pub time: Vec<i64>,
    /// Host indexes into [`CpuGenerator::hosts`].
    pub host: Vec<u32>,
    /// The 10 fields, in the order of [`FIELDS`].
    pub fields: [Vec<f64>; FIELD_COUNT],
}

impl CpuBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Removes all rows, keeping the allocations.
    pub fn clear(&mut self) {
        self.time.clear();
        self.host.clear();
        self.fields.iter_mut().for_each(Vec::clear);
    }

    /// Appends rows `rows` of `other` (in that order).
    pub fn extend_from(&mut self, other: &CpuBatch, rows: &[u32]) {
        self.time
            .extend(rows.iter().map(|&i| other.time[i as usize]));
        self.host
            .extend(rows.iter().map(|&i| other.host[i as usize]));
        for (mine, theirs) in self.fields.iter_mut().zip(&other.fields) {
            mine.extend(rows.iter().map(|&i| theirs[i as usize]));
        }
    }

    /// The batch as Arrow, in [`schema`]'s layout, with tags looked up in `hosts`.
    ///
    /// # Panics
    /// If a host index is not in `hosts` (pass the generator's own [`CpuGenerator::hosts`]).
    pub fn to_record_batch(&self, hosts: &[CpuHost]) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(1 + TAGS.len() + FIELD_COUNT);
        columns.push(Arc::new(
            TimestampNanosecondArray::from(self.time.clone()).with_timezone("UTC"),
        ));
        for t in 0..TAGS.len() {
            let values = self.host.iter().map(|&h| hosts[h as usize].tags()[t]);
            columns.push(Arc::new(StringArray::from_iter_values(values)));
        }
        for field in &self.fields {
            columns.push(Arc::new(Float64Array::from(field.clone())));
        }
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// The Arrow schema of the cpu table: `time` (Timestamp(ns, "UTC")), the 10 tags as Utf8
/// with metadata `{"sextant.role": "tag"}`, then the 10 fields as Float64. No column is
/// nullable.
pub fn schema() -> SchemaRef {
    let mut fields = Vec::with_capacity(1 + TAGS.len() + FIELD_COUNT);
    fields.push(Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    ));
    for tag in TAGS {
        let role = HashMap::from([(ROLE_KEY.to_owned(), "tag".to_owned())]);
        fields.push(Field::new(tag, DataType::Utf8, false).with_metadata(role));
    }
    for field in FIELDS {
        fields.push(Field::new(field, DataType::Float64, false));
    }
    Arc::new(Schema::new(fields))
}

/// Streams the rows of a [`CpuConfig`].
#[derive(Debug)]
pub struct CpuGenerator {
    config: CpuConfig,
    hosts: Vec<CpuHost>,
    rngs: Vec<Rng>,
    state: Vec<[f64; FIELD_COUNT]>,
    normal: &'static Normal,
    epochs: u64,
    /// The epoch and host of the next row.
    epoch: u64,
    next_host: u32,
}

impl CpuGenerator {
    /// Draws every host's tags and starting values.
    pub fn new(config: CpuConfig) -> Result<Self> {
        config.validate()?;
        let mut hosts = Vec::with_capacity(config.scale as usize);
        let mut rngs = Vec::with_capacity(config.scale as usize);
        let mut state = Vec::with_capacity(config.scale as usize);
        for i in 0..config.scale {
            let mut rng = rng::rng_for(config.seed, rng::stream::CPU_HOST, u64::from(i));
            hosts.push(CpuHost::draw(i, &mut rng));
            state.push(std::array::from_fn(|_| unit_f64(rng.next_u64()) * 100.0));
            rngs.push(rng);
        }
        Ok(CpuGenerator {
            epochs: config.epochs(),
            config,
            hosts,
            rngs,
            state,
            normal: Normal::get(),
            epoch: 0,
            next_host: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CpuConfig {
        &self.config
    }

    /// Every host's tags; index `i` is `host_<i>`, the `host` value of its rows.
    pub fn hosts(&self) -> &[CpuHost] {
        &self.hosts
    }

    /// Rows not yet generated.
    pub fn remaining_rows(&self) -> u64 {
        (self.epochs - self.epoch) * u64::from(self.config.scale) - u64::from(self.next_host)
    }

    /// Replaces `batch`'s rows with the next (up to) `max_rows` rows, reusing its
    /// allocations; returns the number of rows, 0 at the end.
    pub fn fill(&mut self, batch: &mut CpuBatch, max_rows: usize) -> usize {
        batch.clear();
        let n = (max_rows as u64).min(self.remaining_rows()) as usize;
        batch.time.reserve(n);
        batch.host.reserve(n);
        for f in &mut batch.fields {
            f.resize(n, 0.0);
        }
        let mut row = 0;
        while row < n {
            let time = self.config.start_ns + self.epoch as i64 * self.config.interval_ns;
            let first = self.next_host;
            let last = self.config.scale.min(first + (n - row) as u32);
            let hosts = first as usize..last as usize;
            match self.config.variant {
                CpuVariant::CpuOnly => self.epoch_rows::<true>(hosts, &mut batch.fields, row),
                CpuVariant::NoisyFloats => self.epoch_rows::<false>(hosts, &mut batch.fields, row),
            }
            let count = (last - first) as usize;
            row += count;
            batch.time.extend(std::iter::repeat_n(time, count));
            batch.host.extend(first..last);
            if last == self.config.scale {
                self.epoch += 1;
                self.next_host = 0;
            } else {
                self.next_host = last;
            }
        }
        n
    }

    /// Writes the current epoch's rows of `hosts` to `fields` from index `row` on.
    #[inline(never)]
    fn epoch_rows<const TRUNCATE: bool>(
        &mut self,
        hosts: std::ops::Range<usize>,
        fields: &mut [Vec<f64>; FIELD_COUNT],
        row: usize,
    ) {
        let step = self.epoch > 0;
        let normal = self.normal;
        let rngs = &mut self.rngs[hosts.clone()];
        let states = &mut self.state[hosts.clone()];
        let fields: &mut [Vec<f64>; FIELD_COUNT] = fields;
        for (i, (rng, st)) in rngs.iter_mut().zip(states.iter_mut()).enumerate() {
            if step {
                walk(normal, rng, st);
            }
            emit::<TRUNCATE>(st, fields, row + i);
        }
    }

    /// Every row of host `host` (an index into [`CpuGenerator::hosts`]), in time order: the
    /// same rows the time-major stream holds for that host, since each host's values come
    /// from a random stream of its own. It starts that stream afresh and does not change
    /// the generator, so hosts can be taken in any order (by hostname, for a file sorted by
    /// series then time) while only one host's rows are held.
    ///
    /// # Panics
    /// If `host` is not below the scale.
    pub fn host_rows(&self, host: u32) -> CpuBatch {
        assert!(
            host < self.config.scale,
            "host {host} is not below the scale"
        );
        let mut rng = rng::rng_for(self.config.seed, rng::stream::CPU_HOST, u64::from(host));
        CpuHost::draw(host, &mut rng);
        let mut st: [f64; FIELD_COUNT] = std::array::from_fn(|_| unit_f64(rng.next_u64()) * 100.0);
        let n = self.epochs as usize;
        let mut batch = CpuBatch {
            time: Vec::with_capacity(n),
            host: vec![host; n],
            fields: std::array::from_fn(|_| vec![0.0; n]),
        };
        for epoch in 0..n {
            if epoch > 0 {
                walk(self.normal, &mut rng, &mut st);
            }
            match self.config.variant {
                CpuVariant::CpuOnly => emit::<true>(&st, &mut batch.fields, epoch),
                CpuVariant::NoisyFloats => emit::<false>(&st, &mut batch.fields, epoch),
            }
            batch
                .time
                .push(self.config.start_ns + epoch as i64 * self.config.interval_ns);
        }
        batch
    }

    /// The next (up to) `max_rows` rows in a new batch, or `None` at the end.
    pub fn next_batch(&mut self, max_rows: usize) -> Option<CpuBatch> {
        let mut batch = CpuBatch::default();
        (self.fill(&mut batch, max_rows) > 0).then_some(batch)
    }

    /// An iterator over batches of `rows_per_batch` rows (the last may be shorter).
    pub fn batches(self, rows_per_batch: usize) -> CpuBatches {
        CpuBatches {
            generator: self,
            rows_per_batch: rows_per_batch.max(1),
        }
    }
}

/// One epoch's step of a host's walks: a Normal(0, 1) step each, clamped to [0, 100].
#[inline(always)]
fn walk(normal: &Normal, rng: &mut Rng, st: &mut [f64; FIELD_COUNT]) {
    for pair in st.chunks_exact_mut(2) {
        let (a, b) = normal.sample2(rng.next_u64());
        pair[0] = (pair[0] + a).clamp(0.0, 100.0);
        pair[1] = (pair[1] + b).clamp(0.0, 100.0);
    }
}

/// Writes a host's walk states as row `row` of `fields`, truncated to integers if asked.
#[inline(always)]
fn emit<const TRUNCATE: bool>(
    st: &[f64; FIELD_COUNT],
    fields: &mut [Vec<f64>; FIELD_COUNT],
    row: usize,
) {
    for (column, &value) in fields.iter_mut().zip(st.iter()) {
        // The state is in [0, 100], so the round trip through i32 is `trunc()`, in two
        // SSE2 instructions rather than a libm call.
        column[row] = if TRUNCATE {
            f64::from(value as i32)
        } else {
            value
        };
    }
}

/// Iterator over a [`CpuGenerator`]'s batches; see [`CpuGenerator::batches`].
#[derive(Debug)]
pub struct CpuBatches {
    generator: CpuGenerator,
    rows_per_batch: usize,
}

impl CpuBatches {
    /// The generator, for its hosts and configuration.
    pub fn generator(&self) -> &CpuGenerator {
        &self.generator
    }
}

impl Iterator for CpuBatches {
    type Item = CpuBatch;

    fn next(&mut self) -> Option<CpuBatch> {
        self.generator.next_batch(self.rows_per_batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self
            .generator
            .remaining_rows()
            .div_ceil(self.rows_per_batch as u64) as usize;
        (n, Some(n))
    }
}

#[cfg(test)]
mod tests;
