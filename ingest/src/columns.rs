//! Columnar building of engine batches, shared by every parser.
//!
//! Rows are appended straight into Arrow builders, one per column, so a request of many
//! lines becomes one [`TableBatch`] per table without an intermediate row type. Lines of
//! one table with different tag and field sets share the table's columns: a column a row
//! does not set is null in that row.

use std::sync::Arc;

use ahash::AHashMap;
use arrow_array::ArrayRef;
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt8Builder, UInt64Builder,
};
use sextant_engine::schema::{MAX_COLUMNS, TIME_COLUMN};
use sextant_engine::{ColumnDef, ColumnType, Level, TableBatch, TableKind, TableSchema};

use crate::Schemas;

/// One value of a row, borrowed from the input where it can be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Tag(&'a str),
    F64(f64),
    I64(i64),
    U64(u64),
    Bool(bool),
    Str(&'a str),
    Level(Level),
}

impl Value<'_> {
    pub(crate) fn column_type(&self) -> ColumnType {
        match self {
            Value::Tag(_) => ColumnType::Tag,
            Value::F64(_) => ColumnType::F64,
            Value::I64(_) => ColumnType::I64,
            Value::U64(_) => ColumnType::U64,
            Value::Bool(_) => ColumnType::Bool,
            Value::Str(_) => ColumnType::Str,
            Value::Level(_) => ColumnType::Level,
        }
    }
}

/// Why a row cannot go into its table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Conflict {
    /// The column already has another type, in the request (`stored == false`) or in the
    /// stored table.
    Type {
        existing: ColumnType,
        offered: ColumnType,
        stored: bool,
    },
    /// The stored table is of the other kind.
    Kind { existing: TableKind },
    /// The table would have more than [`MAX_COLUMNS`] columns.
    TooManyColumns,
}

enum Builder {
    Str(StringBuilder),
    F64(Float64Builder),
    I64(Int64Builder),
    U64(UInt64Builder),
    Bool(BooleanBuilder),
    Level(UInt8Builder),
}

impl Builder {
    fn new(ty: ColumnType) -> Builder {
        match ty {
            ColumnType::Tag | ColumnType::Str | ColumnType::Time => {
                Builder::Str(StringBuilder::new())
            }
            ColumnType::F64 => Builder::F64(Float64Builder::new()),
            ColumnType::I64 => Builder::I64(Int64Builder::new()),
            ColumnType::U64 => Builder::U64(UInt64Builder::new()),
            ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
            ColumnType::Level => Builder::Level(UInt8Builder::new()),
        }
    }

    fn append_nulls(&mut self, n: usize) {
        match self {
            Builder::Str(b) => b.append_nulls(n),
            Builder::F64(b) => b.append_nulls(n),
            Builder::I64(b) => b.append_nulls(n),
            Builder::U64(b) => b.append_nulls(n),
            Builder::Bool(b) => b.append_nulls(n),
            Builder::Level(b) => b.append_nulls(n),
        }
    }

    fn append(&mut self, v: Value<'_>) {
        match (self, v) {
            (Builder::Str(b), Value::Tag(s) | Value::Str(s)) => b.append_value(s),
            (Builder::F64(b), Value::F64(x)) => b.append_value(x),
            (Builder::I64(b), Value::I64(x)) => b.append_value(x),
            (Builder::U64(b), Value::U64(x)) => b.append_value(x),
            (Builder::Bool(b), Value::Bool(x)) => b.append_value(x),
            (Builder::Level(b), Value::Level(l)) => b.append_value(l.rank()),
            _ => unreachable!("column types are checked before rows are appended"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::U64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Level(b) => Arc::new(b.finish()),
        }
    }
}

struct TableBuilder<'s> {
    name: String,
    kind: TableKind,
    stored: Option<&'s TableSchema>,
    /// Columns other than `time`.
    columns: Vec<ColumnDef>,
    index: AHashMap<String, usize>,
    builders: Vec<Builder>,
    /// Per column, the number of rows it holds (a row sets a column once).
    filled: Vec<usize>,
    /// Columns of this request the stored table does not have.
    added: usize,
    times: Vec<i64>,
}

impl TableBuilder<'_> {
    /// Appends `value` to column `c` as row `row`, nulls before it where rows lacked it.
    fn put(&mut self, c: usize, row: usize, value: Value<'_>) {
        let missing = row - self.filled[c];
        if missing > 0 {
            self.builders[c].append_nulls(missing);
        }
        self.builders[c].append(value);
        self.filled[c] = row + 1;
    }

    fn position(&self, name: &str, hint: usize) -> Option<usize> {
        match self.columns.get(hint) {
            Some(c) if c.name == name => Some(hint),
            _ => self.index.get(name).copied(),
        }
    }
}

/// The tables one request writes, each built column by column.
pub(crate) struct Tables<'s> {
    schemas: &'s dyn Schemas,
    tables: Vec<TableBuilder<'s>>,
    index: AHashMap<String, usize>,
    last: usize,
}

impl<'s> Tables<'s> {
    pub(crate) fn new(schemas: &'s dyn Schemas) -> Self {
        Tables {
            schemas,
            tables: Vec::new(),
            index: AHashMap::new(),
            last: 0,
        }
    }

    /// The table `name` of `kind`, created on first use. Fails when the stored table is
    /// of the other kind.
    pub(crate) fn table(&mut self, name: &str, kind: TableKind) -> Result<usize, Conflict> {
        let t = match self.tables.get(self.last) {
            Some(t) if t.name == name => self.last,
            _ => match self.index.get(name) {
                Some(&t) => t,
                None => {
                    let stored = self.schemas.schema(name);
                    if let Some(s) = stored
                        && s.kind != kind
                    {
                        return Err(Conflict::Kind { existing: s.kind });
                    }
                    self.tables.push(TableBuilder {
                        name: name.to_string(),
                        kind,
                        stored,
                        columns: Vec::new(),
                        index: AHashMap::new(),
                        builders: Vec::new(),
                        filled: Vec::new(),
                        added: 0,
                        times: Vec::new(),
                    });
                    self.index.insert(name.to_string(), self.tables.len() - 1);
                    self.tables.len() - 1
                }
            },
        };
        if self.tables[t].kind != kind {
            return Err(Conflict::Kind {
                existing: self.tables[t].kind,
            });
        }
        self.last = t;
        Ok(t)
    }

    /// Checks that the columns of one row fit table `t`, against the request's earlier
    /// rows and the stored table. Returns the first column that does not, with why.
    pub(crate) fn check<'n>(
        &self,
        t: usize,
        columns: impl Iterator<Item = (&'n str, ColumnType)>,
    ) -> Result<(), (&'n str, Conflict)> {
        let table = &self.tables[t];
        let mut new = 0;
        for (i, (name, ty)) in columns.enumerate() {
            if let Some(c) = table.position(name, i) {
                let existing = table.columns[c].ty;
                if existing != ty {
                    let offered = ty;
                    let stored = false;
                    return Err((
                        name,
                        Conflict::Type {
                            existing,
                            offered,
                            stored,
                        },
                    ));
                }
                continue;
            }
            match table.stored.and_then(|s| s.column(name)) {
                Some(c) if c.ty != ty => {
                    let (existing, offered, stored) = (c.ty, ty, true);
                    return Err((
                        name,
                        Conflict::Type {
                            existing,
                            offered,
                            stored,
                        },
                    ));
                }
                Some(_) => {}
                None => new += 1,
            }
        }
        let stored_columns = table.stored.map_or(1, |s| s.columns.len());
        if new > 0 && stored_columns + table.added + new > MAX_COLUMNS {
            return Err(("", Conflict::TooManyColumns));
        }
        Ok(())
    }

    /// Appends a row to table `t`. Its columns must have passed [`Tables::check`] and
    /// appear once each.
    pub(crate) fn push<'v>(
        &mut self,
        t: usize,
        time: i64,
        values: impl Iterator<Item = (&'v str, Value<'v>)>,
    ) {
        self.push_noting(t, time, values, None);
    }

    /// [`Tables::push`], leaving in `positions` (if given) the column each value went
    /// to: a row with the same names in the same order can then be pushed to the same
    /// table with [`Tables::push_at`], its names not looked up.
    pub(crate) fn push_noting<'v>(
        &mut self,
        t: usize,
        time: i64,
        values: impl Iterator<Item = (&'v str, Value<'v>)>,
        mut positions: Option<&mut Vec<usize>>,
    ) {
        let table = &mut self.tables[t];
        let row = table.times.len();
        table.times.push(time);
        for (i, (name, value)) in values.enumerate() {
            let c = match table.position(name, i) {
                Some(c) => c,
                None => {
                    let ty = value.column_type();
                    if table.stored.and_then(|s| s.column(name)).is_none() {
                        table.added += 1;
                    }
                    table.columns.push(ColumnDef::new(name, ty));
                    table
                        .index
                        .insert(name.to_string(), table.columns.len() - 1);
                    table.builders.push(Builder::new(ty));
                    table.filled.push(0);
                    table.columns.len() - 1
                }
            };
            if let Some(positions) = positions.as_deref_mut() {
                positions.push(c);
            }
            table.put(c, row, value);
        }
    }

    /// Appends a row to table `t` whose values go to columns `positions`, as
    /// [`Tables::push_noting`] found them for a row of the same names in the same order.
    pub(crate) fn push_at<'v>(
        &mut self,
        t: usize,
        time: i64,
        positions: &[usize],
        values: impl Iterator<Item = Value<'v>>,
    ) {
        let table = &mut self.tables[t];
        let row = table.times.len();
        table.times.push(time);
        for (&c, value) in positions.iter().zip(values) {
            table.put(c, row, value);
        }
    }

    /// The batches of every table that got rows, in order of first use.
    pub(crate) fn finish(self) -> sextant_engine::Result<Vec<TableBatch>> {
        let mut batches = Vec::with_capacity(self.tables.len());
        for mut table in self.tables {
            let rows = table.times.len();
            if rows == 0 {
                continue;
            }
            let mut columns = vec![ColumnDef::new(TIME_COLUMN, ColumnType::Time)];
            let mut arrays: Vec<ArrayRef> =
                vec![Arc::new(arrow_array::Int64Array::from(table.times))];
            for ((col, b), filled) in table
                .columns
                .into_iter()
                .zip(&mut table.builders)
                .zip(table.filled)
            {
                b.append_nulls(rows - filled);
                columns.push(col);
                arrays.push(b.finish());
            }
            batches.push(TableBatch::try_new(
                table.name, table.kind, columns, arrays,
            )?);
        }
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoSchemas;
    use arrow_array::Array;

    #[test]
    fn rows_with_different_columns_are_null_where_absent() {
        let mut tables = Tables::new(&NoSchemas);
        let t = tables.table("cpu", TableKind::Metric).unwrap();
        tables.push(
            t,
            1,
            [("host", Value::Tag("a")), ("x", Value::F64(1.0))].into_iter(),
        );
        tables.push(t, 2, [("y", Value::I64(2))].into_iter());
        tables.push(
            t,
            3,
            [("host", Value::Tag("b")), ("x", Value::F64(3.0))].into_iter(),
        );
        let batches = tables.finish().unwrap();
        let b = &batches[0];
        let names: Vec<_> = b.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["time", "host", "x", "y"]);
        assert_eq!(b.rows(), 3);
        assert_eq!(b.arrays[1].null_count(), 1);
        assert!(b.arrays[2].is_null(1));
        assert_eq!(b.arrays[3].null_count(), 2);
    }

    #[test]
    fn check_reports_conflicts_in_request_and_stored_table() {
        let mut stored = TableSchema::new("cpu", TableKind::Metric);
        stored.columns.push(ColumnDef::new("x", ColumnType::I64));
        let schemas: std::collections::HashMap<_, _> = [("cpu".to_string(), stored)].into();
        let mut tables = Tables::new(&schemas);
        let t = tables.table("cpu", TableKind::Metric).unwrap();
        let err = tables
            .check(t, [("x", ColumnType::F64)].into_iter())
            .unwrap_err();
        assert!(matches!(err.1, Conflict::Type { stored: true, .. }));
        tables.push(t, 1, [("y", Value::Bool(true))].into_iter());
        let err = tables
            .check(t, [("y", ColumnType::Str)].into_iter())
            .unwrap_err();
        assert!(matches!(err.1, Conflict::Type { stored: false, .. }));
        assert_eq!(
            tables.table("cpu", TableKind::Event).unwrap_err(),
            Conflict::Kind {
                existing: TableKind::Metric
            }
        );
    }
}
