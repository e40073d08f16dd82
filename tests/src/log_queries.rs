//! The application-log queries of WORKLOADS.md §2 as SQL over the `logs` event table
//! (tags `service`, `host`, `env`; a `level` column; `message`, `trace_id`).
//!
//! "Errors" are rows at level `error`; the template query counts `error` and `fatal` rows.
//! The generator does not store template ids, so a message's *template* is its first two
//! words (`"api: request"`, `"store: database"`): the logger and the first word of the base
//! text, which tell the 32 error-class templates apart exactly.
//!
//! ```
//! use sextant_tests::log_queries;
//! use sextant_tests::tsbs::{Window, HOUR};
//!
//! let sql = log_queries::errors_per_service_per_minute(Window::new(0, HOUR));
//! assert!(sql.contains("level = 'error'"));
//! ```

use crate::tsbs::{Window, quote};

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

/// The `limit` newest rows of `service` at level warn or above: columns `time`, `host`,
/// `level`, `message`, newest first.
pub fn newest_warnings(service: &str, limit: usize) -> String {
    format!(
        "SELECT time, host, level, message FROM logs \
         WHERE service = {} AND level >= 'warn' ORDER BY time DESC LIMIT {limit}",
        quote(service)
    )
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
