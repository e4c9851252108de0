//! `chaos observe --prometheus URL`: the invariants read from the SLIs the
//! operator's Prometheus already collects (the same expressions as the
//! PrometheusRule's recording rules in `deploy/monitoring/`), beside the
//! observer's own polling, and whether the two agree.
//!
//! [`read`] asks Prometheus for one window's SLIs ([`Slis`]: plain data);
//! the checks are pure functions of that data and of the observer's
//! [`Recording`] of the same window. Nothing here polls the replicas.
//!
//! - `prometheus_coverage`: the worst replica could answer for every known
//!   node at every step (`ha_metrics_server:coverage:ratio` = 1);
//! - `prometheus_freshness`: no node sample older than R + 5 s (the
//!   histogram bucket at or above it) was observed in the window;
//! - `prometheus_availability`: no 5xx answer was counted in the window;
//! - `prometheus_agreement`: Prometheus and the observer give the same
//!   verdict on coverage at each step, on 5xx and on freshness. A step
//!   within one scrape interval plus one resolution of a change the
//!   observer saw is a transition (Prometheus lags the gauges by a scrape,
//!   the gauges are refreshed once a resolution), and a step within the
//!   failure detector's lease of a known failure reflects what the replicas
//!   believed until they detected it: both are counted, not failed.

pub mod client;

use std::collections::BTreeMap;
use std::time::Duration;

pub use client::{PromClient, PromError};

use crate::invariants::{Check, FRESHNESS_SLACK_MS};
use crate::record::{Answer, Kind, Recording};

/// The coverage SLI, as `ha_metrics_server:coverage:ratio` records it.
pub const COVERAGE: &str = "min(ha_metrics_server_nodes_answerable / (ha_metrics_server_nodes_known > 0))";

/// Answers of the metrics API by status class counted in the last `window`.
pub fn answers_by_code(window: &str) -> String {
    format!("sum by (code) (increase(ha_metrics_server_api_requests_total[{window}]))")
}

/// Node-sample ages observed in the last `window`, by histogram bucket.
pub fn freshness_by_bucket(window: &str) -> String {
    format!("sum by (le) (increase(ha_metrics_server_node_freshness_seconds_bucket[{window}]))")
}

/// One window's SLIs as Prometheus has them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slis {
    pub start_ms: u64,
    pub end_ms: u64,
    /// The query step (the scrape interval).
    pub step_ms: u64,
    /// `(unix ms, coverage)` at every step where it is defined.
    pub coverage: Vec<(u64, f64)>,
    /// Answers counted in the window by status class (`2xx`, `5xx`, …);
    /// `increase()` extrapolates to the window's edges, so not whole numbers.
    pub answers: BTreeMap<String, f64>,
    /// `(bucket upper bound in seconds, cumulative count)`, sorted, `+Inf` last.
    pub freshness: Vec<(f64, f64)>,
}

/// Reads the SLIs of `[start_ms, end_ms]` from Prometheus, coverage every `step`.
pub async fn read(client: &PromClient, start_ms: u64, end_ms: u64, step: Duration) -> Result<Slis, PromError> {
    let (start, end) = (start_ms as f64 / 1000.0, end_ms as f64 / 1000.0);
    let window = format!("{}ms", end_ms.saturating_sub(start_ms).max(1));
    let coverage = client
        .query_range(COVERAGE, start, end, step)
        .await?
        .into_iter()
        .flat_map(|s| s.values)
        .map(|(t, v)| ((t * 1000.0).round() as u64, v))
        .collect();
    let answers = client
        .query(&answers_by_code(&window), Some(end))
        .await?
        .into_iter()
        .map(|s| (s.labels.get("code").cloned().unwrap_or_default(), s.value))
        .collect();
    let mut freshness: Vec<(f64, f64)> = client
        .query(&freshness_by_bucket(&window), Some(end))
        .await?
        .into_iter()
        .filter_map(|s| Some((s.labels.get("le")?.parse::<f64>().ok()?, s.value)))
        .collect();
    freshness.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Slis { start_ms, end_ms, step_ms: step.as_millis() as u64, coverage, answers, freshness })
}

/// [`read`], once Prometheus has scraped past `end_ms` (it lags the
/// replicas by up to a scrape interval); gives up waiting after two
/// intervals and ten seconds, and reads what there is.
pub async fn read_when_scraped(
    client: &PromClient,
    start_ms: u64,
    end_ms: u64,
    scrape_interval: Duration,
) -> Result<Slis, PromError> {
    let newest = "max(timestamp(ha_metrics_server_nodes_known))";
    sim::wait::until(scrape_interval * 2 + Duration::from_secs(10), async || {
        client.query(newest, None).await.is_ok_and(|s| s.iter().any(|s| s.value * 1000.0 >= end_ms as f64))
    })
    .await;
    read(client, start_ms, end_ms, scrape_interval).await
}

const FULL: f64 = 1.0 - 1e-9;

/// Coverage from Prometheus: 1 at every step.
pub fn coverage(s: &Slis) -> Check {
    let below: Vec<&(u64, f64)> = s.coverage.iter().filter(|(_, v)| *v < FULL).collect();
    let min = s.coverage.iter().map(|(_, v)| *v).fold(f64::NAN, f64::min);
    let mut detail: Vec<String> =
        below.iter().take(5).map(|(t, v)| format!("coverage {v:.4} at +{} ms", t.saturating_sub(s.start_ms))).collect();
    if s.coverage.is_empty() {
        detail.insert(0, "Prometheus has no coverage SLI for the window".into());
    }
    Check::new(
        "prometheus_coverage",
        !s.coverage.is_empty() && below.is_empty(),
        &[("steps", s.coverage.len() as f64), ("steps_below_full", below.len() as f64), ("min", min)],
        detail,
    )
}

/// The smallest bucket bound at or above `bound_s`, and the observations above it.
fn stale_observations(s: &Slis, bound_s: f64) -> Option<(f64, f64, f64)> {
    let total = s.freshness.iter().find(|(le, _)| le.is_infinite())?.1;
    let (le, fresh) = s.freshness.iter().find(|(le, _)| *le >= bound_s)?;
    Some((*le, total, (total - fresh).max(0.0)))
}

/// `(lower, upper)` bounds in seconds of the oldest bucket that gained observations.
fn oldest_bucket(s: &Slis) -> Option<(f64, f64)> {
    let mut prev = (0.0, 0.0);
    let mut oldest = None;
    for &(le, cum) in &s.freshness {
        if cum > prev.1 + 1e-9 {
            oldest = Some((prev.0, le));
        }
        prev = (le, cum);
    }
    oldest
}

/// Freshness from Prometheus: no node sample older than R + 5 s observed.
pub fn freshness(s: &Slis, resolution_ms: u64) -> Check {
    let bound_s = (resolution_ms + FRESHNESS_SLACK_MS) as f64 / 1000.0;
    let Some((bucket, total, stale)) = stale_observations(s, bound_s) else {
        return Check::new(
            "prometheus_freshness",
            false,
            &[("bound_s", bound_s)],
            vec![format!("Prometheus has no freshness histogram with a bucket at or above {bound_s} s")],
        );
    };
    let (lo, hi) = oldest_bucket(s).unwrap_or((0.0, 0.0));
    let mut detail = Vec::new();
    if total <= 0.0 {
        detail.push("no node sample was observed in the window".into());
    }
    if stale > 0.0 {
        detail.push(format!(
            "{stale:.1} of {total:.1} node samples older than {bucket} s (the oldest in ({lo}, {hi}] s)"
        ));
    }
    Check::new(
        "prometheus_freshness",
        total > 0.0 && stale <= 1e-9,
        &[
            ("bound_s", bound_s),
            ("bucket_s", bucket),
            ("observations", total),
            ("older_than_bucket", stale),
            ("oldest_bucket_lo_s", lo),
            ("oldest_bucket_hi_s", hi),
        ],
        detail,
    )
}

/// Availability from Prometheus: no 5xx counted.
pub fn availability(s: &Slis) -> Check {
    let total: f64 = s.answers.values().sum();
    let five = s.answers.get("5xx").copied().unwrap_or(0.0);
    let detail = if five > 0.0 { vec![format!("{five:.1} of {total:.1} answers were 5xx")] } else { vec![] };
    Check::new("prometheus_availability", five <= 1e-9, &[("answers", total), ("answers_5xx", five)], detail)
}

/// How far Prometheus' SLIs may differ from the observer in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    /// How often Prometheus scrapes the replicas.
    pub scrape_interval: Duration,
    /// Moments a replica failed (killed, stopped, cut off), when known.
    pub failures: Vec<u64>,
    /// The replicas' failure-detector lease: for this long after a failure
    /// (plus the scrape interval and a resolution), their SLIs still say
    /// what they believed before it.
    pub lease: Duration,
}

impl Tolerance {
    /// Prometheus lags the replicas' gauges by up to a scrape interval, and
    /// the gauges are refreshed once a resolution.
    fn lag_ms(&self, rec: &Recording) -> u64 {
        self.scrape_interval.as_millis() as u64 + rec.resolution_ms
    }

    fn after_failure(&self, rec: &Recording, t: u64) -> bool {
        let window = self.lease.as_millis() as u64 + self.lag_ms(rec);
        self.failures.iter().any(|&f| f <= t && t <= f + window)
    }
}

/// Whether an answer lists every node (a node whose kubelet the scenario
/// breaks is not expected while it is broken: the coverage SLI counts a
/// kubelet failing on its own as answerable).
fn full(rec: &Recording, a: &Answer) -> bool {
    let broken = (rec.fault_start_ms..=rec.heal_ms).contains(&a.at_ms);
    rec.nodes.iter().all(|n| (broken && rec.may_vanish.contains(n)) || a.items.iter().any(|i| &i.key == n))
}

/// Whether the observer saw every node at `at` (node answers in `(at - tol, at]`), if it asked.
fn observed_full(rec: &Recording, at: u64, tol: u64) -> Option<bool> {
    let mut seen = rec
        .answers
        .iter()
        .filter(|a| a.kind == Kind::Nodes && a.status == Some(200) && a.at_ms <= at && a.at_ms + tol > at)
        .peekable();
    seen.peek()?;
    Some(seen.all(|a| full(rec, a)))
}

/// `rec` cut to Prometheus' window (answers and views inside it).
fn within(rec: &Recording, s: &Slis) -> Recording {
    let mut w = rec.clone();
    w.start_ms = s.start_ms;
    w.end_ms = s.end_ms;
    w.answers.retain(|a| (s.start_ms..=s.end_ms).contains(&a.at_ms));
    w.views.retain(|v| (s.start_ms..=s.end_ms).contains(&v.at_ms));
    w
}

/// Prometheus' SLIs against the observer's recording (which may extend
/// beyond the window: answers before it give the coverage steps context).
pub fn agreement(s: &Slis, rec: &Recording, tol: &Tolerance) -> Check {
    let lag = tol.lag_ms(rec);
    let (mut compared, mut agree, mut transitions, mut after_failure) = (0u64, 0u64, 0u64, 0u64);
    let (mut optimistic, mut pessimistic) = (0u64, 0u64);
    let mut detail = Vec::new();
    for &(t, v) in &s.coverage {
        let Some(obs) = observed_full(rec, t, lag) else { continue };
        compared += 1;
        let prom = v >= FULL;
        if prom == obs {
            agree += 1;
            continue;
        }
        // The observer's verdict changed near t: Prometheus may lag it by a
        // scrape interval plus the resolution the gauge is refreshed at.
        let near = [t.saturating_sub(2 * lag), t.saturating_sub(lag), t + lag];
        if near.iter().any(|&u| observed_full(rec, u, lag).is_some_and(|o| o != obs)) {
            transitions += 1;
            continue;
        }
        if tol.after_failure(rec, t) {
            after_failure += 1;
            continue;
        }
        if prom {
            optimistic += 1
        } else {
            pessimistic += 1
        }
        if detail.len() < 6 {
            detail.push(format!(
                "at +{} ms Prometheus coverage {v:.4}, the observer saw {}",
                t.saturating_sub(s.start_ms),
                if obs { "every node" } else { "an answer lacking a node" }
            ));
        }
    }
    let w = within(rec, s);
    let errors = crate::invariants::serving::api_errors(&w);
    // 5xx a replica answered; the proxy's own 503 for a backend just killed never reached one.
    let observer_5xx = errors.figures.get("status_5xx").copied().unwrap_or(0.0);
    let proxy_own = errors.figures.get("proxy_5xx_backend_lost").copied().unwrap_or(0.0);
    let observer_answers = w.answers.iter().filter(|a| a.status.is_some()).count() as f64 - proxy_own;
    let prom_5xx = s.answers.get("5xx").copied().unwrap_or(0.0);
    let five_agree = (prom_5xx > 1e-9) == (observer_5xx > 0.0);
    if !five_agree {
        detail.push(format!("5xx: Prometheus counted {prom_5xx:.1}, the observer got {observer_5xx}"));
    }
    // Freshness at the histogram's bucket at or above R + 5 s: the
    // observer's oldest served sample against it, and whether Prometheus
    // counted samples older than it.
    let observed = crate::invariants::serving::freshness(&w);
    let max_age_ms = observed.figures.get("max_age_ms").copied().unwrap_or(f64::NAN);
    let prom_fresh = freshness(s, rec.resolution_ms);
    let bucket_s = prom_fresh.figures.get("bucket_s").copied().unwrap_or(f64::NAN);
    let prom_stale = prom_fresh.figures.get("older_than_bucket").copied().unwrap_or(f64::NAN);
    let fresh_agree = (prom_stale > 1e-9) == (max_age_ms > bucket_s * 1000.0);
    if !fresh_agree {
        detail.push(format!(
            "freshness: Prometheus counted {prom_stale:.1} samples older than {bucket_s} s, the observer's oldest was {max_age_ms} ms"
        ));
    }
    let prom_total: f64 = s.answers.values().sum();
    Check::new(
        "prometheus_agreement",
        compared > 0 && optimistic + pessimistic == 0 && five_agree && fresh_agree,
        &[
            ("coverage_steps_compared", compared as f64),
            ("coverage_steps_agree", agree as f64),
            ("coverage_steps_transition", transitions as f64),
            ("coverage_steps_after_failure", after_failure as f64),
            ("coverage_prometheus_full_observer_not", optimistic as f64),
            ("coverage_prometheus_not_full_observer_full", pessimistic as f64),
            ("answers_prometheus", prom_total),
            ("answers_observer", observer_answers),
            ("answers_5xx_prometheus", prom_5xx),
            ("answers_5xx_observer", observer_5xx),
            ("observer_max_age_ms", max_age_ms),
            (
                "prometheus_oldest_bucket_hi_s",
                prom_fresh.figures.get("oldest_bucket_hi_s").copied().unwrap_or(f64::NAN),
            ),
        ],
        detail,
    )
}

/// Every Prometheus check of one window (`rec` may extend beyond it).
pub fn checks(s: &Slis, rec: &Recording, tol: &Tolerance) -> Vec<Check> {
    vec![coverage(s), freshness(s, rec.resolution_ms), availability(s), agreement(s, rec, tol)]
}

#[cfg(test)]
mod tests;
