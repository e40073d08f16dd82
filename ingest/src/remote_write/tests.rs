use std::collections::HashMap;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use proptest::prelude::*;
use sextant_engine::{ColumnDef, ColumnType, TableKind, TableSchema};

use super::*;
use crate::NoSchemas;

fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
    }
}

fn parse_request(timeseries: Vec<TimeSeries>) -> Outcome {
    let body = encode(&WriteRequest { timeseries }).unwrap();
    parse(&body, &Options::default(), &NoSchemas).unwrap()
}

#[test]
fn samples_become_rows_of_one_table_per_metric_name() {
    let out = parse_request(vec![
        series(
            &[("__name__", "up"), ("job", "api")],
            &[(1.0, 1000), (0.0, 2000)],
        ),
        series(
            &[("__name__", "job:requests:rate5m"), ("job", "api")],
            &[(2.5, 1000)],
        ),
        series(
            &[("__name__", "up"), ("job", "db"), ("zone", "a")],
            &[(1.0, 1000)],
        ),
    ]);
    assert!(out.is_complete(), "{:?}", out.rejected);
    let tables: Vec<_> = out.batches.iter().map(|b| b.table.as_str()).collect();
    assert_eq!(tables, ["up", "job.requests.rate5m"]);
    let up = &out.batches[0];
    assert_eq!(up.kind, TableKind::Metric);
    assert_eq!(up.rows(), 3);
    assert_eq!(
        up.time().values().to_vec(),
        [1_000_000_000, 2_000_000_000, 1_000_000_000]
    );
    let names: Vec<_> = up.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["time", "job", "value", "zone"]);
    assert_eq!(up.arrays[3].null_count(), 2);
    let values = up.arrays[2].as_primitive::<Float64Type>();
    assert_eq!(values.values().to_vec(), [1.0, 0.0, 1.0]);
}

#[test]
fn staleness_markers_are_dropped_and_other_nans_kept() {
    let stale = f64::from_bits(STALE_NAN);
    let out = parse_request(vec![series(
        &[("__name__", "x")],
        &[(stale, 1), (f64::NAN, 2), (3.0, 3)],
    )]);
    assert_eq!(out.rows, 2);
    let values = out.batches[0].arrays[1].as_primitive::<Float64Type>();
    assert!(values.value(0).is_nan() && values.value(0).to_bits() != STALE_NAN);
}

#[test]
fn bad_series_are_rejected_by_position_and_good_ones_kept() {
    let out = parse_request(vec![
        series(&[("job", "a")], &[(1.0, 1)]),
        series(&[("__name__", "ok")], &[(1.0, 1)]),
        series(&[("__name__", "x"), ("value", "v")], &[(1.0, 1)]),
        series(&[("__name__", "x"), ("a", "1"), ("a", "2")], &[(1.0, 1)]),
        series(&[("__name__", "bad name")], &[(1.0, 1)]),
        series(&[("__name__", "x")], &[(1.0, i64::MAX)]),
    ]);
    assert_eq!(out.rows, 1);
    let msgs: Vec<String> = out.rejected.iter().map(|r| r.to_string()).collect();
    assert_eq!(msgs[0], "line 1: the time series has no __name__ label");
    assert!(
        msgs[1].starts_with("line 3: label \"value\" cannot be used"),
        "{}",
        msgs[1]
    );
    assert!(msgs[2].contains("appears twice"), "{}", msgs[2]);
    assert!(
        msgs[3].starts_with("line 5: metric name \"bad name\" cannot be used"),
        "{}",
        msgs[3]
    );
    assert!(msgs[4].contains("out of range"), "{}", msgs[4]);
}

#[test]
fn a_label_repeated_among_many_is_found() {
    let names: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
    let mut labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    labels.insert(0, ("__name__", "x"));
    labels.push(("l3", "w"));
    let out = parse_request(vec![series(&labels, &[(1.0, 1)])]);
    assert!(
        out.rejected[0]
            .to_string()
            .contains("label \"l3\" cannot be used: it appears twice")
    );
}

#[test]
fn conflicts_with_stored_tables_reject_only_that_series() {
    let mut up = TableSchema::new("up", TableKind::Metric);
    up.columns.push(ColumnDef::new("value", ColumnType::I64));
    let logs = TableSchema::new("logs", TableKind::Event);
    let stored: HashMap<String, TableSchema> = [("up".into(), up), ("logs".into(), logs)].into();
    let body = encode(&WriteRequest {
        timeseries: vec![
            series(&[("__name__", "up")], &[(1.0, 1)]),
            series(&[("__name__", "logs")], &[(1.0, 1)]),
            series(&[("__name__", "fine")], &[(1.0, 1)]),
        ],
    })
    .unwrap();
    let out = parse(&body, &Options::default(), &stored).unwrap();
    assert_eq!(out.rows, 1);
    let msgs: Vec<String> = out.rejected.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        msgs,
        [
            "line 1: \"value\" of table \"up\" holds i64 values in the stored table, this series offers f64",
            "line 2: table \"logs\" is an event table; remote write writes metric tables",
        ]
    );
}

#[test]
fn bodies_that_are_not_snappy_protobuf_or_too_large_fail_whole() {
    let err = parse(b"\xff\xff\xff\xff\xff", &Options::default(), &NoSchemas).unwrap_err();
    assert!(err.to_string().contains("not snappy-compressed"), "{err}");
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff")
        .unwrap();
    let err = parse(&garbage, &Options::default(), &NoSchemas).unwrap_err();
    assert!(
        err.to_string().contains("not a remote write WriteRequest"),
        "{err}"
    );
    let options = Options {
        max_decompressed_bytes: 10,
        ..Options::default()
    };
    let body = encode(&WriteRequest {
        timeseries: vec![series(&[("__name__", "a_long_metric_name")], &[(1.0, 1)])],
    })
    .unwrap();
    let err = parse(&body, &options, &NoSchemas).unwrap_err();
    assert!(err.to_string().contains("once decompressed"), "{err}");
}

#[test]
fn negative_zero_reads_back_as_zero() {
    // Found by the round-trip proptest: prost leaves out a double equal to proto3's
    // default, so -0.0 is sent as nothing and read back as 0.0 (Go's encoder keeps it).
    let out = parse_request(vec![series(&[("__name__", "x")], &[(-0.0, 1)])]);
    let value = out.batches[0].arrays[1]
        .as_primitive::<Float64Type>()
        .value(0);
    assert_eq!(value.to_bits(), 0.0f64.to_bits());
}

proptest! {
    #[test]
    fn parse_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse(&body, &Options::default(), &NoSchemas);
    }

    #[test]
    fn parse_never_panics_on_snappy_wrapped_bytes(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let _ = parse(&body, &Options::default(), &NoSchemas);
    }

    #[test]
    fn encoded_requests_decode_equal_and_parse_to_their_samples(
        timeseries in prop::collection::vec(
            (
                "[a-z_][a-z0-9_:]{0,8}",
                prop::collection::btree_map("[a-z][a-z0-9_]{0,5}", "[^\u{0}]{0,6}", 0..3),
                prop::collection::vec((any::<f64>(), -9_000_000_000_000i64..9_000_000_000_000), 0..4),
            ),
            0..6,
        )
    ) {
        let request = WriteRequest {
            timeseries: timeseries
                .iter()
                .map(|(name, labels, samples)| {
                    let mut labels: Vec<(&str, &str)> = labels
                        .iter()
                        .filter(|(k, _)| k.as_str() != "time" && k.as_str() != "value")
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    labels.insert(0, ("__name__", name));
                    series(&labels, samples)
                })
                .collect(),
        };
        let body = encode(&request).unwrap();
        let decoded = decode(&body, &Options::default()).unwrap();
        // Compare bit patterns (NaN != NaN), with -0.0 as 0.0: prost, proto3 style, leaves
        // out a double equal to the default 0.0, and -0.0 is equal to it.
        prop_assert_eq!(decoded.timeseries.len(), request.timeseries.len());
        for (a, b) in decoded.timeseries.iter().zip(&request.timeseries) {
            prop_assert_eq!(&a.labels, &b.labels);
            let bits = |s: &TimeSeries| s.samples.iter().map(|x| ((x.value + 0.0).to_bits(), x.timestamp)).collect::<Vec<_>>();
            prop_assert_eq!(bits(a), bits(b));
        }
        let out = parse(&body, &Options::default(), &NoSchemas).unwrap();
        prop_assert!(out.is_complete(), "{:?}", out.rejected);
        let samples: usize = request.timeseries.iter()
            .flat_map(|s| &s.samples)
            .filter(|s| s.value.to_bits() != STALE_NAN)
            .count();
        prop_assert_eq!(out.rows, samples);
    }
}
