//! DNS Cookies (RFC 7873) with RFC 9018 server cookies, against the real binary: `dig +cookie`
//! and `kdig +cookie` as clients, and raw queries for what they cannot send (a wrong server
//! cookie, a malformed option), over UDP and TCP, on the full path and on the fast path (a cache
//! hit).

mod support;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsOption;
use support::*;

/// The shared secret of the `cookie` block.
const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

/// `example.org` answered by `whoami` behind `cache`, on UDP and TCP, with `cookie` as given.
fn start(cookie: &str) -> Exdns {
    Exdns::start(&format!(
        "example.org:0 {{\n    bind 127.0.0.1\n    {cookie}\n    prometheus 127.0.0.1:0\n    cache\n    whoami\n}}\n"
    ))
}

/// A query for `name` A with `cookie` (the COOKIE option's data) in its OPT record.
fn with_cookie(name: &str, cookie: &[u8]) -> Message {
    let mut q = query(name, RecordType::A, Some(1232));
    q.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    q
}

/// The reply's full rcode (header and OPT) and its COOKIE option's data.
fn rcode_and_cookie(raw: &[u8]) -> (ResponseCode, Option<Vec<u8>>) {
    let m = Message::from_vec(raw).expect("decodable reply");
    let cookie = m.edns.as_ref().and_then(|e| {
        e.options().as_ref().iter().find_map(|(_, o)| match o {
            EdnsOption::Unknown(10, data) => Some(data.clone()),
            _ => None,
        })
    });
    (m.metadata.response_code, cookie)
}

fn ask_udp(ex: &Exdns, q: &Message) -> (ResponseCode, Option<Vec<u8>>) {
    let raw = udp_raw(
        ex.dns(),
        &q.to_vec().unwrap(),
        std::time::Duration::from_secs(5),
    )
    .expect("udp reply");
    rcode_and_cookie(&raw)
}

fn ask_tcp(ex: &Exdns, q: &Message) -> (ResponseCode, Option<Vec<u8>>) {
    let mut s = std::net::TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write_framed(&mut s, &q.to_vec().unwrap());
    rcode_and_cookie(&read_framed(&mut s).expect("tcp reply"))
}

const CLIENT: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];

/// A server cookie's shape: the client cookie, version 1, reserved zero, a timestamp within a
/// minute of now.
fn assert_fresh(cookie: &[u8]) {
    assert_eq!(cookie.len(), 24, "{cookie:?}");
    assert_eq!(cookie[..8], CLIENT);
    assert_eq!(cookie[8..12], [1, 0, 0, 0]);
    let ts = u32::from_be_bytes(cookie[12..16].try_into().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    assert!(now.abs_diff(ts) < 60, "timestamp {ts}, now {now}");
}

/// Every case against a block with a shared secret (BADCOOKIE over UDP), over UDP and TCP and
/// for a first query (full path) and a repeated one (a cache hit on the fast path).
#[test]
fn server_cookies_are_issued_accepted_and_refused() {
    let ex = start(&format!("cookie {{\n        secret {SECRET}\n    }}"));
    for name in ["a.example.org.", "a.example.org."] {
        // A client cookie alone: answered with a server cookie.
        let (rcode, cookie) = ask_udp(&ex, &with_cookie(name, &CLIENT));
        assert_eq!(rcode, ResponseCode::NoError);
        let issued = cookie.expect("a server cookie");
        assert_fresh(&issued);
        // Echoed: valid, and sent back unchanged while young (UDP and TCP).
        assert_eq!(
            ask_udp(&ex, &with_cookie(name, &issued)),
            (ResponseCode::NoError, Some(issued.clone()))
        );
        assert_eq!(
            ask_tcp(&ex, &with_cookie(name, &issued)),
            (ResponseCode::NoError, Some(issued.clone()))
        );
        // A wrong server cookie: BADCOOKIE over UDP with a fresh cookie to retry with, a normal
        // answer over TCP (it proves the address).
        let mut wrong = issued.clone();
        wrong[23] ^= 0xff;
        let (rcode, cookie) = ask_udp(&ex, &with_cookie(name, &wrong));
        assert_eq!(rcode, ResponseCode::BADCOOKIE);
        assert_fresh(&cookie.unwrap());
        let (rcode, cookie) = ask_tcp(&ex, &with_cookie(name, &wrong));
        assert_eq!(rcode, ResponseCode::NoError);
        assert_fresh(&cookie.unwrap());
        // Malformed lengths: FORMERR.
        for len in [5usize, 9, 41] {
            let (rcode, _) = ask_udp(&ex, &with_cookie(name, &vec![7; len]));
            assert_eq!(rcode, ResponseCode::FormErr, "{len}-byte cookie");
        }
        // No cookie: none in the reply.
        let (rcode, cookie) = ask_udp(&ex, &query(name, RecordType::A, Some(1232)));
        assert_eq!((rcode, cookie), (ResponseCode::NoError, None));
    }
    // Counted by outcome, twice each (the two rounds).
    let (_, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    for (outcome, n) in [
        ("new", 2),
        ("valid", 4),
        ("badcookie", 2),
        ("invalid", 2),
        ("malformed", 6),
    ] {
        let line = format!("exdns_dns_cookies_total{{outcome=\"{outcome}\"}} {n}");
        assert!(body.contains(&line), "{line} in\n{body}");
    }
}

/// Without the directive cookies are answered with the process's own secret and never refused
/// (another replica cannot know it); `cookie off` ignores them, as before.
#[test]
fn default_and_off() {
    let ex = start("");
    let (rcode, cookie) = ask_udp(&ex, &with_cookie("b.example.org.", &CLIENT));
    assert_eq!(rcode, ResponseCode::NoError);
    let mut wrong = cookie.unwrap();
    assert_fresh(&wrong);
    wrong[23] ^= 0xff;
    let (rcode, cookie) = ask_udp(&ex, &with_cookie("b.example.org.", &wrong));
    assert_eq!(
        rcode,
        ResponseCode::NoError,
        "no BADCOOKIE without a shared secret"
    );
    assert_fresh(&cookie.unwrap());

    let ex = start("cookie off");
    assert_eq!(
        ask_udp(&ex, &with_cookie("b.example.org.", &CLIENT)),
        (ResponseCode::NoError, None)
    );
}

/// `dig` sends a cookie by default and says whether the server's came back good; given the
/// server cookie it was handed, the next answer carries it again.
#[test]
fn dig_and_kdig_see_good_server_cookies() {
    if !require("dig") || !require("kdig") {
        return;
    }
    let ex = start(&format!("cookie {{\n        secret {SECRET}\n    }}"));
    let port = ex.dns().port().to_string();
    let dig = |extra: &str| {
        let (code, out) = run(
            "dig",
            &["@127.0.0.1", "-p", &port, extra, "c.example.org", "A"],
        );
        assert_eq!(code, 0, "{out}");
        out
    };
    let out = dig("+cookie");
    let line = out
        .lines()
        .find(|l| l.starts_with("; COOKIE: "))
        .unwrap_or_else(|| panic!("no COOKIE line: {out}"));
    assert!(line.ends_with("(good)"), "{line}");
    let cookie = line["; COOKIE: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(cookie.len(), 48, "client and server cookie in hex: {line}");
    let out = dig(&format!("+cookie={cookie}"));
    assert!(out.contains(&format!("; COOKIE: {cookie} (good)")), "{out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    // A server cookie from somewhere else: dig is told BADCOOKIE, retries with the new
    // cookie over UDP and gets the answer.
    let mut wrong = cookie.clone();
    wrong.replace_range(46.., "00");
    let out = dig(&format!("+cookie={wrong}"));
    assert!(out.contains("status: NOERROR"), "{out}");

    let (code, out) = run(
        "kdig",
        &["@127.0.0.1", "-p", &port, "+cookie", "c.example.org", "A"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("COOKIE: "), "{out}");
    assert!(out.contains("NOERROR"), "{out}");
}
