use super::*;
use crate::invariants::fixture::healthy;

fn tol() -> Tolerance {
    Tolerance { scrape_interval: Duration::from_secs(1), failures: vec![], lease: Duration::from_secs(3) }
}

/// Prometheus' view of the fixture's healthy run: full coverage every
/// second, 160 answers without a 5xx, every node sample under 2 s old.
fn healthy_slis() -> Slis {
    Slis {
        start_ms: 0,
        end_ms: 40_000,
        step_ms: 1_000,
        coverage: (1..40).map(|s| (s * 1_000, 1.0)).collect(),
        answers: [("2xx".to_string(), 160.0)].into_iter().collect(),
        freshness: vec![(1.0, 30.0), (2.0, 40.0), (5.0, 40.0), (10.0, 40.0), (20.0, 40.0), (f64::INFINITY, 40.0)],
    }
}

fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn a_healthy_window_passes_and_agrees_with_the_observer() {
    let checks = checks(&healthy_slis(), &healthy(), &tol());
    for c in &checks {
        assert!(c.pass, "{c:?}");
    }
    let a = check(&checks, "prometheus_agreement");
    assert_eq!(a.figures["coverage_steps_compared"], 39.0);
    assert_eq!(a.figures["coverage_steps_agree"], 39.0);
    let f = check(&checks, "prometheus_freshness");
    assert_eq!(f.figures["bucket_s"], 10.0, "R + 5 s = 7 s falls in the 10 s bucket");
    assert_eq!((f.figures["oldest_bucket_lo_s"], f.figures["oldest_bucket_hi_s"]), (1.0, 2.0));
}

#[test]
fn a_coverage_dip_the_observer_did_not_see_fails_coverage_and_agreement() {
    let mut s = healthy_slis();
    s.coverage[20].1 = 0.5;
    let checks = checks(&s, &healthy(), &tol());
    assert!(!check(&checks, "prometheus_coverage").pass);
    assert_eq!(check(&checks, "prometheus_coverage").figures["min"], 0.5);
    let a = check(&checks, "prometheus_agreement");
    assert!(!a.pass);
    assert_eq!(a.figures["coverage_prometheus_not_full_observer_full"], 1.0);
}

#[test]
fn a_gap_the_observer_saw_but_prometheus_did_not_is_an_optimistic_disagreement() {
    let mut rec = healthy();
    // Every node answer between 20 s and 32 s lacks node-1.
    for a in rec.answers.iter_mut().filter(|a| a.kind == Kind::Nodes && (20_000..32_000).contains(&a.at_ms)) {
        a.items.retain(|i| i.key != "node-1");
    }
    let a = agreement(&healthy_slis(), &rec, &tol());
    assert!(!a.pass, "{a:?}");
    assert!(a.figures["coverage_prometheus_full_observer_not"] >= 1.0, "{a:?}");
    assert!(a.figures["coverage_steps_transition"] >= 1.0, "the edges of the gap are transitions: {a:?}");
    // A node whose kubelet the scenario breaks may vanish while it is
    // broken (the SLI counts it as answerable): nothing to disagree on.
    rec.may_vanish.push("node-1".into());
    (rec.fault_start_ms, rec.heal_ms) = (19_000, 33_000);
    assert!(agreement(&healthy_slis(), &rec, &tol()).pass);
    // After the heal it is expected again.
    (rec.fault_start_ms, rec.heal_ms) = (19_000, 22_000);
    assert!(!agreement(&healthy_slis(), &rec, &tol()).pass);
}

#[test]
fn right_after_a_known_failure_the_replicas_sli_may_still_say_what_they_believed() {
    let mut s = healthy_slis();
    s.coverage[20].1 = 0.5; // 21 s
    s.coverage[21].1 = 0.5; // 22 s
    let a = agreement(&s, &healthy(), &tol());
    assert_eq!(a.figures["coverage_prometheus_not_full_observer_full"], 2.0, "{a:?}");
    let after = Tolerance { failures: vec![20_000], ..tol() };
    let a = agreement(&s, &healthy(), &after);
    assert!(a.pass, "{a:?}");
    assert_eq!(a.figures["coverage_steps_after_failure"], 2.0);
    // Beyond the lease plus the lag, it is a disagreement again.
    let long_ago = Tolerance { failures: vec![10_000], ..tol() };
    assert!(!agreement(&s, &healthy(), &long_ago).pass);
}

#[test]
fn prometheus_lagging_a_change_by_a_scrape_interval_is_a_transition() {
    let mut rec = healthy();
    for a in rec.answers.iter_mut().filter(|a| a.kind == Kind::Nodes && (20_000..30_000).contains(&a.at_ms)) {
        a.items.retain(|i| i.key != "node-1");
    }
    let mut s = healthy_slis();
    // Prometheus sees the gap from 22 s to 31 s: late on both edges.
    for (t, v) in s.coverage.iter_mut() {
        if (22_000..=31_000).contains(t) {
            *v = 0.5;
        }
    }
    let a = agreement(&s, &rec, &tol());
    assert!(a.pass, "{a:?}");
    assert!(a.figures["coverage_steps_transition"] >= 2.0);
}

#[test]
fn stale_samples_and_5xx_are_read_from_prometheus_and_compared() {
    let mut s = healthy_slis();
    s.freshness = vec![(1.0, 30.0), (2.0, 36.0), (5.0, 36.0), (10.0, 38.0), (20.0, 40.0), (f64::INFINITY, 40.0)];
    s.answers.insert("5xx".into(), 2.0);
    let c = checks(&s, &healthy(), &tol());
    let f = check(&c, "prometheus_freshness");
    assert!(!f.pass);
    assert_eq!(f.figures["older_than_bucket"], 2.0);
    assert_eq!((f.figures["oldest_bucket_lo_s"], f.figures["oldest_bucket_hi_s"]), (10.0, 20.0));
    assert!(!check(&c, "prometheus_availability").pass);
    let a = check(&c, "prometheus_agreement");
    assert!(!a.pass, "the observer saw neither stale samples nor a 5xx: {a:?}");
    assert_eq!(a.figures["answers_5xx_prometheus"], 2.0);
    // No histogram at all is no verdict.
    s.freshness.clear();
    assert!(!freshness(&s, 2_000).pass);
}
