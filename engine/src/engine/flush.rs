//! Flushing: frozen heads written into segments (by the background flusher, on request
//! and at close), and WAL files no longer needed removed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::manifest::{SegmentEntry, TableEntry};
use crate::segment::{Segment, writer};
use crate::table::{Table, freeze};
use crate::wal::Wal;

use super::Inner;

impl Inner {
    pub(super) fn wake_flusher(&self) {
        let (lock, cv) = &self.wake;
        *lock.lock() = true;
        cv.notify_one();
    }

    /// The background flusher: writes frozen heads, and freezes heads that grew old.
    pub(super) fn background(self: Arc<Self>) {
        let tick =
            (self.config.flush_age / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            {
                let (lock, cv) = &self.wake;
                let mut woken = lock.lock();
                if !*woken {
                    cv.wait_for(&mut woken, tick);
                }
                *woken = false;
            }
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let now = self.config.clock.now_nanos();
            // Errors stay with the frozen heads, which are retried on the next tick and
            // reported by the next flush() or close().
            let _ = self.flush_aged(now);
            let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
            for t in tables {
                if !t.state.read().frozen.is_empty() {
                    let _ = self.flush_table(&t);
                }
            }
        }
    }

    /// Freezes and flushes heads whose oldest row arrived more than `flush_age` ago.
    pub(super) fn flush_aged(&self, now: i64) -> Result<()> {
        let age = i64::try_from(self.config.flush_age.as_nanos()).unwrap_or(i64::MAX);
        let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
        for t in tables {
            let due = {
                let mut state = t.state.write();
                let old = state
                    .head
                    .since
                    .is_some_and(|s| now.saturating_sub(s) >= age);
                if old {
                    freeze(&mut state);
                }
                old
            };
            if due {
                self.flush_table(&t)?;
            }
        }
        Ok(())
    }

    pub(super) fn flush_all(&self) -> Result<()> {
        let wal = self
            .wal
            .as_ref()
            .ok_or(Error::ReadOnly("open read-only for salvage"))?;
        let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
        {
            let _order = self.order.lock();
            for t in &tables {
                freeze(&mut t.state.write());
            }
        }
        for t in &tables {
            self.flush_table(t)?;
        }
        wal.sync()
    }

    /// Writes the table's frozen heads into segments, oldest first, and removes WAL
    /// files no longer needed.
    pub(super) fn flush_table(&self, table: &Table) -> Result<()> {
        let wal = self
            .wal
            .as_ref()
            .ok_or(Error::ReadOnly("open read-only for salvage"))?;
        let _flushing = self.flush_lock.lock();
        loop {
            let Some(frozen) = table.state.read().frozen.front().cloned() else {
                break;
            };
            let started = std::time::Instant::now();
            let max_seq = frozen.chunks.last().map_or(0, |c| c.max_seq);
            // The WAL is synced before any segment is written, so that it is never behind
            // the segments: a power cut then cannot leave one table's share of a write in
            // a segment while its other tables' share is lost from the WAL. It also makes
            // rows still waiting for their sync (under Always) durable before a segment
            // makes them visible.
            wal.sync()?;
            self.visible.fetch_max(max_seq, Ordering::AcqRel);
            crate::fs::create_dir(&table.dir, self.config.faults.as_deref())?;
            // A flushed block holds the rows of many series, and a scan decodes such a
            // block whole (the next series wants the rest), so resume points there would
            // be bytes for nothing (0.299 -> 0.306 bytes per value on TSBS cpu-only at
            // scale 1000). Compaction, which cuts blocks per series, writes them.
            let codec = crate::encoding::Options {
                resume_every: None,
                ..self.codec
            };
            let spec = writer::SegmentSpec {
                table: &frozen.schema.name,
                kind: frozen.schema.kind,
                columns: &frozen.schema.columns,
                chunks: &frozen.chunks,
                block_rows: self.config.block_rows,
                codec: &codec,
                faults: self.config.faults.as_ref(),
            };
            let name = &frozen.schema.name;
            // A head whose rows were all deleted leaves no segment, only its sequence
            // numbers covered.
            let rows: usize = frozen.chunks.iter().map(|c| c.rows()).sum();
            let segment = if rows == 0 {
                None
            } else {
                let id = self.manifest.lock().allocate_segment_id();
                let (path, _) = writer::write(&table.dir, id, &spec)?;
                Some((id, Arc::new(Segment::open(&path)?)))
            };
            let mut manifest = self.manifest.lock();
            let applied = manifest.next_delete_id.saturating_sub(1);
            let before = manifest.tables.get(name).cloned();
            let entry = manifest
                .tables
                .entry(name.clone())
                .or_insert_with(|| TableEntry {
                    kind: frozen.schema.kind,
                    flushed_seq: 0,
                    newest: i64::MIN,
                    columns: Vec::new(),
                    segments: Vec::new(),
                });
            entry.flushed_seq = max_seq;
            entry.columns = frozen.schema.columns.clone();
            entry.newest = entry.newest.max(table.state.read().newest);
            if let Some((id, segment)) = &segment {
                let mut e = SegmentEntry::of(*id, segment);
                e.deletes_applied = applied;
                entry.segments.push(e);
            }
            if let Err(e) = self.store_manifest(&mut manifest) {
                // The file stays: if the new manifest did reach the disk it is live there,
                // else the next open removes it. The frozen head is retried.
                match before {
                    Some(b) => manifest.tables.insert(name.clone(), b),
                    None => manifest.tables.remove(name),
                };
                return Err(e);
            }
            let mut state = table.state.write();
            state.frozen.pop_front();
            state.flushed_seq = max_seq;
            if let Some((_, segment)) = segment {
                self.stats.lock().bytes_flushed += segment.file_len();
                state.segments.push(segment);
                state.applied.push(applied);
            }
            {
                let mut m = self.flushed_memory.lock();
                m.0 += frozen.bytes as u64;
                m.1 += started.elapsed();
            }
            if self.forget_applied_deletes(&mut manifest, name, &state) {
                drop(state);
                // Only tidying: a manifest still listing the deletes is as right.
                let _ = self.store_manifest(&mut manifest);
                self.publish_lifecycles(&manifest);
            } else {
                drop(state);
            }
            drop(manifest);
            let (lock, cv) = &self.wake_compactor;
            *lock.lock() = true;
            cv.notify_one();
        }
        self.remove_obsolete_wal(wal)
    }

    pub(super) fn remove_obsolete_wal(&self, wal: &Wal) -> Result<()> {
        let mut min_live = wal.next_seq();
        for t in self.tables.read().values() {
            let state = t.state.read();
            let oldest = state
                .frozen
                .front()
                .and_then(|f| f.chunks.first().map(|c| c.min_seq))
                .or(state.head.min_seq());
            if let Some(s) = oldest {
                min_live = min_live.min(s);
            }
        }
        wal.remove_obsolete(min_live)?;
        Ok(())
    }
}
