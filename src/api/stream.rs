//! NodeMetricsList and PodMetricsList in the compact form (what kubectl top,
//! the HPA and the VPA ask for), written straight to bytes: the same bytes
//! `encode::to_go_json` writes for `types::node_list`/`pod_list` (serde_json
//! and Go's escapes; a property test and the golden tests hold them equal),
//! without building the wire structs, their strings or the whole body.
//!
//! A large list is written on the blocking pool in chunks that the response
//! body sends as they are made ([`respond`]): at 10,000 nodes × 30 pods the
//! body is about 100 MB, and holding it whole (plus the wire structs it was
//! made from) cost more memory than the points it describes. At most
//! [`CHUNKS_IN_FLIGHT`] chunks wait for a slow client; one that goes away
//! stops the writer.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::response::Response;

use super::encode::JSON;
use super::types::{NodeItem, PodItem, Version};
use crate::model::{ObjectMeta, UnixNanos, Usage};
use apimachinery::format::{write_cpu, write_duration, write_memory, write_time};

/// A body is sent in chunks of about this many bytes.
pub const CHUNK: usize = 256 * 1024;
/// Chunks written ahead of the client.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// A list to write.
pub enum List {
    Nodes(Vec<NodeItem>),
    Pods(Vec<PodItem>),
}

impl List {
    fn len(&self) -> usize {
        match self {
            List::Nodes(v) => v.len(),
            List::Pods(v) => v.len(),
        }
    }

    /// Writes the list, handing each chunk of at least `chunk` bytes to
    /// `emit` (the last may be shorter); stops early when `emit` says so.
    fn write(&self, version: Version, now: UnixNanos, chunk: usize, mut emit: impl FnMut(Vec<u8>) -> bool) {
        let mut created = Vec::with_capacity(24);
        write_time(&mut created, now);
        let kind: &[u8] = match self {
            List::Nodes(_) => b"NodeMetricsList",
            List::Pods(_) => b"PodMetricsList",
        };
        let mut out = Vec::with_capacity(chunk.min(64 * 1024 + self.len() * 320) + 1024);
        out.extend_from_slice(b"{\"kind\":\"");
        out.extend_from_slice(kind);
        out.extend_from_slice(b"\",\"apiVersion\":\"");
        out.extend_from_slice(version.group_version().as_bytes());
        out.extend_from_slice(b"\",\"metadata\":{},\"items\":[");
        for i in 0..self.len() {
            if i > 0 {
                out.push(b',');
            }
            match self {
                List::Nodes(v) => node(&mut out, &v[i], &created),
                List::Pods(v) => pod(&mut out, &v[i], &created),
            }
            if out.len() >= chunk {
                let full = std::mem::replace(&mut out, Vec::with_capacity(chunk + 1024));
                if !emit(full) {
                    return;
                }
            }
        }
        out.extend_from_slice(b"]}\n");
        emit(out);
    }
}

/// The whole list's bytes.
pub fn to_bytes(list: &List, version: Version, now: UnixNanos) -> Vec<u8> {
    let mut body = Vec::new();
    list.write(version, now, usize::MAX, |part| {
        body = part;
        true
    });
    body
}

/// A 200 whose body is the list, written on the blocking pool and sent in
/// chunks as they are made (a small list is written whole by the caller:
/// [`to_bytes`]).
pub fn respond(list: List, version: Version, now: UnixNanos) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        // A send fails only when the body was dropped: the client is gone.
        list.write(version, now, CHUNK, |part| tx.blocking_send(Bytes::from(part)).is_ok());
    });
    let chunks = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(Ok::<_, Infallible>)));
    let mut resp = Response::new(Body::from_stream(chunks));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(JSON));
    resp
}

fn node(out: &mut Vec<u8>, item: &NodeItem, created: &[u8]) {
    metadata(out, &item.meta, created);
    sample(out, item.usage.timestamp, item.usage.window_ns);
    out.extend_from_slice(b",\"usage\":");
    usage(out, &item.usage.usage);
    out.push(b'}');
}

fn pod(out: &mut Vec<u8>, item: &PodItem, created: &[u8]) {
    metadata(out, &item.meta, created);
    sample(out, item.usage.timestamp, item.usage.window_ns);
    out.extend_from_slice(b",\"containers\":[");
    for (i, c) in item.usage.containers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        string(out, &c.name);
        out.extend_from_slice(b",\"usage\":");
        usage(out, &c.usage);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

/// `{"metadata":{…}` of an item (the item's object left open).
fn metadata(out: &mut Vec<u8>, meta: &ObjectMeta, created: &[u8]) {
    out.extend_from_slice(b"{\"metadata\":{\"name\":");
    string(out, &meta.name);
    if let Some(ns) = &meta.namespace {
        out.extend_from_slice(b",\"namespace\":");
        string(out, ns);
    }
    out.extend_from_slice(b",\"creationTimestamp\":\"");
    out.extend_from_slice(created);
    out.push(b'"');
    if !meta.labels.is_empty() {
        out.extend_from_slice(b",\"labels\":{");
        for (i, (k, v)) in meta.labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, k);
            out.push(b':');
            string(out, v);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

fn sample(out: &mut Vec<u8>, timestamp: UnixNanos, window_ns: i64) {
    out.extend_from_slice(b",\"timestamp\":\"");
    write_time(out, timestamp);
    out.extend_from_slice(b"\",\"window\":\"");
    write_duration(out, window_ns);
    out.push(b'"');
}

fn usage(out: &mut Vec<u8>, u: &Usage) {
    out.extend_from_slice(b"{\"cpu\":\"");
    write_cpu(out, u.cpu_nanocores);
    out.extend_from_slice(b"\",\"memory\":\"");
    write_memory(out, u.memory_bytes);
    out.extend_from_slice(b"\"}");
}

/// Bytes a string cannot hold as they are: what serde_json escapes (`"`,
/// `\` and control characters) and what Go escapes besides (`<`, `>`, `&`,
/// and U+2028/U+2029, whose UTF-8 starts with 0xE2).
const fn attention() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xE2] = true;
    t
}

static ATTENTION: [bool; 256] = attention();

/// A JSON string as serde_json writes it, then Go's escapes.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ATTENTION[b as usize] {
            continue;
        }
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            b'&' => b"\\u0026",
            0xE2 => match bytes.get(i + 1..i + 3) {
                Some([0x80, 0xA8]) => b"\\u2028",
                Some([0x80, 0xA9]) => b"\\u2029",
                _ => continue,
            },
            _ => {
                out.extend_from_slice(&bytes[plain..i]);
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
                plain = i + 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[plain..i]);
        out.extend_from_slice(escape);
        // U+2028/U+2029 are three bytes, all replaced.
        plain = if b == 0xE2 { i + 3 } else { i + 1 };
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests;
