//! Building the returned Arrow batches from pieces of series.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, UInt8Type};
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int32Array, RecordBatch, RecordBatchOptions, StringArray,
    TimestampNanosecondArray,
};
use arrow_buffer::NullBufferBuilder;
use arrow_schema::SchemaRef;

use crate::error::Result;
use crate::schema::{ColumnDef, ColumnType, Level};
use crate::series::SeriesKey;

/// Consecutive rows of one series: the stored columns the scan needs, in the scan's
/// `needed` order (`time` first; when the output has no time column and no filtering
/// needed it, the time array may be empty).
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub key: SeriesKey,
    pub len: usize,
    pub arrays: Vec<ArrayRef>,
}

impl Piece {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn slice(&self, offset: usize, len: usize) -> Piece {
        let arrays = self
            .arrays
            .iter()
            .map(|a| {
                if a.len() == self.len {
                    a.slice(offset, len)
                } else {
                    a.clone()
                }
            })
            .collect();
        Piece {
            key: self.key.clone(),
            len,
            arrays,
        }
    }
}

/// Builds one batch of the output columns from pieces.
///
/// `needed_index[i]` is, for output column `i` that is not a tag, its position in the
/// pieces' arrays.
pub(crate) fn assemble(
    schema: &SchemaRef,
    out: &[ColumnDef],
    needed_index: &[Option<usize>],
    pieces: &[Piece],
) -> Result<RecordBatch> {
    let rows: usize = pieces.iter().map(Piece::len).sum();
    if pieces.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(out.len());
    for (col, idx) in out.iter().zip(needed_index) {
        let array: ArrayRef = match (col.ty, idx) {
            (ColumnType::Tag, _) => tag_column(&col.name, pieces)?,
            (ty, Some(i)) => {
                let parts: Vec<&dyn Array> = pieces.iter().map(|p| p.arrays[*i].as_ref()).collect();
                let joined = if parts.len() == 1 {
                    pieces[0].arrays[*i].clone()
                } else {
                    arrow_select::concat::concat(&parts)?
                };
                external(ty, joined)?
            }
            (_, None) => unreachable!("stored columns are always gathered"),
        };
        columns.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

/// Turns an internal array into the type the engine returns.
pub(crate) fn external(ty: ColumnType, array: ArrayRef) -> Result<ArrayRef> {
    Ok(match ty {
        ColumnType::Time => {
            let t = array.as_primitive::<arrow_array::types::Int64Type>();
            Arc::new(
                TimestampNanosecondArray::new(t.values().clone(), t.nulls().cloned())
                    .with_timezone("UTC"),
            )
        }
        ColumnType::Level => {
            let ranks = array.as_primitive::<UInt8Type>().clone();
            Arc::new(DictionaryArray::<UInt8Type>::try_new(
                ranks,
                Arc::new(StringArray::from(Level::NAMES.to_vec())),
            )?)
        }
        _ => array,
    })
}

fn tag_column(name: &str, pieces: &[Piece]) -> Result<ArrayRef> {
    let mut values: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, i32> = HashMap::new();
    let rows: usize = pieces.iter().map(Piece::len).sum();
    // A piece is one series: its key repeats over its rows. Nulls (series without the
    // tag) are tracked only once one appears.
    let mut keys: Vec<i32> = Vec::with_capacity(rows);
    let mut nulls: Option<NullBufferBuilder> = None;
    for p in pieces {
        let k = p.key.get(name).map(|v| {
            *index.entry(v).or_insert_with(|| {
                values.push(v);
                values.len() as i32 - 1
            })
        });
        if k.is_none() && nulls.is_none() {
            let mut builder = NullBufferBuilder::new(rows);
            builder.append_n_non_nulls(keys.len());
            nulls = Some(builder);
        }
        if let Some(builder) = nulls.as_mut() {
            match k {
                Some(_) => builder.append_n_non_nulls(p.len()),
                None => builder.append_n_nulls(p.len()),
            }
        }
        keys.extend(std::iter::repeat_n(k.unwrap_or(0), p.len()));
    }
    let keys = Int32Array::new(keys.into(), nulls.and_then(|mut b| b.finish()));
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        keys,
        Arc::new(StringArray::from(values)),
    )?))
}
