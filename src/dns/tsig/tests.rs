use super::*;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::RecordType;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Signed with dnspython 2.9 (an independent implementation) at [`T`]: key `test.key.`,
/// hmac-sha256, secret [`SECRET`]; a query `www.example.org. A` (ID 0x1234, RD), the reply to
/// it with one A record, and a three-message reply (a zone transfer's shape: SOA, A, SOA) whose
/// later messages are signed over the prior MAC and the timers only.
const T: u64 = 1_700_000_000;
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzI=";
const DP_QUERY: &str = "12340100000100000000000103777777076578616d706c65036f726700000100010474657374036b65790000fa00ff00000000003d0b686d61632d7368613235360000006553f100012c0020e8044fd10108a8184d578daa555352a738bf05277f73d4f6f2c2f41b93feb933123400000000";
const DP_REPLY: &str = "12348100000100010000000103777777076578616d706c65036f72670000010001c00c000100010000012c0004c00002010474657374036b65790000fa00ff00000000003d0b686d61632d7368613235360000006553f100012c00206d38ae46b1f835bcdfdf8b89dd1ed3c0aa63fba1a714841e2cca3fabbba68420123400000000";
const DP_MULTI: [&str; 3] = [
    "12348100000100010000000103777777076578616d706c65036f72670000010001c010000600010000012c001b026e730001680000000001000000020000000300000004000000050474657374036b65790000fa00ff00000000003d0b686d61632d7368613235360000006553f100012c002006b67c17bf34f3b15c676e103221cec045080df86a5d1325c9398fc13cd57c5b123400000000",
    "12348100000100010000000103777777076578616d706c65036f726700000100010161c010000100010000012c0004c00002020474657374036b65790000fa00ff00000000003d0b686d61632d7368613235360000006553f100012c0020a65e188fbebec8b0882bf128e371451ddc55cb399e338f6d542560d627abeb83123400000000",
    "12348100000100010000000103777777076578616d706c65036f72670000010001c010000600010000012c001b026e730001680000000001000000020000000300000004000000050474657374036b65790000fa00ff00000000003d0b686d61632d7368613235360000006553f100012c00204d45ba6224b65b34e11a842afe829895b457e5704536035726a2cde1d170477c123400000000",
];

fn keyring() -> Keyring {
    Keyring::new(vec![Key::new("test.key", None, SECRET).unwrap()])
}

/// `msg` without its TSIG record (and ARCOUNT back), as it was before signing.
fn unsigned(msg: &[u8]) -> Vec<u8> {
    let rec = find_tsig(msg).unwrap().unwrap();
    let mut v = msg[..rec.start].to_vec();
    let ar = u16::from_be_bytes([v[10], v[11]]) - 1;
    v[10..12].copy_from_slice(&ar.to_be_bytes());
    v
}

fn valid(v: Verified) -> Signer {
    match v {
        Verified::Valid(s) => s,
        other => panic!("expected a valid request, got {other:?}"),
    }
}

fn rejected(v: Verified) -> Rejection {
    match v {
        Verified::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn query(id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii("www.example.org.").unwrap(),
        RecordType::A,
    ));
    m.to_vec().unwrap()
}

/// The reply skeleton to `query(id)`: QR set, one A record.
fn reply(id: u16) -> Vec<u8> {
    let mut r = query(id);
    r[2] |= 0x80;
    r[7] = 1;
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
    r
}

#[test]
fn hmac_sha224_is_rfc_4231() {
    // RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    let cases: [(Vec<u8>, &[u8], &str); 3] = [
        (
            vec![0x0b; 20],
            b"Hi There",
            "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?",
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
        ),
        (
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
        ),
    ];
    for (key, data, want) in cases {
        // Split anywhere: the parts are one message.
        let (a, b) = data.split_at(3);
        assert_eq!(Algorithm::HmacSha224.mac(&key, &[a, b]), hex(want));
    }
    // And ring's for the others (RFC 4231 case 2).
    assert_eq!(
        Algorithm::HmacSha256.mac(b"Jefe", &[b"what do ya want for nothing?"]),
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
}

#[test]
fn dnspython_request_verifies_and_our_reply_is_byte_identical() {
    let q = hex(DP_QUERY);
    let mut s = valid(verify(&keyring(), &q, T));
    assert_eq!(s.key_name(), "test.key.");
    assert_eq!(s.algorithm(), Some(Algorithm::HmacSha256));
    let want = hex(DP_REPLY);
    let mut r = unsigned(&want);
    s.sign_at(&mut r, T);
    assert_eq!(r, want);
    // Within the fudge either way; one second out is BADTIME.
    assert!(matches!(
        verify(&keyring(), &q, T + 300),
        Verified::Valid(_)
    ));
    assert!(matches!(
        verify(&keyring(), &q, T - 300),
        Verified::Valid(_)
    ));
    assert_eq!(
        rejected(verify(&keyring(), &q, T + 301)).error,
        TsigError::BadTime
    );
}

#[test]
fn multi_message_reply_matches_dnspython() {
    let q = hex(DP_QUERY);
    let mut s = valid(verify(&keyring(), &q, T));
    for m in DP_MULTI {
        let want = hex(m);
        let mut r = unsigned(&want);
        s.sign_at(&mut r, T);
        assert_eq!(r, want);
    }
    // The same messages signed each as a first message differ from the second on.
    let mut fresh = valid(verify(&keyring(), &q, T));
    let mut second = unsigned(&hex(DP_MULTI[1]));
    fresh.sign_at(&mut second, T);
    assert_ne!(second, hex(DP_MULTI[1]));
}

#[test]
fn client_verifies_dnspython_multi_message_reply() {
    let key = Key::new("test.key.", None, SECRET).unwrap();
    let mut q = query(0x1234);
    let mut c = Client::sign_request(&key, Algorithm::HmacSha256, &mut q, T);
    assert_eq!(q, hex(DP_QUERY), "our signed query is dnspython's");
    for m in DP_MULTI {
        c.verify_reply(&hex(m)).unwrap();
    }
    // Out of order: the third message does not verify after the first.
    let mut c = Client::sign_request(&key, Algorithm::HmacSha256, &mut query(0x1234), T);
    c.verify_reply(&hex(DP_MULTI[0])).unwrap();
    assert_eq!(c.verify_reply(&hex(DP_MULTI[2])), Err(TsigError::BadSig));
}

#[test]
fn round_trip_every_algorithm() {
    for alg in Algorithm::ALL {
        let key = Key::new(
            "xfr.Example.",
            None,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .unwrap();
        let ring = Keyring::new(vec![key.clone()]);
        let mut q = query(7);
        let mut client = Client::sign_request(&key, alg, &mut q, T);
        let mut s = valid(verify(&ring, &q, T + 10));
        assert_eq!(s.algorithm(), Some(alg));
        // A transfer's shape: five messages, each verified in order.
        for i in 0..5 {
            let mut r = reply(7);
            let last = r.len() - 1;
            r[last] = i;
            let before = r.len();
            s.sign_at(&mut r, T + 10 + u64::from(i));
            assert_eq!(r.len(), before + s.record_len(), "{alg}");
            assert_eq!(u16::from_be_bytes([r[10], r[11]]), 1, "ARCOUNT");
            let rec = client.verify_reply(&r).unwrap();
            assert_eq!(rec.mac.len(), alg.output_len());
            assert_eq!(rec.time_signed, T + 10 + u64::from(i));
            assert_eq!(rec.fudge, FUDGE);
            assert_eq!(rec.original_id, 7);
            assert_eq!(rec.error, 0);
            // hickory reads the signed reply.
            let m = Message::from_vec(&r).unwrap();
            assert_eq!(m.answers.len(), 1);
        }
    }
}

#[test]
fn key_restricted_to_an_algorithm() {
    let key = Key::new("k.", Some(Algorithm::HmacSha512), SECRET).unwrap();
    let ring = Keyring::new(vec![key.clone()]);
    let mut q = query(1);
    Client::sign_request(&key, Algorithm::HmacSha512, &mut q, T);
    valid(verify(&ring, &q, T));
    let mut q = query(1);
    Client::sign_request(&key, Algorithm::HmacSha256, &mut q, T);
    assert_eq!(rejected(verify(&ring, &q, T)).error, TsigError::BadKey);
}

#[test]
fn unsigned_request() {
    assert!(matches!(
        verify(&keyring(), &query(1), T),
        Verified::Unsigned
    ));
}

#[test]
fn original_id_is_restored() {
    // A forwarder changed the ID: the MAC covers the original one (§4.3.2).
    let mut q = hex(DP_QUERY);
    q[0] = 0xbe;
    q[1] = 0xef;
    let mut s = valid(verify(&keyring(), &q, T));
    // The reply carries the new ID in its header and its TSIG's Original ID.
    let mut r = reply(0xbeef);
    s.sign_at(&mut r, T);
    let rec = find_tsig(&r).unwrap().unwrap();
    assert_eq!(rec.original_id, 0xbeef);
}

/// The error reply `rej` gives for `query`: header from `reply`, rcode NOTAUTH.
fn error_reply(rej: Rejection, id: u16) -> Vec<u8> {
    let mut r = query(id);
    r[2] |= 0x80;
    r[3] = (r[3] & 0xf0) | u16::from(rej.rcode()) as u8;
    rej.sign(&mut r);
    r
}

#[test]
fn badkey_is_notauth_with_an_unsigned_tsig() {
    let other = Key::new("unknown.key.", None, SECRET).unwrap();
    let mut q = query(9);
    let mut client = Client::sign_request(&other, Algorithm::HmacSha256, &mut q, T);
    let rej = rejected(verify(&keyring(), &q, T));
    assert_eq!(rej.error, TsigError::BadKey);
    assert_eq!(rej.rcode(), ResponseCode::NotAuth);
    assert_eq!(rej.key_name, "unknown.key.");
    let r = error_reply(rej, 9);
    assert_eq!(r[3] & 0x0f, 9, "NOTAUTH");
    let rec = find_tsig(&r).unwrap().unwrap();
    assert_eq!(rec.error, BADKEY);
    assert!(rec.mac.is_empty());
    assert_eq!(rec.key_name, other.wire);
    assert_eq!(rec.algorithm, Algorithm::HmacSha256.wire_name());
    assert_eq!(rec.original_id, 9);
    assert_eq!(client.verify_reply(&r), Err(TsigError::BadKey));
}

#[test]
fn unknown_algorithm_is_badkey() {
    // hmac-md5.sig-alg.reg.int.: the key is known, the algorithm is not implemented.
    let mut q = hex(DP_QUERY);
    let rec = find_tsig(&q).unwrap().unwrap();
    let alg_at = rec.start + rec.key_name.len() + 10;
    let mut md5 = Vec::new();
    for l in ["hmac-md5", "sig-alg", "reg", "int"] {
        md5.push(l.len() as u8);
        md5.extend_from_slice(l.as_bytes());
    }
    md5.push(0);
    let old = Algorithm::HmacSha256.wire_name().len();
    q.splice(alg_at..alg_at + old, md5.iter().copied());
    let rdlen_at = rec.start + rec.key_name.len() + 8;
    let rdlen = u16::from_be_bytes([q[rdlen_at], q[rdlen_at + 1]]) as usize - old + md5.len();
    q[rdlen_at..rdlen_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    let rej = rejected(verify(&keyring(), &q, T));
    assert_eq!(rej.error, TsigError::BadKey);
    let r = error_reply(rej, 0x1234);
    let rec = find_tsig(&r).unwrap().unwrap();
    assert_eq!((rec.error, rec.algorithm), (BADKEY, md5));
}

#[test]
fn tampered_byte_is_badsig() {
    let q = hex(DP_QUERY);
    let rec = find_tsig(&q).unwrap().unwrap();
    // Every bit of every byte before the TSIG record but the ID (which the MAC does not cover
    // in place of the original ID) and the counts (which change the structure): never valid.
    for at in 2..rec.start {
        if (4..12).contains(&at) {
            continue;
        }
        for bit in 0..8 {
            let mut t = q.clone();
            t[at] ^= 1 << bit;
            match verify(&keyring(), &t, T) {
                Verified::Rejected(r) => assert!(
                    matches!(r.error, TsigError::BadSig | TsigError::FormErr),
                    "byte {at} bit {bit}: {:?}",
                    r.error
                ),
                // A changed label length can make the TSIG record unreadable as one.
                Verified::Unsigned => {}
                Verified::Valid(_) => panic!("byte {at} bit {bit} verified"),
            }
        }
    }
    // A letter of the question: exactly BADSIG, answered NOTAUTH with an empty MAC.
    let mut t = q.clone();
    t[13] = b'x';
    let rej = rejected(verify(&keyring(), &t, T));
    assert_eq!(rej.error, TsigError::BadSig);
    let r = error_reply(rej, 0x1234);
    let rec = find_tsig(&r).unwrap().unwrap();
    assert_eq!((rec.error, rec.mac.len()), (BADSIG, 0));
    // The MAC itself, the time and the fudge are covered too.
    let qrec = find_tsig(&q).unwrap().unwrap();
    let rdata = qrec.start + qrec.key_name.len() + 10;
    let time_at = rdata + qrec.algorithm.len();
    let mac_at = time_at + 10;
    for at in [time_at + 5, time_at + 7, mac_at, mac_at + 31] {
        let mut t = q.clone();
        t[at] ^= 1;
        assert_eq!(
            rejected(verify(&keyring(), &t, T)).error,
            TsigError::BadSig,
            "byte {at}"
        );
    }
    // A wrong secret under the right name.
    let wrong = Keyring::new(vec![Key::new("test.key.", None, "AAAA").unwrap()]);
    assert_eq!(rejected(verify(&wrong, &q, T)).error, TsigError::BadSig);
}

#[test]
fn badtime_is_signed_with_the_server_time() {
    let key = Key::new("test.key.", None, SECRET).unwrap();
    let mut q = query(3);
    let mut client = Client::sign_request(&key, Algorithm::HmacSha256, &mut q, T);
    let now = T + 3600;
    let rej = rejected(verify(&keyring(), &q, now));
    assert_eq!(rej.error, TsigError::BadTime);
    assert_eq!(rej.rcode(), ResponseCode::NotAuth);
    let mut r = query(3);
    r[2] |= 0x80;
    r[3] |= 9;
    let mut s = rej.signer.unwrap();
    s.sign_at(&mut r, now + 1);
    let rec = find_tsig(&r).unwrap().unwrap();
    assert_eq!(rec.error, BADTIME);
    assert_eq!(rec.time_signed, T, "the request's time");
    assert_eq!(
        rec.other,
        now.to_be_bytes()[2..].to_vec(),
        "the server's time"
    );
    assert_eq!(rec.mac.len(), 32);
    // The MAC is good (else the client would say BADSIG).
    assert_eq!(client.verify_reply(&r), Err(TsigError::BadTime));
    // And before the fudge too.
    assert_eq!(
        rejected(verify(&keyring(), &q, T - 301)).error,
        TsigError::BadTime
    );
}

/// `q` with its MAC cut to `len` octets (the MAC recomputed and truncated, as a client that
/// truncates would send it).
fn truncated(len: usize) -> Vec<u8> {
    let key = Key::new("test.key.", None, SECRET).unwrap();
    let mut q = query(5);
    Client::sign_request(&key, Algorithm::HmacSha256, &mut q, T);
    let rec = find_tsig(&q).unwrap().unwrap();
    let rdata = rec.start + rec.key_name.len() + 10;
    let size_at = rdata + rec.algorithm.len() + 8;
    let mac_at = size_at + 2;
    q.drain(mac_at + len..mac_at + 32);
    q[size_at..size_at + 2].copy_from_slice(&(len as u16).to_be_bytes());
    let rdlen = (q.len() - rdata) as u16;
    q[rdata - 2..rdata].copy_from_slice(&rdlen.to_be_bytes());
    q
}

#[test]
fn truncated_macs() {
    // HMAC-SHA256: 16 octets (half) is the shortest allowed.
    assert_eq!(Algorithm::HmacSha256.min_mac_len(), 16);
    assert_eq!(Algorithm::HmacSha1.min_mac_len(), 10);
    assert_eq!(Algorithm::HmacSha224.min_mac_len(), 14);
    assert_eq!(Algorithm::HmacSha512.min_mac_len(), 32);
    let mut s = valid(verify(&keyring(), &truncated(16), T));
    // The reply's MAC is full length.
    let mut r = reply(5);
    s.sign_at(&mut r, T);
    assert_eq!(find_tsig(&r).unwrap().unwrap().mac.len(), 32);
    valid(verify(&keyring(), &truncated(20), T));
    // Shorter than allowed, or empty: FORMERR (§5.2.2.1), no TSIG in the reply.
    for len in [15, 10, 1, 0] {
        let rej = rejected(verify(&keyring(), &truncated(len), T));
        assert_eq!(rej.error, TsigError::FormErr, "{len}");
        assert_eq!(rej.rcode(), ResponseCode::FormErr);
        let mut r = query(5);
        rej.sign(&mut r);
        assert_eq!(r, query(5), "nothing appended");
    }
    // Longer than the hash: FORMERR.
    let mut q = hex(DP_QUERY);
    let rec = find_tsig(&q).unwrap().unwrap();
    let rdata = rec.start + rec.key_name.len() + 10;
    let size_at = rdata + rec.algorithm.len() + 8;
    q.splice(size_at + 2..size_at + 2, [0u8; 4]);
    q[size_at..size_at + 2].copy_from_slice(&36u16.to_be_bytes());
    let rdlen = (q.len() - rdata) as u16;
    q[rdata - 2..rdata].copy_from_slice(&rdlen.to_be_bytes());
    assert_eq!(
        rejected(verify(&keyring(), &q, T)).error,
        TsigError::FormErr
    );
    // Local policy above the RFC's minimum: BADTRUNC, signed.
    let strict = keyring().with_min_mac_len(32);
    valid(verify(&strict, &hex(DP_QUERY), T));
    let rej = rejected(verify(&strict, &truncated(20), T));
    assert_eq!(rej.error, TsigError::BadTrunc);
    assert_eq!(rej.rcode(), ResponseCode::NotAuth);
    let r = error_reply(rej, 5);
    let rec = find_tsig(&r).unwrap().unwrap();
    assert_eq!((rec.error, rec.mac.len()), (BADTRUNC, 32));
    // A minimum above the algorithm's output means the full MAC.
    valid(verify(&keyring().with_min_mac_len(1000), &hex(DP_QUERY), T));
}

#[test]
fn malformed_tsig_records_are_formerr() {
    let q = hex(DP_QUERY);
    let rec = find_tsig(&q).unwrap().unwrap();
    let form = |b: &[u8]| rejected(verify(&keyring(), b, T)).error == TsigError::FormErr;
    // Trailing bytes.
    let mut t = q.clone();
    t.push(0);
    assert!(form(&t));
    // Class not ANY; TTL not zero.
    let class_at = rec.start + rec.key_name.len() + 2;
    let mut t = q.clone();
    t[class_at + 1] = 1;
    assert!(form(&t));
    let mut t = q.clone();
    t[class_at + 5] = 1;
    assert!(form(&t));
    // A record after the TSIG record.
    let mut t = q.clone();
    t[11] = 2;
    t.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    assert!(form(&t));
    // The TSIG record in the answer section.
    let mut t = q.clone();
    t[7] = 1;
    t[11] = 0;
    assert!(form(&t));
    // RDATA longer than its fields.
    let rdlen_at = class_at + 6;
    let mut t = q.clone();
    t.push(0);
    let rdlen = u16::from_be_bytes([t[rdlen_at], t[rdlen_at + 1]]) + 1;
    t[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    assert!(form(&t));
}

#[test]
fn hostile_input_never_panics() {
    let q = hex(DP_QUERY);
    let ring = keyring();
    // Every truncation, and every single-byte change to 0x00, 0xff and 0xc0 (pointers).
    for n in 0..=q.len() {
        let _ = verify(&ring, &q[..n], T);
        let _ = find_tsig(&q[..n]);
    }
    for at in 0..q.len() {
        for b in [0x00, 0xff, 0xc0, 0x3f] {
            let mut t = q.clone();
            t[at] = b;
            if let Verified::Rejected(r) = verify(&ring, &t, T) {
                let mut out = reply(1);
                r.sign(&mut out);
            }
        }
    }
    // Pseudo-random bytes behind a valid header with ARCOUNT 1.
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..2000 {
        let mut buf = q[..12].to_vec();
        for _ in 0..(x % 120) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push(x as u8);
        }
        let _ = verify(&ring, &buf, T);
    }
    // Signing something shorter than a header does nothing.
    let mut s = valid(verify(&ring, &q, T));
    let mut short = vec![1, 2, 3];
    s.sign_at(&mut short, T);
    assert_eq!(short, [1, 2, 3]);
}

#[test]
fn compressed_key_name_is_read_canonically() {
    // The TSIG owner name as a pointer to an equal name would be; here the key name upper-case
    // in the record: it matches, and the MAC covers its canonical (lower-case) form.
    let key = Key::new("test.key.", None, SECRET).unwrap();
    let mut q = query(0x77);
    Client::sign_request(&key, Algorithm::HmacSha256, &mut q, T);
    let rec = find_tsig(&q).unwrap().unwrap();
    q[rec.start + 1] = b'T';
    valid(verify(&keyring(), &q, T));
}

#[test]
fn secrets_never_show() {
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzI=";
    let key = Key::new("k.", Some(Algorithm::HmacSha1), secret).unwrap();
    let dbg = format!("{key:?} {:?}", Keyring::new(vec![key.clone()]));
    assert!(
        !dbg.contains(secret) && !dbg.contains("secret-secret"),
        "{dbg}"
    );
    assert!(dbg.contains("<redacted>"));
    let mut q = query(1);
    Client::sign_request(&key, Algorithm::HmacSha1, &mut q, T);
    let s = valid(verify(&Keyring::new(vec![key]), &q, T));
    let dbg = format!("{s:?}");
    assert!(
        !dbg.contains(secret) && !dbg.contains("secret-secret"),
        "{dbg}"
    );
    let e = Key::new("k.", None, "not base64!").unwrap_err();
    assert_eq!(e.to_string(), "invalid secret for key \"k.\": not base64");
    let entries = parse_key_file(&format!("key \"a\" {{\n secret \"{secret}\";\n}};\n")).unwrap();
    assert!(!format!("{entries:?}").contains(secret));
}

#[test]
fn key_names_and_algorithms() {
    let k = Key::new("Name.Key", None, SECRET).unwrap();
    assert_eq!(k.name(), "name.key.");
    assert!(keyring().get("TEST.key").is_some());
    assert!(keyring().get("other.").is_none());
    assert!(Key::new("", None, SECRET).is_err());
    assert!(Key::new("a..b", None, SECRET).is_err());
    assert_eq!(
        Algorithm::from_name("HMAC-SHA512."),
        Some(Algorithm::HmacSha512)
    );
    assert_eq!(Algorithm::from_name("hmac-md5"), None);
    for a in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(a.as_str()), Some(a));
        assert_eq!(Algorithm::from_wire(&a.wire_name()), Some(a));
    }
}

#[test]
fn key_files_as_coredns_reads_them() {
    let text = "key \"foo\" {\n\talgorithm hmac-sha256;\n\tsecret \"36eowrtmxceNA3T5AdE+JNUOWFCw3amtcyHACnrDVgQ=\";\n};\nkey \"bar\" {\n\talgorithm hmac-sha256;\n\tsecret \"X28hl0BOfAL5G0jsmJWSacrwn7YRm2f6U5brnzwWEus=\";\n};\n\nkey \"baz\" {\n\tsecret \"BycDPXSx/5YCD44Q4g5Nd2QNxNRDKwWTXddrU/zpIQM=\";\n};";
    let keys = parse_key_file(text).unwrap();
    let got: Vec<(&str, Option<&str>, &str)> = keys
        .iter()
        .map(|e| (e.name.as_str(), e.algorithm.as_deref(), e.secret.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "foo.",
                Some("hmac-sha256"),
                "36eowrtmxceNA3T5AdE+JNUOWFCw3amtcyHACnrDVgQ="
            ),
            (
                "bar.",
                Some("hmac-sha256"),
                "X28hl0BOfAL5G0jsmJWSacrwn7YRm2f6U5brnzwWEus="
            ),
            ("baz.", None, "BycDPXSx/5YCD44Q4g5Nd2QNxNRDKwWTXddrU/zpIQM="),
        ]
    );
    // `key "n" {` with the brace apart, and `}` alone.
    let keys = parse_key_file("key n. {\nsecret \"AAAA\";\n}\n").unwrap();
    assert_eq!(keys[0].name, "n.");
    let err = |t: &str| parse_key_file(t).unwrap_err();
    assert_eq!(err("secret \"x\";"), "unexpected token \"secret\"");
    assert_eq!(err("key"), "expected key name \"key\"");
    assert_eq!(err("key \"{"), "expected key name \"key \\\"{\"");
    assert_eq!(
        err("key a {\nsecret \"A\";\n};\nkey A. {\nsecret \"B\";\n};"),
        "key \"a.\" redefined"
    );
    assert_eq!(
        err("key a {\nsecret \"\";\n};"),
        "expected secret key for key \"a.\""
    );
    assert_eq!(err("key a {\nfoo bar;\n};"), "unexpected token \"foo\"");
    // A secret on a line of its own is never quoted back.
    for text in [
        "key a {\n\"c2VjcmV0LXNlY3JldA==\";\n};",
        "c2VjcmV0LXNlY3JldA==\n",
    ] {
        let e = err(text);
        assert_eq!(e, "unexpected token (not shown: it may be a secret)");
    }
    assert_eq!(
        err("key a {\nalgorithm hmac-sha1;\n};"),
        "expected secret for key \"a.\""
    );
}
