use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::dnssec::Verifier;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC, RRSIG};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::plugin::test_chain::{self, Fixed, query, request_from, setup_in, with_edns};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dnssec")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

const CSK: &str = "Kexample.org.+013+10744";
const KSK: &str = "Kexample.org.+013+14315";

fn plugin(keys: &[&str]) -> Dnssec {
    let keys: Vec<String> = keys.iter().map(|k| fixture(k)).collect();
    let text = format!("dnssec {{\n key file {}\n}}", keys.join(" "));
    let mut d = test_chain::dispenser(&text);
    let block = test_chain::block(&["example.org."]);
    let mut config = crate::plugin::config::BlockConfig::default();
    let ctx = crate::plugin::SetupCtx {
        block: &block,
        config: &mut config,
    };
    setup::parse(&mut d, &ctx).unwrap()
}

#[test]
fn setup_accepts_coredns_syntax_and_reports_errors() {
    let csk = fixture(CSK);
    for ok in [
        format!("dnssec {{\n key file {csk}\n}}"),
        format!("dnssec {{\n key file {csk}.key\n cache_capacity 100\n}}"),
        format!("dnssec example.org {{\n key file {csk}.private\n}}"),
        format!("dnssec sub.example.org {{\n key file {csk}\n}}"),
    ] {
        assert!(setup_in(setup, &ok, &["example.org."]).is_ok(), "{ok}");
    }
    let cases = [
        ("dnssec {\n key\n}".to_string(), "Wrong argument count"),
        ("dnssec {\n key file\n}".to_string(), "Wrong argument count"),
        (
            "dnssec {\n key file /nonexistent/K\n}".to_string(),
            "open /nonexistent/K.key: no such file or directory",
        ),
        (
            "dnssec {\n key aws_secretsmanager x\n}".to_string(),
            "key aws_secretsmanager is not supported",
        ),
        (
            "dnssec {\n key vault x\n}".to_string(),
            "unknown key source 'vault'",
        ),
        (
            format!("dnssec {{\n key file {csk}\n cache_capacity\n}}"),
            "Wrong argument count",
        ),
        (
            format!("dnssec {{\n key file {csk}\n cache_capacity x\n}}"),
            "strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            format!("dnssec {{\n key file {csk}\n bogus\n}}"),
            "unknown property 'bogus'",
        ),
        (
            format!("dnssec {{\n key file {csk} {csk}.key\n}}"),
            "given twice",
        ),
        ("dnssec".to_string(), "no key"),
        (
            format!("dnssec example.net {{\n key file {csk}\n}}"),
            "key example.org. (keyid: 10744) can not sign any of the zones",
        ),
    ];
    for (text, want) in cases {
        let err = match setup_in(setup, &text, &["example.org.", "example.net."]) {
            Ok(_) => panic!("{text}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{text}: {err}");
    }
}

fn soa() -> Record {
    Record::from_rdata(
        Name::from_ascii("example.org.").unwrap(),
        3600,
        RData::SOA(SOA::new(
            Name::from_ascii("ns.example.org.").unwrap(),
            Name::from_ascii("hostmaster.example.org.").unwrap(),
            1,
            7200,
            3600,
            1209600,
            300,
        )),
    )
}

fn a(name: &str, ip: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        60,
        RData::A(A(ip.parse().unwrap())),
    )
}

/// A backend: www has A and TXT, everything else under example.org does not exist.
fn backend() -> Arc<Fixed> {
    Fixed::reply(|m| {
        let q = m.queries[0].clone();
        let name = q.name().to_ascii().to_ascii_lowercase();
        m.metadata.authoritative = true;
        match (name.as_str(), q.query_type()) {
            ("www.example.org.", RecordType::A) => {
                m.answers.push(a("www.example.org.", "192.0.2.1"));
                m.answers.push(a("www.example.org.", "192.0.2.2"));
            }
            ("www.example.org.", RecordType::TXT) => m.answers.push(Record::from_rdata(
                q.name().clone(),
                60,
                RData::TXT(TXT::new(vec!["hi".into()])),
            )),
            ("www.example.org.", _) | ("example.org.", _) => m.authorities.push(soa()),
            ("www.example.net.", _) => m.answers.push(a("www.example.net.", "198.51.100.1")),
            _ => {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.authorities.push(soa());
            }
        }
    })
}

async fn ask(p: &Dnssec, name: &str, t: RecordType, dnssec_ok: bool) -> (Message, usize) {
    let next = backend();
    let rest: Vec<Arc<dyn Plugin>> = vec![next.clone()];
    let req = request_from(
        with_edns(query(name, t), 1232, dnssec_ok),
        "10.0.0.1:5353",
        Proto::Udp,
    );
    let out = test_chain::serve(p, &req, &rest).await;
    // Through the wire and back: what a client decodes (the DNSSEC types as hickory reads them).
    let m = Message::from_vec(&test_chain::reply_of(out).to_vec().unwrap()).unwrap();
    (m, next.calls())
}

fn rrsigs(records: &[Record]) -> Vec<(&Record, &RRSIG)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some((r, s)),
            _ => None,
        })
        .collect()
}

fn dnskey(path: &str) -> DNSKEY {
    let k = crate::dns::dnssec::SigningKey::load(std::path::Path::new(&fixture(path))).unwrap();
    let rdata = k.dnskey_rdata();
    let mut dec = hickory_proto::serialize::binary::BinDecoder::new(&rdata);
    let r = RData::read(
        &mut dec,
        RecordType::DNSKEY,
        hickory_proto::serialize::binary::Restrict::new(rdata.len() as u16),
    )
    .unwrap();
    match r {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => k,
        other => panic!("{other:?}"),
    }
}

/// Every RRSIG of `section` verifies with `key` over the records it covers.
fn verify_all(key: &DNSKEY, section: &[Record]) -> usize {
    let mut n = 0;
    for (r, sig) in rrsigs(section) {
        let covered: Vec<&Record> = section
            .iter()
            .filter(|c| c.name == r.name && c.record_type() == sig.input().type_covered)
            .collect();
        assert!(!covered.is_empty(), "{r:?}");
        key.verify_rrsig(&r.name, DNSClass::IN, sig, covered.into_iter())
            .unwrap_or_else(|e| panic!("{} {}: {e}", r.name, sig.input().type_covered));
        n += 1;
    }
    n
}

fn nsec_of(records: &[Record]) -> (&Record, &NSEC) {
    records
        .iter()
        .find_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((r, n)),
            _ => None,
        })
        .expect("an NSEC")
}

#[tokio::test]
async fn positive_answers_are_signed_only_with_do() {
    let p = plugin(&[CSK]);
    let key = dnskey(CSK);
    let (plain, _) = ask(&p, "www.example.org.", RecordType::A, false).await;
    assert_eq!(plain.answers.len(), 2);
    assert!(rrsigs(&plain.answers).is_empty());
    let (m, calls) = ask(&p, "www.example.org.", RecordType::A, true).await;
    assert_eq!(calls, 1);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 3);
    assert_eq!(verify_all(&key, &m.answers), 1);
    let (r, sig) = rrsigs(&m.answers)[0];
    let i = sig.input();
    assert_eq!(
        (r.ttl, i.original_ttl, i.num_labels, i.key_tag),
        (60, 60, 3, 10744)
    );
    assert_eq!(i.signer_name.to_ascii(), "example.org.");
    let life = i.sig_expiration.get().wrapping_sub(i.sig_inception.get());
    // 3 hours before, 8 days after, less up to 12 hours of jitter.
    assert!(
        (8 * DAY - 12 * HOUR + 3 * HOUR..=8 * DAY + 3 * HOUR).contains(&life),
        "{life}"
    );
    // Outside the zones: untouched.
    let (m, _) = ask(&p, "www.example.net.", RecordType::A, true).await;
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn denials_are_compact_and_signed() {
    let p = plugin(&[CSK]);
    let key = dnskey(CSK);
    // (name, qtype, NXNAME expected, types that must / must not be in the bitmap)
    type Case = (
        &'static str,
        RecordType,
        bool,
        &'static [RecordType],
        &'static [RecordType],
    );
    let cases: &[Case] = &[
        (
            "nx.example.org.",
            RecordType::A,
            true,
            &[RecordType::RRSIG, RecordType::NSEC],
            &[RecordType::A],
        ),
        (
            "www.example.org.",
            RecordType::AAAA,
            false,
            &[RecordType::A, RecordType::TXT, RecordType::MX],
            &[
                RecordType::AAAA,
                RecordType::CNAME,
                RecordType::NS,
                RecordType::SOA,
            ],
        ),
        (
            "example.org.",
            RecordType::MX,
            false,
            &[RecordType::SOA, RecordType::NS, RecordType::DNSKEY],
            &[RecordType::MX],
        ),
        (
            "www.example.org.",
            RecordType::DS,
            false,
            &[RecordType::A],
            &[RecordType::DS, RecordType::NS],
        ),
    ];
    for (name, t, nxname, has, lacks) in cases {
        let (m, _) = ask(&p, name, *t, true).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name} {t}"
        );
        assert!(m.answers.is_empty());
        // SOA, its RRSIG, the NSEC, its RRSIG.
        assert_eq!(m.authorities.len(), 4, "{name} {t}: {:?}", m.authorities);
        assert_eq!(verify_all(&key, &m.authorities), 2);
        let (r, nsec) = nsec_of(&m.authorities);
        assert_eq!(r.name.to_ascii(), *name);
        assert_eq!(r.ttl, 300, "min(SOA TTL, SOA MINIMUM)");
        assert_eq!(nsec.next_domain_name().to_ascii(), format!("\\000.{name}"));
        let types: Vec<RecordType> = nsec.type_bit_maps().collect();
        assert_eq!(
            types.contains(&RecordType::Unknown(128)),
            *nxname,
            "{name} {t}: {types:?}"
        );
        for h in *has {
            assert!(types.contains(h), "{name} {t}: {h} missing from {types:?}");
        }
        for l in *lacks {
            assert!(!types.contains(l), "{name} {t}: {l} in {types:?}");
        }
    }
    // Without DO the denial is the backend's.
    let (m, _) = ask(&p, "nx.example.org.", RecordType::A, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1);
    // NSEC asked: the NSEC is the answer, the SOA goes.
    let (m, _) = ask(&p, "nx.example.org.", RecordType::NSEC, true).await;
    assert_eq!(m.answers.len(), 2);
    assert!(m.authorities.is_empty());
    assert_eq!(verify_all(&key, &m.answers), 1);
}

#[tokio::test]
async fn key_rrsets_at_the_apex_are_answered_here() {
    let p = plugin(&[KSK, CSK]);
    let ksk = dnskey(KSK);
    for (t, n, signer) in [
        (RecordType::DNSKEY, 2, 14315),
        (RecordType::CDS, 1, 14315),
        (RecordType::CDNSKEY, 1, 14315),
    ] {
        let (m, calls) = ask(&p, "Example.ORG.", t, true).await;
        assert_eq!(calls, 0, "{t}");
        assert!(m.metadata.authoritative);
        let data: Vec<&Record> = m.answers.iter().filter(|r| r.record_type() == t).collect();
        assert_eq!(data.len(), n, "{t}");
        assert_eq!(data[0].ttl, KEY_TTL);
        let sigs = rrsigs(&m.answers);
        assert_eq!(sigs.len(), 1, "{t}: signed by the KSK alone");
        assert_eq!(sigs[0].1.input().key_tag, signer);
        assert_eq!(verify_all(&ksk, &m.answers), 1);
        // Without DO: the records, no signature.
        let (m, _) = ask(&p, "example.org.", t, false).await;
        assert_eq!(m.answers.len(), n);
    }
    // Elsewhere DNSKEY goes to the backend.
    let (_, calls) = ask(&p, "www.example.org.", RecordType::DNSKEY, true).await;
    assert_eq!(calls, 1);
    // Other RRsets by the ZSK alone.
    let (m, _) = ask(&p, "www.example.org.", RecordType::A, true).await;
    let sigs = rrsigs(&m.answers);
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].1.input().key_tag, 10744);
}

#[tokio::test]
async fn signatures_come_from_the_cache_until_the_content_changes() {
    let p = plugin(&[CSK]);
    // ECDSA signatures are randomised: the same bytes twice means the second was not made again.
    let (m1, _) = ask(&p, "www.example.org.", RecordType::A, true).await;
    let (m2, _) = ask(&p, "WWW.example.org.", RecordType::A, true).await;
    let s1 = rrsigs(&m1.answers)[0].1.sig().to_vec();
    let s2 = rrsigs(&m2.answers)[0].1.sig().to_vec();
    assert_eq!(s1, s2);
    // Another RRset is another signature.
    let (m3, _) = ask(&p, "www.example.org.", RecordType::TXT, true).await;
    assert_ne!(rrsigs(&m3.answers)[0].1.sig(), s1.as_slice());
    // The owner is spelled as the reply spells it (the TXT backend echoes the question's case),
    // the signature is the cached one.
    let (m4, _) = ask(&p, "WWW.Example.org.", RecordType::TXT, true).await;
    let (r4, s4) = rrsigs(&m4.answers)[0];
    assert_eq!(r4.name.to_ascii(), "WWW.Example.org.");
    assert_eq!(s4.sig(), rrsigs(&m3.answers)[0].1.sig());
}

/// A plugin that counts the fast-path queries offered to it.
struct CountFast(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl Plugin for CountFast {
    fn name(&self) -> &'static str {
        "count"
    }
    async fn serve(&self, _req: &Request, _next: Next<'_>) -> Outcome {
        Outcome::code(ResponseCode::ServFail, "count")
    }
    fn fast(&self, _q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        None
    }
}

#[test]
fn fast_path_reaches_next_only_for_unsigned_answers() {
    let p = plugin(&[CSK]);
    for (name, t, dnssec_ok, passes) in [
        ("www.example.org.", RecordType::A, false, true),
        ("www.example.net.", RecordType::A, true, true),
        ("www.example.org.", RecordType::A, true, false),
        ("example.org.", RecordType::DNSKEY, false, false),
        ("example.org.", RecordType::CDS, false, false),
    ] {
        let count: Arc<CountFast> = Arc::new(CountFast(Default::default()));
        let rest: Vec<Arc<dyn Plugin>> = vec![count.clone()];
        let q = with_edns(query(name, t), 1232, dnssec_ok).to_vec().unwrap();
        crate::dns::view::with_view(&q, Proto::Udp, |v| p.fast(v, FastNext::new(&rest)));
        assert_eq!(
            count.0.load(std::sync::atomic::Ordering::SeqCst) == 1,
            passes,
            "{name} {t} do={dnssec_ok}"
        );
    }
}
