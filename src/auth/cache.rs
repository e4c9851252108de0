//! A small bounded cache of review outcomes with a time to live, shared by
//! the token and access review caches. It only stores and expires; it must
//! not decide what is cached (the callers do) and never blocks on I/O.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bounded map whose entries expire `ttl` after insertion. When full, the
/// oldest entry goes first.
pub struct TtlCache<K, V> {
    capacity: usize,
    inner: Mutex<Entries<K, V>>,
}

struct Entries<K, V> {
    map: HashMap<K, (V, Instant)>,
    /// Insertion order, for eviction; may hold stale keys already replaced.
    order: VecDeque<(K, Instant)>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Entries { map: HashMap::new(), order: VecDeque::new() }),
        }
    }

    /// The value for `key` if it is younger than its ttl at `now`.
    pub fn get_at(&self, key: &K, now: Instant) -> Option<V> {
        let mut e = self.lock();
        match e.map.get(key) {
            Some((v, expires)) if *expires > now => Some(v.clone()),
            Some(_) => {
                e.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `key`, expiring `ttl` after `now`.
    pub fn insert_at(&self, key: K, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let expires = now + ttl;
        let mut e = self.lock();
        e.map.insert(key.clone(), (value, expires));
        e.order.push_back((key, expires));
        while e.map.len() > self.capacity {
            let Some((old, at)) = e.order.pop_front() else {
                break;
            };
            // Only remove the entry if it is the one this order slot recorded.
            if e.map.get(&old).is_some_and(|(_, exp)| *exp == at) {
                e.map.remove(&old);
            }
        }
        // Keep the order queue from growing with replaced keys.
        if e.order.len() > self.capacity.saturating_mul(2) {
            let Entries { map, order } = &mut *e;
            order.retain(|(k, at)| map.get(k).is_some_and(|(_, exp)| exp == at));
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.get_at(key, Instant::now())
    }

    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        self.insert_at(key, value, ttl, Instant::now())
    }

    /// Number of entries held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // in a way that matters for a cache, so a poisoned lock is reused.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let c = TtlCache::new(4);
        let t0 = Instant::now();
        c.insert_at("a", 1, Duration::from_secs(10), t0);
        assert_eq!(c.get_at(&"a", t0 + Duration::from_secs(9)), Some(1));
        assert_eq!(c.get_at(&"a", t0 + Duration::from_secs(10)), None);
        assert!(c.is_empty());
    }

    #[test]
    fn cache_never_holds_more_than_its_capacity_and_evicts_oldest() {
        let c = TtlCache::new(3);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        for i in 0..100u32 {
            c.insert_at(i, i, ttl, t0 + Duration::from_millis(u64::from(i)));
            assert!(c.len() <= 3);
        }
        assert_eq!(c.get_at(&99, t0), Some(99));
        assert_eq!(c.get_at(&96, t0), None);
        // Re-inserting the same key does not evict others.
        for _ in 0..10 {
            c.insert_at(99, 7, ttl, t0);
        }
        assert_eq!(c.get_at(&98, t0), Some(98));
        assert_eq!(c.get_at(&99, t0), Some(7));
    }
}
