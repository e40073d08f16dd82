//! Field filters in the scan: which blocks and rows may meet them.
//!
//! A field filter is a hint (DataFusion still filters the rows): a block or a row is
//! left out only when it cannot meet the filter. In order of cost: a string block's
//! Bloom filter rules out the value of an equality (nothing decoded), then the filter
//! columns are decoded and compared row by row.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow_buffer::BooleanBuffer;

use super::{CmpOp, FieldFilter, Scan, ScanRequest, Source};
use crate::error::{Error, Result};
use crate::schema::{ColumnDef, ColumnType, TableSchema};

impl Scan {
    /// Whether the block filters of the equality filters on string fields rule out every
    /// row of block `block` of segment source `source`: nothing is decoded.
    pub(super) fn filters_rule_out(
        &self,
        seg: &crate::segment::Segment,
        source: usize,
        block: usize,
    ) -> Result<bool> {
        use crate::batch::FieldValue;
        for (k, f) in &self.filters {
            if let (CmpOp::Eq, FieldValue::Str(v), ColumnType::Str, Some(col)) =
                (f.op, &f.value, self.needed[*k].ty, self.colmap[source][*k])
                && !seg.block_may_contain(col, block, v.as_bytes())?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Which rows in `[a, b)` of block `block` of a segment may meet every field filter;
    /// only the filters' columns are decoded, rows `[from, end)` (around `[a, b)`).
    pub(super) fn rows_meeting(
        &mut self,
        source: usize,
        block: usize,
        (a, b): (usize, usize),
        (from, end): (usize, usize),
    ) -> Result<Meets> {
        let mut mask: Option<BooleanBuffer> = None;
        for i in 0..self.filters.len() {
            let k = self.filters[i].0;
            // A column the segment lacks is null in every row: no row meets the filter.
            let Some(array) = self.block(source, k, block, from, end)? else {
                return Ok(Meets::Nothing);
            };
            let met = may_meet(&array.slice(a - from, b - a), &self.filters[i].1)?;
            let met = match mask {
                Some(before) => &before & &met,
                None => met,
            };
            if met.count_set_bits() == 0 {
                return Ok(Meets::Nothing);
            }
            mask = Some(met);
        }
        Ok(match mask {
            Some(mask) if mask.count_set_bits() < mask.len() => Meets::Rows(mask),
            _ => Meets::All,
        })
    }

    /// The rows among `indices` of a chunk source that may meet every field filter.
    pub(super) fn chunk_rows_meeting(
        &mut self,
        source: usize,
        indices: UInt32Array,
    ) -> Result<UInt32Array> {
        let Source::Chunk(chunk) = &self.sources[source] else {
            unreachable!("chunk source")
        };
        let mut mask: Option<BooleanBuffer> = None;
        for (k, filter) in &self.filters {
            let met = match self.colmap[source][*k] {
                Some(c) => {
                    let values = arrow_select::take::take(&chunk.batch.arrays[c], &indices, None)?;
                    may_meet(&values, filter)?
                }
                // A column the chunk lacks is null in every row: no row meets the filter.
                None => BooleanBuffer::new_unset(indices.len()),
            };
            mask = Some(match mask {
                Some(before) => &before & &met,
                None => met,
            });
        }
        match mask {
            Some(mask) if mask.count_set_bits() < mask.len() => {
                self.metrics.rows_filtered += mask.len() - mask.count_set_bits();
                let kept = arrow_select::filter::filter(&indices, &BooleanArray::new(mask, None))?;
                Ok(kept
                    .as_primitive::<arrow_array::types::UInt32Type>()
                    .clone())
            }
            _ => Ok(indices),
        }
    }
}

/// The request's field filters that can be used: each checked to name a field of a
/// matching type, paired with the index of its column among `returned` (the needed
/// columns the output asked for); filters on columns not returned are left out.
pub(super) fn field_filters(
    schema: &TableSchema,
    req: &ScanRequest,
    returned: &[ColumnDef],
) -> Result<Vec<(usize, FieldFilter)>> {
    use crate::batch::FieldValue;
    let mut out = Vec::new();
    for f in &req.fields {
        let Some(def) = schema.column(&f.column) else {
            return Err(Error::NoSuchColumn {
                table: schema.name.clone(),
                column: f.column.clone(),
            });
        };
        let ty = f.value.column_type();
        if def.ty == ColumnType::Level {
            let named = match &f.value {
                FieldValue::Str(name) => crate::schema::Level::parse(name).is_ok(),
                _ => false,
            };
            if !named {
                return Err(Error::InvalidInput(format!(
                    "table {:?}: a filter on the level column {:?} compares it with a level \
                     name (trace, debug, info, warn, error or fatal), not {}",
                    schema.name, f.column, f.value
                )));
            }
        } else if !def.ty.is_field() || def.ty != ty {
            return Err(Error::InvalidInput(format!(
                "table {:?}: a field filter compares {:?}, a {} column, with a {ty} value; it \
                 takes a field and a value of the field's type",
                schema.name, f.column, def.ty
            )));
        }
        if let Some(k) = returned.iter().position(|c| c.name == f.column) {
            out.push((k, f.clone()));
        }
    }
    Ok(out)
}

/// Which rows of a stretch of a block may meet the field filters.
pub(super) enum Meets {
    /// No row: the stretch is skipped.
    Nothing,
    /// Every row.
    All,
    /// The rows set in the mask (some, not all).
    Rows(BooleanBuffer),
}

/// Which rows of `array` (a field's stored values) may meet `filter`; a null meets none.
/// Integers, strings and booleans compare with Arrow's kernels, as DataFusion compares
/// them. Floats are compared both as IEEE 754 does and in total order (`f64::total_cmp`:
/// a NaN above every number, or below when its sign bit is set; -0.0 below 0.0), a zero
/// also as its opposite, and a row may meet the filter if it meets it in any of these:
/// DataFusion's own comparison of floats is one of them, and a row left out must be one
/// it would not keep.
pub(super) fn may_meet(array: &ArrayRef, filter: &FieldFilter) -> Result<BooleanBuffer> {
    use crate::batch::FieldValue;
    use arrow_array::types::Float64Type;
    use arrow_array::{Int64Array, Scalar, StringArray, UInt8Array, UInt64Array};
    use arrow_ord::cmp;
    let valid = |met: BooleanBuffer, nulls: Option<&arrow_buffer::NullBuffer>| match nulls {
        Some(n) => &met & n.inner(),
        None => met,
    };
    let value: ArrayRef = match &filter.value {
        FieldValue::F64(v) => {
            let floats = array.as_primitive::<Float64Type>();
            let x = floats.values();
            let met = BooleanBuffer::collect_bool(x.len(), |i| float_may_meet(x[i], filter.op, *v));
            return Ok(valid(met, floats.nulls()));
        }
        FieldValue::I64(v) => Arc::new(Int64Array::from(vec![*v])),
        FieldValue::U64(v) => Arc::new(UInt64Array::from(vec![*v])),
        FieldValue::Bool(v) => Arc::new(BooleanArray::from(vec![*v])),
        // A level column holds ranks, and compares by severity with a level's name.
        FieldValue::Str(v) if array.data_type() == &arrow_schema::DataType::UInt8 => {
            Arc::new(UInt8Array::from(vec![
                crate::schema::Level::parse(v)?.rank(),
            ]))
        }
        FieldValue::Str(v) => Arc::new(StringArray::from(vec![v.as_str()])),
    };
    let value = Scalar::new(value);
    let met = match filter.op {
        CmpOp::Eq => cmp::eq(array, &value),
        CmpOp::NotEq => cmp::neq(array, &value),
        CmpOp::Lt => cmp::lt(array, &value),
        CmpOp::LtEq => cmp::lt_eq(array, &value),
        CmpOp::Gt => cmp::gt(array, &value),
        CmpOp::GtEq => cmp::gt_eq(array, &value),
    }?;
    Ok(valid(met.values().clone(), met.nulls()))
}

/// `x op v` under IEEE 754 comparison or total order, `v` a zero taken as either zero.
pub(super) fn float_may_meet(x: f64, op: CmpOp, v: f64) -> bool {
    use std::cmp::Ordering;
    let holds = |o: Ordering| match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::NotEq => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::LtEq => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::GtEq => o != Ordering::Less,
    };
    let ieee = match x.partial_cmp(&v) {
        Some(o) => holds(o),
        None => op == CmpOp::NotEq,
    };
    ieee || holds(x.total_cmp(&v)) || (v == 0.0 && holds(x.total_cmp(&-v)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, ArrayRef, Float64Array, Scalar};
    use arrow_ord::cmp;
    use proptest::prelude::*;

    use super::float_may_meet;
    use crate::scan::request::CmpOp;

    const OPS: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::NotEq,
        CmpOp::Lt,
        CmpOp::LtEq,
        CmpOp::Gt,
        CmpOp::GtEq,
    ];

    /// Floats with the values comparisons trip on: NaN of both signs, zeros of both
    /// signs, infinities, and any other.
    fn floats() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            Just(-f64::NAN),
            Just(0.0),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(1.5),
            Just(-1.5),
            any::<f64>(),
        ]
    }

    proptest! {
        /// A row is left out only if neither Arrow's comparison (DataFusion's) nor IEEE
        /// 754's keeps it.
        #[test]
        fn a_float_left_out_is_kept_by_no_comparison(x in floats(), v in floats()) {
            let array: ArrayRef = Arc::new(Float64Array::from(vec![x]));
            let value = Scalar::new(Float64Array::from(vec![v]));
            for op in OPS {
                let arrow = match op {
                    CmpOp::Eq => cmp::eq(&array, &value),
                    CmpOp::NotEq => cmp::neq(&array, &value),
                    CmpOp::Lt => cmp::lt(&array, &value),
                    CmpOp::LtEq => cmp::lt_eq(&array, &value),
                    CmpOp::Gt => cmp::gt(&array, &value),
                    CmpOp::GtEq => cmp::gt_eq(&array, &value),
                }
                .unwrap();
                let ieee = match op {
                    CmpOp::Eq => x == v,
                    CmpOp::NotEq => x != v,
                    CmpOp::Lt => x < v,
                    CmpOp::LtEq => x <= v,
                    CmpOp::Gt => x > v,
                    CmpOp::GtEq => x >= v,
                };
                if arrow.is_valid(0) && arrow.value(0) || ieee {
                    prop_assert!(float_may_meet(x, op, v), "{x:?} {op:?} {v:?} left out");
                }
            }
        }
    }
}
