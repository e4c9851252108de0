//! The parse a scraper runs on a kubelet's body: [`parse`](super::parse) on
//! a blocking thread when the body is large (a 64 MiB body is a fraction of a
//! second of CPU that must not stall a runtime thread), then the clock check:
//! a batch with a sample from the future (store::clock) is refused whole
//! and its future samples are counted in
//! `ha_metrics_server_future_samples_total{node}`.
//!
//! Why the whole batch: the kubelet's clock is wrong, so every number it
//! stamped is suspect, and a partial batch would make the store forget the
//! pods it lacks. Refused, the node is a failed scrape: its last true points
//! stay servable (with their true age) while `--max-staleness` allows, no
//! future point reaches the store or the backups, and the first scrape after
//! the clock comes back makes an honest rate with the last true point.
//! The scraper's failure path counts the refusal
//! (`ha_metrics_server_scrape_errors_total{reason="future_timestamp"}`) and
//! logs it once per episode.

use bytes::Bytes;

use super::{ParseError, parse};
use crate::model::{NodeBatch, UnixNanos, now_nanos};
use crate::selfmetrics::SelfMetrics;
use crate::store::clock::{self, FUTURE_ALLOWANCE_NS, FutureSamples};

/// Bodies up to this size are parsed in place: at the parser's 400-500
/// MB/s, at most about 150 µs of work, which is what tokio allows a task
/// between awaits. Larger ones go to the blocking pool. A 30-pod kubelet
/// answers about 28 KB, so most scrapes never leave their task.
pub const INLINE_PARSE_MAX_BYTES: usize = 64 * 1024;

/// Why a scraped body gave no batch.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Malformed(#[from] ParseError),
    #[error(
        "kubelet metrics of node {node}: {} samples are up to {} ms ahead of this replica's clock \
         (more than the {} ms allowed); the node's clock is wrong, its batch is refused",
        .future.samples, .future.ahead_ns / 1_000_000, FUTURE_ALLOWANCE_NS / 1_000_000
    )]
    Future { node: String, future: FutureSamples },
    #[error("kubelet metrics of node {node}: the parser stopped: {reason}")]
    Parser { node: String, reason: String },
}

impl BodyError {
    /// The `reason` label of `ha_metrics_server_scrape_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::Malformed(_) | BodyError::Parser { .. } => "malformed",
            BodyError::Future { .. } => "future_timestamp",
        }
    }
}

/// Parses `body` (fetched from `node` at `request_time`) and checks its clock
/// against `received`, the time the body had fully arrived. Pure.
pub fn parse_checked(
    body: &[u8],
    node: &str,
    request_time: UnixNanos,
    received: UnixNanos,
) -> Result<NodeBatch, BodyError> {
    let batch = parse(body, node, request_time)?;
    let future = clock::future_samples(&batch, received);
    if future.samples > 0 {
        return Err(BodyError::Future { node: node.to_string(), future });
    }
    Ok(batch)
}

/// [`parse_checked`] of a body that has just arrived, off the runtime
/// threads when it is large, with the future samples counted in `metrics`.
pub async fn parse_scrape(
    body: Bytes,
    node: &str,
    request_time: UnixNanos,
    metrics: &SelfMetrics,
) -> Result<NodeBatch, BodyError> {
    let received = now_nanos();
    let result = if body.len() <= INLINE_PARSE_MAX_BYTES {
        parse_checked(&body, node, request_time, received)
    } else {
        let owned = node.to_string();
        tokio::task::spawn_blocking(move || parse_checked(&body, &owned, request_time, received))
            .await
            .unwrap_or_else(|e| Err(BodyError::Parser { node: node.to_string(), reason: e.to_string() }))
    };
    if let Err(BodyError::Future { future, .. }) = &result {
        metrics.future_samples.get_or_create(&vec![("node", node.to_string())]).inc_by(future.samples);
    }
    result
}
