//! Judging the kubelets' scrape log: who scraped which node, exactly-once
//! over a window (each node by one scraper, once per resolution, never
//! twice within half of one), the first re-scrape of a node after a moment,
//! and the scrapes beyond one per resolution. The end-to-end tests, the
//! benchmarks and the chaos invariants all count through here, over
//! whatever identifies a scraper to them (a source address, a replica index).
//!
//! Pure functions over [`Scrape`]s; reading the log is
//! [`KubeletFleet::scrapes_since`](crate::kubelet::KubeletFleet::scrapes_since).
//! Must not: decide what a caller's bound is (the caller picks the
//! [`Count`] rule and the window).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::kubelet::ScrapeRecord;

/// One scrape that reached a kubelet: which node, when (Unix ms), by whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scrape<'a, W> {
    pub node: &'a str,
    pub at_ms: u64,
    pub by: W,
}

/// The scrapes of `log` that reached a kubelet, by source address.
pub fn reached(log: &[ScrapeRecord]) -> impl Iterator<Item = Scrape<'_, Option<IpAddr>>> {
    log.iter().filter(|s| s.outcome.reached_kubelet()).map(|s| Scrape {
        node: s.node.as_ref(),
        at_ms: s.at_ms,
        by: s.client,
    })
}

/// Unix milliseconds of `t` (the log's unit).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Each node's scrapes in `[from_ms, to_ms)`, in log order: (when, by whom).
pub fn by_node<'a, W>(
    scrapes: impl IntoIterator<Item = Scrape<'a, W>>,
    from_ms: u64,
    to_ms: u64,
) -> BTreeMap<&'a str, Vec<(u64, W)>> {
    let mut out: BTreeMap<&str, Vec<(u64, W)>> = BTreeMap::new();
    for s in scrapes.into_iter().filter(|s| s.at_ms >= from_ms && s.at_ms < to_ms) {
        out.entry(s.node).or_default().push((s.at_ms, s.by));
    }
    out
}

/// The window exactly-once is judged over: `[from_ms, to_ms)` at `resolution_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: u64,
    pub to_ms: u64,
    pub resolution_ms: u64,
}

impl Window {
    /// The whole resolutions the window spans.
    pub fn periods(&self) -> u64 {
        self.to_ms.saturating_sub(self.from_ms) / self.resolution_ms.max(1)
    }
}

/// How many scrapes of a node a window of `k` resolutions may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `k - 1 ..= k + 1`: the scraper's phase may put one scrape more or
    /// less inside the window.
    WithinOne,
    /// Exactly `k`, unless one of the node's scrapes lies within `edge_ms`
    /// of either end of the window (then `k - 1 ..= k + 1`).
    Exact { edge_ms: u64 },
}

/// What [`exactly_once`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<W> {
    /// Who scraped each judged node in the window (empty: nobody).
    pub scrapers: BTreeMap<String, BTreeSet<W>>,
    /// What broke exactly-once, one sentence per finding.
    pub violations: Vec<String>,
}

/// Judges exactly-once over `w` for each of `nodes`: a node scraped by
/// more than one scraper, a count outside `count`'s allowance, or two
/// scrapes less than half a resolution apart is a violation.
pub fn exactly_once<'a, W: Ord + Clone + Debug>(
    scrapes: impl IntoIterator<Item = Scrape<'a, W>>,
    nodes: impl IntoIterator<Item = &'a str>,
    w: Window,
    count: Count,
) -> Verdict<W> {
    let r = w.resolution_ms.max(1);
    let k = w.periods();
    let seen = by_node(scrapes, w.from_ms, w.to_ms);
    let mut v = Verdict { scrapers: BTreeMap::new(), violations: Vec::new() };
    for node in nodes {
        let times = seen.get(node).map(Vec::as_slice).unwrap_or(&[]);
        let who: BTreeSet<W> = times.iter().map(|(_, by)| by.clone()).collect();
        if who.len() > 1 {
            v.violations.push(format!("{node} scraped by {who:?}"));
        }
        let n = times.len() as u64;
        let near_edge = |edge: u64| times.iter().any(|(t, _)| t - w.from_ms < edge || w.to_ms - t < edge);
        let loose = n + 1 >= k && n <= k + 1;
        let allowed = match count {
            Count::WithinOne => loose,
            Count::Exact { edge_ms } => n == k || (loose && near_edge(edge_ms)),
        };
        if !allowed {
            v.violations.push(format!("{node}: {n} scrapes in {k} resolutions"));
        }
        if let Some(pair) = times.windows(2).find(|p| p[1].0.saturating_sub(p[0].0) < r / 2) {
            v.violations.push(format!("{node} scraped twice within {} ms", pair[1].0.saturating_sub(pair[0].0)));
        }
        v.scrapers.insert(node.to_string(), who);
    }
    v
}

/// The first scrape at or after `since_ms` of each of `nodes` by anyone but
/// `except` (when a replica's nodes were taken over: by a new owner).
pub fn first_after<'a, W: PartialEq>(
    scrapes: impl IntoIterator<Item = Scrape<'a, W>>,
    nodes: &BTreeSet<String>,
    since_ms: u64,
    except: &W,
) -> BTreeMap<String, u64> {
    let mut first = BTreeMap::new();
    for s in scrapes {
        if s.at_ms >= since_ms && s.by != *except && nodes.contains(s.node) {
            first.entry(s.node.to_string()).or_insert(s.at_ms);
        }
    }
    first
}

/// The last scraper of each node in the log (its owner, once every node
/// has been scraped since the ring last changed).
pub fn last_scraper<'a, W>(scrapes: impl IntoIterator<Item = Scrape<'a, W>>) -> BTreeMap<String, W> {
    scrapes.into_iter().map(|s| (s.node.to_string(), s.by)).collect()
}

/// Scrapes of each node in `[from_ms, to_ms)` beyond one per started
/// resolution plus one (the allowance for a phase shift); only nodes with
/// extra scrapes are listed.
pub fn extra<'a, W>(
    scrapes: impl IntoIterator<Item = Scrape<'a, W>>,
    from_ms: u64,
    to_ms: u64,
    resolution_ms: u64,
) -> BTreeMap<&'a str, u64> {
    let allowed = to_ms.saturating_sub(from_ms).div_ceil(resolution_ms.max(1)) + 1;
    by_node(scrapes, from_ms, to_ms)
        .into_iter()
        .map(|(node, times)| (node, (times.len() as u64).saturating_sub(allowed)))
        .filter(|(_, e)| *e > 0)
        .collect()
}

/// Of each node's scrapes, how many came less than half a resolution after
/// the previous one (by anyone): the duplicates a handover may cause.
pub fn too_close<'a, W>(
    scrapes: impl IntoIterator<Item = Scrape<'a, W>>,
    from_ms: u64,
    to_ms: u64,
    resolution_ms: u64,
) -> BTreeMap<&'a str, u64> {
    by_node(scrapes, from_ms, to_ms)
        .into_iter()
        .map(|(node, times)| {
            let close = times.windows(2).filter(|p| p[1].0.saturating_sub(p[0].0) < resolution_ms / 2).count();
            (node, close as u64)
        })
        .collect()
}

#[cfg(test)]
mod tests;
