//! Tables, columns and their types.
//!
//! Every table has a `time` column (i64 nanoseconds since the Unix epoch), tag columns
//! (strings that together identify a series) and field columns. Schemas grow by writing:
//! a write that names a new column adds it.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::error::{Error, Result};

/// The name of every table's time column.
pub const TIME_COLUMN: &str = "time";
/// The name of the level column of log tables.
pub const LEVEL_COLUMN: &str = "level";
/// Arrow field metadata key that marks a column's role (`"tag"` or `"level"`) in batches
/// given to and returned by the engine.
pub const ROLE_KEY: &str = "sextant.role";
/// Longest table or column name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Most columns a table may have, `time` included.
pub const MAX_COLUMNS: usize = 4096;

/// What a table keeps when a row repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// One row per (series, time): a later write of the same series and timestamp replaces
    /// the earlier one (last write wins), across flushes and reopens too.
    Metric,
    /// Every row given is kept, duplicates included (logs, deploys, business events).
    Event,
}

impl TableKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            TableKind::Metric => 0,
            TableKind::Event => 1,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(TableKind::Metric),
            1 => Some(TableKind::Event),
            _ => None,
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::Metric => "metric",
            TableKind::Event => "event",
        })
    }
}

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnType {
    /// The `time` column: i64 nanoseconds since the Unix epoch, never null.
    Time,
    /// A tag: a string that, with the row's other tags, identifies its series.
    Tag,
    /// A 64-bit float field.
    F64,
    /// A signed 64-bit integer field.
    I64,
    /// An unsigned 64-bit integer field.
    U64,
    /// A boolean field.
    Bool,
    /// A string field.
    Str,
    /// A log level (trace < debug < info < warn < error < fatal), stored as one byte.
    Level,
}

impl ColumnType {
    /// Every type, in the order of their codes on disk.
    pub const ALL: [ColumnType; 8] = [
        ColumnType::Time,
        ColumnType::Tag,
        ColumnType::F64,
        ColumnType::I64,
        ColumnType::U64,
        ColumnType::Bool,
        ColumnType::Str,
        ColumnType::Level,
    ];

    pub(crate) fn to_byte(self) -> u8 {
        ColumnType::ALL
            .iter()
            .position(|t| *t == self)
            .expect("listed") as u8
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        ColumnType::ALL.get(b as usize).copied()
    }

    /// Whether this is a field (neither the time column nor a tag).
    pub fn is_field(self) -> bool {
        !matches!(self, ColumnType::Time | ColumnType::Tag)
    }

    /// The Arrow type the engine reads and returns for this column.
    ///
    /// Tags are dictionary-encoded strings; levels are a `UInt8`-keyed dictionary whose
    /// keys are the levels' ranks, so ordering by key orders by severity.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Time => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ColumnType::Tag => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            ColumnType::F64 => DataType::Float64,
            ColumnType::I64 => DataType::Int64,
            ColumnType::U64 => DataType::UInt64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Str => DataType::Utf8,
            ColumnType::Level => {
                DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8))
            }
        }
    }

    /// The Arrow field for a column of this type, with its role in the metadata.
    pub fn arrow_field(self, name: &str) -> Field {
        let field = Field::new(name, self.arrow_type(), self != ColumnType::Time);
        match self {
            ColumnType::Tag => field.with_metadata([(ROLE_KEY.into(), "tag".into())].into()),
            ColumnType::Level => field.with_metadata([(ROLE_KEY.into(), "level".into())].into()),
            _ => field,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Time => "time",
            ColumnType::Tag => "tag",
            ColumnType::F64 => "f64",
            ColumnType::I64 => "i64",
            ColumnType::U64 => "u64",
            ColumnType::Bool => "bool",
            ColumnType::Str => "string",
            ColumnType::Level => "level",
        })
    }
}

/// A log level, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Finest detail.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that was handled.
    Warn = 3,
    /// An operation failed.
    Error = 4,
    /// The process cannot go on.
    Fatal = 5,
}

impl Level {
    /// Every level, by rank.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];
    /// The levels' names, by rank: the dictionary values of a level column.
    pub const NAMES: [&'static str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

    /// The level's lower-case name.
    pub fn as_str(self) -> &'static str {
        Level::NAMES[self as usize]
    }

    /// The level's rank: 0 for trace up to 5 for fatal.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// The level of a rank (0 = trace .. 5 = fatal).
    pub fn from_rank(rank: u8) -> Option<Level> {
        Level::ALL.get(rank as usize).copied()
    }

    /// Parses a level name, ignoring case; `warning` and `critical` are accepted as
    /// `warn` and `fatal`.
    pub fn parse(name: &str) -> Result<Level> {
        let lower = name.trim().to_ascii_lowercase();
        let level = match lower.as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            "fatal" | "critical" => Level::Fatal,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "{name:?} is not a log level; the levels are trace, debug, info, warn, error and fatal"
                )));
            }
        };
        Ok(level)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnDef {
    /// The column's name.
    pub name: String,
    /// The column's type.
    pub ty: ColumnType,
}

impl ColumnDef {
    /// A column of this name and type.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        ColumnDef {
            name: name.into(),
            ty,
        }
    }
}

/// A table's schema: its kind and its columns, `time` first, then in the order they were
/// first written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's name.
    pub name: String,
    /// Metric or event.
    pub kind: TableKind,
    /// The columns, `time` first.
    pub columns: Vec<ColumnDef>,
}

impl TableSchema {
    /// A schema with only the time column.
    pub fn new(name: impl Into<String>, kind: TableKind) -> Self {
        TableSchema {
            name: name.into(),
            kind,
            columns: vec![ColumnDef::new(TIME_COLUMN, ColumnType::Time)],
        }
    }

    /// The column of this name, if any.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The position of the column of this name, if any.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The tag columns, in schema order.
    pub fn tags(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.ty == ColumnType::Tag)
    }

    /// The Arrow schema of the whole table, roles in field metadata.
    pub fn arrow_schema(&self) -> Arc<Schema> {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| c.ty.arrow_field(&c.name))
                .collect::<Vec<_>>(),
        ))
    }

    /// Checks that `columns` fit this schema, returning the ones that are new.
    ///
    /// A column whose type differs from the table's is a [`Error::TypeConflict`].
    pub fn check_extension<'a>(
        &self,
        columns: impl IntoIterator<Item = &'a ColumnDef>,
    ) -> Result<Vec<ColumnDef>> {
        let mut new = Vec::new();
        for col in columns {
            match self.column(&col.name) {
                Some(existing) if existing.ty != col.ty => {
                    return Err(Error::TypeConflict {
                        table: self.name.clone(),
                        column: col.name.clone(),
                        existing: existing.ty,
                        offered: col.ty,
                    });
                }
                Some(_) => {}
                None if !new.iter().any(|c: &ColumnDef| c.name == col.name) => {
                    new.push(col.clone())
                }
                None => {}
            }
        }
        if self.columns.len() + new.len() > MAX_COLUMNS {
            return Err(Error::InvalidInput(format!(
                "table {:?} would have {} columns; a table has at most {MAX_COLUMNS}",
                self.name,
                self.columns.len() + new.len()
            )));
        }
        Ok(new)
    }

    /// Adds columns (already checked by [`TableSchema::check_extension`]).
    pub(crate) fn extend(&mut self, new: Vec<ColumnDef>) {
        self.columns.extend(new);
    }
}

/// Checks a table or column name: 1 to 128 bytes of ASCII letters, digits, `_`, `-` or `.`,
/// not starting with `.`.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} name {name:?} is not allowed: use 1 to {MAX_NAME_LEN} ASCII letters, digits, '_', '-' or '.', not starting with '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_parse_ignores_case_and_rejects_unknown() {
        assert_eq!(Level::parse("WARN").unwrap(), Level::Warn);
        assert_eq!(Level::parse("Warning").unwrap(), Level::Warn);
        assert!(Level::Trace < Level::Fatal);
        let err = Level::parse("loud").unwrap_err().to_string();
        assert!(err.contains("\"loud\" is not a log level"), "{err}");
    }

    #[test]
    fn column_type_codes_round_trip() {
        for ty in ColumnType::ALL {
            assert_eq!(ColumnType::from_byte(ty.to_byte()), Some(ty));
        }
        assert_eq!(ColumnType::from_byte(200), None);
    }

    #[test]
    fn extension_rejects_type_conflicts() {
        let mut s = TableSchema::new("cpu", TableKind::Metric);
        s.extend(vec![ColumnDef::new("usage", ColumnType::F64)]);
        let err = s
            .check_extension(&[ColumnDef::new("usage", ColumnType::I64)])
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"usage\" holds f64 values, the write offers i64"),
            "{msg}"
        );
        let new = s
            .check_extension(&[ColumnDef::new("host", ColumnType::Tag)])
            .unwrap();
        assert_eq!(new, vec![ColumnDef::new("host", ColumnType::Tag)]);
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("table", "cpu.load-1_m").is_ok());
        assert!(validate_name("table", "").is_err());
        assert!(validate_name("table", "../etc").is_err());
        assert!(validate_name("table", &"x".repeat(129)).is_err());
    }
}
