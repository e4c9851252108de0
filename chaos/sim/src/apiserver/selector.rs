//! Label and field selectors as the apiserver applies them from `labelSelector`
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

/// Label selectors are the API's own parser (the full Kubernetes syntax).
pub use apimachinery::selector::LabelSelector;

/// Whether an object's `metadata.labels` satisfy `selector`.
pub fn labels_match(selector: &LabelSelector, object: &Value) -> bool {
    selector.is_empty() || selector.matches(&object_labels(object))
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
