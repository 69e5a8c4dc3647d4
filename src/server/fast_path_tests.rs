//! The fast path answers exactly as the full path does: every query of a matrix (names, types,
//! case, EDNS sizes and DO, cookies, RD/CD/AD, UDP and TCP, cache settings) is answered once
//! through a chain whose first plugin declines the fast path and once through the same plugins
//! without it; the bytes and the cache's counters must agree, and the fast path must have
//! answered the hits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns::cookie::Cookies;
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::cache::{Cache, Config};
use crate::plugin::config::{BlockConfig, CookiePolicy};
use crate::plugin::errors::Errors;
use crate::plugin::prometheus::Prometheus;
use crate::plugin::{Next, Plugin};
use crate::server::query::{self, Prepared};
use crate::server::router::{Block, Router};

/// The zone's data: A answers, a big answer, NXDOMAIN and NODATA with a SOA, and SERVFAIL.
struct Backend;

#[async_trait]
impl Plugin for Backend {
    fn name(&self) -> &'static str {
        "backend"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        let mut m = req.reply();
        m.metadata.authoritative = true;
        let soa = || {
            let origin = Name::from_ascii("example.").unwrap();
            Record::from_rdata(
                origin.clone(),
                900,
                RData::SOA(SOA::new(origin.clone(), origin, 1, 7200, 1800, 86400, 60)),
            )
        };
        let a =
            |i: u8| Record::from_rdata(req.qname().clone(), 300, RData::A(A::new(192, 0, 2, i)));
        match (req.name.as_str(), req.qtype()) {
            ("fail.example.", _) => return Outcome::code(ResponseCode::ServFail, "backend"),
            ("nx.example.", _) => {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.authorities.push(soa());
            }
            ("big.example.", RecordType::A) => m.answers.extend((1..=60).map(a)),
            ("ad.example.", RecordType::A) => {
                m.metadata.authentic_data = true;
                m.answers.push(a(9));
            }
            (_, RecordType::A) => m.answers.push(a(1)),
            _ => m.authorities.push(soa()),
        }
        Outcome::reply(m, "backend")
    }
}

/// Declines the fast path: every query through a chain starting with it takes the full path.
struct FullPath;

#[async_trait]
impl Plugin for FullPath {
    fn name(&self) -> &'static str {
        "fullpath"
    }
    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        next.serve(req).await
    }
}

fn router(server: &str, chain: Vec<Arc<dyn Plugin>>) -> Arc<Router> {
    let mut r = Router::new(Arc::from(server), None);
    // Cookies on a stopped clock: a fresh server cookie is the same bytes on both paths.
    let cookies = Cookies::new([1; 16], &[], false).at_time(1_700_000_000);
    let block = Arc::new(Block {
        chain,
        config: BlockConfig {
            cookie: CookiePolicy::On(Arc::new(cookies)),
            ..BlockConfig::default()
        },
        zones: vec![".".into()],
        file: Arc::from("Corefile"),
        line: 1,
    });
    r.insert(".", block);
    Arc::new(r)
}

/// What the server sends for `buf`, and whether the fast path gave it.
fn answer(
    rt: &tokio::runtime::Runtime,
    r: &Arc<Router>,
    buf: &[u8],
    proto: Proto,
) -> (Option<Vec<u8>>, bool) {
    let src: SocketAddr = "[::ffff:192.0.2.77]:5353".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:53".parse().unwrap();
    match query::prepare(r, buf, src, local, proto) {
        Prepared::Done(bytes) => (bytes, true),
        Prepared::Query(req, block) => (rt.block_on(query::run(req, block)), false),
    }
}

struct Variant {
    name: &'static str,
    qtype: RecordType,
    edns: Option<(u16, bool)>,
    cookie: bool,
    rd: bool,
    cd: bool,
    ad: bool,
}

fn wire_query(v: &Variant, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = v.rd;
    m.metadata.checking_disabled = v.cd;
    m.metadata.authentic_data = v.ad;
    m.queries
        .push(Query::query(Name::from_ascii(v.name).unwrap(), v.qtype));
    if let Some((size, dnssec_ok)) = v.edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        if v.cookie {
            e.options_mut()
                .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
        }
        m.edns = Some(e);
    }
    m.to_vec().unwrap()
}

/// The cache's hits and requests and prometheus's requests and responses, summed over the
/// series whose `zones` (cache) or `server` (prometheus) label is `label`.
fn counters(label: &str) -> [u64; 4] {
    let sum = |name: &str, key: &str| -> u64 {
        crate::metrics::REGISTRY
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == key && l.value() == label)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    };
    [
        sum("coredns_cache_hits_total", "zones"),
        sum("coredns_cache_requests_total", "zones"),
        sum("coredns_dns_requests_total", "server"),
        sum("coredns_dns_responses_total", "server"),
    ]
}

fn delta(a: [u64; 4], b: [u64; 4]) -> [u64; 4] {
    std::array::from_fn(|i| b[i] - a[i])
}

/// Runs the matrix; `cfg.zones` must be unique to the test (its counters are compared).
fn check(cfg: Config) -> (usize, usize) {
    let zones = cfg.zones.join(",");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = Instant::now();
    let cache: Arc<dyn Plugin> = Arc::new(Cache::with_clock(cfg, Arc::new(move || now)));
    let prom: Arc<dyn Plugin> = Arc::new(Prometheus::default());
    let errors: Arc<dyn Plugin> = Arc::new(Errors::new(vec![], false));
    let backend: Arc<dyn Plugin> = Arc::new(Backend);
    let fast = router(
        &zones,
        vec![prom.clone(), errors.clone(), cache.clone(), backend.clone()],
    );
    let full = router(
        &zones,
        vec![Arc::new(FullPath), prom, errors, cache, backend],
    );

    let names = [
        "www.example.",
        "WwW.eXample.",
        "nx.example.",
        "NX.example.",
        "big.example.",
        "fail.example.",
        "ad.example.",
    ];
    let edns = [
        None,
        Some((512, false)),
        Some((1232, false)),
        Some((4096, true)),
        Some((100, true)),
    ];
    let (mut total, mut fast_hits) = (0, 0);
    let mut id = 1u16;
    for name in names {
        for qtype in [RecordType::A, RecordType::AAAA] {
            for &e in &edns {
                for (cookie, rd, cd, ad) in [
                    (false, true, false, false),
                    (true, false, true, true),
                    (false, true, false, true),
                ] {
                    for proto in [Proto::Udp, Proto::Tcp] {
                        if cookie && e.is_none() {
                            continue;
                        }
                        let v = Variant {
                            name,
                            qtype,
                            edns: e,
                            cookie,
                            rd,
                            cd,
                            ad,
                        };
                        id = id.wrapping_add(1);
                        let q = wire_query(&v, id);
                        // Fills the entry (the first time) through the full path.
                        let _ = answer(&rt, &full, &q, proto);
                        let before = counters(&zones);
                        let (slow, was_fast) = answer(&rt, &full, &q, proto);
                        assert!(
                            !was_fast,
                            "a chain starting with FullPath never answers fast"
                        );
                        let mid = counters(&zones);
                        let (got, was_fast) = answer(&rt, &fast, &q, proto);
                        let after = counters(&zones);
                        assert_eq!(
                            got, slow,
                            "{name} {qtype} {e:?} cookie={cookie} rd={rd} cd={cd} ad={ad} {proto:?}"
                        );
                        assert_eq!(
                            delta(before, mid),
                            [1, 1, 1, 1],
                            "{name} {qtype} {e:?} {proto:?} hit"
                        );
                        assert_eq!(
                            delta(mid, after),
                            delta(before, mid),
                            "counted alike: {name} {qtype} {e:?} {proto:?}"
                        );
                        total += 1;
                        fast_hits += usize::from(was_fast);
                    }
                }
            }
        }
    }
    (total, fast_hits)
}

fn config(test: &str) -> Config {
    Config {
        zones: vec![format!("{test}.view-test."), ".".into()],
        ..Config::default()
    }
}

#[test]
fn fast_path_answers_cache_hits_exactly_as_the_full_path() {
    let (total, fast) = check(config("plain"));
    // Every hit but the big answer over small UDP sizes is answered fast.
    assert!(fast > total * 3 / 4, "{fast} of {total} answered fast");
}

#[test]
fn fast_path_with_keepttl_and_serve_stale_settings() {
    let cfg = Config {
        keepttl: true,
        stale_up_to: Duration::from_secs(60),
        ..config("keepttl")
    };
    let (total, fast) = check(cfg);
    assert!(fast > total * 3 / 4, "{fast} of {total} answered fast");
}

#[test]
fn prefetch_keeps_every_query_on_the_full_path() {
    let cfg = Config {
        prefetch: 1,
        ..config("prefetch")
    };
    let (_, fast) = check(cfg);
    assert_eq!(fast, 0);
}

/// `nsid` keeps the fast path for plain queries, and a query asking for the NSID (which the
/// fast path never takes) gets it on a cache hit as on a miss: the option is never dropped.
#[test]
fn nsid_queries_take_the_full_path_and_get_the_option() {
    use crate::plugin::nsid::Nsid;
    use hickory_proto::rr::rdata::opt::{EdnsCode, NSIDPayload};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = Cache::new(config("nsid"));
    let r = router(
        "dns://:53",
        vec![
            Arc::new(Nsid::new("ns-a")),
            Arc::new(cache),
            Arc::new(Backend),
        ],
    );
    let plain = |id| {
        wire_query(
            &Variant {
                name: "www.nsid.view-test.",
                qtype: RecordType::A,
                edns: Some((1232, false)),
                cookie: false,
                rd: true,
                cd: false,
                ad: false,
            },
            id,
        )
    };
    let with_nsid = |id| {
        let mut m = Message::from_vec(&plain(id)).unwrap();
        m.edns
            .as_mut()
            .unwrap()
            .options_mut()
            .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        m.to_vec().unwrap()
    };
    let nsid = |bytes: &[u8]| {
        let m = Message::from_vec(bytes).unwrap();
        assert_eq!(m.answers.len(), 1);
        match m.edns.unwrap().option(EdnsCode::NSID) {
            Some(EdnsOption::NSID(p)) => Some(p.as_ref().to_vec()),
            _ => None,
        }
    };
    // A miss (full path), then a hit: plain queries are answered fast, without the option.
    let (first, fast) = answer(&rt, &r, &plain(1), Proto::Udp);
    assert!(!fast);
    assert_eq!(nsid(&first.unwrap()), None);
    let (hit, fast) = answer(&rt, &r, &plain(2), Proto::Udp);
    assert!(fast, "nsid is transparent on the fast path");
    assert_eq!(nsid(&hit.unwrap()), None);
    // The same cached answer asked with NSID: full path, the option written, over UDP and TCP.
    for proto in [Proto::Udp, Proto::Tcp] {
        let (reply, fast) = answer(&rt, &r, &with_nsid(3), proto);
        assert!(!fast, "{proto:?}");
        assert_eq!(nsid(&reply.unwrap()), Some(b"ns-a".to_vec()), "{proto:?}");
    }
}

/// `bufsize` holds the whole reply to its size, the NSID option `nsid` (before it in the chain)
/// adds included: the server fits the final reply to the block's bufsize.
#[test]
fn bufsize_holds_what_nsid_adds() {
    use crate::plugin::bufsize::Bufsize;
    use crate::plugin::nsid::Nsid;
    use hickory_proto::rr::rdata::opt::NSIDPayload;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // (bufsize, NSID data length, truncated)
    let cases = [(600, 4, false), (600, 100, true), (1232, 100, false)];
    for (size, nsid_len, truncated) in cases {
        let chain: Vec<Arc<dyn Plugin>> =
            vec![
                Arc::new(Nsid::new("n".repeat(nsid_len))),
                Arc::new(Bufsize::new(size)),
                crate::plugin::test_chain::Fixed::reply(|m| {
                    let name = m.queries[0].name().clone();
                    m.answers.extend((1..=33).map(|i| {
                        Record::from_rdata(name.clone(), 60, RData::A(A::new(192, 0, 2, i)))
                    }));
                }),
            ];
        let mut r = Router::new(Arc::from("dns://:53"), None);
        r.insert(
            ".",
            Arc::new(Block {
                chain,
                config: BlockConfig {
                    bufsize: Some(size),
                    ..BlockConfig::default()
                },
                zones: vec![".".into()],
                file: Arc::from("Corefile"),
                line: 1,
            }),
        );
        let r = Arc::new(r);
        // 33 A records: 566 bytes with the OPT record, before the NSID option.
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.queries.push(Query::query(
            Name::from_ascii("x.example.").unwrap(),
            RecordType::A,
        ));
        let mut e = Edns::new();
        e.set_max_payload(4096);
        e.options_mut()
            .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        m.edns = Some(e);
        let q = m.to_vec().unwrap();
        let (reply, fast) = answer(&rt, &r, &q, Proto::Udp);
        assert!(!fast);
        let reply = reply.unwrap();
        let m = Message::from_vec(&reply).unwrap();
        let case = format!("{size} {nsid_len}: {} bytes", reply.len());
        assert!(reply.len() <= size.min(1232) as usize, "{case}");
        assert_eq!(m.metadata.truncation, truncated, "{case}");
        assert_eq!(m.edns.unwrap().max_payload(), size.min(1232), "{case}");
    }
}
