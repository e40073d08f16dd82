//! The reading side: [`replay`], with torn-tail repair and salvage.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{self, FILE_HEADER_LEN, MAX_PAYLOAD, RECORD_HEADER_LEN, RecordHeader};
use super::{list_files, sync_dir};
use crate::error::{Error, Result};

/// What [`replay`] found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// WAL files examined (including damaged and removed ones).
    pub files: usize,
    /// Records handed to `apply`.
    pub records: u64,
    /// Sequence number of the last record handed to `apply`; `None` if there was none.
    /// The log should be [created](super::Wal::create) with `next_seq` after it.
    pub last_seq: Option<u64>,
    /// The half-written end of the last file, if a crash left one.
    pub torn_tail: Option<TornTail>,
    /// In salvage mode, the damage that made replay skip the rest of a file, one error
    /// ([`Error::Corrupt`] or [`Error::UnsupportedVersion`]) per file, each naming the file
    /// and the offset. Always empty outside salvage mode.
    pub salvaged: Vec<Error>,
}

/// A torn tail: the end of the last WAL file that a crash left half written.
///
/// Outside salvage mode, replay cut it off: the file was truncated at `offset` (or
/// removed, when `offset` is 0: a file whose header was never completely written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last WAL file.
    pub path: PathBuf,
    /// Where the torn record (or the zero padding) starts: the new length of the file.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file as found.
    pub bytes_dropped: u64,
    /// 1 for a partly written record, 0 when the dropped bytes were all zero (padding a
    /// file system left after a crash) or an unfinished file header.
    pub records_dropped: u64,
}

/// One intact record handed to `apply` by [`replay`].
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The record's sequence number.
    pub seq: u64,
    /// The payload.
    pub payload: &'a [u8],
    /// The WAL file holding it.
    pub path: &'a Path,
    /// The record's offset in the file.
    pub offset: u64,
}

/// Replays every WAL file in `dir` in sequence order, calling `apply` for each intact
/// record, and reports what it found. A missing directory has no records.
///
/// Records are numbered consecutively and each file is named by its first sequence
/// number, so a file other than the last must end with the record just before the next
/// file's name, and the first file must start at most one after `covered` (the highest
/// sequence number whose rows segments already hold). A file that ends early, or a log
/// that starts late (an older file removed), has lost records: that is damage, unless
/// every missing sequence number is at most `covered`, which a crash under `Interval` or
/// `Never` durability can leave.
///
/// A torn tail at the end of the last file (see the [module docs](super)) is cut off and
/// reported, unless `salvage` is set. Other damage (a checksum mismatch before the end, or
/// in an earlier file; decreasing sequence numbers; a foreign file; a header of another
/// version) is an error naming the file and the offset, [`Error::Corrupt`] or
/// [`Error::UnsupportedVersion`]. With `salvage` set, replay instead keeps the records
/// before the damage, records the error in [`ReplayReport::salvaged`], skips the rest of
/// that file and goes on with the next one; it modifies no file.
///
/// An error from `apply`, or an I/O error, stops the replay and is returned as is.
pub fn replay(
    dir: &Path,
    salvage: bool,
    covered: u64,
    apply: impl FnMut(Record<'_>) -> Result<()>,
) -> Result<ReplayReport> {
    let mode = if salvage {
        Recovery::Salvage
    } else {
        Recovery::Repair
    };
    let options = ReplayOptions {
        mode,
        covered,
        ..ReplayOptions::default()
    };
    replay_with(dir, &options, apply)
}

/// What replay does with a torn tail and other damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recovery {
    /// Cut a torn tail off and report it; other damage is an error (the default).
    #[default]
    Repair,
    /// A torn tail is an error too, and no file is modified: for those who would rather
    /// not open than lose a write acknowledged under `Always` whose last record a fault
    /// damaged (a crash under `Always` acknowledges nothing it has not synced, so it
    /// leaves only a torn tail of writes not acknowledged).
    Strict,
    /// Skip damage, report it, and modify no file (see [`replay`]).
    Salvage,
}

/// How [`replay_with`] reads the log, and what it knows of it from elsewhere (the
/// database's manifest).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    pub mode: Recovery,
    /// The highest sequence number whose rows segments already hold (see [`replay`]).
    pub covered: u64,
    /// The database tag that files of format version 2 must carry in their header
    /// ([`WalOptions::db_tag`](super::WalOptions::db_tag)); a file carrying another is a
    /// file of another database, [`Error::Corrupt`] at offset 12. `None` accepts any.
    pub db_tag: Option<u32>,
    /// The name (first sequence number) of a file known to have been created
    /// ([`Wal::current_file`](super::Wal::current_file) when the manifest was last
    /// written); 0 when none is known. The log only removes files older than the file it
    /// appends to, so when no file is named at least this, the newest files were removed
    /// and the records they held are lost: [`Error::Corrupt`] naming the missing file.
    pub newest_file: u64,
}

/// [`replay`], with the [`ReplayOptions`] given.
pub fn replay_with(
    dir: &Path,
    options: &ReplayOptions,
    mut apply: impl FnMut(Record<'_>) -> Result<()>,
) -> Result<ReplayReport> {
    let ReplayOptions {
        mode,
        covered,
        db_tag,
        newest_file,
    } = *options;
    let salvage = mode == Recovery::Salvage;
    let files = list_files(dir)?;
    let mut report = ReplayReport {
        files: files.len(),
        ..ReplayReport::default()
    };
    if newest_file > 0 && files.last().is_none_or(|(first, _)| *first < newest_file) {
        let err = Error::corrupt(
            dir.join(super::file_name(newest_file)),
            0,
            format!(
                "the write-ahead log file is missing: the manifest says it was created, and no file named after it exists, so the records from sequence number {newest_file} on, if any were written, are lost with it and any later file"
            ),
        );
        if !salvage {
            return Err(err);
        }
        report.salvaged.push(err);
    }
    let mut payload = Vec::new();
    let mut prev: Option<Ended> = None;
    for (i, (first_seq, path)) in files.iter().enumerate() {
        let mut file = FileReplay {
            path,
            first_seq: *first_seq,
            is_first: i == 0,
            is_last: i + 1 == files.len(),
            prev: prev.take(),
            covered,
            salvage,
            db_tag,
            file_len: 0,
            last_in_file: None,
            report: &mut report,
            payload: &mut payload,
        };
        let end = file.run(&mut apply)?;
        // After damage (salvage) the records missing were already reported with it.
        prev = matches!(end, End::Clean).then(|| Ended {
            path: path.clone(),
            len: file.file_len,
            last: file.last_in_file.unwrap_or(first_seq.saturating_sub(1)),
        });
        match end {
            End::Clean => {}
            End::Torn(tail) if mode == Recovery::Strict => {
                return Err(Error::corrupt(
                    &tail.path,
                    tail.offset,
                    format!(
                        "the last {} bytes of the log are a damaged or unfinished record; strict recovery does not cut them off (open without it to cut them and report them as a torn tail)",
                        tail.bytes_dropped
                    ),
                ));
            }
            End::Torn(tail) => {
                if !salvage {
                    cut(&tail, dir)?;
                }
                report.torn_tail = Some(tail);
            }
            End::Damaged(err) if salvage => report.salvaged.push(err),
            End::Damaged(err) => return Err(err),
        }
    }
    Ok(report)
}

/// Where the previous file ended, for checking that no records are missing between it
/// and the next file.
struct Ended {
    path: PathBuf,
    len: u64,
    /// Its last record's sequence number (its name minus one without records).
    last: u64,
}

/// How the replay of one file ended.
enum End {
    /// At the end of the file, after its last record.
    Clean,
    /// At a torn tail (last file only).
    Torn(TornTail),
    /// At damage that is not a torn tail.
    Damaged(Error),
}

/// The replay of one file.
struct FileReplay<'a> {
    path: &'a Path,
    /// From the file name.
    first_seq: u64,
    is_first: bool,
    is_last: bool,
    /// How the file before ended.
    prev: Option<Ended>,
    covered: u64,
    salvage: bool,
    db_tag: Option<u32>,
    file_len: u64,
    /// The last sequence number read from this file.
    last_in_file: Option<u64>,
    report: &'a mut ReplayReport,
    payload: &'a mut Vec<u8>,
}

impl FileReplay<'_> {
    fn is_last(&self) -> bool {
        self.is_last
    }

    /// Once this file's header is known good: whether records are missing before it
    /// that segments do not cover. Before the first file, those are the records after
    /// `covered` (an older file was removed); before a later one, those after the last
    /// record of the file before (it ended early). In salvage mode that is reported and
    /// replay goes on; otherwise it is an error naming the file that ends early, or the
    /// first file when the log starts late.
    fn check_gap(&mut self) -> Result<()> {
        let next = self.first_seq;
        let last = match (&self.prev, self.is_first) {
            (Some(prev), _) => prev.last,
            (None, true) => self.covered,
            // After damage (salvage) the records missing were already reported with it.
            (None, false) => return Ok(()),
        };
        if last.saturating_add(1) >= next || next - 1 <= self.covered {
            return Ok(());
        }
        let missing = format!("records {} to {} are missing", last + 1, next - 1);
        let err = match &self.prev {
            Some(prev) => Error::corrupt(
                &prev.path,
                prev.len,
                format!(
                    "the file ends after sequence number {last} but the next file starts at {next}: {missing}"
                ),
            ),
            None => Error::corrupt(
                self.path,
                0,
                format!(
                    "the oldest WAL file starts at sequence number {next} but segments hold records only up to {last}: {missing} (an older WAL file was removed)"
                ),
            ),
        };
        if self.salvage {
            self.report.salvaged.push(err);
            Ok(())
        } else {
            Err(err)
        }
    }

    fn run(&mut self, apply: &mut impl FnMut(Record<'_>) -> Result<()>) -> Result<End> {
        let path = self.path;
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?
            .len();
        self.file_len = file_len;
        let mut r = BufReader::with_capacity(1 << 20, file);

        if file_len < FILE_HEADER_LEN as u64 {
            let mut bytes = vec![0; file_len as usize];
            read_exact(&mut r, path, &mut bytes)?;
            if self.is_last() && record::is_partial_file_header(&bytes) {
                return Ok(self.torn(0, file_len, 0));
            }
            return Ok(End::Damaged(Error::corrupt(
                path,
                0,
                format!(
                    "the file is {file_len} bytes long, shorter than the {FILE_HEADER_LEN}-byte file header"
                ),
            )));
        }
        let mut header = [0u8; FILE_HEADER_LEN];
        read_exact(&mut r, path, &mut header)?;
        if let Err(err) = record::check_file_header(path, &header, self.db_tag) {
            // A file created just before a crash may hold zeros instead of its header.
            if self.is_last()
                && header == [0; FILE_HEADER_LEN]
                && zeros_from(&mut r, path, FILE_HEADER_LEN as u64)?
            {
                return Ok(self.torn(0, file_len, 0));
            }
            return Ok(End::Damaged(err));
        }
        self.check_gap()?;

        let mut pos = FILE_HEADER_LEN as u64;
        loop {
            let remaining = file_len - pos;
            if remaining == 0 {
                return Ok(End::Clean);
            }
            if remaining < RECORD_HEADER_LEN as u64 {
                if self.is_last() {
                    return self.torn_at(&mut r, pos, file_len);
                }
                return Ok(End::Damaged(Error::corrupt(
                    path,
                    pos,
                    format!(
                        "the file ends {remaining} bytes into a {RECORD_HEADER_LEN}-byte record header"
                    ),
                )));
            }
            let mut hb = [0u8; RECORD_HEADER_LEN];
            read_exact(&mut r, path, &mut hb)?;
            let h = RecordHeader::decode(&hb);
            let end = pos + RECORD_HEADER_LEN as u64 + u64::from(h.len);
            if end > file_len {
                if self.is_last() {
                    return self.torn_at(&mut r, pos, file_len);
                }
                return Ok(End::Damaged(Error::corrupt(
                    path,
                    pos,
                    format!(
                        "the record declares a {}-byte payload, running {} bytes past the end of the file",
                        h.len,
                        end - file_len
                    ),
                )));
            }
            if h.len as usize > MAX_PAYLOAD {
                return Ok(End::Damaged(Error::corrupt(
                    path,
                    pos,
                    format!(
                        "the record declares a {}-byte payload, more than the 1 GiB limit",
                        h.len
                    ),
                )));
            }
            // `end <= file_len`: the allocation is backed by bytes in the file.
            self.payload.clear();
            self.payload.resize(h.len as usize, 0);
            read_exact(&mut r, path, self.payload)?;
            if !h.checks(self.payload) {
                if self.is_last() && (end == file_len || zeros_from(&mut r, path, end)?) {
                    return self.torn_at(&mut r, pos, file_len);
                }
                let computed = record::checksum(h.len, h.seq, self.payload);
                return Ok(End::Damaged(Error::corrupt(
                    path,
                    pos,
                    format!(
                        "record checksum mismatch: stored {:#010x}, computed {computed:#010x}",
                        h.crc
                    ),
                )));
            }
            if let Some(last) = self.report.last_seq.filter(|&last| h.seq <= last) {
                return Ok(End::Damaged(Error::corrupt(
                    path,
                    pos,
                    format!(
                        "sequence number {} does not follow the previous record's {last}",
                        h.seq
                    ),
                )));
            }
            let expected = self
                .last_in_file
                .map_or(self.first_seq, |l| l.saturating_add(1));
            if h.seq != expected {
                return Ok(End::Damaged(Error::corrupt(
                    path,
                    pos,
                    format!(
                        "sequence number {} where {expected} was expected: records are numbered consecutively from the file's name",
                        h.seq
                    ),
                )));
            }
            apply(Record {
                seq: h.seq,
                payload: self.payload,
                path,
                offset: pos,
            })?;
            self.report.records += 1;
            self.report.last_seq = Some(h.seq);
            self.last_in_file = Some(h.seq);
            pos = end;
        }
    }

    /// A torn tail from `offset` to `file_len`, counting a record dropped unless the bytes
    /// there are all zero; but damage, not a torn tail, when an intact record follows
    /// (a crash tears only the end of the log: a damaged length field must not cut off the
    /// records after it).
    fn torn_at(&self, r: &mut BufReader<File>, offset: u64, file_len: u64) -> Result<End> {
        if zeros_from(r, self.path, offset)? {
            return Ok(self.torn(offset, file_len - offset, 0));
        }
        let min_seq = self.report.last_seq.map_or(self.first_seq, |s| s + 1);
        if let Some(at) = intact_record_after(r, self.path, offset, file_len, min_seq)? {
            return Ok(End::Damaged(Error::corrupt(
                self.path,
                offset,
                format!("the record is damaged, and an intact record follows at byte {at}"),
            )));
        }
        Ok(self.torn(offset, file_len - offset, 1))
    }

    fn torn(&self, offset: u64, bytes_dropped: u64, records_dropped: u64) -> End {
        End::Torn(TornTail {
            path: self.path.to_path_buf(),
            offset,
            bytes_dropped,
            records_dropped,
        })
    }
}

/// The offset of the first intact record after `offset` whose sequence number is at least
/// `min_seq` (and plausibly close to it), if any.
fn intact_record_after(
    r: &mut BufReader<File>,
    path: &Path,
    offset: u64,
    file_len: u64,
    min_seq: u64,
) -> Result<Option<u64>> {
    r.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("seeking in", path, e))?;
    let mut rest = Vec::with_capacity((file_len - offset) as usize);
    r.read_to_end(&mut rest)
        .map_err(|e| Error::io("reading", path, e))?;
    for start in 1..rest.len() {
        let Some(hb) = rest.get(start..start + RECORD_HEADER_LEN) else {
            break;
        };
        let h = RecordHeader::decode(hb.try_into().expect("header length"));
        let plausible = h.seq >= min_seq && h.seq - min_seq < (1 << 32);
        let end = start + RECORD_HEADER_LEN + h.len as usize;
        if plausible && end <= rest.len() && h.checks(&rest[start + RECORD_HEADER_LEN..end]) {
            return Ok(Some(offset + start as u64));
        }
    }
    Ok(None)
}

fn read_exact(r: &mut impl Read, path: &Path, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| Error::io("reading", path, e))
}

/// Whether the bytes of the file from `offset` to its end are all zero.
fn zeros_from(r: &mut BufReader<File>, path: &Path, offset: u64) -> Result<bool> {
    r.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("seeking in", path, e))?;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Cuts a torn tail off: truncates the file at the tail's offset and `fsync`s it, or
/// removes the file when not even its header is complete.
fn cut(tail: &TornTail, dir: &Path) -> Result<()> {
    let path = &tail.path;
    if tail.offset < FILE_HEADER_LEN as u64 {
        std::fs::remove_file(path).map_err(|e| Error::io("removing", path, e))?;
        return sync_dir(dir, None);
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    file.set_len(tail.offset)
        .map_err(|e| Error::io("truncating", path, e))?;
    file.sync_all().map_err(|e| Error::io("syncing", path, e))
}
