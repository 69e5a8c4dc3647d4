use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::dns::view::with_view;
use crate::plugin::test_chain::{
    self, Fixed, query, request_from, setup_block, setup_err, setup_in, with_edns,
};
use crate::plugin::whoami::Whoami;

/// Records the UDP size of the request it gets, then answers with `answers` A records.
struct Seen {
    size: AtomicU16,
    answers: u8,
}

impl Seen {
    fn new(answers: u8) -> Arc<Self> {
        Arc::new(Seen {
            size: AtomicU16::new(0),
            answers,
        })
    }
    fn size(&self) -> u16 {
        self.size.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Plugin for Seen {
    fn name(&self) -> &'static str {
        "seen"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        self.size.store(
            req.msg.edns.as_ref().map_or(0, |e| e.max_payload()),
            Ordering::SeqCst,
        );
        let mut m = req.reply();
        for i in 0..self.answers {
            m.answers.push(Record::from_rdata(
                req.qname().clone(),
                60,
                RData::A(A::new(192, 0, 2, i)),
            ));
        }
        Outcome::reply(m, "seen")
    }
    /// Answers the view with the query's own bytes (QR set): its OPT record is the client's.
    fn fast(&self, q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        self.size
            .store(q.edns.map_or(0, |e| e.udp_size), Ordering::SeqCst);
        let mut bytes = q.buf.to_vec();
        let f = wire::flags(&bytes) | wire::QR;
        wire::set_flags(&mut bytes, f);
        Some(FastReply {
            bytes,
            rcode: ResponseCode::NoError,
            plugin: "seen",
        })
    }
}

fn request(edns: Option<u16>, proto: Proto) -> Request {
    let mut m = query("example.org.", RecordType::A);
    if let Some(size) = edns {
        m = with_edns(m, size, false);
    }
    request_from(m, "10.0.0.1:40000", proto)
}

/// The reply as the server sends it, and its OPT record's UDP size.
fn sent(req: &Request, out: Outcome) -> (Message, Option<u16>) {
    let bytes = match out {
        Outcome::Wire { bytes, .. } => wire::fit(req, bytes),
        other => encode_reply(req, other.into_message(req).unwrap()),
    };
    let m = Message::from_vec(&bytes).unwrap();
    let size = m.edns.as_ref().map(|e| e.max_payload());
    (m, size)
}

/// CoreDNS's TestBufsize (SIZE 1024, whoami next): a larger size is lowered, a smaller one
/// kept, and a query without EDNS gets none; then the reply's advertised size.
#[tokio::test]
async fn coredns_table() {
    // (the query's size, what the next plugin sees, the reply's advertised size)
    let cases = [
        (Some(1024 + 128), Some(1024), Some(1024)),
        (Some(1024 - 128), Some(1024 - 128), Some(1024)),
        (Some(512), Some(512), Some(1024)),
        (Some(4096), Some(1024), Some(1024)),
        (None, None, None),
    ];
    for (asked, seen_size, advertised) in cases {
        let b = Bufsize::new(1024);
        let seen = Seen::new(0);
        let rest: Vec<Arc<dyn Plugin>> = vec![seen.clone()];
        let req = request(asked, Proto::Udp);
        let out = test_chain::serve(&b, &req, &rest).await;
        assert_eq!(seen.size(), seen_size.unwrap_or(0), "{asked:?}");
        let (m, size) = sent(&req, out);
        assert_eq!(size, advertised, "{asked:?}");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        // The client's own request is untouched.
        assert_eq!(req.msg.edns.as_ref().map(|e| e.max_payload()), asked);
    }
    // whoami behind it, as in CoreDNS's test: answered, the size lowered.
    let b = Bufsize::new(1024);
    let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(Whoami)];
    let req = request(Some(1152), Proto::Udp);
    let out = test_chain::serve(&b, &req, &rest).await;
    assert_eq!(out.plugin(), "whoami");
    let (m, size) = sent(&req, out);
    assert_eq!(m.additionals.len(), 2);
    assert_eq!(size, Some(1024));
}

/// A SIZE at or above exdns's own 1232 changes nothing in the reply: the outcome passes as it
/// came (exdns never sends UDP replies above 1232 bytes anyway).
#[tokio::test]
async fn sizes_from_1232_up_leave_the_reply_alone() {
    for size in [1232, 1400, 4096] {
        let b = Bufsize::new(size);
        let seen = Seen::new(0);
        let rest: Vec<Arc<dyn Plugin>> = vec![seen.clone()];
        let req = request(Some(4096), Proto::Udp);
        let out = test_chain::serve(&b, &req, &rest).await;
        assert!(matches!(out, Outcome::Reply { .. }), "{size}");
        assert_eq!(seen.size(), size);
        assert_eq!(sent(&req, out).1, Some(1232));
    }
}

/// Replies larger than SIZE are truncated over UDP (TC, sections emptied, OPT kept), not over
/// TCP; replies in wire form too.
#[tokio::test]
async fn big_replies_are_truncated_at_size_over_udp() {
    // 40 A records: 12 + 17 + 40 * 16 + 11 = 680 bytes.
    // (SIZE, client size, proto, truncated)
    let cases = [
        (600, 4096, Proto::Udp, true),
        (700, 4096, Proto::Udp, false),
        (600, 4096, Proto::Tcp, false),
        (600, 512, Proto::Udp, true),
        (1232, 4096, Proto::Udp, false),
    ];
    for (size, client, proto, truncated) in cases {
        for wire_form in [false, true] {
            let b = Bufsize::new(size);
            let rest: Vec<Arc<dyn Plugin>> = if wire_form {
                vec![Fixed::new(|req| {
                    let mut m = req.reply();
                    for i in 0..40 {
                        m.answers.push(Record::from_rdata(
                            req.qname().clone(),
                            60,
                            RData::A(A::new(192, 0, 2, i)),
                        ));
                    }
                    let mut e = hickory_proto::op::Edns::new();
                    e.set_max_payload(1232);
                    m.edns = Some(e);
                    let bytes = crate::dns::reply::to_wire(&m).unwrap();
                    let l = wire::scan(&bytes).unwrap();
                    wire::finalize_or_decode(req, bytes, &l, ResponseCode::NoError, "fixed")
                })]
            } else {
                vec![Seen::new(40)]
            };
            let req = request(Some(client), proto);
            let out = test_chain::serve(&b, &req, &rest).await;
            let (m, adv) = sent(&req, out);
            let case = format!("{size} {client} {proto:?} wire={wire_form}");
            assert_eq!(m.metadata.truncation, truncated, "{case}");
            assert_eq!(m.answers.len(), if truncated { 0 } else { 40 }, "{case}");
            assert_eq!(adv, Some(size.min(1232)), "{case}");
        }
    }
}

#[tokio::test]
async fn return_codes_and_drops() {
    let b = Bufsize::new(800);
    let req = request(Some(4096), Proto::Udp);
    let out = b.serve(&req, Next::new(&[])).await;
    assert_eq!(out.rcode(), Some(ResponseCode::ServFail));
    let (m, adv) = sent(&req, out);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(adv, Some(800));
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| Outcome::Drop { plugin: "acl" })];
    let out = test_chain::serve(&b, &req, &rest).await;
    assert!(matches!(out, Outcome::Drop { plugin: "acl" }));
    let rest: Vec<Arc<dyn Plugin>> =
        vec![Fixed::new(|_| Outcome::code(ResponseCode::Refused, "acl"))];
    let out = test_chain::serve(&b, &req, &rest).await;
    assert_eq!(out.plugin(), "acl");
    assert_eq!(out.rcode(), Some(ResponseCode::Refused));
}

/// On the fast path the rest of the chain sees the lowered size and the reply advertises SIZE.
#[test]
fn fast_path_sees_the_lowered_size() {
    // (SIZE, the query's EDNS size, seen, advertised)
    let cases = [
        (1000, Some(4096), 1000, Some(1000)),
        (1000, Some(800), 800, Some(1000)),
        (4096, Some(4096), 4096, Some(4096)),
        (1000, None, 0, None),
    ];
    for (size, asked, seen_size, advertised) in cases {
        let b = Bufsize::new(size);
        let seen = Seen::new(0);
        let rest: Vec<Arc<dyn Plugin>> = vec![seen.clone()];
        let mut m = query("example.org.", RecordType::A);
        if let Some(s) = asked {
            m = with_edns(m, s, false);
        }
        let buf = m.to_vec().unwrap();
        let reply = with_view(&buf, Proto::Udp, |q| b.fast(q, FastNext::new(&rest)))
            .unwrap()
            .expect("answered fast");
        assert_eq!(seen.size(), seen_size, "{size} {asked:?}");
        let m = Message::from_vec(&reply.bytes).unwrap();
        // `Seen` echoes the query's OPT: 4096 stays when SIZE is above 1232 (not patched).
        assert_eq!(
            m.edns.map(|e| e.max_payload()),
            advertised,
            "{size} {asked:?}"
        );
    }
}

#[test]
fn setup_table() {
    // CoreDNS's TestSetupBufsize table and the bounds: (input, SIZE or the error).
    let arg_err = |after: &str| {
        format!(
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '{after}'"
        )
    };
    let cases: Vec<(&str, Result<u16, String>)> = vec![
        ("bufsize", Ok(1232)),
        ("bufsize \"1220\"", Ok(1220)),
        ("bufsize 512", Ok(512)),
        ("bufsize 4096", Ok(4096)),
        ("bufsize +1100", Ok(1100)),
        ("bufsize \"5000\"", Err(arg_err("5000"))),
        ("bufsize \"512 512\"", Err(arg_err("512 512"))),
        ("bufsize 512 512", Err(arg_err("512"))),
        ("bufsize \"511\"", Err(arg_err("511"))),
        ("bufsize 4097", Err(arg_err("4097"))),
        ("bufsize -1", Err(arg_err("-1"))),
        (
            "bufsize 99999999999999999999",
            Err(arg_err("99999999999999999999")),
        ),
        ("bufsize \"abc123\"", Err(arg_err("abc123"))),
        // CoreDNS's parse returns before it reads a block.
        ("bufsize 1100 {\n    foo\n}", Ok(1100)),
    ];
    for (input, want) in cases {
        match want {
            Ok(size) => {
                let p = setup_in(setup, input, &["."]).unwrap().unwrap();
                assert_eq!(p.name(), "bufsize");
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let seen = Seen::new(0);
                let rest: Vec<Arc<dyn Plugin>> = vec![seen.clone()];
                let req = request(Some(4096), Proto::Udp);
                rt.block_on(p.serve(&req, Next::new(&rest)));
                assert_eq!(seen.size(), size, "{input}");
            }
            Err(e) => assert_eq!(setup_err(setup, input), e, "{input}"),
        }
    }
}

/// As CoreDNS, only a block's first `bufsize` line is read: later ones add nothing and are not
/// even checked.
#[tokio::test]
async fn only_the_first_line_counts() {
    for text in ["bufsize 1000\nbufsize 600", "bufsize 1000\nbufsize abc"] {
        let handlers = setup_block(setup, &["."], text).unwrap();
        assert_eq!(handlers.len(), 1, "{text}");
        let seen = Seen::new(0);
        let rest: Vec<Arc<dyn Plugin>> = vec![seen.clone()];
        let req = request(Some(4096), Proto::Udp);
        handlers[0].serve(&req, Next::new(&rest)).await;
        assert_eq!(seen.size(), 1000, "{text}");
    }
}

#[test]
fn directive_is_registered_in_coredns_order() {
    let at = |n| crate::plugin::order_of(n).unwrap();
    assert!(
        at("nsid") + 1 == at("bufsize") && at("bufsize") + 1 == at("bind"),
        "CoreDNS plugin.cfg: nsid, bufsize, bind"
    );
    assert!(!crate::plugin::directive("bufsize").unwrap().once);
}
