//! Formatting rows as JSON lines that [`parse`](super::parse) reads back.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt64Type};
use serde_json::{Map, Value as Json};
use sextant_engine::{ColumnType, Level, TableBatch};

use super::Error;
use super::parse::MESSAGE_COLUMN;
use super::time::format_rfc3339;

/// Appends every row of `batch` to `out` as one JSON object per line, and returns how
/// many lines it wrote:
///
/// ```text
/// {"_table":"logs","time":"2023-11-14T22:13:20.000000000Z","level":"warn","message":"disk low","tags":{"service":"api"},"fields":{"free_mb":512}}
/// ```
///
/// Null values are left out (a row whose level is null reads back with the default
/// level). Fails on a float that is not finite, which JSON cannot hold. Unsigned values
/// that fit an i64 read back as i64.
pub fn write_batch(batch: &TableBatch, out: &mut String) -> Result<usize, Error> {
    let times = batch.time();
    for row in 0..batch.rows() {
        let mut line = Map::new();
        line.insert("_table".into(), Json::String(batch.table.clone()));
        line.insert(
            "time".into(),
            Json::String(format_rfc3339(times.value(row))),
        );
        let mut tags = Map::new();
        let mut fields = Map::new();
        for (col, array) in batch.columns.iter().zip(&batch.arrays).skip(1) {
            if array.is_null(row) {
                continue;
            }
            let name = col.name.clone();
            match col.ty {
                ColumnType::Level => {
                    let rank = array.as_primitive::<UInt8Type>().value(row);
                    let level = Level::from_rank(rank).map_or("info", Level::as_str);
                    line.insert("level".into(), Json::String(level.into()));
                }
                ColumnType::Tag => {
                    let v = array.as_string::<i32>().value(row);
                    tags.insert(name, Json::String(v.into()));
                }
                ColumnType::Str if col.name == MESSAGE_COLUMN => {
                    let v = array.as_string::<i32>().value(row);
                    line.insert(name, Json::String(v.into()));
                }
                ColumnType::Str => {
                    let v = array.as_string::<i32>().value(row);
                    fields.insert(name, Json::String(v.into()));
                }
                ColumnType::F64 => {
                    let x = array.as_primitive::<Float64Type>().value(row);
                    let n = serde_json::Number::from_f64(x).ok_or_else(|| {
                        Error::NotRepresentable(format!(
                            "field {:?} is {x}, which JSON cannot hold",
                            col.name
                        ))
                    })?;
                    fields.insert(name, Json::Number(n));
                }
                ColumnType::I64 => {
                    let x = array.as_primitive::<Int64Type>().value(row);
                    fields.insert(name, Json::from(x));
                }
                ColumnType::U64 => {
                    let x = array.as_primitive::<UInt64Type>().value(row);
                    fields.insert(name, Json::from(x));
                }
                ColumnType::Bool => {
                    fields.insert(name, Json::Bool(array.as_boolean().value(row)));
                }
                ColumnType::Time => {}
            }
        }
        if !tags.is_empty() {
            line.insert("tags".into(), Json::Object(tags));
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Json::Object(fields));
        }
        out.push_str(&Json::Object(line).to_string());
        out.push('\n');
    }
    Ok(batch.rows())
}
