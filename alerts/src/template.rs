//! Annotation templates, in minijinja's Jinja syntax.
//!
//! A template sees:
//!
//! - `labels`: the instance's labels, `{{ labels.hostname }}` (or
//!   `{{ labels["service.name"] }}` for a name that is not an identifier);
//! - `value`: the instance's figure, a number, or `none` when the rule has no value
//!   column: `{{ value | round(1) }}`;
//! - `rule`: the rule's name.
//!
//! Filters and tests are minijinja's built-ins (`round`, `upper`, `default`, `join`,
//! `if ... else`, ...). A rule file is checked by rendering every annotation with the
//! query's columns as labels, where an unknown name is an error; at evaluation time a
//! label that is null in a row renders as empty text.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value, context};

/// Renders `template` for one instance. Unknown names render as empty text.
pub fn render(
    template: &str,
    rule: &str,
    labels: &BTreeMap<String, String>,
    value: Option<f64>,
) -> Result<String, String> {
    render_with(UndefinedBehavior::Lenient, template, rule, labels, value)
}

/// Renders `template`, treating an unknown name as an error: how rule files are checked.
pub(crate) fn check(
    template: &str,
    rule: &str,
    labels: &BTreeMap<String, String>,
    value: Option<f64>,
) -> Result<String, String> {
    render_with(UndefinedBehavior::Strict, template, rule, labels, value)
}

fn render_with(
    undefined: UndefinedBehavior,
    template: &str,
    rule: &str,
    labels: &BTreeMap<String, String>,
    value: Option<f64>,
) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    // A whole number shows as one (`3`, not `3.0`), as Prometheus shows `$value`.
    let value = match value {
        None => Value::from(()),
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Value::from(v as i64),
        Some(v) => Value::from(v),
    };
    env.render_str(
        template,
        context! { labels => Value::from(labels.clone()), value => value, rule => rule },
    )
    .map_err(|e| describe(&e))
}

fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("host".to_string(), "web-1".to_string())])
    }

    #[test]
    fn labels_and_value_are_rendered() {
        let s = render(
            "{{ rule }}: {{ labels.host }} at {{ value | round(1) }} %",
            "HighCpu",
            &labels(),
            Some(93.456),
        )
        .unwrap();
        assert_eq!(s, "HighCpu: web-1 at 93.5 %");
        let s = render(
            "{{ value }} / {{ value | round(1) }}",
            "r",
            &labels(),
            Some(3.0),
        )
        .unwrap();
        assert_eq!(s, "3 / 3");
    }

    #[test]
    fn a_missing_label_is_empty_at_evaluation_and_an_error_when_checked() {
        assert_eq!(
            render("[{{ labels.hots }}]", "r", &labels(), None).unwrap(),
            "[]"
        );
        let e = check("[{{ labels.hots }}]", "r", &labels(), None).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
    }

    #[test]
    fn a_syntax_error_is_reported() {
        let e = check("{{ labels.host ", "r", &labels(), None).unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
    }
}
