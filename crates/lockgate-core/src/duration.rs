//! Durations as people write them: the one parser behind every duration flag
//! (`--lock-timeout`, `--lease`, `--poll`, `--script-timeout`…). Seconds (`30`,
//! `2.5`) or a number with a unit (`500ms`, `30s`, `5m`, `1h`), from zero up to
//! [`MAX_DURATION`]; anything else (`inf`, `1e20`, `-1`, `5 minutes`) is an error
//! that says what to write, never a panic.

use std::time::Duration;

/// The longest duration accepted: a week. Longer waits are a mistake more often than
/// a plan, and every engine setting a duration feeds (PostgreSQL's timeouts are
/// 32-bit milliseconds, about 24 days) must hold it.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A text that is not a duration; the message quotes it and says what to write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration: {why}; write seconds (30, 2.5) or a number with a unit (500ms, 30s, 5m, 1h), at most 7 days")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses `30`, `2.5`, `500ms`, `30s`, `5m` or `1h` (surrounding spaces ignored).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |why| DurationError {
        text: text.to_string(),
        why,
    };
    let t = text.trim();
    let (number, unit_secs) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    // Digits with at most one decimal point: no sign, exponent, `inf` or `NaN`.
    let digits = number.chars().filter(|c| c.is_ascii_digit()).count();
    let points = number.chars().filter(|&c| c == '.').count();
    if number.is_empty() || digits == 0 || points > 1 || digits + points != number.len() {
        return Err(fail(if t.starts_with('-') {
            "it is negative"
        } else {
            "it is not a plain number with an optional unit"
        }));
    }
    let value: f64 = number.parse().map_err(|_| fail("it is not a number"))?;
    let secs = value * unit_secs;
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(fail("it is longer than 7 days"));
    }
    // Whole milliseconds: what the engines' timeouts take, and no float noise.
    Ok(Duration::from_millis((secs * 1000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_units_parse() {
        let ok = [
            ("30", 30_000),
            ("2.5", 2_500),
            ("0", 0),
            ("0.001", 1),
            (" 30s ", 30_000),
            ("500ms", 500),
            ("5m", 300_000),
            ("1.5m", 90_000),
            ("1h", 3_600_000),
            ("168h", 604_800_000),
            (".5", 500),
            ("5.", 5_000),
        ];
        for (text, ms) in ok {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn anything_else_is_an_error_not_a_panic() {
        for text in [
            "",
            " ",
            "inf",
            "infinity",
            "NaN",
            "1e20",
            "1e3",
            "-1",
            "-0.5s",
            "+3",
            "5 minutes",
            "5min",
            "1d",
            "s",
            "ms",
            "1.2.3",
            "169h",
            "604801",
            "99999999999999999999999",
            "0x10",
            "١٢",
        ] {
            let e = parse_duration(text).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("is not a duration") && msg.contains("30s"),
                "{text}: {msg}"
            );
        }
        assert!(parse_duration("-1").unwrap_err().to_string().contains("negative"));
        assert!(parse_duration("1e20").unwrap_err().to_string().contains("plain number"));
        assert!(parse_duration("169h")
            .unwrap_err()
            .to_string()
            .contains("longer than 7 days"));
    }
}
