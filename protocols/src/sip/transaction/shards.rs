//! [`ShardedMap`]: a hash map split into many small ones by key hash, so that growing it never
//! rehashes more than a small part of it at once.
//!
//! A `std` map that fills up doubles and rehashes every entry in one call. A proxy keeps
//! hundreds of thousands of transactions (each waits out timers of up to 32 s), and one such
//! growth of the transaction index stalls every call for tens to hundreds of milliseconds:
//! 115,000 keys took 270 ms on a busy 2-core machine. Split into [`SHARDS`] maps, a growth
//! moves at most a [`SHARDS`]th of the entries; the price is hashing the key once more to
//! pick its shard.
//!
//! Keys come from the network (branches, Call-IDs), so every map hashes with [`Seeded`]:
//! foldhash, several times cheaper than `std`'s SipHash on these short keys, with seeds drawn
//! from the operating system's randomness for each map, so that nobody can pick keys that
//! collide without knowing them.
//!
//! Written here because no maintained crate fits: `hashbrown` (the `std` map) resizes all at once,
//! `griddle` (incremental resizing) has had no release for years, and the concurrent maps
//! (`dashmap`) shard for locking, not for resizing, and bring locks this single-threaded proxy
//! does not need.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::OnceLock;

use foldhash::quality::SeedableRandomState;
use foldhash::SharedSeed;

/// The hasher of maps keyed by what peers send: foldhash with random seeds (see
/// [`seeded`]).
pub type Seeded = SeedableRandomState;

/// A `std` map hashed with [`Seeded`].
pub type SeededMap<K, V> = HashMap<K, V, Seeded>;

/// A fresh [`Seeded`] hasher: a per-map seed and a per-process shared seed, both taken from
/// `std`'s `RandomState` (keyed from the operating system's randomness).
pub fn seeded() -> Seeded {
    static SHARED: OnceLock<SharedSeed> = OnceLock::new();
    let shared = SHARED.get_or_init(|| SharedSeed::from_u64(random_u64()));
    SeedableRandomState::with_seed(random_u64(), shared)
}

/// 64 random bits: `std`'s randomly keyed SipHash of a constant (a new key per call).
fn random_u64() -> u64 {
    RandomState::new().hash_one(0x5eed_u64)
}

/// An empty [`SeededMap`].
pub fn seeded_map<K, V>() -> SeededMap<K, V> {
    HashMap::with_hasher(seeded())
}

/// How many maps a [`ShardedMap`] is split into.
pub const SHARDS: usize = 256;

/// A hash map whose growth is spread over [`SHARDS`] independent maps. See the
/// [module doc](self).
#[derive(Debug, Clone)]
pub struct ShardedMap<K, V> {
    /// Picks a key's shard; independent of the shards' own hashers, so the keys within one
    /// shard still spread over its buckets.
    pick: Seeded,
    /// The maps, [`SHARDS`] of them.
    shards: Box<[SeededMap<K, V>]>,
    /// Entries in all shards together.
    len: usize,
}

impl<K: Hash + Eq, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            pick: seeded(),
            shards: (0..SHARDS).map(|_| seeded_map()).collect(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// An empty map (no shard allocates until it gets an entry).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).and_then(|s| s.get(key))
    }

    /// The value for `key`, mutably.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard_mut(key).and_then(|s| s.get_mut(key))
    }

    /// True if `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Sets `key`'s value; returns the one it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(&key)?.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let old = self.shard_mut(key)?.remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for s in self.shards.iter_mut() {
            s.retain(&mut keep);
        }
        self.len = self.shards.iter().map(HashMap::len).sum();
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards.iter().flat_map(HashMap::iter)
    }

    fn index<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The remainder is below SHARDS, the number of shards: `get` always finds one.
        (self.pick.hash_one(key) % SHARDS as u64) as usize
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> Option<&SeededMap<K, V>> {
        self.shards.get(self.index(key))
    }

    fn shard_mut<Q: Hash + ?Sized>(&mut self, key: &Q) -> Option<&mut SeededMap<K, V>> {
        let i = self.index(key);
        self.shards.get_mut(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map() {
        let mut m = ShardedMap::new();
        assert!(m.is_empty());
        for i in 0..10_000u64 {
            assert_eq!(m.insert(i, i * 2), None);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.insert(7, 1), Some(14));
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&7), Some(&1));
        *m.get_mut(&8).unwrap() += 1;
        assert_eq!(m.get(&8), Some(&17));
        assert!(m.contains_key(&9_999));
        assert_eq!(m.remove(&9_999), Some(19_998));
        assert_eq!(m.remove(&9_999), None);
        assert!(!m.contains_key(&9_999));
        assert_eq!(m.len(), 9_999);
        m.retain(|k, _| k % 2 == 0);
        assert_eq!(m.len(), 5_000);
        assert_eq!(m.iter().count(), 5_000);
        assert!(m.iter().all(|(k, _)| k % 2 == 0));
    }

    #[test]
    fn borrowed_keys_find_their_entries() {
        let mut m: ShardedMap<String, u32> = ShardedMap::new();
        m.insert("z9hG4bK1".to_owned(), 1);
        assert_eq!(m.get("z9hG4bK1"), Some(&1));
        assert_eq!(m.remove("z9hG4bK1"), Some(1));
        assert!(m.is_empty());
    }

    #[test]
    fn maps_are_seeded_differently() {
        let (a, b) = (seeded(), seeded());
        assert_ne!(a.hash_one(b"z9hG4bK1"), b.hash_one(b"z9hG4bK1"));
    }
}
