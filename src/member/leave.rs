//! How this replica leaves on SIGTERM: a scale-down (its StatefulSet no
//! longer covers its ordinal) leaves Raft for good; anything else (rolling
//! update, eviction, any doubt) only leaves the ring and comes back as the
//! same member.

use std::time::Duration;

use crate::config::ClusterSettings;

/// The StatefulSet ordinal at the end of a replica name (`metrics-server-2` → 2).
pub fn ordinal(name: &str) -> Option<i64> {
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// How this replica leaves on SIGTERM: for good (`ScaleDown`) when its
/// StatefulSet's replica count no longer covers its ordinal, else `Restart`
/// (rolling update, eviction). Any doubt (no StatefulSet configured, no
/// ordinal, the API unreachable) means `Restart`, which keeps the voters.
pub async fn leave_mode(client: &kube::Client, settings: &ClusterSettings) -> raft::LeaveMode {
    let (Some((ns, name)), Some(ord)) = (&settings.statefulset, ordinal(&settings.name)) else {
        return raft::LeaveMode::Restart;
    };
    let req = match http::Request::get(format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")).body(Vec::new()) {
        Ok(r) => r,
        Err(_) => return raft::LeaveMode::Restart,
    };
    match tokio::time::timeout(Duration::from_secs(5), client.request::<serde_json::Value>(req)).await {
        Ok(Ok(sts)) => match sts["spec"]["replicas"].as_i64() {
            Some(replicas) if ord >= replicas => {
                tracing::info!(statefulset = %name, replicas, ordinal = ord, "replica count lowered: leaving for good");
                raft::LeaveMode::ScaleDown
            }
            _ => raft::LeaveMode::Restart,
        },
        Ok(Err(e)) => {
            tracing::warn!(statefulset = %name, error = %e, "cannot read the StatefulSet; leaving as a restart");
            raft::LeaveMode::Restart
        }
        Err(_) => {
            tracing::warn!(statefulset = %name, "reading the StatefulSet timed out; leaving as a restart");
            raft::LeaveMode::Restart
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_is_the_numeric_suffix() {
        assert_eq!(ordinal("metrics-server-2"), Some(2));
        assert_eq!(ordinal("replica-10"), Some(10));
        assert_eq!(ordinal("metrics-server"), None);
        assert_eq!(ordinal("solo"), None);
    }
}
