//! Zone transfers out of exdns (`transfer`): AXFR and IXFR over TCP with a real `dig` and a
//! raw client, refusals, incoming NOTIFY, and NSD and Knot as real secondaries that follow the
//! cluster's zone through NOTIFY and IXFR, across a restart of exdns.

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::secondary::{Kind, Secondary};
use support::{Exdns, demo_files, free_port, query, read_framed, tcp, udp, write_framed};

const ZONE: &str = "example.com.";

/// A k8s_gateway block for example.com from `demo` (files named `demo/…`) with `extra` lines.
fn corefile(port: u16, extra: &str) -> String {
    format!(
        "example.com:{port} {{\n    k8s_gateway {{\n        manifests demo\n        \
         apex exdns.kube-system\n        secondary exdns-secondary.kube-system\n    }}\n{extra}\n}}\n"
    )
}

fn start(extra: &str, files: &[(String, String)]) -> Exdns {
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ex = Exdns::start_with(&corefile(0, extra), &files, &[]);
    wait_synced(&ex);
    ex
}

fn wait_synced(ex: &Exdns) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while serial(ex.dns()).is_none() {
        assert!(Instant::now() < deadline, "never synced:\n{}", ex.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The zone's serial as `addr` answers it over UDP.
fn serial(addr: SocketAddr) -> Option<u32> {
    let raw = support::udp_raw(
        addr,
        &query(ZONE, RecordType::SOA, None).to_vec().unwrap(),
        Duration::from_secs(1),
    )?;
    let m = Message::from_vec(&raw).ok()?;
    m.answers.iter().find_map(soa_serial)
}

fn soa_serial(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

/// A transfer request; IXFR carries `SOA serial` in its authority section.
fn xfr_query(qtype: RecordType, ixfr: Option<u32>) -> Message {
    let mut m = query(ZONE, qtype, None);
    m.metadata.recursion_desired = false;
    if let Some(s) = ixfr {
        let n = Name::from_ascii(ZONE).unwrap();
        m.authorities.push(Record::from_rdata(
            n.clone(),
            0,
            RData::SOA(SOA::new(n.clone(), n, s, 0, 0, 0, 0)),
        ));
    }
    m
}

/// Every message of a transfer over one TCP connection, until the closing SOA (or an error
/// reply, or EOF).
fn transfer(addr: SocketAddr, req: &Message) -> Vec<Message> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write_framed(&mut s, &req.to_vec().unwrap());
    let mut out: Vec<Message> = Vec::new();
    let mut soas = 0;
    while let Some(raw) = read_framed(&mut s) {
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.metadata.id, req.metadata.id);
        let done = m.metadata.response_code != ResponseCode::NoError;
        let first_soa = out.is_empty()
            && m.answers.first().and_then(soa_serial).is_some()
            && m.answers.len() == 1;
        soas += m
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        out.push(m);
        let records: usize = out.iter().map(|m| m.answers.len()).sum();
        // Up to date: one message with one SOA. Otherwise the zone's serial closes it.
        if done || (first_soa && records == 1 && req.queries[0].query_type() == RecordType::IXFR) {
            break;
        }
        let serial = out[0].answers.first().and_then(soa_serial);
        let last = out.last().unwrap().answers.last().and_then(soa_serial);
        if soas >= 2 && records > 1 && last == serial {
            break;
        }
    }
    out
}

fn records(msgs: &[Message]) -> Vec<Record> {
    msgs.iter()
        .flat_map(|m| m.answers.iter().cloned())
        .collect()
}

/// `(owner, type)` → sorted (TTL, rdata text) of every record.
fn rrsets(rrs: &[Record]) -> BTreeMap<(String, RecordType), Vec<String>> {
    let mut m: BTreeMap<(String, RecordType), Vec<String>> = BTreeMap::new();
    for r in rrs {
        m.entry((r.name.to_ascii().to_lowercase(), r.record_type()))
            .or_default()
            .push(format!("{} {}", r.ttl, r.data));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

#[test]
fn axfr_is_the_zone_queries_see() {
    let ex = start("    transfer {\n        to *\n    }", &demo_files());
    let msgs = transfer(ex.dns(), &xfr_query(RecordType::AXFR, None));
    assert!(!msgs.is_empty());
    for m in &msgs {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative, "AA on every message");
        assert_eq!(m.queries.len(), 1);
    }
    let rrs = records(&msgs);
    let serial = serial(ex.dns()).unwrap();
    assert_eq!(rrs.first().and_then(soa_serial), Some(serial), "SOA first");
    assert_eq!(rrs.last().and_then(soa_serial), Some(serial), "SOA last");
    assert_eq!(
        rrs.iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count(),
        2
    );
    let body = &rrs[..rrs.len() - 1];
    let sets = rrsets(body);
    assert!(sets.len() > 30, "the demo zone: {sets:?}");
    // Every RRset of the transfer is what a query for it answers, and nothing is missing
    // from a name's answers.
    for ((owner, t), want) in &sets {
        let reply = udp(ex.dns(), &query(owner, *t, Some(1232)));
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{owner} {t}"
        );
        let got = rrsets(&reply.answers);
        assert_eq!(
            got.get(&(owner.clone(), *t)),
            Some(want),
            "{owner} {t}: transfer {want:?}, query {:?}",
            reply.answers
        );
    }
    // Names that answer but are not transferred would be a torn secondary.
    for name in [
        "www.example.com.",
        "gitlab.dev.example.com.",
        "x.apps.example.com.",
    ] {
        let reply = udp(ex.dns(), &query(name, RecordType::A, None));
        for r in reply.answers.iter().filter(|r| r.name.to_ascii() == name) {
            let owner = if name.starts_with("x.apps") {
                "*.apps.example.com."
            } else {
                name
            };
            assert!(
                sets.contains_key(&(owner.to_string(), r.record_type())),
                "{name} {} answered but not transferred",
                r.record_type()
            );
        }
    }
    // A real client: dig reads the whole transfer.
    if support::require("dig") {
        let (code, out) = support::run(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                &ex.dns().port().to_string(),
                "example.com",
                "AXFR",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains("Transfer failed"), "{out}");
        assert!(
            out.contains(&format!("XFR size: {} records", rrs.len())),
            "{out}"
        );
    }
}

#[test]
fn transfers_are_refused_where_not_allowed() {
    struct Case {
        extra: &'static str,
        qtype: RecordType,
        name: &'static str,
        over_udp: bool,
        rcode: ResponseCode,
    }
    let to_other = "    transfer {\n        to 192.0.2.1 198.51.100.0/24\n    }";
    let to_all = "    transfer {\n        to *\n    }";
    let cases = [
        // No transfer directive: k8s_gateway refuses (it used to answer one SOA).
        Case {
            extra: "",
            qtype: RecordType::AXFR,
            name: ZONE,
            over_udp: false,
            rcode: ResponseCode::Refused,
        },
        Case {
            extra: "",
            qtype: RecordType::IXFR,
            name: ZONE,
            over_udp: false,
            rcode: ResponseCode::Refused,
        },
        // Not in `to`.
        Case {
            extra: to_other,
            qtype: RecordType::AXFR,
            name: ZONE,
            over_udp: false,
            rcode: ResponseCode::Refused,
        },
        Case {
            extra: to_other,
            qtype: RecordType::IXFR,
            name: ZONE,
            over_udp: false,
            rcode: ResponseCode::Refused,
        },
        // AXFR never over UDP.
        Case {
            extra: to_all,
            qtype: RecordType::AXFR,
            name: ZONE,
            over_udp: true,
            rcode: ResponseCode::Refused,
        },
        // Only the apex can be transferred.
        Case {
            extra: to_all,
            qtype: RecordType::AXFR,
            name: "www.example.com.",
            over_udp: false,
            rcode: ResponseCode::NotAuth,
        },
    ];
    let mut by_extra: Vec<(&str, Exdns)> = Vec::new();
    for c in &cases {
        if !by_extra.iter().any(|(e, _)| *e == c.extra) {
            by_extra.push((c.extra, start(c.extra, &demo_files())));
        }
        let ex = &by_extra.iter().find(|(e, _)| *e == c.extra).unwrap().1;
        let mut q = query(c.name, c.qtype, None);
        if c.qtype == RecordType::IXFR {
            q = xfr_query(RecordType::IXFR, Some(1));
        }
        let reply = if c.over_udp {
            udp(ex.dns(), &q)
        } else {
            tcp(ex.dns(), &q)
        };
        assert_eq!(
            reply.metadata.response_code, c.rcode,
            "{:?} {} {} udp={}",
            c.extra, c.name, c.qtype, c.over_udp
        );
        assert!(reply.answers.is_empty(), "{:?}", reply.answers);
    }

    // IXFR over UDP from the current serial: the SOA alone (RFC 1995 §2).
    let ex = &by_extra.iter().find(|(e, _)| *e == to_all).unwrap().1;
    let now = serial(ex.dns()).unwrap();
    let reply = udp(ex.dns(), &xfr_query(RecordType::IXFR, Some(now)));
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(soa_serial(&reply.answers[0]), Some(now));
    // From an unknown serial over UDP: a full transfer does not fit; the SOA tells the client
    // to come over TCP.
    let reply = udp(
        ex.dns(),
        &xfr_query(RecordType::IXFR, Some(now.wrapping_sub(100))),
    );
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(soa_serial(&reply.answers[0]), Some(now));
    // IXFR without the client's SOA is malformed.
    let reply = tcp(ex.dns(), &query(ZONE, RecordType::IXFR, None));
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // Incoming NOTIFY: acknowledged for our zone; NOTAUTH for a name that is not a zone we
    // transfer, and from a block without `transfer`.
    let notify = |addr: SocketAddr, name: &str| {
        let mut m = Message::new(support::rand_id(), MessageType::Query, OpCode::Notify);
        m.metadata.authoritative = true;
        m.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::SOA,
        ));
        udp(addr, &m)
    };
    let r = notify(ex.dns(), ZONE);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.metadata.op_code, OpCode::Notify);
    assert!(r.metadata.authoritative);
    assert_eq!(
        notify(ex.dns(), "www.example.com.").metadata.response_code,
        ResponseCode::NotAuth
    );
    let plain = &by_extra.iter().find(|(e, _)| e.is_empty()).unwrap().1;
    assert_eq!(
        notify(plain.dns(), ZONE).metadata.response_code,
        ResponseCode::NotAuth
    );
    // The server keeps answering queries.
    let r = udp(ex.dns(), &query("blog.example.com.", RecordType::A, None));
    assert_eq!(r.answers.len(), 1);
}

/// A DNSEndpoint with `n` A records `hI.big.example.com`, the one at `changed` (if any)
/// pointing elsewhere.
fn big_zone(n: usize, changed: Option<usize>) -> String {
    let mut s = String::from(
        "apiVersion: externaldns.k8s.io/v1alpha1\nkind: DNSEndpoint\nmetadata:\n  name: big\n  namespace: dns\nspec:\n  endpoints:\n",
    );
    for i in 0..n {
        let ip = if Some(i) == changed {
            "192.0.2.99".to_string()
        } else {
            format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)
        };
        s.push_str(&format!(
            "    - dnsName: h{i}.big.example.com\n      recordType: A\n      targets: [\"{ip}\"]\n"
        ));
    }
    s
}

fn wait_serial_change(addr: SocketAddr, from: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = serial(addr)
            && s != from
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "serial never changed from {from}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ixfr_carries_only_the_change() {
    const N: usize = 10_000;
    let files = vec![("demo/big.yaml".to_string(), big_zone(N, None))];
    let ex = start("    transfer {\n        to 127.0.0.1\n    }", &files);
    let old = serial(ex.dns()).unwrap();
    let full = records(&transfer(ex.dns(), &xfr_query(RecordType::AXFR, None)));
    // SOA, 2 NS, N names, SOA.
    assert_eq!(full.len(), N + 4);
    // The journal has seen the first version before the change is made.
    std::thread::sleep(Duration::from_millis(500));
    // One name changes; the serial moves on (at least a second later: serials are seconds).
    std::thread::sleep(Duration::from_millis(1000));
    ex.replace("demo/big.yaml", &big_zone(N, Some(1234)));
    let new = wait_serial_change(ex.dns(), old);
    assert!(
        new.wrapping_sub(old) < 0x8000_0000 && new != old,
        "{old} → {new}"
    );
    // Give the watcher a moment to journal the new version.
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        let got = records(&transfer(ex.dns(), &xfr_query(RecordType::IXFR, Some(old))));
        if got.len() < 10 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text: Vec<String> = got
        .iter()
        .map(|r| match &r.data {
            RData::SOA(s) => format!("SOA {}", s.serial),
            d => format!("{} {}", r.name, d),
        })
        .collect();
    assert_eq!(
        text,
        vec![
            format!("SOA {new}"),
            format!("SOA {old}"),
            "h1234.big.example.com. 10.0.4.210".to_string(),
            format!("SOA {new}"),
            "h1234.big.example.com. 192.0.2.99".to_string(),
            format!("SOA {new}"),
        ]
    );
    // The same over UDP: it fits one datagram.
    let reply = udp(ex.dns(), &xfr_query(RecordType::IXFR, Some(old)));
    assert_eq!(reply.answers.len(), 6);
    // A real client: dig IXFR=N reads the incremental transfer.
    if support::require("dig") {
        let (code, out) = support::run(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                &ex.dns().port().to_string(),
                "example.com",
                &format!("IXFR={old}"),
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert_eq!(out.matches("\tIN\tSOA\t").count(), 4, "{out}");
        assert!(
            out.contains("h1234.big.example.com.\t60\tIN\tA\t10.0.4.210"),
            "{out}"
        );
        assert!(
            out.contains("h1234.big.example.com.\t60\tIN\tA\t192.0.2.99"),
            "{out}"
        );
        let (_, out) = support::run(
            "dig",
            &[
                "+tcp",
                "@127.0.0.1",
                "-p",
                &ex.dns().port().to_string(),
                "example.com",
                &format!("IXFR={old}"),
            ],
        );
        assert!(out.contains("XFR size: 6 records (messages 1"), "{out}");
    }
    // A serial the journal never saw: the whole zone, AXFR-style.
    let fallback = records(&transfer(
        ex.dns(),
        &xfr_query(RecordType::IXFR, Some(old.wrapping_sub(7))),
    ));
    assert_eq!(fallback.len(), N + 4);
    assert_eq!(fallback.first().and_then(soa_serial), Some(new));
    assert_eq!(fallback.last().and_then(soa_serial), Some(new));
    // Up to date: one SOA.
    let current = records(&transfer(ex.dns(), &xfr_query(RecordType::IXFR, Some(new))));
    assert_eq!(current.len(), 1);
    assert_eq!(soa_serial(&current[0]), Some(new));
}

#[test]
fn transfers_are_never_torn_by_changes() {
    // Two names in one file always carry the same version: every transfer must show them equal.
    let version = |v: usize| {
        let mut s = String::from(
            "apiVersion: externaldns.k8s.io/v1alpha1\nkind: DNSEndpoint\nmetadata:\n  name: v\n  namespace: dns\nspec:\n  endpoints:\n",
        );
        for n in ["a", "b"] {
            s.push_str(&format!(
                "    - dnsName: {n}.v.example.com\n      recordType: TXT\n      targets: [\"v{v}\"]\n"
            ));
        }
        s
    };
    let mut files = vec![("demo/big.yaml".to_string(), big_zone(3000, None))];
    files.push(("demo/v.yaml".to_string(), version(0)));
    let ex = start("    transfer {\n        to *\n    }", &files);
    let addr = ex.dns();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let rrs = records(&transfer(addr, &xfr_query(RecordType::AXFR, None)));
                    let txt = |name: &str| {
                        rrs.iter()
                            .find(|r| r.name.to_ascii() == name)
                            .map(|r| r.data.to_string())
                    };
                    assert_eq!(
                        rrs.first().and_then(soa_serial),
                        rrs.last().and_then(soa_serial)
                    );
                    assert_eq!(
                        txt("a.v.example.com."),
                        txt("b.v.example.com."),
                        "torn transfer"
                    );
                    assert_eq!(rrs.len(), 3000 + 6);
                    n += 1;
                }
                n
            })
        })
        .collect();
    for v in 1..=15 {
        ex.replace("demo/v.yaml", &version(v));
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(done >= 4, "transfers completed: {done}");
}

#[test]
fn nsd_and_knot_follow_the_zone_through_notify_and_ixfr() {
    if !support::require("nsd") || !support::require("knotd") {
        return;
    }
    let (nsd_port, knot_port, port) = (free_port(), free_port(), free_port());
    let extra =
        format!("    transfer {{\n        to 127.0.0.1:{nsd_port} 127.0.0.1:{knot_port}\n    }}");
    let mut files = demo_files();
    files.push(("demo/big.yaml".to_string(), big_zone(200, None)));
    let fs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let cf = corefile(port, &extra);
    let ex = Exdns::start_with(&cf, &fs, &[]);
    wait_synced(&ex);
    let primary = ex.dns();
    let nsd = Secondary::start(Kind::Nsd, nsd_port, ZONE, primary);
    let knot = Secondary::start(Kind::Knot, knot_port, ZONE, primary);
    let s0 = serial(primary).unwrap();
    for sec in [&nsd, &knot] {
        assert!(
            sec.wait_serial(ZONE, s0, Duration::from_secs(20)).is_some(),
            "{:?} never loaded serial {s0}:\n{}",
            sec.kind,
            sec.output()
        );
    }
    // Every RRset of the zone is served the same by both secondaries.
    let rrs = records(&transfer(primary, &xfr_query(RecordType::AXFR, None)));
    let sets = rrsets(&rrs[..rrs.len() - 1]);
    for ((owner, t), want) in &sets {
        if *t == RecordType::SOA {
            continue;
        }
        for sec in [&nsd, &knot] {
            let m = sec.ask(owner, *t).expect("secondary answers");
            let got = rrsets(&m.answers);
            assert_eq!(
                got.get(&(owner.clone(), *t)),
                Some(want),
                "{:?} {owner} {t}",
                sec.kind
            );
        }
    }
    // A change in the cluster reaches both within 3 s of the NOTIFY (exdns notices the file
    // change first: measured from when exdns serves the new serial).
    std::thread::sleep(Duration::from_millis(1100));
    let mut demo_big = big_zone(200, Some(7));
    ex.replace("demo/big.yaml", &demo_big);
    let s1 = wait_serial_change(primary, s0);
    for sec in [&nsd, &knot] {
        let took = sec.wait_answer(
            ZONE,
            s1,
            "h7.big.example.com.",
            "192.0.2.99",
            Duration::from_secs(3),
        );
        assert!(
            took.is_some(),
            "{:?} did not follow to {s1} in 3 s:\n{}",
            sec.kind,
            sec.output()
        );
    }
    // Knot asked for the change incrementally.
    let knot_log = std::fs::read_to_string(knot.log_path()).unwrap_or_default();
    assert!(
        knot_log.contains("IXFR") && knot_log.contains("finished"),
        "Knot did not use IXFR:\n{knot_log}"
    );
    // exdns restarts (same port, same data): the serial does not go back, and the
    // secondaries keep following the next change.
    drop(ex);
    std::thread::sleep(Duration::from_millis(1100));
    let ex = Exdns::start_with(&cf, &fs_with(&files, "demo/big.yaml", &demo_big), &[]);
    wait_synced(&ex);
    let s2 = serial(primary).unwrap();
    assert!(
        s2.wrapping_sub(s1) < 0x8000_0000 && s2 != s1,
        "serial after restart {s1} → {s2}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    demo_big = big_zone(200, Some(8));
    ex.replace("demo/big.yaml", &demo_big);
    let s3 = wait_serial_change(primary, s2);
    for sec in [&nsd, &knot] {
        assert!(
            sec.wait_answer(
                ZONE,
                s3,
                "h8.big.example.com.",
                "192.0.2.99",
                Duration::from_secs(3)
            )
            .is_some(),
            "{:?} stopped following after the restart ({s3}; s1 {s1}, s2 {s2}):\n{}",
            sec.kind,
            sec.output()
        );
    }
}

fn fs_with<'a>(
    files: &'a [(String, String)],
    name: &str,
    content: &'a str,
) -> Vec<(&'a str, &'a str)> {
    files
        .iter()
        .map(|(a, b)| (a.as_str(), if a == name { content } else { b.as_str() }))
        .collect()
}

#[test]
fn hostile_transfer_requests_leave_queries_alone() {
    let files = vec![("demo/big.yaml".to_string(), big_zone(10_000, None))];
    let ex = start("    transfer {\n        to *\n    }", &files);
    let addr = ex.dns();
    // IXFR whose authority record is not a SOA: FORMERR.
    let mut q = xfr_query(RecordType::IXFR, None);
    q.authorities.push(Record::from_rdata(
        Name::from_ascii(ZONE).unwrap(),
        0,
        RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
    ));
    assert_eq!(tcp(addr, &q).metadata.response_code, ResponseCode::FormErr);
    // A flood: 60 clients ask for the whole zone and never read (their transfers stall at the
    // write timeout), 20 more ask and hang up at once.
    let bytes = xfr_query(RecordType::AXFR, None).to_vec().unwrap();
    let mut stalled = Vec::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(addr).unwrap();
        write_framed(&mut s, &bytes);
        stalled.push(s);
    }
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).unwrap();
        write_framed(&mut s, &bytes);
        drop(s);
    }
    // Queries keep being answered meanwhile.
    let mut answered = 0;
    for i in 0..200 {
        let name = format!("h{}.big.example.com.", i * 37);
        let raw = support::udp_raw(
            addr,
            &query(&name, RecordType::A, None).to_vec().unwrap(),
            Duration::from_secs(1),
        );
        if raw
            .and_then(|r| Message::from_vec(&r).ok())
            .is_some_and(|m| m.answers.len() == 1)
        {
            answered += 1;
        }
    }
    assert!(answered >= 198, "{answered}/200 answered during the flood");
    drop(stalled);
    // Once the stalled clients are gone, a transfer completes again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rrs = records(&transfer(addr, &xfr_query(RecordType::AXFR, None)));
        if rrs.len() == 10_000 + 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no complete transfer after the flood"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn file_zones_transfer_and_dot_carries_transfers() {
    if !support::require("kdig") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::make_certs(certs.path(), "dns.example.test");
    let zone = "$ORIGIN example.org.\n@ 3600 IN SOA ns1 hostmaster 2024010101 7200 3600 1209600 300\n\
                @ 3600 IN NS ns1\nns1 3600 IN A 192.0.2.53\nwww 300 IN A 192.0.2.80\n\
                www 300 IN AAAA 2001:db8::80\nsub 3600 IN NS ns.sub\nns.sub 3600 IN A 192.0.2.99\n";
    let cf = format!(
        "example.org:0 {{\n  file db.example.org\n  transfer {{\n    to 127.0.0.1\n  }}\n}}\n\
         tls://example.org:0 {{\n  tls {} {}\n  file db.example.org\n  transfer {{\n    to *\n  }}\n}}\n",
        cert.display(),
        key.display()
    );
    let ex = Exdns::start_with(&cf, &[("db.example.org", zone)], &[]);
    let q = {
        let mut q = query("example.org.", RecordType::AXFR, None);
        q.metadata.recursion_desired = false;
        q
    };
    let rrs = records(&transfer(ex.dns(), &q));
    let text: Vec<String> = rrs
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
        .collect();
    assert_eq!(text.len(), 8, "{text:#?}");
    assert!(
        text[0]
            .starts_with("example.org. 3600 ns1.example.org. hostmaster.example.org. 2024010101"),
        "{}",
        text[0]
    );
    assert_eq!(text[0], text[7], "SOA first and last");
    for want in [
        "example.org. 3600 ns1.example.org.",
        "ns1.example.org. 3600 192.0.2.53",
        "www.example.org. 300 192.0.2.80",
        "www.example.org. 300 2001:db8::80",
        "sub.example.org. 3600 ns.sub.example.org.",
        "ns.sub.example.org. 3600 192.0.2.99",
    ] {
        assert!(
            text.iter().any(|t| t == want),
            "{want} missing from {text:#?}"
        );
    }
    // Over DNS over TLS with a real client.
    let port = ex.addr("tls://").port().to_string();
    let (code, out) = support::run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+tls",
            &format!("+tls-ca={}", ca.display()),
            "+tls-hostname=dns.example.test",
            "example.org",
            "AXFR",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(1 messages, 8 records)"), "{out}");
    assert!(out.contains("300\tIN\tAAAA\t2001:db8::80"), "{out}");
}

#[test]
fn a_secondary_follows_the_api_server() {
    use serde_json::json;
    use support::fake_apiserver::FakeApiServer;
    if !support::require("nsd") {
        return;
    }
    let c = FakeApiServer::start_with_defaults();
    let ingress = |ip: &str| {
        json!({
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": {"rules": [{"host": "shop.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        })
    };
    c.create(
        "networking.k8s.io",
        "v1",
        "ingresses",
        ingress("203.0.113.5"),
    );
    let nsd_port = free_port();
    let cf = format!(
        "example.com:0 {{\n  k8s_gateway {{\n    kubeconfig kubeconfig.yaml\n  }}\n  transfer {{\n    to 127.0.0.1:{nsd_port}\n  }}\n}}\n"
    );
    let ex = Exdns::start_with(&cf, &[("kubeconfig.yaml", &c.kubeconfig_yaml())], &[]);
    wait_synced(&ex);
    let nsd = Secondary::start(Kind::Nsd, nsd_port, ZONE, ex.dns());
    let s0 = serial(ex.dns()).unwrap();
    assert!(
        nsd.wait_serial(ZONE, s0, Duration::from_secs(20)).is_some(),
        "{}",
        nsd.output()
    );
    let a = |m: Message| m.answers.first().map(|r| r.data.to_string());
    assert_eq!(
        a(nsd.ask("shop.example.com.", RecordType::A).unwrap()).as_deref(),
        Some("203.0.113.5")
    );
    // The object changes in the cluster; the secondary serves it within 3 s of exdns.
    std::thread::sleep(Duration::from_millis(1100));
    c.update(
        "networking.k8s.io",
        "v1",
        "ingresses",
        ingress("203.0.113.77"),
    );
    let s1 = wait_serial_change(ex.dns(), s0);
    assert!(
        nsd.wait_answer(
            ZONE,
            s1,
            "shop.example.com.",
            "203.0.113.77",
            Duration::from_secs(3)
        )
        .is_some(),
        "{}",
        nsd.output()
    );
    // Deleted in the cluster: gone from the secondary too.
    std::thread::sleep(Duration::from_millis(1100));
    c.delete("networking.k8s.io", "v1", "ingresses", "shop", "shop");
    let s2 = wait_serial_change(ex.dns(), s1);
    // NXDOMAIN at the new serial (polled: NSD's old server process may answer for a moment).
    let start = Instant::now();
    loop {
        let gone = nsd
            .ask("shop.example.com.", RecordType::A)
            .is_some_and(|m| m.metadata.response_code == ResponseCode::NXDomain);
        if gone && nsd.serial(ZONE) == Some(s2) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "{}", nsd.output());
        std::thread::sleep(Duration::from_millis(25));
    }
}
