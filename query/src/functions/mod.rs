//! Functions for dashboards, alerts and analysts, registered on every Sextant session.
//!
//! - `time_bucket(interval, time [, origin])`: the start of the interval-wide bucket that
//!   holds `time`, the same buckets as DataFusion's `date_bin` (origin defaults to the Unix
//!   epoch). `SELECT time_bucket(INTERVAL '1 minute', time) AS minute, max(usage_user)
//!   FROM cpu GROUP BY minute`.
//! - `level_rank(level)`: a log level's rank (trace = 0 .. fatal = 5). Comparisons of a
//!   level column with a level name (`WHERE level >= 'warn'`) are rewritten to ranks
//!   automatically, ignoring case.

pub mod level;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Registers Sextant's functions and rules on a session.
pub fn register(ctx: &SessionContext) {
    let date_bin = datafusion::functions::datetime::date_bin();
    let time_bucket = ScalarUDF::clone(&date_bin).with_aliases(["time_bucket"]);
    ctx.register_udf(time_bucket);
    ctx.register_udf(level::LevelRank::udf());
    ctx.add_analyzer_rule(Arc::new(level::LevelComparisons));
}
