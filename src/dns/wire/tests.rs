//! The wire paths must give the client exactly what the decoded path gives: every case below is
//! encoded both ways and compared.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use hickory_proto::op::Header;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::*;
use crate::dns::reply::encode_reply;
use crate::dns::request::{Proto, Request};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn request(qname: &str, qtype: RecordType, edns: Option<(u16, bool)>, proto: Proto) -> Request {
    let mut m = Message::new(0xbeef, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    if let Some((size, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.edns = Some(e);
    }
    let size = m.to_vec().unwrap().len();
    let a: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    Request::new(m, a, a, proto, size)
}

/// A reply from "upstream": another ID, the question in another case, `n` A records, an SOA
/// and NS in authority, glue, and an OPT record when `opt` is set.
fn reply(req: &Request, n: usize, rcode: ResponseCode, opt: Option<u16>) -> Message {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.metadata.recursion_available = true;
    m.metadata.recursion_desired = true;
    m.metadata.authentic_data = true;
    m.metadata.response_code = rcode;
    let q = req.msg.queries[0].clone();
    let owner = Name::from_ascii(q.name().to_ascii().to_uppercase()).unwrap();
    m.add_query(Query::query(owner.clone(), q.query_type()));
    for i in 0..n {
        m.add_answer(Record::from_rdata(
            owner.clone(),
            300,
            RData::A(A::new(10, 0, (i / 250) as u8, (i % 250) as u8)),
        ));
    }
    let zone = name("example.org.");
    m.add_authority(Record::from_rdata(
        zone.clone(),
        60,
        RData::SOA(SOA::new(
            name("ns1.example.org."),
            name("hostmaster.example.org."),
            1,
            7200,
            1800,
            86400,
            30,
        )),
    ));
    m.add_authority(Record::from_rdata(
        zone.clone(),
        60,
        RData::NS(NS(name("ns1.example.org."))),
    ));
    m.add_additional(Record::from_rdata(
        name("ns1.example.org."),
        60,
        RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
    ));
    if let Some(size) = opt {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.edns = Some(e);
    }
    m
}

/// Both ways: `encode_reply` on the decoded reply, `finalize` + `fit` on its bytes (encoded by
/// the same encoder, so that both make the same truncation decision).
fn both(req: &Request, reply: Message) -> (Vec<u8>, Vec<u8>) {
    let bytes = crate::dns::reply::to_wire(&reply).unwrap();
    let layout = scan(&bytes).expect("scan");
    let decoded = encode_reply(req, Message::from_vec(&bytes).unwrap());
    let wire = fit(req, finalize(req, bytes, &layout).expect("finalize"));
    (decoded, wire)
}

fn same(req: &Request, reply: Message) {
    let (decoded, wire) = both(req, reply);
    let d = Message::from_vec(&decoded).unwrap();
    let w = Message::from_vec(&wire).unwrap();
    assert_eq!(d, w, "decoded path vs wire path");
    assert_eq!(decoded.len(), wire.len());
}

#[test]
fn finalize_matches_encode_reply() {
    for proto in [Proto::Udp, Proto::Tcp] {
        for edns in [
            None,
            Some((512, false)),
            Some((1232, true)),
            Some((4096, false)),
        ] {
            for opt in [None, Some(4096)] {
                for n in [0, 1, 5, 40, 200] {
                    for rcode in [ResponseCode::NoError, ResponseCode::NXDomain] {
                        let req = request("www.Example.org.", RecordType::A, edns, proto);
                        same(&req, reply(&req, n, rcode, opt));
                    }
                }
            }
        }
    }
}

#[test]
fn truncation_keeps_question_and_opt() {
    let req = request(
        "www.example.org.",
        RecordType::A,
        Some((512, true)),
        Proto::Udp,
    );
    let (_, wire) = both(&req, reply(&req, 100, ResponseCode::NoError, None));
    let m = Message::from_vec(&wire).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty());
    assert_eq!(m.queries.len(), 1);
    let e = m.edns.expect("OPT kept");
    assert_eq!(e.max_payload(), 1232);
    assert!(e.flags().dnssec_ok);
    // Without EDNS: 512 bytes at most, no OPT.
    let req = request("www.example.org.", RecordType::A, None, Proto::Udp);
    let (_, wire) = both(&req, reply(&req, 40, ResponseCode::NoError, Some(4096)));
    assert!(wire.len() <= 512);
    let m = Message::from_vec(&wire).unwrap();
    assert!(m.metadata.truncation && m.edns.is_none());
    // Over TCP nothing is truncated.
    let req = request("www.example.org.", RecordType::A, None, Proto::Tcp);
    let (_, wire) = both(&req, reply(&req, 200, ResponseCode::NoError, None));
    assert_eq!(Message::from_vec(&wire).unwrap().answers.len(), 200);
}

#[test]
fn finalize_sets_id_qr_opcode_and_opt() {
    let req = request(
        "a.example.org.",
        RecordType::A,
        Some((1400, true)),
        Proto::Udp,
    );
    let r = reply(&req, 1, ResponseCode::NoError, Some(4000));
    let bytes = r.to_vec().unwrap();
    let layout = scan(&bytes).unwrap();
    let out = finalize(&req, bytes, &layout).unwrap();
    assert_eq!(u16_at(&out, 0), 0xbeef);
    assert!(flags(&out) & QR != 0);
    let m = Message::from_vec(&out).unwrap();
    let e = m.edns.unwrap();
    assert_eq!(
        (e.max_payload(), e.version(), e.flags().dnssec_ok),
        (1232, 0, true)
    );
    assert_eq!(m.additionals.len(), 1, "glue kept, one OPT");
}

#[test]
fn extended_rcode_without_edns_is_servfail() {
    let req = request("a.example.org.", RecordType::A, None, Proto::Udp);
    let r = reply(&req, 0, ResponseCode::BADCOOKIE, Some(1232));
    let bytes = r.to_vec().unwrap();
    let layout = scan(&bytes).unwrap();
    assert_eq!(rcode(&bytes, &layout), ResponseCode::BADCOOKIE);
    let out = finalize(&req, bytes, &layout).unwrap();
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.edns.is_none());
}

#[test]
fn scan_finds_every_record() {
    let req = request("www.example.org.", RecordType::MX, None, Proto::Udp);
    let mut m = reply(&req, 2, ResponseCode::NoError, Some(1232));
    m.add_answer(Record::from_rdata(
        name("www.example.org."),
        5,
        RData::MX(MX::new(10, name("mail.example.org."))),
    ));
    m.add_answer(Record::from_rdata(
        name("www.example.org."),
        5,
        RData::CNAME(CNAME(name("x.example.org."))),
    ));
    m.add_answer(Record::from_rdata(
        name("www.example.org."),
        5,
        RData::TXT(TXT::new(vec!["hello".into()])),
    ));
    let bytes = m.to_vec().unwrap();
    let l = scan(&bytes).unwrap();
    assert_eq!((l.an, l.ns, l.rrs.len()), (5, 2, 9));
    assert_eq!(l.opt, Some(8));
    assert_eq!(l.end, bytes.len());
    let types: Vec<u16> = l.rrs.iter().map(|r| r.rtype).collect();
    assert_eq!(types, [1, 1, 15, 5, 16, 6, 2, 28, 41]);
    assert_eq!(l.answers()[0].ttl(&bytes), 300);
    assert_eq!(l.qtype, u16::from(RecordType::MX));
    assert_eq!(l.qclass, u16::from(DNSClass::IN));
    assert!(qname_is(&bytes, &l, &name("WWW.example.ORG.")));
    assert!(!qname_is(&bytes, &l, &name("ww.example.org.")));
    assert!(!qname_is(&bytes, &l, &name("www.example.org.x.")));
}

#[test]
fn scan_rejects_malformed() {
    let req = request("www.example.org.", RecordType::A, None, Proto::Udp);
    let good = reply(&req, 1, ResponseCode::NoError, Some(1232))
        .to_vec()
        .unwrap();
    assert!(scan(&good).is_some());
    // Every strict prefix is cut inside some record.
    for cut in 0..good.len() {
        assert!(scan(&good[..cut]).is_none(), "prefix of {cut} bytes");
    }
    // A pointer to itself or forwards: rejected (no loops).
    let mut bad = good.clone();
    let first_rr = 12 + 17 + 4; // header, "www.example.org." (17 bytes), type and class
    bad[first_rr] = 0xc0;
    bad[first_rr + 1] = first_rr as u8;
    assert!(scan(&bad).is_none());
    // An A record of 3 bytes.
    let mut m = Message::from_vec(&good).unwrap();
    m.answers.clear();
    let mut bytes = m.to_vec().unwrap();
    let an_at = bytes.len();
    bytes.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 3, 1, 2, 3]);
    bytes[7] = 1; // ANCOUNT (answers come first in a real message; the scan reads in order)
    let _ = an_at;
    assert!(scan(&bytes).is_none());
    // Two questions.
    let mut two = good.clone();
    two[5] = 2;
    assert!(scan(&two).is_none());
    // A label type 0x40 / 0x80 is reserved.
    let mut reserved = good;
    reserved[12] = 0x43;
    assert!(scan(&reserved).is_none());
}

#[test]
fn copy_qname_case_restores_the_clients_case() {
    let req = request("WwW.ExAmple.org.", RecordType::A, None, Proto::Udp);
    let r = reply(&req, 1, ResponseCode::NoError, None);
    let mut bytes = r.to_vec().unwrap();
    let l = scan(&bytes).unwrap();
    lowercase_qname(&mut bytes, &l);
    assert_eq!(&bytes[12..l.qname_end], b"\x03www\x07example\x03org\x00");
    copy_qname_case(&mut bytes[12..l.qname_end], req.qname());
    assert_eq!(&bytes[12..l.qname_end], b"\x03WwW\x07ExAmple\x03org\x00");
}

/// The fast encoder and hickory's give the same message (compression may differ, never the
/// content), and the fast one is never longer.
#[test]
fn encoder_matches_hickory() {
    use hickory_proto::rr::rdata::{PTR, SRV};
    for n in [0usize, 1, 3, 30] {
        for edns in [None, Some((1232, true))] {
            let req = request("Www.Example.org.", RecordType::A, edns, Proto::Udp);
            let mut m = reply(&req, n, ResponseCode::NoError, edns.map(|e| e.0));
            m.add_answer(Record::from_rdata(
                name("www.example.org."),
                5,
                RData::MX(MX::new(10, name("mail.example.org."))),
            ));
            m.add_answer(Record::from_rdata(
                name("alias.other.net."),
                5,
                RData::CNAME(CNAME(name("www.example.org."))),
            ));
            m.add_answer(Record::from_rdata(
                name("_x._tcp.example.org."),
                5,
                RData::SRV(SRV::new(1, 2, 443, name("www.example.org."))),
            ));
            m.add_answer(Record::from_rdata(
                name("4.3.2.1.in-addr.arpa."),
                5,
                RData::PTR(PTR(name("host.example.org."))),
            ));
            m.add_answer(Record::from_rdata(
                name("txt.example.org."),
                5,
                RData::TXT(TXT::new(vec!["a".into(), String::new(), "x".repeat(255)])),
            ));
            // Opaque RDATA (an RRSIG as `dnssec` makes them, an unknown type): as held.
            m.add_answer(Record::from_rdata(
                name("www.example.org."),
                5,
                RData::Unknown {
                    code: RecordType::Unknown(65400),
                    rdata: hickory_proto::rr::rdata::NULL::with(vec![1, 2, 3]),
                },
            ));
            m.metadata.authoritative = true;
            m.metadata.checking_disabled = true;
            let fast = encode::encode(&m).expect("covered types");
            let slow = m.to_vec().unwrap();
            assert_eq!(
                Message::from_vec(&fast).unwrap(),
                Message::from_vec(&slow).unwrap()
            );
            assert!(fast.len() <= slow.len(), "{} > {}", fast.len(), slow.len());
        }
    }
}

#[test]
fn encoder_leaves_the_rest_to_hickory() {
    let req = request("www.example.org.", RecordType::A, None, Proto::Udp);
    let mut m = reply(&req, 1, ResponseCode::NoError, None);
    m.add_answer(Record::from_rdata(
        name("www.example.org."),
        5,
        RData::HINFO(hickory_proto::rr::rdata::HINFO::new("a".into(), "b".into())),
    ));
    assert!(encode::encode(&m).is_none());
    let mut e = Edns::new();
    e.options_mut()
        .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
            65001,
            vec![1],
        ));
    let mut m = reply(&req, 1, ResponseCode::NoError, None);
    m.edns = Some(e);
    assert!(encode::encode(&m).is_none());
}

/// Names that share suffixes with names written before them, and a name of 255 octets.
#[test]
fn encoder_compresses_within_and_across_names() {
    let long = {
        let l63 = "a".repeat(63);
        format!("{l63}.{l63}.{l63}.{}.org.", "b".repeat(57))
    };
    for qname in ["example.org.", "a.a.a.a.", long.as_str()] {
        let req = request(qname, RecordType::A, None, Proto::Tcp);
        let mut m = reply(&req, 2, ResponseCode::NoError, None);
        for owner in ["a.a.a.", "a.a.a.a.a.", "org.", "."] {
            m.add_answer(Record::from_rdata(
                name(owner),
                5,
                RData::CNAME(CNAME(name("a.a.example.org."))),
            ));
        }
        let fast = encode::encode(&m).unwrap();
        assert_eq!(
            Message::from_vec(&fast).unwrap(),
            Message::from_vec(&m.to_vec().unwrap()).unwrap()
        );
    }
}

#[test]
fn plain_lower_qname_is_lower_fqdn() {
    for q in [
        "WWW.Example.org.",
        "_x._tcp.a-b.example.",
        "*.w.example.",
        ".",
    ] {
        let req = request(q, RecordType::A, None, Proto::Udp);
        let bytes = req.msg.to_vec().unwrap();
        assert_eq!(
            plain_lower_qname(&bytes).as_deref(),
            Some(req.name.as_str()),
            "{q}"
        );
    }
    for q in [
        "a b.example.",
        "-x.example.",
        "a*.example.",
        "dot\\.ted.example.",
    ] {
        let m = Message::from_vec(&{
            let mut m = Message::new(1, MessageType::Query, OpCode::Query);
            let n = match Name::from_ascii(q) {
                Ok(n) => n,
                Err(_) => Name::from_labels(q.trim_end_matches('.').split('.').map(str::as_bytes))
                    .unwrap(),
            };
            m.add_query(Query::query(n, RecordType::A));
            m.to_vec().unwrap()
        })
        .unwrap();
        assert!(plain_lower_qname(&m.to_vec().unwrap()).is_none(), "{q}");
    }
}

/// The byte-level code on mutated real traffic (every seed reply of the `forward_relay` fuzz
/// target and every seed query, each with 200 seeded random mutations: flipped bits, bytes set
/// to 0x00/0xc0/0xff, truncation, duplicated tails): never a panic; what `scan` accepts,
/// `finalize` and `fit` turn into a reply that scans again, within the client's limit; what
/// the query decoder accepts, hickory decodes to the same message.
#[test]
fn mutated_traffic_never_panics() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut replies = Vec::new();
    for e in std::fs::read_dir(root.join("forward_relay")).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        if let Some((&qlen, rest)) = data.split_first() {
            let qlen = (qlen as usize).min(rest.len());
            replies.push(rest[qlen..].to_vec());
        }
    }
    let mut queries = Vec::new();
    for e in std::fs::read_dir(root.join("query")).unwrap() {
        queries.push(std::fs::read(e.unwrap().path()).unwrap());
    }
    assert!(replies.len() > 500 && queries.len() > 500);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mutate = |b: &[u8], rng: &mut StdRng| -> Vec<u8> {
        let mut m = b.to_vec();
        for _ in 0..rng.random_range(1..4) {
            if m.is_empty() {
                break;
            }
            let i = rng.random_range(0..m.len());
            match rng.random_range(0..6) {
                0 => m[i] ^= 1 << rng.random_range(0..8),
                1 => m[i] = 0,
                2 => m[i] = 0xc0,
                3 => m[i] = 0xff,
                4 => m.truncate(i),
                _ => {
                    let tail = m[i..].to_vec();
                    m.extend_from_slice(&tail);
                }
            }
        }
        m
    };
    let reqs = [
        request("www.example.org.", RecordType::A, None, Proto::Udp),
        request(
            "www.example.org.",
            RecordType::A,
            Some((4096, true)),
            Proto::Udp,
        ),
        request(
            "www.example.org.",
            RecordType::A,
            Some((512, false)),
            Proto::Tcp,
        ),
    ];
    let (mut accepted, mut decoded) = (0, 0);
    for r in &replies {
        for _ in 0..200 {
            let m = mutate(r, &mut rng);
            let Some(layout) = scan(&m) else { continue };
            accepted += 1;
            let _ = rcode(&m, &layout);
            for req in &reqs {
                if let Ok(out) = finalize(req, m.clone(), &layout) {
                    let out = fit(req, out);
                    assert!(out.len() <= req.reply_limit(), "{m:?}");
                    let l = scan(&out).unwrap_or_else(|| panic!("finalized {m:?} to {out:?}"));
                    assert_eq!(u16_at(&out, 0), req.id());
                    assert_eq!(l.qtype, layout.qtype);
                }
            }
        }
    }
    for q in &queries {
        for _ in 0..200 {
            let m = mutate(q, &mut rng);
            let Ok(header) = Header::read(&mut BinDecoder::new(&m)) else {
                continue;
            };
            let _ = plain_lower_qname(&m);
            if let Some(msg) = crate::dns::decode::decode_query(&m, &header) {
                decoded += 1;
                assert_eq!(Some(msg), Message::from_vec(&m).ok(), "{m:?}");
            }
        }
    }
    assert!(
        accepted > 1000 && decoded > 1000,
        "{accepted} replies, {decoded} queries"
    );
}

/// A chain of pointers, each to the one before it, longer than a name can need: rejected.
#[test]
fn pointer_chains_are_bounded() {
    let req = request("a.example.", RecordType::A, None, Proto::Udp);
    let mut bytes = reply(&req, 0, ResponseCode::NoError, None)
        .to_vec()
        .unwrap();
    bytes.truncate(12 + 11 + 4); // header, "a.example." question
    bytes[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    let chain_start = bytes.len();
    // Pointer 0 → the question's name; pointer k → pointer k-1.
    bytes.extend_from_slice(&[0xc0, 12]);
    for k in 1..=200usize {
        let prev = chain_start + 2 * (k - 1);
        bytes.extend_from_slice(&[0xc0 | (prev >> 8) as u8, prev as u8]);
    }
    let owner_at = bytes.len() - 2;
    // An A record whose owner is the last pointer of the chain.
    bytes.truncate(owner_at);
    let last = chain_start + 2 * 199;
    bytes.extend_from_slice(&[
        0xc0 | (last >> 8) as u8,
        last as u8,
        0,
        1,
        0,
        1,
        0,
        0,
        0,
        5,
        0,
        4,
        1,
        2,
        3,
        4,
    ]);
    assert!(check_name(&bytes, owner_at).is_none());
    assert!(
        check_name(&bytes, chain_start + 2 * 100).is_some(),
        "100 hops are fine"
    );
}

#[test]
fn skip_name_stops_after_the_name_or_its_first_pointer() {
    let cases: &[(&str, &[u8], usize, Option<usize>)] = &[
        ("root", &[0], 0, Some(1)),
        ("labels", b"\x03www\x07example\x00\xff", 0, Some(13)),
        ("a pointer ends it", b"\x03www\xc0\x0c\xff", 0, Some(6)),
        ("a pointer alone", &[0xc0, 0x0c], 0, Some(2)),
        ("from an offset", b"\xff\xff\x01a\x00", 2, Some(5)),
        ("runs out", b"\x03www\x07exa", 0, None),
        ("pointer cut short", &[0xc0], 0, None),
        ("reserved label type", &[0x40, 0], 0, None),
        ("past the end", &[0], 1, None),
    ];
    for (name, buf, at, want) in cases {
        assert_eq!(skip_name(buf, *at), *want, "{name}");
    }
}
