//! What a client of the survivors sees during a trial: every survivor's
//! node list polled every 200 ms (directly, with an admin certificate),
//! recording the oldest served sample, answers lacking a node, and failed
//! requests. It only watches; the trial decides what the figures mean.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tls::pki::CertPair;
use tokio_util::sync::CancellationToken;

/// How often each survivor is asked.
pub const POLL: Duration = Duration::from_millis(200);

/// Node names and sample ages of one node-list answer, or why there was none.
pub async fn node_list(addr: SocketAddr, admin: &CertPair) -> Result<Vec<(String, Duration)>, String> {
    node_answer(addr, admin).await.map(|(list, _)| list)
}

/// Like [`node_list`], with the answer's `Warning` texts (a partial answer says so).
async fn node_answer(addr: SocketAddr, admin: &CertPair) -> Result<(Vec<(String, Duration)>, Vec<String>), String> {
    let answer = sim::answer::fetch(addr, sim::answer::NODES, admin, Duration::from_secs(5)).await?;
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    let now = SystemTime::now();
    let list = answer.items.iter().map(|i| (i.key.clone(), i.age(now))).collect();
    Ok((list, answer.warnings))
}

/// What the observer saw over a trial.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Seen {
    /// Node-list answers received (status 200).
    pub answers: usize,
    /// Answers lacking at least one node.
    pub missing_answers: usize,
    /// The first such answer: which replica, which nodes.
    pub example_missing: Option<(usize, Vec<String>)>,
    /// Answers lacking a node that carried no `Warning` (a silent hole).
    pub missing_without_warning: usize,
    /// The first warning of an answer lacking a node.
    pub example_warning: Option<String>,
    /// When each such answer arrived.
    #[serde(skip)]
    pub missing_at: Vec<SystemTime>,
    /// Requests that failed (no connection, timeout, non-200).
    pub errors: usize,
    /// The oldest sample served in any answer, in seconds.
    pub max_age_s: f64,
}

/// A running observer; [`Observer::stop`] returns what it saw.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Observer {
    /// Polls each of `replicas` (index, API address) for the nodes `want`.
    pub fn start(replicas: Vec<(usize, SocketAddr)>, want: BTreeSet<String>, admin: &CertPair) -> Observer {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = CancellationToken::new();
        let tasks = replicas
            .into_iter()
            .map(|(i, addr)| {
                let (seen, stop, admin, want) = (seen.clone(), stop.clone(), admin.clone(), want.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(POLL);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tick.tick() => {}
                        }
                        let answer = node_answer(addr, &admin).await;
                        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                        match answer {
                            Err(_) => s.errors += 1,
                            Ok((list, warnings)) => {
                                s.answers += 1;
                                let got: BTreeSet<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
                                let lacking: Vec<String> =
                                    want.iter().filter(|n| !got.contains(n.as_str())).cloned().collect();
                                if !lacking.is_empty() {
                                    s.missing_answers += 1;
                                    s.missing_at.push(SystemTime::now());
                                    match warnings.first() {
                                        Some(w) => _ = s.example_warning.get_or_insert_with(|| w.clone()),
                                        None => s.missing_without_warning += 1,
                                    }
                                    s.example_missing.get_or_insert((i, lacking));
                                }
                                let oldest = list.iter().map(|(_, a)| a.as_secs_f64()).fold(0.0, f64::max);
                                s.max_age_s = s.max_age_s.max(oldest);
                            }
                        }
                    }
                })
            })
            .collect();
        Observer { seen, stop, tasks }
    }

    /// Stops polling and returns what was seen.
    pub async fn stop(self) -> Seen {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
