//! Real clients: `dig` over UDP and TCP, `kdig +tls` over DNS over TLS.

mod support;

use support::*;

#[test]
fn dig_udp_and_tcp() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start("example.org:0 {\n  hosts {\n    192.0.2.10 www.example.org\n  }\n}\n");
    let port = ex.dns().port().to_string();
    for transport in ["+notcp", "+tcp"] {
        let (code, out) = run(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                &port,
                transport,
                "+norec",
                "www.example.org",
                "A",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains("flags: qr aa;"), "AA set, RA clear: {out}");
        assert!(
            out.contains("www.example.org.\t3600\tIN\tA\t192.0.2.10"),
            "{out}"
        );
        let (_, out) = run(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                &port,
                transport,
                "nope.example.org",
                "A",
            ],
        );
        assert!(
            out.contains("status: SERVFAIL"),
            "hosts has no SOA: SERVFAIL as CoreDNS: {out}"
        );
        let (_, out) = run(
            "dig",
            &["@127.0.0.1", "-p", &port, transport, "www.example.com", "A"],
        );
        assert!(out.contains("status: REFUSED"), "{out}");
    }
}

#[test]
fn kdig_over_tls() {
    if !require("kdig") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(certs.path(), "dns.example.test");
    let cf = format!(
        "tls://example.org:0 {{\n  tls {} {}\n  hosts {{\n    192.0.2.20 www.example.org\n  }}\n}}\n",
        cert.display(),
        key.display()
    );
    let ex = Exdns::start(&cf);
    let port = ex.addr("tls://").port().to_string();
    let ca_arg = format!("+tls-ca={}", ca.display());
    let (code, out) = run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+tls",
            &ca_arg,
            "+tls-hostname=dns.example.test",
            "www.example.org",
            "A",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("192.0.2.20"), "{out}");
    assert!(out.contains("TLS session"), "kdig used TLS: {out}");
    // Several queries over one connection (kdig sends them on one TLS session).
    let (code, out) = run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+tls",
            &ca_arg,
            "+tls-hostname=dns.example.test",
            "+keepopen",
            "www.example.org",
            "A",
            "nope.example.org",
            "A",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("status: NOERROR") && out.contains("status: SERVFAIL"),
        "{out}"
    );
    // A client that does not trust the CA fails the handshake.
    let (_, out) = run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+tls-ca",
            "+tls-hostname=dns.example.test",
            "www.example.org",
        ],
    );
    assert!(
        !out.contains("status: NOERROR"),
        "untrusted certificate must fail: {out}"
    );
}
