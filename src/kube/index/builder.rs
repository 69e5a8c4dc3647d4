//! The index builder's state: everything needed to turn a batch of object changes into a new
//! snapshot with work proportional to the change, not to the cluster.
//!
//! The store records, per changed object, its contribution before the batch
//! ([`Store::take_changes`]); the builder keeps reverse indexes derived from the store
//! (which objects name a given name, which routes hang off a Gateway, which EndpointSlices
//! belong to a Service, which objects use a status hostname) and the snapshot it last
//! published. A batch then:
//! 1. under the store lock: updates the reverse indexes from each changed object's old and
//!    new contribution and collects the names they touch — a Gateway touches the names of its
//!    routes, an EndpointSlice those of the Services resolving endpoints through it, a
//!    re-resolved hostname those of the objects (and Gateways' routes) using it — then
//!    recomputes exactly those names from the current contributions;
//! 2. without it: writes the changed names into its working copy of the snapshot (copying
//!    only the shards they live in), keeps the empty non-terminals as reference counts, and
//!    updates every zone's content hash by subtracting the old entry's hash and adding the new
//!    one — the hash is a sum of per-entry hashes, so it does not depend on the order of
//!    anything and needs no sort: two instances with the same data get the same hash;
//! 3. publishes a clone of the working copy.
//!
//! The first batch of a builder loads everything (every object counts as new): that is also
//! how a one-off full build ([`super::Index::build`]) is made, so full and incremental builds
//! share all their code.
//!
//! [`Store::take_changes`]: crate::kube::model::Store::take_changes

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use super::{HostCache, HostMap, IndexConfig, base_serial, in_zone, next_serial, norm};
use crate::kube::kinds::{istio_binds, istio_selects};
use crate::kube::model::{
    Address, Contribution, IstioTarget, Kind, NameData, ObjKey, ObjKind, Store,
};
use crate::kube::snapshot::{KINDS, RecordSet, Snapshot, ZoneSerial};
use crate::kube::source::Feed;

/// An object that feeds a record kind, by that kind.
type Obj = (Kind, ObjKey);

/// An object by its object kind (Traefik's record kinds are fed by two API groups, whose
/// objects may share a `namespace/name`).
type Src = (ObjKind, ObjKey);

/// Who makes a status hostname worth resolving.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostUser {
    /// An object (of a configured kind, by its object kind) with the hostname among a name's
    /// addresses.
    Obj(Kind, ObjKind, ObjKey),
    /// A Gateway of an accepted class with routes, with the hostname among its addresses.
    Gateway(ObjKey),
    /// An Istio Gateway with the hostname among the addresses of the Services it selects.
    IstioGateway(ObjKey),
}

/// A name whose records were recomputed.
struct Update {
    kind: Kind,
    name: Arc<str>,
    rs: RecordSet,
    conflict: bool,
}

/// The object kind whose objects feed record kind `k`.
fn source_kind(k: Kind) -> ObjKind {
    k.watched()[0]
}

/// The record kind objects of `o` feed (none for Gateways and EndpointSlices).
fn record_kind(o: ObjKind) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| k.sources().contains(&o))
}

/// The (normalized) names a contribution gives data to, in its own record kind.
fn names_of(c: &Contribution) -> Box<dyn Iterator<Item = Cow<'_, str>> + '_> {
    match c {
        Contribution::Route { hostnames, .. } => Box::new(hostnames.iter().map(|h| norm(h))),
        Contribution::Names(nds) | Contribution::Service { names: nds, .. } => {
            Box::new(nds.iter().map(|nd| norm(&nd.name)))
        }
        Contribution::IstioGateway { names, .. }
        | Contribution::IstioVirtualService { names, .. } => {
            Box::new(names.iter().map(|h| norm(h)))
        }
        Contribution::Gateway { .. } | Contribution::EndpointSlice { .. } => {
            Box::new(std::iter::empty())
        }
    }
}

/// Whether a listener of `protocol` takes routes of `kind` (ExternalDNS's protocol match:
/// HTTPS counts as HTTP, a TCPRoute fits a TLS listener).
fn listener_fits(kind: Kind, protocol: &str) -> bool {
    match kind {
        Kind::HTTPRoute | Kind::GRPCRoute => matches!(protocol, "HTTP" | "HTTPS"),
        Kind::TLSRoute => protocol == "TLS",
        Kind::TCPRoute => matches!(protocol, "TCP" | "TLS"),
        Kind::UDPRoute => protocol == "UDP",
        _ => false,
    }
}

/// The listener hostnames of Gateway `g` (normalized) that a route of `kind` attached to the
/// listeners `sections` names for `g` (none: every listener) takes.
fn listener_names(
    store: &Store,
    kind: Kind,
    g: &ObjKey,
    sections: &[(ObjKey, String)],
) -> Vec<String> {
    let Some(Contribution::Gateway { listeners, .. }) =
        store.get(ObjKind::Gateway).and_then(|m| m.get(g))
    else {
        return Vec::new();
    };
    let restricted = sections.iter().any(|(k, _)| k == g);
    listeners
        .iter()
        .filter(|(name, proto, _)| {
            listener_fits(kind, proto)
                && (!restricted || sections.iter().any(|(k, s)| k == g && s == name))
        })
        .map(|(_, _, h)| norm(h).into_owned())
        .collect()
}

/// The source scope of a (scoped) namespace: `""` for a single source.
fn scope_of(ns: &str) -> &str {
    ns.split_once('\u{1f}').map_or("", |(s, _)| s)
}

/// The selector and addresses an Istio Gateway's join reads from a Service's contribution.
fn service_join(c: Option<&Contribution>) -> Option<(&BTreeMap<String, String>, &[Address])> {
    match c {
        Some(Contribution::Service {
            selector, addrs, ..
        }) => Some((selector, addrs)),
        _ => None,
    }
}

/// The hostname addresses of one name's data (none when its addresses come from endpoints).
fn hostnames_of(nd: &NameData) -> impl Iterator<Item = Cow<'_, str>> {
    nd.addrs
        .iter()
        .filter(|_| nd.endpoints_of.is_none())
        .filter_map(|a| match a {
            Address::Hostname(h) => Some(norm(h)),
            Address::Ip(_) => None,
        })
}

/// Removes `item` from `map[key]`, and the set when it empties; returns whether it did.
fn remove_from<K, Q, T>(map: &mut HashMap<K, HashSet<T>>, key: &Q, item: &T) -> bool
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
    T: Hash + Eq,
{
    let Some(set) = map.get_mut(key) else {
        return false;
    };
    set.remove(item);
    if set.is_empty() {
        map.remove(key);
        return true;
    }
    false
}

/// The data gathered for one name of one kind, before sorting.
#[derive(Default)]
struct Acc {
    addrs: Vec<IpAddr>,
    txt: Vec<String>,
    cname: Vec<String>,
    /// The lowest TTL an object set (RFC 2181 §5.2: one TTL per RRset).
    ttl: Option<u32>,
}

impl Acc {
    fn ttl(&mut self, ttl: Option<u32>) {
        if let Some(t) = ttl {
            self.ttl = Some(self.ttl.map_or(t, |cur| cur.min(t)));
        }
    }

    /// Sorted, de-duplicated records; `true` when a CNAME had to drop other data.
    fn finish(self) -> (RecordSet, bool) {
        let mut rs = RecordSet::default();
        for ip in self.addrs {
            match ip.to_canonical() {
                IpAddr::V4(a) => rs.a.push(a),
                IpAddr::V6(a) => rs.aaaa.push(a),
            }
        }
        rs.a.sort_unstable();
        rs.a.dedup();
        rs.aaaa.sort_unstable();
        rs.aaaa.dedup();
        rs.txt = self.txt;
        rs.txt.sort_unstable();
        rs.txt.dedup();
        rs.cname = self.cname;
        rs.cname.retain(|c| !c.is_empty());
        rs.cname.sort_unstable();
        rs.cname.dedup();
        rs.ttl = self.ttl;
        let other = !(rs.a.is_empty() && rs.aaaa.is_empty() && rs.txt.is_empty());
        let conflict = other && !rs.cname.is_empty();
        if conflict {
            rs.a.clear();
            rs.aaaa.clear();
            rs.txt.clear();
        }
        (rs, conflict)
    }
}

/// Appends the IPs `a` stands for: itself, or a hostname's resolved addresses (none until the
/// resolver has them).
fn push_addr(out: &mut Vec<IpAddr>, a: &Address, resolved: &HashMap<String, Vec<IpAddr>>) {
    match a {
        Address::Ip(ip) => out.push(*ip),
        Address::Hostname(h) => {
            if let Some(ips) = resolved.get(norm(h).as_ref()) {
                out.extend_from_slice(ips);
            }
        }
    }
}

/// Where a name is stored: exact, as a wildcard (under its parent), or not at all (`""`,
/// `*`, `*.`).
fn slot(name: &str) -> Option<(bool, &str)> {
    if name.is_empty() {
        return None;
    }
    match name.strip_prefix("*.") {
        Some("") => None,
        Some(parent) => Some((true, parent)),
        None if name == "*" => None,
        None => Some((false, name)),
    }
}

/// Every proper ancestor of `name` (`a.b.c` → `b.c`, `c`).
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let (_, parent) = rest.split_once('.')?;
        if parent.is_empty() {
            return None;
        }
        rest = parent;
        Some(parent)
    })
}

/// The hash one entry adds to its zone's content hash: SipHash-2-4 with fixed keys over an
/// unambiguous encoding of it. `SipHasher` is deprecated in favour of `DefaultHasher`, whose
/// algorithm is unspecified; this needs one that is (every instance, every build must agree)
/// and fast (a full load hashes every entry; SHA-256 was 30 % of it on a CPU without SHA
/// instructions). Collisions only matter by accident (a change that leaves the sum as it
/// was would keep the serial), and a 64-bit PRF makes that negligible.
#[allow(deprecated)]
fn entry_hash(kind: Kind, wild: bool, key: &str, rs: &RecordSet) -> u64 {
    use std::hash::{Hasher, SipHasher};
    fn bytes(h: &mut SipHasher, b: &[u8]) {
        h.write(&(b.len() as u32).to_be_bytes());
        h.write(b);
    }
    let mut h = SipHasher::new_with_keys(0x6578_646e_735f_6b38, 0x735f_7a6f_6e65_5f31);
    h.write(&[hash_tag(kind), wild as u8]);
    bytes(&mut h, key.as_bytes());
    h.write(&(rs.a.len() as u32).to_be_bytes());
    for a in &rs.a {
        h.write(&a.octets());
    }
    h.write(&(rs.aaaa.len() as u32).to_be_bytes());
    for a in &rs.aaaa {
        h.write(&a.octets());
    }
    h.write(&(rs.txt.len() as u32).to_be_bytes());
    for t in &rs.txt {
        bytes(&mut h, t.as_bytes());
    }
    h.write(&(rs.cname.len() as u32).to_be_bytes());
    for c in &rs.cname {
        bytes(&mut h, c.as_bytes());
    }
    // Only when set (last, after length-prefixed fields, so still unambiguous): entries without
    // a TTL of their own keep the hash — and serials — of builds before per-object TTLs.
    if let Some(t) = rs.ttl {
        h.write(b"T");
        h.write(&t.to_be_bytes());
    }
    h.finish()
}

/// A kind's tag in entry hashes: fixed forever (kinds added later take new values, so the
/// hashes — and serials — of existing data never change with the version).
fn hash_tag(kind: Kind) -> u8 {
    match kind {
        Kind::HTTPRoute => 0,
        Kind::TLSRoute => 1,
        Kind::GRPCRoute => 2,
        Kind::DNSEndpoint => 3,
        Kind::VirtualServer => 4,
        Kind::Ingress => 5,
        Kind::Service => 6,
        Kind::Node => 7,
        Kind::TCPRoute => 8,
        Kind::UDPRoute => 9,
        Kind::IngressRoute => 10,
        Kind::IngressRouteTCP => 13,
        Kind::IngressRouteUDP => 14,
        Kind::IstioGateway => 11,
        Kind::IstioVirtualService => 12,
    }
}

/// The hash a PTR entry (reverse name → forward names) adds to its reverse zone's hash; tagged
/// apart from every record kind's entries.
#[allow(deprecated)]
fn ptr_hash(key: &str, owners: &[String]) -> u64 {
    use std::hash::{Hasher, SipHasher};
    let mut h = SipHasher::new_with_keys(0x6578_646e_735f_6b38, 0x735f_7a6f_6e65_5f31);
    h.write(&[0xff, 0]);
    h.write(&(key.len() as u32).to_be_bytes());
    h.write(key.as_bytes());
    h.write(&(owners.len() as u32).to_be_bytes());
    for o in owners {
        h.write(&(o.len() as u32).to_be_bytes());
        h.write(o.as_bytes());
    }
    h.finish()
}

/// Whether `zone` (normalized, no trailing dot) is a reverse zone.
pub(crate) fn is_reverse_zone(zone: &str) -> bool {
    ["in-addr.arpa", "ip6.arpa"]
        .iter()
        .any(|r| in_zone(zone, r))
}

/// The reverse name of `ip` (`4.3.2.1.in-addr.arpa`, nibbles under `ip6.arpa`), lower-case,
/// no trailing dot.
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(72);
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for o in v4.octets().iter().rev() {
                let _ = write!(s, "{o}.");
            }
            s.push_str("in-addr.arpa");
        }
        IpAddr::V6(v6) => {
            for o in v6.octets().iter().rev() {
                let _ = write!(s, "{:x}.{:x}.", o & 0xf, o >> 4);
            }
            s.push_str("ip6.arpa");
        }
    }
    s
}

/// One index's state between batches; see the module docs.
pub(crate) struct Builder {
    /// Which record kinds are answered.
    configured: [bool; KINDS],
    /// The answered kinds in precedence order (the first with a name gives its addresses).
    kinds: Vec<Kind>,
    /// Whether some zone is a reverse zone (else no PTR bookkeeping at all).
    reverse: bool,
    /// Exact name → the addresses it publishes (of its first kind), as counted in `ptr_owners`.
    ptr_src: HashMap<Arc<str>, Vec<IpAddr>>,
    /// Reverse name in a reverse zone → forward owner name → how many sources give it.
    ptr_owners: HashMap<String, BTreeMap<String, u32>>,
    watched: Vec<ObjKind>,
    /// Zones (normalized, de-duplicated) with their content hash and entry count.
    zones: Vec<(String, u64, usize)>,
    classes: Vec<String>,
    cache: Arc<HostCache>,
    /// Whether this builder owns the store's and the cache's change logs (the running index),
    /// or only builds once from what is there (tests, [`super::build`]).
    track: bool,
    /// Whether the first batch (everything) was loaded.
    loaded: bool,

    /// Per record kind: normalized name → the objects that name it.
    /// (An object is named with its object kind: Traefik's kinds are fed by two API groups,
    /// whose objects may share a `namespace/name`.)
    by_name: [HashMap<Arc<str>, Vec<Src>>; KINDS],
    /// Names whose last contributor went away during the current batch: removed from
    /// `by_name` at its end unless one came back (an object that keeps its name then keeps
    /// the name's `Arc`, shared with the snapshot's key).
    emptied: Vec<(Kind, Arc<str>)>,
    /// Gateway → the routes (of configured kinds) that list it as a parent.
    routes_of: HashMap<ObjKey, HashSet<Obj>>,
    /// Routes without hostnames of their own → the listener hostnames of their Gateways they
    /// are registered under in `by_name` (as last linked).
    inherited: HashMap<Obj, Vec<Arc<str>>>,
    /// Service → its EndpointSlices.
    slices_of: HashMap<ObjKey, HashSet<ObjKey>>,
    /// Service → the objects with a name resolving its endpoints.
    eps_users: HashMap<ObjKey, HashSet<(Kind, ObjKind, ObjKey)>>,
    /// Status hostname → who needs it resolved.
    host_users: HashMap<String, HashSet<HostUser>>,
    /// The hostnames each Gateway is registered as a user of.
    gw_hosts: HashMap<ObjKey, Vec<String>>,
    /// Whether the set of hostnames changed in the last batch.
    hosts_changed: bool,

    /// Whether an Istio kind is answered (Services then feed Istio Gateways).
    istio: bool,
    /// `hostnameAsCNAME`, for the addresses Istio Gateways take from Services.
    hostname_as_cname: bool,
    /// Istio Gateway → the VirtualServices (of a configured kind) that reference it.
    istio_vs: HashMap<ObjKey, HashSet<ObjKey>>,
    /// Istio Gateway → its data (addresses, CNAME): its target annotation's, else the
    /// selected Services' addresses. Only Gateways with data.
    istio_data: HashMap<ObjKey, (Vec<Address>, Option<String>)>,
    /// The hostnames each Istio Gateway is registered as a user of.
    istio_hosts: HashMap<ObjKey, Vec<String>>,
    /// Istio Gateways whose data or bindings may have changed in the current batch.
    istio_touched: HashSet<ObjKey>,

    /// How many stored (kind, name) entries lie below each empty non-terminal.
    ent_counts: HashMap<Arc<str>, u32>,
    conflicts: BTreeSet<String>,
    /// The working copy; published as clones.
    snap: Snapshot,
}

impl Builder {
    pub(crate) fn new(cfg: &IndexConfig, cache: Arc<HostCache>, track: bool) -> Self {
        let mut configured = [false; KINDS];
        for &k in &cfg.kinds {
            configured[k.index()] = true;
        }
        let mut zones: Vec<(String, u64, usize)> = Vec::new();
        for z in &cfg.zones {
            let z = norm(z).into_owned();
            if !zones.iter().any(|(n, _, _)| *n == z) {
                zones.push((z, 0, 0));
            }
        }
        let reverse = zones.iter().any(|(z, _, _)| is_reverse_zone(z));
        Builder {
            configured,
            kinds: cfg.kinds.clone(),
            reverse,
            ptr_src: HashMap::new(),
            ptr_owners: HashMap::new(),
            watched: cfg.watched(),
            zones,
            classes: cfg.filters.gateway_classes.clone(),
            cache,
            track,
            loaded: false,
            by_name: Default::default(),
            emptied: Vec::new(),
            routes_of: HashMap::new(),
            inherited: HashMap::new(),
            slices_of: HashMap::new(),
            eps_users: HashMap::new(),
            host_users: HashMap::new(),
            gw_hosts: HashMap::new(),
            hosts_changed: false,
            istio: cfg
                .kinds
                .iter()
                .any(|k| matches!(k, Kind::IstioGateway | Kind::IstioVirtualService)),
            hostname_as_cname: cfg.filters.hostname_as_cname,
            istio_vs: HashMap::new(),
            istio_data: HashMap::new(),
            istio_hosts: HashMap::new(),
            istio_touched: HashSet::new(),
            ent_counts: HashMap::new(),
            conflicts: BTreeSet::new(),
            snap: Snapshot::default(),
        }
    }

    /// The working snapshot (what the last [`Builder::step`] produced).
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    pub(crate) fn into_snapshot(self) -> Snapshot {
        self.snap
    }

    /// Every status hostname the index uses (for the resolver).
    pub(crate) fn hostnames(&self) -> BTreeSet<String> {
        self.host_users.keys().cloned().collect()
    }

    /// Whether [`Builder::hostnames`] may have changed in the last step.
    pub(crate) fn hostnames_changed(&self) -> bool {
        self.hosts_changed
    }

    /// Brings the snapshot up to date with the store (everything on the first call, the
    /// changes since the last call afterwards), at Unix time `now` (for serials). On the first
    /// call `previous` (the snapshot being replaced) carries serials forward; later calls use
    /// the builder's own last snapshot.
    pub(crate) fn step(&mut self, feed: &Feed, previous: Option<&Snapshot>, now: u32) {
        let first = !self.loaded;
        self.hosts_changed = false;
        let (updates, synced) = feed.with_store_mut(|store| {
            let cache = self.cache.clone();
            let mut hosts = cache.lock();
            self.collect(store, &mut hosts)
        });
        let (prev_zones, prev_ever, prev_conflicts) = if first {
            (
                previous.map(|p| p.zones.clone()),
                previous.is_some_and(|p| p.ever_synced),
                previous.map(|p| p.conflicts.clone()).unwrap_or_default(),
            )
        } else {
            (
                Some(self.snap.zones.clone()),
                self.snap.ever_synced,
                Vec::new(),
            )
        };
        let added = self.apply(updates);
        let log: Vec<&String> = if first {
            added
                .iter()
                .filter(|c| prev_conflicts.binary_search(c).is_err())
                .collect()
        } else {
            added.iter().collect()
        };
        for c in log {
            tracing::warn!(
                "{c} has a CNAME and other data; answering the CNAME only \
                 (a CNAME cannot coexist with other records, RFC 1034)"
            );
        }
        if first || self.snap.conflicts.len() != self.conflicts.len() || !added.is_empty() {
            self.snap.conflicts = self.conflicts.iter().cloned().collect();
        }

        self.snap.synced = synced;
        let ever_synced = synced || prev_ever;
        self.snap.ever_synced = ever_synced;
        let prev_zones = prev_zones.filter(|_| prev_ever);
        self.snap.zones.clear();
        for (zone, hash, count) in &self.zones {
            let prev = prev_zones.as_ref().and_then(|p| p.get(zone).copied());
            let serial = match prev {
                Some(p) if p.hash == *hash => p.serial,
                Some(p) => next_serial(p.serial, now),
                // The first synced version: the clock, so a restarted process never goes
                // below the serials it published before (they were at most the clock then).
                None if ever_synced => next_serial(base_serial(*hash, *count), now),
                None => base_serial(*hash, *count),
            };
            self.snap.zones.insert(
                zone.clone(),
                ZoneSerial {
                    serial,
                    hash: *hash,
                },
            );
        }
    }

    /// Phase 1, under the store's lock: the reverse indexes follow the changes, and the names
    /// they touch are recomputed. Returns them and whether every watched kind is synced.
    fn collect(&mut self, store: &mut Store, hosts: &mut HostMap) -> (Vec<Update>, bool) {
        let mut dirty: HashSet<(Kind, Arc<str>)> = HashSet::new();
        let mut gateways: HashSet<ObjKey> = HashSet::new();
        if !self.loaded {
            if self.track {
                store.track_changes();
                hosts.track_changes();
            }
            let store: &Store = store;
            for &ok in &self.watched.clone() {
                let Some(objs) = store.get(ok) else { continue };
                dirty.reserve(objs.len());
                if let Some(kind) = record_kind(ok).filter(|k| self.configured[k.index()]) {
                    self.by_name[kind.index()].reserve(objs.len());
                }
                for (key, c) in objs {
                    self.object(store, ok, key, None, Some(c), &mut dirty, &mut gateways);
                }
            }
            self.loaded = true;
        } else {
            let changes = store.take_changes();
            let store: &Store = store;
            for (ok, objs) in changes {
                if !self.watched.contains(&ok) {
                    continue;
                }
                let current = store.get(ok);
                for (key, old) in objs {
                    let new = current.and_then(|m| m.get(&key));
                    if old.as_ref() == new {
                        continue;
                    }
                    self.object(
                        store,
                        ok,
                        &key,
                        old.as_ref(),
                        new,
                        &mut dirty,
                        &mut gateways,
                    );
                }
            }
            for h in hosts.take_changes() {
                self.host_changed(store, &h, &mut dirty);
            }
        }
        for g in gateways {
            self.refresh_gateway(store, &g);
        }
        for g in std::mem::take(&mut self.istio_touched) {
            self.refresh_istio(store, &g);
            self.istio_dirty(store, &g, &mut dirty);
        }
        for (kind, name) in std::mem::take(&mut self.emptied) {
            let map = &mut self.by_name[kind.index()];
            if map.get(&name).is_some_and(|keys| keys.is_empty()) {
                map.remove(&name);
            }
        }
        let synced = self.watched.iter().all(|k| store.is_synced(*k));
        let updates = dirty
            .into_iter()
            .map(|(kind, name)| {
                let (rs, conflict) = self.recompute(store, &hosts.addrs, kind, &name);
                Update {
                    kind,
                    name,
                    rs,
                    conflict,
                }
            })
            .collect();
        (updates, synced)
    }

    /// One object changed from `old` to `new` (either may be absent).
    #[allow(clippy::too_many_arguments)]
    fn object(
        &mut self,
        store: &Store,
        ok: ObjKind,
        key: &ObjKey,
        old: Option<&Contribution>,
        new: Option<&Contribution>,
        dirty: &mut HashSet<(Kind, Arc<str>)>,
        gateways: &mut HashSet<ObjKey>,
    ) {
        match ok {
            ObjKind::Gateway => {
                if let Some(routes) = self.routes_of.get(key) {
                    for (kind, r) in routes {
                        self.dirty_names(store, *kind, r, dirty);
                    }
                    // Routes taking this Gateway's listener hostnames follow them.
                    let routes: Vec<Obj> = routes.iter().cloned().collect();
                    for (kind, r) in routes {
                        if let Some(Contribution::Route {
                            parents,
                            hostnames,
                            inherit: true,
                            sections,
                            ..
                        }) = store.get(source_kind(kind)).and_then(|m| m.get(&r))
                        {
                            let ps = (parents.as_slice(), sections.as_slice());
                            self.inherit(store, kind, &r, ps, hostnames, false, dirty);
                            self.inherit(store, kind, &r, ps, hostnames, true, dirty);
                        }
                    }
                }
                gateways.insert(key.clone());
            }
            ObjKind::EndpointSlice => {
                for (c, add) in [(old, false), (new, true)] {
                    let Some(Contribution::EndpointSlice { service, .. }) = c else {
                        continue;
                    };
                    if add {
                        self.slices_of
                            .entry(service.clone())
                            .or_default()
                            .insert(key.clone());
                    } else {
                        remove_from(&mut self.slices_of, service, key);
                    }
                    if let Some(users) = self.eps_users.get(service) {
                        for (kind, _, u) in users {
                            self.dirty_names(store, *kind, u, dirty);
                        }
                    }
                }
            }
            _ => {
                if ok == ObjKind::IstioGateway {
                    self.istio_touched.insert(key.clone());
                } else if ok == ObjKind::Service && self.istio && self.loaded {
                    // (A first load touches every Istio Gateway anyway.)
                    self.service_changed(store, key, old, new);
                }
                let Some(kind) = record_kind(ok).filter(|k| self.configured[k.index()]) else {
                    return;
                };
                if let Some(c) = old {
                    self.link(store, (kind, ok), key, c, false, dirty, gateways);
                }
                if let Some(c) = new {
                    self.link(store, (kind, ok), key, c, true, dirty, gateways);
                }
            }
        }
    }

    /// Adds (`add`) or removes the references `c` (of object `key` feeding `kind`) makes:
    /// its names, its parent Gateways, the Service whose endpoints it uses, its hostnames.
    /// Every name is marked dirty.
    #[allow(clippy::too_many_arguments)]
    fn link(
        &mut self,
        store: &Store,
        (kind, ok): (Kind, ObjKind),
        key: &ObjKey,
        c: &Contribution,
        add: bool,
        dirty: &mut HashSet<(Kind, Arc<str>)>,
        gateways: &mut HashSet<ObjKey>,
    ) {
        for name in names_of(c) {
            let name = self.contributor(kind, name, (ok, key), add);
            dirty.insert((kind, name));
        }
        let obj = || (kind, key.clone());
        match c {
            Contribution::Route {
                parents,
                inherit,
                hostnames,
                sections,
                ..
            } => {
                if *inherit {
                    self.inherit(store, kind, key, (parents, sections), hostnames, add, dirty);
                }
                for p in parents {
                    if add {
                        self.routes_of.entry(p.clone()).or_default().insert(obj());
                    } else {
                        remove_from(&mut self.routes_of, p, &obj());
                    }
                    gateways.insert(p.clone());
                }
            }
            Contribution::IstioVirtualService { gateways, .. } => {
                for g in gateways {
                    if add {
                        self.istio_vs
                            .entry(g.clone())
                            .or_default()
                            .insert(key.clone());
                    } else {
                        remove_from(&mut self.istio_vs, g, key);
                    }
                }
            }
            Contribution::Names(nds) | Contribution::Service { names: nds, .. } => {
                for nd in nds {
                    if let Some(svc) = &nd.endpoints_of {
                        if add {
                            self.eps_users.entry(svc.clone()).or_default().insert((
                                kind,
                                ok,
                                key.clone(),
                            ));
                        } else {
                            remove_from(&mut self.eps_users, svc, &(kind, ok, key.clone()));
                        }
                    }
                    for h in hostnames_of(nd) {
                        let user = HostUser::Obj(kind, ok, key.clone());
                        self.host_user(&h, user, add);
                    }
                }
            }
            Contribution::Gateway { .. }
            | Contribution::EndpointSlice { .. }
            | Contribution::IstioGateway { .. } => {}
        }
    }

    /// Registers (`add`) route `key` under its parents' listener hostnames (those of listeners
    /// fitting its kind, other than its own names), as they are in the store now; or removes
    /// the registration made last. Every name is marked dirty.
    #[allow(clippy::too_many_arguments)]
    fn inherit(
        &mut self,
        store: &Store,
        kind: Kind,
        key: &ObjKey,
        (parents, sections): (&[ObjKey], &[(ObjKey, String)]),
        own: &[String],
        add: bool,
        dirty: &mut HashSet<(Kind, Arc<str>)>,
    ) {
        let obj = (kind, key.clone());
        if !add {
            for name in self.inherited.remove(&obj).unwrap_or_default() {
                let name =
                    self.contributor(kind, Cow::Borrowed(&*name), (source_kind(kind), key), false);
                dirty.insert((kind, name));
            }
            return;
        }
        let mut names: Vec<String> = Vec::new();
        for p in parents {
            for n in listener_names(store, kind, p, sections) {
                if !names.contains(&n) && !own.iter().any(|o| norm(o) == n.as_str()) {
                    names.push(n);
                }
            }
        }
        let mut stored = Vec::with_capacity(names.len());
        for n in names {
            let name = self.contributor(kind, Cow::Owned(n), (source_kind(kind), key), true);
            dirty.insert((kind, name.clone()));
            stored.push(name);
        }
        if !stored.is_empty() {
            self.inherited.insert(obj, stored);
        }
    }

    /// Adds or removes object `key` (of object kind `ok`) as a contributor of `name` in
    /// `kind`; returns the name as stored (shared with the tables).
    fn contributor(
        &mut self,
        kind: Kind,
        name: Cow<'_, str>,
        (ok, key): (ObjKind, &ObjKey),
        add: bool,
    ) -> Arc<str> {
        let map = &mut self.by_name[kind.index()];
        let this = |(o, k): &Src| *o == ok && k == key;
        if let Some((stored, keys)) = map.get_key_value(name.as_ref()) {
            let stored = stored.clone();
            let keys_present = keys.iter().any(this);
            if add && !keys_present {
                map.get_mut(name.as_ref())
                    .expect("present")
                    .push((ok, key.clone()));
            } else if !add && keys_present {
                let keys = map.get_mut(name.as_ref()).expect("present");
                keys.retain(|e| !this(e));
                if keys.is_empty() {
                    self.emptied.push((kind, stored.clone()));
                }
            }
            return stored;
        }
        let stored: Arc<str> = Arc::from(name.as_ref());
        if add {
            map.insert(stored.clone(), vec![(ok, key.clone())]);
        }
        stored
    }

    fn host_user(&mut self, host: &str, user: HostUser, add: bool) {
        if add {
            match self.host_users.get_mut(host) {
                Some(users) => {
                    users.insert(user);
                }
                None => {
                    self.host_users
                        .insert(host.to_owned(), HashSet::from([user]));
                    self.hosts_changed = true;
                }
            }
        } else if remove_from(&mut self.host_users, host, &user) {
            self.hosts_changed = true;
        }
    }

    /// Marks every name of object `key` (feeding `kind`) dirty.
    fn dirty_names(
        &self,
        store: &Store,
        kind: Kind,
        key: &ObjKey,
        dirty: &mut HashSet<(Kind, Arc<str>)>,
    ) {
        let map = &self.by_name[kind.index()];
        let objs = kind
            .sources()
            .iter()
            .filter_map(|ok| store.get(*ok)?.get(key));
        for name in objs.flat_map(names_of) {
            let name = match map.get_key_value(name.as_ref()) {
                Some((stored, _)) => stored.clone(),
                None => Arc::from(name.as_ref()),
            };
            dirty.insert((kind, name));
        }
        for name in self
            .inherited
            .get(&(kind, key.clone()))
            .into_iter()
            .flatten()
        {
            dirty.insert((kind, name.clone()));
        }
    }

    /// A hostname's resolved addresses changed: every name using it is dirty.
    fn host_changed(&self, store: &Store, host: &str, dirty: &mut HashSet<(Kind, Arc<str>)>) {
        let Some(users) = self.host_users.get(host) else {
            return;
        };
        for user in users {
            match user {
                HostUser::Obj(kind, _, key) => self.dirty_names(store, *kind, key, dirty),
                HostUser::Gateway(g) => {
                    for (kind, r) in self.routes_of.get(g).into_iter().flatten() {
                        self.dirty_names(store, *kind, r, dirty);
                    }
                }
                HostUser::IstioGateway(g) => self.istio_dirty(store, g, dirty),
            }
        }
    }

    fn class_ok(&self, class: &str) -> bool {
        self.classes.is_empty() || self.classes.iter().any(|c| c == class)
    }

    /// Registers Gateway `g` as a user of its hostnames when it is in use (an accepted class,
    /// at least one route), and unregisters it otherwise.
    fn refresh_gateway(&mut self, store: &Store, g: &ObjKey) {
        let used = self.routes_of.get(g).is_some_and(|r| !r.is_empty());
        let desired: Vec<String> = match store.get(ObjKind::Gateway).and_then(|m| m.get(g)) {
            Some(Contribution::Gateway { class, addrs, .. }) if used && self.class_ok(class) => {
                addrs
                    .iter()
                    .filter_map(|a| match a {
                        Address::Hostname(h) => Some(norm(h).into_owned()),
                        Address::Ip(_) => None,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let old = self.gw_hosts.remove(g).unwrap_or_default();
        if old != desired {
            for h in &old {
                self.host_user(h, HostUser::Gateway(g.clone()), false);
            }
            for h in &desired {
                self.host_user(h, HostUser::Gateway(g.clone()), true);
            }
        }
        if !desired.is_empty() {
            self.gw_hosts.insert(g.clone(), desired);
        }
    }

    /// A Service changed: the Istio Gateways (of its source) whose selector picks it before
    /// or after the change are touched, when what they take from it changed.
    fn service_changed(
        &mut self,
        store: &Store,
        key: &ObjKey,
        old: Option<&Contribution>,
        new: Option<&Contribution>,
    ) {
        let (old, new) = (service_join(old), service_join(new));
        if old == new {
            return;
        }
        let scope = scope_of(&key.namespace);
        for (g, c) in store.get(ObjKind::IstioGateway).into_iter().flatten() {
            if let Contribution::IstioGateway {
                selector,
                target: None,
                ..
            } = c
                && scope_of(&g.namespace) == scope
                && [old, new]
                    .iter()
                    .flatten()
                    .any(|(s, _)| istio_selects(selector, s))
            {
                self.istio_touched.insert(g.clone());
            }
        }
    }

    /// Recomputes Istio Gateway `g`'s data (its target annotation's, else the addresses of the
    /// Services it selects, in its source) and the hostnames it needs resolved.
    fn refresh_istio(&mut self, store: &Store, g: &ObjKey) {
        let data = match store.get(ObjKind::IstioGateway).and_then(|m| m.get(g)) {
            Some(Contribution::IstioGateway {
                target: Some(IstioTarget::Addrs(a)),
                ..
            }) => (a.clone(), None),
            Some(Contribution::IstioGateway {
                target: Some(IstioTarget::Cname(c)),
                ..
            }) => (Vec::new(), Some(norm(c).into_owned())),
            Some(Contribution::IstioGateway {
                selector,
                target: None,
                ..
            }) => {
                let scope = scope_of(&g.namespace);
                let mut addrs: Vec<Address> = store
                    .get(ObjKind::Service)
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| scope_of(&k.namespace) == scope)
                    .filter_map(|(_, c)| service_join(Some(c)))
                    .filter(|(s, _)| istio_selects(selector, s))
                    .flat_map(|(_, a)| a.iter().cloned())
                    .collect();
                addrs.sort();
                addrs.dedup();
                let host = addrs.iter().find_map(|a| match a {
                    Address::Hostname(h) => Some(norm(h).into_owned()),
                    Address::Ip(_) => None,
                });
                match host {
                    Some(h) if self.hostname_as_cname => (Vec::new(), Some(h)),
                    _ => (addrs, None),
                }
            }
            _ => (Vec::new(), None),
        };
        let desired: Vec<String> = data
            .0
            .iter()
            .filter_map(|a| match a {
                Address::Hostname(h) => Some(norm(h).into_owned()),
                Address::Ip(_) => None,
            })
            .collect();
        let old = self.istio_hosts.remove(g).unwrap_or_default();
        if old != desired {
            for h in &old {
                self.host_user(h, HostUser::IstioGateway(g.clone()), false);
            }
            for h in &desired {
                self.host_user(h, HostUser::IstioGateway(g.clone()), true);
            }
        }
        if !desired.is_empty() {
            self.istio_hosts.insert(g.clone(), desired);
        }
        if data.0.is_empty() && data.1.is_none() {
            self.istio_data.remove(g);
        } else {
            self.istio_data.insert(g.clone(), data);
        }
    }

    /// Marks the names of Istio Gateway `g` and of the VirtualServices referencing it dirty.
    fn istio_dirty(&self, store: &Store, g: &ObjKey, dirty: &mut HashSet<(Kind, Arc<str>)>) {
        if self.configured[Kind::IstioGateway.index()] {
            self.dirty_names(store, Kind::IstioGateway, g, dirty);
        }
        for vs in self.istio_vs.get(g).into_iter().flatten() {
            self.dirty_names(store, Kind::IstioVirtualService, vs, dirty);
        }
    }

    /// The records of `name` in `kind`, from every object naming it.
    fn recompute(
        &self,
        store: &Store,
        resolved: &HashMap<String, Vec<IpAddr>>,
        kind: Kind,
        name: &str,
    ) -> (RecordSet, bool) {
        let mut acc = Acc::default();
        let keys = self.by_name[kind.index()].get(name);
        for (ok, key) in keys.into_iter().flatten() {
            match store.get(*ok).and_then(|m| m.get(key)) {
                Some(Contribution::Route {
                    parents,
                    ttl,
                    hostnames,
                    inherit,
                    sections,
                }) => {
                    let gateways = store.get(ObjKind::Gateway);
                    let mut any = false;
                    // A name the route took from listeners gets the addresses of the Gateways
                    // whose listeners have it (ExternalDNS); its own names, every parent's.
                    let own = !*inherit || hostnames.iter().any(|h| norm(h) == name);
                    for p in parents {
                        if !own
                            && !listener_names(store, kind, p, sections)
                                .iter()
                                .any(|n| n == name)
                        {
                            continue;
                        }
                        if let Some(Contribution::Gateway {
                            class,
                            addrs,
                            cname,
                            ..
                        }) = gateways.and_then(|m| m.get(p))
                            && self.class_ok(class)
                        {
                            any = true;
                            for a in addrs {
                                push_addr(&mut acc.addrs, a, resolved);
                            }
                            acc.cname.extend(cname.iter().cloned());
                        }
                    }
                    if any {
                        acc.ttl(*ttl);
                    }
                }
                Some(Contribution::IstioGateway { ttl, .. }) => {
                    if let Some((addrs, cname)) = self.istio_data.get(key) {
                        for a in addrs {
                            push_addr(&mut acc.addrs, a, resolved);
                        }
                        acc.cname.extend(cname.iter().cloned());
                        acc.ttl(*ttl);
                    }
                }
                Some(Contribution::IstioVirtualService {
                    gateways,
                    export_to,
                    target,
                    ttl,
                    ..
                }) => {
                    match target {
                        Some(IstioTarget::Addrs(addrs)) => {
                            for a in addrs {
                                push_addr(&mut acc.addrs, a, resolved);
                            }
                        }
                        Some(IstioTarget::Cname(c)) => acc.cname.push(norm(c).into_owned()),
                        None => {
                            let gws = store.get(ObjKind::IstioGateway);
                            let mut any = false;
                            for g in gateways {
                                if let Some(Contribution::IstioGateway { servers, .. }) =
                                    gws.and_then(|m| m.get(g))
                                    && istio_binds(key, export_to, g, servers, name)
                                    && let Some((addrs, cname)) = self.istio_data.get(g)
                                {
                                    any = true;
                                    for a in addrs {
                                        push_addr(&mut acc.addrs, a, resolved);
                                    }
                                    acc.cname.extend(cname.iter().cloned());
                                }
                            }
                            if !any {
                                continue;
                            }
                        }
                    }
                    acc.ttl(*ttl);
                }
                Some(Contribution::Names(nds) | Contribution::Service { names: nds, .. }) => {
                    // Names are kept in `norm` order (`Store::apply`).
                    let from = nds.partition_point(|nd| norm(&nd.name).as_ref() < name);
                    let same = nds[from..].iter().take_while(|nd| norm(&nd.name) == name);
                    for nd in same {
                        match &nd.endpoints_of {
                            Some(svc) => {
                                let slices = store.get(ObjKind::EndpointSlice);
                                for s in self.slices_of.get(svc).into_iter().flatten() {
                                    if let Some(Contribution::EndpointSlice { addrs, .. }) =
                                        slices.and_then(|m| m.get(s))
                                    {
                                        acc.addrs.extend_from_slice(addrs);
                                    }
                                }
                            }
                            None => {
                                for a in &nd.addrs {
                                    push_addr(&mut acc.addrs, a, resolved);
                                }
                            }
                        }
                        acc.txt.extend(nd.txt.iter().cloned());
                        acc.cname
                            .extend(nd.cname.iter().map(|c| norm(c).into_owned()));
                        acc.ttl(nd.ttl);
                    }
                }
                _ => {}
            }
        }
        acc.finish()
    }

    /// Phase 2: writes recomputed names into the working snapshot, with their empty
    /// non-terminals and zone hashes. Returns the conflicts that appeared.
    fn apply(&mut self, updates: Vec<Update>) -> Vec<String> {
        let mut added = Vec::new();
        if updates.len() > 1000 {
            // A load or a re-list: size the tables once.
            let mut adds = [[0usize; 2]; KINDS];
            for u in &updates {
                if let Some((wild, _)) = slot(&u.name).filter(|_| !u.rs.is_empty()) {
                    adds[u.kind.index()][wild as usize] += 1;
                }
            }
            for (i, [exact, wild]) in adds.into_iter().enumerate() {
                self.snap.exact[i].reserve(exact);
                self.snap.wild[i].reserve(wild);
            }
        }
        let mut touched: Vec<Arc<str>> = Vec::new();
        for u in updates {
            if self.reverse && !u.name.starts_with("*.") {
                touched.push(u.name.clone());
            }
            if u.conflict || !self.conflicts.is_empty() {
                let c = format!("{}/{}", u.kind, u.name);
                if u.conflict {
                    if !self.conflicts.contains(&c) {
                        self.conflicts.insert(c.clone());
                        added.push(c);
                    }
                } else {
                    self.conflicts.remove(&c);
                }
            }
            let Some((wild, key)) = slot(&u.name) else {
                continue;
            };
            let i = u.kind.index();
            let map = if wild {
                &mut self.snap.wild[i]
            } else {
                &mut self.snap.exact[i]
            };
            let old = map.get(key);
            let present = !u.rs.is_empty();
            match old {
                Some(o) if **o == u.rs => continue,
                None if !present => continue,
                _ => {}
            }
            // The zone the entry counts for: the longest containing one, else all of them.
            let best = self
                .zones
                .iter()
                .enumerate()
                .filter(|(_, (z, _, _))| in_zone(key, z))
                .max_by_key(|(_, (z, _, _))| z.len())
                .map(|(i, _)| i);
            let zones = match best {
                Some(b) => b..b + 1,
                None => 0..self.zones.len(),
            };
            if let Some(o) = old {
                let h = entry_hash(u.kind, wild, key, o);
                for z in &mut self.zones[zones.clone()] {
                    z.1 = z.1.wrapping_sub(h);
                    z.2 -= 1;
                }
            }
            if present {
                let h = entry_hash(u.kind, wild, key, &u.rs);
                for z in &mut self.zones[zones] {
                    z.1 = z.1.wrapping_add(h);
                    z.2 += 1;
                }
            }
            let was = old.is_some();
            if present {
                let key: Arc<str> = if wild { Arc::from(key) } else { u.name.clone() };
                map.insert(key, Arc::new(u.rs));
            } else {
                map.remove(key);
            }
            if was != present {
                self.ents(&u.name, present);
            }
        }
        if !touched.is_empty() {
            self.ptrs(touched);
        }
        added
    }

    /// The longest zone containing `key`, by position.
    fn zone_of(&self, key: &str) -> Option<usize> {
        self.zones
            .iter()
            .enumerate()
            .filter(|(_, (z, _, _))| in_zone(key, z))
            .max_by_key(|(_, (z, _, _))| z.len())
            .map(|(i, _)| i)
    }

    /// The forward names an exact key is reachable as: itself in a forward zone; a key in no
    /// zone (a Service's `name.namespace`) under every forward zone, as zone transfers list it.
    fn owners(&self, key: &str) -> Vec<String> {
        match self.zone_of(key) {
            Some(i) if is_reverse_zone(&self.zones[i].0) => Vec::new(),
            Some(_) => vec![key.to_owned()],
            None => self
                .zones
                .iter()
                .filter(|(z, _, _)| !is_reverse_zone(z))
                .map(|(z, _, _)| {
                    if z.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{key}.{z}")
                    }
                })
                .collect(),
        }
    }

    /// The addresses `name` answers with: those of the first kind (in precedence order) that
    /// has it.
    fn published(&self, name: &str) -> Vec<IpAddr> {
        let Some(rs) = self
            .kinds
            .iter()
            .find_map(|k| self.snap.exact[k.index()].get(name))
        else {
            return Vec::new();
        };
        let mut v: Vec<IpAddr> = rs.a.iter().map(|a| IpAddr::V4(*a)).collect();
        v.extend(rs.aaaa.iter().map(|a| IpAddr::V6(*a)));
        v
    }

    /// Phase 2 for reverse zones: the PTR names of the addresses `touched` names published
    /// before and publish now, with their zone hashes and empty non-terminals.
    fn ptrs(&mut self, mut touched: Vec<Arc<str>>) {
        touched.sort_unstable();
        touched.dedup();
        let mut changed: BTreeSet<String> = BTreeSet::new();
        for name in touched {
            let new = self.published(&name);
            let old = self.ptr_src.get(&name).cloned().unwrap_or_default();
            if new == old {
                continue;
            }
            let owners = self.owners(&name);
            if owners.is_empty() {
                continue;
            }
            for (addrs, other, add) in [(&old, &new, false), (&new, &old, true)] {
                for a in addrs.iter().filter(|a| !other.contains(a)) {
                    let rev = reverse_name(*a);
                    if !self
                        .zone_of(&rev)
                        .is_some_and(|i| is_reverse_zone(&self.zones[i].0))
                    {
                        continue;
                    }
                    let set = self.ptr_owners.entry(rev.clone()).or_default();
                    for o in &owners {
                        if add {
                            *set.entry(o.clone()).or_insert(0) += 1;
                        } else if let Some(n) = set.get_mut(o) {
                            *n -= 1;
                            if *n == 0 {
                                set.remove(o);
                            }
                        }
                    }
                    if set.is_empty() {
                        self.ptr_owners.remove(&rev);
                    }
                    changed.insert(rev);
                }
            }
            if new.is_empty() {
                self.ptr_src.remove(&name);
            } else {
                self.ptr_src.insert(name, new);
            }
        }
        for rev in changed {
            let owners: Vec<String> = self
                .ptr_owners
                .get(&rev)
                .map(|s| s.keys().cloned().collect())
                .unwrap_or_default();
            let old = self.snap.ptr.get(&rev).cloned();
            if old.as_deref() == Some(&owners) {
                continue;
            }
            let Some(z) = self.zone_of(&rev) else {
                continue;
            };
            if let Some(o) = &old {
                let zone = &mut self.zones[z];
                zone.1 = zone.1.wrapping_sub(ptr_hash(&rev, o));
                zone.2 -= 1;
            }
            let present = !owners.is_empty();
            if present {
                let zone = &mut self.zones[z];
                zone.1 = zone.1.wrapping_add(ptr_hash(&rev, &owners));
                zone.2 += 1;
            }
            if old.is_some() != present {
                self.ents(&rev, present);
            }
            if present {
                self.snap
                    .ptr
                    .insert(Arc::from(rev.as_str()), Arc::new(owners));
            } else {
                self.snap.ptr.remove(&rev);
            }
        }
    }

    /// Counts `name`'s ancestors as empty non-terminals (`add`) or stops counting them.
    fn ents(&mut self, name: &str, add: bool) {
        for parent in ancestors(name) {
            if add {
                if let Some(n) = self.ent_counts.get_mut(parent) {
                    *n += 1;
                } else {
                    let p: Arc<str> = Arc::from(parent);
                    self.ent_counts.insert(p.clone(), 1);
                    self.snap.ents.insert(p, ());
                }
            } else if let Some(n) = self.ent_counts.get_mut(parent) {
                *n -= 1;
                if *n == 0 {
                    self.ent_counts.remove(parent);
                    self.snap.ents.remove(parent);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
