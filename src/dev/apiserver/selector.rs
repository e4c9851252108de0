//! Label and field selectors as the apiserver parses them from `labelSelector`
//! and `fieldSelector` query parameters, and matching them against object
//! JSON. Pure: no store, no HTTP.

use std::collections::BTreeMap;

use serde_json::Value;

/// A selector that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement {requirement:?}: {reason}")]
pub struct SelectorError {
    pub requirement: String,
    pub reason: &'static str,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(pub Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl LabelSelector {
    /// Parses the full selector syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for raw in split_top_level(s) {
            let part = raw.trim();
            let bad = |reason| SelectorError { requirement: part.to_string(), reason };
            let key_ok = |k: &str| {
                if valid_key(k) { Ok(k.to_string()) } else { Err(bad("invalid label key")) }
            };
            let val_ok = |v: &str| {
                if valid_value(v) { Ok(v.to_string()) } else { Err(bad("invalid label value")) }
            };
            if let Some(key) = part.strip_prefix('!') {
                reqs.push(Requirement::DoesNotExist(key_ok(key.trim())?));
            } else if let Some(open) = part.find('(') {
                let close = part.rfind(')').filter(|&c| c > open && c == part.len() - 1);
                let close = close.ok_or_else(|| bad("unterminated value set"))?;
                let mut head = part[..open].split_whitespace();
                let (key, op) = (head.next().unwrap_or(""), head.next().unwrap_or(""));
                if head.next().is_some() {
                    return Err(bad("unexpected token before value set"));
                }
                let values =
                    part[open + 1..close].split(',').map(|v| val_ok(v.trim())).collect::<Result<Vec<_>, _>>()?;
                match op {
                    "in" => reqs.push(Requirement::In(key_ok(key)?, values)),
                    "notin" => reqs.push(Requirement::NotIn(key_ok(key)?, values)),
                    _ => return Err(bad("expected 'in' or 'notin'")),
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(Requirement::NotIn(key_ok(k.trim())?, vec![val_ok(v.trim())?]));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push(Requirement::In(key_ok(k.trim())?, vec![val_ok(v.trim())?]));
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v.trim().parse().map_err(|_| bad("expected an integer"))?;
                reqs.push(Requirement::Gt(key_ok(k.trim())?, n));
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v.trim().parse().map_err(|_| bad("expected an integer"))?;
                reqs.push(Requirement::Lt(key_ok(k.trim())?, n));
            } else {
                reqs.push(Requirement::Exists(key_ok(part)?));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Gt(k, n) => labels.get(k).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
            Requirement::Lt(k, n) => labels.get(k).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
        })
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, object: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        self.matches(&object_labels(object))
    }
}

/// An object's labels as a map.
pub fn object_labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses and checks every field against `supported` (the apiserver
    /// rejects unknown field labels with 400).
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |reason| SelectorError { requirement: raw.to_string(), reason };
            let (field, equal, value) = if let Some((f, v)) = raw.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                (f, true, v)
            } else {
                return Err(bad("expected field=value or field!=value"));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(bad("field label not supported"));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// Whether the object's fields satisfy every term.
    pub fn matches_object(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = object.pointer(&pointer).and_then(Value::as_str).unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_label_operator_matches_as_kubernetes_does() {
        let l = labels(&[("app", "web"), ("tier", "frontend"), ("n", "5")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (backend)", false),
            ("n>4,n<6", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for sel in ["app in (a", "app foo (a)", "a b=c", "=x", "app=bad value"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selectors_match_nested_fields_and_reject_unknown_ones() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"},
                         "status": {"phase": "Running"}});
        let fields = ["metadata.name", "spec.nodeName", "status.phase"];
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Pending", &fields).unwrap();
        assert!(f.matches_object(&pod));
        let f = FieldSelector::parse("metadata.name==b", &fields).unwrap();
        assert!(!f.matches_object(&pod));
        assert!(FieldSelector::parse("spec.unknown=x", &fields).is_err());
    }
}
