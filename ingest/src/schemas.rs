//! Where parsers look up the schemas of stored tables, so that a line whose types conflict
//! with stored data is rejected alone instead of failing the whole write.

use std::collections::{BTreeMap, HashMap};

use sextant_engine::{Snapshot, TableSchema};

/// The schemas of tables that already exist.
///
/// Implemented for the engine's [`Snapshot`], for maps of table name to schema, and for
/// [`NoSchemas`] (nothing stored: only conflicts inside the request are caught, and the
/// engine rejects a conflicting write as a whole).
pub trait Schemas {
    /// The schema of `table`, if it exists.
    fn schema(&self, table: &str) -> Option<&TableSchema>;
}

/// No stored tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchemas;

impl Schemas for NoSchemas {
    fn schema(&self, _table: &str) -> Option<&TableSchema> {
        None
    }
}

impl Schemas for Snapshot {
    fn schema(&self, table: &str) -> Option<&TableSchema> {
        Snapshot::schema(self, table)
    }
}

impl<S: std::hash::BuildHasher> Schemas for HashMap<String, TableSchema, S> {
    fn schema(&self, table: &str) -> Option<&TableSchema> {
        self.get(table)
    }
}

impl Schemas for BTreeMap<String, TableSchema> {
    fn schema(&self, table: &str) -> Option<&TableSchema> {
        self.get(table)
    }
}

impl<T: Schemas + ?Sized> Schemas for &T {
    fn schema(&self, table: &str) -> Option<&TableSchema> {
        (**self).schema(table)
    }
}
