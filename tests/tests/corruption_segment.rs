//! Damaged segment files: bit flips, truncations, zeroed pages, appended garbage, foreign,
//! empty and newer-version files, a segment of another table, a leftover temporary file,
//! in every segment of a small database (two segments per table, more rows in the WAL).
//!
//! For every damaged copy, opening and scanning every column of every table must give
//! either exactly the rows written or an [`Error::Corrupt`] / [`Error::UnsupportedVersion`]
//! naming the damaged file (at open, or when the damaged block is scanned); never a
//! panic, a row that was not written, or a missing row.
//!
//! The number of sampled positions per large file is `SEXTANT_CORRUPTION_SAMPLES`
//! (default 96); files up to 400 bytes are damaged at every byte.

use std::path::{Path, PathBuf};

use sextant_engine::segment::format;
use sextant_engine::{Config, Error, Point};
use sextant_tests::{
    Failures, Fixture, Outcome, Rng, build_fixture, check_names_file, copy_dir, diff, files_ending,
    open_and_scan, rewrite, scan_all,
};
use tempfile::TempDir;

/// A pristine copy of the fixture, and a scratch area for damaged copies.
struct Setup {
    root: TempDir,
    pristine: PathBuf,
    fx: Fixture,
    /// The segment files, relative to the database directory, with their bytes.
    segs: Vec<(PathBuf, Vec<u8>)>,
}

fn scratch() -> TempDir {
    // Damaged copies are many and short-lived: keep them in memory where possible.
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("sextant-segment-corruption-");
    if shm.is_dir() {
        builder.tempdir_in(shm).unwrap()
    } else {
        builder.tempdir().unwrap()
    }
}

fn samples() -> usize {
    std::env::var("SEXTANT_CORRUPTION_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(96)
}

/// Files up to this size are damaged at every byte position.
const SMALL: usize = 400;

fn setup() -> Setup {
    let root = scratch();
    let built = root.path().join("built");
    let fx = build_fixture(&built);
    let pristine = root.path().join("pristine");
    copy_dir(&built, &pristine);
    let segs: Vec<(PathBuf, Vec<u8>)> = files_ending(&pristine, ".seg")
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.strip_prefix(&pristine).unwrap().to_path_buf(), bytes)
        })
        .collect();
    // Two segments for each of the three tables, one of them spanning several pages.
    assert_eq!(segs.len(), 6, "{segs:?}");
    assert!(segs.iter().any(|(_, b)| b.len() > 8192));
    Setup {
        root,
        pristine,
        fx,
        segs,
    }
}

impl Setup {
    /// Copies the pristine database, damages the copy, and hands it to `check`.
    fn run_with<T>(
        &self,
        case: &str,
        damage: impl FnOnce(&Path),
        check: impl FnOnce(&Path) -> T,
    ) -> T {
        let dir = self.root.path().join(case);
        copy_dir(&self.pristine, &dir);
        damage(&dir);
        let out = check(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    /// Copies the pristine database, damages the copy, opens and scans it.
    fn run(&self, case: &str, damage: impl FnOnce(&Path)) -> Outcome {
        self.run_with(case, damage, |dir| open_and_scan(dir, false))
    }

    /// Judges the outcome of damaging segment `target`. With `must_fail`, the damage must
    /// be reported as an error; otherwise the exact rows are also right.
    fn judge(&self, target: &Path, must_fail: bool, outcome: &Outcome) -> Result<(), String> {
        match outcome {
            Outcome::Panicked(m) => Err(format!("panicked: {m}")),
            Outcome::Failed(e) => check_names_file(e, target),
            Outcome::Opened {
                torn_tail,
                damaged,
                data,
            } => {
                if torn_tail.is_some() || !damaged.is_empty() {
                    return Err(format!(
                        "the intact WAL was reported damaged: {torn_tail:?} {damaged:?}"
                    ));
                }
                match data {
                    Err(e) => check_names_file(e, target),
                    Ok(_) if must_fail => Err("the damage went unnoticed".into()),
                    Ok(data) => {
                        let want = self.fx.expected(|_| true);
                        if *data == want {
                            Ok(())
                        } else {
                            Err(format!("wrong rows: {}", diff(data, &want)))
                        }
                    }
                }
            }
        }
    }
}

/// Every position of a small file; for a larger one its header, its trailer and the 40
/// bytes before it, and a seeded sample.
fn positions(len: usize, rng: &mut Rng) -> Vec<usize> {
    if len <= SMALL {
        return (0..len).collect();
    }
    let mut out: Vec<usize> = (0..16).chain(len - 80..len).collect();
    for _ in 0..samples() {
        out.push(rng.range(0, len as u64) as usize);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn segment_bit_flip_is_detected_or_harmless() {
    let s = setup();
    let mut rng = Rng::new(0x5e9_0001);
    let mut failures = Failures::default();
    let mut cases = 0;
    let mut harmless = Vec::new();
    for (rel, bytes) in &s.segs {
        for pos in positions(bytes.len(), &mut rng) {
            let bit = rng.range(0, 8);
            let outcome = s.run("flip", |dir| {
                rewrite(&dir.join(rel), |b| b[pos] ^= 1 << bit);
            });
            if matches!(&outcome, Outcome::Opened { data: Ok(_), .. }) {
                harmless.push(format!("{}:{pos}", rel.display()));
            }
            cases += 1;
            failures.check(
                format!("{} byte {pos} bit {bit}", rel.display()),
                s.judge(rel, false, &outcome),
            );
        }
    }
    eprintln!(
        "{cases} bit flips, {} harmless (unchecked bytes): {harmless:?}",
        harmless.len()
    );
    failures.assert_none(cases);
}

#[test]
fn segment_truncation_is_detected() {
    let s = setup();
    let mut rng = Rng::new(0x5e9_0002);
    let mut failures = Failures::default();
    let mut cases = 0;
    for (rel, bytes) in &s.segs {
        let len = bytes.len();
        let lens: Vec<usize> = if len <= SMALL {
            (0..len).collect()
        } else {
            let mut l: Vec<usize> = (0..64).chain(len - 64..len).collect();
            l.extend((0..samples()).map(|_| rng.range(0, len as u64) as usize));
            l.sort_unstable();
            l.dedup();
            l
        };
        for l in lens {
            let outcome = s.run("cut", |dir| rewrite(&dir.join(rel), |b| b.truncate(l)));
            cases += 1;
            failures.check(
                format!("{} cut to {l} bytes", rel.display()),
                s.judge(rel, true, &outcome),
            );
        }
    }
    failures.assert_none(cases);
}

#[test]
fn segment_zeroed_page_is_detected() {
    let s = setup();
    let mut failures = Failures::default();
    let mut cases = 0;
    for (rel, bytes) in &s.segs {
        let len = bytes.len();
        // The page holding the middle of the file, and the last 4 KiB (the whole file,
        // for one smaller than a page).
        let middle = (len / 2) / 4096 * 4096;
        let end = len.saturating_sub(4096);
        for (where_, start) in [("middle", middle), ("end", end)] {
            let outcome = s.run("zero", |dir| {
                rewrite(&dir.join(rel), |b| {
                    let stop = (start + 4096).min(b.len());
                    b[start..stop].fill(0);
                });
            });
            cases += 1;
            failures.check(
                format!("{} zeroed page at {start} ({where_})", rel.display()),
                s.judge(rel, true, &outcome),
            );
        }
    }
    failures.assert_none(cases);
}

#[test]
fn segment_appended_garbage_is_detected() {
    let s = setup();
    let mut rng = Rng::new(0x5e9_0004);
    let mut failures = Failures::default();
    let mut cases = 0;
    for (rel, _) in &s.segs {
        for n in [1usize, 8, 40, 100, 5000] {
            for zeros in [false, true] {
                let garbage = if zeros { vec![0; n] } else { rng.bytes(n) };
                let outcome = s.run("append", |dir| {
                    rewrite(&dir.join(rel), |b| b.extend_from_slice(&garbage));
                });
                cases += 1;
                failures.check(
                    format!("{} + {n} bytes (zeros: {zeros})", rel.display()),
                    s.judge(rel, true, &outcome),
                );
            }
        }
    }
    failures.assert_none(cases);
}

#[test]
fn segment_foreign_file_is_rejected_naming_it() {
    let s = setup();
    let mut rng = Rng::new(0x5e9_0005);
    let mut failures = Failures::default();
    let mut cases = 0;
    for (rel, bytes) in &s.segs {
        let junk = rng.bytes(bytes.len());
        let outcome = s.run("foreign", |dir| {
            std::fs::write(dir.join(rel), &junk).unwrap()
        });
        cases += 1;
        failures.check(
            format!("{} replaced by random bytes", rel.display()),
            s.judge(rel, true, &outcome),
        );
    }
    failures.assert_none(cases);
}

#[test]
fn segment_files_the_manifest_does_not_list_are_removed_as_leftovers() {
    // Random bytes with a segment's name next to the real segments, in a table directory
    // of their own, and a real segment copied under a new name into another table: none
    // is listed in the manifest, so each is a crash's leftover, removed on open, and every
    // row written is there.
    let s = setup();
    let mut rng = Rng::new(0x5e9_0006);
    let mut failures = Failures::default();
    let mut cases = 0;
    let (first, _) = &s.segs[0];
    let copies = [
        ("tables/cpu/00000000000000000099.seg", None),
        ("tables/ghost/00000000000000000001.seg", None),
        ("tables/disk/00000000000000000098.seg", Some(first)),
        ("tables/logs/00000000000000000097.seg", Some(first)),
    ];
    for (rel, source) in copies {
        let rel = Path::new(rel);
        let junk = rng.bytes(2000);
        let (outcome, left) = s.run_with(
            "unlisted",
            |dir| {
                std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
                match source {
                    Some(src) => drop(std::fs::copy(dir.join(src), dir.join(rel)).unwrap()),
                    None => std::fs::write(dir.join(rel), &junk).unwrap(),
                }
            },
            |dir| (open_and_scan(dir, false), dir.join(rel).exists()),
        );
        cases += 1;
        let verdict = s.judge(rel, false, &outcome).and_then(|()| {
            if left {
                Err("the unlisted file was left in place".into())
            } else {
                Ok(())
            }
        });
        failures.check(format!("unlisted file {}", rel.display()), verdict);
    }
    failures.assert_none(cases);
}

#[test]
fn segment_deleted_is_an_error_naming_it_and_salvage_opens_the_rest() {
    let s = setup();
    let mut failures = Failures::default();
    for (rel, _) in &s.segs {
        let outcome = s.run("deleted", |dir| {
            std::fs::remove_file(dir.join(rel)).unwrap()
        });
        let verdict = match &outcome {
            Outcome::Failed(e @ Error::Missing { path, .. }) => {
                if path.file_name() == rel.file_name() && e.to_string().contains("MANIFEST") {
                    Ok(())
                } else {
                    Err(format!("the error names another file: {e}"))
                }
            }
            Outcome::Failed(e) => Err(format!("not a missing-file error: {e}")),
            Outcome::Panicked(m) => Err(format!("panicked: {m}")),
            Outcome::Opened { .. } => Err("opened without the segment".into()),
        };
        failures.check(format!("{} deleted", rel.display()), verdict);
        let salvaged = s.run_with(
            "deleted-salvage",
            |dir| std::fs::remove_file(dir.join(rel)).unwrap(),
            |dir| open_and_scan(dir, true),
        );
        let verdict = match &salvaged {
            Outcome::Opened { damaged, data, .. } if data.is_ok() => {
                if damaged.iter().any(|d| d.contains("is missing")) {
                    Ok(())
                } else {
                    Err(format!(
                        "salvage did not report the missing file: {damaged:?}"
                    ))
                }
            }
            other => Err(format!("salvage did not open: {other:?}")),
        };
        failures.check(format!("{} deleted, salvage", rel.display()), verdict);
    }
    failures.assert_none(s.segs.len() * 2);
}

#[test]
fn segment_replaced_by_another_valid_segment_is_rejected_naming_it() {
    // A valid segment put in the place of another, of the same table or another one: the
    // manifest lists a different file (length, footer checksum, sequence numbers), and
    // the open must say which file is not the one it wrote.
    let s = setup();
    let mut failures = Failures::default();
    let mut cases = 0;
    for (rel, bytes) in &s.segs {
        for (target, target_bytes) in &s.segs {
            if target == rel || target_bytes == bytes {
                continue;
            }
            let outcome = s.run("replaced", |dir| {
                std::fs::copy(dir.join(rel), dir.join(target)).unwrap();
            });
            cases += 1;
            failures.check(
                format!("{} copied over {}", rel.display(), target.display()),
                s.judge(target, true, &outcome),
            );
        }
    }
    failures.assert_none(cases);
}

#[test]
fn segment_empty_file_is_rejected_naming_it() {
    let s = setup();
    let mut failures = Failures::default();
    for (rel, _) in &s.segs {
        let outcome = s.run("empty", |dir| std::fs::write(dir.join(rel), b"").unwrap());
        failures.check(
            format!("{} emptied", rel.display()),
            s.judge(rel, true, &outcome),
        );
    }
    failures.assert_none(s.segs.len());
}

#[test]
fn segment_newer_format_version_is_unsupported() {
    const NEWER: u32 = format::VERSION + 1;
    let s = setup();
    let mut failures = Failures::default();
    let mut cases = 0;
    for (rel, bytes) in &s.segs {
        // The version in the header, and the one in the trailer (40 bytes from the end:
        // 28 bytes in).
        for at in [8, bytes.len() - 12] {
            let outcome = s.run("version", |dir| {
                rewrite(&dir.join(rel), |b| {
                    b[at..at + 4].copy_from_slice(&NEWER.to_le_bytes())
                });
            });
            let result = match &outcome {
                Outcome::Failed(
                    e @ Error::UnsupportedVersion {
                        found: NEWER,
                        supported: format::VERSION,
                        ..
                    },
                ) => check_names_file(e, rel),
                other => Err(format!("expected UnsupportedVersion, got {other:?}")),
            };
            cases += 1;
            failures.check(
                format!("{} version {NEWER} at byte {at}", rel.display()),
                result,
            );
        }
    }
    failures.assert_none(cases);
}

#[test]
fn segment_leftover_temp_file_is_removed_and_reported() {
    let s = setup();
    let tmp = Path::new("tables/logs/00000000000000000099.seg.tmp");
    let (removed, gone, data) = s.run_with(
        "tmp",
        |dir| std::fs::write(dir.join(tmp), b"SXTSEG\0\0half a segment").unwrap(),
        |dir| {
            let engine = Config::new(dir).background_flush(false).open().unwrap();
            let removed = engine.recovery_report().temp_files_removed;
            let gone = !dir.join(tmp).exists();
            (removed, gone, scan_all(&engine).unwrap())
        },
    );
    assert_eq!(removed, 1, "the report counts the removed temporary file");
    assert!(gone, "the temporary file is removed");
    let want = s.fx.expected(|_| true);
    assert!(data == want, "{}", diff(&data, &want));
}

#[test]
fn salvage_skips_a_damaged_segment_and_returns_the_rest() {
    let s = setup();
    // Damage the metadata checksum of the first segment of `logs`.
    let (rel, _) = s
        .segs
        .iter()
        .find(|(p, _)| p.starts_with("tables/logs"))
        .unwrap();
    let damage = |dir: &Path| rewrite(&dir.join(rel), |b| *b.last_mut().unwrap() ^= 1);

    let normal = s.run("salvage-normal", damage);
    assert!(
        matches!(&normal, Outcome::Failed(e) if check_names_file(e, rel).is_ok()),
        "without salvage the damage is an error naming the file: {normal:?}"
    );

    let (outcome, write) = s.run_with("salvage", damage, |dir| {
        let outcome = open_and_scan(dir, true);
        let engine = Config::new(dir).salvage(true).open().unwrap();
        let write = engine.write_points(&[Point::metric("cpu").field("usage", 1.0).time(1)]);
        (outcome, write)
    });
    assert!(
        matches!(write, Err(Error::ReadOnly(_))),
        "a write in salvage mode: {write:?}"
    );
    let Outcome::Opened {
        torn_tail,
        damaged,
        data,
    } = outcome
    else {
        panic!("salvage mode did not open: {outcome:?}");
    };
    assert!(torn_tail.is_none(), "{torn_tail:?}");
    assert_eq!(damaged.len(), 1, "one damaged file reported: {damaged:?}");
    let name = rel.file_name().unwrap().to_string_lossy();
    assert!(damaged[0].contains(&*name), "{damaged:?} names {name}");
    // Everything but the rows of `logs` in that segment (its first flush).
    let data = data.expect("salvaged data scans");
    let want =
        s.fx.expected_rows(|j, r| !(r.table == "logs" && j < s.fx.first_flush));
    assert!(data == want, "salvaged rows: {}", diff(&data, &want));
}

#[test]
fn salvage_checks_every_block_at_open_and_skips_a_damaged_segment() {
    let s = setup();
    let (rel, _) = s
        .segs
        .iter()
        .find(|(p, _)| p.starts_with("tables/logs"))
        .unwrap();
    // Byte 16 is the first byte of the first block: outside salvage its checksum is
    // checked on read; salvage checks every block when it opens.
    let (damaged, logs, cpu) = s.run_with(
        "salvage-block",
        |dir| rewrite(&dir.join(rel), |b| b[16] ^= 1),
        |dir| {
            let engine = Config::new(dir).salvage(true).open().unwrap();
            let snap = engine.snapshot();
            let scan =
                |t: &str| sextant_tests::scan_rows(&snap, &sextant_engine::ScanRequest::new(t));
            (
                engine.recovery_report().damaged.clone(),
                scan("logs"),
                scan("cpu"),
            )
        },
    );
    assert_eq!(
        damaged.len(),
        1,
        "the damaged segment is reported: {damaged:?}"
    );
    let name = rel.file_name().unwrap().to_string_lossy();
    assert!(damaged[0].contains(&*name), "{damaged:?} names {name}");
    assert!(damaged[0].contains("checksum"), "{damaged:?}");
    // Every row of `logs` but those of the skipped segment (its first flush).
    let logs = logs.expect("the rest of the table scans");
    let want =
        s.fx.expected_rows(|j, r| !(r.table == "logs" && j < s.fx.first_flush));
    assert_eq!(logs.len(), want["logs"].len());
    let cpu = cpu.expect("other tables read on");
    assert_eq!(cpu.len(), s.fx.expected(|_| true)["cpu"].len());
}
