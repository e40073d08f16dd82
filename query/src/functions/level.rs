//! Log levels in SQL: `level` compares by severity, not alphabetically.
//!
//! Level columns are `Dictionary(UInt8, Utf8)` with the level names as values. An analyzer
//! rule rewrites every comparison of such a column with a string constant
//! (`level >= 'warn'`, `'ERROR' = level`, `level IN ('error', 'fatal')`) into a comparison
//! of ranks through `level_rank(level)`, so that trace < debug < info < warn < error <
//! fatal; `ORDER BY level` likewise sorts by rank. Constants are matched ignoring case; an
//! unknown level is a planning error that lists the levels.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, UInt8Array};
use arrow_schema::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    Between, BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use sextant_engine::Level;

/// The type of level columns.
fn is_level_type(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(k, v) if **k == DataType::UInt8 && **v == DataType::Utf8)
}

/// `level_rank(level)`: the rank of a level (0 = trace .. 5 = fatal), from a level column
/// or a level name (any case); null for null, an error for an unknown name.
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
        DataType::Dictionary(_, _) => arrow_cast::cast(array, &DataType::Utf8)?,
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
        plan.transform_up_with_subqueries(|node| {
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
            if node.transformed {
                node.map_data(|p| p.recompute_schema())
            } else {
                Ok(node)
            }
        })
        .map(|t| t.data)
    }
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
        _ => Ok(Transformed::no(e)),
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
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["loud"]));
        assert!(
            ranks(&bad)
                .unwrap_err()
                .to_string()
                .contains("\"loud\" is not a log level")
        );
    }
}
