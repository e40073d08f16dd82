//! `sextant`: Sextant as a program.
//!
//! - `sextant demo`: writes half an hour of telemetry from every layer into a database and
//!   prints the answers of dashboard and problem-solving queries.
//! - `sextant sql`: runs SQL on a database, from `-c`, `-f` or an interactive prompt.
//! - `sextant import`: writes line protocol and JSON-lines files into a database.
//! - `sextant inspect`: tables, columns, segments and what opening found, for operators.
//! - `sextant serve`: serves a database over HTTP (writes, SQL) and StatsD over UDP.

mod alerting;
mod config;
mod demo;
mod error;
mod import;
mod inspect;
mod lines;
mod output;
mod serve;
mod sql;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use error::{Error, Result};

/// The directory `demo` uses when none is given.
const DEFAULT_DATA: &str = "sextant-data";

#[derive(Debug, Parser)]
#[command(
    name = "sextant",
    version,
    about = "Sextant: telemetry in one place, in SQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per run: the size of `Serve` costs nothing worth boxing it for.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Write half an hour of telemetry from every layer (host metrics, request latencies,
    /// application logs with an error burst after a deploy, sign-ups) and print the
    /// answers of a few dashboard and problem-solving queries.
    Demo {
        /// The database directory (created if missing; the demo's tables are rewritten).
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
    },
    /// Run SQL: the statements of `-c` or `-f`, else read them from standard input, each
    /// ending with `;`.
    Sql {
        /// The database directory.
        #[arg(long)]
        data: PathBuf,
        /// SQL to run (several statements separated by `;`).
        #[arg(short = 'c', long = "command", conflicts_with = "file")]
        command: Option<String>,
        /// A file of SQL statements.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// How answers are printed.
        #[arg(long, value_enum, default_value_t = output::Format::Table)]
        format: output::Format,
    },
    /// Write line protocol (`.lp`, `.txt`, `.influx`), JSON-lines (`.jsonl`, `.json`,
    /// `.ndjson`) and CSV (`.csv`) files into a database. Bad lines are reported with
    /// their number and reason and the good ones kept; the exit code is 1 if any line was
    /// rejected. A CSV file has a header row with a `time` column (RFC 3339, or integers
    /// in --precision units) and is one table.
    Import {
        /// The database directory.
        #[arg(long)]
        data: PathBuf,
        /// The unit of integer timestamps (line protocol, CSV): ns, us, ms or s.
        #[arg(long, default_value = "ns")]
        precision: String,
        /// CSV: the columns that are tags, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// CSV: the table (default: each file's stem).
        #[arg(long)]
        table: Option<String>,
        /// CSV: write event tables rather than metric tables.
        #[arg(long)]
        events: bool,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print what a database holds, for operators: tables, columns, segments (level,
    /// size, rows, series, time range), rows in memory, and what opening it recovered.
    Inspect {
        /// The database directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Serve a database: Influx line protocol, Prometheus remote write, JSON-lines logs
    /// and SQL over HTTP, SQL over the PostgreSQL wire protocol (read-only), StatsD over
    /// UDP, until SIGINT or SIGTERM. Listeners bind to
    /// loopback unless given another address.
    #[command(args_override_self = true)]
    Serve {
        /// A TOML file of these flags (keys: their names without dashes, such as
        /// `query-timeout = "30s"`); flags given here win over it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The database directory (created if missing).
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
        /// Where HTTP listens, or `off`.
        #[arg(long, default_value = "127.0.0.1:8086")]
        http: Listen,
        /// Where PostgreSQL clients (psql, Grafana, drivers) connect, or `off`.
        #[arg(long, default_value = "127.0.0.1:5432")]
        postgres: Listen,
        /// Where StatsD listens (UDP), or `off`.
        #[arg(long, default_value = "127.0.0.1:8125")]
        statsd: Listen,
        /// How often StatsD's aggregates are written (e.g. 10s, 500ms).
        #[arg(long, default_value = "10s", value_parser = duration)]
        statsd_flush: std::time::Duration,
        /// A token HTTP clients must send (`Authorization: Bearer <token>`); also read
        /// from the environment variable SEXTANT_TOKEN.
        #[arg(long, env = "SEXTANT_TOKEN", hide_env_values = true, value_parser = serve::Secret::new)]
        token: Option<serve::Secret>,
        /// A password PostgreSQL clients must give (any user name); also read from the
        /// environment variable SEXTANT_POSTGRES_PASSWORD. It crosses the network as
        /// clear text: keep the listener on loopback or a trusted network.
        #[arg(long, env = "SEXTANT_POSTGRES_PASSWORD", hide_env_values = true, value_parser = serve::Secret::new)]
        postgres_password: Option<serve::Secret>,
        /// The largest HTTP request body, in bytes (compressed or not).
        #[arg(long, default_value_t = 25_000_000)]
        max_body: usize,
        /// How long an HTTP client has to send a request's head (an idle keep-alive
        /// connection is closed after this long) and then its body (408 past it).
        #[arg(long, default_value = "30s", value_parser = duration)]
        read_timeout: std::time::Duration,
        /// The most HTTP connections open at once; the next is answered 503.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
        http_connections: u32,
        /// The most PostgreSQL clients connected at once; the next is refused with
        /// PostgreSQL's "too many connections".
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        postgres_connections: u32,
        /// A SQL query running longer is cancelled (e.g. 60s).
        #[arg(long, default_value = "60s", value_parser = duration)]
        query_timeout: std::time::Duration,
        /// When a write is acknowledged: `always` (fsynced first: nothing acknowledged
        /// is lost, even on power loss), an interval such as `1s` (a power loss may take
        /// the last interval; a crash of the process loses nothing), or `never`.
        #[arg(long, default_value = "always", value_parser = serve::parse_durability)]
        durability: sextant_engine::Durability,
        /// Bytes of memory for rows not yet in segments and queries together; past it a
        /// write is answered 503 with Retry-After. Default: no budget.
        #[arg(long)]
        memory_budget: Option<usize>,
        /// Bytes of memory SQL queries may hold together (sorts, joins, aggregations);
        /// past it a query fails. Default: no limit.
        #[arg(long)]
        query_memory: Option<usize>,
        /// How often the server writes its own counters into the tables sextant_ingest
        /// and sextant_queries (e.g. 10s), or `off`.
        #[arg(long, default_value = "10s")]
        telemetry_interval: Every,
        /// A TOML file of alert rules, evaluated each at its interval; the alerts are at
        /// /api/v1/alerts and their history in the table `alerts`.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// A webhook told of firing and resolved alerts, with Alertmanager's webhook
        /// payload (may be given more than once).
        #[arg(long = "alert-webhook", requires = "rules")]
        alert_webhooks: Vec<String>,
        /// An Alertmanager (such as http://localhost:9093) sent the alerts (may be given
        /// more than once).
        #[arg(long = "alertmanager", requires = "rules")]
        alertmanagers: Vec<String>,
    },
    /// Run an alert rule over a past range of a database, without side effects: when each
    /// instance would have been pending and firing, the first firing, and how many
    /// notifications it would have sent.
    Backtest {
        /// The database directory (not open in a server: ask a server's
        /// /api/v1/backtest instead).
        #[arg(long)]
        data: PathBuf,
        /// The TOML rule file.
        #[arg(long)]
        rules: PathBuf,
        /// The rule's name.
        #[arg(long)]
        rule: String,
        /// The start: RFC 3339 (2026-12-01T14:00:00Z), `now`, or `now-6h`.
        #[arg(long)]
        from: String,
        /// The end, likewise.
        #[arg(long, default_value = "now")]
        to: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the unit tests of alert rules: input series and events, evaluation times, and
    /// the alerts expected at each (see sextant-alerts' `unit` module for the file's
    /// format). Exit status 1 if any expectation is not met.
    TestRules {
        /// Test files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// A listener's address, or `off`.
#[derive(Debug, Clone, Copy)]
struct Listen(Option<std::net::SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Listen, String> {
        if s == "off" {
            return Ok(Listen(None));
        }
        s.parse()
            .map(|a| Listen(Some(a)))
            .map_err(|_| format!("{s:?} is not an address such as 127.0.0.1:8086, or `off`"))
    }
}

/// An interval, or `off`.
#[derive(Debug, Clone, Copy)]
struct Every(Option<std::time::Duration>);

impl std::str::FromStr for Every {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Every, String> {
        if s == "off" {
            return Ok(Every(None));
        }
        match duration(s)? {
            d if d.is_zero() => Err("the interval must be more than zero, or `off`".into()),
            d => Ok(Every(Some(d))),
        }
    }
}

/// A duration flag: more than zero (a zero timeout or interval would refuse or spin).
fn duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    serve::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("{s:?} is not a duration above zero such as 10s, 500ms, 1m or 1h 30m")
        })
}

/// Tells glibc's allocator to keep memory a query freed for the next one, up to 64 MiB
/// at the top of each heap, and to serve allocations of up to 32 MiB from its heaps.
///
/// By default glibc gives such memory back to the system on the server's query
/// threads, and the next query faults it in again page by page: a 100,000-row
/// PostgreSQL answer took 900 to 2,500 page faults (up to 10 MB) and, on this machine,
/// 2 to 7 ms more than with these settings (the same settings through
/// `GLIBC_TUNABLES`, alternated with the defaults). A program that embeds the library
/// on its main thread (glibc's main heap) did not see it.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of the allocator's parameters, to values glibc
    // accepts (at most its 32 MiB maximum for M_MMAP_THRESHOLD); it is called first in
    // main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let args: Vec<OsString> = std::env::args_os().collect();
    // The configuration file is found before the command line is checked, so that a
    // flag given here may need one that only the file gives (--alert-webhook, --rules).
    let cli = match config::path_in(&args) {
        None => Cli::parse_from(&args),
        Some(path) => {
            let command = Cli::command();
            let Some(serve) = command.find_subcommand("serve") else {
                unreachable!("serve is a subcommand of Cli");
            };
            let args = match config::with_file(&args, &path, serve) {
                Ok(args) => args,
                Err(e) => {
                    eprintln!("sextant: {e}");
                    return ExitCode::FAILURE;
                }
            };
            Cli::try_parse_from(args).unwrap_or_else(|e| {
                eprintln!("sextant: with the flags of {}:", path.display());
                e.exit()
            })
        }
    };
    let result = match cli.command {
        Command::Demo { data } => demo::run(&data),
        Command::Sql {
            data,
            command,
            file,
            format,
        } => sql::run(&data, command, file, format),
        Command::Import {
            data,
            precision,
            tags,
            table,
            events,
            files,
        } => import::run(
            &data,
            &precision,
            &import::CsvOptions {
                tags,
                table,
                events,
            },
            &files,
        ),
        Command::Inspect { data } => inspect::run(&data),
        Command::Serve {
            config: _,
            data,
            http,
            postgres,
            statsd,
            statsd_flush,
            token,
            postgres_password,
            max_body,
            read_timeout,
            http_connections,
            postgres_connections,
            query_timeout,
            durability,
            memory_budget,
            query_memory,
            telemetry_interval,
            rules,
            alert_webhooks,
            alertmanagers,
        } => serve::run(serve::Options {
            data,
            http: http.0,
            postgres: postgres.0,
            statsd: statsd.0,
            statsd_flush,
            token,
            postgres_password,
            max_body,
            read_timeout,
            http_connections: http_connections as usize,
            postgres_connections: postgres_connections as usize,
            query_timeout,
            durability,
            memory_budget,
            query_memory,
            telemetry_interval: telemetry_interval.0,
            rules,
            webhooks: alert_webhooks,
            alertmanagers,
        }),
        Command::Backtest {
            data,
            rules,
            rule,
            from,
            to,
            json,
        } => alerting::backtest(&data, &rules, &rule, &from, &to, json),
        Command::TestRules { files } => alerting::test_rules(&files),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sextant: {e}");
            ExitCode::FAILURE
        }
    }
}
