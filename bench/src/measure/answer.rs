//! A query's answer in a form two engines can be compared by: its rows rendered as text
//! (sorted when the query leaves their order open) and a checksum of that text.
//!
//! The rendering does not depend on how an engine represents a column: strings, string
//! views and dictionaries print the same; timestamps print as their raw integer in their
//! unit (so a different unit is a difference); floats print with 12 significant digits, so
//! that sums taken in another order agree while any real difference shows.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;

use crate::Result;

/// A rendered answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The column names, `|`-separated.
    pub header: String,
    /// The rows, cells `|`-separated; sorted when the query has no order.
    pub lines: Vec<String>,
    /// FNV-1a (64-bit) of the header and the lines, each followed by a newline.
    pub checksum: u64,
}

impl Answer {
    /// Renders `batches`; `ordered` tells whether the query fixes the order of its rows
    /// (if not, the lines are sorted). An answer of no rows has no header, however many
    /// empty batches carry its schema: engines differ in whether they send one (DataFusion
    /// sends none, DuckDB one), so empty answers are equal whatever their columns.
    pub fn new(batches: &[RecordBatch], ordered: bool) -> Result<Answer> {
        let header = match batches.iter().find(|b| b.num_rows() > 0) {
            Some(b) => b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join("|"),
            None => String::new(),
        };
        let mut lines = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for batch in batches {
            render(batch, &mut lines)?;
        }
        if !ordered {
            lines.sort_unstable();
        }
        let mut hash = Fnv::default();
        hash.line(&header);
        for line in &lines {
            hash.line(line);
        }
        Ok(Answer {
            header,
            lines,
            checksum: hash.0,
        })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// Where `self` and `other` first differ, as a sentence with both sides; `None` when
    /// they agree.
    pub fn first_difference(&self, other: &Answer) -> Option<String> {
        if self.header != other.header {
            return Some(format!(
                "columns differ: {:?} vs {:?}",
                self.header, other.header
            ));
        }
        for (i, (a, b)) in self.lines.iter().zip(&other.lines).enumerate() {
            if a != b {
                return Some(format!("row {i} differs: {a:?} vs {b:?}"));
            }
        }
        (self.lines.len() != other.lines.len()).then(|| {
            format!(
                "row counts differ: {} vs {}",
                self.lines.len(),
                other.lines.len()
            )
        })
    }
}

/// Appends the rows of `batch` to `lines`.
fn render(batch: &RecordBatch, lines: &mut Vec<String>) -> Result<()> {
    let options = FormatOptions::default().with_null("NULL");
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(_, _) => arrow_cast::cast(c, &DataType::Int64),
            DataType::Float32 => arrow_cast::cast(c, &DataType::Float64),
            _ => Ok(c.clone()),
        })
        .collect::<Result<_, _>>()?;
    let formatters: Vec<ArrayFormatter<'_>> = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<_, _>>()?;
    for row in 0..batch.num_rows() {
        let mut line = String::new();
        for (c, column) in columns.iter().enumerate() {
            if c > 0 {
                line.push('|');
            }
            if column.data_type() == &DataType::Float64 && column.is_valid(row) {
                let v = column.as_primitive::<Float64Type>().value(row);
                line.push_str(&format!("{v:.11e}"));
            } else {
                line.push_str(&formatters[c].value(row).to_string());
            }
        }
        lines.push(line);
    }
    Ok(())
}

/// FNV-1a, 64-bit: a checksum that is the same on every platform and release.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn line(&mut self, text: &str) {
        for &b in text.as_bytes().iter().chain(b"\n") {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        DictionaryArray, Float64Array, StringArray, StringViewArray, TimestampNanosecondArray,
        types::Int32Type,
    };

    use super::*;

    fn batch(tag: ArrayRef, sum: f64) -> RecordBatch {
        let time: ArrayRef =
            Arc::new(TimestampNanosecondArray::from(vec![5, 7]).with_timezone("UTC"));
        let value: ArrayRef = Arc::new(Float64Array::from(vec![sum, 1.5]));
        RecordBatch::try_from_iter([("time", time), ("hostname", tag), ("v", value)]).unwrap()
    }

    #[test]
    fn string_representations_render_alike() {
        let plain: ArrayRef = Arc::new(StringArray::from(vec!["host_1", "host_2"]));
        let view: ArrayRef = Arc::new(StringViewArray::from(vec!["host_1", "host_2"]));
        let dict: ArrayRef = Arc::new(
            vec!["host_1", "host_2"]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let a = Answer::new(&[batch(plain, 0.3)], true).unwrap();
        assert_eq!(a.lines[0], "5|host_1|3.00000000000e-1");
        for other in [view, dict] {
            let b = Answer::new(&[batch(other, 0.1 + 0.2)], true).unwrap();
            assert_eq!(a.checksum, b.checksum, "{:?}", a.first_difference(&b));
        }
    }

    #[test]
    fn empty_answers_are_equal_with_or_without_a_schema() {
        let tag: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let empty = batch(tag, 1.0).slice(0, 0);
        let none = Answer::new(&[], true).unwrap();
        let schema_only = Answer::new(std::slice::from_ref(&empty), true).unwrap();
        assert_eq!(none, schema_only);
        assert_eq!(none.rows(), 0);
        // An empty batch before rows does not hide the header.
        let tag: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let rows = Answer::new(&[empty, batch(tag, 1.0)], true).unwrap();
        assert_eq!(rows.header, "time|hostname|v");
    }

    #[test]
    fn order_counts_only_for_ordered_queries() {
        let ab: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let ba: ArrayRef = Arc::new(StringArray::from(vec!["b", "a"]));
        let one = |tag: &ArrayRef| {
            let v: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 1.0]));
            vec![RecordBatch::try_from_iter([("t", Arc::clone(tag)), ("v", v)]).unwrap()]
        };
        let (x, y) = (one(&ab), one(&ba));
        assert_eq!(
            Answer::new(&x, false).unwrap(),
            Answer::new(&y, false).unwrap()
        );
        let (p, q) = (
            Answer::new(&x, true).unwrap(),
            Answer::new(&y, true).unwrap(),
        );
        assert_ne!(p.checksum, q.checksum);
        assert_eq!(
            p.first_difference(&q).unwrap(),
            "row 0 differs: \"a|1.00000000000e0\" vs \"b|1.00000000000e0\""
        );
    }
}
