//! `sextant serve`: the database behind network listeners, until SIGINT or SIGTERM.
//!
//! - HTTP ([`http`]): Influx line protocol at `/api/v2/write` and `/write`, Prometheus
//!   remote write at `/api/v1/write`, JSON-lines logs at `/api/v1/logs`, SQL at
//!   `/api/v1/sql`, `/health`, and the server's own counters at `/metrics`.
//! - StatsD over UDP ([`statsd`]), aggregated per flush interval.
//! - The PostgreSQL wire protocol ([`postgres`]), read-only, for psql, Grafana and
//!   drivers.
//! - With `--rules FILE`, alert rules (`sextant-alerts`) evaluated on a thread of their
//!   own, shown at `/api/v1/alerts` and `/api/v1/rules`, backtested at
//!   `/api/v1/backtest`, and sent to `--alert-webhook` and `--alertmanager` receivers.
//!
//! Every HTTP request but `/health` is checked for `--token` on its headers, before its
//! body is read.
//!
//! Every `--telemetry-interval` the server writes its own counters (requests, rows,
//! rejected lines, queries, errors) into the tables `sextant_ingest` and
//! `sextant_queries`, where they can be queried and charted like any other metric, and
//! its log (start, shutdown, warnings and errors: `info` and above) into `sextant_logs`
//! as well as on standard error
//! ([`logs`]).
//!
//! A write is acknowledged (2xx) only once it is in the write-ahead log under the
//! durability chosen (`--durability`, default `always`: on disk, `fsync`ed, before the
//! answer). On SIGINT or SIGTERM the listeners stop accepting, requests in flight finish,
//! StatsD's current interval is written, and the database is flushed and closed.

/// [`print_line`] with `format!` arguments.
macro_rules! say {
    ($($arg:tt)*) => { $crate::serve::print_line(format_args!($($arg)*)) };
}
pub(crate) use say;

mod http;
pub mod logs;
mod postgres;
mod stats;
mod statsd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sextant_alerts::notify::{Alertmanager, Webhook};
use sextant_alerts::{Evaluator, Options as AlertOptions};
use sextant_engine::{Config, Durability};
use sextant_query::{Database, QueryOptions};
use tokio::sync::watch;

use crate::{Error, Result};

pub use stats::Stats;

/// What `sextant serve` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The database directory.
    pub data: PathBuf,
    /// Where HTTP listens; `None`: no HTTP.
    pub http: Option<SocketAddr>,
    /// Where PostgreSQL clients connect; `None`: no PostgreSQL protocol.
    pub postgres: Option<SocketAddr>,
    /// Where StatsD listens (UDP); `None`: no StatsD.
    pub statsd: Option<SocketAddr>,
    /// StatsD's flush interval.
    pub statsd_flush: Duration,
    /// A bearer token every HTTP request but `/health` must carry.
    pub token: Option<Secret>,
    /// A password every PostgreSQL client must give.
    pub postgres_password: Option<Secret>,
    /// The largest HTTP request body, compressed or not, in bytes.
    pub max_body: usize,
    /// How long an HTTP client has to send a request's head (from when the server waits
    /// for it: an idle keep-alive connection is closed after this long) and then its
    /// body.
    pub read_timeout: Duration,
    /// The most HTTP connections open at once.
    pub http_connections: usize,
    /// The most PostgreSQL clients connected at once.
    pub postgres_connections: usize,
    /// A query running longer is cancelled.
    pub query_timeout: Duration,
    /// When a write is acknowledged.
    pub durability: Durability,
    /// Memory for rows in memory and queries together; past it writes get 503.
    pub memory_budget: Option<usize>,
    /// Memory the queries may hold together.
    pub query_memory: Option<usize>,
    /// How often the server writes its own counters into its tables; `None`: never.
    pub telemetry_interval: Option<Duration>,
    /// A TOML file of alert rules to evaluate; `None`: no alerting.
    pub rules: Option<PathBuf>,
    /// Webhooks told of firing and resolved alerts (Alertmanager's webhook payload).
    pub webhooks: Vec<String>,
    /// Alertmanagers sent the alerts (`POST /api/v2/alerts`).
    pub alertmanagers: Vec<String>,
}

/// A token or password: its `Debug` shows no more than that there is one, so that it
/// never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Takes a token or password; an empty one is refused (it would let anyone in while
    /// looking as if it did not).
    pub fn new(text: &str) -> std::result::Result<Secret, String> {
        if text.is_empty() {
            return Err("an empty token or password lets anyone in: give one, or none".into());
        }
        Ok(Secret(text.to_string()))
    }

    /// The token or password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Parses `--durability`: `always`, `never`, or an interval such as `1s` or `200ms`.
pub fn parse_durability(text: &str) -> std::result::Result<Durability, String> {
    match text {
        "always" => Ok(Durability::Always),
        "never" => Ok(Durability::Never),
        other => parse_duration(other)
            .filter(|d| !d.is_zero())
            .map(Durability::Interval)
            .ok_or_else(|| {
                format!("{other:?} is not `always`, `never` or an interval such as 1s or 200ms")
            }),
    }
}

/// Parses a duration as alert rules write them (humantime): `10s`, `200ms`, `1m`,
/// `1h 30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text).ok()
}

/// Serves the database in `options.data` until SIGINT or SIGTERM, then closes it.
pub fn run(options: Options) -> Result<ExitCode> {
    if options.http.is_none() && options.statsd.is_none() && options.postgres.is_none() {
        return Err(Error::Usage(
            "every listener is off: give --http, --postgres or --statsd an address".into(),
        ));
    }
    let mut config = Config::new(&options.data).durability(options.durability);
    if let Some(bytes) = options.memory_budget {
        config = config.memory_budget(bytes);
    }
    let query = QueryOptions {
        timeout: Some(options.query_timeout),
        memory_limit: options.query_memory,
        ..QueryOptions::default()
    };
    let db = Arc::new(Database::open_with(config, query)?);
    let log = logs::install(Arc::clone(db.engine()));
    tracing::info!(data = %options.data.display(), "serving");
    let stats = Arc::new(Stats::default());
    let alerts = match &options.rules {
        Some(path) => Some(alerts(&db, path, &options)?),
        None => None,
    };
    let evaluating = alerts.as_ref().map(|ev| ev.start());
    say!(
        "sextant: serving the database in {}",
        options.data.display()
    );
    // Handlers go in before any listener says it listens: a signal from then on shuts
    // down cleanly.
    let runtime = db.runtime().clone();
    let signals = runtime.block_on(async { Signals::new() })?;
    let statsd = match options.statsd {
        Some(addr) => Some(statsd::Listener::start(
            addr,
            Arc::clone(&db),
            Arc::clone(&stats),
            options.statsd_flush,
        )?),
        None => None,
    };
    let served = runtime.block_on(async {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            signals.recv().await;
            let _ = stop.send(true);
        });
        let http = async {
            match options.http {
                Some(addr) => {
                    let app = http::App::new(
                        Arc::clone(&db),
                        alerts.clone(),
                        Arc::clone(&stats),
                        &options,
                    );
                    http::serve(addr, app, stopped.clone()).await
                }
                None => Ok(()),
            }
        };
        let postgres = async {
            match options.postgres {
                Some(addr) => postgres::serve(addr, &db, &options, &stats, stopped.clone()).await,
                None => Ok(()),
            }
        };
        let others = async {
            if options.http.is_none() && options.postgres.is_none() {
                until(stopped.clone()).await;
            }
            Ok(())
        };
        let telemetry = async {
            if let Some(every) = options.telemetry_interval {
                telemetry(&db, &stats, every, stopped.clone()).await;
            }
            Ok(())
        };
        // A listener that fails (cannot bind, say) stops the others.
        tokio::try_join!(http, postgres, others, telemetry).map(|_| ())
    });
    say!("sextant: shutting down");
    tracing::info!("shutting down");
    // StatsD's current interval is written before the database closes, whatever HTTP did.
    let stopped = statsd.map(statsd::Listener::stop).transpose();
    // The evaluations stop and the notifiers send what is queued (for a few seconds at
    // most) before the database closes.
    drop(evaluating);
    drop(alerts);
    served?;
    stopped?;
    // The log's last rows are written before the database closes.
    drop(log);
    match Arc::try_unwrap(db) {
        Ok(db) => db.close()?,
        // A request's task still holds the database: closed all the same.
        Err(db) => db.engine().shutdown()?,
    }
    say!("sextant: closed");
    Ok(ExitCode::SUCCESS)
}

/// Loads the rule file and checks it against the database; the evaluator is started by
/// the caller.
fn alerts(db: &Arc<Database>, path: &std::path::Path, options: &Options) -> Result<Arc<Evaluator>> {
    let rules = sextant_alerts::rule::load(path)?;
    let mut alert_options = AlertOptions::default().query_timeout(options.query_timeout);
    for url in &options.webhooks {
        alert_options = alert_options.notifier(Webhook::new(url.clone()));
    }
    for url in &options.alertmanagers {
        alert_options = alert_options.notifier(Alertmanager::new(url));
    }
    let count = rules.len();
    let ev = Evaluator::new(Arc::clone(db), rules, alert_options)?;
    for w in ev.warnings() {
        say!("sextant: rule {}: {}", w.rule, w.message);
    }
    say!(
        "sextant: evaluating {count} alert rules of {} (alerts at /api/v1/alerts, history in the table alerts)",
        path.display()
    );
    Ok(Arc::new(ev))
}

/// Prints a line of the server's progress on standard output; a closed output (the
/// terminal or pipe went away) does not stop the server.
fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

/// Writes the server's counters into its own tables every `every`, and once more when
/// `stopped` turns true. A failed write is reported and the next one tried.
async fn telemetry(
    db: &Arc<Database>,
    stats: &Arc<Stats>,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is at once
    loop {
        let last = tokio::select! {
            _ = ticks.tick() => false,
            _ = stopped.wait_for(|stop| *stop) => true,
        };
        let (db, stats) = (Arc::clone(db), Arc::clone(stats));
        let written = tokio::task::spawn_blocking(move || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            db.write_points(&stats.points(now))
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("writing the server's own telemetry: {e}"),
            Err(e) => tracing::error!("writing the server's own telemetry: {e}"),
        }
        if last {
            return;
        }
    }
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from creation on.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let catch = |kind| {
            signal(kind).map_err(|e| Error::Usage(format!("cannot catch SIGINT and SIGTERM: {e}")))
        };
        Ok(Signals {
            interrupt: catch(SignalKind::interrupt())?,
            terminate: catch(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first of them.
    async fn recv(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_durabilities_parse() {
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_durability("always"), Ok(Durability::Always));
        assert_eq!(
            parse_durability("1s"),
            Ok(Durability::Interval(Duration::from_secs(1)))
        );
        assert!(parse_durability("0s").is_err());
        assert!(parse_durability("sometimes").is_err());
    }

    #[test]
    fn secrets_are_not_shown_and_not_empty() {
        let secret = Secret::new("hunter2").unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(Secret::new("").is_err());
    }
}
