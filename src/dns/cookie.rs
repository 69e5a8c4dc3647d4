//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018): what a query's COOKIE
//! option is worth, the cookie a reply carries, and writing it into a reply's OPT record.
//!
//! A server cookie is `01 000000 | timestamp (4, big-endian) | hash (8)`, the hash being
//! SipHash-2-4 keyed with a 16-byte secret over the client cookie, the first 8 bytes of the
//! server cookie and the client's address (4 or 16 bytes), in SipHash's little-endian output
//! order. Replicas that share the secret accept each other's cookies. A cookie is valid for an
//! hour after its timestamp and up to 5 minutes before it (RFC 9018 §4.3, RFC 1982 arithmetic);
//! a valid cookie younger than half an hour, made with the active secret, is echoed unchanged
//! (as NSD), so a reply is the same bytes whichever path answers it.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use crate::dns::wire::{self, u16_at};

/// The COOKIE option code.
pub const COOKIE: u16 = 10;
/// What the COOKIE option adds to a reply's OPT record: option header, client and server cookie.
pub const OPTION_SIZE: usize = 4 + 8 + 16;

/// A server secret (RFC 9018: 128 bits).
pub type Secret = [u8; 16];

/// The cookie a reply carries (client cookie and server cookie), and whether the query's server
/// cookie was valid (what `rrl` exempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyCookie {
    pub bytes: [u8; 24],
    pub valid: bool,
}

/// What a query's COOKIE option is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No COOKIE option (or no EDNS): nothing to add.
    None,
    /// The option's length is neither 8 nor 16 to 40: FORMERR (RFC 7873 §5.2.2).
    Malformed,
    /// A server cookie that is not valid, over UDP, where the server enforces cookies:
    /// BADCOOKIE with a fresh cookie (RFC 7873 §5.2.3).
    BadCookie(ReplyCookie),
    /// Answer normally with this cookie.
    Answer(ReplyCookie),
}

/// How long a server cookie is valid after its timestamp, and before it.
const VALID_AFTER: i64 = 3600;
const VALID_BEFORE: i64 = 300;
/// A valid cookie younger than this (made with the active secret) is echoed unchanged.
const REUSE_FOR: i64 = 1800;

/// Where the time comes from.
#[derive(Debug, Clone, Copy)]
enum Clock {
    System,
    Fixed(u32),
}

/// A server's cookie policy: its secrets (the first creates cookies, every one verifies them)
/// and whether a bad server cookie over UDP gets BADCOOKIE. Its `Debug` form never shows a
/// secret.
#[derive(Clone)]
pub struct Cookies {
    secrets: Vec<Secret>,
    badcookie: bool,
    clock: Clock,
}

impl Cookies {
    /// `active` creates and verifies cookies, `staging` only verifies (a secret being rolled in
    /// or out on other replicas). `badcookie`: answer BADCOOKIE to a bad server cookie over UDP.
    pub fn new(active: Secret, staging: &[Secret], badcookie: bool) -> Self {
        let mut secrets = vec![active];
        secrets.extend_from_slice(staging);
        Cookies {
            secrets,
            badcookie,
            clock: Clock::System,
        }
    }

    /// A random secret of this process's own; never BADCOOKIE (other replicas cannot know it).
    pub fn random() -> Self {
        Cookies::new(rand::random(), &[], false)
    }

    /// The same policy with the clock stopped at `unix_time` (tests, and the RFC's vectors).
    pub fn at_time(mut self, unix_time: u32) -> Self {
        self.clock = Clock::Fixed(unix_time);
        self
    }

    fn now(&self) -> u32 {
        match self.clock {
            Clock::Fixed(t) => t,
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as u32),
        }
    }

    /// Judges the COOKIE option in `opt_rdata` (an OPT record's RDATA) of a query from `client`.
    pub fn judge(&self, opt_rdata: &[u8], client: IpAddr, udp: bool) -> Verdict {
        let Some(option) = find_option(opt_rdata, COOKIE) else {
            return Verdict::None;
        };
        if option.len() != 8 && !(16..=40).contains(&option.len()) {
            return Verdict::Malformed;
        }
        let client_cookie: [u8; 8] = option[..8].try_into().expect("8 bytes");
        let now = self.now();
        if option.len() == 24 {
            let sent: [u8; 24] = option.try_into().expect("24 bytes");
            if let Some((secret, age)) = self.check(&sent, client, now) {
                let bytes = if secret == 0 && age <= REUSE_FOR {
                    sent
                } else {
                    self.make(&client_cookie, client, now)
                };
                return Verdict::Answer(ReplyCookie { bytes, valid: true });
            }
        }
        let fresh = ReplyCookie {
            bytes: self.make(&client_cookie, client, now),
            valid: false,
        };
        if option.len() > 8 && udp && self.badcookie {
            Verdict::BadCookie(fresh)
        } else {
            Verdict::Answer(fresh)
        }
    }

    /// Which secret made `cookie` for `client` and how old it is, when it is valid now.
    fn check(&self, cookie: &[u8; 24], client: IpAddr, now: u32) -> Option<(usize, i64)> {
        if cookie[8] != 1 {
            return None;
        }
        let ts = u32::from_be_bytes(cookie[12..16].try_into().expect("4 bytes"));
        // RFC 1982 serial arithmetic, as NSD: the timestamp may wrap.
        let age = i64::from(now.wrapping_sub(ts) as i32);
        if !(-VALID_BEFORE..=VALID_AFTER).contains(&age) {
            return None;
        }
        let head: [u8; 16] = cookie[..16].try_into().expect("16 bytes");
        self.secrets
            .iter()
            .position(|s| hash(s, &head, client) == cookie[16..24])
            .map(|i| (i, age))
    }

    /// A fresh cookie for `client_cookie` from `client` at `now`.
    fn make(&self, client_cookie: &[u8; 8], client: IpAddr, now: u32) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(client_cookie);
        out[8] = 1;
        out[12..16].copy_from_slice(&now.to_be_bytes());
        let head: [u8; 16] = out[..16].try_into().expect("16 bytes");
        out[16..].copy_from_slice(&hash(&self.secrets[0], &head, client));
        out
    }
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookies")
            .field("secrets", &self.secrets.len())
            .field("badcookie", &self.badcookie)
            .finish_non_exhaustive()
    }
}

/// SipHash-2-4 of client cookie | version | reserved | timestamp | client address.
fn hash(secret: &Secret, head: &[u8; 16], client: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(head);
    match client.to_canonical() {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    h.finish().to_le_bytes()
}

/// The first option `code` in an OPT record's RDATA (malformed RDATA: none).
pub fn find_option(rdata: &[u8], code: u16) -> Option<&[u8]> {
    let mut at = 0;
    while at + 4 <= rdata.len() {
        let len = u16_at(rdata, at + 2) as usize;
        let end = at + 4 + len;
        if end > rdata.len() {
            return None;
        }
        if u16_at(rdata, at) == code {
            return Some(&rdata[at + 4..end]);
        }
        at = end;
    }
    None
}

/// Writes `cookie` into the reply `buf`'s OPT record, replacing any COOKIE option in it (an
/// upstream's, or the client's echoed). Nothing happens when the reply has no OPT record or it
/// is not the last record (a reply from elsewhere that exdns did not lay out).
pub fn put_cookie(buf: &mut Vec<u8>, cookie: &ReplyCookie) {
    wire::put_option(buf, COOKIE, &cookie.bytes);
}

/// Parses a secret written as 32 hexadecimal digits.
pub fn parse_secret(hex: &str) -> Option<Secret> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn option(cookie_hex: &str) -> Vec<u8> {
        let c = hex(cookie_hex);
        let mut o = COOKIE.to_be_bytes().to_vec();
        o.extend_from_slice(&(c.len() as u16).to_be_bytes());
        o.extend_from_slice(&c);
        o
    }

    fn secret(s: &str) -> Secret {
        parse_secret(s).unwrap()
    }

    /// RFC 9018 Appendix A, every example: the query's option, the server's secrets and clock,
    /// and the reply's cookie byte for byte.
    #[test]
    fn rfc_9018_appendix_a() {
        struct Case {
            what: &'static str,
            query: &'static str,
            client: &'static str,
            active: &'static str,
            staging: &'static [&'static str],
            now: u32,
            reply: &'static str,
            valid: bool,
        }
        let s1 = "e5e973e5a6b2a43f48e7dc849e37bfcf";
        let cases = [
            Case {
                what: "A.1 a new client cookie",
                query: "2464c4abcf10c957",
                client: "198.51.100.100",
                active: s1,
                staging: &[],
                now: 1559731985,
                reply: "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
                valid: false,
            },
            Case {
                what: "A.2 the same client 40 minutes later: renewed",
                query: "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
                client: "198.51.100.100",
                active: s1,
                staging: &[],
                now: 1559734385,
                reply: "2464c4abcf10c957010000005cf7a871d4a564a1442aca77",
                valid: true,
            },
            Case {
                what: "A.3 a cookie (reserved bytes set) older than an hour: a fresh one",
                query: "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                client: "203.0.113.203",
                active: s1,
                staging: &[],
                now: 1559734700,
                reply: "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e",
                valid: false,
            },
            Case {
                what: "A.4 IPv6, made with the previous secret, now staging",
                query: "22681ab97d52c298010000005cf7c57926556bd0934c72f8",
                client: "2001:db8:220:1:59de:d0f4:8769:82b8",
                active: "445536bcd2513298075a5d379663c962",
                staging: &["dd3bdf9344b678b185a6f5cb60fca715"],
                now: 1559741961,
                reply: "22681ab97d52c298010000005cf7c609a6bb79d16625507a",
                valid: true,
            },
        ];
        for c in cases {
            let staging: Vec<Secret> = c.staging.iter().map(|s| secret(s)).collect();
            let cookies = Cookies::new(secret(c.active), &staging, true).at_time(c.now);
            // Over TCP: a bad cookie is answered, never BADCOOKIE.
            let got = cookies.judge(&option(c.query), c.client.parse().unwrap(), false);
            let want = ReplyCookie {
                bytes: hex(c.reply).try_into().unwrap(),
                valid: c.valid,
            };
            assert_eq!(got, Verdict::Answer(want), "{}", c.what);
        }
    }

    #[test]
    fn verdicts() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_700_000_000;
        let enforce = Cookies::new([7; 16], &[], true).at_time(now);
        let lenient = Cookies::new([7; 16], &[], false).at_time(now);
        let fresh = match enforce.judge(&option("0102030405060708"), ip, true) {
            Verdict::Answer(c) => c,
            other => panic!("{other:?}"),
        };
        assert!(!fresh.valid);
        let sent: String = fresh.bytes.iter().map(|b| format!("{b:02x}")).collect();
        // Echoed unchanged while young; valid from another address: no.
        assert_eq!(
            enforce.judge(&option(&sent), ip, true),
            Verdict::Answer(ReplyCookie {
                bytes: fresh.bytes,
                valid: true
            })
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(matches!(
            enforce.judge(&option(&sent), other, true),
            Verdict::BadCookie(c) if !c.valid
        ));
        // Over TCP, or without enforcement: answered with a fresh cookie.
        assert!(matches!(
            enforce.judge(&option(&sent), other, false),
            Verdict::Answer(c) if !c.valid
        ));
        assert!(matches!(
            lenient.judge(&option(&sent), other, true),
            Verdict::Answer(c) if !c.valid
        ));
        // The validity window: an hour after, five minutes before.
        for (offset, valid) in [(3600i64, true), (3601, false), (-300, true), (-301, false)] {
            let later = Cookies::new([7; 16], &[], false).at_time((i64::from(now) + offset) as u32);
            let v = later.judge(&option(&sent), ip, true);
            assert!(
                matches!(v, Verdict::Answer(c) if c.valid == valid),
                "{offset}: {v:?}"
            );
        }
        // Lengths: 8 and 16..=40 are well formed; anything else is FORMERR.
        for len in [0usize, 1, 7, 9, 15, 41] {
            let o = option(&"ab".repeat(len));
            assert_eq!(enforce.judge(&o, ip, true), Verdict::Malformed, "{len}");
        }
        for len in [16usize, 40] {
            let o = option(&"ab".repeat(len));
            assert!(
                matches!(enforce.judge(&o, ip, false), Verdict::Answer(_)),
                "{len}"
            );
        }
        // No cookie option, or other options only.
        assert_eq!(enforce.judge(&[], ip, true), Verdict::None);
        assert_eq!(enforce.judge(&[0, 12, 0, 2, 0, 0], ip, true), Verdict::None);
    }

    #[test]
    fn put_cookie_replaces_any_cookie_in_the_reply_opt() {
        let cookie = ReplyCookie {
            bytes: [9; 24],
            valid: true,
        };
        // A reply: header, question ". A", OPT with a padding and a (foreign) cookie option.
        let mut reply = vec![0, 1, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1];
        let mut rdata = vec![0, 12, 0, 2, 0, 0];
        rdata.extend_from_slice(&option("1111111111111111"));
        reply.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0]);
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(&rdata);
        put_cookie(&mut reply, &cookie);
        let l = wire::scan(&reply).expect("still a message");
        let rr = l.rrs[l.opt.unwrap()];
        let rdata = &reply[rr.rdata..rr.end];
        assert_eq!(&rdata[..6], &[0, 12, 0, 2, 0, 0], "other options kept");
        assert_eq!(find_option(rdata, COOKIE), Some(&[9u8; 24][..]));
        assert_eq!(rdata.len(), 6 + OPTION_SIZE);
        // No OPT: unchanged.
        let mut plain = vec![0, 1, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        let before = plain.clone();
        put_cookie(&mut plain, &cookie);
        assert_eq!(plain, before);
    }

    #[test]
    fn secrets_are_32_hex_digits() {
        assert_eq!(
            parse_secret("e5e973e5a6b2a43f48e7dc849e37bfcf").map(|s| s[0]),
            Some(0xe5)
        );
        for bad in [
            "",
            "e5e973e5",
            "e5e973e5a6b2a43f48e7dc849e37bfcfff",
            "x5e973e5a6b2a43f48e7dc849e37bfcf",
        ] {
            assert_eq!(parse_secret(bad), None, "{bad:?}");
        }
    }
}
