use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::plugin::SetupCtx;
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::{
    self, Fixed, capture_logs, dispenser, query, request, request_from, setup_err, setup_in,
    with_edns,
};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}
fn a_rr(name: &str) -> Record {
    Record::from_rdata(n(name), 300, RData::A(A("192.0.2.1".parse().unwrap())))
}
fn soa_rr() -> Record {
    Record::from_rdata(
        n("example.org."),
        300,
        RData::SOA(SOA::new(
            n("ns.example.org."),
            n("hostmaster.example.org."),
            1,
            7200,
            3600,
            1209600,
            300,
        )),
    )
}
fn ns_rr() -> Record {
    Record::from_rdata(
        n("sub.example.org."),
        300,
        RData::NS(NS(n("ns.sub.example.org."))),
    )
}

/// A reply to `req` shaped by `edit`.
fn reply(req: &Request, edit: impl Fn(&mut Message)) -> Message {
    let mut m = req.reply();
    edit(&mut m);
    m
}

#[test]
fn classes() {
    let req = request("www.example.org.", RecordType::A);
    let axfr = request("example.org.", RecordType::AXFR);
    let cases: Vec<(&str, Option<Message>, Class)> = vec![
        (
            "answer",
            Some(reply(&req, |m| m.answers.push(a_rr("www.example.org.")))),
            Class::Success,
        ),
        (
            "cname chain",
            Some(reply(&req, |m| {
                m.answers.push(Record::from_rdata(
                    n("www.example.org."),
                    60,
                    RData::CNAME(CNAME(n("x.example.org."))),
                ))
            })),
            Class::Success,
        ),
        ("empty noerror", Some(reply(&req, |_| {})), Class::Success),
        (
            "delegation",
            Some(reply(&req, |m| m.authorities.push(ns_rr()))),
            Class::Success,
        ),
        (
            "nodata",
            Some(reply(&req, |m| m.authorities.push(soa_rr()))),
            Class::Denial,
        ),
        (
            "nxdomain",
            Some(reply(&req, |m| {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.authorities.push(soa_rr());
            })),
            Class::Denial,
        ),
        (
            "nxdomain without soa",
            Some(reply(&req, |m| {
                m.metadata.response_code = ResponseCode::NXDomain
            })),
            Class::Error,
        ),
        (
            "servfail",
            Some(req.reply_code(ResponseCode::ServFail)),
            Class::Error,
        ),
        (
            "refused",
            Some(req.reply_code(ResponseCode::Refused)),
            Class::Error,
        ),
        (
            "formerr",
            Some(req.reply_code(ResponseCode::FormErr)),
            Class::Error,
        ),
        (
            "notimp",
            Some(req.reply_code(ResponseCode::NotImp)),
            Class::Error,
        ),
        (
            "servfail with answer",
            Some(reply(&req, |m| {
                m.metadata.response_code = ResponseCode::ServFail;
                m.answers.push(a_rr("www.example.org."));
            })),
            Class::Error,
        ),
        ("dropped", None, Class::Error),
        (
            "axfr",
            Some(reply(&axfr, |m| m.answers.push(soa_rr()))),
            Class::Error,
        ),
        (
            "notify",
            Some(reply(&req, |m| {
                m.metadata.op_code = OpCode::Notify;
                m.answers.push(a_rr("www.example.org."));
            })),
            Class::Error,
        ),
    ];
    for (what, msg, want) in cases {
        assert_eq!(classify(msg.as_ref()), want, "{what}");
    }
}

#[test]
fn default_format_lines() {
    let udp4 = request_from(
        query("Example.org.", RecordType::A),
        "10.0.0.1:40000",
        Proto::Udp,
    );
    let tcp6 = request_from(
        with_edns(query("example.org.", RecordType::AAAA), 4096, true),
        "[2001:db8::1]:5353",
        Proto::Tcp,
    );
    let udp6_edns = request_from(
        with_edns(query("example.org.", RecordType::MX), 1232, false),
        "[::1]:10053",
        Proto::Udp,
    );
    let dot_mapped = request_from(
        query("example.org.", RecordType::TXT),
        "[::ffff:192.0.2.9]:853",
        Proto::Tls,
    );
    let mut answered = udp4.reply();
    answered.metadata.recursion_available = true;
    answered.answers.push(a_rr("Example.org."));
    let mut nx = tcp6.reply();
    nx.metadata.authoritative = true;
    nx.metadata.response_code = ResponseCode::NXDomain;
    nx.authorities.push(soa_rr());
    let servfail = udp6_edns.reply_code(ResponseCode::ServFail);

    let cases: Vec<(&Request, Option<&Message>, Duration, &str)> = vec![
        (
            &udp4,
            Some(&answered),
            Duration::from_nanos(123_456),
            r#"10.0.0.1:40000 - 4242 "A IN example.org. udp 29 false 512" NOERROR qr,rd,ra 45 0.000123456s"#,
        ),
        (
            &tcp6,
            Some(&nx),
            Duration::from_millis(1500),
            r#"[2001:db8::1]:5353 - 4242 "AAAA IN example.org. tcp 40 true 65535" NXDOMAIN qr,aa,rd 90 1.5s"#,
        ),
        (
            &udp6_edns,
            Some(&servfail),
            Duration::from_secs(2),
            r#"[::1]:10053 - 4242 "MX IN example.org. udp 40 false 1232" SERVFAIL qr,rd 40 2s"#,
        ),
        (
            &dot_mapped,
            None,
            Duration::ZERO,
            r#"192.0.2.9:853 - 4242 "TXT IN example.org. tcp 29 false 65535" - - - 0s"#,
        ),
    ];
    for (req, msg, d, want) in cases {
        assert_eq!(format_entry(DEFAULT_LOG_FORMAT, req, msg, d), want);
    }
    assert_eq!(
        format_entry(
            COMBINED_LOG_FORMAT,
            &udp4,
            Some(&answered),
            Duration::from_micros(10)
        ),
        r#"10.0.0.1:40000 - 4242 "A IN example.org. udp 29 false 512" NOERROR qr,rd,ra 45 0.00001s "0""#
    );
}

#[test]
fn placeholders() {
    let req = request_from(
        with_edns(query("www.example.org.", RecordType::A), 4096, true),
        "[2001:db8::5]:1234",
        Proto::Udp,
    );
    let msg = req.reply_code(ResponseCode::Refused);
    let cases = [
        ("{local}", "[::1]"),
        ("{>opcode}", "0"),
        ("{>bufsize} {>do} {size}", "4096 true 44"),
        ("{/geoip/city/name}", "-"),
        ("{unknown} {name}", "{unknown} www.example.org."),
        ("a } b {type}", "a } b A"),
        ("{ {name} }", "{ www.example.org. }"),
        (
            "{proto} Request: {name} {type} {>id}",
            "udp Request: www.example.org. A 4242",
        ),
        ("no placeholders", "no placeholders"),
        ("{rcode}/{>rflags}", "REFUSED/qr,rd"),
    ];
    for (f, want) in cases {
        assert_eq!(
            format_entry(f, &req, Some(&msg), Duration::ZERO),
            want,
            "{f}"
        );
    }
}

fn log_of(text: &str) -> Log {
    let rules = setup::parse(&mut dispenser(text)).unwrap();
    Log { rules }
}

#[tokio::test]
async fn serve_logs_by_class_and_name() {
    let nx = |req: &Request| {
        let mut m = req.reply_code(ResponseCode::NXDomain);
        m.authorities.push(soa_rr());
        Outcome::reply(m, "fixed")
    };
    let ok = |req: &Request| {
        let mut m = req.reply();
        m.answers.push(a_rr("www.example.org."));
        Outcome::reply(m, "fixed")
    };
    let fail = |_: &Request| Outcome::code(ResponseCode::ServFail, "forward");
    type Answer = fn(&Request) -> Outcome;
    // (corefile, qname, next's answer, logged line)
    let cases: Vec<(&str, &str, Answer, Option<&str>)> = vec![
        (
            "log . \"{name} {rcode}\"",
            "www.example.org.",
            ok,
            Some("www.example.org. NOERROR"),
        ),
        (
            "log . \"{name} {rcode}\"",
            "x.example.org.",
            fail,
            Some("x.example.org. SERVFAIL"),
        ),
        (
            "log . \"{name} {rcode}\" {\n class denial\n}",
            "www.example.org.",
            nx,
            Some("www.example.org. NXDOMAIN"),
        ),
        (
            "log . \"{name} {rcode}\" {\n class denial\n}",
            "www.example.org.",
            ok,
            None,
        ),
        (
            "log . \"{name} {rcode}\" {\n class denial\n}",
            "www.example.org.",
            fail,
            None,
        ),
        (
            "log . \"{rcode} {rsize} {>rflags}\" {\n class error\n}",
            "www.example.org.",
            fail,
            Some("SERVFAIL 33 qr,rd"),
        ),
        (
            "log . \"{rcode}\" {\n class success error\n}",
            "www.example.org.",
            ok,
            Some("NOERROR"),
        ),
        (
            "log . \"{rcode}\" {\n class success\n class denial\n}",
            "www.example.org.",
            nx,
            Some("NXDOMAIN"),
        ),
        (
            "log . \"{rcode}\" {\n class all denial\n}",
            "www.example.org.",
            fail,
            Some("SERVFAIL"),
        ),
        (
            "log example.org \"{name}\"",
            "www.Example.org.",
            ok,
            Some("www.example.org."),
        ),
        (
            "log example.org \"{name}\"",
            "example.org.",
            ok,
            Some("example.org."),
        ),
        ("log example.org \"{name}\"", "badexample.org.", ok, None),
        ("log example.org \"{name}\"", "example.com.", ok, None),
        (
            "log example.com Example.ORG \"{name}\"",
            "a.example.org.",
            ok,
            Some("a.example.org."),
        ),
    ];
    for (text, qname, answer, want) in cases {
        let (_guard, logs) = capture_logs();
        let log = log_of(text);
        let next = Fixed::new(answer);
        let rest: Vec<Arc<dyn Plugin>> = vec![next.clone()];
        let out = test_chain::serve(&log, &request(qname, RecordType::A), &rest).await;
        assert_eq!(next.calls(), 1);
        assert_eq!(out.rcode(), answer(&request(qname, RecordType::A)).rcode());
        let want: Vec<String> = want
            .into_iter()
            .map(|l| format!("INFO exdns::log: {l}"))
            .collect();
        assert_eq!(logs.lines(), want, "{text} / {qname}");
    }
}

#[tokio::test]
async fn min_duration_logs_slow_queries() {
    struct Slow;
    #[async_trait::async_trait]
    impl Plugin for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
            tokio::time::sleep(Duration::from_millis(60)).await;
            Outcome::reply(req.reply(), "slow")
        }
    }
    let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(Slow)];
    let req = request("example.org.", RecordType::A);
    // Class error only: a NOERROR is logged only because it took longer than 50ms.
    for (text, logged) in [
        (
            "log . \"{rcode}\" {\n class error\n minDuration 50ms\n}",
            true,
        ),
        (
            "log . \"{rcode}\" {\n class error\n minDuration 5s\n}",
            false,
        ),
        ("log . \"{rcode}\" {\n class error\n}", false),
    ] {
        let (_guard, logs) = capture_logs();
        test_chain::serve(&log_of(text), &req, &rest).await;
        assert_eq!(logs.lines().len(), usize::from(logged), "{text}");
    }
}

#[test]
fn setup_rules() {
    let r = setup::parse(&mut dispenser("log")).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].name, ".");
    assert_eq!(r[0].format, Format::parse(DEFAULT_LOG_FORMAT));
    assert_eq!(r[0].classes, [Class::All]);
    assert_eq!(r[0].min_duration, Duration::ZERO);

    let r = setup::parse(&mut dispenser("log Example.ORG")).unwrap();
    assert_eq!(r[0].name, "example.org.");

    let r = setup::parse(&mut dispenser("log . {combined}")).unwrap();
    assert_eq!(r[0].format, Format::parse(COMBINED_LOG_FORMAT));
    let r = setup::parse(&mut dispenser("log . {common}")).unwrap();
    assert_eq!(r[0].format, Format::parse(COMMON_LOG_FORMAT));
    let r = setup::parse(&mut dispenser("log {combined}")).unwrap();
    assert_eq!(
        (r[0].name.as_str(), &r[0].format),
        (".", &Format::parse(COMBINED_LOG_FORMAT))
    );

    let r = setup::parse(&mut dispenser(
        "log a.org b.org \"{name}\" {\n class denial error\n minDuration\n}",
    ))
    .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].name.as_str(), r[1].name.as_str()),
        ("a.org.", "b.org.")
    );
    for rule in &r {
        assert_eq!(rule.format, Format::parse("{name}"));
        assert_eq!(rule.classes, [Class::Denial, Class::Error]);
        assert_eq!(rule.min_duration, Duration::from_millis(100));
    }
    let r = setup::parse(&mut dispenser("log a.org b.org")).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].format, Format::parse(DEFAULT_LOG_FORMAT));

    let l2 = "Corefile:2 - Error during parsing: ";
    let cases = [
        (
            "log {\n class\n}",
            format!("{l2}Wrong argument count or unexpected line ending after 'class'"),
        ),
        (
            "log {\n class success bogus\n}",
            format!("{l2}invalid Class: bogus"),
        ),
        (
            "log {\n minDuration 1 2\n}",
            format!("{l2}Wrong argument count or unexpected line ending after '2'"),
        ),
        (
            "log {\n minDuration soon\n}",
            format!("{l2}Illegal duration found: 'soon'"),
        ),
        (
            "log {\n format x\n}",
            format!("{l2}unknown property 'format'"),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(setup_err(setup, text), want, "{text}");
    }
}

#[test]
fn several_log_lines_make_one_handler() {
    let text = "log example.org \"{name} first\"\nlog . \"{name} second\"";
    let block = test_chain::block_with(&["."], text);
    assert_eq!(block.directives.len(), 2);
    let mut config = BlockConfig::default();
    let mut ctx = SetupCtx {
        block: &block,
        config: &mut config,
    };
    let first = setup(&mut block.directives[0].dispenser(), &mut ctx).unwrap();
    let second = setup(&mut block.directives[1].dispenser(), &mut ctx).unwrap();
    assert!(second.is_none(), "the second line adds no handler");
    assert_eq!(first.unwrap().name(), "log");
    // Single line in the block: its own handler.
    assert!(setup_in(setup, "log", &["."]).unwrap().is_some());
}

#[tokio::test]
async fn merged_rules_first_match_wins() {
    let log = log_of("log example.org \"{name} first\"");
    let mut rules = log.rules;
    rules.extend(setup::parse(&mut dispenser("log . \"{name} second\"")).unwrap());
    let log = Log { rules };
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::reply(|_| {})];
    let (_guard, logs) = capture_logs();
    test_chain::serve(&log, &request("www.example.org.", RecordType::A), &rest).await;
    test_chain::serve(&log, &request("www.example.net.", RecordType::A), &rest).await;
    assert_eq!(
        logs.lines(),
        [
            "INFO exdns::log: www.example.org. first",
            "INFO exdns::log: www.example.net. second"
        ]
    );
}
