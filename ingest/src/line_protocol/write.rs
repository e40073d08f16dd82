//! Formatting rows as line protocol, timestamps in nanoseconds.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt64Type};
use arrow_array::{Array, ArrayRef};
use sextant_engine::{ColumnType, FieldValue, Level, TableBatch};

use super::Error;

/// Appends one line to `out` (with its trailing `\n`): measurement, tags, fields and an
/// optional timestamp in nanoseconds. Tags with an empty value are left out (line
/// protocol cannot express them).
///
/// Fails, leaving `out` as it was, when there is no field, a name is empty, the
/// measurement starts with `#`, a name holds a line break, or a float is not finite.
///
/// ```
/// use sextant_engine::FieldValue;
/// let mut out = String::new();
/// sextant_ingest::line_protocol::write_line(
///     &mut out,
///     "cpu",
///     &[("host", "web 1")],
///     &[("usage", FieldValue::F64(1.5)), ("note", FieldValue::Str("say \"hi\"".into()))],
///     Some(10),
/// )
/// .unwrap();
/// assert_eq!(out, "cpu,host=web\\ 1 usage=1.5,note=\"say \\\"hi\\\"\" 10\n");
/// ```
pub fn write_line(
    out: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, FieldValue)],
    time: Option<i64>,
) -> Result<(), Error> {
    let len = out.len();
    let result = write_line_inner(out, measurement, tags, fields, time);
    if result.is_err() {
        out.truncate(len);
    }
    result
}

fn write_line_inner(
    out: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, FieldValue)],
    time: Option<i64>,
) -> Result<(), Error> {
    if measurement.starts_with('#') {
        return Err(not_representable(format!(
            "measurement {measurement:?} starts with '#', which makes the line a comment"
        )));
    }
    escape_name(out, "measurement", measurement)?;
    for (key, value) in tags {
        if value.is_empty() {
            continue;
        }
        out.push(',');
        escape_name(out, "tag key", key)?;
        out.push('=');
        escape_name(out, "tag value", value)?;
    }
    if fields.is_empty() {
        return Err(not_representable(format!(
            "a line of measurement {measurement:?} needs at least one field"
        )));
    }
    for (i, (key, value)) in fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        escape_name(out, "field key", key)?;
        out.push('=');
        write_value(out, key, value)?;
    }
    if let Some(t) = time {
        let _ = write!(out, " {t}");
    }
    out.push('\n');
    Ok(())
}

fn not_representable(what: String) -> Error {
    Error::NotRepresentable(what)
}

fn escape_name(out: &mut String, what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(not_representable(format!("a {what} is empty")));
    }
    if name.contains(['\n', '\r']) {
        return Err(not_representable(format!(
            "{what} {name:?} holds a line break, which line protocol cannot express"
        )));
    }
    for c in name.chars() {
        if matches!(c, ',' | '=' | ' ' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(())
}

fn write_value(out: &mut String, key: &str, value: &FieldValue) -> Result<(), Error> {
    match value {
        FieldValue::F64(x) if !x.is_finite() => {
            return Err(not_representable(format!(
                "field {key:?} is {x}, and line protocol has no infinite or NaN floats"
            )));
        }
        FieldValue::F64(x) => {
            let _ = write!(out, "{x:?}");
        }
        FieldValue::I64(x) => {
            let _ = write!(out, "{x}i");
        }
        FieldValue::U64(x) => {
            let _ = write!(out, "{x}u");
        }
        FieldValue::Bool(x) => out.push_str(if *x { "true" } else { "false" }),
        FieldValue::Str(s) => {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    Ok(())
}

/// Appends every row of `batch` to `out` as line protocol, with nanosecond timestamps,
/// and returns how many lines it wrote.
///
/// Null tags and fields are left out; a row with no non-null field is skipped (a line
/// needs a field). A level column (of event tables) is written as a tag named after it.
pub fn write_batch(batch: &TableBatch, out: &mut String) -> Result<usize, Error> {
    let times = batch.time();
    let mut tags: Vec<(&str, &str)> = Vec::new();
    let mut fields: Vec<(&str, FieldValue)> = Vec::new();
    let mut written = 0;
    for row in 0..batch.rows() {
        tags.clear();
        fields.clear();
        for (col, array) in batch.columns.iter().zip(&batch.arrays).skip(1) {
            if array.is_null(row) {
                continue;
            }
            match col.ty {
                ColumnType::Tag => tags.push((&col.name, array.as_string::<i32>().value(row))),
                ColumnType::Level => {
                    let rank = array.as_primitive::<UInt8Type>().value(row);
                    let level = Level::from_rank(rank).map_or("?", Level::as_str);
                    tags.push((&col.name, level));
                }
                ty => fields.push((&col.name, field_value(ty, array, row))),
            }
        }
        if fields.is_empty() {
            continue;
        }
        write_line(out, &batch.table, &tags, &fields, Some(times.value(row)))?;
        written += 1;
    }
    Ok(written)
}

fn field_value(ty: ColumnType, array: &ArrayRef, row: usize) -> FieldValue {
    match ty {
        ColumnType::F64 => FieldValue::F64(array.as_primitive::<Float64Type>().value(row)),
        ColumnType::I64 => FieldValue::I64(array.as_primitive::<Int64Type>().value(row)),
        ColumnType::U64 => FieldValue::U64(array.as_primitive::<UInt64Type>().value(row)),
        ColumnType::Bool => FieldValue::Bool(array.as_boolean().value(row)),
        _ => FieldValue::Str(array.as_string::<i32>().value(row).to_string()),
    }
}
