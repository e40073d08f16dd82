//! Power cuts at every moment of a run of writes, deletes, flushes and compactions of two
//! tables: the directory as a power cut would leave it (only what was `fsync`ed, see
//! `tests/src/durable.rs`) opens and holds every acknowledged write and delete, the one in
//! flight whole or not at all, and nothing twice.
//!
//! `storage_faults.rs` and `crash.rs` open copies of the directory as the page cache holds
//! it, as after a kill of the process; this test drops what was only written.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sextant_engine::{Config, Delete, Durability, Engine};
use sextant_tests::durable::Durable;
use sextant_tests::{Failures, scan_all, two_table_write};

const SECOND: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
enum Op {
    Write(usize),
    /// Deletes host `h1`'s rows of the first `n` seconds.
    Delete(i64),
    Flush,
    Compact,
}

fn ops() -> Vec<Op> {
    let mut out = Vec::new();
    for i in 0..10 {
        out.push(Op::Write(i));
        if i % 2 == 1 {
            out.push(Op::Flush);
        }
        if i == 4 || i == 8 {
            out.push(Op::Delete(i as i64 * 10 - 5));
        }
        if i % 5 == 4 {
            out.push(Op::Compact);
        }
    }
    out
}

fn apply(e: &Engine, op: Op) {
    match op {
        Op::Write(i) => e.write_points(&two_table_write(i, 3)).unwrap(),
        Op::Delete(secs) => e
            .delete(
                "cpu",
                &Delete::all()
                    .time_range(0, secs * SECOND)
                    .tag_eq("host", "h1"),
            )
            .unwrap(),
        Op::Flush => e.flush().unwrap(),
        Op::Compact => {
            e.compact("cpu").unwrap();
            e.compact("logs").unwrap();
        }
    }
}

fn config(dir: &Path, background: bool) -> Config {
    Config::new(dir)
        .durability(Durability::Always)
        .background_flush(background)
        .background_compaction(background)
        .flush_bytes(if background { 4096 } else { 64 << 20 })
        // Background merges between the requested ones.
        .compaction_fanout(2)
        .block_rows(16)
        // A rotation every few writes.
        .wal_file_bytes(4096)
}

#[test]
fn a_power_cut_at_any_fsync_keeps_every_acknowledged_operation() {
    run(false);
}

/// The same, with the background flusher (flushing every few writes) and compactor
/// making their own fsyncs between and during the operations.
#[test]
fn a_power_cut_during_background_flushes_and_compactions_keeps_every_acknowledged_operation() {
    run(true);
}

fn run(background: bool) {
    let ops = ops();
    // What the database holds after each prefix of the operations.
    let states: Vec<BTreeMap<String, Vec<String>>> = {
        let dir = tempfile::tempdir().unwrap();
        let e = config(dir.path(), false).open().unwrap();
        let mut states = vec![scan_all(&e).unwrap()];
        for &op in &ops {
            apply(&e, op);
            states.push(scan_all(&e).unwrap());
        }
        states
    };

    // On the target directory's disk: the hook needs a file system with birth times.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if !Durable::birth_times_kept(root.path()) {
        eprintln!(
            "skipped: {} is on a file system without birth times, which the power-cut model needs",
            root.path().display()
        );
        return;
    }
    let db = root.path().join("db");
    let images = root.path().join("images");
    let hook = Arc::new(Durable::new(&db, &images));
    let e = config(&db, background).faults(hook.clone()).open().unwrap();
    hook.arm();
    // The label is twice the operations done, plus one while the next is in flight.
    for (k, &op) in ops.iter().enumerate() {
        hook.label.store(2 * k as u64 + 1, Ordering::SeqCst);
        apply(&e, op);
        hook.label.store(2 * (k as u64 + 1), Ordering::SeqCst);
    }
    if background {
        let work = e.compaction_stats();
        assert!(
            work.compactions > 2 * ops.iter().filter(|o| matches!(o, Op::Compact)).count() as u64,
            "no background merge: {work:?}"
        );
    }
    e.close().unwrap();
    hook.image_now();
    let taken = hook.images();
    assert!(taken.len() >= 50, "only {} images", taken.len());
    assert!(
        taken
            .iter()
            .any(|i| i.torn && i.before_syncing.extension().is_some_and(|x| x == "wal")),
        "no torn image before a WAL fsync"
    );
    let wal_files: std::collections::BTreeSet<_> = taken
        .iter()
        .filter(|i| i.before_syncing.extension().is_some_and(|x| x == "wal"))
        .map(|i| &i.before_syncing)
        .collect();
    assert!(wal_files.len() >= 3, "WAL files: {wal_files:?}");

    let mut failures = Failures::default();
    for image in &taken {
        let done = (image.label / 2) as usize;
        let in_flight = image.label % 2 == 1;
        let case = format!(
            "{}image {} (before syncing {}, {done} operations done{})",
            if image.torn { "torn " } else { "" },
            image.dir.display(),
            image.before_syncing.display(),
            if in_flight {
                format!(", {:?} in flight", ops[done])
            } else {
                String::new()
            }
        );
        let check = |e: &Engine, when: &str| -> Result<(), String> {
            let got = scan_all(e).map_err(|err| format!("{when}: {err}"))?;
            if got == states[done] || (in_flight && got == states[done + 1]) {
                Ok(())
            } else {
                Err(format!(
                    "{when}: {}",
                    sextant_tests::diff(&got, &states[done])
                ))
            }
        };
        let result = (|| {
            let e = config(&image.dir, false)
                .open()
                .map_err(|err| format!("opening: {err}"))?;
            check(&e, "after recovery")?;
            e.close().map_err(|err| format!("closing: {err}"))?;
            let e = config(&image.dir, false)
                .open()
                .map_err(|err| format!("reopening: {err}"))?;
            check(&e, "after reopening")
        })();
        failures.check(case, result);
    }
    failures.assert_none(taken.len());
}
