//! Every protocol parsed and written into a real engine, and conflicts with stored data
//! caught per line through the engine's snapshot.

use sextant_engine::{ColumnType, Config, Engine, ScanRequest, TableKind};
use sextant_ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use sextant_ingest::{jsonl, line_protocol, remote_write, statsd};

const T0: i64 = 1_700_000_000_000_000_000;

fn rows(engine: &Engine, table: &str) -> usize {
    engine
        .snapshot()
        .scan(&ScanRequest::new(table))
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum()
}

fn column_type(engine: &Engine, table: &str, column: &str) -> ColumnType {
    let snapshot = engine.snapshot();
    let schema = snapshot.schema(table).unwrap();
    schema.column(column).unwrap().ty
}

#[test]
fn every_protocol_writes_into_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();

    let lp =
        b"cpu,host=a usage=1.5 1700000000000000000\ncpu,host=b usage=2.5 1700000000000000000\n";
    let out = line_protocol::parse(lp, &Default::default(), T0, &engine.snapshot()).unwrap();
    engine.write_batches(out.batches).unwrap();

    let mut agg = statsd::Aggregator::new(statsd::Options::default(), T0);
    agg.ingest(b"api.requests:1|c|#route:/a\napi.requests:2|c|#route:/a\napi.latency:5|ms\n");
    let out = agg.flush(T0 + 10_000_000_000, &engine.snapshot());
    assert!(out.is_complete(), "{:?}", out.rejected);
    engine.write_batches(out.batches).unwrap();

    let logs =
        br#"{"level":"error","time":"2023-11-14T22:13:20Z","msg":"disk full","service":"api"}
{"level":30,"time":1700000001000,"msg":"ok"}"#;
    let options = jsonl::Options::default().tags(["service"]);
    let out = jsonl::parse(logs, &options, T0, &engine.snapshot()).unwrap();
    engine.write_batches(out.batches).unwrap();

    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "up".into(),
                },
                Label {
                    name: "job".into(),
                    value: "api".into(),
                },
            ],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1_700_000_000_000,
            }],
        }],
    };
    let body = remote_write::encode(&request).unwrap();
    let out = remote_write::parse(&body, &Default::default(), &engine.snapshot()).unwrap();
    engine.write_batches(out.batches).unwrap();

    engine.flush().unwrap();
    assert_eq!(rows(&engine, "cpu"), 2);
    assert_eq!(rows(&engine, "api_requests"), 1);
    assert_eq!(rows(&engine, "api_latency"), 1);
    assert_eq!(rows(&engine, "logs"), 2);
    assert_eq!(rows(&engine, "up"), 1);
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.schema("logs").unwrap().kind, TableKind::Event);
    assert_eq!(snapshot.schema("cpu").unwrap().kind, TableKind::Metric);
    assert_eq!(column_type(&engine, "logs", "level"), ColumnType::Level);
    assert_eq!(column_type(&engine, "logs", "service"), ColumnType::Tag);
    assert_eq!(
        column_type(&engine, "api_requests", "value"),
        ColumnType::I64
    );
    assert_eq!(
        column_type(&engine, "api_latency", "90_percentile"),
        ColumnType::F64
    );
    assert_eq!(column_type(&engine, "up", "job"), ColumnType::Tag);
}

#[test]
fn conflicts_with_stored_data_reject_lines_and_the_rest_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    let first = line_protocol::parse(
        b"cpu,host=a usage=1.5 1\n",
        &Default::default(),
        0,
        &engine.snapshot(),
    )
    .unwrap();
    engine.write_batches(first.batches).unwrap();
    engine.flush().unwrap();

    // Without the snapshot the engine would refuse the whole write; with it, only the
    // conflicting line is rejected.
    let request = b"cpu,host=a usage=2i 2\ncpu,host=a usage=3 3\ncpu usage=4,host=\"x\" 4\n";
    let out = line_protocol::parse(request, &Default::default(), 0, &engine.snapshot()).unwrap();
    assert_eq!(out.rows, 1);
    let lines: Vec<usize> = out.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [1, 3]);
    engine.write_batches(out.batches).unwrap();
    assert_eq!(rows(&engine, "cpu"), 2);

    let unchecked =
        line_protocol::parse(request, &Default::default(), 0, &sextant_ingest::NoSchemas).unwrap();
    assert!(
        engine.write_batches(unchecked.batches).is_err(),
        "the engine refuses the conflicting write whole"
    );

    // A JSON line aimed at the metric table is rejected; the other is written to logs.
    let logs = br#"{"_table":"cpu","msg":"wrong table"}
{"msg":"right table"}"#;
    let out = jsonl::parse(logs, &Default::default(), 5, &engine.snapshot()).unwrap();
    assert_eq!(
        out.rejected[0].to_string(),
        "line 1: table \"cpu\" is a metric table; JSON lines write event tables"
    );
    engine.write_batches(out.batches).unwrap();
    assert_eq!(rows(&engine, "logs"), 1);
}
