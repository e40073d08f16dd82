//! The application-log queries of WORKLOADS.md §2 as SQL over the `logs` event table
//! (tags `service`, `host`, `env`; a `level` column; `message`, `trace_id`).
//!
//! "Errors" are rows at level `error`; the template query counts `error` and `fatal` rows.
//! The generator does not store template ids, so a message's *template* is its first two
//! words (`"api: request"`, `"store: database"`): the logger and the first word of the base
//! text, which tell the 32 error-class templates apart exactly.
//!
//! Sextant compares a level column by severity (`level >= 'warn'`) and has `level_rank`;
//! a plain SQL engine compares strings. Where a query relies on that, `portable_*` gives
//! the same query in plain SQL (`level IN (...)`, a `CASE` rank) for the peers.
//!
//! ```
//! use sextant_bench::queries::logs;
//! use sextant_bench::queries::{Window, HOUR};
//!
//! let sql = logs::errors_per_service_per_minute(Window::new(0, HOUR));
//! assert!(sql.contains("level = 'error'"));
//! ```

use super::{Window, quote};

/// The levels at or above warn, for engines that compare levels as strings.
const WARN_OR_ABOVE: &str = "level IN ('warn', 'error', 'fatal')";

/// A level's rank (trace 0 .. fatal 5) in plain SQL, for engines without `level_rank`.
const PLAIN_LEVEL_RANK: &str = "CASE level WHEN 'trace' THEN 0 WHEN 'debug' THEN 1 \
     WHEN 'info' THEN 2 WHEN 'warn' THEN 3 WHEN 'error' THEN 4 WHEN 'fatal' THEN 5 END";

/// Errors per service per minute in `window` (one hour in WORKLOADS.md): columns
/// `minute`, `service`, `errors`, ordered by minute and service.
pub fn errors_per_service_per_minute(window: Window) -> String {
    format!(
        "SELECT time_bucket(INTERVAL '1 minute', time) AS minute, service, count(*) AS errors \
         FROM logs WHERE level = 'error' AND {} \
         GROUP BY minute, service ORDER BY minute, service",
        window.sql()
    )
}

/// Rows per level per hour in `window` (a whole day in WORKLOADS.md): columns `hour`,
/// `level`, `n`, ordered by hour and severity.
pub fn count_per_level_per_hour(window: Window) -> String {
    format!(
        "SELECT time_bucket(INTERVAL '1 hour', time) AS hour, level, count(*) AS n \
         FROM logs WHERE {} GROUP BY hour, level ORDER BY hour, level_rank(level)",
        window.sql()
    )
}

/// [`count_per_level_per_hour`] ordered by a plain `CASE` rank instead of `level_rank`.
pub fn portable_count_per_level_per_hour(window: Window) -> String {
    count_per_level_per_hour(window).replace("level_rank(level)", PLAIN_LEVEL_RANK)
}

/// The `limit` newest rows of `service` at level warn or above: columns `time`, `host`,
/// `level`, `message`, newest first.
pub fn newest_warnings(service: &str, limit: usize) -> String {
    format!(
        "SELECT time, host, level, message FROM logs \
         WHERE service = {} AND level >= 'warn' ORDER BY time DESC LIMIT {limit}",
        quote(service)
    )
}

/// [`newest_warnings`] with the levels listed instead of compared by severity.
pub fn portable_newest_warnings(service: &str, limit: usize) -> String {
    newest_warnings(service, limit).replace("level >= 'warn'", WARN_OR_ABOVE)
}

/// Every row of one trace: columns `time`, `service`, `host`, `level`, `message`, oldest
/// first.
pub fn trace_rows(trace_id: &str) -> String {
    format!(
        "SELECT time, service, host, level, message FROM logs \
         WHERE trace_id = {} ORDER BY time",
        quote(trace_id)
    )
}

/// The messages of `service` in `window` (one hour in WORKLOADS.md) that contain `word`:
/// columns `time`, `host`, `message`, oldest first.
pub fn messages_containing(service: &str, word: &str, window: Window) -> String {
    format!(
        "SELECT time, host, message FROM logs \
         WHERE service = {} AND {} AND message LIKE {} ORDER BY time",
        quote(service),
        window.sql(),
        quote(&format!("%{word}%"))
    )
}

/// The `limit` most frequent templates (first two words) of error and fatal rows in
/// `window` (15 minutes around an incident in WORKLOADS.md): columns `template`, `n`, by
/// count descending, then template.
pub fn top_error_templates(window: Window, limit: usize) -> String {
    format!(
        "SELECT split_part(message, ' ', 1) || ' ' || split_part(message, ' ', 2) AS template, \
         count(*) AS n FROM logs WHERE level IN ('error', 'fatal') AND {} \
         GROUP BY template ORDER BY n DESC, template LIMIT {limit}",
        window.sql()
    )
}

/// The template of a message: its first two words, as [`top_error_templates`] takes it.
pub fn template_of(message: &str) -> String {
    let mut words = message.split(' ');
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    format!("{first} {second}")
}
