//! [`NameMap`]: the copy-on-write hash map the snapshot's name tables are made of.
//!
//! A map is split into shards (each an `Arc<HashMap>`) by a hash of the key. Cloning a map
//! clones one `Arc`; changing a clone copies only the shards it touches (`Arc::make_mut`), so
//! the index builder keeps a working copy, publishes clones of it as snapshots, and a change
//! to one name costs one shard copy (a few hundred `Arc` clones), not a copy of the whole
//! table. Keys are `Arc<str>`, shared between snapshots and with the builder's own tables.
//!
//! A lookup is one cheap hash (to pick the shard) plus a `HashMap` probe with foldhash (seeded
//! at random per map; SipHash made the name lookups a tenth of an authoritative answer).

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock};

/// Average entries per shard above which the shard count doubles.
const SHARD_LOAD: usize = 256;
/// At most 2^MAX_BITS shards.
const MAX_BITS: u32 = 12;

type Hasher = foldhash::fast::RandomState;
type Shard<V> = Arc<HashMap<Arc<str>, V, Hasher>>;

/// A map from names to values, cheap to clone and to change a little; see the module docs.
pub struct NameMap<V> {
    /// 2^bits shards, or none before the first insert.
    shards: Arc<Vec<Shard<V>>>,
    bits: u32,
    len: usize,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            shards: Arc::new(Vec::new()),
            bits: 0,
            len: 0,
        }
    }
}

impl<V> Clone for NameMap<V> {
    fn clone(&self) -> Self {
        NameMap {
            shards: self.shards.clone(),
            bits: self.bits,
            len: self.len,
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for NameMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Picks the shard: FxHash-style over 8-byte words with a per-process seed, then a final mix
/// so the top bits (the shard index) depend on every byte. Not meant to resist crafted keys:
/// they could only unbalance the shards (slower updates), lookups stay `HashMap` probes.
#[inline]
fn shard_hash(key: &str) -> u64 {
    static SEED: LazyLock<u64> =
        LazyLock::new(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64));
    let bytes = key.as_bytes();
    let mut h = *SEED ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[inline]
fn shard_index(key: &str, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (shard_hash(key) >> (64 - bits)) as usize
    }
}

impl<V> NameMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        self.shards[shard_index(key, self.bits)].get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

impl<V: Clone> NameMap<V> {
    /// Inserts or replaces; returns the value replaced. Copies the shard if a clone shares it.
    pub fn insert(&mut self, key: Arc<str>, value: V) -> Option<V> {
        if self.shards.is_empty() {
            self.shards = Arc::new(vec![Arc::new(HashMap::default())]);
        }
        let i = shard_index(&key, self.bits);
        let shard = Arc::make_mut(&mut Arc::make_mut(&mut self.shards)[i]);
        let old = shard.insert(key, value);
        if old.is_none() {
            self.len += 1;
            if self.len > SHARD_LOAD << self.bits && self.bits < MAX_BITS {
                self.grow();
            }
        }
        old
    }

    /// Removes `key`; returns its value. Copies nothing when the key is absent.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let i = shard_index(key, self.bits);
        if !self.shards[i].contains_key(key) {
            return None;
        }
        let shard = Arc::make_mut(&mut Arc::make_mut(&mut self.shards)[i]);
        let old = shard.remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Makes room for `additional` more entries: takes the shard count they need at once
    /// instead of doubling (and re-inserting everything) several times on the way.
    pub fn reserve(&mut self, additional: usize) {
        let want = self.len + additional;
        let mut bits = self.bits;
        while want > SHARD_LOAD << bits && bits < MAX_BITS {
            bits += 1;
        }
        if bits != self.bits || self.shards.is_empty() {
            self.regrid(bits, want);
        }
    }

    /// Doubles the shard count (amortized: once per doubling of the size).
    fn grow(&mut self) {
        self.regrid(self.bits + 1, self.len);
    }

    /// Redistributes the entries over 2^bits shards sized for `capacity` entries in all.
    fn regrid(&mut self, bits: u32, capacity: usize) {
        let per = (capacity >> bits) + 1;
        let mut shards: Vec<HashMap<Arc<str>, V, Hasher>> = (0..1usize << bits)
            .map(|_| HashMap::with_capacity_and_hasher(per, Hasher::default()))
            .collect();
        for (k, v) in self.iter() {
            shards[shard_index(k, bits)].insert(k.clone(), v.clone());
        }
        self.shards = Arc::new(shards.into_iter().map(Arc::new).collect());
        self.bits = bits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_across_growth() {
        let mut m: NameMap<u32> = NameMap::default();
        assert!(m.is_empty());
        assert_eq!(m.get("x"), None);
        assert_eq!(m.remove("x"), None);
        for i in 0..5000u32 {
            assert_eq!(m.insert(Arc::from(format!("host{i}.example.com")), i), None);
        }
        assert_eq!(m.len(), 5000);
        assert!(m.bits >= 4, "grew to {} bits", m.bits);
        for i in 0..5000u32 {
            assert_eq!(m.get(&format!("host{i}.example.com")), Some(&i));
        }
        assert_eq!(m.insert(Arc::from("host7.example.com"), 70), Some(7));
        assert_eq!(m.len(), 5000);
        assert_eq!(m.remove("host7.example.com"), Some(70));
        assert_eq!(m.remove("host7.example.com"), None);
        assert_eq!(m.len(), 4999);
        assert_eq!(m.iter().count(), 4999);
        assert!(!m.contains_key("host7.example.com"));
        assert!(m.contains_key("host8.example.com"));

        // Reserving up front gives the same map.
        let mut r: NameMap<u32> = NameMap::default();
        r.reserve(5000);
        let bits = r.bits;
        for i in 0..5000u32 {
            r.insert(Arc::from(format!("host{i}.example.com")), i);
        }
        assert_eq!(r.bits, bits, "no growth after reserve");
        assert_eq!(r.len(), 5000);
        assert_eq!(r.get("host4999.example.com"), Some(&4999));
        r.reserve(10);
        assert_eq!(r.get("host0.example.com"), Some(&0));
    }

    #[test]
    fn clones_share_untouched_shards_and_do_not_see_later_changes() {
        let mut m: NameMap<u32> = NameMap::default();
        for i in 0..2000u32 {
            m.insert(Arc::from(format!("n{i}")), i);
        }
        let snap = m.clone();
        m.insert(Arc::from("n1"), 100);
        m.remove("n2");
        m.insert(Arc::from("new"), 1);
        assert_eq!(snap.get("n1"), Some(&1));
        assert_eq!(snap.get("n2"), Some(&2));
        assert_eq!(snap.get("new"), None);
        assert_eq!(snap.len(), 2000);
        assert_eq!(m.get("n1"), Some(&100));
        assert_eq!(m.get("n2"), None);
        assert_eq!(m.len(), 2000);
        // Only the shards touched were copied.
        let shared = m
            .shards
            .iter()
            .zip(snap.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(
            shared + 3 >= m.shards.len(),
            "{shared} of {}",
            m.shards.len()
        );
        assert!(shared < m.shards.len());
    }
}
