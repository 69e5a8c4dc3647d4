//! `template` tests: setup (CoreDNS's wording for each error, what each option sets) and table
//! tests driving `Plugin::serve` with a real `Next` behind the handler.

use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::setup::{parse, rcode_from_mnemonic};
use super::*;
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::test_chain::{
    NextMarker, block_with, query, reply_of, request, request_from, serve, with_edns,
};

// ---- helpers ----

fn parse_in(zones: &[&str], text: &str) -> Result<TemplatePlugin, String> {
    let b = block_with(zones, text);
    let zones: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
    parse(&mut b.directives[0].dispenser(), &zones).map_err(|e| e.to_string())
}

/// The handler of `text` (one `template` directive) in a block for `example.com.`.
fn tp(text: &str) -> TemplatePlugin {
    parse_in(&["example.com."], text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn err(text: &str) -> String {
    match parse_in(&["example.com."], text) {
        Ok(_) => panic!("{text:?} parsed"),
        Err(e) => e,
    }
}

/// Serves `req` through `t` with a `next` marker behind it.
async fn ask_req(t: &TemplatePlugin, req: &Request) -> Outcome {
    let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(NextMarker)];
    serve(t, req, &rest).await
}

async fn ask(t: &TemplatePlugin, name: &str, qtype: RecordType) -> Outcome {
    ask_req(t, &request(name, qtype)).await
}

/// The records of a section as zone-file lines (`name ttl class type rdata`).
fn lines(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.to_string()).collect()
}

/// A reply written by `template` (panics on anything else).
fn answered(out: Outcome) -> Message {
    assert_eq!(out.plugin(), NAME, "{out:?}");
    reply_of(out)
}

fn passed_on(out: &Outcome) -> bool {
    out.plugin() == "next"
}

fn is_servfail_code(out: &Outcome) -> bool {
    matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            plugin: NAME
        }
    )
}

/// The k8s_gateway chart's DNS-01 challenge block for `example.com`.
const ACME: &str = r#"template IN ANY example.com {
    match "_acme-challenge[.](.*)[.]example[.]com"
    answer "{{ .Name }} 5 IN CNAME {{  index .Match 1 }}.dns01.clouddns.com"
    fallthrough
}"#;

// ---- setup ----

#[test]
fn setup_defaults_and_every_option() {
    let t = tp("template IN A {\n answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n}");
    assert_eq!(t.class, DNSClass::IN);
    assert_eq!(t.qtype, RecordType::A);
    assert_eq!(
        t.zones,
        vec!["example.com."],
        "zones default to the block's"
    );
    let res: Vec<&str> = t.regexes.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(res, vec![".*"], "no match: everything matches");
    assert_eq!(t.rcode, ResponseCode::NoError);
    assert!(t.fall.is_empty());
    assert!(t.ederror.is_none());
    assert_eq!(t.answer.len(), 1);
    assert!(t.answer[0].fixed.is_none());

    let t = tp(r#"template ANY ANY Example.ORG 10.0.0.0/24 {
        match ^a[.] ^b[.]
        match "^c[.]"
        answer "a.example.org. 60 IN A 192.0.2.1" "{{ .Name }} 60 IN A 192.0.2.2"
        answer "{{ .Name }} 60 IN A 192.0.2.3"
        additional "ns.example.org. 60 IN A 192.0.2.53"
        authority "example.org. 60 IN NS ns.example.org."
        rcode NXDOMAIN
        ederror 21 "Blocked according to RFC2606"
        fallthrough in-addr.arpa. example.org
        upstream 8.8.8.8
    }"#);
    assert_eq!(t.class, DNSClass::ANY);
    assert_eq!(t.qtype, RecordType::ANY);
    assert_eq!(t.zones, vec!["example.org.", "0.0.10.in-addr.arpa."]);
    let res: Vec<&str> = t.regexes.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(res, vec!["^a[.]", "^b[.]", "^c[.]"]);
    let answers: Vec<&str> = t.answer.iter().map(|r| r.template.source()).collect();
    assert_eq!(
        answers,
        vec![
            "a.example.org. 60 IN A 192.0.2.1",
            "{{ .Name }} 60 IN A 192.0.2.2",
            "{{ .Name }} 60 IN A 192.0.2.3"
        ]
    );
    assert_eq!(
        t.answer[0].fixed.as_ref().map(|r| r.to_string()),
        Some("a.example.org. 60 IN A 192.0.2.1".to_string()),
        "an RR without actions is built at setup"
    );
    assert_eq!(t.additional.len(), 1);
    assert_eq!(t.authority.len(), 1);
    assert_eq!(t.rcode, ResponseCode::NXDomain);
    assert_eq!(
        t.ederror,
        Some(ExtendedError {
            code: 21,
            reason: "Blocked according to RFC2606".to_string()
        })
    );
    assert_eq!(t.fall, vec!["in-addr.arpa.", "example.org."]);

    let t = tp("template CH TXT {\n rcode NOTIMPL\n fallthrough\n ederror 0\n}");
    assert_eq!(t.class, DNSClass::CH);
    assert_eq!(t.rcode, ResponseCode::NotImp);
    assert_eq!(t.fall, vec!["."]);
    assert_eq!(
        t.ederror,
        Some(ExtendedError {
            code: 0,
            reason: String::new()
        })
    );
    // No answer at all is allowed (an empty answer section, as CoreDNS 1.14).
    let t = tp("template IN AAAA");
    assert!(t.answer.is_empty() && t.authority.is_empty());
    // Other classes and types by their miekg/dns names.
    assert_eq!(tp("template CS SRV").class, DNSClass::Unknown(2));
    assert_eq!(tp("template HS NSAP-PTR").qtype, RecordType::Unknown(23));
    assert_eq!(tp("template NONE None").qtype, RecordType::ZERO);
}

#[test]
fn setup_rcode_names_as_miekg() {
    for (name, code) in [
        ("NOERROR", 0u16),
        ("FORMERR", 1),
        ("SERVFAIL", 2),
        ("NXDOMAIN", 3),
        ("NOTIMP", 4),
        ("NOTIMPL", 4),
        ("REFUSED", 5),
        ("YXDOMAIN", 6),
        ("NOTZONE", 10),
        ("BADSIG", 16),
        ("BADCOOKIE", 23),
    ] {
        assert_eq!(
            rcode_from_mnemonic(name).map(u16::from),
            Some(code),
            "{name}"
        );
    }
    for bad in ["noerror", "SUCCESS", "BADVERS", "16", ""] {
        assert_eq!(rcode_from_mnemonic(bad), None, "{bad}");
    }
}

#[test]
fn setup_errors_worded_as_coredns() {
    let p = "Corefile:1 - Error during parsing: ";
    let p2 = "Corefile:2 - Error during parsing: ";
    let long = "a".repeat(10001);
    let table: Vec<(String, String)> = vec![
        (
            "template".into(),
            format!("{p}Wrong argument count or unexpected line ending after 'template'"),
        ),
        (
            "template IN".into(),
            format!("{p}Wrong argument count or unexpected line ending after 'IN'"),
        ),
        ("template XX A".into(), format!("{p}invalid query class XX")),
        ("template in A".into(), format!("{p}invalid query class in")),
        ("template IN FOO".into(), format!("{p}invalid RR class FOO")),
        ("template IN a".into(), format!("{p}invalid RR class a")),
        (
            "template IN A {\nmatch\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'match'"),
        ),
        (
            "template IN A {\nmatch ok (abc\n}".into(),
            format!(
                "{p2}could not parse regex: (abc, error parsing regexp: unclosed group: `(abc`"
            ),
        ),
        (
            format!("template IN A {{\nmatch {long}\n}}"),
            format!("{p2}regex pattern too long: 10001 > 10000"),
        ),
        (
            "template IN A {\nanswer\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'answer'"),
        ),
        (
            "template IN A {\nadditional\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'additional'"),
        ),
        (
            "template IN A {\nauthority\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'authority'"),
        ),
        (
            "template IN A {\nanswer \"{{ .Name\"\n}".into(),
            format!(
                "{p2}could not compile template: {{{{ .Name, template: answer:1: unclosed action"
            ),
        ),
        (
            "template IN A {\nauthority \"{{ .Nmae }} 60 IN NS ns.\"\n}".into(),
            format!(
                "{p2}could not compile template: {{{{ .Nmae }}}} 60 IN NS ns., template: authority:1: can't evaluate field Nmae in the template data (fields: .Zone .Name .Regex .Match .Group .Class .Type .Question .Remote .Meta)"
            ),
        ),
        (
            "template IN A {\nadditional \"{{ range .Match }}{{ end }}\"\n}".into(),
            format!(
                "{p2}could not compile template: {{{{ range .Match }}}}{{{{ end }}}}, template: additional:1: {{{{range}}}} is not supported by exdns"
            ),
        ),
        (
            "template IN A {\nrcode\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'rcode'"),
        ),
        (
            "template IN A {\nrcode BOGUS\n}".into(),
            format!("{p2}unknown rcode BOGUS"),
        ),
        (
            "template IN A {\nederror\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'ederror'"),
        ),
        (
            "template IN A {\nederror 1 a b\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'b'"),
        ),
        (
            "template IN A {\nederror abc\n}".into(),
            format!(
                "{p2}error parsing extended DNS error code abc, strconv.ParseUint: parsing \"abc\": invalid syntax"
            ),
        ),
        (
            "template IN A {\nederror 70000 why\n}".into(),
            format!(
                "{p2}error parsing extended DNS error code why, strconv.ParseUint: parsing \"70000\": value out of range"
            ),
        ),
        (
            "template IN A {\nbogus 1\n}".into(),
            format!("{p2}Wrong argument count or unexpected line ending after 'bogus'"),
        ),
        (
            "template IN A example..org".into(),
            format!("{p}invalid zone 'example..org'"),
        ),
    ];
    for (text, want) in table {
        assert_eq!(err(&text), want, "{text:?}");
    }
}

// ---- serving ----

#[tokio::test]
async fn acme_challenge_cname_as_the_k8s_gateway_chart_renders_it() {
    let t = tp(ACME);
    for (name, qtype, target) in [
        (
            "_acme-challenge.foo.example.com.",
            RecordType::TXT,
            "foo.dns01.clouddns.com.",
        ),
        (
            "_acme-challenge.a.b.example.com.",
            RecordType::TXT,
            "a.b.dns01.clouddns.com.",
        ),
        (
            "_ACME-Challenge.Foo.Example.COM.",
            RecordType::CNAME,
            "foo.dns01.clouddns.com.",
        ),
    ] {
        let m = answered(ask(&t, name, qtype).await);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.metadata.authoritative, "{name}");
        assert!(!m.metadata.recursion_available, "{name}");
        assert_eq!(
            lines(&m.answers),
            vec![format!("{} 5 IN CNAME {target}", name.to_ascii_lowercase())],
            "{name}"
        );
        assert!(m.authorities.is_empty() && m.additionals.is_empty());
        assert_eq!(
            m.queries,
            query(name, qtype).queries,
            "question echoed as asked"
        );
    }
    // Names without the prefix fall through to the next plugin.
    for name in [
        "www.example.com.",
        "example.com.",
        "_acme-challenge.example.com.",
    ] {
        assert!(passed_on(&ask(&t, name, RecordType::TXT).await), "{name}");
    }
    // Outside the template's zone: the next plugin, whatever the regex says.
    assert!(passed_on(
        &ask(&t, "_acme-challenge.foo.example.org.", RecordType::TXT).await
    ));
}

#[tokio::test]
async fn a_cname_answer_to_an_a_query_is_followed_through_the_rest_of_the_chain() {
    let t = tp(ACME);
    // The rest of the chain answers the CNAME target with an A record, and sees the target
    // asked with RD set.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let backend = crate::plugin::test_chain::Fixed::new(move |req| {
        seen2.lock().unwrap().push((
            req.name.clone(),
            req.qtype(),
            req.msg.metadata.recursion_desired,
        ));
        let mut m = req.reply();
        m.metadata.truncation = true;
        m.answers.push(Record::from_rdata(
            req.qname().clone(),
            30,
            RData::A(A(Ipv4Addr::new(198, 51, 100, 7))),
        ));
        Outcome::reply(m, "fixed")
    });
    let mut q = query("_acme-challenge.foo.example.com.", RecordType::A);
    q.metadata.recursion_desired = false;
    let req = request_from(q, "10.0.0.1:40000", Proto::Udp);
    let rest: Vec<Arc<dyn Plugin>> = vec![backend.clone()];
    let m = answered(serve(&t, &req, &rest).await);
    assert_eq!(
        lines(&m.answers),
        vec![
            "_acme-challenge.foo.example.com. 5 IN CNAME foo.dns01.clouddns.com.",
            "foo.dns01.clouddns.com. 30 IN A 198.51.100.7",
        ]
    );
    assert!(m.metadata.truncation, "the lookup's TC bit is carried over");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("foo.dns01.clouddns.com.".to_string(), RecordType::A, true)]
    );
    // TXT (the ACME query itself) is not followed.
    let m = answered(
        serve(
            &t,
            &request("_acme-challenge.foo.example.com.", RecordType::TXT),
            &rest,
        )
        .await,
    );
    assert_eq!(m.answers.len(), 1);
    assert_eq!(backend.calls(), 1);
    // A lookup that fails (SERVFAIL from the chain) leaves the CNAME alone.
    let m = answered(ask(&t, "_acme-challenge.foo.example.com.", RecordType::AAAA).await);
    assert_eq!(m.answers.len(), 1, "the marker's empty reply adds nothing");
    let empty: Vec<Arc<dyn Plugin>> = Vec::new();
    let m = answered(
        serve(
            &t,
            &request("_acme-challenge.foo.example.com.", RecordType::A),
            &empty,
        )
        .await,
    );
    assert_eq!(
        lines(&m.answers),
        vec!["_acme-challenge.foo.example.com. 5 IN CNAME foo.dns01.clouddns.com."]
    );
}

#[tokio::test]
async fn match_and_no_match_with_and_without_fallthrough() {
    let strict = tp(r#"template IN A {
        match ^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)[.]example[.]com[.]$
        answer "{{ .Name }} 60 IN A 10.0.{{ .Group.a }}.{{ .Group.b }}"
    }"#);
    let m = answered(ask(&strict, "ip-1-2.example.com.", RecordType::A).await);
    assert_eq!(
        lines(&m.answers),
        vec!["ip-1-2.example.com. 60 IN A 10.0.1.2"]
    );
    // In the zone, the right type, no regex matches, no fallthrough: SERVFAIL (CoreDNS 1.14).
    assert!(is_servfail_code(
        &ask(&strict, "www.example.com.", RecordType::A).await
    ));
    // Another type or class than the template's: the next plugin, fallthrough or not.
    assert!(passed_on(
        &ask(&strict, "www.example.com.", RecordType::AAAA).await
    ));
    let mut q = query("ip-1-2.example.com.", RecordType::A);
    q.queries[0].set_query_class(DNSClass::CH);
    let out = ask_req(&strict, &request_from(q, "10.0.0.1:40000", Proto::Udp)).await;
    assert!(passed_on(&out));
    // Outside its zones: the next plugin.
    assert!(passed_on(
        &ask(&strict, "ip-1-2.example.org.", RecordType::A).await
    ));

    let falls = tp(r#"template IN A {
        match ^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)[.]example[.]com[.]$
        answer "{{ .Name }} 60 IN A 10.0.{{ .Group.a }}.{{ .Group.b }}"
        fallthrough
    }"#);
    assert!(passed_on(
        &ask(&falls, "www.example.com.", RecordType::A).await
    ));
    let m = answered(ask(&falls, "ip-3-4.example.com.", RecordType::A).await);
    assert_eq!(
        lines(&m.answers),
        vec!["ip-3-4.example.com. 60 IN A 10.0.3.4"]
    );

    // fallthrough ZONES: only names in those zones go on.
    let some = tp(r#"template IN A {
        match ^ip-
        answer "{{ .Name }} 60 IN A 10.0.0.1"
        fallthrough sub.example.com
    }"#);
    assert!(passed_on(
        &ask(&some, "www.sub.example.com.", RecordType::A).await
    ));
    assert!(is_servfail_code(
        &ask(&some, "www.example.com.", RecordType::A).await
    ));
}

#[tokio::test]
async fn class_and_type_any_on_either_side() {
    let t = tp(r#"template IN A {
        answer "{{ .Name }} 60 {{ .Class }} TXT \"{{ .Type }}\""
    }"#);
    // A query for ANY is covered by an A template; .Type is then the template's.
    let m = answered(ask(&t, "x.example.com.", RecordType::ANY).await);
    assert_eq!(lines(&m.answers), vec!["x.example.com. 60 IN TXT A"]);
    let mut q = query("x.example.com.", RecordType::A);
    q.queries[0].set_query_class(DNSClass::ANY);
    let m = answered(ask_req(&t, &request_from(q, "10.0.0.1:40000", Proto::Udp)).await);
    assert_eq!(lines(&m.answers), vec!["x.example.com. 60 IN TXT A"]);

    // An ANY ANY template covers every class and type, and reports the query's.
    let any = tp(r#"template ANY ANY {
        answer "{{ .Name }} 60 IN TXT \"{{ .Class }} {{ .Type }}\""
    }"#);
    for (qtype, want) in [
        (RecordType::MX, "x.example.com. 60 IN TXT IN MX"),
        (RecordType::AAAA, "x.example.com. 60 IN TXT IN AAAA"),
        (RecordType::ANY, "x.example.com. 60 IN TXT IN ANY"),
    ] {
        let m = answered(ask(&any, "x.example.com.", qtype).await);
        assert_eq!(lines(&m.answers), vec![want], "{qtype}");
    }
    let mut q = query("x.example.com.", RecordType::TXT);
    q.queries[0].set_query_class(DNSClass::CH);
    let m = answered(ask_req(&any, &request_from(q, "10.0.0.1:40000", Proto::Udp)).await);
    assert_eq!(lines(&m.answers), vec!["x.example.com. 60 IN TXT CH TXT"]);
}

#[tokio::test]
async fn several_regexes_first_match_wins() {
    let t = tp(r#"template IN TXT {
        match ^(?P<x>a)[.] ^(?P<x>[a-z])[.]
        match ^(?P<x>[0-9]+)[.]
        answer "{{ .Name }} 60 IN TXT \"{{ .Regex }}\" \"{{ .Group.x }}\" \"{{ index .Group \"1\" }}\""
    }"#);
    for (name, regex, x) in [
        ("a.example.com.", "^(?P<x>a)[.]", "a"),
        ("b.example.com.", "^(?P<x>[a-z])[.]", "b"),
        ("42.example.com.", "^(?P<x>[0-9]+)[.]", "42"),
    ] {
        let m = answered(ask(&t, name, RecordType::TXT).await);
        match &m.answers[0].data {
            RData::TXT(txt) => {
                let parts: Vec<String> = txt
                    .txt_data
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).to_string())
                    .collect();
                assert_eq!(parts, vec![regex, x, x], "{name}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(is_servfail_code(
        &ask(&t, "_x.example.com.", RecordType::TXT).await
    ));
}

#[tokio::test]
async fn answer_additional_authority_sections_in_order() {
    let t = tp(r#"template IN MX example.com {
        match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com[.]$
        answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
        answer "{{ .Name }} 60 IN MX 20 backup.example.com."
        additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        additional "ns0.example.com. 60 IN A 203.0.113.8"
        authority "example.com. 60 IN NS ns0.example.com."
        authority "example.com. 60 IN NS ns1.example.com."
    }"#);
    let m = answered(ask(&t, "ip-10-1-2-3.example.com.", RecordType::MX).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(
        lines(&m.answers),
        vec![
            "ip-10-1-2-3.example.com. 60 IN MX 10 ip-10-1-2-3.example.com.",
            "ip-10-1-2-3.example.com. 60 IN MX 20 backup.example.com.",
        ]
    );
    assert_eq!(
        lines(&m.additionals),
        vec![
            "ip-10-1-2-3.example.com. 60 IN A 10.1.2.3",
            "ns0.example.com. 60 IN A 203.0.113.8",
        ]
    );
    assert_eq!(
        lines(&m.authorities),
        vec![
            "example.com. 60 IN NS ns0.example.com.",
            "example.com. 60 IN NS ns1.example.com.",
        ]
    );
}

#[tokio::test]
async fn rcodes_nxdomain_with_soa_and_servfail() {
    let t = tp(r#"template ANY ANY invalid {
        rcode NXDOMAIN
        authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
    }"#);
    let m = answered(ask(&t, "foo.invalid.", RecordType::A).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(
        lines(&m.authorities),
        vec!["invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"]
    );

    // rcode alone: an empty authoritative reply with that code.
    let t = tp("template IN AAAA {\n rcode NOERROR\n}");
    let m = answered(ask(&t, "x.example.com.", RecordType::AAAA).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty());
    let t = tp("template IN AAAA {\n rcode REFUSED\n}");
    let m = answered(ask(&t, "x.example.com.", RecordType::AAAA).await);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    // SERVFAIL is returned without a reply (the server writes an empty one, not authoritative).
    let t = tp("template IN A {\n rcode SERVFAIL\n answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n}");
    assert!(is_servfail_code(
        &ask(&t, "x.example.com.", RecordType::A).await
    ));
}

#[tokio::test]
async fn ederror_adds_an_extended_dns_error_option() {
    let t = tp(r#"template ANY ANY invalid {
        rcode NXDOMAIN
        ederror 21 "Blocked according to RFC2606"
    }"#);
    let req = request_from(
        with_edns(query("foo.invalid.", RecordType::A), 1232, false),
        "10.0.0.1:40000",
        Proto::Udp,
    );
    let m = answered(ask_req(&t, &req).await);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let edns = m.edns.expect("an OPT record");
    let mut want = vec![0u8, 21];
    want.extend_from_slice(b"Blocked according to RFC2606");
    assert_eq!(
        edns.options()
            .get(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15)),
        Some(&EdnsOption::Unknown(15, want))
    );
    // Without ederror no OPT is added by the plugin.
    let t = tp("template ANY ANY invalid {\n rcode NXDOMAIN\n}");
    let m = answered(ask_req(&t, &req).await);
    assert!(m.edns.is_none());
}

#[tokio::test]
async fn template_data_fields_in_answers() {
    let t = tp(r#"template IN TXT {
        match ^(?P<host>[a-z]+)[.](.*)$
        answer "{{ .Name }} 60 IN TXT \"{{ .Zone }}\" \"{{ .Remote }}\" \"{{ index .Match 1 }}\" \"{{ index .Match 2 }}\" \"{{ .Group.host }}\" \"{{ .Question.Name }}\" \"{{ .Question.Qtype }}\" \"{{ printf \"%s|%d\" .Type (len .Match) }}\""
    }"#);
    let req = request_from(
        query("WWW.Example.COM.", RecordType::TXT),
        "[2001:db8::7]:5353",
        Proto::Tcp,
    );
    let m = answered(ask_req(&t, &req).await);
    assert_eq!(
        m.answers[0].name,
        Name::from_ascii("www.example.com.").unwrap()
    );
    let want: Vec<Vec<u8>> = [
        "example.com.",
        "2001:db8::7",
        "www",
        "example.com.",
        "www",
        "WWW.Example.COM.",
        "16",
        "TXT|3",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    assert_eq!(
        m.answers[0].data,
        RData::TXT(TXT::from_bytes(want.iter().map(|v| v.as_slice()).collect()))
    );
}

#[tokio::test]
async fn failures_are_servfail_and_counted() {
    let server = "dns://:5301";
    let t = parse_in(
        &["failures.test."],
        r#"template IN A {
            match ^(x)[.]
            answer "{{ .Name }} 60 IN A {{ index .Match 2 }}"
        }"#,
    )
    .unwrap();
    let labels = [
        server,
        "failures.test.",
        "",
        "IN",
        "A",
        "answer",
        "{{.Name}} 60 IN A {{index .Match 2}}",
    ];
    let before = TEMPLATE_FAILURES.with_label_values(&labels).get();
    let matches_before = MATCHES
        .with_label_values(&[server, "failures.test.", "", "IN", "A"])
        .get();
    let mut req = request("x.failures.test.", RecordType::A);
    req.server = Arc::from(server);
    assert!(is_servfail_code(&ask_req(&t, &req).await));
    assert_eq!(
        TEMPLATE_FAILURES.with_label_values(&labels).get(),
        before + 1
    );
    assert_eq!(
        MATCHES
            .with_label_values(&[server, "failures.test.", "", "IN", "A"])
            .get(),
        matches_before + 1,
        "a match is counted before the RRs are rendered"
    );

    // An RR that renders but does not parse.
    let t = parse_in(
        &["failures.test."],
        r#"template IN A {
            match ^(y)[.]
            additional "{{ .Name }} 60 IN A 300.{{ index .Match 1 }}"
        }"#,
    )
    .unwrap();
    let labels = [
        server,
        "failures.test.",
        "",
        "IN",
        "A",
        "additional",
        "{{.Name}} 60 IN A 300.{{index .Match 1}}",
    ];
    let before = RR_FAILURES.with_label_values(&labels).get();
    let mut req = request("y.failures.test.", RecordType::A);
    req.server = Arc::from(server);
    assert!(is_servfail_code(&ask_req(&t, &req).await));
    assert_eq!(RR_FAILURES.with_label_values(&labels).get(), before + 1);

    // A fixed RR that does not parse loads (as in CoreDNS) and fails every matching query.
    let t = parse_in(
        &["failures.test."],
        "template IN A {\n answer \"z.failures.test. 60 IN A not-an-address\"\n}",
    )
    .unwrap();
    assert!(t.answer[0].fixed.is_none());
    let labels = [
        server,
        "failures.test.",
        "",
        "IN",
        "A",
        "answer",
        "z.failures.test. 60 IN A not-an-address",
    ];
    let before = RR_FAILURES.with_label_values(&labels).get();
    let mut req = request("z.failures.test.", RecordType::A);
    req.server = Arc::from(server);
    assert!(is_servfail_code(&ask_req(&t, &req).await));
    assert!(is_servfail_code(&ask_req(&t, &req).await));
    assert_eq!(RR_FAILURES.with_label_values(&labels).get(), before + 2);
}

#[tokio::test]
async fn zones_from_arguments_and_longest_match() {
    let t = parse_in(
        &["."],
        r#"template IN A example.org 10.0.0.0/24 {
            answer "{{ .Name }} 60 IN TXT \"{{ .Zone }}\""
        }"#,
    )
    .unwrap();
    for (name, zone) in [
        ("a.example.org.", Some("example.org.")),
        ("example.org.", Some("example.org.")),
        ("1.0.0.10.in-addr.arpa.", Some("0.0.10.in-addr.arpa.")),
        ("a.example.net.", None),
        ("badexample.org.", None),
    ] {
        let out = ask(&t, name, RecordType::A).await;
        match zone {
            None => assert!(passed_on(&out), "{name}"),
            Some(z) => {
                let m = answered(out);
                assert_eq!(lines(&m.answers), vec![format!("{name} 60 IN TXT {z}")]);
            }
        }
    }
}

#[test]
fn rr_text_as_miekg_new_rr_reads_it() {
    let ok = [
        (
            "a.example. 60 IN A 192.0.2.1",
            "a.example. 60 IN A 192.0.2.1",
        ),
        (
            "a.example. IN A 192.0.2.1",
            "a.example. 3600 IN A 192.0.2.1",
        ),
        ("a.example 60 A 192.0.2.1", "a.example. 60 IN A 192.0.2.1"),
        (
            "a.example. 60 in cname b.example",
            "a.example. 60 IN CNAME b.example.",
        ),
        (
            "a.example. 60 IN A 192.0.2.1\nb.example. 60 IN A 192.0.2.2",
            "a.example. 60 IN A 192.0.2.1",
        ),
        (
            "example. 60 IN SOA ns. host. (\n 1 2 3 4 5 )\nx. 1 IN A 1.1.1.1",
            "example. 60 IN SOA ns. host. 1 2 3 4 5",
        ),
        ("a. 60 IN TXT \"x;y\" ; comment", "a. 60 IN TXT x;y"),
        (
            "_sip._tcp.a. 60 IN SRV 1 2 5060 b.",
            "_sip._tcp.a. 60 IN SRV 1 2 5060 b.",
        ),
        ("a. 60 IN AAAA 2001:db8::1", "a. 60 IN AAAA 2001:db8::1"),
        (
            "1.0.0.10.in-addr.arpa. 60 IN PTR h.",
            "1.0.0.10.in-addr.arpa. 60 IN PTR h.",
        ),
    ];
    for (text, want) in ok {
        assert_eq!(
            parse_rr(text).map(|r| r.to_string()),
            Ok(want.to_string()),
            "{text:?}"
        );
    }
    assert_eq!(
        parse_rr("a.example. 60 IN CNAME b").map(|r| r.data),
        Ok(RData::CNAME(CNAME(Name::from_ascii("b.").unwrap())))
    );
    for bad in [
        "",
        "   ",
        "a. 60 IN A",
        "a. 60 IN A 1.2.3.400",
        "$INCLUDE /etc/passwd",
        "$ORIGIN x.",
        "a. 60 IN BOGUS x",
    ] {
        assert!(parse_rr(bad).is_err(), "{bad:?}");
    }
}
