//! The engine's side of compaction: the background compactor, one merge, and dropping
//! whole expired segments (the policy and the merge itself are in `crate::compaction`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Inner;
use crate::compaction;
use crate::error::{Error, Result};
use crate::lifecycle::{self, Hide};
use crate::manifest::SegmentEntry;
use crate::segment::Segment;
use crate::table::Table;

impl Inner {
    /// The background compactor: after flushes (and every few seconds), merges what the
    /// policy asks for, one merge at a time, until nothing is due.
    pub(super) fn background_compaction(self: Arc<Self>) {
        loop {
            {
                let (lock, cv) = &self.wake_compactor;
                let mut woken = lock.lock();
                if !*woken {
                    cv.wait_for(&mut woken, Duration::from_secs(5));
                }
                *woken = false;
            }
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let deferred = self.stats.lock().deferred;
            let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
            for t in &tables {
                let now = self.config.clock.now_nanos();
                let _ = self.expire_segments(t, now);
                // An error leaves the inputs live; the next round tries again.
                while !self.closed.load(Ordering::SeqCst) {
                    let now = self.config.clock.now_nanos();
                    if !matches!(self.compact_once(t, false, now, 0), Ok(true)) {
                        break;
                    }
                }
            }
            // Caught up (or failed, to be tried again next round); still behind when a
            // merge was put off for want of memory.
            if self.stats.lock().deferred == deferred {
                *self.behind_since.lock() = None;
            }
        }
    }

    /// The live segments of `table` as the manifest lists them.
    pub(super) fn segment_infos(&self, table: &str) -> Result<Vec<crate::SegmentInfo>> {
        let manifest = self.manifest.lock();
        let entry = manifest
            .tables
            .get(table)
            .ok_or_else(|| Error::NoSuchTable(table.to_string()))?;
        Ok(entry
            .segments
            .iter()
            .map(|e| crate::SegmentInfo {
                id: e.id,
                level: e.level,
                bytes: e.file_len,
                min_seq: e.min_seq,
                max_seq: e.max_seq,
            })
            .collect())
    }

    /// Does the next merge the policy asks for in `table` (every window's, with `all`);
    /// returns whether there was one. The merge leaves out what readers would not see
    /// (deleted and expired rows).
    ///
    /// `now` is the clock time the retention is measured at; with `all`, segments whose
    /// id is at least `fresh_from` (written since the request began) are not rewritten
    /// again for expired rows, so that a request ends even while rows keep arriving.
    pub(super) fn compact_once(
        &self,
        table: &Table,
        all: bool,
        now: i64,
        fresh_from: u64,
    ) -> Result<bool> {
        self.wal()?;
        let _compacting = self.compact_lock.lock();
        let (name, pick, inputs, hide, applied) = {
            let manifest = self.manifest.lock();
            let state = table.state.read();
            let name = state.schema.name.clone();
            let Some(entry) = manifest.tables.get(&name) else {
                return Ok(false);
            };
            let min_times: Vec<i64> = state.segments.iter().map(|s| s.meta().min_time).collect();
            debug_assert_eq!(entry.segments.len(), state.segments.len());
            // What readers would not see, as of now: every delete issued so far is
            // applied to the output, and expired rows are left out.
            let lifecycles = self.lifecycles.read();
            let l = lifecycles.get(&name);
            let per_source: Vec<_> = (0..state.segments.len())
                .map(|i| {
                    let min_seq = state.segments[i].meta().min_seq;
                    lifecycle::deletes_for_segment(l, min_seq, state.applied[i])
                })
                .collect();
            let reference = l
                .is_some_and(|l| l.retention.is_some())
                .then(|| now.min(state.newest));
            let hide = Hide::new(l, per_source.clone(), reference);
            // Rows before the floor are expired under every rule: a rewrite leaves none,
            // so a segment is rewritten for them once. (Rows expired under a shorter rule
            // only stay hidden until a merge takes their segment.)
            let expired_before = hide.as_ref().and_then(|h| h.floor());
            let dirty: Vec<bool> = (0..state.segments.len())
                .map(|i| {
                    !per_source[i].is_empty()
                        || (all
                            && entry.segments[i].id < fresh_from
                            && expired_before.is_some_and(|c| min_times[i] < c))
                })
                .collect();
            let Some(mut pick) = compaction::pick(
                &entry.segments,
                &min_times,
                &dirty,
                &self.config.compaction,
                all,
            ) else {
                return Ok(false);
            };
            // Under a budget, a merge takes no more inputs (at least two) than a quarter
            // of the budget holds the buffers of; the rest of the run is merged later
            // (the output stays adjacent to it, in the same window).
            if let Some(budget) = self.config.memory_budget {
                let block_rows = self.config.block_rows;
                let whole = pick.inputs.clone();
                while pick.inputs.len() > 2
                    && compaction::merge_memory(&state.segments[pick.inputs.clone()], block_rows)
                        > budget / 4
                {
                    pick.inputs.end -= 1;
                }
                if pick.inputs != whole {
                    let top = entry.segments[pick.inputs.clone()]
                        .iter()
                        .map(|s| s.level)
                        .max();
                    pick.level = top.unwrap_or(0).saturating_add(1);
                }
            }
            if !all {
                self.behind_since
                    .lock()
                    .get_or_insert_with(std::time::Instant::now);
            }
            let inputs: Vec<Arc<Segment>> = state.segments[pick.inputs.clone()].to_vec();
            let hide = hide.map(|mut h| {
                h.per_source = per_source[pick.inputs.clone()].to_vec();
                Arc::new(h)
            });
            (
                name,
                pick,
                inputs,
                hide,
                manifest.next_delete_id.saturating_sub(1),
            )
        };
        // The merge's memory comes out of the budget, where writes and queries see it.
        // Rows in memory make way for it as for a write (heads are frozen and flushed).
        // When queries hold the room, a background merge is put off to a later round
        // (counted in `deferred`, and the compactor counts as behind), and a requested
        // one fails naming the budget.
        let memory = compaction::merge_memory(&inputs, self.config.block_rows);
        if let Some(budget) = self.config.memory_budget {
            let _ = self.room_for(memory, budget);
        }
        let mut reserved = self.reservation(memory);
        if reserved.is_err() && all {
            // A requested merge does not wait for the background flusher: it writes the
            // heads frozen to make room itself.
            let frozen: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
            for t in frozen {
                if !t.state.read().frozen.is_empty() {
                    self.flush_table(&t)?;
                }
            }
            reserved = self.reservation(memory);
        }
        let _memory = match reserved {
            Ok(r) => r,
            Err(e) if all => return Err(e),
            Err(_) => {
                self.stats.lock().deferred += 1;
                return Ok(false);
            }
        };
        let started = std::time::Instant::now();
        let schema = Arc::clone(&table.state.read().schema);
        let id = self.manifest.lock().allocate_segment_id();
        // Requested merges run flat out; background ones make way for ingest.
        let busy = || {
            let last = self.last_write.load(Ordering::Relaxed);
            self.config.clock.now_nanos().saturating_sub(last) < 1_000_000_000
        };
        let share = if all {
            1.0
        } else {
            self.config.compaction.share
        };
        let mut pacer = compaction::Pacer::new(share, &busy);
        let output = compaction::merge(
            &table.dir,
            id,
            &schema,
            &inputs,
            hide,
            compaction::Layout::of(&self.config.compaction, self.config.block_rows, schema.kind),
            &self.codec,
            self.config.faults.as_ref(),
            &self.closed,
            &mut pacer,
        )?
        .map(Arc::new);
        let new = output.as_ref().map(|o| {
            let mut e = SegmentEntry::of(id, o);
            e.level = pick.level;
            e.deletes_applied = applied;
            e
        });
        self.replace_segments(
            table,
            &name,
            pick.inputs.clone(),
            &inputs,
            new.zip(output.clone()),
        )?;
        let mut stats = self.stats.lock();
        stats.compactions += 1;
        stats.segments_merged += inputs.len() as u64;
        stats.bytes_read += inputs.iter().map(|s| s.file_len()).sum::<u64>();
        stats.bytes_written += output.as_ref().map_or(0, |o| o.file_len());
        stats.busy += started.elapsed();
        Ok(true)
    }

    /// Removes the table's segments all of whose rows have expired under every retention
    /// rule, without rewriting anything; returns how many.
    pub(super) fn expire_segments(&self, table: &Table, now: i64) -> Result<usize> {
        if self.wal.is_none() {
            return Ok(0);
        }
        let _compacting = self.compact_lock.lock();
        let (name, expired) = {
            let state = table.state.read();
            let name = state.schema.name.clone();
            let lifecycles = self.lifecycles.read();
            let Some(l) = lifecycles.get(&name).filter(|l| l.retention.is_some()) else {
                return Ok(0);
            };
            let reference = now.min(state.newest);
            let Some(floor) =
                Hide::new(Some(l), Vec::new(), Some(reference)).and_then(|h| h.floor())
            else {
                return Ok(0);
            };
            let expired: Vec<usize> = state
                .segments
                .iter()
                .enumerate()
                .filter(|(_, s)| s.meta().max_time < floor)
                .map(|(i, _)| i)
                .collect();
            (name, expired)
        };
        // One at a time from the newest, so that positions stay valid.
        for &i in expired.iter().rev() {
            let input = Arc::clone(&table.state.read().segments[i]);
            self.replace_segments(table, &name, i..i + 1, &[input], None)?;
        }
        Ok(expired.len())
    }

    /// Replaces the segments at `range` of a table's list (which must still be `inputs`)
    /// with `output`, if any: the manifest first, then what readers see; the inputs'
    /// files go once no snapshot reads them. Deletes no segment needs any more are
    /// forgotten.
    fn replace_segments(
        &self,
        table: &Table,
        name: &str,
        range: std::ops::Range<usize>,
        inputs: &[Arc<Segment>],
        output: Option<(SegmentEntry, Arc<Segment>)>,
    ) -> Result<()> {
        let mut manifest = self.manifest.lock();
        let before = manifest.clone();
        let entry = manifest
            .tables
            .get_mut(name)
            .expect("a table with segments");
        entry
            .segments
            .splice(range.clone(), output.as_ref().map(|(e, _)| *e));
        if let Err(e) = self.store_manifest(&mut manifest) {
            // An output file stays: live if the new manifest reached the disk, else removed
            // by the next open.
            *manifest = before;
            return Err(e);
        }
        let mut state = table.state.write();
        let replaced: Vec<Arc<Segment>> = state
            .segments
            .splice(range.clone(), output.as_ref().map(|(_, s)| Arc::clone(s)))
            .collect();
        debug_assert!(replaced.iter().zip(inputs).all(|(a, b)| Arc::ptr_eq(a, b)));
        state
            .applied
            .splice(range, output.as_ref().map(|(e, _)| e.deletes_applied))
            .for_each(drop);
        if self.forget_applied_deletes(&mut manifest, name, &state) {
            drop(state);
            // Forgetting is only tidying: a manifest that still lists the deletes is as
            // right (they apply to nothing), so a failure here is not the merge's.
            let _ = self.store_manifest(&mut manifest);
            self.publish_lifecycles(&manifest);
        }
        for s in inputs {
            s.retire();
        }
        Ok(())
    }
}
