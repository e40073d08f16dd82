//! Functions for dashboards, alerts and analysts, registered on every Sextant session.
//!
//! - `time_bucket(interval, time [, origin])`: the start of the interval-wide bucket that
//!   holds `time`, the same buckets as DataFusion's `date_bin` (origin defaults to the Unix
//!   epoch). `SELECT time_bucket(INTERVAL '1 minute', time) AS minute, max(usage_user)
//!   FROM cpu GROUP BY minute`.
//! - `level_rank(level)`: a log level's rank (trace = 0 .. fatal = 5). Comparisons of a
//!   level column with a level name (`WHERE level >= 'warn'`) are rewritten to ranks
//!   automatically, ignoring case.
//! - `first(value, time)` / `last(value, time)`: the value at the earliest / latest time of
//!   the group, skipping null values; ties go to the greatest value (see [`first_last`]).
//!   `SELECT host, last(usage_user, time) FROM cpu GROUP BY host`.
//! - `increase(value, time)`, `rate(value, time)`, `delta(value, time)`: counters and
//!   gauges as Prometheus reads them, over the group's samples in time order (see
//!   [`counters`]): the increase with counter resets added back, that increase per second
//!   between the first and last sample, and last - first. Unlike Prometheus there is no
//!   extrapolation to the window's edges. `SELECT time_bucket(INTERVAL '1 minute', time)
//!   AS m, host, rate(requests, time) FROM http GROUP BY m, host ORDER BY m`.
//! - `date_bin_gapfill(interval, time [, origin])` / `time_bucket_gapfill`, with `locf(..)`
//!   and `interpolate(..)`: every bucket of the WHERE clause's time range for each group,
//!   empty ones filled (see [`gapfill`]).
//! - `min(level)` / `max(level)`, `ORDER BY level` in windows and aggregates: by severity
//!   (see [`level`]).
//!
//! `docs/FUNCTIONS.md` shows every function with an example and its output, checked by
//! `query/tests/functions_doc.rs`.

pub mod counters;
pub(crate) mod date_bin;
pub mod first_last;
pub mod gapfill;
pub mod level;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

/// Registers Sextant's functions and rules on a session: `time_bucket` (an alias of
/// `date_bin`), the level rule and `level_rank`, gap filling, `first`/`last` and the
/// counter aggregates. `docs/FUNCTIONS.md` shows each with an example and its output.
///
/// ```sql
/// SELECT time_bucket(INTERVAL '1 minute', time) AS minute, host, max(usage)
/// FROM cpu GROUP BY minute, host ORDER BY host, minute
/// ```
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(date_bin::DateBin::udf());
    ctx.register_udf(level::LevelRank::udf());
    ctx.add_analyzer_rule(Arc::new(level::LevelComparisons));
    ctx.register_udf(gapfill::DateBinGapFill::udf());
    ctx.register_udf(gapfill::FillFunction::locf());
    ctx.register_udf(gapfill::FillFunction::interpolate());
    ctx.add_analyzer_rule(Arc::new(gapfill::GapFillRule));
    ctx.register_udaf(first_last::Selector::first());
    ctx.register_udaf(first_last::Selector::last());
    ctx.register_udaf(counters::Counter::increase());
    ctx.register_udaf(counters::Counter::rate());
    ctx.register_udaf(counters::Counter::delta());
}
