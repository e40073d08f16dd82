//! Rule unit tests (`sextant test-rules`): a passing file and a failing one.

use std::path::Path;

use sextant_alerts::unit::run_file;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn the_example_rules_pass_their_tests() {
    let report = run_file(&data("rules_test.toml")).unwrap();
    assert_eq!(report.tests, 5);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
}

#[test]
fn every_difference_is_reported() {
    let report = run_file(&data("failing_test.toml")).unwrap();
    assert_eq!(report.failures.len(), 2, "{:#?}", report.failures);
    let first = &report.failures[0].differences;
    assert_eq!(
        first,
        &[
            "expected firing, not found: {host=\"c\", severity=\"critical\"}".to_string(),
            "firing but not expected: {host=\"a\", severity=\"critical\"}".to_string(),
        ]
    );
    let second = &report.failures[1].differences;
    assert_eq!(second.len(), 1);
    assert!(
        second[0].contains("a at 50 %") && second[0].contains("a at 95 %"),
        "{second:?}"
    );
}
