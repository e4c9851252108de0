//! Field selectors of the metrics API: `metadata.name` and
//! `metadata.namespace` with `=`, `==`, `!=`, values escaped as apimachinery
//! escapes them; any other field is the apiserver's 400.

use super::SelectorError;

/// A field known to the metrics API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Namespace,
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: Field,
    pub negated: bool,
    pub value: String,
}

/// A parsed field selector: the AND of its terms. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y` (values may escape `\,`, `\=`, `\\`).
    /// Any other field is rejected with the generic apiserver's message.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_unescaped_commas(s);
        parts.sort();
        let mut raw = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let (lhs, op, rhs) = split_term(part)
                .ok_or_else(|| SelectorError::Syntax(format!("invalid selector: '{s}'; can't understand '{part}'")))?;
            raw.push((lhs.to_string(), op == "!=", unescape(rhs)?));
        }
        let mut terms = Vec::new();
        for (lhs, negated, value) in raw {
            let field = match lhs.as_str() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => {
                    return Err(SelectorError::Field(format!(
                        "{other:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    )));
                }
            };
            terms.push(FieldTerm { field, negated, value });
        }
        Ok(FieldSelector { terms })
    }

    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an object with this name and namespace matches (nodes pass `None`).
    pub fn matches(&self, name: &str, namespace: Option<&str>) -> bool {
        self.terms.iter().all(|t| {
            let have = match t.field {
                Field::Name => name,
                Field::Namespace => namespace.unwrap_or(""),
            };
            (have == t.value) != t.negated
        })
    }
}

fn split_unescaped_commas(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
        } else if c == '\\' {
            escaped = true;
            cur.push(c);
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// The first operator (`!=`, `==`, `=`, tried in that order at each position).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape(v: &str) -> Result<String, SelectorError> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError::Syntax(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    )));
                }
                None => {
                    return Err(SelectorError::Syntax("invalid field selector: invalid escape sequence: \\".into()));
                }
            },
            ',' | '=' => {
                return Err(SelectorError::Syntax(format!(
                    "invalid field selector: unescaped character in value: {c}"
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}
