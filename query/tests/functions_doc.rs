//! Runs every example of `docs/FUNCTIONS.md` on the data the page describes and checks the
//! output shown under it, so that the page cannot drift from what Sextant answers.
//!
//! Each ```` ```sql ```` block of the page must be followed by a ```` ```text ```` block
//! holding its output as `arrow`'s pretty printer shows it. After a deliberate change,
//! `SEXTANT_BLESS=1 cargo test -p sextant-query --test functions_doc` rewrites the outputs
//! in the page (review the diff before committing it).

use std::path::PathBuf;

use arrow_cast::pretty::pretty_format_batches;
use sextant_engine::{Level, LogRecord, Point};
use sextant_query::Database;

/// 2026-01-01T00:00:00Z in nanoseconds.
const T0: i64 = 1_767_225_600_000_000_000;
const SEC: i64 = 1_000_000_000;

fn page_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/FUNCTIONS.md")
}

/// The tables of the page's "Data" section.
fn page_data(db: &Database) {
    let mut points = Vec::new();
    for (host, secs, usage) in [
        ("a", 10, 10.0),
        ("a", 50, 30.0),
        ("a", 80, 50.0),
        ("a", 190, 20.0),
        ("b", 30, 80.0),
        ("b", 160, 60.0),
    ] {
        points.push(
            Point::metric("cpu")
                .tag("host", host)
                .field("usage", usage)
                .time(T0 + secs * SEC),
        );
    }
    for (secs, requests) in [(0, 100.0), (15, 130.0), (30, 10.0), (45, 40.0)] {
        points.push(
            Point::metric("http")
                .tag("host", "a")
                .field("requests", requests)
                .time(T0 + secs * SEC),
        );
    }
    for (secs, service, level, message) in [
        (1, "api", Level::Info, "started"),
        (2, "api", Level::Warn, "slow disk"),
        (3, "api", Level::Error, "disk full"),
        (4, "db", Level::Debug, "retry"),
        (5, "db", Level::Trace, "poll"),
    ] {
        points.push(
            LogRecord::new("logs", level, message)
                .tag("service", service)
                .time(T0 + secs * SEC)
                .into(),
        );
    }
    db.write_points(&points).unwrap();
}

/// A fenced block of the page: its language, its text, and the line range of its text.
struct Block {
    lang: String,
    text: String,
    lines: std::ops::Range<usize>,
}

fn blocks(page: &str) -> Vec<Block> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(lang) = lines[i].strip_prefix("```")
            && !lang.is_empty()
        {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end] != "```" {
                end += 1;
            }
            out.push(Block {
                lang: lang.to_string(),
                text: lines[start..end].join("\n"),
                lines: start..end,
            });
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn every_example_of_the_functions_page_gives_the_output_shown() {
    let page = std::fs::read_to_string(page_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    page_data(&db);

    let blocks = blocks(&page);
    let mut results = Vec::new();
    let mut examples = 0;
    for (k, block) in blocks.iter().enumerate() {
        if block.lang != "sql" {
            continue;
        }
        examples += 1;
        let output = blocks
            .get(k + 1)
            .filter(|b| b.lang == "text")
            .unwrap_or_else(|| panic!("no ```text output after:\n{}", block.text));
        let batches = db
            .sql(&block.text)
            .unwrap_or_else(|e| panic!("{}\nfails: {e}", block.text));
        let actual = pretty_format_batches(&batches).unwrap().to_string();
        results.push((
            block.text.clone(),
            output.lines.clone(),
            output.text.clone(),
            actual,
        ));
    }
    assert!(examples >= 10, "only {examples} examples found");

    if std::env::var_os("SEXTANT_BLESS").is_some() {
        let mut lines: Vec<String> = page.lines().map(str::to_string).collect();
        for (_, range, _, actual) in results.iter().rev() {
            lines.splice(range.clone(), actual.lines().map(str::to_string));
        }
        std::fs::write(page_path(), lines.join("\n") + "\n").unwrap();
        return;
    }
    let wrong: Vec<String> = results
        .iter()
        .filter(|(_, _, shown, actual)| shown.trim_end() != actual.trim_end())
        .map(|(sql, _, shown, actual)| {
            format!("{sql}\n-- the page shows:\n{shown}\n-- Sextant answers:\n{actual}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
