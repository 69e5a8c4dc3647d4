use std::path::PathBuf;
use std::str::FromStr;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ring::signature::{self, UnparsedPublicKey};

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dnssec")
        .join(name)
}

/// The fixture keys (made by `dnssec-keygen`) and the DS records `dnssec-dsfromkey -2` prints
/// for them.
const KEYS: &[(&str, u16, Algorithm, bool, &str)] = &[
    (
        "Kexample.org.+013+14315",
        257,
        Algorithm::EcdsaP256Sha256,
        true,
        "example.org. 3600 IN DS 14315 13 2 91C9F7992D13C94E6682C61DAB44784F7BDFD992B16A9669243CE16F06A1F06E",
    ),
    (
        "Kexample.org.+013+10744",
        256,
        Algorithm::EcdsaP256Sha256,
        false,
        "example.org. 3600 IN DS 10744 13 2 7A50DE76A9EEAA3B44A016ADFD71C9E85C09AB43D6B45CF7AF6AD82D5817CEE0",
    ),
    (
        "Kexample.org.+015+52361",
        256,
        Algorithm::Ed25519,
        false,
        "example.org. 3600 IN DS 52361 15 2 4E2EA43F9889986D926449FDA687291448A762B43B60EF24529532812B435A7A",
    ),
    (
        "Kexample.org.+008+63888",
        256,
        Algorithm::RsaSha256,
        false,
        "example.org. 3600 IN DS 63888 8 2 9A30B4BD86B54B0FEDA9E69386B8E78057E85B9B972CF82E6126021D6D792129",
    ),
];

#[test]
fn loads_every_algorithm_with_its_tag_flags_and_ds() {
    for (base, flags, alg, ksk, ds) in KEYS {
        let tag: u16 = base.rsplit('+').next().unwrap().parse().unwrap();
        // The base name, the .key and the .private file all name the pair.
        for path in [
            fixture(base),
            fixture(&format!("{base}.key")),
            fixture(&format!("{base}.private")),
        ] {
            let k = SigningKey::load(&path).unwrap_or_else(|e| panic!("{base}: {e}"));
            assert_eq!(k.tag, tag, "{base}");
            assert_eq!(k.flags, *flags, "{base}");
            assert_eq!(k.algorithm, *alg, "{base}");
            assert_eq!(k.is_ksk(), *ksk, "{base}");
            assert_eq!(k.is_zsk(), !*ksk, "{base}");
            assert_eq!(k.owner.to_ascii(), "example.org.");
            let owner = Name::from_ascii("example.org.").unwrap();
            assert_eq!(k.ds_text(&owner, 3600), *ds);
        }
    }
}

fn verifier(k: &SigningKey) -> UnparsedPublicKey<Vec<u8>> {
    match k.algorithm {
        Algorithm::EcdsaP256Sha256 => {
            let mut p = vec![4];
            p.extend_from_slice(&k.public);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p)
        }
        Algorithm::Ed25519 => UnparsedPublicKey::new(&signature::ED25519, k.public.clone()),
        Algorithm::RsaSha256 => {
            // RFC 3110 → PKCS#1 RSAPublicKey DER.
            let elen = k.public[0] as usize;
            let e = &k.public[1..1 + elen];
            let n = &k.public[1 + elen..];
            let int = |b: &[u8]| {
                let mut v = Vec::new();
                if b[0] & 0x80 != 0 {
                    v.push(0);
                }
                v.extend_from_slice(b);
                let mut out = vec![2];
                der_len(&mut out, v.len());
                out.extend(v);
                out
            };
            let mut body = int(n);
            body.extend(int(e));
            let mut der = vec![0x30];
            der_len(&mut der, body.len());
            der.extend(body);
            UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
        }
    }
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else if len < 256 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

fn a(name: &str, ip: [u8; 4], ttl: u32) -> Record {
    Record::from_rdata(
        Name::from_str(name).unwrap(),
        ttl,
        RData::A(A::new(ip[0], ip[1], ip[2], ip[3])),
    )
}

/// The RRSIG RDATA fields before the signature, and the signature.
fn split_rrsig(r: &Record) -> (Vec<u8>, Vec<u8>) {
    let RData::Unknown { code, rdata } = &r.data else {
        panic!("not opaque: {r:?}")
    };
    assert_eq!(*code, RecordType::RRSIG);
    let b = rdata.anything.clone();
    // 18 fixed bytes, then the signer's name.
    let mut at = 18;
    while b[at] != 0 {
        at += 1 + b[at] as usize;
    }
    at += 1;
    (b[..at].to_vec(), b[at..].to_vec())
}

#[test]
fn signatures_verify_over_the_canonical_rrset() {
    let zone = Name::from_ascii("example.org.").unwrap();
    let validity = Validity {
        inception: 1_700_000_000,
        expiration: 1_700_691_200,
    };
    // Mixed case and out of order: the signature covers the canonical form and order.
    let r1 = a("WWW.Example.ORG.", [192, 0, 2, 2], 300);
    let r2 = a("WWW.Example.ORG.", [192, 0, 2, 1], 300);
    for (base, ..) in KEYS {
        let k = SigningKey::load(&fixture(base)).unwrap();
        let set = RRset::of(&[&r1, &r2]).unwrap();
        let sig = sign(&k, &zone, &set, validity).unwrap();
        assert_eq!(sig.name, r1.name, "the RRSIG's owner is the RRset's");
        assert_eq!(sig.ttl, 300);
        let (fields, signature) = split_rrsig(&sig);
        assert_eq!(&fields[..2], &[0, 1], "type covered A");
        assert_eq!(fields[2], k.algorithm.number());
        assert_eq!(fields[3], 3, "labels");
        assert_eq!(&fields[4..8], &300u32.to_be_bytes(), "original TTL");
        assert_eq!(&fields[8..12], &validity.expiration.to_be_bytes());
        assert_eq!(&fields[12..16], &validity.inception.to_be_bytes());
        assert_eq!(&fields[16..18], &k.tag.to_be_bytes());
        assert_eq!(&fields[18..], b"\x07example\x03org\x00");
        // What RFC 4034 §3.1.8.1 says was signed, built independently here.
        let mut data = fields.clone();
        for last in [1u8, 2] {
            data.extend_from_slice(b"\x03www\x07example\x03org\x00");
            data.extend_from_slice(&[0, 1, 0, 1]);
            data.extend_from_slice(&300u32.to_be_bytes());
            data.extend_from_slice(&[0, 4, 192, 0, 2, last]);
        }
        verifier(&k)
            .verify(&data, &signature)
            .unwrap_or_else(|_| panic!("{base}: signature does not verify"));
        // A changed record does not.
        let mut bad = data.clone();
        let end = bad.len() - 1;
        bad[end] = 3;
        assert!(verifier(&k).verify(&bad, &signature).is_err(), "{base}");
    }
}

#[test]
fn wildcard_owner_labels_leave_out_the_star() {
    let k = SigningKey::load(&fixture("Kexample.org.+013+10744")).unwrap();
    let zone = Name::from_ascii("example.org.").unwrap();
    let r = a("*.example.org.", [192, 0, 2, 1], 60);
    let set = RRset::of(&[&r]).unwrap();
    let sig = sign(
        &k,
        &zone,
        &set,
        Validity {
            inception: 0,
            expiration: 1,
        },
    )
    .unwrap();
    assert_eq!(split_rrsig(&sig).0[3], 2);
}

#[test]
fn type_bitmap_as_rfc4034_example() {
    // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
    let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
    want.extend(std::iter::repeat_n(0, 26));
    want.push(0x20);
    assert_eq!(type_bitmap(&[46, 15, 1, 1234, 47, 1]), want);
    assert_eq!(type_bitmap(&[]), Vec::<u8>::new());
    // NXNAME (128) is in window 0, byte 16.
    let b = type_bitmap(&[46, 47, T_NXNAME]);
    assert_eq!(b[..2], [0, 17]);
    assert_eq!(b[2 + 16], 0x80);
}

#[test]
fn nsec_next_name_is_the_immediate_successor() {
    let r = nsec(&Name::from_ascii("nx.example.org.").unwrap(), 60, &[46, 47]);
    let RData::Unknown { code, rdata } = &r.data else {
        panic!()
    };
    assert_eq!(*code, RecordType::NSEC);
    let mut want = b"\x01\x00\x02nx\x07example\x03org\x00".to_vec();
    want.extend([0, 6, 0, 0, 0, 0, 0, 3]);
    assert_eq!(rdata.anything.as_slice(), want.as_slice());
    assert_eq!(r.dns_class, DNSClass::IN);
    // A name with no room for another label: `\000` joins its first label.
    let long = format!(
        "{}.{}.{}.{}.",
        "a".repeat(62),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    let n = Name::from_ascii(&long).unwrap();
    assert_eq!(name_wire(&n).len(), 254);
    let r = nsec(&n, 60, &[46, 47]);
    let RData::Unknown { rdata, .. } = &r.data else {
        panic!()
    };
    let b = rdata.anything.as_slice();
    assert_eq!(b[0], 63);
    assert_eq!(b[63], 0);
}

#[test]
fn key_file_problems_are_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let good_key = std::fs::read_to_string(fixture("Kexample.org.+013+10744.key")).unwrap();
    let good_private = std::fs::read_to_string(fixture("Kexample.org.+013+10744.private")).unwrap();
    let other_private =
        std::fs::read_to_string(fixture("Kexample.org.+013+14315.private")).unwrap();
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "missing",
            "",
            None,
            "missing.key: no such file or directory",
        ),
        (
            "noprivate",
            &good_key,
            None,
            "noprivate.private: no such file or directory",
        ),
        (
            "alg7",
            "; comment\nexample.org. IN DNSKEY 256 3 7 AwEAAQ==\n",
            Some(&good_private),
            "unsupported DNSSEC algorithm 7",
        ),
        (
            "notzone",
            "example.org. IN DNSKEY 0 3 13 AAAA\n",
            Some(&good_private),
            "notzone.key:1: not a zone key",
        ),
        (
            "badb64",
            ";\n;\nexample.org. 3600 IN DNSKEY 256 3 13 !!!\n",
            Some(&good_private),
            "badb64.key:3: the public key is not base64",
        ),
        (
            "nokey",
            "; nothing\n",
            Some(&good_private),
            "nokey.key:1: no DNSKEY record found",
        ),
        (
            "mismatch",
            &good_key,
            Some(&other_private),
            "does not match the public key",
        ),
        (
            "notbind",
            &good_key,
            Some("PrivateKey: abc\n"),
            "notbind.private:1: not a BIND private key file",
        ),
        (
            "wrongalg",
            &good_key,
            Some("Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: AAAA\n"),
            "does not match the public key's 13",
        ),
    ];
    for (base, key, private, want) in cases {
        if !key.is_empty() {
            write(&format!("{base}.key"), key);
        }
        if let Some(p) = private {
            write(&format!("{base}.private"), p);
        }
        let err = SigningKey::load(&dir.path().join(base))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{base}: {err}");
    }
}

#[test]
fn key_tag_of_rfc4034_appendix_example() {
    // A DNSKEY whose tag is known from `dnssec-keygen`'s file name.
    let k = SigningKey::load(&fixture("Kexample.org.+015+52361")).unwrap();
    assert_eq!(key_tag(&k.dnskey_rdata()), 52361);
}
