use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use proptest::prelude::*;
use sextant_engine::{ColumnType, TableBatch};

use super::*;
use crate::NoSchemas;

const T0: i64 = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;

fn flush_text(options: Options, text: &str) -> Outcome<Error> {
    let mut agg = Aggregator::new(options, T0);
    let received = agg.ingest(text.as_bytes());
    assert_eq!(received.rejected_lines, 0, "{:?}", received.rejected);
    agg.flush(T0 + 10 * SECOND, &NoSchemas)
}

fn batch<'a>(out: &'a Outcome<Error>, table: &str) -> &'a TableBatch {
    out.batches.iter().find(|b| b.table == table).unwrap()
}

fn col<'a>(b: &'a TableBatch, name: &str) -> &'a ArrayRef {
    &b.arrays[b.columns.iter().position(|c| c.name == name).unwrap()]
}

fn f(b: &TableBatch, name: &str, row: usize) -> f64 {
    col(b, name).as_primitive::<Float64Type>().value(row)
}

fn i(b: &TableBatch, name: &str, row: usize) -> i64 {
    col(b, name).as_primitive::<Int64Type>().value(row)
}

fn tag(b: &TableBatch, name: &str, row: usize) -> String {
    col(b, name).as_string::<i32>().value(row).to_string()
}

#[test]
fn counters_add_up_sampled_values_and_give_a_rate_per_second() {
    let out = flush_text(Options::default(), "hits:1|c\nhits:1|c|@0.1\nhits:2|c\n");
    let b = batch(&out, "hits");
    assert_eq!(b.rows(), 1);
    assert_eq!(i(b, "value", 0), 13);
    assert!((f(b, "rate", 0) - 1.3).abs() < 1e-12);
    assert_eq!(tag(b, "metric_type", 0), "counter");
    assert_eq!(b.time().value(0), T0 + 10 * SECOND);
    assert_eq!(b.columns[2].ty, ColumnType::I64);
}

#[test]
fn gauges_apply_deltas_keep_their_value_and_emit_only_when_changed() {
    let mut agg = Aggregator::new(Options::default(), T0);
    agg.ingest(b"g:10|g\ng:+5|g\ng:-3|g\nother:1|g");
    let out = agg.flush(T0 + 10 * SECOND, &NoSchemas);
    assert_eq!(f(batch(&out, "g"), "value", 0), 12.0);
    agg.ingest(b"g:+1|g");
    let out = agg.flush(T0 + 20 * SECOND, &NoSchemas);
    assert_eq!(out.rows, 1, "the unchanged gauge is not emitted");
    assert_eq!(f(batch(&out, "g"), "value", 0), 13.0);
    agg.ingest(b"g:4|g");
    let out = agg.flush(T0 + 30 * SECOND, &NoSchemas);
    assert_eq!(f(batch(&out, "g"), "value", 0), 4.0);
    agg.forget_gauges();
    assert_eq!(agg.series(), 0);
}

#[test]
fn timers_have_telegraf_fields_and_percentiles() {
    let text: String = (1..=100).map(|v| format!("lat:{v}|ms\n")).collect();
    let out = flush_text(Options::default(), &text);
    let b = batch(&out, "lat");
    let names: Vec<_> = b.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "time",
            "metric_type",
            "count",
            "sum",
            "mean",
            "stddev",
            "upper",
            "lower",
            "median",
            "50_percentile",
            "90_percentile",
            "95_percentile",
            "99_percentile"
        ]
    );
    assert_eq!(tag(b, "metric_type", 0), "timing");
    assert_eq!(i(b, "count", 0), 100);
    assert_eq!(f(b, "sum", 0), 5050.0);
    assert_eq!(f(b, "mean", 0), 50.5);
    assert!((f(b, "stddev", 0) - (9999.0f64 / 12.0).sqrt()).abs() < 1e-9);
    assert_eq!((f(b, "lower", 0), f(b, "upper", 0)), (1.0, 100.0));
    // The median is the mean of the two middle values; percentiles follow Telegraf's
    // rule: index floor(n * p / 100) of the sorted values.
    assert_eq!(f(b, "median", 0), 50.5);
    assert_eq!(f(b, "50_percentile", 0), 51.0);
    assert_eq!(f(b, "90_percentile", 0), 91.0);
    assert_eq!(f(b, "99_percentile", 0), 100.0);
}

#[test]
fn histograms_and_distributions_are_summaries_with_their_own_metric_type() {
    let out = flush_text(Options::default(), "h:1:2:3|h\nd:5|d|@0.5\n");
    let h = batch(&out, "h");
    assert_eq!((i(h, "count", 0), f(h, "sum", 0)), (3, 6.0));
    assert_eq!(tag(h, "metric_type", 0), "histogram");
    let d = batch(&out, "d");
    assert_eq!(
        (i(d, "count", 0), f(d, "sum", 0)),
        (2, 10.0),
        "sampled at 0.5"
    );
    assert_eq!(tag(d, "metric_type", 0), "distribution");
}

#[test]
fn sets_count_distinct_members() {
    let out = flush_text(Options::default(), "u:alice|s\nu:bob|s\nu:alice|s\n");
    assert_eq!(i(batch(&out, "u"), "value", 0), 2);
}

#[test]
fn sets_stop_growing_at_their_limit() {
    let options = Options {
        max_set_members: 2,
        ..Options::default()
    };
    let out = flush_text(options, "u:a|s\nu:b|s\nu:c|s\nu:a|s\n");
    assert_eq!(i(batch(&out, "u"), "value", 0), 2);
}

#[test]
fn a_tag_given_twice_keeps_its_last_value() {
    let out = flush_text(Options::default(), "req,a=0:1|c|#a:1,b:2,a:5\n");
    assert_eq!(tag(batch(&out, "req"), "a", 0), "5");
}

#[test]
fn tags_in_any_order_make_one_series_and_become_columns() {
    let out = flush_text(
        Options::default(),
        "req:1|c|#a:1,b:2\nreq:1|c|#b:2,a:1\nreq,a=1:1|c|#b:2\nreq:1|c|#a:9\n",
    );
    let b = batch(&out, "req");
    assert_eq!(b.rows(), 2);
    assert_eq!(i(b, "value", 0), 3);
    assert_eq!((tag(b, "a", 0), tag(b, "b", 0)), ("1".into(), "2".into()));
    assert!(col(b, "b").is_null(1));
}

#[test]
fn counters_and_summaries_start_afresh_each_interval() {
    let mut agg = Aggregator::new(Options::default(), T0);
    agg.ingest(b"c:1|c\nt:1|ms\ns:x|s");
    assert_eq!(agg.flush(T0 + 10 * SECOND, &NoSchemas).rows, 3);
    assert_eq!(agg.series(), 0);
    let out = agg.flush(T0 + 20 * SECOND, &NoSchemas);
    assert_eq!(out.rows, 0);
    assert!(out.batches.is_empty());
}

#[test]
fn dots_in_names_follow_the_separator_option() {
    let out = flush_text(Options::default(), "a.b.c:1|c");
    assert_eq!(out.batches[0].table, "a_b_c");
    let options = Options {
        name_separator: None,
        ..Options::default()
    };
    let out = flush_text(options, "a.b.c:1|c");
    assert_eq!(out.batches[0].table, "a.b.c");
}

#[test]
fn bad_lines_are_rejected_with_numbers_and_good_ones_kept() {
    let mut agg = Aggregator::new(Options::default(), T0);
    let received =
        agg.ingest(b"ok:1|c\nbad\n\nx:1|c|#value:3\nbad/name:1|c\nx:1|c|#time:1\nok:2|c\n");
    assert_eq!(received.metrics, 2);
    let lines: Vec<usize> = received.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4, 5, 6]);
    let msgs: Vec<String> = received.rejected.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        msgs[1],
        "line 4: tag key \"value\" cannot be used: it is also the name of a field of counter rows"
    );
    assert!(
        msgs[2].contains("metric name \"bad/name\" cannot be used"),
        "{}",
        msgs[2]
    );
}

#[test]
fn series_beyond_the_limit_are_rejected() {
    let options = Options {
        max_series: 2,
        ..Options::default()
    };
    let mut agg = Aggregator::new(options, T0);
    let received = agg.ingest(b"a:1|c\nb:1|c\na:1|c\nc:1|c\n");
    assert_eq!(received.metrics, 3);
    assert!(
        received.rejected[0]
            .to_string()
            .contains("already holds 2 series")
    );
}

#[test]
fn a_name_used_as_counter_and_gauge_conflicts_at_flush_for_that_series_only() {
    let mut agg = Aggregator::new(Options::default(), T0);
    agg.ingest(b"x:1|c\nx:2|g\ny:1|c");
    let out = agg.flush(T0 + 10 * SECOND, &NoSchemas);
    assert_eq!(out.rows, 2);
    assert_eq!(
        out.rejected[0].to_string(),
        "line 0: \"value\" of table \"x\" holds i64 values in this flush, the gauge series offers f64; the series was not written"
    );
}

#[test]
fn the_reservoir_bounds_memory_and_keeps_exact_moments() {
    let options = Options {
        reservoir_size: 100,
        ..Options::default()
    };
    let text: String = (1..=10_000).map(|v| format!("lat:{v}|ms\n")).collect();
    let out = flush_text(options, &text);
    let b = batch(&out, "lat");
    assert_eq!(i(b, "count", 0), 10_000);
    assert_eq!((f(b, "lower", 0), f(b, "upper", 0)), (1.0, 10_000.0));
    // The sample's median: within the documented bound (2 sqrt(0.25 / 100) = 10
    // percentage points of rank) of the true median 5,000.
    let median = f(b, "median", 0);
    assert!((4_000.0..=6_000.0).contains(&median), "{median}");
}

#[test]
fn flush_is_due_after_the_interval() {
    let agg = Aggregator::new(Options::default(), T0);
    assert!(!agg.flush_due(T0 + 9 * SECOND));
    assert!(agg.flush_due(T0 + 10 * SECOND));
}

fn format_metric(
    name: &str,
    kind: Kind,
    values: &[f64],
    rate: f64,
    tags: &[(String, String)],
) -> String {
    let code = match kind {
        Kind::Counter => "c",
        Kind::Gauge => "g",
        Kind::Timer => "ms",
        Kind::Histogram => "h",
        Kind::Distribution => "d",
        Kind::Set => "s",
    };
    let values: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    let mut line = format!("{name}:{}|{code}", values.join(":"));
    if rate < 1.0 {
        line.push_str(&format!("|@{rate:?}"));
    }
    if !tags.is_empty() {
        let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        line.push_str(&format!("|#{}", tags.join(",")));
    }
    line
}

proptest! {
    #[test]
    fn ingest_never_panics_on_bytes(packet in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut agg = Aggregator::new(Options::default(), T0);
        let received = agg.ingest(&packet);
        let out = agg.flush(T0 + SECOND, &NoSchemas);
        prop_assert!(out.rows <= received.metrics);
    }

    #[test]
    fn ingest_never_panics_on_statsd_like_text(text in "([a-z.:|@#,=\n0-9+-]|ms|é){0,200}") {
        let mut agg = Aggregator::new(Options::default(), T0);
        agg.ingest(text.as_bytes());
        agg.flush(T0 + SECOND, &NoSchemas);
    }

    #[test]
    fn written_lines_parse_back_equal(
        name in "[a-z][a-z0-9_.]{0,10}",
        kind in prop::sample::select(vec![Kind::Counter, Kind::Timer, Kind::Histogram, Kind::Distribution]),
        values in prop::collection::vec(-1e9f64..1e9, 1..4),
        rate in prop_oneof![Just(1.0), 0.001f64..1.0],
        tags in prop::collection::vec(("[a-z][a-z0-9_]{0,5}", "[a-z0-9_./]{1,6}"), 0..3),
    ) {
        let line = format_metric(&name, kind, &values, rate, &tags);
        let m = parse_line(&line).unwrap();
        prop_assert_eq!(m.name(), name.as_str());
        prop_assert_eq!(m.kind(), kind);
        prop_assert_eq!(m.sample_rate(), rate);
        let parsed: Vec<Value<'_>> = m.values().collect();
        let expected: Vec<Value<'_>> = values.iter().map(|v| Value::Number(*v)).collect();
        prop_assert_eq!(parsed, expected);
        let parsed_tags: Vec<(String, String)> =
            m.tags().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        prop_assert_eq!(parsed_tags, tags);
    }
}
