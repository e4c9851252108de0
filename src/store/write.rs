//! Write side: merging one node's scrape into the store, failed scrapes,
//! forgetting nodes, and the counters behind `metrics_server_storage_points`
//! and readiness.

use super::series::{next_container, next_node};
use super::{Inner, NodeEntry, PodEntry, Store};
use crate::model::UnixNanos;
use crate::scrape::parse::NodeBatch;
use std::collections::HashMap;

impl Inner {
    fn insert_pod(&mut self, namespace: String, name: String, pod: PodEntry) {
        let points = pod.points();
        self.container_points += points;
        self.pod_points += usize::from(points > 0);
        self.pods.entry(namespace).or_default().insert(name, pod);
    }

    fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<PodEntry> {
        let in_ns = self.pods.get_mut(namespace)?;
        let pod = in_ns.remove(name)?;
        if in_ns.is_empty() {
            self.pods.remove(namespace);
        }
        let points = pod.points();
        self.container_points -= points;
        self.pod_points -= usize::from(points > 0);
        Some(pod)
    }

    fn insert_node(&mut self, node: String, entry: NodeEntry) {
        self.node_points += usize::from(entry.series.is_some_and(|s| s.prev.is_some()));
        if entry.failed {
            self.failed.insert(node.clone());
        } else {
            self.failed.remove(&node);
        }
        self.nodes.insert(node, entry);
    }

    /// Removes the node's entry (not its pods) and returns it.
    fn take_node(&mut self, node: &str) -> Option<NodeEntry> {
        let entry = self.nodes.remove(node)?;
        self.node_points -= usize::from(entry.series.is_some_and(|s| s.prev.is_some()));
        self.failed.remove(node);
        Some(entry)
    }

    /// Removes the node and every pod it reported last.
    fn remove_node(&mut self, node: &str) -> bool {
        let Some(entry) = self.take_node(node) else {
            return false;
        };
        for (ns, name) in &entry.pods {
            if self.pods.get(ns).and_then(|m| m.get(name)).is_some_and(|p| p.node == node) {
                self.remove_pod(ns, name);
            }
        }
        true
    }
}

impl Store {
    /// Merges one successful scrape of `node` taken around `now`: the node's
    /// previous entry is replaced, pods it no longer reports are forgotten,
    /// and a pod last reported by another node moves here.
    pub fn store_scrape(&self, node: &str, batch: NodeBatch, now: UnixNanos) {
        let mut inner = self.write_lock();
        let expired = self.expire(&mut inner, now);
        let old = inner.take_node(node);
        // This node's pods of the previous scrape, to draw prev points from.
        let mut old_pods: HashMap<(String, String), PodEntry> = HashMap::new();
        if let Some(old) = &old {
            for (ns, name) in &old.pods {
                let ours = inner.pods.get(ns).and_then(|m| m.get(name)).is_some_and(|p| p.node == node);
                if ours && let Some(p) = inner.remove_pod(ns, name) {
                    old_pods.insert((ns.clone(), name.clone()), p);
                }
            }
        }

        let series = batch.node.map(|p| next_node(old.as_ref().and_then(|o| o.series.as_ref()), p));
        let mut newest = series.map(|s| s.last.timestamp);
        let mut keys = Vec::with_capacity(batch.pods.len());
        for pod in batch.pods {
            let key = (pod.namespace, pod.name);
            let old_pod = match old_pods.remove(&key) {
                Some(p) => Some(p),
                None => match inner.pods.get(&key.0).and_then(|m| m.get(&key.1)) {
                    // Reported twice in one batch: the first report wins, as in metrics-server.
                    Some(p) if p.node == node => continue,
                    Some(_) => self.move_pod(&mut inner, &key.0, &key.1, node),
                    None => None,
                },
            };
            let containers = pod
                .containers
                .into_iter()
                .map(|c| {
                    newest = newest.max(Some(c.point.timestamp));
                    let old = old_pod.as_ref().and_then(|o| {
                        o.containers.binary_search_by(|(n, _)| n.as_str().cmp(&c.name)).ok().map(|i| &o.containers[i].1)
                    });
                    let s = next_container(old, c.point, self.resolution_ns);
                    (c.name, s)
                })
                .collect();
            inner.insert_pod(key.0.clone(), key.1.clone(), PodEntry { node: node.to_string(), containers });
            keys.push(key);
        }
        inner.insert_node(node.to_string(), NodeEntry { series, pods: keys, newest, failed: false });
        self.publish(&inner);
        drop(inner);
        self.set_sample_age(node, newest, now);
        for gone in expired {
            self.set_sample_age(&gone, None, now);
        }
    }

    /// Takes a pod away from the node that reported it before, returning it
    /// so its points can serve as prev (the pod key is the same object to
    /// metrics-server, whichever node reports it).
    fn move_pod(&self, inner: &mut Inner, namespace: &str, name: &str, to: &str) -> Option<PodEntry> {
        let pod = inner.remove_pod(namespace, name)?;
        if let Some(from) = inner.nodes.get_mut(&pod.node) {
            from.pods.retain(|(ns, n)| !(ns == namespace && n == name));
        }
        tracing::debug!(namespace, pod = name, from = %pod.node, to, "pod now reported by another node");
        Some(pod)
    }

    /// Records that scraping `node` failed at `now`. With `max_staleness` 0
    /// the node and its pods are removed at once (reference behaviour);
    /// otherwise they stay servable until their newest sample is older than
    /// `resolution + max_staleness`.
    pub fn scrape_failed(&self, node: &str, now: UnixNanos) {
        let mut inner = self.write_lock();
        let mut expired = self.expire(&mut inner, now);
        let mut newest = None;
        if self.max_staleness_ns == 0 {
            inner.remove_node(node);
        } else if let Some(mut entry) = inner.take_node(node) {
            entry.failed = true;
            newest = entry.newest;
            inner.insert_node(node.to_string(), entry);
            expired.extend(self.expire(&mut inner, now));
            if !inner.nodes.contains_key(node) {
                newest = None;
            }
        }
        self.publish(&inner);
        drop(inner);
        self.set_sample_age(node, newest, now);
        for gone in expired {
            self.set_sample_age(&gone, None, now);
        }
    }

    /// Drops everything held for `node` (deleted, or now owned by another
    /// replica), including its `node_sample_age` series. The scraper's own
    /// per-node series are the scraper's to drop (`SelfMetrics::forget_node`).
    pub fn forget_node(&self, node: &str) {
        let mut inner = self.write_lock();
        inner.remove_node(node);
        self.publish(&inner);
        drop(inner);
        self.set_sample_age(node, None, 0);
    }

    /// Removes failed nodes whose newest sample is beyond the staleness
    /// bound; returns their names.
    fn expire(&self, inner: &mut Inner, now: UnixNanos) -> Vec<String> {
        let bound = self.stale_bound();
        let gone: Vec<String> = inner
            .failed
            .iter()
            .filter(|n| inner.nodes.get(*n).is_none_or(|e| e.newest.is_none_or(|t| now.saturating_sub(t) > bound)))
            .cloned()
            .collect();
        for node in &gone {
            tracing::info!(node = %node, "dropping stale metrics of a node whose scrapes fail");
            inner.remove_node(node);
            inner.failed.remove(node);
        }
        gone
    }
}
