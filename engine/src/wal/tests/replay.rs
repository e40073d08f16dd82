//! Replay: torn tails are cut, other damage is an error naming file and offset, salvage
//! skips it, and no bytes make replay panic.

use proptest::prelude::*;

use super::super::record::{self, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use super::super::*;
use super::*;

#[test]
fn wal_torn_tail_is_truncated_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..6).map(|i| payload(i, 40)).collect();
    let written = write_log(dir.path(), 0, &payloads, 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let original = std::fs::read(&path).unwrap();
    let last_start = *record_offsets(&original).last().unwrap();

    for cut in last_start + 1..original.len() as u64 {
        std::fs::write(&path, &original[..cut as usize]).unwrap();
        let (got, report) = replay_all(dir.path(), false).unwrap();
        assert_eq!(got, written[..5], "cut at {cut}");
        let tail = report.torn_tail.expect("a torn tail");
        assert_eq!(
            tail,
            TornTail {
                path: path.clone(),
                offset: last_start,
                bytes_dropped: cut - last_start,
                records_dropped: 1
            }
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            last_start,
            "file not truncated"
        );
        let (again, report) = replay_all(dir.path(), false).unwrap();
        assert_eq!(again, written[..5]);
        assert!(
            report.torn_tail.is_none(),
            "second replay at cut {cut}: {report:?}"
        );
    }
}

#[test]
fn wal_torn_file_header_removes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_log(dir.path(), 0, &[b"first".to_vec()], 1 << 20);
    let last = dir.path().join(file_name(1));
    let header = record::file_header(0);
    for cut in 0..FILE_HEADER_LEN {
        std::fs::write(&last, &header[..cut]).unwrap();
        let (got, report) = replay_all(dir.path(), false).unwrap();
        assert_eq!(got, written, "cut at {cut}");
        let tail = report.torn_tail.unwrap();
        assert_eq!(
            (tail.offset, tail.bytes_dropped, tail.records_dropped),
            (0, cut as u64, 0)
        );
        assert!(
            !last.exists(),
            "the torn file was not removed (cut at {cut})"
        );
    }
    // A header of zeros (the file's blocks were allocated, its data never written).
    std::fs::write(&last, [0u8; 40]).unwrap();
    let (got, report) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got, written);
    assert_eq!(report.torn_tail.unwrap().bytes_dropped, 40);
    assert!(!last.exists());
    // The log can then start again at that file's name.
    write_log(dir.path(), 1, &[b"second".to_vec()], 1 << 20);
    assert_eq!(replay_all(dir.path(), false).unwrap().0.len(), 2);
}

#[test]
fn wal_torn_record_in_earlier_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..10).map(|i| payload(i, 100)).collect();
    write_log(dir.path(), 0, &payloads, 300);
    let first = wal_files(dir.path()).remove(0);
    let bytes = std::fs::read(&first).unwrap();
    let last_start = *record_offsets(&bytes).last().unwrap();
    std::fs::write(&first, &bytes[..bytes.len() - 3]).unwrap();
    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (first.clone(), last_start));
    assert_eq!(
        std::fs::metadata(&first).unwrap().len(),
        bytes.len() as u64 - 3,
        "replay modified a file"
    );
}

#[test]
fn wal_bit_flip_mid_file_is_corrupt_and_salvage_skips_the_rest_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..40).map(|i| payload(i, 100)).collect();
    let written = write_log(dir.path(), 0, &payloads, 600);
    let files = wal_files(dir.path());
    assert!(files.len() >= 3);
    let damaged = &files[1];
    let bytes = std::fs::read(damaged).unwrap();
    let offsets = record_offsets(&bytes);
    let mut flipped = bytes.clone();
    flipped[offsets[1] as usize + RECORD_HEADER_LEN + 10] ^= 0x04;
    std::fs::write(damaged, &flipped).unwrap();

    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (damaged.clone(), offsets[1]));
    assert!(err.to_string().contains("checksum"), "{err}");

    let (got, report) = replay_all(dir.path(), true).unwrap();
    let first_in_damaged = list_files(dir.path()).unwrap()[1].0;
    let lost = offsets.len() as u64 - 1;
    let mut expect = written.clone();
    expect.retain(|(seq, _)| *seq <= first_in_damaged || *seq > first_in_damaged + lost);
    assert_eq!(
        got, expect,
        "salvage should keep records before the damage and later files"
    );
    assert_eq!(report.salvaged.len(), 1);
    assert_eq!(
        corrupt_offset(&report.salvaged[0]),
        (damaged.clone(), offsets[1])
    );
    assert_eq!(
        std::fs::read(damaged).unwrap(),
        flipped,
        "salvage modified a file"
    );
}

#[test]
fn wal_bit_flip_in_header_of_earlier_record_in_last_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..5).map(|i| payload(i, 30)).collect();
    write_log(dir.path(), 0, &payloads, 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = record_offsets(&bytes);
    bytes[offsets[2] as usize + 9] ^= 1; // in the seq
    std::fs::write(&path, &bytes).unwrap();
    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (path, offsets[2]));
}

#[test]
fn wal_bit_flip_in_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..5).map(|i| payload(i, 30)).collect();
    let written = write_log(dir.path(), 0, &payloads, 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last_start = *record_offsets(&bytes).last().unwrap();
    *bytes.last_mut().unwrap() ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    let (got, report) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got, written[..4]);
    let tail = report.torn_tail.unwrap();
    assert_eq!((tail.offset, tail.records_dropped), (last_start, 1));
}

#[test]
fn wal_zeroed_page_at_end_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..30).map(|i| payload(i, 1000)).collect();
    let written = write_log(dir.path(), 0, &payloads, 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let original = std::fs::read(&path).unwrap();

    // Zero padding appended after the last record (a file system's view after a crash).
    let mut padded = original.clone();
    padded.extend_from_slice(&[0; 4096]);
    std::fs::write(&path, &padded).unwrap();
    let (got, report) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got, written);
    let tail = report.torn_tail.unwrap();
    assert_eq!(
        (tail.offset, tail.bytes_dropped, tail.records_dropped),
        (original.len() as u64, 4096, 0)
    );
    assert_eq!(std::fs::read(&path).unwrap(), original);

    // The last page zeroed: the record it starts in is torn, everything after is gone.
    let page_start = (original.len() - 1) / 4096 * 4096;
    let mut zeroed = original.clone();
    zeroed[page_start..].fill(0);
    std::fs::write(&path, &zeroed).unwrap();
    let offsets = record_offsets(&original);
    let hit = offsets
        .iter()
        .rposition(|&o| o <= page_start as u64)
        .unwrap();
    let (got, report) = replay_all(dir.path(), false).unwrap();
    assert_eq!(got, written[..hit]);
    assert_eq!(report.torn_tail.unwrap().offset, offsets[hit]);
}

#[test]
fn wal_zeroed_page_in_middle_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..30).map(|i| payload(i, 1000)).collect();
    write_log(dir.path(), 0, &payloads, 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = record_offsets(&bytes);
    bytes[4096..8192].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let hit = offsets.iter().rposition(|&o| o <= 4096).unwrap();
    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (path.clone(), offsets[hit]));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "replay modified a corrupt file"
    );
}

#[test]
fn wal_foreign_file_is_corrupt_at_offset_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(0));
    std::fs::write(&path, b"this is not a write-ahead log at all").unwrap();
    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (path.clone(), 0));
    // Even a short one, when its bytes cannot be the start of a header.
    std::fs::write(&path, b"hello").unwrap();
    assert_eq!(
        corrupt_offset(&replay_all(dir.path(), false).unwrap_err()),
        (path.clone(), 0)
    );
    // Other names are not the log's.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(dir.path().join("notes.wal"), b"x").unwrap();
    std::fs::write(dir.path().join("00000000000000000001.wal.tmp"), b"x").unwrap();
    assert_eq!(replay_all(dir.path(), false).unwrap().1.files, 0);
}

#[test]
fn wal_newer_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 0, &[b"a".to_vec()], 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match replay_all(dir.path(), false).unwrap_err() {
        Error::UnsupportedVersion {
            path: p,
            found: 3,
            supported: 2,
        } => assert_eq!(p, path),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let (_, report) = replay_all(dir.path(), true).unwrap();
    assert!(matches!(
        report.salvaged[..],
        [Error::UnsupportedVersion { .. }]
    ));
}

#[test]
fn wal_sequence_numbers_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(5));
    let mut bytes = record::file_header(0).to_vec();
    let mut rec = Vec::new();
    for seq in [5, 6, 6] {
        record::encode(seq, b"payload", &mut rec);
        bytes.extend_from_slice(&rec);
    }
    std::fs::write(&path, &bytes).unwrap();
    let offsets = record_offsets(&bytes);
    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (path.clone(), offsets[2]));

    // A record below its file's name.
    let mut bytes = record::file_header(0).to_vec();
    record::encode(4, b"payload", &mut rec);
    bytes.extend_from_slice(&rec);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        corrupt_offset(&replay_all(dir.path(), false).unwrap_err()),
        (path, 16)
    );
}

#[test]
fn wal_salvage_reports_but_never_truncates_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_log(dir.path(), 0, &[b"one".to_vec(), b"two".to_vec()], 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let (got, report) = replay_all(dir.path(), true).unwrap();
    assert_eq!(got, written[..1]);
    assert_eq!(report.torn_tail.unwrap().records_dropped, 1);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        bytes.len() as u64 - 1
    );
}

#[test]
fn wal_replay_of_missing_directory_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (got, report) = replay_all(&dir.path().join("absent"), false).unwrap();
    assert!(got.is_empty());
    assert_eq!(
        (report.files, report.records, report.last_seq),
        (0, 0, None)
    );
}

#[test]
fn wal_replay_stops_at_apply_error() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 0, &[b"a".to_vec(), b"b".to_vec()], 1 << 20);
    let mut seen = 0;
    let err = replay(dir.path(), true, 0, |_| {
        seen += 1;
        Err(Error::InvalidInput("bad payload".into()))
    })
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_eq!(seen, 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn wal_replay_returns_exactly_what_was_appended(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..40),
        max_file_bytes in 16u64..8192,
        first_seq in 0u64..1_000_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), first_seq, &payloads, max_file_bytes);
        let (got, report) = replay_all(dir.path(), false).unwrap();
        prop_assert_eq!(got, written);
        prop_assert!(report.torn_tail.is_none());
        prop_assert_eq!(report.last_seq, payloads.len().checked_sub(1).map(|n| first_seq + n as u64));
    }

    #[test]
    fn wal_replay_never_panics_on_damaged_bytes(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..10),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        salvage in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), 0, &payloads, 1 << 20);
        let path = wal_files(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, value) in damage {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        std::fs::write(&path, &bytes).unwrap();
        // Any outcome but a panic; whatever is replayed is a prefix of what was written
        // (damage can only hide records, the checksum keeps altered ones out).
        if let Ok((got, _)) = replay_all(dir.path(), salvage)
            && !salvage
        {
            prop_assert!(written.starts_with(&got));
        }
    }
}

#[test]
fn wal_damaged_length_followed_by_intact_records_is_corrupt_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| payload(i, 100)).collect();
    write_log(dir.path(), 1, &payloads, 1 << 20);
    let path = wal_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = record_offsets(&bytes);
    // Make record 2's length run past the end of the file: it looks torn, but records
    // 3 and 4 after it are intact.
    let at = offsets[1] as usize;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes()[..]);
    std::fs::write(&path, &bytes).unwrap();
    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (path.clone(), offsets[1]));
    assert!(
        err.to_string().contains("an intact record follows"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "nothing may be truncated"
    );
}

#[test]
fn wal_earlier_file_cut_at_a_record_boundary_is_corrupt_unless_covered() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..12).map(|i| payload(i, 200)).collect();
    write_log(dir.path(), 1, &payloads, 1000);
    let files = wal_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    let offsets = record_offsets(&bytes);
    // Drop the first file's last record, cleanly at its boundary.
    let cut = *offsets.last().unwrap();
    std::fs::write(&files[0], &bytes[..cut as usize]).unwrap();
    let err = replay_all(dir.path(), false).unwrap_err();
    assert_eq!(corrupt_offset(&err), (files[0].clone(), cut));
    assert!(err.to_string().contains("are missing"), "{err}");
    // Records that segments already hold may be missing.
    let lost = offsets.len() as u64;
    let report = replay(dir.path(), false, lost, |_| Ok(())).unwrap();
    assert_eq!(report.records, 12 - 1);
}

#[test]
fn wal_oldest_file_removed_is_corrupt_unless_covered() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..12).map(|i| payload(i, 200)).collect();
    write_log(dir.path(), 1, &payloads, 1000);
    let files = wal_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let lost = record_offsets(&std::fs::read(&files[0]).unwrap()).len() as u64;
    std::fs::remove_file(&files[0]).unwrap();
    // Segments hold nothing: records 1 to `lost` are gone, and replay says so.
    let err = replay(dir.path(), false, 0, |_| Ok(())).unwrap_err();
    assert_eq!(corrupt_offset(&err), (files[1].clone(), 0));
    assert!(
        err.to_string()
            .contains(&format!("records 1 to {lost} are missing")),
        "{err}"
    );
    // Salvage reports it and replays the rest.
    let report = replay(dir.path(), true, 0, |_| Ok(())).unwrap();
    assert_eq!(report.salvaged.len(), 1, "{:?}", report.salvaged);
    assert_eq!(report.records, 12 - lost);
    // Segments that hold the removed records make the removal harmless.
    let report = replay(dir.path(), false, lost, |_| Ok(())).unwrap();
    assert_eq!(report.records, 12 - lost);
}

#[test]
fn wal_strict_recovery_refuses_a_torn_tail_and_modifies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<_> = (0..5).map(|i| payload(i, 30)).collect();
    write_log(dir.path(), 0, &payloads, 1 << 20);
    let path = wal_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last_start = *record_offsets(&bytes).last().unwrap();
    *bytes.last_mut().unwrap() ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    let strict = ReplayOptions {
        mode: Recovery::Strict,
        ..ReplayOptions::default()
    };
    let err = replay_with(dir.path(), &strict, |_| Ok(())).unwrap_err();
    assert_eq!(corrupt_offset(&err), (path.clone(), last_start));
    assert!(err.to_string().contains("strict recovery"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing may be cut");
    // An intact log replays the same in strict mode.
    let dir = tempfile::tempdir().unwrap();
    let written = write_log(dir.path(), 0, &payloads, 1 << 20);
    let mut got = Vec::new();
    replay_with(dir.path(), &strict, |r| {
        got.push((r.seq, r.payload.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(got, written);
}
