//! The statements of recently run SQL text, so that SQL run again (a dashboard's refresh,
//! a script's loop) is not parsed and resolved again.
//!
//! Only queries over Sextant's own tables (the engine's, `sextant.*`,
//! `information_schema`) are kept: not `DESCRIBE`, whose answer is made at planning, and
//! not queries over tables an embedder registered, which it may replace. Statements
//! that set options or create or drop anything clear the cache; a query planned while
//! one runs is not kept. An entry is used only while every engine table it reads has
//! the columns it had when the entry was made: a table that gained a column is looked up
//! again, so `SELECT *` returns the new column as fresh SQL would. Rows are never stale:
//! scans read the rows of the moment their query is planned (see [`crate::provider`]), and
//! a physical plan kept to run again (by the entry's statement, for a run with no
//! values) reads those of the moment it runs (see [`crate::reuse`]). A plan made from an
//! entry's statement is kept by that statement alone, never by an entry made since for
//! the same text.

use std::collections::HashMap;

use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;

use crate::provider::each_scan;
use crate::statement::Statement;
use crate::system::SystemTable;

/// SQL text to its statement; see the [module](self) documentation.
#[derive(Debug)]
pub(crate) struct PlanCache {
    entries: HashMap<String, Entry>,
    /// Statements kept at most; past it the least recently used goes. 0 keeps none.
    capacity: usize,
    /// Incremented at each use, to find the least recently used entry.
    clock: u64,
    /// Incremented when the cache is cleared: a query planned before is not kept.
    generation: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub statement: Statement,
    /// The engine tables the plan reads, with their number of columns then.
    pub tables: Vec<(String, usize)>,
    used: u64,
}

impl PlanCache {
    /// An empty cache keeping at most `capacity` statements.
    pub fn new(capacity: usize) -> Self {
        PlanCache {
            entries: HashMap::new(),
            capacity,
            clock: 0,
            generation: 0,
        }
    }

    /// The entry of `sql`, if kept; the caller checks its tables (without this lock).
    pub fn get(&mut self, sql: &str) -> Option<Entry> {
        self.clock += 1;
        let entry = self.entries.get_mut(sql)?;
        entry.used = self.clock;
        Some(entry.clone())
    }

    /// Forgets the entry of `sql` (its tables changed).
    pub fn remove(&mut self, sql: &str) {
        self.entries.remove(sql);
    }

    /// What a query must be planned under to be kept: see [`PlanCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Keeps `statement` for `sql` if it can be kept and nothing was cleared since
    /// `generation` (read before planning it).
    pub fn insert(&mut self, sql: &str, statement: Statement, generation: u64) {
        if generation != self.generation || self.capacity == 0 {
            return;
        }
        let Some(tables) = engine_tables(statement.plan()) else {
            return;
        };
        if self.entries.len() >= self.capacity
            && !self.entries.contains_key(sql)
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.clock += 1;
        self.entries.insert(
            sql.to_string(),
            Entry {
                statement,
                tables,
                used: self.clock,
            },
        );
    }

    /// Forgets every statement, and any query being planned meanwhile.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }

    /// Statements kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `sql` is kept.
    #[cfg(test)]
    pub fn contains(&self, sql: &str) -> bool {
        self.entries.contains_key(sql)
    }
}

/// The engine tables `plan` scans (subqueries included), with their number of columns;
/// `None` if it cannot be kept: a `DESCRIBE`, or a scan of a table that is not Sextant's.
fn engine_tables(plan: &LogicalPlan) -> Option<Vec<(String, usize)>> {
    if matches!(plan, LogicalPlan::DescribeTable(_)) {
        return None;
    }
    let mut tables = Vec::new();
    let mut keep = true;
    each_scan(plan, |scan, table| {
        if let Some(table) = table {
            let schema = table.table_schema();
            tables.push((schema.name.clone(), schema.columns.len()));
        } else {
            // A system table or the information schema is built when scanned.
            keep = source_as_provider(&scan.source)
                .is_ok_and(|p| p.downcast_ref::<SystemTable>().is_some())
                || scan.table_name.schema() == Some("information_schema");
        }
        keep
    });
    keep.then_some(tables)
}

#[cfg(test)]
mod tests {
    use sextant_engine::Point;

    use crate::{Database, QueryOptions};

    #[test]
    fn the_least_recently_used_goes_and_statements_clear_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let options = QueryOptions {
            plan_cache_size: 4,
            ..QueryOptions::default()
        };
        let db = Database::open_with(sextant_engine::Config::new(dir.path()), options).unwrap();
        db.write_points(&[Point::metric("cpu").field("usage", 1.0).time(1)])
            .unwrap();
        let q = |i: usize| format!("SELECT usage + {i} FROM cpu");
        for i in 0..4 {
            db.sql(&q(i)).unwrap();
        }
        db.sql(&q(0)).unwrap();
        db.sql(&q(4)).unwrap();
        assert_eq!(db.plans_kept(), 4);
        assert!(db.plan_kept(&q(0)), "used again, so kept");
        assert!(!db.plan_kept(&q(1)), "the least recently used goes");
        // Parameters are not kept (the run fails: no values); nor DESCRIBE.
        let with_parameter = "SELECT usage FROM cpu WHERE usage > $1";
        assert!(db.sql(with_parameter).is_err());
        assert!(!db.plan_kept(with_parameter));
        db.sql("DESCRIBE cpu").unwrap();
        assert!(!db.plan_kept("DESCRIBE cpu"));
        // A statement clears.
        db.sql("SET datafusion.execution.batch_size = 4096")
            .unwrap();
        assert_eq!(db.plans_kept(), 0);
        // A DELETE does not.
        db.sql(&q(0)).unwrap();
        db.sql("DELETE FROM cpu WHERE time < '1970-01-01'").unwrap();
        assert!(db.plan_kept(&q(0)));
    }

    #[test]
    fn none_are_kept_with_a_size_of_zero() {
        let dir = tempfile::tempdir().unwrap();
        let options = QueryOptions {
            plan_cache_size: 0,
            ..QueryOptions::default()
        };
        let db = Database::open_with(sextant_engine::Config::new(dir.path()), options).unwrap();
        db.sql("SELECT 1").unwrap();
        assert_eq!(db.plans_kept(), 0);
    }
}
