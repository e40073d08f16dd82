//! JSON lines for logs and events: one JSON object per line into event tables, with the
//! engine's `level` column.
//!
//! # The mapping
//!
//! Each line is an object. Its keys are read as follows (names compared exactly; the
//! first key of each list that is present wins):
//!
//! | role | keys | values |
//! |---|---|---|
//! | table | `_table`, `table` | a table name; without one, [`Options::default_table`] (`logs`) |
//! | time | `time`, `timestamp`, `ts`, `@timestamp` | an RFC 3339 string (`2023-11-14T22:13:20.5Z`; also a space for `T`, a comma before the fraction, no offset = UTC), or an epoch number (or a string of one) whose unit follows its size: below 10^11 seconds (fractions kept), below 10^14 milliseconds, below 10^17 microseconds, else nanoseconds; without one, the `now` given to [`parse`] |
//! | level | `level`, `severity`, `lvl`, `levelname`, `loglevel` | a name, any case (below), or a bunyan/pino number: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal (a number between two takes the lower); without one, [`Options::default_level`] (info) |
//! | message | `message`, `msg`, then `event` when it is a string | stored in the `message` string column; a non-string message is stored as its JSON text |
//! | tags | the object under `tags`, and top-level keys listed in [`Options::tag_keys`] | tag columns; numbers and booleans become their text |
//! | fields | the object under `fields`, and every other top-level key | strings: string fields; integers: i64 (u64 above i64's range); other numbers: f64; booleans: bool; null: left out; objects: flattened, keys joined with `.` (`{"http":{"status":200}}` is field `http.status`); arrays: their JSON text |
//!
//! Level names: `trace`, `verbose` → trace; `debug`, `dbg` → debug; `info`,
//! `information`, `notice` → info; `warn`, `warning` → warn; `error`, `err`, `dpanic`
//! (zap) → error; `fatal`, `critical`, `crit`, `panic`, `alert`, `emerg`, `emergency` →
//! fatal.
//!
//! # Common shapes
//!
//! ```text
//! pino      {"level":30,"time":1700000000000,"pid":7,"hostname":"web-1","msg":"listening"}
//! bunyan    {"name":"api","hostname":"web-1","pid":7,"level":50,"msg":"failed","time":"2023-11-14T22:13:20.000Z","v":0}
//! structlog {"event":"user logged in","level":"info","timestamp":"2023-11-14T22:13:20.123456Z","user":"ada"}
//! python-json-logger {"asctime":"...","levelname":"WARNING","message":"disk low","name":"app"}
//! zap       {"level":"info","ts":1700000000.123456,"caller":"main.go:12","msg":"started","port":8080}
//! slog      {"time":"2023-11-14T22:13:20.5+01:00","level":"WARN","msg":"slow","duration":1.5}
//! logrus    {"level":"error","msg":"boom","time":"2023-11-14T22:13:20Z","component":"db"}
//! ```
//!
//! All read with the default options: the level, time and message keys above are each
//! library's own; the rest (`pid`, `hostname`, `caller`, `user`, `name`, ...) become
//! fields, or tags when listed in [`Options::tag_keys`] (python-json-logger's `asctime`
//! is not read as the time unless its format is ISO 8601 and renamed `timestamp`).
//!
//! # Bad lines
//!
//! As for line protocol, a bad line (not JSON, not an object, a bad time or level, a
//! name the engine cannot store, a value whose type conflicts with an earlier line or the
//! stored table, too long) is rejected alone with its 1-based number and a sentence; the
//! good lines are kept. Only a request larger than [`Options::max_request_bytes`] fails
//! whole.
//!
//! ```
//! use sextant_engine::TableKind;
//! use sextant_ingest::jsonl::{self, Options};
//! use sextant_ingest::NoSchemas;
//!
//! let input = br#"{"level":"warn","time":"2023-11-14T22:13:20Z","msg":"disk low","free_mb":512,"service":"api"}
//! {"level":50,"time":1700000001000,"msg":"disk full","tags":{"service":"api"}}
//! not json
//! "#;
//! let options = Options::default().tags(["service"]);
//! let out = jsonl::parse(input, &options, 0, &NoSchemas).unwrap();
//! assert_eq!(out.rows, 2);
//! assert_eq!(out.batches[0].table, "logs");
//! assert_eq!(out.batches[0].kind, TableKind::Event);
//! assert_eq!(out.rejected[0].line, 3);
//! ```

mod parse;
mod time;
mod write;

#[cfg(test)]
mod tests;

use sextant_engine::{ColumnType, Level, TableKind};

pub use parse::parse;
pub use write::write_batch;

/// The result of parsing a request of JSON lines.
pub type Outcome = crate::Outcome<Error>;

/// How [`parse`] reads JSON lines.
#[derive(Debug, Clone)]
pub struct Options {
    /// The table of lines without `_table` or `table`. Default: `logs`.
    pub default_table: String,
    /// The level of lines without one. Default: info.
    pub default_level: Level,
    /// Top-level keys whose values become tags rather than fields. Default: none.
    pub tag_keys: Vec<String>,
    /// The longest line accepted, in bytes. Default: 1 MiB.
    pub max_line_bytes: usize,
    /// The largest request accepted, in bytes; a larger one is refused whole. Default:
    /// 25,000,000.
    pub max_request_bytes: usize,
    /// How many rejected lines are kept with their reason (all are counted). Default: 100.
    pub max_errors: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_table: "logs".to_string(),
            default_level: Level::Info,
            tag_keys: Vec::new(),
            max_line_bytes: 1 << 20,
            max_request_bytes: 25_000_000,
            max_errors: 100,
        }
    }
}

impl Options {
    /// These options with these top-level keys read as tags.
    pub fn tags<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.tag_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// These options with another default table.
    pub fn default_table(mut self, table: impl Into<String>) -> Self {
        self.default_table = table.into();
        self
    }
}

/// Why a JSON line (or a whole request) was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is larger than [`Options::max_request_bytes`].
    #[error(
        "the request is {bytes} bytes long, more than the limit of {limit} bytes; nothing was written"
    )]
    RequestTooLarge {
        /// The request's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// The line is longer than [`Options::max_line_bytes`].
    #[error("the line is {bytes} bytes long, more than the limit of {limit} bytes")]
    LineTooLong {
        /// The line's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// The line is not JSON.
    #[error("the line is not valid JSON: {reason}")]
    InvalidJson {
        /// serde_json's description, with the column.
        reason: String,
    },

    /// The line is JSON but not an object.
    #[error("the line is JSON {found}, not an object")]
    NotAnObject {
        /// What it is: `an array`, `a string`, ...
        found: &'static str,
    },

    /// The time is neither RFC 3339 nor an epoch number in range.
    #[error(
        "the time {value} is neither an RFC 3339 time (2023-11-14T22:13:20Z) nor an epoch number"
    )]
    InvalidTime {
        /// The value as written (cut to 64 characters).
        value: String,
    },

    /// The level is not a known name or number.
    #[error(
        "the level {value} is not a log level; the levels are trace, debug, info, warn, error and fatal (or bunyan/pino's 10 to 60)"
    )]
    InvalidLevel {
        /// The value as written (cut to 64 characters).
        value: String,
    },

    /// The table or a key cannot name an engine table or column.
    #[error("{what} {name:?} cannot be used: {reason}")]
    BadName {
        /// `"table"`, `"tag key"` or `"field key"`.
        what: &'static str,
        /// The name.
        name: String,
        /// What a name must look like.
        reason: &'static str,
    },

    /// `tags` or `fields` is not an object.
    #[error("{key:?} must be an object of names and values")]
    NotAnObjectKey {
        /// `"tags"` or `"fields"`.
        key: &'static str,
    },

    /// A key appears both as a tag and as a field.
    #[error("{key:?} appears twice among the line's tags and fields")]
    DuplicateKey {
        /// The key.
        key: String,
    },

    /// A value's type differs from the column's in an earlier line or the stored table.
    #[error("{column:?} of table {table:?} holds {existing} values{where_}, this line offers {offered}", where_ = if *.stored { " in the stored table" } else { " in earlier lines of this request" })]
    TypeConflict {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type.
        existing: ColumnType,
        /// The type this line offers.
        offered: ColumnType,
        /// Whether `existing` is the stored table's type.
        stored: bool,
    },

    /// The line's table is a stored metric table; JSON lines write event tables.
    #[error("table {table:?} is a {existing} table; JSON lines write event tables")]
    KindConflict {
        /// The table.
        table: String,
        /// Its kind.
        existing: TableKind,
    },

    /// The line would give its table too many columns.
    #[error("the line would give table {table:?} more than {limit} columns")]
    TooManyColumns {
        /// The table.
        table: String,
        /// The limit.
        limit: usize,
    },

    /// A value cannot be written as JSON (by the writer).
    #[error("{0}")]
    NotRepresentable(String),

    /// The engine refused the batches built from the good lines.
    #[error("the parsed lines could not be made into a write: {0}")]
    Engine(String),
}
