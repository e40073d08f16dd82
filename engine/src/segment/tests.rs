//! Segment round trips: rows written through the writer come back from the reader, and
//! damaged metadata is an error, never a panic.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use proptest::prelude::*;

use super::writer::{self, BlockCut, SegmentSpec};
use super::{Segment, format};
use crate::batch::point::batches_from_points;
use crate::encoding::Options;
use crate::head::Chunk;
use crate::schema::{ColumnType, TableKind};
use crate::{FieldValue, Point};

/// Column name and displayed value of each non-null field.
type Values = Vec<(String, String)>;
/// (host, time, fields) of one row.
type SeriesRow = (Option<String>, i64, Values);

#[derive(Debug, Clone)]
struct Row {
    host: Option<u8>,
    time: i64,
    fields: Vec<(u8, FieldValue)>,
}

fn field_value() -> impl Strategy<Value = (u8, FieldValue)> {
    prop_oneof![
        any::<f64>().prop_map(|v| (0u8, FieldValue::F64(v))),
        any::<i64>().prop_map(|v| (1u8, FieldValue::I64(v))),
        any::<u64>().prop_map(|v| (2u8, FieldValue::U64(v))),
        any::<bool>().prop_map(|v| (3u8, FieldValue::Bool(v))),
        "[a-z ]{0,12}".prop_map(|v| (4u8, FieldValue::Str(v))),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::option::of(0u8..4),
        -1000i64..1000,
        proptest::collection::vec(field_value(), 0..4),
    )
        .prop_map(|(host, time, fields)| Row { host, time, fields })
}

fn point(r: &Row, kind: TableKind) -> Point {
    let mut p = match kind {
        TableKind::Metric => Point::metric("t"),
        TableKind::Event => Point::event("t"),
    };
    if let Some(h) = r.host {
        p = p.tag("host", format!("h{h}"));
    }
    let mut seen = Vec::new();
    for (slot, v) in &r.fields {
        // One column per type, so types never conflict.
        if !seen.contains(slot) {
            seen.push(*slot);
            p = p.field(format!("f{slot}"), v.clone());
        }
    }
    p.time(r.time)
}

/// Writes chunks of rows and reads every block back, returning the segment.
fn write_segment(
    dir: &std::path::Path,
    chunks: &[Vec<Row>],
    kind: TableKind,
    block_rows: u32,
) -> Segment {
    let chunks: Vec<Arc<Chunk>> = chunks
        .iter()
        .enumerate()
        .map(|(i, rows)| {
            let points: Vec<Point> = rows.iter().map(|r| point(r, kind)).collect();
            let b = batches_from_points(&points, 0).unwrap().remove(0);
            Arc::new(Chunk::new(i as u64 + 1, b))
        })
        .collect();
    let mut columns = chunks[0].batch.columns.clone();
    for c in &chunks[1..] {
        for col in &c.batch.columns {
            if !columns.iter().any(|x| x.name == col.name) {
                columns.push(col.clone());
            }
        }
    }
    let spec = SegmentSpec {
        table: "t",
        kind,
        columns: &columns,
        chunks: &chunks,
        block_rows,
        codec: &Options::default(),
        faults: None,
    };
    let (path, meta) = writer::write(dir, 1, &spec).unwrap();
    let seg = Segment::open(&path).unwrap();
    assert_eq!(
        seg.meta(),
        &meta,
        "metadata read back differs from what was written"
    );
    seg
}

/// Every (host, time, column -> value) of the segment, in row order.
fn read_all(seg: &Segment) -> Vec<SeriesRow> {
    let meta = seg.meta();
    let mut columns: Vec<Vec<ArrayRef>> = Vec::new();
    for (c, col) in meta.columns.iter().enumerate() {
        if col.ty == ColumnType::Tag {
            columns.push(Vec::new());
            continue;
        }
        columns.push(
            (0..meta.block_count())
                .map(|b| seg.read_block(c, b).unwrap())
                .collect(),
        );
    }
    let mut out = Vec::new();
    for s in &meta.series {
        for row in s.row_start..s.row_start + s.row_count {
            let row = row as usize;
            let b = meta.block_of_row(row);
            let i = row - meta.block_rows_range(b).0;
            let time = columns[0][b]
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap()
                .value(i);
            let mut values = Vec::new();
            for (c, col) in meta.columns.iter().enumerate().skip(1) {
                if col.ty == ColumnType::Tag || columns[c][b].is_null(i) {
                    continue;
                }
                let v = arrow_cast::display::ArrayFormatter::try_new(
                    columns[c][b].as_ref(),
                    &Default::default(),
                )
                .unwrap()
                .value(i)
                .to_string();
                values.push((col.name.clone(), v));
            }
            out.push((s.key.get("host").map(str::to_string), time, values));
        }
    }
    out
}

/// What the segment must hold: rows by (host, time), arrival order, last one kept per
/// (host, time) for a metric table.
fn expected(chunks: &[Vec<Row>], kind: TableKind) -> Vec<SeriesRow> {
    let mut rows: Vec<(Option<String>, i64, usize, Values)> = Vec::new();
    let mut arrival = 0;
    for chunk in chunks {
        for r in chunk {
            let p = point(r, kind);
            let values = p
                .fields
                .iter()
                .map(|(n, v)| {
                    let text = match v {
                        FieldValue::F64(x) => {
                            let a = arrow_array::Float64Array::from(vec![*x]);
                            arrow_cast::display::ArrayFormatter::try_new(&a, &Default::default())
                                .unwrap()
                                .value(0)
                                .to_string()
                        }
                        FieldValue::I64(x) => x.to_string(),
                        FieldValue::U64(x) => x.to_string(),
                        FieldValue::Bool(x) => x.to_string(),
                        FieldValue::Str(x) => x.clone(),
                    };
                    (n.clone(), text)
                })
                .collect::<Vec<_>>();
            let mut values = values;
            values.sort();
            rows.push((r.host.map(|h| format!("h{h}")), r.time, arrival, values));
            arrival += 1;
        }
    }
    // Series order: no host ({}) first, then h0 < h1 < ...
    rows.sort_by(|a, b| (a.0.is_some(), &a.0, a.1, a.2).cmp(&(b.0.is_some(), &b.0, b.1, b.2)));
    let mut out: Vec<SeriesRow> = Vec::new();
    for (host, time, _, values) in rows {
        if kind == TableKind::Metric
            && let Some(last) = out.last_mut()
            && last.0 == host
            && last.1 == time
        {
            *last = (host, time, values);
            continue;
        }
        out.push((host, time, values));
    }
    out
}

fn sorted_values(mut rows: Vec<SeriesRow>) -> Vec<SeriesRow> {
    for r in &mut rows {
        r.2.sort();
    }
    rows
}

/// Each stored column's cached last values are the values of each series' last row.
fn assert_last_values(seg: &Segment) {
    let meta = seg.meta();
    for (c, col) in meta.columns.iter().enumerate() {
        if col.ty == ColumnType::Tag {
            continue;
        }
        let last = seg.last_values(c).unwrap().values;
        assert_eq!(last.len(), meta.series.len());
        for (e, s) in meta.series.iter().enumerate() {
            let row = (s.row_start + s.row_count - 1) as usize;
            let b = meta.block_of_row(row);
            let block = seg.read_block(c, b).unwrap();
            assert_eq!(
                last.slice(e, 1).to_data(),
                block.slice(row - meta.block_rows_range(b).0, 1).to_data(),
                "column {:?}, series {e}",
                col.name
            );
        }
        // Asked again, the cached array is returned.
        let again = seg.last_values(c).unwrap();
        assert!(Arc::ptr_eq(&last, &again.values) && again.values_decoded == 0);
    }
}

/// Every range of every block, of every column, is the whole block's rows in that range
/// (a prefix through `read_block_prefix`, any other through `read_block_range`), also
/// past the block's end, which is cut there.
fn assert_ranges(seg: &Segment) {
    let meta = seg.meta();
    for (c, col) in meta.columns.iter().enumerate() {
        if col.ty == ColumnType::Tag {
            continue;
        }
        for b in 0..meta.block_count() {
            let whole = seg.read_block(c, b).unwrap();
            let rows = whole.len();
            for to in 0..=rows + 1 {
                let prefix = seg.read_block_prefix(c, b, to).unwrap();
                assert_eq!(
                    prefix.to_data(),
                    whole.slice(0, to.min(rows)).to_data(),
                    "column {:?}, block {b}, {to} rows",
                    col.name
                );
                for from in 1..=to {
                    let (range, _) = seg.read_block_range(c, b, from, to).unwrap();
                    let (from, to) = (from.min(rows), to.min(rows));
                    assert_eq!(
                        range.to_data(),
                        whole.slice(from, to - from).to_data(),
                        "column {:?}, block {b}, rows {from}..{to}",
                        col.name
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn segment_round_trips_rows(
        chunks in proptest::collection::vec(proptest::collection::vec(row(), 1..30), 1..4),
        metric in any::<bool>(),
        block_rows in 1u32..20,
    ) {
        let kind = if metric { TableKind::Metric } else { TableKind::Event };
        let dir = tempfile::tempdir().unwrap();
        let seg = write_segment(dir.path(), &chunks, kind, block_rows);
        prop_assert_eq!(sorted_values(read_all(&seg)), expected(&chunks, kind));
        assert_last_values(&seg);
        assert_filters(&seg);
        assert_ranges(&seg);
    }

    #[test]
    fn damaged_metadata_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        version in format::OLDEST_VERSION..=format::VERSION,
    ) {
        let _ = format::decode_meta(&bytes, 1 << 20, version);
    }

    #[test]
    fn blocks_cut_by_span_round_trip_and_hold_one_span_past_min_rows(
        series in proptest::collection::vec(proptest::collection::vec(-50i64..50, 0..40), 1..5),
        block_rows in 1u32..20,
        span in 1i64..20,
        min_rows in 1u32..10,
        piece in 1usize..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let seg = write_cut(dir.path(), &series, block_rows, BlockCut { span, min_rows }, piece);
        let meta = seg.meta();
        let mut want = Vec::new();
        for (i, times) in sorted_series(&series).iter().enumerate() {
            for &t in times {
                want.push((Some(format!("h{i}")), t, vec![("v".to_string(), show_f64(value(i, t)))]));
            }
        }
        prop_assert_eq!(read_all(&seg), want);
        assert_last_values(&seg);
        let time = 0;
        for b in 0..meta.block_count() {
            let (start, end) = meta.block_rows_range(b);
            prop_assert!(end - start <= block_rows as usize);
            let t = seg.read_block(time, b).unwrap();
            let t = t.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            for j in min_rows as usize..t.len() {
                prop_assert_eq!(
                    t.value(j).div_euclid(span),
                    t.value(j - 1).div_euclid(span),
                    "block {} crosses a span after {} rows", b, j
                );
            }
        }
    }
}

/// Each series' times, sorted and without repeats; series without rows left out.
fn sorted_series(series: &[Vec<i64>]) -> Vec<Vec<i64>> {
    series
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.sort_unstable();
            t.dedup();
            t
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// A float as `read_all` shows it (Arrow's display).
fn show_f64(x: f64) -> String {
    let a = arrow_array::Float64Array::from(vec![x]);
    arrow_cast::display::ArrayFormatter::try_new(&a, &Default::default())
        .unwrap()
        .value(0)
        .to_string()
}

fn value(series: usize, time: i64) -> f64 {
    series as f64 * 1000.0 + time as f64
}

/// Writes series `h0`, `h1`, ... (their times sorted) through the streaming writer in
/// pieces of `piece` rows, with blocks cut by `cut`.
fn write_cut(
    dir: &std::path::Path,
    series: &[Vec<i64>],
    block_rows: u32,
    cut: BlockCut,
    piece: usize,
) -> Segment {
    let columns = [
        crate::schema::ColumnDef::new("time", ColumnType::Time),
        crate::schema::ColumnDef::new("host", ColumnType::Tag),
        crate::schema::ColumnDef::new("v", ColumnType::F64),
    ];
    let mut w = writer::Writer::create(
        dir,
        1,
        writer::WriterSpec {
            table: "t",
            kind: TableKind::Metric,
            columns: &columns,
            block_rows,
            cut: Some(cut),
            codec: &Options::default(),
            seqs: (1, 1),
            faults: None,
        },
    )
    .unwrap();
    for (i, times) in sorted_series(series).iter().enumerate() {
        let key = crate::series::SeriesKey::new(vec![(
            crate::series::intern("host"),
            crate::series::intern(&format!("h{i}")),
        )]);
        for part in times.chunks(piece) {
            let t: ArrayRef = Arc::new(arrow_array::Int64Array::from(part.to_vec()));
            let v: ArrayRef = Arc::new(arrow_array::Float64Array::from(
                part.iter().map(|&t| value(i, t)).collect::<Vec<_>>(),
            ));
            w.push_series(&key, &[t, v]).unwrap();
        }
    }
    let (path, meta) = w.finish().unwrap();
    let seg = Segment::open(&path).unwrap();
    assert_eq!(seg.meta(), &meta);
    seg
}

#[test]
fn every_truncation_of_the_metadata_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![
        Row {
            host: Some(1),
            time: 5,
            fields: vec![(0, FieldValue::F64(1.5))],
        },
        Row {
            host: None,
            time: 7,
            fields: vec![(4, FieldValue::Str("x".into()))],
        },
    ];
    let seg = write_segment(dir.path(), &[rows], TableKind::Event, 1);
    let raw = format::encode_meta(seg.meta());
    for cut in 0..raw.len() {
        assert!(
            format::decode_meta(&raw[..cut], seg.file_len(), format::VERSION).is_err(),
            "cut at {cut}"
        );
    }
    assert!(format::decode_meta(&raw, seg.file_len(), format::VERSION).is_ok());
}

#[test]
fn a_crafted_row_count_in_a_version_1_index_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![Row {
        host: Some(1),
        time: 5,
        fields: vec![(0, FieldValue::F64(1.5))],
    }];
    let seg = write_segment(dir.path(), &[rows], TableKind::Metric, 1);
    // The most rows a segment may claim, one per block, with no block listed: a version
    // 1 index then says u32::MAX blocks, whose starts would take 32 GiB to lay out.
    let mut meta = seg.meta().clone();
    meta.rows = u32::MAX as u64;
    meta.block_rows = 1;
    meta.series.truncate(1);
    meta.series[0].row_start = 0;
    meta.series[0].row_count = u32::MAX as u64;
    meta.block_starts.clear();
    for blocks in &mut meta.blocks {
        blocks.clear();
    }
    let mut raw = format::encode_meta(&meta);
    let at = raw.len() - 4;
    raw[at..].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = format::decode_meta(&raw, seg.file_len(), 1).unwrap_err();
    assert!(err.what.contains("shorter than its count"), "{}", err.what);
}

/// Every string block with a value has a filter that passes each of its values; no other
/// block has one.
fn assert_filters(seg: &Segment) {
    let meta = seg.meta();
    for (c, col) in meta.columns.iter().enumerate() {
        if col.ty == ColumnType::Tag {
            continue;
        }
        for b in 0..meta.block_count() {
            let entry = &meta.blocks[c][b];
            let array = seg.read_block(c, b).unwrap();
            let has_value = array.null_count() < array.len();
            assert_eq!(
                entry.filter_len > 0,
                col.ty == ColumnType::Str && has_value,
                "column {:?} block {b}: filter of {} bytes",
                col.name,
                entry.filter_len
            );
            if col.ty == ColumnType::Str {
                for v in array.as_string::<i32>().iter().flatten() {
                    assert!(seg.block_may_contain(c, b, v.as_bytes()).unwrap(), "{v:?}");
                }
            }
        }
    }
}

fn string_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            host: Some((i % 2) as u8),
            time: i as i64,
            fields: vec![(4, FieldValue::Str(format!("trace-{i:04}")))],
        })
        .collect()
}

#[test]
fn a_string_block_filter_rules_out_values_it_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_segment(dir.path(), &[string_rows(400)], TableKind::Event, 50);
    let c = seg
        .meta()
        .columns
        .iter()
        .position(|c| c.name == "f4")
        .unwrap();
    let blocks = seg.meta().block_count();
    assert_eq!(blocks, 8);
    // Each value passes the filter of its own block and, but for the odd false
    // positive, of no other.
    let mut passes = 0;
    for i in 0..400 {
        let v = format!("trace-{i:04}");
        for b in 0..blocks {
            passes += usize::from(seg.block_may_contain(c, b, v.as_bytes()).unwrap());
        }
    }
    // 2800 lookups of values a block does not hold: about 1 % pass.
    assert!(
        (400..480).contains(&passes),
        "{passes} block lookups passed"
    );
    assert!(!(0..blocks).all(|b| seg.block_may_contain(c, b, b"absent").unwrap()));
}

#[test]
fn a_damaged_block_filter_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_segment(dir.path(), &[string_rows(100)], TableKind::Event, 50);
    let c = seg
        .meta()
        .columns
        .iter()
        .position(|c| c.name == "f4")
        .unwrap();
    let range = seg.meta().blocks[c][1].filter_range().unwrap();
    let path = seg.path().to_path_buf();
    drop(seg);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[range.start as usize + 3] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let seg = Segment::open(&path).unwrap();
    assert!(
        seg.block_may_contain(c, 0, b"x").is_ok(),
        "block 0 is intact"
    );
    for err in [
        seg.block_may_contain(c, 1, b"x").unwrap_err(),
        seg.verify().unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(
            text.contains("filter of block 1") && text.contains("checksum"),
            "{text}"
        );
    }
}

#[test]
fn a_filter_on_a_column_other_than_a_string_or_of_part_of_a_bucket_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_segment(dir.path(), &[string_rows(100)], TableKind::Event, 50);
    let meta = seg.meta();
    let str_col = meta.columns.iter().position(|c| c.name == "f4").unwrap();
    let time_col = 0;
    let (str_len, time_len) = (
        meta.blocks[str_col][0].filter_len,
        meta.blocks[time_col][0].filter_len,
    );
    assert!(str_len > 0 && time_len == 0);
    // Keep every block inside the data section: shrink a filter, or move one onto time.
    for (c, len, what) in [
        (str_col, str_len - 8, "not whole"),
        (str_col, 4, "not whole"),
        (time_col, 36, "only string"),
    ] {
        let mut bad = meta.clone();
        bad.blocks[c][0].filter_len = len;
        let raw = format::encode_meta(&bad);
        let err = format::decode_meta(&raw, seg.file_len(), format::VERSION).unwrap_err();
        assert!(err.what.contains(what), "{}", err.what);
    }
}
