//! A persistent hash map for the node's directory indexes.
//!
//! A node swaps whole immutable snapshots, yet a one-user change must not copy a
//! 100,000-user index. [`ShardedMap`] splits its entries over a fixed number of shards, each an
//! ordinary `HashMap` behind an `Arc`. Cloning the map copies only the shard table (one pointer
//! per shard); changing an entry copies the table once and the one shard it lands in, while
//! every other shard stays shared with the map it was cloned from. With shards of about 64
//! entries, a change costs a few microseconds and a few kilobytes whatever the map's size.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

type Shard<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Entries per shard the map is sized for when built.
const TARGET_PER_SHARD: usize = 64;

/// A hash map whose clones share their unchanged parts.
#[derive(Debug, Clone)]
pub struct ShardedMap<K, V> {
    shards: Arc<Vec<Arc<Shard<K, V>>>>,
    /// Picks the shard; shared by every clone, so clones agree on where a key lives.
    router: foldhash::quality::RandomState,
    len: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    /// An empty map sized for about `expected` entries (it grows past that; shards just get
    /// fuller).
    pub fn with_capacity(expected: usize) -> Self {
        let shards = (expected / TARGET_PER_SHARD)
            .clamp(1, 1 << 16)
            .next_power_of_two();
        let hasher = foldhash::fast::RandomState::default();
        Self {
            shards: Arc::new(
                (0..shards)
                    .map(|_| Arc::new(Shard::with_hasher(hasher.clone())))
                    .collect(),
            ),
            router: foldhash::quality::RandomState::default(),
            len: 0,
        }
    }

    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.router.hash_one(key) as usize) & (self.shards.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    /// The shard holding `key`, unshared from every clone (copied if it was shared).
    fn shard_mut<Q: Hash + ?Sized>(&mut self, key: &Q) -> &mut Shard<K, V> {
        let i = self.shard_of(key);
        Arc::make_mut(&mut Arc::make_mut(&mut self.shards)[i])
    }

    /// Inserts, returning the value `key` had. When the map has grown to four times what its
    /// shards were sized for, it is rebuilt with more (once per fourfold growth), so shards
    /// stay small however the map was started.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(&key).insert(key, value);
        if old.is_none() {
            self.len += 1;
            if self.len > self.shards.len() * TARGET_PER_SHARD * 4 && self.shards.len() < 1 << 16 {
                self.regrow();
            }
        }
        old
    }

    fn regrow(&mut self) {
        let mut grown = Self::with_capacity(self.len * 2);
        for (k, v) in self.iter() {
            grown.insert(k.clone(), v.clone());
        }
        *self = grown;
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Do not unshare a shard for a key it does not hold.
        self.get(key)?;
        let old = self.shard_mut(key).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// How many shards this map shares with `other` (for tests and benchmarks).
    pub fn shared_shards(&self, other: &Self) -> usize {
        self.shards
            .iter()
            .zip(other.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_all_but_the_changed_shard() {
        let mut a = ShardedMap::with_capacity(10_000);
        for i in 0..10_000u32 {
            a.insert(i, i * 2);
        }
        assert_eq!(a.len(), 10_000);
        let mut b = a.clone();
        assert_eq!(b.shared_shards(&a), a.shard_count());
        b.insert(7, 0);
        assert_eq!(b.remove(&8), Some(16));
        assert_eq!(b.remove(&1_000_000), None);
        assert!(b.shared_shards(&a) >= a.shard_count() - 2);
        assert_eq!((a.get(&7), b.get(&7)), (Some(&14), Some(&0)));
        assert_eq!((a.get(&8), b.get(&8)), (Some(&16), None));
        assert_eq!((a.len(), b.len()), (10_000, 9_999));
        assert_eq!(b.iter().count(), 9_999);
    }

    #[test]
    fn a_map_started_small_grows_its_shards() {
        let mut m = ShardedMap::with_capacity(0);
        assert_eq!(m.shard_count(), 1);
        for i in 0..100_000u32 {
            m.insert(i, i);
        }
        assert!(
            m.shard_count() >= 100_000 / (TARGET_PER_SHARD * 4),
            "{}",
            m.shard_count()
        );
        assert_eq!(m.len(), 100_000);
        assert!((0..100_000u32).all(|i| m.get(&i) == Some(&i)));
    }

    #[test]
    fn borrowed_lookups() {
        let mut m: ShardedMap<Arc<str>, u8> = ShardedMap::with_capacity(0);
        m.insert(Arc::from("okta\0ana"), 1);
        assert_eq!(m.get("okta\0ana"), Some(&1));
        assert_eq!(m.get("okta\0bo"), None);
        assert!(!m.is_empty());
    }
}
