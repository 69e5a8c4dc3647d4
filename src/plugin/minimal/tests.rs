use std::sync::Arc;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{Name, RData, Record};

use super::*;
use crate::dns::reply::{encode_reply, to_wire};
use crate::dns::request::Proto;
use crate::dns::view::with_view;
use crate::plugin::test_chain::{
    self, Fixed, query, request_from, setup_block, setup_err, setup_in, with_edns,
};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a(name: &str, ttl: u32, ip: &str) -> Record {
    Record::from_rdata(n(name), ttl, RData::A(A(ip.parse().unwrap())))
}

fn aaaa(name: &str, ttl: u32, ip: &str) -> Record {
    Record::from_rdata(n(name), ttl, RData::AAAA(AAAA(ip.parse().unwrap())))
}

fn ns(name: &str, ttl: u32, host: &str) -> Record {
    Record::from_rdata(n(name), ttl, RData::NS(NS(n(host))))
}

fn soa() -> Record {
    Record::from_rdata(
        n("example.com."),
        300,
        RData::SOA(SOA::new(
            n("ns1.example.com."),
            n("hostmaster.example.com."),
            1,
            7200,
            1800,
            86400,
            60,
        )),
    )
}

/// CoreDNS's TestMinimizeResponse records.
fn base_answer() -> Vec<Record> {
    vec![a("example.com.", 293, "142.250.76.46")]
}

fn base_ns() -> Vec<Record> {
    ["ns2", "ns1", "ns3", "ns4"]
        .iter()
        .map(|h| ns("example.com.", 157127, &format!("{h}.example.com.")))
        .collect()
}

fn base_extra() -> Vec<Record> {
    vec![
        a("ns2.example.com.", 316273, "216.239.34.10"),
        aaaa("ns2.example.com.", 157127, "2001:4860:4802:34::a"),
        a("ns3.example.com.", 316274, "216.239.36.10"),
        aaaa("ns3.example.com.", 157127, "2001:4860:4802:36::a"),
        a("ns1.example.com.", 165555, "216.239.32.10"),
        aaaa("ns1.example.com.", 165555, "2001:4860:4802:32::a"),
        a("ns4.example.com.", 190188, "216.239.38.10"),
        aaaa("ns4.example.com.", 157127, "2001:4860:4802:38::a"),
    ]
}

struct Case {
    what: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answer: Vec<Record>,
    ns: Vec<Record>,
    extra: Vec<Record>,
    minimized: bool,
}

/// CoreDNS's table, then the other kinds of reply.
fn cases() -> Vec<Case> {
    let c = |what, qtype, rcode, answer, ns, extra, minimized| Case {
        what,
        qtype,
        rcode,
        answer,
        ns,
        extra,
        minimized,
    };
    use RecordType as T;
    use ResponseCode as R;
    vec![
        c(
            "answer + extra",
            T::A,
            R::NoError,
            base_answer(),
            vec![],
            base_extra(),
            true,
        ),
        c(
            "delegation",
            T::A,
            R::NoError,
            vec![],
            base_ns(),
            base_extra(),
            false,
        ),
        c(
            "SERVFAIL with everything",
            T::A,
            R::ServFail,
            base_answer(),
            base_ns(),
            base_extra(),
            false,
        ),
        c(
            "answer + ns + extra",
            T::A,
            R::NoError,
            base_answer(),
            base_ns(),
            base_extra(),
            true,
        ),
        c(
            "answer + ns",
            T::A,
            R::NoError,
            base_answer(),
            base_ns(),
            vec![],
            true,
        ),
        c(
            "answer alone",
            T::A,
            R::NoError,
            base_answer(),
            vec![],
            vec![],
            true,
        ),
        c(
            "NODATA",
            T::AAAA,
            R::NoError,
            vec![],
            vec![soa()],
            base_extra(),
            false,
        ),
        c(
            "NXDOMAIN",
            T::A,
            R::NXDomain,
            vec![],
            vec![soa()],
            base_extra(),
            false,
        ),
        c(
            "NXDOMAIN, no SOA",
            T::A,
            R::NXDomain,
            vec![],
            vec![],
            base_extra(),
            false,
        ),
        c(
            "REFUSED",
            T::A,
            R::Refused,
            vec![],
            base_ns(),
            base_extra(),
            false,
        ),
        c(
            "AXFR",
            T::AXFR,
            R::NoError,
            base_answer(),
            base_ns(),
            base_extra(),
            false,
        ),
        c(
            "empty NOERROR + extra",
            T::A,
            R::NoError,
            vec![],
            vec![],
            base_extra(),
            true,
        ),
        c(
            "BADCOOKIE (extended)",
            T::A,
            R::BADCOOKIE,
            base_answer(),
            base_ns(),
            base_extra(),
            false,
        ),
    ]
}

fn request(qtype: RecordType, edns: bool) -> Request {
    let mut m = query("example.com.", qtype);
    if edns {
        m = with_edns(m, 1232, true);
    }
    request_from(m, "10.0.0.1:40000", Proto::Udp)
}

fn reply(req: &Request, c: &Case) -> Message {
    let mut m = req.reply();
    m.metadata.response_code = c.rcode;
    m.answers = c.answer.clone();
    m.authorities = c.ns.clone();
    m.additionals = c.extra.clone();
    m
}

/// The sections of the reply the client gets (and its OPT record's DO bit).
fn sections(req: &Request, out: Outcome) -> (Vec<Record>, Vec<Record>, Vec<Record>, Option<bool>) {
    let bytes = match out {
        Outcome::Wire { bytes, .. } => crate::dns::wire::fit(req, bytes),
        other => encode_reply(req, other.into_message(req).unwrap()),
    };
    let m = Message::from_vec(&bytes).unwrap();
    let dnssec_ok = m.edns.as_ref().map(|e| e.flags().dnssec_ok);
    (m.answers, m.authorities, m.additionals, dnssec_ok)
}

#[tokio::test]
async fn coredns_table_decoded_and_wire_replies() {
    for c in cases() {
        for (edns, wire_form) in [(false, false), (true, false), (false, true), (true, true)] {
            let req = request(c.qtype, edns);
            let m = reply(&req, &c);
            let next: Arc<dyn Plugin> = if wire_form {
                let mut m = m.clone();
                if edns {
                    m.edns = Some(Edns::new());
                }
                let bytes = to_wire(&m).unwrap();
                let l = wire::scan(&bytes).unwrap();
                let rcode = c.rcode;
                let out = wire::finalize_or_decode(&req, bytes, &l, rcode, "fixed");
                assert!(matches!(out, Outcome::Wire { .. }), "{}", c.what);
                Fixed::new(move |_| out.dup())
            } else {
                Fixed::new(move |_| Outcome::reply(m.clone(), "fixed"))
            };
            let out = test_chain::serve(&Minimal, &req, &[next]).await;
            assert_eq!(out.plugin(), "fixed");
            let case = format!("{} edns={edns} wire={wire_form}", c.what);
            let (answer, ns, extra, dnssec_ok) = sections(&req, out);
            assert_eq!(answer, c.answer, "{case}");
            if c.minimized {
                assert!(ns.is_empty(), "{case}");
                assert!(extra.is_empty(), "{case}");
            } else {
                assert_eq!(ns, c.ns, "{case}");
                assert_eq!(extra, c.extra, "{case}");
            }
            // The OPT record stays (with the client's DO bit) when the client used EDNS.
            assert_eq!(dnssec_ok, edns.then_some(true), "{case}");
        }
    }
}

#[tokio::test]
async fn codes_and_drops_pass() {
    let req = request(RecordType::A, true);
    let out = Minimal.serve(&req, Next::new(&[])).await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            ..
        }
    ));
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| Outcome::Drop { plugin: "acl" })];
    let out = test_chain::serve(&Minimal, &req, &rest).await;
    assert!(matches!(out, Outcome::Drop { plugin: "acl" }));
}

/// Answers the fast path with a prepared reply (answers, authority, additional, OPT).
struct Prepared(Vec<u8>);

#[async_trait]
impl Plugin for Prepared {
    fn name(&self) -> &'static str {
        "prepared"
    }
    async fn serve(&self, _req: &Request, _next: Next<'_>) -> Outcome {
        unreachable!("answered on the fast path")
    }
    fn fast(&self, _q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        Some(FastReply {
            bytes: self.0.clone(),
            rcode: ResponseCode::NoError,
            plugin: "prepared",
        })
    }
}

/// A block with `minimal` never sends the prepared non-minimal bytes of a fast answer.
#[test]
fn fast_answers_are_minimized_too() {
    for c in cases() {
        let req = request(c.qtype, true);
        let mut m = reply(&req, &c);
        m.edns = Some(Edns::new());
        let prepared = wire::finalize(&req, to_wire(&m).unwrap(), &{
            let b = to_wire(&m).unwrap();
            wire::scan(&b).unwrap()
        })
        .unwrap();
        let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(Prepared(prepared.clone()))];
        let q = req.msg.to_vec().unwrap();
        let reply = with_view(&q, Proto::Udp, |v| Minimal.fast(v, FastNext::new(&rest)))
            .unwrap()
            .expect("answered fast");
        let full = minimize_wire(prepared.clone());
        assert_eq!(
            reply.bytes, full,
            "{}: the same bytes as the full path",
            c.what
        );
        let m = Message::from_vec(&reply.bytes).unwrap();
        assert_eq!(m.answers, c.answer, "{}", c.what);
        if c.minimized {
            assert!(
                m.authorities.is_empty() && m.additionals.is_empty(),
                "{}",
                c.what
            );
            let cut = !(c.ns.is_empty() && c.extra.is_empty());
            assert_eq!(reply.bytes.len() < prepared.len(), cut, "{}", c.what);
        } else {
            assert_eq!(reply.bytes, prepared, "{}", c.what);
        }
        // The OPT record is still the last record: the server can add its cookie.
        let mut with_cookie = reply.bytes.clone();
        assert!(
            wire::put_option(&mut with_cookie, 10, &[7; 24]),
            "{}",
            c.what
        );
    }
}

/// Cutting never panics and never yields a message that does not scan, whatever the input.
#[test]
fn hostile_bytes() {
    let req = request(RecordType::A, true);
    let c = &cases()[3];
    let mut m = reply(&req, c);
    m.edns = Some(Edns::new());
    let good = to_wire(&m).unwrap();
    for len in 0..good.len() {
        let out = minimize_wire(good[..len].to_vec());
        assert_eq!(
            out,
            good[..len],
            "a message that does not scan is left alone"
        );
    }
    let mut x: u32 = 0x1234_5678;
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = (x as usize) % b.len();
            b[at] = (x >> 8) as u8;
        }
        let scanned = wire::scan(&b).is_some();
        let out = minimize_wire(b);
        if scanned {
            assert!(wire::scan(&out).is_some(), "{out:?}");
        }
    }
    // Trailing bytes after the last record go with the cut.
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    let out = minimize_wire(trailing);
    assert_eq!(wire::scan(&out).unwrap().end, out.len());
}

#[test]
fn setup_takes_no_arguments() {
    assert_eq!(
        setup_in(setup, "minimal", &["."]).unwrap().unwrap().name(),
        "minimal"
    );
    assert_eq!(
        setup_err(setup, "minimal foo"),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'foo'"
    );
    assert_eq!(
        setup_err(setup, "minimal {\n}"),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '{'"
    );
    // A second line is not read, as in CoreDNS.
    assert_eq!(
        setup_block(setup, &["."], "minimal\nminimal foo")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn directive_is_registered_in_coredns_order() {
    let at = |n| crate::plugin::order_of(n).unwrap();
    assert!(
        at("header") < at("minimal") && at("minimal") + 1 == at("template"),
        "CoreDNS plugin.cfg: header, dnssec, tls, minimal, template"
    );
    assert!(!crate::plugin::directive("minimal").unwrap().once);
}
