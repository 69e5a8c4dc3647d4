use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, HINFO};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::*;
use crate::plugin::test_chain::{self, Fixed, reply_of, request, setup_err, setup_in};

fn next_with_a() -> Arc<Fixed> {
    Fixed::reply(|m| {
        let name = m.queries[0].name().clone();
        m.answers.push(Record::from_rdata(
            name,
            300,
            RData::A(A("192.0.2.1".parse().unwrap())),
        ));
    })
}

#[tokio::test]
async fn any_gets_hinfo_others_pass() {
    // (qtype, answered by `any`)
    let cases = [
        (RecordType::ANY, true),
        (RecordType::A, false),
        (RecordType::AAAA, false),
        (RecordType::HINFO, false),
        (RecordType::AXFR, false),
    ];
    for (qtype, by_any) in cases {
        let next = next_with_a();
        let rest: Vec<Arc<dyn Plugin>> = vec![next.clone()];
        let req = request("Example.org.", qtype);
        let out = test_chain::serve(&Any, &req, &rest).await;
        if !by_any {
            assert_eq!(out.plugin(), "fixed", "{qtype}");
            assert_eq!(next.calls(), 1);
            continue;
        }
        assert_eq!(next.calls(), 0);
        assert_eq!(out.plugin(), "any");
        let m = reply_of(out);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.metadata.id, 4242);
        assert!(!m.metadata.authoritative);
        assert_eq!(m.queries, req.msg.queries);
        assert_eq!(m.answers.len(), 1);
        let rr = &m.answers[0];
        assert!(rr.name.eq_case(&Name::from_ascii("Example.org.").unwrap()));
        assert_eq!(rr.ttl, 8482);
        assert_eq!(rr.dns_class, DNSClass::IN);
        assert_eq!(
            rr.data,
            RData::HINFO(HINFO::new(
                "ANY obsoleted".to_string(),
                "See RFC 8482".to_string()
            ))
        );
        assert!(m.authorities.is_empty());
        assert!(m.additionals.is_empty());
    }
}

#[tokio::test]
async fn last_in_chain_non_any_is_servfail() {
    let req = request("example.org.", RecordType::A);
    let out = Any.serve(&req, Next::new(&[])).await;
    assert_eq!(out.rcode(), Some(ResponseCode::ServFail));
}

#[test]
fn setup_rejects_arguments() {
    assert_eq!(
        setup_in(setup, "any", &["."]).unwrap().unwrap().name(),
        "any"
    );
    assert_eq!(
        setup_err(setup, "any foo"),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'foo'"
    );
    assert_eq!(
        setup_err(setup, "any {\n  foo\n}"),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '{'"
    );
}
