//! The incremental paths against full builds: whatever sequence of changes reached a store, the
//! builder's snapshot must be the one a fresh full build of that store makes (same names,
//! records, empty non-terminals, conflicts, zone hashes and serials, hostnames).

use std::net::IpAddr;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::kube::index::Index;
use crate::kube::model::{Event, Filters};

const NOW: u32 = 1_700_000_000;

fn cfg(kinds: &[Kind]) -> IndexConfig {
    IndexConfig {
        kinds: kinds.to_vec(),
        zones: vec![
            "example.com.".into(),
            "sub.example.com.".into(),
            "Example.org".into(),
        ],
        filters: Filters::default(),
    }
}

/// The incremental builder's snapshot and hostnames equal a full build's from the same store
/// and the same previous snapshot.
fn assert_same(
    index: &Index,
    b: &Builder,
    cfg: &IndexConfig,
    feed: &Feed,
    prev: Option<&Snapshot>,
    now: u32,
    what: &str,
) {
    let full = index.build_at(cfg, feed, prev, now);
    assert_eq!(b.snapshot().contents(), full.snapshot.contents(), "{what}");
    assert_eq!(b.snapshot().conflicts, full.snapshot.conflicts, "{what}");
    assert_eq!(b.hostnames(), full.hostnames, "{what}");
}

fn put(feed: &Feed, kind: ObjKind, key: (&str, &str), c: Option<Contribution>) {
    feed.apply(kind, Event::Apply(ObjKey::new(key.0, key.1), c));
}

fn ip(s: &str) -> Address {
    Address::Ip(s.parse().unwrap())
}

fn names(name: &str, addrs: Vec<Address>) -> Option<Contribution> {
    Some(Contribution::Names(vec![NameData {
        name: name.into(),
        addrs,
        ..Default::default()
    }]))
}

#[test]
fn a_step_touches_only_the_changed_names() {
    let feed = Feed::new();
    let c = cfg(&Kind::DEFAULT);
    for i in 0..2000 {
        put(
            &feed,
            ObjKind::Ingress,
            ("ns", &format!("i{i}")),
            names(&format!("h{i}.example.com"), vec![ip("10.0.0.1")]),
        );
    }
    for k in ObjKind::ALL {
        feed.set_synced(k, true);
    }
    let index = Index::new();
    let mut b = Builder::new(&c, index.cache().clone(), true);
    b.step(&feed, None, NOW);
    let before = b.snapshot().clone();
    let serial = before.serial("example.com.");
    assert_eq!(before.names(Kind::Ingress), 2000);

    put(
        &feed,
        ObjKind::Ingress,
        ("ns", "i7"),
        names("h7.example.com", vec![ip("10.0.0.2")]),
    );
    b.step(&feed, None, NOW + 10);
    let after = b.snapshot();
    assert_eq!(
        after.exact(Kind::Ingress, "h7.example.com").unwrap().a,
        ["10.0.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(after.serial("example.com."), NOW + 10);
    // The snapshot it replaced is untouched.
    assert_eq!(
        before.exact(Kind::Ingress, "h7.example.com").unwrap().a,
        ["10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(before.serial("example.com."), serial);
    // Every other entry is the very same record set, shared between the two.
    let same = (0..2000)
        .filter(|i| {
            let n = format!("h{i}.example.com");
            Arc::ptr_eq(
                &before.exact(Kind::Ingress, &n).unwrap(),
                &after.exact(Kind::Ingress, &n).unwrap(),
            )
        })
        .count();
    assert_eq!(same, 1999);
    // The change was taken from the store's log, which is now empty.
    assert!(feed.with_store_mut(|s| s.take_changes().is_empty()));
    assert_same(
        &index,
        &b,
        &c,
        &feed,
        Some(&before),
        NOW + 10,
        "after one change",
    );

    // Changing the object back restores the content hash, and the serial still moves on.
    put(
        &feed,
        ObjKind::Ingress,
        ("ns", "i7"),
        names("h7.example.com", vec![ip("10.0.0.1")]),
    );
    let mid = b.snapshot().clone();
    b.step(&feed, None, NOW + 20);
    assert_eq!(
        b.snapshot().zones["example.com"].hash,
        before.zones["example.com"].hash
    );
    assert_eq!(b.snapshot().serial("example.com."), NOW + 20);
    assert_same(&index, &b, &c, &feed, Some(&mid), NOW + 20, "changed back");
}

#[test]
fn gateway_endpoint_and_hostname_changes_reach_dependent_names() {
    let feed = Feed::new();
    let c = cfg(&Kind::DEFAULT);
    let index = Index::new();
    let gw = |addrs: Vec<Address>| {
        Some(Contribution::Gateway {
            class: "public".into(),
            addrs,
            cname: None,
            listeners: vec![],
        })
    };
    put(
        &feed,
        ObjKind::Gateway,
        ("infra", "gw"),
        gw(vec![ip("10.1.0.1")]),
    );
    for i in 0..3 {
        put(
            &feed,
            ObjKind::HTTPRoute,
            ("app", &format!("r{i}")),
            Some(Contribution::Route {
                hostnames: vec![format!("r{i}.example.com")],
                parents: vec![ObjKey::new("infra", "gw")],
                ttl: None,
                inherit: false,
                sections: vec![],
            }),
        );
    }
    put(
        &feed,
        ObjKind::Service,
        ("web", "api"),
        Some(Contribution::Names(vec![NameData {
            name: "api.example.com".into(),
            endpoints_of: Some(ObjKey::new("web", "api")),
            ..Default::default()
        }])),
    );
    put(
        &feed,
        ObjKind::Ingress,
        ("web", "i"),
        names(
            "lb.example.com",
            vec![Address::Hostname("elb.example.net".into())],
        ),
    );
    let mut b = Builder::new(&c, index.cache().clone(), true);
    b.step(&feed, None, NOW);
    assert!(b.hostnames_changed());
    assert_eq!(
        b.hostnames(),
        BTreeSet::from(["elb.example.net".to_string()])
    );
    assert!(
        b.snapshot()
            .exact(Kind::Service, "api.example.com")
            .is_none()
    );
    assert!(
        b.snapshot()
            .exact(Kind::Ingress, "lb.example.com")
            .is_none()
    );

    // The Gateway's address moves: every route follows.
    let prev = b.snapshot().clone();
    put(
        &feed,
        ObjKind::Gateway,
        ("infra", "gw"),
        gw(vec![ip("10.1.0.2")]),
    );
    b.step(&feed, None, NOW + 1);
    assert!(!b.hostnames_changed());
    for i in 0..3 {
        let rs = b
            .snapshot()
            .exact(Kind::HTTPRoute, &format!("r{i}.example.com"))
            .unwrap();
        assert_eq!(rs.a, ["10.1.0.2".parse::<std::net::Ipv4Addr>().unwrap()]);
    }
    assert_same(&index, &b, &c, &feed, Some(&prev), NOW + 1, "gateway moved");

    // An EndpointSlice appears for the Service.
    let prev = b.snapshot().clone();
    put(
        &feed,
        ObjKind::EndpointSlice,
        ("web", "api-1"),
        Some(Contribution::EndpointSlice {
            service: ObjKey::new("web", "api"),
            addrs: vec!["10.2.0.1".parse().unwrap()],
        }),
    );
    b.step(&feed, None, NOW + 2);
    assert!(
        b.snapshot()
            .exact(Kind::Service, "api.example.com")
            .is_some()
    );
    assert_same(&index, &b, &c, &feed, Some(&prev), NOW + 2, "endpoints");

    // The hostname resolves; then the Gateway gets a hostname address too.
    let prev = b.snapshot().clone();
    index.cache().insert(
        "elb.example.net",
        vec!["10.3.0.1".parse::<IpAddr>().unwrap()],
    );
    b.step(&feed, None, NOW + 3);
    assert!(
        b.snapshot()
            .exact(Kind::Ingress, "lb.example.com")
            .is_some()
    );
    assert_same(&index, &b, &c, &feed, Some(&prev), NOW + 3, "resolved");
    let prev = b.snapshot().clone();
    put(
        &feed,
        ObjKind::Gateway,
        ("infra", "gw"),
        gw(vec![Address::Hostname("elb.example.net".into())]),
    );
    b.step(&feed, None, NOW + 4);
    assert!(b.hostnames_changed() || b.hostnames().len() == 1);
    assert_eq!(
        b.snapshot()
            .exact(Kind::HTTPRoute, "r0.example.com")
            .unwrap()
            .a,
        ["10.3.0.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_same(
        &index,
        &b,
        &c,
        &feed,
        Some(&prev),
        NOW + 4,
        "gateway hostname",
    );
    // The cache entry goes away: the names lose their addresses.
    let prev = b.snapshot().clone();
    index.cache().remove("elb.example.net");
    b.step(&feed, None, NOW + 5);
    assert!(
        b.snapshot()
            .exact(Kind::HTTPRoute, "r0.example.com")
            .is_none()
    );
    assert!(
        b.snapshot()
            .exact(Kind::Ingress, "lb.example.com")
            .is_none()
    );
    assert_same(&index, &b, &c, &feed, Some(&prev), NOW + 5, "forgotten");
}

/// Random contributions over a small universe of names, keys and addresses, so that objects
/// collide on names, routes share Gateways, Services share EndpointSlices.
struct Gen {
    rng: StdRng,
}

const NAMES: &[&str] = &[
    "a.example.com",
    "A.Example.com.",
    "b.example.com",
    "*.example.com",
    "x.sub.example.com",
    "*.sub.example.com",
    "sub.example.com",
    "deep.x.sub.example.com",
    "svc.ns",
    "c.example.org",
    "*",
    "*.",
    "",
    "other.net",
];
const HOSTS: &[&str] = &["lb1.example.net", "LB2.example.net.", "lb3.example.net"];
const SERVICES: &[(&str, &str)] = &[("web", "api"), ("web", "db"), ("other", "api")];
const GATEWAYS: &[(&str, &str)] = &[("infra", "gw1"), ("infra", "gw2"), ("other", "gw1")];
const KEYS: &[(&str, &str)] = &[("a", "o1"), ("a", "o2"), ("b", "o1"), ("b", "o3")];

impl Gen {
    fn addr(&mut self) -> Address {
        match self.rng.random_range(0..6) {
            0 => Address::Hostname(HOSTS.choose(&mut self.rng).unwrap().to_string()),
            1 => ip(["fd00::1", "fd00::2"].choose(&mut self.rng).unwrap()),
            2 => ip("::ffff:10.0.0.1"),
            _ => ip(["10.0.0.1", "10.0.0.2", "10.0.0.3"]
                .choose(&mut self.rng)
                .unwrap()),
        }
    }

    fn addrs(&mut self, max: usize) -> Vec<Address> {
        let n = self.rng.random_range(0..=max);
        (0..n).map(|_| self.addr()).collect()
    }

    fn key(&mut self, pool: &[(&str, &str)]) -> ObjKey {
        let (ns, n) = pool.choose(&mut self.rng).unwrap();
        ObjKey::new(*ns, *n)
    }

    fn name_data(&mut self) -> NameData {
        let name = NAMES.choose(&mut self.rng).unwrap().to_string();
        let endpoints_of = self.rng.random_bool(0.2).then(|| self.key(SERVICES));
        let txt = if self.rng.random_bool(0.2) {
            vec![["v=1", "v=2"].choose(&mut self.rng).unwrap().to_string()]
        } else {
            vec![]
        };
        let cname = if self.rng.random_bool(0.15) {
            vec![
                ["t.example.net", "T.Example.net.", ""]
                    .choose(&mut self.rng)
                    .unwrap()
                    .to_string(),
            ]
        } else {
            vec![]
        };
        NameData {
            name,
            addrs: self.addrs(2),
            txt,
            cname,
            endpoints_of,
            ttl: self.ttl(),
        }
    }

    /// An object's own TTL, or none (most objects).
    fn ttl(&mut self) -> Option<u32> {
        if self.rng.random_bool(0.4) {
            Some(*[0, 30, 300].choose(&mut self.rng).unwrap())
        } else {
            None
        }
    }

    fn contribution(&mut self, kind: ObjKind) -> Contribution {
        match kind {
            ObjKind::Gateway => Contribution::Gateway {
                class: ["a", "b"].choose(&mut self.rng).unwrap().to_string(),
                addrs: self.addrs(2),
                cname: self
                    .rng
                    .random_bool(0.15)
                    .then(|| "gw.example.net".to_string()),
                listeners: (0..self.rng.random_range(0..3))
                    .map(|_| {
                        (
                            ["l1", "l2"].choose(&mut self.rng).unwrap().to_string(),
                            ["HTTP", "HTTPS", "TLS", "TCP"]
                                .choose(&mut self.rng)
                                .unwrap()
                                .to_string(),
                            NAMES.choose(&mut self.rng).unwrap().to_string(),
                        )
                    })
                    .collect(),
            },
            ObjKind::EndpointSlice => Contribution::EndpointSlice {
                service: self.key(SERVICES),
                addrs: (0..self.rng.random_range(0..3))
                    .map(|_| {
                        ["10.9.0.1", "10.9.0.2", "fd00::9"]
                            .choose(&mut self.rng)
                            .unwrap()
                            .parse()
                            .unwrap()
                    })
                    .collect(),
            },
            ObjKind::HTTPRoute | ObjKind::TLSRoute | ObjKind::GRPCRoute => Contribution::Route {
                hostnames: (0..self.rng.random_range(0..3))
                    .map(|_| NAMES.choose(&mut self.rng).unwrap().to_string())
                    .collect(),
                parents: (0..self.rng.random_range(0..3))
                    .map(|_| self.key(GATEWAYS))
                    .collect(),
                ttl: self.ttl(),
                inherit: self.rng.random_bool(0.4),
                sections: (0..self.rng.random_range(0..2))
                    .map(|_| (self.key(GATEWAYS), "l1".to_string()))
                    .collect(),
            },
            _ => Contribution::Names(
                (0..self.rng.random_range(1..4))
                    .map(|_| self.name_data())
                    .collect(),
            ),
        }
    }

    fn object_kind(&mut self) -> ObjKind {
        *ObjKind::ALL.choose(&mut self.rng).unwrap()
    }

    fn object_key(&mut self, kind: ObjKind) -> ObjKey {
        match kind {
            ObjKind::Gateway => self.key(GATEWAYS),
            ObjKind::Service => self.key(SERVICES),
            _ => self.key(KEYS),
        }
    }

    /// One random change to the store (through one of the feeds) or to the hostname cache.
    fn change(&mut self, feeds: &[Feed], cache: &HostCache) {
        let feed = feeds.choose(&mut self.rng).unwrap();
        let kind = self.object_kind();
        match self.rng.random_range(0..20) {
            0 => {
                let items = (0..self.rng.random_range(0..4))
                    .map(|_| (self.object_key(kind), self.contribution(kind)))
                    .collect();
                feed.apply(kind, Event::Replace(items));
            }
            1 | 2 => feed.apply(kind, Event::Delete(self.object_key(kind))),
            3 => feed.apply(kind, Event::Apply(self.object_key(kind), None)),
            4 => feed.set_synced(kind, self.rng.random_bool(0.8)),
            5 | 6 => {
                let h = norm(HOSTS.choose(&mut self.rng).unwrap()).into_owned();
                if self.rng.random_bool(0.3) {
                    cache.remove(&h);
                } else {
                    let ips = (0..self.rng.random_range(1..3))
                        .map(|_| {
                            ["10.8.0.1", "10.8.0.2", "fd00::8"]
                                .choose(&mut self.rng)
                                .unwrap()
                                .parse()
                                .unwrap()
                        })
                        .collect();
                    cache.insert(&h, ips);
                }
            }
            _ => {
                let key = self.object_key(kind);
                let c = self.contribution(kind);
                feed.apply(kind, Event::Apply(key, Some(c)));
            }
        }
    }
}

#[test]
fn random_changes_applied_incrementally_equal_a_full_build() {
    let kind_sets: [&[Kind]; 4] = [
        &Kind::DEFAULT,
        &Kind::ALL,
        &[Kind::HTTPRoute, Kind::Service],
        &[Kind::Ingress, Kind::DNSEndpoint, Kind::Ingress],
    ];
    for seed in 0..150u64 {
        let mut g = Gen {
            rng: StdRng::seed_from_u64(seed),
        };
        let mut c = cfg(kind_sets[seed as usize % kind_sets.len()]);
        if seed % 3 == 1 {
            c.filters.gateway_classes = vec!["a".into()];
        }
        let root = Feed::new();
        // Some runs feed the store through two scoped sources, as several kubeconfigs do.
        let feeds: Vec<Feed> = if seed % 4 == 3 {
            vec![root.scoped("0"), root.scoped("1")]
        } else {
            vec![root.clone()]
        };
        let index = Index::new();
        let mut b = Builder::new(&c, index.cache().clone(), true);
        // Some changes before the first step, which loads everything.
        for _ in 0..g.rng.random_range(0..10) {
            g.change(&feeds, index.cache());
        }
        let mut prev: Option<Snapshot> = None;
        let mut now = NOW;
        b.step(&root, None, now);
        assert_same(
            &index,
            &b,
            &c,
            &root,
            None,
            now,
            &format!("seed {seed} load"),
        );
        for step in 0..30 {
            prev = Some(b.snapshot().clone());
            for _ in 0..g.rng.random_range(1..6) {
                g.change(&feeds, index.cache());
            }
            now += g.rng.random_range(0..2);
            b.step(&root, None, now);
            assert_same(
                &index,
                &b,
                &c,
                &root,
                prev.as_ref(),
                now,
                &format!("seed {seed} step {step}"),
            );
        }
        // Identical content from another instance (a fresh full build without history) has
        // the same hash.
        let fresh = index.build_at(&c, &root, None, now);
        for (z, s) in &b.snapshot().zones {
            assert_eq!(s.hash, fresh.snapshot.zones[z].hash, "seed {seed} zone {z}");
        }
        drop(prev);
    }
}

#[test]
fn entry_hashes_are_pinned() {
    // Two instances, or two versions, must hash the same data the same way (the dual
    // deployment answers one SOA serial from both): this value must never change by accident.
    let rs = RecordSet {
        a: vec!["192.0.2.1".parse().unwrap()],
        aaaa: vec!["2001:db8::1".parse().unwrap()],
        txt: vec!["v=1".into()],
        cname: vec![],
        ttl: None,
    };
    let h = entry_hash(Kind::Ingress, false, "www.example.com", &rs);
    assert_eq!(h, 0xe427_f83c_ee3a_2385);
    assert_ne!(entry_hash(Kind::Ingress, true, "www.example.com", &rs), h);
    assert_ne!(entry_hash(Kind::Service, false, "www.example.com", &rs), h);
    // An object's own TTL is part of the content (a TTL change is a zone change).
    let with_ttl = |t| RecordSet {
        ttl: Some(t),
        ..rs.clone()
    };
    assert_ne!(
        entry_hash(Kind::Ingress, false, "www.example.com", &with_ttl(60)),
        h
    );
    assert_ne!(
        entry_hash(Kind::Ingress, false, "www.example.com", &with_ttl(60)),
        entry_hash(Kind::Ingress, false, "www.example.com", &with_ttl(61))
    );
}

#[test]
fn hash_tags_are_distinct() {
    let mut tags: Vec<u8> = Kind::ALL.iter().map(|k| super::hash_tag(*k)).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len(), Kind::ALL.len());
    assert!(!tags.contains(&0xff), "0xff tags PTR entries");
}
