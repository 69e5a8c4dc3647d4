//! `rewrite` tests: setup (CoreDNS's wording for every rule type's errors) and table tests per
//! rule type driving `Plugin::serve` with a recording backend behind it in `Next`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::rdata::{A, CNAME, MX, NS, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::edns0::{Action, Edns0Kind, LocalData, Variable};
use super::rules::{Matcher, Mode, ResponseRule, RuleKind};
use super::setup::{go_hex_decode, go_parse_uint, parse};
use super::*;
use crate::corefile::ParseError;
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::{block_with, query, request, request_from, with_edns};
use crate::plugin::{Next, Plugin, SetupCtx};

// ---- helpers ----

/// Runs the setup of every `rewrite` of a `.` block, as the server does; returns the handlers.
fn setup_all(text: &str) -> Result<Vec<Arc<dyn Plugin>>, ParseError> {
    let b = block_with(&["."], text);
    let mut config = BlockConfig::default();
    let mut out = Vec::new();
    for dir in b.directives.iter().filter(|d| d.name == "rewrite") {
        let mut ctx = SetupCtx {
            block: &b,
            config: &mut config,
        };
        if let Some(p) = setup(&mut dir.dispenser(), &mut ctx)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The handler the block's first `rewrite` builds from all of them.
fn rw(text: &str) -> Rewrite {
    let b = block_with(&["."], text);
    let mut config = BlockConfig::default();
    let ctx = SetupCtx {
        block: &b,
        config: &mut config,
    };
    parse(&mut b.directives[0].dispenser(), &ctx)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .expect("first occurrence builds the handler")
}

fn err(text: &str) -> String {
    match setup_all(text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a(owner: &str, ip: &str, ttl: u32) -> Record {
    Record::from_rdata(n(owner), ttl, RData::A(A(ip.parse().unwrap())))
}

fn cname(owner: &str, target: &str) -> Record {
    Record::from_rdata(n(owner), 60, RData::CNAME(CNAME(n(target))))
}

/// The backend behind `rewrite`: records every request it gets and answers with a closure.
struct Backend {
    seen: Mutex<Vec<Request>>,
    answer: Box<dyn Fn(&Request) -> Outcome + Send + Sync>,
}

impl Backend {
    fn new(answer: impl Fn(&Request) -> Outcome + Send + Sync + 'static) -> Arc<Backend> {
        Arc::new(Backend {
            seen: Mutex::new(Vec::new()),
            answer: Box::new(answer),
        })
    }

    /// Answers `req.reply()` (the question it got) with the records `records` builds for the
    /// name it got.
    fn records(f: impl Fn(&str) -> Vec<Record> + Send + Sync + 'static) -> Arc<Backend> {
        Backend::new(move |req| {
            let mut m = req.reply();
            m.answers = f(&req.name);
            Outcome::reply(m, "backend")
        })
    }

    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Request {
        self.seen().pop().expect("the backend was called")
    }
}

#[async_trait]
impl Plugin for Backend {
    fn name(&self) -> &'static str {
        "backend"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        self.seen.lock().unwrap().push(req.clone());
        (self.answer)(req)
    }
}

async fn run(rw: &Rewrite, req: &Request, backend: &Arc<Backend>) -> Outcome {
    let rest: Vec<Arc<dyn Plugin>> = vec![backend.clone()];
    rw.serve(req, Next::new(&rest)).await
}

fn reply(out: Outcome) -> Message {
    match out {
        Outcome::Reply { msg, .. } => msg,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn qname(m: &Message) -> String {
    m.queries[0].name().to_ascii()
}

/// `owner TYPE rdata` lines of a section, for compact assertions.
fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

fn option(m: &Message, code: u16) -> Option<EdnsOption> {
    m.edns
        .as_ref()?
        .options()
        .options
        .iter()
        .find(|(c, _)| u16::from(*c) == code)
        .map(|(_, o)| o.clone())
}

// ---- setup ----

#[test]
fn setup_errors_are_worded_as_coredns() {
    let p = "Corefile:1 - Error during parsing: ";
    let cases: &[(&str, &str)] = &[
        ("rewrite", "no rule type specified for rewrite"),
        ("rewrite stop", "stop rule must begin with a rule type"),
        (
            "rewrite continue",
            "continue rule must begin with a rule type",
        ),
        ("rewrite foo a b", r#"invalid rule type "foo""#),
        ("rewrite stop Bogus a b", r#"invalid rule type "Bogus""#),
        (
            "rewrite answer name a b",
            "response rewrites must begin with a name rule",
        ),
        (
            "rewrite type A",
            "type rules must have exactly two arguments",
        ),
        (
            "rewrite type A AAAA MX",
            "type rules must have exactly two arguments",
        ),
        ("rewrite type A bogus", r#"invalid type "BOGUS""#),
        (
            "rewrite class CH",
            "class rules must have exactly two arguments",
        ),
        ("rewrite class XX IN", r#"invalid class "XX""#),
        ("rewrite name a", "too few arguments for a name rule"),
        (
            "rewrite name foo a b",
            "name rule supports only exact, prefix, suffix, substring, and regex name matching, received: foo",
        ),
        (
            "rewrite name regex (a b",
            "invalid regex matching pattern: (a",
        ),
        (
            "rewrite name regex (a).b {1}.{2}.c",
            "the rewrite regex pattern ({1}.{2}.c) uses more subexpressions than its corresponding matching regex pattern ((a).b)",
        ),
        (
            "rewrite name exact a.com. b(.com.",
            "invalid regex matching pattern: b(.com.",
        ),
        (
            "rewrite name regex a b answer",
            "invalid arguments for regex rule",
        ),
        (
            "rewrite name regex a b x y",
            "exceeded the number of arguments for a non-answer rule argument for regex rule",
        ),
        (
            "rewrite name regex a b answer name x",
            "name answer rule for regex rule: 2 arguments required",
        ),
        (
            "rewrite name suffix a b answer bogus x",
            r#"invalid type "bogus" for answer rule for suffix rule"#,
        ),
        (
            "rewrite name regex (a) b answer value (x {1}",
            "value answer rule for regex rule: invalid regex matching pattern: (x",
        ),
        (
            "rewrite name regex a b answer auto answer name x y",
            "auto name answer rule cannot be combined with explicit name answer rules",
        ),
        (
            "rewrite name regex a b answer auto answer",
            "type missing for answer rule for regex rule",
        ),
        ("rewrite ttl a", "too few (1) arguments for a ttl rule"),
        (
            "rewrite ttl a b c d",
            "too many (4) arguments for a ttl rule",
        ),
        ("rewrite ttl a.com x", "invalid TTL 'x' for a ttl rule"),
        ("rewrite ttl a.com -", "invalid TTL '-' for a ttl rule"),
        (
            "rewrite ttl a.com 30-10",
            "invalid TTL '30-10' for a ttl rule",
        ),
        (
            "rewrite ttl a.com 1-2-3",
            "invalid TTL '1-2-3' for a ttl rule",
        ),
        ("rewrite ttl a.com +5", "invalid TTL '+5' for a ttl rule"),
        (
            "rewrite ttl a.com 4294967296",
            "invalid TTL '4294967296' for a ttl rule",
        ),
        (
            "rewrite ttl foo a.com 5",
            "ttl rule supports only exact, prefix, suffix, substring, and regex name matching",
        ),
        (
            "rewrite ttl regex ([ 5",
            "invalid regex pattern in a ttl rule: ([",
        ),
        (
            "rewrite rcode a.com 2",
            "too few (2) arguments for a rcode rule",
        ),
        (
            "rewrite rcode exact a.com 2 1 0",
            "too many (5) arguments for a rcode rule",
        ),
        (
            "rewrite rcode a.com random 0",
            "invalid matching RCODE 'random' for a rcode rule",
        ),
        (
            "rewrite rcode a.com SERVFAIL 24",
            "invalid replacement RCODE '24' for a rcode rule",
        ),
        (
            "rewrite rcode bogus a.com 2 0",
            "rcode rule supports only exact, prefix, suffix, substring, and regex name matching",
        ),
        (
            "rewrite rcode regex (x 2 0",
            "invalid regex pattern in a rcode rule: (x",
        ),
        ("rewrite cname a", "too few (1) arguments for a cname rule"),
        (
            "rewrite cname exact a b c",
            "too many (4) arguments for a cname rule",
        ),
        (
            "rewrite cname bogus a b",
            "unknown cname rewrite type: bogus",
        ),
        (
            "rewrite cname regex (x b",
            "invalid regex pattern in a cname rule: (x",
        ),
        ("rewrite edns0 local", "too few arguments for an EDNS0 rule"),
        ("rewrite edns0 local add 1 2", r#"invalid action: "add""#),
        (
            "rewrite edns0 bogus set 1 2",
            r#"invalid rule type "bogus""#,
        ),
        (
            "rewrite edns0 local set 0xffee",
            "EDNS0 local rules require exactly three args",
        ),
        (
            "rewrite edns0 local unset 0xffee x",
            "EDNS0 local unset rules require exactly one arg",
        ),
        (
            "rewrite edns0 local set zz abc",
            r#"strconv.ParseUint: parsing "zz": invalid syntax"#,
        ),
        (
            "rewrite edns0 local set 0x10000 abc",
            r#"strconv.ParseUint: parsing "0x10000": value out of range"#,
        ),
        (
            "rewrite edns0 local set 0xffee 0x6z",
            "encoding/hex: invalid byte: U+007A 'z'",
        ),
        (
            "rewrite edns0 local set 0xffee 0x616",
            "encoding/hex: odd length hex string",
        ),
        (
            "rewrite edns0 local set 0xffee {bogus}",
            r#"unsupported variable name "{bogus}""#,
        ),
        (
            "rewrite edns0 nsid set x",
            "EDNS0 NSID rules do not accept args",
        ),
        (
            "rewrite edns0 subnet set 24",
            "EDNS0 subnet rules require exactly three args",
        ),
        (
            "rewrite edns0 subnet set 33 56",
            "invalid IPv4 bit mask length 33",
        ),
        (
            "rewrite edns0 subnet set 24 129",
            "invalid IPv6 bit mask length 129",
        ),
        (
            "rewrite edns0 local unset 0xffee revert",
            "the unset action cannot be reverted",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), format!("{p}{want}"), "{text}");
    }
    let long = format!("rewrite name regex {} x", "a".repeat(10001));
    assert!(
        err(&long).ends_with("regex pattern too long: 10001 characters, at most 10000 allowed")
    );
}

#[test]
fn errors_name_the_line_of_their_occurrence() {
    assert_eq!(
        err("rewrite name a b\nwhoami\nrewrite type A NOPE"),
        "Corefile:3 - Error during parsing: invalid type \"NOPE\""
    );
    assert_eq!(
        err("whoami\nrewrite stop {\n  name regex (x y\n}"),
        "Corefile:2 - Error during parsing: invalid regex matching pattern: (x"
    );
    assert_eq!(
        err("rewrite name a b {\n  answer auto\n}"),
        "Corefile:2 - Error during parsing: unexpected block after the rule \"name a b\": a block is only read after `rewrite`, `rewrite stop` or `rewrite continue`"
    );
}

#[test]
fn all_lines_of_a_block_make_one_handler_in_file_order() {
    let handlers = setup_all(
        "rewrite name a.com b.com\nwhoami\nrewrite continue type AAAA A\nrewrite ttl c.com 5",
    )
    .unwrap();
    assert_eq!(handlers.len(), 1, "later occurrences add no handler");
    let r =
        rw("rewrite name a.com b.com\nwhoami\nrewrite continue type AAAA A\nrewrite ttl c.com 5");
    assert_eq!(r.rules.len(), 3);
    assert!(matches!(r.rules[0].kind, RuleKind::Name(_)));
    assert_eq!(r.rules[0].mode, Mode::Stop, "stop is the default");
    assert!(matches!(
        r.rules[1].kind,
        RuleKind::Type {
            from: RecordType::AAAA,
            to: RecordType::A
        }
    ));
    assert_eq!(r.rules[1].mode, Mode::Continue);
    assert!(matches!(r.rules[2].kind, RuleKind::Ttl { .. }));
}

#[test]
fn runs_after_cache_and_before_hosts() {
    let at = |n| crate::plugin::order_of(n).unwrap();
    assert_eq!(
        at("rewrite"),
        at("cache") + 1,
        "CoreDNS plugin.cfg: cache, rewrite"
    );
    assert!(at("rewrite") < at("hosts"));
    assert!(!crate::plugin::directive("rewrite").unwrap().once);
}

#[test]
fn names_are_normalized_and_blocks_form_one_rule() {
    let r = rw("rewrite name Example.NET example.org");
    let RuleKind::Name(rule) = &r.rules[0].kind else {
        panic!()
    };
    assert!(matches!(&rule.matcher, Matcher::Exact(f) if f == "example.net."));
    assert_eq!(rule.replacement, "example.org.");
    assert!(rule.auto, "exact rules always map the answer back");

    let r = rw(
        "rewrite stop {\n  name regex (.*)-(us-west-1)\\.coredns\\.rocks {1}.service.{2}.consul\n  answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.coredns.rocks\n}",
    );
    assert_eq!(r.rules.len(), 1);
    assert_eq!(r.rules[0].mode, Mode::Stop);
    let RuleKind::Name(rule) = &r.rules[0].kind else {
        panic!()
    };
    assert!(
        matches!(&rule.matcher, Matcher::Regex(re) if re.as_str() == r"(.*)-(us-west-1)\.coredns\.rocks")
    );
    assert_eq!(rule.replacement, "{1}.service.{2}.consul.");
    assert!(!rule.auto);
    assert_eq!(rule.answers.len(), 1);
    assert!(matches!(&rule.answers[0], ResponseRule::Name(_)));

    // After the first option the `answer` keyword may be left out.
    let r = rw(
        "rewrite name regex (.*)\\.a\\.com {1}.b.com answer auto value (.*)\\.b\\.com {1}.a.com",
    );
    let RuleKind::Name(rule) = &r.rules[0].kind else {
        panic!()
    };
    assert!(rule.auto);
    assert!(matches!(&rule.answers[..], [ResponseRule::Value(_)]));
}

#[test]
fn edns0_rules_parse() {
    let kinds = |text: &str| {
        let r = rw(text);
        let RuleKind::Edns0(e) = &r.rules[0].kind else {
            panic!("{text}")
        };
        (e.action, e.kind.clone(), e.revert)
    };
    assert_eq!(
        kinds("rewrite edns0 local set 0xffee 0x61626364"),
        (
            Action::Set,
            Edns0Kind::Local {
                code: 0xffee,
                data: LocalData::Bytes(b"abcd".to_vec())
            },
            false
        )
    );
    assert_eq!(
        kinds("rewrite edns0 LOCAL APPEND 65518 abcd revert"),
        (
            Action::Append,
            Edns0Kind::Local {
                code: 0xffee,
                data: LocalData::Bytes(b"abcd".to_vec())
            },
            true
        )
    );
    assert_eq!(
        kinds("rewrite edns0 local replace 0xffee {client_ip}"),
        (
            Action::Replace,
            Edns0Kind::Local {
                code: 0xffee,
                data: LocalData::Variable(Variable::ClientIp)
            },
            false
        )
    );
    assert_eq!(
        kinds("rewrite edns0 local set 0xffee {some-plugin/some-label}").1,
        Edns0Kind::Local {
            code: 0xffee,
            data: LocalData::Variable(Variable::Metadata("some-plugin/some-label".into()))
        }
    );
    assert_eq!(
        kinds("rewrite edns0 nsid set"),
        (Action::Set, Edns0Kind::Nsid, false)
    );
    assert_eq!(
        kinds("rewrite edns0 subnet set 24 56"),
        (Action::Set, Edns0Kind::Subnet { v4: 24, v6: 56 }, false)
    );
    assert_eq!(kinds("rewrite edns0 subnet unset").0, Action::Unset);
    assert_eq!(kinds("rewrite edns0 local unset 0xffee").0, Action::Unset);
}

#[test]
fn go_number_and_hex_parsing() {
    assert_eq!(go_parse_uint("65518", 16), Ok(65518));
    assert_eq!(go_parse_uint("0xffee", 16), Ok(0xffee));
    assert_eq!(go_parse_uint("0XFFEE", 16), Ok(0xffee));
    assert_eq!(go_parse_uint("0o17", 16), Ok(15));
    assert_eq!(go_parse_uint("017", 16), Ok(15));
    assert_eq!(go_parse_uint("0b101", 16), Ok(5));
    assert_eq!(go_parse_uint("0", 16), Ok(0));
    assert_eq!(go_parse_uint("1_000", 16), Ok(1000));
    for bad in ["", "08", "0x", "-1", "+1", "_1", "1__0", "1_", "1.5"] {
        assert_eq!(
            go_parse_uint(bad, 16),
            Err(format!(
                "strconv.ParseUint: parsing {bad:?}: invalid syntax"
            )),
            "{bad}"
        );
    }
    assert_eq!(
        go_parse_uint("65536", 16),
        Err(r#"strconv.ParseUint: parsing "65536": value out of range"#.to_string())
    );
    assert_eq!(go_hex_decode("61626364"), Ok(b"abcd".to_vec()));
    assert_eq!(go_hex_decode(""), Ok(vec![]));
    assert_eq!(
        go_hex_decode("6"),
        Err("encoding/hex: odd length hex string".to_string())
    );
    assert_eq!(
        go_hex_decode("g"),
        Err("encoding/hex: invalid byte: U+0067 'g'".to_string()),
        "an invalid byte is reported before an odd length, as Go does"
    );
}

// ---- name rules ----

#[tokio::test]
async fn exact_name_rewrites_the_question_and_maps_the_answer_back() {
    let rw = rw("rewrite name exact a.example.com b.example.org");
    let backend = Backend::records(|name| {
        vec![
            cname(name, &format!("www.{name}")),
            a(&format!("www.{name}"), "192.0.2.1", 300),
        ]
    });
    let req = request("A.Example.COM.", RecordType::A);
    let out = run(&rw, &req, &backend).await;

    let seen = backend.last();
    assert_eq!(
        seen.name, "b.example.org.",
        "the chain sees the rewritten name"
    );
    assert_eq!(qname(&seen.msg), "b.example.org.");
    assert_eq!(
        req.name, "a.example.com.",
        "the original request is untouched"
    );

    let m = reply(out);
    assert_eq!(
        qname(&m),
        "A.Example.COM.",
        "the client's question, as asked"
    );
    assert_eq!(
        lines(&m.answers),
        vec![
            "a.example.com. 60 CNAME www.a.example.com.",
            "www.a.example.com. 300 A 192.0.2.1"
        ]
    );
}

#[tokio::test]
async fn name_match_types_table() {
    struct Case {
        rule: &'static str,
        asked: &'static str,
        seen: Option<&'static str>,
        /// The owner name of the backend's A record (its question name) as the client sees it.
        owner: &'static str,
    }
    let cases = [
        Case {
            rule: "rewrite name prefix foo. bar.",
            asked: "foo.example.org.",
            seen: Some("bar.example.org."),
            owner: "bar.example.org.",
        },
        Case {
            rule: "rewrite name prefix foo. bar. answer auto",
            asked: "foo.example.org.",
            seen: Some("bar.example.org."),
            owner: "foo.example.org.",
        },
        Case {
            rule: "rewrite name suffix .schmoogle.com. .google.com.",
            asked: "www.schmoogle.com.",
            seen: Some("www.google.com."),
            owner: "www.google.com.",
        },
        Case {
            rule: "rewrite name suffix .schmoogle.com. .google.com. answer auto",
            asked: "www.schmoogle.com.",
            seen: Some("www.google.com."),
            owner: "www.schmoogle.com.",
        },
        Case {
            rule: "rewrite name substring service.us-west-1.example.org service.us-west-1.consul",
            asked: "ftp.service.us-west-1.example.org.",
            seen: Some("ftp.service.us-west-1.consul."),
            owner: "ftp.service.us-west-1.consul.",
        },
        Case {
            rule: "rewrite name substring service.us-west-1.example.org service.us-west-1.consul answer auto",
            asked: "ftp.service.us-west-1.example.org.",
            seen: Some("ftp.service.us-west-1.consul."),
            owner: "ftp.service.us-west-1.example.org.",
        },
        Case {
            rule: r"rewrite name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul",
            asked: "ftp-us-west-1.example.org.",
            seen: Some("ftp.service.us-west-1.consul."),
            owner: "ftp.service.us-west-1.consul.",
        },
        Case {
            rule: r"rewrite name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul answer auto",
            asked: "ftp-us-west-1.example.org.",
            seen: Some("ftp.service.us-west-1.consul."),
            owner: "ftp-us-west-1.example.org.",
        },
        Case {
            rule: r"rewrite name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul answer name (.*)\.service\.(us-west-1)\.consul {1}-{2}.example.org",
            asked: "ftp-us-west-1.example.org.",
            seen: Some("ftp.service.us-west-1.consul."),
            owner: "ftp-us-west-1.example.org.",
        },
        Case {
            rule: "rewrite name exact other.org. b.org.",
            asked: "a.org.",
            seen: None,
            owner: "a.org.",
        },
    ];
    for c in cases {
        let rw = rw(c.rule);
        let backend = Backend::records(|name| vec![a(name, "192.0.2.7", 30)]);
        let req = request(c.asked, RecordType::A);
        let m = reply(run(&rw, &req, &backend).await);
        assert_eq!(
            backend.last().name,
            c.seen.unwrap_or(c.asked),
            "{}: the name the chain sees",
            c.rule
        );
        assert_eq!(
            qname(&m),
            c.asked,
            "{}: the question is the client's",
            c.rule
        );
        assert_eq!(
            lines(&m.answers),
            vec![format!("{} 30 A 192.0.2.7", c.owner)],
            "{}",
            c.rule
        );
    }
}

#[tokio::test]
async fn answer_value_rewrites_name_valued_rdata_in_every_section() {
    let rw = rw(
        r"rewrite stop name suffix .arpa .arpa answer auto answer value (.*)\.service\.consul\. {1}.coredns.rocks.",
    );
    let backend = Backend::new(|req| {
        let mut m = req.reply();
        let owner = req.name.clone();
        let target = n("ftp-us-west-1.service.consul.");
        m.answers = vec![
            Record::from_rdata(n(&owner), 60, RData::PTR(PTR(target.clone()))),
            Record::from_rdata(n(&owner), 60, RData::MX(MX::new(10, target.clone()))),
            Record::from_rdata(
                n(&owner),
                60,
                RData::SRV(SRV::new(1, 2, 53, target.clone())),
            ),
            Record::from_rdata(n(&owner), 60, RData::CNAME(CNAME(n("other.example.")))),
        ];
        m.authorities = vec![
            Record::from_rdata(n("arpa."), 60, RData::NS(NS(target.clone()))),
            Record::from_rdata(
                n("arpa."),
                60,
                RData::SOA(SOA::new(
                    target.clone(),
                    n("hostmaster.service.consul."),
                    1,
                    2,
                    3,
                    4,
                    5,
                )),
            ),
        ];
        Outcome::reply(m, "backend")
    });
    let req = request("30.30.30.10.in-addr.arpa.", RecordType::PTR);
    let m = reply(run(&rw, &req, &backend).await);
    assert_eq!(
        lines(&m.answers),
        vec![
            "30.30.30.10.in-addr.arpa. 60 PTR ftp-us-west-1.coredns.rocks.",
            "30.30.30.10.in-addr.arpa. 60 MX 10 ftp-us-west-1.coredns.rocks.",
            "30.30.30.10.in-addr.arpa. 60 SRV 1 2 53 ftp-us-west-1.coredns.rocks.",
            "30.30.30.10.in-addr.arpa. 60 CNAME other.example.",
        ]
    );
    assert_eq!(
        lines(&m.authorities),
        vec![
            "arpa. 60 NS ftp-us-west-1.coredns.rocks.",
            "arpa. 60 SOA ftp-us-west-1.coredns.rocks. hostmaster.service.consul. 1 2 3 4 5",
        ],
        "the SOA's MNAME is a value; its RNAME is not"
    );
}

#[tokio::test]
async fn stop_ends_the_rule_list_and_continue_goes_on() {
    let backend = Backend::records(|name| vec![a(name, "192.0.2.9", 60)]);

    // continue, then stop: both apply; the answer is mapped back through both, in reverse.
    let both =
        rw("rewrite continue name exact a.test. b.test.\nrewrite name exact b.test. c.test.");
    let m = reply(run(&both, &request("a.test.", RecordType::A), &backend).await);
    assert_eq!(backend.last().name, "c.test.");
    assert_eq!(lines(&m.answers), vec!["a.test. 60 A 192.0.2.9"]);

    // stop (the default) after a match: the second rule never sees the query.
    let first = rw("rewrite name exact a.test. b.test.\nrewrite name exact b.test. c.test.");
    let m = reply(run(&first, &request("a.test.", RecordType::A), &backend).await);
    assert_eq!(backend.last().name, "b.test.");
    assert_eq!(lines(&m.answers), vec!["a.test. 60 A 192.0.2.9"]);

    // A stop rule that does not match does not stop.
    let skip = rw("rewrite stop name exact x.test. y.test.\nrewrite name exact a.test. b.test.");
    run(&skip, &request("a.test.", RecordType::A), &backend).await;
    assert_eq!(backend.last().name, "b.test.");
}

#[tokio::test]
async fn unmatched_queries_pass_through_untouched() {
    let rw = rw("rewrite name exact a.test. b.test.\nrewrite type MX A\nrewrite ttl x.test. 5");
    let backend = Backend::records(|name| vec![a(name, "192.0.2.1", 77)]);
    let req = request("z.test.", RecordType::A);
    let out = run(&rw, &req, &backend).await;
    assert_eq!(out.plugin(), "backend");
    let m = reply(out);
    assert_eq!(qname(&m), "z.test.");
    assert_eq!(lines(&m.answers), vec!["z.test. 77 A 192.0.2.1"]);
    assert_eq!(
        backend.last().msg,
        req.msg,
        "the chain got the request as sent"
    );
}

#[tokio::test]
async fn an_invalid_rewritten_name_is_servfail() {
    let rw = rw(r"rewrite name regex (.*)\.long\.test {1}{1}{1}.long.test");
    let backend = Backend::records(|_| vec![]);
    let label = "x".repeat(30);
    let out = run(
        &rw,
        &request(&format!("{label}.long.test."), RecordType::A),
        &backend,
    )
    .await;
    assert!(
        matches!(
            out,
            Outcome::Code {
                rcode: ResponseCode::ServFail,
                plugin: "rewrite"
            }
        ),
        "{out:?}"
    );
    assert!(backend.seen().is_empty(), "the chain is not called");
}

// ---- type and class ----

#[tokio::test]
async fn type_rewrite_keeps_the_asked_type_in_the_question() {
    let rw = rw("rewrite stop type AAAA A");
    let backend = Backend::records(|name| vec![a(name, "192.0.2.10", 3600)]);
    let m = reply(
        run(
            &rw,
            &request("www.example.org.", RecordType::AAAA),
            &backend,
        )
        .await,
    );
    assert_eq!(
        backend.last().qtype(),
        RecordType::A,
        "the chain is asked for A"
    );
    assert_eq!(
        m.queries[0].query_type(),
        RecordType::AAAA,
        "question as asked"
    );
    assert_eq!(
        lines(&m.answers),
        vec!["www.example.org. 3600 A 192.0.2.10"],
        "the A records answer the AAAA question, as in CoreDNS"
    );
    // Other types are not touched.
    let m = reply(run(&rw, &request("www.example.org.", RecordType::MX), &backend).await);
    assert_eq!(backend.last().qtype(), RecordType::MX);
    assert_eq!(m.queries[0].query_type(), RecordType::MX);
}

#[tokio::test]
async fn continue_without_response_rules_leaves_the_reply_as_written() {
    // CoreDNS only reverts the question after a `stop` rule or with response rules pending.
    let rw = rw("rewrite continue type AAAA A");
    let backend = Backend::records(|name| vec![a(name, "192.0.2.10", 60)]);
    let m = reply(
        run(
            &rw,
            &request("www.example.org.", RecordType::AAAA),
            &backend,
        )
        .await,
    );
    assert_eq!(m.queries[0].query_type(), RecordType::A);
}

#[tokio::test]
async fn class_rewrite() {
    let rw = rw("rewrite class CH IN");
    let backend = Backend::records(|_| vec![]);
    let mut q = query("version.bind.", RecordType::TXT);
    q.queries[0].set_query_class(DNSClass::CH);
    let req = request_from(q, "10.0.0.1:40000", Proto::Udp);
    let m = reply(run(&rw, &req, &backend).await);
    assert_eq!(backend.last().qclass(), DNSClass::IN);
    assert_eq!(m.queries[0].query_class(), DNSClass::CH);
    // IN queries stay IN.
    run(&rw, &request("a.test.", RecordType::A), &backend).await;
    assert_eq!(backend.last().qclass(), DNSClass::IN);
}

// ---- ttl ----

#[tokio::test]
async fn ttl_rules_table() {
    let records = |name: &str| {
        vec![
            a(name, "192.0.2.1", 10),
            a(name, "192.0.2.2", 100),
            a(name, "192.0.2.3", 500),
        ]
    };
    let cases: &[(&str, &str, [u32; 3])] = &[
        ("rewrite ttl a.test 15", "a.test.", [15, 15, 15]),
        (
            "rewrite ttl exact a.test. 30-300",
            "a.test.",
            [30, 100, 300],
        ),
        ("rewrite ttl a.test 30-", "a.test.", [30, 100, 500]),
        ("rewrite ttl a.test -30", "a.test.", [10, 30, 30]),
        ("rewrite ttl prefix www 0", "www.a.test.", [0, 0, 0]),
        ("rewrite ttl suffix .test 7", "b.a.test.", [7, 7, 7]),
        ("rewrite ttl substring .a. 8", "b.a.test.", [8, 8, 8]),
        (
            r"rewrite ttl regex (.*)\.coredns\.rocks 15",
            "x.coredns.rocks.",
            [15, 15, 15],
        ),
        ("rewrite ttl b.test 15", "a.test.", [10, 100, 500]),
    ];
    for (rule, asked, want) in cases {
        let rw = rw(rule);
        let backend = Backend::new(move |req| {
            let mut m = req.reply();
            m.answers = records(&req.name);
            m.authorities = vec![a(&req.name, "192.0.2.4", 100)];
            m.additionals = vec![a(&req.name, "192.0.2.5", 100)];
            Outcome::reply(m, "backend")
        });
        let m = reply(run(&rw, &request(asked, RecordType::A), &backend).await);
        let ttls: Vec<u32> = m.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, want, "{rule}");
        assert_eq!(
            backend.last().name,
            *asked,
            "ttl rules leave the question alone"
        );
        // The middle answer started at 100, as the authority and additional records did.
        let expect = want[1];
        assert_eq!(m.authorities[0].ttl, expect, "{rule}: authority too");
        assert_eq!(m.additionals[0].ttl, expect, "{rule}: additional too");
    }
}

// ---- rcode ----

#[tokio::test]
async fn rcode_rules_table() {
    struct Case {
        rule: &'static str,
        asked: &'static str,
        backend: ResponseCode,
        /// Whether the backend writes a reply (with a record) or only returns the code.
        writes: bool,
        want: ResponseCode,
    }
    let cases = [
        Case {
            rule: "rewrite rcode a.test SERVFAIL NOERROR",
            asked: "a.test.",
            backend: ResponseCode::ServFail,
            writes: true,
            want: ResponseCode::NoError,
        },
        Case {
            rule: "rewrite rcode a.test 2 0",
            asked: "a.test.",
            backend: ResponseCode::ServFail,
            writes: false,
            want: ResponseCode::NoError,
        },
        Case {
            rule: r"rewrite continue rcode regex (.*)\.coredns\.rocks servfail nxdomain",
            asked: "x.coredns.rocks.",
            backend: ResponseCode::ServFail,
            writes: false,
            want: ResponseCode::NXDomain,
        },
        Case {
            rule: "rewrite rcode suffix .test NXDOMAIN NOERROR",
            asked: "a.test.",
            backend: ResponseCode::ServFail,
            writes: true,
            want: ResponseCode::ServFail,
        },
        Case {
            rule: "rewrite rcode b.test SERVFAIL NOERROR",
            asked: "a.test.",
            backend: ResponseCode::ServFail,
            writes: true,
            want: ResponseCode::ServFail,
        },
    ];
    for c in cases {
        let rw = rw(c.rule);
        let (rcode, writes) = (c.backend, c.writes);
        let backend = Backend::new(move |req| {
            if writes {
                let mut m = req.reply_code(rcode);
                m.answers = vec![a(&req.name, "192.0.2.1", 5)];
                Outcome::reply(m, "backend")
            } else {
                Outcome::code(rcode, "backend")
            }
        });
        let req = request(c.asked, RecordType::A);
        let out = run(&rw, &req, &backend).await;
        assert_eq!(out.rcode(), Some(c.want), "{}", c.rule);
        if !c.writes && c.want != c.backend {
            assert_eq!(
                out.plugin(),
                "rewrite",
                "{}: rewrite wrote the reply",
                c.rule
            );
            let m = reply(out);
            assert_eq!(qname(&m), c.asked);
            assert_eq!(m.metadata.id, req.id());
        }
    }
}

// ---- edns0 ----

/// Runs `rule` for `req` and returns the request the chain saw.
async fn edns_seen(rule: &str, req: &Request) -> Request {
    let rw = rw(rule);
    let backend = Backend::records(|_| vec![]);
    run(&rw, req, &backend).await;
    backend.last()
}

fn edns_req(options: &[(u16, &[u8])]) -> Request {
    let mut m = with_edns(query("www.example.org.", RecordType::A), 1232, false);
    for (code, data) in options {
        m.edns
            .as_mut()
            .unwrap()
            .options_mut()
            .insert(EdnsOption::Unknown(*code, data.to_vec()));
    }
    request_from(m, "10.1.2.3:40000", Proto::Udp)
}

#[tokio::test]
async fn edns0_local_actions_table() {
    let plain = || request("www.example.org.", RecordType::A);
    let with = || edns_req(&[(0xffee, b"old")]);
    // (rule, request, option data the chain sees)
    let cases: Vec<(&str, Request, Option<&[u8]>)> = vec![
        (
            "rewrite edns0 local set 0xffee 0x61626364",
            plain(),
            Some(b"abcd"),
        ),
        ("rewrite edns0 local set 0xffee abcd", with(), Some(b"abcd")),
        (
            "rewrite edns0 local append 0xffee abcd",
            plain(),
            Some(b"abcd"),
        ),
        (
            "rewrite edns0 local append 0xffee abcd",
            with(),
            Some(b"old"),
        ),
        ("rewrite edns0 local replace 0xffee abcd", plain(), None),
        (
            "rewrite edns0 local replace 0xffee abcd",
            with(),
            Some(b"abcd"),
        ),
        ("rewrite edns0 local unset 0xffee", with(), None),
    ];
    for (rule, req, want) in cases {
        let seen = edns_seen(rule, &req).await;
        assert_eq!(
            option(&seen.msg, 0xffee),
            want.map(|d| EdnsOption::Unknown(0xffee, d.to_vec())),
            "{rule} (request had EDNS: {})",
            req.msg.edns.is_some()
        );
        let edns = seen
            .msg
            .edns
            .as_ref()
            .expect("an edns0 rule leaves an OPT record");
        let want_size = if req.msg.edns.is_some() { 1232 } else { 4096 };
        assert_eq!(edns.max_payload(), want_size, "{rule}");
        let copies = edns
            .options()
            .options
            .iter()
            .filter(|(c, _)| u16::from(*c) == 0xffee)
            .count();
        assert!(copies <= 1, "{rule}: never two options with one code");
    }
}

#[tokio::test]
async fn edns0_local_variables() {
    let mut q = query("WWW.example.org.", RecordType::AAAA);
    q.metadata.id = 1;
    let req = Request::new(
        q,
        "192.0.2.44:5353".parse().unwrap(),
        "198.51.100.1:53".parse().unwrap(),
        Proto::Tcp,
        40,
    );
    let cases: &[(&str, &[u8])] = &[
        ("{qname}", b"WWW.example.org."),
        ("{qtype}", &[0, 28]),
        ("{client_ip}", &[192, 0, 2, 44]),
        ("{client_port}", &[0x14, 0xe9]),
        ("{protocol}", b"tcp"),
        ("{server_ip}", &[198, 51, 100, 1]),
        ("{server_port}", &[0, 53]),
    ];
    for (var, want) in cases {
        let seen = edns_seen(&format!("rewrite edns0 local set 0xffee {var}"), &req).await;
        assert_eq!(
            option(&seen.msg, 0xffee),
            Some(EdnsOption::Unknown(0xffee, want.to_vec())),
            "{var}"
        );
    }
    let v6 = Request::new(
        query("a.test.", RecordType::A),
        "[2001:db8::7]:1000".parse().unwrap(),
        "[::1]:53".parse().unwrap(),
        Proto::Udp,
        40,
    );
    let seen = edns_seen("rewrite edns0 local set 0xffee {client_ip}", &v6).await;
    assert_eq!(
        option(&seen.msg, 0xffee),
        Some(EdnsOption::Unknown(
            0xffee,
            "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec()
        ))
    );
    // Metadata labels never resolve (no metadata plugin): the request stays as it was.
    let seen = edns_seen("rewrite edns0 local set 0xffee {a/b}", &req).await;
    assert!(seen.msg.edns.is_none());
}

#[tokio::test]
async fn edns0_nsid_and_subnet() {
    let seen = edns_seen("rewrite edns0 nsid set", &request("a.test.", RecordType::A)).await;
    assert!(matches!(option(&seen.msg, 3), Some(EdnsOption::NSID(p)) if p.as_ref().is_empty()));

    let v4 = request_from(query("a.test.", RecordType::A), "10.1.2.3:4000", Proto::Udp);
    let seen = edns_seen("rewrite edns0 subnet set 24 56", &v4).await;
    assert_eq!(
        option(&seen.msg, 8),
        Some(EdnsOption::Subnet(ClientSubnet::new(
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 0)),
            24,
            0
        )))
    );
    let v6 = request_from(
        query("a.test.", RecordType::A),
        "[2001:db8:aaaa:bbbb:cccc::1]:4000",
        Proto::Udp,
    );
    let seen = edns_seen("rewrite edns0 subnet set 24 56", &v6).await;
    assert_eq!(
        option(&seen.msg, 8),
        Some(EdnsOption::Subnet(ClientSubnet::new(
            IpAddr::from_str("2001:db8:aaaa:bb00::").unwrap(),
            56,
            0
        )))
    );
    // replace: only an existing option is overwritten.
    let mut m = with_edns(query("a.test.", RecordType::A), 1232, false);
    m.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)),
            24,
            0,
        )));
    let with_ecs = request_from(m, "10.9.8.7:4000", Proto::Udp);
    let seen = edns_seen("rewrite edns0 subnet replace 16 56", &with_ecs).await;
    assert_eq!(
        option(&seen.msg, 8),
        Some(EdnsOption::Subnet(ClientSubnet::new(
            IpAddr::V4(Ipv4Addr::new(10, 9, 0, 0)),
            16,
            0
        )))
    );
    let seen = edns_seen("rewrite edns0 subnet unset", &with_ecs).await;
    assert_eq!(option(&seen.msg, 8), None);
}

#[tokio::test]
async fn edns0_revert_takes_the_option_out_of_the_reply() {
    // A backend that echoes the request's options into its reply.
    let echo = || {
        Backend::new(|req| {
            let mut m = req.reply();
            m.edns = req.msg.edns.clone();
            Outcome::reply(m, "backend")
        })
    };
    let rule = rw("rewrite edns0 local set 0xffee abcd revert");
    let backend = echo();
    let m = reply(run(&rule, &edns_req(&[]), &backend).await);
    assert!(option(&backend.last().msg, 0xffee).is_some());
    assert_eq!(option(&m, 0xffee), None, "added: taken out again");

    let m = reply(run(&rule, &edns_req(&[(0xffee, b"old")]), &backend).await);
    assert_eq!(
        option(&m, 0xffee),
        Some(EdnsOption::Unknown(0xffee, b"old".to_vec())),
        "replaced: the client's value again"
    );

    let keep = rw("rewrite edns0 local set 0xffee abcd");
    let m = reply(run(&keep, &edns_req(&[]), &echo()).await);
    assert_eq!(
        option(&m, 0xffee),
        Some(EdnsOption::Unknown(0xffee, b"abcd".to_vec())),
        "without revert the reply is left alone"
    );
}

// ---- cname ----

#[tokio::test]
async fn cname_target_rewrite_resolves_the_new_target_through_the_chain() {
    let rw = rw(r"rewrite cname regex (.*)\.cdn\.example\.net\. {1}.other.cdn.com.");
    let backend = Backend::new(|req| {
        let mut m = req.reply();
        match req.name.as_str() {
            "my-app.com." => {
                m.answers = vec![
                    cname("my-app.com.", "my-app.com.cdn.example.net."),
                    a("my-app.com.cdn.example.net.", "20.2.0.1", 300),
                    a("my-app.com.cdn.example.net.", "20.2.0.2", 300),
                ]
            }
            "my-app.com.other.cdn.com." => {
                m.answers = vec![
                    a("my-app.com.other.cdn.com.", "30.3.1.2", 100),
                    a("unrelated.example.", "30.3.1.3", 100),
                ]
            }
            _ => {}
        }
        Outcome::reply(m, "backend")
    });
    let m = reply(run(&rw, &request("my-app.com.", RecordType::A), &backend).await);
    assert_eq!(qname(&m), "my-app.com.");
    assert_eq!(
        lines(&m.answers),
        vec![
            "my-app.com. 60 CNAME my-app.com.other.cdn.com.",
            "my-app.com.other.cdn.com. 100 A 30.3.1.2",
        ]
    );
    let seen: Vec<(String, RecordType)> = backend
        .seen()
        .iter()
        .map(|r| (r.name.clone(), r.qtype()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("my-app.com.".to_string(), RecordType::A),
            ("my-app.com.other.cdn.com.".to_string(), RecordType::A)
        ]
    );
    // A reply without a matching CNAME is left alone, and nothing more is looked up.
    let m = reply(run(&rw, &request("other.org.", RecordType::A), &backend).await);
    assert!(m.answers.is_empty());
    assert_eq!(backend.seen().len(), 3);
}
