//! The stand-in's object store: Nodes, Pods and ConfigMaps as JSON, one
//! global monotonically increasing resourceVersion, and a bounded in-memory
//! event log that watches replay from. It owns versioning and the log; it
//! knows nothing of HTTP, selectors or how objects are built.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::watch;

/// The kinds of stored objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Node,
    Pod,
    ConfigMap,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
        }
    }
}

/// Watch event types the store records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as recorded in the log.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: Kind,
    pub ty: EventType,
    /// The object after the change (for deletions: its last state, with the
    /// deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change, for MODIFIED (selectors turn a change
    /// that moves an object in or out of a selection into ADDED/DELETED).
    pub prev: Option<Arc<Value>>,
}

/// A watch asked for a resourceVersion the log no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

/// (namespace, name); namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

#[derive(Debug)]
struct Inner {
    rv: u64,
    serial: u64,
    objects: BTreeMap<Kind, BTreeMap<Key, Arc<Value>>>,
    log: VecDeque<Event>,
    capacity: usize,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
}

/// One page of a list (see [`Store::page`]).
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Arc<Value>>,
    /// More matching objects follow the last item.
    pub more: bool,
    /// How many objects follow the last item, when counted.
    pub rest: Option<usize>,
    pub rv: u64,
}

/// The store, shared between the handle and the HTTP handlers.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

fn set_rv(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// An empty store whose log keeps the last `capacity` events.
    pub fn new(capacity: usize) -> Store {
        let inner = Inner {
            rv: 1,
            serial: 0,
            objects: BTreeMap::new(),
            log: VecDeque::new(),
            capacity: capacity.max(1),
            compacted: 1,
        };
        Store { inner: Mutex::new(inner), changed: watch::channel(1).0 }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver that changes whenever the resourceVersion does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Takes the next resourceVersion for an object kept outside this store
    /// (Secrets), so every object shares one sequence as in etcd.
    pub fn bump(&self) -> u64 {
        let mut inner = self.lock();
        inner.rv += 1;
        inner.rv
    }

    /// A fresh serial number (for uids).
    pub fn next_serial(&self) -> u64 {
        let mut inner = self.lock();
        inner.serial += 1;
        inner.serial
    }

    fn record(&self, mut inner: MutexGuard<'_, Inner>, event: Event) -> u64 {
        let rv = event.rv;
        inner.log.push_back(event);
        while inner.log.len() > inner.capacity {
            if let Some(old) = inner.log.pop_front() {
                inner.compacted = old.rv;
            }
        }
        drop(inner);
        self.changed.send_replace(rv);
        rv
    }

    /// Creates or replaces an object; returns its new resourceVersion.
    pub fn put(&self, kind: Kind, key: Key, mut object: Value) -> u64 {
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut object, rv);
        let object = Arc::new(object);
        let prev = inner.objects.entry(kind).or_default().insert(key, object.clone());
        let ty = if prev.is_some() { EventType::Modified } else { EventType::Added };
        self.record(inner, Event { rv, kind, ty, object, prev })
    }

    /// Changes an existing object in place; `None` if it does not exist.
    pub fn update(&self, kind: Kind, key: &Key, change: impl FnOnce(&mut Value)) -> Option<u64> {
        let mut object = (*self.get(kind, key)?).clone();
        change(&mut object);
        Some(self.put(kind, key.clone(), object))
    }

    /// Deletes an object; returns the deletion's resourceVersion.
    pub fn delete(&self, kind: Kind, key: &Key) -> Option<u64> {
        let mut inner = self.lock();
        let old = inner.objects.get_mut(&kind)?.remove(key)?;
        inner.rv += 1;
        let rv = inner.rv;
        let mut last = (*old).clone();
        set_rv(&mut last, rv);
        let event = Event { rv, kind, ty: EventType::Deleted, object: Arc::new(last), prev: Some(old) };
        Some(self.record(inner, event))
    }

    /// One object.
    pub fn get(&self, kind: Kind, key: &Key) -> Option<Arc<Value>> {
        self.lock().objects.get(&kind)?.get(key).cloned()
    }

    /// Every object of a kind (in one namespace if given), sorted by
    /// namespace then name, with the resourceVersion of the snapshot.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(&kind)
            .map(|m| {
                m.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
                    .map(|(_, o)| o.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.rv)
    }

    /// One page of a list: the objects after `after` (in key order, within
    /// `namespace` if given) that `matches` accepts, at most `limit` of
    /// them. Walks the key range from `after` instead of the whole kind, so
    /// paging through 300,000 pods costs one pass, not one pass per page.
    /// The second value says whether more matching objects follow, and how
    /// many objects (matching or not) follow when `count_rest` asks for it.
    pub fn page(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        after: Option<&Key>,
        limit: Option<usize>,
        count_rest: bool,
        matches: impl Fn(&Value) -> bool,
    ) -> Page {
        use std::ops::Bound;
        let inner = self.lock();
        let mut page = Page { items: Vec::new(), more: false, rest: None, rv: inner.rv };
        let Some(objects) = inner.objects.get(&kind) else { return page };
        let lower = match (after, namespace) {
            (Some(key), _) => Bound::Excluded(key.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut range =
            objects.range((lower, Bound::Unbounded)).take_while(|((ns, _), _)| namespace.is_none_or(|want| ns == want));
        let limit = limit.unwrap_or(usize::MAX);
        for (_, object) in range.by_ref() {
            if !matches(object) {
                continue;
            }
            if page.items.len() == limit {
                page.more = true;
                break;
            }
            page.items.push(object.clone());
        }
        if page.more && count_rest {
            // The object that broke the loop is one of the rest.
            page.rest = Some(1 + range.count());
        }
        page
    }

    /// Keys of every object of a kind.
    pub fn keys(&self, kind: Kind) -> Vec<Key> {
        self.lock().objects.get(&kind).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// Events of `kind` after `rv`, and the current resourceVersion.
    pub fn events_since(&self, kind: Kind, rv: u64) -> Result<(Vec<Event>, u64), Expired> {
        let inner = self.lock();
        if rv < inner.compacted {
            return Err(Expired { requested: rv, oldest: inner.compacted });
        }
        let start = inner.log.partition_point(|e| e.rv <= rv);
        let events = inner.log.iter().skip(start).filter(|e| e.kind == kind).cloned().collect();
        Ok((events, inner.rv))
    }

    /// Drops the whole event log: watches from any earlier resourceVersion
    /// now get 410 Gone, as after an etcd compaction.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.log.clear();
        inner.compacted = inner.rv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> Key {
        (String::new(), name.to_string())
    }

    #[test]
    fn every_change_bumps_one_global_resource_version_and_is_logged() {
        let s = Store::new(100);
        let a = s.put(Kind::Node, key("a"), json!({"metadata": {"name": "a"}}));
        let b = s.put(Kind::Pod, key("p"), json!({"metadata": {"name": "p"}}));
        let c = s.delete(Kind::Node, &key("a")).unwrap();
        assert!(a < b && b < c);
        let (events, now) = s.events_since(Kind::Node, a - 1).unwrap();
        assert_eq!(now, c);
        assert_eq!(
            events.iter().map(|e| (e.rv, e.ty)).collect::<Vec<_>>(),
            [(a, EventType::Added), (c, EventType::Deleted)]
        );
        assert_eq!(events[1].object["metadata"]["resourceVersion"], c.to_string());
    }

    #[test]
    fn watching_from_before_the_log_window_is_expired() {
        let s = Store::new(2);
        let first = s.put(Kind::Node, key("a"), json!({"metadata": {}}));
        for n in 0..3 {
            s.put(Kind::Node, key(&format!("n{n}")), json!({"metadata": {}}));
        }
        assert!(s.events_since(Kind::Node, first).is_err());
        let now = s.resource_version();
        assert!(s.events_since(Kind::Node, now - 1).is_ok());
        s.compact();
        assert!(s.events_since(Kind::Node, now - 1).is_err());
        assert!(s.events_since(Kind::Node, now).is_ok());
    }

    #[test]
    fn pages_walk_a_namespace_from_the_continue_key_once_each() {
        let s = Store::new(100);
        for ns in ["a", "b", "c"] {
            for n in 0..5 {
                let name = format!("p{n}");
                s.put(Kind::Pod, (ns.to_string(), name.clone()), json!({"metadata": {"name": name, "namespace": ns}}));
            }
        }
        let odd = |o: &Value| o["metadata"]["name"].as_str().is_some_and(|n| n.ends_with(['1', '3']));
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s.page(Kind::Pod, Some("b"), after.as_ref(), Some(2), true, |_| true);
            seen.extend(page.items.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()));
            if !page.more {
                assert_eq!(page.rest, None);
                break;
            }
            assert_eq!(page.rest, Some(5 - seen.len()));
            after = Some(("b".to_string(), seen.last().unwrap().clone()));
        }
        assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4"]);
        let all = s.page(Kind::Pod, None, None, None, false, odd);
        assert_eq!(all.items.len(), 6);
        assert!(!all.more);
        let first = s.page(Kind::Pod, None, None, Some(6), false, odd);
        assert!(!first.more, "no further match after the last odd pod");
        let cut = s.page(Kind::Pod, None, None, Some(5), false, odd);
        assert!(cut.more);
    }
}
