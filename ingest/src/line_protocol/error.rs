//! Why a line (or a request) of line protocol was rejected.

use sextant_engine::{ColumnType, TableKind};

/// Why line protocol was rejected: a line (most variants) or the whole request
/// ([`Error::RequestTooLarge`], [`Error::Engine`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is larger than [`Options::max_request_bytes`](super::Options).
    #[error(
        "the request is {bytes} bytes long, more than the limit of {limit} bytes; nothing was written"
    )]
    RequestTooLarge {
        /// The request's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// The line is longer than [`Options::max_line_bytes`](super::Options).
    #[error("the line is {bytes} bytes long, more than the limit of {limit} bytes")]
    LineTooLong {
        /// The line's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// The line is not valid UTF-8.
    #[error("the line is not valid UTF-8 (at byte {offset} of the line)")]
    NotUtf8 {
        /// Offset of the first invalid byte within the line.
        offset: usize,
    },

    /// The line starts with a comma or a space, so has no measurement.
    #[error("the line has no measurement name before its first comma or space")]
    MissingMeasurement,

    /// The measurement, a tag key or a field key cannot name an engine table or column.
    #[error("{what} {name:?} cannot be used: {reason}")]
    BadName {
        /// `"measurement"`, `"tag key"` or `"field key"`.
        what: &'static str,
        /// The name.
        name: String,
        /// What a name must look like.
        reason: &'static str,
    },

    /// A tag (or field) key is not followed by `=` and a value.
    #[error("{what} {key:?} has no value: it must be written {what}=value")]
    MissingValue {
        /// `"tag"` or `"field"`.
        what: &'static str,
        /// The key.
        key: String,
    },

    /// A tag or field key is empty.
    #[error("a {what} key is empty (a stray comma or '=' sign?)")]
    EmptyKey {
        /// `"tag"` or `"field"`.
        what: &'static str,
    },

    /// The same tag key appears twice in one line, or as both a tag and a field.
    #[error("{key:?} appears twice in the line's tags and fields")]
    DuplicateKey {
        /// The key.
        key: String,
    },

    /// The line has a measurement (and tags) but no fields.
    #[error(
        "the line has no fields; a line is: measurement[,tag=value...] field=value[,field=value...] [timestamp]"
    )]
    MissingFields,

    /// A field value is none of the protocol's value types.
    #[error(
        "field {key:?} has the value {value:?}, which is not a number, a boolean or a quoted string"
    )]
    InvalidValue {
        /// The field key.
        key: String,
        /// The value as written (cut to 64 characters).
        value: String,
    },

    /// An `i` or `u` integer does not fit its type.
    #[error("field {key:?} has the value {value:?}, which is out of range for {ty}")]
    IntegerOutOfRange {
        /// The field key.
        key: String,
        /// The value as written.
        value: String,
        /// `"a signed 64-bit integer"` or `"an unsigned 64-bit integer"`.
        ty: &'static str,
    },

    /// A string field value has no closing double quote.
    #[error("the string value of field {key:?} has no closing double quote")]
    UnterminatedString {
        /// The field key.
        key: String,
    },

    /// The timestamp is not an integer.
    #[error("the timestamp {value:?} is not an integer")]
    InvalidTimestamp {
        /// The timestamp as written (cut to 64 characters).
        value: String,
    },

    /// The timestamp, in nanoseconds, does not fit 64 bits.
    #[error(
        "the timestamp {value} in {unit} is out of range once in nanoseconds (about years 1678 to 2262)"
    )]
    TimestampOutOfRange {
        /// The timestamp as written.
        value: i64,
        /// The precision's unit.
        unit: &'static str,
    },

    /// Something follows the timestamp.
    #[error("unexpected text {text:?} after the timestamp")]
    TrailingText {
        /// What follows (cut to 64 characters).
        text: String,
    },

    /// A value's type differs from the column's in an earlier line or in the stored table.
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
        /// Whether `existing` is the stored table's type (else an earlier line's).
        stored: bool,
    },

    /// The measurement names a stored event table; line protocol writes metric tables.
    #[error("table {table:?} is an {existing} table; line protocol writes metric tables")]
    KindConflict {
        /// The table.
        table: String,
        /// Its kind.
        existing: TableKind,
    },

    /// The line would give its table more columns than a table may have.
    #[error("the line would give table {table:?} more than {limit} columns")]
    TooManyColumns {
        /// The table.
        table: String,
        /// The limit.
        limit: usize,
    },

    /// A value cannot be written as line protocol (by the writer).
    #[error("{0}")]
    NotRepresentable(String),

    /// The engine refused the batches built from the good lines.
    #[error("the parsed lines could not be made into a write: {0}")]
    Engine(String),
}
