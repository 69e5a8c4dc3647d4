use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::setup::parse;
use super::*;
use crate::corefile::ParseError;
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::{self, NextMarker};
use crate::plugin::{Plugin, SetupCtx, StartupCtx};

// ---- helpers ----

fn parse_in(zones: &[&str], text: &str) -> Result<Hosts, ParseError> {
    let b = test_chain::block(zones);
    let mut config = BlockConfig::default();
    let ctx = SetupCtx {
        block: &b,
        config: &mut config,
    };
    parse(&mut test_chain::dispenser(text), &ctx)
}

/// Runs the real setup (which loads the file) and returns the handler.
fn setup_in(zones: &[&str], text: &str) -> Arc<dyn Plugin> {
    test_chain::setup_in(setup, text, zones)
        .unwrap()
        .expect("a handler")
}

fn err(text: &str) -> String {
    match parse_in(&["example.org."], text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

fn query(name: &str, qtype: RecordType) -> Request {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries
        .push(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let src: IpAddr = "192.0.2.10".parse().unwrap();
    let mut r = Request::new(
        m,
        SocketAddr::new(src, 5353),
        "127.0.0.1:53".parse().unwrap(),
        Proto::Udp,
        40,
    );
    r.server = Arc::from("dns://:53");
    r
}

async fn run(p: &Arc<dyn Plugin>, req: &Request) -> Outcome {
    test_chain::serve(&**p, req, &[Arc::new(NextMarker)]).await
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// The answer section as `OWNER TTL CLASS TYPE RDATA` lines.
fn answer_lines(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| {
            let data = match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::PTR(p) => p.0.to_string(),
                other => panic!("unexpected rdata {other:?}"),
            };
            assert_eq!(r.dns_class, DNSClass::IN);
            format!("{} {} {} {}", r.name, r.ttl, r.record_type(), data)
        })
        .collect()
}

// ---- setup ----

#[test]
fn defaults() {
    let h = parse_in(&["example.org."], "hosts").unwrap();
    assert_eq!(h.data.path, PathBuf::from("/etc/hosts"));
    assert_eq!(h.origins, vec!["example.org."]);
    assert_eq!(h.ttl, 3600);
    assert_eq!(h.reload, Duration::from_secs(5));
    assert!(h.fall.is_empty());
    assert!(h.data.auto_reverse);
    assert_eq!(h.data.inline.len(), 0);
}

#[test]
fn options_zones_and_inline_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write(&path, "");
    let h = parse_in(
        &["example.org."],
        &format!(
            "hosts {} Example.NET 10.0.0.0/8 {{\n 10.0.0.1 a.example.net b.example.net\n ttl 60\n reload 1m30s\n no_reverse\n fallthrough a.example.net\n}}",
            path.display()
        ),
    )
    .unwrap();
    assert_eq!(h.data.path, path);
    assert_eq!(h.origins, vec!["example.net.", "10.in-addr.arpa."]);
    assert_eq!(h.ttl, 60);
    assert_eq!(h.reload, Duration::from_secs(90));
    assert!(!h.data.auto_reverse);
    assert_eq!(h.fall, vec!["a.example.net."]);
    assert_eq!(
        h.data.inline.name4.get("b.example.net."),
        Some(&vec!["10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()])
    );
    assert!(h.data.inline.addr.is_empty(), "no_reverse: no PTR data");

    let h = parse_in(&["example.org."], "hosts {\n fallthrough\n reload 0\n}").unwrap();
    assert_eq!(h.fall, vec!["."]);
    assert_eq!(h.reload, Duration::ZERO);
}

#[test]
fn missing_file_is_only_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    let h = parse_in(&["."], &format!("hosts {}", path.display())).unwrap();
    assert_eq!(h.data.path, path);
    assert!(!h.data.reload_if_changed());
}

#[test]
fn setup_errors_are_worded_like_coredns() {
    let p = "Corefile:2 - Error during parsing: ";
    assert_eq!(
        err("hosts {\n ttl\n}"),
        format!("{p}ttl needs a time in second")
    );
    assert_eq!(
        err("hosts {\n ttl 1h\n}"),
        format!("{p}ttl needs a number of second")
    );
    assert_eq!(
        err("hosts {\n ttl 0\n}"),
        format!("{p}ttl provided is invalid")
    );
    assert_eq!(
        err("hosts {\n ttl 65536\n}"),
        format!("{p}ttl provided is invalid")
    );
    assert_eq!(
        err("hosts {\n reload\n}"),
        format!("{p}reload needs a duration (zero seconds to disable)")
    );
    assert_eq!(
        err("hosts {\n reload 5s 10s\n}"),
        format!("{p}reload needs a duration (zero seconds to disable)")
    );
    assert_eq!(
        err("hosts {\n reload 5\n}"),
        format!("{p}invalid duration for reload '5'")
    );
    assert_eq!(
        err("hosts {\n reload -1s\n}"),
        format!("{p}invalid negative duration for reload '-1s'")
    );
    // After `fallthrough`, a line is no longer hosts data.
    assert_eq!(
        err("hosts {\n fallthrough\n 10.0.0.1 a.example.org\n}"),
        "Corefile:3 - Error during parsing: unknown property '10.0.0.1'"
    );
    // A path that cannot be examined (a component is a file) is an error.
    let f = tempfile::NamedTempFile::new().unwrap();
    let bad = f.path().join("hosts");
    let msg = err(&format!("hosts {}", bad.display()));
    assert!(
        msg.starts_with(&format!(
            "Corefile:1 - Error during parsing: unable to access hosts file '{}': ",
            bad.display()
        )),
        "{msg}"
    );
}

// ---- hosts file parsing ----

const SAMPLE: &str = "# The comment line
127.0.0.1 localhost localhost.domain
::1 localhost localhost.domain
10.0.0.1 example.org   # a trailing comment
::FFFF:10.0.0.2 example.com
fe80::1%eth0 LinkLocal.example.org
not-an-ip foo.example.org
10.0.0.3
10.0.0.4 Dup.example.org dup.example.org.
10.0.0.4 dup.example.org
";

#[test]
fn parses_hosts_text() {
    let m = HostsMap::parse(SAMPLE, &[".".to_string()], true);
    let v4 = |n: &str| m.name4.get(n).cloned().unwrap_or_default();
    let v6 = |n: &str| m.name6.get(n).cloned().unwrap_or_default();
    assert_eq!(
        v4("localhost."),
        vec!["127.0.0.1".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(v6("localhost."), vec!["::1".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(
        v4("example.org."),
        vec!["10.0.0.1".parse::<Ipv4Addr>().unwrap()]
    );
    // IPv4-mapped IPv6 is an IPv4 address, as in CoreDNS.
    assert_eq!(
        v4("example.com."),
        vec!["10.0.0.2".parse::<Ipv4Addr>().unwrap()]
    );
    assert!(v6("example.com.").is_empty());
    assert_eq!(
        v6("linklocal.example.org."),
        vec!["fe80::1".parse::<Ipv6Addr>().unwrap()]
    );
    assert!(!m.name4.contains_key("foo.example.org."));
    assert_eq!(
        v4("dup.example.org."),
        vec!["10.0.0.4".parse::<Ipv4Addr>().unwrap()]
    );
    let names = |ip: &str| -> Vec<String> {
        m.addr
            .get(&ip.parse::<IpAddr>().unwrap())
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(names("127.0.0.1"), vec!["localhost.", "localhost.domain."]);
    assert_eq!(names("10.0.0.2"), vec!["example.com."]);
    assert_eq!(names("10.0.0.4"), vec!["dup.example.org."]);
    // 2+2 localhost, 1 example.org, 1 example.com, 1 linklocal, 1 dup, each forward + reverse.
    assert_eq!(m.len(), 16);

    let only = HostsMap::parse(SAMPLE, &["example.org.".to_string()], false);
    assert!(!only.name4.contains_key("localhost."));
    assert!(!only.name4.contains_key("example.com."));
    assert!(only.name4.contains_key("example.org."));
    assert!(only.addr.is_empty());
    assert_eq!(only.len(), 3);
}

#[test]
fn reverse_names() {
    let a = |s: &str| address_from_reverse(s);
    assert_eq!(
        a("1.0.0.10.in-addr.arpa."),
        Some("10.0.0.1".parse().unwrap())
    );
    assert_eq!(a("0.0.10.in-addr.arpa."), None);
    assert_eq!(a("1.1.0.0.10.in-addr.arpa."), None);
    assert_eq!(a("256.0.0.10.in-addr.arpa."), None);
    assert_eq!(a("x.0.0.10.in-addr.arpa."), None);
    assert_eq!(
        a("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."),
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(
        a("2.0.0.0.0.0.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."),
        Some("10.0.0.2".parse().unwrap()),
        "IPv4-mapped reverse names map to the IPv4 address"
    );
    assert_eq!(a("0.8.b.d.0.1.0.0.2.ip6.arpa."), None);
    assert_eq!(a("www.example.org."), None);
}

// ---- serving ----

const FILE: &str = "10.0.0.1 www.example.org WWW2.example.org
2001:db8::1 www.example.org
10.0.0.2 v4only.example.org
2001:db8::2 v6only.example.org
10.0.0.50 outside.test
";

#[derive(Debug)]
enum Want {
    /// NOERROR, AA, exactly these answer lines.
    Answer(&'static [&'static str]),
    Next,
    ServFail,
}

async fn check(p: &Arc<dyn Plugin>, name: &str, qtype: RecordType, want: &Want) {
    let req = query(name, qtype);
    let out = run(p, &req).await;
    let ctx = format!("{name} {qtype}: {want:?}");
    match want {
        Want::Next => assert_eq!(out.plugin(), "next", "{ctx}: {out:?}"),
        Want::ServFail => assert!(
            matches!(
                out,
                Outcome::Code {
                    rcode: ResponseCode::ServFail,
                    plugin: "hosts"
                }
            ),
            "{ctx}: {out:?}"
        ),
        Want::Answer(lines) => {
            let Outcome::Reply { msg, plugin } = out else {
                panic!("{ctx}: expected a reply, got {out:?}");
            };
            assert_eq!(plugin, "hosts", "{ctx}");
            assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{ctx}");
            assert_eq!(msg.metadata.id, 0x1234, "{ctx}");
            assert_eq!(msg.metadata.message_type, MessageType::Response, "{ctx}");
            assert!(msg.metadata.authoritative, "{ctx}");
            assert!(msg.metadata.recursion_desired, "{ctx}");
            assert!(!msg.metadata.recursion_available, "{ctx}");
            assert_eq!(msg.queries, req.msg.queries, "{ctx}: question echoed");
            assert_eq!(answer_lines(&msg), *lines, "{ctx}");
            assert!(msg.authorities.is_empty(), "{ctx}");
            assert!(msg.additionals.is_empty(), "{ctx}");
        }
    }
}

const V6_2_REVERSE: &str =
    "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";

#[tokio::test]
async fn serve_table_without_fallthrough() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write(&path, FILE);
    let p = setup_in(
        &["example.org."],
        &format!(
            "hosts {} {{\n 10.0.0.1 inline.example.org\n 10.0.0.3 www.example.org\n ttl 300\n}}",
            path.display()
        ),
    );
    let cases: &[(&str, RecordType, Want)] = &[
        (
            "www.example.org.",
            RecordType::A,
            Want::Answer(&[
                "www.example.org. 300 A 10.0.0.1",
                "www.example.org. 300 A 10.0.0.3",
            ]),
        ),
        // Case-insensitive; the owner is the lower-cased query name.
        (
            "WWW.Example.ORG.",
            RecordType::AAAA,
            Want::Answer(&["www.example.org. 300 AAAA 2001:db8::1"]),
        ),
        (
            "www2.example.org.",
            RecordType::A,
            Want::Answer(&["www2.example.org. 300 A 10.0.0.1"]),
        ),
        // NODATA: the name exists, the family or type does not.
        ("v4only.example.org.", RecordType::AAAA, Want::Answer(&[])),
        ("v6only.example.org.", RecordType::A, Want::Answer(&[])),
        ("www.example.org.", RecordType::MX, Want::Answer(&[])),
        // Unknown name in the zone, no fallthrough: SERVFAIL as in CoreDNS.
        ("missing.example.org.", RecordType::A, Want::ServFail),
        ("missing.example.org.", RecordType::TXT, Want::ServFail),
        // Outside the plugin's zones: next, whatever the data says.
        ("outside.test.", RecordType::A, Want::Next),
        ("www.example.net.", RecordType::A, Want::Next),
        // PTR answers come from reverse entries, whatever the zone.
        (
            "1.0.0.10.in-addr.arpa.",
            RecordType::PTR,
            Want::Answer(&[
                "1.0.0.10.in-addr.arpa. 300 PTR www.example.org.",
                "1.0.0.10.in-addr.arpa. 300 PTR www2.example.org.",
                "1.0.0.10.in-addr.arpa. 300 PTR inline.example.org.",
            ]),
        ),
        (
            V6_2_REVERSE,
            RecordType::PTR,
            Want::Answer(&[
                "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 PTR v6only.example.org.",
            ]),
        ),
        // Names outside the zones have no reverse entry either.
        ("50.0.0.10.in-addr.arpa.", RecordType::PTR, Want::Next),
        ("9.9.9.9.in-addr.arpa.", RecordType::PTR, Want::Next),
        ("www.example.org.", RecordType::PTR, Want::Next),
    ];
    for (name, qtype, want) in cases {
        check(&p, name, *qtype, want).await;
    }
}

#[tokio::test]
async fn fallthrough_and_no_reverse() {
    let p = setup_in(
        &["example.org."],
        "hosts /nonexistent/exdns-test-hosts {\n 10.0.0.1 a.example.org\n no_reverse\n fallthrough sub.example.org\n}",
    );
    check(
        &p,
        "a.example.org.",
        RecordType::A,
        &Want::Answer(&["a.example.org. 3600 A 10.0.0.1"]),
    )
    .await;
    check(&p, "a.example.org.", RecordType::AAAA, &Want::Answer(&[])).await;
    check(&p, "x.sub.example.org.", RecordType::A, &Want::Next).await;
    check(&p, "x.example.org.", RecordType::A, &Want::ServFail).await;
    check(&p, "1.0.0.10.in-addr.arpa.", RecordType::PTR, &Want::Next).await;

    let p = setup_in(
        &["example.org."],
        "hosts /nonexistent/exdns-test-hosts {\n 10.0.0.1 a.example.org\n fallthrough\n}",
    );
    check(&p, "x.example.org.", RecordType::A, &Want::Next).await;
    check(&p, "a.example.org.", RecordType::TXT, &Want::Answer(&[])).await;
}

// ---- reload ----

#[test]
fn reload_follows_mtime_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write(&path, "10.0.0.1 a.example.org\n");
    let h = parse_in(&["example.org."], &format!("hosts {}", path.display())).unwrap();
    assert!(h.data.reload_if_changed(), "first load");
    assert!(!h.data.reload_if_changed(), "unchanged file");
    assert_eq!(h.data.file.load().len(), 2);

    write(&path, "10.0.0.1 a.example.org\n10.0.0.2 b.example.org\n");
    assert!(h.data.reload_if_changed(), "size changed");
    assert!(h.data.file.load().name4.contains_key("b.example.org."));

    // A vanished file keeps what was loaded.
    std::fs::remove_file(&path).unwrap();
    assert!(!h.data.reload_if_changed());
    assert!(h.data.file.load().name4.contains_key("b.example.org."));
}

async fn a_records(p: &Arc<dyn Plugin>, name: &str) -> Vec<String> {
    match run(p, &query(name, RecordType::A)).await {
        Outcome::Reply { msg, .. } => answer_lines(&msg),
        other => vec![format!("{other:?}")],
    }
}

/// `hosts FILE { reload RELOAD }` for `example.org.`, the file in a fresh directory holding
/// `10.0.0.1 a.example.org`.
fn hosts_file_with_reload(reload: &str) -> (tempfile::TempDir, PathBuf, Arc<Hosts>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write(&path, "10.0.0.1 a.example.org\n");
    let text = format!("hosts {} {{\n reload {reload}\n}}", path.display());
    let hosts = Arc::new(parse_in(&["example.org."], &text).unwrap());
    (dir, path, hosts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_task_picks_up_changes_and_stops_on_shutdown() {
    let (_dir, path, hosts) = hosts_file_with_reload("20ms");
    let p: Arc<dyn Plugin> = hosts.clone();
    let ctx = StartupCtx {
        dns_addrs: vec![],
        zones: vec!["example.org.".to_string()],
    };
    p.on_startup(&ctx).await.unwrap();
    assert_eq!(
        a_records(&p, "a.example.org.").await,
        vec!["a.example.org. 3600 A 10.0.0.1"]
    );
    assert!(hosts.task.is_set());

    write(&path, "10.0.0.7 a.example.org\n10.0.0.8 b.example.org\n");
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = a_records(&p, "a.example.org.").await;
        if seen == ["a.example.org. 3600 A 10.0.0.7"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, vec!["a.example.org. 3600 A 10.0.0.7"]);

    p.on_shutdown();
    assert!(!hosts.task.is_set());
    write(&path, "10.0.0.9 a.example.org\n");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        a_records(&p, "a.example.org.").await,
        vec!["a.example.org. 3600 A 10.0.0.7"],
        "no reload after shutdown"
    );
}

#[tokio::test]
async fn reload_zero_starts_no_task() {
    let (_dir, _path, hosts) = hosts_file_with_reload("0s");
    let p: Arc<dyn Plugin> = hosts.clone();
    p.on_startup(&StartupCtx {
        dns_addrs: vec![],
        zones: vec![],
    })
    .await
    .unwrap();
    assert!(!hosts.task.is_set());
    // on_startup still loads the file once.
    assert_eq!(
        a_records(&p, "a.example.org.").await,
        vec!["a.example.org. 3600 A 10.0.0.1"]
    );
}

#[test]
fn metrics_are_registered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write(&path, "10.0.0.1 a.example.org\n");
    let _p = setup_in(&["example.org."], &format!("hosts {}", path.display()));
    let text = crate::metrics::gather_text();
    assert!(
        text.contains("# TYPE coredns_hosts_entries gauge"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE coredns_hosts_reload_timestamp_seconds gauge"),
        "{text}"
    );
    assert!(
        RELOAD_TIMESTAMP.get() > 1_000_000_000.0,
        "set from the file's mtime"
    );
}
