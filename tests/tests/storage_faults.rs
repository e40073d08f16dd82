//! Failed writes, `fsync`s and renames of segment and manifest files, during flushes and
//! compactions: whichever step fails, once or from then on, nothing acknowledged is lost
//! and nothing is duplicated, whether the process then dies (a copy of the directory is
//! opened) or goes on and closes.
//!
//! The WAL's own failures (which poison it) are tested in `durability.rs` and the engine's
//! WAL tests; here the hook fails only steps on files outside `wal/`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sextant_engine::{Config, Durability, Engine, Faults};
use sextant_tests::{Failures, copy_dir, scan_all, two_table_write};

const ROUNDS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Write,
    Sync,
    Rename,
}

/// Once armed (after the open), counts the steps of one kind on segment and manifest
/// files (and directories), and fails the `n`-th (and, if `from_then_on`, every later
/// one).
#[derive(Debug)]
struct FailNth {
    step: Step,
    n: usize,
    from_then_on: bool,
    armed: AtomicBool,
    seen: AtomicUsize,
}

impl FailNth {
    fn counting(step: Step) -> Arc<FailNth> {
        Arc::new(FailNth {
            step,
            n: usize::MAX,
            from_then_on: false,
            armed: AtomicBool::new(false),
            seen: AtomicUsize::new(0),
        })
    }

    fn on(&self, step: Step, path: &Path) -> std::io::Result<()> {
        let in_wal = path
            .components()
            .any(|c| c.as_os_str() == "wal" || c.as_os_str().to_string_lossy().ends_with(".wal"));
        if step != self.step || in_wal || !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let k = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if k == self.n || (self.from_then_on && k > self.n) {
            return Err(std::io::Error::other(format!(
                "injected failure of step {k}"
            )));
        }
        Ok(())
    }
}

impl Faults for FailNth {
    fn before_write(&self, path: &Path) -> std::io::Result<()> {
        self.on(Step::Write, path)
    }
    fn before_sync(&self, path: &Path) -> std::io::Result<()> {
        self.on(Step::Sync, path)
    }
    fn before_rename(&self, from: &Path) -> std::io::Result<()> {
        self.on(Step::Rename, from)
    }
}

/// Opens the database, then arms `faults`.
fn open(dir: &Path, faults: Option<Arc<FailNth>>) -> Engine {
    let mut config = Config::new(dir)
        .durability(Durability::Always)
        .background_flush(false)
        .background_compaction(false)
        .block_rows(16);
    if let Some(f) = &faults {
        config = config.faults(f.clone());
    }
    let e = config.open().unwrap();
    if let Some(f) = faults {
        f.armed.store(true, Ordering::SeqCst);
    }
    e
}

/// Runs the workload: writes, a flush every other round, a compaction of both tables
/// every sixth. Returns which writes were acknowledged; flush and compaction errors are
/// the injected failures and are ignored.
fn workload(e: &Engine) -> Vec<usize> {
    let mut acked = Vec::new();
    for i in 0..ROUNDS {
        if e.write_points(&two_table_write(i, 4)).is_ok() {
            acked.push(i);
        }
        if i % 2 == 1 {
            let _ = e.flush();
        }
        if i % 6 == 5 {
            let _ = e.compact("cpu");
            let _ = e.compact("logs");
        }
    }
    acked
}

/// What a database holding exactly the writes `acked` answers.
fn expected(acked: &[usize]) -> std::collections::BTreeMap<String, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), None);
    for &i in acked {
        e.write_points(&two_table_write(i, 4)).unwrap();
    }
    scan_all(&e).unwrap()
}

#[test]
fn failed_segment_and_manifest_steps_lose_and_duplicate_nothing() {
    let all: Vec<usize> = (0..ROUNDS).collect();
    let want_all = expected(&all);
    let mut failures = Failures::default();
    let mut cases = 0;
    for step in [Step::Write, Step::Sync, Step::Rename] {
        // How many such steps a run without failures takes.
        let count = {
            let dir = tempfile::tempdir().unwrap();
            let counter = FailNth::counting(step);
            let e = open(dir.path(), Some(counter.clone()));
            assert_eq!(workload(&e), all);
            drop(e);
            counter.seen.load(Ordering::SeqCst)
        };
        assert!(count >= 10, "{step:?}: only {count} steps");
        // Every rename and fsync; writes are many: about 40 spread over the run.
        let stride = if step == Step::Write {
            (count / 40).max(1)
        } else {
            1
        };
        for n in (1..=count).step_by(stride) {
            for from_then_on in [false, true] {
                cases += 1;
                let case = format!("{step:?} {n} of {count}, from then on: {from_then_on}");
                failures.check(case, run_case(step, n, from_then_on, &want_all));
            }
        }
    }
    failures.assert_none(cases);
}

fn run_case(
    step: Step,
    n: usize,
    from_then_on: bool,
    want_all: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("db");
    let faults = Arc::new(FailNth {
        step,
        n,
        from_then_on,
        armed: AtomicBool::new(false),
        seen: AtomicUsize::new(0),
    });
    let e = open(&dir, Some(faults));
    let acked = workload(&e);
    let want = if acked.len() == ROUNDS {
        want_all.clone()
    } else {
        expected(&acked)
    };
    // The process dies here: a copy of the directory as it is is opened.
    let killed = root.path().join("killed");
    copy_dir(&dir, &killed);
    let got = scan_all(&open(&killed, None)).map_err(|e| format!("after a kill: {e}"))?;
    if got != want {
        return Err(format!(
            "after a kill: {}",
            sextant_tests::diff(&got, &want)
        ));
    }
    // Or it goes on and closes (which may fail while the failures last).
    let _ = e.close();
    let got = scan_all(&open(&dir, None)).map_err(|e| format!("after close: {e}"))?;
    if got != want {
        return Err(format!("after close: {}", sextant_tests::diff(&got, &want)));
    }
    Ok(())
}
