//! `sextant backtest` and `sextant test-rules`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use sextant_alerts::notify::Status;
use sextant_alerts::{Backtest, Evaluator, Options, Span, api, rule, unit};
use sextant_query::Database;

use crate::Result;

/// Runs a rule of `rules` over `from..=to` of the database in `data`.
pub fn backtest(
    data: &Path,
    rules: &Path,
    name: &str,
    from: &str,
    to: &str,
    json: bool,
) -> Result<ExitCode> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let from = api::parse_time(from, now).map_err(crate::Error::Usage)?;
    let to = api::parse_time(to, now).map_err(crate::Error::Usage)?;
    let rules: Vec<_> = rule::load(rules)?
        .into_iter()
        .filter(|r| r.name == name)
        .collect();
    if rules.is_empty() {
        return Err(sextant_alerts::Error::NoSuchRule(name.to_string()).into());
    }
    let db = Arc::new(Database::open(data)?);
    let options = Options::default().restore(false);
    let report = Evaluator::new(Arc::clone(&db), rules, options)?.backtest(name, from, to)?;
    if json {
        println!("{:#}", api::backtest(&report));
    } else {
        print_backtest(&report);
    }
    if let Ok(db) = Arc::try_unwrap(db) {
        db.close()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_backtest(b: &Backtest) {
    let time = api::format_time;
    println!(
        "{}: {} evaluations from {} to {}",
        b.rule,
        b.evaluations,
        time(b.from),
        time(b.to)
    );
    match b.first_firing {
        Some(t) => println!("first firing: {}", time(t)),
        None => println!("never firing"),
    }
    println!(
        "notifications: {} (one per evaluation at which an instance fired or resolved; repeats not counted)",
        b.notifications
    );
    let span = |s: &Span| match s.end {
        Some(end) => format!("{} .. {}", time(s.start), time(end)),
        None => format!("{} .. (still at the end)", time(s.start)),
    };
    for i in &b.instances {
        let labels: Vec<String> = i
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != sextant_alerts::ALERTNAME)
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        println!("{{{}}}", labels.join(", "));
        for s in &i.pending {
            println!("  pending {}", span(s));
        }
        for s in &i.firing {
            println!("  {} {}", Status::Firing.as_str(), span(s));
        }
    }
    for (t, e) in &b.errors {
        println!("error at {}: {e}", time(*t));
    }
}

/// Runs rule test files; exit status 1 if any expectation is not met.
pub fn test_rules(files: &[PathBuf]) -> Result<ExitCode> {
    let mut failed = 0;
    for f in files {
        let report = unit::run_file(f)?;
        for fail in &report.failures {
            println!(
                "FAIL {}: {} at {}",
                f.display(),
                fail.alertname,
                humantime::format_duration(fail.eval_time)
            );
            for d in &fail.differences {
                println!("  {d}");
            }
        }
        println!(
            "{}: {} of {} tests passed",
            f.display(),
            report.tests - report.failures.len(),
            report.tests
        );
        failed += report.failures.len();
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
