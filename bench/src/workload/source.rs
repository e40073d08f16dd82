//! Any reference workload as one stream of rows, for the code that loads it into an engine
//! (Sextant's ingest, the Parquet peer): the generator, its raw columnar batches, their
//! series, and their conversion to Arrow.
//!
//! ```
//! use sextant_bench::workload::cpu::CpuConfig;
//! use sextant_bench::workload::source::{RawBatch, WorkloadSpec};
//!
//! let spec = WorkloadSpec::Cpu(CpuConfig::new(3, 1.0 / 24.0));
//! let mut generator = spec.generator()?;
//! let tags = generator.tags();
//! let mut raw = RawBatch::empty(&spec);
//! let mut rows = 0;
//! while generator.fill(&mut raw, 500) > 0 {
//!     rows += tags.to_record_batch(&raw)?.num_rows();
//! }
//! assert_eq!(rows as u64, spec.rows());
//! # Ok::<(), sextant_bench::Error>(())
//! ```

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use sextant_engine::TableKind;

use super::cpu::{self, CpuBatch, CpuConfig, CpuGenerator, CpuHost, CpuVariant};
use super::logs::{self, LogBatch, LogTags, LogsConfig, LogsGenerator};
use crate::Result;

/// A workload and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadSpec {
    /// TSBS cpu-only or noisy floats (by [`CpuConfig::variant`]).
    Cpu(CpuConfig),
    /// Application logs.
    Logs(LogsConfig),
}

impl WorkloadSpec {
    /// The workload's name on the command line: `cpu-only`, `noisy-floats` or `logs`.
    pub fn name(&self) -> &'static str {
        match self {
            WorkloadSpec::Cpu(c) if c.variant == CpuVariant::NoisyFloats => "noisy-floats",
            WorkloadSpec::Cpu(_) => "cpu-only",
            WorkloadSpec::Logs(_) => "logs",
        }
    }

    /// A fresh generator at the first row.
    pub fn generator(&self) -> Result<Generator> {
        Ok(match self {
            WorkloadSpec::Cpu(c) => Generator::Cpu(CpuGenerator::new(c.clone())?),
            WorkloadSpec::Logs(c) => Generator::Logs(Box::new(LogsGenerator::new(c.clone())?)),
        })
    }

    /// The table the rows go to.
    pub fn table(&self) -> &'static str {
        match self {
            WorkloadSpec::Cpu(_) => cpu::TABLE,
            WorkloadSpec::Logs(_) => logs::TABLE,
        }
    }

    /// The table's kind: cpu is a metric table, logs an event table.
    pub fn kind(&self) -> TableKind {
        match self {
            WorkloadSpec::Cpu(_) => TableKind::Metric,
            WorkloadSpec::Logs(_) => TableKind::Event,
        }
    }

    /// The Arrow schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        match self {
            WorkloadSpec::Cpu(_) => cpu::schema(),
            WorkloadSpec::Logs(_) => logs::schema(),
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> u64 {
        match self {
            WorkloadSpec::Cpu(c) => c.rows(),
            WorkloadSpec::Logs(c) => c.rows(),
        }
    }

    /// Values per row, the unit of "bytes per value": the 10 fields of cpu; the 4 non-tag
    /// columns of logs (`level`, `message`, `trace_id`, `duration_ms`).
    pub fn values_per_row(&self) -> u32 {
        match self {
            WorkloadSpec::Cpu(_) => cpu::FIELDS.len() as u32,
            WorkloadSpec::Logs(_) => 4,
        }
    }

    /// The columns that name a series, in sort order: `hostname` (the other cpu tags are
    /// fixed per host); `service`, `host` (a host's `env` is fixed).
    pub fn series_columns(&self) -> &'static [&'static str] {
        match self {
            WorkloadSpec::Cpu(_) => &["hostname"],
            WorkloadSpec::Logs(_) => &["service", "host"],
        }
    }

    /// The first and the end (exclusive) timestamp of the data, ns.
    pub fn range_ns(&self) -> (i64, i64) {
        match self {
            WorkloadSpec::Cpu(c) => (c.start_ns, c.end_ns),
            WorkloadSpec::Logs(c) => (c.start_ns, c.end_ns),
        }
    }
}

/// A generator of either workload.
#[derive(Debug)]
pub enum Generator {
    /// cpu-only or noisy floats.
    Cpu(CpuGenerator),
    /// Logs (boxed: its state is several times a cpu generator's).
    Logs(Box<LogsGenerator>),
}

impl Generator {
    /// Replaces `raw`'s rows with up to `rows` next rows; 0 when the workload is done.
    ///
    /// # Panics
    /// If `raw` is of the other workload (make it with [`RawBatch::empty`]).
    pub fn fill(&mut self, raw: &mut RawBatch, rows: usize) -> usize {
        match (self, raw) {
            (Generator::Cpu(g), RawBatch::Cpu(b)) => g.fill(b, rows),
            (Generator::Logs(g), RawBatch::Logs(b)) => g.fill(b, rows),
            _ => panic!("a raw batch of another workload"),
        }
    }

    /// Rows not generated yet.
    pub fn remaining_rows(&self) -> u64 {
        match self {
            Generator::Cpu(g) => g.remaining_rows(),
            Generator::Logs(g) => g.remaining_rows(),
        }
    }

    /// The tag values the raw batches refer to.
    pub fn tags(&self) -> Tags {
        match self {
            Generator::Cpu(g) => Tags::Cpu(Arc::new(g.hosts().to_vec())),
            Generator::Logs(g) => Tags::Logs(Arc::new(g.tags().clone())),
        }
    }
}

/// Rows of either workload in the generators' columnar form (tags as indexes).
#[derive(Debug, Clone)]
pub enum RawBatch {
    /// cpu rows.
    Cpu(CpuBatch),
    /// Log events.
    Logs(LogBatch),
}

impl RawBatch {
    /// An empty batch of `spec`'s workload.
    pub fn empty(spec: &WorkloadSpec) -> RawBatch {
        match spec {
            WorkloadSpec::Cpu(_) => RawBatch::Cpu(CpuBatch::default()),
            WorkloadSpec::Logs(_) => RawBatch::Logs(LogBatch::default()),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            RawBatch::Cpu(b) => b.len(),
            RawBatch::Logs(b) => b.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The series of row `i` as a number (host index for cpu; service and host index for
    /// logs); [`Tags::series_names`] gives its names.
    pub fn series(&self, i: usize) -> u64 {
        match self {
            RawBatch::Cpu(b) => u64::from(b.host[i]),
            RawBatch::Logs(b) => (u64::from(b.service[i]) << 32) | u64::from(b.host[i]),
        }
    }

    /// Appends rows `rows` of `other`, which is of the same workload.
    ///
    /// # Panics
    /// If `other` is of the other workload.
    pub fn extend_from(&mut self, other: &RawBatch, rows: &[u32]) {
        match (self, other) {
            (RawBatch::Cpu(a), RawBatch::Cpu(b)) => a.extend_from(b, rows),
            (RawBatch::Logs(a), RawBatch::Logs(b)) => a.extend_from(b, rows),
            _ => panic!("a raw batch of another workload"),
        }
    }
}

/// The tag values of a generator, which turn raw batches into Arrow; cheap to clone.
#[derive(Debug, Clone)]
pub enum Tags {
    /// The cpu hosts.
    Cpu(Arc<Vec<CpuHost>>),
    /// The log services and hosts.
    Logs(Arc<LogTags>),
}

impl Tags {
    /// `raw` as Arrow, in the workload's schema.
    ///
    /// # Panics
    /// If `raw` is of the other workload.
    pub fn to_record_batch(&self, raw: &RawBatch) -> Result<RecordBatch> {
        match (self, raw) {
            (Tags::Cpu(hosts), RawBatch::Cpu(b)) => b.to_record_batch(hosts),
            (Tags::Logs(tags), RawBatch::Logs(b)) => b.to_record_batch(tags),
            _ => panic!("a raw batch of another workload"),
        }
    }

    /// The values of [`WorkloadSpec::series_columns`] of series `series`.
    pub fn series_names(&self, series: u64) -> Vec<&str> {
        match self {
            Tags::Cpu(hosts) => vec![hosts[series as usize].hostname.as_str()],
            Tags::Logs(tags) => vec![
                tags.services[(series >> 32) as usize].as_str(),
                tags.hosts[(series & 0xffff_ffff) as usize].name.as_str(),
            ],
        }
    }
}
