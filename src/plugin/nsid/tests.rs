use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{RData, Record, RecordType};

use super::*;
use crate::dns::reply::encode_reply;
use crate::dns::request::Proto;
use crate::plugin::cache::{Cache, Config};
use crate::plugin::test_chain::{
    self, Fixed, query, reply_of, request_from, setup_err, setup_in, with_edns,
};
use crate::plugin::util::hostname;
use crate::plugin::whoami::Whoami;

/// A query for `name` A; with EDNS (4096) when `edns`, and the NSID option when `nsid`.
fn nsid_request(name: &str, edns: bool, nsid: bool) -> Request {
    let mut m = query(name, RecordType::A);
    if edns {
        m = with_edns(m, 4096, false);
        if nsid {
            let e = m.edns.as_mut().unwrap();
            e.options_mut()
                .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        }
    }
    request_from(m, "10.0.0.1:40000", Proto::Udp)
}

/// The NSID option of the reply's OPT record.
fn nsid_of(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(p) => Some(p.as_ref().to_vec()),
        other => panic!("not an NSID option: {other:?}"),
    }
}

/// The NSID options (code 3) in `wire`'s OPT RDATA.
fn wire_nsids(bytes: &[u8]) -> Vec<Vec<u8>> {
    let l = wire::scan(bytes).expect("a message");
    let rr = l.rrs[l.opt.expect("an OPT record")];
    let rdata = &bytes[rr.rdata..rr.end];
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= rdata.len() {
        let len = wire::u16_at(rdata, at + 2) as usize;
        if wire::u16_at(rdata, at) == OPTION {
            out.push(rdata[at + 4..at + 4 + len].to_vec());
        }
        at += 4 + len;
    }
    out
}

/// CoreDNS's TestNsid table: `nsid NSID` before whoami, a query for `.` with an empty NSID
/// option → NOERROR, the OPT record's first option is NSID "NSID" (hex 4e534944).
#[tokio::test]
async fn coredns_table_whoami() {
    let n = Nsid::new("NSID");
    let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(Whoami)];
    let req = nsid_request(".", true, true);
    let out = test_chain::serve(&n, &req, &rest).await;
    assert_eq!(out.plugin(), "whoami");
    let bytes = encode_reply(&req, reply_of(out));
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(nsid_of(&m), Some(b"NSID".to_vec()));
    assert_eq!(wire_nsids(&bytes), vec![b"NSID".to_vec()]);
    // On the wire: option 3, length 4, "NSID"; exdns's UDP size, DO clear.
    let e = m.edns.unwrap();
    assert_eq!(e.max_payload(), 1232);
    assert!(!e.flags().dnssec_ok);
    let hex: String = b"NSID".iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "4e534944");
}

/// Which queries get the option and what happens to each kind of outcome.
#[tokio::test]
async fn only_queries_with_the_option_get_it_on_every_kind_of_reply() {
    let a_reply = || {
        Fixed::reply(|m| {
            let name = m.queries[0].name().clone();
            m.answers
                .push(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
        })
    };
    // (edns, nsid option in the query, the option in the reply)
    let cases = [
        (false, false, false),
        (true, false, false),
        (true, true, true),
    ];
    for (edns, ask, stamped) in cases {
        let n = Nsid::new("tf 2");
        let req = nsid_request("example.org.", edns, ask);
        let rest: Vec<Arc<dyn Plugin>> = vec![a_reply()];
        let out = test_chain::serve(&n, &req, &rest).await;
        let m = reply_of(out);
        assert_eq!(m.answers.len(), 1, "{edns} {ask}");
        let got = nsid_of(&m);
        assert_eq!(got.is_some(), stamped, "{edns} {ask}");
        if stamped {
            assert_eq!(got.unwrap(), b"tf 2");
        }
    }
}

#[tokio::test]
async fn a_return_code_becomes_a_reply_with_the_option() {
    let n = Nsid::new("ps0");
    let req = nsid_request("example.org.", true, true);
    // Falling off the chain: SERVFAIL, as CoreDNS's NextOrFailure.
    let out = n.serve(&req, Next::new(&[])).await;
    assert_eq!(out.plugin(), "");
    let m = reply_of(out);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(nsid_of(&m), Some(b"ps0".to_vec()));
    // REFUSED from a plugin keeps its rcode and plugin.
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| {
        Outcome::code(ResponseCode::Refused, "fixed")
    })];
    let out = test_chain::serve(&n, &req, &rest).await;
    assert_eq!(out.plugin(), "fixed");
    let m = reply_of(out);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(nsid_of(&m), Some(b"ps0".to_vec()));
}

#[tokio::test]
async fn an_nsid_already_in_the_reply_is_replaced() {
    let n = Nsid::new("me");
    let req = nsid_request("example.org.", true, true);
    // A decoded reply carrying an upstream's NSID.
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::reply(|m| {
        let mut e = hickory_proto::op::Edns::new();
        e.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(b"upstream".to_vec()).unwrap(),
        ));
        m.edns = Some(e);
    })];
    let out = test_chain::serve(&n, &req, &rest).await;
    let bytes = encode_reply(&req, reply_of(out));
    assert_eq!(wire_nsids(&bytes), vec![b"me".to_vec()]);

    // A relayed wire reply: OPT with a padding option, then the upstream's NSID.
    let mut reply = req.reply();
    reply.edns = Some(hickory_proto::op::Edns::new());
    let mut upstream = encode_reply(&req, reply);
    assert!(wire::put_option(&mut upstream, 12, &[0, 0]));
    assert!(wire::put_option(&mut upstream, OPTION, b"upstream"));
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(move |_| Outcome::Wire {
        bytes: upstream.clone(),
        rcode: ResponseCode::NoError,
        plugin: "forward",
    })];
    let out = test_chain::serve(&n, &req, &rest).await;
    let Outcome::Wire { bytes, plugin, .. } = out else {
        panic!("still a wire reply");
    };
    assert_eq!(plugin, "forward");
    assert_eq!(wire_nsids(&bytes), vec![b"me".to_vec()]);
    let l = wire::scan(&bytes).unwrap();
    let rr = l.rrs[l.opt.unwrap()];
    assert_eq!(
        &bytes[rr.rdata..rr.end],
        &[0, 12, 0, 2, 0, 0, 0, 3, 0, 2, b'm', b'e'],
        "padding kept, then the NSID"
    );
}

#[tokio::test]
async fn a_dropped_query_stays_dropped() {
    let n = Nsid::new("x");
    let req = nsid_request("example.org.", true, true);
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| Outcome::Drop { plugin: "acl" })];
    let out = test_chain::serve(&n, &req, &rest).await;
    assert!(matches!(out, Outcome::Drop { plugin: "acl" }));
}

/// CoreDNS's TestNsidCache: a cached answer carries the NSID too (the second query is a
/// cache hit, a wire reply).
#[tokio::test]
async fn cache_hits_carry_the_nsid() {
    let n = Nsid::new("NSID");
    let cache: Arc<dyn Plugin> = Arc::new(Cache::new(Config {
        zones: vec!["nsid-test.".into()],
        ..Config::default()
    }));
    let backend = Fixed::reply(|m| {
        let name = m.queries[0].name().clone();
        m.answers
            .push(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 7))));
    });
    let rest: Vec<Arc<dyn Plugin>> = vec![cache, backend.clone()];
    for round in 0..2 {
        let req = nsid_request("a.nsid-test.", true, true);
        let out = test_chain::serve(&n, &req, &rest).await;
        let bytes = match out {
            Outcome::Wire { bytes, .. } => crate::dns::wire::fit(&req, bytes),
            other => encode_reply(&req, other.into_message(&req).unwrap()),
        };
        assert_eq!(wire_nsids(&bytes), vec![b"NSID".to_vec()], "round {round}");
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.answers.len(), 1);
    }
    assert_eq!(backend.calls(), 1, "the second answer came from the cache");
}

/// NSID data of any length up to what fits: a reply too big for the client is truncated by
/// the server as usual, never a panic.
#[tokio::test]
async fn long_data_is_truncated_like_any_big_reply() {
    let n = Nsid::new("x".repeat(2000));
    let req = nsid_request("example.org.", true, true);
    let out = n.serve(&req, Next::new(&[])).await;
    let bytes = encode_reply(&req, reply_of(out));
    assert!(bytes.len() <= 1232);
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.edns.is_some(), "the OPT record is kept");
    assert_eq!(nsid_of(&m), None, "without the option that did not fit");
}

#[test]
fn setup_table() {
    // CoreDNS's TestSetupNsid table: (input, data).
    let cases = [
        ("nsid", hostname()),
        ("nsid \"ps0\"", "ps0".to_string()),
        ("nsid \"worker1\"", "worker1".to_string()),
        ("nsid \"tf 2\"", "tf 2".to_string()),
        ("nsid Use The Force", "Use The Force".to_string()),
    ];
    for (input, want) in cases {
        let p = setup_in(setup, input, &["."]).unwrap().unwrap();
        assert_eq!(p.name(), "nsid");
        let req = nsid_request("example.org.", true, true);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let m = reply_of(rt.block_on(p.serve(&req, Next::new(&[]))));
        assert_eq!(nsid_of(&m), Some(want.into_bytes()), "{input}");
    }
    assert!(!hostname().is_empty());
    // `nsid { }`: CoreDNS's setup reads the `{` as a second `nsid` (its ErrOnce).
    assert_eq!(
        setup_err(setup, "nsid foo {\n}"),
        "Corefile:1 - Error during parsing: this plugin can only be used once per Server Block"
    );
}

#[test]
fn directive_is_registered_in_coredns_order() {
    let at = |n| crate::plugin::order_of(n).unwrap();
    assert!(
        at("reload") < at("nsid") && at("nsid") < at("bufsize") && at("bufsize") < at("bind"),
        "CoreDNS plugin.cfg: reload, nsid, bufsize, bind"
    );
    assert!(crate::plugin::directive("nsid").unwrap().once);
}
