//! Helpers shared by the SQL integration tests.

#![allow(dead_code)] // Each test crate uses its own subset.

use arrow_array::RecordBatch;
use arrow_cast::display::array_value_to_string;
use sextant_engine::Point;
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

/// Rows of `(second, host, usage, extra)` into the metric table `cpu`, tagged `hostname`
/// `h<host>` and `region` `r<host % 2>`, with `usage` and `extra` divided by `divisors`
/// (1.0 keeps them integers, whose sums are exact in any order); `extra` is missing (null)
/// where `None`. The first `flush_at` rows are flushed to a segment, the rest stay in
/// memory.
pub fn load_cpu(
    db: &Database,
    rows: &[(i64, u8, i8, Option<i8>)],
    flush_at: usize,
    divisors: (f64, f64),
) {
    let points: Vec<Point> = rows
        .iter()
        .map(|&(t, h, usage, extra)| {
            let mut p = Point::metric("cpu")
                .tag("hostname", format!("h{h}"))
                .tag("region", format!("r{}", h % 2))
                .field("usage", f64::from(usage) / divisors.0)
                .time(t * 1_000_000_000);
            if let Some(e) = extra {
                p = p.field("extra", f64::from(e) / divisors.1);
            }
            p
        })
        .collect();
    let (older, newer) = points.split_at(flush_at.min(points.len()));
    db.write_points(older).unwrap();
    db.flush().unwrap();
    db.write_points(newer).unwrap();
}
