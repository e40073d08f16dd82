//! Row-wise writes: [`Point`] and [`LogRecord`] builders.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt8Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, Int64Array};

use super::TableBatch;
use crate::error::{Error, Result};
use crate::schema::{ColumnDef, ColumnType, LEVEL_COLUMN, Level, TIME_COLUMN, TableKind};

/// The value of one field of a point.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A 64-bit float.
    F64(f64),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

/// As a SQL literal: `90.0`, `-3`, `true`, `'it''s'`.
impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldValue::F64(v) => write!(f, "{v:?}"),
            FieldValue::I64(v) => write!(f, "{v}"),
            FieldValue::U64(v) => write!(f, "{v}"),
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::Str(v) => write!(f, "'{}'", v.replace('\'', "''")),
        }
    }
}

impl FieldValue {
    /// The column type this value is stored in.
    pub fn column_type(&self) -> ColumnType {
        match self {
            FieldValue::F64(_) => ColumnType::F64,
            FieldValue::I64(_) => ColumnType::I64,
            FieldValue::U64(_) => ColumnType::U64,
            FieldValue::Bool(_) => ColumnType::Bool,
            FieldValue::Str(_) => ColumnType::Str,
        }
    }
}

macro_rules! field_from {
    ($($t:ty => $variant:ident as $conv:ty),* $(,)?) => {
        $(impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                FieldValue::$variant(<$conv>::from(v))
            }
        })*
    };
}
field_from!(f64 => F64 as f64, f32 => F64 as f64, i64 => I64 as i64, i32 => I64 as i64,
    u64 => U64 as u64, u32 => U64 as u64, bool => Bool as bool, String => Str as String,
    &str => Str as String);

/// One row for one table, built field by field.
///
/// ```
/// use sextant_engine::Point;
/// let p = Point::metric("cpu").tag("host", "web-1").field("usage_user", 12.5).time(1_700_000_000_000_000_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub(crate) table: String,
    pub(crate) kind: TableKind,
    pub(crate) time: Option<i64>,
    pub(crate) level: Option<Level>,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) fields: Vec<(String, FieldValue)>,
}

impl Point {
    /// A row for a metric table (one row per series and time; last write wins).
    pub fn metric(table: impl Into<String>) -> Self {
        Point::new(table, TableKind::Metric)
    }

    /// A row for an event table (every row kept).
    pub fn event(table: impl Into<String>) -> Self {
        Point::new(table, TableKind::Event)
    }

    fn new(table: impl Into<String>, kind: TableKind) -> Self {
        Point {
            table: table.into(),
            kind,
            time: None,
            level: None,
            tags: vec![],
            fields: vec![],
        }
    }

    /// Sets a tag.
    pub fn tag(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((name.into(), value.into()));
        self
    }

    /// Sets a field.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Sets the time, in nanoseconds since the Unix epoch. Without it the row gets the
    /// engine clock's time when written.
    pub fn time(mut self, nanos: i64) -> Self {
        self.time = Some(nanos);
        self
    }

    /// Sets the log level (column `level`); makes sense for event tables.
    pub fn level(mut self, level: Level) -> Self {
        self.level = Some(level);
        self
    }
}

/// A log record: an event with a level and a message, plus tags and fields.
///
/// ```
/// use sextant_engine::{Level, LogRecord};
/// let r = LogRecord::new("logs", Level::Error, "disk full").tag("service", "api").field("free_mb", 0i64);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord(Point);

impl LogRecord {
    /// A record for event table `table` with a level and a message (column `message`).
    pub fn new(table: impl Into<String>, level: Level, message: impl Into<String>) -> Self {
        LogRecord(
            Point::event(table)
                .level(level)
                .field("message", message.into()),
        )
    }

    /// Sets a tag.
    pub fn tag(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        LogRecord(self.0.tag(name, value))
    }

    /// Sets a field.
    pub fn field(self, name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        LogRecord(self.0.field(name, value))
    }

    /// Sets the time, in nanoseconds since the Unix epoch.
    pub fn time(self, nanos: i64) -> Self {
        LogRecord(self.0.time(nanos))
    }
}

impl From<LogRecord> for Point {
    fn from(r: LogRecord) -> Point {
        r.0
    }
}

enum Builder {
    Tag(StringBuilder),
    F64(Float64Builder),
    I64(Int64Builder),
    U64(UInt64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Level(UInt8Builder),
}

impl Builder {
    fn new(ty: ColumnType, rows: usize) -> Builder {
        match ty {
            ColumnType::Tag => Builder::Tag(StringBuilder::with_capacity(rows, rows * 8)),
            ColumnType::F64 => Builder::F64(Float64Builder::with_capacity(rows)),
            ColumnType::I64 => Builder::I64(Int64Builder::with_capacity(rows)),
            ColumnType::U64 => Builder::U64(UInt64Builder::with_capacity(rows)),
            ColumnType::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Str => Builder::Str(StringBuilder::with_capacity(rows, rows * 16)),
            ColumnType::Level => Builder::Level(UInt8Builder::with_capacity(rows)),
            ColumnType::Time => unreachable!("the time column is built separately"),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Tag(b) | Builder::Str(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::U64(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Level(b) => b.append_null(),
        }
    }

    fn append_field(&mut self, v: &FieldValue) {
        match (self, v) {
            (Builder::F64(b), FieldValue::F64(x)) => b.append_value(*x),
            (Builder::I64(b), FieldValue::I64(x)) => b.append_value(*x),
            (Builder::U64(b), FieldValue::U64(x)) => b.append_value(*x),
            (Builder::Bool(b), FieldValue::Bool(x)) => b.append_value(*x),
            (Builder::Str(b), FieldValue::Str(x)) => b.append_value(x),
            _ => unreachable!("types were checked before building"),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Tag(mut b) | Builder::Str(mut b) => Arc::new(b.finish()),
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::I64(mut b) => Arc::new(b.finish()),
            Builder::U64(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Level(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Groups points by table (in order of first appearance) into table batches.
pub(crate) fn batches_from_points(points: &[Point], now: i64) -> Result<Vec<TableBatch>> {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<&Point>> = HashMap::new();
    for p in points {
        let group = groups.entry(&p.table).or_insert_with(|| {
            order.push(&p.table);
            Vec::new()
        });
        if let Some(first) = group.first()
            && first.kind != p.kind
        {
            return Err(Error::TableKindConflict {
                table: p.table.clone(),
                existing: first.kind,
                offered: p.kind,
            });
        }
        group.push(p);
    }
    order
        .into_iter()
        .map(|table| batch_for_table(table, &groups[table], now))
        .collect()
}

fn batch_for_table(table: &str, points: &[&Point], now: i64) -> Result<TableBatch> {
    // Columns in order of first appearance, each with its type, and per point the column
    // index of each of its values (level, tags, fields, in that order).
    let mut columns = vec![ColumnDef::new(TIME_COLUMN, ColumnType::Time)];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut slots: Vec<Vec<usize>> = Vec::with_capacity(points.len());
    for p in points {
        let level = p.level.map(|_| (LEVEL_COLUMN, ColumnType::Level));
        let tags = p.tags.iter().map(|(n, _)| (n.as_str(), ColumnType::Tag));
        let fields = p.fields.iter().map(|(n, v)| (n.as_str(), v.column_type()));
        let mut mine = Vec::with_capacity(p.tags.len() + p.fields.len() + 1);
        for (name, ty) in level.into_iter().chain(tags).chain(fields) {
            let i = match index.get(name) {
                Some(&i) if columns[i].ty == ty => i,
                Some(&i) => {
                    return Err(Error::TypeConflict {
                        table: table.to_string(),
                        column: name.to_string(),
                        existing: columns[i].ty,
                        offered: ty,
                    });
                }
                None => {
                    columns.push(ColumnDef::new(name, ty));
                    index.insert(name.to_string(), columns.len() - 1);
                    columns.len() - 1
                }
            };
            if mine.contains(&i) {
                return Err(Error::InvalidInput(format!(
                    "table {table:?}: a point sets column {name:?} twice"
                )));
            }
            mine.push(i);
        }
        slots.push(mine);
    }

    let rows = points.len();
    let times: Vec<i64> = points.iter().map(|p| p.time.unwrap_or(now)).collect();
    let mut builders: Vec<Builder> = columns[1..]
        .iter()
        .map(|c| Builder::new(c.ty, rows))
        .collect();
    let mut filled = vec![false; builders.len()];
    for (p, mine) in points.iter().zip(&slots) {
        filled.iter_mut().for_each(|f| *f = false);
        let mut it = mine.iter();
        if let Some(level) = p.level {
            let i = *it.next().expect("level slot") - 1;
            if let Builder::Level(b) = &mut builders[i] {
                b.append_value(level.rank());
            }
            filled[i] = true;
        }
        for (_, value) in &p.tags {
            let i = *it.next().expect("tag slot") - 1;
            if let Builder::Tag(b) = &mut builders[i] {
                b.append_value(value);
            }
            filled[i] = true;
        }
        for (_, value) in &p.fields {
            let i = *it.next().expect("field slot") - 1;
            builders[i].append_field(value);
            filled[i] = true;
        }
        for (b, f) in builders.iter_mut().zip(&filled) {
            if !f {
                b.append_null();
            }
        }
    }
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(times))];
    arrays.extend(builders.into_iter().map(Builder::finish));
    TableBatch::try_new(table, points[0].kind, columns, arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn field_values_print_as_sql_literals() {
        let shown: Vec<String> = [
            FieldValue::F64(90.0),
            FieldValue::F64(f64::NAN),
            FieldValue::I64(-3),
            FieldValue::U64(7),
            FieldValue::Bool(true),
            FieldValue::Str("it's".into()),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(shown, ["90.0", "NaN", "-3", "7", "true", "'it''s'"]);
    }

    #[test]
    fn points_group_by_table_and_fill_nulls() {
        let points = vec![
            Point::metric("cpu")
                .tag("host", "a")
                .field("user", 1.0)
                .time(10),
            Point::metric("mem")
                .tag("host", "a")
                .field("free", 5i64)
                .time(10),
            Point::metric("cpu")
                .tag("host", "b")
                .field("system", 2.0)
                .time(20),
        ];
        let batches = batches_from_points(&points, 0).unwrap();
        assert_eq!(batches.len(), 2);
        let cpu = &batches[0];
        assert_eq!(cpu.table, "cpu");
        let names: Vec<_> = cpu.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["time", "host", "user", "system"]);
        assert_eq!(cpu.arrays[2].null_count(), 1);
        assert_eq!(cpu.arrays[3].null_count(), 1);
    }

    #[test]
    fn conflicting_types_in_one_call_are_rejected() {
        let points = vec![
            Point::metric("cpu").field("v", 1.0).time(1),
            Point::metric("cpu").field("v", 1i64).time(2),
        ];
        let err = batches_from_points(&points, 0).unwrap_err().to_string();
        assert!(
            err.contains("holds f64 values, the write offers i64"),
            "{err}"
        );
    }

    #[test]
    fn log_record_has_level_and_message_and_default_time() {
        let r: Point = LogRecord::new("logs", Level::Warn, "slow")
            .tag("service", "api")
            .into();
        let batches = batches_from_points(&[r], 42).unwrap();
        let b = &batches[0];
        assert_eq!(b.kind, TableKind::Event);
        assert_eq!(b.columns[1], ColumnDef::new("level", ColumnType::Level));
        assert_eq!(b.time().value(0), 42);
    }

    #[test]
    fn a_column_set_twice_in_one_point_is_rejected() {
        let p = Point::metric("cpu").field("x", 1.0).field("x", 2.0);
        assert!(
            batches_from_points(&[p], 0)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
