//! The WAL payload: the table batches of one write call, as bytes.
//!
//! ```text
//! PAYLOAD  := version:u8 (=1) n_batches:u16 BATCH{n_batches}
//! BATCH    := kind:u8 table:STR16 rows:u32 n_columns:u16 COLUMN{n_columns}
//! COLUMN   := name:STR16 type:u8 has_validity:u8 VALIDITY? DATA
//! VALIDITY := ceil(rows / 8) bytes, bit i (LSB first) set when row i is not null
//! DATA     := time, i64, u64, f64: rows x 8 bytes
//!           | bool:  ceil(rows / 8) bytes, bit-packed LSB first
//!           | level: rows bytes (ranks 0-5)
//!           | tag, string: offsets (rows + 1) x u32, starting at 0; then the bytes
//! STR16    := len:u16 UTF-8 bytes
//! ```
//! All integers little-endian. The payload is protected by the WAL record's crc32; the
//! decoder still checks every length and value, since a crc collision or a bug must not
//! become a panic.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt8Array, UInt64Array,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer, ToByteSlice};

use super::TableBatch;
use crate::bytes::{Put, Reader, Short};
use crate::schema::{ColumnDef, ColumnType, TableKind};

const VERSION: u8 = 1;

/// Appends the payload of `batches` to `out`.
pub(crate) fn encode(batches: &[TableBatch], out: &mut Vec<u8>) {
    out.put_u8(VERSION);
    out.put_u16(u16::try_from(batches.len()).expect("a write names at most 65535 tables"));
    for b in batches {
        out.put_u8(b.kind.to_byte());
        out.put_str16(&b.table);
        out.put_u32(u32::try_from(b.rows()).expect("the engine splits writes above 4G rows"));
        out.put_u16(u16::try_from(b.columns.len()).expect("at most 65535 columns"));
        for (col, array) in b.columns.iter().zip(&b.arrays) {
            out.put_str16(&col.name);
            out.put_u8(col.ty.to_byte());
            match array.nulls() {
                Some(nulls) if nulls.null_count() > 0 => {
                    out.put_u8(1);
                    put_bits(nulls.inner(), out);
                }
                _ => out.put_u8(0),
            }
            encode_data(col.ty, array.as_ref(), out);
        }
    }
}

fn put_bits(bits: &BooleanBuffer, out: &mut Vec<u8>) {
    if bits.offset() == 0 {
        out.extend_from_slice(&bits.values()[..bits.len().div_ceil(8)]);
    } else {
        let packed = bits.sliced();
        out.extend_from_slice(&packed.as_slice()[..bits.len().div_ceil(8)]);
    }
}

fn put_values<T: arrow_buffer::ArrowNativeType>(values: &[T], out: &mut Vec<u8>) {
    // Native order is little-endian: lib.rs refuses to build for big-endian targets.
    out.extend_from_slice(values.to_byte_slice());
}

fn encode_data(ty: ColumnType, array: &dyn Array, out: &mut Vec<u8>) {
    let any = array.as_any();
    match ty {
        ColumnType::Time | ColumnType::I64 => put_values(
            any.downcast_ref::<Int64Array>().expect("typed").values(),
            out,
        ),
        ColumnType::U64 => put_values(
            any.downcast_ref::<UInt64Array>().expect("typed").values(),
            out,
        ),
        ColumnType::F64 => put_values(
            any.downcast_ref::<Float64Array>().expect("typed").values(),
            out,
        ),
        ColumnType::Bool => put_bits(
            any.downcast_ref::<BooleanArray>().expect("typed").values(),
            out,
        ),
        ColumnType::Level => out.extend_from_slice(
            any.downcast_ref::<UInt8Array>()
                .expect("typed")
                .values()
                .as_ref(),
        ),
        ColumnType::Tag | ColumnType::Str => {
            let s = any.downcast_ref::<StringArray>().expect("typed");
            let offsets = s.value_offsets();
            let base = offsets[0];
            for o in offsets {
                out.put_u32((o - base) as u32);
            }
            out.extend_from_slice(&s.values()[base as usize..offsets[offsets.len() - 1] as usize]);
        }
    }
}

/// Decodes a payload written by [`encode`].
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<TableBatch>, Short> {
    let mut r = Reader::new(payload);
    let version = r.u8()?;
    if version != VERSION {
        return r.fail(format!("payload version {version} is not {VERSION}"));
    }
    let n = r.u16()?;
    let mut batches = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let kind_at = r.position();
        let kind = TableKind::from_byte(r.u8()?).ok_or_else(|| Short {
            offset: kind_at,
            what: "unknown table kind".into(),
        })?;
        let table = r.str16()?.to_string();
        let rows = r.u32()? as usize;
        let ncols = r.u16()? as usize;
        let mut columns = Vec::with_capacity(ncols);
        let mut arrays = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let name = r.str16()?.to_string();
            let ty_at = r.position();
            let ty = ColumnType::from_byte(r.u8()?).ok_or_else(|| Short {
                offset: ty_at,
                what: "unknown column type".into(),
            })?;
            let nulls = match r.u8()? {
                0 => None,
                1 => Some(NullBuffer::new(read_bits(&mut r, rows)?)),
                _ => return r.fail("the validity flag is neither 0 nor 1"),
            };
            arrays.push(decode_data(&mut r, ty, rows, nulls)?);
            columns.push(ColumnDef::new(name, ty));
        }
        let at = r.position();
        let batch = TableBatch::try_new(table, kind, columns, arrays).map_err(|e| Short {
            offset: at,
            what: e.to_string(),
        })?;
        batches.push(batch);
    }
    if !r.is_empty() {
        return r.fail(format!("{} bytes follow the last batch", r.remaining()));
    }
    Ok(batches)
}

fn read_bits(r: &mut Reader<'_>, rows: usize) -> Result<BooleanBuffer, Short> {
    let bytes = r.bytes(rows.div_ceil(8))?;
    Ok(BooleanBuffer::new(Buffer::from(bytes), 0, rows))
}

fn read_values<T: arrow_buffer::ArrowNativeType>(
    r: &mut Reader<'_>,
    rows: usize,
) -> Result<ScalarBuffer<T>, Short> {
    let width = std::mem::size_of::<T>();
    let Some(total) = rows.checked_mul(width) else {
        return r.fail("row count overflows");
    };
    let bytes = r.bytes(total)?;
    // Buffer::from copies into an aligned allocation.
    Ok(ScalarBuffer::new(Buffer::from(bytes), 0, rows))
}

fn decode_data(
    r: &mut Reader<'_>,
    ty: ColumnType,
    rows: usize,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef, Short> {
    let at = r.position();
    let bad = |e: arrow_schema::ArrowError| Short {
        offset: at,
        what: e.to_string(),
    };
    Ok(match ty {
        ColumnType::Time | ColumnType::I64 => {
            Arc::new(Int64Array::try_new(read_values(r, rows)?, nulls).map_err(bad)?)
        }
        ColumnType::U64 => {
            Arc::new(UInt64Array::try_new(read_values(r, rows)?, nulls).map_err(bad)?)
        }
        ColumnType::F64 => {
            Arc::new(Float64Array::try_new(read_values(r, rows)?, nulls).map_err(bad)?)
        }
        ColumnType::Level => {
            Arc::new(UInt8Array::try_new(read_values(r, rows)?, nulls).map_err(bad)?)
        }
        ColumnType::Bool => Arc::new(BooleanArray::new(read_bits(r, rows)?, nulls)),
        ColumnType::Tag | ColumnType::Str => {
            let Some(n) = rows.checked_add(1) else {
                return r.fail("row count overflows");
            };
            let raw: ScalarBuffer<u32> = read_values(r, n)?;
            let end = *raw.last().expect("n >= 1") as usize;
            let mut offsets = Vec::with_capacity(n);
            let mut prev = 0u32;
            for (i, &o) in raw.iter().enumerate() {
                if (i == 0 && o != 0) || o < prev || o > i32::MAX as u32 {
                    return Err(Short {
                        offset: at,
                        what: "string offsets are out of order".into(),
                    });
                }
                prev = o;
                offsets.push(o as i32);
            }
            let data = r.bytes(end)?;
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            Arc::new(StringArray::try_new(offsets, Buffer::from(data), nulls).map_err(bad)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::point::batches_from_points;
    use crate::{Level, LogRecord, Point};

    fn sample() -> Vec<TableBatch> {
        let points: Vec<Point> = vec![
            Point::metric("cpu")
                .tag("host", "a")
                .field("user", 1.5)
                .field("n", 3i64)
                .time(10),
            Point::metric("cpu")
                .tag("host", "b")
                .field("ok", true)
                .field("u", 7u64)
                .time(20),
            LogRecord::new("logs", Level::Error, "boom")
                .tag("svc", "api")
                .time(30)
                .into(),
        ];
        batches_from_points(&points, 0).unwrap()
    }

    #[test]
    fn payload_round_trips() {
        let batches = sample();
        let mut bytes = Vec::new();
        encode(&batches, &mut bytes);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), batches.len());
        for (a, b) in batches.iter().zip(&back) {
            assert_eq!(a.table, b.table);
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.columns, b.columns);
            for (x, y) in a.arrays.iter().zip(&b.arrays) {
                assert_eq!(x.to_data(), y.to_data());
            }
        }
    }

    #[test]
    fn sliced_arrays_round_trip() {
        let batch = &sample()[0];
        let idx = arrow_array::UInt32Array::from(vec![1]);
        let one = batch.take(&idx).unwrap();
        let sliced = TableBatch {
            arrays: batch.arrays.iter().map(|a| a.slice(1, 1)).collect(),
            ..batch.clone()
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        encode(std::slice::from_ref(&one), &mut a);
        encode(std::slice::from_ref(&sliced), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn bit_flips_never_panic(pos in 0usize..200, bit in 0u8..8) {
            let mut bytes = Vec::new();
            encode(&sample(), &mut bytes);
            let pos = pos % bytes.len();
            bytes[pos] ^= 1 << bit;
            let _ = decode(&bytes);
        }
    }
}
