//! What this replica answers when asked for usage — by a peer over the
//! peer port, or by its own API for its local part: the points it holds,
//! for the objects its own inventory says exist and the selectors match.
//! Answers are data; the asker merges them and decides what is missing.

use std::sync::Arc;

use apimachinery::selector::{FieldSelector, LabelSelector};

use super::wire::{PodAnswer, PodsQuery};
use crate::model::{Inventory, MetricsReader, NodeUsage, UnixNanos};
use crate::store::Store;

/// Answers from one replica's store and inventory.
#[derive(Clone)]
pub struct Answerer {
    /// The points this replica holds.
    pub store: Arc<Store>,
    /// The objects that exist, with their labels.
    pub inventory: Arc<dyn Inventory>,
}

/// A selector in a peer query that does not parse (the asker parsed it
/// already, so this means a peer of another build or a broken one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector in a peer query: {0}")]
pub struct BadQuery(String);

impl Answerer {
    /// Usage of the named nodes this replica can serve.
    pub fn nodes(&self, names: &[String], now: UnixNanos) -> Vec<(String, NodeUsage)> {
        names.iter().filter_map(|n| self.store.node(n, now).map(|u| (n.clone(), u))).collect()
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
        let keys = match &query.one {
            Some(key) => vec![key.clone()],
            None => self.store.pod_keys(query.namespace.as_deref()),
        };
        let mut out = Vec::new();
        for (namespace, name) in keys {
            let Some(meta) = self.inventory.pod(&namespace, &name) else { continue };
            if !(labels.matches(&meta.labels) && fields.matches(&name, Some(&namespace))) {
                continue;
            }
            if let Some((node, usage)) = self.store.pod_on_node(&namespace, &name, now) {
                out.push(PodAnswer { namespace, name, node, usage });
            }
        }
        Ok(out)
    }
}
