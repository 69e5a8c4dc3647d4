//! `dnssec` end to end: the real binary signs, BIND's `delv` validates with the zone's DS as its
//! trust anchor (over UDP and TCP), for a `file` zone and a k8s_gateway zone (manifests source
//! and the fake API server), and `kdig`/`dig` check what is sent with and without DO. DNSViz,
//! a standard zone checker, checks both zones delegated from a parent Knot signs, in network
//! namespaces (every server on port 53).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_apiserver::FakeApiServer;
use support::signed_parent::SignedParent;
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

/// The DS record `exdns -ds` prints for `key`, split into its fields
/// (`example.org. 3600 IN DS TAG ALG 2 HEX`).
fn ds_fields(key: &str) -> Vec<String> {
    let (code, out) = run(
        bin().to_str().unwrap(),
        &["-ds", fixture(key).to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    let f: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    assert_eq!(&f[..4], &["example.org.", "3600", "IN", "DS"], "{out}");
    assert_eq!(f.len(), 8, "{out}");
    f
}

/// A `delv` trust-anchor file holding the DS records `exdns -ds` prints for `keys`.
fn anchor(dir: &Path, keys: &[&str]) -> PathBuf {
    let mut ds = Vec::new();
    for k in keys {
        let f = ds_fields(k);
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

/// Starts exdns (inside `wrapper`, e.g. `ip netns exec NS`) on `cf` with `files` (names and
/// contents) in its working directory.
fn start_owned(wrapper: &[&str], cf: &str, files: &[(String, String)]) -> Exdns {
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Exdns::start_wrapped(wrapper, cf, &files, &[])
}

fn file_zone(keys: &[&str]) -> Exdns {
    file_zone_with(keys, "")
}

/// The file zone signed by `keys`, with `extra` lines in the block.
fn file_zone_with(keys: &[&str], extra: &str) -> Exdns {
    file_zone_at(keys, extra, "example.org:0", "127.0.0.1", &[])
}

/// The file zone signed by `keys` in server block `block` (`example.org:PORT`) bound to `bind`,
/// exdns started by `wrapper` (see `Exdns::start_wrapped`).
fn file_zone_at(keys: &[&str], extra: &str, block: &str, bind: &str, wrapper: &[&str]) -> Exdns {
    let mut files: Vec<(String, String)> = vec![("db.example.org".into(), ZONE.into())];
    let mut key_lines = String::new();
    for k in keys {
        files.extend(key_files(k));
        key_lines += &format!("    key file {k}\n");
    }
    let cf = format!(
        "{block} {{\n  bind {bind}\n{extra}  file db.example.org\n  dnssec {{\n{key_lines}  }}\n}}\n"
    );
    start_owned(wrapper, &cf, &files)
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
        !digout::flags(&out).iter().any(|f| f == "aa"),
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
    assert!(digout::flags(&out).iter().any(|f| f == "tc"), "{out}");
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
    k8s_corefile_at("example.org:0", "127.0.0.1", source)
}

/// The k8s_gateway zone signed by CSK in server block `block` bound to `bind`.
fn k8s_corefile_at(block: &str, bind: &str, source: &str) -> String {
    format!(
        "{block} {{\n  bind {bind}\n  k8s_gateway {{\n    {source}\n  }}\n  dnssec {{\n    key file {CSK}\n  }}\n}}\n"
    )
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// exdns answering example.org from k8s_gateway's `source` (with `file`, and the CSK's key
/// files), signed by the CSK, once web.example.org validates; and the trust anchor.
fn k8s_signed(source: &str, file: (String, String)) -> (Exdns, PathBuf) {
    let mut files = key_files(CSK);
    files.push(file);
    let ex = start_owned(&[], &k8s_corefile(source), &files);
    let ta = anchor(ex.dir.path(), &[CSK]);
    wait_for("the cluster's objects", || {
        delv(ex.dns(), &ta, "web.example.org", "A", false).contains("192.0.2.80")
    });
    (ex, ta)
}

#[test]
fn k8s_gateway_zone_from_manifests_validates_under_churn() {
    if !require("delv") {
        return;
    }
    let (ex, ta) = k8s_signed(
        "manifests objects",
        ("objects/all.yaml".into(), manifests("192.0.2.80")),
    );
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
    let (ex, ta) = k8s_signed(
        "kubeconfig kubeconfig.yaml",
        ("kubeconfig.yaml".into(), c.kubeconfig_yaml()),
    );
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

/// exdns's address in the DNSViz test: the child's name server's (ZONE's ns1.example.org, the
/// k8s_gateway zone's dns1.kube-system.example.org), and the glue in the parent.
const NS1_IP: &str = "192.0.2.53";

/// The parent `org.` signed by Knot on the upstream host's service address (port 53): its own
/// name server there, and the delegation of example.org to `ns_name` (glue: [`NS1_IP`]) with
/// the DS records of `keys`.
fn start_parent(topo: &netns::Topology, ns_name: &str, keys: &[&str]) -> SignedParent {
    let ip = netns::SERVICE_IP;
    let mut zone = format!(
        "$ORIGIN org.\n@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 300\n@ 3600 IN NS ns\n\
         ns 3600 IN A {ip}\nexample 3600 IN NS {ns_name}.\n{ns_name}. 3600 IN A {NS1_IP}\n"
    );
    for k in keys {
        zone += &(ds_fields(k).join(" ") + "\n");
    }
    SignedParent::start(
        &["ip", "netns", "exec", &topo.upstream],
        SocketAddr::from((ip, 53)),
        "org",
        &zone,
    )
}

/// Every `errors` and `warnings` entry in a DNSViz `grok` JSON tree, as `PATH KIND: CODE: TEXT`.
fn dnsviz_problems(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "errors" || k == "warnings" {
                    for p in v.as_array().into_iter().flatten() {
                        out.push(format!(
                            "{path} {k}: {}: {}",
                            p["code"].as_str().unwrap_or("?"),
                            p["description"].as_str().unwrap_or("?")
                        ));
                    }
                } else {
                    dnsviz_problems(v, &format!("{path}/{k}"), out);
                }
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                dnsviz_problems(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// DNSViz's verdict on `names`: `dnsviz probe` on the client host (authoritative analysis from
/// `parent` down, following its referral to exdns), then `dnsviz grok` with the parent's KSK
/// as the trust anchor. The grok JSON, by name.
fn dnsviz(topo: &netns::Topology, parent: &SignedParent, names: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.json");
    let ta = dir.path().join("trusted-keys");
    std::fs::write(&ta, parent.ksk().unwrap() + "\n").unwrap();
    // `org+`: org.'s server is given (there is no root here) and its ancestry is not analysed.
    let servers = format!("org+:ns.org={}", parent.addr.ip());
    let mut args = vec![
        "dnsviz",
        "probe",
        "-A",
        "-x",
        &servers,
        "-o",
        probe.to_str().unwrap(),
        "org",
    ];
    args.extend_from_slice(names);
    let out = topo.run_in_timeout(&topo.client, &args, Duration::from_secs(300));
    assert!(out.ok(), "dnsviz probe: {}", out.text());
    let (code, text) = run(
        "dnsviz",
        &[
            "grok",
            "-t",
            ta.to_str().unwrap(),
            "-r",
            probe.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "dnsviz grok: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("dnsviz grok output: {e}: {text}"))
}

/// Asserts DNSViz finds example.org, delegated from a Knot-signed `org.` to `ns_name` with
/// CSK's DS, SECURE with no error or warning: the chain (org.'s anchor, its signed DS, exdns's
/// keys and signatures), the glue, each (query, what DNSViz found) of `cases` SECURE, and no
/// problem anywhere under example.org.
fn assert_dnsviz_secure(
    topo: &netns::Topology,
    ex: &Exdns,
    ns_name: &str,
    names: &[&str],
    cases: &[(&str, &str)],
) {
    let parent = start_parent(topo, ns_name, &[CSK]);
    let grok = dnsviz(topo, &parent, names);
    let report = || {
        format!(
            "{}\n--- exdns:\n{}\n{}",
            serde_json::to_string_pretty(&grok).unwrap(),
            ex.output(),
            parent.output()
        )
    };
    assert_eq!(grok["org."]["zone"]["status"], "SECURE", "{}", report());
    let child = &grok["example.org."];
    assert_eq!(child["delegation"]["status"], "SECURE", "{}", report());
    assert_eq!(
        child["delegation"]["ds"][0]["status"],
        "VALID",
        "{}",
        report()
    );
    assert_eq!(child["zone"]["status"], "SECURE", "{}", report());
    // The parent's glue is the address exdns gives its name server, and exdns answers there.
    assert_eq!(
        child["zone"]["servers"][format!("{ns_name}.")],
        json!({"glue": [NS1_IP], "auth": [NS1_IP]}),
        "{}",
        report()
    );
    for (query, kind) in cases {
        let name = query.split('/').next().unwrap();
        let statuses: Vec<&str> = grok[name]["queries"][query][kind]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["status"].as_str().unwrap_or("?"))
            .collect();
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| *s == "SECURE"),
            "{query} {kind}: {statuses:?}\n{}",
            report()
        );
    }
    let mut problems = Vec::new();
    for name in names {
        dnsviz_problems(&grok[format!("{name}.")], name, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}\n{}", report());
}

#[test]
fn a_zone_delegated_with_its_ds_passes_dnsviz() {
    // DNSViz asks every server on port 53: the parent org. (Knot) on the upstream host's service
    // address, exdns on the client host at its name server's address, DNSViz on the client host.
    let Some(topo) = netns::Topology::create("dnsviz") else {
        return;
    };
    if !require("dnsviz") || !require("dig") || !require("knotd") {
        return;
    }
    let added = topo.run_in(
        &topo.client,
        &["ip", "addr", "add", &format!("{NS1_IP}/32"), "dev", "lo"],
    );
    assert!(added.ok(), "{}", added.text());
    let in_client = ["ip", "netns", "exec", topo.client.as_str()];

    // The file zone. (query, what DNSViz found); a name that does not exist is a NODATA to
    // DNSViz: the compact denial of RFC 9824.
    let ex = file_zone_at(&[CSK], "", "example.org:53", NS1_IP, &in_client);
    assert_dnsviz_secure(
        &topo,
        &ex,
        "ns1.example.org",
        &[
            "example.org",
            "www.example.org",
            "alias.example.org",
            "dangling.example.org",
            "any.wild.example.org",
            "ent.example.org",
            "nx.example.org",
        ],
        &[
            ("example.org./IN/SOA", "answer"),
            ("example.org./IN/NS", "answer"),
            ("example.org./IN/DNSKEY", "answer"),
            ("example.org./IN/CDS", "answer"),
            ("example.org./IN/CDNSKEY", "answer"),
            ("example.org./IN/DS", "answer"),
            ("example.org./IN/MX", "nodata"),
            ("www.example.org./IN/A", "answer"),
            ("www.example.org./IN/AAAA", "nodata"),
            ("alias.example.org./IN/A", "answer"),
            ("dangling.example.org./IN/A", "answer"),
            ("any.wild.example.org./IN/A", "answer"),
            ("ent.example.org./IN/A", "nodata"),
            ("nx.example.org./IN/A", "nodata"),
        ],
    );
    drop(ex);

    // The k8s_gateway zone from manifests: its name server is the apex, dns1.kube-system, whose
    // address is its own LoadBalancer Service's.
    let mut files = key_files(CSK);
    let objects = manifests("192.0.2.80")
        + &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: dns1\n  namespace: kube-system\n\
             spec:\n  type: LoadBalancer\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: {NS1_IP}\n"
        );
    files.push(("objects/all.yaml".into(), objects));
    let cf = k8s_corefile_at("example.org:53", NS1_IP, "manifests objects");
    let ex = start_owned(&in_client, &cf, &files);
    wait_for("the manifests", || {
        let out = topo.run_in(
            &topo.client,
            &[
                "dig",
                &format!("@{NS1_IP}"),
                "+short",
                "web.example.org",
                "A",
            ],
        );
        out.stdout.trim() == "192.0.2.80"
    });
    assert_dnsviz_secure(
        &topo,
        &ex,
        "dns1.kube-system.example.org",
        &[
            "example.org",
            "web.example.org",
            "api.example.org",
            "x.api.example.org",
            "alias.example.org",
            "dns1.kube-system.example.org",
            "nx.example.org",
        ],
        &[
            ("example.org./IN/SOA", "answer"),
            ("example.org./IN/NS", "answer"),
            ("example.org./IN/DNSKEY", "answer"),
            ("example.org./IN/CDS", "answer"),
            ("example.org./IN/DS", "answer"),
            ("web.example.org./IN/A", "answer"),
            ("web.example.org./IN/AAAA", "nodata"),
            ("api.example.org./IN/AAAA", "answer"),
            ("x.api.example.org./IN/A", "answer"),
            ("alias.example.org./IN/A", "answer"),
            ("dns1.kube-system.example.org./IN/A", "answer"),
            ("nx.example.org./IN/A", "nodata"),
        ],
    );
    drop(ex);

    // The checker does check: with the same delegation, a zone signed by a key the parent's DS
    // does not name has no secure entry point.
    let ex = file_zone_at(&[ED25519], "", "example.org:53", NS1_IP, &in_client);
    let parent = start_parent(&topo, "ns1.example.org", &[CSK]);
    let grok = dnsviz(&topo, &parent, &["example.org"]);
    let child = &grok["example.org."];
    let mut problems = Vec::new();
    dnsviz_problems(child, "example.org", &mut problems);
    assert_eq!(
        child["delegation"]["status"],
        "BOGUS",
        "{child:#}\n{}",
        ex.output()
    );
    assert!(
        problems.iter().any(|p| p.contains("errors: NO_SEP:")),
        "{problems:#?}"
    );
}
