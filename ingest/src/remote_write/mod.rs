//! Prometheus remote write 1.0: the snappy-compressed protobuf `WriteRequest` a
//! Prometheus server (or an agent such as Grafana Alloy or vmagent) POSTs, into metric
//! tables.
//!
//! # The mapping
//!
//! - **One metric table per metric name** (the `__name__` label). Prometheus names may
//!   hold `:` (recording rules: `job:http_requests:rate5m`), which engine table names
//!   cannot; each `:` becomes `.`, which Prometheus names never hold, so distinct
//!   names stay distinct (`job.http_requests.rate5m`).
//! - **Labels** other than `__name__` are tags.
//! - **Samples** are rows: `time` from the sample's millisecond timestamp, the value in
//!   the f64 field `value`.
//! - Staleness markers (the NaN Prometheus writes when a series disappears) are not
//!   measurements and are left out; other NaNs are kept. Exemplars, native histograms
//!   and metadata (fields 3 and 4 of `TimeSeries`, 3 of `WriteRequest`) are skipped.
//!
//! A time series that cannot be stored (no `__name__`, a label repeated, a label named
//! `time` or `value`, a value type that conflicts with the stored table) is rejected
//! alone, reported with its 1-based position in the request as the
//! [`Rejected::line`](crate::Rejected), and the other series are kept. A body that is
//! not snappy or not a `WriteRequest`, or that is larger than the limits, fails whole.
//!
//! ```
//! use sextant_ingest::remote_write::{self, Label, Options, Sample, TimeSeries, WriteRequest};
//! use sextant_ingest::NoSchemas;
//!
//! let request = WriteRequest {
//!     timeseries: vec![TimeSeries {
//!         labels: vec![
//!             Label { name: "__name__".into(), value: "http_requests_total".into() },
//!             Label { name: "job".into(), value: "api".into() },
//!         ],
//!         samples: vec![Sample { value: 12.0, timestamp: 1_700_000_000_000 }],
//!     }],
//! };
//! let body = remote_write::encode(&request).unwrap();
//! let out = remote_write::parse(&body, &Options::default(), &NoSchemas).unwrap();
//! assert_eq!(out.rows, 1);
//! assert_eq!(out.batches[0].table, "http_requests_total");
//! assert_eq!(out.batches[0].time().value(0), 1_700_000_000_000_000_000);
//! ```

mod parse;

#[cfg(test)]
mod tests;

use sextant_engine::{ColumnType, TableKind};

pub use parse::{decode, encode, parse};

/// The result of parsing a remote write request.
pub type Outcome = crate::Outcome<Error>;

/// `prometheus.WriteRequest` (remote write 1.0), the fields Sextant reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The time series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels and samples (exemplars and histograms skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// The labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    /// The label's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The bits of Prometheus' staleness marker, a NaN.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Limits on a request.
#[derive(Debug, Clone)]
pub struct Options {
    /// The largest body accepted (compressed), in bytes. Default: 16 MiB.
    pub max_request_bytes: usize,
    /// The largest body once decompressed, in bytes, checked before decompressing.
    /// Default: 64 MiB.
    pub max_decompressed_bytes: usize,
    /// How many rejected series are kept with their reason (all are counted). Default: 100.
    pub max_errors: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_request_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_errors: 100,
        }
    }
}

/// Why a remote write request, or one of its time series, was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is larger than a limit.
    #[error("the request is {bytes} bytes long{what}, more than the limit of {limit} bytes; nothing was written", what = if *.decompressed { " once decompressed" } else { "" })]
    RequestTooLarge {
        /// The length.
        bytes: usize,
        /// The limit.
        limit: usize,
        /// Whether the decompressed length is meant.
        decompressed: bool,
    },

    /// The body is not in snappy's block format.
    #[error(
        "the request body is not snappy-compressed (block format): {reason}; nothing was written"
    )]
    Snappy {
        /// snap's description.
        reason: String,
    },

    /// The decompressed body is not a protobuf `WriteRequest`.
    #[error("the request body is not a remote write WriteRequest: {reason}; nothing was written")]
    Protobuf {
        /// prost's description.
        reason: String,
    },

    /// The series has no `__name__` label.
    #[error("the time series has no __name__ label")]
    MissingName,

    /// The metric name cannot name a table.
    #[error("metric name {name:?} cannot be used: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },

    /// A label cannot be a tag column.
    #[error("label {name:?} cannot be used: {reason}")]
    BadLabel {
        /// The label name.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A column's type differs in an earlier series or the stored table.
    #[error("{column:?} of table {table:?} holds {existing} values{where_}, this series offers {offered}", where_ = if *.stored { " in the stored table" } else { " in earlier series of this request" })]
    TypeConflict {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type.
        existing: ColumnType,
        /// The type this series offers.
        offered: ColumnType,
        /// Whether `existing` is the stored table's type.
        stored: bool,
    },

    /// The metric's table is a stored event table.
    #[error("table {table:?} is an {existing} table; remote write writes metric tables")]
    KindConflict {
        /// The table.
        table: String,
        /// Its kind.
        existing: TableKind,
    },

    /// The series would give its table too many columns.
    #[error("the series would give table {table:?} more than {limit} columns")]
    TooManyColumns {
        /// The table.
        table: String,
        /// The limit.
        limit: usize,
    },

    /// A sample's timestamp does not fit nanoseconds in 64 bits.
    #[error(
        "the sample timestamp {ms} ms is out of range once in nanoseconds (about years 1678 to 2262)"
    )]
    TimestampOutOfRange {
        /// The timestamp in milliseconds.
        ms: i64,
    },

    /// The engine refused the batches built from the good series.
    #[error("the parsed series could not be made into a write: {0}")]
    Engine(String),
}
