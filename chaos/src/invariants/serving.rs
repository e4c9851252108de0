//! Invariants over the answers clients got: coverage (every node and pod
//! in every answer), freshness (no sample older than R + 5 s), correctness
//! (values near the simulator's true usage), agreement (replicas at the
//! same epoch serve the same samples) and API errors (no 5xx, every
//! partial answer flagged with a `Warning`).

use std::collections::{BTreeMap, BTreeSet};

use super::{Check, FRESHNESS_SLACK_MS};
use crate::record::{Answer, Kind, Recording, Source};

fn ok(rec: &Recording) -> impl Iterator<Item = &Answer> {
    rec.answers.iter().filter(|a| a.status == Some(200))
}

/// What `a` should have listed and did not (keys allowed to vanish excepted).
fn lacking(rec: &Recording, a: &Answer) -> Vec<String> {
    let want = if a.kind == Kind::Nodes { &rec.nodes } else { &rec.pods };
    let got: BTreeSet<&str> = a.items.iter().map(|i| i.key.as_str()).collect();
    want.iter().filter(|k| !got.contains(k.as_str()) && !rec.may_vanish.contains(k)).cloned().collect()
}

/// Every node and every running pod in every successful answer.
pub fn coverage(rec: &Recording) -> Check {
    let (mut node_answers, mut missing_nodes, mut pod_answers, mut missing_pods) = (0, 0, 0, 0);
    let mut detail = Vec::new();
    for a in ok(rec) {
        let lack = lacking(rec, a);
        match a.kind {
            Kind::Nodes => node_answers += 1,
            Kind::Pods => pod_answers += 1,
        }
        if !lack.is_empty() {
            match a.kind {
                Kind::Nodes => missing_nodes += 1,
                Kind::Pods => missing_pods += 1,
            }
            let shown: Vec<&String> = lack.iter().take(3).collect();
            detail.push(format!(
                "{:?} at +{} ms lacked {} {:?}: {shown:?}",
                a.source,
                a.at_ms.saturating_sub(rec.start_ms),
                lack.len(),
                a.kind
            ));
        }
    }
    if node_answers == 0 {
        detail.insert(0, "no successful node answer was observed".into());
    }
    Check::new(
        "coverage",
        node_answers > 0 && missing_nodes == 0 && missing_pods == 0,
        &[
            ("node_answers", node_answers as f64),
            ("missing_node_answers", missing_nodes as f64),
            ("pod_answers", pod_answers as f64),
            ("missing_pod_answers", missing_pods as f64),
        ],
        detail,
    )
}

/// No served sample older than R + 5 s (nodes the scenario breaks excepted);
/// the maximum and a histogram of ages in whole seconds.
pub fn freshness(rec: &Recording) -> Check {
    let bound = rec.resolution_ms + FRESHNESS_SLACK_MS;
    let exempt: BTreeSet<&str> = rec.faulted_nodes.iter().map(String::as_str).collect();
    let mut max = 0u64;
    let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
    let mut detail = Vec::new();
    for a in ok(rec) {
        for i in a.items.iter().filter(|i| !exempt.contains(i.key.as_str())) {
            let age = a.at_ms.saturating_sub(i.ts_ms);
            *hist.entry(age / 1000).or_default() += 1;
            if age > bound && detail.len() < 8 {
                detail.push(format!(
                    "{:?} served {} {age} ms old at +{} ms",
                    a.source,
                    i.key,
                    a.at_ms.saturating_sub(rec.start_ms)
                ));
            }
            max = max.max(age);
        }
    }
    let mut figures = vec![("max_age_ms".to_string(), max as f64), ("bound_ms".to_string(), bound as f64)];
    figures.extend(hist.iter().map(|(s, n)| (format!("age_{s:02}s"), *n as f64)));
    let figs: Vec<(&str, f64)> = figures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    Check::new("freshness", max <= bound, &figs, detail)
}

/// Whether `got` is within the tolerance the end-to-end tests use (2 %, at least 1 milli-unit).
pub fn within_tolerance(got: f64, want: f64, floor: f64) -> bool {
    (got - want).abs() <= (want * 0.02).max(floor)
}

/// Served CPU and memory against the simulator's true usage.
pub fn correctness(rec: &Recording) -> Check {
    let exempt: BTreeSet<&str> = rec.faulted_nodes.iter().map(String::as_str).collect();
    let (mut checked, mut wrong) = (0u64, 0u64);
    let mut detail = Vec::new();
    for a in ok(rec) {
        for i in a.items.iter().filter(|i| !exempt.contains(i.key.as_str())) {
            let Some(t) = rec.truth.get(&i.key) else { continue };
            checked += 1;
            let cpu_ok = within_tolerance(i.cpu_nanocores, t.cpu_nanocores, 1e6);
            let mem_ok = within_tolerance(i.memory_bytes, t.memory_bytes, 1_048_576.0);
            if !(cpu_ok && mem_ok) {
                wrong += 1;
                if detail.len() < 8 {
                    detail.push(format!(
                        "{:?} served {}: cpu {} (true {}), memory {} (true {})",
                        a.source, i.key, i.cpu_nanocores, t.cpu_nanocores, i.memory_bytes, t.memory_bytes
                    ));
                }
            }
        }
    }
    if checked == 0 {
        detail.insert(0, "no value was served to check".into());
    }
    Check::new(
        "correctness",
        checked > 0 && wrong == 0,
        &[("values_checked", checked as f64), ("values_wrong", wrong as f64)],
        detail,
    )
}

/// The ring epoch replica `replica` acted on at `at_ms`, when its views
/// just before and just after agree on it (`None` around a change).
fn stable_epoch(rec: &Recording, replica: usize, at_ms: u64) -> Option<u64> {
    let mine = rec.views.iter().filter(|v| v.replica == replica);
    let before = mine.clone().rfind(|v| v.at_ms <= at_ms)?;
    let after = mine.clone().find(|v| v.at_ms > at_ms)?;
    (before.ring_epoch == after.ring_epoch && after.at_ms - before.at_ms <= 1_500).then_some(before.ring_epoch)
}

/// A node answer's samples, by node and sample timestamp.
fn samples(a: &Answer) -> BTreeMap<(&str, u64), (f64, f64)> {
    a.items.iter().map(|i| ((i.key.as_str(), i.ts_ms), (i.cpu_nanocores, i.memory_bytes))).collect()
}

/// Replicas at the same epoch give identical answers: two node answers from
/// different replicas within 250 ms of each other, both at the same stable
/// epoch, list the same nodes and serve the same values for every sample
/// (same node, same timestamp) they share.
///
/// A difference the earlier replica's own next answer (at the same epoch)
/// also shows is a change between the two moments, not a disagreement: a
/// node that went stale or came back in between, or a sample whose window
/// settled when the owner's copy of it landed (a replica back from a pause
/// scraped a sample its stand-in had scraped too). Such changes are counted
/// and shown, not failed; each replica served what all served at the time.
pub fn agreement(rec: &Recording) -> Check {
    let direct: Vec<(&Answer, usize, u64)> = ok(rec)
        .filter(|a| a.kind == Kind::Nodes)
        .filter_map(|a| match a.source {
            Source::Replica(i) => Some((a, i, stable_epoch(rec, i, a.at_ms)?)),
            Source::Proxy => None,
        })
        .collect();
    let (mut compared, mut disagreements, mut rounded, mut changed) = (0u64, 0u64, 0u64, 0u64);
    let (mut detail, mut notes) = (Vec::new(), Vec::new());
    for (x, (a, ia, ea)) in direct.iter().enumerate() {
        let later = &direct[x + 1..];
        // What replica `ia` served next, when still at epoch `ea`.
        let next = later.iter().find(|(_, i, _)| i == ia).filter(|(_, _, e)| e == ea).map(|(n, _, _)| *n);
        let next_keys: Option<BTreeSet<&str>> = next.map(|n| n.items.iter().map(|i| i.key.as_str()).collect());
        let next_values = next.map(samples);
        let va = samples(a);
        let ka: BTreeSet<&str> = a.items.iter().map(|i| i.key.as_str()).collect();
        for (b, ib, eb) in later.iter().take_while(|(b, _, _)| b.at_ms <= a.at_ms + 250) {
            if ia == ib || ea != eb {
                continue;
            }
            compared += 1;
            let kb: BTreeSet<&str> = b.items.iter().map(|i| i.key.as_str()).collect();
            let at = a.at_ms.saturating_sub(rec.start_ms);
            let mut differ = false;
            let mut moved = false;
            if ka != kb {
                // Listed only by `a` and gone from `ia`'s next answer too, or
                // listed only by `b` and in `ia`'s next answer: changed in between.
                let explained = ka
                    .symmetric_difference(&kb)
                    .all(|k| next_keys.as_ref().is_some_and(|n| n.contains(k) == kb.contains(k)));
                let line = format!(
                    "epoch {ea} at +{at} ms: replica-{ia} listed {} nodes, replica-{ib} {}",
                    ka.len(),
                    kb.len()
                );
                if explained {
                    moved = true;
                    notes.push(format!(
                        "changed in between (replica-{ia}'s next answer agrees with replica-{ib}): {line}"
                    ));
                } else {
                    differ = true;
                    detail.push(line);
                }
            }
            for i in &b.items {
                let Some((cpu, mem)) = va.get(&(i.key.as_str(), i.ts_ms)) else { continue };
                if *cpu == i.cpu_nanocores && *mem == i.memory_bytes {
                    continue;
                }
                // One nanocore apart, same memory: the same rate rounded on two
                // replicas. Counted and shown, not failed: no client can see it.
                let near = |(c, m): (f64, f64)| (c - i.cpu_nanocores).abs() <= 1.0 && m == i.memory_bytes;
                let rounding = near((*cpu, *mem));
                let settled = !rounding
                    && next_values.as_ref().and_then(|n| n.get(&(i.key.as_str(), i.ts_ms))).is_some_and(|v| near(*v));
                if rounding {
                    rounded += 1;
                } else if settled {
                    moved = true;
                } else {
                    differ = true;
                }
                let why = if rounding {
                    "rounding only: "
                } else if settled {
                    "changed in between: "
                } else {
                    ""
                };
                notes.push(format!(
                    "{why}epoch {ea} at +{at} ms: {} @{}: replica-{ia} cpu {cpu} memory {mem}, replica-{ib} cpu {} memory {}",
                    i.key, i.ts_ms, i.cpu_nanocores, i.memory_bytes
                ));
            }
            disagreements += u64::from(differ);
            changed += u64::from(moved && !differ);
        }
    }
    notes.sort_by_key(|n| n.starts_with("rounding only") || n.starts_with("changed in between"));
    detail.extend(notes);
    Check::new(
        "agreement",
        disagreements == 0,
        &[
            ("comparisons", compared as f64),
            ("disagreements", disagreements as f64),
            ("rounding_differences", rounded as f64),
            ("changed_in_between", changed as f64),
        ],
        detail,
    )
}

/// Whether the harness did something to a replica within 3 s of a request
/// sent at `at_ms`: before it, or after it while it was in flight (a fault
/// is noted once done: a kill -9, the reap and the new route come first).
fn backend_just_lost(rec: &Recording, at_ms: u64) -> bool {
    rec.events.iter().any(|e| e.at_ms.abs_diff(at_ms) <= 3_000)
}

/// No 5xx; every answer that lacks a node or pod carries a `Warning`.
pub fn api_errors(rec: &Recording) -> Check {
    let (mut five, mut proxy_five, mut unflagged, mut flagged, mut failed) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut detail = Vec::new();
    for a in &rec.answers {
        match a.status {
            // The stand-in proxy answers 503 for a request in flight to a
            // backend the harness just killed or stopped, as kube-apiserver
            // does: counted, not held against the replicas.
            Some(s) if s >= 500 && a.source == Source::Proxy && backend_just_lost(rec, a.at_ms) => proxy_five += 1,
            Some(s) if s >= 500 => {
                five += 1;
                detail.push(format!("{:?} answered {s} at +{} ms", a.source, a.at_ms.saturating_sub(rec.start_ms)));
            }
            Some(200) => {
                let partial = !lacking(rec, a).is_empty();
                if partial && a.warnings.is_empty() {
                    unflagged += 1;
                    detail.push(format!(
                        "{:?} answered a partial {:?} list without a Warning at +{} ms",
                        a.source,
                        a.kind,
                        a.at_ms.saturating_sub(rec.start_ms)
                    ));
                } else if !a.warnings.is_empty() {
                    flagged += 1;
                }
            }
            Some(_) => {}
            None => failed += 1,
        }
    }
    Check::new(
        "api_errors",
        five == 0 && unflagged == 0,
        &[
            ("answers", rec.answers.len() as f64),
            ("status_5xx", five as f64),
            ("proxy_5xx_backend_lost", proxy_five as f64),
            ("partial_without_warning", unflagged as f64),
            ("answers_with_warning", flagged as f64),
            ("requests_failed", failed as f64),
        ],
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::healthy;
    use super::*;

    #[test]
    fn a_healthy_run_passes_every_serving_invariant() {
        let rec = healthy();
        for c in [coverage(&rec), freshness(&rec), correctness(&rec), agreement(&rec), api_errors(&rec)] {
            assert!(c.pass, "{c:?}");
        }
    }

    #[test]
    fn an_answer_lacking_a_node_fails_coverage_and_without_a_warning_api_errors() {
        let mut rec = healthy();
        rec.answers[10].items.pop();
        assert!(!coverage(&rec).pass);
        assert_eq!(coverage(&rec).figures["missing_node_answers"], 1.0);
        assert!(!api_errors(&rec).pass);
        rec.answers[10].warnings.push("node-1 unavailable".into());
        assert!(api_errors(&rec).pass);
        assert!(!coverage(&rec).pass, "a flagged partial answer is still a gap");
    }

    #[test]
    fn a_sample_older_than_r_plus_5s_fails_freshness_unless_its_node_is_faulted() {
        let mut rec = healthy();
        let k = rec.answers.iter().position(|a| a.at_ms > 10_000).unwrap();
        let at = rec.answers[k].at_ms;
        rec.answers[k].items[0].ts_ms = at - 7_500;
        let c = freshness(&rec);
        assert!(!c.pass);
        assert_eq!(c.figures["max_age_ms"], 7_500.0);
        rec.faulted_nodes.push("node-0".into());
        assert!(freshness(&rec).pass);
    }

    #[test]
    fn a_wrong_value_or_no_value_at_all_fails_correctness() {
        let mut rec = healthy();
        rec.answers[4].items[1].cpu_nanocores *= 1.5;
        assert!(!correctness(&rec).pass);
        let mut empty = healthy();
        for a in &mut empty.answers {
            a.items.clear();
        }
        assert!(!correctness(&empty).pass);
        assert!(within_tolerance(101e6, 100e6, 1e6) && !within_tolerance(103e6, 100e6, 1e6));
    }

    #[test]
    fn replicas_serving_different_values_for_one_sample_at_one_epoch_fail_agreement() {
        let mut rec = healthy();
        let a = rec.answers.iter().position(|a| a.source == Source::Replica(1) && a.at_ms > 5_000).unwrap();
        rec.answers[a].items[0].cpu_nanocores += 1.0;
        let c = agreement(&rec);
        assert!(c.pass && c.figures["rounding_differences"] > 0.0, "one nanocore is rounding, shown: {c:?}");
        assert!(c.detail[0].starts_with("rounding only"));
        rec.answers[a].items[0].cpu_nanocores += 1_000.0;
        assert!(!agreement(&rec).pass);
        let at = rec.answers[a].at_ms;
        for v in rec.views.iter_mut().filter(|v| v.replica == 1 && v.at_ms + 600 > at) {
            v.ring_epoch = 4;
        }
        assert!(agreement(&rec).pass, "another epoch may differ: {:?}", agreement(&rec));
    }

    #[test]
    fn a_change_both_replicas_show_in_turn_is_not_a_disagreement() {
        // node-1 goes stale just after replica-0's answer at 10 s: replica-1
        // lacks it 1 ms later, and so does every later answer of both.
        let mut stale = healthy();
        for a in stale.answers.iter_mut().filter(|a| a.at_ms > 10_000 && a.kind == Kind::Nodes) {
            a.items.retain(|i| i.key != "node-1");
        }
        let c = agreement(&stale);
        assert!(c.pass && c.figures["changed_in_between"] == 1.0, "{c:?}");
        // The sample of 10 s gets another window just after replica-0's
        // answer: replica-1 serves the new value first, replica-0 next.
        let mut settled = healthy();
        for a in settled.answers.iter_mut().filter(|a| a.at_ms > 10_000 && a.kind == Kind::Nodes) {
            for i in a.items.iter_mut().filter(|i| i.key == "node-0" && i.ts_ms == 10_000) {
                i.cpu_nanocores += 1_000.0;
            }
        }
        let c = agreement(&settled);
        assert!(c.pass && c.figures["changed_in_between"] == 1.0, "{c:?}");
        assert!(c.detail.iter().any(|d| d.starts_with("changed in between")));
    }

    #[test]
    fn a_node_one_replica_keeps_listing_and_the_other_drops_is_a_disagreement() {
        let mut rec = healthy();
        for a in rec.answers.iter_mut().filter(|a| a.at_ms > 10_000 && a.source == Source::Replica(1)) {
            a.items.retain(|i| i.key != "node-1");
        }
        let c = agreement(&rec);
        assert!(!c.pass && c.figures["disagreements"] > 0.0, "{c:?}");
        assert!(c.detail[0].contains("replica-0 listed 2 nodes, replica-1 1"), "{:?}", c.detail);
    }

    #[test]
    fn a_5xx_fails_api_errors_unless_the_proxy_lost_its_backend_to_the_harness() {
        let mut rec = healthy();
        rec.answers[3].status = Some(503);
        rec.answers[3].items.clear();
        assert!(!api_errors(&rec).pass);
        rec.answers[3].source = Source::Proxy;
        assert!(!api_errors(&rec).pass);
        let at = rec.answers[3].at_ms;
        rec.events.push(crate::record::Event { at_ms: at + 3_500, what: "kill -9 replica-1".into(), wiped: None });
        assert!(!api_errors(&rec).pass, "a fault 3.5 s after the request does not excuse it");
        rec.events[0].at_ms = at + 40;
        assert!(api_errors(&rec).pass, "noted 40 ms after the request was sent, while it was in flight");
        rec.events[0].at_ms = at - 500;
        assert!(api_errors(&rec).pass);
        assert_eq!(api_errors(&rec).figures["proxy_5xx_backend_lost"], 1.0);
    }

    #[test]
    fn keys_allowed_to_vanish_do_not_count_as_missing() {
        let mut rec = healthy();
        rec.answers[10].items.pop();
        rec.may_vanish.push("node-1".into());
        assert!(coverage(&rec).pass && api_errors(&rec).pass);
    }
}
