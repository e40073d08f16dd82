//! `sextant demo`: half an hour of telemetry from every layer, and the queries that find
//! out what broke.
//!
//! The story, from 12:00 to 12:30 UTC on 2026-01-01: two services (`web` and `checkout`)
//! serve requests on four hosts while users sign up. At 12:15 `checkout` 2.4.1 is
//! deployed; its requests start failing with gateway timeouts and slow down, its host's
//! CPU climbs, and at 12:21 it is rolled back to 2.4.0. The data is the same on every run
//! (a seeded generator), so the answers are too.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use sextant_engine::{Delete, Level, LogRecord, Point};
use sextant_query::Database;

use crate::output::{self, Format};
use crate::{Error, Result};

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
/// 2026-01-01T12:00:00Z.
const START: i64 = 1_767_268_800 * SECOND;
const END: i64 = START + 30 * MINUTE;
const DEPLOY: i64 = START + 15 * MINUTE;
const ROLLBACK: i64 = START + 21 * MINUTE;

/// The tables the demo writes (and empties first when run again).
const TABLES: [&str; 5] = ["cpu", "requests", "logs", "deploys", "signups"];

/// The questions asked, with their SQL.
const QUERIES: [(&str, &str); 6] = [
    (
        "What changed? Deploys",
        "SELECT time, service, version, author FROM deploys ORDER BY time",
    ),
    (
        "Error rate per service per minute around the deploy (%)",
        "SELECT time_bucket(INTERVAL '1 minute', time) AS minute, service,
                count(*) AS requests,
                round(100.0 * sum(CASE WHEN status >= 500 THEN 1 ELSE 0 END) / count(*), 1)
                    AS error_pct
         FROM requests
         WHERE time >= '2026-01-01T12:13:00Z' AND time < '2026-01-01T12:24:00Z'
         GROUP BY minute, service ORDER BY minute, service",
    ),
    (
        "Latency per service before, during and after the bad deploy (ms)",
        "SELECT service,
                CASE WHEN time < '2026-01-01T12:15:00Z' THEN '1 before'
                     WHEN time < '2026-01-01T12:21:00Z' THEN '2 during'
                     ELSE '3 after' END AS period,
                count(*) AS requests,
                round(median(duration_ms), 1) AS p50,
                round(approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms), 1) AS p99
         FROM requests GROUP BY service, period ORDER BY service, period",
    ),
    (
        "Top error messages",
        "SELECT service, message, count(*) AS n,
                date_trunc('second', min(time)) AS first, date_trunc('second', max(time)) AS last
         FROM logs WHERE level >= 'error'
         GROUP BY service, message ORDER BY n DESC, message LIMIT 5",
    ),
    (
        "Latest CPU per host (%)",
        "SELECT host, round(last(usage_user, time), 1) AS usage_user,
                round(last(usage_system, time), 1) AS usage_system, max(time) AS at
         FROM cpu GROUP BY host ORDER BY host",
    ),
    (
        "Sign-ups per 10 minutes",
        "SELECT time_bucket(INTERVAL '10 minutes', time) AS period, plan, sum(count) AS signups
         FROM signups GROUP BY period, plan ORDER BY period, plan",
    ),
];

/// Writes the demo's telemetry into `data` and prints the answers.
pub fn run(data: &Path) -> Result<ExitCode> {
    let started = Instant::now();
    println!("Sextant demo: database in {}", data.display());
    claim(data)?;
    let db = Database::open(data)?;
    // A second run starts over: the demo's tables are emptied (a delete, as a user would).
    let existing: Vec<String> = db.engine().snapshot().tables().map(String::from).collect();
    for table in TABLES.iter().filter(|t| existing.iter().any(|e| e == *t)) {
        db.engine().delete(table, &Delete::all())?;
    }
    let points = telemetry();
    for chunk in points.chunks(10_000) {
        db.write_points(chunk)?;
    }
    db.flush()?;
    println!(
        "Wrote {} rows of telemetry (host metrics, requests, logs, deploys, sign-ups) \
         for 12:00-12:30 UTC on 2026-01-01 in {:.0} ms.",
        points.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let stdout = std::io::stdout();
    for (title, sql) in QUERIES {
        println!("\n-- {title}\n{}", indent(sql));
        let batches = db.sql(sql)?;
        output::print(&batches, Format::Table, &mut stdout.lock())?;
    }
    let dir = data.display();
    println!(
        "\nThe checkout deploy at 12:15 brought 503s and slow requests until the rollback at \
         12:21.\nAsk your own questions:\n  \
         cargo run -p sextant -- sql --data {dir} -c \"SELECT * FROM logs LIMIT 5\"\n  \
         cargo run -p sextant -- sql --data {dir}    (a prompt; SHOW TABLES; lists them)"
    );
    db.close()?;
    Ok(ExitCode::SUCCESS)
}

/// The file that marks a directory as the demo's own.
const MARKER: &str = "SEXTANT_DEMO";

/// Whether the database in `data` holds exactly the demo's tables: a directory an
/// earlier build's demo made, before the marker.
fn only_demo_tables(data: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(data.join("tables")) else {
        return false;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_unstable();
    let mut demo = TABLES.to_vec();
    demo.sort_unstable();
    data.join("MANIFEST").is_file() && names == demo
}

/// Makes sure `data` is the demo's to rewrite: a new or empty directory, or one holding
/// exactly the demo's tables (then marked as the demo's), or one an earlier run marked. Any other database is refused, since each
/// run empties the demo's tables.
fn claim(data: &Path) -> Result<()> {
    let marker = data.join(MARKER);
    if marker.is_file() {
        return Ok(());
    }
    let empty = match std::fs::read_dir(data) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io("reading directory", data, e)),
    };
    if !empty && !only_demo_tables(data) {
        return Err(Error::Usage(format!(
            "{} is not a directory the demo made, and each run of the demo empties its tables ({}); give a new or empty directory with --data",
            data.display(),
            TABLES.join(", ")
        )));
    }
    std::fs::create_dir_all(data).map_err(|e| Error::io("creating directory", data, e))?;
    std::fs::write(
        &marker,
        "This database was made by `sextant demo`, which rewrites its tables on every run.\n",
    )
    .map_err(|e| Error::io("writing", &marker, e))
}

fn indent(sql: &str) -> String {
    sql.lines()
        .map(|l| format!("   {}", l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A small seeded generator (splitmix64): the same telemetry on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Positive, skewed to the right like latencies: `median` times a log-normal factor.
    fn latency(&mut self, median: f64) -> f64 {
        let normal = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
        median * (normal * 0.9).exp()
    }
}

fn in_burst(t: i64) -> bool {
    (DEPLOY..ROLLBACK).contains(&t)
}

/// Every row the demo writes.
fn telemetry() -> Vec<Point> {
    let mut rng = Rng(2026);
    let mut out = Vec::new();
    // Deploys: what changed.
    for (t, service, version, author) in [
        (START + 4 * MINUTE, "web", "7.1.0", "ana"),
        (DEPLOY, "checkout", "2.4.1", "ben"),
        (ROLLBACK, "checkout", "2.4.0", "ben"),
    ] {
        out.push(
            Point::event("deploys")
                .tag("service", service)
                .field("version", version)
                .field("author", author)
                .time(t),
        );
    }
    // Host metrics every 10 s.
    let hosts = [
        ("web-1", "web"),
        ("web-2", "web"),
        ("checkout-1", "checkout"),
        ("db-1", "db"),
    ];
    for (host, service) in hosts {
        let mut t = START;
        while t < END {
            let busy = service == "checkout" && in_burst(t);
            let base = if busy { 78.0 } else { 22.0 };
            out.push(
                Point::metric("cpu")
                    .tag("host", host)
                    .tag("service", service)
                    .field("usage_user", base + 8.0 * rng.unit())
                    .field("usage_system", 4.0 + 3.0 * rng.unit())
                    .time(t),
            );
            t += 10 * SECOND;
        }
    }
    // Requests, about two per second per service, and their logs.
    for service in ["web", "checkout"] {
        let mut t = START;
        while t < END {
            t += (rng.unit() * SECOND as f64) as i64 + 1;
            if t >= END {
                break;
            }
            let bad = service == "checkout" && in_burst(t);
            let failed = if bad {
                rng.unit() < 0.35
            } else {
                rng.unit() < 0.004
            };
            let median = match (service, bad) {
                ("checkout", true) => 420.0,
                ("checkout", false) => 85.0,
                _ => 30.0,
            };
            let status: i64 = if failed { 503 } else { 200 };
            out.push(
                Point::event("requests")
                    .tag("service", service)
                    .tag("route", if service == "web" { "/home" } else { "/pay" })
                    .field("status", status)
                    .field("duration_ms", rng.latency(median))
                    .time(t),
            );
            if failed {
                let message = if bad && rng.unit() < 0.8 {
                    "payment gateway timeout after 5000 ms"
                } else if bad {
                    "connection pool exhausted (50 of 50 in use)"
                } else {
                    "upstream reset the connection"
                };
                out.push(
                    LogRecord::new("logs", Level::Error, message)
                        .tag("service", service)
                        .time(t + 1)
                        .into(),
                );
            } else if rng.unit() < 0.05 {
                let (level, message) = if rng.unit() < 0.2 {
                    (Level::Warn, "slow query: 1200 ms")
                } else {
                    (Level::Info, "request served")
                };
                out.push(
                    LogRecord::new("logs", level, message)
                        .tag("service", service)
                        .time(t + 1)
                        .into(),
                );
            }
        }
    }
    // Business: sign-ups per minute by plan.
    for m in 0..30 {
        for (plan, rate) in [("free", 12.0), ("pro", 3.0)] {
            let count = (rate * (0.5 + rng.unit())).round() as i64;
            out.push(
                Point::metric("signups")
                    .tag("plan", plan)
                    .field("count", count)
                    .time(START + m * MINUTE),
            );
        }
    }
    out
}
