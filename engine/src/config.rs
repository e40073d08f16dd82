//! Options for opening an engine.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::Result;
use crate::wal::{Durability, Faults};

/// Where the engine reads the time: rows written without a time get it, and the age of
/// unflushed rows is measured by it. Tests pass their own to control time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// How to open a database: `Config::new(path).durability(..).open()`.
#[derive(Clone)]
pub struct Config {
    pub(crate) path: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) flush_bytes: usize,
    pub(crate) flush_age: Duration,
    pub(crate) block_rows: u32,
    pub(crate) zstd_level: i32,
    pub(crate) wal_file_bytes: u64,
    pub(crate) salvage: bool,
    pub(crate) strict_recovery: bool,
    pub(crate) series_limit: Option<usize>,
    pub(crate) memory_budget: Option<usize>,
    pub(crate) background_flush: bool,
    pub(crate) compaction: crate::compaction::Policy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) faults: Option<Arc<dyn Faults>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("flush_bytes", &self.flush_bytes)
            .field("flush_age", &self.flush_age)
            .field("block_rows", &self.block_rows)
            .field("zstd_level", &self.zstd_level)
            .field("wal_file_bytes", &self.wal_file_bytes)
            .field("salvage", &self.salvage)
            .field("strict_recovery", &self.strict_recovery)
            .field("series_limit", &self.series_limit)
            .field("memory_budget", &self.memory_budget)
            .field("background_flush", &self.background_flush)
            .field("compaction", &self.compaction)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Options for the database in directory `path` (created if missing), with defaults.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Config {
            path: path.as_ref().to_path_buf(),
            durability: Durability::Interval(Duration::from_secs(1)),
            flush_bytes: 64 << 20,
            flush_age: Duration::from_secs(600),
            block_rows: 16384,
            zstd_level: crate::encoding::Options::default().zstd_level,
            wal_file_bytes: 64 << 20,
            salvage: false,
            strict_recovery: false,
            series_limit: None,
            memory_budget: None,
            background_flush: true,
            compaction: crate::compaction::Policy::default(),
            clock: Arc::new(SystemClock),
            faults: None,
        }
    }

    /// When a write is durable. Default: `Interval(1 s)`; see [`Durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// A table's unflushed rows are written to a segment once they hold this many bytes
    /// of memory. Default: 64 MiB.
    pub fn flush_bytes(mut self, bytes: usize) -> Self {
        self.flush_bytes = bytes.max(1);
        self
    }

    /// A table's unflushed rows are written to a segment once the oldest is this old.
    /// Default: 10 minutes.
    pub fn flush_age(mut self, age: Duration) -> Self {
        self.flush_age = age;
        self
    }

    /// Rows per column block in new segments: smaller blocks prune finer, larger ones
    /// compress better. Default: 16384; at least 1, at most 1,048,576.
    pub fn block_rows(mut self, rows: u32) -> Self {
        self.block_rows = rows.clamp(1, crate::segment::format::MAX_BLOCK_ROWS);
        self
    }

    /// zstd level for segment blocks. Default: the codecs' measured choice
    /// ([`crate::encoding::Options::default`]).
    pub fn zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// A WAL file is closed and a new one started past this size. Default: 64 MiB.
    pub fn wal_file_bytes(mut self, bytes: u64) -> Self {
        self.wal_file_bytes = bytes.max(1);
        self
    }

    /// Opens a damaged database read-only, skipping what is damaged and reporting it in
    /// [`Engine::recovery_report`]. Default: false (damage is an error at open).
    pub fn salvage(mut self, salvage: bool) -> Self {
        self.salvage = salvage;
        self
    }

    /// Refuses to open when the last WAL record is damaged or unfinished, instead of
    /// cutting it off as a torn tail (reported in [`RecoveryReport::torn_tail`]) as a
    /// crash's half-written end. A crash leaves only writes not yet acknowledged there; a
    /// flipped bit or zeroed page may hit a write acknowledged under `Always`, which
    /// strict recovery will not drop silently. Default: false (cut, as Prometheus and
    /// RocksDB do). Ignored in salvage mode, which modifies nothing.
    ///
    /// [`RecoveryReport::torn_tail`]: crate::RecoveryReport::torn_tail
    pub fn strict_recovery(mut self, strict: bool) -> Self {
        self.strict_recovery = strict;
        self
    }

    /// The most series (distinct tag sets) a table may hold: a write that would add a
    /// series past it is refused whole with [`Error::SeriesLimit`](crate::Error::SeriesLimit),
    /// while existing series go on being written. Series whose rows were deleted or expired
    /// count until their segments are gone and the database is reopened. Default: none.
    pub fn series_limit(mut self, limit: usize) -> Self {
        self.series_limit = Some(limit);
        self
    }

    /// The most memory the database may hold: the rows held in memory across every table
    /// (their heads, and the heads being flushed, in bytes of Arrow arrays) and the
    /// working memory of queries, which the SQL layer reserves through
    /// [`Engine::try_reserve_memory`](crate::Engine::try_reserve_memory) (a query past the
    /// room left fails naming the budget), the buffers of each compaction (a background
    /// merge without room waits; [`Engine::compact`](crate::Engine::compact) fails naming
    /// the budget; a merge takes no more inputs than a quarter of the budget holds the
    /// buffers of, but at least two) and
    /// the buffers of `sextant-ingest`'s tracing layer. A write that would go past
    /// it first freezes the largest heads for flushing; while those are still being
    /// written it fails with [`Error::Backpressure`](crate::Error::Backpressure), which
    /// says how long to wait, instead of growing memory (without a background flusher the
    /// writing thread flushes them at once). A write larger than the whole budget is
    /// refused. Default: none (each table flushes at `flush_bytes` and holds at most two
    /// heads being flushed besides its live one).
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// Whether a background thread flushes by age and size. Default: true. Without it, a
    /// head frozen by size, or old enough, is flushed by the next write, in the writing
    /// thread (or by `flush` and `close`).
    pub fn background_flush(mut self, on: bool) -> Self {
        self.background_flush = on;
        self
    }

    /// Whether a background thread compacts segments by the [compaction
    /// policy](crate::compaction). Default: true. [`Engine::compact`] compacts on request
    /// either way.
    pub fn background_compaction(mut self, on: bool) -> Self {
        self.compaction.background = on;
        self
    }

    /// The time window of compaction: segments are merged only with segments of the same
    /// window (by their earliest time), so that each compacted segment covers about one
    /// window and whole segments expire together. Default: 1 day; at least 1 ns.
    pub fn compaction_window(mut self, window: Duration) -> Self {
        self.compaction.window = window.max(Duration::from_nanos(1));
        self
    }

    /// How many adjacent flush outputs, in the window still being written, are merged
    /// into one segment of level 1. Default: 8; at least 2.
    pub fn compaction_fanout(mut self, fanout: usize) -> Self {
        self.compaction.fanout = fanout.max(2);
        self
    }

    /// While writes are arriving, the share of time background compaction may work (on
    /// one thread), sleeping the rest so that ingest keeps more of its rate; idle, and for
    /// [`Engine::compact`], it runs without pause. Default: 1 (never pauses); from 0.01.
    ///
    /// Measured on 2 cores (TSBS cpu-only, 4000 hosts x 3 days, one writer): without
    /// compaction 840 k rows/s; with it unpaced 723 k rows/s (86 %), 51 segments at the
    /// end; at 0.25, 764 k rows/s (91 %), but compaction fell behind (280 segments at the
    /// end, more memory mapped).
    pub fn compaction_share(mut self, share: f64) -> Self {
        self.compaction.share = share.clamp(0.01, 1.0);
        self
    }

    /// The clock. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Fault injection for tests: fails chosen WAL writes or syncs. Default: none.
    pub fn faults(mut self, faults: Arc<dyn Faults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Opens (or creates) the database.
    pub fn open(self) -> Result<Engine> {
        Engine::open(self)
    }
}
