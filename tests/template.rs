//! `template` in the real binary, queried with real `dig`: the k8s_gateway chart's ACME DNS-01
//! CNAME, CoreDNS README examples (IP names from named groups, MX with additional and
//! authority, `.invalid` as NXDOMAIN with an SOA and an Extended DNS Error), several templates
//! of one block in file order in front of `hosts`, and the metrics.

mod support;

use support::digout::{flags, section};
use support::*;

const COREFILE: &str = r#".:0 {
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    template IN ANY example.com {
        match "_acme-challenge[.](.*)[.]example[.]com"
        answer "{{ .Name }} 5 IN CNAME {{  index .Match 1 }}.dns01.clouddns.com"
        fallthrough
    }
    template IN A example.com {
        match ^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)-(?P<c>[0-9]+)-(?P<d>[0-9]+)[.]example[.]com[.]$
        answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        fallthrough
    }
    template IN MX example.com {
        match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com[.]$
        answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
        additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        authority "example.com. 60 IN NS ns0.example.com."
        fallthrough
    }
    template IN TXT order.example.com {
        match ^a[.]
        answer "{{ .Name }} 60 IN TXT first"
        fallthrough
    }
    template IN TXT order.example.com {
        answer "{{ .Name }} 60 IN TXT \"second {{ .Remote }}\""
    }
    template IN TXT strict.example.com {
        match ^ok[.]
        answer "{{ .Name }} 60 IN TXT ok"
    }
    template IN TXT fail.example.com {
        match ^tmpl[.]
        answer "{{ .Name }} 60 IN TXT {{ index .Match 3 }}"
        fallthrough
    }
    template IN TXT fail.example.com {
        additional "{{ .Name }} 60 IN A 300.0.0.{{ len .Name }}"
    }
    template ANY ANY invalid {
        rcode NXDOMAIN
        authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
        ederror 21 "Blocked according to RFC2606"
    }
    hosts {
        192.0.2.10 www.example.com
        192.0.2.20 foo.dns01.clouddns.com
    }
}
"#;

/// `dig @exdns +norec NAME TYPE` over `transport` with extra options; returns dig's output.
fn dig(ex: &Exdns, transport: &str, name: &str, qtype: &str, extra: &[&str]) -> String {
    let port = ex.dns().port().to_string();
    let mut args = vec!["@127.0.0.1", "-p", &port, transport, "+norec"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[name, qtype]);
    let (code, out) = run("dig", &args);
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
fn acme_challenge_and_readme_examples_answer_over_udp_and_tcp() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(COREFILE);
    for transport in ["+notcp", "+tcp"] {
        // The ACME DNS-01 challenge: a CNAME into the challenge domain, authoritative.
        let out = dig(
            &ex,
            transport,
            "_acme-challenge.foo.example.com",
            "TXT",
            &[],
        );
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains("flags: qr aa;"), "{out}");
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["_acme-challenge.foo.example.com. 5 IN CNAME foo.dns01.clouddns.com."],
            "{out}"
        );
        // For an A query the CNAME target is looked up through the rest of the chain (hosts).
        let out = dig(&ex, transport, "_acme-challenge.foo.example.com", "A", &[]);
        assert_eq!(
            section(&out, "ANSWER"),
            vec![
                "_acme-challenge.foo.example.com. 5 IN CNAME foo.dns01.clouddns.com.",
                "foo.dns01.clouddns.com. 3600 IN A 192.0.2.20",
            ],
            "{out}"
        );

        // Named groups build an address.
        let out = dig(&ex, transport, "ip-10-1-2-3.example.com", "A", &[]);
        assert!(out.contains("flags: qr aa;"), "{out}");
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["ip-10-1-2-3.example.com. 60 IN A 10.1.2.3"],
            "{out}"
        );
        // MX with additional and authority sections.
        let out = dig(&ex, transport, "ip-10-1-2-3.example.com", "MX", &[]);
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["ip-10-1-2-3.example.com. 60 IN MX 10 ip-10-1-2-3.example.com."]
        );
        assert_eq!(
            section(&out, "AUTHORITY"),
            vec!["example.com. 60 IN NS ns0.example.com."]
        );
        assert_eq!(
            section(&out, "ADDITIONAL"),
            vec!["ip-10-1-2-3.example.com. 60 IN A 10.1.2.3"],
            "{out}"
        );

        // Names no template answers fall through every template to hosts.
        let out = dig(&ex, transport, "www.example.com", "A", &[]);
        assert_eq!(
            section(&out, "ANSWER"),
            vec!["www.example.com. 3600 IN A 192.0.2.10"],
            "{out}"
        );
    }
}

#[test]
fn several_templates_in_file_order_fallthrough_and_servfail() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(COREFILE);
    let out = dig(&ex, "+notcp", "a.order.example.com", "TXT", &[]);
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["a.order.example.com. 60 IN TXT \"first\""],
        "{out}"
    );
    let out = dig(&ex, "+notcp", "b.order.example.com", "TXT", &[]);
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["b.order.example.com. 60 IN TXT \"second 127.0.0.1\""],
        "{out}"
    );
    // strict: the zone matches, the regex does not, no fallthrough: SERVFAIL.
    let out = dig(&ex, "+notcp", "ok.strict.example.com", "TXT", &[]);
    assert!(out.contains("status: NOERROR"), "{out}");
    let out = dig(&ex, "+notcp", "nope.strict.example.com", "TXT", &[]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert_eq!(flags(&out), ["qr"], "an empty SERVFAIL: {out}");
}

#[test]
fn invalid_is_nxdomain_with_soa_and_extended_error() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(COREFILE);
    for qtype in ["A", "AAAA", "TXT"] {
        let out = dig(&ex, "+notcp", "foo.invalid", qtype, &[]);
        assert!(out.contains("status: NXDOMAIN"), "{out}");
        assert!(out.contains("flags: qr aa;"), "{out}");
        assert!(section(&out, "ANSWER").is_empty(), "{out}");
        assert_eq!(
            section(&out, "AUTHORITY"),
            vec!["invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"],
            "{out}"
        );
        assert!(
            out.contains("; EDE: 21 (Not Supported): (Blocked according to RFC2606)"),
            "{out}"
        );
    }
}

#[test]
fn metrics_count_matches_and_failures() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(COREFILE);
    for _ in 0..3 {
        dig(&ex, "+notcp", "_acme-challenge.bar.example.com", "TXT", &[]);
    }
    let (status, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    assert_eq!(status, 200);
    let line = body
        .lines()
        .find(|l| {
            l.starts_with("coredns_template_matches_total{")
                && l.contains("zone=\"example.com.\"")
                && l.contains("type=\"TXT\"")
        })
        .unwrap_or_else(|| panic!("no matches counter:\n{body}"));
    assert!(line.contains("class=\"IN\""), "{line}");
    assert!(line.contains("view=\"\""), "{line}");
    assert!(line.ends_with(" 3"), "{line}");

    // A template that fails to execute, and one that renders an invalid RR: SERVFAIL, counted
    // with the section and the template as Go prints it.
    let out = dig(&ex, "+notcp", "tmpl.fail.example.com", "TXT", &[]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    for _ in 0..2 {
        let out = dig(&ex, "+notcp", "rr.fail.example.com", "TXT", &[]);
        assert!(out.contains("status: SERVFAIL"), "{out}");
    }
    let (_, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    let find = |family: &str, section: &str, template: &str| -> String {
        body.lines()
            .find(|l| {
                l.starts_with(&format!("{family}{{"))
                    && l.contains(&format!("section=\"{section}\""))
                    && l.contains(&format!("template=\"{template}\""))
                    && l.contains("zone=\"fail.example.com.\"")
            })
            .unwrap_or_else(|| panic!("no {family} for {template}:\n{body}"))
            .to_string()
    };
    let l = find(
        "coredns_template_template_failures_total",
        "answer",
        "{{.Name}} 60 IN TXT {{index .Match 3}}",
    );
    assert!(l.ends_with(" 1"), "{l}");
    let l = find(
        "coredns_template_rr_failures_total",
        "additional",
        "{{.Name}} 60 IN A 300.0.0.{{len .Name}}",
    );
    assert!(l.ends_with(" 2"), "{l}");
}

#[test]
fn a_bad_template_stops_the_server_with_coredns_wording() {
    let out = run_corefile(
        ".:0 {\n    template IN A {\n        answer \"{{ index .Match 1\"\n    }\n}\n",
        &[],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(&format!(
            "plugin/template: {}:3 - Error during parsing: could not compile template: {{{{ index .Match 1, template: answer:1: unclosed action",
            out.corefile.display()
        )),
        "{}",
        out.stderr
    );
}
