//! The memory budget: rows held in memory across every table, and memory reserved by
//! queries, and the back-pressure that keeps them within
//! [`Config::memory_budget`](crate::Config::memory_budget).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Inner;
use crate::batch::TableBatch;
use crate::error::{Error, Result};
use crate::table::{Table, freeze};

/// Assumed until a flush has been timed: a modest disk's rate of writing segments from
/// memory (compression included).
const DEFAULT_FLUSH_BYTES_PER_SEC: f64 = 100e6;

/// The wait suggested when queries, not rows, hold the memory a write needs.
const QUERY_WAIT: Duration = Duration::from_millis(100);

impl Inner {
    /// Bytes of rows in memory: every table's head and heads being flushed.
    pub(super) fn memory_used(&self) -> usize {
        self.tables
            .read()
            .values()
            .map(|t| {
                let s = t.state.read();
                s.head.bytes + s.frozen.iter().map(|f| f.bytes).sum::<usize>()
            })
            .sum()
    }

    /// Reserves `bytes` of the budget for a query (see `Engine::try_reserve_memory`).
    pub(super) fn try_reserve(&self, bytes: usize) -> Result<()> {
        let Some(budget) = self.config.memory_budget else {
            self.reserved.fetch_add(bytes, Ordering::Relaxed);
            return Ok(());
        };
        let rows = self.memory_used();
        let mut reserved = self.reserved.load(Ordering::Relaxed);
        loop {
            if rows.saturating_add(reserved).saturating_add(bytes) > budget {
                return Err(Error::MemoryBudget {
                    rows,
                    reserved,
                    needed: bytes,
                    budget,
                });
            }
            match self.reserved.compare_exchange_weak(
                reserved,
                reserved + bytes,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => reserved = actual,
            }
        }
    }

    /// Gives back `bytes` reserved with [`Inner::try_reserve`] (or past the budget).
    pub(super) fn release(&self, bytes: usize) {
        let r = &self.reserved;
        let mut current = r.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_sub(bytes);
            match r.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }

    /// [`Inner::try_reserve`], given back when the reservation is dropped.
    pub(super) fn reservation(&self, bytes: usize) -> Result<Reservation<'_>> {
        self.try_reserve(bytes)?;
        Ok(Reservation { inner: self, bytes })
    }

    /// Makes room for `batches` within `budget`, less what queries have reserved: freezes
    /// the largest heads for flushing (and, without a background flusher, flushes them
    /// here); if what is frozen still holds the memory, refuses the write with a
    /// back-pressure error.
    pub(super) fn fit_budget(&self, batches: &[TableBatch], budget: usize) -> Result<()> {
        let needed: usize = batches.iter().map(|b| b.memory_size()).sum();
        if needed > budget {
            return Err(Error::InvalidInput(format!(
                "one write of {needed} bytes is larger than the whole memory budget of {budget} bytes; split it into smaller writes"
            )));
        }
        self.room_for(needed, budget)
    }

    /// Makes room for `needed` more bytes within `budget`, less what is reserved:
    /// freezes the largest heads for flushing (and, without a background flusher, flushes
    /// them here); if what is frozen still holds the memory, a back-pressure error saying
    /// how long to wait.
    pub(super) fn room_for(&self, needed: usize, budget: usize) -> Result<()> {
        // Memory queries hold is not the heads' to take; it comes back when they end.
        let reserved = self.reserved.load(Ordering::Relaxed);
        let full = budget;
        let budget = budget.saturating_sub(reserved);
        let used = self.memory_used();
        if used + needed <= budget {
            return Ok(());
        }
        if needed > budget {
            // Flushing every row would not make room: only queries ending will.
            return Err(Error::Backpressure {
                used: used + reserved,
                queries: reserved,
                needed,
                budget: full,
                retry_after: QUERY_WAIT,
            });
        }
        // Freeze live heads, largest first, until the live ones leave room.
        let mut tables: Vec<(usize, Arc<Table>)> = self
            .tables
            .read()
            .values()
            .map(|t| (t.state.read().head.bytes, Arc::clone(t)))
            .filter(|(bytes, _)| *bytes > 0)
            .collect();
        tables.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let mut live: usize = tables.iter().map(|(b, _)| b).sum();
        for (bytes, t) in &tables {
            if live + needed <= budget / 2 {
                break;
            }
            freeze(&mut t.state.write());
            live -= bytes;
        }
        if self.config.background_flush {
            let (lock, cv) = &self.wake;
            *lock.lock() = true;
            cv.notify_one();
        } else {
            let all: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
            for t in all {
                if !t.state.read().frozen.is_empty() {
                    self.flush_table(&t)?;
                }
            }
        }
        let used = self.memory_used();
        if used + needed <= budget {
            return Ok(());
        }
        let frozen: usize = self
            .tables
            .read()
            .values()
            .map(|t| t.state.read().frozen.iter().map(|f| f.bytes).sum::<usize>())
            .sum();
        let (bytes, time) = *self.flushed_memory.lock();
        let rate = if bytes > 0 && !time.is_zero() {
            bytes as f64 / time.as_secs_f64()
        } else {
            DEFAULT_FLUSH_BYTES_PER_SEC
        };
        let wait = (frozen.min(used + needed - budget) as f64 / rate).clamp(0.01, 10.0);
        Err(Error::Backpressure {
            used: used + reserved,
            queries: reserved,
            needed,
            budget: full,
            retry_after: Duration::from_secs_f64(wait),
        })
    }
}

/// Memory reserved in the budget (by a compaction) until dropped.
pub(super) struct Reservation<'a> {
    inner: &'a Inner,
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.inner.release(self.bytes);
    }
}
