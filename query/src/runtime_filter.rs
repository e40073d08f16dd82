//! Filters that operators above a scan push into it while the query runs, above all a
//! hash join's keys from its build side (DataFusion's dynamic filters).
//!
//! `SELECT * FROM cpu JOIN (SELECT hostname, max(time) AS time FROM cpu GROUP BY hostname)
//! USING (hostname, time)` builds its hash table on the small side, and DataFusion then
//! fills a filter of the build side's key bounds (`time >= a AND time <= b`) and, for a
//! small build side, its keys (`hostname IN (...)`). A scan that reads that filter when
//! it starts reads only the times and series that can join, where it would otherwise
//! read the whole table for the join to discard.
//!
//! [`narrow`] takes from such a filter, once it is complete, what the engine answers
//! exactly: bounds of the `time` column and `IN` lists of one tag. Everything else in it
//! is left alone. The rows it drops are rows that cannot join; filters that are still
//! changing when the scan starts (an aggregate's running min or max, a sort's top
//! values) do not narrow it (see [`narrow`] for why).

use std::sync::Arc;

use arrow_schema::Schema;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use datafusion::physical_expr::{PhysicalExpr, split_conjunction};
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
use futures::FutureExt;
use sextant_engine::ScanRequest;
use sextant_engine::schema::{ROLE_KEY, TIME_COLUMN};

/// Most values of a tag's `IN` list taken from a filter: the engine compares each
/// series' tag with every value, so a long list costs more than it saves.
pub const MAX_TAG_VALUES: usize = 256;

/// Whether `filter` is filled while the query runs over the scan's time or tags: it holds
/// a DataFusion dynamic filter whose keys include the `time` column or a tag of `schema`.
/// Filters over fields only (a sort's top values of a field) could never narrow the scan,
/// and the operator that fills one does so only while something reads it.
pub fn is_runtime(filter: &Arc<dyn PhysicalExpr>, schema: &Schema) -> bool {
    dynamic_parts(filter).iter().any(|d| {
        d.children().iter().any(|key| {
            key.downcast_ref::<Column>().is_some_and(|c| {
                is_column(schema, c, TIME_COLUMN, None)
                    || is_column(schema, c, c.name(), Some("tag"))
            })
        })
    })
}

/// The dynamic filters inside `filter`.
fn dynamic_parts(filter: &Arc<dyn PhysicalExpr>) -> Vec<&DynamicFilterPhysicalExpr> {
    let mut parts = Vec::new();
    // The closure never fails.
    let _ = filter.apply(|e| {
        if let Some(d) = e.downcast_ref::<DynamicFilterPhysicalExpr>() {
            parts.push(d);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    parts
}

/// Narrows `request` to what `filter` lets through, if every dynamic filter in it is
/// complete (will not change again); otherwise leaves it as it is.
///
/// Narrowing is sound only for a filter that no row outside it can pass through to the
/// answer. A hash join's filter is such a filter once complete: DataFusion completes it
/// when the join has read its whole build side, before it reads the probe side, and a
/// probe row outside the build side's key bounds or keys has no match (DataFusion pushes
/// it only for joins that drop unmatched probe rows). Filters that DataFusion updates
/// while rows flow (an aggregate's running min or max, a sort's top values) are not:
/// they describe the rows read so far, and an aggregate's leaves out arguments other
/// than bare columns. They never complete before the scan ends, so they are skipped.
/// `schema` is the scan's output schema, which the filter's columns index.
pub fn narrow(
    request: &mut ScanRequest,
    schema: &Schema,
    filter: &Arc<dyn PhysicalExpr>,
) -> Result<()> {
    let complete = dynamic_parts(filter)
        .iter()
        .all(|d| d.wait_complete().now_or_never().is_some());
    if !complete {
        return Ok(());
    }
    let current = snapshot_physical_expr(Arc::clone(filter))?;
    for conjunct in split_conjunction(&current) {
        if let Some(binary) = conjunct.downcast_ref::<BinaryExpr>() {
            if let Some((op, time)) = time_bound(binary, schema) {
                apply_time(request, op, time);
            }
        } else if let Some(list) = conjunct.downcast_ref::<InListExpr>()
            && let Some((tag, values)) = tag_list(list, schema)
        {
            request.tags.push((tag, values));
        }
    }
    Ok(())
}

/// `time op t` (either way round) with a nanosecond timestamp `t`, as `(op, t)` with the
/// column on the left.
fn time_bound(binary: &BinaryExpr, schema: &Schema) -> Option<(Operator, i64)> {
    let is_time = |e: &Arc<dyn PhysicalExpr>| {
        e.downcast_ref::<Column>()
            .is_some_and(|c| is_column(schema, c, TIME_COLUMN, None))
    };
    let nanos = |e: &Arc<dyn PhysicalExpr>| match e.downcast_ref::<Literal>()?.value() {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        _ => None,
    };
    let op = *binary.op();
    if is_time(binary.left()) {
        Some((op, nanos(binary.right())?))
    } else if is_time(binary.right()) {
        Some((op.swap()?, nanos(binary.left())?))
    } else {
        None
    }
}

/// Narrows the request's time range by `time op t`.
fn apply_time(request: &mut ScanRequest, op: Operator, t: i64) {
    let (lo, hi) = match op {
        Operator::Eq => (t, t),
        Operator::GtEq => (t, i64::MAX),
        Operator::Gt => match t.checked_add(1) {
            Some(lo) => (lo, i64::MAX),
            // Nothing is later than the latest time.
            None => (i64::MAX, i64::MIN),
        },
        Operator::LtEq => (i64::MIN, t),
        Operator::Lt => match t.checked_sub(1) {
            Some(hi) => (i64::MIN, hi),
            None => (i64::MAX, i64::MIN),
        },
        _ => return,
    };
    request.min_time = request.min_time.max(lo);
    request.max_time = request.max_time.min(hi);
}

/// `tag IN ('a', 'b', ...)` of string constants (at most [`MAX_TAG_VALUES`]), as the tag
/// and its values. A NULL in the list matches no row, so it is left out.
fn tag_list(list: &InListExpr, schema: &Schema) -> Option<(String, Vec<String>)> {
    let column = list.expr().downcast_ref::<Column>()?;
    let field = schema.fields().get(column.index())?;
    if list.negated()
        || list.list().len() > MAX_TAG_VALUES
        || !is_column(schema, column, field.name(), Some("tag"))
    {
        return None;
    }
    let mut values = Vec::with_capacity(list.list().len());
    for item in list.list() {
        if let Some(v) = string(item.downcast_ref::<Literal>()?.value())? {
            values.push(v);
        }
    }
    // A join's keys repeat a value once per build row that has it.
    values.sort_unstable();
    values.dedup();
    Some((field.name().clone(), values))
}

/// The string of a string constant (`Some(None)` for NULL); `None` for anything else.
fn string(value: &ScalarValue) -> Option<Option<String>> {
    match value {
        ScalarValue::Utf8(v) | ScalarValue::Utf8View(v) | ScalarValue::LargeUtf8(v) => {
            Some(v.clone())
        }
        ScalarValue::Dictionary(_, inner) => string(inner),
        _ => None,
    }
}

/// Whether `column` is the scan's column `name` (with the role `role`, when given).
fn is_column(schema: &Schema, column: &Column, name: &str, role: Option<&str>) -> bool {
    let Some(field) = schema.fields().get(column.index()) else {
        return false;
    };
    field.name() == name
        && column.name() == name
        && role.is_none_or(|r| field.metadata().get(ROLE_KEY).is_some_and(|v| v == r))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_schema::{DataType, Field, TimeUnit};
    use datafusion::physical_expr::expressions::{self, lit};

    use super::*;

    fn schema() -> Schema {
        let tag = HashMap::from([(ROLE_KEY.to_owned(), "tag".to_owned())]);
        Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("hostname", DataType::Utf8, true).with_metadata(tag.clone()),
            Field::new_dictionary("rack", DataType::Int32, DataType::Utf8, true).with_metadata(tag),
            Field::new("usage", DataType::Float64, true),
        ])
    }

    fn col(name: &str) -> Arc<dyn PhysicalExpr> {
        let index = schema().index_of(name).unwrap();
        Arc::new(Column::new(name, index))
    }

    fn ns(t: i64) -> Arc<dyn PhysicalExpr> {
        lit(ScalarValue::TimestampNanosecond(
            Some(t),
            Some("UTC".into()),
        ))
    }

    fn cmp(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    fn narrowed(filter: Arc<dyn PhysicalExpr>) -> ScanRequest {
        let mut request = ScanRequest::new("cpu");
        narrow(&mut request, &schema(), &filter).unwrap();
        request
    }

    fn range(filter: Arc<dyn PhysicalExpr>) -> (i64, i64) {
        let r = narrowed(filter);
        (r.min_time, r.max_time)
    }

    fn in_list(column: &str, values: Vec<ScalarValue>, negated: bool) -> Arc<dyn PhysicalExpr> {
        let list = values
            .into_iter()
            .map(|v| lit(v) as Arc<dyn PhysicalExpr>)
            .collect();
        expressions::in_list(col(column), list, &negated, &schema()).unwrap()
    }

    #[test]
    fn time_bounds_narrow_the_range_either_way_round() {
        let and = |a, b| cmp(a, Operator::And, b);
        assert_eq!(
            range(and(
                cmp(col("time"), Operator::GtEq, ns(5)),
                cmp(col("time"), Operator::LtEq, ns(9))
            )),
            (5, 9)
        );
        assert_eq!(range(cmp(col("time"), Operator::Gt, ns(5))), (6, i64::MAX));
        assert_eq!(range(cmp(col("time"), Operator::Lt, ns(5))), (i64::MIN, 4));
        assert_eq!(range(cmp(ns(5), Operator::Lt, col("time"))), (6, i64::MAX));
        assert_eq!(
            range(cmp(ns(5), Operator::GtEq, col("time"))),
            (i64::MIN, 5)
        );
        assert_eq!(range(cmp(col("time"), Operator::Eq, ns(7))), (7, 7));
    }

    #[test]
    fn bounds_past_the_ends_of_time_leave_nothing() {
        let (lo, hi) = range(cmp(col("time"), Operator::Gt, ns(i64::MAX)));
        assert!(lo > hi);
        let (lo, hi) = range(cmp(col("time"), Operator::Lt, ns(i64::MIN)));
        assert!(lo > hi);
    }

    #[test]
    fn what_the_engine_does_not_answer_exactly_is_left_alone() {
        let whole = (i64::MIN, i64::MAX);
        // Another operator, another unit, a field, a column that is not time.
        assert_eq!(range(cmp(col("time"), Operator::NotEq, ns(5))), whole);
        let micros = lit(ScalarValue::TimestampMicrosecond(
            Some(5),
            Some("UTC".into()),
        ));
        assert_eq!(range(cmp(col("time"), Operator::Gt, micros)), whole);
        let r = narrowed(cmp(col("usage"), Operator::Gt, lit(90.0)));
        assert_eq!(
            (r.min_time, r.max_time, r.tags.len()),
            (i64::MIN, i64::MAX, 0)
        );
        // Lists: negated, of a field, too long.
        let host = |h: &str| ScalarValue::Utf8(Some(h.to_owned()));
        assert!(
            narrowed(in_list("hostname", vec![host("a")], true))
                .tags
                .is_empty()
        );
        assert!(
            narrowed(in_list("usage", vec![ScalarValue::from(1.0)], false))
                .tags
                .is_empty()
        );
        let long = (0..=MAX_TAG_VALUES).map(|i| host(&i.to_string())).collect();
        assert!(narrowed(in_list("hostname", long, false)).tags.is_empty());
    }

    #[test]
    fn a_tag_list_keeps_its_strings_and_drops_nulls() {
        let values = vec![
            ScalarValue::Utf8(Some("a".into())),
            ScalarValue::Utf8(None),
            ScalarValue::Utf8(Some("b".into())),
        ];
        assert_eq!(
            narrowed(in_list("hostname", values, false)).tags,
            vec![("hostname".to_owned(), vec!["a".to_owned(), "b".to_owned()])]
        );
        // Tag columns of a scan are dictionaries, and so are the keys a join collects.
        let rack = |r: &str| {
            ScalarValue::Dictionary(
                Box::new(DataType::Int32),
                Box::new(ScalarValue::Utf8(Some(r.to_owned()))),
            )
        };
        assert_eq!(
            narrowed(in_list("rack", vec![rack("r1"), rack("r2")], false)).tags,
            vec![("rack".to_owned(), vec!["r1".to_owned(), "r2".to_owned()])]
        );
        // Only NULLs: no series matches.
        assert_eq!(
            narrowed(in_list("hostname", vec![ScalarValue::Utf8(None)], false)).tags,
            vec![("hostname".to_owned(), Vec::<String>::new())]
        );
    }

    fn dynamic(keys: &[&str]) -> Arc<DynamicFilterPhysicalExpr> {
        Arc::new(DynamicFilterPhysicalExpr::new(
            keys.iter().map(|k| col(k)).collect(),
            lit(true),
        ))
    }

    #[test]
    fn runtime_filters_hold_a_dynamic_filter_over_time_or_a_tag() {
        let s = schema();
        let fixed = cmp(col("time"), Operator::Gt, ns(5));
        assert!(!is_runtime(&fixed, &s));
        let over_time: Arc<dyn PhysicalExpr> = dynamic(&["time"]);
        assert!(is_runtime(&over_time, &s));
        assert!(is_runtime(&cmp(fixed, Operator::And, over_time), &s));
        let over_tag: Arc<dyn PhysicalExpr> = dynamic(&["usage", "rack"]);
        assert!(is_runtime(&over_tag, &s));
        let over_field: Arc<dyn PhysicalExpr> = dynamic(&["usage"]);
        assert!(!is_runtime(&over_field, &s));
    }

    #[test]
    fn a_filter_narrows_only_once_complete() {
        let filter = dynamic(&["time"]);
        filter
            .update(cmp(col("time"), Operator::Gt, ns(5)))
            .unwrap();
        let as_pushed: Arc<dyn PhysicalExpr> = Arc::clone(&filter) as _;
        assert_eq!(range(Arc::clone(&as_pushed)), (i64::MIN, i64::MAX));
        filter.mark_complete();
        assert_eq!(range(as_pushed), (6, i64::MAX));
    }
}
