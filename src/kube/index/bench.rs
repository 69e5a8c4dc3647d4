//! Work per update at scale, not a test (`#[ignore]`d): how long the index builder takes to
//! turn one changed object into a new snapshot (dropping the one it replaces included), at the
//! object mix of `bench/k8s_scale.rs` (80 % Ingresses, 10 % Services, 10 % HTTPRoutes on 4
//! Gateways, one name each). Run in release:
//! `cargo test --release --lib kube::index::bench -- --ignored --nocapture`
//! (`INDEX_BENCH_SIZES=10000,100000`, `INDEX_BENCH_UPDATES`). Under callgrind, collect only
//! the updates: `--collect-atstart=no --toggle-collect='*object_update*'` (or
//! `'*gateway_update*'`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::kube::model::{Event, NameData};

const GATEWAYS: usize = 4;

fn ingress(i: usize, ip: Ipv4Addr) -> Contribution {
    let prefix = if i % 10 == 8 { "svc" } else { "ing" };
    Contribution::Names(vec![NameData {
        name: format!("{prefix}{i}.bench.test"),
        addrs: vec![Address::Ip(IpAddr::V4(ip))],
        ..Default::default()
    }])
}

fn key(i: usize) -> ObjKey {
    let prefix = match i % 10 {
        8 => "svc",
        9 => "route",
        _ => "ing",
    };
    ObjKey::new(format!("team{}", i % 50), format!("{prefix}{i}"))
}

fn gw_key(g: usize) -> ObjKey {
    ObjKey::new("gateway-system", format!("gw{g}"))
}

fn gateway(ip: Ipv4Addr) -> Contribution {
    Contribution::Gateway {
        class: "public".into(),
        addrs: vec![Address::Ip(IpAddr::V4(ip))],
        cname: None,
        listeners: vec![],
    }
}

fn fill(feed: &Feed, n: usize) {
    let mut ing = Vec::new();
    let mut svc = Vec::new();
    let mut routes = Vec::new();
    for i in 0..n {
        let ip = Ipv4Addr::from(0x0A00_0000 + i as u32);
        match i % 10 {
            8 => svc.push((key(i), ingress(i, ip))),
            9 => routes.push((
                key(i),
                Contribution::Route {
                    hostnames: vec![format!("route{i}.bench.test")],
                    parents: vec![gw_key(i / 10 % GATEWAYS)],
                    ttl: None,
                    inherit: false,
                    sections: vec![],
                },
            )),
            _ => ing.push((key(i), ingress(i, ip))),
        }
    }
    let gws = (0..GATEWAYS)
        .map(|g| (gw_key(g), gateway(Ipv4Addr::new(192, 0, 2, 10 + g as u8))))
        .collect();
    feed.apply(ObjKind::Ingress, Event::Replace(ing));
    feed.apply(ObjKind::Service, Event::Replace(svc));
    feed.apply(ObjKind::HTTPRoute, Event::Replace(routes));
    feed.apply(ObjKind::Gateway, Event::Replace(gws));
    for k in ObjKind::ALL {
        feed.set_synced(k, true);
    }
}

fn cfg() -> IndexConfig {
    IndexConfig {
        kinds: Kind::DEFAULT.to_vec(),
        zones: vec!["bench.test.".into()],
        filters: Filters::default(),
    }
}

/// What the build loop does for one change: a new snapshot from the previous one, which is
/// then dropped.
fn update(b: &mut Builder, feed: &Feed, prev: Arc<Snapshot>) -> Arc<Snapshot> {
    b.step(feed, Some(&prev), unix_now());
    let next = Arc::new(b.snapshot().clone());
    drop(prev);
    next
}

// Two functions for callgrind's `--toggle-collect`; `black_box` of a distinct value keeps the
// compiler from merging their identical bodies into one symbol.
#[inline(never)]
fn object_update(b: &mut Builder, feed: &Feed, prev: Arc<Snapshot>) -> Arc<Snapshot> {
    std::hint::black_box("object");
    update(b, feed, prev)
}

#[inline(never)]
fn gateway_update(b: &mut Builder, feed: &Feed, prev: Arc<Snapshot>) -> Arc<Snapshot> {
    std::hint::black_box("gateway");
    update(b, feed, prev)
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort_unstable();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    format!(
        "min {:?} median {:?} p90 {:?} mean {:?} ({} runs)",
        v[0],
        v[v.len() / 2],
        v[v.len() * 9 / 10],
        mean,
        v.len()
    )
}

#[test]
#[ignore = "a benchmark, not a test: run in release with --ignored (module docs)"]
fn update_cost() {
    let sizes: Vec<usize> = std::env::var("INDEX_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("INDEX_BENCH_SIZES"))
        .collect();
    let updates: usize = std::env::var("INDEX_BENCH_UPDATES")
        .ok()
        .map_or(0, |s| s.parse().expect("INDEX_BENCH_UPDATES"));
    let cfg = cfg();
    for n in sizes {
        let feed = Feed::new();
        fill(&feed, n);
        let index = Index::new();
        let mut b = Builder::new(&cfg, index.cache().clone(), true);
        let t = Instant::now();
        let mut snap = update(&mut b, &feed, Arc::new(Snapshot::default()));
        let first = t.elapsed();
        let runs = if updates > 0 {
            updates
        } else if n >= 100_000 {
            20
        } else {
            100
        };
        // One Ingress's or Service's address, a different object each time.
        let mut times = Vec::with_capacity(runs);
        for j in 0..runs {
            let i = (j * 7919) % n;
            let i = if i % 10 == 9 { i - 1 } else { i };
            let ip = Ipv4Addr::from(0xAC10_0000 + j as u32);
            let kind = if i % 10 == 8 {
                ObjKind::Service
            } else {
                ObjKind::Ingress
            };
            feed.apply(kind, Event::Apply(key(i), Some(ingress(i, ip))));
            let t = Instant::now();
            snap = object_update(&mut b, &feed, snap);
            times.push(t.elapsed());
            let name = format!("{}{i}.bench.test", if i % 10 == 8 { "svc" } else { "ing" });
            let k = if i % 10 == 8 {
                Kind::Service
            } else {
                Kind::Ingress
            };
            assert_eq!(snap.exact(k, &name).unwrap().a, [ip]);
        }
        // A Gateway's address: a quarter of the routes change.
        let mut gw_times = Vec::new();
        for j in 0..runs.min(10) {
            let ip = Ipv4Addr::new(198, 51, 100, j as u8);
            feed.apply(
                ObjKind::Gateway,
                Event::Apply(gw_key(j % GATEWAYS), Some(gateway(ip))),
            );
            let t = Instant::now();
            snap = gateway_update(&mut b, &feed, snap);
            gw_times.push(t.elapsed());
        }
        println!(
            "{n} objects: first build {first:?}\n  one object changed: {}\n  one Gateway changed: {}",
            stats(times),
            stats(gw_times)
        );
    }
}
