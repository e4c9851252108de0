//! Asking many members at once: [`call_many`] sends one request per member
//! concurrently, all bounded by one deadline, and returns one `(member,
//! Result)` per member, as Garage's `call_many` does; the caller decides what
//! a failure or a partial result means. Per-member latency and errors are
//! recorded here, once, for every caller (the query fan-out, the replica
//! manager's pushes and pulls, the handover confirmation).
//!
//! [`Transport`] is the one thing a caller needs from the peer port: the
//! Raft node in production, an in-process fake in tests.

use std::future::Future;
use std::time::Duration;

use raft::{CallError, NodeId, ReplySize};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::selfmetrics::SelfMetrics;

/// Sends one request to one member and decodes its reply.
pub trait Transport: Send + Sync + 'static {
    /// Calls `path` on member `to` with `body`, giving up after `timeout`.
    fn call<Req, Resp>(
        &self,
        to: NodeId,
        path: &'static str,
        body: Req,
        timeout: Duration,
        size: ReplySize,
    ) -> impl Future<Output = Result<Resp, CallError>> + Send
    where
        Req: Serialize + Send + Sync,
        Resp: DeserializeOwned + Send + 'static;

    /// How long member `id` has been silent (no liveness heartbeat heard).
    fn silence(&self, id: NodeId) -> Option<Duration>;

    /// The lease: a member silent for longer is not reachable.
    fn lease(&self) -> Duration;
}

impl Transport for raft::Node {
    fn call<Req, Resp>(
        &self,
        to: NodeId,
        path: &'static str,
        body: Req,
        timeout: Duration,
        size: ReplySize,
    ) -> impl Future<Output = Result<Resp, CallError>> + Send
    where
        Req: Serialize + Send + Sync,
        Resp: DeserializeOwned + Send + 'static,
    {
        raft::Node::call(self, to, path, body, timeout, size)
    }

    fn silence(&self, id: NodeId) -> Option<Duration> {
        raft::Node::silence(self, id)
    }

    fn lease(&self) -> Duration {
        raft::Node::lease(self)
    }
}

/// The label of a failed call in `ha_metrics_server_fanout_errors_total`.
pub fn reason(e: &CallError) -> &'static str {
    match e {
        CallError::Timeout { .. } => "timeout",
        CallError::Unreachable { .. } => "unreachable",
        CallError::Refused { .. } => "refused",
        CallError::Decode { .. } => "decode",
        CallError::Request { .. } => "request",
    }
}

/// Calls `path` on every member of `calls` with its request, concurrently,
/// each bounded by `deadline` (a member whose call starts at or after the
/// deadline fails with a timeout at once). Records each call's latency and
/// error under the member's `name`. The results come back in the order of
/// `calls`.
pub async fn call_many<T, Req, Resp>(
    transport: &T,
    metrics: &SelfMetrics,
    path: &'static str,
    calls: Vec<(NodeId, String, Req)>,
    deadline: Instant,
    size: ReplySize,
) -> Vec<(NodeId, Result<Resp, CallError>)>
where
    T: Transport,
    Req: Serialize + Send + Sync,
    Resp: DeserializeOwned + Send + 'static,
{
    let each = calls.into_iter().map(|(to, name, body)| async move {
        let started = Instant::now();
        let timeout = deadline.saturating_duration_since(started);
        let result = if timeout.is_zero() {
            Err(CallError::Timeout { addr: name.clone(), path: path.to_string(), timeout })
        } else {
            transport.call(to, path, body, timeout, size).await
        };
        let labels = vec![("peer", name)];
        metrics.fanout_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            let peer = labels.into_iter().next().map(|(_, n)| n).unwrap_or_default();
            tracing::debug!(peer = %peer, path, error = %e, "peer call failed");
            metrics.fanout_errors.get_or_create(&vec![("peer", peer), ("reason", reason(e).to_string())]).inc();
        }
        (to, result)
    });
    futures::future::join_all(each).await
}
