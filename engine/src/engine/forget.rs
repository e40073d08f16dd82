//! The engine's side of forgetting: setting retention, issuing deletes, and what each
//! snapshot hides (the rules themselves are in `crate::lifecycle`).

use std::sync::Arc;

use super::{Engine, Inner};
use crate::error::{Error, Result};
use crate::head::Chunk;
use crate::lifecycle::{self, Delete, DeleteEntry, Hide, Retention, TableLifecycle};
use crate::manifest::Manifest;
use crate::table::TableState;

impl Engine {
    /// Sets how long `table` keeps its rows (see [`lifecycle`](crate::lifecycle)): rows
    /// past their time are hidden from reads at once and dropped by compaction. Kept in
    /// the manifest. The table need not exist yet; if it does, the rules' tags must be its
    /// tags, and level ranges need an event table. `Retention::forever()` removes it.
    pub fn set_retention(&self, table: &str, retention: Retention) -> Result<()> {
        crate::schema::validate_name("table", table)?;
        if let Some(t) = self.inner.tables.read().get(table).cloned() {
            retention.check(&t.state.read().schema)?;
        }
        let retention = (retention != Retention::forever()).then_some(retention);
        self.inner
            .change_lifecycle(table, |l| l.retention = retention.clone())?;
        let (lock, cv) = &self.inner.wake_compactor;
        *lock.lock() = true;
        cv.notify_one();
        Ok(())
    }

    /// The retention of `table`, if one is set.
    pub fn retention(&self, table: &str) -> Option<Retention> {
        self.inner
            .lifecycles
            .read()
            .get(table)
            .and_then(|l| l.retention.clone())
    }

    /// Deletes the rows of `table` that `delete` names, as they are now: rows written
    /// afterwards are kept even if they match. Durable when it returns (recorded in the
    /// manifest, whatever the durability setting); the rows are gone from every snapshot
    /// taken afterwards, and compaction removes them from the segments it rewrites.
    pub fn delete(&self, table: &str, delete: &Delete) -> Result<()> {
        let inner = &self.inner;
        let wal = inner.wal()?;
        let t = inner
            .tables
            .read()
            .get(table)
            .cloned()
            .ok_or_else(|| Error::NoSuchTable(table.to_string()))?;
        delete.check(&t.state.read().schema)?;
        if delete.min_time > delete.max_time {
            return Ok(());
        }
        // No flush may write a head this delete has not filtered (flushes hold this lock
        // while writing), and no write may come between the sequence number taken and the
        // heads filtered (writes hold `order`).
        let _flushing = inner.flush_lock.lock();
        let mut manifest = inner.manifest.lock();
        let _order = inner.order.lock();
        // The records up to the delete's sequence number must be durable before the
        // delete is: else a power cut could lose them, their numbers be given again to
        // later writes, and the delete remove those.
        wal.sync()?;
        let seq = wal.next_seq().saturating_sub(1);
        let id = manifest.next_delete_id;
        let entry = DeleteEntry {
            id,
            seq,
            delete: delete.clone(),
        };
        let before = manifest.clone();
        manifest.next_delete_id += 1;
        manifest
            .lifecycles
            .entry(table.to_string())
            .or_default()
            .deletes
            .push(entry);
        if let Err(e) = inner.store_manifest(&mut manifest) {
            *manifest = before;
            return Err(e);
        }
        {
            let mut state = t.state.write();
            filter_heads(&mut state, delete)?;
        }
        *inner.lifecycles.write() = manifest.lifecycles.clone();
        Ok(())
    }
}

impl Inner {
    /// Changes a table's lifecycle settings in the manifest, stored before readers see
    /// the change.
    fn change_lifecycle(&self, table: &str, change: impl Fn(&mut TableLifecycle)) -> Result<()> {
        if self.wal.is_none() {
            return Err(Error::ReadOnly("open read-only for salvage"));
        }
        let mut manifest = self.manifest.lock();
        let before = manifest.clone();
        change(manifest.lifecycles.entry(table.to_string()).or_default());
        if manifest.lifecycles[table] == TableLifecycle::default() {
            manifest.lifecycles.remove(table);
        }
        if let Err(e) = self.store_manifest(&mut manifest) {
            *manifest = before;
            return Err(e);
        }
        let _order = self.order.lock();
        *self.lifecycles.write() = manifest.lifecycles.clone();
        Ok(())
    }

    /// Forgets the deletes of `table` that no segment and no WAL replay can need any more:
    /// every segment holding rows up to the delete has had it applied, and no rows of
    /// records up to it are still only in memory (and the WAL). Call with the manifest locked and store it
    /// after; returns whether any was dropped.
    pub(super) fn forget_applied_deletes(
        &self,
        manifest: &mut Manifest,
        table: &str,
        state: &TableState,
    ) -> bool {
        let Some(l) = manifest.lifecycles.get_mut(table) else {
            return false;
        };
        let before = l.deletes.len();
        l.deletes.retain(|d| {
            let in_segments = state
                .segments
                .iter()
                .zip(&state.applied)
                .any(|(s, &applied)| applied < d.id && s.meta().min_seq <= d.seq);
            // Rows of records up to the delete not yet in segments are in the heads (and
            // the WAL, which replay would apply the delete to).
            let in_heads = state
                .frozen
                .iter()
                .flat_map(|f| &f.chunks)
                .chain(&state.head.chunks)
                .any(|c| c.min_seq <= d.seq);
            in_segments || in_heads
        });
        let dropped = l.deletes.len() != before;
        if *l == TableLifecycle::default() {
            manifest.lifecycles.remove(table);
        }
        dropped
    }

    /// Publishes the manifest's lifecycle settings to readers.
    pub(super) fn publish_lifecycles(&self, manifest: &Manifest) {
        let _order = self.order.lock();
        *self.lifecycles.write() = manifest.lifecycles.clone();
    }
}

/// Removes the rows `delete` names from a table's heads in memory.
fn filter_heads(state: &mut TableState, delete: &Delete) -> Result<()> {
    let filter = |chunks: &mut Vec<Arc<Chunk>>| -> Result<usize> {
        let mut freed = 0;
        for c in chunks.iter_mut() {
            if let Some(kept) = lifecycle::filter_chunk(c, delete)? {
                freed += c
                    .batch
                    .memory_size()
                    .saturating_sub(kept.batch.memory_size());
                *c = Arc::new(kept);
            }
        }
        Ok(freed)
    };
    for f in state.frozen.iter_mut() {
        filter(&mut f.chunks)?;
    }
    let freed = filter(&mut state.head.chunks)?;
    state.head.bytes = state.head.bytes.saturating_sub(freed);
    state.head.rows = state.head.chunks.iter().map(|c| c.rows()).sum();
    Ok(())
}

/// What a snapshot of a table with `n_sources` sources (its segments first) hides, as of
/// clock time `now`.
pub(super) fn hide(
    lifecycle: Option<&TableLifecycle>,
    state: &TableState,
    n_sources: usize,
    now: i64,
) -> Option<Arc<Hide>> {
    let l = lifecycle?;
    let mut per_source: Vec<Vec<Arc<DeleteEntry>>> = state
        .segments
        .iter()
        .zip(&state.applied)
        .map(|(s, &applied)| lifecycle::deletes_for_segment(Some(l), s.meta().min_seq, applied))
        .collect();
    per_source.resize(n_sources, Vec::new());
    let reference = l.retention.is_some().then(|| now.min(state.newest));
    Hide::new(Some(l), per_source, reference).map(Arc::new)
}
