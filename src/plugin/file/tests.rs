use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};

use super::setup::parse;
use super::*;
use crate::corefile::ParseError;
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::{self, NextMarker};
use crate::plugin::{Plugin, SetupCtx, StartupCtx};

/// The zone most tests answer from (tests/file.rs compares the same file with NSD).
const ZONE: &str = include_str!("../../../fixtures/file/example.org.db");

const NS1: &str = "example.org. 3600 IN NS ns1.example.org.";
const NS2: &str = "example.org. 3600 IN NS ns2.example.org.";
/// The SOA of negative answers: TTL min(3600, MINIMUM 300).
const NEG_SOA: &str = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300";
const SUB_NS1: &str = "sub.example.org. 3600 IN NS ns1.sub.example.org.";
const SUB_NS2: &str = "sub.example.org. 3600 IN NS ns.example.net.";
const SUB_GLUE: &str = "ns1.sub.example.org. 3600 IN A 192.0.2.53";
const WWW_A: [&str; 2] = [
    "www.example.org. 300 IN A 192.0.2.80",
    "www.example.org. 300 IN A 192.0.2.81",
];

// ---- helpers ----

/// A temp dir holding `db` (and more files a test adds).
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(zone: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), zone).unwrap();
        Files { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn db(&self) -> String {
        self.path("db").display().to_string()
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }
}

fn parse_in(zones: &[&str], text: &str) -> Result<File, ParseError> {
    let b = test_chain::block(zones);
    let mut config = BlockConfig::default();
    let ctx = SetupCtx {
        block: &b,
        config: &mut config,
    };
    parse(&mut test_chain::dispenser(text), &ctx)
}

fn plugin(zones: &[&str], text: &str) -> File {
    parse_in(zones, text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn err_in(zones: &[&str], text: &str) -> String {
    match parse_in(zones, text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

async fn outcome(p: &File, name: &str, qtype: RecordType) -> Outcome {
    let req = test_chain::request(name, qtype);
    test_chain::serve(p, &req, &[Arc::new(NextMarker)]).await
}

async fn ask(p: &File, name: &str, qtype: RecordType) -> Message {
    match outcome(p, name, qtype).await {
        Outcome::Reply { msg, plugin } => {
            assert_eq!(plugin, "file", "{name} {qtype} was passed on");
            msg
        }
        other => panic!("{name} {qtype}: {other:?}"),
    }
}

fn lines(rs: &[Record]) -> Vec<String> {
    rs.iter().map(|r| r.to_string()).collect()
}

/// What a reply must be, exactly (sections in order).
struct Want {
    rcode: ResponseCode,
    aa: bool,
    answer: Vec<&'static str>,
    authority: Vec<&'static str>,
    additional: Vec<&'static str>,
}

fn want(
    rcode: ResponseCode,
    aa: bool,
    answer: &[&'static str],
    authority: &[&'static str],
    additional: &[&'static str],
) -> Want {
    Want {
        rcode,
        aa,
        answer: answer.to_vec(),
        authority: authority.to_vec(),
        additional: additional.to_vec(),
    }
}

/// A positive authoritative answer: the records, the apex NS as authority.
fn positive(answer: &[&'static str], additional: &[&'static str]) -> Want {
    want(ResponseCode::NoError, true, answer, &[NS1, NS2], additional)
}

fn nxdomain(answer: &[&'static str]) -> Want {
    want(ResponseCode::NXDomain, true, answer, &[NEG_SOA], &[])
}

fn nodata(answer: &[&'static str]) -> Want {
    want(ResponseCode::NoError, true, answer, &[NEG_SOA], &[])
}

fn referral(answer: &[&'static str]) -> Want {
    want(
        ResponseCode::NoError,
        !answer.is_empty(),
        answer,
        &[SUB_NS1, SUB_NS2],
        &[SUB_GLUE],
    )
}

fn check(m: &Message, w: &Want, what: &str) {
    assert_eq!(m.metadata.response_code, w.rcode, "{what}: rcode");
    assert_eq!(m.metadata.authoritative, w.aa, "{what}: AA");
    assert_eq!(lines(&m.answers), w.answer, "{what}: answer");
    assert_eq!(lines(&m.authorities), w.authority, "{what}: authority");
    assert_eq!(lines(&m.additionals), w.additional, "{what}: additional");
    // The question is echoed as asked, ID and RD copied.
    assert_eq!(m.metadata.id, 4242, "{what}");
    assert!(m.metadata.recursion_desired, "{what}");
    assert!(!m.metadata.recursion_available, "{what}");
}

fn example_org(f: &Files) -> File {
    plugin(&["."], &format!("file {} example.org", f.db()))
}

// ---- answers ----

#[tokio::test]
async fn answer_table() {
    use RecordType::*;
    let f = Files::new(ZONE);
    let p = example_org(&f);
    let cases: Vec<(&str, RecordType, Want)> = vec![
        // Positive answers: the RRset, the apex NS as authority (CoreDNS).
        ("www.example.org.", A, positive(&WWW_A, &[])),
        (
            "www.example.org.",
            AAAA,
            positive(&["www.example.org. 3600 IN AAAA 2001:db8::80"], &[]),
        ),
        (
            "txt.example.org.",
            TXT,
            positive(&["txt.example.org. 3600 IN TXT hello world"], &[]),
        ),
        // Apex: SOA with NS as authority; NS with the in-zone addresses and no authority.
        (
            "example.org.",
            SOA,
            positive(
                &[
                    "example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300",
                ],
                &[],
            ),
        ),
        (
            "example.org.",
            NS,
            want(
                ResponseCode::NoError,
                true,
                &[NS1, NS2],
                &[],
                &[
                    "ns1.example.org. 3600 IN A 192.0.2.1",
                    "ns2.example.org. 3600 IN A 192.0.2.2",
                    "ns2.example.org. 3600 IN AAAA 2001:db8::2",
                ],
            ),
        ),
        // MX and SRV targets in the zone: their addresses as additional data.
        (
            "example.org.",
            MX,
            positive(
                &["example.org. 3600 IN MX 10 mail.example.org."],
                &["mail.example.org. 3600 IN A 192.0.2.25"],
            ),
        ),
        (
            "_sip._tcp.example.org.",
            SRV,
            positive(
                &["_sip._tcp.example.org. 3600 IN SRV 10 60 5060 sip.example.org."],
                &["sip.example.org. 3600 IN A 192.0.2.5"],
            ),
        ),
        // NXDOMAIN and NODATA: the SOA with TTL min(SOA TTL, MINIMUM).
        ("nope.example.org.", A, nxdomain(&[])),
        ("x.www.example.org.", A, nxdomain(&[])),
        ("txt.example.org.", A, nodata(&[])),
        ("example.org.", TXT, nodata(&[])),
        // ANY is not expanded (CoreDNS): NODATA.
        ("www.example.org.", ANY, nodata(&[])),
        // CNAMEs are followed inside the zone.
        (
            "alias.example.org.",
            A,
            positive(
                &[
                    "alias.example.org. 3600 IN CNAME www.example.org.",
                    WWW_A[0],
                    WWW_A[1],
                ],
                &[],
            ),
        ),
        (
            "chain.example.org.",
            A,
            positive(
                &[
                    "chain.example.org. 3600 IN CNAME alias.example.org.",
                    "alias.example.org. 3600 IN CNAME www.example.org.",
                    WWW_A[0],
                    WWW_A[1],
                ],
                &[],
            ),
        ),
        // Asking for the CNAME itself: no chasing.
        (
            "chain.example.org.",
            CNAME,
            positive(
                &["chain.example.org. 3600 IN CNAME alias.example.org."],
                &[],
            ),
        ),
        // Target outside the zone: the CNAME only.
        (
            "ext.example.org.",
            A,
            positive(&["ext.example.org. 3600 IN CNAME www.example.net."], &[]),
        ),
        // Chain ending at a name that does not exist / has no such type (RFC 6604, RFC 2308).
        (
            "dangling.example.org.",
            A,
            nxdomain(&["dangling.example.org. 3600 IN CNAME nothere.example.org."]),
        ),
        (
            "nodata.example.org.",
            A,
            nodata(&["nodata.example.org. 3600 IN CNAME txt.example.org."]),
        ),
        // Chain into a delegation: the CNAME (authoritative) and the referral.
        (
            "tosub.example.org.",
            A,
            referral(&["tosub.example.org. 3600 IN CNAME host.sub.example.org."]),
        ),
        // A loop stops when a name comes back.
        (
            "loop1.example.org.",
            A,
            positive(
                &[
                    "loop1.example.org. 3600 IN CNAME loop2.example.org.",
                    "loop2.example.org. 3600 IN CNAME loop1.example.org.",
                ],
                &[],
            ),
        ),
        // Delegations: a referral (AA unset), glue below the cut in the additional section,
        // for any name at or below the cut and any type (the NS of the cut included).
        ("host.sub.example.org.", A, referral(&[])),
        ("sub.example.org.", NS, referral(&[])),
        ("sub.example.org.", A, referral(&[])),
        ("ns1.sub.example.org.", A, referral(&[])),
        ("deep.host.sub.example.org.", TXT, referral(&[])),
        // DS belongs to the parent side of the cut: NODATA here.
        ("sub.example.org.", DS, nodata(&[])),
        // A name server outside the cut gets no glue (CoreDNS; NSD adds this "sibling glue").
        (
            "www.sib.example.org.",
            A,
            want(
                ResponseCode::NoError,
                false,
                &[],
                &["sib.example.org. 3600 IN NS ns1.example.org."],
                &[],
            ),
        ),
        // Wildcards (RFC 4592): synthesized with the query name as owner, one or more labels.
        (
            "foo.wild.example.org.",
            A,
            positive(&["foo.wild.example.org. 3600 IN A 192.0.2.99"], &[]),
        ),
        (
            "deep.foo.wild.example.org.",
            TXT,
            positive(&["deep.foo.wild.example.org. 3600 IN TXT wild"], &[]),
        ),
        // The wildcard has no MX: NODATA.
        ("foo.wild.example.org.", MX, nodata(&[])),
        // The wildcard name itself.
        (
            "*.wild.example.org.",
            A,
            positive(&["*.wild.example.org. 3600 IN A 192.0.2.99"], &[]),
        ),
        // A name that exists is never synthesized: its own data or NODATA.
        (
            "sub.wild.example.org.",
            A,
            positive(&["sub.wild.example.org. 3600 IN A 192.0.2.98"], &[]),
        ),
        ("sub.wild.example.org.", TXT, nodata(&[])),
        // Closest encloser sub.wild has no `*.sub.wild`: NXDOMAIN, not `*.wild`.
        ("x.sub.wild.example.org.", A, nxdomain(&[])),
        // The empty non-terminal ent.wild exists (NODATA) and blocks `*.wild` below it.
        ("ent.wild.example.org.", A, nodata(&[])),
        ("x.ent.wild.example.org.", A, nxdomain(&[])),
        (
            "a.ent.wild.example.org.",
            A,
            positive(&["a.ent.wild.example.org. 3600 IN A 192.0.2.50"], &[]),
        ),
        // The wildcard's parent `wild` is itself an empty non-terminal.
        ("wild.example.org.", A, nodata(&[])),
        // A wildcard CNAME is followed.
        (
            "x.cn.example.org.",
            A,
            positive(
                &[
                    "x.cn.example.org. 3600 IN CNAME www.example.org.",
                    WWW_A[0],
                    WWW_A[1],
                ],
                &[],
            ),
        ),
        // Case-insensitive: owners as in the zone (lower case); synthesized ones lower-cased.
        ("WWW.Example.ORG.", A, positive(&WWW_A, &[])),
        (
            "FOO.Wild.EXAMPLE.org.",
            A,
            positive(&["foo.wild.example.org. 3600 IN A 192.0.2.99"], &[]),
        ),
        ("NOPE.example.ORG.", A, nxdomain(&[])),
    ];
    for (name, qtype, w) in &cases {
        let m = ask(&p, name, *qtype).await;
        check(&m, w, &format!("{name} {qtype}"));
        assert_eq!(
            m.queries[0].name().to_ascii(),
            *name,
            "question echoed as asked"
        );
    }
}

#[tokio::test]
async fn outside_the_zones_goes_to_the_next_plugin() {
    let f = Files::new(ZONE);
    let p = example_org(&f);
    for name in ["www.example.net.", "org.", "badexample.org.", "."] {
        let out = outcome(&p, name, RecordType::A).await;
        assert_eq!(out.plugin(), "next", "{name}");
    }
}

#[tokio::test]
async fn transfers_are_refused() {
    let f = Files::new(ZONE);
    let p = example_org(&f);
    for t in [RecordType::AXFR, RecordType::IXFR] {
        match outcome(&p, "example.org.", t).await {
            Outcome::Code { rcode, plugin } => {
                assert_eq!((rcode, plugin), (ResponseCode::Refused, "file"))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn fallthrough_passes_on_names_without_data() {
    let f = Files::new(ZONE);
    let all = plugin(
        &["."],
        &format!("file {} example.org {{\n fallthrough\n}}", f.db()),
    );
    // NXDOMAIN, an empty non-terminal, a wildcard without the type: passed on (CoreDNS passes
    // every answerless NXDOMAIN or "success").
    for (name, qtype) in [
        ("nope.example.org.", RecordType::A),
        ("ent.wild.example.org.", RecordType::A),
        ("foo.wild.example.org.", RecordType::MX),
    ] {
        assert_eq!(
            outcome(&all, name, qtype).await.plugin(),
            "next",
            "{name} {qtype}"
        );
    }
    // NODATA at a name with records, answers, referrals and CNAME chains stay.
    check(
        &ask(&all, "txt.example.org.", RecordType::A).await,
        &nodata(&[]),
        "nodata",
    );
    check(
        &ask(&all, "www.example.org.", RecordType::A).await,
        &positive(&WWW_A, &[]),
        "positive",
    );
    check(
        &ask(&all, "host.sub.example.org.", RecordType::A).await,
        &referral(&[]),
        "referral",
    );
    check(
        &ask(&all, "dangling.example.org.", RecordType::A).await,
        &nxdomain(&["dangling.example.org. 3600 IN CNAME nothere.example.org."]),
        "dangling",
    );

    // Only the listed zones fall through.
    let some = plugin(
        &["."],
        &format!(
            "file {} example.org {{\n fallthrough wild.example.org\n}}",
            f.db()
        ),
    );
    assert_eq!(
        outcome(&some, "x.sub.wild.example.org.", RecordType::A)
            .await
            .plugin(),
        "next"
    );
    check(
        &ask(&some, "nope.example.org.", RecordType::A).await,
        &nxdomain(&[]),
        "outside the fallthrough zones",
    );
}

#[tokio::test]
async fn zones_from_the_block_and_several_origins_from_one_file() {
    // Relative names take each origin in turn.
    let f = Files::new(
        "$TTL 60\n@ IN SOA ns hostmaster 7 1 1 1 30\n@ IN NS ns\nns IN A 192.0.2.7\nwww IN CNAME ns\n",
    );
    let p = plugin(&["."], &format!("file {} example.org Example.NET", f.db()));
    assert_eq!(p.origins(), vec!["example.org.", "example.net."]);
    for zone in ["example.org.", "example.net."] {
        let m = ask(&p, &format!("www.{zone}"), RecordType::A).await;
        assert_eq!(
            lines(&m.answers),
            vec![
                format!("www.{zone} 60 IN CNAME ns.{zone}"),
                format!("ns.{zone} 60 IN A 192.0.2.7"),
            ]
        );
        let m = ask(&p, &format!("nope.{zone}"), RecordType::A).await;
        assert_eq!(
            lines(&m.authorities),
            vec![format!(
                "{zone} 30 IN SOA ns.{zone} hostmaster.{zone} 7 1 1 1 30"
            )]
        );
    }
    // Without zone arguments, the block's zones.
    let p = plugin(&["example.com."], &format!("file {}", f.db()));
    assert_eq!(p.origins(), vec!["example.com."]);
    assert_eq!(
        ask(&p, "ns.example.com.", RecordType::A)
            .await
            .answers
            .len(),
        1
    );
    // The longest origin wins.
    let g = Files::new("$TTL 60\n@ IN SOA ns hm 1 1 1 1 1\n@ IN NS ns\nns IN A 192.0.2.9\n");
    let outer = plugin(&["."], &format!("file {} example.org", f.db()));
    let inner = plugin(&["."], &format!("file {} sub.example.org", g.db()));
    let both = File {
        zones: outer.zones.iter().chain(&inner.zones).cloned().collect(),
        fall: vec![],
        reload: Duration::ZERO,
        task: Default::default(),
    };
    let m = ask(&both, "ns.sub.example.org.", RecordType::A).await;
    assert_eq!(
        lines(&m.answers),
        vec!["ns.sub.example.org. 60 IN A 192.0.2.9"]
    );
}

#[tokio::test]
async fn include_origin_ttl_and_out_of_zone_data() {
    let f = Files::new(
        "$TTL 120\n@ IN SOA ns hm 1 1 1 1 600\n@ IN NS ns\n$INCLUDE hosts.inc\n$ORIGIN lab.example.org.\nbox IN A 192.0.2.30\nother.example.net. IN A 192.0.2.31\n",
    );
    f.write("hosts.inc", "ns 30 IN A 192.0.2.29\n");
    let p = example_org(&f);
    check(
        &ask(&p, "ns.example.org.", RecordType::A).await,
        &want(
            ResponseCode::NoError,
            true,
            &["ns.example.org. 30 IN A 192.0.2.29"],
            &["example.org. 120 IN NS ns.example.org."],
            &[],
        ),
        "$INCLUDE next to the zone file",
    );
    assert_eq!(
        lines(&ask(&p, "box.lab.example.org.", RecordType::A).await.answers),
        vec!["box.lab.example.org. 120 IN A 192.0.2.30"]
    );
    // SOA TTL 120 < MINIMUM 600: negative answers keep 120.
    assert_eq!(
        lines(
            &ask(&p, "nope.example.org.", RecordType::A)
                .await
                .authorities
        ),
        vec!["example.org. 120 IN SOA ns.example.org. hm.example.org. 1 1 1 1 600"]
    );
    // Data outside the zone is ignored.
    assert_eq!(
        outcome(&p, "other.example.net.", RecordType::A)
            .await
            .plugin(),
        "next"
    );
}

#[tokio::test]
async fn missing_file_is_servfail_until_it_appears() {
    let f = Files::new(ZONE);
    let missing = f.path("later.db");
    let p = plugin(&["."], &format!("file {} example.org", missing.display()));
    match outcome(&p, "www.example.org.", RecordType::A).await {
        Outcome::Code { rcode, plugin } => {
            assert_eq!((rcode, plugin), (ResponseCode::ServFail, "file"))
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&missing, ZONE).unwrap();
    assert_eq!(p.reload_now(), vec![Reloaded::Loaded(2024010101)]);
    check(
        &ask(&p, "www.example.org.", RecordType::A).await,
        &positive(&WWW_A, &[]),
        "after the reload",
    );
}

// ---- reload ----

fn with_serial(zone: &str, serial: u32) -> String {
    zone.replace("2024010101 ; serial", &format!("{serial} ; serial"))
}

#[tokio::test]
async fn reload_follows_the_soa_serial_and_keeps_the_zone_on_errors() {
    let (_guard, logs) = test_chain::capture_logs();
    let f = Files::new(ZONE);
    let p = example_org(&f);
    assert_eq!(p.reload_now(), vec![Reloaded::Unchanged], "same file");

    // New data, same serial: not loaded (CoreDNS reloads on a serial change only).
    let changed = ZONE.replace("192.0.2.80", "192.0.2.180");
    f.write("db", &changed);
    assert_eq!(p.reload_now(), vec![Reloaded::Unchanged]);
    check(
        &ask(&p, "www.example.org.", RecordType::A).await,
        &positive(&WWW_A, &[]),
        "same serial",
    );

    // A new serial: the new data is served.
    f.write("db", &with_serial(&changed, 2024010102));
    assert_eq!(p.reload_now(), vec![Reloaded::Loaded(2024010102)]);
    assert_eq!(
        lines(&ask(&p, "www.example.org.", RecordType::A).await.answers),
        vec![
            "www.example.org. 300 IN A 192.0.2.180",
            "www.example.org. 300 IN A 192.0.2.81"
        ]
    );
    // A lower serial is a change too (CoreDNS compares for equality).
    f.write("db", &with_serial(ZONE, 7));
    assert_eq!(p.reload_now(), vec![Reloaded::Loaded(7)]);

    // A broken file: the zone loaded before stays; the error names the file and line.
    let broken = with_serial(ZONE, 8).replace("192.0.2.25", "192.0.2");
    f.write("db", &broken);
    let want_err = format!(
        "Parsing zone \"example.org.\" failed, keeping the zone loaded before: {}:17: network address parse error: invalid IPv4 address syntax",
        f.db()
    );
    assert_eq!(p.reload_now(), vec![Reloaded::Failed(want_err.clone())]);
    check(
        &ask(&p, "www.example.org.", RecordType::A).await,
        &positive(&WWW_A, &[]),
        "kept",
    );
    // Logged once, not again while the file stays the same.
    assert_eq!(p.reload_now(), vec![Reloaded::Unchanged]);
    // A file that disappears: logged, the zone stays.
    std::fs::remove_file(f.path("db")).unwrap();
    let gone = format!(
        "Failed to open zone \"example.org.\" in \"{}\": no such file or directory",
        f.db()
    );
    assert_eq!(p.reload_now(), vec![Reloaded::Failed(gone.clone())]);
    assert_eq!(
        ask(&p, "www.example.org.", RecordType::A)
            .await
            .answers
            .len(),
        2
    );

    let logged = logs.lines();
    let count = |s: &str| logged.iter().filter(|l| l.contains(s)).count();
    assert_eq!(
        count(&format!(
            "ERROR exdns::plugin::file: plugin/file: {want_err}"
        )),
        1,
        "{logged:#?}"
    );
    assert_eq!(
        count(&format!("ERROR exdns::plugin::file: plugin/file: {gone}")),
        1,
        "{logged:#?}"
    );
    assert_eq!(
        count(&format!(
            "INFO exdns::plugin::file: plugin/file: Successfully reloaded zone \"example.org.\" in \"{}\" with 2024010102 SOA serial",
            f.db()
        )),
        1,
        "{logged:#?}"
    );
}

#[tokio::test]
async fn the_periodic_reload_runs_from_startup_to_shutdown() {
    let f = Files::new(ZONE);
    let p = plugin(
        &["."],
        &format!("file {} example.org {{\n reload 50ms\n}}", f.db()),
    );
    let ctx = StartupCtx {
        dns_addrs: vec![],
        zones: vec![".".into()],
    };
    p.on_startup(&ctx).await.unwrap();
    f.write(
        "db",
        &with_serial(&ZONE.replace("192.0.2.80", "192.0.2.180"), 9),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = ask(&p, "www.example.org.", RecordType::A).await;
        if lines(&m.answers)[0] == "www.example.org. 300 IN A 192.0.2.180" {
            break;
        }
        assert!(Instant::now() < deadline, "no reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.on_shutdown();
    assert!(!p.task.is_set());
    f.write("db", &with_serial(ZONE, 10));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        lines(&ask(&p, "www.example.org.", RecordType::A).await.answers)[0],
        "www.example.org. 300 IN A 192.0.2.180",
        "stopped"
    );

    // reload 0: no task.
    let q = plugin(
        &["."],
        &format!("file {} example.org {{\n reload 0\n}}", f.db()),
    );
    q.on_startup(&ctx).await.unwrap();
    assert!(!q.task.is_set());
}

#[test]
fn entries_metric_per_owner_name() {
    let f = Files::new(
        "$TTL 60\n@ IN SOA ns hm 1 1 1 1 1\n@ IN NS ns\nns IN A 192.0.2.1\nns IN AAAA 2001:db8::1\nold IN A 192.0.2.2\n",
    );
    let p = plugin(&["."], &format!("file {} metrics.test", f.db()));
    let text = crate::metrics::gather_text();
    for line in [
        "coredns_file_entries{dns_name=\"metrics.test.\"} 2",
        "coredns_file_entries{dns_name=\"ns.metrics.test.\"} 2",
        "coredns_file_entries{dns_name=\"old.metrics.test.\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    // A reload replaces the names: gone ones are removed.
    f.write(
        "db",
        "$TTL 60\n@ IN SOA ns hm 2 1 1 1 1\n@ IN NS ns\nns IN A 192.0.2.1\nnew IN A 192.0.2.3\n",
    );
    assert_eq!(p.reload_now(), vec![Reloaded::Loaded(2)]);
    let text = crate::metrics::gather_text();
    assert!(text.contains("coredns_file_entries{dns_name=\"ns.metrics.test.\"} 1"));
    assert!(text.contains("coredns_file_entries{dns_name=\"new.metrics.test.\"} 1"));
    assert!(!text.contains("old.metrics.test."), "{text}");
}

// ---- setup ----

#[test]
fn setup_options() {
    let f = Files::new(ZONE);
    let p = plugin(&["."], &format!("file {} example.org", f.db()));
    assert_eq!((p.reload, p.fall.clone()), (DEFAULT_RELOAD, vec![]));
    let p = plugin(
        &["."],
        &format!(
            "file {} example.org {{\n reload 30s\n fallthrough\n upstream 8.8.8.8\n}}",
            f.db()
        ),
    );
    assert_eq!(p.reload, Duration::from_secs(30));
    assert_eq!(p.fall, vec!["."]);
    let p = plugin(
        &["."],
        &format!(
            "file {} example.org {{\n fallthrough Wild.Example.org 10.0.0.0/8\n}}",
            f.db()
        ),
    );
    assert_eq!(p.fall, vec!["wild.example.org.", "10.in-addr.arpa."]);
    // Through the directive table, as the server runs it.
    let handler = test_chain::setup_in(setup, &format!("file {}", f.db()), &["example.org."])
        .unwrap()
        .expect("a handler");
    assert_eq!(handler.name(), "file");
    assert!(crate::plugin::directive("file").is_some_and(|d| !d.once));
    assert_eq!(
        crate::plugin::order_of("file"),
        crate::plugin::order_of("k8s_gateway").map(|i| i + 1)
    );
    assert_eq!(
        crate::plugin::order_of("loop"),
        crate::plugin::order_of("file").map(|i| i + 1)
    );
}

#[test]
fn setup_errors_are_worded_as_coredns() {
    let f = Files::new(ZONE);
    let db = f.db();
    let zones = &["example.org."];
    let cases: Vec<(String, String)> = vec![
        (
            "file".into(),
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'file'".into(),
        ),
        (
            format!("file {db} {{\n reload\n}}"),
            "Corefile:2 - Error during parsing: reload duration value is expected".into(),
        ),
        (
            format!("file {db} {{\n reload 5x\n}}"),
            "Corefile:2 - Error during parsing: time: unknown unit \"x\" in duration \"5x\"".into(),
        ),
        (
            format!("file {db} {{\n reload -1s\n}}"),
            "Corefile:2 - Error during parsing: invalid negative duration for reload '-1s'".into(),
        ),
        (
            format!("file {db} {{\n transfer to *\n}}"),
            "Corefile:2 - Error during parsing: unknown property 'transfer'".into(),
        ),
        (
            format!("file {db} 10.0.0.0/33"),
            "Corefile:1 - Error during parsing: invalid zone '10.0.0.0/33': not a valid CIDR".into(),
        ),
        (
            format!("file {db} {{\n fallthrough 10.0.0.0/33\n}}"),
            "Corefile:2 - Error during parsing: invalid zone '10.0.0.0/33': not a valid CIDR".into(),
        ),
    ];
    for (text, want) in &cases {
        assert_eq!(&err_in(zones, text), want, "{text}");
    }
}

#[test]
fn a_bad_file_at_startup_is_a_setup_error() {
    let f = Files::new(ZONE);
    let zones = &["example.org."];
    let cases: Vec<(&str, String)> = vec![
        // A bad address on line 3.
        (
            "$TTL 60\n@ IN SOA ns hm 1 1 1 1 1\nwww IN A 1.2.3\n",
            "3: network address parse error: invalid IPv4 address syntax".into(),
        ),
        // An unknown type after a multi-line SOA.
        (
            "$TTL 60\n@ IN SOA ns hm (\n 1 1 1\n 1 1 )\nwww IN FOO 1\n",
            "5: proto error: decoding error: record type string unknown: FOO".into(),
        ),
        // A bad number inside parentheses: the line they close on.
        (
            "$TTL 60\n@ IN SOA ns hm ( 1 2\n 3 4 x )\n",
            "3: invalid time string: x".into(),
        ),
        // No TTL anywhere.
        (
            "@ IN SOA ns hm 1 1 1 1 1\n",
            "1: record ttl not specified".into(),
        ),
        // A quote that never closes: where it opens.
        (
            "$TTL 60\n@ IN SOA ns hm 1 1 1 1 1\nx IN TXT \"open\ny IN A 192.0.2.1\n",
            "3: lexer error: unclosed quoted string".into(),
        ),
        // DNSSEC records.
        (
            "$TTL 60\n@ IN SOA ns hm 1 1 1 1 1\nsub IN NS ns.example.net.\nsub IN NSEC next.example.org. A\n",
            "4: NSEC records are not supported (pre-signed zones are not served: sign online with dnssec)".into(),
        ),
        // Types hickory's zone parser does not read.
        (
            "$TTL 60\n@ IN SOA ns hm 1 1 1 1 1\nd IN DNAME example.net.\n",
            "3: unsupported RecordType: DNAME".into(),
        ),
    ];
    for (zone, want) in cases {
        f.write("db", zone);
        let got = err_in(zones, &format!("\n\nfile {}", f.db()));
        assert_eq!(
            got,
            format!("Corefile:3 - Error during parsing: {}:{want}", f.db()),
            "{zone}"
        );
    }
    // No SOA at the origin: CoreDNS's wording.
    f.write("db", "$TTL 60\nwww IN A 192.0.2.1\n");
    assert_eq!(
        err_in(zones, &format!("file {}", f.db())),
        format!(
            "Corefile:1 - Error during parsing: file \"{}\" has no SOA record for origin example.org.",
            f.db()
        )
    );
    // A missing file is an error only when nothing would read it again.
    let missing = f.path("missing.db");
    assert_eq!(
        err_in(
            zones,
            &format!("file {} {{\n reload 0\n}}", missing.display())
        ),
        format!(
            "Corefile:1 - Error during parsing: open {}: no such file or directory",
            missing.display()
        )
    );
    assert!(parse_in(zones, &format!("file {}", missing.display())).is_ok());
}

#[test]
fn a_relative_path_is_relative_to_the_working_directory() {
    // As CoreDNS without a *root* directive: the file is looked up where the server runs.
    let name = format!("exdns-file-test-{}.db", std::process::id());
    let rel = Path::new(&name);
    assert!(!rel.exists());
    let e = err_in(&["example.org."], &format!("file {name} {{\n reload 0\n}}"));
    assert_eq!(
        e,
        format!("Corefile:1 - Error during parsing: open {name}: no such file or directory")
    );
}
