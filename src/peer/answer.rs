//! What this replica answers when asked for usage — by a peer over the
//! peer port, or by its own API for its local part: the points it holds,
//! for the objects its own inventory says exist and the selectors match.
//! It also takes in points other replicas push (backups, handovers) and
//! hands out the last two points of nodes a newcomer is about to own.
//! Answers are data; the asker merges them and decides what is missing.

use std::sync::Arc;

use apimachinery::selector::{FieldSelector, LabelSelector};
use raft::NodeId;
use tokio::sync::watch;

use super::wire::{PodAnswer, PodsQuery, Push, Source};
use crate::model::NodeBatch;
use crate::model::{Inventory, MetricsReader, NodeUsage, UnixNanos};
use crate::ownership::Ownership;
use crate::store::Store;

/// Answers from one replica's stores and inventory.
#[derive(Clone)]
pub struct Answerer {
    /// The points of the nodes this replica scrapes.
    pub store: Arc<Store>,
    /// The points other replicas back up here.
    pub backups: Arc<Store>,
    /// The objects that exist, with their labels.
    pub inventory: Arc<dyn Inventory>,
    /// Who owns what, at the epoch this replica acts on.
    pub ownership: watch::Receiver<Arc<Ownership>>,
}

/// A selector in a peer query that does not parse (the asker parsed it
/// already, so this means a peer of another build or a broken one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector in a peer query: {0}")]
pub struct BadQuery(String);

impl Answerer {
    /// An answerer over a single store, with nothing backed up (a replica
    /// without peers).
    pub fn local(store: Arc<Store>, inventory: Arc<dyn Inventory>, backups: Arc<Store>) -> Answerer {
        let (_, ownership) = watch::channel(Arc::new(Ownership::single()));
        Answerer { store, backups, inventory, ownership }
    }

    /// Whether `node`'s backup here was sent by `owner` (by this replica's ring).
    fn backed_up_by(&self, node: &str, owner: NodeId) -> bool {
        self.ownership.borrow().owner(node) == Some(owner)
    }

    /// Usage of the named nodes this replica can serve from `source`: its
    /// own points (or, for a node it has just come to own, the backup
    /// adopted any moment now), or a silent owner's backups.
    pub fn nodes(&self, names: &[String], source: Source, now: UnixNanos) -> Vec<(String, NodeUsage)> {
        names
            .iter()
            .filter_map(|n| {
                let usage = match source {
                    Source::Owned => self.store.node(n, now).or_else(|| self.owned_backup(n, now)),
                    Source::BackupOf(_) => self.backups.node(n, now),
                    Source::Any => newer(self.store.node(n, now), self.backups.node(n, now)),
                };
                usage.map(|u| (n.clone(), u))
            })
            .collect()
    }

    fn owned_backup(&self, node: &str, now: UnixNanos) -> Option<NodeUsage> {
        self.ownership.borrow().scrapes(node).then(|| self.backups.node(node, now)).flatten()
    }

    /// The pods this replica holds that `query` selects (by this replica's
    /// inventory: running pods, labels), with their usage and node.
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
        let selected = |namespace: &str, name: &str| {
            self.inventory
                .pod(namespace, name)
                .is_some_and(|meta| labels.matches(&meta.labels) && fields.matches(name, Some(namespace)))
        };
        // With a label selector (an HPA's) the inventory's index names the
        // few pods it can match; without one, the store's own keys are fewer
        // than every pod the inventory knows.
        let indexed: Option<Vec<(String, String)>> = (query.one.is_none() && !labels.is_empty()).then(|| {
            self.inventory
                .pods(query.namespace.as_deref(), &labels)
                .iter()
                .map(|m| (m.namespace.clone().unwrap_or_default(), m.name.clone()))
                .collect()
        });
        let keys = |store: &Store| match (&query.one, &indexed) {
            (Some(key), _) => vec![key.clone()],
            (None, Some(keys)) => keys.clone(),
            (None, None) => store.pod_keys(query.namespace.as_deref()),
        };
        let mut out = Vec::new();
        let mut take = |store: &Store, keep: &dyn Fn(&str) -> bool| {
            for (namespace, name) in keys(store) {
                if !selected(&namespace, &name) {
                    continue;
                }
                if let Some((node, usage)) = store.pod_on_node(&namespace, &name, now)
                    && keep(&node)
                {
                    out.push(PodAnswer { namespace, name, node, usage });
                }
            }
        };
        match query.source {
            Source::Owned => {
                take(&self.store, &|_| true);
                let ownership = self.ownership.borrow().clone();
                take(&self.backups, &|node| ownership.scrapes(node) && self.store.newest_sample(node).is_none());
            }
            Source::BackupOf(owner) => take(&self.backups, &|node| self.backed_up_by(node, owner)),
            Source::Any => {
                take(&self.store, &|_| true);
                take(&self.backups, &|_| true);
            }
        }
        Ok(out)
    }

    /// Merges pushed points: a handover of a node this replica scrapes goes
    /// into what it serves, anything else is kept as a backup. Returns how
    /// many batches were newer than what was held.
    pub fn take(&self, push: Push, now: UnixNanos) -> usize {
        let ownership = self.ownership.borrow().clone();
        let mut taken = 0;
        for (node, batch) in push.points {
            let store = if push.handover && ownership.scrapes(&node) { &self.store } else { &self.backups };
            taken += usize::from(store.store_replica(&node, batch, now));
        }
        taken
    }

    /// The batches that rebuild the last two points of each named node, from
    /// what this replica serves or else holds as a backup.
    pub fn points(&self, names: &[String]) -> Vec<(String, Vec<NodeBatch>)> {
        names
            .iter()
            .map(|n| {
                let mut b = self.store.export(n);
                if b.is_empty() {
                    b = self.backups.export(n);
                }
                (n.clone(), b)
            })
            .filter(|(_, b)| !b.is_empty())
            .collect()
    }
}

/// The newer of two usages.
fn newer(a: Option<NodeUsage>, b: Option<NodeUsage>) -> Option<NodeUsage> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.timestamp > a.timestamp { b } else { a }),
        (a, b) => a.or(b),
    }
}
