//! What this replica answers from the points it holds — for a peer over the
//! peer port ([`Answers`]), and for its own fan-out's local part: usage of
//! named nodes, and of the pods a query selects by this replica's inventory
//! (running pods, labels). Answers are data; the asker merges them and
//! decides what is missing. It never asks anyone else.

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::selector::{FieldSelector, LabelSelector};
use raft::NodeId;
use tokio::sync::watch;

use crate::model::{Inventory, MetricsReader, NodeUsage, UnixNanos, now_nanos};
use crate::ownership::Ownership;
use crate::peer::routes::Answers;
use crate::peer::wire::{NodesQuery, NodesReply, PodAnswer, PodsQuery, PodsReply, Source};
use crate::store::Store;

/// Answers from one replica's store and inventory.
#[derive(Clone)]
pub struct Local {
    /// Every point this replica holds (scraped here, or copies).
    pub store: Arc<Store>,
    /// The objects that exist, with their labels.
    pub inventory: Arc<dyn Inventory>,
    /// Who owns what, at the epoch this replica acts on.
    pub ownership: watch::Receiver<Arc<Ownership>>,
}

/// A selector in a pods query that does not parse (the asker parsed it
/// already, so this means a peer of another build or a broken one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector in a peer query: {0}")]
pub struct BadQuery(String);

impl Local {
    /// Usage of the named nodes this replica holds servable points of,
    /// whatever the source asked for: the asker named them, and a holder's
    /// copy is as true as the owner's (the asker keeps the newest).
    pub fn nodes(&self, names: &[String], now: UnixNanos) -> Vec<(String, NodeUsage)> {
        names.iter().filter_map(|n| self.store.node(n, now).map(|u| (n.clone(), u))).collect()
    }

    /// The pods held that `query` selects (by this replica's inventory:
    /// running pods, labels), with their usage and node, from the nodes its
    /// source names: the nodes this replica scrapes (`Owned`), those an
    /// unreachable owner owns (`BackupOf`), or every node held (`Any`, and
    /// whatever the source when the asker's epoch is not this replica's).
    pub fn pods(&self, query: &PodsQuery, now: UnixNanos) -> Result<Vec<PodAnswer>, BadQuery> {
        let labels = if query.labels.is_empty() {
            LabelSelector::everything()
        } else {
            LabelSelector::parse(&query.labels).map_err(|e| BadQuery(e.to_string()))?
        };
        let fields = if query.fields.is_empty() {
            FieldSelector::default()
        } else {
            FieldSelector::parse(&query.fields).map_err(|e| BadQuery(e.to_string()))?
        };
        let ownership = self.ownership.borrow().clone();
        // An asker at another epoch planned its parts by another ring: what
        // this replica owns (or backs up) now is not the part it was asked
        // for, and a node that moved between the two rings would be in
        // nobody's answer. It gets every pod held instead; the asker keeps
        // the newest of each.
        let source = if query.epoch == ownership.epoch { query.source } else { Source::Any };
        let mut decided: HashMap<String, bool> = HashMap::new();
        let mut from_node = |node: &str| -> bool {
            if let Some(keep) = decided.get(node) {
                return *keep;
            }
            let keep = match source {
                Source::Owned => ownership.scrapes(node),
                Source::BackupOf(owner) => ownership.owner(node) == Some(owner),
                Source::Any => true,
            };
            decided.insert(node.to_string(), keep);
            keep
        };
        let selected = |namespace: &str, name: &str| {
            self.inventory
                .pod(namespace, name)
                .is_some_and(|meta| labels.matches(&meta.labels) && fields.matches(name, Some(namespace)))
        };
        // A GET names its pod; a label selector (an HPA's) lets the
        // inventory's index name the few pods it can match: those are looked
        // up one by one. Otherwise every pod of the nodes the source names,
        // in one pass over them.
        let keys: Vec<(String, String)> = match &query.one {
            Some(key) => vec![key.clone()],
            None if !labels.is_empty() => self
                .inventory
                .pods(query.namespace.as_deref(), &labels)
                .iter()
                .map(|m| (m.namespace.clone().unwrap_or_default(), m.name.clone()))
                .collect(),
            None => {
                let held = self.store.pods_where(query.namespace.as_deref(), &mut from_node, now);
                return Ok(held
                    .into_iter()
                    .filter(|((namespace, name), _, _)| selected(namespace, name))
                    .map(|((namespace, name), node, usage)| PodAnswer { namespace, name, node, usage })
                    .collect());
            }
        };
        let mut out = Vec::new();
        for (namespace, name) in keys {
            if !selected(&namespace, &name) {
                continue;
            }
            if let Some((node, usage)) = self.store.pod_on_node(&namespace, &name, now)
                && from_node(&node)
            {
                out.push(PodAnswer { namespace, name, node, usage });
            }
        }
        Ok(out)
    }
}

impl Answers for Local {
    fn nodes(&self, _from: NodeId, query: NodesQuery) -> NodesReply {
        let epoch = self.ownership.borrow().epoch;
        NodesReply { epoch, items: Local::nodes(self, &query.names, now_nanos()) }
    }

    fn pods(&self, _from: NodeId, query: PodsQuery) -> Result<PodsReply, String> {
        let epoch = self.ownership.borrow().epoch;
        Local::pods(self, &query, now_nanos()).map(|items| PodsReply { epoch, items }).map_err(|e| e.to_string())
    }
}
