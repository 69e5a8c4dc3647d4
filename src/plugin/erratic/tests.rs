use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::*;
use crate::plugin::test_chain::{self, Fixed, dispenser, reply_of, request, setup_err, setup_in};

fn parsed(text: &str) -> Erratic {
    setup::parse(&mut dispenser(text)).unwrap()
}

#[test]
fn setup_defaults_and_amounts() {
    // (corefile, drop, truncate, delay, duration ms, large)
    let cases = [
        ("erratic", 2, 0, 0, 0, false),
        ("erratic {\n}", 2, 0, 0, 0, false),
        ("erratic {\n drop 3\n}", 3, 0, 0, 0, false),
        ("erratic {\n drop\n}", 2, 0, 0, 0, false),
        ("erratic {\n drop 0\n}", 0, 0, 0, 0, false),
        ("erratic {\n truncate\n}", 0, 2, 0, 0, false),
        ("erratic {\n truncate 5\n}", 0, 5, 0, 0, false),
        ("erratic {\n delay\n}", 0, 0, 2, 100, false),
        ("erratic {\n delay 3\n}", 0, 0, 3, 100, false),
        ("erratic {\n delay 3 1.5s\n}", 0, 0, 3, 1500, false),
        ("erratic {\n drop 4\n delay 3 1ms\n}", 4, 0, 3, 1, false),
        ("erratic {\n drop\n truncate 3\n}", 2, 3, 0, 0, false),
        ("erratic {\n large\n}", 2, 0, 0, 0, true),
    ];
    for (text, drop, truncate, delay, ms, large) in cases {
        let e = parsed(text);
        assert_eq!(
            (e.drop, e.truncate, e.delay, e.duration, e.large),
            (drop, truncate, delay, Duration::from_millis(ms), large),
            "{text}"
        );
    }
    let p = setup_in(setup, "erratic", &["."]).unwrap().unwrap();
    assert_eq!(p.name(), "erratic");
}

#[test]
fn setup_errors() {
    let pre = "Corefile:2 - Error during parsing: ";
    let cases = [
        ("erratic {\n drop -1\n}", format!("{pre}illegal amount value given \"-1\"")),
        ("erratic {\n drop x\n}", format!("{pre}illegal amount value given \"x\"")),
        (
            "erratic {\n drop 1 2\n}",
            format!("{pre}Wrong argument count or unexpected line ending after '2'"),
        ),
        (
            "erratic {\n truncate 1 2\n}",
            format!("{pre}Wrong argument count or unexpected line ending after '2'"),
        ),
        (
            "erratic {\n delay 1 2s 3\n}",
            format!("{pre}Wrong argument count or unexpected line ending after '3'"),
        ),
        (
            "erratic {\n delay 1 fast\n}",
            format!("{pre}time: invalid duration \"fast\""),
        ),
        ("erratic {\n bogus\n}", format!("{pre}unknown property 'bogus'")),
        (
            "erratic 3",
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '3'"
                .to_string(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(setup_err(setup, text), want, "{text}");
    }
}

async fn run(e: &Erratic, name: &str, qtype: RecordType) -> (Outcome, usize) {
    let next = Fixed::reply(|_| {});
    let rest: Vec<Arc<dyn Plugin>> = vec![next.clone()];
    let out = test_chain::serve(e, &request(name, qtype), &rest).await;
    (out, next.calls())
}

#[tokio::test]
async fn drops_every_second_query_by_default() {
    let e = parsed("erratic");
    // Query 0 is dropped, 1 answered, 2 dropped, 3 answered.
    for i in 0..4 {
        let (out, calls) = run(&e, "example.org.", RecordType::A).await;
        assert_eq!(calls, 0);
        if i % 2 == 0 {
            assert!(matches!(out, Outcome::Drop { plugin: "erratic" }), "{i}");
        } else {
            assert_eq!(reply_of(out).answers.len(), 1, "{i}");
        }
    }
    assert_eq!(e.queries(), 4);
}

#[tokio::test]
async fn answers_a_aaaa_and_servfail_for_others() {
    let e = parsed("erratic {\n drop 0\n}");
    let (out, _) = run(&e, "Example.ORG.", RecordType::A).await;
    let m = reply_of(out);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
    let rr = &m.answers[0];
    assert!(rr.name.eq_case(&Name::from_ascii("Example.ORG.").unwrap()));
    assert_eq!(rr.ttl, 0);
    assert_eq!(rr.dns_class, DNSClass::IN);
    assert_eq!(rr.data, RData::A(A("192.0.2.53".parse().unwrap())));

    let (out, _) = run(&e, "example.org.", RecordType::AAAA).await;
    let m = reply_of(out);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        m.answers[0].data,
        RData::AAAA(AAAA("2001:db8::53".parse().unwrap()))
    );
    assert!(m.additionals.is_empty() && m.authorities.is_empty());

    for qtype in [RecordType::TXT, RecordType::MX, RecordType::NS] {
        let (out, _) = run(&e, "example.org.", qtype).await;
        assert!(
            matches!(
                out,
                Outcome::Code {
                    rcode: ResponseCode::ServFail,
                    plugin: "erratic"
                }
            ),
            "{qtype}"
        );
    }
    // Drops apply to the SERVFAIL types too.
    let e = parsed("erratic {\n drop 1\n}");
    let (out, _) = run(&e, "example.org.", RecordType::TXT).await;
    assert!(matches!(out, Outcome::Drop { .. }));
}

#[tokio::test]
async fn truncates_every_nth_query_keeping_the_answer() {
    let e = parsed("erratic {\n truncate 2\n}");
    let mut tc = Vec::new();
    for _ in 0..4 {
        let (out, _) = run(&e, "example.org.", RecordType::A).await;
        let m = reply_of(out);
        assert_eq!(
            m.answers.len(),
            1,
            "CoreDNS keeps the answer in a truncated reply"
        );
        tc.push(m.metadata.truncation);
    }
    assert_eq!(tc, [true, false, true, false]);
}

#[tokio::test]
async fn large_returns_30_records() {
    let e = parsed("erratic {\n drop 0\n large\n}");
    let (out, _) = run(&e, "example.org.", RecordType::A).await;
    let m = reply_of(out);
    assert_eq!(m.answers.len(), 30);
    assert!(m.answers.iter().all(|r| r == &m.answers[0]));
}

#[tokio::test]
async fn axfr_sends_a_small_zone() {
    let e = parsed("erratic {\n drop 0\n}");
    let (out, _) = run(&e, "example.org.", RecordType::AXFR).await;
    let m = reply_of(out);
    let got: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    assert_eq!(
        got,
        [
            "example.org. SOA sns.dns.icann.org. noc.dns.icann.org. 2018050825 7200 3600 1209600 3600",
            "example.org. NS b.example.org.",
            "example.org. NS a.example.org.",
            "a.example.org. AAAA 2001:bd8::53",
            "b.example.org. AAAA 2001:500::54",
            "example.org. SOA sns.dns.icann.org. noc.dns.icann.org. 2018050825 7200 3600 1209600 3600",
        ]
    );
    // A truncated transfer lacks the closing SOA.
    let e = parsed("erratic {\n truncate 1\n}");
    let (out, _) = run(&e, "example.org.", RecordType::AXFR).await;
    let m = reply_of(out);
    assert_eq!(m.answers.len(), 5);
    assert_eq!(m.answers[4].record_type(), RecordType::AAAA);
}

#[tokio::test]
async fn delays_every_nth_query() {
    let e = parsed("erratic {\n delay 2 200ms\n}");
    let t = Instant::now();
    let (out, _) = run(&e, "example.org.", RecordType::A).await;
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(reply_of(out).answers.len(), 1);
    let t = Instant::now();
    let (out, _) = run(&e, "example.org.", RecordType::A).await;
    assert!(t.elapsed() < Duration::from_millis(200));
    assert_eq!(reply_of(out).answers.len(), 1);
}

#[tokio::test]
async fn ready_flips_between_3_and_5_queries() {
    let e = parsed("erratic {\n drop 0\n}");
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(e.ready());
        run(&e, "example.org.", RecordType::A).await;
    }
    seen.push(e.ready());
    let f = Some(false);
    let t = Some(true);
    assert_eq!(seen, [f, f, f, t, t, f, f]);
}
