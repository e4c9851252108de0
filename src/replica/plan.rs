//! The planner, pure: what this replica must do with the points of each node
//! when its view of the cluster changes from one [`Ownership`] to the next
//! (an epoch, a member it cannot reach, degraded mode). One function,
//! [`actions`], the only place that says what changed for this replica;
//! the manager performs the actions, and nothing else decides them.
//!
//! For each node, with `H` its holders (owner first) and "scrapes" as
//! [`Ownership::scrapes`] says (its assigned scraper: the owner, or the
//! next holder when the owner reported failing to reach the kubelet; or a
//! holder standing in for an unreachable one):
//! - scrapes it now and did not: [`Action::Adopt`] (an orphan when no
//!   handover is coming: the previous scraper is gone, Down or unreachable,
//!   or cannot reach the kubelet);
//! - scraped it and no longer does: [`Action::ReleaseTo`] its new assigned
//!   scraper (the new owner, or the holder standing in for it, or the owner
//!   taking a node back once it reaches the kubelet again);
//! - scrapes it (or just released it) and holds its points: [`Action::ReseedTo`]
//!   every new holder that was not one before, so it holds two points at once;
//! - holds it now and has nothing of it: [`Action::PullFrom`] the holders,
//!   old and new, the owner first;
//! - held it and no longer does: [`Action::Forget`] (the manager waits for
//!   the handover of a released node to land first);
//! - leaving the ring (Draining) and released it: [`Action::Confirm`] that the
//!   new owner serves a newer sample before exiting (make before break).

use raft::{MemberState, NodeId};

use crate::ownership::{Holders, Ownership};

/// One thing to do with one node's points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// This replica now scrapes `node`; `orphan` when no handover is coming.
    Adopt {
        /// The node.
        node: String,
        /// Its previous owner is gone, Down or unreachable.
        orphan: bool,
    },
    /// This replica no longer scrapes `node`: hand its last points to `to`,
    /// the member that scrapes it now by the committed state.
    ReleaseTo {
        /// The node.
        node: String,
        /// The new owner.
        to: NodeId,
    },
    /// Send `node`'s last points to `to`, which holds it from now on.
    ReseedTo {
        /// The node.
        node: String,
        /// The new holder.
        to: NodeId,
    },
    /// This replica holds `node` from now on and has nothing of it: ask
    /// these members, in order, for its last points.
    PullFrom {
        /// The node.
        node: String,
        /// Who may have them, the likeliest first.
        from: Vec<NodeId>,
    },
    /// Leaving: wait until `to` serves a sample of `node` newer than this
    /// replica's last before exiting.
    Confirm {
        /// The node.
        node: String,
        /// The new owner.
        to: NodeId,
    },
    /// This replica no longer holds `node`: drop its points.
    Forget {
        /// The node.
        node: String,
    },
}

impl Action {
    /// The node the action is about.
    pub fn node(&self) -> &str {
        match self {
            Action::Adopt { node, .. }
            | Action::ReleaseTo { node, .. }
            | Action::ReseedTo { node, .. }
            | Action::PullFrom { node, .. }
            | Action::Confirm { node, .. }
            | Action::Forget { node } => node,
        }
    }
}

/// What this replica did with one node in one view.
struct Stance {
    scrapes: bool,
    holders: Holders,
    holds: bool,
}

fn stance(view: Option<&Ownership>, me: Option<NodeId>, node: &str) -> Stance {
    match view {
        None => Stance { scrapes: false, holders: Holders::NONE, holds: false },
        Some(v) => {
            let holders = v.holders(node);
            let scrapes = v.scrapes(node);
            Stance { scrapes, holders, holds: scrapes || me.is_some_and(|me| holders.contains(me)) }
        }
    }
}

/// Whether `id` can still send anything: a member of `view` that is not
/// Down and that this replica can reach.
fn alive(view: &Ownership, id: NodeId) -> bool {
    view.members.get(&id).is_some_and(|m| m.state != MemberState::Down) && !view.unreachable.contains(&id)
}

/// What this replica (`new.me`) must do with the points of `nodes` as its
/// view changes from `old` (`None` at start: nothing held, nothing
/// scraped) to `new`. `held(node)`: whether it holds any point of the node
/// now. Actions come sorted by node, in the order they are to be done.
pub fn actions(old: Option<&Ownership>, new: &Ownership, nodes: &[String], held: &dyn Fn(&str) -> bool) -> Vec<Action> {
    let me = new.me;
    let leaving = me.is_some_and(|me| new.members.get(&me).is_some_and(|m| m.state != MemberState::Active));
    let mut out = Vec::new();
    for node in nodes {
        let (was, now) = (stance(old, me, node), stance(Some(new), me, node));
        let new_scraper = new.assigned(node).filter(|o| Some(*o) != me);
        let has_points = held(node);
        if now.scrapes && !was.scrapes {
            let previous = old.and_then(|o| o.assigned(node)).filter(|p| Some(*p) != me);
            let orphan = previous.is_none_or(|p| !alive(new, p)) || new.covers(node) || new.stands_in(node);
            out.push(Action::Adopt { node: node.clone(), orphan });
        }
        let released = was.scrapes && !now.scrapes;
        if released && let Some(to) = new_scraper {
            out.push(Action::ReleaseTo { node: node.clone(), to });
        }
        if (now.scrapes || released) && has_points {
            for to in now.holders.as_slice() {
                let seeded = Some(*to) == me || was.holders.contains(*to) || (released && Some(*to) == new_scraper);
                if !seeded {
                    out.push(Action::ReseedTo { node: node.clone(), to: *to });
                }
            }
        }
        if now.holds && !has_points {
            let mut from: Vec<NodeId> = Vec::new();
            let owners = [new.owner(node), old.and_then(|o| o.owner(node))];
            let others = now.holders.as_slice().iter().chain(was.holders.as_slice()).copied();
            for id in owners.into_iter().flatten().chain(others) {
                if Some(id) != me && !from.contains(&id) {
                    from.push(id);
                }
            }
            if !from.is_empty() {
                out.push(Action::PullFrom { node: node.clone(), from });
            }
        }
        if leaving
            && released
            && let Some(to) = new_scraper
        {
            out.push(Action::Confirm { node: node.clone(), to });
        }
        if was.holds && !now.holds && has_points {
            out.push(Action::Forget { node: node.clone() });
        }
    }
    out
}

#[cfg(test)]
mod tests;
