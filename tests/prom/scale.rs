//! The rules on a faster clock, for the live test: every duration in the
//! rule groups (group `interval`, each rule's `for`, every range `[5m]` and
//! subquery `[1h:1m]` in an expression, `offset`) divided by one factor,
//! and nothing else changed. The expressions, thresholds, labels and
//! annotations stay those of the PrometheusRule; the promtool unit tests
//! check the real durations.

use serde_json::Value;

const UNITS: [(&str, u64); 7] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
    ("y", 31_536_000_000),
];

/// A Prometheus duration (`90s`, `1h30m`, `500ms`) in milliseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (mut rest, mut total) = (s.trim(), 0u64);
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // "ms" before "m".
        let (unit, ms) = UNITS.iter().filter(|(u, _)| rest.starts_with(u)).max_by_key(|(u, _)| u.len())?;
        total = total.checked_add(n.checked_mul(*ms)?)?;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

/// Milliseconds as a Prometheus duration (`1500ms`, `15s`).
pub fn format_duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// `d` divided by `factor`, at least 1 ms.
pub fn scale_duration(d: &str, factor: u64) -> String {
    let ms = parse_duration(d).unwrap_or_else(|| panic!("not a Prometheus duration: {d:?}"));
    format_duration((ms / factor).max(1))
}

/// `expr` with every duration in a range or subquery selector and after
/// `offset` divided by `factor`.
pub fn scale_expr(expr: &str, factor: u64) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let close = rest.find(']').unwrap_or_else(|| panic!("unclosed [ in {expr}"));
        let inner: Vec<String> = rest[..close]
            .split(':')
            .map(|d| if d.trim().is_empty() { d.to_string() } else { scale_duration(d, factor) })
            .collect();
        out.push_str(&inner.join(":"));
        rest = &rest[close..];
    }
    out.push_str(rest);
    scale_offsets(&out, factor)
}

fn scale_offsets(expr: &str, factor: u64) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find("offset ") {
        out.push_str(&rest[..at + "offset ".len()]);
        rest = &rest[at + "offset ".len()..];
        let end = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        out.push_str(&scale_duration(&rest[..end], factor));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The rule groups with every duration divided by `factor` (a group
/// without `interval` runs at Prometheus' global evaluation interval, which
/// the live test's configuration scales the same way).
pub fn scale_groups(groups: &Value, factor: u64) -> Value {
    let mut g = groups.clone();
    for group in g["groups"].as_array_mut().expect("groups") {
        if let Some(i) = group["interval"].as_str() {
            group["interval"] = Value::String(scale_duration(i, factor));
        }
        for rule in group["rules"].as_array_mut().expect("rules") {
            if let Some(f) = rule["for"].as_str() {
                rule["for"] = Value::String(scale_duration(f, factor));
            }
            let e = rule["expr"].as_str().expect("expr").to_string();
            rule["expr"] = Value::String(scale_expr(&e, factor));
        }
    }
    g
}
