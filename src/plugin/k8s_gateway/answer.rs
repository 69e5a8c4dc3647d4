//! The answer table of docs/plugins/k8s_gateway.md as a pure function of the settings, the
//! snapshot and the query — what the table tests drive.
//!
//! Every answer from the zone is authoritative (AA) and never claims recursion (RA clear);
//! every negative answer carries the zone's SOA in the authority section.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, HINFO, NS, PTR, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::dns::request::Request;
use crate::dns::view::QueryView;
use crate::dns::wire::{self, encode::ReplyWriter};
use crate::kube::model::Kind;
use crate::kube::snapshot::{RecordSet, Snapshot};
use crate::plugin::k8s_gateway::setup::Settings;
use crate::plugin::zones::{in_zone, match_zone};

/// What the plugin does with a query.
#[derive(Debug)]
pub enum Answer {
    Reply(Message),
    Code(ResponseCode),
    /// Not ours (another zone, another class, or fallthrough): the next plugin.
    Next,
}

/// The names and records of each zone that depend only on the settings, built once (at setup)
/// so that no answer parses a name from text.
#[derive(Debug)]
pub struct Prepared {
    /// Parallel to `Settings::zones`.
    zones: Vec<ZoneNames>,
}

#[derive(Debug)]
struct ZoneNames {
    zone: Name,
    mname: Name,
    rname: Name,
    /// The NS records, in name order.
    ns: Vec<Record>,
    /// (snapshot key, absolute name) of the apex and secondary, in NS order.
    glue: Vec<(String, Name)>,
    /// An `in-addr.arpa.`/`ip6.arpa.` zone: answers PTR for the forward zones' addresses.
    reverse: bool,
}

/// Whether `zone` (absolute, lower-case) is a reverse zone.
fn is_reverse(zone: &str) -> bool {
    crate::kube::index::is_reverse_zone(zone.trim_end_matches('.'))
}

impl Prepared {
    pub fn new(s: &Settings) -> Prepared {
        let name = |n: &str| Name::from_ascii(n).unwrap_or_else(|_| Name::root());
        let mut servers = vec![s.apex.as_str()];
        if let Some(sec) = &s.secondary {
            servers.push(sec);
        }
        servers.sort_unstable();
        servers.dedup();
        // The SOA MNAME's label: the apex, or — in a dual deployment — the lower of apex and
        // secondary, so both instances publish the same SOA.
        let primary = match &s.secondary {
            Some(sec) if sec.as_str() < s.apex.as_str() => sec.as_str(),
            _ => s.apex.as_str(),
        };
        let zones = s
            .zones
            .iter()
            .map(|zone| {
                let in_zone = |label: &str| {
                    if zone == "." {
                        name(&format!("{label}."))
                    } else {
                        name(&format!("{label}.{zone}"))
                    }
                };
                let zname = name(zone);
                ZoneNames {
                    mname: in_zone(primary),
                    rname: in_zone(&format!("hostmaster.{primary}")),
                    ns: servers
                        .iter()
                        .map(|n| {
                            Record::from_rdata(zname.clone(), s.ttl, RData::NS(NS(in_zone(n))))
                        })
                        .collect(),
                    glue: servers
                        .iter()
                        .map(|n| (n.to_string(), in_zone(n)))
                        .collect(),
                    zone: zname,
                    reverse: is_reverse(zone),
                }
            })
            .collect();
        Prepared { zones }
    }
}

/// Answers `req` from `snap` (building the [`Prepared`] names first: for tests; the plugin keeps
/// them and calls [`answer_prepared`]).
pub fn answer(s: &Settings, snap: &Snapshot, req: &Request) -> Answer {
    answer_prepared(s, &Prepared::new(s), snap, req)
}

/// Answers `req` from `snap` with names prepared from `s`.
pub fn answer_prepared(s: &Settings, p: &Prepared, snap: &Snapshot, req: &Request) -> Answer {
    let qname = req.name.as_str();
    let Some(i) = zone_index(s, qname) else {
        return Answer::Next;
    };
    let (zone, names) = (s.zones[i].as_str(), &p.zones[i]);
    if req.qclass() != DNSClass::IN {
        return Answer::Next;
    }
    if !snap.synced() {
        // Never a premature NXDOMAIN: the watches have not listed everything yet.
        return Answer::Code(ResponseCode::ServFail);
    }
    let qtype = req.qtype();
    // Zone transfers are the transfer plugin's: without it (or from a stranger) REFUSED.
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Answer::Code(ResponseCode::Refused);
    }
    let mut r = Responder {
        s,
        snap,
        req,
        zone,
        names,
        msg: req.reply(),
    };
    r.msg.metadata.authoritative = true;
    r.msg.metadata.recursion_available = false;
    let found = if names.reverse {
        find_ptr(s, snap, qname, zone)
    } else {
        find(s, snap, qname, zone)
    };
    match found {
        Found::Apex if names.reverse => r.apex(qtype, None),
        Found::Apex => r.apex(qtype, Some(qname.trim_end_matches('.'))),
        Found::Ptr(owners) => r.ptr(qtype, &owners),
        Found::ApexHost => {
            let data = snap.exact(Kind::Service, &s.apex);
            r.data(qtype, data.as_deref())
        }
        Found::Data(data) => r.data(qtype, Some(&data)),
        Found::EmptyNonTerminal => r.nodata(),
        Found::Missing => {
            if let Some(fall) = &s.fallthrough
                && match_zone(fall, qname).is_some()
            {
                return Answer::Next;
            }
            r.nxdomain()
        }
    }
}

/// The longest of our zones that contains `qname` (`match_zone`, by index).
fn zone_index(s: &Settings, qname: &str) -> Option<usize> {
    (0..s.zones.len())
        .filter(|&i| in_zone(qname, &s.zones[i]))
        .max_by_key(|&i| s.zones[i].len())
}

/// What the snapshot holds for a name in one of our zones.
enum Found {
    /// The zone's apex.
    Apex,
    /// `<apex>.<zone>`: this instance's own addresses.
    ApexHost,
    /// The name's data (exact, or a wildcard's).
    Data(Arc<RecordSet>),
    /// In a reverse zone: the forward names of the address (absolute, no trailing dot).
    Ptr(Arc<Vec<String>>),
    /// No data, but names below it (RFC 8020: it exists).
    EmptyNonTerminal,
    /// Nothing (names below `<apex>.<zone>` included).
    Missing,
}

/// Looks `qname` (lower case, absolute, in `zone`) up in the snapshot.
fn find(s: &Settings, snap: &Snapshot, qname: &str, zone: &str) -> Found {
    let abs = qname.trim_end_matches('.');
    // The name relative to the zone ("" at the apex).
    let rel = if qname == zone {
        ""
    } else if zone == "." {
        abs
    } else {
        &qname[..qname.len() - zone.len() - 1]
    };
    if rel.is_empty() {
        return Found::Apex;
    }
    // <apex>.<zone>: this instance's own addresses; nothing exists below it.
    if rel == s.apex {
        return Found::ApexHost;
    }
    if rel.len() > s.apex.len()
        && rel.ends_with(s.apex.as_str())
        && rel.as_bytes()[rel.len() - s.apex.len() - 1] == b'.'
    {
        return Found::Missing;
    }
    let keys: &[&str] = if rel == abs { &[abs] } else { &[abs, rel] };
    // RFC 4592 §2.2.2: a wildcard does not match a name that exists, even as an empty
    // non-terminal; such a name only has its exact data.
    let ent = keys.iter().any(|k| snap.has_descendants(k));
    let found = if ent {
        s.kinds
            .iter()
            .find_map(|k| keys.iter().find_map(|key| snap.exact(*k, key)))
    } else {
        snap.lookup(&s.kinds, keys).map(|(_, d)| d)
    };
    match found {
        Some(data) => Found::Data(data),
        None if ent => Found::EmptyNonTerminal,
        None => Found::Missing,
    }
}

/// Looks `qname` (lower case, absolute, in the reverse `zone`) up in the snapshot's PTR names.
fn find_ptr(s: &Settings, snap: &Snapshot, qname: &str, zone: &str) -> Found {
    let abs = qname.trim_end_matches('.');
    if qname == zone {
        return Found::Apex;
    }
    let rel = &qname[..qname.len() - zone.len() - 1];
    // <apex>.<zone>: the nameserver's own name, as in forward zones.
    if rel == s.apex {
        return Found::ApexHost;
    }
    if let Some(owners) = snap.ptr(abs) {
        return Found::Ptr(owners.clone());
    }
    if snap.has_descendants(abs) {
        Found::EmptyNonTerminal
    } else {
        Found::Missing
    }
}

/// The fast path's answer ([`crate::dns::view`]): a name with addresses of the asked family
/// (A or AAAA), answered straight in wire form. Everything else — other types, CNAMEs, no
/// addresses of that family, denials, not yet synced — is `None`, for the full path.
pub fn answer_fast(s: &Settings, snap: &Snapshot, q: &QueryView<'_>) -> Option<Vec<u8>> {
    let v4 = match q.qtype {
        RecordType::A => true,
        RecordType::AAAA => false,
        _ => return None,
    };
    let i = zone_index(s, q.name)?;
    if !snap.synced() || is_reverse(&s.zones[i]) {
        return None;
    }
    // The data `answer_prepared` answers A and AAAA from.
    let d = match find(s, snap, q.name, &s.zones[i]) {
        Found::Data(d) => d,
        Found::Apex => snap.lookup(&s.kinds, &[q.name.trim_end_matches('.')])?.1,
        Found::ApexHost => snap.exact(Kind::Service, &s.apex)?,
        Found::Ptr(_) | Found::EmptyNonTerminal | Found::Missing => return None,
    };
    if !d.cname.is_empty() || (v4 && d.a.is_empty()) || (!v4 && d.aaaa.is_empty()) {
        return None;
    }
    // As the full path writes it: the client's question, AA, RA clear, the owner lower-cased.
    let flags = wire::QR | wire::AA | (wire::flags(q.buf) & (wire::RD | wire::CD));
    let mut w = ReplyWriter::new(q.id(), flags, q.qname_wire(), q.qtype.into(), 1);
    let mut owner = [0u8; 255];
    let owner = &mut owner[..q.qname_wire().len()];
    owner.copy_from_slice(q.qname_wire());
    owner.make_ascii_lowercase();
    // The same TTL source as the full path: the name's own, else the directive's.
    let ttl = d.ttl_or(s.ttl);
    if v4 {
        for ip in &d.a {
            w.record(owner, wire::T_A, ttl, &ip.octets());
        }
    } else {
        for ip in &d.aaaa {
            w.record(owner, wire::T_AAAA, ttl, &ip.octets());
        }
    }
    w.finish(q.edns.map(|e| e.dnssec_ok))
}

struct Responder<'a> {
    s: &'a Settings,
    snap: &'a Snapshot,
    req: &'a Request,
    zone: &'a str,
    names: &'a ZoneNames,
    msg: Message,
}

impl Responder<'_> {
    fn name(n: &str) -> Name {
        Name::from_ascii(n).unwrap_or_else(|_| Name::root())
    }

    /// The query name, lower-cased (owner names are, as the anchors write them).
    fn owner(&self) -> Name {
        match self.req.msg.queries.first() {
            Some(q) => q.name().to_lowercase(),
            None => Self::name(&self.req.name),
        }
    }

    fn soa(&self) -> Record {
        soa(self.s, self.names, self.snap.serial(self.zone))
    }

    /// NS set in name order, identical on both instances of a dual deployment.
    fn ns_records(&self) -> Vec<Record> {
        self.names.ns.clone()
    }

    /// A and AAAA glue for the apex and the secondary nameserver, in NS order.
    fn glue(&self) -> Vec<Record> {
        let mut v = Vec::new();
        for (key, name) in &self.names.glue {
            let data = self.snap.exact(Kind::Service, key);
            let ttl = data.as_deref().map_or(self.s.ttl, |d| d.ttl_or(self.s.ttl));
            push_addrs(&mut v, name, data.as_deref(), ttl, true, true);
        }
        v
    }

    fn finish(mut self, rcode: ResponseCode, with_soa: bool) -> Answer {
        self.msg.metadata.response_code = rcode;
        if with_soa {
            let soa = self.soa();
            self.msg.authorities.push(soa);
        }
        Answer::Reply(self.msg)
    }

    fn nxdomain(self) -> Answer {
        self.finish(ResponseCode::NXDomain, true)
    }

    fn nodata(self) -> Answer {
        self.finish(ResponseCode::NoError, true)
    }

    /// RFC 8482: one small synthesized HINFO instead of every record of the name.
    fn any(mut self, owner: Name) -> Answer {
        let rec = Record::from_rdata(
            owner,
            self.s.ttl,
            RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
        );
        self.msg.answers.push(rec);
        self.finish(ResponseCode::NoError, false)
    }

    /// PTR records of a reverse name, one per forward name (sorted); NODATA for other types.
    fn ptr(mut self, qtype: RecordType, owners: &[String]) -> Answer {
        let owner = self.owner();
        if qtype == RecordType::ANY {
            return self.any(owner);
        }
        if qtype != RecordType::PTR {
            return self.nodata();
        }
        push_ptrs(&mut self.msg.answers, &owner, owners, self.s.ttl);
        self.finish(ResponseCode::NoError, false)
    }

    /// `abs`: the apex's name, whose own data answers other types (`None`: it has none).
    fn apex(mut self, qtype: RecordType, abs: Option<&str>) -> Answer {
        match qtype {
            RecordType::SOA => {
                let soa = self.soa();
                self.msg.answers.push(soa);
                let ns = self.ns_records();
                self.msg.authorities.extend(ns);
                let glue = self.glue();
                self.msg.additionals.extend(glue);
                self.finish(ResponseCode::NoError, false)
            }
            RecordType::NS => {
                let ns = self.ns_records();
                self.msg.answers.extend(ns);
                let glue = self.glue();
                self.msg.additionals.extend(glue);
                self.finish(ResponseCode::NoError, false)
            }
            RecordType::ANY => {
                let zone = self.names.zone.clone();
                self.any(zone)
            }
            _ => {
                // The apex name may itself carry data (an Ingress for `example.com`).
                let data =
                    abs.and_then(|abs| self.snap.lookup(&self.s.kinds, &[abs]).map(|(_, d)| d));
                self.data(qtype, data.as_deref())
            }
        }
    }

    /// Answers `qtype` for the query name from its data (`None`: the name exists without data).
    fn data(mut self, qtype: RecordType, data: Option<&RecordSet>) -> Answer {
        let Some(d) = data else { return self.nodata() };
        let owner_name = self.owner();
        // The object's own TTL (resolved when the snapshot was built), else the directive's.
        let ttl = d.ttl_or(self.s.ttl);
        if qtype == RecordType::ANY {
            return self.any(owner_name);
        }
        if let Some(target) = d.cname.first() {
            // A CNAME answers every type (RFC 1034 §3.6.2); chase it inside our own data.
            let tname = Self::name(&format!("{target}."));
            self.msg.answers.push(Record::from_rdata(
                owner_name,
                ttl,
                RData::CNAME(CNAME(tname.clone())),
            ));
            if qtype != RecordType::CNAME {
                self.chase(target, qtype, 8);
            }
            return self.finish(ResponseCode::NoError, false);
        }
        match qtype {
            RecordType::A | RecordType::AAAA => {
                push_addrs(
                    &mut self.msg.answers,
                    &owner_name,
                    Some(d),
                    ttl,
                    qtype == RecordType::A,
                    qtype == RecordType::AAAA,
                );
            }
            RecordType::TXT => {
                for t in &d.txt {
                    self.msg.answers.push(Record::from_rdata(
                        owner_name.clone(),
                        ttl,
                        RData::TXT(txt(t)),
                    ));
                }
            }
            _ => {}
        }
        if self.msg.answers.is_empty() {
            self.nodata()
        } else {
            self.finish(ResponseCode::NoError, false)
        }
    }

    /// Follows a CNAME target through our own zones' data, appending what it finds.
    fn chase(&mut self, target: &str, qtype: RecordType, depth: u8) {
        if depth == 0 {
            return;
        }
        let fq = format!("{target}.");
        let Some(zone) = match_zone(&self.s.zones, &fq) else {
            return;
        };
        if !in_zone(&fq, zone) {
            return;
        }
        let rel = if fq == zone {
            String::new()
        } else if zone == "." {
            target.to_string()
        } else {
            fq[..fq.len() - zone.len() - 1].to_string()
        };
        let keys: Vec<&str> = if rel.is_empty() || rel == target {
            vec![target]
        } else {
            vec![target, rel.as_str()]
        };
        let Some((_, d)) = self.snap.lookup(&self.s.kinds, &keys) else {
            return;
        };
        let owner = Self::name(&fq);
        let ttl = d.ttl_or(self.s.ttl);
        if let Some(next) = d.cname.first() {
            let nname = Self::name(&format!("{next}."));
            self.msg
                .answers
                .push(Record::from_rdata(owner, ttl, RData::CNAME(CNAME(nname))));
            let next = next.clone();
            self.chase(&next, qtype, depth - 1);
            return;
        }
        match qtype {
            RecordType::A | RecordType::AAAA => push_addrs(
                &mut self.msg.answers,
                &owner,
                Some(&d),
                ttl,
                qtype == RecordType::A,
                qtype == RecordType::AAAA,
            ),
            RecordType::TXT => {
                for t in &d.txt {
                    self.msg.answers.push(Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::TXT(txt(t)),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// The zone's SOA: timers from the settings; its TTL and MINIMUM (the negative-caching TTL,
/// RFC 2308) are the directive's `ttl`, so a name that appears is seen as soon as an answer
/// would be.
fn soa(s: &Settings, names: &ZoneNames, serial: u32) -> Record {
    Record::from_rdata(
        names.zone.clone(),
        s.ttl,
        RData::SOA(SOA::new(
            names.mname.clone(),
            names.rname.clone(),
            serial,
            s.soa.refresh as i32,
            s.soa.retry as i32,
            s.soa.expire as i32,
            s.ttl,
        )),
    )
}

/// Every record of `zone` (one of the settings' zones, lower-case absolute) as queries see
/// it, for zone transfers: the SOA first, then the NS set, then every name's data in name
/// order (glue included, as `<apex>.<zone>` and the secondary are names of the zone). Names in
/// a longer configured zone belong to that zone. `None` before the first sync.
pub fn zone_records(
    s: &Settings,
    p: &Prepared,
    snap: &Snapshot,
    zone: &str,
) -> Option<Vec<Record>> {
    let i = s.zones.iter().position(|z| z == zone)?;
    if !snap.synced() {
        return None;
    }
    let names = &p.zones[i];
    if names.reverse {
        return Some(reverse_zone_records(s, names, snap, zone));
    }
    // Owner names (absolute, lower-case): a name in this zone, or a name outside every
    // configured zone (a Service's `name.namespace`), which queries reach relative to any zone.
    let abs = |key: &str, wild: bool| -> Option<String> {
        let mut fq = String::with_capacity(key.len() + zone.len() + 3);
        if wild {
            fq.push_str("*.");
        }
        fq.push_str(key);
        fq.push('.');
        if in_zone(&fq, zone) {
            Some(fq)
        } else if s.zones.iter().any(|z| in_zone(&fq, z)) {
            None // another zone's name
        } else {
            if zone != "." {
                fq.push_str(zone);
            }
            Some(fq)
        }
    };
    let mut owners: Vec<String> = Vec::new();
    for kind in &s.kinds {
        owners.extend(
            snap.exact[kind.index()]
                .iter()
                .filter_map(|(k, _)| abs(k, false)),
        );
        owners.extend(
            snap.wild[kind.index()]
                .iter()
                .filter_map(|(k, _)| abs(k, true)),
        );
    }
    for (_, glue) in &names.glue {
        owners.push(glue.to_ascii().to_ascii_lowercase());
    }
    owners.sort_unstable();
    owners.dedup();
    let mut out = vec![soa(s, names, snap.serial(zone))];
    out.extend(names.ns.iter().cloned());
    // The apex's own data (an Ingress for the zone's name); never a CNAME beside the SOA.
    let apex = zone.trim_end_matches('.');
    if let Some((_, d)) = snap.lookup(&s.kinds, &[apex]) {
        push_data(&mut out, &names.zone, &d, s.ttl, false);
    }
    for owner in owners {
        if owner == zone || zone_index(s, &owner) != Some(i) {
            continue;
        }
        let data = match find(s, snap, &owner, zone) {
            Found::Data(d) => d,
            Found::ApexHost => match snap.exact(Kind::Service, &s.apex) {
                Some(d) => d,
                None => continue,
            },
            Found::Apex | Found::Ptr(_) | Found::EmptyNonTerminal | Found::Missing => continue,
        };
        let Ok(name) = Name::from_ascii(&owner) else {
            continue;
        };
        push_data(&mut out, &name, &data, s.ttl, true);
    }
    Some(out)
}

/// [`zone_records`] for a reverse zone: SOA, NS, then the glue's addresses and the PTR names
/// in name order.
fn reverse_zone_records(
    s: &Settings,
    names: &ZoneNames,
    snap: &Snapshot,
    zone: &str,
) -> Vec<Record> {
    let mut owners = std::collections::BTreeSet::new();
    for (k, _) in snap.ptr.iter() {
        let fq = format!("{k}.");
        if zone_index(s, &fq).is_some_and(|j| s.zones[j] == zone) {
            owners.insert(fq);
        }
    }
    for (_, glue) in &names.glue {
        owners.insert(glue.to_ascii().to_ascii_lowercase());
    }
    let mut out = vec![soa(s, names, snap.serial(zone))];
    out.extend(names.ns.iter().cloned());
    for owner in owners {
        let Ok(name) = Name::from_ascii(&owner) else {
            continue;
        };
        match find_ptr(s, snap, &owner, zone) {
            Found::Ptr(ptrs) => push_ptrs(&mut out, &name, &ptrs, s.ttl),
            Found::ApexHost => {
                if let Some(d) = snap.exact(Kind::Service, &s.apex) {
                    push_data(&mut out, &name, &d, s.ttl, true);
                }
            }
            _ => {}
        }
    }
    out
}

/// One PTR record per forward name.
fn push_ptrs(out: &mut Vec<Record>, owner: &Name, targets: &[String], ttl: u32) {
    for t in targets {
        if let Ok(n) = Name::from_ascii(format!("{t}.")) {
            out.push(Record::from_rdata(owner.clone(), ttl, RData::PTR(PTR(n))));
        }
    }
}

/// A name's records: its CNAME (when `cname` is allowed), else its A, AAAA and TXT.
fn push_data(out: &mut Vec<Record>, owner: &Name, d: &RecordSet, default_ttl: u32, cname: bool) {
    let ttl = d.ttl_or(default_ttl);
    if let Some(target) = d.cname.first() {
        if cname && let Ok(t) = Name::from_ascii(format!("{target}.")) {
            out.push(Record::from_rdata(
                owner.clone(),
                ttl,
                RData::CNAME(CNAME(t)),
            ));
        }
        return;
    }
    push_addrs(out, owner, Some(d), ttl, true, true);
    for t in &d.txt {
        out.push(Record::from_rdata(owner.clone(), ttl, RData::TXT(txt(t))));
    }
}

fn push_addrs(
    out: &mut Vec<Record>,
    owner: &Name,
    d: Option<&RecordSet>,
    ttl: u32,
    v4: bool,
    v6: bool,
) {
    let Some(d) = d else { return };
    if v4 {
        for ip in &d.a {
            out.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(*ip))));
        }
    }
    if v6 {
        for ip in &d.aaaa {
            out.push(Record::from_rdata(
                owner.clone(),
                ttl,
                RData::AAAA(AAAA(*ip)),
            ));
        }
    }
}

/// One TXT record; strings over 255 bytes become several 255-byte character-strings.
pub fn txt(s: &str) -> TXT {
    let chunks: Vec<&[u8]> = if s.is_empty() {
        vec![&[][..]]
    } else {
        s.as_bytes().chunks(255).collect()
    };
    TXT::from_bytes(chunks)
}

/// For tests: an address list as a RecordSet.
pub fn record_set(addrs: &[IpAddr]) -> Arc<RecordSet> {
    let mut rs = RecordSet::default();
    for a in addrs {
        match a {
            IpAddr::V4(v) => rs.a.push(*v),
            IpAddr::V6(v) => rs.aaaa.push(*v),
        }
    }
    Arc::new(rs)
}
