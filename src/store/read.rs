//! Read side: rates of one node or one pod from its stored series, with
//! metrics-server's serving rules (reference §1.8). Pure functions of the
//! stored series.

use super::PodEntry;
use super::series::Series;
use super::usage::{Rated, resource_usage};
use crate::model::{ContainerUsage, NodeUsage, PodUsage};

/// A node is served when it has a previous point and the pair gives a rate.
pub(super) fn node_usage(series: &Series, node: &str) -> Option<NodeUsage> {
    let prev = series.prev.as_ref()?;
    match resource_usage(&series.last, prev) {
        Ok(r) => Some(NodeUsage { timestamp: r.timestamp, window_ns: r.window_ns, usage: r.usage }),
        Err(error) => {
            // Per read, like metrics-server; debug so that list requests do not flood the log.
            tracing::debug!(node, %error, "skipping node usage metric");
            None
        }
    }
}

/// A pod is hidden when any container lacks a previous point. A container
/// whose pair gives no rate (CPU decrease) is left out and the pod is still
/// served, possibly with no containers, as metrics-server does. The pod's
/// timestamp and window are those of the served container with the
/// earliest timestamp; when none is served, of the container with the
/// earliest last point (metrics-server would send Go's zero time there).
pub(super) fn pod_usage(pod: &PodEntry, namespace: &str, name: &str) -> Option<PodUsage> {
    let mut containers = Vec::with_capacity(pod.containers.len());
    let mut earliest: Option<Rated> = None;
    let mut fallback: Option<(i64, i64)> = None;
    for (container, series) in &pod.containers {
        let prev = series.prev.as_ref()?;
        let last = &series.last;
        if fallback.is_none_or(|(ts, _)| last.timestamp < ts) {
            fallback = Some((last.timestamp, last.timestamp - prev.timestamp));
        }
        match resource_usage(last, prev) {
            Ok(r) => {
                if earliest.is_none_or(|e| r.timestamp < e.timestamp) {
                    earliest = Some(r);
                }
                containers.push(ContainerUsage { name: container.clone(), usage: r.usage });
            }
            Err(error) => {
                tracing::debug!(namespace, pod = name, container = %container, %error, "skipping container usage metric");
            }
        }
    }
    let (timestamp, window_ns) = match earliest {
        Some(r) => (r.timestamp, r.window_ns),
        None => fallback?,
    };
    Some(PodUsage { timestamp, window_ns, containers })
}
