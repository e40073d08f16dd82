//! StatsD (as etsy/statsd defines it, with DogStatsD tags): a parser and an aggregator
//! that turns an interval's metrics into engine rows, laid out as Telegraf's `statsd`
//! input lays them out so dashboards built for it work.
//!
//! # Input
//!
//! One metric per line, several lines per packet:
//!
//! ```text
//! <name>:<value>|<type>[|@<sample rate>][|#<tag>:<value>,<tag>...]
//! api.requests:1|c|@0.1|#route:/users,canary     counter, sampled 1 in 10: counts 10
//! queue.depth:42|g    queue.depth:+3|g           gauge set to 42, then changed to 45
//! db.query:12.5|ms    payload.bytes:512|h        timer and histogram samples
//! render:1:2:3|d                                 DogStatsD packed values: three samples
//! users.online:alice|s                           set member
//! ```
//!
//! Telegraf's tags in the name (`api.requests,route=/users:1|c`) are read too; a
//! DogStatsD tag without a value (`canary`) gets the value `true`, as in Telegraf.
//! DogStatsD's `|c:` container and `|T` timestamp sections are accepted and ignored.
//! Each bad line is rejected alone with its number and a sentence ([`Received`]).
//!
//! # Output: one row per series and flush
//!
//! The [`Aggregator`] collects metrics for one flush interval (10 s by default) and on
//! [`Aggregator::flush`] (called with the time, which the caller controls) emits a row
//! per series, stamped with the flush time:
//!
//! - **table**: the metric name with `.` replaced by `_` (Telegraf's default
//!   `metric_separator`; [`Options::name_separator`]), a metric table;
//! - **tags**: `metric_type` (`counter`, `gauge`, `timing`, `histogram`, `distribution`,
//!   `set`) and the metric's own tags;
//! - **fields**, named as Telegraf names them:
//!
//! | type | fields |
//! |---|---|
//! | counter `c` | `value` (i64: the interval's count, each value divided by its sample rate, rounded), `rate` (f64: `value` per second of the interval; Sextant's addition) |
//! | gauge `g` | `value` (f64) |
//! | set `s` | `value` (i64: distinct members seen in the interval, counted up to [`Options::max_set_members`]) |
//! | timer `ms`, histogram `h`, distribution `d` | `count` (i64), `sum`, `mean`, `stddev` (population), `upper` (max), `lower` (min), `median`, and `<p>_percentile` for each of [`Options::percentiles`] (default `50_percentile`, `90_percentile`, `95_percentile`, `99_percentile`), all f64 |
//!
//! Counters, sets and summaries emit only when they got metrics in the interval and
//! start from zero in the next (Telegraf's `delete_counters`, `delete_sets`,
//! `delete_timings`). Gauges also emit only when set or changed in the interval, but
//! keep their value so that a later `+n`/`-n` applies to it (etsy's semantics). A
//! timer sampled at `@0.1` counts each value ten times (as Telegraf does). Telegraf
//! writes DogStatsD distributions raw when asked, and drops them otherwise; here they
//! are summarised like histograms.
//!
//! **Percentiles** are exact over a bounded sample: each series keeps a uniform
//! reservoir of [`Options::reservoir_size`] values (1000 by default, Telegraf's
//! `percentile_limit`; Algorithm R with a fixed-seed generator). The `p` percentile is
//! the value at index `floor(n * p / 100)` of the sorted sample (clamped to the last),
//! Telegraf's rule, so with at most `reservoir_size` values in the interval it is exact;
//! `median` is the middle of the sorted sample (the mean of the two middle values for an
//! even count), as Telegraf's `median` is.
//! Beyond that it is the sample's percentile: its rank among all the interval's values
//! is within about `2 * sqrt(p (1 - p) / N)` of `p` 95% of the time (for N = 1000: ±3.2
//! percentage points of rank at the median, ±1.9 at p90, ±0.63 at p99). Count, sum,
//! mean, stddev, lower and upper are always over every value.
//!
//! ```
//! use sextant_ingest::statsd::{Aggregator, Options};
//! use sextant_ingest::NoSchemas;
//!
//! let start = 1_700_000_000_000_000_000;
//! let mut agg = Aggregator::new(Options::default(), start);
//! let received = agg.ingest(b"api.requests:1|c|#route:/users\napi.requests:1|c|@0.5|#route:/users\nlatency:12|ms\n");
//! assert_eq!(received.metrics, 3);
//! let now = start + 10_000_000_000;
//! assert!(agg.flush_due(now));
//! let out = agg.flush(now, &NoSchemas);
//! assert_eq!(out.rows, 2); // one row per series: api_requests and latency
//! assert_eq!(out.batches[0].table, "api_requests");
//! ```

mod aggregate;
mod parse;

pub use aggregate::{Aggregator, Options, Received};
pub use parse::{Kind, Metric, Value, parse_line};

use sextant_engine::{ColumnType, TableKind};

/// Why a StatsD line was rejected, or a series could not be written at a flush.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The line has no `:` and value after the name.
    #[error("the line {line:?} has no value: a metric is written name:value|type")]
    MissingValue {
        /// The line (cut to 64 characters).
        line: String,
    },

    /// The line starts with `:`.
    #[error("the line has no metric name before its ':'")]
    EmptyName,

    /// The value has no `|type` after it.
    #[error("metric {name:?} has no type: a metric is written name:value|type")]
    MissingType {
        /// The metric name.
        name: String,
    },

    /// The type code is unknown.
    #[error("the type {code:?} is not a StatsD type; the types are c, g, ms, h, d and s")]
    UnknownType {
        /// The code as written.
        code: String,
    },

    /// A value is not a finite number.
    #[error("the value {value:?} is not a number, which a {kind} needs")]
    InvalidValue {
        /// The value as written.
        value: String,
        /// The metric type (`counter`, `gauge`, ...).
        kind: &'static str,
    },

    /// A sample rate is not a number in (0, 1].
    #[error("the sample rate {text:?} is not a number greater than 0 and at most 1")]
    InvalidSampleRate {
        /// The section as written.
        text: String,
    },

    /// A `|` section is none of `@rate`, `#tags`, `c:`, `e:` or `T`.
    #[error("the section {text:?} is not a sample rate (@0.5) or tags (#key:value)")]
    UnknownSection {
        /// The section as written.
        text: String,
    },

    /// The line is not valid UTF-8.
    #[error("the line is not valid UTF-8 (at byte {offset} of the line)")]
    NotUtf8 {
        /// Offset of the first invalid byte within the line.
        offset: usize,
    },

    /// The line is longer than [`Options::max_line_bytes`].
    #[error("the line is {bytes} bytes long, more than the limit of {limit} bytes")]
    LineTooLong {
        /// The line's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// The metric name (as a table name) or a tag key cannot be used.
    #[error("{what} {name:?} cannot be used: {reason}")]
    BadName {
        /// `"metric name"` or `"tag key"`.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },

    /// A new series would exceed [`Options::max_series`].
    #[error(
        "the aggregator already holds {limit} series, its limit; metric {name:?} starts a new one and was dropped"
    )]
    TooManySeries {
        /// The limit.
        limit: usize,
        /// The metric name.
        name: String,
    },

    /// At a flush: a series' column has another type in the flush or the stored table
    /// (a name used both as a counter, whose `value` is i64, and as a gauge, f64).
    #[error("{column:?} of table {table:?} holds {existing} values{where_}, the {metric_type} series offers {offered}; the series was not written", where_ = if *.stored { " in the stored table" } else { " in this flush" })]
    TypeConflict {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type.
        existing: ColumnType,
        /// The type the series offers.
        offered: ColumnType,
        /// Whether `existing` is the stored table's type.
        stored: bool,
        /// The series' metric type.
        metric_type: &'static str,
    },

    /// At a flush: the metric's table is a stored event table.
    #[error("table {table:?} is an {existing} table; StatsD writes metric tables")]
    KindConflict {
        /// The table.
        table: String,
        /// Its kind.
        existing: TableKind,
    },

    /// At a flush: the table would get too many columns.
    #[error("the series would give table {table:?} more than {limit} columns")]
    TooManyColumns {
        /// The table.
        table: String,
        /// The limit.
        limit: usize,
    },

    /// At a flush: the engine refused the batches built.
    #[error("the flushed series could not be made into a write: {0}")]
    Engine(String),
}
