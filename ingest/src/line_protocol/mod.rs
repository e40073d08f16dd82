//! InfluxDB line protocol: a parser into engine batches and a writer back to text.
//!
//! ```text
//! measurement[,tag=value...] field=value[,field=value...] [timestamp]
//! cpu,host=web-1,region=eu\ west usage_user=12.5,cores=8i,up=true,note="a \"b\"" 1700000000000000000
//! ```
//!
//! - **Measurements** become [metric tables](sextant_engine::TableKind::Metric), **tags**
//!   tag columns, **fields** field columns: `1.5` (f64; also `1`, `-1e3`), `1i` (i64),
//!   `1u` (u64), `"text"` (string), `t`/`T`/`true`/`True`/`TRUE` and
//!   `f`/`F`/`false`/`False`/`FALSE` (bool).
//! - **Escaping**: a backslash before `,`, `=`, a space or another backslash stands for
//!   that character in measurements, tag keys, tag values and field keys (the protocol
//!   requires escaping commas and spaces in measurements; commas, equals signs and spaces
//!   in keys and tag values). In string field values `\"` is a double quote and `\\` a
//!   backslash; a string value may span lines. A backslash before any other character is
//!   itself.
//! - **Timestamps** are optional integers in the request's [`Precision`] (nanoseconds by
//!   default); a line without one gets the `now` given to [`parse`].
//! - Lines starting with `#` (after spaces) are comments; blank lines are skipped; lines
//!   may end in `\r\n`. A request may hold lines of many measurements: [`parse`] returns a
//!   batch per table.
//!
//! # Bad lines
//!
//! As in InfluxDB, a bad line is rejected alone, reported with its 1-based number and a
//! sentence, and the good lines of the request are kept ([`Outcome`]). Besides syntax, a
//! line is rejected when a field's type differs from the same field in an earlier line of
//! the request or in the stored table (looked up through [`Schemas`](crate::Schemas), e.g. an engine
//! [`Snapshot`](sextant_engine::Snapshot)), when its measurement or a key is not a valid
//! engine name, when a key is `time`, when a tag key is repeated or also used as a field
//! key, and when it is longer than [`Options::max_line_bytes`]. A field key repeated in
//! one line keeps its last value, as in InfluxDB. Only a request longer than
//! [`Options::max_request_bytes`] is refused as a whole.
//!
//! ```
//! use sextant_ingest::line_protocol::{self, Options};
//! use sextant_ingest::NoSchemas;
//!
//! let input = b"cpu,host=a usage=1.5 10\ncpu,host=b usage=oops 20\nmem,host=a free=3i 10\n";
//! let out = line_protocol::parse(input, &Options::default(), 0, &NoSchemas).unwrap();
//! assert_eq!(out.rows, 2);
//! assert_eq!(out.batches.len(), 2); // cpu and mem
//! assert_eq!(out.rejected[0].line, 2);
//! assert_eq!(
//!     out.rejected[0].to_string(),
//!     "line 2: field \"usage\" has the value \"oops\", which is not a number, a boolean or a quoted string"
//! );
//! ```
//!
//! [`write_batch`] and [`write_line`] format rows back to line protocol, in nanoseconds.

mod error;
mod parse;
mod rows;
mod write;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use parse::parse;
pub use write::{write_batch, write_line};

/// The result of parsing a request of line protocol.
pub type Outcome = crate::Outcome<Error>;

/// The unit of the timestamps in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Nanoseconds (the default).
    #[default]
    Nanoseconds,
    /// Microseconds.
    Microseconds,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

impl Precision {
    /// Nanoseconds in one unit.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
        }
    }

    /// The precision of an HTTP `precision` parameter: `ns`, `us`, `ms`, `s` (InfluxDB
    /// 2), or `n`, `u` (InfluxDB 1); `µs` too.
    pub fn from_param(param: &str) -> Option<Precision> {
        match param {
            "ns" | "n" => Some(Precision::Nanoseconds),
            "us" | "u" | "µs" => Some(Precision::Microseconds),
            "ms" => Some(Precision::Milliseconds),
            "s" => Some(Precision::Seconds),
            _ => None,
        }
    }
}

/// How [`parse`] reads a request.
#[derive(Debug, Clone)]
pub struct Options {
    /// The unit of timestamps. Default: nanoseconds.
    pub precision: Precision,
    /// The longest line accepted, in bytes (line end excluded); a longer line is rejected
    /// alone. Default: 65,536 (64 KiB).
    pub max_line_bytes: usize,
    /// The largest request accepted, in bytes; a larger one is refused whole. Default:
    /// 25,000,000, InfluxDB 1's `max-body-size`.
    pub max_request_bytes: usize,
    /// How many rejected lines are kept with their reason in [`Outcome::rejected`] (all are
    /// counted). Default: 100.
    pub max_errors: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            precision: Precision::Nanoseconds,
            max_line_bytes: 64 * 1024,
            max_request_bytes: 25_000_000,
            max_errors: 100,
        }
    }
}

impl Options {
    /// These options with another timestamp precision.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }
}
