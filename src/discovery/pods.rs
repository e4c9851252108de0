//! The running pods discovery knows, indexed for the API's lists: by
//! namespace, and by (namespace, label key, label value) so a selector with
//! an equality requirement (an HPA's `matchLabels`) reads only the pods it
//! can match instead of every pod. Fed by the pod watcher's events; entries
//! are shared (`Arc`), so a list copies pointers, not label maps. The list
//! of every pod, sorted as served, is kept until the next change: `top pod
//! -A` asks for it whole, and at 300,000 pods sorting it cost more than the
//! rest of the listing.

use std::sync::{Arc, RwLock};

use apimachinery::selector::{LabelSelector, Operator};
use foldhash::HashMap;

use crate::model::{ObjectMeta, PodList};

/// Identity of an entry in a posting list (the address of its `Arc`).
type Slot = usize;

fn slot(meta: &Arc<ObjectMeta>) -> Slot {
    Arc::as_ptr(meta) as usize
}

#[derive(Debug, Default)]
struct Index {
    /// namespace → name → pod.
    by_namespace: HashMap<String, HashMap<String, Arc<ObjectMeta>>>,
    /// (namespace, key, value) → the pods with that label.
    by_label: HashMap<(String, String, String), HashMap<Slot, Arc<ObjectMeta>>>,
    len: usize,
    /// Changes so far (a relist's index continues the count of the one it
    /// replaces): tells whether a kept list is current.
    changes: u64,
}

impl Index {
    fn insert(&mut self, meta: ObjectMeta) {
        let ns = meta.namespace.clone().unwrap_or_default();
        self.remove(&ns, &meta.name);
        let meta = Arc::new(meta);
        for (k, v) in &meta.labels {
            self.by_label.entry((ns.clone(), k.clone(), v.clone())).or_default().insert(slot(&meta), meta.clone());
        }
        self.by_namespace.entry(ns).or_default().insert(meta.name.clone(), meta);
        self.len += 1;
        self.changes += 1;
    }

    /// Every pod, in no particular order.
    fn all(&self) -> impl Iterator<Item = &Arc<ObjectMeta>> {
        self.by_namespace.values().flat_map(HashMap::values)
    }

    fn remove(&mut self, ns: &str, name: &str) {
        let Some(pods) = self.by_namespace.get_mut(ns) else { return };
        let Some(old) = pods.remove(name) else { return };
        if pods.is_empty() {
            self.by_namespace.remove(ns);
        }
        for (k, v) in &old.labels {
            let key = (ns.to_string(), k.clone(), v.clone());
            if let Some(posting) = self.by_label.get_mut(&key) {
                posting.remove(&slot(&old));
                if posting.is_empty() {
                    self.by_label.remove(&key);
                }
            }
        }
        self.len -= 1;
        self.changes += 1;
    }
}

/// The pod index, shared between the watcher task and the API.
#[derive(Debug, Default)]
pub struct PodIndex {
    live: RwLock<Index>,
    /// A relist in progress: filled by `InitApply`, swapped in at `InitDone`.
    pending: std::sync::Mutex<Option<Index>>,
    /// Every pod in served order, as of `Index::changes`.
    every: std::sync::Mutex<Option<(u64, PodList)>>,
}

impl PodIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.live.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<Index>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An added or changed pod.
    pub fn apply(&self, meta: ObjectMeta) {
        self.write().insert(meta);
    }

    /// A deleted pod (or one that stopped running).
    pub fn delete(&self, namespace: &str, name: &str) {
        self.write().remove(namespace, name);
    }

    /// A relist starts: the next `init_apply`s replace everything at `init_done`.
    pub fn init(&self) {
        *self.pending() = Some(Index::default());
    }

    pub fn init_apply(&self, meta: ObjectMeta) {
        self.pending().get_or_insert_with(Index::default).insert(meta);
    }

    pub fn init_done(&self) {
        if let Some(mut fresh) = self.pending().take() {
            let mut live = self.write();
            fresh.changes += live.changes + 1;
            *live = fresh;
        }
    }

    pub fn len(&self) -> usize {
        self.read().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<ObjectMeta>> {
        self.read().by_namespace.get(namespace)?.get(name).cloned()
    }

    /// The pods `select` gives, in the order a list serves them; the list of
    /// every pod is the one kept ([`every`](Self::every)).
    pub fn list(&self, namespace: Option<&str>, selector: &LabelSelector) -> PodList {
        match namespace {
            None if selector.is_empty() => self.every(),
            _ => PodList::sorted(self.select(namespace, selector)),
        }
    }

    /// Every running pod, in the order a list serves them: the list kept
    /// since the last change, or made now (sorted outside the index's lock,
    /// so the watcher is not held up) and kept.
    pub fn every(&self) -> PodList {
        let (changes, metas) = {
            let index = self.read();
            if let Some((at, list)) = &*self.kept() {
                if *at == index.changes {
                    return list.clone();
                }
            }
            let mut metas = Vec::with_capacity(index.len);
            metas.extend(index.all().cloned());
            (index.changes, metas)
        };
        let list = PodList::sorted(metas);
        let mut kept = self.kept();
        if kept.as_ref().is_none_or(|(at, _)| *at < changes) {
            *kept = Some((changes, list.clone()));
        }
        list
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<(u64, PodList)>> {
        self.every.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pods in `namespace` (all when `None`) that `selector` matches, in no
    /// particular order. An equality requirement narrows the scan to the
    /// pods carrying that label; the whole selector is checked on each.
    pub fn select(&self, namespace: Option<&str>, selector: &LabelSelector) -> Vec<Arc<ObjectMeta>> {
        let index = self.read();
        let equality = selector.requirements().iter().find_map(|r| match r.op {
            Operator::Equals | Operator::DoubleEquals if r.values.len() == 1 => Some((&r.key, &r.values[0])),
            Operator::In if r.values.len() == 1 => Some((&r.key, &r.values[0])),
            _ => None,
        });
        let keep = |m: &&Arc<ObjectMeta>| selector.matches(&m.labels);
        match (namespace, equality) {
            (Some(ns), Some((k, v))) => index
                .by_label
                .get(&(ns.to_string(), k.clone(), v.clone()))
                .map(|p| p.values().filter(keep).cloned().collect())
                .unwrap_or_default(),
            (Some(ns), None) => {
                index.by_namespace.get(ns).map(|p| p.values().filter(keep).cloned().collect()).unwrap_or_default()
            }
            (None, _) => index.all().filter(keep).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: name.to_string(),
            namespace: Some(ns.to_string()),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn names(mut v: Vec<Arc<ObjectMeta>>) -> Vec<String> {
        v.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        v.iter().map(|m| format!("{}/{}", m.namespace.as_deref().unwrap_or(""), m.name)).collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).expect("selector")
    }

    #[test]
    fn selections_agree_with_the_selector_whichever_index_answers() {
        let idx = PodIndex::default();
        idx.apply(pod("a", "web-1", &[("app", "web"), ("tier", "fe")]));
        idx.apply(pod("a", "web-2", &[("app", "web"), ("tier", "be")]));
        idx.apply(pod("a", "db-1", &[("app", "db")]));
        idx.apply(pod("b", "web-3", &[("app", "web")]));
        assert_eq!(names(idx.select(Some("a"), &sel("app=web"))), ["a/web-1", "a/web-2"]);
        assert_eq!(names(idx.select(Some("a"), &sel("app=web,tier!=fe"))), ["a/web-2"]);
        assert_eq!(names(idx.select(Some("a"), &sel("tier"))), ["a/web-1", "a/web-2"]);
        assert_eq!(names(idx.select(None, &sel("app in (web)"))), ["a/web-1", "a/web-2", "b/web-3"]);
        assert_eq!(idx.select(None, &LabelSelector::everything()).len(), 4);
        assert!(idx.select(Some("c"), &sel("app=web")).is_empty());
    }

    #[test]
    fn relabels_and_deletes_leave_no_stale_postings() {
        let idx = PodIndex::default();
        idx.apply(pod("a", "p", &[("app", "web")]));
        idx.apply(pod("a", "p", &[("app", "db")]));
        assert!(idx.select(Some("a"), &sel("app=web")).is_empty());
        assert_eq!(idx.select(Some("a"), &sel("app=db")).len(), 1);
        assert_eq!(idx.len(), 1);
        idx.delete("a", "p");
        assert!(idx.is_empty());
        assert!(idx.select(Some("a"), &sel("app=db")).is_empty());
        assert!(idx.get("a", "p").is_none());
    }

    fn listed(list: &PodList) -> Vec<String> {
        list.metas
            .iter()
            .map(|m| format!("{}/{}:{:?}", m.namespace.as_deref().unwrap_or(""), m.name, m.labels))
            .collect()
    }

    #[test]
    fn the_kept_list_of_every_pod_follows_each_change_and_relist() {
        let idx = PodIndex::default();
        idx.apply(pod("b", "web-1", &[("app", "web")]));
        idx.apply(pod("a", "web-2", &[]));
        let first = idx.every();
        assert_eq!(listed(&first), ["a/web-2:{}", "b/web-1:{\"app\": \"web\"}"], "sorted as served");
        assert_eq!(*first.keys, [("a".to_string(), "web-2".to_string()), ("b".to_string(), "web-1".to_string())]);
        assert!(Arc::ptr_eq(&idx.every().metas, &first.metas), "kept while nothing changes");
        idx.apply(pod("b", "web-1", &[("app", "api")]));
        assert_eq!(listed(&idx.every()), ["a/web-2:{}", "b/web-1:{\"app\": \"api\"}"], "a relabel");
        idx.delete("a", "web-2");
        assert_eq!(listed(&idx.every()), ["b/web-1:{\"app\": \"api\"}"], "a delete");
        idx.init();
        idx.init_apply(pod("c", "x", &[]));
        assert_eq!(listed(&idx.every()), ["b/web-1:{\"app\": \"api\"}"], "a relist in progress");
        idx.init_done();
        assert_eq!(listed(&idx.every()), ["c/x:{}"], "a relist done, though it made as few changes");
        assert_eq!(listed(&idx.list(None, &LabelSelector::everything())), ["c/x:{}"]);
        assert_eq!(listed(&idx.list(Some("b"), &LabelSelector::everything())), Vec::<String>::new());
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_done() {
        let idx = PodIndex::default();
        idx.apply(pod("a", "old", &[]));
        idx.init();
        idx.init_apply(pod("a", "new", &[]));
        assert!(idx.get("a", "old").is_some(), "served until the relist completes");
        idx.init_done();
        assert!(idx.get("a", "old").is_none());
        assert!(idx.get("a", "new").is_some());
    }
}
