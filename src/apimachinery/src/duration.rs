//! Go `time.ParseDuration` syntax for flags (`15s`, `1m30s`, `500ms`,
//! `1.5h`), so metrics-server's flag values keep working unchanged, and
//! [`GoDuration`], the flag value type that parses and prints it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration flag value: parsed with [`parse_go_duration`], printed as Go's
/// `time.Duration.String()` (`15s`, `1m30s`, `500ms`), so `--help` shows
/// defaults the way metrics-server users write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_go_duration(s).map(GoDuration)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX);
        f.write_str(&crate::format::format_duration(ns))
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Duration {
        d.0
    }
}

/// Parses a Go duration string. Negative durations are refused: no flag of
/// ours means anything with one.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?} is not allowed"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut rest = s;
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {input:?}: expected a number at {rest:?}"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {input:?}: bad number {:?}", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("invalid duration {input:?}: missing unit (ns, us, ms, s, m, h)")),
            other => return Err(format!("invalid duration {input:?}: unknown unit {other:?}")),
        };
        total_ns += number * scale;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(format!("duration {input:?} is too large"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_prints_what_it_parses() {
        for text in ["15s", "3s", "1m30s", "500ms", "0s", "2h0m0s"] {
            let d: GoDuration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert!("5x".parse::<GoDuration>().unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn parses_the_forms_metrics_server_users_write() {
        assert_eq!(parse_go_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("2µs"), Ok(Duration::from_micros(2)));
    }

    #[test]
    fn refuses_malformed_durations_with_a_reason() {
        for bad in ["", "15", "s", "1x", "-5s", "1.2.3s", "abc"] {
            assert!(parse_go_duration(bad).is_err(), "{bad} should fail");
        }
    }
}
