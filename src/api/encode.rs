//! Turns wire types into HTTP responses with the bytes Go's apiserver writes:
//! encoding/json output (HTML-unsafe characters escaped as `\u003c`…), one
//! trailing newline for the normal encoder, two-space indentation and no
//! newline for the pretty encoder and for raw error bodies. It does not decide
//! what to answer.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use apimachinery::status::Status;

pub const JSON: &str = "application/json";

/// How a body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `json.NewEncoder(w).Encode(obj)`: compact plus `\n`.
    Compact,
    /// `json.MarshalIndent(obj, "", "  ")`: indented, no newline.
    Pretty,
}

/// The bytes Go's encoding/json writes for `value`.
pub fn to_go_json<T: Serialize>(value: &T, style: Style) -> Vec<u8> {
    let text = match style {
        Style::Compact => serde_json::to_string(value),
        Style::Pretty => serde_json::to_string_pretty(value),
    }
    // Our types are plain structs, strings and maps with string keys: infallible.
    .unwrap_or_else(|_| String::from("{}"));
    let mut out = go_escape(text).into_bytes();
    if style == Style::Compact {
        out.push(b'\n');
    }
    out
}

/// Go escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings; these never
/// occur outside strings in JSON, so the whole text can be rewritten. Text
/// without them (nearly always) is returned as it is, not copied.
fn go_escape(text: String) -> String {
    // A byte scan: `<`, `>` and `&` are ASCII and U+2028/U+2029 start with
    // 0xE2 in UTF-8 (other characters starting with it only take the slow
    // path below, which leaves them alone). Searching for the five chars
    // decoded the whole body character by character.
    if !text.bytes().any(|b| matches!(b, b'<' | b'>' | b'&' | 0xE2)) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A response with the given body and `Content-Type`.
pub fn respond(code: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    let ct = HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static(JSON));
    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    resp
}

/// A JSON object response.
pub fn object<T: Serialize>(code: StatusCode, value: &T, style: Style) -> Response {
    respond(code, JSON, to_go_json(value, style))
}

/// A Status error written through the negotiated encoder.
pub fn status(s: &Status, style: Style) -> Response {
    object(s.http_code(), s, style)
}

/// A Status written as apiserver's `WriteRawJSON` does when even the error
/// cannot be negotiated (indented, no newline).
pub fn raw_status(s: &Status) -> Response {
    object(s.http_code(), s, Style::Pretty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes_html_characters_and_line_separators_only() {
        assert_eq!(go_escape("a<b>&c".into()), "a\\u003cb\\u003e\\u0026c");
        assert_eq!(go_escape("x\u{2028}y\u{2029}".into()), "x\\u2028y\\u2029");
        // Other characters whose UTF-8 starts with 0xE2 are kept as they are.
        assert_eq!(go_escape("5 € – ok".into()), "5 € – ok");
        assert_eq!(go_escape("plain".into()), "plain");
    }
}
