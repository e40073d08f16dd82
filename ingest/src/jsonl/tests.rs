use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type};
use arrow_array::{Array, ArrayRef};
use proptest::prelude::*;
use sextant_engine::{ColumnDef, ColumnType, Level, TableBatch, TableKind, TableSchema};

use super::*;
use crate::NoSchemas;

const NOW: i64 = 42;
const T: i64 = 1_700_000_000_000_000_000;

fn parse_str(input: &str, options: &Options) -> Outcome {
    parse(input.as_bytes(), options, NOW, &NoSchemas).unwrap()
}

fn col<'a>(b: &'a TableBatch, name: &str) -> &'a ArrayRef {
    let i = b.columns.iter().position(|c| c.name == name);
    &b.arrays[i.unwrap_or_else(|| panic!("no column {name}: {:?}", b.columns))]
}

fn ty(b: &TableBatch, name: &str) -> ColumnType {
    b.columns.iter().find(|c| c.name == name).unwrap().ty
}

fn level(b: &TableBatch, row: usize) -> Level {
    Level::from_rank(col(b, "level").as_primitive::<UInt8Type>().value(row)).unwrap()
}

fn text(b: &TableBatch, name: &str, row: usize) -> String {
    col(b, name).as_string::<i32>().value(row).to_string()
}

fn errors(out: &Outcome) -> Vec<String> {
    out.rejected.iter().map(|r| r.to_string()).collect()
}

#[test]
fn common_logger_shapes_are_read() {
    let input = [
        r#"{"level":30,"time":1700000000000,"pid":7,"hostname":"web-1","msg":"pino"}"#,
        r#"{"name":"api","hostname":"web-1","pid":7,"level":50,"msg":"bunyan","time":"2023-11-14T22:13:20.000Z","v":0}"#,
        r#"{"event":"structlog","level":"info","timestamp":"2023-11-14T22:13:20Z","user":"ada"}"#,
        r#"{"levelname":"WARNING","message":"python-json-logger","timestamp":"2023-11-14T22:13:20Z"}"#,
        r#"{"level":"dpanic","ts":1700000000.0,"caller":"main.go:12","msg":"zap","port":8080}"#,
        r#"{"time":"2023-11-14T23:13:20+01:00","level":"WARN","msg":"slog","duration":1.5}"#,
        r#"{"level":"fatal","msg":"logrus","time":"2023-11-14T22:13:20Z","component":"db"}"#,
    ]
    .join("\n");
    let out = parse_str(&input, &Options::default().tags(["hostname"]));
    assert!(out.is_complete(), "{:?}", errors(&out));
    let b = &out.batches[0];
    assert_eq!(
        (b.table.as_str(), b.kind, b.rows()),
        ("logs", TableKind::Event, 7)
    );
    assert!(b.time().values().iter().all(|&t| t == T), "{:?}", b.time());
    let levels: Vec<Level> = (0..7).map(|r| level(b, r)).collect();
    use Level::*;
    assert_eq!(levels, [Info, Error, Info, Warn, Error, Warn, Fatal]);
    let messages: Vec<String> = (0..7).map(|r| text(b, "message", r)).collect();
    assert_eq!(
        messages,
        [
            "pino",
            "bunyan",
            "structlog",
            "python-json-logger",
            "zap",
            "slog",
            "logrus"
        ]
    );
    assert_eq!(ty(b, "hostname"), ColumnType::Tag);
    assert_eq!(ty(b, "pid"), ColumnType::I64);
    assert_eq!(ty(b, "duration"), ColumnType::F64);
    assert_eq!(ty(b, "user"), ColumnType::Str);
}

#[test]
fn numeric_and_named_levels_follow_the_documented_mapping() {
    let cases = [
        ("10", Level::Trace),
        ("25", Level::Debug),
        ("35", Level::Info),
        ("40", Level::Warn),
        ("59", Level::Error),
        ("70", Level::Fatal),
        ("\"30\"", Level::Info),
        ("\"Verbose\"", Level::Trace),
        ("\"DBG\"", Level::Debug),
        ("\"notice\"", Level::Info),
        ("\"err\"", Level::Error),
        ("\"CRITICAL\"", Level::Fatal),
        ("\"panic\"", Level::Fatal),
        ("\"emerg\"", Level::Fatal),
    ];
    for (json, expected) in cases {
        let out = parse_str(&format!(r#"{{"level":{json}}}"#), &Options::default());
        assert_eq!(level(&out.batches[0], 0), expected, "{json}");
    }
    let out = parse_str(
        "{\"level\":5}\n{\"level\":\"loud\"}\n{\"level\":true}\n{}",
        &Options::default(),
    );
    assert_eq!(out.rejected_lines, 3);
    assert!(
        errors(&out)[1].contains("the level \"loud\" is not a log level"),
        "{:?}",
        errors(&out)
    );
    assert_eq!(level(&out.batches[0], 0), Level::Info, "the default level");
}

#[test]
fn times_without_a_time_key_get_now_and_epoch_units_follow_magnitude() {
    let out = parse_str(
        "{}\n{\"ts\":1700000000}\n{\"ts\":1700000000000000}\n{\"ts\":\"1700000000000\"}\n{\"@timestamp\":\"2023-11-14T22:13:20Z\"}\n",
        &Options::default(),
    );
    assert_eq!(out.batches[0].time().values().to_vec(), [NOW, T, T, T, T]);
    let out = parse_str(
        "{\"time\":\"yesterday\"}\n{\"time\":null}",
        &Options::default(),
    );
    assert_eq!(out.rejected_lines, 2);
    assert_eq!(
        errors(&out)[0],
        "line 1: the time \"yesterday\" is neither an RFC 3339 time (2023-11-14T22:13:20Z) nor an epoch number"
    );
}

#[test]
fn tables_tags_and_nested_fields_are_mapped() {
    let input = r#"{"_table":"audit","msg":"x","tags":{"user":"ada","admin":true},"fields":{"n":1},"http":{"status":200,"path":"/a","h":{"x":1.5}},"list":[1,2],"gone":null,"big":18446744073709551615}
{"table":"deploys","msg":"y"}"#;
    let out = parse_str(input, &Options::default());
    assert!(out.is_complete(), "{:?}", errors(&out));
    let tables: Vec<_> = out.batches.iter().map(|b| b.table.as_str()).collect();
    assert_eq!(tables, ["audit", "deploys"]);
    let b = &out.batches[0];
    assert_eq!(text(b, "user", 0), "ada");
    assert_eq!(text(b, "admin", 0), "true");
    assert_eq!(ty(b, "admin"), ColumnType::Tag);
    assert_eq!(col(b, "n").as_primitive::<Int64Type>().value(0), 1);
    assert_eq!(
        col(b, "http.status").as_primitive::<Int64Type>().value(0),
        200
    );
    assert_eq!(
        col(b, "http.h.x").as_primitive::<Float64Type>().value(0),
        1.5
    );
    assert_eq!(text(b, "list", 0), "[1,2]");
    assert_eq!(ty(b, "big"), ColumnType::U64);
    assert!(!b.columns.iter().any(|c| c.name == "gone"));
}

#[test]
fn bad_lines_are_rejected_with_numbers_and_good_lines_kept() {
    let input = "{\"msg\":\"ok\"}\nnot json\n[1]\n{\"_table\":\"bad/name\"}\n{\"tags\":{\"a\":\"1\"},\"a\":2}\n{\"tags\":3}\n{\"fields\":{\"time\":1}}\n{\"n\":1}\n{\"n\":\"one\"}\n";
    let out = parse_str(input, &Options::default());
    assert_eq!(out.rows, 2);
    let lines: Vec<usize> = out.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7, 9]);
    let msgs = errors(&out);
    assert!(
        msgs[0].starts_with("line 2: the line is not valid JSON: expected"),
        "{}",
        msgs[0]
    );
    assert_eq!(msgs[1], "line 3: the line is JSON an array, not an object");
    assert!(
        msgs[2].contains("table \"bad/name\" cannot be used"),
        "{}",
        msgs[2]
    );
    assert_eq!(
        msgs[3],
        "line 5: \"a\" appears twice among the line's tags and fields"
    );
    assert!(
        msgs[4].contains("\"tags\" must be an object"),
        "{}",
        msgs[4]
    );
    assert!(
        msgs[5].contains("field key \"time\" cannot be used"),
        "{}",
        msgs[5]
    );
    assert_eq!(
        msgs[6],
        "line 9: \"n\" of table \"logs\" holds i64 values in earlier lines of this request, this line offers string"
    );
}

#[test]
fn conflicts_with_stored_tables_reject_only_that_line() {
    let mut logs = TableSchema::new("logs", TableKind::Event);
    logs.columns.push(ColumnDef::new("code", ColumnType::I64));
    let cpu = TableSchema::new("cpu", TableKind::Metric);
    let stored: HashMap<String, TableSchema> = [("logs".into(), logs), ("cpu".into(), cpu)].into();
    let input = b"{\"code\":\"E1\"}\n{\"_table\":\"cpu\"}\n{\"code\":1}\n";
    let out = parse(input, &Options::default(), 0, &stored).unwrap();
    assert_eq!(out.rows, 1);
    assert_eq!(
        errors(&out),
        [
            "line 1: \"code\" of table \"logs\" holds i64 values in the stored table, this line offers string",
            "line 2: table \"cpu\" is a metric table; JSON lines write event tables",
        ]
    );
}

#[test]
fn limits_reject_long_lines_and_large_requests() {
    let options = Options {
        max_line_bytes: 16,
        max_request_bytes: 64,
        ..Options::default()
    };
    let out = parse(
        b"{\"m\":1}\n{\"m\":\"0123456789\"}\n",
        &options,
        0,
        &NoSchemas,
    )
    .unwrap();
    assert_eq!((out.rows, out.rejected_lines), (1, 1));
    assert!(parse(&[b' '; 65], &options, 0, &NoSchemas).is_err());
}

#[test]
fn written_batches_parse_back_equal() {
    let input = r#"{"time":"2023-11-14T22:13:20.123Z","level":"warn","msg":"disk \"low\"","tags":{"service":"api"},"free":512,"ratio":0.5,"ok":true,"note":"é\n"}
{"level":"error","msg":"x"}"#;
    let out = parse_str(input, &Options::default());
    let mut text = String::new();
    write_batch(&out.batches[0], &mut text).unwrap();
    let again = parse_str(&text, &Options::default());
    assert!(again.is_complete(), "{:?}\n{text}", errors(&again));
    assert_eq!(again.batches[0].columns.len(), out.batches[0].columns.len());
    for c in &out.batches[0].columns {
        let i = again.batches[0]
            .columns
            .iter()
            .position(|d| d == c)
            .unwrap();
        let j = out.batches[0].columns.iter().position(|d| d == c).unwrap();
        assert_eq!(
            again.batches[0].arrays[i].to_data(),
            out.batches[0].arrays[j].to_data(),
            "{}",
            c.name
        );
    }
}

#[test]
fn floats_read_back_bit_exact() {
    // Found by `written_rows_parse_back_equal`: without serde_json's `float_roundtrip`
    // this value read back one unit in the last place off.
    let x = 3.1418492515067087e-208_f64;
    let out = parse_str(&format!("{{\"x\":{x:?}}}"), &Options::default());
    let back = col(&out.batches[0], "x")
        .as_primitive::<Float64Type>()
        .value(0);
    assert_eq!(back.to_bits(), x.to_bits());
}

fn field_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite, not integral", |x| x.is_finite()
                && x.fract() != 0.0)
            .prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ]
}

proptest! {
    #[test]
    fn parse_never_panics_on_bytes(input in prop::collection::vec(any::<u8>(), 0..300)) {
        let out = parse(&input, &Options::default(), 0, &NoSchemas).unwrap();
        prop_assert_eq!(out.batches.iter().map(|b| b.rows()).sum::<usize>(), out.rows);
    }

    #[test]
    fn parse_never_panics_on_json_like_text(input in "[{}\\[\\]\":,0-9a-z.\n\\\\é -]{0,200}") {
        let _ = parse(input.as_bytes(), &Options::default(), 0, &NoSchemas).unwrap();
    }

    #[test]
    fn written_rows_parse_back_equal(
        rows in prop::collection::vec((
            prop::sample::select(vec!["logs", "audit"]),
            -9_000_000_000_000_000_000i64..i64::MAX / 2,
            prop::sample::select(Level::ALL.to_vec()),
            prop::option::of(any::<String>()),
            prop::collection::btree_map("t_[a-z]{1,4}", "[^\u{0}]{0,6}", 0..3),
            prop::collection::btree_map("f_[a-z]{1,4}", field_value(), 0..4),
        ), 1..8)
    ) {
        // Each field key carries one type per request: suffix the key with its type.
        let mut input = String::new();
        for (table, time, level, message, tags, fields) in &rows {
            let mut line = serde_json::Map::new();
            line.insert("_table".into(), (*table).into());
            line.insert("time".into(), super::time::format_rfc3339(*time).into());
            line.insert("level".into(), level.as_str().into());
            if let Some(m) = message {
                line.insert("msg".into(), m.clone().into());
            }
            line.insert("tags".into(), serde_json::to_value(tags).unwrap());
            let typed: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(k, v)| {
                    let t = if v.is_i64() { "i" } else if v.is_f64() { "f" } else if v.is_boolean() { "b" } else { "s" };
                    (format!("{k}_{t}"), v.clone())
                })
                .collect();
            line.insert("fields".into(), typed.into());
            input.push_str(&serde_json::Value::Object(line).to_string());
            input.push('\n');
        }
        let out = parse(input.as_bytes(), &Options::default(), 0, &NoSchemas).unwrap();
        prop_assert!(out.is_complete(), "{:?}", out.rejected);
        for b in &out.batches {
            let expected: Vec<_> = rows.iter().filter(|r| r.0 == b.table).collect();
            prop_assert_eq!(expected.len(), b.rows());
            for (i, r) in expected.iter().enumerate() {
                prop_assert_eq!(b.time().value(i), r.1);
                prop_assert_eq!(level(b, i), r.2);
            }
        }
        let mut text = String::new();
        for b in &out.batches {
            write_batch(b, &mut text).unwrap();
        }
        let again = parse(text.as_bytes(), &Options::default(), 0, &NoSchemas).unwrap();
        prop_assert!(again.is_complete(), "{:?}", again.rejected);
        for (a, b) in again.batches.iter().zip(&out.batches) {
            for (c, array) in b.columns.iter().zip(&b.arrays) {
                let i = a.columns.iter().position(|d| d == c).unwrap();
                prop_assert_eq!(a.arrays[i].to_data(), array.to_data());
            }
        }
    }
}
