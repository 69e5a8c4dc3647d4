use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::dns::view::with_view;
use crate::plugin::test_chain::{
    self, NextMarker, query, reply_of, request_from, setup_block, setup_err, setup_in,
};

fn req(name: &str, qtype: RecordType) -> Request {
    request_from(query(name, qtype), "10.0.0.1:40000", Proto::Udp)
}

/// A record as `OWNER TYPE RDATA` (owner case kept), with its TTL and class checked.
fn text(r: &Record) -> String {
    assert_eq!(r.ttl, TTL, "{r}");
    assert_eq!(r.dns_class, DNSClass::IN, "{r}");
    let data = match &r.data {
        RData::SOA(s) => format!(
            "{} {} {} {} {} {} {}",
            s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
        ),
        other => other.to_string(),
    };
    format!("{} {} {data}", r.name, r.record_type())
}

const SOA_DATA: &str = "localhost. root.localhost. 1 0 0 0 604800";

/// CoreDNS's TestLocal table, with the full records, then the rest of its rules.
#[tokio::test]
async fn answers_table() {
    let soa = |owner: &str| format!("{owner} SOA {SOA_DATA}");
    use RecordType as T;
    // (qname, qtype, rcode, answer, authority)
    type Case = (&'static str, T, ResponseCode, Vec<String>, Vec<String>);
    let cases: Vec<Case> = vec![
        (
            "localhost.",
            T::A,
            ResponseCode::NoError,
            vec!["localhost. A 127.0.0.1".into()],
            vec![],
        ),
        (
            "localHOst.",
            T::A,
            ResponseCode::NoError,
            vec!["localHOst. A 127.0.0.1".into()],
            vec![],
        ),
        (
            "localhost.",
            T::AAAA,
            ResponseCode::NoError,
            vec!["localhost. AAAA ::1".into()],
            vec![],
        ),
        (
            "localhost.",
            T::NS,
            ResponseCode::NoError,
            vec!["localhost. NS localhost.".into()],
            vec![],
        ),
        (
            "localhost.",
            T::SOA,
            ResponseCode::NoError,
            vec![soa("localhost.")],
            vec![],
        ),
        (
            "127.in-addr.arpa.",
            T::A,
            ResponseCode::NoError,
            vec![],
            vec![soa("127.in-addr.arpa.")],
        ),
        (
            "localhost.",
            T::MX,
            ResponseCode::NoError,
            vec![],
            vec![soa("localhost.")],
        ),
        (
            "a.localhost.",
            T::A,
            ResponseCode::NoError,
            vec!["a.localhost. A 127.0.0.1".into()],
            vec![],
        ),
        (
            "a.localhost.",
            T::AAAA,
            ResponseCode::NoError,
            vec!["a.localhost. AAAA ::1".into()],
            vec![],
        ),
        (
            "a.localhost.",
            T::MX,
            ResponseCode::NoError,
            vec![],
            vec![soa("a.localhost.")],
        ),
        (
            "1.0.0.127.in-addr.arpa.",
            T::PTR,
            ResponseCode::NoError,
            vec!["1.0.0.127.in-addr.arpa. PTR localhost.".into()],
            vec![],
        ),
        (
            "1.0.0.127.in-addr.arpa.",
            T::MX,
            ResponseCode::NoError,
            vec![],
            vec![soa("127.in-addr.arpa.")],
        ),
        (
            "2.0.0.127.in-addr.arpa.",
            T::PTR,
            ResponseCode::NXDomain,
            vec![],
            vec![soa("127.in-addr.arpa.")],
        ),
        // The other zones' apexes and names below them.
        (
            "0.in-addr.arpa.",
            T::SOA,
            ResponseCode::NoError,
            vec![soa("0.in-addr.arpa.")],
            vec![],
        ),
        (
            "255.in-addr.arpa.",
            T::NS,
            ResponseCode::NoError,
            vec!["255.in-addr.arpa. NS localhost.".into()],
            vec![],
        ),
        (
            "255.in-addr.arpa.",
            T::AAAA,
            ResponseCode::NoError,
            vec![],
            vec![soa("255.in-addr.arpa.")],
        ),
        (
            "0.in-addr.arpa.",
            T::PTR,
            ResponseCode::NoError,
            vec![],
            vec![soa("0.in-addr.arpa.")],
        ),
        (
            "1.0.0.0.In-Addr.Arpa.",
            T::PTR,
            ResponseCode::NXDomain,
            vec![],
            vec![soa("0.In-Addr.Arpa.")],
        ),
        (
            "255.255.255.255.in-addr.arpa.",
            T::PTR,
            ResponseCode::NXDomain,
            vec![],
            vec![soa("255.in-addr.arpa.")],
        ),
        (
            "1.0.0.127.IN-ADDR.arpa.",
            T::A,
            ResponseCode::NoError,
            vec![],
            vec![soa("127.IN-ADDR.arpa.")],
        ),
        // Legacy localhost.<domain> names (localhost_prefix on), case kept.
        (
            "localhost.example.net.",
            T::A,
            ResponseCode::NoError,
            vec!["localhost.example.net. A 127.0.0.1".into()],
            vec![],
        ),
        (
            "LocalHost.Example.net.",
            T::AAAA,
            ResponseCode::NoError,
            vec!["LocalHost.Example.net. AAAA ::1".into()],
            vec![],
        ),
        (
            "localhost.example.net.",
            T::TXT,
            ResponseCode::NoError,
            vec![],
            vec![soa("localhost.example.net.")],
        ),
        (
            "x.y.LOCALHOST.",
            T::A,
            ResponseCode::NoError,
            vec!["x.y.LOCALHOST. A 127.0.0.1".into()],
            vec![],
        ),
    ];
    for (name, qtype, rcode, answer, ns) in cases {
        let r = req(name, qtype);
        let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(NextMarker)];
        let out = test_chain::serve(&Local::default(), &r, &rest).await;
        assert_eq!(out.plugin(), "local", "{name} {qtype}");
        let m = reply_of(out);
        assert_eq!(m.metadata.response_code, rcode, "{name} {qtype}");
        assert!(!m.metadata.authoritative, "{name}");
        assert!(m.metadata.recursion_desired, "{name}");
        assert_eq!(m.queries, r.msg.queries);
        let got: Vec<String> = m.answers.iter().map(text).collect();
        assert_eq!(got, answer, "{name} {qtype}");
        let got: Vec<String> = m.authorities.iter().map(text).collect();
        assert_eq!(got, ns, "{name} {qtype}");
        assert!(m.additionals.is_empty());
    }
}

/// Names that are not local's go on, also with `localhost_prefix off` for legacy names.
#[tokio::test]
async fn other_names_pass() {
    let on = Local::default();
    let off = Local {
        localhost_prefix: false,
    };
    // (name, passed on with prefix on, with prefix off)
    let cases = [
        ("example.org.", true, true),
        ("localhost.example.net.", false, true),
        ("localhostx.", true, true),
        ("xlocalhost.", true, true),
        ("a.xlocalhost.", true, true),
        ("in-addr.arpa.", true, true),
        ("1.in-addr.arpa.", true, true),
        ("10.in-addr.arpa.", true, true),
        ("1.0.0.10.in-addr.arpa.", true, true),
        ("0.0.ip6.arpa.", true, true),
        ("a.localhost.", false, false),
        ("localhost.", false, false),
        (".", true, true),
    ];
    for (name, pass_on, pass_off) in cases {
        for (l, pass) in [(&on, pass_on), (&off, pass_off)] {
            let r = req(name, RecordType::A);
            let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(NextMarker)];
            let out = test_chain::serve(l, &r, &rest).await;
            let want = if pass { "next" } else { "local" };
            assert_eq!(out.plugin(), want, "{name} prefix={}", l.localhost_prefix);
        }
    }
}

#[tokio::test]
async fn localhost_subdomains_are_counted() {
    let l = Local::default();
    // (name, counted)
    let cases = [
        ("localhost.", false),
        ("127.in-addr.arpa.", false),
        ("a.localhost.", true),
        ("localhost.example.org.", true),
        ("example.org.", false),
    ];
    for (name, counted) in cases {
        let before = LOCALHOST_COUNT.get();
        let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(NextMarker)];
        test_chain::serve(&l, &req(name, RecordType::A), &rest).await;
        // Other tests may count concurrently: at least ours.
        assert_eq!(LOCALHOST_COUNT.get() > before, counted, "{name}");
    }
}

/// The fast path passes other names on and sends local's own to the full path.
#[test]
fn fast_path() {
    struct Fast;
    #[async_trait]
    impl Plugin for Fast {
        fn name(&self) -> &'static str {
            "fast"
        }
        async fn serve(&self, _req: &Request, _next: Next<'_>) -> Outcome {
            unreachable!()
        }
        fn fast(&self, q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
            Some(FastReply {
                bytes: q.buf.to_vec(),
                rcode: ResponseCode::NoError,
                plugin: "fast",
            })
        }
    }
    let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(Fast)];
    for (name, fast) in [
        ("example.org.", true),
        ("localhost.", false),
        ("a.localhost.", false),
        ("localhost.example.org.", false),
        ("2.0.0.127.in-addr.arpa.", false),
    ] {
        let q = query(name, RecordType::A).to_vec().unwrap();
        let got = with_view(&q, Proto::Udp, |v| {
            Local::default().fast(v, FastNext::new(&rest)).is_some()
        })
        .unwrap();
        assert_eq!(got, fast, "{name}");
    }
}

#[test]
fn setup_table() {
    let e = |line: usize, msg: &str| format!("Corefile:{line} - Error during parsing: {msg}");
    let errors = [
        (
            "local foo",
            e(
                1,
                "Wrong argument count or unexpected line ending after 'foo'",
            ),
        ),
        ("local {\n    foo\n}", e(2, "unknown property 'foo'")),
        (
            "local {\n    localhost_prefix\n}",
            e(
                2,
                "Wrong argument count or unexpected line ending after 'localhost_prefix'",
            ),
        ),
        (
            "local {\n    localhost_prefix on off\n}",
            e(
                2,
                "Wrong argument count or unexpected line ending after 'off'",
            ),
        ),
        (
            "local {\n    localhost_prefix maybe\n}",
            e(2, "localhost_prefix expects 'on' or 'off', got \"maybe\""),
        ),
    ];
    for (input, want) in errors {
        assert_eq!(setup_err(setup, input), want, "{input}");
    }
    let prefix_of = |p: Arc<dyn Plugin>| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(NextMarker)];
        let r = req("localhost.example.net.", RecordType::A);
        rt.block_on(p.serve(&r, Next::new(&rest))).plugin() == "local"
    };
    for (input, prefix) in [
        ("local", true),
        ("local {\n}", true),
        ("local {\n    localhost_prefix on\n}", true),
        ("local {\n    localhost_prefix off\n}", false),
    ] {
        let p = setup_in(setup, input, &["."]).unwrap().unwrap();
        assert_eq!(p.name(), "local");
        assert_eq!(prefix_of(p), prefix, "{input}");
    }
    // Every `local` of a block makes one handler; the last setting wins, each line is checked.
    let hs = setup_block(
        setup,
        &["."],
        "local {\n    localhost_prefix off\n}\nlocal {\n    localhost_prefix on\n}",
    )
    .unwrap();
    assert_eq!(hs.len(), 1);
    assert!(prefix_of(hs[0].clone()));
    let hs = setup_block(setup, &["."], "local\nlocal {\n    localhost_prefix off\n}").unwrap();
    assert_eq!(hs.len(), 1);
    assert!(!prefix_of(hs[0].clone()));
    assert!(setup_block(setup, &["."], "local\nlocal bogus").is_err());
}

#[test]
fn directive_is_registered_in_coredns_order() {
    let at = |n| crate::plugin::order_of(n).unwrap();
    assert!(
        at("log") + 1 == at("dnstap")
            && at("dnstap") + 1 == at("local")
            && at("local") < at("any")
            && at("local") < at("forward"),
        "CoreDNS plugin.cfg: log, dnstap, local ... any ... forward"
    );
    assert!(!crate::plugin::directive("local").unwrap().once);
}
