//! Damaged write-ahead log files: bit flips, truncations, zeroed pages, appended garbage,
//! foreign, empty and newer-version files, in every WAL file of a small database (rows in
//! segments, rows only in the WAL, several WAL files).
//!
//! For every damaged copy, opening and scanning every table must give either exactly the
//! rows written, less the writes whose records the recovery report says it cut off as a
//! torn tail, or an [`Error::Corrupt`] / [`Error::UnsupportedVersion`] naming the damaged
//! file; never a panic, a row that was not written, or a silently missing write.
//!
//! The number of sampled positions per file is `SEXTANT_CORRUPTION_SAMPLES` (default 96).

use std::path::{Path, PathBuf};

use sextant_engine::{Config, Error, Point};
use sextant_tests::{
    Failures, Fixture, Outcome, Rng, WalRecord, build_fixture, check_names_file, copy_dir, diff,
    files_ending, open_and_scan, open_and_scan_with, rewrite, wal_records,
};
use tempfile::TempDir;

/// A pristine copy of the fixture, and a scratch area for damaged copies.
struct Setup {
    root: TempDir,
    pristine: PathBuf,
    fx: Fixture,
    wal: Vec<WalFile>,
}

/// One WAL file of the pristine copy.
#[derive(Debug)]
struct WalFile {
    /// Path relative to the database directory.
    rel: PathBuf,
    bytes: Vec<u8>,
    records: Vec<WalRecord>,
    is_last: bool,
}

/// What a damage allows: which records may vanish without a report, and whether the
/// database must still open.
#[derive(Debug, Clone, Copy, Default)]
struct Allow {
    /// The damage is one a crash leaves (or harmless): the database must open.
    must_open: bool,
    /// Records of the damaged file at or past this offset may be missing without a torn
    /// tail being reported (a truncation exactly at a record boundary of the last file,
    /// which no log without a commit record can tell from fewer writes).
    silently_lost_from: Option<u64>,
    /// The damage must be noticed: an error, or a torn tail reported.
    must_notice: bool,
}

fn scratch() -> TempDir {
    // Damaged copies are many and short-lived: keep them in memory where possible.
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("sextant-wal-corruption-");
        b
    };
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

fn setup() -> Setup {
    let root = scratch();
    let built = root.path().join("built");
    let fx = build_fixture(&built);
    let pristine = root.path().join("pristine");
    copy_dir(&built, &pristine);
    let files = files_ending(&pristine.join("wal"), ".wal");
    let n = files.len();
    let wal: Vec<WalFile> = files
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let bytes = std::fs::read(&path).unwrap();
            let records = wal_records(&bytes);
            let rel = path.strip_prefix(&pristine).unwrap().to_path_buf();
            WalFile {
                rel,
                records,
                bytes,
                is_last: i + 1 == n,
            }
        })
        .collect();
    // The fixture must exercise what the tests claim: several files, flushed records
    // still in the first file, and unflushed ones in every file.
    assert!(wal.len() >= 3, "the fixture has {} WAL files", wal.len());
    for f in &wal {
        let parsed: u64 = f.records.last().map_or(16, |r| r.end);
        assert_eq!(parsed, f.bytes.len() as u64, "{:?} parses whole", f.rel);
        assert!(!f.records.is_empty(), "{:?} holds records", f.rel);
    }
    let seqs: Vec<u64> = wal
        .iter()
        .flat_map(|f| f.records.iter().map(|r| r.seq))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs are consecutive"
    );
    assert!(
        seqs[0] <= fx.flushed as u64,
        "the first WAL file holds flushed records"
    );
    assert_eq!(*seqs.last().unwrap(), fx.writes.len() as u64);
    Setup {
        root,
        pristine,
        fx,
        wal,
    }
}

impl Setup {
    /// Copies the pristine database, damages the copy, opens and scans it.
    fn run(&self, case: &str, damage: impl FnOnce(&Path)) -> Outcome {
        self.run_with(case, damage, |dir| open_and_scan(dir, false))
    }

    fn run_with<T>(
        &self,
        case: &str,
        damage: impl FnOnce(&Path),
        check: impl FnOnce(&Path) -> T,
    ) -> T {
        let dir = self.root.path().join(case.replace(['/', ' '], "_"));
        copy_dir(&self.pristine, &dir);
        damage(&dir);
        let out = check(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    /// Every row written, less the unflushed writes whose records in WAL file `file` lie
    /// at or past `lost_from`.
    fn expected_without(
        &self,
        file: usize,
        lost_from: Option<u64>,
    ) -> std::collections::BTreeMap<String, Vec<String>> {
        let lost: Vec<u64> = match lost_from {
            None => Vec::new(),
            Some(from) => self.wal[file]
                .records
                .iter()
                .filter(|r| r.offset >= from)
                .map(|r| r.seq)
                .collect(),
        };
        self.fx
            .expected(|j| j < self.fx.flushed || !lost.contains(&(j as u64 + 1)))
    }

    /// Judges the outcome of damaging WAL file `file`.
    fn judge(&self, file: usize, allow: Allow, outcome: &Outcome) -> Result<(), String> {
        let target = &self.wal[file].rel;
        match outcome {
            Outcome::Panicked(m) => Err(format!("panicked: {m}")),
            Outcome::Failed(e) if allow.must_open => Err(format!("the open failed: {e}")),
            Outcome::Failed(e) => check_names_file(e, target),
            Outcome::Opened {
                torn_tail,
                damaged,
                data,
            } => {
                if !damaged.is_empty() {
                    return Err(format!("damage reported outside salvage mode: {damaged:?}"));
                }
                let data = data.as_ref().map_err(|e| format!("a scan failed: {e}"))?;
                let mut lost_from = allow.silently_lost_from;
                if let Some(t) = torn_tail {
                    // Only the last file is written unsynced: a torn tail anywhere else
                    // would cut records that a crash cannot have damaged.
                    if t.path.file_name() != target.file_name() || !self.wal[file].is_last {
                        return Err(format!("a torn tail outside the last file: {t:?}"));
                    }
                    lost_from = Some(lost_from.map_or(t.offset, |l| l.min(t.offset)));
                } else if allow.must_notice {
                    return Err("the damage went unnoticed".into());
                }
                let want = self.expected_without(file, lost_from);
                if *data != want {
                    return Err(format!(
                        "wrong rows (torn tail {torn_tail:?}): {}",
                        diff(data, &want)
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Byte positions to damage in a file of `len` bytes holding `records`: every byte of the
/// file header and of each record header, and a seeded sample of payload bytes.
fn positions(len: usize, records: &[WalRecord], rng: &mut Rng) -> Vec<usize> {
    let mut out: Vec<usize> = (0..16).collect();
    for r in records {
        out.extend(r.offset as usize..r.offset as usize + 16);
    }
    for _ in 0..samples() {
        out.push(rng.range(0, len as u64) as usize);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn wal_bit_flip_is_detected_or_cut_as_torn_tail() {
    let s = setup();
    let mut rng = Rng::new(0x5eed_0001);
    let mut failures = Failures::default();
    let mut cases = 0;
    for (i, f) in s.wal.iter().enumerate() {
        for pos in positions(f.bytes.len(), &f.records, &mut rng) {
            let bit = rng.range(0, 8);
            let outcome = s.run("flip", |dir| {
                rewrite(&dir.join(&f.rel), |b| b[pos] ^= 1 << bit);
            });
            // Every byte of a WAL file is checked (magic, version, reserved, length,
            // checksum over sequence number and payload): a flip cannot go unnoticed.
            let allow = Allow {
                must_notice: true,
                ..Allow::default()
            };
            cases += 1;
            failures.check(
                format!("{:?} byte {pos} bit {bit}", f.rel),
                s.judge(i, allow, &outcome),
            );
        }
    }
    failures.assert_none(cases);
}

/// Truncation lengths to try for a file: the header, around every record boundary, and a
/// sample.
fn lengths(f: &WalFile, rng: &mut Rng) -> Vec<usize> {
    let len = f.bytes.len();
    let mut out: Vec<usize> = (0..=17).collect();
    for r in &f.records {
        let (a, b) = (r.offset as usize, r.end as usize);
        out.extend([a + 1, a + 4, a + 15, a + 16, a + 17, b - 1, b]);
    }
    for _ in 0..samples() / 4 {
        out.push(rng.range(0, len as u64) as usize);
    }
    out.retain(|&l| l < len);
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn wal_torn_tail_is_truncated_and_reported() {
    let s = setup();
    let mut rng = Rng::new(0x5eed_0002);
    let mut failures = Failures::default();
    let last = s.wal.len() - 1;
    let f = &s.wal[last];
    let lens = lengths(f, &mut rng);
    for &l in &lens {
        let path = |dir: &Path| dir.join(&f.rel);
        let result = s.run_with(
            "torn",
            |dir| rewrite(&path(dir), |b| b.truncate(l)),
            |dir| {
                // The file's length while the engine is open (closing flushes every row
                // into segments and removes the WAL files no longer needed).
                let mut len_after = None;
                let first = open_and_scan_with(dir, false, |_| {
                    len_after = std::fs::metadata(path(dir)).ok().map(|m| m.len());
                });
                let second = open_and_scan(dir, false);
                (first, second, len_after)
            },
        );
        let (first, second, len_after) = result;
        // Where the cut must be: at the record the length falls into, or nowhere when it
        // falls on a record boundary; a file cut inside its header is removed.
        let boundary = l == 16 || f.records.iter().any(|r| r.end as usize == l);
        let cut_at = if l < 16 {
            Some(0)
        } else if boundary {
            None
        } else {
            f.records
                .iter()
                .find(|r| (r.offset as usize) < l && l < r.end as usize)
                .map(|r| r.offset)
        };
        let allow = Allow {
            must_open: true,
            silently_lost_from: Some(l as u64),
            must_notice: false,
        };
        let check = || -> Result<(), String> {
            s.judge(last, allow, &first)?;
            let Outcome::Opened { torn_tail, .. } = &first else {
                unreachable!("judged");
            };
            match (cut_at, torn_tail) {
                (None, None) => {}
                (Some(at), Some(t)) => {
                    if t.offset != at || t.bytes_dropped != l as u64 - at {
                        return Err(format!("torn tail {t:?}, expected the cut at {at}"));
                    }
                    // A file cut inside its header is removed; the log then starts a new
                    // file, which may take the same name (a bare 16-byte header).
                    let ok = if at == 0 {
                        matches!(len_after, None | Some(16))
                    } else {
                        len_after == Some(at)
                    };
                    if !ok {
                        return Err(format!(
                            "after repair the file is {len_after:?} bytes, expected a cut at {at}"
                        ));
                    }
                }
                (want, got) => {
                    return Err(format!("torn tail {got:?}, expected a cut at {want:?}"));
                }
            }
            // The repair is durable: the next open finds nothing torn and the same rows.
            match (&first, &second) {
                (
                    Outcome::Opened { data: a, .. },
                    Outcome::Opened {
                        torn_tail: None,
                        data: b,
                        ..
                    },
                ) if a.as_ref().ok() == b.as_ref().ok() => Ok(()),
                _ => Err(format!("the second open differs: {second:?}")),
            }
        };
        failures.check(format!("{:?} cut to {l} bytes", f.rel), check());
    }
    failures.assert_none(lens.len());
}

#[test]
fn wal_truncation_of_an_earlier_file_is_detected() {
    let s = setup();
    let mut rng = Rng::new(0x5eed_0003);
    let mut failures = Failures::default();
    let mut cases = 0;
    for (i, f) in s.wal.iter().enumerate().filter(|(_, f)| !f.is_last) {
        for l in lengths(f, &mut rng) {
            let outcome = s.run("cut", |dir| {
                rewrite(&dir.join(&f.rel), |b| b.truncate(l));
            });
            // Not a crash's doing: only the last file is ever written unsynced. Records
            // are gone, and the open must say so.
            let allow = Allow {
                must_notice: true,
                ..Allow::default()
            };
            cases += 1;
            failures.check(
                format!("{:?} cut to {l} bytes", f.rel),
                s.judge(i, allow, &outcome),
            );
        }
    }
    failures.assert_none(cases);
}

#[test]
fn wal_deleted_file_other_than_the_last_is_detected() {
    // A careless operator deletes an old WAL file after a kill. Every file but the last
    // holds records that no segment does, so the open must fail saying records are
    // missing (the oldest file was found to start late, or the one before to end early),
    // never answer with fewer rows.
    let s = setup();
    let mut failures = Failures::default();
    let mut cases = 0;
    for f in s.wal.iter().filter(|f| !f.is_last) {
        let outcome = s.run("deleted", |dir| {
            std::fs::remove_file(dir.join(&f.rel)).unwrap();
        });
        cases += 1;
        let verdict = match &outcome {
            Outcome::Failed(e @ Error::Corrupt { .. }) if e.to_string().contains("are missing") => {
                Ok(())
            }
            Outcome::Failed(e) => Err(format!("failed, but not saying records are missing: {e}")),
            Outcome::Panicked(m) => Err(format!("panicked: {m}")),
            Outcome::Opened { .. } => Err("opened without noticing the missing records".into()),
        };
        failures.check(format!("{:?} deleted", f.rel), verdict);
    }
    failures.assert_none(cases);
}

#[test]
fn wal_zeroed_page_is_detected_or_cut_as_torn_tail() {
    let s = setup();
    let mut failures = Failures::default();
    let mut cases = 0;
    for (i, f) in s.wal.iter().enumerate() {
        let len = f.bytes.len();
        assert!(len > 8192, "{:?} spans three pages", f.rel);
        // The page holding the middle of the file, and the last 4 KiB.
        let middle = (len / 2) / 4096 * 4096;
        for (where_, start) in [("middle", middle), ("end", len - 4096)] {
            let outcome = s.run("zero", |dir| {
                rewrite(&dir.join(&f.rel), |b| b[start..start + 4096].fill(0));
            });
            // Zeros at the end of the last file are what a crash can leave: cut them.
            let allow = Allow {
                must_open: f.is_last && where_ == "end",
                silently_lost_from: None,
                must_notice: true,
            };
            let mut result = s.judge(i, allow, &outcome);
            if result.is_ok() && !f.is_last && !matches!(outcome, Outcome::Failed(_)) {
                result = Err(format!(
                    "damage to an earlier file was accepted: {outcome:?}"
                ));
            }
            cases += 1;
            failures.check(
                format!("{:?} zeroed page at {start} ({where_})", f.rel),
                result,
            );
        }
    }
    failures.assert_none(cases);
}

#[test]
fn wal_appended_garbage_is_detected_or_cut_as_torn_tail() {
    let s = setup();
    let mut rng = Rng::new(0x5eed_0004);
    let mut failures = Failures::default();
    let mut cases = 0;
    for (i, f) in s.wal.iter().enumerate() {
        for n in [1usize, 7, 16, 17, 100, 5000] {
            for zeros in [false, true] {
                let garbage = if zeros { vec![0; n] } else { rng.bytes(n) };
                let outcome = s.run("append", |dir| {
                    rewrite(&dir.join(&f.rel), |b| b.extend_from_slice(&garbage));
                });
                // Zeros after the last record of the last file are crash padding.
                let allow = Allow {
                    must_open: f.is_last && zeros,
                    silently_lost_from: None,
                    must_notice: true,
                };
                let mut result = s.judge(i, allow, &outcome);
                // Nothing written was damaged: no acknowledged write may be dropped.
                if let Outcome::Opened {
                    torn_tail: Some(t), ..
                } = &outcome
                    && t.offset < f.bytes.len() as u64
                {
                    result = Err(format!("the cut at {} drops intact records", t.offset));
                }
                cases += 1;
                failures.check(
                    format!(
                        "{:?} + {n} {} bytes",
                        f.rel,
                        if zeros { "zero" } else { "random" }
                    ),
                    result,
                );
            }
        }
    }
    failures.assert_none(cases);
}

#[test]
fn wal_deleted_newest_files_are_detected() {
    // A careless operator deletes the newest WAL files after a kill. Every write that
    // lands in a file a rotation made stores the manifest naming it before returning, so
    // deleting the newest files (any number of them, so that no gap between files gives
    // the loss away) must fail naming one of them.
    let s = setup();
    let mut failures = Failures::default();
    let mut cases = 0;
    for from in 0..s.wal.len() {
        let outcome = s.run("deleted-newest", |dir| {
            for f in &s.wal[from..] {
                std::fs::remove_file(dir.join(&f.rel)).unwrap();
            }
        });
        let verdict = match &outcome {
            // The file the manifest names (a later write of it, by a compaction, names a
            // later file: one of those deleted too).
            Outcome::Failed(e @ Error::Corrupt { .. }) if e.to_string().contains("is missing") => {
                if s.wal[from..]
                    .iter()
                    .any(|f| check_names_file(e, &f.rel).is_ok())
                {
                    Ok(())
                } else {
                    Err(format!("the error names no deleted file: {e}"))
                }
            }
            Outcome::Failed(e) => Err(format!("failed, but not naming the missing file: {e}")),
            Outcome::Panicked(m) => Err(format!("panicked: {m}")),
            Outcome::Opened { .. } => Err("opened without noticing the missing files".into()),
        };
        cases += 1;
        failures.check(
            format!("files from {:?} on deleted", s.wal[from].rel),
            verdict,
        );
    }
    failures.assert_none(cases);

    // Every open writes the manifest naming the file it starts, so after a reopen (and a
    // kill: a clean close removes every WAL file) the newest file is known, and deleting
    // it alone is detected.
    let reopened = s.run_with(
        "deleted-after-reopen",
        |dir| {
            // Opened elsewhere and copied back: the killed engine keeps its lock.
            let killed = dir.with_extension("killed");
            copy_dir(dir, &killed);
            std::mem::forget(
                Config::new(&killed)
                    .background_flush(false)
                    .background_compaction(false)
                    .open()
                    .unwrap(),
            );
            std::fs::remove_dir_all(dir).unwrap();
            copy_dir(&killed, dir);
            std::fs::remove_dir_all(&killed).unwrap();
        },
        |dir| {
            let newest = files_ending(&dir.join("wal"), ".wal").pop().unwrap();
            std::fs::remove_file(&newest).unwrap();
            (newest, open_and_scan(dir, false))
        },
    );
    match reopened {
        (newest, Outcome::Failed(e @ Error::Corrupt { .. })) => {
            check_names_file(&e, &newest).unwrap()
        }
        (_, other) => panic!("the newest file's deletion went unnoticed: {other:?}"),
    }
}

#[test]
fn wal_file_of_another_database_is_rejected_naming_it() {
    // The same writes into another database give WAL files of the same names and, but for
    // the database tag in their header, the same bytes: only the tag can tell them apart.
    let s = setup();
    let other = s.root.path().join("other");
    build_fixture(&other);
    let mut failures = Failures::default();
    for f in &s.wal {
        let theirs = std::fs::read(other.join(&f.rel)).unwrap();
        assert_eq!(theirs.len(), f.bytes.len(), "{:?}", f.rel);
        assert_ne!(
            theirs[12..16],
            f.bytes[12..16],
            "{:?}: the tags differ",
            f.rel
        );
        let outcome = s.run("other-database", |dir| {
            std::fs::write(dir.join(&f.rel), &theirs).unwrap()
        });
        let result = match &outcome {
            Outcome::Failed(e @ Error::Corrupt { offset: 12, .. })
                if e.to_string().contains("another database") =>
            {
                check_names_file(e, &f.rel)
            }
            other => Err(format!("expected an error naming the file, got {other:?}")),
        };
        failures.check(format!("{:?} of another database", f.rel), result);
    }
    failures.assert_none(s.wal.len());
}

#[test]
fn wal_foreign_file_is_rejected_naming_it() {
    let s = setup();
    let mut rng = Rng::new(0x5eed_0005);
    let mut failures = Failures::default();
    let mut cases = 0;
    // Each file replaced by random bytes of its length.
    for (i, f) in s.wal.iter().enumerate() {
        let junk = rng.bytes(f.bytes.len());
        let outcome = s.run("foreign", |dir| {
            std::fs::write(dir.join(&f.rel), &junk).unwrap()
        });
        let allow = Allow {
            must_notice: true,
            ..Allow::default()
        };
        let mut result = s.judge(i, allow, &outcome);
        if result.is_ok() && !matches!(outcome, Outcome::Failed(_)) {
            result = Err(format!("a foreign file was accepted: {outcome:?}"));
        }
        cases += 1;
        failures.check(format!("{:?} replaced by random bytes", f.rel), result);
    }
    // A foreign file with a WAL name before the first file and after the last.
    for name in ["00000000000000000000.wal", "00000000000000999999.wal"] {
        let junk = rng.bytes(3000);
        let outcome = s.run("foreign-extra", |dir| {
            std::fs::write(dir.join("wal").join(name), &junk).unwrap()
        });
        let result = match &outcome {
            Outcome::Failed(e) => check_names_file(e, Path::new(name)),
            other => Err(format!("a foreign file was accepted: {other:?}")),
        };
        cases += 1;
        failures.check(format!("extra foreign file {name}"), result);
    }
    failures.assert_none(cases);
}

#[test]
fn wal_empty_file_is_detected_or_removed_as_unfinished() {
    let s = setup();
    let mut failures = Failures::default();
    let mut cases = 0;
    for (i, f) in s.wal.iter().enumerate() {
        let outcome = s.run("empty", |dir| {
            std::fs::write(dir.join(&f.rel), b"").unwrap()
        });
        // An empty last file is one whose creation a crash interrupted; an empty earlier
        // file lost its records.
        let allow = Allow {
            must_notice: true,
            ..Allow::default()
        };
        let mut result = s.judge(i, allow, &outcome);
        if result.is_ok() && !f.is_last && !matches!(outcome, Outcome::Failed(_)) {
            result = Err(format!("an empty earlier file was accepted: {outcome:?}"));
        }
        cases += 1;
        failures.check(format!("{:?} emptied", f.rel), result);
    }
    // An empty file after the last: a crash while starting a new file. Nothing is lost.
    let outcome = s.run("empty-extra", |dir| {
        std::fs::write(dir.join("wal").join("00000000000000999999.wal"), b"").unwrap()
    });
    let result = match &outcome {
        Outcome::Opened {
            data: Ok(data),
            damaged,
            ..
        } if damaged.is_empty() => {
            let want = s.fx.expected(|_| true);
            if *data == want {
                Ok(())
            } else {
                Err(diff(data, &want))
            }
        }
        other => Err(format!("{other:?}")),
    };
    cases += 1;
    failures.check("an extra empty last file".into(), result);
    failures.assert_none(cases);
}

#[test]
fn wal_newer_format_version_is_unsupported() {
    let s = setup();
    let mut failures = Failures::default();
    for f in &s.wal {
        let outcome = s.run("version", |dir| {
            rewrite(&dir.join(&f.rel), |b| {
                b[8..12].copy_from_slice(&3u32.to_le_bytes())
            });
        });
        let result = match &outcome {
            Outcome::Failed(
                e @ Error::UnsupportedVersion {
                    found: 3,
                    supported: 2,
                    ..
                },
            ) => check_names_file(e, &f.rel),
            other => Err(format!("expected UnsupportedVersion, got {other:?}")),
        };
        failures.check(format!("{:?} at version 3", f.rel), result);
    }
    failures.assert_none(s.wal.len());
}

#[test]
fn wal_damage_in_salvage_mode_skips_the_rest_of_the_file_and_keeps_the_rest() {
    let s = setup();
    // Damage a record in the middle of the second file: its records from there on are
    // lost, those before it and the other files' are kept.
    let file = 1;
    let f = &s.wal[file];
    let rec = f.records[f.records.len() / 2];
    let pos = (rec.offset + 20) as usize;
    let damage = |dir: &Path| rewrite(&dir.join(&f.rel), |b| b[pos] ^= 0x10);

    let normal = s.run("salvage-normal", damage);
    assert!(
        matches!(&normal, Outcome::Failed(e) if check_names_file(e, &f.rel).is_ok()),
        "without salvage the damage is an error naming the file: {normal:?}"
    );

    let (outcome, unchanged, write, flush) = s.run_with("salvage", damage, |dir| {
        let before = snapshot_files(dir);
        let outcome = open_and_scan(dir, true);
        let engine = Config::new(dir).salvage(true).open().unwrap();
        let write = engine.write_points(&[Point::metric("cpu").field("usage", 1.0).time(1)]);
        let flush = engine.flush();
        drop(engine);
        (outcome, before == snapshot_files(dir), write, flush)
    });
    assert!(
        unchanged,
        "salvage mode changed files in the database directory"
    );
    assert!(
        matches!(write, Err(Error::ReadOnly(_))),
        "a write in salvage mode: {write:?}"
    );
    assert!(
        matches!(flush, Err(Error::ReadOnly(_))),
        "a flush in salvage mode: {flush:?}"
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
    let name = f.rel.file_name().unwrap().to_string_lossy();
    assert!(damaged[0].contains(&*name), "{damaged:?} names {name}");
    let data = data.expect("salvaged data scans");
    let want = s.expected_without(file, Some(rec.offset));
    assert!(data == want, "salvaged rows: {}", diff(&data, &want));
}

/// Every file under `dir` with its bytes, to check that nothing changed.
fn snapshot_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_ending(dir, "")
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}
