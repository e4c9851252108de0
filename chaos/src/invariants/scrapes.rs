//! Invariants over the kubelets' scrape log: exactly-once (in steady state
//! each node scraped by one replica once per R; during the fault at most
//! one extra scrape per node unless degraded mode may duplicate) and
//! liveness (back to exactly-once within a bound after the heal). The
//! counting is [`sim::scrapes`]'s, shared with the end-to-end tests.

use std::collections::BTreeSet;

use sim::scrapes::{Count, Scrape, Window};

use super::{Check, Policy};
use crate::record::Recording;

/// Windows judged for exactly-once span this many resolutions.
pub const WINDOW_PERIODS: u64 = 3;

/// The scrapes that reached a kubelet, by replica, for [`sim::scrapes`].
fn reached(rec: &Recording) -> impl Iterator<Item = Scrape<'_, Option<usize>>> {
    rec.scrapes.iter().filter(|s| s.reached).map(|s| Scrape { node: s.node.as_str(), at_ms: s.at_ms, by: s.replica })
}

/// What breaks exactly-once in `[from, to)`: a node scraped by more than one
/// replica, scraped a number of times outside `k ± 1` for `k` resolutions,
/// or twice within R / 2. Nodes in `exempt` are not judged.
pub fn window_violations(rec: &Recording, from: u64, to: u64, exempt: &BTreeSet<&str>) -> Vec<String> {
    let window = Window { from_ms: from, to_ms: to, resolution_ms: rec.resolution_ms.max(1) };
    let nodes = rec.nodes.iter().map(String::as_str).filter(|n| !exempt.contains(n));
    sim::scrapes::exactly_once(reached(rec), nodes, window, Count::WithinOne).violations
}

/// The first moment at or after `from` (in 500 ms steps) from which a
/// whole window is exactly-once, if the recording holds one.
pub fn first_exactly_once(rec: &Recording, from: u64) -> Option<u64> {
    let span = rec.resolution_ms * WINDOW_PERIODS;
    let none = BTreeSet::new();
    (from..)
        .step_by(500)
        .take_while(|t| t + span <= rec.end_ms)
        .find(|t| window_violations(rec, *t, t + span, &none).is_empty())
}

/// Exactly-once before the fault, and the extra scrapes it caused.
pub fn exactly_once(rec: &Recording, policy: &Policy) -> Check {
    let r = rec.resolution_ms.max(1);
    let none = BTreeSet::new();
    let before_from = rec.start_ms.max(rec.fault_start_ms.saturating_sub(r * WINDOW_PERIODS));
    let before = window_violations(rec, before_from, rec.fault_start_ms, &none);
    // The fault window runs from the fault to the heal plus the time the
    // cluster took to be exactly-once again (or the end of the record).
    let settled = first_exactly_once(rec, rec.heal_ms).unwrap_or(rec.end_ms);
    let (from, to) = (rec.fault_start_ms, settled.max(rec.fault_start_ms));
    let extra = sim::scrapes::extra(reached(rec), from, to, r);
    let total: u64 = extra.values().sum();
    let worst = extra.values().copied().max().unwrap_or(0);
    let mut detail: Vec<String> = before.iter().map(|v| format!("before the fault: {v}")).collect();
    let bound = policy.moves_per_node.max(1);
    if worst > bound && !policy.may_duplicate {
        detail.extend(
            extra
                .iter()
                .filter(|(_, e)| **e > bound)
                .map(|(n, e)| format!("during the fault: {n} scraped {e} extra times (at most {bound})")),
        );
    }
    let steady_window = before_from + r * 2 <= rec.fault_start_ms;
    if !steady_window {
        detail.insert(0, "no steady window of two resolutions before the fault".into());
    }
    Check::new(
        "exactly_once",
        steady_window && before.is_empty() && (policy.may_duplicate || worst <= bound),
        &[
            ("violations_before_fault", before.len() as f64),
            ("extra_scrapes", total as f64),
            ("max_extra_per_node", worst as f64),
            ("nodes_with_extra", extra.len() as f64),
        ],
        detail,
    )
}

/// Back to exactly-once within the bound after the heal.
pub fn liveness(rec: &Recording, policy: &Policy) -> Check {
    match first_exactly_once(rec, rec.heal_ms) {
        Some(t) => {
            let took = t - rec.heal_ms;
            let pass = took <= policy.liveness_bound_ms;
            let detail = if pass { vec![] } else { vec![format!("exactly-once again only {took} ms after the heal")] };
            Check::new(
                "liveness",
                pass,
                &[("time_to_exactly_once_ms", took as f64), ("bound_ms", policy.liveness_bound_ms as f64)],
                detail,
            )
        }
        None => {
            let last = rec.end_ms.saturating_sub(rec.resolution_ms * WINDOW_PERIODS);
            let example = window_violations(rec, last, rec.end_ms, &BTreeSet::new());
            let mut detail = vec![format!(
                "never exactly-once after the heal ({} ms recorded after it)",
                rec.end_ms.saturating_sub(rec.heal_ms)
            )];
            detail.extend(example);
            Check::new("liveness", false, &[("bound_ms", policy.liveness_bound_ms as f64)], detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::healthy;
    use super::*;
    use crate::record::Scrape;

    const POLICY: Policy = Policy { may_duplicate: false, moves_per_node: 1, liveness_bound_ms: 10_000 };

    #[test]
    fn a_healthy_run_is_exactly_once_and_live_at_once() {
        let rec = healthy();
        assert!(exactly_once(&rec, &POLICY).pass, "{:?}", exactly_once(&rec, &POLICY));
        let l = liveness(&rec, &POLICY);
        assert!(l.pass);
        assert_eq!(l.figures["time_to_exactly_once_ms"], 0.0);
    }

    #[test]
    fn every_replica_scraping_every_node_fails_exactly_once() {
        let mut rec = healthy();
        let dup: Vec<Scrape> =
            rec.scrapes.iter().map(|s| Scrape { replica: Some(2), at_ms: s.at_ms + 300, ..s.clone() }).collect();
        rec.scrapes.extend(dup);
        rec.scrapes.sort_by_key(|s| s.at_ms);
        let c = exactly_once(&rec, &POLICY);
        assert!(!c.pass);
        assert!(c.figures["violations_before_fault"] > 0.0);
        assert!(!liveness(&rec, &POLICY).pass);
    }

    #[test]
    fn duplicates_during_the_fault_fail_unless_degraded_mode_may_duplicate() {
        let mut rec = healthy();
        for t in (16_000..20_000).step_by(1_000) {
            rec.scrapes.push(Scrape { at_ms: t + 500, node: "node-0".into(), replica: Some(1), reached: true });
        }
        rec.scrapes.sort_by_key(|s| s.at_ms);
        assert!(!exactly_once(&rec, &POLICY).pass);
        assert!(exactly_once(&rec, &Policy { may_duplicate: true, ..POLICY }).pass);
        assert!(exactly_once(&rec, &Policy { moves_per_node: 3, ..POLICY }).pass, "three moves, three extra scrapes");
    }

    #[test]
    fn a_node_nobody_scrapes_after_the_heal_fails_liveness() {
        let mut rec = healthy();
        rec.scrapes.retain(|s| !(s.node == "node-1" && s.at_ms > 20_000));
        let c = liveness(&rec, &POLICY);
        assert!(!c.pass, "{c:?}");
    }

    #[test]
    fn recovery_slower_than_the_bound_fails_liveness() {
        let mut rec = healthy();
        rec.scrapes.retain(|s| !(s.node == "node-1" && (20_000..34_000).contains(&s.at_ms)));
        let c = liveness(&rec, &POLICY);
        assert!(!c.pass);
        assert!(c.figures["time_to_exactly_once_ms"] > 10_000.0);
    }
}
