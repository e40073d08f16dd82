//! Writes in the engine's own columnar form.
//!
//! Every write call (Arrow batch, points or log records) becomes one or more
//! [`TableBatch`]es: the rows of one table with their columns in the engine's internal
//! Arrow types (`time` as `Int64`, tags and strings as `Utf8`, levels as `UInt8` ranks).
//! A write call is one WAL record holding all its table batches, so it is atomic.

mod arrow_in;
pub(crate) mod payload;
pub(crate) mod point;

use arrow_array::{Array, ArrayRef, Int64Array, UInt8Array};

pub use point::{FieldValue, LogRecord, Point};

use crate::error::{Error, Result};
use crate::schema::{ColumnDef, ColumnType, Level, TIME_COLUMN, TableKind, validate_name};

/// The rows of one write call for one table, in the engine's internal column types.
#[derive(Debug, Clone)]
pub struct TableBatch {
    /// The table written.
    pub table: String,
    /// The table's kind.
    pub kind: TableKind,
    /// The columns, `time` first.
    pub columns: Vec<ColumnDef>,
    /// One array per column, each `rows` long.
    pub arrays: Vec<ArrayRef>,
}

impl TableBatch {
    /// Builds and checks a table batch: names valid and unique, `time` first and never
    /// null, every array of the column's internal type and of the same length, level
    /// ranks in range.
    pub fn try_new(
        table: impl Into<String>,
        kind: TableKind,
        columns: Vec<ColumnDef>,
        arrays: Vec<ArrayRef>,
    ) -> Result<Self> {
        let batch = TableBatch {
            table: table.into(),
            kind,
            columns,
            arrays,
        };
        batch.validate()?;
        Ok(batch)
    }

    /// How many rows the batch holds.
    pub fn rows(&self) -> usize {
        self.arrays.first().map_or(0, |a| a.len())
    }

    /// The time column.
    pub fn time(&self) -> &Int64Array {
        self.arrays[0]
            .as_any()
            .downcast_ref()
            .expect("validated: time is Int64")
    }

    /// Bytes of memory the arrays hold.
    pub fn memory_size(&self) -> usize {
        self.arrays.iter().map(|a| a.get_array_memory_size()).sum()
    }

    fn validate(&self) -> Result<()> {
        validate_name("table", &self.table)?;
        let bad = |msg: String| {
            Err(Error::InvalidInput(format!(
                "table {:?}: {msg}",
                self.table
            )))
        };
        if self.columns.len() != self.arrays.len() {
            return bad(format!(
                "{} columns were named but {} arrays given",
                self.columns.len(),
                self.arrays.len()
            ));
        }
        if self.columns.len() > crate::schema::MAX_COLUMNS {
            return bad(format!(
                "{} columns were given; a table has at most {}",
                self.columns.len(),
                crate::schema::MAX_COLUMNS
            ));
        }
        match self.columns.first() {
            Some(c) if c.name == TIME_COLUMN && c.ty == ColumnType::Time => {}
            _ => return bad("the first column must be the time column \"time\"".into()),
        }
        let rows = self.rows();
        for (i, (col, array)) in self.columns.iter().zip(&self.arrays).enumerate() {
            validate_column_name(&self.table, &col.name)?;
            if i > 0 && (col.ty == ColumnType::Time || col.name == TIME_COLUMN) {
                return bad(format!(
                    "column {:?} cannot be a second time column",
                    col.name
                ));
            }
            if self.columns[..i].iter().any(|c| c.name == col.name) {
                return bad(format!("column {:?} appears twice", col.name));
            }
            if array.data_type() != &internal_type(col.ty) {
                return bad(format!(
                    "column {:?} is declared {} but holds Arrow {}",
                    col.name,
                    col.ty,
                    array.data_type()
                ));
            }
            if array.len() != rows {
                return bad(format!(
                    "column {:?} has {} rows, the time column {rows}",
                    col.name,
                    array.len()
                ));
            }
            if col.ty == ColumnType::Level {
                let ranks: &UInt8Array = array.as_any().downcast_ref().expect("checked type");
                if ranks
                    .iter()
                    .flatten()
                    .any(|r| Level::from_rank(r).is_none())
                {
                    return bad(format!("column {:?} holds a level rank above 5", col.name));
                }
            }
        }
        if self.arrays[0].null_count() > 0 {
            return bad("the time column has nulls; every row needs a time".into());
        }
        Ok(())
    }

    /// Keeps only the rows whose indices are given (in that order).
    #[cfg(test)]
    pub(crate) fn take(&self, indices: &arrow_array::UInt32Array) -> Result<TableBatch> {
        let arrays = self
            .arrays
            .iter()
            .map(|a| arrow_select::take::take(a.as_ref(), indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(TableBatch {
            arrays,
            ..self.clone()
        })
    }
}

/// The Arrow type a column has inside the engine (in the WAL, the head and segments).
pub fn internal_type(ty: ColumnType) -> arrow_schema::DataType {
    use arrow_schema::DataType;
    match ty {
        ColumnType::Time | ColumnType::I64 => DataType::Int64,
        ColumnType::Tag | ColumnType::Str => DataType::Utf8,
        ColumnType::F64 => DataType::Float64,
        ColumnType::U64 => DataType::UInt64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Level => DataType::UInt8,
    }
}

/// Column names: 1 to 128 bytes of UTF-8 without control characters.
pub(crate) fn validate_column_name(table: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > crate::schema::MAX_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(Error::InvalidInput(format!(
            "table {table:?}: column name {name:?} is not allowed: use 1 to {} bytes without control characters",
            crate::schema::MAX_NAME_LEN
        )));
    }
    Ok(())
}

/// A null array of a column's internal type.
pub(crate) fn null_array(ty: ColumnType, len: usize) -> ArrayRef {
    arrow_array::new_null_array(&internal_type(ty), len)
}

#[cfg(test)]
pub(crate) fn time_array(times: Vec<i64>) -> ArrayRef {
    std::sync::Arc::new(Int64Array::from(times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray};
    use std::sync::Arc;

    fn cols(defs: &[(&str, ColumnType)]) -> Vec<ColumnDef> {
        defs.iter().map(|(n, t)| ColumnDef::new(*n, *t)).collect()
    }

    #[test]
    fn batch_requires_time_first_and_matching_lengths() {
        let ok = TableBatch::try_new(
            "cpu",
            TableKind::Metric,
            cols(&[("time", ColumnType::Time), ("host", ColumnType::Tag)]),
            vec![
                time_array(vec![1, 2]),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        );
        assert_eq!(ok.unwrap().rows(), 2);

        let short = TableBatch::try_new(
            "cpu",
            TableKind::Metric,
            cols(&[("time", ColumnType::Time), ("v", ColumnType::F64)]),
            vec![
                time_array(vec![1, 2]),
                Arc::new(Float64Array::from(vec![1.0])),
            ],
        );
        assert!(
            short
                .unwrap_err()
                .to_string()
                .contains("has 1 rows, the time column 2")
        );

        let no_time = TableBatch::try_new(
            "cpu",
            TableKind::Metric,
            cols(&[("v", ColumnType::F64)]),
            vec![Arc::new(Float64Array::from(vec![1.0]))],
        );
        assert!(
            no_time
                .unwrap_err()
                .to_string()
                .contains("first column must be the time")
        );
    }

    #[test]
    fn batch_rejects_duplicate_columns_and_wrong_types() {
        let dup = TableBatch::try_new(
            "cpu",
            TableKind::Metric,
            cols(&[
                ("time", ColumnType::Time),
                ("v", ColumnType::F64),
                ("v", ColumnType::F64),
            ]),
            vec![
                time_array(vec![1]),
                Arc::new(Float64Array::from(vec![1.0])),
                Arc::new(Float64Array::from(vec![1.0])),
            ],
        );
        assert!(dup.unwrap_err().to_string().contains("appears twice"));
        let wrong = TableBatch::try_new(
            "cpu",
            TableKind::Metric,
            cols(&[("time", ColumnType::Time), ("v", ColumnType::I64)]),
            vec![time_array(vec![1]), Arc::new(Float64Array::from(vec![1.0]))],
        );
        assert!(
            wrong
                .unwrap_err()
                .to_string()
                .contains("declared i64 but holds Arrow Float64")
        );
    }

    #[test]
    fn batch_rejects_bad_level_ranks() {
        let bad = TableBatch::try_new(
            "logs",
            TableKind::Event,
            cols(&[("time", ColumnType::Time), ("level", ColumnType::Level)]),
            vec![time_array(vec![1]), Arc::new(UInt8Array::from(vec![9u8]))],
        );
        assert!(bad.unwrap_err().to_string().contains("level rank above 5"));
    }
}
