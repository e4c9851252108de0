//! The observer: polls every replica directly (nodes every 500 ms, pods
//! every 2 s, as a client would, and only while `/readyz` says a load
//! balancer would send it traffic), the same lists through the stand-in
//! apiserver's aggregation proxy, every simulated HPA's request
//! (`namespaces/<ns>/pods?labelSelector=…`, every 2 s, from each replica
//! and through the proxy as the HPA sends it), and every replica's cluster view; it
//! records each answer as data ([`crate::record`]). It judges nothing: the
//! invariants do, afterwards.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tls::pki::CertPair;
use tokio_util::sync::CancellationToken;

use crate::peerview::PeerViews;
use crate::record::{Answer, HpaAnswer, Item, Kind, Source, View, now_ms};

const NODES_PATH: &str = sim::answer::NODES;
const PODS_PATH: &str = sim::answer::PODS;

/// Where to poll.
#[derive(Clone)]
pub struct Targets {
    /// (replica index, API address, peer address).
    pub replicas: Vec<(usize, SocketAddr, SocketAddr)>,
    /// The stand-in apiserver, when polling through the aggregation proxy.
    pub apiserver: Option<SocketAddr>,
    pub admin: CertPair,
    pub views: Option<PeerViews>,
    /// The simulated HPAs: name and request path.
    pub hpas: Vec<(String, String)>,
}

#[derive(Default)]
struct Shared {
    answers: Vec<Answer>,
    hpa_answers: Vec<HpaAnswer>,
    views: Vec<View>,
    epoch: BTreeMap<usize, u64>,
}

/// A running observer.
pub struct Observer {
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the observer recorded.
pub struct Observed {
    pub answers: Vec<Answer>,
    pub hpa_answers: Vec<HpaAnswer>,
    pub views: Vec<View>,
}

impl Observer {
    pub fn start(t: Targets) -> Observer {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let lists =
            [(Kind::Nodes, NODES_PATH, Duration::from_millis(500)), (Kind::Pods, PODS_PATH, Duration::from_secs(2))];
        for &(i, api, peer) in &t.replicas {
            for (kind, path, every) in lists {
                let (shared, stop, admin) = (shared.clone(), stop.clone(), t.admin.clone());
                tasks.push(tokio::spawn(every_tick(every, stop, async move || {
                    let ready = sim::client::fetch(api, "/readyz", None, &[]);
                    if !tokio::time::timeout(Duration::from_secs(2), ready)
                        .await
                        .is_ok_and(|r| r.is_ok_and(|r| r.status == 200))
                    {
                        return;
                    }
                    let epoch = shared.lock().unwrap_or_else(|p| p.into_inner()).epoch.get(&i).copied();
                    let a = ask(api, path, &admin, Source::Replica(i), kind, epoch).await;
                    shared.lock().unwrap_or_else(|p| p.into_inner()).answers.push(a);
                })));
            }
            for (name, path) in t.hpas.clone() {
                let (shared, stop, admin) = (shared.clone(), stop.clone(), t.admin.clone());
                tasks.push(tokio::spawn(every_tick(Duration::from_secs(2), stop, async move || {
                    let ready = sim::client::fetch(api, "/readyz", None, &[]);
                    if !tokio::time::timeout(Duration::from_secs(2), ready)
                        .await
                        .is_ok_and(|r| r.is_ok_and(|r| r.status == 200))
                    {
                        return;
                    }
                    let a = ask_hpa(api, &path, &admin, Source::Replica(i), &name).await;
                    shared.lock().unwrap_or_else(|p| p.into_inner()).hpa_answers.push(a);
                })));
            }
            if let Some(views) = t.views.clone() {
                let (shared, stop) = (shared.clone(), stop.clone());
                tasks.push(tokio::spawn(every_tick(Duration::from_millis(500), stop, async move || {
                    if let Some(v) = views.fetch(i, peer, now_ms()).await {
                        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                        s.epoch.insert(i, v.ring_epoch);
                        s.views.push(v);
                    }
                })));
            }
        }
        if let Some(apiserver) = t.apiserver {
            for (kind, path, every) in lists {
                let (shared, stop, admin) = (shared.clone(), stop.clone(), t.admin.clone());
                tasks.push(tokio::spawn(every_tick(every, stop, async move || {
                    let a = ask(apiserver, path, &admin, Source::Proxy, kind, None).await;
                    shared.lock().unwrap_or_else(|p| p.into_inner()).answers.push(a);
                })));
            }
            for (name, path) in t.hpas.clone() {
                let (shared, stop, admin) = (shared.clone(), stop.clone(), t.admin.clone());
                tasks.push(tokio::spawn(every_tick(Duration::from_secs(2), stop, async move || {
                    let a = ask_hpa(apiserver, &path, &admin, Source::Proxy, &name).await;
                    shared.lock().unwrap_or_else(|p| p.into_inner()).hpa_answers.push(a);
                })));
            }
        }
        Observer { shared, stop, tasks }
    }

    /// Stops polling and hands back what was recorded, in time order.
    pub async fn stop(self) -> Observed {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut answers = std::mem::take(&mut s.answers);
        answers.sort_by_key(|a| a.at_ms);
        let mut views = std::mem::take(&mut s.views);
        views.sort_by_key(|v| v.at_ms);
        let mut hpa_answers = std::mem::take(&mut s.hpa_answers);
        hpa_answers.sort_by_key(|a| a.at_ms);
        Observed { answers, hpa_answers, views }
    }
}

async fn every_tick(every: Duration, stop: CancellationToken, mut f: impl AsyncFnMut()) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = f() => {}
        }
    }
}

async fn ask(addr: SocketAddr, path: &str, admin: &CertPair, source: Source, kind: Kind, epoch: Option<u64>) -> Answer {
    let r = sim::answer::fetch(addr, path, admin, Duration::from_secs(5)).await;
    let at_ms = now_ms();
    match r {
        Ok(a) => Answer {
            at_ms,
            source,
            kind,
            status: Some(a.status),
            warnings: a.warnings,
            epoch,
            items: a.items.into_iter().map(item).collect(),
        },
        Err(_) => Answer { at_ms, source, kind, status: None, warnings: Vec::new(), epoch, items: Vec::new() },
    }
}

async fn ask_hpa(addr: SocketAddr, path: &str, admin: &CertPair, source: Source, hpa: &str) -> HpaAnswer {
    let r = tokio::time::timeout(Duration::from_secs(5), sim::client::fetch(addr, path, Some(admin), &[])).await;
    let at_ms = now_ms();
    let (status, pods) = match r {
        Ok(Ok(reply)) if reply.status == 200 => (Some(200), crate::hpa::served_pods(&reply.body)),
        Ok(Ok(reply)) => (Some(reply.status), Vec::new()),
        _ => (None, Vec::new()),
    };
    HpaAnswer { at_ms, source, hpa: hpa.to_string(), status, pods }
}

/// The items of a NodeMetricsList or PodMetricsList (pods summed over
/// containers), read by [`sim::answer`].
pub fn parse_items(body: &str) -> Vec<Item> {
    sim::answer::items_of(body).into_iter().map(item).collect()
}

fn item(i: sim::answer::Item) -> Item {
    Item {
        ts_ms: i.timestamp.map_or(0, |ns| (ns.max(0) / 1_000_000) as u64),
        key: i.key,
        cpu_nanocores: i.cpu_nanocores,
        memory_bytes: i.memory_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_pod_lists_become_items_with_summed_containers() {
        let nodes = r#"{"items":[{"metadata":{"name":"node-0"},"timestamp":"2026-01-01T00:00:01Z","window":"2s",
            "usage":{"cpu":"250m","memory":"4Ki"}}]}"#;
        let n = parse_items(nodes);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].key, "node-0");
        assert_eq!(n[0].cpu_nanocores, 250_000_000.0);
        assert_eq!(n[0].memory_bytes, 4096.0);
        assert_eq!(n[0].ts_ms % 1000, 0);
        let pods = r#"{"items":[{"metadata":{"name":"p","namespace":"ns"},"timestamp":"2026-01-01T00:00:01Z",
            "containers":[{"name":"a","usage":{"cpu":"1m","memory":"1Mi"}},{"name":"b","usage":{"cpu":"2m","memory":"1Mi"}}]}]}"#;
        let p = parse_items(pods);
        assert_eq!(p[0].key, "ns/p");
        assert_eq!(p[0].cpu_nanocores, 3_000_000.0);
        assert_eq!(p[0].memory_bytes, 2.0 * 1048576.0);
        assert!(parse_items("not json").is_empty());
    }
}
