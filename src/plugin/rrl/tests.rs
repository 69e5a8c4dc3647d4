use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::plugin::test_chain::{Fixed, query, request_from, setup_err, setup_in};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn cfg(text: &str, zones: &[&str]) -> Config {
    let zones: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
    setup::parse(&mut crate::plugin::test_chain::dispenser(text), &zones).unwrap()
}

// ---- setup ----

#[test]
fn defaults_are_the_originals() {
    let c = cfg("rrl", &["example.org."]);
    assert_eq!(c, Config::new(vec!["example.org.".to_string()]));
    assert_eq!(c.window, 15 * SECOND);
    assert_eq!((c.ipv4_prefix_length, c.ipv6_prefix_length), (24, 56));
    assert_eq!(c.responses_interval, 0, "nothing is limited by default");
    assert_eq!(c.errors_interval, 0);
    assert_eq!(c.slip_ratio, 0);
    assert_eq!(c.max_table_size, 100_000);
    assert!(!c.report_only);
    assert!(setup_in(setup, "rrl", &["example.org."]).unwrap().is_some());
}

#[test]
fn every_option() {
    let c = cfg(
        "rrl example.org Example.NET:53 {\n  window 2.5\n  ipv4-prefix-length 16\n  ipv6-prefix-length 48\n  responses-per-second 10\n  nxdomains-per-second 4\n  errors-per-second 0\n  slip-ratio 3\n  requests-per-second 0.5\n  max-table-size 500\n  report-only\n}",
        &["."],
    );
    assert_eq!(c.zones, ["example.org.", "example.net."]);
    assert_eq!(c.window, 2_500_000_000);
    assert_eq!((c.ipv4_prefix_length, c.ipv6_prefix_length), (16, 48));
    assert_eq!(c.responses_interval, 100_000_000);
    // Unset allowances follow responses-per-second; set ones (0 too) stay.
    assert_eq!(c.nodata_interval, 100_000_000);
    assert_eq!(c.referrals_interval, 100_000_000);
    assert_eq!(c.nxdomains_interval, 250_000_000);
    assert_eq!(c.errors_interval, 0);
    assert_eq!(c.requests_interval, 2 * SECOND);
    assert_eq!(c.slip_ratio, 3);
    assert_eq!(c.max_table_size, 500);
    assert!(c.report_only);
}

#[test]
fn setup_errors_are_worded_as_the_originals() {
    let p = "Corefile:2 - Error during parsing: ";
    let cases = [
        ("window 0", "window must be greater than zero"),
        ("window -1", "window must be greater than zero"),
        (
            "window abc",
            "abc invalid value. strconv.ParseFloat: parsing \"abc\": invalid syntax",
        ),
        (
            "window 1 2",
            "Wrong argument count or unexpected line ending after '2'",
        ),
        (
            "window",
            "Wrong argument count or unexpected line ending after 'window'",
        ),
        ("ipv4-prefix-length 33", "33 must be between 1 and 32"),
        ("ipv4-prefix-length 0", "0 must be between 1 and 32"),
        ("ipv6-prefix-length 129", "129 must be between 1 and 128"),
        (
            "ipv6-prefix-length x",
            "x invalid value. strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        ("responses-per-second -1", "-1 cannot be negative"),
        ("nodata-per-second -0.5", "-0.5 cannot be negative"),
        (
            "errors-per-second inf",
            "inf invalid value. not a finite number",
        ),
        ("slip-ratio -2", "-2 cannot be negative"),
        (
            "max-table-size 99999999999999999999",
            "99999999999999999999 invalid value. strconv.Atoi: parsing \"99999999999999999999\": value out of range",
        ),
        ("max-table-size -1", "-1 cannot be negative"),
        (
            "report-only yes",
            "Wrong argument count or unexpected line ending after 'yes'",
        ),
        ("burst 5", "unknown property 'burst'"),
    ];
    for (line, want) in cases {
        let text = format!("rrl {{\n  {line}\n}}");
        assert_eq!(setup_err(setup, &text), format!("{p}{want}"), "{line}");
    }
}

// ---- the handler, with a fake clock ----

const MS: i64 = 1_000_000;

struct Rig {
    rrl: Rrl,
    clock: Arc<FakeClock>,
    next: Arc<Fixed>,
}

impl Rig {
    /// `rrl` configured by `body` (the inside of its block) in a block for example.org, in
    /// front of a plugin answering with `answer`.
    fn new(body: &str, answer: Arc<Fixed>) -> Rig {
        let c = cfg(&format!("rrl {{\n{body}\n}}"), &["example.org."]);
        let clock = Arc::new(FakeClock::default());
        clock.advance(1_000 * SECOND);
        Rig {
            rrl: Rrl::with_clock(c, clock.clone()),
            clock,
            next: answer,
        }
    }

    async fn ask(&self, qname: &str, qtype: RecordType, src: &str, proto: Proto) -> Outcome {
        let req = request_from(query(qname, qtype), src, proto);
        let rest: Vec<Arc<dyn Plugin>> = vec![self.next.clone()];
        self.rrl.serve(&req, Next::new(&rest)).await
    }

    /// `n` UDP queries from `src`: how many were answered, slipped (TC) and dropped.
    async fn burst(&self, n: usize, qname: &str, qtype: RecordType, src: &str) -> (u32, u32, u32) {
        let (mut answered, mut slipped, mut dropped) = (0, 0, 0);
        for _ in 0..n {
            match self.ask(qname, qtype, src, Proto::Udp).await {
                Outcome::Drop { plugin } => {
                    assert_eq!(plugin, NAME);
                    dropped += 1;
                }
                Outcome::Reply { msg, plugin } if msg.metadata.truncation => {
                    assert_eq!(plugin, NAME);
                    assert!(msg.answers.is_empty() && msg.authorities.is_empty());
                    assert!(msg.additionals.is_empty());
                    assert_eq!(msg.queries.len(), 1, "the question is kept");
                    slipped += 1;
                }
                Outcome::Reply { .. }
                | Outcome::Code { .. }
                | Outcome::Wire { .. }
                | Outcome::Transfer { .. } => answered += 1,
            }
        }
        (answered, slipped, dropped)
    }
}

fn positive() -> Arc<Fixed> {
    Fixed::reply(|m| {
        let owner = m.queries[0].name().clone();
        m.metadata.authoritative = true;
        m.answers.push(Record::from_rdata(
            owner,
            300,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
    })
}

fn soa(zone: &str) -> Record {
    Record::from_rdata(
        name(zone),
        300,
        RData::SOA(SOA::new(
            name("ns.example.org."),
            name("hostmaster.example.org."),
            1,
            7200,
            1800,
            86400,
            60,
        )),
    )
}

/// NXDOMAIN with the zone's SOA, NODATA with it, or a referral to `sub.example.org.`, chosen
/// by the first label of the name: `nx-*`, `nodata-*`, `ref-*`; `fail-*` is SERVFAIL (a code,
/// nothing written) and anything else a positive answer.
fn mixed() -> Arc<Fixed> {
    Fixed::new(|req| {
        let mut m = req.reply();
        let first = req.name.split('.').next().unwrap_or("").to_string();
        if first.starts_with("nx") {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.authorities.push(soa("example.org."));
        } else if first.starts_with("nodata") {
            m.authorities.push(soa("example.org."));
        } else if first.starts_with("ref") {
            m.authorities.push(Record::from_rdata(
                name("sub.example.org."),
                300,
                RData::NS(NS(name("ns.sub.example.org."))),
            ));
        } else if first.starts_with("fail") {
            return Outcome::code(ResponseCode::ServFail, "fixed");
        } else {
            m.answers.push(Record::from_rdata(
                req.qname().clone(),
                300,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
        }
        Outcome::reply(m, "fixed")
    })
}

const C1: &str = "192.0.2.10:5300";

#[tokio::test]
async fn a_burst_gets_the_allowance_then_drops() {
    let r = Rig::new("responses-per-second 5", positive());
    // A full second of credit: 5 responses, then every one is dropped.
    assert_eq!(
        r.burst(20, "www.example.org.", RecordType::A, C1).await,
        (5, 0, 15)
    );
    // The responses were computed (the chain ran) and then dropped.
    assert_eq!(r.next.calls(), 20);
}

#[tokio::test]
async fn the_balance_refills_at_the_allowance() {
    let r = Rig::new("responses-per-second 5\nwindow 15", positive());
    assert_eq!(
        r.burst(6, "www.example.org.", RecordType::A, C1).await,
        (5, 0, 1)
    );
    // The 6th left the balance at -200 ms. A response costs 200 ms: 200 ms later it is still
    // -200 ms after paying (and the drop pays too), 400 ms after that it is 0: allowed.
    r.clock.advance(200 * MS);
    assert_eq!(
        r.burst(1, "www.example.org.", RecordType::A, C1).await,
        (0, 0, 1)
    );
    r.clock.advance(400 * MS);
    assert_eq!(
        r.burst(2, "www.example.org.", RecordType::A, C1).await,
        (1, 0, 1)
    );
    // After a quiet second the account is full again: 5 more.
    r.clock.advance(1400 * MS);
    assert_eq!(
        r.burst(6, "www.example.org.", RecordType::A, C1).await,
        (5, 0, 1)
    );
}

#[tokio::test]
async fn the_window_bounds_the_penalty() {
    // 200 responses at once would be 39 s of debt; the window caps it at 2 s.
    let r = Rig::new("responses-per-second 5\nwindow 2", positive());
    assert_eq!(
        r.burst(200, "www.example.org.", RecordType::A, C1).await,
        (5, 0, 195)
    );
    // The balance is -2 s: 2.1 s later it is -100 ms after paying (dropped, and paid)...
    r.clock.advance(2100 * MS);
    assert_eq!(
        r.burst(1, "www.example.org.", RecordType::A, C1).await,
        (0, 0, 1),
        "still within the penalty"
    );
    // ... and 300 ms after that it is back at 0: answered, 2.4 s after the flood instead of 39.
    r.clock.advance(300 * MS);
    assert_eq!(
        r.burst(1, "www.example.org.", RecordType::A, C1).await,
        (1, 0, 0)
    );
}

#[tokio::test]
async fn every_nth_excess_slips_through_truncated() {
    let r = Rig::new("responses-per-second 5\nslip-ratio 2", positive());
    assert_eq!(
        r.burst(25, "www.example.org.", RecordType::A, C1).await,
        (5, 10, 10)
    );
    let r = Rig::new("responses-per-second 5\nslip-ratio 3", positive());
    assert_eq!(
        r.burst(35, "www.example.org.", RecordType::A, C1).await,
        (5, 10, 20)
    );
    let r = Rig::new("responses-per-second 5\nslip-ratio 1", positive());
    assert_eq!(
        r.burst(25, "www.example.org.", RecordType::A, C1).await,
        (5, 20, 0)
    );
    // A slipped reply keeps the rcode, flags and question of the real one.
    let r = Rig::new("responses-per-second 1\nslip-ratio 1", mixed());
    r.burst(1, "nx1.example.org.", RecordType::A, C1).await;
    match r
        .ask("nx1.example.org.", RecordType::A, C1, Proto::Udp)
        .await
    {
        Outcome::Reply { msg, plugin } => {
            assert_eq!(plugin, NAME);
            assert!(msg.metadata.truncation);
            assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
            assert_eq!(msg.metadata.id, 4242);
            assert!(msg.metadata.recursion_desired);
            assert_eq!(msg.queries[0].name(), &name("nx1.example.org."));
            assert!(msg.authorities.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // SERVFAIL (a code, nothing written) slips as an empty truncated SERVFAIL.
    r.burst(1, "fail.example.org.", RecordType::A, C1).await;
    match r
        .ask("fail.example.org.", RecordType::A, C1, Proto::Udp)
        .await
    {
        Outcome::Reply { msg, .. } => {
            assert!(msg.metadata.truncation);
            assert_eq!(msg.metadata.response_code, ResponseCode::ServFail);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn accounts_follow_bind_categories() {
    let r = Rig::new("responses-per-second 2", mixed());
    // Positive answers: per name and type.
    assert_eq!(
        r.burst(3, "a.example.org.", RecordType::A, C1).await,
        (2, 0, 1)
    );
    assert_eq!(
        r.burst(3, "b.example.org.", RecordType::A, C1).await,
        (2, 0, 1)
    );
    assert_eq!(
        r.burst(3, "a.example.org.", RecordType::AAAA, C1).await,
        (2, 0, 1)
    );
    // The name's case does not make a new account (0x20 randomisation).
    assert_eq!(
        r.burst(1, "A.Example.ORG.", RecordType::A, C1).await,
        (0, 0, 1)
    );
    // NODATA: per name, whatever the type.
    assert_eq!(
        r.burst(2, "nodata.example.org.", RecordType::A, C1).await,
        (2, 0, 0)
    );
    assert_eq!(
        r.burst(1, "nodata.example.org.", RecordType::MX, C1).await,
        (0, 0, 1)
    );
    // NXDOMAIN: per zone (the SOA owner), whatever the name and type — random-subdomain
    // floods share one account.
    assert_eq!(
        r.burst(1, "nx1.example.org.", RecordType::A, C1).await,
        (1, 0, 0)
    );
    assert_eq!(
        r.burst(1, "nx2.example.org.", RecordType::TXT, C1).await,
        (1, 0, 0)
    );
    assert_eq!(
        r.burst(1, "nx3.example.org.", RecordType::A, C1).await,
        (0, 0, 1)
    );
    // Referrals: per delegation and type.
    assert_eq!(
        r.burst(2, "ref1.example.org.", RecordType::A, C1).await,
        (2, 0, 0)
    );
    assert_eq!(
        r.burst(1, "ref2.example.org.", RecordType::A, C1).await,
        (0, 0, 1)
    );
    assert_eq!(
        r.burst(1, "ref2.example.org.", RecordType::NS, C1).await,
        (1, 0, 0)
    );
    // Errors: one account per prefix, whatever the name and type.
    assert_eq!(
        r.burst(1, "fail1.example.org.", RecordType::A, C1).await,
        (1, 0, 0)
    );
    assert_eq!(
        r.burst(1, "fail2.example.org.", RecordType::MX, C1).await,
        (1, 0, 0)
    );
    assert_eq!(
        r.burst(1, "fail3.example.org.", RecordType::A, C1).await,
        (0, 0, 1)
    );
}

#[tokio::test]
async fn allowances_per_type_and_zero_disables() {
    let r = Rig::new(
        "responses-per-second 3\nnxdomains-per-second 1\nerrors-per-second 0",
        mixed(),
    );
    assert_eq!(
        r.burst(4, "a.example.org.", RecordType::A, C1).await,
        (3, 0, 1)
    );
    assert_eq!(
        r.burst(3, "nx.example.org.", RecordType::A, C1).await,
        (1, 0, 2)
    );
    assert_eq!(
        r.burst(50, "fail.example.org.", RecordType::A, C1).await,
        (50, 0, 0),
        "errors are not limited"
    );
    assert_eq!(r.rrl.tracked(), 2, "no account for unlimited categories");
}

#[tokio::test]
async fn clients_are_grouped_by_prefix() {
    let r = Rig::new("responses-per-second 2", positive());
    let q = |src: &'static str| r.burst(1, "www.example.org.", RecordType::A, src);
    assert_eq!(q("192.0.2.1:1").await, (1, 0, 0));
    assert_eq!(q("192.0.2.200:2").await, (1, 0, 0));
    assert_eq!(q("192.0.2.99:3").await, (0, 0, 1), "same /24");
    assert_eq!(q("[::ffff:192.0.2.7]:4").await, (0, 0, 1), "v4-mapped");
    assert_eq!(q("192.0.3.1:1").await, (1, 0, 0), "another /24");
    // IPv6: /56.
    assert_eq!(q("[2001:db8:0:1::1]:1").await, (1, 0, 0));
    assert_eq!(q("[2001:db8:0:ff::2]:1").await, (1, 0, 0));
    assert_eq!(q("[2001:db8:0:22::3]:1").await, (0, 0, 1), "same /56");
    assert_eq!(q("[2001:db8:0:100::1]:1").await, (1, 0, 0), "another /56");
    assert_eq!(
        r.rrl.prefix("198.51.100.77".parse().unwrap()).to_string(),
        "198.51.100.0"
    );
    let r = Rig::new(
        "responses-per-second 2\nipv4-prefix-length 32\nipv6-prefix-length 128",
        positive(),
    );
    assert_eq!(
        r.burst(3, "www.example.org.", RecordType::A, "192.0.2.1:1")
            .await,
        (2, 0, 1)
    );
    assert_eq!(
        r.burst(3, "www.example.org.", RecordType::A, "192.0.2.2:1")
            .await,
        (2, 0, 1)
    );
}

#[tokio::test]
async fn tcp_and_other_zones_are_never_limited() {
    let r = Rig::new("responses-per-second 1\nrequests-per-second 1", positive());
    for proto in [Proto::Tcp, Proto::Tls] {
        for _ in 0..20 {
            let out = r.ask("www.example.org.", RecordType::A, C1, proto).await;
            assert_eq!(out.plugin(), "fixed", "{proto:?}");
        }
    }
    assert_eq!(r.rrl.tracked(), 0);
    // The rrl zones are example.org only.
    assert_eq!(
        r.burst(20, "www.example.com.", RecordType::A, C1).await,
        (20, 0, 0)
    );
    assert_eq!(
        r.burst(2, "www.example.org.", RecordType::A, C1).await,
        (1, 0, 1)
    );
}

/// A valid server cookie proves the source address, as TCP does (Knot's and NSD's RRL): never
/// limited. A cookie that was not valid counts as none.
#[tokio::test]
async fn clients_with_a_valid_server_cookie_are_never_limited() {
    let r = Rig::new("responses-per-second 1\nrequests-per-second 1", positive());
    let rest: Vec<Arc<dyn Plugin>> = vec![r.next.clone()];
    let with_cookie = |valid: bool| {
        let mut req = request_from(query("www.example.org.", RecordType::A), C1, Proto::Udp);
        req.cookie = Some(crate::dns::cookie::ReplyCookie {
            bytes: [7; 24],
            valid,
        });
        req
    };
    for _ in 0..20 {
        let out = r.rrl.serve(&with_cookie(true), Next::new(&rest)).await;
        assert_eq!(out.plugin(), "fixed");
    }
    assert_eq!(r.rrl.tracked(), 0);
    let out = r.rrl.serve(&with_cookie(false), Next::new(&rest)).await;
    assert_eq!(out.plugin(), "fixed");
    let out = r.rrl.serve(&with_cookie(false), Next::new(&rest)).await;
    assert_eq!(out.plugin(), NAME, "an invalid cookie is limited as none");
}

#[tokio::test]
async fn requests_per_second_drops_before_answering() {
    let r = Rig::new("requests-per-second 2", positive());
    assert_eq!(
        r.burst(5, "a.example.org.", RecordType::A, C1).await,
        (2, 0, 3)
    );
    assert_eq!(
        r.next.calls(),
        2,
        "dropped requests are not answered at all"
    );
    // The prefix, not the name, is the account.
    assert_eq!(
        r.burst(1, "b.example.org.", RecordType::A, C1).await,
        (0, 0, 1)
    );
    assert_eq!(
        r.burst(1, "b.example.org.", RecordType::A, "192.0.9.1:1")
            .await,
        (1, 0, 0)
    );
}

fn exceeded(vec: &IntCounterVec, label: &str) -> u64 {
    vec.with_label_values(&[label]).get()
}

#[tokio::test]
async fn report_only_counts_without_dropping() {
    // 203.0.113.0/24 is used by this test only (the counters are process-wide).
    let src = "203.0.113.5:1";
    let before = exceeded(&RESPONSES_EXCEEDED, "203.0.113.0");
    let before_req = exceeded(&REQUESTS_EXCEEDED, "203.0.113.0");
    let r = Rig::new(
        "responses-per-second 2\nrequests-per-second 4\nreport-only\nslip-ratio 1",
        positive(),
    );
    let (answered, slipped, dropped) = r.burst(10, "www.example.org.", RecordType::A, src).await;
    assert_eq!((answered, slipped, dropped), (10, 0, 0));
    assert_eq!(exceeded(&RESPONSES_EXCEEDED, "203.0.113.0") - before, 8);
    assert_eq!(exceeded(&REQUESTS_EXCEEDED, "203.0.113.0") - before_req, 6);
}

#[tokio::test]
async fn exceeded_responses_are_counted_per_prefix() {
    let src = "198.18.7.9:1";
    let before = exceeded(&RESPONSES_EXCEEDED, "198.18.7.0");
    let r = Rig::new("responses-per-second 3", positive());
    r.burst(10, "www.example.org.", RecordType::A, src).await;
    assert_eq!(exceeded(&RESPONSES_EXCEEDED, "198.18.7.0") - before, 7);
}

#[tokio::test]
async fn the_table_is_bounded() {
    let r = Rig::new("responses-per-second 2\nmax-table-size 10", positive());
    for i in 0..10 {
        let q = format!("n{i}.example.org.");
        assert_eq!(r.burst(3, &q, RecordType::A, C1).await, (2, 0, 1));
    }
    assert_eq!(r.rrl.tracked(), 10);
    // Full, and no account refilled yet: a new category is not tracked, so not limited.
    assert_eq!(
        r.burst(10, "new.example.org.", RecordType::A, C1).await,
        (10, 0, 0)
    );
    assert_eq!(r.rrl.tracked(), 10);
    // The old accounts stay limited.
    assert_eq!(
        r.burst(1, "n0.example.org.", RecordType::A, C1).await,
        (0, 0, 1)
    );
    // Once accounts have refilled (a quiet second), they make room for new ones.
    r.clock.advance(2 * SECOND);
    assert_eq!(
        r.burst(3, "new.example.org.", RecordType::A, C1).await,
        (2, 0, 1)
    );
    assert!(r.rrl.tracked() <= 10);

    // Many distinct categories never grow it past the bound.
    let r = Rig::new("responses-per-second 2\nmax-table-size 1000", positive());
    for i in 0..20_000 {
        let q = format!("n{i}.example.org.");
        r.ask(&q, RecordType::A, C1, Proto::Udp).await;
        if i % 5000 == 0 {
            r.clock.advance(10 * MS);
        }
    }
    assert_eq!(r.rrl.tracked(), 1000);
    // max-table-size 0: nothing is tracked or limited.
    let r = Rig::new("responses-per-second 1\nmax-table-size 0", positive());
    assert_eq!(
        r.burst(10, "www.example.org.", RecordType::A, C1).await,
        (10, 0, 0)
    );
}

#[test]
fn one_account_from_many_threads_allows_exactly_the_allowance() {
    let clock = Arc::new(FakeClock::default());
    let table = Arc::new(Table::new(1000, 15 * SECOND));
    let allowed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    let d = table.debit(42, SECOND / 50, clock.now(), 0, || {
                        IntCounter::new("x", "x").unwrap()
                    });
                    if d == Debit::Allowed {
                        allowed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.load(Ordering::SeqCst), 50);
}

#[test]
fn response_types() {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    assert_eq!(response_type(&m), RType::Nodata);
    m.authorities.push(soa("example.org."));
    assert_eq!(response_type(&m), RType::Nodata);
    m.metadata.response_code = ResponseCode::NXDomain;
    assert_eq!(response_type(&m), RType::Nxdomain);
    m.metadata.response_code = ResponseCode::Refused;
    assert_eq!(response_type(&m), RType::Error);
    m.answers.push(Record::from_rdata(
        name("a.example.org."),
        1,
        RData::A(A(Ipv4Addr::LOCALHOST)),
    ));
    assert_eq!(response_type(&m), RType::Response, "answers decide first");
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.authorities.push(Record::from_rdata(
        name("sub.example.org."),
        1,
        RData::NS(NS(name("ns.example.org."))),
    ));
    assert_eq!(response_type(&m), RType::Referral);
}
