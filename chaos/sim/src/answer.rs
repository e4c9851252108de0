//! Reading the metrics API's answers as a client sees them: the items of a
//! `NodeMetricsList` / `PodMetricsList` (or one object), each with its key,
//! the age of its sample, and its usage read with apimachinery's quantity
//! parser (never by hand). The tests, the benchmarks and the chaos observer
//! all read answers through here.
//!
//! Must not: judge what it reads (whether an answer is complete, fresh or
//! correct is the caller's question).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apimachinery::UnixNanos;
use apimachinery::format::{QuantityError, parse_quantity, parse_time};
use serde_json::Value;
use tls::pki::CertPair;

/// The node list, as `kubectl top node` asks for it.
pub const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";
/// Every pod, as `kubectl top pod -A` asks for it.
pub const PODS: &str = "/apis/metrics.k8s.io/v1beta1/pods";

/// One served node or pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// A node's `name`, a pod's `namespace/name`.
    pub key: String,
    /// The sample's `timestamp`, when it parses.
    pub timestamp: Option<UnixNanos>,
    /// CPU in nanocores and memory in bytes (a pod's summed over its
    /// containers). A quantity that does not parse counts as 0, which a
    /// check against the true usage then reports.
    pub cpu_nanocores: f64,
    pub memory_bytes: f64,
}

impl Item {
    /// How old the sample is at `now` (zero when it has no timestamp or is ahead of `now`).
    pub fn age(&self, now: SystemTime) -> Duration {
        self.timestamp.map_or(Duration::ZERO, |ts| age_at(ts, now))
    }
}

/// How old a sample stamped `ts` is at `now` (zero when ahead).
pub fn age_at(ts: UnixNanos, now: SystemTime) -> Duration {
    let t = UNIX_EPOCH + Duration::from_nanos(ts.max(0) as u64);
    now.duration_since(t).unwrap_or_default()
}

/// The items of a list, or the one object when `v` is a single item; nothing
/// when `v` is neither.
pub fn items(v: &Value) -> Vec<Item> {
    match v.get("items") {
        Some(Value::Array(list)) => list.iter().map(item).collect(),
        _ if v.get("metadata").is_some() => vec![item(v)],
        _ => Vec::new(),
    }
}

/// [`items`] of a JSON body (nothing when it is not JSON).
pub fn items_of(body: &str) -> Vec<Item> {
    serde_json::from_str(body).map_or_else(|_| Vec::new(), |v: Value| items(&v))
}

fn item(i: &Value) -> Item {
    let name = i["metadata"]["name"].as_str().unwrap_or_default();
    let key = match i["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    let usages: Vec<&Value> = match i["containers"].as_array() {
        Some(cs) => cs.iter().map(|c| &c["usage"]).collect(),
        None => vec![&i["usage"]],
    };
    let quantity = |v: &Value, read: fn(&str) -> Result<u64, UsageError>| {
        v.as_str().and_then(|q| read(q).ok()).map_or(0.0, |n| n as f64)
    };
    Item {
        key,
        timestamp: i["timestamp"].as_str().and_then(parse_time),
        cpu_nanocores: usages.iter().map(|u| quantity(&u["cpu"], nanocores)).sum(),
        memory_bytes: usages.iter().map(|u| quantity(&u["memory"], bytes)).sum(),
    }
}

/// Why a served usage could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error("quantity {quantity:?} is not a whole, non-negative number of {unit}")]
    NotWhole { quantity: String, unit: &'static str },
}

fn whole(q: &str, scale: i32, unit: &'static str) -> Result<u64, UsageError> {
    let v = parse_quantity(q)?.scaled_to(scale);
    v.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| UsageError::NotWhole { quantity: q.to_string(), unit })
}

/// A CPU quantity as the API writes it (`123n`, `5u`, `7m`, `2`) in nanocores.
pub fn nanocores(q: &str) -> Result<u64, UsageError> {
    whole(q, -9, "nanocores")
}

/// A memory quantity as the API writes it (`4620Ki`, `12Mi`, `12533761`) in bytes.
pub fn bytes(q: &str) -> Result<u64, UsageError> {
    whole(q, 0, "bytes")
}

/// One answer to a GET.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The `Warning` texts (a partial answer says so).
    pub warnings: Vec<String>,
    /// The items, when the status is 200.
    pub items: Vec<Item>,
}

impl Answer {
    /// The item keys, sorted.
    pub fn keys(&self) -> std::collections::BTreeSet<String> {
        self.items.iter().map(|i| i.key.clone()).collect()
    }
}

/// GETs `path` straight from a replica's API address with `cert`, within
/// `timeout`; `Err` says why there was no answer.
pub async fn fetch(addr: SocketAddr, path: &str, cert: &CertPair, timeout: Duration) -> Result<Answer, String> {
    let reply = tokio::time::timeout(timeout, crate::client::fetch(addr, path, Some(cert), &[]))
        .await
        .map_err(|_| format!("GET {path} from {addr}: no answer within {timeout:?}"))??;
    let items = if reply.status == 200 { items_of(&reply.body) } else { Vec::new() };
    Ok(Answer { status: reply.status, warnings: reply.warnings(), items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_pod_lists_become_items_with_summed_containers() {
        let nodes = r#"{"items":[{"metadata":{"name":"node-0"},"timestamp":"2026-01-01T00:00:01Z","window":"2s",
            "usage":{"cpu":"250m","memory":"4Ki"}}]}"#;
        let n = items_of(nodes);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].key, "node-0");
        assert_eq!((n[0].cpu_nanocores, n[0].memory_bytes), (250_000_000.0, 4096.0));
        assert_eq!(n[0].timestamp, parse_time("2026-01-01T00:00:01Z"));
        let pods = r#"{"items":[{"metadata":{"name":"p","namespace":"ns"},"timestamp":"2026-01-01T00:00:01Z",
            "containers":[{"name":"a","usage":{"cpu":"1m","memory":"1Mi"}},{"name":"b","usage":{"cpu":"2m","memory":"1.5Mi"}}]}]}"#;
        let p = items_of(pods);
        assert_eq!(p[0].key, "ns/p");
        assert_eq!((p[0].cpu_nanocores, p[0].memory_bytes), (3_000_000.0, 2.5 * 1048576.0));
        let single = r#"{"metadata":{"name":"node-3"},"timestamp":"bad","usage":{"cpu":"x","memory":"1"}}"#;
        let s = items_of(single);
        assert_eq!((s[0].key.as_str(), s[0].timestamp, s[0].cpu_nanocores), ("node-3", None, 0.0));
        assert!(items_of("not json").is_empty() && items_of(r#"{"kind":"Status"}"#).is_empty());
    }

    #[test]
    fn ages_count_from_the_sample_and_never_go_negative() {
        let item = &items_of(r#"{"metadata":{"name":"n"},"timestamp":"2026-01-01T00:00:10Z","usage":{}}"#)[0];
        let ts = item.timestamp.unwrap();
        let at = |s: u64| UNIX_EPOCH + Duration::from_nanos(ts as u64) + Duration::from_secs(s);
        assert_eq!(item.age(at(3)), Duration::from_secs(3));
        assert_eq!(item.age(UNIX_EPOCH), Duration::ZERO, "a sample ahead of the clock is not old");
    }

    #[test]
    fn quantities_are_read_by_apimachinery_in_whole_units() {
        assert_eq!(nanocores("123n"), Ok(123));
        assert_eq!(nanocores("5u"), Ok(5_000));
        assert_eq!(nanocores("7m"), Ok(7_000_000));
        assert_eq!(nanocores("2"), Ok(2_000_000_000));
        assert_eq!(bytes("4620Ki"), Ok(4620 * 1024));
        assert_eq!(bytes("12Mi"), Ok(12 << 20));
        assert_eq!(bytes("12533761"), Ok(12_533_761));
        assert_eq!(bytes("1k"), Ok(1000));
        assert!(matches!(bytes("1n"), Err(UsageError::NotWhole { unit: "bytes", .. })));
        assert!(matches!(bytes("-1Ki"), Err(UsageError::NotWhole { .. })));
        let err = nanocores("12q").unwrap_err();
        assert!(err.to_string().contains("\"12q\""), "{err}");
    }
}
