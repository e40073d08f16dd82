//! [`Rows`] against arrow-pg: the same batches, the same rows, byte for byte, in text
//! and in binary.

use std::sync::Arc;

use bytes::BytesMut;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, DictionaryArray, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array,
    new_null_array,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int8Type, Int32Type, Schema, TimeUnit, UInt8Type,
};
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use proptest::prelude::*;

use super::{NEAR, Rows};

/// Both writers' rows of `batch` in `format`, which [`Rows`] must take. Also checks
/// that [`Rows::write`] appends the bytes pgwire's codec sends for arrow-pg's rows.
fn both(batch: &RecordBatch, format: &Format) -> (Vec<DataRow>, Vec<DataRow>) {
    let options = Arc::new(FormatOptions::default());
    let fields = Arc::new(
        arrow_schema_to_pg_fields(&batch.schema(), format, Some(options.clone())).unwrap(),
    );
    let writer =
        Rows::new(&batch.schema(), &fields, &options).expect("these types are written by Rows");
    let ours = writer.encode(batch).unwrap();
    let theirs = encode_recordbatch(fields, batch.clone())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();

    let mut sent = BytesMut::from(&b"before"[..]);
    for row in &theirs {
        PgWireBackendMessage::DataRow(row.clone())
            .encode(&mut sent)
            .unwrap();
    }
    let mut written = BytesMut::from(&b"before"[..]);
    assert_eq!(writer.write(batch, &mut written).unwrap(), batch.num_rows());
    assert!(
        written == sent,
        "{format:?}: the messages written differ from those pgwire sends for arrow-pg's rows"
    );
    (ours, theirs)
}

/// Checks that `batch` is written as arrow-pg writes it, in text and in binary.
fn assert_same(batch: &RecordBatch) {
    for format in [Format::UnifiedText, Format::UnifiedBinary] {
        assert_same_in(batch, &format);
    }
}

fn assert_same_in(batch: &RecordBatch, format: &Format) {
    let (ours, theirs) = both(batch, format);
    assert_eq!(ours.len(), theirs.len());
    for (row, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            a,
            b,
            "{format:?}, row {row}: {:?} written, arrow-pg writes {:?}",
            String::from_utf8_lossy(&a.data),
            String::from_utf8_lossy(&b.data)
        );
    }
    // A slice: arrays with an offset.
    if batch.num_rows() > 2 {
        let slice = batch.slice(1, batch.num_rows() - 2);
        let (ours, theirs) = both(&slice, format);
        assert_eq!(ours, theirs, "{format:?}, a slice");
    }
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable(
        columns.into_iter().map(|(name, array)| (name, array, true)),
    )
    .unwrap()
}

/// Times (in seconds, then scaled to every unit) near the ends of every unit's range,
/// around 1970 and year 0, with fractions of a second before 1970, and at the edges of
/// the times worked out without chrono in binary (`NEAR`) and of chrono's range (year
/// 262,143: 8.2e12 s is inside it, 8.3e12 s outside).
const EDGE_TIMES: [i64; 20] = [
    i64::MIN,
    i64::MIN + 1,
    -62_167_219_200,
    -62_167_219_201,
    -1,
    0,
    1,
    1_451_606_400,
    253_402_300_799,
    253_402_300_800,
    i64::MAX - 1,
    i64::MAX,
    NEAR,
    NEAR + 1,
    -NEAR,
    -NEAR - 1,
    8_200_000_000_000,
    -8_200_000_000_000,
    8_300_000_000_000,
    -8_300_000_000_000,
];

#[test]
fn timestamps_of_every_unit_and_zone_at_their_edges() {
    for zone in [None, Some("UTC"), Some("+00:00")] {
        let zone = zone.map(Arc::<str>::from);
        let mut times: Vec<Option<i64>> = Vec::new();
        for base in EDGE_TIMES {
            for scale in [1, 1_000, 1_000_000, 1_000_000_000] {
                times.push(Some(base.saturating_mul(scale)));
                times.push(Some(base.saturating_mul(scale).saturating_add(scale / 2)));
            }
        }
        times.push(None);
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "s",
                Arc::new(TimestampSecondArray::from(times.clone()).with_timezone_opt(zone.clone())),
            ),
            (
                "ms",
                Arc::new(
                    TimestampMillisecondArray::from(times.clone()).with_timezone_opt(zone.clone()),
                ),
            ),
            (
                "us",
                Arc::new(
                    TimestampMicrosecondArray::from(times.clone()).with_timezone_opt(zone.clone()),
                ),
            ),
            (
                "ns",
                Arc::new(
                    TimestampNanosecondArray::from(times.clone()).with_timezone_opt(zone.clone()),
                ),
            ),
        ];
        assert_same(&batch(columns));
    }
}

#[test]
fn floats_that_ryu_does_not_write() {
    let doubles = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::MIN,
        1.0,
        0.1,
        1e15,
        1e16,
        123_456.789,
    ];
    let singles: Vec<f32> = doubles.iter().map(|&d| d as f32).collect();
    assert_same(&batch(vec![
        ("f64", Arc::new(Float64Array::from(doubles.to_vec()))),
        ("f32", Arc::new(Float32Array::from(singles))),
    ]));
}

#[test]
fn dictionaries_with_null_keys_and_null_values() {
    let values = StringArray::from(vec![Some("web-1"), None, Some(""), Some("é")]);
    let keys = Int32Array::from(vec![Some(0), Some(1), None, Some(2), Some(3), Some(0)]);
    let wide = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap();
    let levels = DictionaryArray::<UInt8Type>::try_new(
        UInt8Array::from(vec![Some(1), Some(0), Some(1), None, Some(0), Some(1)]),
        Arc::new(StringArray::from(vec!["info", "error"])),
    )
    .unwrap();
    assert_same(&batch(vec![
        ("hostname", Arc::new(wide)),
        ("level", Arc::new(levels)),
    ]));
}

#[test]
fn dictionaries_without_values_and_empty_batches() {
    // An outer join's missing side: all-null dictionaries with no values at all.
    let tag_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let nulls = new_null_array(&tag_type, 3);
    let ints = DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(vec![Some(1), None, Some(0)]),
        Arc::new(Int64Array::from(vec![Some(-7), None])),
    )
    .unwrap();
    let full = batch(vec![("hostname", nulls), ("n", Arc::new(ints))]);
    assert_same(&full);
    assert_same(&full.slice(0, 0));
    assert_same(&RecordBatch::new_empty(full.schema()));
}

#[test]
fn sextant_columns_with_their_roles_in_metadata() {
    // The schema of a table as Sextant's scans give it: roles in the fields' metadata.
    let role = |role: &str| [("sextant.role".to_string(), role.to_string())].into();
    let tag_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let schema = Arc::new(Schema::new(vec![
        Field::new("hostname", tag_type, true).with_metadata(role("tag")),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("usage", DataType::Float64, true),
    ]));
    let hosts = DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(vec![0, 1]),
        Arc::new(StringArray::from(vec!["host_0", "host_1"])),
    )
    .unwrap();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(hosts),
            Arc::new(
                TimestampNanosecondArray::from(vec![1_451_606_400_000_000_000, 1])
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(vec![Some(58.1), None])),
        ],
    )
    .unwrap();
    assert_same(&batch);
}

/// Writes each array, as a batch of one column `c` under `schema`'s type (which the
/// array's type may differ from, as a plan's may), and checks it is arrow-pg's rows, in
/// text and in binary.
fn assert_written_under(schema: Schema, arrays: Vec<ArrayRef>) {
    let options = Arc::new(FormatOptions::default());
    for format in [Format::UnifiedText, Format::UnifiedBinary] {
        let fields =
            Arc::new(arrow_schema_to_pg_fields(&schema, &format, Some(options.clone())).unwrap());
        let writer = Rows::new(&schema, &fields, &options).unwrap();
        for array in &arrays {
            let batch = batch(vec![("c", Arc::clone(array))]);
            let theirs = encode_recordbatch(Arc::clone(&fields), batch.clone())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            assert_eq!(writer.encode(&batch).unwrap(), theirs, "{format:?}");
        }
    }
}

#[test]
fn strings_come_as_the_plan_gives_them_whatever_the_schema_says() {
    // The schema says plain strings; the batches hold views and dictionaries.
    let dictionary = DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(vec![Some(1), None, Some(0)]),
        Arc::new(StringArray::from(vec!["a", "b"])),
    )
    .unwrap();
    assert_written_under(
        Schema::new(vec![Field::new("c", DataType::Utf8, true)]),
        vec![
            Arc::new(StringViewArray::from(vec![Some("x"), None, Some("")])),
            Arc::new(dictionary),
        ],
    );
}

#[test]
fn dictionaries_of_numbers_under_a_plain_schema() {
    let dictionary = DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(vec![Some(1), None, Some(0)]),
        Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(42)])),
    )
    .unwrap();
    assert_written_under(
        Schema::new(vec![Field::new("c", DataType::Int64, true)]),
        vec![Arc::new(dictionary)],
    );
}

#[test]
fn answers_it_does_not_write_are_left_to_arrow_pg() {
    let default = FormatOptions::default();
    let schema_of = |data_type: DataType| Schema::new(vec![Field::new("c", data_type, true)]);
    let fields =
        |schema: &Schema, format: &Format| arrow_schema_to_pg_fields(schema, format, None).unwrap();
    let text = Format::UnifiedText;

    // Types it writes, as the control.
    let ints = schema_of(DataType::Int64);
    assert!(Rows::new(&ints, &fields(&ints, &text), &default).is_some());

    // Another type.
    let decimal = schema_of(DataType::Decimal128(10, 2));
    assert!(Rows::new(&decimal, &fields(&decimal, &text), &default).is_none());
    let paris = schema_of(DataType::Timestamp(
        TimeUnit::Nanosecond,
        Some("Europe/Paris".into()),
    ));
    assert!(Rows::new(&paris, &fields(&paris, &text), &default).is_none());
    // Session options other than the defaults it writes.
    for (date_style, digits) in [("SQL, DMY", 1), ("Postgres", 1), ("german", 1), ("ISO", 0)] {
        let mut options = FormatOptions::default();
        options.date_style = date_style.to_string();
        options.extra_float_digits = digits;
        assert!(
            Rows::new(&ints, &fields(&ints, &text), &options).is_none(),
            "{date_style}, {digits}"
        );
    }
    // ISO with an order, and a style pgwire does not know (it writes ISO then).
    for date_style in ["ISO, MDY", "iso", "nonsense"] {
        let mut options = FormatOptions::default();
        options.date_style = date_style.to_string();
        assert!(Rows::new(&ints, &fields(&ints, &text), &options).is_some());
    }
    // In binary, the session's text options do not matter; another type still does.
    let binary = Format::UnifiedBinary;
    let mut postgres_style = FormatOptions::default();
    postgres_style.date_style = "Postgres".to_string();
    postgres_style.extra_float_digits = 0;
    assert!(Rows::new(&ints, &fields(&ints, &binary), &postgres_style).is_some());
    assert!(Rows::new(&decimal, &fields(&decimal, &binary), &default).is_none());
    // One column in text and one in binary: the text one needs the options it writes.
    let two = Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Float64, true),
    ]);
    let mixed = Format::Individual(vec![1, 0]);
    assert!(Rows::new(&two, &fields(&two, &mixed), &default).is_some());
    let columns = batch(vec![
        (
            "a",
            Arc::new(Int64Array::from(vec![Some(-5), None, Some(7)])) as ArrayRef,
        ),
        (
            "b",
            Arc::new(Float64Array::from(vec![Some(0.1), Some(-2.5), None])),
        ),
    ]);
    assert_same_in(&columns, &mixed);
    assert_same_in(&columns, &Format::Individual(vec![0, 1]));
    assert!(Rows::new(&two, &fields(&two, &mixed), &postgres_style).is_none());
    // Metadata (PostgreSQL's own types in the catalog's tables).
    let oid =
        Schema::new(vec![Field::new("c", DataType::Int32, true).with_metadata(
            [("pg.oid_alias".to_string(), "oid".to_string())].into(),
        )]);
    assert!(Rows::new(&oid, &fields(&oid, &text), &default).is_none());
    // A decimal column in a batch where the schema had integers is an error, not a panic.
    let writer = Rows::new(&ints, &fields(&ints, &text), &default).unwrap();
    let wrong = batch(vec![(
        "c",
        Arc::new(
            Decimal128Array::from(vec![1_i128])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
    )]);
    assert!(writer.encode(&wrong).is_err());
    let mut out = BytesMut::from(&b"rows before"[..]);
    assert!(writer.write(&wrong, &mut out).is_err());
    assert_eq!(&out[..], b"rows before", "nothing written on an error");
}

/// Checks that an `Int8` column, which the client is told is `int2`, is written in
/// binary as `int2`: two big-endian bytes (arrow-pg writes one).
fn assert_int8_as_int2(batch: &RecordBatch) {
    let options = FormatOptions::default();
    let format = Format::UnifiedBinary;
    let fields = arrow_schema_to_pg_fields(&batch.schema(), &format, None).unwrap();
    let writer = Rows::new(&batch.schema(), &fields, &options).unwrap();
    let rows = writer.encode(batch).unwrap();
    let mut sent = BytesMut::new();
    for row in &rows {
        PgWireBackendMessage::DataRow(row.clone())
            .encode(&mut sent)
            .unwrap();
    }
    let mut written = BytesMut::new();
    writer.write(batch, &mut written).unwrap();
    assert!(written == sent, "Rows::write differs from Rows::encode");
    let column = batch.column(0).as_primitive::<Int8Type>();
    for (row, written) in rows.iter().enumerate() {
        let expected: Vec<u8> = if column.is_null(row) {
            (-1_i32).to_be_bytes().to_vec()
        } else {
            let value = i16::from(column.value(row)).to_be_bytes();
            [&2_i32.to_be_bytes()[..], &value[..]].concat()
        };
        assert_eq!(written.data.as_ref(), expected.as_slice(), "row {row}");
    }
}

#[test]
fn int8_in_binary_is_two_bytes() {
    let values = Int8Array::from(vec![Some(i8::MIN), Some(-1), None, Some(0), Some(i8::MAX)]);
    assert_int8_as_int2(&batch(vec![("c", Arc::new(values))]));
}

fn times() -> impl Strategy<Value = Vec<Option<i64>>> {
    prop::collection::vec(
        prop_oneof![
            Just(None),
            any::<i64>().prop_map(Some),
            // 1900 to 2100, in nanoseconds.
            (-2_208_988_800_000_000_000_i64..4_102_444_800_000_000_000).prop_map(Some),
        ],
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_type_as_arrow_pg_writes_it(
        booleans in prop::collection::vec(any::<Option<bool>>(), 40),
        ints in prop::collection::vec(any::<Option<i64>>(), 40),
        floats in prop::collection::vec(any::<Option<f64>>(), 40),
        strings in prop::collection::vec(any::<Option<String>>(), 40),
        time in times(),
    ) {
        let n = 40;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("bool", Arc::new(BooleanArray::from(booleans.clone()))),
            ("i16", Arc::new(Int16Array::from(ints.iter().map(|v| v.map(|v| v as i16)).collect::<Vec<_>>()))),
            ("i32", Arc::new(Int32Array::from(ints.iter().map(|v| v.map(|v| v as i32)).collect::<Vec<_>>()))),
            ("i64", Arc::new(Int64Array::from(ints.clone()))),
            ("u8", Arc::new(UInt8Array::from(ints.iter().map(|v| v.map(|v| v as u8)).collect::<Vec<_>>()))),
            ("u16", Arc::new(UInt16Array::from(ints.iter().map(|v| v.map(|v| v as u16)).collect::<Vec<_>>()))),
            ("u32", Arc::new(UInt32Array::from(ints.iter().map(|v| v.map(|v| v as u32)).collect::<Vec<_>>()))),
            ("f64", Arc::new(Float64Array::from(floats.clone()))),
            ("f32", Arc::new(Float32Array::from(floats.iter().map(|v| v.map(|v| v as f32)).collect::<Vec<_>>()))),
            ("utf8", Arc::new(StringArray::from(strings.clone()))),
            ("large", Arc::new(LargeStringArray::from(strings.clone()))),
            ("view", Arc::new(StringViewArray::from(strings.clone()))),
        ];
        prop_assert_eq!(columns[0].1.len(), n);
        assert_same(&batch(columns));
        let bytes = ints.iter().map(|v| v.map(|v| v as i8)).collect::<Vec<_>>();
        let bytes = batch(vec![("i8", Arc::new(Int8Array::from(bytes.clone())))]);
        assert_same_in(&bytes, &Format::UnifiedText);
        assert_int8_as_int2(&bytes);
        // Any i64 in every unit, with and without a zone.
        for zone in [None, Some(Arc::<str>::from("UTC"))] {
            let columns: Vec<(&str, ArrayRef)> = vec![
                ("s", Arc::new(TimestampSecondArray::from(time.clone()).with_timezone_opt(zone.clone()))),
                ("ms", Arc::new(TimestampMillisecondArray::from(time.clone()).with_timezone_opt(zone.clone()))),
                ("us", Arc::new(TimestampMicrosecondArray::from(time.clone()).with_timezone_opt(zone.clone()))),
                ("ns", Arc::new(TimestampNanosecondArray::from(time.clone()).with_timezone_opt(zone))),
            ];
            assert_same(&batch(columns));
        }
    }
}
