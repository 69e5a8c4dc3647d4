//! `dnssec`: online signing of the block's answers (CoreDNS's plugin, its syntax and metrics).
//!
//! Replies to queries with the DO bit for the plugin's zones are signed as they pass: every
//! RRset of the zone in the answer, authority and additional sections gets an RRSIG, made once
//! and kept in a signature cache (`cache_capacity` entries) keyed by the RRset's content, so an
//! RRset that did not change is not signed again until its signature nears expiry. Signatures
//! are valid from 3 hours before they were made to 8 days after, less a per-RRset jitter of up
//! to 12 hours (so a zone's signatures do not all expire together); one with less than 2 days
//! left is made again. A changed RRset (a cluster change) is another cache key: it is signed
//! when first asked for.
//!
//! Denial of existence is compact (RFC 9824, CoreDNS's "black lies"): a name that does not
//! exist gets NOERROR with an NSEC at the name whose next name is its immediate successor
//! (`\000.name`) and whose bitmap is RRSIG, NSEC and NXNAME; a name without the asked type gets
//! the same kind of NSEC listing every type but the asked one. Nothing to precompute, no zone
//! walk. Referrals (file zones) get the DS RRset signed, or an NSEC at the delegation proving
//! there is none.
//!
//! The apex DNSKEY RRset (and CDS/CDNSKEY for the parent, RFC 7344) is answered here. With a KSK
//! and a ZSK (SEP bit set on one, not on the other) the KSKs sign DNSKEY/CDS/CDNSKEY and the
//! ZSKs everything else; otherwise every key signs everything. Key files are checked every 10
//! seconds: new keys replace the old ones without a restart (a broken file keeps the old keys
//! and is logged).

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::hash::{BuildHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use crate::dns::dnssec::{self, RRset, SigningKey, T_NXNAME, Validity};
use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::plugin::util::TaskSlot;
use crate::plugin::zones::match_zone;
use crate::plugin::{FastNext, Next, Plugin, StartupCtx};

pub const NAME: &str = "dnssec";

/// CoreDNS's default `cache_capacity`.
pub const DEFAULT_CAPACITY: u64 = 10_000;
/// The TTL of the DNSKEY, CDS and CDNSKEY RRsets (CoreDNS signs DNSKEY with 3600).
pub const KEY_TTL: u32 = 3600;
const HOUR: u32 = 3600;
const DAY: u32 = 24 * HOUR;
/// How often the key files are looked at.
const KEY_POLL: Duration = Duration::from_secs(10);

/// Types a name of the zone may hold, listed (less the asked type) in the NSEC of a NODATA
/// answer: claiming a type that is absent is harmless (a resolver asks), leaving out one that
/// exists would let aggressive NSEC caching deny it. Never CNAME, NS or DS below the apex
/// (those would turn the proof into an alias or a delegation).
const NAME_TYPES: &[u16] = &[
    1, 12, 13, 15, 16, 28, 29, 33, 35, 37, 44, 46, 47, 52, 53, 55, 61, 64, 65, 99, 256, 257,
];
/// The apex also holds NS, SOA, DNSKEY, CDS and CDNSKEY.
const APEX_EXTRA: &[u16] = &[2, 6, 48, 59, 60];

/// The keys in use.
pub(crate) struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    /// A KSK and a ZSK were given: KSKs sign the key RRsets, ZSKs the rest.
    split: bool,
    /// Changes with every (re)load: part of every signature cache key.
    generation: u64,
    /// The files the keys were read from, and their modification times at load.
    files: Vec<(PathBuf, Option<SystemTime>)>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<SigningKey>, generation: u64) -> KeySet {
        let ksk = keys.iter().any(|k| k.is_ksk());
        let zsk = keys.iter().any(|k| k.is_zsk());
        let mut files = Vec::new();
        for k in &keys {
            let private = k.file.with_extension("private");
            for f in [k.file.clone(), private] {
                let m = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
                files.push((f, m));
            }
        }
        KeySet {
            keys: keys.into_iter().map(Arc::new).collect(),
            split: ksk && zsk,
            generation,
            files,
        }
    }

    /// The keys that sign an RRset of type `t`.
    fn signers(&self, t: RecordType) -> impl Iterator<Item = &Arc<SigningKey>> {
        let key_set = matches!(
            t,
            RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
        );
        self.keys
            .iter()
            .filter(move |k| !self.split || if key_set { k.is_ksk() } else { k.is_zsk() })
    }

    /// The keys the parent's DS should name: the KSKs when split, else every key.
    fn entry_keys(&self) -> impl Iterator<Item = &Arc<SigningKey>> {
        self.keys.iter().filter(move |k| !self.split || k.is_ksk())
    }

    fn changed_on_disk(&self) -> bool {
        self.files
            .iter()
            .any(|(f, m)| std::fs::metadata(f).and_then(|md| md.modified()).ok() != *m)
    }
}

/// Signatures made for one RRset, and when the first of them expires.
struct Sigs {
    records: Vec<Record>,
    expiration: u32,
}

type SigCache = moka::sync::Cache<u64, Arc<Sigs>>;

/// `coredns_dnssec_cache_entries{server, type}`.
static ENTRIES: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    crate::metrics::gauge_vec(
        "coredns_dnssec_cache_entries",
        "The number of elements in the dnssec cache.",
        &["server", "type"],
    )
});
/// `coredns_dnssec_cache_hits_total{server}`.
static HITS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "coredns_dnssec_cache_hits_total",
        "The count of cache hits.",
        &["server"],
    )
});
/// `coredns_dnssec_cache_misses_total{server}`.
static MISSES: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "coredns_dnssec_cache_misses_total",
        "The count of cache misses.",
        &["server"],
    )
});

/// Seconds since the epoch, as RRSIG times count them (RFC 4034 §3.1.5, serial arithmetic).
fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

pub struct Dnssec {
    /// The signed zones (lower case, absolute).
    zones: Vec<String>,
    /// The same zones as names, for matching record owners.
    zone_names: Vec<Name>,
    keys: Arc<ArcSwap<KeySet>>,
    /// What `key file` named, to reload from.
    key_paths: Vec<PathBuf>,
    cache: SigCache,
    hasher: std::collections::hash_map::RandomState,
    task: TaskSlot,
    /// Seconds since the epoch; injectable for tests.
    clock: fn() -> u32,
}

impl Dnssec {
    pub(crate) fn new(
        zones: Vec<String>,
        keys: Vec<SigningKey>,
        key_paths: Vec<PathBuf>,
        capacity: u64,
    ) -> Self {
        Dnssec {
            zone_names: zones
                .iter()
                .filter_map(|z| Name::from_ascii(z).ok())
                .collect(),
            zones,
            keys: Arc::new(ArcSwap::from_pointee(KeySet::new(keys, 0))),
            key_paths,
            cache: moka::sync::Cache::builder().max_capacity(capacity).build(),
            hasher: Default::default(),
            task: TaskSlot::default(),
            clock: unix_now,
        }
    }

    /// The signatures of `set` (owner in `zone`), from the cache or made now.
    fn signatures(&self, zone: &Name, set: &RRset<'_>, server: &str) -> Vec<Record> {
        let keys = self.keys.load();
        let mut h = self.hasher.build_hasher();
        keys.generation.hash(&mut h);
        // `Name` hashes without case, as it compares.
        zone.hash(&mut h);
        set.owner.hash(&mut h);
        u16::from(set.rtype).hash(&mut h);
        u16::from(set.class).hash(&mut h);
        set.ttl.hash(&mut h);
        set.rdatas.hash(&mut h);
        let key = h.finish();
        let now = (self.clock)();
        // Reused while more than 2 days are left (serial arithmetic: not already expired).
        if let Some(s) = self.cache.get(&key)
            && s.expiration.wrapping_sub(now) > 2 * DAY
            && s.expiration.wrapping_sub(now) < 0x8000_0000
        {
            HITS.with_label_values(&[server]).inc();
            return with_owner_case(&s.records, set.owner);
        }
        MISSES.with_label_values(&[server]).inc();
        // Up to 12 hours less for this RRset: signatures made together expire apart.
        let jitter = (key % u64::from(12 * HOUR)) as u32;
        let validity = Validity {
            inception: now.wrapping_sub(3 * HOUR),
            expiration: now.wrapping_add(8 * DAY - jitter),
        };
        let mut records = Vec::new();
        for k in keys.signers(set.rtype) {
            match dnssec::sign(k, zone, set, validity) {
                Ok(r) => records.push(r),
                Err(e) => {
                    tracing::error!(target: "exdns::plugin::dnssec", "signing {} {}: {e}", set.owner, set.rtype)
                }
            }
        }
        if !records.is_empty() {
            self.cache.insert(
                key,
                Arc::new(Sigs {
                    records: records.clone(),
                    expiration: validity.expiration,
                }),
            );
            // A miss cost a signature already; settling the count is cheap beside it.
            self.cache.run_pending_tasks();
            ENTRIES
                .with_label_values(&[server, "signature"])
                .set(self.cache.entry_count() as i64);
        }
        records
    }

    /// The longest signed zone `name` is in (no allocation: names compare without case).
    fn zone_of(&self, name: &Name) -> Option<&Name> {
        self.zone_names
            .iter()
            .filter(|z| z.zone_of(name))
            .max_by_key(|z| z.num_labels())
    }

    /// Signs every RRset of `records` whose owner is in a signed zone; the signatures are
    /// appended.
    fn sign_section(&self, records: &mut Vec<Record>, server: &str) {
        let mut sigs = Vec::new();
        for set in rrsets(records) {
            let first = set[0];
            let Some(zone) = self.zone_of(&first.name) else {
                continue;
            };
            if let Some(rrset) = RRset::of(&set) {
                sigs.extend(self.signatures(zone, &rrset, server));
            }
        }
        records.extend(sigs);
    }

    /// Signs `msg`, the reply to `req` for `zone`, as the module documentation says.
    /// `cut`: the question is a DS query at a delegation of the zone (its denial lists NS).
    fn sign_reply(&self, req: &Request, zone: &Name, msg: &mut Message, cut: bool) {
        let server: &str = &req.server;
        let qtype = req.qtype();
        let rcode = msg.metadata.response_code;
        if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
            return;
        }
        // A referral: NS (and maybe DS) in the authority section, no answer, no SOA.
        let has_soa = msg
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA);
        let ns_owner = msg
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::NS)
            .map(|r| r.name.clone());
        if msg.answers.is_empty()
            && !has_soa
            && rcode == ResponseCode::NoError
            && let Some(cut) = ns_owner.filter(|n| n != zone)
        {
            self.sign_referral(zone, &cut, msg, server);
            return;
        }
        // Follow the CNAME chain from the question to the name the denial (if any) is about.
        let mut last = req.qname().clone();
        if qtype != RecordType::CNAME {
            for _ in 0..16 {
                let next = msg.answers.iter().find_map(|r| match &r.data {
                    hickory_proto::rr::RData::CNAME(c) if r.name == last => Some(c.0.clone()),
                    _ => None,
                });
                match next {
                    Some(n) => last = n,
                    None => break,
                }
            }
        }
        let answered = msg
            .answers
            .iter()
            .any(|r| r.name == last && (r.record_type() == qtype || qtype == RecordType::ANY));
        let denial = !answered && has_soa;
        self.sign_section(&mut msg.answers, server);
        if !denial {
            self.sign_section(&mut msg.authorities, server);
            self.sign_section(&mut msg.additionals, server);
            return;
        }
        // A denial needs exactly the SOA in the authority section to be provable.
        let Some(soa) = msg
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .cloned()
        else {
            return;
        };
        let Some(denial_zone) = self.zone_of(&last).cloned() else {
            return;
        };
        let nxdomain = rcode == ResponseCode::NXDomain;
        let ttl = match &soa.data {
            hickory_proto::rr::RData::SOA(s) => soa.ttl.min(s.minimum),
            _ => soa.ttl,
        };
        let types = if cut && last == *req.qname() {
            // The parent side of a delegation: NS without DS proves it insecure.
            vec![2, 46, 47]
        } else {
            denial_types(qtype, nxdomain, last == denial_zone)
        };
        let mut nsec = dnssec::nsec(&last.to_lowercase(), ttl, &types);
        nsec.dns_class = DNSClass::IN;
        let set = RRset::of(&[&nsec]).expect("one record");
        let nsec_sigs = self.signatures(&denial_zone, &set, server);
        self.sign_section(&mut msg.authorities, server);
        if qtype == RecordType::NSEC && msg.answers.is_empty() {
            // Asked for the NSEC itself: it is the answer (CoreDNS moves it there too).
            msg.authorities.clear();
            msg.answers.push(nsec);
            msg.answers.extend(nsec_sigs);
        } else {
            msg.authorities.push(nsec);
            msg.authorities.extend(nsec_sigs);
        }
        if nxdomain {
            // The compact answer: NOERROR, the NXNAME bit tells an RFC 9824 resolver.
            msg.metadata.response_code = ResponseCode::NoError;
        }
        // What goes in the additional section is signed as it is elsewhere.
        self.sign_section(&mut msg.additionals, server);
    }

    /// A referral from `zone` to the child `cut`: the DS RRset signed, or an NSEC at the cut
    /// without DS. The NS RRset and glue are the child's: not signed.
    fn sign_referral(&self, zone: &Name, cut: &Name, msg: &mut Message, server: &str) {
        let ds: Vec<&Record> = msg
            .authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::DS)
            .collect();
        let sigs = if let Some(set) = RRset::of(&ds) {
            self.signatures(zone, &set, server)
        } else {
            let ttl = msg
                .authorities
                .iter()
                .find(|r| r.record_type() == RecordType::NS)
                .map_or(KEY_TTL, |r| r.ttl);
            let mut nsec = dnssec::nsec(&cut.to_lowercase(), ttl, &[2, 46, 47]);
            nsec.dns_class = DNSClass::IN;
            let set = RRset::of(&[&nsec]).expect("one record");
            let mut v = self.signatures(zone, &set, server);
            v.insert(0, nsec);
            v
        };
        msg.authorities.extend(sigs);
    }

    /// The apex key RRsets: DNSKEY, CDS (SHA-256 digests of the entry keys), CDNSKEY.
    fn key_records(&self, zone: &Name, t: RecordType) -> Vec<Record> {
        let keys = self.keys.load();
        let rdatas: Vec<Vec<u8>> = match t {
            RecordType::DNSKEY => keys.keys.iter().map(|k| k.dnskey_rdata()).collect(),
            RecordType::CDNSKEY => keys.entry_keys().map(|k| k.dnskey_rdata()).collect(),
            _ => keys.entry_keys().map(|k| k.ds_rdata(zone)).collect(),
        };
        rdatas
            .into_iter()
            .map(|b| {
                let mut r = Record::from_rdata(zone.clone(), KEY_TTL, dnssec::opaque(t, b));
                r.dns_class = DNSClass::IN;
                r
            })
            .collect()
    }

    fn answer_keys(&self, req: &Request, zone: &Name) -> Outcome {
        let mut m = req.reply();
        m.metadata.authoritative = true;
        let mut recs = self.key_records(zone, req.qtype());
        // Owner as the client spelled it (0x20 randomisation).
        for r in &mut recs {
            r.name = req.qname().clone();
        }
        m.answers = recs;
        if req.do_bit() {
            self.sign_section(&mut m.answers, &req.server);
        }
        Outcome::reply(m, NAME)
    }

    fn is_key_query(&self, name: &str, qtype: RecordType) -> bool {
        matches!(
            qtype,
            RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
        ) && self.zones.iter().any(|z| z == name)
    }
}

/// Loads the key files again when they changed on disk: the new keys replace the old ones
/// (and the signatures made with them); a broken file keeps the old keys.
fn reload_keys(keys: &ArcSwap<KeySet>, cache: &SigCache, paths: &[PathBuf], zones: &[String]) {
    let cur = keys.load();
    if !cur.changed_on_disk() {
        return;
    }
    let loaded: Result<Vec<SigningKey>, _> = paths.iter().map(|p| SigningKey::load(p)).collect();
    match loaded.and_then(|new| setup::check_keys(&new, zones).map(|_| new)) {
        Ok(new) => {
            let tags: Vec<u16> = new.iter().map(|k| k.tag).collect();
            keys.store(Arc::new(KeySet::new(new, cur.generation + 1)));
            cache.invalidate_all();
            tracing::info!(target: "exdns::plugin::dnssec", "keys reloaded: tags {tags:?}");
        }
        Err(e) => {
            // Keep signing with the keys in use; look again at the next change.
            tracing::error!(target: "exdns::plugin::dnssec", "keys not reloaded, still signing with the old ones: {e}");
            let mut files = cur.files.clone();
            for (f, m) in &mut files {
                *m = std::fs::metadata(&*f).and_then(|md| md.modified()).ok();
            }
            keys.store(Arc::new(KeySet {
                keys: cur.keys.clone(),
                split: cur.split,
                generation: cur.generation,
                files,
            }));
        }
    }
}

/// Whether the question's name is a delegation point of the zone behind `next`: asked for its
/// NS RRset, the zone gives a referral (NS in the authority section, AA unset). Only a DS query
/// without an answer asks this (a DS NODATA proof must show NS at a cut, and must not elsewhere:
/// a resolver would take the name for an insecure delegation).
async fn is_cut(req: &Request, next: Next<'_>) -> bool {
    let mut probe = req.clone();
    if let Some(q) = probe.msg.queries.first_mut() {
        q.set_query_type(RecordType::NS);
    }
    match next.serve(&probe).await.decoded(&probe) {
        Outcome::Reply { msg, .. } => {
            !msg.metadata.authoritative
                && msg
                    .authorities
                    .iter()
                    .any(|r| r.record_type() == RecordType::NS && r.name == *req.qname())
        }
        _ => false,
    }
}

/// The signature records with their owner spelled as in the reply (the cache is keyed on the
/// lower-case owner; a validator compares owners case-insensitively, but keep them tidy).
fn with_owner_case(records: &[Record], owner: &Name) -> Vec<Record> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.name = owner.clone();
            r
        })
        .collect()
}

/// The NSEC bitmap of a denial at a name: NXNAME for a name that does not exist (RFC 9824),
/// else every type the name may hold but the asked one.
fn denial_types(qtype: RecordType, nxdomain: bool, apex: bool) -> Vec<u16> {
    if nxdomain {
        return vec![46, 47, T_NXNAME];
    }
    let q = u16::from(qtype);
    let mut types: Vec<u16> = NAME_TYPES.to_vec();
    if apex {
        types.extend_from_slice(APEX_EXTRA);
    }
    // The NSEC and its RRSIG exist whatever was asked.
    types.retain(|t| *t != q || *t == 46 || *t == 47);
    types
}

/// The RRsets of `records` (same owner, case-insensitively, and type), in first-seen order;
/// RRSIG, OPT, TSIG and SIG records are not RRsets to sign.
fn rrsets(records: &[Record]) -> Vec<Vec<&Record>> {
    let mut sets: Vec<Vec<&Record>> = Vec::new();
    for r in records {
        let t = r.record_type();
        if matches!(
            t,
            RecordType::RRSIG | RecordType::OPT | RecordType::TSIG | RecordType::SIG
        ) {
            continue;
        }
        match sets.iter_mut().find(|s| {
            s[0].record_type() == t && s[0].name == r.name && s[0].dns_class == r.dns_class
        }) {
            Some(s) => s.push(r),
            None => sets.push(vec![r]),
        }
    }
    sets
}

#[async_trait]
impl Plugin for Dnssec {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let Some(zone) = self.zone_of(req.qname()) else {
            return next.serve(req).await;
        };
        if self.is_key_query(&req.name, req.qtype()) {
            return self.answer_keys(req, zone);
        }
        if !req.do_bit() {
            return next.serve(req).await;
        }
        match next.serve(req).await.decoded(req) {
            Outcome::Reply { mut msg, plugin } => {
                let cut = req.qtype() == RecordType::DS
                    && req.qname() != zone
                    && msg.answers.is_empty()
                    && msg.metadata.response_code == ResponseCode::NoError
                    && is_cut(req, next).await;
                self.sign_reply(req, zone, &mut msg, cut);
                Outcome::Reply { msg, plugin }
            }
            other => other,
        }
    }

    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        // Unsigned answers pass through untouched; signed ones and the key RRsets take the
        // full path (a cache in front of this plugin answers them from its prepared bytes).
        if q.do_bit() && match_zone(&self.zones, q.name).is_some() {
            return None;
        }
        if self.is_key_query(q.name, q.qtype) {
            return None;
        }
        next.fast(q)
    }

    async fn on_startup(&self, _ctx: &StartupCtx) -> Result<(), String> {
        let (keys, cache) = (self.keys.clone(), self.cache.clone());
        let (paths, zones) = (self.key_paths.clone(), self.zones.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEY_POLL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (keys, cache) = (keys.clone(), cache.clone());
                let (paths, zones) = (paths.clone(), zones.clone());
                // File reads and key parsing off the runtime's workers.
                let _ =
                    tokio::task::spawn_blocking(move || reload_keys(&keys, &cache, &paths, &zones))
                        .await;
            }
        });
        self.task.set(task);
        Ok(())
    }

    fn on_shutdown(&self) {
        self.task.stop();
    }
}
