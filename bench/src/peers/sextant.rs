//! Sextant itself, loaded and queried as the peers are: its load for a run (the `write`,
//! `flush` and `compact` phases) and its SQL layer answering through [`Engine`]. A run
//! takes Sextant's answers as the reference the peers' are compared with.

use std::path::Path;
use std::time::Instant;

use arrow_array::RecordBatch;
use sextant_query::{Database, QueryOptions};

use super::{Engine, plan_text};
use crate::Result;
use crate::ingest::{EngineTuning, WriteOptions, write_workload};
use crate::measure::{disk_usage, remove};
use crate::memory::PhaseMemory;
use crate::queries::BenchQuery;
use crate::run::Phase;
use crate::run::table::count;
use crate::workload::source::WorkloadSpec;

/// The engine's name in tables and JSON, and its directory under the run's.
const NAME: &str = "sextant";

/// Sextant through its SQL layer.
#[derive(Debug)]
pub struct Sextant(pub Database);

impl Sextant {
    /// Opens the database [`Sextant::load`] wrote under `run_dir`, for the queries, with
    /// `target_partitions` DataFusion partitions, keeping the plans of `plan_cache_size`
    /// SQL texts.
    pub fn open(
        run_dir: &Path,
        tuning: &EngineTuning,
        target_partitions: usize,
        plan_cache_size: usize,
    ) -> Result<Sextant> {
        let database = Database::open_with(
            tuning.config(&run_dir.join(NAME)),
            QueryOptions {
                target_partitions,
                plan_cache_size,
                ..QueryOptions::default()
            },
        )?;
        Ok(Sextant(database))
    }

    /// Ingests `spec` into a fresh Sextant database in `<run dir>/sextant` (replaced) with
    /// `tuning` and `writes`, and closes it (the final flush); then reopens it and compacts
    /// every table whole. The figures of the three phases: `write`, `flush`, `compact`.
    pub fn load(
        spec: &WorkloadSpec,
        run_dir: &Path,
        tuning: &EngineTuning,
        writes: &WriteOptions,
    ) -> Result<Vec<Phase>> {
        let dir = run_dir.join(NAME);
        remove(&dir)?;
        let memory = PhaseMemory::start();
        let engine = tuning.config(&dir).open()?;
        let written = write_workload(&engine, spec, writes)?;
        let mut write = Phase::new(NAME, "write", spec, written.rows, written.wall_secs);
        write.engine_secs = Some(written.engine_secs);
        write.set_memory(memory.peak());
        write.samples = written.samples;
        write.note = Some(format!(
            "{} rows/s counting only the time inside write calls (rows/s above includes generation)",
            count((written.rows as f64 / written.engine_secs.max(1e-9)).round() as u64)
        ));

        let memory = PhaseMemory::start();
        let started = Instant::now();
        engine.flush()?;
        let during_load = engine.compaction_stats();
        engine.close()?;
        let mut flush = Phase::new(
            NAME,
            "flush",
            spec,
            written.rows,
            started.elapsed().as_secs_f64(),
        );
        flush.set_memory(memory.peak());
        let (segment_bytes, segments, dir_bytes) = disk_usage(&dir)?;
        flush.set_disk(segment_bytes, spec);
        flush.note = Some(format!(
            "close = final flush; {segments} segment(s) = bytes on disk; whole directory {} bytes; background compaction during the load: {} merge(s), {} bytes rewritten in {:.2} s",
            count(dir_bytes),
            during_load.compactions,
            count(during_load.bytes_written),
            during_load.busy.as_secs_f64(),
        ));

        // Compaction of what the load left, every window merged whole, as `Engine::compact`.
        let memory = PhaseMemory::start();
        let started = Instant::now();
        let engine = tuning.config(&dir).open()?;
        let open_before = started.elapsed();
        let tables: Vec<String> = engine.snapshot().tables().map(str::to_owned).collect();
        for table in &tables {
            engine.compact(table)?;
        }
        let compacted = engine.compaction_stats();
        engine.close()?;
        let compact_secs = started.elapsed().as_secs_f64();
        let reopened = Instant::now();
        tuning.config(&dir).open()?.close()?;
        let open_after = reopened.elapsed();
        let mut compact = Phase::new(NAME, "compact", spec, written.rows, compact_secs);
        compact.set_memory(memory.peak());
        let (after_bytes, after, _) = disk_usage(&dir)?;
        compact.set_disk(after_bytes, spec);
        let flushed = during_load.bytes_flushed.max(1);
        let rewritten = during_load.bytes_written + compacted.bytes_written;
        compact.note = Some(format!(
            "{segments} -> {after} segment(s); {} bytes rewritten ({} during the load); write amplification {:.2} (segment bytes written per byte flushed); open took {:.1} ms before compaction, {:.1} ms after",
            count(rewritten),
            count(during_load.bytes_written),
            (flushed + rewritten) as f64 / flushed as f64,
            open_before.as_secs_f64() * 1e3,
            open_after.as_secs_f64() * 1e3,
        ));
        Ok(vec![write, flush, compact])
    }
}

impl Engine for Sextant {
    fn name(&self) -> &'static str {
        NAME
    }

    fn statement(&self, query: &BenchQuery) -> Result<String, String> {
        Ok(query.sql.clone())
    }

    fn execute(&self, _query: &BenchQuery, statement: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.0.sql(statement)?)
    }

    fn explain(&self, statement: &str) -> Result<Option<String>> {
        plan_text(
            &self.0.sql(&format!("EXPLAIN ANALYZE {statement}"))?,
            "plan",
        )
        .map(Some)
    }
}
