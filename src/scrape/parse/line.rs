//! One line of Prometheus text exposition format 0.0.4: comment, blank or
//! `name{labels} value [timestamp]`. Borrows from the line; allocates only
//! for label values that contain escapes and for error messages.

use super::{MAX_LABEL_VALUE_BYTES, MAX_LABELS, MAX_LINE_BYTES, ParseErrorKind, decimal, scan};
use std::borrow::Cow;

/// The families the parser keeps; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    NodeCpu,
    NodeMemory,
    ContainerCpu,
    ContainerMemory,
    ContainerStart,
    Other,
}

impl Family {
    fn of(name: &[u8]) -> Family {
        match name {
            b"node_cpu_usage_seconds_total" => Family::NodeCpu,
            b"node_memory_working_set_bytes" => Family::NodeMemory,
            b"container_cpu_usage_seconds_total" => Family::ContainerCpu,
            b"container_memory_working_set_bytes" => Family::ContainerMemory,
            b"container_start_time_seconds" => Family::ContainerStart,
            _ => Family::Other,
        }
    }
}

/// The three labels a container sample is keyed by.
#[derive(Debug, Default)]
pub(super) struct Labels<'a> {
    pub container: Option<Cow<'a, str>>,
    pub pod: Option<Cow<'a, str>>,
    pub namespace: Option<Cow<'a, str>>,
}

#[derive(Debug)]
pub(super) struct Sample<'a> {
    pub family: Family,
    pub labels: Labels<'a>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

fn is_blank(b: u8) -> bool {
    // Nearly every byte tested is printable: one comparison rejects it.
    b <= b' ' && (b == b' ' || b == b'\t')
}

fn skip_blanks(line: &[u8], mut pos: usize) -> usize {
    while pos < line.len() && is_blank(line[pos]) {
        pos += 1;
    }
    pos
}

/// The first byte at or after `pos` that is not a blank, and its position
/// (`None` at the end of the line); blanks are rare, so looked for only
/// when the byte at `pos` is one.
fn next_byte(line: &[u8], pos: usize) -> (usize, Option<u8>) {
    match line.get(pos) {
        Some(&b) if !is_blank(b) => (pos, Some(b)),
        _ => {
            let pos = skip_blanks(line, pos);
            (pos, line.get(pos).copied())
        }
    }
}

/// Which bytes an identifier may start with (bit 0: a metric name, bit 1: a
/// label name) and continue with (bits 2 and 3): one table lookup a byte.
const IDENT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let letter = c.is_ascii_alphabetic() || c == b'_';
        let mut bits = 0;
        if letter || c == b':' {
            bits |= 0b0001 | 0b0100;
        }
        if letter {
            bits |= 0b0010 | 0b1000;
        }
        if c.is_ascii_digit() {
            bits |= 0b0100 | 0b1000;
        }
        t[b] = bits;
        b += 1;
    }
    t
};

/// End of the identifier starting at `pos` (`[a-zA-Z_:][a-zA-Z0-9_:]*`; no
/// colon when `colon` is false, as for label names).
fn ident_end(line: &[u8], pos: usize, colon: bool) -> usize {
    let (first, rest) = if colon { (0b0001, 0b0100) } else { (0b0010, 0b1000) };
    match line.get(pos) {
        Some(&b) if IDENT[usize::from(b)] & first != 0 => {}
        _ => return pos,
    }
    scan::ident_rest_end(line, pos + 1, colon, |b| IDENT[usize::from(b)] & rest != 0)
}

/// The value token of a sample line, for error messages (at most 64 bytes).
pub(super) fn value_text(line: &[u8]) -> String {
    let after_labels = match line.iter().rposition(|&b| b == b'}') {
        Some(p) => p + 1,
        None => 0,
    };
    let rest = &line[after_labels.min(line.len())..];
    let token = rest
        .split(|&b| is_blank(b))
        .filter(|t| !t.is_empty())
        .nth(if after_labels == 0 { 1 } else { 0 })
        .unwrap_or_default();
    String::from_utf8_lossy(&token[..token.len().min(64)]).into_owned()
}

/// Parses one line (without its `\n`). `None` for blank lines and comments.
/// `text` is the same line as a `str` when the caller already knows it is
/// UTF-8 (the whole body was checked at once), so that label values and
/// numbers need no check of their own.
pub(super) fn parse_line<'a>(line: &'a [u8], text: Option<&'a str>) -> Result<Option<Sample<'a>>, ParseErrorKind> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ParseErrorKind::LineTooLong);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = text.map(|t| t.strip_suffix('\r').unwrap_or(t));
    let start = skip_blanks(line, 0);
    if start == line.len() || line[start] == b'#' {
        return Ok(None);
    }
    let name_end = ident_end(line, start, true);
    if name_end == start {
        return Err(ParseErrorKind::InvalidName);
    }
    let family = Family::of(&line[start..name_end]);
    let mut pos = skip_blanks(line, name_end);
    let mut labels = Labels::default();
    let has_labels = pos < line.len() && line[pos] == b'{';
    if has_labels {
        pos = parse_labels(line, text, pos + 1, &mut labels)?;
    }

    let value_start = skip_blanks(line, pos);
    if !has_labels && value_start == name_end && value_start < line.len() {
        // The name ran into a byte that may not be part of it.
        return Err(ParseErrorKind::InvalidName);
    }
    let value_end = token_end(line, value_start);
    if value_end == value_start {
        return Err(ParseErrorKind::MissingValue);
    }
    let value = parse_value(&line[value_start..value_end], text.and_then(|t| t.get(value_start..value_end)))?;

    let ts_start = skip_blanks(line, value_end);
    let ts_end = token_end(line, ts_start);
    let timestamp_ms = if ts_end == ts_start { None } else { Some(parse_timestamp(&line[ts_start..ts_end])?) };
    if skip_blanks(line, ts_end) != line.len() {
        return Err(ParseErrorKind::TrailingText);
    }
    Ok(Some(Sample { family, labels, value, timestamp_ms }))
}

fn token_end(line: &[u8], pos: usize) -> usize {
    scan::find2(line, pos, b' ', b'\t')
}

/// Parses `name="value",...}` starting after `{`; returns the position after `}`.
fn parse_labels<'a>(
    line: &'a [u8],
    text: Option<&'a str>,
    mut pos: usize,
    out: &mut Labels<'a>,
) -> Result<usize, ParseErrorKind> {
    let mut count = 0usize;
    loop {
        let (at, next) = next_byte(line, pos);
        match next {
            None => return Err(ParseErrorKind::InvalidLabels("missing '}'")),
            Some(b'}') => return Ok(at + 1),
            Some(_) => pos = at,
        }
        count += 1;
        if count > MAX_LABELS {
            return Err(ParseErrorKind::TooManyLabels);
        }
        let name_end = ident_end(line, pos, false);
        if name_end == pos {
            return Err(ParseErrorKind::InvalidLabels("invalid label name"));
        }
        let name = &line[pos..name_end];
        let (equals, next) = next_byte(line, name_end);
        if next != Some(b'=') {
            return Err(ParseErrorKind::InvalidLabels("expected '=' after a label name"));
        }
        let (quote, next) = next_byte(line, equals + 1);
        if next != Some(b'"') {
            return Err(ParseErrorKind::InvalidLabels("expected '\"' before a label value"));
        }
        let (value, after) = parse_quoted(line, text, quote + 1)?;
        let slot = match name {
            b"container" => Some((&mut out.container, "container")),
            b"pod" => Some((&mut out.pod, "pod")),
            b"namespace" => Some((&mut out.namespace, "namespace")),
            _ => None,
        };
        if let Some((slot, label)) = slot {
            if slot.is_some() {
                return Err(ParseErrorKind::DuplicateLabel(label));
            }
            if !value.is_empty() {
                *slot = Some(value);
            }
        }
        let (at, next) = next_byte(line, after);
        match next {
            Some(b',') => pos = at + 1,
            Some(b'}') => return Ok(at + 1),
            _ => {
                return Err(ParseErrorKind::InvalidLabels("expected ',' or '}' after a label value"));
            }
        }
    }
}

/// Reads a quoted value starting after the opening quote; returns the value
/// and the position after the closing quote. Escapes `\\`, `\"` and `\n`
/// are decoded; any other escaped byte is kept with its backslash, as
/// Prometheus does.
fn parse_quoted<'a>(
    line: &'a [u8],
    text: Option<&'a str>,
    start: usize,
) -> Result<(Cow<'a, str>, usize), ParseErrorKind> {
    let mut pos = start;
    let mut escaped = false;
    loop {
        pos = scan::find2(line, pos, b'"', b'\\');
        match line.get(pos) {
            None => return Err(ParseErrorKind::InvalidLabels("unterminated label value")),
            Some(b'"') => break,
            Some(_) => {
                escaped = true;
                pos += 2;
            }
        }
    }
    if pos - start > MAX_LABEL_VALUE_BYTES {
        return Err(ParseErrorKind::LabelValueTooLong);
    }
    let text = match text.and_then(|t| t.get(start..pos)) {
        Some(checked) => checked,
        None => std::str::from_utf8(&line[start..pos]).map_err(|_| ParseErrorKind::LabelNotUtf8)?,
    };
    if !escaped {
        return Ok((Cow::Borrowed(text), pos + 1));
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok((Cow::Owned(out), pos + 1))
}

/// Go `strconv.ParseFloat` syntax for decimal floats, plus `Inf`/`NaN`
/// spellings (rejected later for the families we keep).
fn parse_value(token: &[u8], text: Option<&str>) -> Result<f64, ParseErrorKind> {
    if let Some(value) = decimal::fast_f64(token) {
        return Ok(value);
    }
    let invalid = || ParseErrorKind::InvalidValue(String::from_utf8_lossy(&token[..token.len().min(64)]).into_owned());
    // Rust's parser accepts what Go's does for decimal text, except Go also
    // takes hex floats and underscores, which Prometheus never writes.
    let text = match text {
        Some(checked) => checked,
        None => std::str::from_utf8(token).map_err(|_| invalid())?,
    };
    text.parse::<f64>().map_err(|_| invalid())
}

/// Go `strconv.ParseInt(s, 10, 64)` (what Rust's `i64::from_str` also
/// accepts: an optional sign, then decimal digits), read straight from the
/// bytes.
fn parse_timestamp(token: &[u8]) -> Result<i64, ParseErrorKind> {
    let invalid = || {
        ParseErrorKind::InvalidTimestamp(match std::str::from_utf8(token) {
            Ok(text) => text.chars().take(64).collect(),
            Err(_) => String::from_utf8_lossy(&token[..token.len().min(64)]).into_owned(),
        })
    };
    let (negative, digits) = match token {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, token),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(invalid());
        }
        let d = i64::from(d - b'0');
        let next = value.checked_mul(10).and_then(|v| if negative { v.checked_sub(d) } else { v.checked_add(d) });
        value = next.ok_or_else(invalid)?;
    }
    Ok(value)
}
