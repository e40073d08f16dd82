//! Log levels in SQL: `level` compares by severity, not alphabetically.
//!
//! Level columns are `Dictionary(UInt8, Utf8)` with the level names as values. An analyzer
//! rule rewrites every comparison of such a column with a string constant
//! (`level >= 'warn'`, `'ERROR' = level`, `level IN ('error', 'fatal')`) into a comparison
//! of ranks through `level_rank(level)`, so that trace < debug < info < warn < error <
//! fatal; `ORDER BY level` likewise sorts by rank, and so do `ORDER BY level` inside
//! `OVER (...)` and inside aggregates (`array_agg(message ORDER BY level)`). `min(level)` and
//! `max(level)` (as aggregates and as window functions) become [`LevelExtreme`], the least
//! and most severe level, still of the level type, so that their results compare and sort
//! by severity too. Constants are matched ignoring case; an unknown level is a planning
//! error that lists the levels.
//!
//! ```sql
//! SELECT service, max(level) FROM logs GROUP BY service HAVING max(level) >= 'error'
//! SELECT message, row_number() OVER (ORDER BY level DESC, time) FROM logs
//! ```

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt8Type;
use arrow_array::{Array, ArrayRef, UInt8Array};
use arrow_schema::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{InList, Sort, WindowFunction, WindowFunctionDefinition};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Between, BinaryExpr, ColumnarValue, Expr,
    ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use sextant_engine::Level;

/// The type of level columns.
fn is_level_type(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(k, v) if **k == DataType::UInt8 && **v == DataType::Utf8)
}

/// `level_rank(level)`: the rank of a level (0 = trace .. 5 = fatal), from a level column
/// or a level name (any case); null for null, an error for an unknown name.
///
/// ```sql
/// SELECT message, level_rank(level) AS rank FROM logs ORDER BY rank DESC
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LevelRank {
    signature: Signature,
}

impl LevelRank {
    /// The function.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(LevelRank {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for LevelRank {
    fn name(&self) -> &str {
        "level_rank"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(ranks(&array)?))
    }
}

fn rank_of(name: &str) -> Result<u8> {
    match Level::parse(name) {
        Ok(l) => Ok(l.rank()),
        Err(e) => plan_err!("{e}"),
    }
}

fn ranks(array: &ArrayRef) -> Result<ArrayRef> {
    let strings = match array.data_type() {
        DataType::Dictionary(_, _) => {
            // The names are ranked once each and the keys look their ranks up; a
            // dictionary with a name that is no level (perhaps one no row uses) is ranked
            // row by row, so that only a row holding such a name is an error.
            let dict = array.as_any_dictionary();
            match ranks(dict.values()) {
                Ok(names) => {
                    return Ok(datafusion::arrow::compute::take(&names, dict.keys(), None)?);
                }
                Err(_) => arrow_cast::cast(array, &DataType::Utf8)?,
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            arrow_cast::cast(array, &DataType::Utf8)?
        }
        DataType::UInt8 => return Ok(array.clone()),
        other => return plan_err!("level_rank takes a level or a level name, not {other}"),
    };
    let strings = strings.as_string::<i32>();
    let mut out = Vec::with_capacity(strings.len());
    for v in strings.iter() {
        out.push(match v {
            None => None,
            Some(name) => Some(rank_of(name)?),
        });
    }
    Ok(Arc::new(UInt8Array::from(out)))
}

/// Rewrites level comparisons into rank comparisons.
#[derive(Debug, Default)]
pub struct LevelComparisons;

impl AnalyzerRule for LevelComparisons {
    fn name(&self) -> &str {
        "sextant_level_comparisons"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // The rewrite takes columns of the level's type (which come from a node that has
        // one among its columns: a scan of a log table, mostly), so a plan without one is
        // left as it is, without the rewrite's walk, which recomputes every node's schema
        // (about 6 % of planning a query of one host). A value cast to that type inside
        // an expression is not a level (it was rewritten before, if its plan had another
        // level column).
        if !has_level(&plan) {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| {
            // An input may have changed type below (min/max of a level now give a level):
            // refresh this node's schema before reading types through it.
            let node = node.recompute_schema()?;
            let schema = merged_input_schema(&node);
            let node = match node {
                // ORDER BY level orders by severity.
                LogicalPlan::Sort(mut sort) => {
                    for s in &mut sort.expr {
                        if let Some(col) = level_column(&s.expr, &schema) {
                            s.expr = rank_expr(col);
                        }
                    }
                    LogicalPlan::Sort(sort)
                }
                other => other,
            };
            // Rewritten expressions keep their names, which parent nodes refer to.
            let names = NamePreserver::new(&node);
            let node = node.map_expressions(|e| {
                let name = names.save(&e);
                Ok(e.transform_up(|e| rewrite(e, &schema))?
                    .update_data(|e| name.restore(e)))
            })?;
            node.map_data(|p| p.recompute_schema())
        })
        .map(|t| t.data)
    }
}

/// Whether a node of `plan` (subqueries included) has a level among its columns.
fn has_level(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = node
            .schema()
            .fields()
            .iter()
            .any(|f| is_level_type(f.data_type()));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

fn merged_input_schema(plan: &LogicalPlan) -> DFSchema {
    let mut schema = DFSchema::empty();
    for input in plan.inputs() {
        schema.merge(input.schema());
    }
    schema
}

/// The level name a constant holds, looking through casts.
fn level_literal(e: &Expr) -> Option<Option<String>> {
    match e {
        Expr::Literal(v, _) => Some(scalar_string(v)),
        Expr::Cast(c) => level_literal(&c.expr),
        Expr::TryCast(c) => level_literal(&c.expr),
        _ => None,
    }
}

fn scalar_string(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        ScalarValue::Dictionary(_, inner) => scalar_string(inner),
        _ => None,
    }
}

/// The level column an expression reads, looking through casts.
fn level_column(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    match e {
        Expr::Cast(c) => level_column(&c.expr, schema),
        Expr::TryCast(c) => level_column(&c.expr, schema),
        Expr::Column(_) => {
            let t = e.get_type(schema).ok()?;
            is_level_type(&t).then(|| e.clone())
        }
        _ => None,
    }
}

fn rank_expr(column: Expr) -> Expr {
    Arc::new(LevelRank::udf()).call(vec![column])
}

fn rank_literal(name: Option<String>) -> Result<Expr> {
    Ok(Expr::Literal(
        ScalarValue::UInt8(name.map(|n| rank_of(&n)).transpose()?),
        None,
    ))
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let comparison = |op: Operator| {
        matches!(
            op,
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
        )
    };
    match &e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if comparison(*op) => {
            if let (Some(col), Some(name)) = (level_column(left, schema), level_literal(right)) {
                let new = Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(rank_expr(col)),
                    *op,
                    Box::new(rank_literal(name)?),
                ));
                return Ok(Transformed::yes(new));
            }
            if let (Some(name), Some(col)) = (level_literal(left), level_column(right, schema)) {
                let new = Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(rank_literal(name)?),
                    *op,
                    Box::new(rank_expr(col)),
                ));
                return Ok(Transformed::yes(new));
            }
            Ok(Transformed::no(e))
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let Some(col) = level_column(expr, schema) else {
                return Ok(Transformed::no(e));
            };
            let (Some(low), Some(high)) = (level_literal(low), level_literal(high)) else {
                return Ok(Transformed::no(e));
            };
            Ok(Transformed::yes(Expr::Between(Between::new(
                Box::new(rank_expr(col)),
                *negated,
                Box::new(rank_literal(low)?),
                Box::new(rank_literal(high)?),
            ))))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let Some(col) = level_column(expr, schema) else {
                return Ok(Transformed::no(e));
            };
            let names: Option<Vec<Option<String>>> = list.iter().map(level_literal).collect();
            let Some(names) = names else {
                return Ok(Transformed::no(e));
            };
            let list = names
                .into_iter()
                .map(rank_literal)
                .collect::<Result<Vec<_>>>()?;
            Ok(Transformed::yes(Expr::InList(InList::new(
                Box::new(rank_expr(col)),
                list,
                *negated,
            ))))
        }
        Expr::AggregateFunction(_) => {
            let Expr::AggregateFunction(mut f) = e else {
                unreachable!("matched above")
            };
            let mut changed = rank_sort_keys(&mut f.params.order_by, schema);
            if let Some(udaf) = level_extreme(f.func.name(), &f.params.args, schema) {
                f.func = Arc::new(udaf);
                changed = true;
            }
            Ok(Transformed::new_transformed(
                Expr::AggregateFunction(f),
                changed,
            ))
        }
        Expr::WindowFunction(_) => {
            let Expr::WindowFunction(mut w) = e else {
                unreachable!("matched above")
            };
            let WindowFunction { fun, params } = w.as_mut();
            let mut changed = rank_sort_keys(&mut params.order_by, schema);
            if let WindowFunctionDefinition::AggregateUDF(f) = fun
                && let Some(udaf) = level_extreme(f.name(), &params.args, schema)
            {
                *fun = WindowFunctionDefinition::AggregateUDF(Arc::new(udaf));
                changed = true;
            }
            Ok(Transformed::new_transformed(
                Expr::WindowFunction(w),
                changed,
            ))
        }
        _ => Ok(Transformed::no(e)),
    }
}

/// Replaces sort keys that are level columns by their ranks; whether any was.
fn rank_sort_keys(keys: &mut [Sort], schema: &DFSchema) -> bool {
    let mut changed = false;
    for key in keys {
        if let Some(col) = level_column(&key.expr, schema) {
            key.expr = rank_expr(col);
            changed = true;
        }
    }
    changed
}

/// The severity-aware replacement of `min(level)` / `max(level)`.
fn level_extreme(name: &str, args: &[Expr], schema: &DFSchema) -> Option<AggregateUDF> {
    let [arg] = args else { return None };
    level_column(arg, schema)?;
    match name {
        "min" => Some(LevelExtreme::min()),
        "max" => Some(LevelExtreme::max()),
        _ => None,
    }
}

/// `min(level)` / `max(level)` by severity: the least / most severe level of the group,
/// of the level column's type; null for a group without levels. The analyzer rule puts
/// it in place of `min` and `max` of level columns, as aggregates and window functions
/// (sliding frames included: the state counts the rows of each level).
///
/// ```sql
/// SELECT service, min(level), max(level) FROM logs GROUP BY service
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LevelExtreme {
    most_severe: bool,
    signature: Signature,
}

impl LevelExtreme {
    /// The least severe level: `min(level)`.
    pub fn min() -> AggregateUDF {
        LevelExtreme::udf(false)
    }

    /// The most severe level: `max(level)`.
    pub fn max() -> AggregateUDF {
        LevelExtreme::udf(true)
    }

    fn udf(most_severe: bool) -> AggregateUDF {
        AggregateUDF::new_from_impl(LevelExtreme {
            most_severe,
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for LevelExtreme {
    fn name(&self) -> &str {
        if self.most_severe {
            "level_max"
        } else {
            "level_min"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            t if is_level_type(t) => Ok(t.clone()),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(DataType::Utf8),
            other => plan_err!("{} takes a level, not {other}", self.name()),
        }
    }

    fn accumulator(&self, acc_args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(LevelAccumulator {
            counts: [0; Level::NAMES.len()],
            most_severe: self.most_severe,
            return_type: acc_args.return_type().clone(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Field::new(format_state_name(args.name, "rank"), DataType::UInt8, true).into(),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// Rows seen of each level.
#[derive(Debug)]
struct LevelAccumulator {
    counts: [u64; Level::NAMES.len()],
    most_severe: bool,
    return_type: DataType,
}

impl LevelAccumulator {
    fn best(&self) -> Option<u8> {
        let mut present = (0..self.counts.len()).filter(|&r| self.counts[r] > 0);
        let rank = if self.most_severe {
            present.next_back()
        } else {
            present.next()
        };
        rank.map(|r| r as u8)
    }

    fn add(&mut self, ranks: &ArrayRef, sign: i64) {
        for r in ranks.as_primitive::<UInt8Type>().iter().flatten() {
            let c = &mut self.counts[r as usize];
            *c = c.saturating_add_signed(sign);
        }
    }
}

impl Accumulator for LevelAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&ranks(&values[0])?, 1);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&ranks(&values[0])?, -1);
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add(&states[0], 1);
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::UInt8(self.best())])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let name = self.best().map(|r| Level::NAMES[r as usize].to_string());
        ScalarValue::Utf8(name).cast_to(&self.return_type)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::UInt8Type;
    use arrow_array::{DictionaryArray, StringArray};

    #[test]
    fn ranks_follow_severity_and_reject_unknown_names() {
        let dict: ArrayRef = Arc::new(
            DictionaryArray::<UInt8Type>::try_new(
                UInt8Array::from(vec![4, 0, 3]),
                Arc::new(StringArray::from(Level::NAMES.to_vec())),
            )
            .unwrap(),
        );
        let r = ranks(&dict).unwrap();
        assert_eq!(r.as_primitive::<UInt8Type>().values().as_ref(), &[4, 0, 3]);
        // A name no row uses is no error; a null key is a null rank.
        let unused: ArrayRef = Arc::new(
            DictionaryArray::<UInt8Type>::try_new(
                UInt8Array::from(vec![Some(1), None]),
                Arc::new(StringArray::from(vec!["loud", "ERROR"])),
            )
            .unwrap(),
        );
        let r = ranks(&unused).unwrap();
        assert_eq!(
            r.as_primitive::<UInt8Type>().iter().collect::<Vec<_>>(),
            [Some(4), None]
        );
        let used: ArrayRef = Arc::new(
            DictionaryArray::<UInt8Type>::try_new(
                UInt8Array::from(vec![1, 0]),
                Arc::new(StringArray::from(vec!["loud", "ERROR"])),
            )
            .unwrap(),
        );
        assert!(ranks(&used).is_err());
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["loud"]));
        assert!(
            ranks(&bad)
                .unwrap_err()
                .to_string()
                .contains("\"loud\" is not a log level")
        );
    }
}
