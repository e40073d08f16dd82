//! Writing: round trips across rotations, file names, removal of obsolete files,
//! poisoning by failed writes and fsyncs, group commit and the durability modes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::super::record::{self, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use super::super::*;
use super::*;

#[test]
fn wal_round_trip_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..200)
        .map(|i| payload(i, (i as usize * 37) % 300))
        .collect();
    let written = write_log(dir.path(), 0, &payloads, 1000);
    assert_eq!(
        written.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    let files = wal_files(dir.path());
    assert!(
        files.len() > 10,
        "expected rotations, got {} files",
        files.len()
    );
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        let records = record_offsets(&std::fs::read(f).unwrap()).len();
        assert!(
            len <= 1000 || records == 1,
            "{} is {len} bytes with {records} records",
            f.display()
        );
    }

    let (got, report) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got, written);
    assert_eq!(
        (report.files, report.records, report.last_seq),
        (files.len(), 200, Some(199))
    );
    assert!(report.torn_tail.is_none() && report.salvaged.is_empty());

    // Reopen after the last record and append more: one sequence through all files.
    let more = write_log(dir.path(), 200, &payloads[..10], 1000);
    assert_eq!(more[0].0, 200);
    let (got, _) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got.len(), 210);
    assert_eq!(&got[200..], &more[..]);
}

#[test]
fn wal_file_is_named_by_first_seq_and_starts_with_header() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        db_tag: 0x0a0b_0c0d,
        ..options(Durability::Never, 1 << 20)
    };
    let wal = Wal::create(dir.path(), 42, opts).unwrap();
    assert_eq!(wal.current_file(), 42);
    assert_eq!(wal.next_seq(), 42);
    assert_eq!(wal.append(b"x").unwrap(), 42);
    assert_eq!(wal.next_seq(), 43);
    wal.close().unwrap();
    let path = dir.path().join("00000000000000000042.wal");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..16], b"SXTWAL\0\0\x02\0\0\0\x0d\x0c\x0b\x0a");
    assert_eq!(&bytes[16..20], &1u32.to_le_bytes());
    assert_eq!(&bytes[20..24], &record::checksum(1, 42, b"x").to_le_bytes());
    assert_eq!(&bytes[24..32], &42u64.to_le_bytes());
    assert_eq!(&bytes[32..], b"x");
}

#[test]
fn wal_remove_obsolete_keeps_live_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::create(dir.path(), 0, options(Durability::Never, 200)).unwrap();
    for i in 0..100 {
        wal.append(&payload(i, 50)).unwrap();
    }
    let before: Vec<u64> = list_files(dir.path())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(before.len() > 5);

    let min_live = 57;
    let expect_removed = before.windows(2).filter(|w| w[1] <= min_live).count();
    assert_eq!(wal.remove_obsolete(min_live).unwrap(), expect_removed);
    let (got, _) = replay_all(dir.path(), false).unwrap();
    assert!(
        got.first().unwrap().0 <= min_live,
        "a live record was removed"
    );
    assert_eq!(got.last().unwrap().0, 99);
    assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + 1));

    // Even with every record obsolete, the current file stays.
    wal.remove_obsolete(u64::MAX).unwrap();
    let left = wal_files(dir.path());
    assert_eq!(left.len(), 1);
    assert_eq!(wal.append(b"after").unwrap(), 100);
    drop(wal);
    let (got, _) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got.last().unwrap(), &(100, b"after".to_vec()));
}

/// Fails the `fail_write`-th write and the `fail_sync`-th `fsync` (counting from 1; 0
/// never fails).
#[derive(Debug, Default)]
struct FailNth {
    fail_write: u64,
    fail_sync: u64,
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl Faults for FailNth {
    fn before_write(&self, _: &Path) -> std::io::Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_write {
            return Err(std::io::Error::other("injected write failure"));
        }
        Ok(())
    }

    fn before_sync(&self, _: &Path) -> std::io::Result<()> {
        if self.syncs.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_sync {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        Ok(())
    }
}

fn assert_poisoned<T: std::fmt::Debug>(result: Result<T>, cause: &str) {
    match result {
        Err(err @ Error::Poisoned(_)) => {
            let msg = err.to_string();
            assert!(
                msg.contains("writes are refused") && msg.contains(cause),
                "{msg}"
            );
        }
        other => panic!("expected Error::Poisoned, got {other:?}"),
    }
}

#[test]
fn wal_failed_fsync_poisons() {
    let dir = tempfile::tempdir().unwrap();
    // Creation syncs the file and the directory (syncs 1 and 2); then one per wait.
    let faults = Arc::new(FailNth {
        fail_sync: 5,
        ..FailNth::default()
    });
    let opts = WalOptions {
        durability: Durability::Always,
        max_file_bytes: 1 << 20,
        faults: Some(faults),
        ..WalOptions::default()
    };
    let wal = Wal::create(dir.path(), 0, opts).unwrap();
    for i in 0..2 {
        let seq = wal.append(&payload(i, 10)).unwrap();
        wal.wait_durable(seq).unwrap();
    }
    let seq = wal.append(b"third").unwrap();
    assert_poisoned(wal.wait_durable(seq), "injected fsync failure");
    assert_poisoned(wal.append(b"fourth"), "injected fsync failure");
    assert_poisoned(wal.wait_durable(0), "injected fsync failure");
    assert_poisoned(wal.sync(), "injected fsync failure");
    assert_poisoned(wal.close(), "injected fsync failure");
    assert_eq!(wal.sync_count(), 2);
    drop(wal);
    // What was written is still there to replay; the refused append is not.
    assert_eq!(replay_all(dir.path(), false).unwrap().0.len(), 3);
}

#[test]
fn wal_failed_fsync_on_rotation_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FailNth {
        fail_sync: 3,
        ..FailNth::default()
    });
    let opts = WalOptions {
        durability: Durability::Never,
        max_file_bytes: 100,
        faults: Some(faults),
        ..WalOptions::default()
    };
    let wal = Wal::create(dir.path(), 0, opts).unwrap();
    wal.append(&[1; 80]).unwrap();
    assert_poisoned(wal.append(&[2; 80]), "injected fsync failure");
    assert_poisoned(wal.append(&[3; 1]), "injected fsync failure");
    assert_eq!(
        wal_files(dir.path()).len(),
        1,
        "a new file was started after a failed fsync"
    );
}

#[test]
fn wal_failed_write_poisons() {
    let dir = tempfile::tempdir().unwrap();
    // Write 1 is the file header.
    let faults = Arc::new(FailNth {
        fail_write: 4,
        ..FailNth::default()
    });
    let opts = WalOptions {
        durability: Durability::Never,
        max_file_bytes: 1 << 20,
        faults: Some(faults),
        ..WalOptions::default()
    };
    let wal = Wal::create(dir.path(), 0, opts).unwrap();
    wal.append(b"a").unwrap();
    wal.append(b"b").unwrap();
    assert_poisoned(wal.append(b"c"), "injected write failure");
    assert_poisoned(wal.append(b"d"), "injected write failure");
    assert_poisoned(wal.wait_durable(1), "injected write failure");
    drop(wal);
    assert_eq!(replay_all(dir.path(), false).unwrap().1.last_seq, Some(1));
}

/// Records the largest file length seen when an `fsync` starts: the `fsync` covers it.
#[derive(Debug, Default)]
struct SyncCoverage {
    max_len_at_sync: AtomicU64,
}

impl Faults for SyncCoverage {
    fn before_sync(&self, path: &Path) -> std::io::Result<()> {
        if path.extension().is_some_and(|e| e == "wal") {
            let len = std::fs::metadata(path)?.len();
            self.max_len_at_sync.fetch_max(len, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn wal_group_commit_returns_after_a_covering_fsync() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 150;
    const PAYLOAD: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let coverage = Arc::new(SyncCoverage::default());
    let opts = WalOptions {
        durability: Durability::Always,
        max_file_bytes: 1 << 30,
        faults: Some(coverage.clone()),
        ..WalOptions::default()
    };
    let wal = Arc::new(Wal::create(dir.path(), 0, opts).unwrap());
    let record_end =
        |seq: u64| (FILE_HEADER_LEN + (seq as usize + 1) * (RECORD_HEADER_LEN + PAYLOAD)) as u64;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (wal, coverage) = (wal.clone(), coverage.clone());
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let seq = wal.append(&payload(t * 1000 + i, PAYLOAD)).unwrap();
                    wal.wait_durable(seq).unwrap();
                    let covered = coverage.max_len_at_sync.load(Ordering::SeqCst);
                    assert!(
                        covered >= record_end(seq),
                        "seq {seq} acknowledged before an fsync covered it"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let records = THREADS * PER_THREAD;
    let syncs = wal.sync_count();
    assert!(syncs <= records, "{syncs} fsyncs for {records} records");
    eprintln!("group commit: {syncs} fsyncs for {records} records");
    drop(wal);
    let (got, _) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got.len() as u64, records);
    let mut payloads: Vec<_> = got.into_iter().map(|(_, p)| p).collect();
    payloads.sort();
    let mut expect: Vec<_> = (0..THREADS)
        .flat_map(|t| (0..PER_THREAD).map(move |i| payload(t * 1000 + i, PAYLOAD)))
        .collect();
    expect.sort();
    assert_eq!(payloads, expect);
}

#[test]
fn wal_interval_thread_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::create(
        dir.path(),
        0,
        options(Durability::Interval(Duration::from_millis(5)), 1 << 20),
    )
    .unwrap();
    let seq = wal.append(b"a").unwrap();
    wal.wait_durable(seq).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.sync_count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the interval thread never synced"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Nothing new written: no more fsyncs.
    std::thread::sleep(Duration::from_millis(50));
    let count = wal.sync_count();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(wal.sync_count(), count);
    wal.close().unwrap();
}

#[test]
fn wal_never_leaves_syncing_to_close() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::create(dir.path(), 0, options(Durability::Never, 1 << 20)).unwrap();
    let seq = wal.append(b"a").unwrap();
    wal.wait_durable(seq).unwrap();
    assert_eq!(wal.sync_count(), 0);
    wal.close().unwrap();
    assert_eq!(wal.sync_count(), 1);
    assert!(matches!(wal.append(b"b"), Err(Error::ReadOnly(_))));
    wal.close().unwrap();
    assert_eq!(wal.sync_count(), 1);
}

#[test]
fn wal_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let zero = options(Durability::Interval(Duration::ZERO), 1 << 20);
    assert!(matches!(
        Wal::create(dir.path(), 0, zero),
        Err(Error::InvalidInput(_))
    ));
    let wal = Wal::create(dir.path(), 0, options(Durability::Always, 1 << 20)).unwrap();
    assert!(matches!(wal.wait_durable(0), Err(Error::InvalidInput(_))));
    // Calloc'ed, so the 1 GiB is never touched.
    let huge = vec![0u8; record::MAX_PAYLOAD + 1];
    match wal.append(&huge) {
        Err(Error::InvalidInput(msg)) => assert!(msg.contains("split"), "{msg}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    drop(huge);
    // Refused input does not poison.
    assert_eq!(wal.append(b"ok").unwrap(), 0);
    wal.wait_durable(0).unwrap();
}

#[test]
fn wal_create_refuses_to_reuse_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, &[b"a".to_vec(), b"b".to_vec()], 1 << 20);
    let err = Wal::create(dir.path(), 5, WalOptions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    // An empty file (crash right after a rotation) is removed instead.
    drop(Wal::create(dir.path(), 12, options(Durability::Never, 1 << 20)).unwrap());
    let wal = Wal::create(dir.path(), 12, options(Durability::Never, 1 << 20)).unwrap();
    assert_eq!(wal.append(b"c").unwrap(), 12);
    drop(wal);
    assert_eq!(replay_all(dir.path(), false).unwrap().1.records, 3);
    // A short file that is not an empty WAL file is not removed.
    let foreign = dir.path().join(file_name(20));
    std::fs::write(&foreign, b"0123456789abcdef").unwrap();
    let err = Wal::create(dir.path(), 20, WalOptions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(foreign.exists());
}

/// Fails every rename.
#[derive(Debug)]
struct FailRenames;

impl Faults for FailRenames {
    fn before_rename(&self, _: &Path) -> std::io::Result<()> {
        Err(std::io::Error::other("injected rename failure"))
    }
}

#[test]
fn wal_create_replaces_a_header_only_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 0, &[b"a".to_vec(), b"b".to_vec()], 1 << 20);
    // A header-only file named where the log goes on, as a kill right after a rotation
    // leaves it (by an older build writing format version 1).
    let next = dir.path().join(file_name(2));
    let mut v1 = record::file_header(0);
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&next, v1).unwrap();
    // A failure while replacing it leaves the file in place: it is never missing.
    let failing = WalOptions {
        faults: Some(Arc::new(FailRenames)),
        ..options(Durability::Always, 1 << 20)
    };
    let err = Wal::create(dir.path(), 2, failing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(std::fs::read(&next).unwrap(), v1);
    // Replaced, the file carries this build's header, and the log goes on in it.
    let wal = Wal::create(dir.path(), 2, options(Durability::Always, 1 << 20)).unwrap();
    assert_eq!(wal.append(b"c").unwrap(), 2);
    drop(wal);
    assert_eq!(
        std::fs::read(&next).unwrap()[..FILE_HEADER_LEN],
        record::file_header(0)
    );
    assert_eq!(replay_all(dir.path(), false).unwrap().1.records, 3);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn wal_create_makes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("db").join("wal");
    write_log(&wal_dir, 0, &[b"a".to_vec()], 1 << 20);
    assert_eq!(replay_all(&wal_dir, false).unwrap().1.records, 1);
}
