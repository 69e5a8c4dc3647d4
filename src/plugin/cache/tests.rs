//! Handler tests: real `Request`s through `Plugin::serve`, a counting upstream behind it in `Next`,
//! an injectable clock.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record};

use super::*;

/// A clock the test moves by hand.
struct TestClock {
    base: Instant,
    offset_ms: AtomicU64,
}

impl TestClock {
    fn advance(&self, secs: u64) {
        self.offset_ms.fetch_add(secs * 1000, Ordering::SeqCst);
    }
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

type Responder = dyn Fn(&Request, usize) -> Outcome + Send + Sync;

/// The plugin after the cache: counts calls and answers with `respond(req, call_number)`.
struct Upstream {
    calls: AtomicUsize,
    respond: Box<Responder>,
}

#[async_trait]
impl Plugin for Upstream {
    fn name(&self) -> &'static str {
        "upstream"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        (self.respond)(req, n)
    }
}

impl Upstream {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

struct Harness {
    cache: Cache,
    clock: Arc<TestClock>,
    up: Arc<Upstream>,
    chain: Vec<Arc<dyn Plugin>>,
    /// The `server` label of this test's requests, unique so metric assertions don't interfere.
    server: String,
}

impl Harness {
    /// A cache with `cfg` in front of an [`Upstream`] answering with `respond`; `server` names
    /// the test's metric series.
    fn new(
        cfg: Config,
        server: &str,
        respond: impl Fn(&Request, usize) -> Outcome + Send + Sync + 'static,
    ) -> Self {
        let up = Arc::new(Upstream {
            calls: AtomicUsize::new(0),
            respond: Box::new(respond),
        });
        let clock = Arc::new(TestClock {
            base: Instant::now(),
            offset_ms: AtomicU64::new(0),
        });
        let c2 = clock.clone();
        let cache = Cache::with_clock(cfg, Arc::new(move || c2.now()));
        let chain: Vec<Arc<dyn Plugin>> = vec![up.clone()];
        Harness {
            cache,
            clock,
            up,
            chain,
            server: format!("dns://:{server}"),
        }
    }

    fn req(&self, name: &str, qtype: RecordType) -> Request {
        self.req_flags(name, qtype, false, false)
    }

    fn req_flags(&self, name: &str, qtype: RecordType, do_bit: bool, cd: bool) -> Request {
        let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.metadata.checking_disabled = cd;
        m.queries
            .push(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if do_bit {
            let mut e = Edns::new();
            e.set_dnssec_ok(true);
            m.edns = Some(e);
        }
        let addr: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let mut r = Request::new(m, addr, addr, Proto::Udp, 40);
        r.server = Arc::from(self.server.as_str());
        r
    }

    async fn ask(&self, req: &Request) -> Outcome {
        self.cache.serve(req, Next::new(&self.chain)).await
    }

    /// `www.example.org. A`, the name most tests ask for.
    async fn www(&self) -> Message {
        self.reply("www.example.org.", RecordType::A).await
    }

    /// The TTLs of the reply to `name`/`qtype` ([`ttls`]).
    async fn ttls(&self, name: &str, qtype: RecordType) -> Vec<u32> {
        ttls(&self.reply(name, qtype).await)
    }

    /// Asks `name`/`qtype` again (yielding to background refreshes in between, at most 100
    /// times) until the reply meets `cond`; returns the last reply.
    async fn reply_until(
        &self,
        name: &str,
        qtype: RecordType,
        cond: impl Fn(&Message) -> bool,
    ) -> Message {
        let mut m = self.reply(name, qtype).await;
        for _ in 0..100 {
            if cond(&m) {
                break;
            }
            tokio::task::yield_now().await;
            m = self.reply(name, qtype).await;
        }
        m
    }

    /// Checks that what `name`/`qtype` has cached (by now) is a hit `secs - 1` seconds later
    /// (returned) and a miss at `secs`.
    async fn expires_after(&self, name: &str, qtype: RecordType, secs: u64) -> Message {
        let calls = self.up.calls();
        self.clock.advance(secs - 1);
        let hit = self.reply(name, qtype).await;
        assert_eq!(
            self.up.calls(),
            calls,
            "{name} {qtype} cached for {}s",
            secs - 1
        );
        self.clock.advance(1);
        self.reply(name, qtype).await;
        assert_eq!(
            self.up.calls(),
            calls + 1,
            "{name} {qtype} expires at {secs}s"
        );
        hit
    }

    /// Lets background refreshes run until no entry is being refreshed.
    async fn settle_refreshes(&self) {
        let idle = |c: &Store| !c.iter().any(|(_, v)| v.refreshing.load(Ordering::SeqCst));
        self.settle(|| idle(&self.cache.inner.pcache) && idle(&self.cache.inner.ncache))
            .await;
    }

    /// Asks and returns the reply message (panics on Code/Drop).
    async fn reply(&self, name: &str, qtype: RecordType) -> Message {
        let req = self.req(name, qtype);
        let m = msg(self.ask(&req).await);
        assert_eq!(m.metadata.id, req.id(), "reply carries the request's ID");
        m
    }

    fn zones(&self) -> String {
        self.cache.inner.cfg.zones.join(",")
    }

    fn counter(&self, c: &prometheus::IntCounterVec) -> u64 {
        c.with_label_values(&[&self.server, &self.zones(), ""])
            .get()
    }

    fn typed(&self, c: &prometheus::IntCounterVec, t: &str) -> u64 {
        c.with_label_values(&[&self.server, t, &self.zones(), ""])
            .get()
    }

    /// Lets background refreshes run until `cond` holds.
    async fn settle(&self, cond: impl Fn() -> bool) {
        for _ in 0..2000 {
            if cond() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("background work did not finish");
    }
}

/// An upstream answering [`answer`] with `ttls`, the last octet counting its calls (1, 2, ...).
fn numbered(ttls: &'static [u32]) -> impl Fn(&Request, usize) -> Outcome + Send + Sync {
    move |r, n| answer(r, ttls, n as u8)
}

/// An upstream answering [`answer`] with `ttls`, always with last octet 1.
fn fixed(ttls: &'static [u32]) -> impl Fn(&Request, usize) -> Outcome + Send + Sync {
    move |r, _| answer(r, ttls, 1)
}

/// `serve_stale 1h` (immediate).
fn serve_stale() -> Config {
    Config {
        stale_up_to: Duration::from_secs(3600),
        ..Config::default()
    }
}

fn msg(o: Outcome) -> Message {
    match o {
        Outcome::Reply { msg, .. } => msg,
        Outcome::Wire { bytes, .. } => Message::from_vec(&bytes).expect("wire reply decodes"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a(owner: &Name, ttl: u32, last: u8) -> Record {
    Record::from_rdata(
        owner.clone(),
        ttl,
        RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
    )
}

fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
    Record::from_rdata(
        name(zone),
        ttl,
        RData::SOA(SOA::new(
            name("ns.example.org."),
            name("hostmaster.example.org."),
            1,
            7200,
            1800,
            86400,
            minimum,
        )),
    )
}

/// NOERROR with one A record per TTL, the last octet being `last` (to tell versions apart).
fn answer(req: &Request, ttls: &[u32], last: u8) -> Outcome {
    let mut m = req.reply();
    m.metadata.recursion_available = true;
    for &t in ttls {
        m.answers.push(a(req.qname(), t, last));
    }
    Outcome::reply(m, "upstream")
}

fn nxdomain(req: &Request, soa_ttl: u32, soa_min: u32) -> Outcome {
    let mut m = req.reply_code(ResponseCode::NXDomain);
    m.authorities.push(soa("example.org.", soa_ttl, soa_min));
    Outcome::reply(m, "upstream")
}

fn last_octet(m: &Message) -> u8 {
    match &m.answers[0].data {
        RData::A(A(ip)) => ip.octets()[3],
        other => panic!("not an A record: {other:?}"),
    }
}

fn ttls(m: &Message) -> Vec<u32> {
    m.answers
        .iter()
        .chain(m.authorities.iter())
        .chain(m.additionals.iter())
        .map(|r| r.ttl)
        .collect()
}

#[tokio::test]
async fn miss_then_hit() {
    let h = Harness::new(Config::default(), "miss_then_hit", numbered(&[300]));
    let m = h.www().await;
    assert_eq!(h.up.calls(), 1);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ttls(&m), vec![300]);
    assert!(
        !m.metadata.authoritative,
        "a miss relays the upstream header"
    );

    let req = h.req("www.example.org.", RecordType::A);
    let out = h.ask(&req).await;
    assert_eq!(out.plugin(), "cache");
    let m = msg(out);
    assert_eq!(h.up.calls(), 1, "second query is a hit");
    assert_eq!(m.metadata.id, req.id());
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(
        m.metadata.authoritative,
        "CoreDNS sets AA on cached answers"
    );
    assert!(m.metadata.recursion_available);
    assert!(m.metadata.recursion_desired);
    assert_eq!(last_octet(&m), 1);
    assert_eq!(ttls(&m), vec![300]);
    assert_eq!(m.queries, req.msg.queries);

    assert_eq!(h.counter(&metrics::REQUESTS), 2);
    assert_eq!(h.counter(&metrics::MISSES), 1);
    assert_eq!(h.typed(&metrics::HITS, SUCCESS), 1);
    assert_eq!(h.typed(&metrics::HITS, DENIAL), 0);
    // Another type is another entry.
    h.reply("www.example.org.", RecordType::AAAA).await;
    assert_eq!(h.up.calls(), 2);
    h.cache.inner.pcache.run_pending_tasks();
    h.reply("other.example.org.", RecordType::A).await;
    assert!(
        h.typed_gauge(SUCCESS) >= 2,
        "entries gauge follows the success cache"
    );
}

impl Harness {
    fn typed_gauge(&self, t: &str) -> i64 {
        metrics::ENTRIES
            .with_label_values(&[&self.server, t, &self.zones(), ""])
            .get()
    }
}

#[tokio::test]
async fn ttl_decrements_with_age_and_expires() {
    let h = Harness::new(Config::default(), "ttl_decrement", numbered(&[300, 600]));
    let m = h.www().await;
    assert_eq!(
        ttls(&m),
        vec![300, 300],
        "every record gets the entry's TTL"
    );
    h.clock.advance(100);
    let m = h.www().await;
    assert_eq!(ttls(&m), vec![200, 200]);
    assert_eq!(last_octet(&m), 1);
    h.clock.advance(199);
    let m = h.www().await;
    assert_eq!(ttls(&m), vec![1, 1]);
    assert_eq!(h.up.calls(), 1);
    h.clock.advance(1);
    let m = h.www().await;
    assert_eq!(h.up.calls(), 2, "expired entry is a miss");
    assert_eq!(last_octet(&m), 2);
    assert_eq!(ttls(&m), vec![300, 300]);
}

#[tokio::test]
async fn ttl_clamps() {
    // Max: the default 3600 and `cache 30`.
    let h = Harness::new(Config::default(), "clamp_max", fixed(&[86400]));
    assert_eq!(h.ttls("a.example.org.", RecordType::A).await, vec![3600]);
    assert_eq!(h.ttls("a.example.org.", RecordType::A).await, vec![3600]);

    let cfg = Config {
        pttl: Duration::from_secs(30),
        nttl: Duration::from_secs(30),
        ..Config::default()
    };
    let h = Harness::new(cfg, "clamp_30", fixed(&[300]));
    assert_eq!(h.ttls("a.example.org.", RecordType::A).await, vec![30]);
    h.clock.advance(30);
    h.reply("a.example.org.", RecordType::A).await;
    assert_eq!(h.up.calls(), 2, "entry lived 30s, not 300s");

    // Min: a 1s record is kept 5s by default.
    let h = Harness::new(Config::default(), "clamp_min", fixed(&[1]));
    assert_eq!(h.ttls("a.example.org.", RecordType::A).await, vec![5]);
    let hit = h.expires_after("a.example.org.", RecordType::A, 5).await;
    assert_eq!(ttls(&hit), vec![1]);
    assert_eq!(h.up.calls(), 2);

    // A configured max TTL above one hour is honoured.
    let cfg = Config {
        pttl: Duration::from_secs(86400),
        ..Config::default()
    };
    let h = Harness::new(cfg, "clamp_day", fixed(&[7200]));
    assert_eq!(h.ttls("a.example.org.", RecordType::A).await, vec![7200]);

    // success CAP TTL 0: a zero TTL record is passed on but not cached.
    let cfg = Config {
        minpttl: Duration::ZERO,
        ..Config::default()
    };
    let h = Harness::new(cfg, "clamp_zero", fixed(&[0]));
    assert_eq!(h.ttls("a.example.org.", RecordType::A).await, vec![0]);
    h.reply("a.example.org.", RecordType::A).await;
    assert_eq!(h.up.calls(), 2);
}

#[tokio::test]
async fn denial_with_soa_is_cached() {
    // NXDOMAIN: SOA TTL 900, MINIMUM 60 -> cached 60s (RFC 2308).
    let h = Harness::new(Config::default(), "denial_nx", |r, _| nxdomain(r, 900, 60));
    let m = h.reply("nope.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ttls(&m), vec![60]);
    h.clock.advance(10);
    let m = h.reply("nope.example.org.", RecordType::A).await;
    assert_eq!(h.up.calls(), 1);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ttls(&m), vec![50]);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(h.typed(&metrics::HITS, DENIAL), 1);
    h.clock.advance(50);
    h.reply("nope.example.org.", RecordType::A).await;
    assert_eq!(h.up.calls(), 2);

    // NODATA, clamped to the denial max (1800).
    let h = Harness::new(Config::default(), "denial_nodata", |r, _| {
        let mut m = r.reply();
        m.authorities.push(soa("example.org.", 7200, 7200));
        Outcome::reply(m, "upstream")
    });
    assert_eq!(
        h.ttls("www.example.org.", RecordType::AAAA).await,
        vec![1800]
    );
    let m = h.reply("www.example.org.", RecordType::AAAA).await;
    assert_eq!(h.up.calls(), 1);
    assert!(m.answers.is_empty());
    assert_eq!(ttls(&m), vec![1800]);
    assert_eq!(h.typed(&metrics::HITS, DENIAL), 1);
}

#[tokio::test]
async fn not_cached() {
    type Make = fn(&Request) -> Outcome;
    let cases: &[(&str, Make)] = &[
        ("nxdomain_without_soa", |r| {
            Outcome::reply(r.reply_code(ResponseCode::NXDomain), "upstream")
        }),
        ("nodata_without_soa", |r| {
            Outcome::reply(r.reply(), "upstream")
        }),
        ("truncated", |r| {
            let mut m = r.reply();
            m.metadata.truncation = true;
            m.answers.push(a(r.qname(), 300, 1));
            Outcome::reply(m, "upstream")
        }),
        ("refused_reply", |r| {
            Outcome::reply(r.reply_code(ResponseCode::Refused), "upstream")
        }),
        ("notimp_reply", |r| {
            Outcome::reply(r.reply_code(ResponseCode::NotImp), "upstream")
        }),
        ("formerr_reply", |r| {
            Outcome::reply(r.reply_code(ResponseCode::FormErr), "upstream")
        }),
        ("refused_code", |_| {
            Outcome::code(ResponseCode::Refused, "upstream")
        }),
        ("notimp_code", |_| {
            Outcome::code(ResponseCode::NotImp, "upstream")
        }),
        ("formerr_code", |_| {
            Outcome::code(ResponseCode::FormErr, "upstream")
        }),
        ("drop", |_| Outcome::Drop { plugin: "upstream" }),
    ];
    for (label, make) in cases {
        let make = *make;
        let h = Harness::new(
            Config::default(),
            &format!("not_cached_{label}"),
            move |r, _| make(r),
        );
        let req = h.req("x.example.org.", RecordType::A);
        let first = h.ask(&req).await;
        let second = h.ask(&req).await;
        assert_eq!(h.up.calls(), 2, "{label}: must not be cached");
        assert_eq!(first.rcode(), second.rcode(), "{label}");
        assert_eq!(second.plugin(), "upstream", "{label}");
        assert_eq!(h.typed(&metrics::HITS, SUCCESS), 0, "{label}");
        assert_eq!(h.typed(&metrics::HITS, DENIAL), 0, "{label}");
    }
}

#[tokio::test]
async fn servfail_cached_for_servfail_duration() {
    // An rcode without a reply, cached for the default 5s.
    let h = Harness::new(Config::default(), "servfail_code", |_, _| {
        Outcome::code(ResponseCode::ServFail, "upstream")
    });
    let req = h.req("down.example.org.", RecordType::A);
    let first = h.ask(&req).await;
    assert!(matches!(
        first,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            plugin: "upstream"
        }
    ));
    h.clock.advance(4);
    let m = msg(h.ask(&req).await);
    assert_eq!(h.up.calls(), 1);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(h.typed(&metrics::HITS, DENIAL), 1);
    h.clock.advance(1);
    h.ask(&req).await;
    assert_eq!(h.up.calls(), 2, "cached SERVFAIL expires after 5s");

    // A SERVFAIL reply with `servfail 30s`.
    let cfg = Config {
        failttl: Duration::from_secs(30),
        ..Config::default()
    };
    let h = Harness::new(cfg, "servfail_reply", |r, _| {
        Outcome::reply(r.reply_code(ResponseCode::ServFail), "upstream")
    });
    h.reply("down.example.org.", RecordType::A).await;
    let m = h
        .expires_after("down.example.org.", RecordType::A, 30)
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(h.up.calls(), 2);

    // `servfail 0` disables it.
    let cfg = Config {
        failttl: Duration::ZERO,
        ..Config::default()
    };
    let h = Harness::new(cfg, "servfail_off", |_, _| {
        Outcome::code(ResponseCode::ServFail, "upstream")
    });
    let req = h.req("down.example.org.", RecordType::A);
    h.ask(&req).await;
    h.ask(&req).await;
    assert_eq!(h.up.calls(), 2);
}

#[tokio::test]
async fn keepttl_keeps_the_stored_ttl() {
    let cfg = Config {
        keepttl: true,
        ..Config::default()
    };
    let h = Harness::new(cfg, "keepttl", fixed(&[300]));
    h.www().await;
    h.clock.advance(120);
    let m = h.www().await;
    assert_eq!(h.up.calls(), 1);
    assert_eq!(ttls(&m), vec![300]);
    h.clock.advance(180);
    h.www().await;
    assert_eq!(h.up.calls(), 2, "keepttl does not extend the entry's life");
}

#[tokio::test]
async fn do_and_cd_bits_are_part_of_the_key() {
    let h = Harness::new(Config::default(), "do_cd", numbered(&[300]));
    let variants = [(false, false), (true, false), (false, true), (true, true)];
    for (i, (d, c)) in variants.iter().enumerate() {
        let req = h.req_flags("www.example.org.", RecordType::A, *d, *c);
        let m = msg(h.ask(&req).await);
        assert_eq!(
            last_octet(&m),
            i as u8 + 1,
            "DO={d} CD={c} is its own entry"
        );
    }
    assert_eq!(h.up.calls(), 4);
    for (i, (d, c)) in variants.iter().enumerate() {
        let req = h.req_flags("www.example.org.", RecordType::A, *d, *c);
        let m = msg(h.ask(&req).await);
        assert_eq!(last_octet(&m), i as u8 + 1);
        assert_eq!(m.metadata.checking_disabled, *c);
    }
    assert_eq!(h.up.calls(), 4);
}

#[tokio::test]
async fn ad_bit_only_for_dnssec_aware_clients() {
    let h = Harness::new(Config::default(), "ad_bit", |r, _| {
        let mut m = msg(answer(r, &[300], 1));
        m.metadata.authentic_data = true;
        Outcome::reply(m, "upstream")
    });
    // Miss without DO/AD: AD cleared.
    assert!(
        !h.reply("www.example.org.", RecordType::A)
            .await
            .metadata
            .authentic_data
    );
    // Hit without DO/AD: cleared; with AD in the query: kept.
    assert!(
        !h.reply("www.example.org.", RecordType::A)
            .await
            .metadata
            .authentic_data
    );
    let mut req = h.req("www.example.org.", RecordType::A);
    req.msg.metadata.authentic_data = true;
    assert!(msg(h.ask(&req).await).metadata.authentic_data);
    assert_eq!(h.up.calls(), 1);
    // DO: its own entry, AD kept on miss and hit.
    let req = h.req_flags("www.example.org.", RecordType::A, true, false);
    assert!(msg(h.ask(&req).await).metadata.authentic_data);
    assert!(msg(h.ask(&req).await).metadata.authentic_data);
    assert_eq!(h.up.calls(), 2);
}

#[tokio::test]
async fn qname_is_case_insensitive_and_reply_keeps_client_case() {
    let h = Harness::new(Config::default(), "case", numbered(&[300]));
    h.www().await;
    let req = h.req("WwW.ExAmPlE.oRg.", RecordType::A);
    let m = msg(h.ask(&req).await);
    assert_eq!(h.up.calls(), 1, "mixed case hits the same entry");
    assert_eq!(m.queries[0].name().to_ascii(), "WwW.ExAmPlE.oRg.");
    assert_eq!(last_octet(&m), 1);
}

#[tokio::test]
async fn only_names_in_the_zones_are_cached() {
    let cfg = Config {
        zones: vec!["example.org.".to_string()],
        ..Config::default()
    };
    let h = Harness::new(cfg, "zones", fixed(&[300]));
    for n in ["www.example.org.", "example.org."] {
        h.reply(n, RecordType::A).await;
        h.reply(n, RecordType::A).await;
    }
    assert_eq!(h.up.calls(), 2, "names in the zone are cached");
    for n in ["www.example.net.", "notexample.org."] {
        h.reply(n, RecordType::A).await;
        h.reply(n, RecordType::A).await;
    }
    assert_eq!(h.up.calls(), 6, "names outside pass through");
    assert_eq!(
        h.counter(&metrics::REQUESTS),
        4,
        "only in-zone queries count"
    );
}

#[tokio::test]
async fn disable_per_type_and_zone() {
    let cfg = Config {
        pexcept: vec!["nocache.example.org.".to_string()],
        nexcept: vec!["example.org.".to_string()],
        ..Config::default()
    };
    let h = Harness::new(cfg, "disable", |r, _| {
        if r.name.starts_with("nx") {
            nxdomain(r, 60, 60)
        } else {
            answer(r, &[300], 1)
        }
    });
    // Each name asked twice: the first reply's rcode, the upstream calls so far.
    for (name, rcode, calls) in [
        // Success under the excepted zone: not cached; elsewhere: cached.
        ("a.nocache.example.org.", ResponseCode::NoError, 2),
        ("a.example.org.", ResponseCode::NoError, 3),
        // Denial under example.org: never cached.
        ("nx.example.org.", ResponseCode::NXDomain, 5),
    ] {
        let m = h.reply(name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, rcode, "{name}");
        h.reply(name, RecordType::A).await;
        assert_eq!(h.up.calls(), calls, "{name}");
    }
}

#[tokio::test]
async fn prefetch_refreshes_popular_entries_in_the_background() {
    let cfg = Config {
        prefetch: 2,
        duration: Duration::from_secs(60),
        percentage: 10,
        ..Config::default()
    };
    let h = Harness::new(cfg, "prefetch", numbered(&[100]));
    h.www().await; // miss, stored with TTL 100
    // A hit at 85s: only 1 hit so far and 15s left (> 10%): no prefetch.
    h.clock.advance(85);
    h.www().await;
    tokio::task::yield_now().await;
    assert_eq!(h.up.calls(), 1);
    // Second hit within the minute, 10s left (<= ceil(10% of 100) = 11): prefetch.
    h.clock.advance(5);
    let m = h.www().await;
    assert_eq!(
        last_octet(&m),
        1,
        "the client gets the cached answer at once"
    );
    assert_eq!(ttls(&m), vec![10]);
    h.settle(|| h.up.calls() == 2).await;
    h.settle(|| h.counter(&metrics::PREFETCH) == 1).await;
    // The refreshed entry answers next, with a full TTL.
    let m = h
        .reply_until("www.example.org.", RecordType::A, |m| last_octet(m) == 2)
        .await;
    assert_eq!(last_octet(&m), 2);
    assert_eq!(ttls(&m), vec![100]);
    assert_eq!(h.up.calls(), 2);

    // The prefetch request went out over TCP-sized transport with AD set, the client's case kept.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let cfg = Config {
        prefetch: 1,
        ..Config::default()
    };
    let h = Harness::new(cfg, "prefetch_req", move |r, n| {
        seen2
            .lock()
            .unwrap()
            .push((r.proto, r.msg.metadata.authentic_data));
        answer(r, &[100], n as u8)
    });
    h.www().await;
    h.clock.advance(95);
    h.www().await;
    h.settle(|| h.up.calls() == 2).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(Proto::Udp, false), (Proto::Tcp, true)]);
}

#[tokio::test]
async fn prefetch_needs_hits_within_the_window() {
    let cfg = Config {
        prefetch: 2,
        duration: Duration::from_secs(10),
        percentage: 50,
        ..Config::default()
    };
    let h = Harness::new(cfg, "prefetch_window", numbered(&[100]));
    h.www().await;
    h.clock.advance(60);
    h.www().await; // hit 1
    h.clock.advance(20);
    h.www().await; // gap > 10s: hit count restarts at 1
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(h.up.calls(), 1);
    h.clock.advance(5);
    h.www().await; // hit 2 within 10s, 15s left <= 50
    h.settle(|| h.up.calls() == 2).await;
}

#[tokio::test]
async fn serve_stale_immediate() {
    let cfg = serve_stale();
    let h = Harness::new(cfg, "stale_immediate", numbered(&[10]));
    h.www().await;
    h.clock.advance(20);
    let m = h.www().await;
    assert_eq!(last_octet(&m), 1, "stale answer served at once");
    assert_eq!(ttls(&m), vec![0], "stale answers carry TTL 0");
    assert_eq!(h.counter(&metrics::SERVED_STALE), 1);
    h.settle(|| h.up.calls() == 2).await;
    h.settle(|| h.counter(&metrics::PREFETCH) == 1).await;
    let m = h
        .reply_until("www.example.org.", RecordType::A, |m| last_octet(m) == 2)
        .await;
    assert_eq!(last_octet(&m), 2, "refreshed in the background");
    assert_eq!(ttls(&m), vec![10]);

    // Past the stale window: a plain miss.
    h.clock.advance(10 + 3600);
    let calls = h.up.calls();
    let m = h.www().await;
    assert_eq!(h.up.calls(), calls + 1);
    assert_eq!(ttls(&m), vec![10]);
}

#[tokio::test]
async fn serve_stale_immediate_keeps_serving_while_upstream_fails() {
    let cfg = serve_stale();
    let h = Harness::new(cfg, "stale_down", |r, n| {
        if n == 1 {
            answer(r, &[10], 1)
        } else {
            Outcome::code(ResponseCode::ServFail, "upstream")
        }
    });
    h.www().await;
    h.clock.advance(30);
    for i in 0..3 {
        let m = h.www().await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "round {i}");
        assert_eq!(last_octet(&m), 1);
        assert_eq!(ttls(&m), vec![0]);
        h.settle(|| h.up.calls() == i + 2).await;
        h.settle_refreshes().await;
    }
}

#[tokio::test]
async fn serve_stale_verify() {
    let cfg = Config {
        verify_stale: true,
        ..serve_stale()
    };
    let fail = Arc::new(AtomicUsize::new(0));
    let fail2 = fail.clone();
    let h = Harness::new(cfg, "stale_verify", move |r, n| {
        match fail2.load(Ordering::SeqCst) {
            0 => answer(r, &[10], n as u8),
            1 => Outcome::code(ResponseCode::ServFail, "upstream"),
            2 => Outcome::reply(r.reply_code(ResponseCode::ServFail), "upstream"),
            _ => Outcome::Drop { plugin: "upstream" },
        }
    });
    h.www().await;
    h.clock.advance(20);
    // Upstream healthy: the fresh answer, straight away.
    let m = h.www().await;
    assert_eq!(h.up.calls(), 2);
    assert_eq!(last_octet(&m), 2);
    assert_eq!(ttls(&m), vec![10]);
    assert_eq!(h.counter(&metrics::SERVED_STALE), 0);
    // Upstream failing (each way): the stale answer with TTL 0, nothing failed cached.
    for (mode, round) in [(1, 1u64), (2, 2), (3, 3)] {
        fail.store(mode, Ordering::SeqCst);
        h.clock.advance(20);
        let calls = h.up.calls();
        let m = h.www().await;
        assert_eq!(h.up.calls(), calls + 1, "verify asks upstream first");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(last_octet(&m), 2);
        assert_eq!(ttls(&m), vec![0]);
        assert_eq!(h.counter(&metrics::SERVED_STALE), round);
    }
    // No background refresh in verify mode.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(h.up.calls(), 5);
    assert_eq!(h.counter(&metrics::PREFETCH), 0);
}

/// serve_stale RESPONSE_TTL: stale answers carry it (keepttl or not).
#[tokio::test]
async fn serve_stale_response_ttl() {
    for keepttl in [false, true] {
        let cfg = Config {
            stale_ttl: Some(30),
            keepttl,
            ..serve_stale()
        };
        let h = Harness::new(cfg, &format!("stale_ttl_{keepttl}"), numbered(&[10]));
        h.www().await;
        h.clock.advance(20);
        let m = h.www().await;
        assert_eq!(last_octet(&m), 1);
        assert_eq!(ttls(&m), vec![30], "keepttl {keepttl}");
        h.settle_refreshes().await;
    }
}

/// serve_stale FAILURE_RECHECK (immediate): after a failed refresh the stale entry answers
/// without asking upstream until the recheck time has passed.
#[tokio::test]
async fn serve_stale_failure_recheck_immediate() {
    let cfg = Config {
        stale_recheck: Duration::from_secs(30),
        ..serve_stale()
    };
    let h = Harness::new(cfg, "stale_recheck", |r, n| {
        if n == 1 {
            answer(r, &[10], 1)
        } else {
            Outcome::code(ResponseCode::ServFail, "upstream")
        }
    });
    h.www().await;
    h.clock.advance(20);
    h.www().await;
    h.settle(|| h.up.calls() == 2).await;
    h.settle_refreshes().await;
    for _ in 0..3 {
        h.clock.advance(9);
        let m = h.www().await;
        assert_eq!((last_octet(&m), ttls(&m)), (1, vec![0]));
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(h.up.calls(), 2, "no refresh within 30s of the failed one");
    }
    h.clock.advance(3);
    h.www().await;
    h.settle(|| h.up.calls() == 3).await;
}

/// serve_stale FAILURE_RECHECK (verify): within the recheck time the stale entry answers at
/// once, without the verify.
#[tokio::test]
async fn serve_stale_failure_recheck_verify() {
    let cfg = Config {
        verify_stale: true,
        stale_recheck: Duration::from_secs(30),
        ..serve_stale()
    };
    let h = Harness::new(cfg, "stale_recheck_verify", |r, n| {
        if n == 1 {
            answer(r, &[10], 1)
        } else {
            Outcome::code(ResponseCode::ServFail, "upstream")
        }
    });
    h.www().await;
    h.clock.advance(20);
    let m = h.www().await;
    assert_eq!(h.up.calls(), 2, "verified first");
    assert_eq!((last_octet(&m), ttls(&m)), (1, vec![0]));
    h.clock.advance(29);
    let m = h.www().await;
    assert_eq!(h.up.calls(), 2, "no verify within 30s of the failed one");
    assert_eq!(last_octet(&m), 1);
    h.clock.advance(1);
    h.www().await;
    assert_eq!(h.up.calls(), 3);
}

/// A plugin that answers after `delay` (real time).
struct Slow {
    delay: Duration,
    calls: AtomicUsize,
}

#[async_trait]
impl Plugin for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n > 1 {
            tokio::time::sleep(self.delay).await;
        }
        answer(req, &[10], n as u8)
    }
}

/// serve_stale `verify VERIFY_TIMEOUT`: a verify slower than the timeout gives the stale
/// answer; it goes on in the background and its answer is cached for the next query.
#[tokio::test]
async fn serve_stale_verify_timeout() {
    let cfg = Config {
        verify_stale: true,
        verify_stale_timeout: Duration::from_millis(50),
        ..serve_stale()
    };
    let mut h = Harness::new(cfg, "stale_verify_timeout", numbered(&[10]));
    let slow = Arc::new(Slow {
        delay: Duration::from_millis(300),
        calls: AtomicUsize::new(0),
    });
    h.chain = vec![slow.clone()];
    h.www().await;
    h.clock.advance(20);
    let started = std::time::Instant::now();
    let m = h.www().await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (last_octet(&m), ttls(&m)),
        (1, vec![0]),
        "stale, after the timeout"
    );
    assert_eq!(h.counter(&metrics::SERVED_STALE), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let m = h.www().await;
    assert_eq!(slow.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        (last_octet(&m), ttls(&m)),
        (2, vec![10]),
        "the verify's answer, cached"
    );

    // A verify within the timeout answers the query itself.
    let cfg = Config {
        verify_stale: true,
        verify_stale_timeout: Duration::from_millis(500),
        ..serve_stale()
    };
    let mut h = Harness::new(cfg, "stale_verify_timeout_fast", numbered(&[10]));
    let slow = Arc::new(Slow {
        delay: Duration::from_millis(20),
        calls: AtomicUsize::new(0),
    });
    h.chain = vec![slow.clone()];
    h.www().await;
    h.clock.advance(20);
    let m = h.www().await;
    assert_eq!((last_octet(&m), ttls(&m)), (2, vec![10]));
    assert_eq!(h.counter(&metrics::SERVED_STALE), 0);
}

/// `serve_stale_policy prefer_positive`: a stale positive answer wins over the NXDOMAIN the
/// refresh brought; without the policy the NXDOMAIN replaces it.
#[tokio::test]
async fn serve_stale_policy_prefer_positive() {
    for prefer in [true, false] {
        let cfg = Config {
            prefer_positive: prefer,
            ..serve_stale()
        };
        let h = Harness::new(cfg, &format!("prefer_positive_{prefer}"), |r, n| {
            if n == 1 {
                answer(r, &[10], 1)
            } else {
                nxdomain(r, 60, 60)
            }
        });
        h.www().await;
        h.clock.advance(20);
        let m = h.www().await;
        assert_eq!(last_octet(&m), 1, "stale answer first");
        h.settle(|| h.up.calls() == 2).await;
        h.settle_refreshes().await;
        let m = h.www().await;
        if prefer {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!((last_octet(&m), ttls(&m)), (1, vec![0]));
        } else {
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        }
    }
}

#[tokio::test]
async fn capacity_evicts() {
    let cfg = Config {
        pcap: 1024,
        ..Config::default()
    };
    let h = Harness::new(cfg, "capacity", fixed(&[300]));
    for i in 0..1100 {
        h.reply(&format!("h{i}.example.org."), RecordType::A).await;
    }
    h.cache.inner.pcache.run_pending_tasks();
    assert_eq!(h.cache.inner.pcache.entry_count(), 1024);
    assert_eq!(h.typed(&metrics::EVICTIONS, SUCCESS), 76);
    assert_eq!(h.typed(&metrics::EVICTIONS, DENIAL), 0);
    // The most recent entries survive.
    h.reply("h1099.example.org.", RecordType::A).await;
    assert_eq!(h.up.calls(), 1100);
}

#[tokio::test]
async fn mismatched_reply_is_dropped_not_cached() {
    let h = Harness::new(Config::default(), "drops", |r, _| {
        let mut m = msg(answer(r, &[300], 1));
        m.queries[0].set_name(name("other.example.org."));
        Outcome::reply(m, "upstream")
    });
    h.www().await;
    h.www().await;
    assert_eq!(h.up.calls(), 2);
    assert_eq!(h.counter(&metrics::DROPS), 2);
}

#[tokio::test]
async fn delegation_cached_for_minimum_ttl() {
    let h = Harness::new(Config::default(), "delegation", |r, _| {
        let mut m = r.reply();
        m.authorities.push(Record::from_rdata(
            name("sub.example.org."),
            86400,
            RData::NS(NS(name("ns.sub.example.org."))),
        ));
        Outcome::reply(m, "upstream")
    });
    assert_eq!(h.ttls("x.sub.example.org.", RecordType::A).await, vec![5]);
    h.expires_after("x.sub.example.org.", RecordType::A, 5)
        .await;
    assert_eq!(h.up.calls(), 2);
}

#[tokio::test]
async fn fresh_success_replaces_cached_servfail() {
    let cfg = Config {
        failttl: Duration::from_secs(60),
        prefetch: 1,
        percentage: 90,
        ..Config::default()
    };
    let h = Harness::new(cfg, "servfail_then_ok", |r, n| {
        if n == 1 {
            Outcome::code(ResponseCode::ServFail, "upstream")
        } else {
            answer(r, &[300], n as u8)
        }
    });
    let req = h.req("flap.example.org.", RecordType::A);
    h.ask(&req).await;
    // Cached SERVFAIL; the hit is within 90% of its TTL so a prefetch fetches a good answer.
    h.clock.advance(10);
    let m = msg(h.ask(&req).await);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    h.settle(|| h.up.calls() == 2).await;
    let m = h
        .reply_until("flap.example.org.", RecordType::A, |m| {
            m.metadata.response_code == ResponseCode::NoError
        })
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(last_octet(&m), 2);
}

#[tokio::test]
async fn non_query_opcodes_and_transfers_pass_through() {
    let h = Harness::new(Config::default(), "passthrough", fixed(&[300]));
    let mut req = h.req("example.org.", RecordType::SOA);
    req.msg.metadata.op_code = OpCode::Notify;
    h.ask(&req).await;
    h.ask(&req).await;
    let req = h.req("example.org.", RecordType::AXFR);
    h.ask(&req).await;
    h.ask(&req).await;
    assert_eq!(h.up.calls(), 4);
    assert_eq!(h.counter(&metrics::REQUESTS), 0);
}

#[tokio::test]
async fn class_is_part_of_the_key() {
    let h = Harness::new(Config::default(), "qclass", numbered(&[300]));
    h.www().await;
    let mut req = h.req("www.example.org.", RecordType::A);
    req.msg.queries[0].set_query_class(DNSClass::CH);
    let m = msg(h.ask(&req).await);
    assert_eq!(last_octet(&m), 2);
    assert_eq!(h.up.calls(), 2);
}

#[tokio::test]
async fn serve_stale_denial_survives_failed_refresh() {
    let cfg = serve_stale();
    let h = Harness::new(cfg, "stale_denial", |r, n| {
        if n == 1 {
            nxdomain(r, 10, 10)
        } else {
            Outcome::reply(r.reply_code(ResponseCode::ServFail), "upstream")
        }
    });
    h.reply("gone.example.org.", RecordType::A).await;
    h.clock.advance(30);
    for i in 0..2 {
        let m = h.reply("gone.example.org.", RecordType::A).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "round {i}"
        );
        assert_eq!(ttls(&m), vec![0]);
        h.settle(|| h.up.calls() == i + 2).await;
        h.settle_refreshes().await;
    }
}

/// A denial stored after a success shadows it, as in CoreDNS (denials are looked up first): the
/// stale success entry, refreshed in the background into an NXDOMAIN, is not served again while
/// the NXDOMAIN lasts; a fresh success replaces the denial.
#[tokio::test]
async fn denial_stored_after_success_shadows_it() {
    let cfg = serve_stale();
    let gone = Arc::new(AtomicUsize::new(0));
    let gone2 = gone.clone();
    let h = Harness::new(cfg, "denied_later", move |r, n| {
        match gone2.load(Ordering::SeqCst) {
            1 => nxdomain(r, 60, 60),
            _ => answer(r, &[10], n as u8),
        }
    });
    assert_eq!(last_octet(&h.www().await), 1);
    gone.store(1, Ordering::SeqCst);
    h.clock.advance(20);
    // Stale: served at once, refreshed in the background into the NXDOMAIN.
    let m = h.www().await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ttls(&m), vec![0]);
    h.settle(|| h.up.calls() == 2).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    for _ in 0..3 {
        let m = h.www().await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "the later denial"
        );
    }
    assert_eq!(h.up.calls(), 2, "answered from the cache");
}
