//! The write path: checking a write, logging it, putting it in its tables' heads.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::batch::{TableBatch, payload};
use crate::error::{Error, Result};
use crate::head::Chunk;
use crate::schema::{TableSchema, validate_name};
use crate::table::{check_kind, freeze, new_table};
use crate::wal::{Durability, Wal};

use super::Inner;

impl Inner {
    /// Stores the manifest when the WAL appends to a file it does not name yet (a
    /// rotation made it), so that the file must exist on the next open: deleting it is
    /// then an error naming it, not writes silently lost. Called after each append,
    /// before the write returns; it stores the manifest once per rotation (once per
    /// `Config::wal_file_bytes` of log).
    pub(super) fn note_wal_file(&self, wal: &Wal) -> Result<()> {
        if wal.current_file() <= self.wal_noted.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut manifest = self.manifest.lock();
        // After shutdown has stored the manifest naming no WAL file (it removes them all),
        // naming one again would make the next open look for a file that is gone.
        if self.closed.load(Ordering::SeqCst)
            || wal.current_file() <= self.wal_noted.load(Ordering::Acquire)
        {
            return Ok(());
        }
        self.store_manifest(&mut manifest)
    }

    pub(super) fn write(&self, batches: Vec<TableBatch>) -> Result<()> {
        let wal = self.wal()?;
        let batches: Vec<TableBatch> = batches.into_iter().filter(|b| b.rows() > 0).collect();
        if batches.is_empty() {
            return Ok(());
        }
        if batches.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidInput(format!(
                "one write names {} tables; split it into writes of at most {}",
                batches.len(),
                u16::MAX
            )));
        }
        if let Some(b) = batches.iter().find(|b| b.rows() > u32::MAX as usize) {
            return Err(Error::InvalidInput(format!(
                "table {:?}: one write of {} rows; split it into writes of at most {} rows",
                b.table,
                b.rows(),
                u32::MAX
            )));
        }
        let now = self.config.clock.now_nanos();
        self.last_write.store(now, Ordering::Relaxed);
        self.make_room(&batches, now)?;
        let chunks: Vec<Chunk> = batches.into_iter().map(|b| Chunk::new(0, b)).collect();
        let logged: Vec<(&TableBatch, &[u32])> = chunks
            .iter()
            .map(|c| (&c.batch, c.row_series.as_slice()))
            .collect();
        let mut bytes = Vec::new();
        payload::encode(&logged, &mut bytes);

        let mut froze = false;
        let seq = {
            let _order = self.order.lock();
            // Check every batch before the WAL append, against its table's schema as
            // extended by the batches before it, so that a rejected write leaves no trace.
            let mut schemas: HashMap<String, TableSchema> = HashMap::new();
            for chunk in &chunks {
                let b = &chunk.batch;
                let schema = match schemas.entry(b.table.clone()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let existing = self.tables.read().get(&b.table).cloned();
                        let schema = match existing {
                            Some(t) => (*t.state.read().schema).clone(),
                            None => {
                                validate_name("table", &b.table)?;
                                TableSchema::new(&b.table, b.kind)
                            }
                        };
                        e.insert(schema)
                    }
                };
                check_kind(schema, b.kind)?;
                let new = schema.check_extension(&b.columns)?;
                schema.extend(new);
            }
            if let Some(limit) = self.config.series_limit {
                self.check_series_limit(&chunks, limit)?;
            }
            // Shutdown may have begun since `wal()` was checked (see `Engine::shutdown`).
            if self.closed.load(Ordering::SeqCst) {
                return Err(Error::ReadOnly("closed"));
            }
            let seq = wal.append(&bytes)?;
            let visible = self.visible.load(Ordering::Acquire);
            for mut chunk in chunks {
                chunk.min_seq = seq;
                chunk.max_seq = seq;
                let name = chunk.batch.table.clone();
                let table = self.tables.read().get(&name).cloned();
                let table = table.unwrap_or_else(|| {
                    let t = Arc::new(new_table(&self.dir.join("tables"), &name, chunk.batch.kind));
                    self.tables.write().entry(name.clone()).or_insert(t).clone()
                });
                let mut state = table.state.write();
                if let Some(&t) = chunk.batch.time().values().iter().max() {
                    state.newest = state.newest.max(t);
                }
                if self.config.series_limit.is_some() {
                    state.series.extend(chunk.series.iter().cloned());
                }
                let schema = &schemas[&name];
                if state.schema.columns.len() != schema.columns.len() {
                    state.schema = Arc::new(schema.clone());
                }
                state.head.push(chunk, now, visible);
                if state.head.bytes >= self.config.flush_bytes {
                    freeze(&mut state);
                    froze = true;
                }
            }
            if !matches!(self.config.durability, Durability::Always) {
                self.visible.fetch_max(seq, Ordering::AcqRel);
            }
            seq
        };
        if matches!(self.config.durability, Durability::Always) {
            wal.wait_durable(seq)?;
            self.visible.fetch_max(seq, Ordering::AcqRel);
        }
        // Best effort: the write is logged and visible whatever this returns, and a
        // failure (the storage failing, which the next flush reports) is tried again by
        // the next write.
        let _ = self.note_wal_file(wal);
        if froze && self.config.background_flush {
            self.wake_flusher();
        }
        Ok(())
    }

    /// Refuses a write (before it is logged) that would take a table past `limit` series.
    pub(super) fn check_series_limit(&self, chunks: &[Chunk], limit: usize) -> Result<()> {
        let mut added: HashMap<&str, HashSet<&crate::series::SeriesKey>> = HashMap::new();
        for chunk in chunks {
            let name = chunk.batch.table.as_str();
            let table = self.tables.read().get(name).cloned();
            let state = table.as_ref().map(|t| t.state.read());
            let known =
                |k: &crate::series::SeriesKey| state.as_ref().is_some_and(|s| s.series.contains(k));
            let new = added.entry(name).or_default();
            new.extend(chunk.series.iter().filter(|k| !known(k)));
            let held = state.as_ref().map_or(0, |s| s.series.len());
            if let Some(first) = new.iter().next().filter(|_| held + new.len() > limit) {
                return Err(Error::SeriesLimit {
                    table: name.to_string(),
                    limit,
                    series: format!("{first:?}"),
                });
            }
        }
        Ok(())
    }

    /// Before a write: flushes the frozen heads of the tables written when two are already
    /// queued (backpressure, bounding memory), or at once without a background flusher,
    /// which also makes this the place where old heads are flushed. Doing it before the
    /// write means an error here leaves nothing written.
    pub(super) fn make_room(&self, batches: &[TableBatch], now: i64) -> Result<()> {
        if let Some(budget) = self.config.memory_budget {
            self.fit_budget(batches, budget)?;
        }
        for b in batches {
            let Some(table) = self.tables.read().get(&b.table).cloned() else {
                continue;
            };
            let backlog = table.state.read().frozen.len();
            if backlog >= 2 || (backlog > 0 && !self.config.background_flush) {
                self.flush_table(&table)?;
            }
        }
        if !self.config.background_flush {
            self.flush_aged(now)?;
        }
        Ok(())
    }
}
