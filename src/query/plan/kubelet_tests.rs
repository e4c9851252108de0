//! Whom a missing node is blamed on when its owner reported failing to
//! reach its kubelet.

use raft::Command;

use super::*;

fn cluster(n: u64, rf: u32) -> raft::ClusterState {
    let mut s = raft::fixture::active(n);
    s.apply(&Command::SetReplication(rf));
    s
}

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("node-{i}")).collect()
}

#[test]
fn a_node_whose_owner_cannot_reach_its_kubelet_is_named_as_such_apart_from_the_owners_other_gaps() {
    let mut s = cluster(3, 2);
    let names = names(60);
    let o = Ownership::from_state(1, &s);
    let owned_by_2: Vec<&String> = names.iter().filter(|n| o.owner(n) == Some(2)).collect();
    let (dark, lacking) = (owned_by_2[0].clone(), owned_by_2[1].clone());
    let holders = o.holders(&dark);
    s.apply(&Command::SetFailing(holders.as_slice().iter().map(|h| (*h, vec![dark.clone()])).collect()));
    let o = Ownership::from_state(1, &s);
    assert!(o.kubelet_unreachable(&dark) && !o.kubelet_unreachable(&lacking));
    let served: Vec<bool> = names.iter().map(|n| *n != dark && *n != lacking).collect();
    let missing = missing_nodes(&o, &names, &served, &Outcomes::default());
    assert_eq!(
        missing,
        vec![
            Missing { member: "r2".into(), cause: Cause::Lacks, what: What::Nodes { missing: 1, of: 60 } },
            Missing {
                member: "r2".into(),
                cause: Cause::KubeletsUnreachable,
                what: What::Nodes { missing: 1, of: 60 }
            },
        ]
    );
    assert_eq!(
        missing[1].to_string(),
        "partial answer: replica r2: their kubelets cannot be reached; 1 of 60 nodes missing"
    );
}
