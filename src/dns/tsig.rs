//! TSIG (RFC 8945): shared-secret keys, and the signing and verification of DNS messages in
//! wire form.
//!
//! A TSIG MAC covers the exact bytes of a message, so everything here works on wire bytes: a
//! request is verified from the bytes as received ([`verify`]), and a reply is signed after it
//! was encoded for the client ([`Signer::sign`]), by appending the TSIG record. A verified
//! request gives the [`Signer`] for its replies: the first reply covers the request's MAC, the
//! reply and every TSIG variable; each later message of a multi-message reply (a zone transfer)
//! covers the prior message's MAC, the message and the timers only (§5.3.1).
//!
//! Failures are answered as §5.3.2 and §5.4 say: a malformed TSIG record is FORMERR; an unknown
//! key (BADKEY) or a wrong MAC (BADSIG) is NOTAUTH with an unsigned TSIG record carrying the
//! error; a time outside the fudge (BADTIME) or a MAC truncated below the local minimum
//! (BADTRUNC) is NOTAUTH, signed, BADTIME with the server's time in Other Data.
//!
//! HMACs come from `ring` (SHA-1, SHA-256, SHA-384, SHA-512), HMAC-SHA224 from `sha2` (RFC 2104
//! over `Sha224`). HMAC-MD5 is not supported (it would need a crate exdns does not have): a
//! request using it gets BADKEY. Secrets never appear in `Debug` output, logs or errors.

use std::fmt;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use crate::dns::wire::{self, HEADER};

/// The TSIG record type.
pub const T_TSIG: u16 = 250;
/// Class ANY, the class of every TSIG record.
const CLASS_ANY: u16 = 255;
/// The fudge exdns signs with (RFC 8945 §10 recommends 300 seconds).
pub const FUDGE: u16 = 300;

/// TSIG error codes (RFC 8945 §3, in the TSIG record's Error field and the extended rcode).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;
pub const BADTRUNC: u16 = 22;

/// A TSIG algorithm exdns implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HmacSha1,
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::HmacSha1,
        Algorithm::HmacSha224,
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ];

    /// The algorithm's name as BIND's key files and `dig -y` write it (`hmac-sha256`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha224 => "hmac-sha224",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm named `name` (`hmac-sha256` or `hmac-sha256.`, any case).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        let n = name.strip_suffix('.').unwrap_or(name);
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(n))
    }

    /// The algorithm whose name in wire form (lower case) is `wire`.
    fn from_wire(wire: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.wire_name() == wire)
    }

    /// The algorithm's name in wire form (`\x0bhmac-sha256\x00`).
    fn wire_name(&self) -> Vec<u8> {
        let s = self.as_str();
        let mut v = Vec::with_capacity(s.len() + 2);
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        v
    }

    /// The length of the full MAC.
    pub fn output_len(&self) -> usize {
        match self {
            Algorithm::HmacSha1 => 20,
            Algorithm::HmacSha224 => 28,
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha384 => 48,
            Algorithm::HmacSha512 => 64,
        }
    }

    /// The shortest truncated MAC RFC 8945 §5.2.2.1 allows: the larger of 10 octets and half
    /// the hash's length.
    pub fn min_mac_len(&self) -> usize {
        10.max(self.output_len().div_ceil(2))
    }

    /// The HMAC of the concatenation of `parts` with `secret`.
    fn mac(&self, secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        use ring::hmac;
        let alg = match self {
            Algorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::HmacSha224 => return hmac_sha224(secret, parts),
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        };
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(alg, secret));
        for p in parts {
            ctx.update(p);
        }
        ctx.sign().as_ref().to_vec()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HMAC-SHA224 (RFC 2104; `ring` has no SHA-224).
fn hmac_sha224(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use sha2::{Digest, Sha224};
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if secret.len() > BLOCK {
        k[..28].copy_from_slice(&Sha224::digest(secret));
    } else {
        k[..secret.len()].copy_from_slice(secret);
    }
    let mut inner = Sha224::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha224::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// Why a key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key name {0:?}")]
    Name(String),
    /// The secret is not base64 (the secret itself is never shown).
    #[error("invalid secret for key {0:?}: not base64")]
    Secret(String),
    #[error("unknown algorithm {algorithm:?} for key {key:?}")]
    Algorithm { key: String, algorithm: String },
}

/// A TSIG key: a name, the algorithm it is restricted to (`None`: any algorithm exdns
/// implements, as CoreDNS's keys, which have no algorithm) and the shared secret. Its `Debug`
/// output never shows the secret.
#[derive(Clone)]
pub struct Key {
    /// Lower-case and absolute (`transfer.example.`).
    name: String,
    /// The name in wire form, lower case.
    wire: Vec<u8>,
    algorithm: Option<Algorithm>,
    secret: Arc<[u8]>,
}

impl Key {
    /// A key named `name` whose secret is `secret` in base64 (as in `dig -y` and BIND's key
    /// files).
    pub fn new(name: &str, algorithm: Option<Algorithm>, secret: &str) -> Result<Key, KeyError> {
        use base64::Engine;
        let parsed = Name::from_ascii(name)
            .ok()
            .filter(|_| !name.is_empty())
            .ok_or_else(|| KeyError::Name(name.to_string()))?;
        let lower = parsed.to_lowercase();
        let mut text = lower.to_ascii();
        if !text.ends_with('.') {
            text.push('.');
        }
        let mut wire = Vec::with_capacity(lower.len() + 1);
        for label in lower.iter() {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|_| KeyError::Secret(text.clone()))?;
        Ok(Key {
            name: text,
            wire,
            algorithm,
            secret: Arc::from(secret),
        })
    }

    /// The key's name, lower-case and absolute.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The algorithm the key is restricted to, if any.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.algorithm
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The keys a server knows, looked up by name.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Arc<Key>>,
    /// The shortest truncated MAC accepted (BADTRUNC below it); `None`: the shortest RFC 8945
    /// allows for the algorithm.
    min_mac_len: Option<usize>,
}

impl Keyring {
    pub fn new(keys: Vec<Key>) -> Keyring {
        Keyring {
            keys: keys.into_iter().map(Arc::new).collect(),
            min_mac_len: None,
        }
    }

    /// Refuses (BADTRUNC) MACs shorter than `len` octets, or than the algorithm's full length
    /// when that is shorter (local policy, RFC 8945 §5.2.4).
    pub fn with_min_mac_len(mut self, len: usize) -> Keyring {
        self.min_mac_len = Some(len);
        self
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key named `name` (any case, absolute or not).
    pub fn get(&self, name: &str) -> Option<&Key> {
        let mut n = name.to_ascii_lowercase();
        if !n.ends_with('.') {
            n.push('.');
        }
        self.keys.iter().find(|k| k.name == n).map(|k| &**k)
    }

    fn by_wire(&self, wire: &[u8]) -> Option<&Arc<Key>> {
        self.keys.iter().find(|k| k.wire == wire)
    }
}

/// One key of a BIND-style key file: its name (normalized), algorithm if given, and secret
/// (base64).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFileEntry {
    pub name: String,
    pub algorithm: Option<String>,
    pub secret: String,
}

impl fmt::Debug for KeyFileEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileEntry")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Parses a `named.conf`-style key file as CoreDNS's tsig plugin does (line by line, its error
/// wording): any number of
///
/// ```text
/// key "name." {
///     algorithm hmac-sha256;
///     secret "base64";
/// };
/// ```
///
/// A name is normalized (lower case, absolute); a name defined twice is an error.
pub fn parse_key_file(text: &str) -> Result<Vec<KeyFileEntry>, String> {
    let mut out: Vec<KeyFileEntry> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields[0] != "key" {
            return Err(unexpected(fields[0]));
        }
        if fields.len() < 2 {
            return Err(format!("expected key name {line:?}"));
        }
        let raw = fields[1].trim_matches(|c| c == '"' || c == '{');
        if raw.is_empty() {
            return Err(format!("expected key name {line:?}"));
        }
        let mut name = raw.to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        if out.iter().any(|e| e.name == name) {
            return Err(format!("key {name:?} redefined"));
        }
        let mut secret = None;
        let mut algorithm = None;
        for line in lines.by_ref() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(first) = fields.first() else {
                continue;
            };
            match *first {
                "algorithm" => {
                    if let Some(a) = fields.get(1) {
                        algorithm = Some(a.trim_matches(|c| c == '"' || c == ';').to_string());
                    }
                }
                "secret" => {
                    // The line holds the secret: it is never quoted back in an error.
                    let s = fields
                        .get(1)
                        .map(|s| s.trim_matches(|c| c == '"' || c == ';'))
                        .unwrap_or("");
                    if s.is_empty() {
                        return Err(format!("expected secret key for key {name:?}"));
                    }
                    secret = Some(s.to_string());
                }
                "}" | "};" => break,
                other => return Err(unexpected(other)),
            }
        }
        let Some(secret) = secret else {
            return Err(format!("expected secret for key {name:?}"));
        };
        out.push(KeyFileEntry {
            name,
            algorithm,
            secret,
        });
    }
    Ok(out)
}

/// CoreDNS's `unexpected token "T"`, unless the token could be a secret (anything but a
/// plain keyword: a quoted or base64 string), which is never quoted back.
fn unexpected(token: &str) -> String {
    let keyword = token.len() <= 32
        && token
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_' | b'{' | b'}' | b';'));
    if keyword {
        format!("unexpected token {token:?}")
    } else {
        "unexpected token (not shown: it may be a secret)".to_string()
    }
}

/// A TSIG failure (RFC 8945 §5.2), as the TSIG record's Error field or FORMERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigError {
    /// A malformed TSIG record, not the last record, or a MAC of a length RFC 8945 §5.2.2.1
    /// forbids: answered FORMERR without TSIG.
    FormErr,
    BadSig,
    BadKey,
    BadTime,
    BadTrunc,
}

impl TsigError {
    /// The TSIG Error field's value (0 for FORMERR, which has no TSIG record).
    pub fn code(&self) -> u16 {
        match self {
            TsigError::FormErr => 0,
            TsigError::BadSig => BADSIG,
            TsigError::BadKey => BADKEY,
            TsigError::BadTime => BADTIME,
            TsigError::BadTrunc => BADTRUNC,
        }
    }

    /// The reply's rcode: FORMERR, or NOTAUTH for the TSIG errors (§5.2).
    pub fn rcode(&self) -> ResponseCode {
        match self {
            TsigError::FormErr => ResponseCode::FormErr,
            _ => ResponseCode::NotAuth,
        }
    }
}

impl fmt::Display for TsigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TsigError::FormErr => "FORMERR",
            TsigError::BadSig => "BADSIG",
            TsigError::BadKey => "BADKEY",
            TsigError::BadTime => "BADTIME",
            TsigError::BadTrunc => "BADTRUNC",
        })
    }
}

/// A TSIG record found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigRecord {
    /// Offset of the record (its owner name) in the message.
    pub start: usize,
    /// The key's name, wire form, lower case.
    pub key_name: Vec<u8>,
    /// The algorithm's name, wire form, lower case.
    pub algorithm: Vec<u8>,
    /// Seconds since the epoch (48 bits).
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

impl TsigRecord {
    /// The key's name as text (`key.example.`).
    pub fn key_name_text(&self) -> String {
        name_text(&self.key_name)
    }
}

/// A wire name (uncompressed) as lower-case text.
fn name_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        let label = wire.get(at + 1..at + 1 + len as usize).unwrap_or(&[]);
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
        at += 1 + len as usize;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// The name at `pos` in canonical form (uncompressed, lower case), following pointers
/// backwards only, at most [`wire::MAX_POINTERS`] of them. `None` when malformed.
fn canonical_name(buf: &[u8], pos: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    let mut at = pos;
    let mut hops = 0;
    loop {
        let len = *buf.get(at)? as usize;
        match len & 0xc0 {
            0x00 => {
                out.push(len as u8);
                if len == 0 {
                    return (out.len() <= 255).then_some(out);
                }
                let label = buf.get(at + 1..at + 1 + len)?;
                out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
                if out.len() > 255 {
                    return None;
                }
                at += 1 + len;
            }
            0xc0 => {
                let target = ((len & 0x3f) << 8) | *buf.get(at + 1)? as usize;
                if target >= at {
                    return None;
                }
                hops += 1;
                if hops > wire::MAX_POINTERS {
                    return None;
                }
                at = target;
            }
            _ => return None,
        }
    }
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Finds the TSIG record of `buf`: `Ok(None)` when the message has none, `Err(FormErr)` when
/// the message is malformed, a TSIG record is not the last record of the additional section,
/// or the TSIG record itself is malformed (class not ANY, TTL not 0, RDATA not exactly its
/// fields). Never panics.
pub fn find_tsig(buf: &[u8]) -> Result<Option<TsigRecord>, TsigError> {
    const E: TsigError = TsigError::FormErr;
    if buf.len() < HEADER {
        return Err(E);
    }
    let qd = u16_at(buf, 4).ok_or(E)? as usize;
    let an = u16_at(buf, 6).ok_or(E)? as usize;
    let ns = u16_at(buf, 8).ok_or(E)? as usize;
    let ar = u16_at(buf, 10).ok_or(E)? as usize;
    let mut at = HEADER;
    for _ in 0..qd {
        at = wire::check_name(buf, at).ok_or(E)? + 4;
        if at > buf.len() {
            return Err(E);
        }
    }
    let total = an + ns + ar;
    let mut found = None;
    for i in 0..total {
        let start = at;
        let name_end = wire::check_name(buf, at).ok_or(E)?;
        let rtype = u16_at(buf, name_end).ok_or(E)?;
        let rdlen = u16_at(buf, name_end + 8).ok_or(E)? as usize;
        let rdata = name_end + 10;
        let end = rdata + rdlen;
        if end > buf.len() {
            return Err(E);
        }
        if rtype == T_TSIG {
            if i + 1 != total || ar == 0 {
                return Err(E);
            }
            found = Some((start, name_end, rdata, end));
        }
        at = end;
    }
    let Some((start, name_end, rdata, end)) = found else {
        return Ok(None);
    };
    if end != buf.len() {
        // Bytes after the TSIG record would not be covered by its MAC.
        return Err(E);
    }
    if u16_at(buf, name_end + 2) != Some(CLASS_ANY) || buf[name_end + 4..name_end + 8] != [0; 4] {
        return Err(E);
    }
    let key_name = canonical_name(buf, start).ok_or(E)?;
    let algorithm = canonical_name(buf, rdata).ok_or(E)?;
    let mut p = wire::check_name(buf, rdata).ok_or(E)?;
    let field = |p: usize, n: usize| -> Result<&[u8], TsigError> {
        if p + n > end {
            return Err(E);
        }
        Ok(&buf[p..p + n])
    };
    let t = field(p, 6)?;
    let time_signed = t.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    p += 6;
    let fudge = u16_at(field(p, 2)?, 0).ok_or(E)?;
    p += 2;
    let mac_len = u16_at(field(p, 2)?, 0).ok_or(E)? as usize;
    p += 2;
    let mac = field(p, mac_len)?.to_vec();
    p += mac_len;
    let original_id = u16_at(field(p, 2)?, 0).ok_or(E)?;
    p += 2;
    let error = u16_at(field(p, 2)?, 0).ok_or(E)?;
    p += 2;
    let other_len = u16_at(field(p, 2)?, 0).ok_or(E)? as usize;
    p += 2;
    let other = field(p, other_len)?.to_vec();
    p += other_len;
    if p != end {
        return Err(E);
    }
    Ok(Some(TsigRecord {
        start,
        key_name,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    }))
}

/// The TSIG variables of RFC 8945 §4.3.3: owner, class, TTL, algorithm, time, fudge, error,
/// other data.
fn variables(
    key_name: &[u8],
    algorithm: &[u8],
    time_signed: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(key_name.len() + algorithm.len() + 24 + other.len());
    v.extend_from_slice(key_name);
    v.extend_from_slice(&CLASS_ANY.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(algorithm);
    v.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    v.extend_from_slice(&fudge.to_be_bytes());
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&(other.len() as u16).to_be_bytes());
    v.extend_from_slice(other);
    v
}

/// The timers of RFC 8945 §4.3.3: time signed and fudge.
fn timers(time_signed: u64, fudge: u16) -> [u8; 8] {
    let mut t = [0u8; 8];
    t[..6].copy_from_slice(&time_signed.to_be_bytes()[2..]);
    t[6..].copy_from_slice(&fudge.to_be_bytes());
    t
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The message `buf[..tsig_start]` as its MAC covers it: ARCOUNT less the TSIG record, ID
/// the original ID (RFC 8945 §4.3.2 / §4.3.3).
fn header_for_mac(buf: &[u8], original_id: u16) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h.copy_from_slice(&buf[..HEADER]);
    h[..2].copy_from_slice(&original_id.to_be_bytes());
    let ar = u16::from_be_bytes([h[10], h[11]]).saturating_sub(1);
    h[10..12].copy_from_slice(&ar.to_be_bytes());
    h
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What [`verify`] made of a request.
#[derive(Debug)]
pub enum Verified {
    /// The request has no TSIG record.
    Unsigned,
    /// The request is signed with a known key and its MAC and time are good: sign the reply
    /// (or every message of a multi-message reply) with this.
    Valid(Signer),
    /// The request fails: answer with [`Rejection::rcode`], its TSIG added by [`Rejection::sign`].
    Rejected(Rejection),
}

/// A request that failed verification.
#[derive(Debug)]
pub struct Rejection {
    pub error: TsigError,
    /// The key's name in the request, as text (never the secret).
    pub key_name: String,
    /// Signs (BADTIME, BADTRUNC) or tags (BADKEY, BADSIG) the error reply; `None` for FORMERR.
    signer: Option<Signer>,
}

impl Rejection {
    /// The rcode of the error reply.
    pub fn rcode(&self) -> ResponseCode {
        self.error.rcode()
    }

    /// Appends the TSIG record of the error reply to `reply` (an encoded reply with
    /// [`Rejection::rcode`]): unsigned with the error for BADKEY and BADSIG, signed for
    /// BADTIME (the server's time in Other Data) and BADTRUNC, nothing for FORMERR.
    pub fn sign(self, reply: &mut Vec<u8>) {
        if let Some(mut s) = self.signer {
            s.sign(reply);
        }
    }
}

/// Verifies the request `buf` (as received) against `keys` at time `now` (seconds since the
/// epoch), in RFC 8945 §5.2's order: the record's form (FORMERR), the key (BADKEY), the MAC's
/// length (FORMERR, §5.2.2.1) and value (BADSIG), the time (BADTIME), the truncation policy
/// (BADTRUNC). Never panics.
pub fn verify(keys: &Keyring, buf: &[u8], now: u64) -> Verified {
    let rec = match find_tsig(buf) {
        Ok(Some(r)) => r,
        Ok(None) => return Verified::Unsigned,
        Err(error) => {
            return Verified::Rejected(Rejection {
                error,
                key_name: String::new(),
                signer: None,
            });
        }
    };
    let key_name = rec.key_name_text();
    let reject = |error: TsigError, signer: Option<Signer>| {
        Verified::Rejected(Rejection {
            error,
            key_name: key_name.clone(),
            signer,
        })
    };
    let algorithm = Algorithm::from_wire(&rec.algorithm);
    let key = keys.by_wire(&rec.key_name);
    let (key, algorithm) = match (key, algorithm) {
        (Some(k), Some(a)) if k.algorithm.is_none_or(|ka| ka == a) => (k.clone(), a),
        _ => {
            // §5.2.1: an unsigned error reply with the request's key and algorithm names.
            let s = Signer::unsigned(&rec, BADKEY, now);
            return reject(TsigError::BadKey, Some(s));
        }
    };
    let full = algorithm.output_len();
    if rec.mac.len() > full || rec.mac.len() < algorithm.min_mac_len() {
        return reject(TsigError::FormErr, None);
    }
    let header = header_for_mac(buf, rec.original_id);
    let vars = variables(
        &rec.key_name,
        &rec.algorithm,
        rec.time_signed,
        rec.fudge,
        rec.error,
        &rec.other,
    );
    let mac = algorithm.mac(&key.secret, &[&header, &buf[HEADER..rec.start], &vars]);
    if !constant_time_eq(&mac[..rec.mac.len()], &rec.mac) {
        let s = Signer::unsigned(&rec, BADSIG, now);
        return reject(TsigError::BadSig, Some(s));
    }
    let signer = Signer {
        key: Some(key),
        algorithm: Some(algorithm),
        key_name: rec.key_name.clone(),
        algorithm_name: rec.algorithm.clone(),
        prior_mac: rec.mac.clone(),
        error: 0,
        first: true,
        fixed_time: None,
        other: Vec::new(),
    };
    if now.abs_diff(rec.time_signed) > u64::from(rec.fudge) {
        // §5.2.3: signed, with the request's time and the server's in Other Data.
        let mut s = signer;
        s.error = BADTIME;
        s.fixed_time = Some(rec.time_signed);
        s.other = now.to_be_bytes()[2..].to_vec();
        return reject(TsigError::BadTime, Some(s));
    }
    let min = keys.min_mac_len.map_or(0, |m| m.min(full));
    if rec.mac.len() < min {
        let mut s = signer;
        s.error = BADTRUNC;
        return reject(TsigError::BadTrunc, Some(s));
    }
    Verified::Valid(signer)
}

/// Signs the replies to one verified request, in order: the first covers the request's MAC
/// and every TSIG variable, each later one the prior MAC and the timers (RFC 8945 §5.3.1).
/// Owns everything it needs (it can move into the task that streams a zone transfer).
pub struct Signer {
    /// `None`: the error TSIG records of BADKEY and BADSIG, with an empty MAC.
    key: Option<Arc<Key>>,
    algorithm: Option<Algorithm>,
    key_name: Vec<u8>,
    algorithm_name: Vec<u8>,
    /// The request's MAC, then the MAC of the last message signed.
    prior_mac: Vec<u8>,
    error: u16,
    first: bool,
    /// The Time Signed of every message (BADTIME: the request's), else the time of signing.
    fixed_time: Option<u64>,
    other: Vec<u8>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.key)
            .field("algorithm", &self.algorithm)
            .field("key_name", &name_text(&self.key_name))
            .field("error", &self.error)
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer of an error reply that cannot be signed (BADKEY, BADSIG).
    fn unsigned(rec: &TsigRecord, error: u16, now: u64) -> Signer {
        Signer {
            key: None,
            algorithm: None,
            key_name: rec.key_name.clone(),
            algorithm_name: rec.algorithm.clone(),
            prior_mac: Vec::new(),
            error,
            first: true,
            fixed_time: Some(now),
            other: Vec::new(),
        }
    }

    /// The key's name, as text.
    pub fn key_name(&self) -> String {
        name_text(&self.key_name)
    }

    /// The algorithm the request was signed with (`None` for an unsigned error).
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.algorithm
    }

    /// Signs the next message of the reply, at the current time: appends the TSIG record and
    /// increments ARCOUNT. `msg` is a complete message (at least a header) whose ID is the
    /// reply's; anything shorter is left alone.
    pub fn sign(&mut self, msg: &mut Vec<u8>) {
        self.sign_at(msg, unix_now())
    }

    /// [`Signer::sign`] at time `now` (seconds since the epoch).
    pub fn sign_at(&mut self, msg: &mut Vec<u8>, now: u64) {
        if msg.len() < HEADER {
            return;
        }
        let ar = u16::from_be_bytes([msg[10], msg[11]]);
        let Some(new_ar) = ar.checked_add(1) else {
            return;
        };
        let time = self.fixed_time.unwrap_or(now);
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let mac = match (&self.key, self.algorithm) {
            (Some(key), Some(alg)) => {
                let prior_len = (self.prior_mac.len() as u16).to_be_bytes();
                let mac = if self.first {
                    let vars = variables(
                        &self.key_name,
                        &self.algorithm_name,
                        time,
                        FUDGE,
                        self.error,
                        &self.other,
                    );
                    alg.mac(&key.secret, &[&prior_len, &self.prior_mac, msg, &vars])
                } else {
                    let t = timers(time, FUDGE);
                    alg.mac(&key.secret, &[&prior_len, &self.prior_mac, msg, &t])
                };
                self.prior_mac = mac.clone();
                mac
            }
            _ => Vec::new(),
        };
        self.first = false;
        append_tsig(
            msg,
            &self.key_name,
            &self.algorithm_name,
            time,
            &mac,
            id,
            self.error,
            &self.other,
        );
        msg[10..12].copy_from_slice(&new_ar.to_be_bytes());
    }

    /// The size of the TSIG record [`Signer::sign`] appends (for the room a reply keeps).
    pub fn record_len(&self) -> usize {
        let mac = self.algorithm.map_or(0, |a| a.output_len());
        self.key_name.len() + 10 + self.algorithm_name.len() + 16 + mac + self.other.len()
    }
}

/// Appends a TSIG record (uncompressed names) to `msg`; ARCOUNT is the caller's.
#[allow(clippy::too_many_arguments)]
fn append_tsig(
    msg: &mut Vec<u8>,
    key_name: &[u8],
    algorithm: &[u8],
    time: u64,
    mac: &[u8],
    original_id: u16,
    error: u16,
    other: &[u8],
) {
    let rdlen = algorithm.len() + 16 + mac.len() + other.len();
    msg.reserve(key_name.len() + 10 + rdlen);
    msg.extend_from_slice(key_name);
    msg.extend_from_slice(&T_TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdlen as u16).to_be_bytes());
    msg.extend_from_slice(algorithm);
    msg.extend_from_slice(&time.to_be_bytes()[2..]);
    msg.extend_from_slice(&FUDGE.to_be_bytes());
    msg.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&original_id.to_be_bytes());
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&(other.len() as u16).to_be_bytes());
    msg.extend_from_slice(other);
}

/// The client side: signs a request and verifies the replies to it, message by message
/// (tests, and plugins that will send signed requests: a secondary's transfers).
#[derive(Debug)]
pub struct Client {
    key: Arc<Key>,
    algorithm: Algorithm,
    /// The request's MAC, then the last verified message's.
    prior_mac: Vec<u8>,
    first: bool,
}

impl Client {
    /// Signs the request `msg` (a complete message; anything shorter than a header is left
    /// unsigned) with `key` and `algorithm` at time `now`.
    pub fn sign_request(key: &Key, algorithm: Algorithm, msg: &mut Vec<u8>, now: u64) -> Client {
        let alg_wire = algorithm.wire_name();
        if msg.len() < HEADER {
            return Client {
                key: Arc::new(key.clone()),
                algorithm,
                prior_mac: Vec::new(),
                first: true,
            };
        }
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let vars = variables(&key.wire, &alg_wire, now, FUDGE, 0, &[]);
        let mac = algorithm.mac(&key.secret, &[msg, &vars]);
        append_tsig(msg, &key.wire, &alg_wire, now, &mac, id, 0, &[]);
        let ar = u16::from_be_bytes([msg[10], msg[11]]).wrapping_add(1);
        msg[10..12].copy_from_slice(&ar.to_be_bytes());
        Client {
            key: Arc::new(key.clone()),
            algorithm,
            prior_mac: mac,
            first: true,
        }
    }

    /// Verifies the next reply message: its TSIG record's error (as [`TsigError`]), then its
    /// MAC over the prior MAC, the message and the variables (first message) or timers (later
    /// ones), then its error. Time is not checked. Returns the TSIG record.
    pub fn verify_reply(&mut self, msg: &[u8]) -> Result<TsigRecord, TsigError> {
        let rec = find_tsig(msg)?.ok_or(TsigError::FormErr)?;
        // BADKEY and BADSIG replies are not signed (§5.3.2); the others are checked first.
        match rec.error {
            BADKEY => return Err(TsigError::BadKey),
            BADSIG => return Err(TsigError::BadSig),
            _ => {}
        }
        if rec.key_name != self.key.wire || rec.algorithm != self.algorithm.wire_name() {
            return Err(TsigError::BadKey);
        }
        let header = header_for_mac(msg, rec.original_id);
        let prior_len = (self.prior_mac.len() as u16).to_be_bytes();
        let tail = if self.first {
            variables(
                &rec.key_name,
                &rec.algorithm,
                rec.time_signed,
                rec.fudge,
                rec.error,
                &rec.other,
            )
        } else {
            timers(rec.time_signed, rec.fudge).to_vec()
        };
        let mac = self.algorithm.mac(
            &self.key.secret,
            &[
                &prior_len,
                &self.prior_mac,
                &header,
                &msg[HEADER..rec.start],
                &tail,
            ],
        );
        if rec.mac.len() > mac.len() || !constant_time_eq(&mac[..rec.mac.len()], &rec.mac) {
            return Err(TsigError::BadSig);
        }
        match rec.error {
            0 => {}
            BADTIME => return Err(TsigError::BadTime),
            BADTRUNC => return Err(TsigError::BadTrunc),
            _ => return Err(TsigError::FormErr),
        }
        self.prior_mac = rec.mac.clone();
        self.first = false;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests;
