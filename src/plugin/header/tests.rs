use std::sync::Arc;
use std::sync::Mutex;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use super::*;
use crate::dns::reply::{encode_reply, to_wire};
use crate::dns::request::Proto;
use crate::dns::view::with_view;
use crate::plugin::test_chain::{
    self, Fixed, query, request_from, setup_block, setup_err, setup_in,
};

fn rule(flag: Flag, state: bool) -> Rule {
    Rule { flag, state }
}

/// Records the query's header flags (aa, ra, rd) and answers with a reply whose flags are
/// `reply_flags` (aa, ra, rd), in wire form when `wire_form`.
struct Echo {
    seen: Mutex<Option<(bool, bool, bool)>>,
    reply_flags: (bool, bool, bool),
    wire_form: bool,
}

impl Echo {
    fn new(reply_flags: (bool, bool, bool), wire_form: bool) -> Arc<Self> {
        Arc::new(Echo {
            seen: Mutex::new(None),
            reply_flags,
            wire_form,
        })
    }
    fn seen(&self) -> (bool, bool, bool) {
        self.seen.lock().unwrap().expect("called")
    }
}

#[async_trait]
impl Plugin for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        let m = &req.msg.metadata;
        *self.seen.lock().unwrap() =
            Some((m.authoritative, m.recursion_available, m.recursion_desired));
        let mut r = req.reply();
        (
            r.metadata.authoritative,
            r.metadata.recursion_available,
            r.metadata.recursion_desired,
        ) = self.reply_flags;
        if !self.wire_form {
            return Outcome::reply(r, "echo");
        }
        let bytes = to_wire(&r).unwrap();
        let l = wire::scan(&bytes).unwrap();
        wire::finalize_or_decode(req, bytes, &l, ResponseCode::NoError, "echo")
    }
    fn fast(&self, q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        let mut bytes = q.buf.to_vec();
        let mut f = wire::flags(&bytes) | wire::QR;
        for (on, bit) in [
            (self.reply_flags.0, wire::AA),
            (self.reply_flags.1, wire::RA),
            (self.reply_flags.2, wire::RD),
        ] {
            f = if on { f | bit } else { f & !bit };
        }
        wire::set_flags(&mut bytes, f);
        Some(FastReply {
            bytes,
            rcode: ResponseCode::NoError,
            plugin: "echo",
        })
    }
}

fn flags_of(m: &Message) -> (bool, bool, bool) {
    (
        m.metadata.authoritative,
        m.metadata.recursion_available,
        m.metadata.recursion_desired,
    )
}

/// CoreDNS's TestHeaderResponseRules and TestHeaderQueryRules, plus orders and conflicts:
/// (query rules, response rules, query flags, reply flags, flags seen, flags sent).
#[tokio::test]
async fn rules_table() {
    use Flag::*;
    type Flags = (bool, bool, bool);
    let none = (false, false, false);
    type Case = (Vec<Rule>, Vec<Rule>, bool, Flags, Flags, Flags);
    let cases: Vec<Case> = vec![
        // CoreDNS's response table: ra set, ra clear, rd set, aa set.
        (
            vec![],
            vec![rule(Ra, true)],
            false,
            none,
            none,
            (false, true, false),
        ),
        (
            vec![],
            vec![rule(Ra, false)],
            false,
            (false, true, false),
            none,
            none,
        ),
        (
            vec![],
            vec![rule(Rd, true)],
            false,
            none,
            none,
            (false, false, true),
        ),
        (
            vec![],
            vec![rule(Aa, true)],
            false,
            none,
            none,
            (true, false, false),
        ),
        // CoreDNS's query table: ra set, rd set, rd clear, aa set (seen by the next plugin).
        (
            vec![rule(Ra, true)],
            vec![],
            false,
            none,
            (false, true, false),
            none,
        ),
        (
            vec![rule(Rd, true)],
            vec![],
            false,
            none,
            (false, false, true),
            none,
        ),
        (
            vec![rule(Rd, false)],
            vec![],
            true,
            none,
            (false, false, false),
            none,
        ),
        (
            vec![rule(Aa, true)],
            vec![],
            false,
            none,
            (true, false, false),
            none,
        ),
        // The README's example: response set ra aa, response clear rd.
        (
            vec![],
            vec![rule(Ra, true), rule(Aa, true), rule(Rd, false)],
            true,
            (false, false, true),
            (false, false, true),
            (true, true, false),
        ),
        // The last rule for a flag wins.
        (
            vec![rule(Rd, true), rule(Rd, false)],
            vec![rule(Aa, true), rule(Aa, false)],
            true,
            (true, false, false),
            (false, false, false),
            (false, false, false),
        ),
    ];
    for (i, (q, r, rd, reply_flags, seen, sent)) in cases.into_iter().enumerate() {
        for wire_form in [false, true] {
            let h = Header {
                query: q.clone(),
                response: r.clone(),
            };
            let echo = Echo::new(reply_flags, wire_form);
            let rest: Vec<Arc<dyn Plugin>> = vec![echo.clone()];
            let mut m = query("example.org.", RecordType::A);
            m.metadata.recursion_desired = rd;
            let req = request_from(m, "10.0.0.1:40000", Proto::Udp);
            let out = test_chain::serve(&h, &req, &rest).await;
            assert_eq!(echo.seen(), seen, "case {i} wire={wire_form}");
            assert_eq!(
                req.msg.metadata.recursion_desired, rd,
                "the client's query is kept"
            );
            let bytes = match out {
                Outcome::Wire { bytes, .. } => bytes,
                other => encode_reply(&req, other.into_message(&req).unwrap()),
            };
            let m = Message::from_vec(&bytes).unwrap();
            assert_eq!(flags_of(&m), sent, "case {i} wire={wire_form}");
        }
    }
}

/// A return code without a reply is written by the server, untouched (as in CoreDNS, where
/// the server writes it without the plugin's writer); drops stay drops.
#[tokio::test]
async fn codes_and_drops_are_untouched() {
    let h = Header {
        query: vec![],
        response: vec![rule(Flag::Aa, true), rule(Flag::Ra, true)],
    };
    let req = request_from(
        query("example.org.", RecordType::A),
        "10.0.0.1:40000",
        Proto::Udp,
    );
    let out = h.serve(&req, Next::new(&[])).await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            ..
        }
    ));
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| Outcome::Drop { plugin: "acl" })];
    let out = test_chain::serve(&h, &req, &rest).await;
    assert!(matches!(out, Outcome::Drop { plugin: "acl" }));
}

#[test]
fn fast_path() {
    let q = query("example.org.", RecordType::A).to_vec().unwrap();
    // Response rules: the prepared bytes get them.
    let h = Header {
        query: vec![],
        response: vec![rule(Flag::Ra, true), rule(Flag::Rd, false)],
    };
    let rest: Vec<Arc<dyn Plugin>> = vec![Echo::new((true, false, true), false)];
    let reply = with_view(&q, Proto::Udp, |v| h.fast(v, FastNext::new(&rest)))
        .unwrap()
        .expect("answered fast");
    let m = Message::from_vec(&reply.bytes).unwrap();
    assert_eq!(flags_of(&m), (true, true, false));
    // Query rules: the full path.
    let h = Header {
        query: vec![rule(Flag::Rd, false)],
        response: vec![],
    };
    assert!(
        with_view(&q, Proto::Udp, |v| h.fast(v, FastNext::new(&rest)))
            .unwrap()
            .is_none()
    );
    // Short input never panics.
    let mut short = vec![0u8; 5];
    apply_wire(&mut short, &[rule(Flag::Aa, true)]);
    assert_eq!(short, [0; 5]);
}

#[test]
fn setup_table() {
    let e = |line: usize, msg: &str| format!("Corefile:{line} - Error during parsing: {msg}");
    // CoreDNS's TestSetupHeader table (errors in full), then more.
    let errors = [
        (
            "header {}",
            e(
                1,
                "Wrong argument count or unexpected line ending after '{}'",
            ),
        ),
        (
            "header {\n}",
            e(
                2,
                "Wrong argument count or unexpected line ending after '}'",
            ),
        ),
        (
            "header",
            e(
                1,
                "Wrong argument count or unexpected line ending after 'header'",
            ),
        ),
        (
            "header {\n    foo\n}",
            e(
                2,
                "setting up rule: invalid selector=foo should be query or response",
            ),
        ),
        (
            "header {\n    response set\n}",
            e(
                2,
                "setting up rule: invalid length for flags, at least one should be provided",
            ),
        ),
        (
            "header {\n    query foo\n}",
            e(
                2,
                "setting up rule: invalid length for flags, at least one should be provided",
            ),
        ),
        (
            "header {\n    query foo rd\n}",
            e(
                2,
                "setting up rule: unknown flag action=foo, should be set or clear",
            ),
        ),
        (
            "header {\n    query\n}",
            e(2, "setting up rule: no flag action provided"),
        ),
        (
            "header {\n    response set ad\n}",
            e(2, "setting up rule: unknown/unsupported flag=ad"),
        ),
        (
            "header {\n    response SET RA\n    response set tc\n}",
            e(3, "setting up rule: unknown/unsupported flag=tc"),
        ),
        (
            "header {\n    set ra\n}",
            e(
                2,
                "setting up rule: invalid selector=set should be query or response",
            ),
        ),
    ];
    for (input, want) in errors {
        assert_eq!(setup_err(setup, input), want, "{input}");
    }
    let ok = [
        (
            "header {\n    query set rd\n}",
            vec![rule(Flag::Rd, true)],
            vec![],
        ),
        (
            "header {\n    response set aa\n}",
            vec![],
            vec![rule(Flag::Aa, true)],
        ),
        (
            "header {\n    response set ra aa\n    query clear rd\n}",
            vec![rule(Flag::Rd, false)],
            vec![rule(Flag::Ra, true), rule(Flag::Aa, true)],
        ),
        (
            "header {\n    RESPONSE Clear RA\n}",
            vec![],
            vec![rule(Flag::Ra, false)],
        ),
    ];
    for (input, q, r) in ok {
        let p = setup_in(setup, input, &["."]).unwrap().unwrap();
        assert_eq!(p.name(), "header");
        // The handler's rules, seen through what it does: compare with a Header built by hand.
        let h = Header {
            query: q,
            response: r,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for rd in [false, true] {
            let run = |p: &dyn Plugin| {
                let echo = Echo::new((false, false, rd), false);
                let rest: Vec<Arc<dyn Plugin>> = vec![echo.clone()];
                let mut m = query("example.org.", RecordType::A);
                m.metadata.recursion_desired = rd;
                let req = request_from(m, "10.0.0.1:40000", Proto::Udp);
                let out = rt.block_on(p.serve(&req, Next::new(&rest)));
                let m = out.into_message(&req).unwrap();
                (echo.seen(), flags_of(&m))
            };
            assert_eq!(run(p.as_ref()), run(&h), "{input}");
        }
    }
    // Only the block's first `header` is read.
    let hs = setup_block(
        setup,
        &["."],
        "header {\n    response set ra\n}\nheader {\n    bogus\n}",
    )
    .unwrap();
    assert_eq!(hs.len(), 1);
}

#[test]
fn directive_is_registered_in_coredns_order() {
    let at = |n| crate::plugin::order_of(n).unwrap();
    assert!(
        at("cache") < at("header") && at("rewrite") < at("header") && at("header") < at("minimal"),
        "CoreDNS plugin.cfg: rewrite ... cache, header ... minimal"
    );
    assert!(!crate::plugin::directive("header").unwrap().once);
}
