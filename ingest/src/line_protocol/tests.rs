use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef};
use proptest::prelude::*;
use sextant_engine::{ColumnDef, ColumnType, FieldValue, TableBatch, TableKind, TableSchema};

use super::*;
use crate::NoSchemas;

fn parse_str(input: &str) -> Outcome {
    parse(input.as_bytes(), &Options::default(), 7, &NoSchemas).unwrap()
}

fn column<'a>(b: &'a TableBatch, name: &str) -> &'a ArrayRef {
    let i = b.columns.iter().position(|c| c.name == name).unwrap();
    &b.arrays[i]
}

fn ty(b: &TableBatch, name: &str) -> ColumnType {
    b.columns.iter().find(|c| c.name == name).unwrap().ty
}

fn str_at(b: &TableBatch, name: &str, row: usize) -> String {
    column(b, name).as_string::<i32>().value(row).to_string()
}

fn errors(out: &Outcome) -> Vec<String> {
    out.rejected.iter().map(|r| r.to_string()).collect()
}

#[test]
fn every_field_type_is_parsed() {
    let out = parse_str("m f=1.5,neg=-2e3,int=-3i,uint=4u,s=\"x\",b=true,whole=1 5\n");
    assert!(out.is_complete(), "{:?}", errors(&out));
    let b = &out.batches[0];
    assert_eq!(b.kind, TableKind::Metric);
    assert_eq!(ty(b, "f"), ColumnType::F64);
    assert_eq!(ty(b, "whole"), ColumnType::F64);
    assert_eq!(
        column(b, "neg").as_primitive::<Float64Type>().value(0),
        -2000.0
    );
    assert_eq!(column(b, "int").as_primitive::<Int64Type>().value(0), -3);
    assert_eq!(column(b, "uint").as_primitive::<UInt64Type>().value(0), 4);
    assert_eq!(str_at(b, "s", 0), "x");
    assert!(column(b, "b").as_boolean().value(0));
    assert_eq!(b.time().value(0), 5);
}

#[test]
fn every_boolean_spelling_is_accepted() {
    let trues = ["t", "T", "true", "True", "TRUE"];
    let falses = ["f", "F", "false", "False", "FALSE"];
    for (word, expected) in trues
        .iter()
        .map(|w| (w, true))
        .chain(falses.iter().map(|w| (w, false)))
    {
        let out = parse_str(&format!("m b={word}"));
        assert!(out.is_complete(), "{word}");
        assert_eq!(
            column(&out.batches[0], "b").as_boolean().value(0),
            expected,
            "{word}"
        );
    }
    let out = parse_str("m b=tRuE");
    assert_eq!(out.rejected_lines, 1);
}

#[test]
fn escapes_are_undone_in_every_position() {
    let out =
        parse_str("my\\ table\\,x,t\\ k\\=1=v\\,a\\=b\\ c f\\ k\\,\\==\"q\\\"uo\\\\te\\n\" 1\n");
    // The measurement `my table,x` is not a valid table name: check the message, then
    // use a valid measurement for the rest.
    assert!(
        errors(&out)[0].contains("measurement \"my table,x\" cannot be used"),
        "{:?}",
        errors(&out)
    );
    let out = parse_str("m,t\\ k\\=1=v\\,a\\=b\\ c f\\ k\\,\\==\"q\\\"uo\\\\te\\n\" 1\n");
    assert!(out.is_complete(), "{:?}", errors(&out));
    let b = &out.batches[0];
    assert_eq!(str_at(b, "t k=1", 0), "v,a=b c");
    // In strings only \" and \\ are escapes; \n stays a backslash and an n.
    assert_eq!(str_at(b, "f k,=", 0), "q\"uo\\te\\n");
}

#[test]
fn timestamps_follow_the_precision_and_default_to_now() {
    for (precision, factor) in [
        (Precision::Nanoseconds, 1),
        (Precision::Microseconds, 1_000),
        (Precision::Milliseconds, 1_000_000),
        (Precision::Seconds, 1_000_000_000),
    ] {
        let options = Options::default().precision(precision);
        let out = parse(b"m v=1 -3\nm v=2", &options, 99, &NoSchemas).unwrap();
        assert_eq!(out.batches[0].time().values().to_vec(), [-3 * factor, 99]);
    }
    let options = Options::default().precision(Precision::Seconds);
    let out = parse(b"m v=1 9223372036854775", &options, 0, &NoSchemas).unwrap();
    assert!(
        errors(&out)[0].contains("out of range once in nanoseconds"),
        "{:?}",
        errors(&out)
    );
    assert_eq!(Precision::from_param("u"), Some(Precision::Microseconds));
    assert_eq!(Precision::from_param("h"), None);
}

#[test]
fn comments_blank_lines_and_crlf_are_skipped_but_counted() {
    let out = parse_str("# header\r\n\r\n   \n  m v=1 1\r\n\t# indented comment\nm v=oops\n");
    assert_eq!(out.rows, 1);
    assert_eq!(out.rejected[0].line, 6);
}

#[test]
fn lines_of_several_tables_and_shapes_become_one_batch_per_table_with_nulls() {
    let out = parse_str(
        "cpu,host=a user=1 1\nmem free=2i 1\ncpu,host=b,dc=x system=3 2\ncpu user=4,system=5 3\n",
    );
    assert_eq!(out.rows, 4);
    let tables: Vec<_> = out.batches.iter().map(|b| b.table.as_str()).collect();
    assert_eq!(tables, ["cpu", "mem"]);
    let cpu = &out.batches[0];
    let names: Vec<_> = cpu.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["time", "host", "user", "dc", "system"]);
    assert_eq!(cpu.rows(), 3);
    assert!(column(cpu, "host").is_null(2));
    assert!(column(cpu, "user").is_null(1));
    assert_eq!(column(cpu, "dc").null_count(), 2);
    assert_eq!(column(cpu, "system").null_count(), 1);
}

#[test]
fn bad_lines_are_rejected_with_their_numbers_and_good_lines_kept() {
    let out = parse_str(
        "m v=1\nm\nm,t v=1\nm v=\nm v=1 12x\nm v=1 1 junk\nm v=\"open\n,t=1 v=1\nm v=1,=2\nm v=2i\nm v=3\n",
    );
    assert_eq!(out.rows, 2);
    let lines: Vec<usize> = out.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let msgs = errors(&out);
    assert_eq!(
        msgs[0],
        "line 2: the line has no fields; a line is: measurement[,tag=value...] field=value[,field=value...] [timestamp]"
    );
    assert_eq!(
        msgs[1],
        "line 3: tag \"t\" has no value: it must be written tag=value"
    );
    assert!(msgs[2].contains("field \"v\" has no value"), "{}", msgs[2]);
    assert!(
        msgs[3].contains("the timestamp \"12x\" is not an integer"),
        "{}",
        msgs[3]
    );
    assert!(msgs[4].contains("unexpected text \"junk\""), "{}", msgs[4]);
    assert!(
        msgs[5].contains("has no closing double quote"),
        "{}",
        msgs[5]
    );
    assert!(msgs[6].contains("no measurement"), "{}", msgs[6]);
    assert!(msgs[7].contains("field key is empty"), "{}", msgs[7]);
    assert_eq!(
        msgs[8],
        "line 10: \"v\" of table \"m\" holds f64 values in earlier lines of this request, this line offers i64"
    );
}

#[test]
fn a_string_value_may_span_lines_and_line_numbers_stay_right() {
    let out = parse_str("m s=\"one\ntwo\",x=1\nm s=\"ok\" 1\nm x=bad\n");
    assert_eq!(out.rows, 2);
    assert_eq!(str_at(&out.batches[0], "s", 0), "one\ntwo");
    assert_eq!(out.rejected[0].line, 4);
}

#[test]
fn integers_out_of_range_and_malformed_numbers_are_rejected() {
    let out = parse_str(
        "m v=9223372036854775808i\nm v=-1u\nm v=18446744073709551616u\nm v=1.5i\nm v=+1\nm v=1e999\nm v=nan\nm v=-9223372036854775808i",
    );
    assert_eq!(out.rows, 1);
    let msgs = errors(&out);
    assert!(
        msgs[0].contains("out of range for a signed 64-bit integer"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].contains("\"-1u\", which is not a number"),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].contains("out of range for an unsigned"),
        "{}",
        msgs[2]
    );
    for m in &msgs[3..] {
        assert!(
            m.contains("is not a number, a boolean or a quoted string"),
            "{m}"
        );
    }
}

#[test]
fn duplicate_keys_follow_influxdb() {
    let out = parse_str("m,a=1,a=2 v=1\nm,a=1 a=1\nm v=1,v=2,w=3\n");
    let msgs = errors(&out);
    assert_eq!(
        msgs[0],
        "line 1: \"a\" appears twice in the line's tags and fields"
    );
    assert_eq!(
        msgs[1],
        "line 2: \"a\" appears twice in the line's tags and fields"
    );
    // A repeated field keeps its last value.
    let b = &out.batches[0];
    assert_eq!(column(b, "v").as_primitive::<Float64Type>().value(0), 2.0);
    let out = parse_str(&format!(
        "m {}\n",
        (0..40)
            .map(|i| format!("f{}={i}", i % 20))
            .collect::<Vec<_>>()
            .join(",")
    ));
    assert_eq!(
        column(&out.batches[0], "f3")
            .as_primitive::<Float64Type>()
            .value(0),
        23.0
    );
}

#[test]
fn many_unsorted_tags_are_checked_for_repeats_too() {
    let mut tags: Vec<String> = (0..20).rev().map(|i| format!("t{i}=x")).collect();
    let out = parse_str(&format!("m,{} v=1\n", tags.join(",")));
    assert!(out.is_complete(), "{:?}", errors(&out));
    tags.push("t7=y".into());
    let out = parse_str(&format!("m,{} v=1\n", tags.join(",")));
    assert_eq!(
        errors(&out),
        ["line 1: \"t7\" appears twice in the line's tags and fields"]
    );
}

#[test]
fn names_the_engine_cannot_store_are_rejected() {
    let out = parse_str("bad/name v=1\nm time=1\nm,time=x v=1\nm v\u{7}=1\n");
    assert_eq!(out.rejected_lines, 4);
    assert!(
        errors(&out)[1].contains("field key \"time\" cannot be used"),
        "{:?}",
        errors(&out)
    );
    assert!(errors(&out)[2].contains("tag key \"time\""));
}

#[test]
fn conflicts_with_the_stored_table_reject_only_that_line() {
    let mut cpu = TableSchema::new("cpu", TableKind::Metric);
    cpu.columns.push(ColumnDef::new("usage", ColumnType::F64));
    cpu.columns.push(ColumnDef::new("host", ColumnType::Tag));
    let logs = TableSchema::new("logs", TableKind::Event);
    let stored: HashMap<String, TableSchema> =
        [("cpu".to_string(), cpu), ("logs".to_string(), logs)].into();
    let input = b"cpu usage=1i\ncpu host=\"x\"\ncpu usage=2\nlogs v=1\n";
    let out = parse(input, &Options::default(), 0, &stored).unwrap();
    assert_eq!(out.rows, 1);
    assert_eq!(
        errors(&out),
        [
            "line 1: \"usage\" of table \"cpu\" holds f64 values in the stored table, this line offers i64",
            "line 2: \"host\" of table \"cpu\" holds tag values in the stored table, this line offers string",
            "line 4: table \"logs\" is an event table; line protocol writes metric tables",
        ]
    );
}

#[test]
fn limits_reject_long_lines_and_large_requests() {
    let options = Options {
        max_line_bytes: 10,
        max_request_bytes: 40,
        max_errors: 1,
        ..Options::default()
    };
    let out = parse(
        b"m v=1\nm v=12345678\nm v=123456789",
        &options,
        0,
        &NoSchemas,
    )
    .unwrap();
    assert_eq!(out.rows, 1);
    assert_eq!(out.rejected_lines, 2);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        errors(&out)[0],
        "line 2: the line is 12 bytes long, more than the limit of 10 bytes"
    );
    let err = parse(&[b'x'; 41], &options, 0, &NoSchemas).unwrap_err();
    assert_eq!(
        err,
        Error::RequestTooLarge {
            bytes: 41,
            limit: 40
        }
    );
}

#[test]
fn invalid_utf8_rejects_its_line_only() {
    let out = parse(
        b"m v=1\nm s=\"\xff\"\nm v=2",
        &Options::default(),
        0,
        &NoSchemas,
    )
    .unwrap();
    assert_eq!(out.rows, 2);
    assert_eq!(
        errors(&out),
        ["line 2: the line is not valid UTF-8 (at byte 5 of the line)"]
    );
}

#[test]
fn writer_escapes_and_refuses_what_line_protocol_cannot_say() {
    let mut out = String::new();
    let fields = [("v", FieldValue::F64(f64::NAN))];
    assert!(write_line(&mut out, "m", &[], &fields, None).is_err());
    assert!(write_line(&mut out, "m", &[], &[], None).is_err());
    assert!(write_line(&mut out, "#m", &[], &[("v", FieldValue::I64(1))], None).is_err());
    assert!(
        write_line(
            &mut out,
            "m",
            &[("a\nb", "x")],
            &[("v", FieldValue::I64(1))],
            None
        )
        .is_err()
    );
    assert_eq!(out, "", "a failed write leaves nothing behind");
    let fields = [
        ("k\\,=", FieldValue::Str("a\\\"\nb".into())),
        ("u", FieldValue::U64(3)),
    ];
    write_line(
        &mut out,
        "m x",
        &[("t", "v w"), ("empty", "")],
        &fields,
        None,
    )
    .unwrap();
    assert_eq!(out, "m\\ x,t=v\\ w k\\\\\\,\\==\"a\\\\\\\"\nb\",u=3u\n");
}

#[test]
fn write_batch_writes_what_parse_reads() {
    let input = "cpu,host=a user=1.5,n=2i 10\ncpu,host=b s=\"x y\" 20\nmem free=3u,ok=false 10\n";
    let out = parse_str(input);
    let mut text = String::new();
    for b in &out.batches {
        write_batch(b, &mut text).unwrap();
    }
    assert_eq!(
        text,
        "cpu,host=a user=1.5,n=2i 10\ncpu,host=b s=\"x y\" 20\nmem free=3u,ok=false 10\n"
    );
}

// Property tests.

/// A row of the round-trip model: keys carry their type in their prefix so that rows of
/// one table never conflict.
#[derive(Debug, Clone)]
struct Row {
    table: &'static str,
    tags: Vec<(String, String)>,
    fields: Vec<(String, FieldValue)>,
    time: Option<i64>,
}

fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,=\\\\\"#_.é]{0,6}"
}

fn field() -> impl Strategy<Value = (String, FieldValue)> {
    prop_oneof![
        (key(), any::<f64>().prop_filter("finite", |x| x.is_finite()))
            .prop_map(|(k, x)| (format!("f_{k}"), FieldValue::F64(x))),
        (key(), any::<i64>()).prop_map(|(k, x)| (format!("i_{k}"), FieldValue::I64(x))),
        (key(), any::<u64>()).prop_map(|(k, x)| (format!("u_{k}"), FieldValue::U64(x))),
        (key(), any::<bool>()).prop_map(|(k, x)| (format!("b_{k}"), FieldValue::Bool(x))),
        (key(), any::<String>()).prop_map(|(k, x)| (format!("s_{k}"), FieldValue::Str(x))),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    let tag = (key(), "[^\n\r]{1,8}").prop_map(|(k, v)| (format!("t_{k}"), v));
    (
        prop::sample::select(vec!["cpu", "mem", "disk.io-1"]),
        prop::collection::vec(tag, 0..4),
        prop::collection::vec(field(), 1..5),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(table, mut tags, mut fields, time)| {
            dedup(&mut tags);
            dedup(&mut fields);
            Row {
                table,
                tags,
                fields,
                time,
            }
        })
}

fn dedup<V>(pairs: &mut Vec<(String, V)>) {
    let mut seen = std::collections::HashSet::new();
    pairs.retain(|(k, _)| seen.insert(k.clone()));
}

fn value_at(b: &TableBatch, name: &str, row: usize) -> Option<FieldValue> {
    let i = b.columns.iter().position(|c| c.name == name)?;
    let a = &b.arrays[i];
    if a.is_null(row) {
        return None;
    }
    Some(match b.columns[i].ty {
        ColumnType::F64 => FieldValue::F64(a.as_primitive::<Float64Type>().value(row)),
        ColumnType::I64 => FieldValue::I64(a.as_primitive::<Int64Type>().value(row)),
        ColumnType::U64 => FieldValue::U64(a.as_primitive::<UInt64Type>().value(row)),
        ColumnType::Bool => FieldValue::Bool(a.as_boolean().value(row)),
        _ => FieldValue::Str(a.as_string::<i32>().value(row).to_string()),
    })
}

#[test]
fn the_shaped_parse_takes_only_lines_of_the_shape() {
    let shape_of = |text: &str| {
        let mut line = parse::Line::default();
        parse::parse_line(text, &mut line).unwrap();
        rows::Shape::of(&line)
    };
    let shape = shape_of("cpu,host=a f=1,s=\"x\" 5");
    let read = |text: &str| {
        let mut line = parse::Line::default();
        let shaped = parse::parse_shaped(text, &shape, &mut line);
        if shaped {
            let mut general = parse::Line::default();
            parse::parse_line(text, &mut general).unwrap();
            assert_eq!(line, general, "{text}");
        }
        shaped
    };
    for text in [
        "cpu,host=b f=2,s=\"y\" 6",
        "cpu,host=b\\ c f=2.5,s=\"y\\\"z\"",
        "cpu,host=b   f=-3,s=\"\"   7  ",
    ] {
        assert!(read(text), "{text} is of the shape");
    }
    for text in [
        "cpu,host= f=1,s=\"x\"",
        "cpu,host=a f=1,s=\"x\",g=2",
        "cpu,host=a,dc=b f=1,s=\"x\"",
        "cpux,host=a f=1,s=\"x\"",
        "cpu,hostx=a f=1,s=\"x\"",
        "cpu,host=a f=1i,s=\"x\"",
        "cpu,host=a f=1,s=x",
        "cpu,host=a f=1,s=\"x\" 12x",
        "cpu,host=a f=1,s=\"x\" 1 2",
        "cpu,host=a fx=1,s=\"x\"",
        "cpu,host=a f=,s=\"x\"",
        "cpu,host=a f=1",
        "cpu f=1,s=\"x\"",
        "cpu,host=a",
        "cpu",
    ] {
        assert!(!read(text), "{text} is not of the shape, or has an error");
    }
    // Names whose first difference is in their middle word, or right after a name.
    let long = shape_of("request.latency,service_environment=a request_latency_ms=1u");
    let mut line = parse::Line::default();
    for text in [
        "request.latency,service_environment=b request_latency_ms=2u",
        "request.latency,service_environment=b request_latency_ms=2u 1",
    ] {
        assert!(parse::parse_shaped(text, &long, &mut line), "{text}");
    }
    for text in [
        "request.latency,service_Environment=b request_latency_ms=2u",
        "request.latency,service_environment=b request_Latency_ms=2u",
        "request.latencY,service_environment=b request_latency_ms=2u",
        "request.latency,service_environment=b request_latency_ms=t",
        "request.latency,service_environment=b request_latency_ms=2u,",
        "request.latency\\ ,service_environment=b request_latency_ms=2u",
        "request.latency,service_environment\\ =b request_latency_ms=2u",
        "request.latency,service_environment=b request_latency_ms\\==2u",
        "request.latency,service_environment=b\trequest_latency_ms=2u",
    ] {
        assert!(!parse::parse_shaped(text, &long, &mut line), "{text}");
    }
    // A shape with a name that holds an escaped byte is never taken.
    let escaped = shape_of("cpu,ho\\ st=a f=1");
    let mut line = parse::Line::default();
    assert!(!escaped.is_plain());
    assert!(!parse::parse_shaped(
        "cpu,ho\\ st=a f=1",
        &escaped,
        &mut line
    ));
}

#[test]
fn same_bytes_finds_a_difference_at_every_position() {
    for n in 0..=40 {
        let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
        assert!(parse::same_bytes(&a, &a.clone()), "{n}");
        for i in 0..n {
            let mut b = a.clone();
            b[i] ^= 0x20;
            assert!(!parse::same_bytes(&a, &b), "length {n}, difference at {i}");
        }
    }
}

/// A value of `v`'s type made from `seed`.
fn value_like(v: &FieldValue, seed: u64) -> FieldValue {
    match v {
        FieldValue::F64(_) => FieldValue::F64(seed as f64 / 8.0 - 1e3),
        FieldValue::I64(_) => FieldValue::I64(seed as i64 - 7),
        FieldValue::U64(_) => FieldValue::U64(seed),
        FieldValue::Bool(_) => FieldValue::Bool(seed.is_multiple_of(2)),
        _ => FieldValue::Str(format!("v{seed}\"\\ ,=")),
    }
}

/// `text` with `edit` applied: (where, how many bytes removed, what inserted), or unchanged.
fn edited(text: &str, edit: Option<(prop::sample::Index, usize, &str)>) -> String {
    let Some((at, remove, insert)) = edit else {
        return text.to_string();
    };
    let mut bytes = text.as_bytes().to_vec();
    let at = at.index(bytes.len() + 1);
    let end = (at + remove).min(bytes.len());
    bytes.splice(at..end, insert.bytes());
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    // Cheap cases, and only some reach the comparison of the two parses: many of them.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A line is read by the shaped parse (the last line's names compared in place) only
    /// when it has that line's shape, and then exactly as the general parse reads it; and
    /// every line of a plain shape that the general parse accepts is read by it.
    #[test]
    fn the_shaped_parse_reads_what_the_general_parse_reads(
        mut first in row(),
        other in row(),
        plain in any::<bool>(),
        edit in prop::option::of((any::<prop::sample::Index>(), 0..3usize, "[a-z0-9,= \t\\\\\"iu.-]{0,2}")),
        same in any::<bool>(),
        retype in any::<bool>(),
    ) {
        let write = |r: &Row| {
            let tags: Vec<(&str, &str)> = r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let fields: Vec<(&str, FieldValue)> =
                r.fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let mut text = String::new();
            write_line(&mut text, r.table, &tags, &fields, r.time).unwrap();
            text.trim_end_matches('\n').to_string()
        };
        if plain {
            // Names with no byte that line protocol escapes: shapes the shaped parse takes.
            let unescaped = |k: &mut String| *k = k.replace([',', '=', ' ', '\\'], "_");
            first.tags.iter_mut().for_each(|(k, _)| unescaped(k));
            first.fields.iter_mut().for_each(|(k, _)| unescaped(k));
            dedup(&mut first.tags);
            dedup(&mut first.fields);
        }
        let shape_text = write(&first);
        let mut line = parse::Line::default();
        parse::parse_line(&shape_text, &mut line).unwrap();
        let shape = rows::Shape::of(&line);
        // The same keys with other values, or another row.
        let text = if same {
            let mut r = first.clone();
            for ((_, v), (_, w)) in r.tags.iter_mut().zip(&other.tags) {
                v.clone_from(w);
            }
            // The other row's values; of each field's own type unless `retype`.
            for (i, (_, v)) in r.fields.iter_mut().enumerate() {
                let w = &other.fields[i % other.fields.len()].1;
                if retype || std::mem::discriminant(v) == std::mem::discriminant(w) {
                    v.clone_from(w);
                } else {
                    *v = value_like(v, i as u64 + other.time.unwrap_or(0).unsigned_abs());
                }
            }
            r.time = other.time;
            write(&r)
        } else {
            write(&other)
        };
        let text = edited(&text, edit.as_ref().map(|(at, n, s)| (*at, *n, s.as_str())));
        let mut shaped = parse::Line::default();
        let mut general = parse::Line::default();
        let general_ok = parse::parse_line(&text, &mut general).is_ok();
        if parse::parse_shaped(&text, &shape, &mut shaped) {
            prop_assert!(general_ok, "{:?}", text);
            prop_assert_eq!(&shaped, &general, "{:?}", text);
            prop_assert!(shape.matches(&general));
        } else if general_ok && shape.is_plain() {
            prop_assert!(!shape.matches(&general), "{:?} was not read by its shape", text);
        }
    }

}

proptest! {
    #[test]
    fn small_integers_are_the_floats_a_full_parse_gives(
        text in "-?[0-9]{0,17}|[0-9+.eE-]{1,6}",
    ) {
        if let Some(x) = super::parse::small_integer(&text) {
            let full: f64 = text.parse().unwrap();
            prop_assert_eq!(x.to_bits(), full.to_bits(), "{}", text);
        } else {
            let digits = text.strip_prefix('-').unwrap_or(&text);
            prop_assert!(
                digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()),
                "{} was not taken", text
            );
        }
    }

    #[test]
    fn parse_never_panics_on_bytes(input in prop::collection::vec(any::<u8>(), 0..300)) {
        let out = parse(&input, &Options::default(), 0, &NoSchemas).unwrap();
        let lines = input.iter().filter(|&&b| b == b'\n').count() + 1;
        prop_assert!(out.rows + out.rejected_lines <= lines);
    }

    #[test]
    fn parse_never_panics_on_line_protocol_like_text(
        input in "([a-z,= \\\\\"#\n0-9.iuTfe-]|é){0,200}"
    ) {
        let out = parse(input.as_bytes(), &Options::default(), 0, &NoSchemas).unwrap();
        let total: usize = out.batches.iter().map(|b| b.rows()).sum();
        prop_assert_eq!(total, out.rows);
    }

    #[test]
    fn written_rows_parse_back_equal(rows in prop::collection::vec(row(), 1..12)) {
        let mut text = String::new();
        for r in &rows {
            let tags: Vec<(&str, &str)> = r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let fields: Vec<(&str, FieldValue)> =
                r.fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            write_line(&mut text, r.table, &tags, &fields, r.time).unwrap();
        }
        let out = parse(text.as_bytes(), &Options::default(), 42, &NoSchemas).unwrap();
        prop_assert!(out.is_complete(), "{:?}\n{}", out.rejected, text);
        for b in &out.batches {
            let expected: Vec<&Row> = rows.iter().filter(|r| r.table == b.table).collect();
            prop_assert_eq!(expected.len(), b.rows());
            for (i, r) in expected.iter().enumerate() {
                prop_assert_eq!(b.time().value(i), r.time.unwrap_or(42));
                for (k, v) in &r.tags {
                    prop_assert_eq!(value_at(b, k, i), Some(FieldValue::Str(v.clone())));
                }
                for (k, v) in &r.fields {
                    prop_assert_eq!(value_at(b, k, i), Some(v.clone()));
                }
                let set = r.tags.len() + r.fields.len();
                let non_null = b.arrays[1..].iter().filter(|a| !a.is_null(i)).count();
                prop_assert_eq!(set, non_null);
            }
        }
        // And the batches written back are the same text, table by table.
        let mut again = String::new();
        for b in &out.batches {
            write_batch(b, &mut again).unwrap();
        }
        let reparsed = parse(again.as_bytes(), &Options::default(), 0, &NoSchemas).unwrap();
        prop_assert_eq!(reparsed.batches.len(), out.batches.len());
        for (a, b) in reparsed.batches.iter().zip(&out.batches) {
            prop_assert_eq!(&a.columns, &b.columns);
            for (x, y) in a.arrays.iter().zip(&b.arrays) {
                prop_assert_eq!(x.to_data(), y.to_data());
            }
        }
    }
}
