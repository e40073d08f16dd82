//! Queries' working memory, drawn from the database's memory budget.
//!
//! DataFusion's operators that hold memory (sorts, joins, aggregations, and Sextant's gap
//! filling) reserve it from the session's [`MemoryPool`]. [`BudgetPool`] is that pool: it
//! bounds what all queries of a [`Database`](crate::Database) hold together by
//! [`QueryOptions::memory_limit`](crate::QueryOptions::memory_limit), and reserves every
//! byte from the engine's memory budget ([`Config::memory_budget`]), which rows held in
//! memory share. A query that asks for more than either leaves fails with DataFusion's
//! "resources exhausted" error, whose sentence names the limit; writes near the budget get
//! back-pressure while queries hold memory.
//!
//! [`Config::memory_budget`]: sextant_engine::Config::memory_budget

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool, MemoryReservation};
use sextant_engine::Engine;

/// A [`MemoryPool`] bounded by a limit of its own and by the engine's memory budget.
pub struct BudgetPool {
    engine: Arc<Engine>,
    /// What queries may hold together, if bounded apart from the budget.
    limit: Option<usize>,
    /// What queries hold now.
    used: AtomicUsize,
}

impl BudgetPool {
    /// A pool for the queries of `engine`'s database, holding at most `limit` bytes (and
    /// at most what the engine's budget leaves).
    pub fn new(engine: Arc<Engine>, limit: Option<usize>) -> BudgetPool {
        BudgetPool {
            engine,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl fmt::Debug for BudgetPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetPool")
            .field("limit", &self.limit)
            .field("used", &self.used.load(Ordering::Relaxed))
            .field("budget", &self.engine.memory_budget())
            .finish()
    }
}

impl fmt::Display for BudgetPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl MemoryPool for BudgetPool {
    fn name(&self) -> &str {
        "sextant-budget"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.engine.reserve_memory(additional);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.engine.release_memory(shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if let Some(limit) = self.limit
                && used.saturating_add(additional) > limit
            {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{} asked for {additional} more bytes, past the query memory limit of {limit} bytes ({used} bytes held by queries)",
                    reservation.consumer().name()
                )));
            }
            match self.used.compare_exchange_weak(
                used,
                used + additional,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => used = actual,
            }
        }
        if let Err(e) = self.engine.try_reserve_memory(additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} asked for {additional} more bytes: {e}",
                reservation.consumer().name()
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        let budget = self.engine.memory_budget();
        match (self.limit, budget) {
            (Some(l), Some(b)) => MemoryLimit::Finite(l.min(b)),
            (Some(x), None) | (None, Some(x)) => MemoryLimit::Finite(x),
            (None, None) => MemoryLimit::Infinite,
        }
    }
}
