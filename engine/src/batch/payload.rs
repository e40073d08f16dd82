//! The WAL payload: the table batches of one write call, as bytes.
//!
//! ```text
//! PAYLOAD  := version:u8 (=2) n_batches:u16 BATCH{n_batches}
//! BATCH    := kind:u8 table:STR16 rows:u32 n_columns:u16 SERIES COLUMN{n_columns}
//! SERIES   := n_series:u32, then when n_series > 0 the series of each row: rows x u32
//! COLUMN   := name:STR16 type:u8 has_validity:u8 VALIDITY? DATA
//! VALIDITY := ceil(n / 8) bytes, bit i (LSB first) set when value i is not null
//! DATA     := time, i64, u64, f64: rows x 8 bytes
//!           | bool:  ceil(rows / 8) bytes, bit-packed LSB first
//!           | level: rows bytes (ranks 0-5)
//!           | tag, string: offsets (n + 1) x u32, starting at 0; then the bytes
//! STR16    := len:u16 UTF-8 bytes
//! ```
//! `n` is the number of rows, except for a tag column when `n_series > 0`, which is
//! written once per series (`n = n_series`): a row's tags are its series' (the rows of a
//! write repeat their series' tags, so the log holds each once). The writer writes
//! `n_series = 0`, and tag columns per row, for a batch without tags or with more than
//! half as many series as rows.
//!
//! Version 1 (still read, from logs written before) had no SERIES and wrote tag columns
//! per row.
//!
//! All integers little-endian. The payload is protected by the WAL record's crc32; the
//! decoder still checks every length and value, since a crc collision or a bug must not
//! become a panic.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt8Array, UInt32Array,
    UInt64Array,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer, ToByteSlice};

use super::TableBatch;
use crate::bytes::{Put, Reader, Short};
use crate::schema::{ColumnDef, ColumnType, TableKind};

const VERSION: u8 = 2;
/// The version without series, read from logs written before version 2.
const VERSION_PER_ROW_TAGS: u8 = 1;

/// Appends the payload of `batches` to `out`: each batch with the series of each of its
/// rows (as the head's chunks number them; rows of one series have the same tags).
pub(crate) fn encode(batches: &[(&TableBatch, &[u32])], out: &mut Vec<u8>) {
    out.put_u8(VERSION);
    out.put_u16(u16::try_from(batches.len()).expect("a write names at most 65535 tables"));
    for &(b, row_series) in batches {
        out.put_u8(b.kind.to_byte());
        out.put_str16(&b.table);
        out.put_u32(u32::try_from(b.rows()).expect("the engine splits writes above 4G rows"));
        out.put_u16(u16::try_from(b.columns.len()).expect("at most 65535 columns"));
        let firsts = series_firsts(b, row_series);
        out.put_u32(firsts.len() as u32);
        if !firsts.is_empty() {
            put_values(row_series, out);
        }
        for (col, array) in b.columns.iter().zip(&b.arrays) {
            out.put_str16(&col.name);
            out.put_u8(col.ty.to_byte());
            if col.ty == ColumnType::Tag && !firsts.is_empty() {
                let tags = array.as_any().downcast_ref().expect("tags are Utf8");
                put_series_tags(tags, &firsts, out);
            } else {
                put_column(col.ty, array.as_ref(), out);
            }
        }
    }
}

/// A column's validity flag, validity and data, one value per row.
fn put_column(ty: ColumnType, array: &dyn Array, out: &mut Vec<u8>) {
    match array.nulls() {
        Some(nulls) if nulls.null_count() > 0 => {
            out.put_u8(1);
            put_bits(nulls.inner(), out);
        }
        _ => out.put_u8(0),
    }
    encode_data(ty, array, out);
}

/// The first row of each series of `b` (indexed by series), or none when its tag columns
/// are better written per row: a batch without tags, or with more than half as many
/// series as rows (a series number per row would cost more than the repeats save).
fn series_firsts(b: &TableBatch, row_series: &[u32]) -> Vec<usize> {
    let has_tags = b.columns.iter().any(|c| c.ty == ColumnType::Tag);
    if !has_tags || row_series.len() != b.rows() {
        debug_assert!(!has_tags, "every row has a series");
        return Vec::new();
    }
    let series = row_series.iter().max().map_or(0, |&s| s as usize + 1);
    if series * 2 > b.rows() {
        return Vec::new();
    }
    // A series numbered but without rows (the head makes none) stays at usize::MAX and
    // is written as null.
    let mut firsts = vec![usize::MAX; series];
    for (row, &s) in row_series.iter().enumerate().rev() {
        firsts[s as usize] = row;
    }
    firsts
}

/// A tag column once per series: its value in each series' first row.
fn put_series_tags(tags: &StringArray, firsts: &[usize], out: &mut Vec<u8>) {
    let valid = |row: usize| row < tags.len() && tags.is_valid(row);
    if !firsts.iter().all(|&row| valid(row)) {
        out.put_u8(1);
        let mut bits = vec![0u8; firsts.len().div_ceil(8)];
        for (i, &row) in firsts.iter().enumerate() {
            if valid(row) {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&bits);
    } else {
        out.put_u8(0);
    }
    let value = |row: usize| if valid(row) { tags.value(row) } else { "" };
    let mut end = 0u32;
    out.put_u32(end);
    for &row in firsts {
        end += value(row).len() as u32;
        out.put_u32(end);
    }
    for &row in firsts {
        out.extend_from_slice(value(row).as_bytes());
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
    if version != VERSION && version != VERSION_PER_ROW_TAGS {
        return r.fail(format!(
            "payload version {version} is neither {VERSION_PER_ROW_TAGS} nor {VERSION}"
        ));
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
        let (series, row_series) = if version == VERSION {
            read_series(&mut r, rows)?
        } else {
            (0, None)
        };
        let mut columns = Vec::with_capacity(ncols);
        let mut arrays = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let name = r.str16()?.to_string();
            let ty_at = r.position();
            let ty = ColumnType::from_byte(r.u8()?).ok_or_else(|| Short {
                offset: ty_at,
                what: "unknown column type".into(),
            })?;
            let per_series = ty == ColumnType::Tag && row_series.is_some();
            let n = if per_series { series } else { rows };
            let nulls = match r.u8()? {
                0 => None,
                1 => Some(NullBuffer::new(read_bits(&mut r, n)?)),
                _ => return r.fail("the validity flag is neither 0 nor 1"),
            };
            let values = decode_data(&mut r, ty, n, nulls)?;
            arrays.push(match &row_series {
                Some(row_series) if per_series => {
                    let at = r.position();
                    arrow_select::take::take(&values, row_series, None).map_err(|e| Short {
                        offset: at,
                        what: e.to_string(),
                    })?
                }
                _ => values,
            });
            columns.push(ColumnDef::new(name, ty));
        }
        if series > 0 && !columns.iter().any(|c| c.ty == ColumnType::Tag) {
            return r.fail(format!("{series} series in a batch without tags"));
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

/// Reads SERIES: the number of series, and each row's series (checked against it).
fn read_series(r: &mut Reader<'_>, rows: usize) -> Result<(usize, Option<UInt32Array>), Short> {
    let series = r.u32()? as usize;
    if series == 0 {
        return Ok((0, None));
    }
    if series > rows {
        return r.fail(format!("{series} series for {rows} rows"));
    }
    let at = r.position();
    let row_series: ScalarBuffer<u32> = read_values(r, rows)?;
    if row_series.iter().any(|&s| s as usize >= series) {
        return Err(Short {
            offset: at,
            what: format!("a row's series is not one of the {series}"),
        });
    }
    Ok((series, Some(UInt32Array::new(row_series, None))))
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
    use crate::head::Chunk;
    use crate::{Level, LogRecord, Point};

    /// The payload of `batches`, their series numbered as the head numbers them.
    fn encoded(batches: &[TableBatch]) -> Vec<u8> {
        let chunks: Vec<Chunk> = batches.iter().map(|b| Chunk::new(0, b.clone())).collect();
        let logged: Vec<(&TableBatch, &[u32])> = chunks
            .iter()
            .map(|c| (&c.batch, c.row_series.as_slice()))
            .collect();
        let mut bytes = Vec::new();
        encode(&logged, &mut bytes);
        bytes
    }

    /// Version 1, as written before series: every column per row.
    fn encoded_v1(batches: &[TableBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u8(VERSION_PER_ROW_TAGS);
        out.put_u16(batches.len() as u16);
        for b in batches {
            out.put_u8(b.kind.to_byte());
            out.put_str16(&b.table);
            out.put_u32(b.rows() as u32);
            out.put_u16(b.columns.len() as u16);
            for (col, array) in b.columns.iter().zip(&b.arrays) {
                out.put_str16(&col.name);
                out.put_u8(col.ty.to_byte());
                put_column(col.ty, array.as_ref(), &mut out);
            }
        }
        out
    }

    fn assert_same(a: &[TableBatch], b: &[TableBatch]) {
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(b) {
            assert_eq!(a.table, b.table);
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.columns, b.columns);
            for (x, y) in a.arrays.iter().zip(&b.arrays) {
                assert_eq!(x.to_data(), y.to_data());
            }
        }
    }

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
            Point::metric("cpu")
                .tag("host", "a")
                .field("user", 2.5)
                .time(25),
            Point::metric("cpu")
                .tag("dc", "x")
                .field("user", 3.5)
                .time(26),
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
        assert_same(&decode(&encoded(&batches)).unwrap(), &batches);
    }

    #[test]
    fn tags_are_logged_once_per_series() {
        let rows: Vec<Point> = (0..1000)
            .map(|i| {
                Point::metric("cpu")
                    .tag("host", format!("host_{}", i % 10))
                    .tag("region", "eu-west-1")
                    .field("user", i as f64)
                    .time(i)
            })
            .collect();
        let batches = batches_from_points(&rows, 0).unwrap();
        let v2 = encoded(&batches);
        let v1 = encoded_v1(&batches);
        assert_same(&decode(&v2).unwrap(), &batches);
        assert_same(&decode(&v1).unwrap(), &batches);
        // Rows of 8 + 8 bytes and a 4-byte series each, against 15 bytes of tags and two
        // 4-byte offsets per row.
        assert!(v2.len() < 21 * 1000, "{}", v2.len());
        assert!(v1.len() > 35 * 1000, "{}", v1.len());
    }

    #[test]
    fn version_1_payloads_are_still_read() {
        let batches = sample();
        assert_same(&decode(&encoded_v1(&batches)).unwrap(), &batches);
    }

    /// `cpu` rows of `(host, dc)` tags, either absent or empty, one a second.
    fn tagged(tags: &[(Option<&str>, Option<&str>)]) -> Vec<TableBatch> {
        let points: Vec<Point> = tags
            .iter()
            .enumerate()
            .map(|(i, (host, dc))| {
                let mut p = Point::metric("cpu").field("user", i as f64).time(i as i64);
                if let Some(h) = host {
                    p = p.tag("host", *h);
                }
                if let Some(d) = dc {
                    p = p.tag("dc", *d);
                }
                p
            })
            .collect();
        batches_from_points(&points, 0).unwrap()
    }

    /// The `n_series` field of the first batch of a payload of table `cpu`.
    const N_SERIES_AT: usize = 1 + 2 + 1 + 2 + 3 + 4 + 2;

    fn n_series(bytes: &[u8]) -> u32 {
        u32::from_le_bytes(bytes[N_SERIES_AT..N_SERIES_AT + 4].try_into().unwrap())
    }

    #[test]
    fn null_and_empty_tags_round_trip_per_series() {
        let kinds = [
            (Some("a"), None),
            (Some(""), None),
            (None, Some("x")),
            (None, Some("")),
            (None, None),
            (Some(""), Some("")),
        ];
        let batches = tagged(&[kinds, kinds, kinds].concat());
        let bytes = encoded(&batches);
        assert_eq!(n_series(&bytes), 6);
        assert_same(&decode(&bytes).unwrap(), &batches);
    }

    #[test]
    fn a_write_of_mostly_distinct_series_logs_tags_per_row() {
        let batches = tagged(&[(Some("a"), None), (Some("b"), None), (Some("a"), None)]);
        let bytes = encoded(&batches);
        assert_eq!(n_series(&bytes), 0);
        assert_same(&decode(&bytes).unwrap(), &batches);
    }

    #[test]
    fn a_row_of_no_series_is_an_error() {
        let batches = tagged(&[(Some("a"), None), (Some("b"), None)].repeat(4));
        let mut bytes = encoded(&batches);
        let series = n_series(&bytes);
        assert_eq!(series, 2);
        let first_row = N_SERIES_AT + 4;
        bytes[first_row..first_row + 4].copy_from_slice(&series.to_le_bytes());
        let e = decode(&bytes).unwrap_err();
        assert!(e.what.contains("series"), "{}", e.what);
    }

    #[test]
    fn series_in_a_batch_without_tags_are_an_error() {
        let batches =
            batches_from_points(&[Point::metric("cpu").field("user", 1.0).time(1)], 0).unwrap();
        let mut bytes = encoded(&batches);
        assert_eq!(n_series(&bytes), 0);
        // One series, and row 0 in it.
        bytes.splice(N_SERIES_AT..N_SERIES_AT + 4, [1, 0, 0, 0, 0, 0, 0, 0]);
        let e = decode(&bytes).unwrap_err();
        assert!(e.what.contains("without tags"), "{}", e.what);
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
        assert_eq!(
            encoded(std::slice::from_ref(&one)),
            encoded(std::slice::from_ref(&sliced))
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encoded(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest::proptest! {
        /// Any rows of absent, empty or named tags come back as written, whichever way
        /// their tags are logged.
        #[test]
        fn tagged_rows_round_trip(
            tags in proptest::collection::vec(
                (
                    proptest::option::of(proptest::sample::select(vec!["", "a", "b"])),
                    proptest::option::of(proptest::sample::select(vec!["", "x"])),
                ),
                1..40,
            ),
        ) {
            let batches = tagged(&tags);
            let back = decode(&encoded(&batches)).unwrap();
            assert_same(&back, &batches);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn bit_flips_never_panic(pos in 0usize..200, bit in 0u8..8) {
            let mut bytes = encoded(&sample());
            let pos = pos % bytes.len();
            bytes[pos] ^= 1 << bit;
            let _ = decode(&bytes);
        }
    }
}
