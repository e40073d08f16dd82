use std::path::Path;

use super::*;
use crate::Error;
use crate::memory::PeakScope;
use crate::run::report::{EngineResult, Phase, QueryResult, Settings, WorkloadInfo};

/// A report with one ingest phase and one query on two engines.
fn report(rows_per_sec: f64, sextant_p50: f64, parquet_p50: Option<f64>) -> RunReport {
    let engine = |name: &str, p50: Option<f64>| match p50 {
        Some(p50) => EngineResult {
            engine: name.to_owned(),
            status: "ok".to_owned(),
            reason: None,
            statement: Some("SELECT 1".to_owned()),
            p50_ms: Some(p50),
            p95_ms: Some(p50 * 1.5),
            max_ms: Some(p50 * 2.0),
            runs_ms: vec![p50, p50 * 2.0],
            rows: Some(1),
            checksum: Some("00000000000000ff".to_owned()),
            sextant_ratio: None,
            explain: None,
        },
        None => EngineResult::not_available(name, "it has no such query".to_owned()),
    };
    RunReport {
        schema_version: crate::run::SCHEMA_VERSION,
        tool: "sextant-bench test".to_owned(),
        command: "sextant-bench run".to_owned(),
        workload: WorkloadInfo {
            name: "cpu-only".to_owned(),
            scale: Some(2),
            events_per_second: None,
            days: 0.05,
            seed: 1,
            rows: 864,
            values_per_row: 10,
        },
        settings: Settings {
            plan_cache_size: 256,
            runs: 2,
            warmup: 1,
            threads: 1,
            batch_rows: 10_000,
            sync: "interval".to_owned(),
            block_rows: None,
            flush_bytes: None,
            zstd_level: Some(3),
            target_partitions: 2,
            parquet_row_group_rows: 1 << 20,
            engines: vec!["sextant".to_owned(), "parquet".to_owned()],
        },
        ingest: vec![Phase {
            engine: "sextant".to_owned(),
            phase: "flush".to_owned(),
            rows: 864,
            secs: 0.5,
            rows_per_sec,
            values_per_sec: rows_per_sec * 10.0,
            engine_secs: None,
            bytes_on_disk: Some(4000),
            bytes_per_value: Some(0.463),
            peak_rss_bytes: Some(64 << 20),
            peak_rss_scope: PeakScope::Phase,
            samples: vec![[0.25, 1000.0], [0.5, 2000.0]],
            note: Some("a \"quoted\" note\non two lines".to_owned()),
        }],
        query_set: "test".to_owned(),
        queries: vec![QueryResult {
            name: "lastpoint".to_owned(),
            agree: true,
            mismatch: None,
            engines: vec![
                engine("sextant", Some(sextant_p50)),
                engine("parquet", parquet_p50),
            ],
        }],
        all_agree: true,
    }
}

#[test]
fn json_round_trip_keeps_every_field() {
    let r = report(1000.0, 2.0, None);
    let back = RunReport::from_json(&r.to_json(), Path::new("r.json")).unwrap();
    assert_eq!(back, r);
    let value: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(value["schema_version"], 1);
    assert_eq!(value["ingest"][0]["peak_rss_scope"], "phase");
    assert_eq!(value["queries"][0]["engines"][1]["status"], "n/a");
}

#[test]
fn another_schema_version_is_refused_with_both_versions() {
    let text = report(1.0, 1.0, None)
        .to_json()
        .replace("\"schema_version\": 1", "\"schema_version\": 99");
    let err = RunReport::from_json(&text, Path::new("old.json")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaMismatch {
                found: Some(99),
                expected: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("old.json") && message.contains("99"),
        "{message}"
    );
    let err = RunReport::from_json("{\"a\": 1}", Path::new("x.json")).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { found: None, .. }));
}

#[test]
fn missing_and_malformed_files_are_errors_that_name_the_file() {
    let err = RunReport::read_json(Path::new("/nonexistent/run.json")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/run.json"));
    let err = RunReport::from_json("{not json", Path::new("bad.json")).unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err:?}");
    let err = RunReport::from_json("{\"schema_version\": 1}", Path::new("bad.json")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bad.json is not a sextant-bench run report")
    );
}

#[test]
fn changes_are_marked_beyond_the_threshold_in_the_right_direction() {
    let old = report(1000.0, 10.0, Some(20.0));
    let new = report(1200.0, 10.4, None);
    let changes = changes(&old, &new);
    let find = |m: &str| changes.iter().find(|c| c.metric == m).unwrap().clone();
    let rate = find("sextant flush rows/s");
    assert!((rate.relative().unwrap() - 0.2).abs() < 1e-12);
    assert_eq!(rate.verdict(0.05), Verdict::Better);
    assert_eq!(rate.word(0.05), "faster");
    assert_eq!(rate.verdict(0.25), Verdict::Same);
    let p50 = find("lastpoint p50 ms (sextant)");
    assert_eq!(p50.verdict(0.05), Verdict::Same);
    assert_eq!(p50.verdict(0.01), Verdict::Worse);
    assert_eq!(p50.word(0.01), "SLOWER");
    let gone = find("lastpoint p50 ms (parquet)");
    assert_eq!((gone.old, gone.new), (Some(20.0), None));
    assert_eq!(gone.verdict(0.05), Verdict::Missing);
    assert_eq!(find("sextant flush bytes/value").word(0.05), "");
    let text = table(&old, &new, 0.05);
    assert!(text.contains("+20.0%") && text.contains("faster"), "{text}");
}

#[test]
fn regressions_are_sextants_metrics_worse_beyond_the_threshold() {
    let old = report(1000.0, 10.0, Some(20.0));
    // Sextant's query 4% slower, its rate 20% lower; the peer 50% slower.
    let new = report(800.0, 10.4, Some(30.0));
    assert_eq!(
        sextant_regressions(&old, &new, 0.05),
        vec!["sextant flush rows/s".to_owned()]
    );
    assert_eq!(
        sextant_regressions(&old, &new, 0.01),
        vec![
            "sextant flush rows/s".to_owned(),
            "lastpoint p50 ms (sextant)".to_owned()
        ]
    );
    assert!(sextant_regressions(&old, &new, 0.25).is_empty());
    assert!(sextant_regressions(&new, &old, 0.05).is_empty());

    // A query Sextant no longer answers, and answers that disagree.
    let mut lost = old.clone();
    lost.queries[0].engines[0] = EngineResult::not_available("sextant", "gone".to_owned());
    lost.queries[0].agree = false;
    assert_eq!(
        sextant_regressions(&old, &lost, 0.05),
        vec![
            "lastpoint p50 ms (sextant) (missing)".to_owned(),
            "lastpoint (answers differ)".to_owned()
        ]
    );
    // Runs of different workloads do not compare.
    let mut other = old.clone();
    other.workload.name = "logs".to_owned();
    let problems = sextant_regressions(&old, &other, 0.05);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("different workloads"), "{problems:?}");
    // Nor do runs with Sextant's plan cache and without, which the table notes.
    let mut planned = old.clone();
    planned.settings.plan_cache_size = 0;
    assert_eq!(
        sextant_regressions(&old, &planned, 0.05),
        vec!["the runs differ in Sextant's plan cache (256 and 0 SQL texts)".to_owned()]
    );
    assert!(table(&old, &planned, 0.05).starts_with("note: the runs differ"));
}

#[test]
fn rounds_merge_into_their_medians_and_agree_only_if_every_round_does() {
    // Three rounds whose medians are not their means, held by different rounds.
    let mut rounds = [
        report(900.0, 12.0, Some(20.0)),
        report(1500.0, 10.0, Some(29.0)),
        report(1000.0, 11.5, Some(21.0)),
    ];
    for (r, bpv) in rounds.iter_mut().zip([0.5, 0.4, 0.9]) {
        r.ingest[0].bytes_per_value = Some(bpv);
    }
    let merged = median_of(&rounds).unwrap();
    assert_eq!(merged.ingest[0].rows_per_sec, 1000.0);
    assert_eq!(merged.ingest[0].bytes_per_value, Some(0.5));
    assert_eq!(
        merged.queries[0].engine("sextant").unwrap().p50_ms,
        Some(11.5)
    );
    assert_eq!(
        merged.queries[0].engine("parquet").unwrap().p50_ms,
        Some(21.0)
    );
    assert!(merged.all_agree && merged.queries[0].agree);
    // An even count takes the mean of the middle two.
    let two = median_of(&rounds[..2]).unwrap();
    assert_eq!(two.queries[0].engine("sextant").unwrap().p50_ms, Some(11.0));

    // So one slow round of three does not fail the gate; two do.
    let old = median_of(&[report(1000.0, 10.0, None)]).unwrap();
    let one_slow = median_of(&[
        report(1000.0, 10.0, None),
        report(1000.0, 13.0, None),
        report(1000.0, 10.1, None),
    ])
    .unwrap();
    assert!(sextant_regressions(&old, &one_slow, 0.05).is_empty());
    let two_slow = median_of(&[
        report(1000.0, 10.0, None),
        report(1000.0, 13.0, None),
        report(1000.0, 12.0, None),
    ])
    .unwrap();
    assert_eq!(
        sextant_regressions(&old, &two_slow, 0.05),
        vec!["lastpoint p50 ms (sextant)".to_owned()]
    );

    // A figure one round lacks is missing from the merge, and fails the gate as missing;
    // so does a phase of one round only, whichever round it is.
    let mut lacking = rounds.clone();
    lacking[2].queries[0].engines[0] = EngineResult::not_available("sextant", "gone".into());
    lacking[1].ingest.clear();
    let merged = median_of(&lacking).unwrap();
    assert_eq!(merged.queries[0].engine("sextant").unwrap().p50_ms, None);
    assert!(merged.ingest.is_empty());
    assert_eq!(
        sextant_regressions(&rounds[0], &merged, 0.5),
        vec![
            "sextant flush rows/s (missing)".to_owned(),
            "sextant flush bytes/value (missing)".to_owned(),
            "sextant flush peak RSS MiB (missing)".to_owned(),
            "lastpoint p50 ms (sextant) (missing)".to_owned()
        ]
    );
    lacking[0].ingest.clear();
    lacking[2].ingest.clear();
    lacking[1].ingest = rounds[1].ingest.clone();
    assert!(median_of(&lacking).unwrap().ingest.is_empty());

    // Answers that differ in one round differ in the merge, with that round's mismatch.
    let mut differ = rounds.clone();
    differ[2].queries[0].agree = false;
    differ[2].queries[0].mismatch = Some("parquet's checksum differs".to_owned());
    differ[2].all_agree = false;
    let merged = median_of(&differ).unwrap();
    assert!(!merged.all_agree);
    assert_eq!(merged.disagreements(), vec!["lastpoint".to_owned()]);
    assert_eq!(
        merged.queries[0].mismatch.as_deref(),
        Some("parquet's checksum differs")
    );

    // Rounds of other workloads or settings, and no rounds, are refused.
    let mut other = rounds.clone();
    other[1].workload.name = "logs".to_owned();
    let err = median_of(&other).unwrap_err();
    assert!(err.contains("round 2 is of workload logs"), "{err}");
    let mut other = rounds.clone();
    other[2].settings.runs = 20;
    let err = median_of(&other).unwrap_err();
    assert!(err.contains("round 3 was run with other settings"), "{err}");
    assert!(median_of(&[]).is_err());
}

#[test]
fn thresholds_read_as_percentages() {
    assert_eq!(parse_threshold("5%"), Ok(0.05));
    assert_eq!(parse_threshold("2.5"), Ok(0.025));
    assert!(parse_threshold("-1%").is_err());
    assert!(parse_threshold("five").unwrap_err().contains("five"));
}
