//! Field filters (`usage > 90`, `trace = 'x'`) skip the blocks in which no row meets
//! them, and the answers stay those of the same filter evaluated by DataFusion alone.

use proptest::prelude::*;
use sextant_engine::{Config, Point};
use sextant_query::{Database, QueryOptions};

mod common;
use common::{plan_text, text};

/// Blocks of 16 rows, so that a few hundred rows make many blocks.
fn open(dir: &std::path::Path) -> Database {
    Database::open_with(Config::new(dir).block_rows(16), QueryOptions::default()).unwrap()
}

fn point(t: i64, host: u8, usage: f64, trace: &str) -> Point {
    Point::metric("cpu")
        .tag("host", format!("h{host}"))
        .field("usage", usage)
        .field("n", t % 7)
        .field("trace", trace)
        .time(t * 1_000_000_000)
}

/// The figure `name=` summed over the lines of `plan` that mention `node`.
fn metric(plan: &str, node: &str, name: &str) -> usize {
    plan.lines()
        .filter(|l| l.contains(node))
        .filter_map(|l| {
            let at = l.find(&format!("{name}="))?;
            l[at + name.len() + 1..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

#[test]
fn a_selective_filter_skips_blocks_and_answers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let points: Vec<Point> = (0..2000i64)
        .map(|t| {
            let usage = if t == 1234 { 99.0 } else { (t % 50) as f64 };
            point(t, (t % 2) as u8, usage, &format!("trace-{}", t / 3))
        })
        .collect();
    db.write_points(&points).unwrap();
    db.flush().unwrap();
    for (sql, rows) in [
        ("SELECT time, host, usage FROM cpu WHERE usage > 90", 1),
        (
            "SELECT time, trace FROM cpu WHERE trace = 'trace-411' ORDER BY time",
            3,
        ),
        ("SELECT count(*) FROM cpu WHERE 49 <= usage AND n <> 3", 1),
    ] {
        let got = text(&db.sql(sql).unwrap());
        assert_eq!(got.len(), rows, "{sql}");
        let plain = sql
            .replace("WHERE ", "WHERE 1 = 1 AND ")
            .replace("usage", "(usage + 0)");
        let plain = plain.replace("trace =", "(trace || '') =");
        assert_eq!(got, text(&db.sql(&plain).unwrap()), "{sql}");
    }
    let plan = plan_text(
        &db,
        "EXPLAIN ANALYZE SELECT time, host, usage, n, trace FROM cpu WHERE usage > 90",
    );
    assert!(plan.contains("blocks where usage > 90.0"), "{plan}");
    // 2000 rows of two series in 16-row blocks: 125 blocks, one of them holding the end
    // of one series and the start of the other, so 126 stretches of one series in one
    // block, one holding the match. The others have their time and usage decoded, not
    // their n and trace.
    assert_eq!(
        metric(&plan, "SextantScanExec", "blocks_filtered"),
        125,
        "{plan}"
    );
    let decoded = metric(&plan, "SextantScanExec", "values_decoded");
    assert!(decoded <= 2 * 2000 + 2 * 16, "{plan}");
    // Of the 16 rows of the block that holds the match, the other 15 are left out in the
    // scan.
    assert_eq!(
        metric(&plan, "SextantScanExec", "rows_filtered"),
        15,
        "{plan}"
    );
}

#[test]
fn equality_on_a_string_field_passes_over_blocks_by_their_filters_decoding_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let points: Vec<Point> = (0..2000i64)
        .map(|t| {
            point(
                t,
                (t % 2) as u8,
                (t % 50) as f64,
                &format!("trace-{}", t / 3),
            )
        })
        .collect();
    db.write_points(&points).unwrap();
    db.flush().unwrap();
    let sql = "SELECT time, host, usage FROM cpu WHERE trace = 'trace-411' ORDER BY time";
    let got = text(&db.sql(sql).unwrap());
    assert_eq!(got.len(), 3, "{got:?}");
    let plain = sql.replace("trace =", "(trace || '') =");
    assert_eq!(got, text(&db.sql(&plain).unwrap()));
    let plan = plan_text(&db, &format!("EXPLAIN ANALYZE {sql}"));
    // 126 stretches of one series in one block (as above); the 3 rows lie in 2 of them.
    // The block filters pass about 1 % of the others, whose trace is then decoded.
    let excluded = metric(&plan, "SextantScanExec", "blocks_excluded");
    let filtered = metric(&plan, "SextantScanExec", "blocks_filtered");
    assert!(excluded >= 118, "{plan}");
    assert_eq!(excluded + filtered, 124, "{plan}");
    // Decoded: the trace of each block that passed, and time, host's rows and usage of
    // the two holding the rows.
    let decoded = metric(&plan, "SextantScanExec", "values_decoded");
    assert!(decoded <= (filtered + 2) * 16 + 2 * 2 * 16, "{plan}");
}

#[test]
fn a_newer_row_that_fails_the_filter_still_replaces_an_older_one_that_meets_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write_points(&[point(5, 0, 95.0, "a"), point(6, 0, 1.0, "a")])
        .unwrap();
    db.flush().unwrap();
    // Same series and times, later: the metric table keeps these.
    db.write_points(&[point(5, 0, 10.0, "b"), point(6, 0, 96.0, "b")])
        .unwrap();
    let sql = "SELECT time, usage FROM cpu WHERE usage > 90";
    assert_eq!(
        text(&db.sql(sql).unwrap()),
        [["1970-01-01T00:00:06Z", "96.0"]]
    );
    db.flush().unwrap();
    assert_eq!(
        text(&db.sql(sql).unwrap()),
        [["1970-01-01T00:00:06Z", "96.0"]]
    );
    let sql = "SELECT time FROM cpu WHERE trace = 'a'";
    assert!(text(&db.sql(sql).unwrap()).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the rows (NaN, -0.0 and missing values included), the filters and the
    /// flushes, the answer is DataFusion's.
    #[test]
    fn field_filters_answer_as_datafusion_alone(
        rows in proptest::collection::vec(
            (0i64..400, 0u8..3, prop_oneof![
                Just(f64::NAN), Just(-0.0), Just(0.0), (-5i8..5).prop_map(f64::from)
            ], 0u8..4, any::<bool>()),
            1..300,
        ),
        value in prop_oneof![Just(f64::NAN), Just(-0.0), Just(0.0), (-5i8..5).prop_map(f64::from)],
        op in prop_oneof![Just("="), Just("<>"), Just("<"), Just("<="), Just(">"), Just(">=")],
        flush_at in 0usize..300,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let points: Vec<Point> = rows
            .iter()
            .map(|&(t, h, usage, trace, with_usage)| {
                let mut p = Point::metric("cpu")
                    .tag("host", format!("h{h}"))
                    .field("trace", format!("t{trace}"))
                    .time(t * 1_000_000_000);
                if with_usage {
                    p = p.field("usage", usage);
                }
                p
            })
            .collect();
        // `usage` must exist even if no generated row has it.
        db.write_points(&[Point::metric("cpu").tag("host", "h9").field("usage", 1.0).time(0)])
            .unwrap();
        let (older, newer) = points.split_at(flush_at.min(points.len()));
        db.write_points(older).unwrap();
        db.flush().unwrap();
        db.write_points(newer).unwrap();
        let literal = if value.is_nan() { "'NaN'::double".to_owned() } else { format!("{value:?}") };
        for sql in [
            format!("SELECT time, host, usage FROM cpu WHERE usage {op} {literal} ORDER BY host, time"),
            format!("SELECT time, host FROM cpu WHERE trace {op} 't2' ORDER BY host, time"),
        ] {
            let plain = sql
                .replace("WHERE usage", "WHERE (usage + 0.0)")
                .replace("WHERE trace", "WHERE (trace || '')");
            prop_assert_eq!(text(&db.sql(&sql).unwrap()), text(&db.sql(&plain).unwrap()), "{}", sql);
        }
    }
}

#[test]
fn a_segment_without_the_filter_column_is_skipped_and_answers_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    // The first segment has no `usage`; the second has it.
    let before: Vec<Point> = (0..100i64)
        .map(|t| {
            Point::metric("cpu")
                .tag("host", "h0")
                .field("n", t % 7)
                .time(t * 1_000_000_000)
        })
        .collect();
    db.write_points(&before).unwrap();
    db.flush().unwrap();
    let after: Vec<Point> = (100..200i64)
        .map(|t| point(t, 0, (t % 10) as f64, "x"))
        .collect();
    db.write_points(&after).unwrap();
    db.flush().unwrap();
    for filter in ["usage > 0", "usage <> 1", "usage < 5", "usage = 3"] {
        let pushed = format!("SELECT time, n FROM cpu WHERE {filter} ORDER BY time");
        // `usage + 0.0` is not a bare column: DataFusion alone evaluates it.
        let reference = pushed.replace("usage", "(usage + 0.0)");
        assert_eq!(
            text(&db.sql(&pushed).unwrap()),
            text(&db.sql(&reference).unwrap()),
            "{filter}"
        );
        let plan = plan_text(&db, &format!("EXPLAIN ANALYZE {pushed}"));
        assert!(
            metric(&plan, "SextantScanExec", "blocks_filtered") >= 7,
            "the 7 blocks without usage are skipped: {plan}"
        );
    }
}

/// The cases the property test found: zeros of either sign and NaN, under every
/// comparison, with a block of each kind of value (blocks skipped whole) and with every
/// kind of value in each block (rows left out one by one).
#[test]
fn signed_zeros_and_nan_are_compared_as_datafusion_compares_them() {
    let values = [0.0, -0.0, f64::NAN, -3.0, 4.0, f64::INFINITY];
    let blockwise: Vec<Point> = values
        .iter()
        .enumerate()
        .flat_map(|(k, &v)| (0..16i64).map(move |i| point(k as i64 * 16 + i, 0, v, "x")))
        .collect();
    let mixed: Vec<Point> = (0..96i64)
        .map(|t| point(t, 0, values[t as usize % values.len()], "x"))
        .collect();
    for points in [blockwise, mixed] {
        compare_zeros_and_nan(&points);
    }
}

fn compare_zeros_and_nan(points: &[Point]) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write_points(points).unwrap();
    db.flush().unwrap();
    for op in ["=", "<>", "<", "<=", ">", ">="] {
        for constant in ["0.0", "-0.0", "'NaN'::double", "-3.0", "'inf'::double"] {
            let pushed = format!("SELECT time FROM cpu WHERE usage {op} {constant} ORDER BY time");
            // DataFusion alone: `usage + 0.0` is no bare column (and, unlike `usage *
            // 1.0`, is not simplified back to one).
            let reference = pushed.replace("usage", "(usage + 0.0)");
            let plan = plan_text(&db, &format!("EXPLAIN {reference}"));
            assert!(!plan.contains("blocks where"), "{plan}");
            assert_eq!(
                text(&db.sql(&pushed).unwrap()),
                text(&db.sql(&reference).unwrap()),
                "{pushed}"
            );
        }
    }
}

/// The filters of `sql` reach no scan: DataFusion alone evaluates them.
fn assert_not_pushed(db: &Database, sql: &str) {
    let plan = plan_text(db, &format!("EXPLAIN ANALYZE {sql}"));
    assert!(!plan.contains("blocks where"), "{plan}");
}

/// Level comparisons (`level >= 'warn'`, which compare by severity) reach the scan as
/// filters on the level's rank: blocks without such a level are skipped, rows that fail
/// are left out in the scan, and the answers stay DataFusion's.
#[test]
fn level_filters_skip_blocks_and_rows_by_severity() {
    use sextant_engine::{Level, LogRecord};
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    // 640 events of one service: the first 320 only trace and debug (20 blocks no
    // `level >= 'warn'` can meet), then every level in turn; then 40 without a level.
    let mut points: Vec<Point> = (0..640i64)
        .map(|t| {
            let level = if t < 320 {
                Level::ALL[(t % 2) as usize]
            } else {
                Level::ALL[(t % 6) as usize]
            };
            LogRecord::new("logs", level, format!("m{t}"))
                .tag("service", "api")
                .time(t * 1_000_000_000)
                .into()
        })
        .collect();
    points.extend((640..680i64).map(|t| {
        Point::event("logs")
            .tag("service", "api")
            .field("message", format!("m{t}"))
            .time(t * 1_000_000_000)
    }));
    db.write_points(&points).unwrap();
    db.flush().unwrap();
    for op in ["=", "<>", "<", "<=", ">", ">="] {
        for level in Level::ALL {
            let name = level.as_str().to_uppercase();
            let pushed =
                format!("SELECT time, message FROM logs WHERE level {op} '{name}' ORDER BY time");
            // `level_rank(level) + 1` is no bare rank: DataFusion alone evaluates it.
            let reference = format!(
                "SELECT time, message FROM logs WHERE level_rank(level) + 1 {op} {} ORDER BY time",
                level.rank() + 1
            );
            assert_eq!(
                text(&db.sql(&pushed).unwrap()),
                text(&db.sql(&reference).unwrap()),
                "{pushed}"
            );
            assert_not_pushed(&db, &reference);
        }
    }
    // Sets of levels, contiguous or not, short (DataFusion's ORs) and long (IN lists),
    // negated, and with a null level: the scan gets their range.
    let names = |l: &[usize]| {
        l.iter()
            .map(|&i| format!("'{}'", Level::ALL[i].as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for set in [
        vec![4, 5],
        vec![1, 3],
        vec![0, 2, 5],
        vec![2],
        vec![0, 1, 2, 3, 4, 5],
        vec![1, 2, 3, 4],
    ] {
        for not in ["", "NOT "] {
            let pushed = format!(
                "SELECT time, message FROM logs WHERE level {not}IN ({}) ORDER BY time",
                names(&set)
            );
            let ranks: Vec<String> = set.iter().map(|i| (i + 1).to_string()).collect();
            let reference = format!(
                "SELECT time, message FROM logs WHERE level_rank(level) + 1 {not}IN ({}) \
                 ORDER BY time",
                ranks.join(", ")
            );
            assert_eq!(
                text(&db.sql(&pushed).unwrap()),
                text(&db.sql(&reference).unwrap()),
                "{pushed}"
            );
            assert_not_pushed(&db, &reference);
        }
    }
    // A null in the list: `IN` meets what the rest meets, `NOT IN` nothing.
    for not in ["", "NOT "] {
        let pushed = format!(
            "SELECT time, message FROM logs WHERE level {not}IN ('error', NULL) ORDER BY time"
        );
        let reference = format!(
            "SELECT time, message FROM logs WHERE level_rank(level) + 1 {not}IN (5, NULL) ORDER BY time"
        );
        let got = text(&db.sql(&pushed).unwrap());
        assert_eq!(got.len(), if not.is_empty() { 53 } else { 0 }, "{pushed}");
        assert_eq!(got, text(&db.sql(&reference).unwrap()), "{pushed}");
    }
    // Rows without a level meet no comparison of it.
    let sql = "SELECT count(*) FROM logs WHERE level <> 'fatal'";
    assert_eq!(text(&db.sql(sql).unwrap()), [["587"]], "{sql}");
    let plan = plan_text(
        &db,
        "EXPLAIN ANALYZE SELECT time FROM logs WHERE level IN ('error', 'fatal')",
    );
    assert!(plan.contains("blocks where level >= 'error'"), "{plan}");
    // The 20 blocks of trace and debug, and the 3 that hold the 40 rows without a level.
    assert_eq!(
        metric(&plan, "SextantScanExec", "blocks_filtered"),
        23,
        "{plan}"
    );
    let plan = plan_text(
        &db,
        "EXPLAIN ANALYZE SELECT time, message FROM logs WHERE level >= 'warn'",
    );
    assert!(plan.contains("blocks where level >= 'warn'"), "{plan}");
    assert_eq!(
        metric(&plan, "SextantScanExec", "blocks_filtered"),
        23,
        "{plan}"
    );
    // Of the 320 rows of every level, those of trace, debug and info (half) are left out.
    assert_eq!(
        metric(&plan, "SextantScanExec", "rows_filtered"),
        160,
        "{plan}"
    );
}
