//! Reading a replica's cluster status from its peer port (`/cluster/view`,
//! mutual TLS with a cluster-CA certificate, as `ha-metrics-server cluster`
//! does), straight to the replica and not through the partition proxies, so
//! the observer sees a partitioned replica's own view. The JSON is parsed
//! here into a [`View`]; nothing else knows its shape.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::record::View;

/// A client for peer ports.
#[derive(Clone)]
pub struct PeerViews {
    http: Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Empty<Bytes>>,
}

impl PeerViews {
    pub fn new(config: rustls::ClientConfig) -> PeerViews {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1().build();
        PeerViews { http: Client::builder(TokioExecutor::new()).build(https) }
    }

    /// Replica `replica`'s view, or `None` when it does not answer within 2 s.
    pub async fn fetch(&self, replica: usize, peer: SocketAddr, at_ms: u64) -> Option<View> {
        let req = http::Request::get(format!("https://{peer}/cluster/view")).body(Empty::new()).ok()?;
        let resp = tokio::time::timeout(Duration::from_secs(2), self.http.request(req)).await.ok()?.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = tokio::time::timeout(Duration::from_secs(2), resp.into_body().collect()).await.ok()?.ok()?;
        let v: Value = serde_json::from_slice(&body.to_bytes()).ok()?;
        parse_view(&v, replica, at_ms)
    }
}

/// A [`View`] from the JSON of a `ClusterStatus` (`null` when the replica could not compute one).
pub fn parse_view(v: &Value, replica: usize, at_ms: u64) -> Option<View> {
    let raft = v.get("raft")?;
    let mut members: Vec<String> = raft["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| format!("{}={}", m["name"].as_str().unwrap_or("?"), m["state"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    Some(View {
        at_ms,
        replica,
        role: raft["role"].as_str().unwrap_or("Unknown").to_string(),
        term: raft["term"].as_u64().unwrap_or(0),
        leader: raft["leader"].get(1).and_then(Value::as_str).map(str::to_string),
        epoch: raft["epoch"].as_u64().unwrap_or(0),
        last_applied: raft["last_applied"].as_u64(),
        ring_epoch: v["ring_epoch"].as_u64().unwrap_or(0),
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_status_becomes_a_view_and_null_becomes_none() {
        let v = serde_json::json!({
            "raft": {"id": 1, "name": "replica-0", "role": "Leader", "term": 3, "leader": [1, "replica-0"],
                     "epoch": 7, "last_log_index": 9, "last_applied": 9, "join_error": null,
                     "members": [{"id": 2, "name": "replica-1", "state": "Down"}, {"id": 1, "name": "replica-0", "state": "Active"}]},
            "ring_epoch": 7, "ring": "64 vnodes, hash v1", "nodes": 4, "shares": {}
        });
        let view = parse_view(&v, 0, 5).unwrap();
        assert_eq!(view.role, "Leader");
        assert_eq!(view.leader.as_deref(), Some("replica-0"));
        assert_eq!((view.term, view.epoch, view.ring_epoch, view.last_applied), (3, 7, 7, Some(9)));
        assert_eq!(view.members, vec!["replica-0=Active", "replica-1=Down"]);
        assert_eq!(parse_view(&Value::Null, 0, 5), None);
    }
}
