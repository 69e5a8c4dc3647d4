//! The IXFR journal: per zone, the sorted record keys of the version last seen and the
//! differences between recent versions (RFC 1995's incremental transfers), built by diffing
//! consecutive versions of the zone off the query path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

use super::serial_lt;

/// Differences kept per zone at most.
const MAX_DIFFS: usize = 64;
/// Records (removed + added) kept per zone at most: beyond the zone's own size (or this floor)
/// a full transfer is as cheap as the journal.
const MIN_BUDGET: usize = 1024;

/// One change of a zone: from one version to the next.
#[derive(Debug)]
pub struct Diff {
    pub from_soa: Record,
    pub to_soa: Record,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

impl Diff {
    fn from(&self) -> u32 {
        serial_of(&self.from_soa)
    }
    fn to(&self) -> u32 {
        serial_of(&self.to_soa)
    }
    fn len(&self) -> usize {
        self.removed.len() + self.added.len()
    }
}

fn serial_of(r: &Record) -> u32 {
    match &r.data {
        RData::SOA(s) => s.serial,
        _ => 0,
    }
}

struct Version {
    soa: Record,
    /// Every record but the SOA, in wire form, sorted.
    keys: Vec<Vec<u8>>,
    diffs: VecDeque<Arc<Diff>>,
    journaled: usize,
}

/// The journals of every zone of one `transfer` plugin.
#[derive(Default)]
pub struct Journals {
    zones: Mutex<HashMap<String, Version>>,
}

impl Journals {
    /// The differences that lead from serial `from` to `to`, oldest first; `None` when the
    /// journal does not reach back to `from` (the client gets the whole zone).
    pub fn since(&self, zone: &str, from: u32, to: u32) -> Option<Vec<Arc<Diff>>> {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let v = zones.get(zone)?;
        if serial_of(&v.soa) != to {
            return None; // the journal has not caught up with this version yet
        }
        let start = v.diffs.iter().position(|d| d.from() == from)?;
        let out: Vec<Arc<Diff>> = v.diffs.iter().skip(start).cloned().collect();
        (out.last()?.to() == to).then_some(out)
    }

    /// The serial the journal last saw for `zone`.
    pub fn serial(&self, zone: &str) -> Option<u32> {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones.get(zone).map(|v| serial_of(&v.soa))
    }

    /// Takes a new version of `zone` (SOA first): records the difference from the version
    /// before it. Returns whether the serial changed.
    pub fn observe(&self, zone: &str, records: &[Record]) -> bool {
        let Some(soa) = records
            .first()
            .filter(|r| r.record_type() == RecordType::SOA)
        else {
            return false;
        };
        let mut keys: Vec<Vec<u8>> = records[1..]
            .iter()
            .filter(|r| r.record_type() != RecordType::SOA)
            .filter_map(|r| r.to_bytes().ok())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let Some(old) = zones.get_mut(zone) else {
            zones.insert(
                zone.to_string(),
                Version {
                    soa: soa.clone(),
                    keys,
                    diffs: VecDeque::new(),
                    journaled: 0,
                },
            );
            return true;
        };
        let (from, to) = (serial_of(&old.soa), serial_of(soa));
        if from == to {
            return false;
        }
        if !serial_lt(from, to) {
            // The serial went back (a restarted source): the journal starts over.
            old.diffs.clear();
            old.journaled = 0;
        } else {
            let (removed, added) = diff(&old.keys, &keys);
            let d = Diff {
                from_soa: old.soa.clone(),
                to_soa: soa.clone(),
                removed,
                added,
            };
            old.journaled += d.len();
            old.diffs.push_back(Arc::new(d));
            let budget = keys.len().max(MIN_BUDGET);
            while old.diffs.len() > MAX_DIFFS || (old.journaled > budget && old.diffs.len() > 1) {
                if let Some(d) = old.diffs.pop_front() {
                    old.journaled -= d.len();
                }
            }
        }
        old.soa = soa.clone();
        old.keys = keys;
        true
    }
}

/// Records in `old` but not `new`, and in `new` but not `old` (both sorted).
fn diff(old: &[Vec<u8>], new: &[Vec<u8>]) -> (Vec<Record>, Vec<Record>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    let dec = |k: &[u8]| Record::from_bytes(k).ok();
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                removed.extend(dec(a));
                i += 1;
            }
            (Some(_), Some(b)) => {
                added.extend(dec(b));
                j += 1;
            }
            (Some(a), None) => {
                removed.extend(dec(a));
                i += 1;
            }
            (None, Some(b)) => {
                added.extend(dec(b));
                j += 1;
            }
            (None, None) => break,
        }
    }
    (removed, added)
}
