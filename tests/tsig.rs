//! `tsig` (RFC 8945) in the real binary, with real `dig -y` and `kdig -y` as clients: signed
//! queries get replies the clients verify (HMAC-SHA1, SHA224, SHA256, SHA384 from a key file,
//! SHA512; UDP and TCP), a wrong key or secret gets NOTAUTH with BADKEY or BADSIG, an unsigned
//! query of a required type is REFUSED and other unsigned queries are answered (from the cache
//! on the fast path the second time). Raw queries signed with exdns's own client side cover what
//! dig cannot send: a clock outside the fudge (BADTIME, signed) and a MAC cut too short
//! (FORMERR). A signed AXFR/IXFR of a zone large enough for several messages verifies message by
//! message in dig, kdig and exdns's own client side.

mod support;

use std::time::Duration;

use exdns::dns::tsig::{self, Algorithm, Client, Key, TsigError};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::*;

const SHA256: &str = "NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk=";
const SHA512: &str =
    "36eowrtmxceNA3T5AdE+JNUOWFCw3amtcyHACnrDVgQ5pjbTrIvK2/BtTUCVRxnqj91o5pJJ+q4o4PUhgY+Bww==";
const SHA1: &str = "X28hl0BOfAL5G0jsmJWSacrwn7YRm2f6U5brnzwWEus=";
const SHA224: &str = "BycDPXSx/5YCD44Q4g5Nd2QNxNRDKwWTXddrU/zpIQM=";
const SHA384: &str = "ZHJvcC10YWJsZS1zdHVkZW50cy1zaGEzODQtc2VjcmV0LWtleS1vbmx5LWZvci10ZXN0cw==";

/// `example.org` answered by `template` behind `cache`, `tsig` requiring MX; one key per
/// algorithm, the SHA384 one from a BIND key file restricted to its algorithm.
fn start() -> Exdns {
    let corefile = format!(
        r#"example.org:0 {{
    bind 127.0.0.1
    tsig {{
        secret sha256.key. {SHA256}
        secret sha512.key. {SHA512}
        secret Sha1.Key {SHA1}
        secret sha224.key. {SHA224}
        secrets tsig.keys
        require MX
    }}
    cache
    template IN A example.org {{
        answer "{{{{ .Name }}}} 60 IN A 192.0.2.1"
    }}
    template IN MX example.org {{
        answer "{{{{ .Name }}}} 60 IN MX 10 mail.example.org."
    }}
}}
"#
    );
    let keys =
        format!("key \"sha384.key\" {{\n\talgorithm hmac-sha384;\n\tsecret \"{SHA384}\";\n}};\n");
    Exdns::start_with(&corefile, &[("tsig.keys", &keys)], &[])
}

fn dig(ex: &Exdns, args: &[&str]) -> String {
    let port = ex.dns().port().to_string();
    let mut all = vec!["@127.0.0.1", "-p", &port, "+norec"];
    all.extend_from_slice(args);
    let (code, out) = run("dig", &all);
    assert_eq!(code, 0, "dig {args:?}: {out}");
    out
}

/// dig's output for a reply whose TSIG it verified.
fn assert_verified(out: &str, key: &str, alg: &str, status: &str) {
    assert!(out.contains(&format!("status: {status},")), "{out}");
    assert!(out.contains(";; TSIG PSEUDOSECTION:"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(key) && l.contains("TSIG"))
        .unwrap_or_else(|| panic!("no TSIG record for {key}: {out}"));
    assert!(line.contains(&format!("\tTSIG\t{alg}. ")), "{line}");
    assert!(line.trim_end().ends_with("NOERROR 0"), "{line}");
    for bad in [
        "Couldn't verify",
        "tsig verify failure",
        "Some TSIG could not be validated",
        "Expected a TSIG",
    ] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
}

#[test]
fn dig_verifies_signed_replies_for_every_algorithm() {
    if !require("dig") {
        return;
    }
    let ex = start();
    let keys = [
        ("hmac-sha256", "sha256.key", SHA256),
        ("hmac-sha512", "sha512.key", SHA512),
        ("hmac-sha1", "sha1.key", SHA1),
        ("hmac-sha224", "sha224.key", SHA224),
        ("hmac-sha384", "sha384.key", SHA384),
    ];
    for (alg, name, secret) in keys {
        let y = format!("{alg}:{name}:{secret}");
        for transport in ["+notcp", "+tcp"] {
            for (qname, qtype) in [("www.example.org", "A"), ("mail.example.org", "MX")] {
                let out = dig(&ex, &[transport, "-y", &y, qname, qtype]);
                assert_verified(&out, &format!("{name}."), alg, "NOERROR");
                assert!(out.contains("ANSWER: 1,"), "{out}");
                if qtype == "A" {
                    assert!(out.contains("\tA\t192.0.2.1"), "{out}");
                } else {
                    assert!(out.contains("\tMX\t10 mail.example.org."), "{out}");
                }
            }
        }
    }
    // The key names are case-insensitive (`secret Sha1.Key`).
    let out = dig(
        &ex,
        &[
            "-y",
            &format!("hmac-sha1:SHA1.key:{SHA1}"),
            "a.example.org",
            "A",
        ],
    );
    assert!(out.contains("status: NOERROR,"), "{out}");
    assert!(!out.contains("Couldn't verify"), "{out}");
    // The secrets never reach the log.
    let log = ex.output();
    for s in [SHA256, SHA512, SHA1, SHA224, SHA384] {
        assert!(!log.contains(s), "secret in the log: {log}");
    }
}

#[test]
fn dig_sees_badkey_and_badsig() {
    if !require("dig") {
        return;
    }
    let ex = start();
    struct Case {
        why: &'static str,
        transport: &'static str,
        y: String,
        /// The TSIG line (its owner) and what it must contain and end with.
        key: &'static str,
        contains: &'static str,
        ends: &'static str,
    }
    let cases = [
        Case {
            why: "a key the server does not know",
            transport: "+notcp",
            y: format!("hmac-sha256:unknown.key:{SHA256}"),
            key: "unknown.key.",
            contains: " 300 0 ",
            ends: "BADKEY 0",
        },
        Case {
            why: "the right name, the wrong secret",
            transport: "+notcp",
            y: format!("hmac-sha256:sha256.key:{SHA1}"),
            key: "sha256.key.",
            contains: " 300 0 ",
            ends: "BADSIG 0",
        },
        Case {
            why: "the key file's key is restricted to hmac-sha384",
            transport: "+notcp",
            y: format!("hmac-sha256:sha384.key:{SHA384}"),
            key: "sha384.key.",
            contains: "hmac-sha256.",
            ends: "BADKEY 0",
        },
        Case {
            why: "HMAC-MD5 is not implemented: BADKEY (hickory still decodes the record)",
            transport: "+notcp",
            y: format!("hmac-md5:sha256.key:{SHA256}"),
            key: "sha256.key.",
            contains: "hmac-md5.sig-alg.reg.int.",
            ends: "BADKEY 0",
        },
        Case {
            why: "the wrong secret over TCP",
            transport: "+tcp",
            y: format!("hmac-sha512:sha512.key:{SHA256}"),
            key: "sha512.key.",
            contains: " 300 0 ",
            ends: "BADSIG 0",
        },
    ];
    for c in &cases {
        let out = dig(&ex, &[c.transport, "-y", &c.y, "www.example.org", "A"]);
        assert!(out.contains("status: NOTAUTH,"), "{}: {out}", c.why);
        assert!(out.contains("ANSWER: 0,"), "{}: {out}", c.why);
        let line = out
            .lines()
            .find(|l| l.starts_with(c.key))
            .unwrap_or_else(|| panic!("{}: {out}", c.why));
        assert!(
            line.contains(c.contains) && line.trim_end().ends_with(c.ends),
            "{}: {line}",
            c.why
        );
    }
}

#[test]
fn unsigned_queries_refused_only_for_required_types() {
    if !require("dig") {
        return;
    }
    let ex = start();
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&ex, &[transport, "www.example.org", "MX"]);
        assert!(out.contains("status: REFUSED,"), "{out}");
        assert!(out.contains("ANSWER: 0,"), "{out}");
        assert!(!out.contains("TSIG PSEUDOSECTION"), "{out}");
    }
    // Not required: answered unsigned, the second time from the cache.
    for _ in 0..2 {
        let out = dig(&ex, &["www.example.org", "A"]);
        assert!(out.contains("status: NOERROR,"), "{out}");
        assert!(out.contains("\tA\t192.0.2.1"), "{out}");
        assert!(!out.contains("TSIG PSEUDOSECTION"), "{out}");
    }
    // A signed MX after the cache holds it unsigned: still answered signed.
    let _ = dig(
        &ex,
        &[
            "-y",
            &format!("hmac-sha256:sha256.key:{SHA256}"),
            "x.example.org",
            "MX",
        ],
    );
    let out = dig(
        &ex,
        &[
            "-y",
            &format!("hmac-sha256:sha256.key:{SHA256}"),
            "x.example.org",
            "MX",
        ],
    );
    assert_verified(&out, "sha256.key.", "hmac-sha256", "NOERROR");
}

#[test]
fn kdig_verifies_signed_replies() {
    if !require("kdig") {
        return;
    }
    let ex = start();
    let port = ex.dns().port().to_string();
    for (y, proto) in [
        (format!("hmac-sha256:sha256.key:{SHA256}"), "+notcp"),
        (format!("hmac-sha512:sha512.key:{SHA512}"), "+tcp"),
    ] {
        let (code, out) = run(
            "kdig",
            &[
                "@127.0.0.1",
                "-p",
                &port,
                proto,
                "-y",
                &y,
                "www.example.org",
                "A",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains(";; TSIG PSEUDOSECTION:"), "{out}");
        assert!(!out.contains("failed to verify TSIG"), "{out}");
    }
    let (_, out) = run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "-y",
            &format!("hmac-sha256:nokey.:{SHA256}"),
            "www.example.org",
            "A",
        ],
    );
    assert!(out.contains("BADKEY"), "{out}");
}

/// `www.example.org A` signed with `key` at `time`, over UDP.
fn signed_raw(ex: &Exdns, key: &Key, alg: Algorithm, time: u64) -> (Vec<u8>, Client) {
    let mut q = query("www.example.org.", RecordType::A, Some(1232))
        .to_vec()
        .unwrap();
    let c = Client::sign_request(key, alg, &mut q, time);
    let r = udp_raw(ex.dns(), &q, Duration::from_secs(5)).expect("a reply");
    (r, c)
}

#[test]
fn clock_skew_is_badtime_signed_and_short_macs_formerr() {
    let ex = start();
    let key = Key::new("sha256.key.", None, SHA256).unwrap();
    let now = tsig::unix_now();
    // In time: a verified answer.
    let (r, mut c) = signed_raw(&ex, &key, Algorithm::HmacSha256, now);
    c.verify_reply(&r).unwrap();
    assert_eq!(Message::from_vec(&r).unwrap().answers.len(), 1);
    // An hour off: NOTAUTH, BADTIME, signed (the client checks the MAC before the error), the
    // request's time in Time Signed and the server's in Other Data.
    let (r, mut c) = signed_raw(&ex, &key, Algorithm::HmacSha256, now - 3600);
    let m = Message::from_vec(&r).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NotAuth);
    assert!(m.answers.is_empty());
    assert_eq!(c.verify_reply(&r), Err(TsigError::BadTime));
    let rec = tsig::find_tsig(&r).unwrap().unwrap();
    assert_eq!(rec.error, tsig::BADTIME);
    assert_eq!(rec.time_signed, now - 3600);
    let server_time = rec.other.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
    assert_eq!(rec.other.len(), 6);
    assert!(server_time.abs_diff(tsig::unix_now()) < 60, "{server_time}");
    // A MAC cut to 8 octets (RFC 8945 allows no fewer than 16 for SHA-256): FORMERR.
    let mut q = query("www.example.org.", RecordType::A, None)
        .to_vec()
        .unwrap();
    Client::sign_request(&key, Algorithm::HmacSha256, &mut q, now);
    let rec = tsig::find_tsig(&q).unwrap().unwrap();
    let rdata = rec.start + rec.key_name.len() + 10;
    let size_at = rdata + rec.algorithm.len() + 8;
    q.drain(size_at + 2 + 8..size_at + 2 + 32);
    q[size_at..size_at + 2].copy_from_slice(&8u16.to_be_bytes());
    let rdlen = (q.len() - rdata) as u16;
    q[rdata - 2..rdata].copy_from_slice(&rdlen.to_be_bytes());
    let r = udp_raw(ex.dns(), &q, Duration::from_secs(5)).expect("a reply");
    assert_eq!(
        Message::from_vec(&r).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    assert!(tsig::find_tsig(&r).unwrap().is_none());
    // A truncated MAC the RFC allows (16 octets) is accepted; the reply's MAC is full length.
    let mut q = query("www.example.org.", RecordType::A, None)
        .to_vec()
        .unwrap();
    Client::sign_request(&key, Algorithm::HmacSha256, &mut q, now);
    q.drain(size_at + 2 + 16..size_at + 2 + 32);
    q[size_at..size_at + 2].copy_from_slice(&16u16.to_be_bytes());
    let rdlen = (q.len() - rdata) as u16;
    q[rdata - 2..rdata].copy_from_slice(&rdlen.to_be_bytes());
    let r = udp_raw(ex.dns(), &q, Duration::from_secs(5)).expect("a reply");
    assert_eq!(
        Message::from_vec(&r).unwrap().metadata.response_code,
        ResponseCode::NoError
    );
    let rec = tsig::find_tsig(&r).unwrap().unwrap();
    assert_eq!((rec.error, rec.mac.len()), (0, 32));
}

/// A `file` zone of 3,000 TXT records (about 200 kB: several transfer messages) behind
/// `transfer`, AXFR and IXFR required signed.
fn start_transfer() -> Exdns {
    let mut zone = String::from(
        "$ORIGIN example.org.\n@ 3600 IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 3600\n@ 3600 IN NS ns.example.org.\nns 3600 IN A 192.0.2.53\nwww 60 IN A 192.0.2.1\n",
    );
    for i in 0..3000 {
        zone.push_str(&format!("t{i:04} 60 IN TXT \"{}\"\n", "x".repeat(40)));
    }
    let corefile = format!(
        "example.org:0 {{\n    bind 127.0.0.1\n    tsig {{\n        secret sha256.key. {SHA256}\n        secret sha1.key. {SHA1}\n        require AXFR IXFR\n    }}\n    transfer {{\n        to *\n    }}\n    file db.example.org\n}}\n"
    );
    Exdns::start_with(&corefile, &[("db.example.org", &zone)], &[])
}

/// dig and kdig verify every message of a signed AXFR (each after the first over the prior MAC
/// and the timers, RFC 8945 §5.3.1); unsigned, the transfer is refused.
#[test]
fn signed_zone_transfer_verifies_message_by_message() {
    if !require("dig") || !require("kdig") {
        return;
    }
    let ex = start_transfer();
    let port = ex.dns().port().to_string();
    for (alg, name, secret) in [
        ("hmac-sha256", "sha256.key", SHA256),
        ("hmac-sha1", "sha1.key", SHA1),
    ] {
        let y = format!("{alg}:{name}:{secret}");
        let out = dig(&ex, &["-y", &y, "example.org", "AXFR"]);
        let size = out
            .lines()
            .find(|l| l.starts_with(";; XFR size: "))
            .unwrap_or_else(|| panic!("no XFR size: {out}"));
        assert!(
            size.starts_with(";; XFR size: 3005 records (messages "),
            "{size}"
        );
        let messages: usize = size
            .split("messages ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(messages >= 3, "{size}");
        for bad in [
            "Transfer failed",
            "tsig verify failure",
            "Couldn't verify",
            "TSIG could not be validated",
        ] {
            assert!(!out.contains(bad), "{bad}: {out}");
        }
        // dig prints the TSIG record of every message.
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with(&format!("{name}.")) && l.contains("\tTSIG\t"))
                .count(),
            messages,
            "{out}"
        );
        let (code, out) = run(
            "kdig",
            &["@127.0.0.1", "-p", &port, "-y", &y, "example.org", "AXFR"],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("3005 records)"), "{out}");
        assert!(
            !out.contains("failed to verify TSIG") && !out.contains("WARNING"),
            "{out}"
        );
    }
    // IXFR from serial 0: the whole zone, signed.
    let out = dig(
        &ex,
        &[
            "-y",
            &format!("hmac-sha256:sha256.key:{SHA256}"),
            "example.org",
            "IXFR=0",
        ],
    );
    assert!(out.contains(";; XFR size: 3005 records"), "{out}");
    assert!(!out.contains("Transfer failed"), "{out}");
    // Unsigned: refused.
    let out = dig(&ex, &["example.org", "AXFR"]);
    assert!(out.contains("; Transfer failed."), "{out}");
    // A wrong key: the transfer fails at the first message.
    let out = dig(
        &ex,
        &[
            "-y",
            &format!("hmac-sha256:sha256.key:{SHA1}"),
            "example.org",
            "AXFR",
        ],
    );
    assert!(!out.contains(";; XFR size"), "{out}");
}

/// exdns's own client side reads the same transfer message by message: every message signed,
/// in order, and the stream verifies only in order.
#[test]
fn signed_zone_transfer_raw() {
    let ex = start_transfer();
    let key = Key::new("sha256.key.", None, SHA256).unwrap();
    let mut q = query("example.org.", RecordType::AXFR, None);
    q.metadata.recursion_desired = false;
    let mut q = q.to_vec().unwrap();
    let mut client = Client::sign_request(&key, Algorithm::HmacSha256, &mut q, tsig::unix_now());
    let mut s = std::net::TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write_framed(&mut s, &q);
    let mut messages = Vec::new();
    let mut records = 0;
    let mut soas = 0;
    while soas < 2 {
        let m = read_framed(&mut s).expect("a transfer message");
        let rec = client
            .verify_reply(&m)
            .unwrap_or_else(|e| panic!("message {}: {e}", messages.len()));
        assert_eq!(rec.original_id, u16::from_be_bytes([m[0], m[1]]));
        let msg = Message::from_vec(&m).unwrap();
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        records += msg.answers.len();
        soas += msg
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        messages.push(m);
    }
    assert!(messages.len() >= 3, "{} messages", messages.len());
    assert_eq!(records, 3005);
    // The second message does not verify as the first reply to the request.
    let mut fresh = query("example.org.", RecordType::AXFR, None)
        .to_vec()
        .unwrap();
    let mut again = Client::sign_request(&key, Algorithm::HmacSha256, &mut fresh, 0);
    assert!(again.verify_reply(&messages[1]).is_err());
}
