//! The statements of recently run SQL text, so that SQL run again (a dashboard's refresh,
//! a script's loop) is not parsed and resolved again.
//!
//! Only queries are kept (not statements that create or change tables or set options,
//! which clear the cache). An entry is used only while every Sextant table it reads has
//! the columns it had when the entry was made: a table that gained a column is looked up
//! again, so `SELECT *` returns the new column as fresh SQL would. Rows are never stale:
//! scans read the rows of the moment they are planned (see [`crate::provider`]).

use std::collections::HashMap;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use sextant_engine::Engine;

use crate::provider::SextantTable;
use crate::statement::Statement;

/// Statements kept at most; past it the least recently used goes.
pub(crate) const CAPACITY: usize = 256;

/// SQL text to its statement; see the [module](self) documentation.
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    entries: HashMap<String, Entry>,
    /// Incremented at each use, to find the least recently used entry.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    statement: Statement,
    /// The Sextant tables the plan reads, with their number of columns then.
    tables: Vec<(String, usize)>,
    used: u64,
}

impl PlanCache {
    /// The statement of `sql`, if kept and still valid against `engine`'s tables.
    pub fn get(&mut self, sql: &str, engine: &Engine) -> Option<Statement> {
        self.clock += 1;
        let entry = self.entries.get_mut(sql)?;
        let valid = entry.tables.iter().all(|(name, columns)| {
            engine
                .schema(name)
                .is_some_and(|s| s.columns.len() == *columns)
        });
        if !valid {
            self.entries.remove(sql);
            return None;
        }
        entry.used = self.clock;
        Some(entry.statement.clone())
    }

    /// Keeps `statement` (of a query without parameters) for `sql`.
    pub fn insert(&mut self, sql: &str, statement: Statement) {
        if self.entries.len() >= CAPACITY
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
        let tables = sextant_tables(statement.plan());
        self.entries.insert(
            sql.to_string(),
            Entry {
                statement,
                tables,
                used: self.clock,
            },
        );
    }

    /// Forgets every statement.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Statements kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The Sextant tables `plan` scans (subqueries included), with their number of columns.
fn sextant_tables(plan: &LogicalPlan) -> Vec<(String, usize)> {
    let mut tables = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<SextantTable>()
        {
            let schema = table.table_schema();
            tables.push((schema.name.clone(), schema.columns.len()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables
}

#[cfg(test)]
mod tests {
    use sextant_engine::Point;

    use super::CAPACITY;
    use crate::Database;

    #[test]
    fn queries_are_kept_up_to_the_capacity_and_statements_clear_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        db.write_points(&[Point::metric("cpu").field("usage", 1.0).time(1)])
            .unwrap();
        for i in 0..CAPACITY + 10 {
            db.sql(&format!("SELECT usage + {i} FROM cpu")).unwrap();
        }
        assert_eq!(db.plans_kept(), CAPACITY);
        // The most recently used survive: run one kept early again, then add more.
        db.sql("SELECT usage + 20 FROM cpu").unwrap();
        db.sql("SELECT 'one more'").unwrap();
        db.sql("SELECT usage + 20 FROM cpu").unwrap();
        assert_eq!(db.plans_kept(), CAPACITY);
        // Parameters are not kept (the run fails: no values); nor statements, which clear.
        assert!(db.sql("SELECT usage FROM cpu WHERE usage > $1").is_err());
        assert_eq!(db.plans_kept(), CAPACITY);
        db.sql("SET datafusion.execution.batch_size = 4096")
            .unwrap();
        assert_eq!(db.plans_kept(), 0);
    }
}
