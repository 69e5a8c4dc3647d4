//! CoreDNS's small everyday plugins against the real binary and real `dig`: `nsid`, `chaos`,
//! `bufsize`, `minimal`, `header` and `local`.

mod support;

use support::*;

/// `dig @127.0.0.1 -p PORT ARGS...` to the first DNS listener; fails the test when dig does.
fn dig(ex: &Exdns, args: &[&str]) -> String {
    dig_at(ex.dns().port(), args)
}

/// `dig @127.0.0.1 -p PORT ARGS...`; fails the test when dig does.
fn dig_at(port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut all = vec!["@127.0.0.1", "-p", &port, "+time=5", "+tries=1"];
    all.extend_from_slice(args);
    let (code, out) = run("dig", &all);
    assert_eq!(code, 0, "dig {args:?}: {out}");
    out
}

/// The lines of dig's output that start with `prefix`.
fn lines<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn nsid_on_misses_cache_hits_and_errors_over_udp_and_tcp() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(
        "example.org:0 {\n    bind 127.0.0.1\n    nsid Use The Force\n    cache\n    whoami\n}\n",
    );
    let want = "; NSID: 55 73 65 20 54 68 65 20 46 6f 72 63 65 (\"Use The Force\")";
    for transport in ["+notcp", "+tcp"] {
        // A miss, then the same question answered from the cache.
        for round in 0..2 {
            let out = dig(&ex, &[transport, "+nsid", "example.org", "A"]);
            assert!(out.contains("status: NOERROR"), "{out}");
            assert!(out.contains("flags: qr aa rd;"), "{out}");
            assert_eq!(lines(&out, "; NSID:"), [want], "{transport} {round}: {out}");
            assert_eq!(
                lines(&out, "; EDNS:"),
                ["; EDNS: version: 0, flags:; udp: 1232"]
            );
        }
        // Without +nsid: no option (the cache hit is answered on the fast path).
        let out = dig(&ex, &[transport, "example.org", "A"]);
        assert!(lines(&out, "; NSID:").is_empty(), "{out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        // A name outside the block: REFUSED by the server, before any plugin, no NSID.
        let out = dig(&ex, &[transport, "+nsid", "example.com", "A"]);
        assert!(out.contains("status: REFUSED"), "{out}");
        assert!(lines(&out, "; NSID:").is_empty(), "{out}");
    }
    // Without EDNS there is no OPT record to carry it.
    let out = dig(&ex, &["+noedns", "example.org", "A"]);
    assert!(!out.contains("OPT PSEUDOSECTION"), "{out}");
}

/// The status and flags lines' values and the answer section (each record's fields joined by
/// single spaces) of dig's `+noall +comments +answer` output.
fn status_flags_answer(out: &str) -> (String, String, Vec<String>) {
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no status in {out}"))
        .to_string();
    let flags = out
        .split(";; flags: ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("no flags in {out}"))
        .to_string();
    let answer = out
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (status, flags, answer)
}

#[test]
fn chaos_answers_ch_txt_and_opens_only_its_listener_to_other_classes() {
    if !require("dig") {
        return;
    }
    let (p, q) = (free_port(), free_port());
    let _ex = Exdns::start(&format!(
        "version.bind:{p} version.server:{p} authors.bind:{p} hostname.bind:{p} id.server:{p} {{
    bind 127.0.0.1
    chaos CoreDNS-001 info@coredns.io miek@example.org
}}
example.org:{p} {{
    bind 127.0.0.1
    whoami
}}
example.net:{q} {{
    bind 127.0.0.1
    whoami
}}
"
    ));
    // The host's name as the kernel gives it (what gethostname returns).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let ask = |port: u16, name: &str, qtype: &str| {
        status_flags_answer(&dig_at(
            port,
            &[
                "-c",
                "CH",
                "-t",
                qtype,
                name,
                "+noall",
                "+comments",
                "+answer",
            ],
        ))
    };
    let txt = |name: &str, s: &str| format!("{name} 0 CH TXT \"{s}\"");
    // (name, qtype, status, answer)
    let cases: Vec<(&str, &str, &str, Vec<String>)> = vec![
        (
            "version.bind",
            "TXT",
            "NOERROR",
            vec![txt("version.bind.", "CoreDNS-001")],
        ),
        (
            "version.server",
            "TXT",
            "NOERROR",
            vec![txt("version.server.", "CoreDNS-001")],
        ),
        (
            "hostname.bind",
            "TXT",
            "NOERROR",
            vec![txt("hostname.bind.", &host)],
        ),
        (
            "id.server",
            "TXT",
            "NOERROR",
            vec![txt("id.server.", &host)],
        ),
        // Not TXT: chaos passes it on, and nothing follows in its block (CoreDNS: SERVFAIL).
        ("version.bind", "A", "SERVFAIL", vec![]),
        // A CH query for another zone on the listener is routed by name as CoreDNS does.
        ("example.com", "TXT", "REFUSED", vec![]),
    ];
    for (name, qtype, status, answer) in cases {
        let (st, flags, ans) = ask(p, name, qtype);
        assert_eq!(st, status, "{name} {qtype}");
        assert_eq!(
            flags, "qr rd",
            "{name} {qtype}: AA clear as CoreDNS's SetReply"
        );
        assert_eq!(ans, answer, "{name} {qtype}");
    }
    // authors.bind: every author, one record each, in some order.
    let (st, _, mut ans) = ask(p, "authors.bind", "TXT");
    assert_eq!(st, "NOERROR");
    ans.sort();
    assert_eq!(
        ans,
        [
            txt("authors.bind.", "info@coredns.io"),
            txt("authors.bind.", "miek@example.org")
        ]
    );
    // The same question in class IN is not chaos's: routed to its block, passed on, SERVFAIL
    // (as CoreDNS).
    let out = dig_at(p, &["-t", "TXT", "version.bind", "+noall", "+comments"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    // The whoami block on the same listener sees CH queries (whoami copies the class).
    let m = udp(std::net::SocketAddr::from(([127, 0, 0, 1], p)), &{
        let mut m = query("example.org.", hickory_proto::rr::RecordType::TXT, None);
        m.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
        m
    });
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );
    assert_eq!(m.additionals.len(), 2);
    // Another listener without chaos (or forward) keeps refusing every class but IN.
    let (st, _, ans) = ask(q, "version.bind", "TXT");
    assert_eq!((st.as_str(), ans.len()), ("REFUSED", 0));
    let (st, _, _) = ask(q, "example.net", "TXT");
    assert_eq!(st, "REFUSED");
    let out = dig_at(q, &["-t", "TXT", "example.net", "+noall", "+comments"]);
    assert!(out.contains("status: NOERROR"), "IN still answered: {out}");
}

#[test]
fn bufsize_lowers_the_clients_size_and_advertises_its_own() {
    if !require("dig") {
        return;
    }
    // 40 addresses for big.example.org: about 710 bytes with the OPT record and a cookie.
    let hosts: String = (1..=40)
        .map(|i| format!("        192.0.2.{i} big.example.org\n"))
        .collect();
    let ex = Exdns::start(&format!(
        "example.org:0 {{\n    bind 127.0.0.1\n    bufsize 600\n    cache\n    hosts {{\n{hosts}        192.0.2.99 small.example.org\n    }}\n}}\n"
    ));
    // A miss and then a cache hit (the fast path), both held to 600 bytes though dig offers 4096.
    for round in 0..2 {
        let out = dig(&ex, &["+bufsize=4096", "+ignore", "big.example.org", "A"]);
        assert!(out.contains("status: NOERROR"), "{round}: {out}");
        assert!(out.contains(";; flags: qr aa tc rd;"), "{round}: {out}");
        assert!(out.contains("ANSWER: 0,"), "{round}: {out}");
        assert_eq!(
            lines(&out, "; EDNS:"),
            ["; EDNS: version: 0, flags:; udp: 600"]
        );
    }
    // Over TCP the whole answer, and the OPT still advertises 600.
    let out = dig(&ex, &["+tcp", "+bufsize=4096", "big.example.org", "A"]);
    assert!(out.contains(";; flags: qr aa rd;"), "{out}");
    assert!(out.contains("ANSWER: 40,"), "{out}");
    assert_eq!(
        lines(&out, "; EDNS:"),
        ["; EDNS: version: 0, flags:; udp: 600"]
    );
    // A small answer fits: no TC, 600 advertised, on a miss and on a hit; dig's default
    // (1232) and a client asking less (512) alike.
    for size in [
        "+bufsize=4096",
        "+bufsize=1232",
        "+bufsize=512",
        "+bufsize=4096",
    ] {
        let out = dig(&ex, &[size, "small.example.org", "A"]);
        assert!(out.contains(";; flags: qr aa rd;"), "{size}: {out}");
        assert!(out.contains("ANSWER: 1,"), "{size}: {out}");
        assert_eq!(
            lines(&out, "; EDNS:"),
            ["; EDNS: version: 0, flags:; udp: 600"]
        );
    }
    // Without EDNS, no OPT record and the classic 512 limit.
    let out = dig(&ex, &["+noedns", "+ignore", "big.example.org", "A"]);
    assert!(!out.contains("OPT PSEUDOSECTION"), "{out}");
    assert!(out.contains(";; flags: qr aa tc rd;"), "{out}");
}

const ZONE: &str = "$ORIGIN example.org.
@       3600 IN SOA ns1 hostmaster 1 7200 1800 86400 60
@       3600 IN NS  ns1
ns1     3600 IN A   192.0.2.53
www     3600 IN A   192.0.2.1
sub     3600 IN NS  ns.sub
ns.sub  3600 IN A   192.0.2.54
";

/// The counts of dig's `;; flags:` line: (answer, authority, additional).
fn counts(out: &str) -> (usize, usize, usize) {
    let line = lines(out, ";; flags:")[0];
    let n = |key: &str| -> usize {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    (n("ANSWER: "), n("AUTHORITY: "), n("ADDITIONAL: "))
}

#[test]
fn minimal_strips_positive_answers_only() {
    if !require("dig") {
        return;
    }
    let (p, q) = (free_port(), free_port());
    let _ex = Exdns::start_with(
        &format!(
            "example.org:{p} {{\n    bind 127.0.0.1\n    cache\n    minimal\n    file db.example.org\n}}\n\
             example.org:{q} {{\n    bind 127.0.0.1\n    file db.example.org\n}}\n"
        ),
        &[("db.example.org", ZONE)],
        &[],
    );
    // (name, type, status, counts without minimal, counts with minimal)
    let cases = [
        ("www.example.org", "A", "NOERROR", (1, 1, 1), (1, 0, 1)),
        ("example.org", "NS", "NOERROR", (1, 0, 2), (1, 0, 1)),
        ("nope.example.org", "A", "NXDOMAIN", (0, 1, 1), (0, 1, 1)),
        ("www.example.org", "AAAA", "NOERROR", (0, 1, 1), (0, 1, 1)),
        ("www.sub.example.org", "A", "NOERROR", (0, 1, 2), (0, 1, 2)),
    ];
    for (name, qtype, status, plain, minimal) in cases {
        let out = dig_at(q, &["+norec", name, qtype]);
        assert!(out.contains(&format!("status: {status},")), "{out}");
        assert_eq!(
            counts(&out),
            plain,
            "without minimal: {name} {qtype}: {out}"
        );
        // A miss, then a cache hit (the fast path): the same minimal reply.
        for round in 0..2 {
            let out = dig_at(p, &["+norec", name, qtype]);
            assert!(out.contains(&format!("status: {status},")), "{out}");
            assert_eq!(counts(&out), minimal, "{round}: {name} {qtype}: {out}");
        }
    }
    let out = dig_at(p, &["+norec", "+noall", "+answer", "www.example.org", "A"]);
    assert_eq!(
        status_flags_answer(&format!(";; flags: x; status: NOERROR,\n{out}")).2,
        ["www.example.org. 3600 IN A 192.0.2.1"]
    );
}

#[test]
fn header_sets_and_clears_flags() {
    if !require("dig") {
        return;
    }
    let (p, q) = (free_port(), free_port());
    let _ex = Exdns::start_with(
        &format!(
            "example.org:{p} {{\n    bind 127.0.0.1\n    header {{\n        response set ra aa\n        response clear rd\n    }}\n    hosts {{\n        192.0.2.1 www.example.org\n    }}\n}}\n\
             example.org:{q} {{\n    bind 127.0.0.1\n    header {{\n        query clear rd\n    }}\n    whoami\n}}\n"
        ),
        &[],
        &[],
    );
    // Response rules, over UDP and TCP. (A `cache` in the block would run before `header`, as
    // in CoreDNS, and its hits copy RD from the query.)
    for transport in ["+notcp", "+tcp"] {
        let out = dig_at(p, &[transport, "+rec", "www.example.org", "A"]);
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains(";; flags: qr aa ra;"), "{transport}: {out}");
        assert!(out.contains("ANSWER: 1,"), "{out}");
    }
    // Not on a REFUSED written by the server for a name outside the zones.
    let out = dig_at(p, &["+rec", "www.example.com", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    assert!(out.contains(";; flags: qr rd;"), "{out}");
    // A query rule: whoami sees (and echoes) RD cleared.
    let out = dig_at(q, &["+rec", "example.org", "A"]);
    assert!(out.contains(";; flags: qr aa;"), "{out}");
}

/// A UDP upstream that answers every query with NOERROR, A 192.0.2.99 (RA set), and records
/// the names it was asked for.
fn recording_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::{RData, Record, rdata::A};
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first() else {
                continue;
            };
            log.lock()
                .unwrap()
                .push(question.name().to_ascii().to_lowercase());
            let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            r.queries = q.queries.clone();
            r.answers.push(Record::from_rdata(
                question.name().clone(),
                60,
                RData::A(A("192.0.2.99".parse().unwrap())),
            ));
            let _ = s.send_to(&r.to_vec().unwrap(), from);
        }
    });
    (addr, seen)
}

#[test]
fn local_answers_local_names_before_forward() {
    if !require("dig") {
        return;
    }
    let (up, seen) = recording_upstream();
    let ex = Exdns::start(&format!(
        ".:0 {{\n    bind 127.0.0.1\n    local\n    forward . {up}\n}}\n"
    ));
    let soa =
        |zone: &str| format!("{zone} 604800 IN SOA localhost. root.localhost. 1 0 0 0 604800");
    // (name, type, status, answer, authority)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<String>,
        Vec<String>,
    );
    let cases: Vec<Case> = vec![
        (
            "localhost",
            "A",
            "NOERROR",
            vec!["localhost. 604800 IN A 127.0.0.1".into()],
            vec![],
        ),
        (
            "localhost",
            "AAAA",
            "NOERROR",
            vec!["localhost. 604800 IN AAAA ::1".into()],
            vec![],
        ),
        (
            "localhost",
            "MX",
            "NOERROR",
            vec![],
            vec![soa("localhost.")],
        ),
        (
            "foo.localhost",
            "AAAA",
            "NOERROR",
            vec!["foo.localhost. 604800 IN AAAA ::1".into()],
            vec![],
        ),
        (
            "localhost.example.org",
            "A",
            "NOERROR",
            vec!["localhost.example.org. 604800 IN A 127.0.0.1".into()],
            vec![],
        ),
        (
            "1.0.0.127.in-addr.arpa",
            "PTR",
            "NOERROR",
            vec!["1.0.0.127.in-addr.arpa. 604800 IN PTR localhost.".into()],
            vec![],
        ),
        (
            "5.0.0.127.in-addr.arpa",
            "PTR",
            "NXDOMAIN",
            vec![],
            vec![soa("127.in-addr.arpa.")],
        ),
        (
            "0.in-addr.arpa",
            "SOA",
            "NOERROR",
            vec![soa("0.in-addr.arpa.")],
            vec![],
        ),
        (
            "255.255.255.255.in-addr.arpa",
            "PTR",
            "NXDOMAIN",
            vec![],
            vec![soa("255.in-addr.arpa.")],
        ),
    ];
    for transport in ["+notcp", "+tcp"] {
        for (name, qtype, status, answer, authority) in &cases {
            let out = dig(
                &ex,
                &[transport, name, qtype, "+noall", "+comments", "+answer"],
            );
            let (st, flags, ans) = status_flags_answer(&out);
            assert_eq!(&st, status, "{name} {qtype}: {out}");
            assert_eq!(
                flags, "qr rd",
                "{name} {qtype}: AA and RA clear, as CoreDNS"
            );
            assert_eq!(&ans, answer, "{name} {qtype}");
            let out = dig(&ex, &[transport, name, qtype, "+noall", "+authority"]);
            let auth: Vec<String> = out
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with(';'))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            assert_eq!(&auth, authority, "{name} {qtype}");
        }
    }
    // Other names are forwarded.
    let out = dig(
        &ex,
        &["www.example.org", "A", "+noall", "+comments", "+answer"],
    );
    let (st, flags, ans) = status_flags_answer(&out);
    assert_eq!(
        (st.as_str(), flags.as_str()),
        ("NOERROR", "qr rd ra"),
        "{out}"
    );
    assert_eq!(ans, ["www.example.org. 60 IN A 192.0.2.99"]);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&"www.example.org.".to_string()), "{seen:?}");
    let leaked: Vec<&String> = seen
        .iter()
        .filter(|n| n.contains("localhost") || n.contains("in-addr.arpa"))
        .collect();
    assert!(
        leaked.is_empty(),
        "local names reached the upstream: {leaked:?}"
    );
}
