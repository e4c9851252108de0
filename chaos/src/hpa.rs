//! What the HorizontalPodAutoscaler would decide: its replica calculation
//! for a CPU `Resource` metric (kube-controller-manager 1.32,
//! `replica_calculator.go` `GetResourceReplicas` with the metrics client's
//! per-pod reduction), replayed as a pure function, and the few simulated
//! HPAs ([`Hpa`]) the chaos run points at label-selected Deployments of the
//! simulated cluster. The rules it keeps: a pod's value is the sum of its
//! containers' `MilliValue()`, and a pod with no container or a container
//! without `cpu` is dropped (missing); an empty list stops scaling; missing
//! pods count as 100 % of their request on a scale-down and 0 % on a
//! scale-up, and a flip of direction is refused; unready pods count 0 % on a
//! scale-up; a ratio within the tolerance (0.1) keeps the current count.
//!
//! Must not: read the network or the clock, or apply the controller's
//! stabilisation window, rate limits and min/max (those act on the
//! recommendation this computes, the same way for both sides compared).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// kube-controller-manager's `--horizontal-pod-autoscaler-tolerance` default.
pub const TOLERANCE: f64 = 0.1;

/// One container of a served pod: its name and CPU in millicores
/// (`MilliValue()`: rounded up), `None` when the answer has no `cpu` for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerCpu {
    pub name: String,
    pub milli: Option<i64>,
}

/// One pod of a served `PodMetricsList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedPod {
    pub name: String,
    pub containers: Vec<ContainerCpu>,
}

/// A pod as the HPA's own pod lister sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub name: String,
    /// The pod's CPU request (summed over its containers), millicores.
    pub request_milli: i64,
    pub ready: bool,
}

/// The HPA's recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Scale to (or stay at) this many replicas.
    Replicas(i32),
    /// The calculation failed (`ScalingActive=False`): the count stays as it is.
    Stopped(String),
}

impl Decision {
    /// The replica count the workload ends up with: a stop keeps `current`.
    pub fn effective(&self, current: i32) -> i32 {
        match self {
            Decision::Replicas(n) => *n,
            Decision::Stopped(_) => current,
        }
    }
}

/// The metrics client's reduction (`getPodMetrics` for a Resource metric):
/// each pod's summed millicores; a pod with no container, or one whose
/// container lacks `cpu`, is left out.
pub fn pod_metrics(served: &[ServedPod]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for p in served {
        if p.containers.is_empty() {
            continue;
        }
        let sum: Option<i64> = p.containers.iter().map(|c| c.milli).sum();
        if let Some(v) = sum {
            out.insert(p.name.clone(), v);
        }
    }
    out
}

/// `GetResourceUtilizationRatio`: metrics of pods without a request are
/// ignored; utilisation is whole percent, truncated, as Go's int32 cast.
fn utilization_ratio(
    metrics: &BTreeMap<String, i64>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<f64, String> {
    let (mut used, mut requested) = (0i64, 0i64);
    for (pod, v) in metrics {
        if let Some(r) = requests.get(pod) {
            used += v;
            requested += r;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (used * 100 / requested) as i32;
    Ok(utilization as f64 / target as f64)
}

/// The recommendation for `current` replicas whose pods are `pods`, given
/// the per-pod metrics the API returned, a target utilisation in percent
/// and the tolerance.
pub fn recommend(
    current: i32,
    pods: &[PodInfo],
    served: &BTreeMap<String, i64>,
    target: i32,
    tolerance: f64,
) -> Decision {
    if served.is_empty() {
        return Decision::Stopped("no metrics returned from resource metrics API".into());
    }
    if pods.is_empty() {
        return Decision::Stopped("no pods returned by selector while calculating replica count".into());
    }
    let requests: BTreeMap<String, i64> = pods.iter().map(|p| (p.name.clone(), p.request_milli)).collect();
    if pods.iter().any(|p| p.request_milli <= 0) {
        return Decision::Stopped("missing request for cpu".into());
    }
    // groupPods: missing, unready, ready; metrics of pods outside the list
    // carry no request and drop out of every ratio below.
    let mut metrics: BTreeMap<String, i64> =
        served.iter().filter(|(k, _)| requests.contains_key(*k)).map(|(k, v)| (k.clone(), *v)).collect();
    let mut missing = BTreeSet::new();
    let mut unready = BTreeSet::new();
    let mut ready = 0i32;
    for p in pods {
        if !metrics.contains_key(&p.name) {
            missing.insert(p.name.clone());
        } else if !p.ready {
            unready.insert(p.name.clone());
        } else {
            ready += 1;
        }
    }
    for u in &unready {
        metrics.remove(u);
    }
    if metrics.is_empty() {
        return Decision::Stopped("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio = match utilization_ratio(&metrics, &requests, target) {
        Ok(r) => r,
        Err(e) => return Decision::Stopped(e),
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - ratio).abs() <= tolerance {
            return Decision::Replicas(current);
        }
        return Decision::Replicas((ratio * ready as f64).ceil() as i32);
    }
    if !missing.is_empty() {
        if ratio < 1.0 {
            let fallback = i64::from(target.max(100));
            for m in &missing {
                metrics.insert(m.clone(), requests[m] * fallback / 100);
            }
        } else if ratio > 1.0 {
            for m in &missing {
                metrics.insert(m.clone(), 0);
            }
        }
    }
    if scale_up_with_unready {
        for u in &unready {
            metrics.insert(u.clone(), 0);
        }
    }
    let new_ratio = match utilization_ratio(&metrics, &requests, target) {
        Ok(r) => r,
        Err(e) => return Decision::Stopped(e),
    };
    if (1.0 - new_ratio).abs() <= tolerance || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return Decision::Replicas(current);
    }
    let n = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && n > current) || (new_ratio > 1.0 && n < current) {
        return Decision::Replicas(current);
    }
    Decision::Replicas(n)
}

/// A simulated HPA on one label-selected Deployment of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hpa {
    /// `<namespace>/<deployment>`.
    pub name: String,
    pub namespace: String,
    /// The label selector, as the HPA sends it (`deployment=web-0`).
    pub selector: String,
    /// The Deployment's pods, all Running and Ready, with their requests.
    pub pods: Vec<PodInfo>,
    /// Target average CPU utilisation, percent of the request.
    pub target_utilization: i32,
    /// Each pod's true CPU, summed over containers of each one's `MilliValue()`.
    pub truth_milli: BTreeMap<String, i64>,
}

impl Hpa {
    pub fn current(&self) -> i32 {
        self.pods.len() as i32
    }

    /// The request path the HPA's metrics client sends.
    pub fn path(&self) -> String {
        format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods?labelSelector={}",
            self.namespace,
            self.selector.replace('=', "%3D")
        )
    }

    /// The decision on the true usage, with `absent` pods left out (pods no
    /// metrics server could have measured).
    pub fn truth_decision(&self, absent: &BTreeSet<String>) -> Decision {
        let m: BTreeMap<String, i64> =
            self.truth_milli.iter().filter(|(k, _)| !absent.contains(*k)).map(|(k, v)| (k.clone(), *v)).collect();
        recommend(self.current(), &self.pods, &m, self.target_utilization, TOLERANCE)
    }

    /// The decision on a served list.
    pub fn served_decision(&self, served: &[ServedPod]) -> Decision {
        recommend(self.current(), &self.pods, &pod_metrics(served), self.target_utilization, TOLERANCE)
    }
}

/// Which way an [`Hpa`] is set up to go on the true usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Hold,
    Down,
}

/// CPU request of every simulated container, millicores.
pub const REQUEST_PER_CONTAINER_MILLI: i64 = 100;

/// Picks the target utilisation for `direction`: the one whose true
/// decision goes that way and stays the same with every pod's usage 3 %
/// lower or higher (so the 2 % the correctness check allows cannot flip it
/// on its own), nearest to a usage ratio of 1.6 (up), 1.0 (hold) or 0.55
/// (down). `None` when no target from 5 % to 500 % does.
pub fn pick_target(pods: &[PodInfo], truth: &BTreeMap<String, i64>, direction: Direction) -> Option<i32> {
    let current = pods.len() as i32;
    let scaled = |f: f64| -> BTreeMap<String, i64> {
        truth.iter().map(|(k, v)| (k.clone(), (*v as f64 * f).round() as i64)).collect()
    };
    let (lo, mid, hi) = (scaled(0.97), scaled(1.0), scaled(1.03));
    let want = match direction {
        Direction::Up => 1.6,
        Direction::Hold => 1.0,
        Direction::Down => 0.55,
    };
    let used: i64 = truth.values().sum();
    let requested: i64 = pods.iter().map(|p| p.request_milli).sum();
    if requested == 0 {
        return None;
    }
    let util = used as f64 * 100.0 / requested as f64;
    (5..=500)
        .filter(|t| {
            let d = recommend(current, pods, &mid, *t, TOLERANCE);
            let goes = match (&d, direction) {
                (Decision::Replicas(n), Direction::Up) => *n > current,
                (Decision::Replicas(n), Direction::Hold) => *n == current,
                (Decision::Replicas(n), Direction::Down) => *n < current,
                (Decision::Stopped(_), _) => false,
            };
            goes && recommend(current, pods, &lo, *t, TOLERANCE) == d
                && recommend(current, pods, &hi, *t, TOLERANCE) == d
        })
        .min_by(|a, b| {
            let da = (util / f64::from(*a) - want).abs();
            let db = (util / f64::from(*b) - want).abs();
            da.total_cmp(&db)
        })
}

/// Up to three HPAs on the simulated cluster: the label-selected
/// Deployments (`deployment=<app>-<n>` in one namespace) with the most pods
/// (at least two), set up to scale up, hold and scale down.
pub fn simulated(spec: &sim::cluster::ClusterSpec) -> Vec<Hpa> {
    let mut groups: BTreeMap<(String, String), Vec<(PodInfo, i64)>> = BTreeMap::new();
    for n in &spec.nodes {
        for p in &n.pods {
            let Some(d) = p.labels.get("deployment") else { continue };
            let milli: i64 = p.containers.iter().map(|c| (c.cpu_nanocores as i64 + 999_999) / 1_000_000).sum();
            let info = PodInfo {
                name: p.name.clone(),
                request_milli: REQUEST_PER_CONTAINER_MILLI * p.containers.len() as i64,
                ready: true,
            };
            groups.entry((p.namespace.clone(), d.clone())).or_default().push((info, milli));
        }
    }
    let mut ranked: Vec<_> = groups.into_iter().filter(|(_, pods)| pods.len() >= 2).collect();
    ranked.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let mut out = Vec::new();
    let mut directions = [Direction::Up, Direction::Hold, Direction::Down].into_iter();
    let mut want = directions.next();
    for ((ns, d), members) in ranked {
        let Some(direction) = want else { break };
        let pods: Vec<PodInfo> = members.iter().map(|(p, _)| p.clone()).collect();
        let truth: BTreeMap<String, i64> = members.iter().map(|(p, m)| (p.name.clone(), *m)).collect();
        let Some(target) = pick_target(&pods, &truth, direction) else { continue };
        out.push(Hpa {
            name: format!("{ns}/{d}"),
            namespace: ns,
            selector: format!("deployment={d}"),
            pods,
            target_utilization: target,
            truth_milli: truth,
        });
        want = directions.next();
    }
    out
}

/// The pods of a `PodMetricsList` body with each container's CPU, as the
/// HPA's metrics client reads them (`MilliValue()`, rounded up).
pub fn served_pods(body: &str) -> Vec<ServedPod> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else { return Vec::new() };
    let Some(items) = v.get("items").and_then(|i| i.as_array()) else { return Vec::new() };
    items
        .iter()
        .map(|i| ServedPod {
            name: i["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            containers: i["containers"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| ContainerCpu {
                            name: c["name"].as_str().unwrap_or_default().to_string(),
                            milli: c["usage"]["cpu"]
                                .as_str()
                                .and_then(|q| sim::answer::nanocores(q).ok())
                                .map(|n| (n as i64 + 999_999) / 1_000_000),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
