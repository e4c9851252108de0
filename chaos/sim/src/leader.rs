//! Who leads the Raft cluster, from what the replicas say: the leader they
//! all agree on, the leader the first replica that knows one names, and
//! the replica index behind a name the simulator gave (`replica-N`, see
//! [`crate::env`]). The end-to-end tests, the benchmarks, the chaos tool
//! and the raft crate's tests all ask through here; each brings its own
//! way of reading a replica's view (over the peer port, or in process).
//!
//! Must not: fetch views itself (that is the caller's transport).

/// The leader every view names, when each names one and they are all the
/// same; `None` when a view names none, two views differ, or there is no view.
pub fn agreed<L: PartialEq>(named: impl IntoIterator<Item = Option<L>>) -> Option<L> {
    let mut named = named.into_iter();
    let first = named.next()??;
    for other in named {
        if other.as_ref() != Some(&first) {
            return None;
        }
    }
    Some(first)
}

/// The index `N` of a replica the simulator named `replica-N`.
pub fn replica_index(name: &str) -> Option<usize> {
    name.strip_prefix("replica-")?.parse().ok()
}

/// The replica leading by the first of `replicas` whose view names a
/// leader (`leader_named_by(i)`: the leader's name in replica `i`'s view,
/// `None` when it has no view or knows no leader).
pub async fn named_by_first(
    replicas: impl IntoIterator<Item = usize>,
    mut leader_named_by: impl AsyncFnMut(usize) -> Option<String>,
) -> Option<usize> {
    for i in replicas {
        if let Some(name) = leader_named_by(i).await {
            return replica_index(&name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_needs_every_view_to_name_the_same_leader() {
        assert_eq!(agreed([Some("replica-1"), Some("replica-1")]), Some("replica-1"));
        assert_eq!(agreed([Some(1), Some(2)]), None);
        assert_eq!(agreed([Some(1), None]), None);
        assert_eq!(agreed([None, Some(1)]), None);
        assert_eq!(agreed(Vec::<Option<u8>>::new()), None);
    }

    #[test]
    fn replica_names_map_back_to_indices() {
        assert_eq!(replica_index("replica-12"), Some(12));
        assert_eq!(replica_index("r2"), None);
        assert_eq!(replica_index("replica-x"), None);
    }

    #[tokio::test]
    async fn the_first_replica_that_knows_a_leader_names_it() {
        let views = [None, Some("replica-2".to_string()), Some("replica-0".to_string())];
        assert_eq!(named_by_first(0..3, async |i| views[i].clone()).await, Some(2));
        assert_eq!(named_by_first([0], async |i| views[i].clone()).await, None);
    }
}
