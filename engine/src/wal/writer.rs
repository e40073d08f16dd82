//! The appending side: [`Wal`], group commit, rotation and the interval sync thread.
//!
//! Two locks, always taken in this order when both are needed:
//!
//! - `writer` serialises appends and rotation (the current file, its length, the next
//!   sequence number);
//! - `sync` guards the durability bookkeeping: which file to `fsync`, how far records are
//!   written (`written_end`) and durable (`durable_end`), and whether a sync leader is at
//!   work. It is never held during I/O, so appends go on while a leader `fsync`s.
//!
//! Sequence numbers below `written_end` have been handed to the operating system, those
//! below `durable_end` are covered by a completed `fsync` that began after they were
//! written. A waiter becomes the leader if no `fsync` is running, syncs the current file up
//! to the `written_end` it saw when starting, and wakes everyone; waiters whose record is
//! covered return, the others elect a new leader.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::record::{self, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use super::{Durability, Faults, WalOptions, file_name, list_files, sync_dir};
use crate::error::{Error, Result};
use crate::fs::{Step, fault};

/// Reused record buffers above this capacity are freed after the append, so that one
/// huge write does not pin its size in memory.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// An open write-ahead log, appending to the newest file of its directory.
///
/// `Wal` is `Send + Sync`: appends are serialised inside, and any number of threads may
/// wait for durability at once. Dropping it [`close`](Wal::close)s it, ignoring errors.
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    flusher: Mutex<Option<Flusher>>,
}

/// The interval sync thread and the channel that stops it (by being dropped).
#[derive(Debug)]
struct Flusher {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

/// What the [`Wal`] handle and the interval thread share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    durability: Durability,
    max_file_bytes: u64,
    faults: Option<Arc<dyn Faults>>,
    /// Written into each new file's header.
    db_tag: u32,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    /// Signalled whenever a sync leader finishes (successfully or not).
    synced: Condvar,
    /// Set once by the first failed write or `fsync`: the error's text.
    poison: OnceLock<String>,
    /// `fsync`s of WAL files completed so far.
    sync_count: AtomicU64,
}

/// The appending state, under the `writer` lock.
#[derive(Debug)]
struct Writer {
    file: Arc<File>,
    path: Arc<Path>,
    /// First sequence number of the current file (its name).
    first_seq: u64,
    /// Bytes in the current file.
    len: u64,
    /// Records in the current file.
    records: u64,
    next_seq: u64,
    /// Reused for framing records.
    buf: Vec<u8>,
    closed: bool,
}

/// The durability bookkeeping, under the `sync` lock.
#[derive(Debug)]
struct SyncState {
    /// The file a leader `fsync`s: the current file.
    file: Arc<File>,
    path: Arc<Path>,
    /// Every record with a smaller sequence number has been written.
    written_end: u64,
    /// Every record with a smaller sequence number is durable.
    durable_end: u64,
    /// A leader is `fsync`ing.
    syncing: bool,
}

impl Wal {
    /// Creates the directory if needed and a new WAL file in it whose first record will
    /// have sequence number `next_seq`; never appends to existing files.
    ///
    /// Call it after [`replay`](super::replay), with `next_seq` past the last replayed
    /// record. Files left empty by a crash (no records) named `next_seq` or later are
    /// removed; a file named `next_seq` or later that holds records is refused with
    /// [`Error::InvalidInput`], since its sequence numbers would be reused.
    /// `Durability::Interval(0)` is also refused.
    pub fn create(dir: &Path, next_seq: u64, options: WalOptions) -> Result<Wal> {
        let WalOptions {
            durability,
            max_file_bytes,
            faults,
            db_tag,
        } = options;
        if durability == Durability::Interval(Duration::ZERO) {
            return Err(Error::InvalidInput(
                "the write-ahead log's sync interval must be more than zero; use Durability::Always to sync every write".into(),
            ));
        }
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent, faults.as_deref())?;
            }
        }
        let mut header_only = Vec::new();
        for (first_seq, path) in list_files(dir)? {
            if first_seq < next_seq {
                continue;
            }
            // Only a file holding at most a header (what a crash right after a rotation
            // leaves) may go; anything else would have its sequence numbers reused.
            let bytes = read_at_most(&path, FILE_HEADER_LEN + 1)?;
            if !record::is_partial_file_header(&bytes) {
                return Err(Error::InvalidInput(format!(
                    "cannot start the write-ahead log at sequence number {next_seq}: {} already exists and holds records from sequence number {first_seq} on; start after the last replayed record",
                    path.display()
                )));
            }
            if first_seq > next_seq {
                header_only.push(path);
            }
        }
        // The new file replaces a header-only file of the same name in one rename, so
        // that a file the manifest names as created exists at every moment; later
        // header-only files go once it is in place.
        let (file, path) = create_file_replacing(dir, next_seq, db_tag, faults.as_deref())?;
        let mut removed = false;
        for stale in header_only {
            std::fs::remove_file(&stale).map_err(|e| Error::io("removing", &stale, e))?;
            removed = true;
        }
        // Temporary files of creations a crash or failure interrupted.
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
            if entry.file_name().to_string_lossy().ends_with(".wal.tmp") {
                let stale = entry.path();
                std::fs::remove_file(&stale).map_err(|e| Error::io("removing", &stale, e))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(dir, faults.as_deref())?;
        }
        let file = Arc::new(file);
        let path: Arc<Path> = path.into();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            durability,
            max_file_bytes,
            faults,
            db_tag,
            writer: Mutex::new(Writer {
                file: file.clone(),
                path: path.clone(),
                first_seq: next_seq,
                len: FILE_HEADER_LEN as u64,
                records: 0,
                next_seq,
                buf: Vec::new(),
                closed: false,
            }),
            sync: Mutex::new(SyncState {
                file,
                path,
                written_end: next_seq,
                durable_end: next_seq,
                syncing: false,
            }),
            synced: Condvar::new(),
            poison: OnceLock::new(),
            sync_count: AtomicU64::new(0),
        });
        let flusher = match durability {
            Durability::Interval(every) => Some(Flusher::spawn(shared.clone(), every)?),
            Durability::Always | Durability::Never => None,
        };
        Ok(Wal {
            shared,
            flusher: Mutex::new(flusher),
        })
    }

    /// Appends one record holding `payload` with the next sequence number, and returns
    /// that number. Does not wait for the disk: see [`Wal::wait_durable`].
    ///
    /// If the record would take the current file past
    /// [`WalOptions::max_file_bytes`], the current file is first `fsync`ed and a new one,
    /// named by this record's sequence number, is started. A payload over 1 GiB is
    /// [`Error::InvalidInput`]; a failed write poisons the log
    /// ([`Error::Poisoned`], now and for every later call); after [`Wal::close`] appends
    /// are [`Error::ReadOnly`].
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        record::check_payload_len(payload.len())?;
        let s = &*self.shared;
        let mut w = s.writer.lock();
        s.check_poison()?;
        if w.closed {
            return Err(Error::ReadOnly("closed"));
        }
        let seq = w.next_seq;
        if seq == u64::MAX {
            return Err(Error::InvalidInput(
                "the write-ahead log has run out of sequence numbers".into(),
            ));
        }
        let record_len = (RECORD_HEADER_LEN + payload.len()) as u64;
        if w.records > 0 && w.len.saturating_add(record_len) > s.max_file_bytes {
            s.rotate(&mut w)?;
        }
        let w = &mut *w;
        record::encode(seq, payload, &mut w.buf);
        if let Err(e) = s.write(&w.file, &w.path, &w.buf) {
            return Err(s.poison(e));
        }
        if w.buf.capacity() > KEEP_BUFFER_BYTES {
            w.buf = Vec::new();
        }
        w.len += record_len;
        w.records += 1;
        w.next_seq = seq + 1;
        s.sync.lock().written_end = seq + 1;
        Ok(seq)
    }

    /// Blocks until the record `seq` (returned by [`Wal::append`]) is durable, as the
    /// [`Durability`] setting defines it.
    ///
    /// With [`Durability::Always`] it returns after an `fsync` that began after the record
    /// was written has succeeded; concurrent callers share `fsync`s (group commit). With
    /// `Interval` and `Never` it returns at once. In every mode a poisoned log returns
    /// [`Error::Poisoned`], and a `seq` not yet appended is [`Error::InvalidInput`].
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        self.shared.check_poison()?;
        match self.shared.durability {
            Durability::Always => self.shared.sync_until(Some(seq)),
            Durability::Interval(_) | Durability::Never => Ok(()),
        }
    }

    /// `fsync`s every record appended so far (waiting for, or joining, an `fsync` already
    /// running). Used on flush and close, and by the interval thread. A failure poisons
    /// the log.
    pub fn sync(&self) -> Result<()> {
        self.shared.sync_until(None)
    }

    /// Removes the WAL files all of whose records have sequence numbers below
    /// `min_live_seq` (they are all in segment files), never the current file, and
    /// returns how many it removed.
    ///
    /// A file holds the sequence numbers from its name up to the next file's name, so a
    /// file is removed when the next file's name is at most `min_live_seq`.
    pub fn remove_obsolete(&self, min_live_seq: u64) -> Result<usize> {
        let s = &*self.shared;
        let current = s.writer.lock().first_seq;
        let files = list_files(&s.dir)?;
        let mut removed = 0;
        for pair in files.windows(2) {
            let ((first_seq, path), (next_first_seq, _)) = (&pair[0], &pair[1]);
            if *first_seq >= current || *next_first_seq > min_live_seq {
                break;
            }
            match std::fs::remove_file(path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", path, e)),
            }
        }
        if removed > 0 {
            sync_dir(&s.dir, s.faults.as_deref())?;
        }
        Ok(removed)
    }

    /// The name of the file appended to now: the first sequence number it may hold. Every
    /// file named before it was completely created; replay checks that a file named at
    /// least this still exists ([`ReplayOptions::newest_file`]).
    ///
    /// [`ReplayOptions::newest_file`]: super::ReplayOptions::newest_file
    pub fn current_file(&self) -> u64 {
        self.shared.writer.lock().first_seq
    }

    /// The sequence number the next [`Wal::append`] will return.
    pub fn next_seq(&self) -> u64 {
        self.shared.writer.lock().next_seq
    }

    /// How many `fsync`s of WAL files have completed (group-commit leaders, the interval
    /// thread, [`Wal::sync`] and rotation), for tests and metrics.
    pub fn sync_count(&self) -> u64 {
        self.shared.sync_count.load(Ordering::Relaxed)
    }

    /// Refuses further appends, stops the interval thread and `fsync`s what was written.
    /// Calling it again only repeats the sync; dropping the `Wal` calls it.
    pub fn close(&self) -> Result<()> {
        self.shared.writer.lock().closed = true;
        if let Some(Flusher { stop, handle }) = self.flusher.lock().take() {
            drop(stop);
            // The thread only syncs; if it panicked, the sync below reports the state.
            let _ = handle.join();
        }
        self.sync()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Shared {
    fn check_poison(&self) -> Result<()> {
        match self.poison.get() {
            Some(msg) => Err(Error::Poisoned(msg.clone())),
            None => Ok(()),
        }
    }

    /// Records a failed write or `fsync` (the first one wins), wakes all waiters, and
    /// returns the error to give the failing caller. Must not be called with the `sync`
    /// lock held.
    fn poison(&self, err: Error) -> Error {
        let msg = err.to_string();
        let _ = self.poison.set(msg.clone());
        let _guard = self.sync.lock();
        self.synced.notify_all();
        Error::Poisoned(msg)
    }

    /// Writes `buf` to `file` at its position, through the fault hook.
    fn write(&self, mut file: &File, path: &Path, buf: &[u8]) -> Result<()> {
        if let Some(f) = &self.faults {
            f.before_write(path)
                .map_err(|e| Error::io("writing", path, e))?;
        }
        file.write_all(buf)
            .map_err(|e| Error::io("writing", path, e))
    }

    /// `fsync`s a WAL file's data, through the fault hook, and counts it.
    fn fsync(&self, file: &File, path: &Path) -> Result<()> {
        if let Some(f) = &self.faults {
            f.before_sync(path)
                .map_err(|e| Error::io("syncing", path, e))?;
        }
        file.sync_data()
            .map_err(|e| Error::io("syncing", path, e))?;
        self.sync_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Starts a new file at `w.next_seq`: `fsync`s the current one, creates the new one
    /// (header, `fsync`, directory `fsync`) and switches to it. Any failure poisons.
    fn rotate(&self, w: &mut MutexGuard<'_, Writer>) -> Result<()> {
        if let Err(e) = self.fsync(&w.file, &w.path) {
            return Err(self.poison(e));
        }
        let (file, path) =
            match create_file(&self.dir, w.next_seq, self.db_tag, self.faults.as_deref()) {
                Ok(created) => created,
                Err(e) => return Err(self.poison(e)),
            };
        w.file = Arc::new(file);
        w.path = path.into();
        w.first_seq = w.next_seq;
        w.len = FILE_HEADER_LEN as u64;
        w.records = 0;
        let mut st = self.sync.lock();
        // Everything before the new file was covered by the `fsync` above.
        st.durable_end = st.durable_end.max(w.next_seq);
        st.file = w.file.clone();
        st.path = w.path.clone();
        drop(st);
        self.synced.notify_all();
        Ok(())
    }

    /// Waits until the record `seq` (or, for `None`, every record written by now) is
    /// durable, becoming the `fsync` leader when no `fsync` is running.
    fn sync_until(&self, seq: Option<u64>) -> Result<()> {
        let mut st = self.sync.lock();
        let end = match seq {
            Some(seq) if seq >= st.written_end => {
                return Err(Error::InvalidInput(format!(
                    "sequence number {seq} has not been appended to the write-ahead log yet (the next is {})",
                    st.written_end
                )));
            }
            Some(seq) => seq + 1,
            None => st.written_end,
        };
        loop {
            self.check_poison()?;
            if st.durable_end >= end {
                return Ok(());
            }
            if st.syncing {
                self.synced.wait(&mut st);
                continue;
            }
            // Become the leader: everything written by now will be covered.
            st.syncing = true;
            let target = st.written_end;
            let (file, path) = (st.file.clone(), st.path.clone());
            let result = MutexGuard::unlocked(&mut st, || self.fsync(&file, &path));
            st.syncing = false;
            let result = match result {
                Ok(()) => {
                    st.durable_end = st.durable_end.max(target);
                    Ok(())
                }
                Err(e) => {
                    let msg = e.to_string();
                    let _ = self.poison.set(msg.clone());
                    Err(Error::Poisoned(msg))
                }
            };
            self.synced.notify_all();
            result?;
        }
    }
}

impl Flusher {
    /// Starts the thread that syncs every `every` until the returned `Flusher`'s sender is
    /// dropped or the log is poisoned.
    fn spawn(shared: Arc<Shared>, every: Duration) -> Result<Flusher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let dir = shared.dir.clone();
        let handle = std::thread::Builder::new()
            .name("sextant-wal-sync".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failure poisons the log; the next append reports it.
                    if shared.sync_until(None).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io("starting the sync thread for", dir, e))?;
        Ok(Flusher { stop, handle })
    }
}

/// The first `limit` bytes of the file at `path` (fewer if it is shorter).
fn read_at_most(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut bytes = Vec::with_capacity(limit);
    file.take(limit as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(bytes)
}

/// Creates the WAL file named `first_seq` holding only its header, as a temporary file
/// renamed into place and made durable (file and directory `fsync`): a file of that
/// name (a header-only leftover) is replaced atomically, never missing in between.
fn create_file_replacing(
    dir: &Path,
    first_seq: u64,
    db_tag: u32,
    faults: Option<&dyn Faults>,
) -> Result<(File, PathBuf)> {
    let path = dir.join(file_name(first_seq));
    let tmp = dir.join(format!("{}.tmp", file_name(first_seq)));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("creating", &tmp, e))?;
    write_header(&mut file, &tmp, db_tag, faults)?;
    fault(faults, Step::Rename, &tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))?;
    sync_dir(dir, faults)?;
    Ok((file, path))
}

/// Creates the WAL file for `first_seq` (failing if it exists), writes its header and
/// makes both durable (file and directory `fsync`).
fn create_file(
    dir: &Path,
    first_seq: u64,
    db_tag: u32,
    faults: Option<&dyn Faults>,
) -> Result<(File, PathBuf)> {
    let path = dir.join(file_name(first_seq));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("creating", &path, e))?;
    write_header(&mut file, &path, db_tag, faults)?;
    sync_dir(dir, faults)?;
    Ok((file, path))
}

/// Writes the file header of the database tagged `db_tag` to the new file at `path` and
/// `fsync`s it, asking the test hook before each step.
fn write_header(
    file: &mut File,
    path: &Path,
    db_tag: u32,
    faults: Option<&dyn Faults>,
) -> Result<()> {
    fault(faults, Step::Write, path)?;
    file.write_all(&record::file_header(db_tag))
        .map_err(|e| Error::io("writing", path, e))?;
    fault(faults, Step::Sync, path)?;
    file.sync_all().map_err(|e| Error::io("syncing", path, e))
}
