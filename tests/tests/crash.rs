//! Crash test: a child process writes with `Durability::Always` and is killed with SIGKILL
//! at a random moment, again and again, in the same database.
//!
//! The test binary runs itself as the child (`crash_child`, which does nothing unless
//! `SEXTANT_CRASH_CHILD` names a database directory). The child writes numbered writes,
//! each one `write_points` call holding rows of a metric table and an event table computed
//! from its number, and prints `ack <n>` once the call has returned `Ok`. After each kill
//! the parent reopens the database and checks that it holds exactly the rows of the
//! writes acknowledged so far, plus possibly (whole, never in part) the one write that
//! was under way: every acknowledged write is there, no row was invented, the metric table
//! keeps the last write of each series and time, and a write is all or nothing. The next
//! child goes on in the same directory, so that it recovers from the crash too. The child
//! flushes often and compacts (in the background after every other flush, and on request
//! now and then), so that kills also land in the middle of merges and manifest updates.
//!
//! `SEXTANT_CRASH_CYCLES` sets the number of kills (default 20); `SEXTANT_CRASH_SEED` the
//! seed of the kill delays (default fixed; the seed is printed).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sextant_engine::{Config, Durability, FieldValue, TableKind};
use sextant_tests::{Rng, RowSpec, diff, expected_rows, files_ending, scan_all};

const CHILD_ENV: &str = "SEXTANT_CRASH_CHILD";
const START_ENV: &str = "SEXTANT_CRASH_START";

/// The rows of write number `n`: 1 to 6 rows of metric table `cpu` over 64 (series, time)
/// slots, so that later writes replace earlier rows, and 1 to 3 rows of event table `log`.
fn crash_write(n: u64) -> Vec<RowSpec> {
    let mut rows = Vec::new();
    for i in 0..1 + n % 6 {
        let slot = (n * 3 + i) % 64;
        rows.push(RowSpec {
            table: "cpu".into(),
            kind: TableKind::Metric,
            time: (slot / 4 * 1000) as i64,
            level: None,
            tags: vec![("host".into(), format!("h{}", slot % 4))],
            fields: vec![
                ("v".into(), FieldValue::F64(n as f64 + i as f64 / 10.0)),
                ("w".into(), FieldValue::I64(n as i64)),
            ],
        });
    }
    for i in 0..1 + n % 3 {
        rows.push(RowSpec {
            table: "log".into(),
            kind: TableKind::Event,
            time: (n * 1000 + i) as i64,
            level: None,
            tags: vec![("host".into(), format!("h{}", n % 7))],
            fields: vec![
                ("w".into(), FieldValue::I64(n as i64)),
                ("i".into(), FieldValue::I64(i as i64)),
                (
                    "msg".into(),
                    FieldValue::Str(format!("write {n} row {i} {}", "x".repeat(200))),
                ),
            ],
        });
    }
    rows
}

/// The child: writes from `SEXTANT_CRASH_START` on until killed (or for 20 s at most, in
/// case the parent is gone). Returns at once when not run as a child.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let engine = Config::new(&dir)
        .durability(Durability::Always)
        .flush_bytes(256 << 10)
        // Merge every two adjacent flushes, so that kills land in compactions too.
        .compaction_fanout(2)
        .open()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = std::io::stdout().lock();
    for n in start.. {
        if Instant::now() > deadline {
            break;
        }
        let points: Vec<_> = crash_write(n).iter().map(RowSpec::point).collect();
        engine.write_points(&points).unwrap();
        writeln!(out, "ack {n}").unwrap();
        out.flush().unwrap();
        if n % 41 == 40 {
            engine.flush().unwrap();
        }
        if n % 97 == 96 {
            engine.compact("cpu").unwrap();
        }
    }
}

/// A running child, killed when dropped (so that a failing parent leaves none behind).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &Path, start: u64) -> Running {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir)
        .env(START_ENV, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running(child)
}

/// Reads a pipe to its end in a thread (so that the child never blocks on a full pipe).
fn drain(pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut r = BufReader::new(pipe);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            text.push_str(&line);
            line.clear();
        }
        text
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn acknowledged_writes_survive_sigkill_and_each_write_is_all_or_nothing() {
    use std::os::unix::process::ExitStatusExt;

    let cycles: usize = env_or("SEXTANT_CRASH_CYCLES", 20);
    let seed: u64 = env_or("SEXTANT_CRASH_SEED", 0xc7a5_4001);
    eprintln!("crash test: {cycles} cycles, SEXTANT_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    // Writes known to be in the database (acknowledged, or found whole after a crash);
    // the others before `next` are known to be absent, for good.
    let mut present: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let (mut acked_total, mut in_flight_kept, mut torn_seen, mut tmp_removed) = (0, 0, 0, 0);

    for cycle in 0..cycles {
        let mut child = spawn_child(&dir, next);
        let stdout = drain(child.0.stdout.take().unwrap());
        let stderr = drain(child.0.stderr.take().unwrap());
        std::thread::sleep(Duration::from_millis(rng.range(5, 300)));
        child.0.kill().unwrap();
        let status = child.0.wait().unwrap();
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        assert!(
            status.signal() == Some(9) || status.success(),
            "cycle {cycle}: the child failed ({status}):\n{stderr}"
        );

        // Acknowledged writes: complete `ack <n>` lines, numbered on from `next` (the
        // first may follow the harness's `test crash_child ... ` on the same line).
        let acks: Vec<u64> = stdout
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .filter_map(|l| l.split("ack ").nth(1))
            .map(|n| n.trim().parse().unwrap())
            .collect();
        let want: Vec<u64> = (next..next + acks.len() as u64).collect();
        assert_eq!(acks, want, "cycle {cycle}: acknowledgements out of order");
        acked_total += acks.len();
        present.extend(&acks);
        // The write under way when the child died, if it had begun.
        let in_flight = next + acks.len() as u64;

        // Alternate between a read-only (salvage) check, which leaves the recovery to the
        // next child, and a normal open, which repairs and, on close, flushes.
        let salvage = rng.range(0, 3) != 0;
        let engine = Config::new(&dir)
            .salvage(salvage)
            .background_flush(false)
            .open()
            .unwrap_or_else(|e| panic!("cycle {cycle}: reopening failed: {e}"));
        let report = engine.recovery_report();
        assert!(report.damaged.is_empty(), "cycle {cycle}: {report:?}");
        assert!(
            report.wal_records_replayed <= in_flight + 1,
            "cycle {cycle}: more records replayed than written: {report:?}"
        );
        if salvage {
            assert_eq!(report.temp_files_removed, 0, "salvage removes nothing");
        }
        tmp_removed += report.temp_files_removed;
        if let Some(t) = &report.torn_tail {
            // Only the last record can be torn, and an acknowledged one never is: it was
            // complete before the acknowledgement.
            assert!(t.path.starts_with(dir.join("wal")), "cycle {cycle}: {t:?}");
            assert!(t.records_dropped <= 1, "cycle {cycle}: {t:?}");
            torn_seen += 1;
        }
        let torn_record = report
            .torn_tail
            .as_ref()
            .is_some_and(|t| t.records_dropped == 1);

        let data = scan_all(&engine).unwrap_or_else(|e| panic!("cycle {cycle}: scan: {e}"));
        let writes = |with: Option<u64>| -> Vec<Vec<RowSpec>> {
            present
                .iter()
                .chain(&with)
                .map(|&n| crash_write(n))
                .collect()
        };
        let without = expected_rows(writes(None).iter().map(Vec::as_slice));
        let with = expected_rows(writes(Some(in_flight)).iter().map(Vec::as_slice));
        if data == with && data != without {
            assert!(
                !torn_record,
                "cycle {cycle}: write {in_flight} is whole although its record was reported torn: {:?}",
                report.torn_tail
            );
            present.push(in_flight);
            in_flight_kept += 1;
        } else {
            assert!(
                data == without,
                "cycle {cycle}: the rows are neither those of writes {}..{in_flight} acknowledged so far ({}) nor those and write {in_flight} ({}); report {report:?}",
                present.first().copied().unwrap_or(0),
                diff(&data, &without),
                diff(&data, &with),
            );
        }
        if salvage {
            drop(engine);
        } else {
            engine
                .close()
                .unwrap_or_else(|e| panic!("cycle {cycle}: close: {e}"));
        }
        next = in_flight + 1;
    }

    let segments = files_ending(&dir, ".seg").len();
    eprintln!(
        "crash test: {cycles} kills, {acked_total} writes acknowledged, {in_flight_kept} unacknowledged writes found whole, {torn_seen} torn tails, {tmp_removed} temporary segments removed, {segments} segments"
    );
    // The run exercised what it claims: writes were acknowledged and (over enough cycles,
    // by explicit flushes and the closes of normal opens) flushed into segments.
    assert!(acked_total > 0, "no write was acknowledged");
    assert!(cycles < 10 || segments > 0, "no segment was written");
}
