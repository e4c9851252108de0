//! What the live monitoring test watches while faults run, in background
//! tasks that record snapshots with their times (and judge nothing):
//! Prometheus' alerts ([`AlertWatch`]), and the gauges the alerts are about
//! straight from the replicas' own `/metrics` ([`GaugeWatch`]), so an
//! alert's delay is measured from the moment its condition held.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::observe_prometheus::PromClient;
use chaos::observe_prometheus::client::Alert;
use chaos::record::now_ms;
use tls::pki::CertPair;
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(250);

/// `(unix ms, what was seen)` per poll.
type Polls<T> = Arc<Mutex<Vec<(u64, T)>>>;

/// Snapshots of `/api/v1/alerts`.
pub struct AlertWatch {
    polls: Polls<Vec<Alert>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn matches(a: &Alert, name: &str, labels: &[(&str, &str)]) -> bool {
    a.name == name && labels.iter().all(|(k, v)| a.labels.get(*k).map(String::as_str) == Some(*v))
}

impl AlertWatch {
    pub fn start(client: PromClient) -> AlertWatch {
        let polls = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (p, s) = (polls.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            loop {
                tokio::select! {
                    _ = s.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Ok(alerts) = client.alerts().await {
                    p.lock().unwrap().push((now_ms(), alerts));
                }
            }
        });
        AlertWatch { polls, stop, task }
    }

    /// When an alert `name` with `labels` was first seen in `state` at or after `since`.
    pub fn first(&self, name: &str, labels: &[(&str, &str)], state: &str, since: u64) -> Option<u64> {
        let polls = self.polls.lock().unwrap();
        polls
            .iter()
            .filter(|(at, _)| *at >= since)
            .find(|(_, alerts)| alerts.iter().any(|a| matches(a, name, labels) && a.state == state))
            .map(|(at, _)| *at)
    }

    /// The alert as last seen firing at or after `since`.
    pub fn firing(&self, name: &str, labels: &[(&str, &str)], since: u64) -> Option<Alert> {
        let polls = self.polls.lock().unwrap();
        polls
            .iter()
            .rev()
            .filter(|(at, _)| *at >= since)
            .find_map(|(_, alerts)| alerts.iter().find(|a| matches(a, name, labels) && a.state == "firing").cloned())
    }

    /// The first poll at or after `since` without any such alert.
    pub fn gone(&self, name: &str, labels: &[(&str, &str)], since: u64) -> Option<u64> {
        let polls = self.polls.lock().unwrap();
        polls
            .iter()
            .filter(|(at, _)| *at >= since)
            .find(|(_, a)| !a.iter().any(|a| matches(a, name, labels)))
            .map(|(at, _)| *at)
    }

    /// Every alert name seen firing in `[from, to]`.
    pub fn fired_between(&self, from: u64, to: u64) -> Vec<String> {
        let polls = self.polls.lock().unwrap();
        let mut names: Vec<String> = polls
            .iter()
            .filter(|(at, _)| (from..=to).contains(at))
            .flat_map(|(_, a)| a.iter().filter(|a| a.state == "firing").map(|a| a.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Waits until `state` is seen (after `since`); panics naming `what` at the deadline.
    pub async fn wait(
        &self,
        what: &str,
        name: &str,
        labels: &[(&str, &str)],
        state: &str,
        since: u64,
        within: Duration,
    ) -> u64 {
        sim::wait::expect(what, within, async || self.first(name, labels, state, since).is_some()).await;
        self.first(name, labels, state, since).unwrap()
    }

    /// Waits until the alert is gone (after `since`).
    pub async fn wait_gone(
        &self,
        what: &str,
        name: &str,
        labels: &[(&str, &str)],
        since: u64,
        within: Duration,
    ) -> u64 {
        sim::wait::expect(what, within, async || self.gone(name, labels, since).is_some()).await;
        self.gone(name, labels, since).unwrap()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The Raft and degraded-mode gauges of one replica at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauges {
    pub members_down: f64,
    pub degraded: f64,
    pub is_leader: f64,
}

/// Reads one unlabelled or labelled gauge line's value from an exposition.
pub fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
}

/// Snapshots of the replicas' own gauges, one round over every replica per poll.
pub struct GaugeWatch {
    rounds: Polls<BTreeMap<usize, Gauges>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl GaugeWatch {
    pub fn start(replicas: Vec<(usize, SocketAddr)>, admin: CertPair) -> GaugeWatch {
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (r, s) = (rounds.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            loop {
                tokio::select! {
                    _ = s.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let mut round = BTreeMap::new();
                for &(i, addr) in &replicas {
                    let get = sim::client::try_get(addr, "/metrics", Some(&admin), &[]);
                    let Ok(Ok((200, text))) = tokio::time::timeout(Duration::from_secs(1), get).await else { continue };
                    let g = Gauges {
                        members_down: gauge(&text, "ha_metrics_server_raft_members{state=\"Down\"}").unwrap_or(0.0),
                        degraded: gauge(&text, "ha_metrics_server_degraded").unwrap_or(0.0),
                        is_leader: gauge(&text, "ha_metrics_server_raft_is_leader").unwrap_or(0.0),
                    };
                    round.insert(i, g);
                }
                r.lock().unwrap().push((now_ms(), round));
            }
        });
        GaugeWatch { rounds, stop, task }
    }

    /// The first round at or after `since` where `cond` holds over the replicas that answered.
    pub fn first(&self, since: u64, cond: impl Fn(&BTreeMap<usize, Gauges>) -> bool) -> Option<u64> {
        let rounds = self.rounds.lock().unwrap();
        rounds.iter().filter(|(at, r)| *at >= since && !r.is_empty()).find(|(_, r)| cond(r)).map(|(at, _)| *at)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
