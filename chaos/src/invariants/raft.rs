//! Safety over the replicas' cluster views: no replica's committed
//! ClusterState history goes backwards (its committed epoch never falls,
//! unless its data dir was wiped), replicas that committed the same epoch
//! agree on its Active members (the ring it stands for; Joining and Down
//! members come and go without a new epoch), and no term has two leaders.

use std::collections::{BTreeMap, BTreeSet};

use super::Check;
use crate::record::Recording;

pub fn safety(rec: &Recording) -> Check {
    let mut detail = Vec::new();
    let (mut regressions, mut divergences, mut split_terms) = (0u64, 0u64, 0u64);
    // Per replica, in time order; a wipe starts its history again.
    let mut last: BTreeMap<usize, u64> = BTreeMap::new();
    let mut wipes: Vec<(u64, usize)> = rec.events.iter().filter_map(|e| Some((e.at_ms, e.wiped?))).collect();
    wipes.sort();
    let mut next_wipe = 0;
    let mut members_at: BTreeMap<u64, (usize, Vec<&String>)> = BTreeMap::new();
    let mut leaders: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for v in &rec.views {
        while next_wipe < wipes.len() && wipes[next_wipe].0 <= v.at_ms {
            last.remove(&wipes[next_wipe].1);
            next_wipe += 1;
        }
        if v.epoch == 0 {
            continue; // not yet caught up: nothing committed to compare
        }
        if let Some(prev) = last.get(&v.replica)
            && v.epoch < *prev
        {
            regressions += 1;
            detail.push(format!(
                "replica-{} went back from epoch {prev} to {} at +{} ms",
                v.replica,
                v.epoch,
                v.at_ms.saturating_sub(rec.start_ms)
            ));
        }
        last.insert(v.replica, v.epoch.max(last.get(&v.replica).copied().unwrap_or(0)));
        let active: Vec<&String> = v.members.iter().filter(|m| m.ends_with("=Active")).collect();
        match members_at.get(&v.epoch) {
            Some((who, m)) if *m != active => {
                divergences += 1;
                detail.push(format!(
                    "epoch {}: replica-{who} has Active {m:?}, replica-{} {active:?}",
                    v.epoch, v.replica
                ));
            }
            Some(_) => {}
            None => {
                members_at.insert(v.epoch, (v.replica, active));
            }
        }
        if v.role == "Leader" {
            leaders.entry(v.term).or_default().insert(v.replica);
        }
    }
    for (term, who) in &leaders {
        if who.len() > 1 {
            split_terms += 1;
            detail.push(format!("term {term} had leaders {who:?}"));
        }
    }
    Check::new(
        "safety",
        regressions == 0 && divergences == 0 && split_terms == 0,
        &[
            ("views", rec.views.len() as f64),
            ("epoch_regressions", regressions as f64),
            ("divergent_epochs", divergences as f64),
            ("terms_with_two_leaders", split_terms as f64),
            ("terms_seen", leaders.len() as f64),
        ],
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::healthy;
    use super::*;
    use crate::record::Event;

    #[test]
    fn a_healthy_run_is_safe() {
        assert!(safety(&healthy()).pass);
    }

    #[test]
    fn two_leaders_in_one_term_fail_safety() {
        let mut rec = healthy();
        rec.views[5].role = "Leader".into();
        assert_eq!(rec.views[5].replica, 1);
        let c = safety(&rec);
        assert!(!c.pass);
        assert_eq!(c.figures["terms_with_two_leaders"], 1.0);
    }

    #[test]
    fn a_committed_epoch_lost_fails_safety_unless_the_data_dir_was_wiped() {
        let mut rec = healthy();
        let at = rec.views[30].at_ms;
        for v in rec.views.iter_mut().filter(|v| v.replica == 1 && v.at_ms >= at) {
            v.epoch = 2;
            v.members = vec!["replica-0=Active".into()];
        }
        let c = safety(&rec);
        assert!(!c.pass);
        assert!(c.figures["epoch_regressions"] > 0.0);
        rec.events.push(Event { at_ms: at - 1, what: "wiped".into(), wiped: Some(1) });
        // No regression now, but epoch 2 was never seen elsewhere: still safe.
        assert!(safety(&rec).pass, "{:?}", safety(&rec));
    }

    #[test]
    fn two_replicas_with_different_members_at_one_epoch_fail_safety() {
        let mut rec = healthy();
        rec.views[7].members.push("replica-9=Joining".into());
        assert!(safety(&rec).pass, "a Joining member does not change the ring");
        rec.views[7].members.push("replica-8=Active".into());
        assert!(!safety(&rec).pass);
    }
}
