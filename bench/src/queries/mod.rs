//! The TSBS devops queries of WORKLOADS.md §1 as SQL over the `cpu` table, in the shapes
//! TimescaleDB's query generator emits (`time_bucket('60 seconds', time)`, `hostname IN
//! (...)`, `time >= '...' AND time < '...'`), with their random parameters drawn from a
//! seed the way TSBS draws them. The query benchmark (`sextant-bench query`) and the answer
//! tests (`tests/tests/tsbs_queries.rs`) both use them.
//!
//! ```
//! use sextant_bench::queries::{DevopsQuery, Rng, Window, DEVOPS, HOUR};
//!
//! let data = Window::new(1_451_606_400_000_000_000, 1_451_606_400_000_000_000 + 16 * HOUR);
//! let (name, kind) = DEVOPS[0];
//! assert_eq!(name, "single-groupby-1-1-1");
//! let query = DevopsQuery::draw(kind, &mut Rng::new(7), 20, data);
//! assert_eq!(query.hosts.len(), 1);
//! assert!(query.sql().starts_with("SELECT time_bucket('60 seconds', time) AS minute"));
//! ```

pub mod logs;
mod params;
mod sets;

use std::fmt::Write as _;

use datafusion::common::ScalarValue;

pub use params::{HOUR, MINUTE, Rng, SECOND, Window, quote, random_hosts, sql_time};
pub use sets::{BenchQuery, QuerySet, draw};

/// The cpu fields, in the order of WORKLOADS.md §1 ("metrics M" are the first M).
pub use crate::workload::cpu::FIELDS as CPU_FIELDS;

/// lastpoint with a window function instead of `DISTINCT ON`: the same answer, for engines
/// without `DISTINCT ON`. [`DevopsQuery::sql`] uses TimescaleDB's `DISTINCT ON` form, which
/// Sextant answers from each series' latest row alone.
pub const LASTPOINT_ROW_NUMBER: &str = "SELECT * EXCLUDE (rn) FROM (\
     SELECT *, row_number() OVER (PARTITION BY hostname ORDER BY time DESC) AS rn \
     FROM cpu) WHERE rn = 1 ORDER BY hostname";

/// The shape of a TSBS devops query type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DevopsKind {
    /// Max of the first `metrics` fields per minute, `hosts` hosts, `hours` hours.
    SingleGroupby {
        /// Number of fields.
        metrics: usize,
        /// Number of hosts.
        hosts: usize,
        /// Window length in hours.
        hours: i64,
    },
    /// Max of all 10 fields per hour, `hosts` hosts, 8 hours.
    CpuMaxAll {
        /// Number of hosts.
        hosts: usize,
    },
    /// Average of the first `metrics` fields per (hour, host), all hosts, 12 hours.
    DoubleGroupby {
        /// Number of fields.
        metrics: usize,
    },
    /// Every row with `usage_user > 90.0` in 12 hours, of `hosts` hosts (`None`: all).
    HighCpu {
        /// Number of hosts, or all.
        hosts: Option<usize>,
    },
    /// The latest row of every host.
    Lastpoint,
    /// `max(usage_user)` per minute for `time <` a random end, the newest 5 minutes.
    GroupbyOrderbyLimit,
}

/// The 15 TSBS devops query types of WORKLOADS.md, by name.
pub const DEVOPS: [(&str, DevopsKind); 15] = {
    use DevopsKind::*;
    [
        (
            "single-groupby-1-1-1",
            SingleGroupby {
                metrics: 1,
                hosts: 1,
                hours: 1,
            },
        ),
        (
            "single-groupby-1-1-12",
            SingleGroupby {
                metrics: 1,
                hosts: 1,
                hours: 12,
            },
        ),
        (
            "single-groupby-1-8-1",
            SingleGroupby {
                metrics: 1,
                hosts: 8,
                hours: 1,
            },
        ),
        (
            "single-groupby-5-1-1",
            SingleGroupby {
                metrics: 5,
                hosts: 1,
                hours: 1,
            },
        ),
        (
            "single-groupby-5-1-12",
            SingleGroupby {
                metrics: 5,
                hosts: 1,
                hours: 12,
            },
        ),
        (
            "single-groupby-5-8-1",
            SingleGroupby {
                metrics: 5,
                hosts: 8,
                hours: 1,
            },
        ),
        ("cpu-max-all-1", CpuMaxAll { hosts: 1 }),
        ("cpu-max-all-8", CpuMaxAll { hosts: 8 }),
        ("double-groupby-1", DoubleGroupby { metrics: 1 }),
        ("double-groupby-5", DoubleGroupby { metrics: 5 }),
        ("double-groupby-all", DoubleGroupby { metrics: 10 }),
        ("high-cpu-1", HighCpu { hosts: Some(1) }),
        ("high-cpu-all", HighCpu { hosts: None }),
        ("lastpoint", Lastpoint),
        ("groupby-orderby-limit", GroupbyOrderbyLimit),
    ]
};

/// One devops query with its drawn parameters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DevopsQuery {
    /// The query type.
    pub kind: DevopsKind,
    /// The hosts' indexes (`host_<i>`), in draw order; empty for all-host queries.
    pub hosts: Vec<u32>,
    /// The time window. For [`DevopsKind::GroupbyOrderbyLimit`] only `end_ns` is used
    /// (the end of a random one-hour window, as TSBS draws it); for
    /// [`DevopsKind::Lastpoint`] the whole data range.
    pub window: Window,
}

impl DevopsQuery {
    /// Draws the hosts and window of a `kind` query over `scale` hosts and the data range
    /// `data`, as TSBS does: distinct random hosts, a window start uniform over
    /// `[start, end - window)`. On data sets smaller than TSBS assumes, the hosts are at
    /// most `scale` and the window at most `data`.
    pub fn draw(kind: DevopsKind, rng: &mut Rng, scale: u32, data: Window) -> DevopsQuery {
        let (hosts, len) = match kind {
            DevopsKind::SingleGroupby { hosts, hours, .. } => (hosts, hours * HOUR),
            DevopsKind::CpuMaxAll { hosts } => (hosts, 8 * HOUR),
            DevopsKind::DoubleGroupby { .. } => (0, 12 * HOUR),
            DevopsKind::HighCpu { hosts } => (hosts.unwrap_or(0), 12 * HOUR),
            DevopsKind::Lastpoint => {
                return DevopsQuery {
                    kind,
                    hosts: Vec::new(),
                    window: data,
                };
            }
            DevopsKind::GroupbyOrderbyLimit => (0, HOUR),
        };
        let hosts = random_hosts(rng, scale, hosts.min(scale as usize));
        let window = data.random_sub_or_all(rng, len);
        DevopsQuery {
            kind,
            hosts,
            window,
        }
    }

    /// The hostnames of [`DevopsQuery::hosts`].
    pub fn hostnames(&self) -> Vec<String> {
        self.hosts.iter().map(|h| format!("host_{h}")).collect()
    }

    /// The query in TimescaleDB's SQL shape.
    pub fn sql(&self) -> String {
        self.render(&mut Literals)
    }

    /// The query as a statement with parameters (`$1`, `$2`, ...) in place of its
    /// hostnames and times, and the values with which it answers as [`DevopsQuery::sql`]
    /// does: the form a dashboard or an alert rule prepares once and runs again with other
    /// values.
    ///
    /// ```
    /// use sextant_bench::queries::{DevopsQuery, Rng, Window, DEVOPS, HOUR};
    ///
    /// let data = Window::new(0, 16 * HOUR);
    /// let query = DevopsQuery::draw(DEVOPS[0].1, &mut Rng::new(7), 20, data);
    /// let (sql, values) = query.prepared();
    /// assert!(sql.contains("hostname IN ($1) AND time >= $2 AND time < $3"));
    /// assert_eq!(values.len(), 3);
    /// ```
    pub fn prepared(&self) -> (String, Vec<ScalarValue>) {
        let mut params = Params(Vec::new());
        let sql = self.render(&mut params);
        (sql, params.0)
    }

    fn render(&self, values: &mut dyn Values) -> String {
        let aggregates = |function: &str, alias: &str, metrics: usize| {
            CPU_FIELDS[..metrics]
                .iter()
                .map(|f| format!("{function}({f}) AS {alias}_{f}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let hostname_in = |values: &mut dyn Values| {
            let names: Vec<String> = self
                .hostnames()
                .into_iter()
                .map(|h| values.text(h))
                .collect();
            format!("hostname IN ({})", names.join(", "))
        };
        let window = |values: &mut dyn Values| {
            let start = values.time(self.window.start_ns);
            let end = values.time(self.window.end_ns);
            params::time_between(&start, &end)
        };
        match self.kind {
            DevopsKind::SingleGroupby { metrics, .. } => {
                let hosts = hostname_in(values);
                format!(
                    "SELECT time_bucket('60 seconds', time) AS minute, {} \
                     FROM cpu WHERE {hosts} AND {} GROUP BY minute ORDER BY minute",
                    aggregates("max", "max", metrics),
                    window(values)
                )
            }
            DevopsKind::CpuMaxAll { .. } => {
                let hosts = hostname_in(values);
                format!(
                    "SELECT time_bucket('3600 seconds', time) AS hour, {} \
                     FROM cpu WHERE {hosts} AND {} GROUP BY hour ORDER BY hour",
                    aggregates("max", "max", CPU_FIELDS.len()),
                    window(values)
                )
            }
            DevopsKind::DoubleGroupby { metrics } => format!(
                "SELECT time_bucket('3600 seconds', time) AS hour, hostname, {} \
                 FROM cpu WHERE {} GROUP BY hour, hostname ORDER BY hour, hostname",
                aggregates("avg", "mean", metrics),
                window(values)
            ),
            DevopsKind::HighCpu { hosts } => {
                let mut sql = format!(
                    "SELECT * FROM cpu WHERE usage_user > 90.0 AND {}",
                    window(values)
                );
                if hosts.is_some() {
                    let _ = write!(sql, " AND {}", hostname_in(values));
                }
                sql
            }
            // TimescaleDB's form (see also [`LASTPOINT_ROW_NUMBER`]).
            DevopsKind::Lastpoint => {
                "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC".to_owned()
            }
            DevopsKind::GroupbyOrderbyLimit => format!(
                "SELECT time_bucket('60 seconds', time) AS minute, max(usage_user) \
                 FROM cpu WHERE time < {} GROUP BY minute ORDER BY minute DESC LIMIT 5",
                values.time(self.window.end_ns)
            ),
        }
    }

    /// Whether [`DevopsQuery::sql`] fixes the order of its rows (every type but high-cpu,
    /// whose rows come in any order). Ordered queries have a unique sort key, so two correct
    /// engines return the same rows in the same order.
    pub fn is_ordered(&self) -> bool {
        !matches!(self.kind, DevopsKind::HighCpu { .. })
    }
}

/// How [`DevopsQuery::render`] writes a query's values: as literals, or as parameters.
trait Values {
    /// A string value.
    fn text(&mut self, value: String) -> String;
    /// A timestamp in nanoseconds since the epoch, UTC.
    fn time(&mut self, ns: i64) -> String;
}

/// Values written into the SQL text.
struct Literals;

impl Values for Literals {
    fn text(&mut self, value: String) -> String {
        quote(&value)
    }

    fn time(&mut self, ns: i64) -> String {
        sql_time(ns)
    }
}

/// Values written as `$1`, `$2`, ..., and kept in that order.
struct Params(Vec<ScalarValue>);

impl Params {
    fn push(&mut self, value: ScalarValue) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

impl Values for Params {
    fn text(&mut self, value: String) -> String {
        self.push(ScalarValue::Utf8(Some(value)))
    }

    fn time(&mut self, ns: i64) -> String {
        self.push(ScalarValue::TimestampNanosecond(
            Some(ns),
            Some("UTC".into()),
        ))
    }
}

/// The position of the query type named `name` in [`DEVOPS`] (the index [`draw`] takes).
pub fn devops_index(name: &str) -> Option<usize> {
    DEVOPS.iter().position(|(n, _)| *n == name)
}

/// The query type named `name` in [`DEVOPS`].
pub fn devops_kind(name: &str) -> Option<DevopsKind> {
    DEVOPS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, kind)| kind)
}
