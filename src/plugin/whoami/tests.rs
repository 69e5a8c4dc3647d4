use std::sync::Arc;

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::plugin::test_chain::{self, Fixed, query, reply_of, request_from, setup_err, setup_in};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

#[tokio::test]
async fn answers_with_client_address_and_port() {
    struct Case {
        qname: &'static str,
        qtype: RecordType,
        src: &'static str,
        proto: Proto,
        addr: RData,
        srv_owner: &'static str,
    }
    let cases = [
        Case {
            qname: "example.org.",
            qtype: RecordType::A,
            src: "10.240.0.1:40212",
            proto: Proto::Udp,
            addr: RData::A(A("10.240.0.1".parse().unwrap())),
            srv_owner: "_udp.example.org.",
        },
        // Case preserving, like CoreDNS.
        Case {
            qname: "Example.ORG.",
            qtype: RecordType::AAAA,
            src: "10.240.0.1:53000",
            proto: Proto::Tcp,
            addr: RData::A(A("10.240.0.1".parse().unwrap())),
            srv_owner: "_tcp.Example.ORG.",
        },
        Case {
            qname: "example.org.",
            qtype: RecordType::TXT,
            src: "[2001:db8::1]:5353",
            proto: Proto::Udp,
            addr: RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
            srv_owner: "_udp.example.org.",
        },
        // DoT is reported as tcp.
        Case {
            qname: "example.org.",
            qtype: RecordType::A,
            src: "[::ffff:192.0.2.7]:1234",
            proto: Proto::Tls,
            addr: RData::A(A("192.0.2.7".parse().unwrap())),
            srv_owner: "_tcp.example.org.",
        },
        // The root: `_udp.` (not `_udp..`).
        Case {
            qname: ".",
            qtype: RecordType::NS,
            src: "127.0.0.1:9999",
            proto: Proto::Udp,
            addr: RData::A(A("127.0.0.1".parse().unwrap())),
            srv_owner: "_udp.",
        },
    ];
    for c in cases {
        let req = request_from(query(c.qname, c.qtype), c.src, c.proto);
        let next = Fixed::reply(|_| {});
        let rest: Vec<Arc<dyn Plugin>> = vec![next.clone()];
        let out = test_chain::serve(&Whoami, &req, &rest).await;
        assert_eq!(out.plugin(), "whoami");
        let m = reply_of(out);
        assert_eq!(next.calls(), 0, "whoami never calls next");
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.id, 4242);
        assert!(m.metadata.authoritative);
        assert!(m.metadata.recursion_desired);
        assert!(!m.metadata.truncation);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries, req.msg.queries);
        assert!(m.answers.is_empty(), "{}", c.qname);
        assert!(m.authorities.is_empty());
        assert_eq!(m.additionals.len(), 2);

        let a = &m.additionals[0];
        assert!(a.name.eq_case(&n(c.qname)), "{} vs {}", a.name, c.qname);
        assert_eq!(a.ttl, 0);
        assert_eq!(a.dns_class, DNSClass::IN);
        assert_eq!(a.data, c.addr);

        let srv = &m.additionals[1];
        assert!(
            srv.name.eq_case(&n(c.srv_owner)),
            "{} vs {}",
            srv.name,
            c.srv_owner
        );
        assert_eq!(srv.ttl, 0);
        let port: u16 = test_chain::addr(c.src).port();
        assert_eq!(srv.data, RData::SRV(SRV::new(0, 0, port, Name::root())));
    }
}

#[tokio::test]
async fn copies_the_query_class() {
    let mut q = query("version.bind.", RecordType::TXT);
    q.queries[0].set_query_class(DNSClass::CH);
    let req = request_from(q, "10.0.0.1:1000", Proto::Udp);
    let m = reply_of(Whoami.serve(&req, Next::new(&[])).await);
    assert_eq!(m.additionals[0].dns_class, DNSClass::CH);
    assert_eq!(m.additionals[1].dns_class, DNSClass::CH);
}

#[tokio::test]
async fn too_long_srv_owner_is_servfail() {
    // A 255-octet (wire) name: prepending `_udp` would exceed the limit.
    let l63 = "a".repeat(63);
    let l61 = "b".repeat(61);
    let name = format!("{l63}.{l63}.{l63}.{l61}.");
    let req = request_from(query(&name, RecordType::A), "10.0.0.1:1000", Proto::Udp);
    let out = Whoami.serve(&req, Next::new(&[])).await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            plugin: "whoami"
        }
    ));
}

#[test]
fn setup_accepts_no_arguments_only() {
    let p = setup_in(setup, "whoami", &["."]).unwrap().unwrap();
    assert_eq!(p.name(), "whoami");
    assert_eq!(
        setup_err(setup, "whoami example.org"),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'example.org'"
    );
    assert_eq!(
        setup_err(setup, "whoami {\n}"),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '{'"
    );
}
