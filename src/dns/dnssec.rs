//! DNSSEC (RFC 4033–4035) signing primitives: BIND-format key pairs, canonical RRset signing
//! (RRSIG), DNSKEY/DS/CDS/CDNSKEY data and NSEC records for compact denial (RFC 9824).
//!
//! Everything here works on records as the plugins hold them (hickory's `Record`) and produces
//! records whose DNSSEC RDATA is carried as opaque bytes (this build does not decode the DNSSEC
//! types), so the encoder writes them as they are. Signing needs no lock and no I/O: a
//! [`SigningKey`] is immutable once loaded.
//!
//! Algorithms: 8 (RSA/SHA-256, 2048 to 4096 bits, what `ring` signs), 13 (ECDSA P-256/SHA-256)
//! and 15 (Ed25519). Keys are read from the two files `dnssec-keygen` writes
//! (`Kzone.+alg+tag.key`, the DNSKEY record, and `.private`, BIND's private-key format v1.2/v1.3).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

/// RFC 9824's NXNAME meta type, in the bitmap of a compact NXDOMAIN proof.
pub const T_NXNAME: u16 = 128;
/// DNSKEY flags: Zone Key (bit 7) and Secure Entry Point (bit 15).
pub const FLAG_ZONE: u16 = 0x0100;
pub const FLAG_SEP: u16 = 0x0001;

/// A DNSSEC signing algorithm exdns implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RsaSha256,
    EcdsaP256Sha256,
    Ed25519,
}

impl Algorithm {
    pub fn number(self) -> u8 {
        match self {
            Algorithm::RsaSha256 => 8,
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }
    pub fn from_number(n: u8) -> Option<Self> {
        Some(match n {
            8 => Algorithm::RsaSha256,
            13 => Algorithm::EcdsaP256Sha256,
            15 => Algorithm::Ed25519,
            _ => return None,
        })
    }
    /// The mnemonic `dnssec-keygen -a` takes.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "RSASHA256",
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }
}

/// Why a key pair could not be loaded; the message names the file (and line where there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A loaded key pair: its DNSKEY data and the private key that signs with it.
pub struct SigningKey {
    /// The DNSKEY record's owner in the key file (lower case, absolute).
    pub owner: Name,
    pub flags: u16,
    pub algorithm: Algorithm,
    /// The DNSKEY's public key field.
    pub public: Vec<u8>,
    pub tag: u16,
    /// The files it was read from (the `.key` file).
    pub file: PathBuf,
    signer: Signer,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("SigningKey")
            .field("owner", &self.owner.to_ascii())
            .field("flags", &self.flags)
            .field("algorithm", &self.algorithm)
            .field("tag", &self.tag)
            .finish()
    }
}

impl SigningKey {
    /// Secure Entry Point set: a key-signing key (or a CSK when it is the only kind).
    pub fn is_ksk(&self) -> bool {
        self.flags & (FLAG_ZONE | FLAG_SEP) == FLAG_ZONE | FLAG_SEP
    }
    pub fn is_zsk(&self) -> bool {
        self.flags & (FLAG_ZONE | FLAG_SEP) == FLAG_ZONE
    }

    /// The DNSKEY RDATA: flags, protocol 3, algorithm, public key.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        dnskey_rdata(self.flags, self.algorithm.number(), &self.public)
    }

    /// The DS RDATA (digest type 2, SHA-256) of this key at `owner`.
    pub fn ds_rdata(&self, owner: &Name) -> Vec<u8> {
        let mut input = name_wire(owner);
        input.extend_from_slice(&self.dnskey_rdata());
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        let mut out = Vec::with_capacity(4 + digest.as_ref().len());
        out.extend_from_slice(&self.tag.to_be_bytes());
        out.push(self.algorithm.number());
        out.push(2);
        out.extend_from_slice(digest.as_ref());
        out
    }

    /// The DS record for the parent, in presentation form (`example.org. 3600 IN DS …`).
    pub fn ds_text(&self, owner: &Name, ttl: u32) -> String {
        let ds = self.ds_rdata(owner);
        format!(
            "{} {ttl} IN DS {} {} 2 {}",
            owner.to_ascii(),
            self.tag,
            self.algorithm.number(),
            hex_upper(&ds[4..])
        )
    }

    fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, data, &mut sig)
                    .map_err(|_| KeyError("RSA signing failed".into()))?;
                Ok(sig)
            }
            Signer::Ecdsa(k) => k
                .sign(&rng, data)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError("ECDSA signing failed".into())),
            Signer::Ed25519(k) => Ok(k.sign(data).as_ref().to_vec()),
        }
    }

    /// Loads the pair named by `path`: a base name (`Kexample.org.+013+12345`) or either file
    /// of the pair, as CoreDNS's `key file` takes them.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let s = path.to_string_lossy();
        let base = s
            .strip_suffix(".key")
            .or_else(|| s.strip_suffix(".private"))
            .unwrap_or(&s);
        let public_file = PathBuf::from(format!("{base}.key"));
        let private_file = PathBuf::from(format!("{base}.private"));
        let public_text = read(&public_file)?;
        let private_text = read(&private_file)?;
        let (owner, flags, alg, public) = parse_dnskey_file(&public_text)
            .map_err(|(line, e)| KeyError(format!("{}:{line}: {e}", public_file.display())))?;
        let algorithm = Algorithm::from_number(alg).ok_or_else(|| {
            KeyError(format!(
                "{}: unsupported DNSSEC algorithm {alg} (exdns signs with 8, 13 and 15)",
                public_file.display()
            ))
        })?;
        let fields = parse_private(&private_text)
            .map_err(|(line, e)| KeyError(format!("{}:{line}: {e}", private_file.display())))?;
        let signer = signer_from(algorithm, &public, &fields, &private_text)
            .map_err(|e| KeyError(format!("{}: {e}", private_file.display())))?;
        Ok(SigningKey {
            tag: key_tag(&dnskey_rdata(flags, alg, &public)),
            owner,
            flags,
            algorithm,
            public,
            file: public_file,
            signer,
        })
    }
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| {
        let text = e.to_string();
        let text = match text.rfind(" (os error ") {
            Some(i) => text[..i].to_lowercase(),
            None => text,
        };
        KeyError(format!("open {}: {text}", path.display()))
    })
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The DNSKEY RDATA of a key.
pub fn dnskey_rdata(flags: u16, alg: u8, public: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + public.len());
    out.extend_from_slice(&flags.to_be_bytes());
    out.push(3);
    out.push(alg);
    out.extend_from_slice(public);
    out
}

/// RFC 4034 Appendix B's key tag of a DNSKEY RDATA.
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 {
            u32::from(*b)
        } else {
            u32::from(*b) << 8
        };
    }
    ac += (ac >> 16) & 0xFFFF;
    (ac & 0xFFFF) as u16
}

/// Reads the DNSKEY record of a `.key` file: `owner [TTL] [IN] DNSKEY flags 3 alg base64…`
/// after `;` comments. Errors carry the 1-based line.
/// A `.key` file's DNSKEY: owner, flags, algorithm number, public key.
type DnskeyLine = (Name, u16, u8, Vec<u8>);

fn parse_dnskey_file(text: &str) -> Result<DnskeyLine, (usize, String)> {
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let line_no = i + 1;
        let toks: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = toks.iter().position(|t| t.eq_ignore_ascii_case("DNSKEY")) else {
            return Err((line_no, "no DNSKEY record found".into()));
        };
        let owner = Name::from_ascii(toks[0])
            .ok()
            .filter(|_| at >= 1)
            .ok_or_else(|| (line_no, format!("bad owner name {:?}", toks[0])))?;
        if !owner.is_fqdn() {
            return Err((line_no, format!("owner {:?} is not absolute", toks[0])));
        }
        let rest = &toks[at + 1..];
        if rest.len() < 4 {
            return Err((
                line_no,
                "DNSKEY needs flags, protocol, algorithm and key".into(),
            ));
        }
        let flags: u16 = rest[0]
            .parse()
            .map_err(|_| (line_no, format!("bad flags {:?}", rest[0])))?;
        if rest[1] != "3" {
            return Err((line_no, format!("protocol {} is not 3", rest[1])));
        }
        let alg: u8 = rest[2]
            .parse()
            .map_err(|_| (line_no, format!("bad algorithm {:?}", rest[2])))?;
        let public = B64
            .decode(rest[3..].concat())
            .map_err(|_| (line_no, "the public key is not base64".to_string()))?;
        if flags & FLAG_ZONE == 0 {
            return Err((line_no, "not a zone key (flags without bit 7)".into()));
        }
        return Ok((owner.to_lowercase(), flags, alg, public));
    }
    Err((1, "no DNSKEY record found".into()))
}

/// The `Field: value` lines of a `.private` file (name → value), checking the format line.
fn parse_private(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut fields = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err((i + 1, format!("not a 'Field: value' line: {line:?}")));
        };
        fields.push((k.trim().to_string(), v.trim().to_string()));
    }
    match fields.first() {
        Some((k, v)) if k == "Private-key-format" && v.starts_with("v1.") => Ok(fields),
        Some((k, _)) if k == "Private-key-format" => Err((1, "unknown private key format".into())),
        _ => Err((
            1,
            "not a BIND private key file (no Private-key-format line)".into(),
        )),
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Result<Vec<u8>, String> {
    let v: &'a str = fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| format!("missing field {name}"))?;
    B64.decode(v.split_whitespace().collect::<String>())
        .map_err(|_| format!("field {name} is not base64"))
}

fn signer_from(
    alg: Algorithm,
    public: &[u8],
    fields: &[(String, String)],
    _text: &str,
) -> Result<Signer, String> {
    if let Some((_, a)) = fields.iter().find(|(k, _)| k == "Algorithm") {
        let n: Option<u8> = a.split_whitespace().next().and_then(|n| n.parse().ok());
        if n != Some(alg.number()) {
            return Err(format!(
                "algorithm {a:?} does not match the public key's {}",
                alg.number()
            ));
        }
    }
    let rng = SystemRandom::new();
    match alg {
        Algorithm::EcdsaP256Sha256 => {
            let d = field(fields, "PrivateKey")?;
            if public.len() != 64 {
                return Err("an ECDSA P-256 public key has 64 bytes".into());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(public);
            EcdsaKeyPair::from_private_key_and_public_key(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &d,
                &point,
                &rng,
            )
            .map(Signer::Ecdsa)
            .map_err(|e| format!("the private key does not match the public key ({e})"))
        }
        Algorithm::Ed25519 => {
            let seed = field(fields, "PrivateKey")?;
            Ed25519KeyPair::from_seed_and_public_key(&seed, public)
                .map(Signer::Ed25519)
                .map_err(|e| format!("the private key does not match the public key ({e})"))
        }
        Algorithm::RsaSha256 => {
            let n = field(fields, "Modulus")?;
            let e = field(fields, "PublicExponent")?;
            let comps = ring::rsa::KeyPairComponents {
                public_key: ring::rsa::PublicKeyComponents { n: &n, e: &e },
                d: field(fields, "PrivateExponent")?,
                p: field(fields, "Prime1")?,
                q: field(fields, "Prime2")?,
                dP: field(fields, "Exponent1")?,
                dQ: field(fields, "Exponent2")?,
                qInv: field(fields, "Coefficient")?,
            };
            // The DNSKEY's public key (RFC 3110): exponent length, exponent, modulus.
            let mut expect = Vec::new();
            if e.len() < 256 {
                expect.push(e.len() as u8);
            } else {
                expect.push(0);
                expect.extend_from_slice(&(e.len() as u16).to_be_bytes());
            }
            expect.extend_from_slice(&e);
            expect.extend_from_slice(&n);
            if expect != public {
                return Err("the private key does not match the public key".into());
            }
            RsaKeyPair::from_components(&comps)
                .map(Signer::Rsa)
                .map_err(|e| format!("unusable RSA key ({e}; 2048 to 4096 bits are supported)"))
        }
    }
}

/// A name in uncompressed, lower-case wire form.
pub fn name_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.to_lowercase().iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// A record's RDATA in DNSSEC canonical form (RFC 4034 §6.2, RFC 6840 §5.1): names uncompressed,
/// lower case in the types that list them.
pub fn canonical_rdata(rdata: &RData) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_canonical_form(true);
    // Emitting into a Vec cannot fail short of allocation failure; an RDATA that does not
    // encode gives an empty signature input (and a signature that will not validate).
    let _ = rdata.emit(&mut enc);
    buf
}

/// Labels of `owner` as RRSIG's Labels field counts them (no root, no leading `*`: hickory's
/// `num_labels` already leaves it out).
fn rrsig_labels(owner: &Name) -> u8 {
    owner.num_labels()
}

/// The validity of a signature made now: RFC 4034 serial-number times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub inception: u32,
    pub expiration: u32,
}

/// One RRset to sign: its owner, type, class, TTL and records (all of that owner and type).
pub struct RRset<'a> {
    pub owner: &'a Name,
    pub rtype: RecordType,
    pub class: DNSClass,
    pub ttl: u32,
    pub rdatas: Vec<Vec<u8>>,
}

impl<'a> RRset<'a> {
    /// The RRset of `records` (same owner and type), its RDATA in canonical form and order.
    pub fn of(records: &[&'a Record]) -> Option<RRset<'a>> {
        let first = records.first()?;
        let mut rdatas: Vec<Vec<u8>> = records.iter().map(|r| canonical_rdata(&r.data)).collect();
        rdatas.sort();
        rdatas.dedup();
        Some(RRset {
            owner: &first.name,
            rtype: first.record_type(),
            class: first.dns_class,
            ttl: records.iter().map(|r| r.ttl).min().unwrap_or(first.ttl),
            rdatas,
        })
    }
}

/// The RRSIG record of `set` by `key` for the zone `signer`.
pub fn sign(
    key: &SigningKey,
    signer: &Name,
    set: &RRset<'_>,
    validity: Validity,
) -> Result<Record, KeyError> {
    let owner = set.owner.to_lowercase();
    let owner_wire = name_wire(&owner);
    let mut rdata = Vec::with_capacity(18 + signer.len() + 2 + 260);
    rdata.extend_from_slice(&u16::from(set.rtype).to_be_bytes());
    rdata.push(key.algorithm.number());
    rdata.push(rrsig_labels(&owner));
    rdata.extend_from_slice(&set.ttl.to_be_bytes());
    rdata.extend_from_slice(&validity.expiration.to_be_bytes());
    rdata.extend_from_slice(&validity.inception.to_be_bytes());
    rdata.extend_from_slice(&key.tag.to_be_bytes());
    rdata.extend_from_slice(&name_wire(signer));
    let mut data = rdata.clone();
    let class = u16::from(set.class).to_be_bytes();
    for rd in &set.rdatas {
        data.extend_from_slice(&owner_wire);
        data.extend_from_slice(&u16::from(set.rtype).to_be_bytes());
        data.extend_from_slice(&class);
        data.extend_from_slice(&set.ttl.to_be_bytes());
        data.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        data.extend_from_slice(rd);
    }
    let sig = key.sign_bytes(&data)?;
    rdata.extend_from_slice(&sig);
    let mut rec = Record::from_rdata(set.owner.clone(), set.ttl, opaque(RecordType::RRSIG, rdata));
    rec.dns_class = set.class;
    Ok(rec)
}

/// An RDATA this build carries as bytes (the DNSSEC types).
pub fn opaque(t: RecordType, bytes: Vec<u8>) -> RData {
    RData::Unknown {
        code: t,
        rdata: NULL::with(bytes),
    }
}

/// The type bitmap field of an NSEC record (RFC 4034 §4.1.2) listing `types`.
pub fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < types.len() {
        let window = (types[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < types.len() && (types[i] >> 8) as u8 == window {
            let low = (types[i] & 0xFF) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

/// The NSEC record at `owner` whose next name is its immediate successor (`\000.owner`, RFC
/// 4470 / RFC 9824), listing `types`.
pub fn nsec(owner: &Name, ttl: u32, types: &[u16]) -> Record {
    let mut rdata = successor_wire(owner);
    rdata.extend_from_slice(&type_bitmap(types));
    Record::from_rdata(owner.clone(), ttl, opaque(RecordType::NSEC, rdata))
}

/// `\000.owner` in lower-case wire form (the root's successor is `\000.`). A name too long
/// for another label gets `\000` appended to its first label instead (the next name in
/// canonical order among names of that length), or, with a full first label, its own name
/// (an NSEC that covers nothing else).
fn successor_wire(owner: &Name) -> Vec<u8> {
    let wire = name_wire(owner);
    if wire.len() + 2 <= 255 {
        let mut out = vec![1, 0];
        out.extend_from_slice(&wire);
        return out;
    }
    let first = wire[0] as usize;
    if wire.len() < 255 && first < 63 {
        let mut out = Vec::with_capacity(wire.len() + 1);
        out.push(wire[0] + 1);
        out.extend_from_slice(&wire[1..=first]);
        out.push(0);
        out.extend_from_slice(&wire[first + 1..]);
        return out;
    }
    wire
}

#[cfg(test)]
mod tests;
