//! Write side: merging one node's scrape into the store, failed scrapes,
//! forgetting nodes, and the counters behind `metrics_server_storage_points`
//! and readiness.

use super::clock;
use super::series::{Series, next_containers, next_node};
use super::{Held, Inner, NodeEntry, Origin, PodEntry, Store};
use crate::model::UnixNanos;
use crate::model::{ContainerPoint, NodeBatch, PodPoints, Point};

impl Inner {
    pub(super) fn insert_pod(&mut self, namespace: String, name: String, pod: PodEntry) {
        let points = pod.points();
        let c = &mut self.counts[pod.held.index()];
        c.container_points += points;
        c.pod_points += usize::from(points > 0);
        self.pods.entry(namespace).or_default().insert(name, pod);
    }

    pub(super) fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<PodEntry> {
        let in_ns = self.pods.get_mut(namespace)?;
        let pod = in_ns.remove(name)?;
        if in_ns.is_empty() {
            self.pods.remove(namespace);
        }
        let points = pod.points();
        let c = &mut self.counts[pod.held.index()];
        c.container_points -= points;
        c.pod_points -= usize::from(points > 0);
        Some(pod)
    }

    pub(super) fn insert_node(&mut self, node: String, entry: NodeEntry) {
        let c = &mut self.counts[entry.held.index()];
        c.nodes += 1;
        c.node_points += usize::from(entry.series.is_some_and(|s| s.prev.is_some()));
        if entry.failed {
            self.failed.insert(node.clone());
        } else {
            self.failed.remove(&node);
        }
        self.nodes.insert(node, entry);
    }

    /// Moves one pod's counts from what it held (`(held, points)`) to what it holds.
    fn recount_pod(&mut self, (was, was_points): (Held, usize), (is, is_points): (Held, usize)) {
        let c = &mut self.counts[was.index()];
        c.container_points -= was_points;
        c.pod_points -= usize::from(was_points > 0);
        let c = &mut self.counts[is.index()];
        c.container_points += is_points;
        c.pod_points += usize::from(is_points > 0);
    }

    /// Writes `entry` over the node's entry, keeping the map's key (as
    /// [`Inner::take_node`] then [`Inner::insert_node`] would, without
    /// either's allocation), or inserts it.
    fn put_node(&mut self, node: &str, entry: NodeEntry) {
        let Some(slot) = self.nodes.get_mut(node) else {
            self.insert_node(node.to_string(), entry);
            return;
        };
        let has_prev = |e: &NodeEntry| usize::from(e.series.is_some_and(|s| s.prev.is_some()));
        let c = &mut self.counts[slot.held.index()];
        c.nodes -= 1;
        c.node_points -= has_prev(slot);
        let c = &mut self.counts[entry.held.index()];
        c.nodes += 1;
        c.node_points += has_prev(&entry);
        if entry.failed {
            self.failed.insert(node.to_string());
        } else {
            self.failed.remove(node);
        }
        *slot = entry;
    }

    /// Removes the node's entry (not its pods) and returns it.
    pub(super) fn take_node(&mut self, node: &str) -> Option<NodeEntry> {
        let entry = self.nodes.remove(node)?;
        let c = &mut self.counts[entry.held.index()];
        c.nodes -= 1;
        c.node_points -= usize::from(entry.series.is_some_and(|s| s.prev.is_some()));
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
    /// previous entry is replaced (its points, scraped here or a copy, become
    /// the previous points), pods it no longer reports are forgotten, and a
    /// pod last reported by another node moves here. The node is
    /// [`Held::Owned`] from now on.
    pub fn store_scrape(&self, node: &str, batch: NodeBatch, now: UnixNanos) {
        self.merge(node, batch, now, Held::Owned, Origin::Scraped);
    }

    /// The merge behind [`Store::store_scrape`] and [`Store::store_replica`].
    /// What the node reported before is updated in place: a pod reported
    /// again keeps its entry (names, container list) and only its series
    /// move on, and only the pods the node no longer reports are removed;
    /// the result is what rebuilding every pod from the batch would give.
    pub(super) fn merge(&self, node: &str, batch: NodeBatch, now: UnixNanos, held: Held, origin: Origin) {
        let mut guard = self.write_lock();
        let expired = self.expire(&mut guard, now);
        let inner = &mut *guard;
        inner.merges += 1;
        let this = inner.merges;
        // The node's entry stays in the map until the new one is written
        // over it; its pod list is rewritten where it is.
        let (old_series, mut keys) = match inner.nodes.get_mut(node) {
            Some(e) => (e.series, std::mem::take(&mut e.pods)),
            None => (None, Vec::new()),
        };
        let series = batch.node.map(|p| next_node(old_series.as_ref(), p));
        let mut newest = series.map(|s| s.last.timestamp);
        // Keys of the previous scrape that the new list does not repeat at
        // the same position: the pods among them not reported now are left.
        let mut displaced = Vec::new();
        let mut listed = 0;
        for PodPoints { namespace, name, containers } in batch.pods {
            match inner.pods.get_mut(&namespace).and_then(|m| m.get_mut(&name)) {
                // Reported twice in one batch: the first report wins, as in metrics-server.
                Some(p) if p.node == node && p.merged == this => continue,
                // Reported by this node before (every pod that names a node
                // is on that node's list): its entry is updated where it is.
                Some(p) if p.node == node => {
                    let was = (p.held, p.points());
                    (p.held, p.merged) = (held, this);
                    newest = newest.max(next_containers(&mut p.containers, containers, self.resolution_ns));
                    let is = (p.held, p.points());
                    inner.recount_pod(was, is);
                }
                found => {
                    let moved = match found {
                        Some(_) => self.move_pod(inner, &namespace, &name, node),
                        None => None,
                    };
                    // A pod new here starts empty; one moved here brings its series.
                    let mut p = moved.unwrap_or_else(|| PodEntry {
                        node: String::new(),
                        held,
                        merged: this,
                        containers: Vec::new(),
                    });
                    node.clone_into(&mut p.node);
                    (p.held, p.merged) = (held, this);
                    newest = newest.max(next_containers(&mut p.containers, containers, self.resolution_ns));
                    inner.insert_pod(namespace.clone(), name.clone(), p);
                }
            }
            match keys.get_mut(listed) {
                Some(k) if k.0 == namespace && k.1 == name => {}
                Some(k) => displaced.push(std::mem::replace(k, (namespace, name))),
                None => keys.push((namespace, name)),
            }
            listed += 1;
        }
        displaced.extend(keys.drain(listed..));
        for (ns, name) in &displaced {
            let left = inner.pods.get(ns).and_then(|m| m.get(name)).is_some_and(|p| p.node == node && p.merged != this);
            if left {
                inner.remove_pod(ns, name);
            }
        }
        inner.put_node(node, NodeEntry { held, series, pods: keys, newest, failed: false, received: now, origin });
        self.publish(inner);
        drop(guard);
        if held == Held::Owned {
            self.set_sample_age(node, newest, now);
        }
        for gone in expired {
            self.set_sample_age(&gone, None, now);
        }
    }

    /// Takes a pod away from the node that reported it before, returning it
    /// so its points can serve as prev (the pod key is the same object to
    /// metrics-server, whichever node reports it).
    pub(super) fn move_pod(&self, inner: &mut Inner, namespace: &str, name: &str, to: &str) -> Option<PodEntry> {
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
    pub(super) fn expire(&self, inner: &mut Inner, now: UnixNanos) -> Vec<String> {
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

impl Store {
    /// Merges points another replica sent (a copy, a handover, or points
    /// pulled before taking a node over): as a scrape, except that a batch no
    /// newer than what is held never replaces a newer point; it only
    /// supplies previous points the held series lack ([`Store::backfill`]). A node not held yet is held as `held`; one already held
    /// keeps its role. A batch with a sample from the future is refused and
    /// counted; points held here from the future are dropped instead of
    /// blocking a true batch (one kubelet clock jump must not hold a node's
    /// copies for as long as the jump was). `from` is who sent it. Returns
    /// whether it was taken.
    pub fn store_replica(&self, node: &str, batch: NodeBatch, now: UnixNanos, held: Held, from: Origin) -> bool {
        let future = clock::future_samples(&batch, now);
        if future.samples > 0 {
            self.metrics.future_samples.get_or_create(&vec![("node", node.to_string())]).inc_by(future.samples);
            tracing::debug!(
                node,
                samples = future.samples,
                ahead_ms = future.ahead_ns / 1_000_000,
                "refusing replicated points from the future"
            );
            return false;
        }
        let Some(newest) = batch_newest(&batch) else { return false };
        let (current, role) = {
            let inner = self.read_lock();
            let e = inner.nodes.get(node);
            (e.and_then(|e| e.newest), e.map_or(held, |e| e.held))
        };
        match current {
            Some(h) if clock::from_future(h, now) => self.drop_node(node),
            Some(h) if newest <= h => return self.backfill(node, &batch),
            _ => {}
        }
        self.merge(node, batch, now, role, from);
        true
    }

    /// Merges a node's last two points as their sender holds them, sent
    /// together (each copy after a scrape, a seed, a handover, a pull). When
    /// the newer is newer than what is held, every series it updates takes
    /// the sender's previous point as its own where the sender has one
    /// ([`Store::adopt_prev`]): a holder that missed a copy, or scraped the
    /// node itself while cut off, then serves exactly the owner's rate, not
    /// one over its own older point. From the node's owner on the ring
    /// (`from_owner`), a pair whose newer point is the one held (this
    /// replica scraped the same sample while it stood in, or a stand-in's
    /// copy of it arrived first) also sets the previous points: when two
    /// members scraped one sample, the owner's window is the one served.
    /// Otherwise both are merged as separate batches. Returns how many of
    /// the two were taken.
    pub fn store_replica_pair(
        &self,
        node: &str,
        (a, b): (NodeBatch, NodeBatch),
        now: UnixNanos,
        held: Held,
        (from, from_owner): (Origin, bool),
    ) -> usize {
        let (older, newer) = if batch_newest(&a) <= batch_newest(&b) { (a, b) } else { (b, a) };
        let held_newest = self.read_lock().nodes.get(node).and_then(|e| e.newest);
        let ordered = batch_newest(&older) < batch_newest(&newer);
        if ordered && from_owner && held_newest.is_some() && batch_newest(&newer) == held_newest {
            return usize::from(self.adopt_prev(node, &older));
        }
        let fresh = batch_newest(&newer).is_some_and(|t| held_newest.is_none_or(|h| t > h));
        if fresh && ordered {
            let taken = self.store_replica(node, newer, now, held, from);
            if taken {
                self.adopt_prev(node, &older);
            }
            return usize::from(taken);
        }
        // Newer first: where it only backfills, the newest older point is
        // the one a series without a previous point should take.
        usize::from(self.store_replica(node, newer, now, held, from))
            + usize::from(self.store_replica(node, older, now, held, from))
    }

    /// Sets the previous point of each held series of `node` that `older`
    /// has a point for (older than the series' last, and for a container
    /// from the same start), whatever previous point it had.
    fn adopt_prev(&self, node: &str, older: &NodeBatch) -> bool {
        self.set_prev(node, older, true)
    }

    /// Takes the points of an older batch as previous points where a held
    /// series has none yet (never over a previous point it has): a node this replica took
    /// over and scraped once before the handover (or pull) of its old
    /// owner's points landed then serves a rate at once, over the old
    /// owner's last sample and its own first, instead of one resolution
    /// later. A container's point counts only from the same start (no
    /// restart in between). Returns whether any series changed.
    fn backfill(&self, node: &str, batch: &NodeBatch) -> bool {
        self.set_prev(node, batch, false)
    }

    /// [`Store::backfill`] (`replace` false: only where no previous point is
    /// held) and [`Store::adopt_prev`] (`replace` true).
    pub(super) fn set_prev(&self, node: &str, batch: &NodeBatch, replace: bool) -> bool {
        let older = |held: &Series, p: &Point| {
            (replace || held.prev.is_none()) && p.timestamp < held.last.timestamp && held.prev != Some(*p)
        };
        let mut guard = self.write_lock();
        let inner = &mut *guard;
        // In place: only previous points change, never a key, so no entry
        // leaves its map (nor is a name cloned to put it back).
        let Some(entry) = inner.nodes.get_mut(node) else { return false };
        let mut changed = false;
        if let (Some(s), Some(p)) = (entry.series.as_mut(), batch.node.as_ref())
            && older(s, p)
        {
            if s.prev.is_none() {
                inner.counts[entry.held.index()].node_points += 1;
            }
            s.prev = Some(*p);
            changed = true;
        }
        for pod in &batch.pods {
            let Some(held) = inner.pods.get_mut(&pod.namespace).and_then(|m| m.get_mut(&pod.name)) else { continue };
            if held.node != node {
                continue;
            }
            let was = (held.held, held.points());
            let mut set = false;
            for c in &pod.containers {
                let Ok(i) = held.containers.binary_search_by(|(n, _)| n.as_str().cmp(&c.name)) else { continue };
                let s = &mut held.containers[i].1;
                if c.point.start_time == s.last.start_time && older(s, &c.point) {
                    s.prev = Some(c.point);
                    set = true;
                }
            }
            if set {
                let is = (held.held, held.points());
                inner.recount_pod(was, is);
                changed = true;
            }
        }
        if changed {
            self.publish(inner);
        }
        changed
    }

    /// Sets why `node` is held (this replica now scrapes it, or no longer
    /// does and keeps its points as a copy); false if it holds nothing.
    pub fn set_held(&self, node: &str, held: Held) -> bool {
        let mut inner = self.write_lock();
        let Some(entry) = inner.take_node(node) else { return false };
        let was = entry.held;
        let pods: Vec<(String, String)> = entry.pods.clone();
        for (ns, name) in &pods {
            if inner.pods.get(ns).and_then(|m| m.get(name)).is_some_and(|p| p.node == node)
                && let Some(mut pod) = inner.remove_pod(ns, name)
            {
                pod.held = held;
                inner.insert_pod(ns.clone(), name.clone(), pod);
            }
        }
        let newest = entry.newest;
        inner.insert_node(node.to_string(), NodeEntry { held, ..entry });
        self.publish(&inner);
        drop(inner);
        if was != held {
            self.set_sample_age(node, (held == Held::Owned).then_some(newest).flatten(), crate::model::now_nanos());
        }
        true
    }

    /// Drops `node`'s points (kept as a backup or served) without touching
    /// its per-node gauges, which the merge that follows sets again.
    fn drop_node(&self, node: &str) {
        let mut inner = self.write_lock();
        inner.remove_node(node);
        self.publish(&inner);
    }

    /// The last two points held for `node` as the batches that produce them,
    /// newest first (the last points, then the previous ones), for a
    /// handover: merging them in order into another store rebuilds the same
    /// series, and into a store that scraped the node once since, gives its
    /// one point the newest older one as previous ([`Store::backfill`]).
    pub fn export(&self, node: &str) -> Vec<NodeBatch> {
        let inner = self.read_lock();
        let Some(entry) = inner.nodes.get(node) else { return Vec::new() };
        let (mut prev, mut last) = (NodeBatch::default(), NodeBatch::default());
        if let Some(s) = &entry.series {
            last.node = Some(s.last);
            prev.node = s.prev;
        }
        for (ns, name) in &entry.pods {
            let Some(pod) = inner.pods.get(ns).and_then(|m| m.get(name)).filter(|p| p.node == node) else {
                continue;
            };
            let mut lc = Vec::with_capacity(pod.containers.len());
            let mut pc = Vec::new();
            for (cname, series) in &pod.containers {
                lc.push(ContainerPoint { name: cname.clone(), point: series.last });
                if let Some(p) = series.prev {
                    pc.push(ContainerPoint { name: cname.clone(), point: p });
                }
            }
            if !pc.is_empty() {
                prev.pods.push(PodPoints { namespace: ns.clone(), name: name.clone(), containers: pc });
            }
            last.pods.push(PodPoints { namespace: ns.clone(), name: name.clone(), containers: lc });
        }
        let mut out = Vec::with_capacity(2);
        out.push(last);
        if prev.node.is_some() || !prev.pods.is_empty() {
            out.push(prev);
        }
        out
    }

    /// Drops every node (and its pods) whose newest sample is beyond the
    /// staleness bound — a node moved away and never refreshed here, or a
    /// copy whose owner stopped sending. Without a bound
    /// (`--max-staleness=0`) nodes scraped here stay until a scrape fails
    /// (reference behaviour), and copies go after three resolutions.
    pub fn prune(&self, now: UnixNanos) -> usize {
        let bound = |held: Held| match (held, self.max_staleness_ns) {
            (Held::Owned, 0) => None,
            (Held::Copy, 0) => Some(self.resolution_ns.saturating_mul(3)),
            _ => Some(self.stale_bound()),
        };
        let mut inner = self.write_lock();
        let gone: Vec<String> = inner
            .nodes
            .iter()
            .filter(|(_, e)| bound(e.held).is_some_and(|b| e.newest.is_none_or(|t| now.saturating_sub(t) > b)))
            .map(|(n, _)| n.clone())
            .collect();
        for node in &gone {
            inner.remove_node(node);
        }
        self.publish(&inner);
        drop(inner);
        for node in &gone {
            self.set_sample_age(node, None, now);
        }
        gone.len()
    }
}

/// The newest timestamp among a batch's points.
fn batch_newest(batch: &NodeBatch) -> Option<UnixNanos> {
    let containers = batch.pods.iter().flat_map(|p| p.containers.iter().map(|c| c.point.timestamp));
    batch.node.map(|p| p.timestamp).into_iter().chain(containers).max()
}
