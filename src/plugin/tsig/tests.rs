use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::dns::tsig::{self, Algorithm, Client, Key, TsigError};
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::{Fixed, query, setup_err, setup_in, with_edns};
use crate::server::query::{self as server, Prepared, Reply};
use crate::server::router::{Block, Router};

const SECRET: &str = "NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk=";
const KEY: &str = "xfr.example.org.";

fn key(alg: Option<Algorithm>) -> Key {
    Key::new(KEY, alg, SECRET).unwrap()
}

// ---- setup ----

fn parsed(text: &str, zones: &[&str]) -> Tsig {
    let b = crate::plugin::test_chain::block(zones);
    let mut config = BlockConfig::default();
    let ctx = crate::plugin::SetupCtx {
        block: &b,
        config: &mut config,
    };
    setup::parse(&mut crate::plugin::test_chain::dispenser(text), &ctx).unwrap()
}

#[test]
fn setup_as_coredns_parses_it() {
    let secrets = "secret name.key. dGVzdC1rZXk=\n secret Name2.Key dGVzdC1rZXktMg==\n";
    let t = parsed(&format!("tsig {{\n {secrets}}}"), &["."]);
    assert_eq!(t.zones, ["."]);
    assert_eq!(t.require, Require::default(), "nothing required by default");
    assert_eq!(t.keys.len(), 2);
    assert!(t.keys.get("name.key.").is_some() && t.keys.get("name2.key.").is_some());
    let t = parsed(&format!("tsig example.com {{\n {secrets}}}"), &["."]);
    assert_eq!(t.zones, ["example.com."]);
    let t = parsed(
        "tsig {\n secret a. AAAA\n}",
        &["example.org.", "example.net."],
    );
    assert_eq!(t.zones, ["example.org.", "example.net."]);
    let t = parsed(&format!("tsig {{\n {secrets} require all\n}}"), &["."]);
    assert!(t.require.all_types && t.require.types.is_empty());
    let t = parsed(&format!("tsig {{\n {secrets} require none\n}}"), &["."]);
    assert_eq!(t.require, Require::default());
    let t = parsed(&format!("tsig {{\n {secrets} require A AAAA\n}}"), &["."]);
    assert_eq!(t.require.types, [1, 28]);
    // A later `require` replaces the types.
    let t = parsed("tsig {\n require A\n require AXFR IXFR\n}", &["."]);
    assert_eq!(t.require.types, [252, 251]);
    let t = parsed("tsig {\n require_opcode UPDATE NOTIFY\n}", &["."]);
    assert_eq!(t.require.opcodes, [5, 4]);
    let t = parsed("tsig {\n require_opcode all\n}", &["."]);
    assert!(t.require.all_opcodes);
    let t = parsed("tsig {\n require AXFR\n require_opcode UPDATE\n}", &["."]);
    assert_eq!(
        (t.require.types.as_slice(), t.require.opcodes.as_slice()),
        (&[252u16][..], &[5u8][..])
    );
    assert!(t.require.requires(252, 0) && t.require.requires(1, 5) && !t.require.requires(1, 0));
    // No block at all: no keys, nothing required.
    let t = parsed("tsig", &["."]);
    assert!(t.keys.is_empty());
}

#[test]
fn setup_errors() {
    let s = super::setup;
    assert_eq!(
        setup_err(s, "tsig {\n blah\n}"),
        "Corefile:2 - Error during parsing: unknown property 'blah'"
    );
    assert_eq!(
        setup_err(s, "tsig {\n secret name. too many parameters\n}"),
        "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'secret'"
    );
    // A key without its name: the key is not quoted back.
    assert_eq!(
        setup_err(
            s,
            "tsig {\n secret NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk=\n}"
        ),
        "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'secret'"
    );
    assert_eq!(
        setup_err(
            s,
            "tsig {\n NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk=\n}"
        ),
        "Corefile:2 - Error during parsing: unknown property (not shown: it may be a secret)"
    );
    assert_eq!(
        setup_err(s, "tsig {\n require\n}"),
        "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'require'"
    );
    assert_eq!(
        setup_err(s, "tsig {\n require invalid-qtype\n}"),
        "Corefile:2 - Error during parsing: unknown query type 'invalid-qtype'"
    );
    assert_eq!(
        setup_err(s, "tsig {\n require a\n}"),
        "Corefile:2 - Error during parsing: unknown query type 'a'"
    );
    assert_eq!(
        setup_err(s, "tsig {\n require_opcode\n}"),
        "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'require_opcode'"
    );
    assert_eq!(
        setup_err(s, "tsig {\n require_opcode INVALID\n}"),
        "Corefile:2 - Error during parsing: unknown opcode 'INVALID'"
    );
    assert_eq!(
        setup_err(s, "tsig {\n secret a. AAAA\n secret A AAAA\n}"),
        "Corefile:3 - Error during parsing: key \"a.\" redefined"
    );
    // The secret is never quoted back.
    let e = setup_err(s, "tsig {\n secret a. not-base64!\n}");
    assert_eq!(
        e,
        "Corefile:2 - Error during parsing: invalid secret for key \"a.\": not base64"
    );
    assert_eq!(
        setup_err(s, "tsig {\n secrets /nonexistent/tsig.keys\n}"),
        "Corefile:2 - Error during parsing: open /nonexistent/tsig.keys: no such file or directory"
    );
}

#[test]
fn setup_reads_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tsig.keys");
    std::fs::write(
        &file,
        "key \"name.key.\" {\n\tsecret \"dGVzdC1rZXk=\";\n};\nkey \"sha512.key\" {\n\talgorithm hmac-sha512;\n\tsecret \"dGVzdC1rZXktMg==\";\n};\n",
    )
    .unwrap();
    let f = file.display();
    let t = parsed(&format!("tsig {{\n secrets {f}\n}}"), &["."]);
    assert_eq!(t.keys.len(), 2);
    assert_eq!(t.keys.get("name.key.").unwrap().algorithm(), None);
    assert_eq!(
        t.keys.get("sha512.key.").unwrap().algorithm(),
        Some(Algorithm::HmacSha512)
    );
    // A key in the file and in a `secret` line.
    assert_eq!(
        setup_err(
            super::setup,
            &format!("tsig {{\n secret name.key. AAAA\n secrets {f}\n}}")
        ),
        "Corefile:3 - Error during parsing: key \"name.key.\" redefined"
    );
    std::fs::write(
        &file,
        "key \"a\" {\n algorithm hmac-md5;\n secret \"AAAA\";\n};\n",
    )
    .unwrap();
    assert_eq!(
        setup_err(super::setup, &format!("tsig {{\n secrets {f}\n}}")),
        "Corefile:2 - Error during parsing: unknown algorithm \"hmac-md5\" for key \"a.\""
    );
    std::fs::write(&file, "key \"a\" {\n secret \"c2VjcmV0!\";\n};\n").unwrap();
    let e = setup_err(super::setup, &format!("tsig {{\n secrets {f}\n}}"));
    assert!(!e.contains("c2VjcmV0"), "{e}");
    std::fs::write(&file, "zone \"a\" {\n};\n").unwrap();
    assert_eq!(
        setup_err(super::setup, &format!("tsig {{\n secrets {f}\n}}")),
        "Corefile:2 - Error during parsing: unexpected token \"zone\""
    );
}

#[test]
fn directive_sits_before_cache() {
    let order = |n| crate::plugin::order_of(n).unwrap();
    assert_eq!(order("tsig"), order("loadbalance") + 1);
    assert_eq!(order("tsig") + 1, order("cache"));
    assert!(crate::plugin::directive("tsig").unwrap().once);
}

// ---- through the server: prepare, the fast path, the chain, the reply's encoding ----

/// The answer: one A record per query, the chain's last plugin.
fn backend() -> Arc<Fixed> {
    Fixed::new(|req| {
        assert!(
            !req.is_tsig_signed(),
            "the chain after tsig sees no TSIG record"
        );
        assert!(req.wire.is_none());
        let mut m = req.reply();
        m.metadata.authoritative = true;
        let n = if req.name.starts_with("big.") { 80 } else { 1 };
        for i in 0..n {
            m.answers.push(Record::from_rdata(
                req.qname().clone(),
                300,
                RData::A(A::new(192, 0, 2, i as u8)),
            ));
        }
        if req.name.starts_with("fail.") {
            return Outcome::code(ResponseCode::ServFail, "backend");
        }
        Outcome::reply(m, "backend")
    })
}

struct Server {
    router: Arc<Router>,
    rt: tokio::runtime::Runtime,
}

/// A `example.org` block: `tsig` (as `text`), `cache`, the backend; cookies on.
fn server(text: &str, backend: Arc<Fixed>) -> Server {
    let tsig = setup_in(super::setup, text, &["example.org."])
        .unwrap()
        .unwrap();
    let cache = setup_in(crate::plugin::cache::setup, "cache", &["example.org."])
        .unwrap()
        .unwrap();
    let mut r = Router::new(Arc::from("dns://:53"), None);
    let cookies = crate::dns::cookie::Cookies::new([1; 16], &[], false);
    r.insert(
        "example.org.",
        Arc::new(Block {
            chain: vec![tsig, cache, backend],
            config: BlockConfig {
                cookie: crate::plugin::config::CookiePolicy::On(Arc::new(cookies)),
                ..BlockConfig::default()
            },
            zones: vec!["example.org.".into()],
            file: Arc::from("Corefile"),
            line: 1,
        }),
    );
    Server {
        router: Arc::new(r),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    }
}

const TSIG_BLOCK: &str = "tsig {\n secret xfr.example.org. NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk=\n require AXFR IXFR MX\n}";

/// What the server sends back for `buf`, and whether the fast path gave it.
fn ask(s: &Server, buf: &[u8], proto: Proto) -> (Vec<u8>, bool) {
    let src: SocketAddr = "192.0.2.77:5353".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:53".parse().unwrap();
    match server::prepare(&s.router, buf, src, local, proto) {
        Prepared::Done(bytes) => (bytes.expect("a reply"), true),
        Prepared::Query(req, block) => {
            assert_eq!(
                req.wire.is_some(),
                req.is_tsig_signed(),
                "the bytes are kept exactly for signed queries"
            );
            if req.is_tsig_signed() {
                assert_eq!(req.wire.as_deref(), Some(buf));
            }
            match s
                .rt
                .block_on(server::run_stream(req, block))
                .expect("a reply")
            {
                Reply::One(b) => (b, false),
                Reply::Stream(_) => panic!("a stream"),
            }
        }
    }
}

/// A query for `name`/`qtype` with EDNS and a client cookie, in wire form.
fn wire_query(name: &str, qtype: RecordType, cookie: bool) -> Vec<u8> {
    let mut m = with_edns(query(name, qtype), 1232, false);
    if cookie {
        m.edns
            .as_mut()
            .unwrap()
            .options_mut()
            .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
    }
    m.to_vec().unwrap()
}

fn signed(name: &str, qtype: RecordType, k: &Key, alg: Algorithm, at: u64) -> (Vec<u8>, Client) {
    let mut q = wire_query(name, qtype, true);
    let c = Client::sign_request(k, alg, &mut q, at);
    (q, c)
}

fn rcode(b: &[u8]) -> ResponseCode {
    let m = Message::from_vec(b).unwrap();
    m.metadata.response_code
}

#[test]
fn signed_query_gets_a_signed_reply_with_its_cookie() {
    let s = server(TSIG_BLOCK, backend());
    for alg in Algorithm::ALL {
        for proto in [Proto::Udp, Proto::Tcp] {
            let (q, mut c) = signed(
                "www.example.org.",
                RecordType::A,
                &key(None),
                alg,
                tsig::unix_now(),
            );
            let (r, fast) = ask(&s, &q, proto);
            assert!(!fast, "a signed query never takes the fast path");
            let rec = c.verify_reply(&r).unwrap();
            assert_eq!(rec.mac.len(), alg.output_len());
            let m = Message::from_vec(&r).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(m.metadata.id, 4242);
            assert!(m.metadata.authoritative);
            assert_eq!(m.answers.len(), 1);
            // The server cookie went in before signing.
            let e: &Edns = m.edns.as_ref().unwrap();
            let cookie = e.options().as_ref().iter().find_map(|(_, o)| match o {
                EdnsOption::Unknown(10, d) => Some(d.clone()),
                _ => None,
            });
            assert_eq!(cookie.map(|c| c.len()), Some(24), "{alg} {proto:?}");
        }
    }
    // The second time the cache answers; still on the full path, still signed.
    let (q, mut c) = signed(
        "www.example.org.",
        RecordType::A,
        &key(None),
        Algorithm::HmacSha256,
        tsig::unix_now(),
    );
    let (r, fast) = ask(&s, &q, Proto::Udp);
    assert!(!fast);
    c.verify_reply(&r).unwrap();
}

#[test]
fn bad_requests_get_notauth_with_the_tsig_error() {
    let s = server(TSIG_BLOCK, backend());
    let now = tsig::unix_now();
    // Unknown key.
    let other = Key::new("other.key.", None, SECRET).unwrap();
    let (q, mut c) = signed(
        "www.example.org.",
        RecordType::A,
        &other,
        Algorithm::HmacSha256,
        now,
    );
    let (r, _) = ask(&s, &q, Proto::Udp);
    assert_eq!(rcode(&r), ResponseCode::NotAuth);
    assert_eq!(c.verify_reply(&r), Err(TsigError::BadKey));
    let rec = tsig::find_tsig(&r).unwrap().unwrap();
    assert_eq!((rec.error, rec.mac.len()), (tsig::BADKEY, 0));
    // Wrong secret.
    let wrong = Key::new(KEY, None, "AAAAAAAAAAAAAAAAAAAAAA==").unwrap();
    let (q, mut c) = signed(
        "www.example.org.",
        RecordType::A,
        &wrong,
        Algorithm::HmacSha256,
        now,
    );
    let (r, _) = ask(&s, &q, Proto::Udp);
    assert_eq!(rcode(&r), ResponseCode::NotAuth);
    assert_eq!(c.verify_reply(&r), Err(TsigError::BadSig));
    // Clock skew: signed, so the client can check it and read the server's time.
    let (q, mut c) = signed(
        "www.example.org.",
        RecordType::A,
        &key(None),
        Algorithm::HmacSha256,
        now - 1000,
    );
    let (r, _) = ask(&s, &q, Proto::Tcp);
    assert_eq!(rcode(&r), ResponseCode::NotAuth);
    assert_eq!(c.verify_reply(&r), Err(TsigError::BadTime));
    let rec = tsig::find_tsig(&r).unwrap().unwrap();
    assert_eq!(rec.time_signed, now - 1000);
    assert_eq!(rec.other.len(), 6);
    // A MAC shorter than RFC 8945 allows: FORMERR, no TSIG.
    let (mut q, _) = signed(
        "www.example.org.",
        RecordType::A,
        &key(None),
        Algorithm::HmacSha256,
        now,
    );
    let rec = tsig::find_tsig(&q).unwrap().unwrap();
    let rdata = rec.start + rec.key_name.len() + 10;
    let size_at = rdata + rec.algorithm.len() + 8;
    q.drain(size_at + 2 + 8..size_at + 2 + 32);
    q[size_at..size_at + 2].copy_from_slice(&8u16.to_be_bytes());
    let rdlen = (q.len() - rdata) as u16;
    q[rdata - 2..rdata].copy_from_slice(&rdlen.to_be_bytes());
    let (r, _) = ask(&s, &q, Proto::Udp);
    assert_eq!(rcode(&r), ResponseCode::FormErr);
    assert!(tsig::find_tsig(&r).unwrap().is_none());
}

#[test]
fn required_types_are_refused_unsigned_others_pass() {
    let b = backend();
    let s = server(TSIG_BLOCK, b.clone());
    // Required: REFUSED every time, never from the cache on the fast path.
    for _ in 0..2 {
        for qtype in [RecordType::MX, RecordType::AXFR, RecordType::IXFR] {
            let (r, fast) = ask(
                &s,
                &wire_query("www.example.org.", qtype, false),
                Proto::Tcp,
            );
            assert!(!fast);
            assert_eq!(rcode(&r), ResponseCode::Refused, "{qtype}");
        }
    }
    assert_eq!(b.calls(), 0);
    // Signed, the same types are answered.
    let (q, mut c) = signed(
        "www.example.org.",
        RecordType::MX,
        &key(None),
        Algorithm::HmacSha1,
        tsig::unix_now(),
    );
    let (r, _) = ask(&s, &q, Proto::Udp);
    assert_eq!(rcode(&r), ResponseCode::NoError);
    c.verify_reply(&r).unwrap();
    // Not required: answered unsigned; the second time from the cache on the fast path.
    let q = wire_query("plain.example.org.", RecordType::A, false);
    let (r, fast) = ask(&s, &q, Proto::Udp);
    assert!(!fast);
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(tsig::find_tsig(&r).unwrap().is_none());
    let (r2, fast) = ask(&s, &q, Proto::Udp);
    assert!(fast, "unsigned, not required: the fast path may answer");
    assert_eq!(r2, r);
}

#[test]
fn require_all_and_zones() {
    let s = server(
        "tsig sub.example.org {\n secret xfr.example.org. NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk=\n require all\n}",
        backend(),
    );
    let (r, fast) = ask(
        &s,
        &wire_query("a.sub.example.org.", RecordType::A, false),
        Proto::Udp,
    );
    assert!(!fast);
    assert_eq!(rcode(&r), ResponseCode::Refused);
    // Outside the plugin's zones: answered, and a signed query passes on unverified, as in
    // CoreDNS (its reply is not signed).
    let (r, _) = ask(
        &s,
        &wire_query("www.example.org.", RecordType::A, false),
        Proto::Udp,
    );
    assert_eq!(rcode(&r), ResponseCode::NoError);
    let other = Key::new("other.", None, SECRET).unwrap();
    let (q, _) = signed(
        "www.example.org.",
        RecordType::A,
        &other,
        Algorithm::HmacSha256,
        0,
    );
    let f = Fixed::new(|req| Outcome::reply(req.reply(), "fixed"));
    let s2 = server("tsig sub.example.org {\n secret a. AAAA\n}", f);
    let (r, _) = ask(&s2, &q, Proto::Udp);
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(tsig::find_tsig(&r).unwrap().is_none());
}

#[test]
fn errors_and_truncated_replies_are_signed() {
    let s = server(TSIG_BLOCK, backend());
    // SERVFAIL from the chain: an empty reply, signed.
    let (q, mut c) = signed(
        "fail.example.org.",
        RecordType::A,
        &key(None),
        Algorithm::HmacSha256,
        tsig::unix_now(),
    );
    let (r, _) = ask(&s, &q, Proto::Udp);
    assert_eq!(rcode(&r), ResponseCode::ServFail);
    c.verify_reply(&r).unwrap();
    // 80 A records do not fit 1232 bytes: truncated, with room left for the cookie and the
    // TSIG record, and signed.
    let (q, mut c) = signed(
        "big.example.org.",
        RecordType::A,
        &key(None),
        Algorithm::HmacSha512,
        tsig::unix_now(),
    );
    let (r, _) = ask(&s, &q, Proto::Udp);
    assert!(r.len() <= 1232, "{}", r.len());
    let m = Message::from_vec(&r).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    c.verify_reply(&r).unwrap();
    // Over TCP it all comes, signed.
    let (q, mut c) = signed(
        "big.example.org.",
        RecordType::A,
        &key(None),
        Algorithm::HmacSha512,
        tsig::unix_now(),
    );
    let (r, _) = ask(&s, &q, Proto::Tcp);
    assert_eq!(Message::from_vec(&r).unwrap().answers.len(), 80);
    c.verify_reply(&r).unwrap();
}

#[test]
fn transfer_messages_are_signed_in_order() {
    let transfer = Fixed::new(|req| {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let base = req.reply();
        tokio::spawn(async move {
            for i in 0..5u8 {
                let mut m = base.clone();
                m.answers.push(Record::from_rdata(
                    Name::from_ascii("www.example.org.").unwrap(),
                    300,
                    RData::A(A::new(192, 0, 2, i)),
                ));
                if tx.send(m.to_vec().unwrap()).await.is_err() {
                    return;
                }
            }
        });
        Outcome::Transfer {
            messages: rx,
            plugin: "transfer",
        }
    });
    let s = server(TSIG_BLOCK, transfer);
    let (q, mut c) = signed(
        "example.org.",
        RecordType::AXFR,
        &key(None),
        Algorithm::HmacSha256,
        tsig::unix_now(),
    );
    let src: SocketAddr = "192.0.2.77:5353".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:53".parse().unwrap();
    let Prepared::Query(req, block) = server::prepare(&s.router, &q, src, local, Proto::Tcp) else {
        panic!("full path");
    };
    let messages = s.rt.block_on(async {
        let Some(Reply::Stream(mut rx)) = server::run_stream(req, block).await else {
            panic!("a stream");
        };
        let mut all = Vec::new();
        while let Some(m) = rx.recv().await {
            all.push(m);
        }
        all
    });
    assert_eq!(messages.len(), 5);
    for (i, m) in messages.iter().enumerate() {
        let rec = c
            .verify_reply(m)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(rec.original_id, 4242);
        let msg = Message::from_vec(m).unwrap();
        assert_eq!(msg.answers[0].data, RData::A(A::new(192, 0, 2, i as u8)));
    }
    // Over UDP a transfer is a signed SERVFAIL.
    let (q, mut c) = signed(
        "example.org.",
        RecordType::AXFR,
        &key(None),
        Algorithm::HmacSha256,
        tsig::unix_now(),
    );
    let (r, _) = ask(&s, &q, Proto::Udp);
    assert_eq!(rcode(&r), ResponseCode::ServFail);
    c.verify_reply(&r).unwrap();
    // Out of order they do not verify: each covers the prior MAC.
    let (_, mut c) = signed(
        "example.org.",
        RecordType::AXFR,
        &key(None),
        Algorithm::HmacSha256,
        tsig::unix_now(),
    );
    assert!(c.verify_reply(&messages[1]).is_err());
}

#[test]
fn fast_path_never_sees_a_signed_query() {
    let (q, _) = signed(
        "www.example.org.",
        RecordType::A,
        &key(None),
        Algorithm::HmacSha256,
        0,
    );
    assert!(crate::dns::view::with_view(&q, Proto::Udp, |_| ()).is_none());
    // Without EDNS too (the TSIG record alone in the additional section).
    let mut q = query("www.example.org.", RecordType::A).to_vec().unwrap();
    Client::sign_request(&key(None), Algorithm::HmacSha256, &mut q, 0);
    assert!(crate::dns::view::with_view(&q, Proto::Udp, |_| ()).is_none());
    // An unsigned query of a required type has the shape; tsig sends it down the full path.
    let t = parsed(TSIG_BLOCK, &["example.org."]);
    let q = wire_query("www.example.org.", RecordType::MX, false);
    let got = crate::dns::view::with_view(&q, Proto::Udp, |v| t.fast(v, FastNext::new(&[])));
    assert!(matches!(got, Some(None)));
}
