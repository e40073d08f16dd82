//! The logical `GapFill` node, which sits right above the aggregate it fills.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow_schema::Field;
use datafusion::common::{DFSchema, DFSchemaRef, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

use super::fill::FillStrategy;

/// One bound of the time range, a constant expression evaluated at physical planning.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct TimeBound {
    /// The bound's value.
    pub expr: Expr,
    /// Whether the bound itself is in the range (`>=`, `<=`, BETWEEN) or not (`>`, `<`).
    pub inclusive: bool,
}

/// An extra output column of [`GapFill`]: an input column filled by a strategy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct FillColumn {
    /// Name of the output column (the name of the `locf(...)` call it replaces).
    pub name: String,
    /// Index of the filled column in the input.
    pub source: usize,
    /// How nulls are filled.
    pub strategy: FillStrategy,
}

/// Emits every bucket of a time range for each group of its input (an aggregate grouped
/// by `date_bin(...)` and group columns), plus filled copies of aggregate columns.
///
/// Output: the input's columns (same names and order), then one column per
/// [`FillColumn`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GapFill {
    /// The aggregate.
    pub input: Arc<LogicalPlan>,
    /// Index of the bucket column in the input.
    pub time_index: usize,
    /// Indices of the other group columns in the input.
    pub group_indices: Vec<usize>,
    /// The bucket width.
    pub stride: Expr,
    /// The buckets' origin (the epoch when absent).
    pub origin: Option<Expr>,
    /// Lower bounds on time (the greatest applies).
    pub lower: Vec<TimeBound>,
    /// Upper bounds on time (the least applies).
    pub upper: Vec<TimeBound>,
    /// Filled copies of input columns, appended to the output.
    pub fills: Vec<FillColumn>,
    schema: DFSchemaRef,
}

impl GapFill {
    /// A gap-filling node over `input`.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<LogicalPlan>,
        time_index: usize,
        group_indices: Vec<usize>,
        stride: Expr,
        origin: Option<Expr>,
        lower: Vec<TimeBound>,
        upper: Vec<TimeBound>,
        fills: Vec<FillColumn>,
    ) -> Result<Self> {
        let mut keys = group_indices.clone();
        keys.push(time_index);
        let schema = Arc::new(output_schema(input.schema(), &keys, &fills)?);
        Ok(GapFill {
            input,
            time_index,
            group_indices,
            stride,
            origin,
            lower,
            upper,
            fills,
            schema,
        })
    }

    /// This node with more fill columns (those already present by name are kept once).
    pub fn with_fills(&self, fills: Vec<FillColumn>) -> Result<Self> {
        let mut all = self.fills.clone();
        for f in fills {
            if !all.iter().any(|g| g.name == f.name) {
                all.push(f);
            }
        }
        GapFill::try_new(
            Arc::clone(&self.input),
            self.time_index,
            self.group_indices.clone(),
            self.stride.clone(),
            self.origin.clone(),
            self.lower.clone(),
            self.upper.clone(),
            all,
        )
    }
}

/// The input's columns, the aggregates made nullable (empty buckets have none), then the
/// fill columns.
fn output_schema(input: &DFSchema, keys: &[usize], fills: &[FillColumn]) -> Result<DFSchema> {
    let mut fields: Vec<_> = input
        .iter()
        .enumerate()
        .map(|(i, (q, f))| {
            let f = if keys.contains(&i) || f.is_nullable() {
                Arc::clone(f)
            } else {
                Arc::new(f.as_ref().clone().with_nullable(true))
            };
            (q.cloned(), f)
        })
        .collect();
    for fill in fills {
        let source = input.field(fill.source);
        fields.push((
            None,
            Arc::new(Field::new(&fill.name, source.data_type().clone(), true)),
        ));
    }
    let schema = DFSchema::new_with_metadata(fields, input.metadata().clone())?;
    schema.with_functional_dependencies(input.functional_dependencies().clone())
}

impl PartialOrd for GapFill {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (
            &self.input,
            self.time_index,
            &self.group_indices,
            &self.stride,
            &self.origin,
            &self.lower,
            &self.upper,
            &self.fills,
        )
            .partial_cmp(&(
                &other.input,
                other.time_index,
                &other.group_indices,
                &other.stride,
                &other.origin,
                &other.lower,
                &other.upper,
                &other.fills,
            ))
    }
}

impl UserDefinedLogicalNodeCore for GapFill {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        let mut exprs = vec![self.stride.clone()];
        exprs.extend(self.origin.clone());
        exprs.extend(self.lower.iter().map(|b| b.expr.clone()));
        exprs.extend(self.upper.iter().map(|b| b.expr.clone()));
        exprs
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = self.input.schema();
        write!(
            f,
            "GapFill: time={}, groups=[{}], stride={}",
            input.field(self.time_index).name(),
            self.group_indices
                .iter()
                .map(|&i| input.field(i).name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.stride
        )?;
        if let Some(origin) = &self.origin {
            write!(f, ", origin={origin}")?;
        }
        for b in &self.lower {
            write!(
                f,
                ", time {} {}",
                if b.inclusive { ">=" } else { ">" },
                b.expr
            )?;
        }
        for b in &self.upper {
            write!(
                f,
                ", time {} {}",
                if b.inclusive { "<=" } else { "<" },
                b.expr
            )?;
        }
        for fill in &self.fills {
            write!(f, ", {}", fill.name)?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let expected = 1 + usize::from(self.origin.is_some()) + self.lower.len() + self.upper.len();
        if exprs.len() != expected || inputs.len() != 1 {
            return internal_err!(
                "GapFill takes {expected} expressions and one input, was given {} and {}",
                exprs.len(),
                inputs.len()
            );
        }
        let mut exprs = exprs.into_iter();
        let stride = exprs.next().expect("counted");
        let origin = self.origin.as_ref().map(|_| exprs.next().expect("counted"));
        let lower = self
            .lower
            .iter()
            .map(|b| TimeBound {
                expr: exprs.next().expect("counted"),
                inclusive: b.inclusive,
            })
            .collect();
        let upper = self
            .upper
            .iter()
            .map(|b| TimeBound {
                expr: exprs.next().expect("counted"),
                inclusive: b.inclusive,
            })
            .collect();
        GapFill::try_new(
            Arc::new(inputs.remove(0)),
            self.time_index,
            self.group_indices.clone(),
            stride,
            origin,
            lower,
            upper,
            self.fills.clone(),
        )
    }
}
