//! `dnssec` end to end: the real binary signs, BIND's `delv` validates with the zone's DS as its
//! trust anchor (over UDP and TCP), for a `file` zone and a k8s_gateway zone (manifests source
//! and the fake API server), and `kdig`/`dig` check what is sent with and without DO.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_apiserver::FakeApiServer;
use support::*;

/// The fixture keys (`dnssec-keygen`), by role.
const CSK: &str = "Kexample.org.+013+10744";
const KSK: &str = "Kexample.org.+013+14315";
const ED25519: &str = "Kexample.org.+015+52361";
const RSA: &str = "Kexample.org.+008+63888";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dnssec")
        .join(name)
}

/// The key pair `base` as files for exdns's working directory.
fn key_files(base: &str) -> Vec<(String, String)> {
    ["key", "private"]
        .iter()
        .map(|ext| {
            let name = format!("{base}.{ext}");
            let text = std::fs::read_to_string(fixture(&name)).unwrap();
            (name, text)
        })
        .collect()
}

/// A `delv` trust-anchor file holding the DS records `exdns -ds` prints for `keys`.
fn anchor(dir: &Path, keys: &[&str]) -> PathBuf {
    let mut ds = Vec::new();
    for k in keys {
        let (code, out) = run(
            bin().to_str().unwrap(),
            &["-ds", fixture(k).to_str().unwrap()],
        );
        assert_eq!(code, 0, "{out}");
        // example.org. 3600 IN DS TAG ALG 2 HEX
        let f: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(&f[..4], &["example.org.", "3600", "IN", "DS"], "{out}");
        ds.push(format!(
            "example.org. static-ds {} {} {} \"{}\";",
            f[4], f[5], f[6], f[7]
        ));
    }
    let path = dir.join(format!("anchor-{}.conf", keys.join("-")));
    std::fs::write(&path, format!("trust-anchors {{ {} }};\n", ds.join(" "))).unwrap();
    path
}

/// What `delv` printed validating `name`/`qtype` at `addr` with the trust anchor `anchor`.
fn delv(addr: SocketAddr, anchor: &Path, name: &str, qtype: &str, tcp: bool) -> String {
    let port = addr.port().to_string();
    let mut args = vec![
        "-a",
        anchor.to_str().unwrap(),
        "@127.0.0.1",
        "-p",
        &port,
        "+root=example.org",
        "+nocrypto",
        name,
        qtype,
    ];
    if tcp {
        args.push("+tcp");
    }
    run("delv", &args).1
}

#[derive(Clone, Copy, Debug)]
enum Want {
    /// Validated, with this text in an answer line.
    Answer(&'static str),
    /// A validated denial (NODATA, or a compact NXDOMAIN).
    Denial,
}

/// Every case validates over UDP and TCP.
fn check_table(addr: SocketAddr, anchor: &Path, cases: &[(&str, &str, Want)]) {
    for (name, qtype, want) in cases {
        for tcp in [false, true] {
            let out = delv(addr, anchor, name, qtype, tcp);
            match want {
                Want::Answer(text) => {
                    assert!(
                        out.starts_with("; fully validated"),
                        "{name} {qtype} tcp={tcp}: {out}"
                    );
                    assert!(out.contains(text), "{name} {qtype} tcp={tcp}: {out}");
                }
                Want::Denial => assert!(
                    out.contains("; negative response, fully validated"),
                    "{name} {qtype} tcp={tcp}: {out}"
                ),
            }
        }
    }
}

const ZONE: &str = "$ORIGIN example.org.
@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@ 3600 IN NS ns1
ns1 IN A 192.0.2.53
www IN A 192.0.2.1
www IN A 192.0.2.2
www IN TXT \"hello\"
Mixed IN A 192.0.2.3
alias IN CNAME www
dangling IN CNAME nothere
*.wild IN A 192.0.2.9
sub IN NS ns.sub
ns.sub IN A 192.0.2.54
secure IN NS ns.secure
secure IN DS 12345 13 2 AABBCCDDEEFF00112233445566778899AABBCCDDEEFF00112233445566778899
ns.secure IN A 192.0.2.55
x.ent IN A 192.0.2.10
";

fn file_zone(keys: &[&str]) -> Exdns {
    file_zone_with(keys, "")
}

/// The file zone signed by `keys`, with `extra` lines in the block.
fn file_zone_with(keys: &[&str], extra: &str) -> Exdns {
    let mut files: Vec<(String, String)> = vec![("db.example.org".into(), ZONE.into())];
    let mut key_lines = String::new();
    for k in keys {
        files.extend(key_files(k));
        key_lines += &format!("    key file {k}\n");
    }
    let cf = format!(
        "example.org:0 {{\n  bind 127.0.0.1\n{extra}  file db.example.org\n  dnssec {{\n{key_lines}  }}\n}}\n"
    );
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Exdns::start_with(&cf, &files, &[])
}

#[test]
fn file_zone_answers_of_every_class_validate() {
    if !require("delv") {
        return;
    }
    let ex = file_zone(&[CSK]);
    let ta = anchor(ex.dir.path(), &[CSK]);
    check_table(
        ex.dns(),
        &ta,
        &[
            ("www.example.org", "A", Want::Answer("192.0.2.2")),
            ("www.example.org", "TXT", Want::Answer("\"hello\"")),
            ("mixed.example.org", "A", Want::Answer("192.0.2.3")),
            // NODATA and a name that does not exist (compact denial).
            ("www.example.org", "AAAA", Want::Denial),
            ("nx.example.org", "A", Want::Denial),
            ("deep.nx.example.org", "TXT", Want::Denial),
            // An empty non-terminal.
            ("ent.example.org", "TXT", Want::Denial),
            // A wildcard's synthesis, signed as the name asked.
            ("any.wild.example.org", "A", Want::Answer("192.0.2.9")),
            // CNAMEs: to an answer, and to a name that does not exist.
            ("alias.example.org", "A", Want::Answer("192.0.2.1")),
            // (delv shows the validated CNAME; the target's denial is proven by its NSEC.)
            (
                "dangling.example.org",
                "A",
                Want::Answer("CNAME\tnothere.example.org."),
            ),
            // The apex.
            (
                "example.org",
                "SOA",
                Want::Answer("hostmaster.example.org."),
            ),
            ("example.org", "NS", Want::Answer("ns1.example.org.")),
            ("example.org", "DNSKEY", Want::Answer("256 3 13")),
            ("example.org", "CDS", Want::Answer("10744 13 2")),
            ("example.org", "CDNSKEY", Want::Answer("256 3 13")),
            ("example.org", "MX", Want::Denial),
            // The parent side of delegations: a signed DS, and a proven absent one.
            ("secure.example.org", "DS", Want::Answer("12345 13 2")),
            ("sub.example.org", "DS", Want::Denial),
            // A DS query where there is no delegation.
            ("www.example.org", "DS", Want::Denial),
            // The NSEC records themselves.
            (
                "www.example.org",
                "NSEC",
                Want::Answer("\\000.www.example.org."),
            ),
            ("nx.example.org", "NSEC", Want::Answer("RRSIG NSEC TYPE128")),
        ],
    );
}

/// `dig +dnssec` (no validation) on `addr`: the whole reply.
fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let port = addr.port().to_string();
    let mut a = vec!["@127.0.0.1", "-p", &port, "+norec", "+nocookie"];
    a.extend_from_slice(args);
    let (code, out) = run("dig", &a);
    assert_eq!(code, 0, "{out}");
    out
}

fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let head = format!(";; {name} SECTION:");
    let Some(at) = out.find(&head) else {
        return Vec::new();
    };
    out[at + head.len()..]
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn referrals_prove_the_delegation_and_keep_ns_and_glue_unsigned() {
    if !require("dig") {
        return;
    }
    let ex = file_zone(&[CSK]);
    // An insecure delegation: NS, then the NSEC at the cut (NS, no DS) and its RRSIG.
    let out = dig(ex.dns(), &["+dnssec", "www.sub.example.org", "A"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        !out.contains(" aa"),
        "a referral is not authoritative: {out}"
    );
    let auth: Vec<String> = section(&out, "AUTHORITY")
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(auth.len(), 3, "{out}");
    assert_eq!(auth[0], "sub.example.org. 3600 IN NS ns.sub.example.org.");
    assert_eq!(
        auth[1],
        "sub.example.org. 3600 IN NSEC \\000.sub.example.org. NS RRSIG NSEC"
    );
    assert!(
        auth[2].starts_with("sub.example.org. 3600 IN RRSIG NSEC 13 3 3600 "),
        "{out}"
    );
    let extra = section(&out, "ADDITIONAL");
    assert!(
        extra.iter().all(|l| !l.contains("RRSIG")),
        "glue is unsigned: {out}"
    );
    // A secure one: the DS RRset and its RRSIG, no NSEC.
    let out = dig(ex.dns(), &["+dnssec", "www.secure.example.org", "A"]);
    let auth = section(&out, "AUTHORITY");
    assert!(
        auth.iter().any(|l| l.contains("IN\tDS\t12345 13 2")),
        "{out}"
    );
    assert!(auth.iter().any(|l| l.contains("RRSIG\tDS 13 3")), "{out}");
    assert!(!auth.iter().any(|l| l.contains("NSEC")), "{out}");
    assert!(!auth.iter().any(|l| l.contains("RRSIG\tNS")), "{out}");
}

#[test]
fn signatures_only_with_do_and_nxdomain_becomes_a_compact_answer() {
    if !require("kdig") {
        return;
    }
    let ex = file_zone(&[CSK]);
    let port = ex.dns().port().to_string();
    let kdig = |args: &[&str]| {
        let mut a = vec!["@127.0.0.1", "-p", port.as_str(), "+norec"];
        a.extend_from_slice(args);
        let (code, out) = run("kdig", &a);
        assert_eq!(code, 0, "{out}");
        out
    };
    for (name, t) in [
        ("www.example.org", "A"),
        ("nx.example.org", "A"),
        ("example.org", "DNSKEY"),
    ] {
        let plain = kdig(&[name, t]);
        assert!(!plain.contains("RRSIG"), "no DO, no signatures: {plain}");
        let signed = kdig(&["+dnssec", name, t]);
        assert!(signed.contains("RRSIG"), "DO: signatures: {signed}");
        assert!(signed.contains(";; Version: 0; flags: do;"), "{signed}");
    }
    // Without DO a missing name is NXDOMAIN as before; with DO it is NOERROR with the
    // NXNAME-flagged NSEC (RFC 9824), so no zone walk is possible.
    assert!(kdig(&["nx.example.org", "A"]).contains("status: NXDOMAIN"));
    let out = kdig(&["+dnssec", "nx.example.org", "A"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains("nx.example.org.     \t300\tNSEC\t\\000.nx.example.org. RRSIG NSEC TYPE128")
            || out.contains("NSEC\t\\000.nx.example.org. RRSIG NSEC TYPE128"),
        "{out}"
    );
}

#[test]
fn split_keys_ksk_signs_the_key_set_zsk_the_rest_and_every_algorithm_validates() {
    if !require("delv") || !require("dig") {
        return;
    }
    // KSK + ZSK: the anchor is the KSK alone; DNSKEY is signed by it, the rest by the ZSK.
    let ex = file_zone(&[KSK, CSK]);
    let ta = anchor(ex.dir.path(), &[KSK]);
    check_table(
        ex.dns(),
        &ta,
        &[
            ("www.example.org", "A", Want::Answer("192.0.2.1")),
            ("nx.example.org", "A", Want::Denial),
            ("example.org", "CDS", Want::Answer("14315 13 2")),
        ],
    );
    let out = dig(ex.dns(), &["+dnssec", "example.org", "DNSKEY"]);
    let sigs: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("RRSIG\tDNSKEY"))
        .collect();
    assert_eq!(sigs.len(), 1, "{out}");
    assert!(sigs[0].contains(" 14315 example.org."), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("IN\tDNSKEY\t")).count(),
        2,
        "{out}"
    );
    let out = dig(ex.dns(), &["+dnssec", "www.example.org", "A"]);
    let sigs: Vec<&str> = out.lines().filter(|l| l.contains("RRSIG\tA")).collect();
    assert_eq!(sigs.len(), 1, "{out}");
    assert!(sigs[0].contains(" 10744 example.org."), "{out}");
    // CDS/CDNSKEY name the KSK only.
    let out = dig(ex.dns(), &["+dnssec", "example.org", "CDNSKEY"]);
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("IN\tCDNSKEY\t257 3 13"))
            .count(),
        1,
        "{out}"
    );
    assert!(!out.contains("IN\tCDNSKEY\t256"), "{out}");
    drop(ex);
    // Ed25519 and RSA/SHA-256 as combined keys.
    for key in [ED25519, RSA] {
        let ex = file_zone(&[key]);
        let ta = anchor(ex.dir.path(), &[key]);
        check_table(
            ex.dns(),
            &ta,
            &[
                ("www.example.org", "A", Want::Answer("192.0.2.1")),
                ("www.example.org", "AAAA", Want::Denial),
                ("nx.example.org", "A", Want::Denial),
            ],
        );
    }
}

#[test]
fn hostile_queries_with_do_get_sane_answers() {
    if !require("dig") {
        return;
    }
    // Large signatures: an RSA key and an ECDSA one sign every RRset twice.
    let ex = file_zone(&[RSA, CSK]);
    // A tiny buffer: truncated over UDP, whole over TCP (dig retries by itself).
    let out = dig(
        ex.dns(),
        &[
            "+dnssec",
            "+bufsize=512",
            "+ignore",
            "example.org",
            "DNSKEY",
        ],
    );
    assert!(out.contains(" tc"), "{out}");
    let out = dig(
        ex.dns(),
        &["+dnssec", "+bufsize=512", "example.org", "DNSKEY"],
    );
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("RRSIG\tDNSKEY")).count(),
        2,
        "{out}"
    );
    // ANY, RRSIG and NSEC asked directly: answered, never an error or silence.
    for (name, t) in [
        ("www.example.org", "ANY"),
        ("www.example.org", "RRSIG"),
        ("nx.example.org", "RRSIG"),
        ("www.example.org", "NSEC"),
        ("sub.example.org", "NSEC"),
        ("example.org", "NSEC3PARAM"),
    ] {
        for tcp in ["+notcp", "+tcp"] {
            let out = dig(ex.dns(), &["+dnssec", tcp, name, t]);
            assert!(out.contains("status: NOERROR"), "{name} {t}: {out}");
        }
    }
    // Still answering.
    let out = dig(ex.dns(), &["+dnssec", "www.example.org", "A"]);
    assert!(out.contains("RRSIG\tA 13 3 3600"), "{out}");
}

fn manifests(ip: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: apps
spec:
  rules:
  - host: web.example.org
status:
  loadBalancer:
    ingress:
    - ip: {ip}
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: apps
  annotations:
    coredns.io/hostname: api.example.org,*.api.example.org
spec:
  type: LoadBalancer
status:
  loadBalancer:
    ingress:
    - ip: 198.51.100.7
    - ip: 2001:db8::7
---
apiVersion: v1
kind: Service
metadata:
  name: alias
  namespace: apps
  annotations:
    coredns.io/hostname: alias.example.org
spec:
  type: ExternalName
  externalName: web.example.org
"#
    )
}

fn k8s_cases() -> Vec<(&'static str, &'static str, Want)> {
    vec![
        ("web.example.org", "A", Want::Answer("192.0.2.80")),
        ("web.example.org", "AAAA", Want::Denial),
        ("api.example.org", "AAAA", Want::Answer("2001:db8::7")),
        ("x.api.example.org", "A", Want::Answer("198.51.100.7")),
        ("alias.example.org", "A", Want::Answer("CNAME")),
        ("nx.example.org", "A", Want::Denial),
        ("example.org", "SOA", Want::Answer("SOA")),
        ("example.org", "NS", Want::Answer("NS")),
        ("example.org", "DNSKEY", Want::Answer("DNSKEY")),
    ]
}

fn k8s_corefile(source: &str) -> String {
    format!(
        "example.org:0 {{\n  bind 127.0.0.1\n  k8s_gateway {{\n    {source}\n  }}\n  dnssec {{\n    key file {CSK}\n  }}\n}}\n"
    )
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn k8s_gateway_zone_from_manifests_validates_under_churn() {
    if !require("delv") {
        return;
    }
    let mut files = key_files(CSK);
    files.push(("objects/all.yaml".into(), manifests("192.0.2.80")));
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ex = Exdns::start_with(&k8s_corefile("manifests objects"), &files, &[]);
    let ta = anchor(ex.dir.path(), &[CSK]);
    wait_for("the manifests", || {
        delv(ex.dns(), &ta, "web.example.org", "A", false).contains("192.0.2.80")
    });
    check_table(ex.dns(), &ta, &k8s_cases());
    // Churn: each new address is signed when first asked for and validates.
    for i in 1..=5 {
        let ip = format!("192.0.2.{}", 100 + i);
        ex.replace("objects/all.yaml", &manifests(&ip));
        wait_for("the change", || {
            let out = delv(ex.dns(), &ta, "web.example.org", "A", false);
            out.contains(&ip) && out.starts_with("; fully validated")
        });
    }
}

#[test]
fn k8s_gateway_zone_from_the_api_server_validates() {
    if !require("delv") {
        return;
    }
    let c = FakeApiServer::start_with_defaults();
    c.create(
        "networking.k8s.io",
        "v1",
        "ingresses",
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "apps", "name": "web"},
            "spec": {"rules": [{"host": "web.example.org"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.80"}]}},
        }),
    );
    c.create(
        "",
        "v1",
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "apps", "name": "api",
                "annotations": {"coredns.io/hostname": "api.example.org,*.api.example.org"}},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"ip": "2001:db8::7"}]}},
        }),
    );
    c.create(
        "",
        "v1",
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "apps", "name": "alias",
                "annotations": {"coredns.io/hostname": "alias.example.org"}},
            "spec": {"type": "ExternalName", "externalName": "web.example.org"},
        }),
    );
    let mut files = key_files(CSK);
    files.push(("kubeconfig.yaml".into(), c.kubeconfig_yaml()));
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ex = Exdns::start_with(&k8s_corefile("kubeconfig kubeconfig.yaml"), &files, &[]);
    let ta = anchor(ex.dir.path(), &[CSK]);
    wait_for("the watches", || {
        delv(ex.dns(), &ta, "web.example.org", "A", false).contains("192.0.2.80")
    });
    check_table(ex.dns(), &ta, &k8s_cases());
}

#[test]
fn new_key_files_sign_without_a_restart() {
    if !require("dig") || !require("dnssec-keygen") {
        return;
    }
    let ex = file_zone(&[CSK]);
    let first = dig(ex.dns(), &["+dnssec", "www.example.org", "A"]);
    assert!(first.contains(" 10744 example.org."), "{first}");
    // A new key pair generated under the old key's file names (as a rotated Secret would be
    // mounted): the plugin reads it within its 10 s poll.
    let tmp = tempfile::tempdir().unwrap();
    let (code, out) = run(
        "dnssec-keygen",
        &[
            "-q",
            "-K",
            tmp.path().to_str().unwrap(),
            "-a",
            "ED25519",
            "example.org",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let base = out.trim().to_string();
    let tag: u16 = base.rsplit('+').next().unwrap().parse().unwrap();
    for ext in ["private", "key"] {
        let text = std::fs::read_to_string(tmp.path().join(format!("{base}.{ext}"))).unwrap();
        ex.replace(&format!("{CSK}.{ext}"), &text);
    }
    let want = "RRSIG\tA 15 3 3600 ";
    let mut last = String::new();
    wait_for("the new key", || {
        last = dig(ex.dns(), &["+dnssec", "www.example.org", "A"]);
        last.contains(want)
    });
    assert!(last.contains(&format!(" {tag} example.org.")), "{last}");
    let keys = dig(ex.dns(), &["+dnssec", "example.org", "DNSKEY"]);
    assert!(keys.contains("IN\tDNSKEY\t256 3 15"), "{keys}");
    // A broken key file keeps the keys in use.
    ex.replace(
        &format!("{CSK}.private"),
        "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: AAAA\n",
    );
    assert!(
        ex.wait_for_line("keys not reloaded", Duration::from_secs(25)),
        "{}",
        ex.output()
    );
    let again = dig(ex.dns(), &["+dnssec", "www.example.org", "A"]);
    assert!(again.contains(&format!(" {tag} example.org.")), "{again}");
}

#[test]
fn check_reports_key_problems_with_the_corefile_line() {
    let good = key_files(CSK);
    // (Corefile, extra files, what the error says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "example.org {\n  dnssec {\n    key file Kmissing\n  }\n}\n",
            &[],
            "Corefile:3 - Error during parsing: open Kmissing.key: no such file or directory",
        ),
        (
            "example.net {\n  dnssec {\n    key file Kexample.org.+013+10744\n  }\n}\n",
            &[],
            "key example.org. (keyid: 10744) can not sign any of the zones",
        ),
        (
            "example.org {\n  dnssec {\n    key file Kalg\n  }\n}\n",
            &[
                ("Kalg.key", "example.org. IN DNSKEY 256 3 7 AwEAAQ==\n"),
                ("Kalg.private", "Private-key-format: v1.3\n"),
            ],
            "Kalg.key: unsupported DNSSEC algorithm 7",
        ),
        (
            "example.org {\n  dnssec {\n    key file Kexample.org.+013+10744\n  }\n}\n",
            &[("Kexample.org.+013+10744.private", "garbage\n")],
            "Kexample.org.+013+10744.private:1: not a 'Field: value' line",
        ),
        (
            "example.org {\n  dnssec\n}\n",
            &[],
            "Corefile:2 - Error during parsing: no key",
        ),
        (
            "example.org {\n  dnssec {\n    key aws_secretsmanager Kx\n  }\n}\n",
            &[],
            "key aws_secretsmanager is not supported by exdns",
        ),
        (
            "example.org {\n  dnssec {\n    key file Kexample.org.+013+10744\n    cache_capacity lots\n  }\n}\n",
            &[],
            "strconv.Atoi: parsing \"lots\": invalid syntax",
        ),
    ];
    for (cf, extra, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        for (n, t) in &good {
            std::fs::write(dir.path().join(n), t).unwrap();
        }
        for (n, t) in *extra {
            std::fs::write(dir.path().join(n), t).unwrap();
        }
        std::fs::write(dir.path().join("Corefile"), cf).unwrap();
        let out = std::process::Command::new(bin())
            .args(["-check", "-conf", "Corefile"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cf}: {text}");
        assert!(text.contains(want), "{cf}: want {want:?} in {text}");
    }
}

#[test]
fn cached_signed_answers_come_from_the_cache_and_signatures_are_made_once() {
    if !require("delv") {
        return;
    }
    let ex = file_zone_with(&[CSK], "  prometheus 127.0.0.1:0\n  cache\n");
    let ta = anchor(ex.dir.path(), &[CSK]);
    let cases = [
        ("www.example.org", "A", Want::Answer("192.0.2.1")),
        ("nx.example.org", "A", Want::Denial),
    ];
    // Asked twice: the second time from the cache's prepared bytes, still validating, and
    // no signature made again.
    check_table(ex.dns(), &ta, &cases);
    let body = support::fwd::scrape(&ex, "127.0.0.1:0");
    let made = support::fwd::metric(&body, "coredns_dnssec_cache_misses_total", &[]).unwrap();
    let entries = support::fwd::metric(
        &body,
        "coredns_dnssec_cache_entries",
        &[("type", "signature")],
    );
    assert_eq!(entries, Some(made), "one entry per signed RRset: {body}");
    check_table(ex.dns(), &ta, &cases);
    let body = support::fwd::scrape(&ex, "127.0.0.1:0");
    let hits = support::fwd::metric(&body, "coredns_cache_hits_total", &[("type", "success")]);
    assert!(hits.unwrap_or(0.0) >= 2.0, "{body}");
    let denials = support::fwd::metric(&body, "coredns_cache_hits_total", &[("type", "denial")]);
    assert!(denials.unwrap_or(0.0) >= 2.0, "{body}");
    let again = support::fwd::metric(&body, "coredns_dnssec_cache_misses_total", &[]).unwrap();
    assert_eq!(again, made, "{body}");
}
