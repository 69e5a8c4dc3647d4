//! `rewrite` in the real binary, queried with real `dig`: the pod-gateway rule
//! `rewrite stop type AAAA A` in front of `hosts`, and name rewrites whose answers are mapped back
//! to the name the client asked for.

mod support;

use support::*;

const COREFILE: &str = r#".:0 {
    cache 30
    rewrite stop type AAAA A
    rewrite name regex (.*)\.corp\.test {1}.example.org answer auto
    rewrite name exact alias.test www.example.org
    hosts {
        192.0.2.10 www.example.org
        192.0.2.11 api.example.org
    }
}
"#;

/// `dig @exdns NAME TYPE` over `transport`; returns dig's output.
fn dig(ex: &Exdns, transport: &str, name: &str, qtype: &str) -> String {
    let port = ex.dns().port().to_string();
    let (code, out) = run(
        "dig",
        &["@127.0.0.1", "-p", &port, transport, "+norec", name, qtype],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("mismatch"),
        "the reply carries the question as asked: {out}"
    );
    out
}

/// The lines of a section of dig's output (`;; ANSWER SECTION:` up to the blank line), fields
/// separated by one space. Records lose their TTL (cache lowers it to at most 30), which is
/// checked to be in 1..=30.
fn section(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with(&format!(";; {name} SECTION:")))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f: Vec<&str> = l.split_whitespace().collect();
            if !l.starts_with(';') && f.len() > 2 {
                let ttl: u32 = f[1].parse().unwrap_or_else(|_| panic!("a TTL in {l:?}"));
                assert!((1..=30).contains(&ttl), "TTL capped by cache: {l}");
                f.remove(1);
            }
            f.join(" ")
        })
        .collect()
}

#[test]
fn aaaa_is_answered_with_the_a_records_under_the_asked_question() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(COREFILE);
    // The second round is answered by cache (before rewrite): it holds the rewritten-back reply.
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&ex, transport, "www.example.org", "AAAA");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert_eq!(
            section(&out, "QUESTION"),
            vec![";www.example.org. IN AAAA"],
            "{out}"
        );
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["www.example.org. IN A 192.0.2.10"],
            "the A data, as CoreDNS answers with this rule: {out}"
        );

        // A queries are not touched by the type rule.
        let out = dig(&ex, transport, "www.example.org", "A");
        assert_eq!(section(&out, "QUESTION"), vec![";www.example.org. IN A"]);
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["www.example.org. IN A 192.0.2.10"],
            "{out}"
        );
    }
}

#[test]
fn name_rewrites_round_trip_to_the_asked_name() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(COREFILE);
    // The second round is answered by cache (before rewrite): it holds the rewritten-back reply.
    for transport in ["+notcp", "+tcp"] {
        // regex with `answer auto`: hosts answers for api.example.org, the client sees its name.
        let out = dig(&ex, transport, "api.corp.test", "A");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(
            out.contains("flags: qr aa;"),
            "hosts' flags pass through: {out}"
        );
        assert_eq!(section(&out, "QUESTION"), vec![";api.corp.test. IN A"]);
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["api.corp.test. IN A 192.0.2.11"],
            "{out}"
        );

        // exact: the answer is always mapped back.
        let out = dig(&ex, transport, "ALIAS.test", "A");
        assert_eq!(
            section(&out, "QUESTION"),
            vec![";ALIAS.test. IN A"],
            "{out}"
        );
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["alias.test. IN A 192.0.2.10"],
            "{out}"
        );

        // A rewritten name hosts does not know: the chain's answer, under the asked question.
        let out = dig(&ex, transport, "nope.corp.test", "A");
        assert!(out.contains("status: SERVFAIL"), "{out}");
        assert_eq!(section(&out, "QUESTION"), vec![";nope.corp.test. IN A"]);
    }
}

#[test]
fn bad_rewrite_rules_stop_the_server_with_coredns_wording() {
    let out = run_corefile(
        ".:0 {\n    rewrite stop type AAAA BOGUS\n    whoami\n}\n",
        &[],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(&format!(
            "plugin/rewrite: {}:2 - Error during parsing: invalid type \"BOGUS\"",
            out.corefile.display()
        )),
        "{}",
        out.stderr
    );
}
