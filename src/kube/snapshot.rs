//! The immutable lookup structure queries read (swapped in whole by the index builder).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::kube::model::Kind;

/// The data of one name, de-duplicated and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSet {
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub txt: Vec<String>,
    /// CNAME targets, lower-case, no trailing dot (a name with a CNAME has no other data).
    pub cname: Vec<String>,
}

impl RecordSet {
    pub fn is_empty(&self) -> bool {
        self.a.is_empty() && self.aaaa.is_empty() && self.txt.is_empty() && self.cname.is_empty()
    }
}

/// Names → records for every kind, the empty non-terminals and the per-zone SOA serials.
#[derive(Debug, Default)]
pub struct Snapshot {
    _private: (),
}

impl Snapshot {
    /// The data for the first of `keys` found, trying every exact key in every kind of `kinds`
    /// (in that precedence order) first, then the one-label wildcards (`*.parent`) the same way.
    /// Keys are lower-case without a trailing dot.
    pub fn lookup(&self, _kinds: &[Kind], _keys: &[&str]) -> Option<(Kind, Arc<RecordSet>)> {
        todo!("snapshot")
    }

    /// Exact lookup in one kind only (no wildcard): the apex's own Service, glue.
    pub fn exact(&self, _kind: Kind, _key: &str) -> Option<Arc<RecordSet>> {
        todo!("snapshot")
    }

    /// Whether some stored name (of any kind) lies strictly below `key` (an empty non-terminal).
    pub fn has_descendants(&self, _key: &str) -> bool {
        todo!("snapshot")
    }

    /// The SOA serial of `zone` (lower-case, absolute: `example.com.`).
    pub fn serial(&self, _zone: &str) -> u32 {
        todo!("snapshot")
    }

    /// Whether every object kind the plugin needs has completed its initial sync.
    pub fn synced(&self) -> bool {
        todo!("snapshot")
    }
}
