//! Points other members send here, and points they ask for: the replica
//! side of the peer routes ([`Intake`]). A pushed point is taken only from a
//! member that may hold its node (a holder at this epoch or the previous
//! one) and only when it is newer than what is held; anything else is
//! refused and counted, so a member cannot plant points of nodes it has no
//! business with. `from` is who sent them for certain: the peer port has
//! bound it to the client certificate (another member's id, or one no
//! member has, never gets here).

use std::sync::Arc;

use raft::NodeId;
use tokio::sync::watch;

use crate::model::now_nanos;
use crate::ownership::{Mode, Ownership};
use crate::peer::routes::Intake;
use crate::peer::wire::{PointsQuery, PointsReply, Push, PushAck};
use crate::selfmetrics::SelfMetrics;
use crate::store::{Held, Origin, Store};

/// Most nodes one pull may ask for (the asker chunks by this too).
pub const PULL_CHUNK: usize = 256;

/// Takes in pushed points and hands out held ones.
pub struct PointsIntake {
    /// Every point this replica holds.
    pub store: Arc<Store>,
    /// Who holds what, at the epoch this replica acts on.
    pub ownership: watch::Receiver<Arc<Ownership>>,
    /// Where refusals are counted.
    pub metrics: Arc<SelfMetrics>,
}

impl Intake for PointsIntake {
    fn push(&self, from: NodeId, push: Push) -> PushAck {
        let ownership = self.ownership.borrow().clone();
        let now = now_nanos();
        let (mut taken, mut refused) = (0, 0);
        let mut points = push.points.into_iter().peekable();
        while let Some((node, batch)) = points.next() {
            // Two batches of one node in a row are its sender's last two
            // points (a copy, a seed or a handover from this release).
            let pair = points.next_if(|(n, _)| *n == node).map(|(_, b)| b);
            let ringed = matches!(ownership.mode, Mode::Ring(_));
            if ringed && !ownership.may_hold(from, &node) {
                refused += 1 + usize::from(pair.is_some());
                continue;
            }
            let held = if ownership.scrapes(&node) { Held::Owned } else { Held::Copy };
            taken += match pair {
                Some(other) => {
                    let from_owner = ownership.owner(&node) == Some(from);
                    self.store.store_replica_pair(&node, (batch, other), now, held, (Origin::Member(from), from_owner))
                }
                None => usize::from(self.store.store_replica(&node, batch, now, held, Origin::Member(from))),
            };
        }
        if refused > 0 {
            let sender = ownership.name_of(from);
            tracing::debug!(from = %sender, refused, epoch = ownership.epoch, "refused points from a member that holds none of their nodes");
            self.metrics.points_refused.get_or_create(&vec![("peer", sender)]).inc_by(refused as u64);
        }
        if push.handover {
            tracing::debug!(from = %ownership.name_of(from), taken, "handover received");
        }
        PushAck { taken }
    }

    fn points(&self, _from: NodeId, query: PointsQuery) -> PointsReply {
        let points = query
            .names
            .iter()
            .take(PULL_CHUNK)
            .map(|n| (n.clone(), self.store.export(n)))
            .filter(|(_, b)| !b.is_empty())
            .collect();
        PointsReply { points }
    }
}
