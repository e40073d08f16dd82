//! Promtool's expanding notation for input series: `1 2 _ 4`, `1+2x3` (1 3 5 7),
//! `10-1x2` (10 9 8), `5x2` (5 5 5), `_x3` (three missing values), `stale` (missing).

/// Expands `text` into one value (or `None`: missing) per step.
pub fn expand(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        expand_token(token, &mut out).map_err(|why| format!("{token:?} in {text:?}: {why}"))?;
    }
    Ok(out)
}

fn expand_token(token: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    if token == "_" || token == "stale" {
        out.push(None);
        return Ok(());
    }
    let Some((start, times)) = token.rsplit_once('x') else {
        out.push(Some(number(token)?));
        return Ok(());
    };
    let n: usize = times
        .parse()
        .map_err(|_| format!("{times:?} after `x` is not a count"))?;
    if n > 1_000_000 {
        return Err("more than 1,000,000 values in one term".into());
    }
    if start == "_" {
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    // The sign of the step is the last + or - that is not the first character and does
    // not follow an exponent's `e`.
    let bytes = start.as_bytes();
    let split = (1..bytes.len())
        .rev()
        .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    let (a, step) = match split {
        Some(i) => (number(&start[..i])?, number(&start[i..])?),
        None => (number(start)?, 0.0),
    };
    for k in 0..=n {
        out.push(Some(a + step * k as f64));
    }
    Ok(())
}

fn number(text: &str) -> Result<f64, String> {
    let text = text.strip_prefix('+').unwrap_or(text);
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{text:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expanding_notation_expands_as_promtool_does() {
        assert_eq!(
            expand("1+2x3 _ 10-1x2 5x1 _x2 -2+4x1 1e2").unwrap(),
            [
                Some(1.0),
                Some(3.0),
                Some(5.0),
                Some(7.0),
                None,
                Some(10.0),
                Some(9.0),
                Some(8.0),
                Some(5.0),
                Some(5.0),
                None,
                None,
                Some(-2.0),
                Some(2.0),
                Some(100.0),
            ]
        );
    }

    #[test]
    fn bad_terms_are_named() {
        let e = expand("1 2+ax3").unwrap_err();
        assert!(e.contains("\"2+ax3\""), "{e}");
        assert!(expand("1xq").unwrap_err().contains("not a count"));
        assert!(expand("nan").is_err());
    }
}
