//! Which SQL filters the engine can answer, and what they ask of it.
//!
//! A conjunct of the `WHERE` clause is pushed into the engine's scan when it is
//! - a comparison of the `time` column with a constant (`<`, `<=`, `>`, `>=`, `=`), or a
//!   `BETWEEN` of constants: the engine returns exactly the rows in the range (Exact);
//! - an equality or `IN` list of a tag with string constants: the engine returns exactly
//!   the matching series (Exact).
//!
//! A comparison of a field with a constant of its type (`usage_user > 90`, `trace_id =
//! 'abc'`), or of the level with a level (`level >= 'warn'`), is pushed as a hint
//! (Inexact): the engine skips blocks in which no row meets it and leaves out the rows
//! that cannot, and DataFusion still filters the rows ([`field_filters`]).
//!
//! Anything else is left to DataFusion.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, expr::InList};
use sextant_engine::{CmpOp, ColumnType, FieldFilter, FieldValue, Level, TableSchema};

/// What the pushed filters ask of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Earliest time, inclusive (ns).
    pub min_time: i64,
    /// Latest time, inclusive (ns).
    pub max_time: i64,
    /// Tag predicates: the tag is one of the values.
    pub tags: Vec<(String, Vec<String>)>,
}

impl Default for Pushed {
    fn default() -> Self {
        Pushed {
            min_time: i64::MIN,
            max_time: i64::MAX,
            tags: Vec::new(),
        }
    }
}

impl Pushed {
    /// Whether the filters can match nothing (an empty time range).
    pub fn is_empty(&self) -> bool {
        self.min_time > self.max_time
    }
}

/// Whether the engine answers `expr` exactly.
pub fn supported(expr: &Expr, schema: &TableSchema) -> bool {
    let mut p = Pushed::default();
    apply(expr, schema, &mut p)
}

/// Folds every supported filter into one request.
pub fn analyze(filters: &[Expr], schema: &TableSchema) -> Pushed {
    let mut p = Pushed::default();
    for f in filters {
        apply(f, schema, &mut p);
    }
    p
}

/// Adds `expr` to `p` if supported; returns whether it was.
fn apply(expr: &Expr, schema: &TableSchema, p: &mut Pushed) -> bool {
    if let Some((name, values)) = tag_values(expr, schema) {
        p.tags.push((name.to_string(), values));
        return true;
    }
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if let (Some(col), Some(value)) = (column(left, schema), literal(right)) {
                return compare(col, *op, value, p);
            }
            if let (Some(value), Some(col)) = (literal(left), column(right, schema))
                && let Some(op) = op.swap()
            {
                return compare(col, op, value, p);
            }
            false
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => match (column(expr, schema), literal(low), literal(high)) {
            (Some((_, ColumnType::Time)), Some(lo), Some(hi)) => {
                let (Some(lo), Some(hi)) = (time_value(&lo), time_value(&hi)) else {
                    return false;
                };
                p.min_time = p.min_time.max(lo);
                p.max_time = p.max_time.min(hi);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// `expr` as field filters the scan can skip blocks and rows by (none if it cannot): a
/// comparison of a field with a non-null constant of exactly its type, or of a level's
/// rank with a rank (the form [`crate::functions::level`] gives `level >= 'warn'`), or a
/// set of ranks (`level IN ('error', 'fatal')`, which DataFusion may turn into ORs), as
/// the range from the least to the greatest. A filter is a hint, so a range wider than
/// the set is sound.
pub fn field_filters(expr: &Expr, schema: &TableSchema) -> Vec<FieldFilter> {
    if let Some(filter) = field_filter(expr, schema) {
        return vec![filter];
    }
    let Some((column, ranks)) = level_ranks(expr, schema) else {
        return vec![];
    };
    let (Some(&lo), Some(&hi)) = (ranks.iter().min(), ranks.iter().max()) else {
        return vec![];
    };
    let bound = |op, rank| {
        let level = Level::from_rank(rank)?;
        Some(FieldFilter {
            column: column.to_string(),
            op,
            value: FieldValue::Str(level.as_str().to_string()),
        })
    };
    let top = Level::ALL.len() as u8 - 1;
    let filters = if lo == hi {
        vec![bound(CmpOp::Eq, lo)]
    } else {
        vec![
            (lo > 0).then(|| bound(CmpOp::GtEq, lo)).flatten(),
            (hi < top).then(|| bound(CmpOp::LtEq, hi)).flatten(),
        ]
    };
    filters.into_iter().flatten().collect()
}

/// `level_rank(level) IN (ranks)` or ORs of `level_rank(level) = rank` on one level
/// column: the column and the ranks.
fn level_ranks<'a>(expr: &Expr, schema: &'a TableSchema) -> Option<(&'a str, Vec<u8>)> {
    let rank = |e: &Expr| match literal(e)? {
        ScalarValue::UInt8(Some(r)) => Some(r),
        _ => None,
    };
    let level = |e: &Expr| compared(e, schema).filter(|c| c.1 == ColumnType::Level);
    match expr {
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => Some((
            level(expr)?.0,
            list.iter().map(rank).collect::<Option<_>>()?,
        )),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (level(left), level(right)) {
            (Some(c), None) => Some((c.0, vec![rank(right)?])),
            (None, Some(c)) => Some((c.0, vec![rank(left)?])),
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (a, mut ra) = level_ranks(left, schema)?;
            let (b, rb) = level_ranks(right, schema)?;
            (a == b).then(|| {
                ra.extend(rb);
                (a, ra)
            })
        }
        _ => None,
    }
}

/// One comparison as a field filter; see [`field_filters`].
fn field_filter(expr: &Expr, schema: &TableSchema) -> Option<FieldFilter> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (col, op, value) = match (compared(left, schema), literal(right)) {
        (Some(col), Some(value)) => (col, *op, value),
        _ => (compared(right, schema)?, op.swap()?, literal(left)?),
    };
    let op = match op {
        Operator::Eq => CmpOp::Eq,
        Operator::NotEq => CmpOp::NotEq,
        Operator::Lt => CmpOp::Lt,
        Operator::LtEq => CmpOp::LtEq,
        Operator::Gt => CmpOp::Gt,
        Operator::GtEq => CmpOp::GtEq,
        _ => return None,
    };
    let value = match (col.1, value) {
        (ColumnType::F64, ScalarValue::Float64(Some(v))) => FieldValue::F64(v),
        (ColumnType::I64, ScalarValue::Int64(Some(v))) => FieldValue::I64(v),
        (ColumnType::U64, ScalarValue::UInt64(Some(v))) => FieldValue::U64(v),
        (ColumnType::Bool, ScalarValue::Boolean(Some(v))) => FieldValue::Bool(v),
        (ColumnType::Str, v) => FieldValue::Str(string_value(&v)?),
        (ColumnType::Level, ScalarValue::UInt8(Some(rank))) => {
            FieldValue::Str(Level::from_rank(rank)?.as_str().to_string())
        }
        _ => return None,
    };
    Some(FieldFilter {
        column: col.0.to_string(),
        op,
        value,
    })
}

/// The field a field filter compares: a field's column, or `level_rank(level)` (a level
/// column compares by its rank alone). The function is recognised by its type, not its
/// name: a function a user registers under that name is not ours.
fn compared<'a>(expr: &Expr, schema: &'a TableSchema) -> Option<(&'a str, ColumnType)> {
    match expr {
        Expr::ScalarFunction(f)
            if f.func.inner().is::<crate::functions::level::LevelRank>() && f.args.len() == 1 =>
        {
            column(&f.args[0], schema).filter(|c| c.1 == ColumnType::Level)
        }
        _ => column(expr, schema).filter(|c| c.1 != ColumnType::Level),
    }
}

/// `tag IN (...)`, `tag = 'x'`, and ORs of those on one tag (DataFusion turns short IN
/// lists into ORs): the tag and the values it may take.
fn tag_values<'a>(expr: &Expr, schema: &'a TableSchema) -> Option<(&'a str, Vec<String>)> {
    match expr {
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            let (name, ColumnType::Tag) = column(expr, schema)? else {
                return None;
            };
            let values: Option<Vec<String>> = list
                .iter()
                .map(|e| literal(e).and_then(|v| string_value(&v)))
                .collect();
            Some((name, values?))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let (col, value) = match (column(left, schema), column(right, schema)) {
                (Some(c), None) => (c, literal(right)?),
                (None, Some(c)) => (c, literal(left)?),
                _ => return None,
            };
            let (name, ColumnType::Tag) = col else {
                return None;
            };
            Some((name, vec![string_value(&value)?]))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (a, mut va) = tag_values(left, schema)?;
            let (b, vb) = tag_values(right, schema)?;
            if a != b {
                return None;
            }
            va.extend(vb);
            Some((a, va))
        }
        _ => None,
    }
}

fn compare(col: (&str, ColumnType), op: Operator, value: ScalarValue, p: &mut Pushed) -> bool {
    match col.1 {
        ColumnType::Time => {
            let Some(v) = time_value(&value) else {
                return false;
            };
            match op {
                Operator::Gt => p.min_time = p.min_time.max(v.saturating_add(1)),
                Operator::GtEq => p.min_time = p.min_time.max(v),
                Operator::Lt => p.max_time = p.max_time.min(v.saturating_sub(1)),
                Operator::LtEq => p.max_time = p.max_time.min(v),
                Operator::Eq => {
                    p.min_time = p.min_time.max(v);
                    p.max_time = p.max_time.min(v);
                }
                _ => return false,
            }
            true
        }
        ColumnType::Tag if op == Operator::Eq => match string_value(&value) {
            Some(s) => {
                p.tags.push((col.0.to_string(), vec![s]));
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// The column an expression names, with its engine type; not through casts, which
/// [`field_filter`] relies on (a cast column compares differently from its values).
fn column<'a>(expr: &Expr, schema: &'a TableSchema) -> Option<(&'a str, ColumnType)> {
    match expr {
        Expr::Column(c) => schema.column(&c.name).map(|d| (d.name.as_str(), d.ty)),
        _ => None,
    }
}

/// The constant an expression is, looking through casts of constants.
fn literal(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        _ => None,
    }
}

/// A timestamp constant as nanoseconds since the epoch.
fn time_value(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampMicrosecond(Some(x), _) => x.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(x), _) => x.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1_000_000_000),
        ScalarValue::Int64(Some(x)) => Some(*x),
        ScalarValue::Dictionary(_, inner) => time_value(inner),
        _ => None,
    }
}

/// A string constant.
fn string_value(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, inner) => string_value(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};
    use sextant_engine::{ColumnDef, TableKind};

    fn schema() -> TableSchema {
        let mut s = TableSchema::new("cpu", TableKind::Metric);
        s.columns.push(ColumnDef::new("host", ColumnType::Tag));
        s.columns.push(ColumnDef::new("usage", ColumnType::F64));
        s
    }

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn time_ranges_and_tags_are_pushed() {
        let s = schema();
        let filters = vec![
            col("time").gt_eq(ts(100)),
            col("time").lt(ts(200)),
            col("host").in_list(vec![lit("a"), lit("b")], false),
            lit("c").eq(col("host")),
        ];
        assert!(filters.iter().all(|f| supported(f, &s)));
        let p = analyze(&filters, &s);
        assert_eq!((p.min_time, p.max_time), (100, 199));
        assert_eq!(
            p.tags,
            vec![
                ("host".into(), vec!["a".into(), "b".into()]),
                ("host".into(), vec!["c".into()])
            ]
        );
    }

    #[test]
    fn field_comparisons_with_a_constant_of_their_type_become_field_filters() {
        let s = schema();
        let f = field_filter(&lit(90.0).lt(col("usage")), &s).expect("a field filter");
        assert_eq!(
            (f.column.as_str(), f.op, f.value.to_string()),
            ("usage", CmpOp::Gt, "90.0".to_string())
        );
        let f = field_filter(&col("usage").not_eq(lit(1.5)), &s).expect("a field filter");
        assert_eq!(f.op, CmpOp::NotEq);
        // Left to DataFusion: a cast column, another type, NULL, a tag, time, arithmetic,
        // OR.
        let cast = Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(col("usage")),
            arrow_schema::DataType::Int64,
        ));
        for expr in [
            cast.gt(lit(2i64)),
            col("usage").gt(lit(90i64)),
            col("usage").gt(lit(ScalarValue::Float64(None))),
            col("host").eq(lit("a")),
            col("time").gt(ts(1)),
            (col("usage") + lit(1.0)).gt(lit(2.0)),
            col("usage").gt(lit(1.0)).or(col("usage").lt(lit(0.0))),
        ] {
            assert!(field_filter(&expr, &s).is_none(), "{expr}");
        }
    }

    #[test]
    fn sets_of_level_ranks_become_their_range() {
        let mut s = schema();
        s.columns.push(ColumnDef::new("level", ColumnType::Level));
        let rank = |r: u8| lit(ScalarValue::UInt8(Some(r)));
        let ranked = || crate::functions::level::LevelRank::udf().call(vec![col("level")]);
        let shown = |e: &Expr| -> Vec<String> {
            field_filters(e, &s)
                .iter()
                .map(|f| format!("{} {:?} {}", f.column, f.op, f.value))
                .collect()
        };
        let in_list =
            |r: &[u8], negated| ranked().in_list(r.iter().map(|&r| rank(r)).collect(), negated);
        assert_eq!(shown(&in_list(&[4, 5], false)), ["level GtEq 'error'"]);
        assert_eq!(
            shown(&in_list(&[1, 3], false)),
            ["level GtEq 'debug'", "level LtEq 'warn'"]
        );
        assert_eq!(shown(&in_list(&[0, 2], false)), ["level LtEq 'info'"]);
        assert_eq!(shown(&in_list(&[2, 2], false)), ["level Eq 'info'"]);
        let ors = ranked().eq(rank(4)).or(rank(5).eq(ranked()));
        assert_eq!(shown(&ors), ["level GtEq 'error'"]);
        // A rank that is no level meets nothing: the range of the others is enough.
        assert_eq!(shown(&in_list(&[4, 9], false)), ["level GtEq 'error'"]);
        // Every level, a negated list, another column in the ORs, a rank that is no
        // level: nothing for the scan.
        for expr in [
            in_list(&[0, 1, 2, 3, 4, 5], false),
            in_list(&[4, 5], true),
            ranked().eq(rank(4)).or(col("usage").eq(lit(1.0))),
            in_list(&[9], false),
        ] {
            assert!(shown(&expr).is_empty(), "{expr}");
        }
    }

    #[test]
    fn other_filters_are_left_to_datafusion() {
        let s = schema();
        assert!(!supported(&col("usage").gt(lit(90.0)), &s));
        assert!(!supported(&col("host").not_eq(lit("a")), &s));
        assert!(!supported(&col("host").in_list(vec![lit("a")], true), &s));
        assert!(!supported(
            &col("time").gt(ts(1)).or(col("time").lt(ts(0))),
            &s
        ));
    }

    #[test]
    fn ors_of_one_tag_become_an_in_list() {
        let s = schema();
        let f = col("host")
            .eq(lit("a"))
            .or(lit("b").eq(col("host")))
            .or(col("host").eq(lit("c")));
        assert!(supported(&f, &s));
        assert_eq!(
            analyze(&[f], &s).tags,
            vec![("host".into(), vec!["a".into(), "b".into(), "c".into()])]
        );
        let mixed = col("host").eq(lit("a")).or(col("usage").eq(lit(1.0)));
        assert!(!supported(&mixed, &s));
    }
}
