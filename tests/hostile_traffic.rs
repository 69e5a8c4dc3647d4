//! Malformed and hostile traffic against the real binary: every case gets the exact answer a
//! CoreDNS (miekg/dns) server gives — an rcode, a drop or a clean close — and the server keeps
//! answering others over UDP and TCP afterwards.
//!
//! The stream timeouts are exdns's fixed defaults (not configurable, as in CoreDNS without the
//! `timeouts` plugin): a connection without a query for 10 s is closed, a message (or TLS
//! handshake) must arrive within 5 s once started, and a client that does not read its replies
//! for 5 s is closed. At most 1024 connections per listener (128 from one address, half the
//! file-descriptor limit at most): beyond that the longest-idle connection is closed to admit a
//! new one.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::tlsecho::{DotClient, client_config, roots_from_pem};
use support::*;

const SNI: &str = "dns.example.test";

/// A plain listener answering whoami for example.org, and a DoT one when `certs` is given.
fn start(certs: Option<&Path>) -> Exdns {
    let mut cf = String::from("example.org:0 {\n    bind 127.0.0.1\n    whoami\n}\n");
    if let Some(dir) = certs {
        let (_, cert, key) = make_certs(dir, SNI);
        cf.push_str(&format!(
            "tls://example.org:0 {{\n    bind 127.0.0.1\n    tls {} {}\n    whoami\n}}\n",
            cert.display(),
            key.display()
        ));
    }
    Exdns::start(&cf)
}

/// The server still answers a normal query over UDP and over a new TCP connection.
fn assert_alive(ex: &Exdns) {
    let q = query("alive.example.org.", RecordType::A, None);
    let r = udp(ex.dns(), &q);
    assert_eq!(r.metadata.id, q.metadata.id);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let r = tcp(ex.dns(), &q);
    assert_eq!(r.metadata.id, q.metadata.id);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

// ---- wire building ----

/// A header: ID, the flags word, QD/AN/NS/AR counts.
fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v
}

/// RD set, opcode QUERY.
const RD: u16 = 0x0100;

/// A name in wire form from its labels (no compression).
fn wire_name(labels: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in labels {
        v.push(l.len() as u8);
        v.extend_from_slice(l);
    }
    v.push(0);
    v
}

fn question(name: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut v = name.to_vec();
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&qclass.to_be_bytes());
    v
}

fn www() -> Vec<u8> {
    wire_name(&[b"www", b"example", b"org"])
}

/// An OPT record: UDP size, extended rcode, version, flags and raw RDATA.
fn opt(size: u16, version: u8, rdata: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 41];
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(&[0, version, 0, 0]);
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

/// A well-formed query for www.example.org A, ID `id`, with `extra` appended and ARCOUNT `ar`.
fn packet(id: u16, flags: u16, ar: u16, extra: &[u8]) -> Vec<u8> {
    let mut v = header(id, flags, [1, 0, 0, ar]);
    v.extend_from_slice(&question(&www(), 1, 1));
    v.extend_from_slice(extra);
    v
}

// ---- reply reading ----

/// The raw header fields of a reply.
#[derive(Debug)]
struct Hdr {
    id: u16,
    qr: bool,
    opcode: u8,
    rd: bool,
    rcode: u8,
    counts: [u16; 4],
}

fn hdr(b: &[u8]) -> Hdr {
    assert!(b.len() >= 12, "a reply shorter than a header: {b:?}");
    let w = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    Hdr {
        id: w(0),
        qr: b[2] & 0x80 != 0,
        opcode: (b[2] >> 3) & 0x0f,
        rd: b[2] & 0x01 != 0,
        rcode: b[3] & 0x0f,
        counts: [w(4), w(6), w(8), w(10)],
    }
}

/// Sends `pkt` over UDP and expects a reply with `rcode`, the query's ID and RD, QR set, an
/// empty answer, and `qd` questions echoed. Returns the raw reply.
fn expect_udp(ex: &Exdns, pkt: &[u8], rcode: u8, qd: u16) -> Vec<u8> {
    let raw = udp_raw(ex.dns(), pkt, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no reply to {pkt:02x?}"));
    let h = hdr(&raw);
    assert_eq!(h.id, u16::from_be_bytes([pkt[0], pkt[1]]), "{h:?}");
    assert!(h.qr, "{h:?}");
    assert_eq!(h.rd, pkt[2] & 1 != 0, "RD copied: {h:?}");
    assert_eq!(h.rcode, rcode, "{h:?}");
    assert_eq!(h.counts[0], qd, "questions echoed: {h:?}");
    assert_eq!(h.counts[1], 0, "no answer: {h:?}");
    raw
}

fn expect_udp_drop(ex: &Exdns, pkt: &[u8]) {
    assert!(
        udp_raw(ex.dns(), pkt, Duration::from_millis(400)).is_none(),
        "a reply to {pkt:02x?}"
    );
}

const FORMERR: u8 = 1;
const NOTIMP: u8 = 4;
const REFUSED: u8 = 5;

#[test]
fn shorter_than_a_header_is_dropped() {
    let ex = start(None);
    let full = packet(0x1111, RD, 0, &[]);
    for n in 0..12 {
        expect_udp_drop(&ex, &full[..n]);
    }
    // Over TCP such a frame is skipped and the connection goes on.
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write_framed(&mut s, &full[..11]);
    write_framed(&mut s, &full);
    let r = read_framed(&mut s).expect("the reply to the next message");
    assert_eq!(hdr(&r).id, 0x1111);
    assert_alive(&ex);
}

#[test]
fn a_readable_header_with_an_unreadable_body_is_formerr() {
    let ex = start(None);
    // QDCOUNT 1 and nothing after the header.
    expect_udp(&ex, &header(0x2222, RD, [1, 0, 0, 0]), FORMERR, 0);
    // A question cut in the middle of its name.
    let full = packet(0x2223, RD, 0, &[]);
    expect_udp(&ex, &full[..18], FORMERR, 0);
    // The question is readable, the additional record is not: the question is echoed.
    let r = expect_udp(&ex, &packet(0x2224, 0, 1, &[0, 0, 41, 0]), FORMERR, 1);
    let m = Message::from_vec(&r).unwrap();
    assert_eq!(m.queries[0].name().to_ascii(), "www.example.org.");
    assert!(m.edns.is_none(), "no OPT: the query's could not be read");
    assert_alive(&ex);
}

#[test]
fn compression_pointer_loops_are_formerr() {
    let ex = start(None);
    // The name points at itself (offset 12).
    let mut p = header(0x3333, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    expect_udp(&ex, &p, FORMERR, 0);
    // Two names pointing at each other: 12 → 14 → 12.
    let mut p = header(0x3334, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
    expect_udp(&ex, &p, FORMERR, 0);
    // A label then a pointer back to its own start.
    let mut p = header(0x3335, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
    expect_udp(&ex, &p, FORMERR, 0);
    // A pointer past the end of the message.
    let mut p = header(0x3336, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&[0xc0, 200, 0, 1, 0, 1]);
    expect_udp(&ex, &p, FORMERR, 0);
    assert_alive(&ex);
}

#[test]
fn names_over_255_octets_and_labels_over_63_are_formerr() {
    let ex = start(None);
    let l63 = [b'a'; 63];
    // 63+63+63+59 labels + "org": 4*1 + 248 + 4 + 1 = 257 octets.
    let l59 = [b'b'; 59];
    let name = wire_name(&[&l63, &l63, &l63, &l59, b"org"]);
    assert_eq!(name.len(), 257);
    let mut p = header(0x4444, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&question(&name, 1, 1));
    expect_udp(&ex, &p, FORMERR, 0);

    // Exactly 255 octets is a valid name: outside example.org, so REFUSED, question echoed.
    let l57 = [b'b'; 57];
    let name = wire_name(&[&l63, &l63, &l63, &l57, b"org"]);
    assert_eq!(name.len(), 255);
    let mut p = header(0x4445, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&question(&name, 1, 1));
    expect_udp(&ex, &p, REFUSED, 1);

    // A 64-octet label: its length byte (0x40) is a reserved label type.
    let mut p = header(0x4446, RD, [1, 0, 0, 0]);
    let mut name = vec![64];
    name.extend_from_slice(&[b'c'; 64]);
    name.extend_from_slice(&wire_name(&[b"example", b"org"]));
    p.extend_from_slice(&question(&name, 1, 1));
    expect_udp(&ex, &p, FORMERR, 0);
    // 0x80: the other reserved label type.
    let mut p = header(0x4447, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&[0x80, b'x', 0, 0, 1, 0, 1]);
    expect_udp(&ex, &p, FORMERR, 0);
    assert_alive(&ex);
}

#[test]
fn qdcount_other_than_one_and_extra_records_are_formerr() {
    let ex = start(None);
    // QDCOUNT 0.
    expect_udp(&ex, &header(0x5555, RD, [0, 0, 0, 0]), FORMERR, 0);
    // QDCOUNT 2 with two valid questions: nothing is echoed (miekg/dns rejects on the header).
    let mut p = header(0x5556, RD, [2, 0, 0, 0]);
    p.extend_from_slice(&question(&www(), 1, 1));
    p.extend_from_slice(&question(&www(), 28, 1));
    expect_udp(&ex, &p, FORMERR, 0);
    // QDCOUNT 65535 over a short body.
    expect_udp(&ex, &header(0x5557, RD, [65535, 0, 0, 0]), FORMERR, 0);
    // More than one answer or authority record, or more than two additional records (the
    // limits of miekg/dns's default accept function): FORMERR before the body is read. The
    // single question is still echoed.
    for counts in [
        [1, 2, 0, 0],
        [1, 0, 2, 0],
        [1, 0, 0, 3],
        [1, 65535, 65535, 65535],
    ] {
        let mut p = header(0x5558, RD, counts);
        p.extend_from_slice(&question(&www(), 1, 1));
        expect_udp(&ex, &p, FORMERR, 1);
    }
    assert_alive(&ex);
}

#[test]
fn unknown_opcodes_are_notimp() {
    let ex = start(None);
    // IQUERY, STATUS, unassigned 3, UPDATE, DSO, 15.
    for op in [1u16, 2, 3, 5, 6, 15] {
        let p = packet(0x6600 + op, RD | (op << 11), 0, &[]);
        let r = expect_udp(&ex, &p, NOTIMP, 1);
        assert_eq!(hdr(&r).opcode as u16, op, "the opcode is echoed");
    }
    // NOTIFY is accepted (as miekg/dns does) and NOTAUTH here: no block has `transfer`.
    let p = packet(0x6604, RD | (4 << 11), 0, &[]);
    let r = expect_udp(&ex, &p, 9, 1);
    assert_eq!(hdr(&r).opcode, 4, "the opcode is echoed");
    // Even when the body is garbage: the header decides.
    let mut p = header(0x6610, 5 << 11, [1, 0, 0, 0]);
    p.extend_from_slice(&[0xc0, 12]);
    expect_udp(&ex, &p, NOTIMP, 0);
    assert_alive(&ex);
}

#[test]
fn classes_other_than_in_are_refused() {
    // CoreDNS's server refuses every class but IN unless a block on the listener has chaos or
    // forward (this one has neither): CH (version.bind probes), HS, NONE, ANY and unassigned
    // ones. tests/plugins_everyday.rs has a listener with chaos.
    let ex = start(None);
    for class in [3u16, 4, 254, 255, 1234] {
        let mut p = header(0x7700 + class, RD, [1, 0, 0, 0]);
        p.extend_from_slice(&question(&www(), 16, class));
        let r = expect_udp(&ex, &p, REFUSED, 1);
        let m = Message::from_vec(&r).unwrap();
        assert_eq!(u16::from(m.queries[0].query_class()), class);
    }
    let mut p = header(0x7701, RD, [1, 0, 0, 0]);
    p.extend_from_slice(&question(
        &wire_name(&[b"version", b"bind"]),
        16,
        3, /* CH */
    ));
    expect_udp(&ex, &p, REFUSED, 1);
    assert_alive(&ex);
}

#[test]
fn edns_garbage_is_formerr_and_unknown_versions_badvers() {
    let ex = start(None);
    // Two OPT records (RFC 6891 §6.1.1: FORMERR).
    let mut extra = opt(1232, 0, &[]);
    extra.extend_from_slice(&opt(1232, 0, &[]));
    expect_udp(&ex, &packet(0x8801, RD, 2, &extra), FORMERR, 1);
    // An option whose length runs past the RDATA.
    expect_udp(
        &ex,
        &packet(0x8802, RD, 1, &opt(1232, 0, &[0, 10, 0, 8, 1, 2])),
        FORMERR,
        1,
    );
    // RDATA shorter than an option header.
    expect_udp(
        &ex,
        &packet(0x8803, RD, 1, &opt(1232, 0, &[0, 10, 0])),
        FORMERR,
        1,
    );
    // RDLENGTH past the end of the message.
    let mut o = opt(1232, 0, &[]);
    let n = o.len();
    o[n - 2..].copy_from_slice(&100u16.to_be_bytes());
    expect_udp(&ex, &packet(0x8804, RD, 1, &o), FORMERR, 1);

    // EDNS version 1: BADVERS (16) = header rcode 0 + OPT extended rcode 1, OPT version 0.
    let r = expect_udp(&ex, &packet(0x8805, RD, 1, &opt(1232, 1, &[])), 0, 1);
    let m = Message::from_vec(&r).unwrap();
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    let e = m.edns.expect("OPT in the BADVERS reply");
    assert_eq!(e.version(), 0);
    assert_eq!(e.max_payload(), 1232);

    // An unknown option is ignored (RFC 6891 §6.1.2): answered normally.
    let r = expect_udp(
        &ex,
        &packet(
            0x8806,
            RD,
            1,
            &opt(1232, 0, &[0xfd, 0xe9, 0, 2, 0xab, 0xcd]),
        ),
        0,
        1,
    );
    assert_eq!(hdr(&r).counts[3], 3, "whoami's A and SRV, and the OPT");
    assert_alive(&ex);
}

#[test]
fn responses_sent_to_the_server_are_dropped() {
    let ex = start(None);
    // QR=1: never answered, whatever follows (no reflection loops between servers).
    expect_udp_drop(&ex, &packet(0x9901, 0x8000 | RD, 0, &[]));
    expect_udp_drop(&ex, &packet(0x9902, 0x8000 | (5 << 11), 0, &[]));
    expect_udp_drop(&ex, &header(0x9903, 0x8000, [0, 0, 0, 0]));
    // Over TCP too; the connection goes on.
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write_framed(&mut s, &packet(0x9904, 0x8000 | RD, 0, &[]));
    write_framed(&mut s, &packet(0x9905, RD, 0, &[]));
    let r = read_framed(&mut s).expect("the reply to the query");
    assert_eq!(hdr(&r).id, 0x9905);
    assert_alive(&ex);
}

/// Reads until the peer closes `s`; returns how long that took and how many bytes came.
/// Panics if the connection is still open after `limit`.
fn wait_closed(s: &mut TcpStream, limit: Duration) -> (Duration, usize) {
    let start = Instant::now();
    let mut got = 0;
    let mut buf = [0u8; 65536];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "still open after {limit:?}");
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (start.elapsed(), got),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {limit:?}")
            }
            Err(_) => return (start.elapsed(), got), // reset
        }
    }
}

#[test]
fn tcp_max_length_garbage_is_formerr_and_the_connection_goes_on() {
    let ex = start(None);
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The largest frame there is: 65535 bytes, a header claiming one question, then 0xff.
    let mut p = header(0xa001, RD, [1, 0, 0, 0]);
    p.resize(65535, 0xff);
    write_framed(&mut s, &p);
    let r = read_framed(&mut s).expect("FORMERR");
    let h = hdr(&r);
    assert_eq!((h.id, h.rcode, h.counts[0]), (0xa001, FORMERR, 0));
    write_framed(&mut s, &packet(0xa002, RD, 0, &[]));
    let r = read_framed(&mut s).expect("the next query is answered");
    assert_eq!((hdr(&r).id, hdr(&r).rcode), (0xa002, 0));
    assert_alive(&ex);
}

#[test]
fn tcp_zero_length_and_short_frames_then_close() {
    let ex = start(None);
    // A zero length prefix ends the connection at once.
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.write_all(&[0, 0]).unwrap();
    let (t, n) = wait_closed(&mut s, Duration::from_secs(2));
    assert_eq!(n, 0, "nothing is sent back");
    assert!(t < Duration::from_secs(1), "{t:?}");
    // A prefix of 100 and 10 bytes, then the client closes its side: closed at once, no reply.
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    let mut p = 100u16.to_be_bytes().to_vec();
    p.extend_from_slice(&packet(0xa101, RD, 0, &[])[..10]);
    s.write_all(&p).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (t, n) = wait_closed(&mut s, Duration::from_secs(2));
    assert_eq!(n, 0);
    assert!(t < Duration::from_secs(1), "{t:?}");
    assert_alive(&ex);
}

#[test]
fn tcp_incomplete_message_is_closed_after_the_read_timeout() {
    let ex = start(None);
    // A prefix of 100 and 10 bytes, then nothing: closed 5 s later.
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    let mut p = 100u16.to_be_bytes().to_vec();
    p.extend_from_slice(&packet(0xa201, RD, 0, &[])[..10]);
    s.write_all(&p).unwrap();
    let (t, n) = wait_closed(&mut s, Duration::from_secs(9));
    assert_eq!(n, 0);
    assert!(t >= Duration::from_millis(4500), "{t:?}");
    assert_alive(&ex);
}

#[test]
fn tcp_half_open_client_is_closed_after_the_idle_timeout() {
    let ex = start(None);
    let start = Instant::now();
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    // Meanwhile others are served.
    assert_alive(&ex);
    let (_, n) = wait_closed(&mut s, Duration::from_secs(14));
    let t = start.elapsed();
    assert_eq!(n, 0);
    assert!(t >= Duration::from_millis(9500), "{t:?}");
    // One byte of a length prefix, then silence: the same idle timeout.
    let start = Instant::now();
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.write_all(&[0]).unwrap();
    wait_closed(&mut s, Duration::from_secs(14));
    assert!(start.elapsed() >= Duration::from_millis(9500));
    assert_alive(&ex);
}

#[test]
fn tcp_slowloris_is_closed_after_the_read_timeout() {
    let ex = start(None);
    // The length arrives, then one byte every 400 ms: the whole message would take 12 s, the
    // server gives it 5 s.
    let q = packet(0xa301, RD, 0, &[]);
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    let start = Instant::now();
    let mut closed_at = None;
    for b in &q[..q.len() - 1] {
        std::thread::sleep(Duration::from_millis(400));
        if s.write_all(&[*b]).is_err() {
            closed_at = Some(start.elapsed());
            break;
        }
        // A closed connection shows as EOF on a non-blocking read.
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        let r = s.read(&mut buf);
        s.set_nonblocking(false).unwrap();
        match r {
            Ok(0) => {
                closed_at = Some(start.elapsed());
                break;
            }
            Ok(_) => panic!("a reply to an incomplete message"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                closed_at = Some(start.elapsed());
                break;
            }
        }
    }
    let t = closed_at.expect("the slow client was never closed");
    assert!(
        t >= Duration::from_millis(4500) && t < Duration::from_secs(8),
        "{t:?}"
    );
    assert_alive(&ex);
}

#[test]
fn tcp_client_that_never_reads_is_closed_after_the_write_timeout() {
    // 60 A records ≈ 1 KB per reply; the client pipelines thousands of queries with a tiny
    // receive buffer and never reads. The server's writes block; it must give up and close.
    let mut cf = String::from(
        "example.org:0 {\n  bind 127.0.0.1\n  whoami\n}\nbig.test:0 {\n  bind 127.0.0.1\n  hosts {\n",
    );
    for i in 0..60 {
        cf.push_str(&format!("    10.0.0.{} many.big.test\n", i + 1));
    }
    cf.push_str("  }\n}\n");
    let ex = Exdns::start(&cf);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&ex.dns().into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let q = query("many.big.test.", RecordType::A, None);
    let reply_len = tcp(ex.dns(), &q).to_vec().unwrap().len() + 2;
    assert!(reply_len > 900, "{reply_len}");
    let q = q.to_vec().unwrap();
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&q);
    let batch: Vec<u8> = frame.repeat(100);
    let start = Instant::now();
    let mut sent = 0;
    // Writing stalls once every buffer is full (or fails once the server closed).
    while start.elapsed() < Duration::from_secs(10) && s.write_all(&batch).is_ok() {
        sent += 100;
    }
    let stalled = start.elapsed();
    assert!(sent >= 1000, "only {sent} queries went out");
    assert!(stalled < Duration::from_secs(10), "writes never stalled");
    // Give the server its 5 s write timeout (plus slack), then drain: the stream must end.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(stalled));
    let (_, got) = wait_closed(&mut s, Duration::from_secs(3));
    assert!(
        got < sent * reply_len,
        "all {sent} replies ({got} bytes) were delivered: the server never gave up"
    );
    assert_alive(&ex);
}

/// A rustls client stream for raw writes (the support client sends whole frames only).
fn tls_stream(
    addr: SocketAddr,
    ca: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = client_config(roots_from_pem(ca));
    let name = rustls::pki_types::ServerName::try_from(SNI.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// Reads from a TLS stream until it ends; the time it took. Panics if data comes.
fn tls_wait_closed(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes of data"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "still open: {e}"
        ),
    }
    start.elapsed()
}

#[test]
fn dot_silent_and_slow_clients_are_closed() {
    let certs = tempfile::tempdir().unwrap();
    let ex = start(Some(certs.path()));
    let dot = ex.addr("tls://");
    let ca = certs.path().join("ca.pem");
    // A working DoT query first.
    let config = client_config(roots_from_pem(&ca));
    let mut c = DotClient::connect(dot, SNI, &config).unwrap();
    let r = c
        .query(&query("x.example.org.", RecordType::A, None))
        .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);

    std::thread::scope(|scope| {
        // TCP connected, no ClientHello: the handshake timeout (5 s).
        scope.spawn(|| {
            let start = Instant::now();
            let mut s = TcpStream::connect(dot).unwrap();
            let (_, n) = wait_closed(&mut s, Duration::from_secs(9));
            let t = start.elapsed();
            assert_eq!(n, 0);
            assert!(t >= Duration::from_millis(4500), "{t:?}");
        });
        // Half a ClientHello: the same.
        scope.spawn(|| {
            let start = Instant::now();
            let mut s = TcpStream::connect(dot).unwrap();
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            let (_, n) = wait_closed(&mut s, Duration::from_secs(9));
            let t = start.elapsed();
            assert_eq!(n, 0);
            assert!(t >= Duration::from_millis(4500), "{t:?}");
        });
        // Handshake done, then no query: the idle timeout (10 s).
        scope.spawn(|| {
            let mut s = tls_stream(dot, &ca);
            let t = tls_wait_closed(&mut s);
            assert!(
                t >= Duration::from_millis(9500) && t < Duration::from_secs(14),
                "{t:?}"
            );
        });
        // Handshake done, a length prefix and part of the message: the read timeout (5 s).
        scope.spawn(|| {
            let mut s = tls_stream(dot, &ca);
            let q = packet(0xb001, RD, 0, &[]);
            let mut p = (q.len() as u16).to_be_bytes().to_vec();
            p.extend_from_slice(&q[..5]);
            s.write_all(&p).unwrap();
            s.flush().unwrap();
            let t = tls_wait_closed(&mut s);
            assert!(
                t >= Duration::from_millis(4500) && t < Duration::from_secs(9),
                "{t:?}"
            );
        });
        // Meanwhile DoT, UDP and TCP clients are served.
        let mut c = DotClient::connect(dot, SNI, &config).unwrap();
        let r = c
            .query(&query("y.example.org.", RecordType::A, None))
            .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_alive(&ex);
    });
    let mut c = DotClient::connect(dot, SNI, &config).unwrap();
    let r = c
        .query(&query("z.example.org.", RecordType::A, None))
        .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_alive(&ex);
}

/// Whether the server has closed `s` (EOF or reset), without waiting.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 512];
    let closed = loop {
        match s.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue, // a reply: drain it
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// Queries `addr` over UDP one after another until `stop`, counting in `progress`;
/// (sent, answered).
fn udp_probe(
    addr: SocketAddr,
    stop: &std::sync::atomic::AtomicBool,
    progress: &std::sync::atomic::AtomicUsize,
) -> (usize, usize) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let (mut sent, mut answered) = (0, 0);
    let mut buf = [0u8; 1500];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let id = (sent as u16).wrapping_add(1);
        sock.send_to(&packet(id, RD, 0, &[]), addr).unwrap();
        sent += 1;
        progress.store(sent, std::sync::atomic::Ordering::Relaxed);
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                answered += 1;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (sent, answered)
}

/// A new TCP client's query is answered; how long connect + answer took.
fn new_tcp_client(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_framed(&mut s, &packet(0xd001, RD, 0, &[]));
    let r = read_framed(&mut s).expect("the new TCP client is answered");
    assert_eq!(hdr(&r).id, 0xd001);
    start.elapsed()
}

/// A new DoT client's query (handshake included) is answered; how long that took.
fn new_dot_client(addr: SocketAddr, ca: &Path) -> Duration {
    let start = Instant::now();
    let config = client_config(roots_from_pem(ca));
    let mut c = DotClient::connect(addr, SNI, &config).unwrap();
    let r = c
        .query(&query("new.example.org.", RecordType::A, None))
        .expect("the new DoT client is answered");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    start.elapsed()
}

/// A flood of more connections than the cap (1024 per listener), of every kind that holds a
/// connection without a query — idle, byte-at-a-time, stalled TLS handshakes — and clients that
/// pipeline without reading: the longest-idle connections are shed, so a new TCP and a new DoT
/// client are each answered at once; UDP is answered throughout; one source address never holds
/// more than 128 connections; and every descriptor is given back afterwards.
#[test]
fn connection_floods_shed_idle_connections_and_keep_tcp_and_dot_available() {
    let hard = raise_nofile();
    if hard < 8192 {
        eprintln!("skipped: the hard limit on open files ({hard}) is too low for the flood");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let ex = start(Some(certs.path()));
    let (dns, dot, ca) = (ex.dns(), ex.addr("tls://"), certs.path().join("ca.pem"));
    let pid = ex.child.id();
    assert_eq!(new_tcp_client(dns).as_secs(), 0);
    let baseline = fd_count(pid);
    let rss_before = rss_kib(pid);

    /// Stops the prober however the flood ends (a failed assertion included).
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let probed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let prober = scope.spawn(|| udp_probe(dns, &stop, &probed));
        let stopper = StopOnDrop(&stop);
        let q = packet(0xc001, RD, 0, &[]);
        let mut held: Vec<TcpStream> = Vec::new();
        // Clients that pipeline queries and never read the replies.
        for i in 0..50u8 {
            let mut s =
                connect_from(std::net::Ipv4Addr::new(127, 0, 1, i), dns).expect("connected");
            let mut burst = Vec::new();
            for _ in 0..200 {
                burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
                burst.extend_from_slice(&q);
            }
            let _ = s.write_all(&burst);
            held.push(s);
        }
        // Byte-at-a-time senders: the first byte of a length prefix, then nothing.
        for i in 0..200u16 {
            let mut s = connect_from(std::net::Ipv4Addr::new(127, 0, 2, (i % 100) as u8), dns)
                .expect("connected");
            s.write_all(&[0]).unwrap();
            held.push(s);
        }
        // Idle connections from 10 addresses, 110 each: beyond the cap with the above.
        for i in 0..1100u16 {
            held.push(
                connect_from(std::net::Ipv4Addr::new(127, 0, 3, (i % 10) as u8), dns)
                    .expect("connected"),
            );
        }
        // Stalled TLS handshakes, beyond the DoT listener's cap.
        for i in 0..1100u16 {
            held.push(
                connect_from(std::net::Ipv4Addr::new(127, 0, 4, (i % 10) as u8), dot)
                    .expect("connected"),
            );
        }
        // Let exdns accept the whole backlog.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fd_count(pid) < baseline + 2000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }

        let t = new_tcp_client(dns);
        assert!(
            t < Duration::from_secs(1),
            "new TCP client answered after {t:?}"
        );
        let t = new_dot_client(dot, &ca);
        assert!(
            t < Duration::from_secs(1),
            "new DoT client answered after {t:?}"
        );

        // One address holds at most 128 connections: 200 from 127.0.5.1, the oldest shed.
        let mut one: Vec<TcpStream> = (0..200)
            .map(|_| connect_from(std::net::Ipv4Addr::new(127, 0, 5, 1), dns).expect("connected"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        let open = loop {
            let open = one.iter_mut().map(closed_by_server).filter(|c| !c).count();
            if open <= 128 || Instant::now() >= deadline {
                break open;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(open, 128, "connections one address keeps");
        assert!(
            !closed_by_server(one.last_mut().unwrap()),
            "the newest is kept"
        );
        let t = new_tcp_client(dns);
        assert!(
            t < Duration::from_secs(1),
            "new TCP client answered after {t:?}"
        );

        // A sample worth the name: at least 200 UDP queries while the flood is held.
        let deadline = Instant::now() + Duration::from_secs(10);
        while probed.load(std::sync::atomic::Ordering::Relaxed) < 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(stopper);
        let (sent, answered) = prober.join().unwrap();
        assert!(
            answered * 100 >= sent * 99 && sent >= 200,
            "UDP during the flood: {answered} of {sent} answered"
        );
        drop(one);
        drop(held);
    });

    // Everything given back: descriptors return to the baseline (the idle timeout at most),
    // and memory to within 16 MiB of it (the connections' buffers are returned to the system
    // once the flood is over).
    let deadline = Instant::now() + Duration::from_secs(15);
    while fd_count(pid) > baseline + 2 || rss_kib(pid) > rss_before + 16 * 1024 {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open ({baseline} before the flood), {} KiB resident ({rss_before} before)",
            fd_count(pid),
            rss_kib(pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_alive(&ex);
}

/// With fewer file descriptors than the cap allows (here 200), a flood of idle connections
/// still leaves room: the cap follows the limit, and a failed accept for lack of descriptors
/// closes the longest-idle connection.
#[test]
fn a_flood_beyond_the_file_descriptor_limit_still_admits_new_clients() {
    let hard = raise_nofile();
    if hard < 4096 {
        eprintln!("skipped: the hard limit on open files ({hard}) is too low for the flood");
        return;
    }
    let ex = Exdns::start_wrapped(
        &["sh", "-c", "ulimit -n 200 && exec \"$0\" \"$@\""],
        "example.org:0 {\n    bind 127.0.0.1\n    whoami\n}\n",
        &[],
        &[],
    );
    let dns = ex.dns();
    let held: Vec<TcpStream> = (0..600u16)
        .map(|i| {
            connect_from(std::net::Ipv4Addr::new(127, 0, 6, (i % 20) as u8), dns)
                .expect("connected")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let t = new_tcp_client(dns);
        assert!(
            t < Duration::from_secs(1),
            "new TCP client answered after {t:?}"
        );
    }
    let r = udp(dns, &query("u.example.org.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    drop(held);
    assert_alive(&ex);
}

/// CoreDNS's `timeouts`: the idle timeout and the queries served per connection follow the
/// block's settings instead of the defaults (10 s, unlimited).
#[test]
fn timeouts_set_the_idle_timeout_and_the_queries_per_connection() {
    let ex = Exdns::start(
        "example.org:0 {\n    bind 127.0.0.1\n    timeouts {\n        idle 1s\n        maxtcpqueries 2\n    }\n    whoami\n}\n",
    );
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for id in [0xe001, 0xe002] {
        write_framed(&mut s, &packet(id, RD, 0, &[]));
        let r = read_framed(&mut s).expect("answered");
        assert_eq!(hdr(&r).id, id);
    }
    let (_, n) = wait_closed(&mut s, Duration::from_secs(3));
    assert_eq!(n, 0, "closed after the second query, no third answer");

    let mut s = TcpStream::connect(ex.dns()).unwrap();
    let (t, n) = wait_closed(&mut s, Duration::from_secs(5));
    assert_eq!(n, 0);
    assert!(
        t >= Duration::from_millis(900) && t < Duration::from_secs(3),
        "an idle connection closed after {t:?}"
    );
    assert_alive(&ex);
}

#[test]
fn udp_replies_never_exceed_1232_bytes_whatever_the_client_offers() {
    // 100 A records ≈ 1.6 KB: more than exdns advertises (1232, DNS flag day 2020). A client
    // offering 4096 or 65535 still gets a truncated reply over UDP (no fragments, no large
    // reflected replies), and the full answer over TCP.
    let mut cf = String::from("big.test:0 {\n  bind 127.0.0.1\n  hosts {\n");
    for i in 0..100 {
        cf.push_str(&format!("    10.0.1.{} many.big.test\n", i + 1));
    }
    cf.push_str("  }\n}\n");
    let ex = Exdns::start(&cf);
    for size in [1232u16, 1233, 4096, 65535] {
        let q = query("many.big.test.", RecordType::A, Some(size));
        let raw = udp_raw(ex.dns(), &q.to_vec().unwrap(), Duration::from_secs(3)).unwrap();
        assert!(
            raw.len() <= 1232,
            "{} bytes for a {size}-byte buffer",
            raw.len()
        );
        let r = Message::from_vec(&raw).unwrap();
        assert!(r.metadata.truncation, "TC for a {size}-byte buffer");
        assert!(r.answers.is_empty());
        assert_eq!(r.edns.as_ref().unwrap().max_payload(), 1232);
    }
    // A buffer below 512 counts as 512 (RFC 6891): still truncated, never more than 512.
    let q = query("many.big.test.", RecordType::A, Some(100));
    let raw = udp_raw(ex.dns(), &q.to_vec().unwrap(), Duration::from_secs(3)).unwrap();
    assert!(raw.len() <= 512);
    let r = tcp(
        ex.dns(),
        &query("many.big.test.", RecordType::A, Some(4096)),
    );
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 100);
}
