//! One grammar for every time flag (`log --since`, `trace -d`, `agent
//! --interval`, `--forget-after`, `--retention`, `top --interval`): jiff's
//! "friendly" durations (`500ms`, `90s`, `10m`, `2h`, `1d`, `1h30m`,
//! `2 hours`), or a plain number of seconds as before.
use std::time::Duration;

use jiff::{Span, SpanRelativeTo, fmt::friendly::SpanParser};

static PARSER: SpanParser = SpanParser::new();

/// Ends every message, so a bad value says what a good one looks like.
const EXAMPLES: &str = "use e.g. 500ms, 90s, 10m, 2h or 1d";

/// A non-negative duration. Days are 24 hours and weeks 7 days; years and
/// months, whose length depends on the date, are refused.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    // A plain number is seconds (what every flag took before).
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let span: Span = if plain {
        PARSER.parse_span(format!("{s}s"))
    } else {
        PARSER.parse_span(s)
    }
    .map_err(|e| not_a_duration(&e))?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(format!("years and months have no fixed length; {EXAMPLES}"));
    }
    let signed = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|e| not_a_duration(&e))?;
    Duration::try_from(signed).map_err(|_| format!("a duration cannot be negative; {EXAMPLES}"))
}

/// jiff's reason, without its preamble (clap already names the flag and value).
fn not_a_duration(e: &jiff::Error) -> String {
    let e = e.to_string();
    let reason = e
        .strip_prefix("failed to parse input in the \"friendly\" duration format: ")
        .unwrap_or(&e);
    format!("not a duration ({reason}); {EXAMPLES}")
}

/// A duration of at least `min` (`min` written as the user would).
fn at_least(s: &str, min: &str) -> Result<Duration, String> {
    let d = parse(s)?;
    let floor = parse(min).expect("the floor is a valid duration");
    if d < floor {
        return Err(format!("too short; at least {min}"));
    }
    Ok(d)
}

/// A sampling or refresh interval: at least 100ms.
pub fn interval(s: &str) -> Result<Duration, String> {
    at_least(s, "100ms")
}

/// How long the journal keeps lines: at least a day.
pub fn retention(s: &str) -> Result<Duration, String> {
    at_least(s, "1d")
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_unit_the_flags_used_before_and_more() {
        for (text, want) in [
            ("500ms", ms(500)),
            ("5s", ms(5_000)),
            ("90s", ms(90_000)),
            ("1.5s", ms(1_500)),
            ("2m", ms(120_000)),
            ("10m", ms(600_000)),
            ("1h", ms(3_600_000)),
            ("2h", ms(7_200_000)),
            ("1h30m", ms(5_400_000)),
            ("2 hours", ms(7_200_000)),
            ("1d", ms(86_400_000)),
            ("3w", ms(21 * 86_400_000)),
            ("0s", ms(0)),
            // Plain numbers are seconds, as before.
            ("15", ms(15_000)),
            (" 3 ", ms(3_000)),
            ("1.5", ms(1_500)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_values_say_what_a_good_one_looks_like() {
        for bad in [
            "", "fast", "m", "3x", "1..5", "-5s", "5s ago", "2 months", "1y",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("500ms, 90s"), "{bad:?}: {err}");
        }
        assert!(parse("-5s").unwrap_err().contains("negative"));
        assert!(parse("1y").unwrap_err().contains("no fixed length"));
        let err = parse("3x").unwrap_err();
        assert!(err.starts_with("not a duration (expected"), "{err}");
    }

    #[test]
    fn floors() {
        assert_eq!(interval("100ms"), Ok(ms(100)));
        assert_eq!(interval("1s"), Ok(ms(1_000)));
        assert_eq!(interval("50ms"), Err("too short; at least 100ms".into()));
        assert_eq!(retention("7d"), Ok(ms(7 * 86_400_000)));
        assert_eq!(retention("1h"), Err("too short; at least 1d".into()));
    }
}
