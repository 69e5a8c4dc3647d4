//! The immutable lookup structure queries read (swapped in whole by the index builder).
//!
//! A [`Snapshot`] is published by [`crate::kube::index`] and then only read: lookups are plain
//! hash-map probes on `&str` keys, with no locks and no allocation. Its name tables are
//! [`NameMap`]s: the builder keeps a working copy, changes the few names an update touches and
//! publishes a clone, which shares every untouched shard with the snapshot before it.

mod name_map;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::kube::model::Kind;

pub(crate) use name_map::NameMap;

/// Number of [`Kind`]s (size of the per-kind arrays).
pub(crate) const KINDS: usize = Kind::ALL.len();

/// The data of one name, de-duplicated and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSet {
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub txt: Vec<String>,
    /// CNAME targets, lower-case, no trailing dot (a name with a CNAME has no other data).
    pub cname: Vec<String>,
    /// The TTL of every record of the name, when its objects set one (the lowest of them);
    /// `None`: the directive's `ttl`. Resolved when the snapshot is built.
    pub ttl: Option<u32>,
}

impl RecordSet {
    /// The TTL to answer this name's records with, given the directive's `ttl`.
    #[inline]
    pub fn ttl_or(&self, default: u32) -> u32 {
        self.ttl.unwrap_or(default)
    }

    pub fn is_empty(&self) -> bool {
        self.a.is_empty() && self.aaaa.is_empty() && self.txt.is_empty() && self.cname.is_empty()
    }
}

/// The serial of one zone and the content hash it was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZoneSerial {
    pub(crate) serial: u32,
    pub(crate) hash: u64,
}

/// Names → records for every kind, the empty non-terminals and the per-zone SOA serials.
/// Cloning is cheap (the name tables are shared).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Per [`Kind::index`]: exact names (lower-case, no trailing dot) → records.
    pub(crate) exact: [NameMap<Arc<RecordSet>>; KINDS],
    /// Per [`Kind::index`]: `*.foo` stored under `foo`.
    pub(crate) wild: [NameMap<Arc<RecordSet>>; KINDS],
    /// Every proper ancestor of every stored name (wildcards included, PTR names too).
    pub(crate) ents: NameMap<()>,
    /// Reverse names (`4.3.2.1.in-addr.arpa`, lower-case, no trailing dot) inside a configured
    /// reverse zone → the forward names (absolute, no trailing dot, sorted) publishing that
    /// address. Empty unless a reverse zone is configured.
    pub(crate) ptr: NameMap<Arc<Vec<String>>>,
    /// Zone (lower-case, no trailing dot) → serial and content hash.
    pub(crate) zones: HashMap<String, ZoneSerial>,
    pub(crate) synced: bool,
    /// Whether this or an earlier snapshot it replaced was synced (serials switch from the
    /// data-derived base to the clock once it is).
    pub(crate) ever_synced: bool,
    /// Names whose CNAME was kept over conflicting data (`Kind/name`, sorted): logged once,
    /// when they first appear.
    pub(crate) conflicts: Vec<String>,
}

impl Snapshot {
    /// The data for the first of `keys` found, trying every exact key in every kind of `kinds`
    /// (in that precedence order) first, then the one-label wildcards (`*.parent`) the same way.
    /// Keys are lower-case without a trailing dot.
    pub fn lookup(&self, kinds: &[Kind], keys: &[&str]) -> Option<(Kind, Arc<RecordSet>)> {
        for &kind in kinds {
            let map = &self.exact[kind.index()];
            if map.is_empty() {
                continue;
            }
            for key in keys {
                if let Some(rs) = map.get(key) {
                    return Some((kind, rs.clone()));
                }
            }
        }
        for &kind in kinds {
            let map = &self.wild[kind.index()];
            if map.is_empty() {
                continue;
            }
            for key in keys {
                // `a.foo` → `foo`; a single label has no parent a wildcard could cover.
                let Some((_, parent)) = key.split_once('.') else {
                    continue;
                };
                if parent.is_empty() {
                    continue;
                }
                if let Some(rs) = map.get(parent) {
                    return Some((kind, rs.clone()));
                }
            }
        }
        None
    }

    /// Exact lookup in one kind only (no wildcard): the apex's own Service, glue.
    pub fn exact(&self, kind: Kind, key: &str) -> Option<Arc<RecordSet>> {
        self.exact[kind.index()].get(key).cloned()
    }

    /// The forward names (absolute, no trailing dot, sorted) of a reverse name (lower-case,
    /// no trailing dot) in a configured reverse zone.
    pub fn ptr(&self, key: &str) -> Option<&Arc<Vec<String>>> {
        self.ptr.get(key)
    }

    /// Whether some stored name (of any kind) lies strictly below `key` (an empty non-terminal).
    pub fn has_descendants(&self, key: &str) -> bool {
        self.ents.contains_key(key)
    }

    /// The SOA serial of `zone` (lower-case, absolute: `example.com.`; the trailing dot is
    /// optional). A zone the index was not built for gets 1.
    pub fn serial(&self, zone: &str) -> u32 {
        let z = zone.strip_suffix('.').unwrap_or(zone);
        let found = if z.bytes().any(|b| b.is_ascii_uppercase()) {
            self.zones.get(&z.to_ascii_lowercase())
        } else {
            self.zones.get(z)
        };
        found.map_or(1, |zs| zs.serial)
    }

    /// Whether every object kind the plugin needs has completed its initial sync.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// How many names (exact plus wildcard) `kind` holds.
    pub fn names(&self, kind: Kind) -> usize {
        self.exact[kind.index()].len() + self.wild[kind.index()].len()
    }

    /// How many empty non-terminals (ancestors of stored names) there are.
    pub fn ents(&self) -> usize {
        self.ents.len()
    }

    /// Everything the snapshot holds, one line per entry, sorted: two snapshots with the same
    /// contents give the same lines (tests compare incremental updates with full builds).
    #[cfg(test)]
    pub(crate) fn contents(&self) -> Vec<String> {
        let mut v = Vec::new();
        for kind in Kind::ALL {
            for (tag, map) in [("exact", &self.exact), ("wild", &self.wild)] {
                let map = &map[kind.index()];
                assert_eq!(map.iter().count(), map.len(), "{kind} {tag} length");
                for (k, rs) in map.iter() {
                    v.push(format!("{tag} {kind} {k} {rs:?}"));
                }
            }
        }
        assert_eq!(self.ents.iter().count(), self.ents.len(), "ents length");
        assert_eq!(self.ptr.iter().count(), self.ptr.len(), "ptr length");
        v.extend(self.ptr.iter().map(|(k, o)| format!("ptr {k} {o:?}")));
        v.extend(self.ents.iter().map(|(k, _)| format!("ent {k}")));
        v.extend(self.zones.iter().map(|(z, s)| format!("zone {z} {s:?}")));
        v.extend(self.conflicts.iter().map(|c| format!("conflict {c}")));
        v.push(format!("synced {} ever {}", self.synced, self.ever_synced));
        v.sort();
        v
    }
}
