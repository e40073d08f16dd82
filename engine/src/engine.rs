//! The engine: open, write, flush, read, close.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arrow_array::RecordBatch;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::batch::{Point, TableBatch, payload, point::batches_from_points};
mod budget;
mod compact;
mod flush;
mod forget;
mod write;

use crate::compaction::CompactionStats;
use crate::config::Config;
use crate::encoding;
use crate::error::{Error, Result};
use crate::head::Chunk;
use crate::lifecycle::Lifecycles;
use crate::manifest::Manifest;
use crate::scan::Source;
use crate::schema::{TableKind, TableSchema};
use crate::snapshot::{Snapshot, TableView};
use crate::table::{Table, check_kind, freeze, new_table};
use crate::wal::{self, TornTail, Wal, WalOptions};

/// An open database. `Send + Sync`: share it (`Arc<Engine>`) among writing and reading
/// threads.
///
/// Closing flushes every table into segments; [`Engine::close`] reports errors, dropping
/// the engine closes it and ignores them.
#[derive(Debug)]
pub struct Engine {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    compactor: Mutex<Option<JoinHandle<()>>>,
}

/// What opening the database found and repaired.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// WAL records replayed into memory.
    pub wal_records_replayed: u64,
    /// WAL records (table batches) skipped because their rows were already in segments.
    pub wal_batches_skipped: u64,
    /// A torn last WAL record, cut off.
    pub torn_tail: Option<TornTail>,
    /// Unfinished segment files (`*.tmp`) removed.
    pub temp_files_removed: usize,
    /// Segment files the manifest does not list (a crash came before a flush or
    /// compaction recorded them, or before its inputs were removed), removed.
    pub leftover_segments_removed: usize,
    /// In salvage mode: what was damaged and skipped.
    pub damaged: Vec<String>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: Config,
    codec: encoding::Options,
    /// None when opened read-only for salvage.
    wal: Option<Wal>,
    /// Orders WAL appends and head inserts, so that the head holds writes in WAL order.
    order: Mutex<()>,
    tables: RwLock<BTreeMap<String, Arc<Table>>>,
    /// Every write with a sequence number up to this is visible to new snapshots.
    visible: AtomicU64,
    /// Serialises segment writing.
    flush_lock: Mutex<()>,
    /// The live segments; held while a table's segment list changes, so that the list
    /// and the manifest on disk change together (taken before a table's state lock).
    manifest: Mutex<Manifest>,
    /// The manifest's lifecycle settings and deletes, as readers apply them. Changed only
    /// under the manifest lock and `order` (after the manifest is stored); never held while
    /// taking another lock.
    lifecycles: RwLock<Lifecycles>,
    /// Serialises compaction (background and requested).
    compact_lock: Mutex<()>,
    /// What flushes and compaction have written.
    stats: Mutex<CompactionStats>,
    /// Since when the background compactor has had merges due without catching up.
    behind_since: Mutex<Option<std::time::Instant>>,
    /// Memory of frozen heads flushed, and the time their flushes took: for telling a
    /// writer held back by the memory budget how long to wait.
    flushed_memory: Mutex<(u64, Duration)>,
    /// Memory reserved by others sharing the budget (the queries of a `Database`).
    reserved: AtomicUsize,
    /// The newest WAL file a stored manifest names (`Manifest::wal_newest`): a write
    /// that lands in a newer one (made by a rotation) stores the manifest before it
    /// returns.
    wal_noted: AtomicU64,
    /// Set by shutdown's last manifest store (under the manifest lock), which names no
    /// WAL file because it removes them all: no later store may name one again.
    manifest_final: AtomicBool,
    /// Wakes the background compactor.
    wake_compactor: (Mutex<bool>, Condvar),
    /// Clock time (ns) of the last write: background compaction paces itself while writes
    /// are arriving.
    last_write: AtomicI64,
    /// Wakes the background flusher.
    wake: (Mutex<bool>, Condvar),
    closed: AtomicBool,
    report: RecoveryReport,
    _lock: File,
}

impl Engine {
    /// Opens the database in `config.path`, creating it if missing, and replays its
    /// write-ahead log.
    pub fn open(config: Config) -> Result<Engine> {
        let dir = config.path.clone();
        crate::fs::create_dir(&dir, config.faults.as_deref())?;
        let lock = lock_dir(&dir, config.salvage)?;
        let mut report = RecoveryReport::default();
        let tables_dir = dir.join("tables");
        let (mut manifest, mut tables) = crate::table::open_tables(&dir, &config, &mut report)?;
        // Written into WAL file headers, so that a file of another database is refused.
        let db_tag = manifest.db_id as u32;

        // Replay the WAL into the heads.
        let wal_dir = dir.join("wal");
        let now = config.clock.now_nanos();
        let mut max_seq = tables
            .values()
            .map(|t| t.state.read().flushed_seq)
            .max()
            .unwrap_or(0);
        let covered = max_seq;
        let salvage = config.salvage;
        let mode = match (salvage, config.strict_recovery) {
            (true, _) => wal::Recovery::Salvage,
            (false, true) => wal::Recovery::Strict,
            (false, false) => wal::Recovery::Repair,
        };
        let options = wal::ReplayOptions {
            mode,
            covered,
            db_tag: Some(db_tag),
            newest_file: manifest.wal_newest,
        };
        let replay = wal::replay_with(&wal_dir, &options, |record| {
            max_seq = max_seq.max(record.seq);
            match replay_record(&record, &mut tables, &tables_dir, &manifest.lifecycles, now) {
                Ok((applied, skipped)) => {
                    report.wal_records_replayed += u64::from(applied);
                    report.wal_batches_skipped += skipped;
                    Ok(())
                }
                // Salvage skips a record that does not fit, and says so.
                Err(e @ Error::Corrupt { .. }) if salvage => {
                    report.damaged.push(e.to_string());
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })?;
        report.torn_tail = replay.torn_tail;
        if config.series_limit.is_some() {
            for t in tables.values() {
                let mut state = t.state.write();
                let state = &mut *state;
                for s in &state.segments {
                    state
                        .series
                        .extend(s.meta().series.iter().map(|m| m.key.clone()));
                }
                for c in &state.head.chunks {
                    state.series.extend(c.series.iter().cloned());
                }
            }
        }
        report
            .damaged
            .extend(replay.salvaged.iter().map(|e| e.to_string()));

        let wal = if config.salvage {
            None
        } else {
            let options = WalOptions {
                durability: config.durability,
                max_file_bytes: config.wal_file_bytes,
                faults: config.faults.clone(),
                db_tag,
            };
            let wal = Wal::create(&wal_dir, max_seq + 1, options)?;
            // From now on the new file must exist on open: deleting it loses writes.
            manifest.wal_newest = wal.current_file();
            manifest.store(&dir, config.faults.as_deref())?;
            Some(wal)
        };
        let codec = encoding::Options {
            zstd_level: config.zstd_level,
            ..encoding::Options::default()
        };
        let wal_noted = manifest.wal_newest;
        let inner = Arc::new(Inner {
            dir,
            codec,
            wal,
            order: Mutex::new(()),
            tables: RwLock::new(tables),
            visible: AtomicU64::new(max_seq),
            flush_lock: Mutex::new(()),
            lifecycles: RwLock::new(manifest.lifecycles.clone()),
            manifest: Mutex::new(manifest),
            wake: (Mutex::new(false), Condvar::new()),
            closed: AtomicBool::new(false),
            last_write: AtomicI64::new(i64::MIN),
            compact_lock: Mutex::new(()),
            stats: Mutex::new(CompactionStats::default()),
            behind_since: Mutex::new(None),
            flushed_memory: Mutex::new((0, Duration::ZERO)),
            reserved: AtomicUsize::new(0),
            wal_noted: AtomicU64::new(wal_noted),
            manifest_final: AtomicBool::new(false),
            wake_compactor: (Mutex::new(false), Condvar::new()),
            report,
            _lock: lock,
            config,
        });
        let flusher = (inner.config.background_flush && inner.wal.is_some()).then(|| {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("sextant-flush".into())
                .spawn(move || inner.background())
                .expect("spawning the flush thread")
        });
        let compactor = (inner.config.compaction.background && inner.wal.is_some()).then(|| {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("sextant-compact".into())
                .spawn(move || inner.background_compaction())
                .expect("spawning the compaction thread")
        });
        Ok(Engine {
            inner,
            flusher: Mutex::new(flusher),
            compactor: Mutex::new(compactor),
        })
    }

    /// What opening found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Writes points (rows for metric or event tables) atomically: all become visible
    /// and durable together, or none do. Points without a time get the clock's.
    pub fn write_points(&self, points: &[Point]) -> Result<()> {
        let now = self.inner.config.clock.now_nanos();
        self.write_batches(batches_from_points(points, now)?)
    }

    /// Writes an Arrow batch into `table` atomically (see [`TableBatch::from_arrow`] for
    /// how columns are read).
    pub fn write_arrow(&self, table: &str, kind: TableKind, batch: &RecordBatch) -> Result<()> {
        self.write_batches(vec![TableBatch::from_arrow(table, kind, batch)?])
    }

    /// Writes table batches atomically, as one WAL record.
    pub fn write_batches(&self, batches: Vec<TableBatch>) -> Result<()> {
        self.inner.write(batches)
    }

    /// A consistent view of every table for reading, including rows not yet flushed.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// The schema `table` has now, if it exists; cheaper than a snapshot, which also
    /// waits for writers between tables and gathers every table's segments and chunks.
    pub fn schema(&self, table: &str) -> Option<Arc<TableSchema>> {
        let tables = self.inner.tables.read();
        let schema = Arc::clone(&tables.get(table)?.state.read().schema);
        Some(schema)
    }

    /// Writes every table's in-memory rows into segments and waits until they are durable.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_all()
    }

    /// Flushes `table`'s rows in memory, removes its segments whose rows have all expired,
    /// then merges each of its time windows' adjacent segments into one, leaving out
    /// deleted and expired rows (see [`compaction`](crate::compaction)), now, whatever the
    /// policy would wait for. Readers and writers go on meanwhile; snapshots taken before keep
    /// reading the old segments, whose files are removed once no snapshot uses them.
    pub fn compact(&self, table: &str) -> Result<()> {
        let t = self
            .inner
            .tables
            .read()
            .get(table)
            .cloned()
            .ok_or_else(|| Error::NoSuchTable(table.to_string()))?;
        {
            let _order = self.inner.order.lock();
            freeze(&mut t.state.write());
        }
        self.inner.flush_table(&t)?;
        // One reference time for the whole request, and no segment rewritten twice for
        // expired rows, so that it ends even while rows keep arriving.
        let now = self.inner.config.clock.now_nanos();
        let fresh_from = self.inner.manifest.lock().next_segment_id;
        self.inner.expire_segments(&t, now)?;
        while self.inner.compact_once(&t, true, now, fresh_from)? {}
        Ok(())
    }

    /// Bytes of rows held in memory, across every table (heads and heads being flushed).
    /// [`Config::memory_budget`] bounds these and the memory reserved with
    /// [`Engine::try_reserve_memory`] together.
    pub fn memory_used(&self) -> usize {
        self.inner.memory_used()
    }

    /// The database's memory budget ([`Config::memory_budget`]), if it has one.
    pub fn memory_budget(&self) -> Option<usize> {
        self.inner.config.memory_budget
    }

    /// Reserves `bytes` of the memory budget for work outside the engine that shares it
    /// (the SQL layer's queries: sorts, joins, aggregations), or fails with
    /// [`Error::MemoryBudget`] when rows in memory and what is already reserved leave no
    /// room. Rows written later see the reservation: writes near the budget get
    /// [`Error::Backpressure`]. Without a budget it always succeeds. Give the bytes back
    /// with [`Engine::release_memory`].
    pub fn try_reserve_memory(&self, bytes: usize) -> Result<()> {
        self.inner.try_reserve(bytes)
    }

    /// Reserves `bytes` even past the budget (for memory already taken that cannot be
    /// refused); see [`Engine::try_reserve_memory`].
    pub fn reserve_memory(&self, bytes: usize) {
        self.inner.reserved.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Gives back `bytes` reserved with [`Engine::try_reserve_memory`] or
    /// [`Engine::reserve_memory`].
    pub fn release_memory(&self, bytes: usize) {
        self.inner.release(bytes);
    }

    /// Bytes reserved with [`Engine::try_reserve_memory`] and not yet released.
    pub fn memory_reserved(&self) -> usize {
        self.inner.reserved.load(Ordering::Relaxed)
    }

    /// The live segments of `table`, oldest first, with their compaction levels: what
    /// compaction has made of the table. [`Snapshot::stats`](crate::Snapshot::stats) has
    /// their contents.
    pub fn segments(&self, table: &str) -> Result<Vec<crate::SegmentInfo>> {
        self.inner.segment_infos(table)
    }

    /// What flushes and compaction have written since the database was opened.
    pub fn compaction_stats(&self) -> CompactionStats {
        let mut stats = *self.inner.stats.lock();
        stats.behind = self
            .inner
            .behind_since
            .lock()
            .map_or(Duration::ZERO, |t| t.elapsed());
        stats
    }

    /// Flushes every table, syncs and closes the WAL, and stops background work.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// [`close`](Engine::close) through a shared handle, for an engine that something
    /// else still holds (a query's stream, a session's tables): flushes every table,
    /// syncs and closes the WAL, stops background work. Later writes fail with
    /// [`Error::ReadOnly`]; reads go on. Closing again does nothing.
    pub fn shutdown(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        {
            let (lock, cv) = &self.inner.wake;
            *lock.lock() = true;
            cv.notify_all();
        }
        {
            let (lock, cv) = &self.inner.wake_compactor;
            *lock.lock() = true;
            cv.notify_all();
        }
        if let Some(handle) = self.flusher.lock().take() {
            let _ = handle.join();
        }
        if let Some(handle) = self.compactor.lock().take() {
            let _ = handle.join();
        }
        let Some(wal) = &self.inner.wal else {
            return Ok(());
        };
        // A write checks `closed` again under `order` before it appends: once this lock
        // has been taken, every write has either put its rows in a head (flushed below)
        // or been refused.
        drop(self.inner.order.lock());
        let flushed = self.inner.flush_all();
        let closed = wal.close();
        flushed.and(closed)?;
        // Every row is in a segment now, so no WAL file holds anything still needed: the
        // manifest stops asking for one, and they go.
        {
            let mut manifest = self.inner.manifest.lock();
            self.inner.manifest_final.store(true, Ordering::SeqCst);
            manifest.wal_newest = 0;
            manifest.store(&self.inner.dir, self.inner.config.faults.as_deref())?;
        }
        let wal_dir = self.inner.dir.join("wal");
        for (_, path) in wal::list_files(&wal_dir)? {
            std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        }
        crate::fs::sync_dir_with(&wal_dir, self.inner.config.faults.as_deref())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Inner {
    /// Writes the manifest, recording the WAL file appended to now as one that must
    /// exist on the next open.
    /// Refused once shutdown has stored its last manifest (a retention change, delete or
    /// compaction asked for after close).
    fn store_manifest(&self, manifest: &mut Manifest) -> Result<()> {
        if self.manifest_final.load(Ordering::SeqCst) {
            return Err(Error::ReadOnly("closed"));
        }
        if let Some(wal) = &self.wal {
            manifest.wal_newest = wal.current_file();
        }
        manifest.store(&self.dir, self.config.faults.as_deref())?;
        self.wal_noted
            .fetch_max(manifest.wal_newest, Ordering::AcqRel);
        Ok(())
    }

    fn wal(&self) -> Result<&Wal> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::ReadOnly("closed"));
        }
        self.wal
            .as_ref()
            .ok_or(Error::ReadOnly("open read-only for salvage"))
    }

    fn snapshot(&self) -> Snapshot {
        // Writers hold `order` while they add a write's rows to its tables, and flushes
        // raise `visible` only under it or for rows already added: holding it here means
        // a snapshot never sees part of a write that spans tables.
        let _order = self.order.lock();
        let visible = self.visible.load(Ordering::Acquire);
        let tables = self.tables.read();
        let lifecycles = self.lifecycles.read();
        let now = self.config.clock.now_nanos();
        let mut views = BTreeMap::new();
        for (name, table) in tables.iter() {
            let state = table.state.read();
            let mut sources: Vec<Source> = state
                .segments
                .iter()
                .map(|s| Source::Segment(Arc::clone(s)))
                .collect();
            let chunks = state
                .frozen
                .iter()
                .flat_map(|f| f.chunks.iter())
                .chain(&state.head.chunks);
            sources.extend(
                chunks
                    .filter(|c| c.max_seq <= visible)
                    .map(|c| Source::Chunk(Arc::clone(c))),
            );
            if sources.is_empty() && state.schema.columns.len() == 1 {
                continue;
            }
            let hide = forget::hide(lifecycles.get(name), &state, sources.len(), now);
            views.insert(
                name.clone(),
                TableView {
                    schema: Arc::clone(&state.schema),
                    sources,
                    hide,
                },
            );
        }
        Snapshot { tables: views }
    }
}

/// Applies one WAL record to the tables' heads: every batch is checked before any is
/// applied, so a record that does not fit is applied not at all. Returns whether any
/// batch was applied and how many were skipped as already in segments.
fn replay_record(
    record: &wal::Record<'_>,
    tables: &mut BTreeMap<String, Arc<Table>>,
    tables_dir: &Path,
    lifecycles: &Lifecycles,
    now: i64,
) -> Result<(bool, u64)> {
    let seq = record.seq;
    let damaged = |what: String| Error::corrupt(record.path, record.offset, what);
    let batches = payload::decode(record.payload).map_err(|e| {
        damaged(format!(
            "WAL record {seq} passed its checksum but does not decode: {e}"
        ))
    })?;
    let mut todo = Vec::with_capacity(batches.len());
    let mut skipped = 0;
    for batch in batches {
        let existing = tables.get(&batch.table);
        if let Some(t) = existing {
            let state = t.state.read();
            if seq <= state.flushed_seq {
                skipped += 1;
                continue;
            }
            check_kind(&state.schema, batch.kind)
                .and_then(|()| state.schema.check_extension(&batch.columns).map(drop))
                .map_err(|e| damaged(format!("WAL record {seq} conflicts with the table: {e}")))?;
        }
        todo.push(batch);
    }
    let applied = !todo.is_empty();
    for batch in todo {
        let table = tables
            .entry(batch.table.clone())
            .or_insert_with(|| Arc::new(new_table(tables_dir, &batch.table, batch.kind)));
        let mut state = table.state.write();
        let new = state
            .schema
            .check_extension(&batch.columns)
            .map_err(|e| damaged(format!("WAL record {seq} conflicts with the table: {e}")))?;
        if !new.is_empty() {
            let mut schema = (*state.schema).clone();
            schema.extend(new);
            state.schema = Arc::new(schema);
        }
        if let Some(&t) = batch.time().values().iter().max() {
            state.newest = state.newest.max(t);
        }
        // Deletes issued after this record was written apply to its rows (before the
        // head may coalesce it with records written after them).
        let mut chunk = Chunk::new(seq, batch);
        for d in lifecycles
            .get(&chunk.batch.table)
            .into_iter()
            .flat_map(|l| &l.deletes)
            .filter(|d| seq <= d.seq)
        {
            if let Some(kept) = crate::lifecycle::filter_chunk(&chunk, &d.delete)? {
                chunk = kept;
            }
        }
        state.head.push(chunk, now, seq);
    }
    Ok((applied, skipped))
}

fn lock_dir(dir: &Path, shared: bool) -> Result<File> {
    let path = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    let locked = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
    }
}
