//! Flag value syntax exactly as metrics-server's (Go's pflag and
//! component-base) parses it, so a value written for metrics-server parses
//! here the same way: Go booleans (`1`, `t`, `TRUE`, ...), Go integers
//! (`strconv.ParseInt(s, 0, n)`: `0x1f`, `0o17`, `017`, `1_000` after a
//! prefix), `stringSlice` (one CSV record per occurrence; the first
//! occurrence replaces the default, later ones append), `int32Slice`,
//! `namedCertKey` and `colonSeparatedMultimapStringString`. Parsing only:
//! what a value means is checked in `config`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Go's `strconv.ParseBool`.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// Go's `strconv.ParseInt(s, 0, bits)`: optional sign, then `0x`/`0o`/`0b`
/// or a leading `0` (octal) prefix; underscores only with a prefix, between digits.
pub fn go_int(s: &str, bits: u32) -> Result<i64, String> {
    let invalid = || format!("strconv.ParseInt: parsing {s:?}: invalid syntax");
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    if digits.contains('_') {
        // Go: underscores only with a base prefix, each between two digits
        // (or right after the prefix of 0x/0o/0b).
        let ok =
            prefixed && !digits.ends_with('_') && !digits.contains("__") && (radix != 8 || lower.starts_with("0o"));
        if !ok {
            return Err(invalid());
        }
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_digit(radix)) {
        return Err(invalid());
    }
    let magnitude = u128::from_str_radix(&cleaned, radix).map_err(|_| invalid())?;
    let max = 1u128 << (bits - 1);
    let out_of_range = || format!("strconv.ParseInt: parsing {s:?}: value out of range");
    if negative {
        if magnitude > max {
            return Err(out_of_range());
        }
        Ok((magnitude as i128).wrapping_neg() as i64)
    } else {
        if magnitude >= max {
            return Err(out_of_range());
        }
        Ok(magnitude as i64)
    }
}

/// A Go `int` flag (64-bit).
pub fn go_int64(s: &str) -> Result<i64, String> {
    go_int(s, 64)
}

/// A Go `float64` flag (`strconv.ParseFloat`): decimal or exponent forms.
pub fn go_float(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" | "nan" => {}
        body if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
            return Err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"));
        }
        _ => {}
    }
    s.replace('_', "").parse::<f64>().map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
}

/// One occurrence of a `stringSlice` flag: a CSV record (quotes allowed);
/// an empty value is an empty list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StringList(pub Vec<String>);

impl FromStr for StringList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_csv_record(s).map(StringList)
    }
}

impl fmt::Display for StringList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// Every item of every occurrence, in order (pflag's append semantics).
pub fn flatten(lists: &[StringList]) -> Vec<String> {
    lists.iter().flat_map(|l| l.0.iter().cloned()).collect()
}

/// Go's `encoding/csv` reading one record: fields split on commas,
/// double-quoted fields may hold commas and `""` for a quote.
fn parse_csv_record(s: &str) -> Result<Vec<String>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut at_start = true;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err(format!("parse error in {s:?}: extraneous or missing \" in quoted-field"));
                    }
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => return Err(format!("parse error in {s:?}: bare \" in non-quoted-field")),
            ',' => {
                out.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err(format!("parse error in {s:?}: extraneous or missing \" in quoted-field"));
    }
    out.push(field);
    Ok(out)
}

/// One occurrence of an `int32Slice` flag (`--tls-curve-preferences=23,29`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Int32List(pub Vec<i32>);

impl FromStr for Int32List {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let items = parse_csv_record(s)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(go_int(item.trim(), 32)? as i32);
        }
        Ok(Int32List(out))
    }
}

impl fmt::Display for Int32List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(i32::to_string).collect();
        f.write_str(&items.join(","))
    }
}

/// `--tls-sni-cert-key`: `cert,key` or `cert,key:name1,name2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Explicit names (domain patterns or IPs); empty: the certificate's own.
    pub names: Vec<String>,
}

impl FromStr for NamedCertKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // component-base: the part after the first ':' is the name list,
        // when there is one; the rest is "cert,key".
        let (files, names) = match s.split_once(':') {
            Some((files, names)) => {
                if names.trim().is_empty() {
                    return Err(format!("{s:?}: empty names list is not allowed"));
                }
                (files, names.split(',').map(|n| n.trim().to_string()).collect())
            }
            None => (s, Vec::new()),
        };
        let parts: Vec<&str> = files.split(',').map(str::trim).collect();
        match parts.as_slice() {
            [cert, key] if !cert.is_empty() && !key.is_empty() => {
                Ok(NamedCertKey { cert: PathBuf::from(cert), key: PathBuf::from(key), names })
            }
            _ => Err(format!("{s:?}: expected certfile,keyfile or certfile,keyfile:name1,name2")),
        }
    }
}

impl fmt::Display for NamedCertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.cert.display(), self.key.display())?;
        if !self.names.is_empty() {
            write!(f, ":{}", self.names.join(","))?;
        }
        Ok(())
    }
}

/// One `--feature-gates` item: `[component:]Gate=bool` (no component: `kube`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureGate {
    pub component: String,
    pub gate: String,
    pub enabled: bool,
}

/// Parses one occurrence of `--feature-gates` (comma-separated items).
pub fn parse_feature_gates(s: &str) -> Result<Vec<FeatureGate>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (component, rest) = match item.split_once(':') {
            Some((c, r)) => (c.trim().to_string(), r),
            None => ("kube".to_string(), item),
        };
        let (gate, value) =
            rest.split_once('=').ok_or_else(|| format!("{item:?}: missing bool value for feature gate"))?;
        let enabled = go_bool(value.trim()).map_err(|e| format!("{item:?}: {e}"))?;
        out.push(FeatureGate { component, gate: gate.trim().to_string(), enabled });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool_forms() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(go_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "on", "tRuE", "", "2"] {
            assert!(go_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_int_prefixes_signs_and_ranges() {
        let table: &[(&str, u32, Option<i64>)] = &[
            ("10250", 64, Some(10250)),
            ("+7", 64, Some(7)),
            ("-3", 64, Some(-3)),
            ("0x1F", 64, Some(31)),
            ("0o17", 64, Some(15)),
            ("017", 64, Some(15)),
            ("0b101", 64, Some(5)),
            ("0", 64, Some(0)),
            ("0x_1f", 64, Some(31)),
            ("1_000", 64, None),
            ("08", 64, None),
            ("", 64, None),
            ("0x", 64, None),
            ("12a", 64, None),
            ("2147483647", 32, Some(2147483647)),
            ("2147483648", 32, None),
            ("-2147483648", 32, Some(-2147483648)),
            ("9223372036854775807", 64, Some(i64::MAX)),
            ("9223372036854775808", 64, None),
        ];
        for (s, bits, want) in table {
            assert_eq!(go_int(s, *bits).ok(), *want, "{s}");
        }
    }

    #[test]
    fn string_slices_are_csv_records() {
        assert_eq!("a,b".parse::<StringList>().unwrap().0, ["a", "b"]);
        assert_eq!("".parse::<StringList>().unwrap().0, Vec::<String>::new());
        assert_eq!(r#""a,b",c"#.parse::<StringList>().unwrap().0, ["a,b", "c"]);
        assert_eq!(r#""say ""hi""""#.parse::<StringList>().unwrap().0, [r#"say "hi""#]);
        assert!(r#"a"b"#.parse::<StringList>().is_err());
        assert!(r#""open"#.parse::<StringList>().is_err());
        let lists = ["x,y".parse().unwrap(), "z".parse().unwrap()];
        assert_eq!(flatten(&lists), ["x", "y", "z"]);
    }

    #[test]
    fn named_cert_keys_take_optional_names() {
        let n: NamedCertKey = "/c.crt,/c.key".parse().unwrap();
        assert_eq!((n.cert.to_str(), n.key.to_str(), n.names.len()), (Some("/c.crt"), Some("/c.key"), 0));
        let n: NamedCertKey = "/c.crt,/c.key:*.example.com,foo.io".parse().unwrap();
        assert_eq!(n.names, ["*.example.com", "foo.io"]);
        for bad in ["/c.crt", "/c.crt,/c.key:", "/c.crt,/c.key,/x", ",/k"] {
            assert!(bad.parse::<NamedCertKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn feature_gates_default_to_the_kube_component() {
        let g = parse_feature_gates("A=true, metrics-server:B=false").unwrap();
        assert_eq!(g[0], FeatureGate { component: "kube".into(), gate: "A".into(), enabled: true });
        assert_eq!(g[1].component, "metrics-server");
        assert!(parse_feature_gates("A").is_err());
        assert!(parse_feature_gates("A=maybe").is_err());
        assert!(parse_feature_gates("").unwrap().is_empty());
    }

    #[test]
    fn int32_lists_and_floats() {
        assert_eq!("23,0x1d".parse::<Int32List>().unwrap().0, [23, 29]);
        assert!("23,x".parse::<Int32List>().is_err());
        assert_eq!(go_float("0.02"), Ok(0.02));
        assert_eq!(go_float("2e-2"), Ok(0.02));
        assert!(go_float("abc").is_err());
    }
}
