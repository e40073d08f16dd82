//! tsink's answers to the TSBS devops queries equal Sextant's, for every query type tsink's
//! API can express, on a tiny cpu-only workload. Only with `--features tsink`.
#![cfg(feature = "tsink")]

use sextant_bench::measure::Answer;
use sextant_bench::peers::Unanswered;
use sextant_bench::peers::tsink::process::TsinkProcess;
use sextant_bench::peers::tsink::{LoadOptions, TsinkPeer};
use sextant_bench::queries::draw;
use sextant_bench::queries::{DEVOPS, DevopsKind, DevopsQuery, HOUR, MINUTE, Window};
use sextant_bench::workload::cpu::{self, CpuBatch, CpuConfig, CpuGenerator};
use sextant_engine::{Config, TableKind};
use sextant_query::{Database, QueryOptions};

/// A Sextant database in `dir` holding the workload of `config`, and its rows.
fn load_sextant(config: &CpuConfig, dir: &std::path::Path) -> (Database, u64) {
    let options = QueryOptions {
        target_partitions: 2,
        ..QueryOptions::default()
    };
    let db = Database::open_with(Config::new(dir), options).unwrap();
    let mut generator = CpuGenerator::new(config.clone()).unwrap();
    let hosts = generator.hosts().to_vec();
    let mut batch = CpuBatch::default();
    let mut rows = 0;
    while generator.fill(&mut batch, 10_000) > 0 {
        let record = batch.to_record_batch(&hosts).unwrap();
        db.write_arrow(cpu::TABLE, TableKind::Metric, &record)
            .unwrap();
        rows += batch.len() as u64;
    }
    db.flush().unwrap();
    (db, rows)
}

/// The query types tsink cannot express (see `peers::tsink`).
const NOT_AVAILABLE: [&str; 2] = ["high-cpu-1", "high-cpu-all"];

#[test]
fn tsink_answers_equal_sextants_for_every_expressible_query() {
    // 12 hosts (host_10 and host_11 sort before host_2) for 18 hours: room for the
    // 12-hour windows.
    let config = CpuConfig::new(12, 0.75).with_seed(4);
    let dir = tempfile::tempdir().unwrap();
    let (db, rows) = load_sextant(&config, &dir.path().join("sextant"));
    let (peer, load) = TsinkPeer::load(
        &config,
        &dir.path().join("tsink"),
        &LoadOptions {
            batch_rows: 1000,
            durability: sextant_engine::Durability::Interval(std::time::Duration::from_secs(1)),
            progress: false,
        },
    )
    .unwrap();
    assert_eq!(load.rows, rows);
    assert_eq!(load.points, rows * 10);
    assert!(load.bytes > 0);

    let mut compared = Vec::new();
    for (index, (name, _)) in DEVOPS.iter().enumerate() {
        for seed in [1, 2] {
            let query = draw(index, seed, &config);
            let expected = Answer::new(&db.sql(&query.sql()).unwrap(), query.is_ordered()).unwrap();
            match peer.answer(&query) {
                Ok(got) => {
                    assert!(!NOT_AVAILABLE.contains(name), "{name} was answered");
                    assert!(expected.rows() > 0, "{name}: an empty answer proves little");
                    assert_eq!(
                        got.first_difference(&expected),
                        None,
                        "{name} (seed {seed}): {}",
                        query.sql()
                    );
                    assert_eq!(got.checksum, expected.checksum);
                    compared.push(*name);
                }
                Err(Unanswered::NotAvailable(reason)) => {
                    assert!(NOT_AVAILABLE.contains(name), "{name}: {reason}");
                }
                Err(Unanswered::Failed(e)) => panic!("{name}: tsink failed: {e}"),
            }
        }
    }
    compared.dedup();
    assert_eq!(compared.len(), DEVOPS.len() - NOT_AVAILABLE.len());

    // The newest-first windows widen: groupby-orderby-limit ending 3 minutes into the data
    // (fewer than 5 minutes exist) and 2 hours past its end (the first window is empty),
    // lastpoint with an end 2 hours past the data's.
    let (start, end) = (config.start_ns, config.end_ns);
    let cases = [
        (DevopsKind::GroupbyOrderbyLimit, start + 3 * MINUTE, 3),
        (DevopsKind::GroupbyOrderbyLimit, end + 2 * HOUR, 5),
        (DevopsKind::Lastpoint, end + 2 * HOUR, 12),
    ];
    for (kind, query_end, rows) in cases {
        let query = DevopsQuery {
            kind,
            hosts: Vec::new(),
            window: Window::new(start, query_end),
        };
        let expected = Answer::new(&db.sql(&query.sql()).unwrap(), query.is_ordered()).unwrap();
        assert_eq!(expected.rows(), rows, "{}", query.sql());
        let got = peer.answer(&query).unwrap();
        assert_eq!(got.first_difference(&expected), None, "{}", query.sql());
    }
}

#[test]
fn tsink_in_a_process_of_its_own_answers_as_in_this_one() {
    let config = CpuConfig::new(6, 0.75).with_seed(5);
    let dir = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        batch_rows: 1000,
        durability: sextant_engine::Durability::Never,
        progress: false,
    };
    let (here, loaded_here) = TsinkPeer::load(&config, &dir.path().join("here"), &options).unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_sextant-bench"));
    let (process, loaded) =
        TsinkProcess::load(exe, &config, &dir.path().join("process"), &options).unwrap();
    assert_eq!(loaded.rows, loaded_here.rows);
    assert_eq!(loaded.points, loaded_here.points);
    assert!(loaded.bytes > 0);

    for (index, (name, _)) in DEVOPS.iter().enumerate() {
        let query = draw(index, 3, &config);
        match here.batch(&query) {
            Ok(expected) => {
                let (got, _took) = process.batch(&query).unwrap();
                let (got, expected) = (
                    Answer::new(&[got], query.is_ordered()).unwrap(),
                    Answer::new(&[expected], query.is_ordered()).unwrap(),
                );
                assert_eq!(got.first_difference(&expected), None, "{name}");
                assert_eq!(got.checksum, expected.checksum, "{name}");
            }
            Err(Unanswered::NotAvailable(reason)) => {
                // The process refuses it with the same reason, and keeps answering.
                let e = process.batch(&query).unwrap_err().to_string();
                assert!(e.contains(reason), "{name}: {e}");
            }
            Err(Unanswered::Failed(e)) => panic!("{name}: tsink failed: {e}"),
        }
    }
}

#[test]
fn a_tsink_process_that_cannot_start_or_exits_at_once_is_an_error() {
    let config = CpuConfig::new(2, 0.01);
    let dir = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        batch_rows: 100,
        durability: sextant_engine::Durability::Never,
        progress: false,
    };
    let missing = dir.path().join("no-such-binary");
    let e = TsinkProcess::load(&missing, &config, &dir.path().join("a"), &options).unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
    // A binary that is not the bench's: it does not speak the protocol.
    let e = TsinkProcess::load(
        std::path::Path::new("/bin/true"),
        &config,
        &dir.path().join("b"),
        &options,
    )
    .unwrap_err();
    // It exits at once: the hello is either not sent or not answered.
    let e = e.to_string();
    assert!(e.contains("tsink's process") && e.contains("failed"), "{e}");
    // A load that fails in tsink's process (its directory cannot be made: a file is in
    // the way) is an error with tsink's reason.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_sextant-bench"));
    let e = TsinkProcess::load(exe, &config, &blocked.join("tsink"), &options).unwrap_err();
    assert!(
        e.to_string().contains("`load` failed in tsink's process"),
        "{e}"
    );
}
