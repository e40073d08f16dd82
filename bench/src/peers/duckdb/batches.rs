//! DuckDB's load in batches (the `insert` phase): the rows loaded as Sextant is loaded, in
//! Sextant's batches, each sent to a driver of its own as an Arrow IPC stream and appended
//! with one `INSERT`, committed, with DuckDB's `fsync_mode` closest to Sextant's durability.
//! It runs in its own `python3` process and its own directory, so the bulk load (the
//! `load` phase) and the queries are exactly as without it, and a failure of it leaves
//! them be ([`super::DuckDbPeer::engine`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sextant_engine::Durability;

use super::{PEER, database_bytes, enums, path_str, peak_memory, time_type};
use crate::ingest::{RateSampler, progress};
use crate::measure::remove;
use crate::memory::PeakScope;
use crate::peers::driver::LOAD_DEADLINE;
use crate::run::{Phase, table};
use crate::workload::source::{RawBatch, WorkloadSpec};
use crate::{Error, Result};

/// The load in batches: the rows sent to DuckDB in Sextant's batches, each appended by
/// one `INSERT` and committed.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    /// Rows per batch (Sextant's `--batch-rows`).
    pub batch_rows: usize,
    /// Sextant's durability, mapped to DuckDB's `fsync_mode` ([`fsync_mode`]).
    pub durability: Durability,
    /// DuckDB's `threads` (Sextant's writer threads, `--threads`); the batches are sent
    /// from one client thread whatever this is.
    pub threads: usize,
    /// Show a progress bar while the batches are sent.
    pub progress: bool,
}

/// DuckDB's `fsync_mode` for Sextant's `durability`. DuckDB commits through its WAL (a
/// commit too large for it, past `auto_checkpoint_skip_wal_threshold`, checkpoints
/// instead), and has no periodic sync:
/// - `Always` (Sextant returns after an fsync): `STANDARD`, DuckDB's default, which syncs
///   at every commit;
/// - `Interval(d)` (Sextant syncs in the background, losing at most `d` to an operating
///   system crash): also `STANDARD`, the closest mode that promises no less, so DuckDB
///   syncs at every commit where Sextant syncs once per interval;
/// - `Never` (syncing left to the operating system): `NONE`, DuckDB's mode without fsync
///   (which, DuckDB warns, may also leave a corrupt database after an operating system
///   crash, where Sextant's WAL loses only its unsynced tail).
pub fn fsync_mode(durability: Durability) -> &'static str {
    match durability {
        Durability::Never => "NONE",
        _ => "STANDARD",
    }
}

/// What the load in batches took.
#[derive(Debug, Clone)]
pub struct BatchLoad {
    /// Rows in the table of the batches.
    pub rows: u64,
    /// `INSERT` statements (batches) sent.
    pub batches: u64,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Sextant's durability the load was matched to.
    pub durability: Durability,
    /// DuckDB's `fsync_mode` as DuckDB applied it (`current_setting('fsync_mode')`).
    pub fsync_mode: String,
    /// DuckDB's `threads`.
    pub threads: usize,
    /// Seconds from the first row generated to the database checkpointed and closed.
    pub wall_secs: f64,
    /// Seconds of DuckDB's part, measured in the driver: connecting and creating the
    /// types, every `INSERT` (and its commit), and the count, checkpoint and close.
    pub engine_secs: f64,
    /// Seconds of the final `count(*)`, `CHECKPOINT` and close, in the driver.
    pub checkpoint_secs: f64,
    /// The database file (`<dir>/<table>_batches.duckdb`), checkpointed and closed.
    pub path: PathBuf,
    /// Bytes of the database file (and its WAL, if one is left) after the checkpoint.
    pub bytes: u64,
    /// Peak resident memory of this load's driver, and its scope.
    pub memory: (Option<u64>, PeakScope),
    /// Rows sent per second over time, as [`crate::ingest::RateSampler::samples`].
    pub samples: Vec<[f64; 2]>,
}

/// Starts a driver of its own in `dir` (emptied first), generates `spec` in batches of
/// `batches.batch_rows` rows and sends each to be appended to a new database,
/// `dir/<table>_batches.duckdb`; checkpoints and closes it, and stops the driver. The
/// database is left in `dir` ([`BatchLoad::path`]) for the caller to check or remove.
pub fn load(spec: &WorkloadSpec, dir: &Path, batches: &Batches) -> Result<BatchLoad> {
    remove(dir)?;
    let (mut driver, _) = super::child::start(dir)?;
    let path = dir.join(format!("{}_batches.duckdb", spec.table()));
    let batch_rows = batches.batch_rows.max(1);
    let threads = batches.threads.max(1);
    let asked = fsync_mode(batches.durability);
    let mut sampler = RateSampler::new();
    let mut generator = spec.generator()?;
    let tags = generator.tags();
    let bar = progress(batches.progress, generator.remaining_rows());
    let begun = driver.request(&serde_json::json!({
        "op": "batches_begin",
        "db": path_str(&path)?,
        "table": spec.table(),
        "enums": enums(spec),
        "time_type": time_type(spec),
        "fsync_mode": asked,
        "threads": threads,
    }))?;
    let applied = begun.header["fsync_mode"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    if !applied.eq_ignore_ascii_case(asked) {
        return Err(Error::Peer {
            peer: PEER,
            message: format!("DuckDB applied fsync_mode {applied:?} where {asked:?} was set"),
        });
    }
    let mut engine_secs = begun.number("secs")?;
    let (mut rows, mut sent) = (0u64, 0u64);
    let mut raw = RawBatch::empty(spec);
    let insert = serde_json::json!({"op": "insert"});
    while generator.fill(&mut raw, batch_rows) > 0 {
        let batch = tags.to_record_batch(&raw)?;
        let reply = driver.request_with(&insert, &crate::peers::driver::ipc(&batch)?)?;
        engine_secs += reply.number("secs")?;
        rows += raw.len() as u64;
        sent += 1;
        bar.inc(raw.len() as u64);
        sampler.observe(rows);
    }
    // The end checkpoints the database: a load's time, not a query's.
    let end = driver.request_within(
        &serde_json::json!({"op": "batches_end"}),
        &[],
        LOAD_DEADLINE,
    )?;
    sampler.finish(rows);
    bar.finish_and_clear();
    let checkpoint_secs = end.number("secs")?;
    let held = end.number("rows")? as u64;
    if held != rows {
        return Err(Error::Peer {
            peer: PEER,
            message: format!(
                "DuckDB's table of the batches holds {held} rows after {rows} were sent"
            ),
        });
    }
    let memory = peak_memory(&end);
    drop(driver);
    Ok(BatchLoad {
        rows,
        batches: sent,
        batch_rows,
        durability: batches.durability,
        fsync_mode: applied,
        threads,
        wall_secs: sampler.elapsed(),
        engine_secs: engine_secs + checkpoint_secs,
        checkpoint_secs,
        bytes: database_bytes(&path),
        path,
        memory,
        samples: sampler.samples,
    })
}

/// Runs [`load`] in `dir` for a run and removes `dir` afterwards (the database measured,
/// and not kept on disk through the queries). A failure is printed and gives `None`: the
/// `insert` phase is left out, and the rest of the run goes on.
pub(crate) fn load_for_run(spec: &WorkloadSpec, dir: &Path, batches: &Batches) -> Option<Phase> {
    let loaded = load(spec, dir, batches);
    if let Err(e) = remove(dir) {
        eprintln!("sextant-bench: DuckDB's database of the batches is left on disk: {e}");
    }
    match loaded {
        Ok(b) => Some(phase(spec, &b)),
        Err(e) => {
            eprintln!("sextant-bench: DuckDB's batched load failed; its phase is left out: {e}");
            None
        }
    }
}

/// Sextant's durability in a few words, and what DuckDB does against it.
fn durability_note(durability: Durability, fsync_mode: &str) -> String {
    match durability {
        Durability::Always => format!(
            "Sextant syncs its WAL before each write returns; DuckDB syncs at every commit \
             (each batch; fsync_mode {fsync_mode})"
        ),
        Durability::Interval(d) => format!(
            "Sextant syncs its WAL {}; DuckDB has no periodic sync, so it syncs at every \
             commit (each batch; fsync_mode {fsync_mode})",
            once_every(d)
        ),
        _ => format!(
            "Sextant leaves syncing its WAL to the operating system; DuckDB does not sync \
             (fsync_mode {fsync_mode})"
        ),
    }
}

/// "once a second", "once every 250 ms".
fn once_every(d: Duration) -> String {
    match d.as_millis() {
        1000 => "once a second".to_owned(),
        ms if ms % 1000 == 0 => format!("once every {} s", ms / 1000),
        ms => format!("once every {ms} ms"),
    }
}

/// The `insert` phase of the load in batches.
pub(crate) fn phase(spec: &WorkloadSpec, b: &BatchLoad) -> Phase {
    let mut phase = Phase::new(PEER, "insert", spec, b.rows, b.wall_secs);
    phase.engine_secs = Some(b.engine_secs);
    phase.set_memory(b.memory);
    phase.set_disk(b.bytes, spec);
    phase.samples = b.samples.clone();
    phase.note = Some(format!(
        "{} rows/s counting only DuckDB's time in the driver: {} batch(es) of up to {} rows \
         sent from one client thread (Sextant writes from {} writer thread(s); DuckDB's \
         threads = {}), each one INSERT INTO ... SELECT ... FROM the Arrow batch, committed \
         (autocommit); {}; then count(*), CHECKPOINT and close ({:.2} s); rows/s above also \
         includes generating the rows, encoding each batch as Arrow IPC and sending it \
         through the driver's pipe; peak memory is this load's own Python driver's (its \
         interpreter included); a database of its own, deleted once measured (the queries \
         run on the bulk-loaded one)",
        table::count((b.rows as f64 / b.engine_secs.max(1e-9)).round() as u64),
        table::count(b.batches),
        b.batch_rows,
        b.threads,
        b.threads,
        durability_note(b.durability, &b.fsync_mode),
        b.checkpoint_secs,
    ));
    phase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_mode_is_standard_unless_sextant_never_syncs() {
        assert_eq!(fsync_mode(Durability::Always), "STANDARD");
        assert_eq!(
            fsync_mode(Durability::Interval(Duration::from_secs(1))),
            "STANDARD"
        );
        assert_eq!(fsync_mode(Durability::Never), "NONE");
    }

    #[test]
    fn durability_note_says_how_each_engine_syncs() {
        let note = durability_note(Durability::Interval(Duration::from_secs(1)), "STANDARD");
        assert!(
            note.starts_with("Sextant syncs its WAL once a second;")
                && note.contains("no periodic sync")
                && note.contains("every commit (each batch; fsync_mode STANDARD)"),
            "{note}"
        );
        assert_eq!(once_every(Duration::from_millis(250)), "once every 250 ms");
        assert!(durability_note(Durability::Never, "NONE").contains("does not sync"));
    }
}
