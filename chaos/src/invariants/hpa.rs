//! The HPA-decision invariant: on every answer to an HPA-shaped pods
//! request, the replica count the HPA's calculation ([`crate::hpa`])
//! recommends is the one it recommends on the simulator's true usage. Pods
//! a scenario's broken kubelet may take out of the answers (as with
//! metrics-server) are left out of the truth side too, when the answer
//! lacks them: no metrics server could have served them.
//!
//! Failed requests are counted, not judged here: the HPA skips that sync
//! and tries again at the next one (the api_errors check judges 5xx).

use std::collections::BTreeSet;

use super::Check;
use crate::hpa::{self, Decision};
use crate::record::Recording;

/// Judges every HPA answer of `rec`.
pub fn decisions(rec: &Recording) -> Check {
    let vanish: BTreeSet<&str> = rec.may_vanish.iter().map(String::as_str).collect();
    let (mut judged, mut wrong, mut stopped, mut failed) = (0u64, 0u64, 0u64, 0u64);
    let mut detail = Vec::new();
    for a in &rec.hpa_answers {
        let Some(h) = rec.hpas.iter().find(|h| h.name == a.hpa) else { continue };
        if a.status != Some(200) {
            failed += 1;
            continue;
        }
        judged += 1;
        let served = hpa::pod_metrics(&a.pods);
        let absent: BTreeSet<String> = h
            .pods
            .iter()
            .filter(|p| {
                !served.contains_key(&p.name) && vanish.contains(format!("{}/{}", h.namespace, p.name).as_str())
            })
            .map(|p| p.name.clone())
            .collect();
        let truth = h.truth_decision(&absent);
        let got = h.served_decision(&a.pods);
        if matches!(got, Decision::Stopped(_)) {
            stopped += 1;
        }
        if got.effective(h.current()) != truth.effective(h.current()) {
            wrong += 1;
            let lacking: Vec<&str> =
                h.pods.iter().map(|p| p.name.as_str()).filter(|p| !served.contains_key(*p)).collect();
            detail.push(format!(
                "{:?} at +{} ms, HPA {} ({} replicas, target {} %): served → {got:?}, truth → {truth:?}; pods without a value: {lacking:?}",
                a.source,
                a.at_ms.saturating_sub(rec.start_ms),
                h.name,
                h.current(),
                h.target_utilization,
            ));
        }
    }
    Check::new(
        "hpa",
        wrong == 0,
        &[
            ("hpas", rec.hpas.len() as f64),
            ("answers_judged", judged as f64),
            ("wrong_decisions", wrong as f64),
            ("stopped_decisions", stopped as f64),
            ("requests_failed", failed as f64),
        ],
        detail,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::hpa::{ContainerCpu, Hpa, PodInfo, ServedPod};
    use crate::record::{HpaAnswer, Source};

    fn hpa() -> Hpa {
        Hpa {
            name: "ns/web-0".into(),
            namespace: "ns".into(),
            selector: "deployment=web-0".into(),
            pods: (0..3).map(|i| PodInfo { name: format!("w{i}"), request_milli: 100, ready: true }).collect(),
            target_utilization: 50,
            truth_milli: (0..3).map(|i| (format!("w{i}"), 90)).collect::<BTreeMap<_, _>>(),
        }
    }

    fn answer(at_ms: u64, pods: &[(&str, i64)]) -> HpaAnswer {
        HpaAnswer {
            at_ms,
            source: Source::Replica(0),
            hpa: "ns/web-0".into(),
            status: Some(200),
            pods: pods
                .iter()
                .map(|(n, v)| ServedPod {
                    name: n.to_string(),
                    containers: vec![ContainerCpu { name: "web".into(), milli: Some(*v) }],
                })
                .collect(),
        }
    }

    #[test]
    fn a_true_answer_passes_and_a_missing_pod_on_a_scale_up_is_a_wrong_decision() {
        let mut rec = Recording { hpas: vec![hpa()], ..Recording::default() };
        rec.hpa_answers.push(answer(1_000, &[("w0", 90), ("w1", 90), ("w2", 90)]));
        let c = decisions(&rec);
        assert!(c.pass && c.figures["answers_judged"] == 1.0, "{c:?}");
        // Truth: 180 % of 50 → ceil(1.8 × 3) = 6; w2 missing counts 0 % → 4.
        rec.hpa_answers.push(answer(2_000, &[("w0", 90), ("w1", 90)]));
        let c = decisions(&rec);
        assert!(!c.pass && c.figures["wrong_decisions"] == 1.0, "{c:?}");
        assert!(c.detail[0].contains("[\"w2\"]"), "{:?}", c.detail);
    }

    #[test]
    fn an_empty_answer_is_a_stopped_hpa_and_wrong_when_the_truth_scales() {
        let mut rec = Recording { hpas: vec![hpa()], ..Recording::default() };
        rec.hpa_answers.push(answer(1_000, &[]));
        let c = decisions(&rec);
        assert!(!c.pass && c.figures["stopped_decisions"] == 1.0, "{c:?}");
    }

    #[test]
    fn failed_requests_are_counted_not_judged() {
        let mut rec = Recording { hpas: vec![hpa()], ..Recording::default() };
        let mut a = answer(1_000, &[]);
        a.status = Some(503);
        rec.hpa_answers.push(a);
        let c = decisions(&rec);
        assert!(c.pass && c.figures["requests_failed"] == 1.0, "{c:?}");
    }

    #[test]
    fn a_pod_a_broken_kubelet_takes_away_is_left_out_of_the_truth_too() {
        let mut rec = Recording { hpas: vec![hpa()], ..Recording::default() };
        rec.hpa_answers.push(answer(1_000, &[("w0", 90), ("w1", 90)]));
        rec.may_vanish.push("ns/w2".into());
        assert!(decisions(&rec).pass, "{:?}", decisions(&rec));
    }

    #[test]
    fn a_wrong_value_that_moves_the_decision_is_caught() {
        let mut rec = Recording { hpas: vec![hpa()], ..Recording::default() };
        rec.hpa_answers.push(answer(1_000, &[("w0", 90), ("w1", 90), ("w2", 9)]));
        assert!(!decisions(&rec).pass);
    }
}
