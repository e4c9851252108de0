//! Label selectors: the Kubernetes lexer and parser (operators, sets,
//! keywords as values), key and value validation, and matching.

use std::collections::BTreeMap;
use std::fmt;

use super::SelectorError;

/// A label-selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
    /// Sorted, without duplicates; one value for `=`, `==`, `!=`, `>`, `<`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement (Kubernetes semantics:
    /// `!=` and `notin` also match objects without the key).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let got = labels.get(&self.key);
        match self.op {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                got.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotEquals | Operator::NotIn => got.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) =
                    (got.and_then(|v| v.parse::<i64>().ok()), self.values.first().and_then(|v| v.parse::<i64>().ok()))
                else {
                    return false;
                };
                if self.op == Operator::GreaterThan { have > want } else { have < want }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        let one = self.values.first().map(String::as_str).unwrap_or("");
        match self.op {
            Operator::Equals => write!(f, "{k}={one}"),
            Operator::DoubleEquals => write!(f, "{k}=={one}"),
            Operator::NotEquals => write!(f, "{k}!={one}"),
            Operator::In => write!(f, "{k} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{k} notin ({})", self.values.join(",")),
            Operator::Exists => write!(f, "{k}"),
            Operator::DoesNotExist => write!(f, "!{k}"),
            Operator::GreaterThan => write!(f, "{k}>{one}"),
            Operator::LessThan => write!(f, "{k}<{one}"),
        }
    }
}

/// A parsed label selector: the AND of its requirements. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Parses the Kubernetes label-selector syntax.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let tokens = lex(s)?;
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = p.selector()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The AND of both selectors.
    pub fn and(mut self, other: &LabelSelector) -> Self {
        self.requirements.extend(other.requirements.iter().cloned());
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    End,
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Tok::Ident(s) => s,
            Tok::Not => "!",
            Tok::Eq => "=",
            Tok::DoubleEq => "==",
            Tok::NotEq => "!=",
            Tok::Gt => ">",
            Tok::Lt => "<",
            Tok::In => "in",
            Tok::NotIn => "notin",
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Comma => ",",
            Tok::End => "",
        }
    }
}

fn is_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn symbol(s: &str) -> Option<Tok> {
    Some(match s {
        "=" => Tok::Eq,
        "==" => Tok::DoubleEq,
        "!=" => Tok::NotEq,
        "!" => Tok::Not,
        ">" => Tok::Gt,
        "<" => Tok::Lt,
        "(" => Tok::Open,
        ")" => Tok::Close,
        "," => Tok::Comma,
        _ => return None,
    })
}

/// Splits a selector into tokens: longest-match operators, identifiers up to
/// the next operator or whitespace (space, tab, newline, carriage return).
fn lex(s: &str) -> Result<Vec<Tok>, SelectorError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if is_symbol(c) {
            let mut buf = String::new();
            let mut best: Option<(Tok, usize)> = None;
            let mut j = i;
            while j < chars.len() && is_symbol(chars[j]) {
                buf.push(chars[j]);
                j += 1;
                match symbol(&buf) {
                    Some(t) => best = Some((t, j)),
                    None if best.is_some() => break,
                    None => {}
                }
            }
            let (tok, end) =
                best.ok_or_else(|| SelectorError::Syntax(format!("error expected: keyword found '{buf}'")))?;
            out.push(tok);
            i = end;
        } else {
            let start = i;
            while i < chars.len() && !is_symbol(chars[i]) && !chars[i].is_ascii_whitespace() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident(word),
            });
        }
    }
    out.push(Tok::End);
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    /// The next token; in value position the keywords are plain identifiers.
    fn peek(&self, values: bool) -> Tok {
        let t = self.tokens.get(self.pos).cloned().unwrap_or(Tok::End);
        match t {
            Tok::In | Tok::NotIn if values => Tok::Ident(t.text().to_string()),
            t => t,
        }
    }

    fn next(&mut self, values: bool) -> Tok {
        let t = self.peek(values);
        self.pos += 1;
        t
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut reqs = Vec::new();
        loop {
            match self.peek(true) {
                Tok::Ident(_) | Tok::Not => {
                    reqs.push(self.requirement().map_err(SelectorError::Requirement)?);
                    match self.next(true) {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => match self.peek(true) {
                            Tok::Ident(_) | Tok::Not => {}
                            t => {
                                return Err(SelectorError::Syntax(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.text()
                                )));
                            }
                        },
                        t => {
                            return Err(SelectorError::Syntax(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.text()
                            )));
                        }
                    }
                }
                Tok::End => return Ok(reqs),
                t => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.text()
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut negated = false;
        let mut tok = self.next(true);
        if tok == Tok::Not {
            negated = true;
            tok = self.next(true);
        }
        let Tok::Ident(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.text()));
        };
        validate_key(&key)?;
        // `!key` takes no operator; whatever follows is the caller's to reject.
        if negated {
            return Ok(Requirement { key, op: Operator::DoesNotExist, values: Vec::new() });
        }
        if matches!(self.peek(true), Tok::End | Tok::Comma) {
            return Ok(Requirement { key, op: Operator::Exists, values: Vec::new() });
        }
        let op = match self.next(false) {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Eq => Operator::Equals,
            Tok::DoubleEq => Operator::DoubleEquals,
            Tok::NotEq => Operator::NotEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            t => {
                return Err(format!("found '{}', expected: in, notin, =, ==, !=, gt, lt", t.text()));
            }
        };
        let mut values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        values.sort();
        values.dedup();
        for v in &values {
            validate_value(&key, v)?;
        }
        // A set is never empty (`()` is the set holding ""); `>`/`<` need an integer.
        let first = values.first().map(String::as_str).unwrap_or("");
        if matches!(op, Operator::GreaterThan | Operator::LessThan) && first.parse::<i64>().is_err() {
            return Err(format!(
                "values[0]: Invalid value: {first:?}: for 'Gt', 'Lt' operators, the value must be an integer"
            ));
        }
        Ok(Requirement { key, op, values })
    }

    fn exact_value(&mut self) -> Result<String, String> {
        match self.peek(true) {
            Tok::End | Tok::Comma => Ok(String::new()),
            _ => match self.next(true) {
                Tok::Ident(v) => Ok(v),
                t => Err(format!("found '{}', expected: identifier", t.text())),
            },
        }
    }

    /// `( v1, v2, ... )`; empty entries are empty strings, `()` is `{""}`.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let t = self.next(true);
        if t != Tok::Open {
            return Err(format!("found '{}' expected: '('", t.text()));
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next(true) {
                Tok::Ident(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Tok::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Tok::Close => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t if expect_value => {
                    return Err(format!("found '{}', expected: ',', ')' or identifier", t.text()));
                }
                t => return Err(format!("found '{}', expected: ',' or ')'", t.text())),
            }
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn name_errors(s: &str, what: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(format!("{what} must be no more than 63 characters"));
    }
    let first_last_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_last_ok || !s.chars().all(is_name_char) {
        errs.push(format!(
            "{what} must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    errs
}

/// A label key: `[prefix/]name`, the prefix a lower-case DNS subdomain.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        errs.extend(name_errors(name, "name part"));
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else if p.len() > 253 {
            errs.push("prefix part must be no more than 253 characters".to_string());
        } else if !p.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        }) {
            errs.push("prefix part must be a lowercase RFC 1123 subdomain".to_string());
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(format!("key: Invalid value: {key:?}: {}", errs.join("; "))) }
}

fn validate_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let errs = name_errors(value, "a valid label");
    if errs.is_empty() { Ok(()) } else { Err(format!("values[{key}]: Invalid value: {value:?}: {}", errs.join("; "))) }
}
