//! Helpers shared by the SQL integration tests.

#![allow(dead_code)] // Each test crate uses its own subset.

use arrow_array::RecordBatch;
use arrow_cast::display::array_value_to_string;
use sextant_query::Database;

/// Every cell of the batches as text, row by row ("" for null).
pub fn text(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, i).unwrap())
                    .collect(),
            );
        }
    }
    out
}

/// The answer of `statement` (an `EXPLAIN` or `EXPLAIN ANALYZE`) as lines of text.
pub fn plan_text(db: &Database, statement: &str) -> String {
    text(&db.sql(statement).unwrap())
        .into_iter()
        .map(|r| r.join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}
