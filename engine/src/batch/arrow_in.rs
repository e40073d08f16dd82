//! Turning a caller's Arrow `RecordBatch` into a [`TableBatch`].

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, UInt8Array};
use arrow_schema::{DataType, Field, TimeUnit};

use super::TableBatch;
use crate::error::{Error, Result};
use crate::schema::{ColumnDef, ColumnType, LEVEL_COLUMN, Level, ROLE_KEY, TIME_COLUMN, TableKind};

impl TableBatch {
    /// Converts an Arrow batch for `table`.
    ///
    /// - `time`: a `Timestamp` of any unit (converted to nanoseconds) or `Int64`
    ///   nanoseconds since the Unix epoch; required and never null.
    /// - Tags: string columns (`Utf8`, `LargeUtf8`, `Utf8View` or a dictionary of strings)
    ///   whose field metadata has `sextant.role` = `tag`.
    /// - Levels: a column with `sextant.role` = `level`, or the string column `level` of an
    ///   event table; level names are parsed case-insensitively, integers are ranks 0-5.
    /// - Fields: floats become f64, signed integers i64, unsigned integers u64, booleans
    ///   bool, and strings string.
    pub fn from_arrow(table: &str, kind: TableKind, batch: &RecordBatch) -> Result<TableBatch> {
        let schema = batch.schema();
        let time_idx = schema.index_of(TIME_COLUMN).map_err(|_| {
            Error::InvalidInput(format!(
                "table {table:?}: the batch has no \"time\" column; every row needs a time"
            ))
        })?;
        let mut columns = vec![ColumnDef::new(TIME_COLUMN, ColumnType::Time)];
        let mut arrays = vec![convert_time(
            table,
            schema.field(time_idx),
            batch.column(time_idx),
        )?];
        for (i, field) in schema.fields().iter().enumerate() {
            if i == time_idx {
                continue;
            }
            let (ty, array) = convert_column(table, kind, field, batch.column(i))?;
            columns.push(ColumnDef::new(field.name(), ty));
            arrays.push(array);
        }
        TableBatch::try_new(table, kind, columns, arrays)
    }
}

fn unsupported(table: &str, field: &Field, why: &str) -> Error {
    Error::InvalidInput(format!(
        "table {table:?}: column {:?} has Arrow type {}, {why}",
        field.name(),
        field.data_type()
    ))
}

fn convert_time(table: &str, field: &Field, array: &ArrayRef) -> Result<ArrayRef> {
    let ns = match array.data_type() {
        DataType::Int64 => array.clone(),
        DataType::Timestamp(_, _) => {
            let ns = arrow_cast::cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            arrow_cast::cast(&ns, &DataType::Int64)?
        }
        _ => {
            return Err(unsupported(
                table,
                field,
                "but the time column must be a Timestamp or Int64 nanoseconds",
            ));
        }
    };
    Ok(ns)
}

fn is_string(ty: &DataType) -> bool {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_string(value),
        _ => false,
    }
}

fn convert_column(
    table: &str,
    kind: TableKind,
    field: &Field,
    array: &ArrayRef,
) -> Result<(ColumnType, ArrayRef)> {
    let role = field.metadata().get(ROLE_KEY).map(String::as_str);
    let ty = field.data_type();
    match role {
        Some("tag") => {
            if !is_string(ty) {
                return Err(unsupported(table, field, "but tags must be strings"));
            }
            Ok((ColumnType::Tag, arrow_cast::cast(array, &DataType::Utf8)?))
        }
        Some("level") => Ok((ColumnType::Level, convert_level(table, field, array)?)),
        Some(other) if other != "field" => Err(Error::InvalidInput(format!(
            "table {table:?}: column {:?} has role {other:?}; the roles are \"tag\", \"level\" and \"field\"",
            field.name()
        ))),
        _ if kind == TableKind::Event && field.name() == LEVEL_COLUMN && is_string(ty) => {
            Ok((ColumnType::Level, convert_level(table, field, array)?))
        }
        _ => {
            let target = match ty {
                DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::F64,
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    ColumnType::I64
                }
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                    ColumnType::U64
                }
                DataType::Boolean => ColumnType::Bool,
                t if is_string(t) => ColumnType::Str,
                _ => {
                    return Err(unsupported(
                        table,
                        field,
                        "which Sextant does not store; fields are floats, integers, booleans or strings",
                    ));
                }
            };
            Ok((
                target,
                arrow_cast::cast(array, &super::internal_type(target))?,
            ))
        }
    }
}

fn convert_level(table: &str, field: &Field, array: &ArrayRef) -> Result<ArrayRef> {
    let ty = array.data_type();
    if is_string(ty) {
        let strings = arrow_cast::cast(array, &DataType::Utf8)?;
        let strings = strings.as_string::<i32>();
        let mut ranks = Vec::with_capacity(strings.len());
        for (row, value) in strings.iter().enumerate() {
            ranks.push(match value {
                None => None,
                Some(name) => Some(
                    Level::parse(name)
                        .map_err(|e| {
                            Error::InvalidInput(format!(
                                "table {table:?}: column {:?}, row {row}: {e}",
                                field.name()
                            ))
                        })?
                        .rank(),
                ),
            });
        }
        return Ok(Arc::new(UInt8Array::from(ranks)));
    }
    if ty.is_integer() {
        let wide = arrow_cast::cast(array, &DataType::Int64)?;
        let wide = wide.as_primitive::<arrow_array::types::Int64Type>();
        let mut ranks = Vec::with_capacity(wide.len());
        for (row, value) in wide.iter().enumerate() {
            ranks.push(match value {
                None => None,
                Some(r) if (0..=5).contains(&r) => Some(r as u8),
                Some(r) => {
                    return Err(Error::InvalidInput(format!(
                        "table {table:?}: column {:?}, row {row}: {r} is not a level rank (0 = trace .. 5 = fatal)",
                        field.name()
                    )));
                }
            });
        }
        return Ok(Arc::new(UInt8Array::from(ranks)));
    }
    Err(unsupported(
        table,
        field,
        "but levels must be strings or integer ranks",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float32Array, Int32Array, StringArray, TimestampMillisecondArray};
    use arrow_schema::Schema;

    fn tag(name: &str) -> Field {
        Field::new(name, DataType::Utf8, true)
            .with_metadata([(ROLE_KEY.to_string(), "tag".to_string())].into())
    }

    #[test]
    fn arrow_batch_converts_units_roles_and_types() {
        let schema = Schema::new(vec![
            Field::new("usage", DataType::Float32, true),
            tag("host"),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("count", DataType::Int32, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float32Array::from(vec![1.5, 2.5])),
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(TimestampMillisecondArray::from(vec![1, 2])),
                Arc::new(Int32Array::from(vec![Some(7), None])),
            ],
        )
        .unwrap();
        let tb = TableBatch::from_arrow("cpu", TableKind::Metric, &batch).unwrap();
        let names: Vec<_> = tb.columns.iter().map(|c| (c.name.as_str(), c.ty)).collect();
        assert_eq!(
            names,
            [
                ("time", ColumnType::Time),
                ("usage", ColumnType::F64),
                ("host", ColumnType::Tag),
                ("count", ColumnType::I64)
            ]
        );
        assert_eq!(tb.time().values().as_ref(), &[1_000_000, 2_000_000]);
    }

    #[test]
    fn event_level_column_is_parsed_and_checked() {
        let schema = Schema::new(vec![
            Field::new("time", DataType::Int64, false),
            Field::new("level", DataType::Utf8, true),
        ]);
        let good = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![
                Arc::new(arrow_array::Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["ERROR", "info"])),
            ],
        )
        .unwrap();
        let tb = TableBatch::from_arrow("logs", TableKind::Event, &good).unwrap();
        assert_eq!(tb.columns[1].ty, ColumnType::Level);
        let bad = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(arrow_array::Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["noisy"])),
            ],
        )
        .unwrap();
        let err = TableBatch::from_arrow("logs", TableKind::Event, &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 0: \"noisy\" is not a log level"), "{err}");
    }

    #[test]
    fn missing_time_is_rejected() {
        let schema = Schema::new(vec![Field::new("v", DataType::Float64, true)]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(arrow_array::Float64Array::from(vec![1.0]))],
        )
        .unwrap();
        let err = TableBatch::from_arrow("cpu", TableKind::Metric, &batch).unwrap_err();
        assert!(err.to_string().contains("no \"time\" column"));
    }
}
