//! forward over DNS-over-TLS to a real unbound (self-signed CA, `tls CA`, `tls_servername`):
//! answers, NXDOMAIN/NODATA with their SOA, every flag and section come back exactly as unbound
//! gives them over DoT; a wrong server name or an untrusted certificate is SERVFAIL with a clear
//! log line; `tls://IP%NAME`; AD relayed (from the in-process DoT server, which sets it); and the
//! real clients `dig` and `kdig` (UDP, TCP and DoT into exdns).

mod support;

use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::certs::TestCa;
use support::fwd::{a_of, ask, assert_same_reply, udp_timed};
use support::tlsecho::{DotClient, TlsEcho, TlsEchoOpts, client_config, roots_from_pem};
use support::unbound::{self, Unbound, UnboundOpts};
use support::{Exdns, have, make_certs, query, run, tcp};

const NAME: &str = "dns.example.test";

fn upstream() -> Unbound {
    Unbound::start(
        UnboundOpts::new()
            .server_name(NAME)
            .alt_name("alt.example.test")
            .static_zone("example.test")
            .data("www.example.test. 300 IN A 192.0.2.1")
            .data("www.example.test. 300 IN AAAA 2001:db8::1")
            .data("txt.example.test. 60 IN TXT \"hello world\" \"second string\"")
            .data("mail.example.test. 300 IN MX 10 mx.example.test.")
            .data("mx.example.test. 300 IN A 192.0.2.25"),
    )
}

/// A Corefile forwarding `.` to `to` with the given option lines.
fn corefile(to: &str, options: &[String]) -> String {
    let mut c = format!(".:0 {{\n  errors\n  forward . {to} {{\n");
    for o in options {
        c.push_str(&format!("    {o}\n"));
    }
    c.push_str("  }\n}\n");
    c
}

/// exdns forwarding to unbound over DoT with its CA and server name.
fn exdns_for(ub: &Unbound) -> Exdns {
    Exdns::start(&corefile(
        &format!("tls://{}", ub.tls_addr()),
        &[
            format!("tls {}", ub.ca_pem.display()),
            format!("tls_servername {NAME}"),
        ],
    ))
}

fn direct(ub: &Unbound) -> DotClient {
    DotClient::connect(
        ub.tls_addr(),
        NAME,
        &client_config(roots_from_pem(&ub.ca_pem)),
    )
    .expect("direct DoT connection to unbound")
}

fn soa_zone(m: &Message) -> Option<String> {
    m.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(_) => Some(r.name.to_ascii()),
        _ => None,
    })
}

/// The forward log line about an upstream failure.
fn forward_warning(ex: &Exdns, needle: &str) -> String {
    let found = ex.wait_for_line(needle, Duration::from_secs(5));
    let out = ex.output();
    assert!(found, "no log line with {needle:?}:\n{out}");
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap()
        .to_string()
}

#[test]
fn answers_and_every_section_come_back_as_unbound_gives_them() {
    if !unbound::available() {
        return;
    }
    let ub = upstream();
    let ex = exdns_for(&ub);
    let mut dot = direct(&ub);

    struct Case {
        name: &'static str,
        qtype: RecordType,
        rd: bool,
        cd: bool,
        rcode: ResponseCode,
        answers: usize,
        soa: bool,
    }
    let cases = [
        Case {
            name: "www.example.test.",
            qtype: RecordType::A,
            rd: true,
            cd: false,
            rcode: ResponseCode::NoError,
            answers: 1,
            soa: false,
        },
        Case {
            name: "www.example.test.",
            qtype: RecordType::AAAA,
            rd: true,
            cd: false,
            rcode: ResponseCode::NoError,
            answers: 1,
            soa: false,
        },
        Case {
            name: "txt.example.test.",
            qtype: RecordType::TXT,
            rd: true,
            cd: false,
            rcode: ResponseCode::NoError,
            answers: 1,
            soa: false,
        },
        Case {
            name: "mail.example.test.",
            qtype: RecordType::MX,
            rd: false,
            cd: false,
            rcode: ResponseCode::NoError,
            answers: 1,
            soa: false,
        },
        // Mixed case: the question comes back as asked.
        Case {
            name: "WwW.Example.TEST.",
            qtype: RecordType::A,
            rd: true,
            cd: true,
            rcode: ResponseCode::NoError,
            answers: 1,
            soa: false,
        },
        // NXDOMAIN and NODATA: the zone's SOA in the authority section.
        Case {
            name: "nope.example.test.",
            qtype: RecordType::A,
            rd: true,
            cd: false,
            rcode: ResponseCode::NXDomain,
            answers: 0,
            soa: true,
        },
        Case {
            name: "www.example.test.",
            qtype: RecordType::MX,
            rd: true,
            cd: false,
            rcode: ResponseCode::NoError,
            answers: 0,
            soa: true,
        },
        Case {
            name: "example.test.",
            qtype: RecordType::SOA,
            rd: false,
            cd: true,
            rcode: ResponseCode::NoError,
            answers: 1,
            soa: false,
        },
        // Outside unbound's data: REFUSED, relayed as it is.
        Case {
            name: "www.example.com.",
            qtype: RecordType::A,
            rd: true,
            cd: false,
            rcode: ResponseCode::Refused,
            answers: 0,
            soa: false,
        },
    ];
    for c in &cases {
        let what = format!("{} {} rd={} cd={}", c.name, c.qtype, c.rd, c.cd);
        let mut q = query(c.name, c.qtype, Some(1232));
        q.metadata.recursion_desired = c.rd;
        q.metadata.checking_disabled = c.cd;
        let want = dot.query(&q).expect("direct DoT reply");
        let (got, _) = udp_timed(ex.dns(), &q, Duration::from_secs(6));
        let got = got.unwrap_or_else(|| panic!("{what}: no reply from exdns"));
        assert_eq!(got.metadata.response_code, c.rcode, "{what}: {got:?}");
        assert_eq!(got.answers.len(), c.answers, "{what}: {got:?}");
        assert_eq!(
            soa_zone(&got).is_some(),
            c.soa,
            "{what}: SOA in authority: {got:?}"
        );
        if c.soa {
            assert_eq!(soa_zone(&got).as_deref(), Some("example.test."), "{what}");
        }
        assert_eq!(got.metadata.recursion_desired, c.rd, "{what}: RD");
        assert_eq!(got.metadata.checking_disabled, c.cd, "{what}: CD");
        assert_eq!(
            got.queries[0].name().to_ascii(),
            c.name,
            "{what}: question as asked"
        );
        assert_same_reply(&got, &want, &what);

        // Over TCP to exdns: the same reply (the upstream leg is DoT either way).
        let got_tcp = tcp(ex.dns(), &q);
        assert_same_reply(&got_tcp, &want, &format!("{what} over TCP"));
    }
    // Local data is authoritative; the answers were unbound's, not synthesised.
    let (www, _) = ask(ex.dns(), "www.example.test.", RecordType::A);
    assert!(www.metadata.authoritative && www.metadata.recursion_available);
    assert_eq!(
        a_of(&www),
        vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(www.answers[0].ttl, 300);
    let (txt, _) = ask(ex.dns(), "txt.example.test.", RecordType::TXT);
    match &txt.answers[0].data {
        RData::TXT(t) => assert_eq!(
            t.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).to_string())
                .collect::<Vec<_>>(),
            vec!["hello world", "second string"]
        ),
        other => panic!("TXT expected, got {other:?}"),
    }
    // Every one of those went to unbound over TLS (the direct ones and exdns's).
    assert!(
        ub.tls_queries() >= 3 * cases.len() as u64,
        "{:?}",
        ub.stats()
    );
    assert_eq!(ub.logged_queries("www.example.com"), 3, "{}", ub.log());
}

#[test]
fn wrong_server_name_is_servfail_with_a_clear_error() {
    if !unbound::available() {
        return;
    }
    let ub = upstream();
    let ex = Exdns::start(&corefile(
        &format!("tls://{}", ub.tls_addr()),
        &[
            format!("tls {}", ub.ca_pem.display()),
            "tls_servername other.example.test".to_string(),
        ],
    ));
    let (r, took) = ask(ex.dns(), "www.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "{r:?}");
    assert!(r.answers.is_empty());
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let line = forward_warning(&ex, "tls handshake with");
    let want = format!(
        "[WARNING] plugin/forward: www.example.test. A: tls://{0}: tls handshake with {0} (other.example.test): invalid peer certificate: ",
        ub.tls_addr()
    );
    assert_eq!(
        line,
        format!(
            "{want}certificate not valid for name \"other.example.test\"; certificate is only valid for DnsName(\"dns.example.test\") or DnsName(\"alt.example.test\")"
        )
    );
    // The errors plugin logs the SERVFAIL too, as CoreDNS does.
    forward_warning(
        &ex,
        "[ERROR] plugin/errors: 2 www.example.test. A: forward returned SERVFAIL",
    );
    assert_eq!(
        ub.tls_queries(),
        0,
        "nothing was asked over a rejected TLS session"
    );
}

/// The system CA bundle exdns would use when no CA is given (as setup.rs looks for it).
fn system_ca_present() -> bool {
    std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|p| !p.is_empty())
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ]
            .map(String::from),
        )
        .any(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains("BEGIN CERTIFICATE")))
}

#[test]
fn untrusted_certificate_is_servfail_with_a_clear_error() {
    if !unbound::available() {
        return;
    }
    let ub = upstream();
    let other = TestCa::new("some other CA");
    let dir = tempfile::tempdir().unwrap();
    let other_pem = other.write(dir.path(), "other-ca.pem");
    let to = format!("tls://{}", ub.tls_addr());

    // No CA given: the system CAs (or, on a machine without any, a bundle that does not hold the
    // test CA either) do not vouch for unbound's certificate.
    let env: Vec<(&str, &str)> = if system_ca_present() {
        vec![]
    } else {
        vec![("SSL_CERT_FILE", other_pem.to_str().unwrap())]
    };
    let no_ca = Exdns::start_with_env(
        &corefile(&to, &[format!("tls_servername {NAME}")]),
        &[],
        &[],
        &env,
    );
    // A CA file that did not sign it.
    let wrong_ca = Exdns::start(&corefile(
        &to,
        &[
            format!("tls {}", other_pem.display()),
            format!("tls_servername {NAME}"),
        ],
    ));
    for ex in [&no_ca, &wrong_ca] {
        let (r, took) = ask(ex.dns(), "txt.example.test.", RecordType::TXT);
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "{r:?}");
        assert!(r.answers.is_empty() && r.authorities.is_empty());
        assert!(took < Duration::from_secs(3), "took {took:?}");
        let line = forward_warning(ex, "tls handshake with");
        let want = format!(
            "[WARNING] plugin/forward: txt.example.test. TXT: {to}: tls handshake with {} ({NAME}): invalid peer certificate: UnknownIssuer",
            ub.tls_addr()
        );
        assert_eq!(line, want);
    }
    assert_eq!(ub.tls_queries(), 0);
}

#[test]
fn per_upstream_server_name() {
    if !unbound::available() {
        return;
    }
    let ub = upstream();
    let a = ub.tls_addr();
    let ca = format!("tls {}", ub.ca_pem.display());
    // `tls://IP%NAME:PORT`: the certificate is also valid for alt.example.test.
    let ex = Exdns::start(&corefile(
        &format!("tls://{}%alt.example.test:{}", a.ip(), a.port()),
        std::slice::from_ref(&ca),
    ));
    let (r, _) = ask(ex.dns(), "www.example.test.", RecordType::AAAA);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{r:?}");
    assert!(matches!(r.answers[0].data, RData::AAAA(_)), "{r:?}");

    // A per-upstream name the certificate is not valid for fails, naming that server name.
    let bad = Exdns::start(&corefile(
        &format!("tls://{}%nope.example.test:{}", a.ip(), a.port()),
        &[ca],
    ));
    let (r, _) = ask(bad.dns(), "www.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let line = forward_warning(&bad, "tls handshake with");
    assert!(
        line.contains(&format!(
            "tls handshake with {a} (nope.example.test): invalid peer certificate"
        )),
        "{line}"
    );
    assert_eq!(ub.tls_queries(), 1);
}

#[test]
fn ad_and_cd_are_relayed() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    let ex = Exdns::start(&corefile(
        &format!("tls://{}", echo.addr),
        &[
            format!("tls {}", echo.ca_pem.display()),
            format!("tls_servername {NAME}"),
        ],
    ));
    let mut dot = echo.client(NAME).unwrap();
    for (name, qtype, rcode) in [
        ("secure.example.test.", RecordType::A, ResponseCode::NoError),
        (
            "nxdomain.example.test.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "secure.example.test.",
            RecordType::MX,
            ResponseCode::NoError,
        ),
    ] {
        for cd in [false, true] {
            let mut q = query(name, qtype, Some(1232));
            q.metadata.checking_disabled = cd;
            let want = dot.query(&q).unwrap();
            let (got, _) = udp_timed(ex.dns(), &q, Duration::from_secs(6));
            let got = got.expect("reply");
            assert_eq!(got.metadata.response_code, rcode);
            assert!(got.metadata.authentic_data, "AD relayed: {got:?}");
            assert_eq!(got.metadata.checking_disabled, cd, "CD relayed");
            assert!(!got.metadata.authoritative);
            assert_same_reply(&got, &want, &format!("{name} {qtype} cd={cd}"));
        }
    }
    // exdns's queries went upstream with their flags (CD included) over TLS.
    let seen: Vec<_> = echo
        .seen()
        .into_iter()
        .filter(|s| s.name == "secure.example.test.")
        .collect();
    assert_eq!(seen.len(), 8, "{seen:?}");
}

fn tools() -> bool {
    if !unbound::available() {
        return false;
    }
    for t in ["dig", "kdig"] {
        if !have(t) {
            eprintln!("skipping: {t} is not installed (scripts/test.sh installs it)");
            return false;
        }
    }
    true
}

/// The header (status, flags, counts — no ID) and the record lines of dig/kdig output, with
/// whitespace runs made one space.
fn summary(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
            if l.is_empty() {
                return None;
            }
            if let Some(h) = l.strip_prefix(";; ->>HEADER<<- ") {
                // "opcode: QUERY, status: NOERROR, id: 123" (dig) / "opcode: QUERY; status: ..."
                return Some(
                    h.split([',', ';'])
                        .map(str::trim)
                        .filter(|p| !p.starts_with("id:"))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            if l.starts_with(";; flags:") || l.starts_with(";; Flags:") {
                return Some(l);
            }
            if l.starts_with(';') {
                return None;
            }
            Some(l)
        })
        .collect()
}

fn dig(server: &str, port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let at = format!("@{server}");
    let mut a = vec![at.as_str(), "-p", &port, "+time=3", "+tries=1"];
    a.extend_from_slice(args);
    let (code, out) = run("dig", &a);
    assert_eq!(code, 0, "dig {a:?}: {out}");
    out
}

fn kdig(port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut a = vec!["@127.0.0.1", "-p", &port, "+time=3", "+retry=0"];
    a.extend_from_slice(args);
    let (code, out) = run("kdig", &a);
    assert_eq!(code, 0, "kdig {a:?}: {out}");
    out
}

fn assert_contains(out: &str, parts: &[&str]) {
    let squashed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in parts {
        assert!(squashed.contains(p), "missing {p:?} in:\n{out}");
    }
}

#[test]
fn dig_and_kdig_through_exdns_see_what_unbound_answers() {
    if !tools() {
        return;
    }
    let ub = upstream();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(certs.path(), "dns.exdns.test");
    let fwd = format!(
        "  forward . tls://{} {{\n    tls {}\n    tls_servername {NAME}\n  }}\n",
        ub.tls_addr(),
        ub.ca_pem.display()
    );
    // A plain listener and a DoT listener, both forwarding over DoT to unbound.
    let ex = Exdns::start(&format!(
        ".:0 {{\n{fwd}}}\ntls://.:0 {{\n  tls {} {}\n{fwd}}}\n",
        cert.display(),
        key.display()
    ));
    let port = ex.dns().port();
    let tls_port = ex.addr("tls://").port();
    let ub_port = ub.addr.port();
    let ub_ip = ub.addr.ip().to_string();

    for q in [
        &["www.example.test", "A"][..],
        &["nope.example.test", "A"],
        &["www.example.test", "MX"],
        &["txt.example.test", "TXT"],
    ] {
        for transport in ["+notcp", "+tcp"] {
            let mut args = vec![transport];
            args.extend_from_slice(q);
            let via = dig("127.0.0.1", port, &args);
            let direct = dig(&ub_ip, ub_port, &args);
            let s = summary(&via);
            assert!(
                s.len() >= 2
                    && s[0].starts_with("opcode: QUERY status: ")
                    && s[1].starts_with(";; flags: qr "),
                "{s:?}"
            );
            assert_eq!(
                summary(&via),
                summary(&direct),
                "dig {args:?}\n{via}\n{direct}"
            );
            let via = kdig(port, &args);
            assert_eq!(
                summary(&via),
                summary(&kdig(ub_port, &args)),
                "kdig {args:?}\n{via}"
            );
        }
    }
    let out = dig("127.0.0.1", port, &["www.example.test", "A"]);
    assert_contains(
        &out,
        &[
            "status: NOERROR",
            "flags: qr aa rd ra;",
            "www.example.test. 300 IN A 192.0.2.1",
        ],
    );
    let out = dig("127.0.0.1", port, &["+tcp", "nope.example.test"]);
    assert_contains(
        &out,
        &[
            "status: NXDOMAIN",
            "ANSWER: 0, AUTHORITY: 1",
            "example.test. 300 IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 300",
        ],
    );

    // kdig over DoT into exdns, which asks unbound over DoT; the same answer as kdig over DoT
    // straight to unbound.
    let ca_arg = format!("+tls-ca={}", ca.display());
    let via = kdig(
        tls_port,
        &[
            "+tls",
            &ca_arg,
            "+tls-hostname=dns.exdns.test",
            "txt.example.test",
            "TXT",
        ],
    );
    assert!(via.contains("TLS session"), "{via}");
    assert_contains(
        &via,
        &[
            "status: NOERROR",
            "Flags: qr aa rd ra;",
            "txt.example.test. 60 IN TXT \"hello world\" \"second string\"",
        ],
    );
    let ub_ca = format!("+tls-ca={}", ub.ca_pem.display());
    let direct = kdig(
        ub.tls_addr().port(),
        &[
            "+tls",
            &ub_ca,
            &format!("+tls-hostname={NAME}"),
            "txt.example.test",
            "TXT",
        ],
    );
    assert_eq!(summary(&via), summary(&direct), "{via}\n{direct}");
    let started = Instant::now();
    let via = kdig(
        tls_port,
        &[
            "+tls",
            &ca_arg,
            "+tls-hostname=dns.exdns.test",
            "+keepopen",
            "nope.example.test",
            "A",
            "www.example.test",
            "AAAA",
        ],
    );
    assert_contains(
        &via,
        &[
            "status: NXDOMAIN",
            "status: NOERROR",
            "www.example.test. 300 IN AAAA 2001:db8::1",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
