//! Server block keys: `[SCHEME://]ZONE[:PORT]`, CIDR keys to reverse zones.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Dns,
    Tls,
    Https,
    Grpc,
    Quic,
    /// DNS over HTTP/3 (CoreDNS 1.14's `https3://`).
    Https3,
}

impl Scheme {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Dns => "dns",
            Scheme::Tls => "tls",
            Scheme::Https => "https",
            Scheme::Grpc => "grpc",
            Scheme::Quic => "quic",
            Scheme::Https3 => "https3",
        }
    }

    /// The port a key of this scheme gets when it names none (`dns_port` for `dns://`).
    pub fn default_port(&self, dns_port: u16) -> u16 {
        match self {
            Scheme::Dns => dns_port,
            Scheme::Tls | Scheme::Quic => 853,
            Scheme::Https | Scheme::Grpc | Scheme::Https3 => 443,
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        Some(match s.to_ascii_lowercase().as_str() {
            "dns" => Scheme::Dns,
            "tls" => Scheme::Tls,
            "https" => Scheme::Https,
            "grpc" => Scheme::Grpc,
            "quic" => Scheme::Quic,
            "https3" => Scheme::Https3,
            _ => return None,
        })
    }
}

/// One server block key, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub scheme: Scheme,
    /// Lower-case, absolute zone (`example.org.`, `.` for the root). A CIDR key expands to
    /// several keys, one per reverse zone.
    pub zone: String,
    pub port: u16,
    /// The key as written.
    pub raw: String,
}

impl fmt::Display for Key {
    /// `dns://example.org.:53`, as CoreDNS prints keys in errors and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.zone, self.port)
    }
}

/// Parses one key; a CIDR key yields one key per reverse zone. `dns_port` is the `-dns.port` flag.
///
/// The error is the bare message; the parser adds `FILE:LINE - Error during parsing: `.
pub fn parse_key(raw: &str, dns_port: u16) -> Result<Vec<Key>, String> {
    let (scheme, rest) = match raw.find("://") {
        Some(i) => {
            let name = &raw[..i];
            let scheme = Scheme::parse(name)
                .ok_or_else(|| format!("unknown scheme '{name}' in key '{raw}'"))?;
            (scheme, &raw[i + 3..])
        }
        None => (Scheme::Dns, raw),
    };

    // A port is what follows the last colon, if that is a number. A CIDR's mask always comes
    // before the port, so an IPv6 network (`fd00::/64`) is not mistaken for a host and port.
    let (host, port) = match rest.rfind(':') {
        Some(i) if i + 1 == rest.len() => {
            return Err(format!("expecting data after last colon: {raw:?}"));
        }
        Some(i) => {
            let p = &rest[i + 1..];
            if p.bytes().all(|b| b.is_ascii_digit()) {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("invalid port '{p}' in key '{raw}'"))?;
                (&rest[..i], Some(port))
            } else if rest.contains('/') {
                (rest, None)
            } else {
                return Err(format!("invalid port '{p}' in key '{raw}'"));
            }
        }
        None => (rest, None),
    };
    let port = port.unwrap_or_else(|| scheme.default_port(dns_port));

    let zones = if host.contains('/') {
        let net: IpNet = host
            .parse()
            .map_err(|_| format!("invalid CIDR '{host}' in key '{raw}'"))?;
        reverse_zones(net.trunc())
    } else {
        vec![normalize_zone(host)?]
    };
    Ok(zones
        .into_iter()
        .map(|zone| Key {
            scheme,
            zone,
            port,
            raw: raw.to_string(),
        })
        .collect())
}

/// Lower-cases `host`, makes it absolute and checks it is a usable domain name.
fn normalize_zone(host: &str) -> Result<String, String> {
    let invalid = || format!("zone is not a valid domain name: {host}");
    if host.is_empty() {
        return Err(invalid());
    }
    let mut zone = host.to_ascii_lowercase();
    if !zone.ends_with('.') {
        zone.push('.');
    }
    // Wire length: the text plus the leading length byte.
    if zone.len() + 1 > 255 {
        return Err(format!(
            "specified zone is too long: {} > 255",
            zone.len() + 1
        ));
    }
    if zone == "." {
        return Ok(zone);
    }
    let bad_char = |c: char| {
        !c.is_ascii_graphic()
            || matches!(
                c,
                '{' | '}' | '"' | '(' | ')' | ';' | '/' | ':' | '@' | '\\' | ','
            )
    };
    if zone.chars().any(bad_char) {
        return Err(invalid());
    }
    for label in zone[..zone.len() - 1].split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid());
        }
    }
    Ok(zone)
}

/// The reverse zones covering `net` (already truncated to its prefix). A prefix that is not on a
/// label boundary (8 bits for IPv4, 4 for IPv6) is split into the networks of the next boundary,
/// as CoreDNS does: `10.0.0.0/22` gives `0.0.10.in-addr.arpa.` .. `3.0.10.in-addr.arpa.`.
pub(crate) fn reverse_zones(net: IpNet) -> Vec<String> {
    let prefix = u32::from(net.prefix_len());
    match net.addr() {
        IpAddr::V4(a) => {
            let boundary = prefix.div_ceil(8) * 8;
            let base = u32::from(a);
            (0..1u32 << (boundary - prefix))
                .map(|i| {
                    let addr = if i == 0 {
                        base
                    } else {
                        base | (i << (32 - boundary))
                    };
                    let octets = addr.to_be_bytes();
                    let mut zone = String::new();
                    for o in octets[..(boundary / 8) as usize].iter().rev() {
                        zone.push_str(&o.to_string());
                        zone.push('.');
                    }
                    zone.push_str("in-addr.arpa.");
                    zone
                })
                .collect()
        }
        IpAddr::V6(a) => {
            let boundary = prefix.div_ceil(4) * 4;
            let base = u128::from(a);
            (0..1u128 << (boundary - prefix))
                .map(|i| {
                    let addr = if i == 0 {
                        base
                    } else {
                        base | (i << (128 - boundary))
                    };
                    let mut zone = String::new();
                    for k in (0..boundary / 4).rev() {
                        let nibble = (addr >> (124 - 4 * k)) & 0xf;
                        zone.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
                        zone.push('.');
                    }
                    zone.push_str("ip6.arpa.");
                    zone
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(raw: &str) -> Vec<String> {
        parse_key(raw, 53)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .iter()
            .map(|k| k.to_string())
            .collect()
    }

    #[test]
    fn valid_keys() {
        let cases: &[(&str, &[&str])] = &[
            (".", &["dns://.:53"]),
            (".:53", &["dns://.:53"]),
            (".:1053", &["dns://.:1053"]),
            ("example.org", &["dns://example.org.:53"]),
            ("Example.ORG.", &["dns://example.org.:53"]),
            ("example.org:5300", &["dns://example.org.:5300"]),
            ("dns://example.org", &["dns://example.org.:53"]),
            ("dns://example.org:54", &["dns://example.org.:54"]),
            ("tls://example.org", &["tls://example.org.:853"]),
            ("tls://.:8853", &["tls://.:8853"]),
            ("https://example.org", &["https://example.org.:443"]),
            ("https3://example.org", &["https3://example.org.:443"]),
            ("grpc://example.org", &["grpc://example.org.:443"]),
            ("quic://example.org", &["quic://example.org.:853"]),
            ("TLS://example.org", &["tls://example.org.:853"]),
            ("*.example.org", &["dns://*.example.org.:53"]),
            ("_srv.example.org", &["dns://_srv.example.org.:53"]),
            ("10.0.0.1", &["dns://10.0.0.1.:53"]),
            ("example.org:0", &["dns://example.org.:0"]),
            // CIDR keys.
            ("10.0.0.0/24", &["dns://0.0.10.in-addr.arpa.:53"]),
            ("10.0.0.7/24", &["dns://0.0.10.in-addr.arpa.:53"]),
            ("10.0.0.0/24:1053", &["dns://0.0.10.in-addr.arpa.:1053"]),
            ("tls://10.0.0.0/24", &["tls://0.0.10.in-addr.arpa.:853"]),
            ("10.0.0.0/8", &["dns://10.in-addr.arpa.:53"]),
            ("10.1.2.3/32", &["dns://3.2.1.10.in-addr.arpa.:53"]),
            ("0.0.0.0/0", &["dns://in-addr.arpa.:53"]),
            (
                "10.0.0.0/22",
                &[
                    "dns://0.0.10.in-addr.arpa.:53",
                    "dns://1.0.10.in-addr.arpa.:53",
                    "dns://2.0.10.in-addr.arpa.:53",
                    "dns://3.0.10.in-addr.arpa.:53",
                ],
            ),
            (
                "10.0.4.0/23",
                &[
                    "dns://4.0.10.in-addr.arpa.:53",
                    "dns://5.0.10.in-addr.arpa.:53",
                ],
            ),
            (
                "192.168.0.0/15",
                &[
                    "dns://168.192.in-addr.arpa.:53",
                    "dns://169.192.in-addr.arpa.:53",
                ],
            ),
            (
                "fd00::/64",
                &["dns://0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.:53"],
            ),
            (
                "fd00::/64:1053",
                &["dns://0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.:1053"],
            ),
            ("2001:db8::/32", &["dns://8.b.d.0.1.0.0.2.ip6.arpa.:53"]),
            (
                "2001:db8::/31",
                &[
                    "dns://8.b.d.0.1.0.0.2.ip6.arpa.:53",
                    "dns://9.b.d.0.1.0.0.2.ip6.arpa.:53",
                ],
            ),
            (
                "fd00::/6",
                &[
                    "dns://c.f.ip6.arpa.:53",
                    "dns://d.f.ip6.arpa.:53",
                    "dns://e.f.ip6.arpa.:53",
                    "dns://f.f.ip6.arpa.:53",
                ],
            ),
            ("::/0", &["dns://ip6.arpa.:53"]),
        ];
        for (raw, want) in cases {
            assert_eq!(keys(raw), *want, "key {raw}");
        }
    }

    #[test]
    fn dns_port_flag_only_changes_dns_default() {
        let k = parse_key("example.org", 1053).unwrap();
        assert_eq!(k[0].port, 1053);
        assert_eq!(k[0].raw, "example.org");
        assert_eq!(parse_key("tls://example.org", 1053).unwrap()[0].port, 853);
        assert_eq!(parse_key("example.org:54", 1053).unwrap()[0].port, 54);
        let k = parse_key("10.0.0.0/23", 1053).unwrap();
        assert!(k.iter().all(|k| k.raw == "10.0.0.0/23" && k.port == 1053));
    }

    #[test]
    fn slash_one_splits_into_128_zones() {
        let k = parse_key("0.0.0.0/1", 53).unwrap();
        assert_eq!(k.len(), 128);
        assert_eq!(k[0].zone, "0.in-addr.arpa.");
        assert_eq!(k[127].zone, "127.in-addr.arpa.");
    }

    #[test]
    fn invalid_keys() {
        let long = format!("{}.org", "a".repeat(64));
        let too_long = vec!["abcdefghi"; 26].join(".");
        let cases: Vec<(&str, String)> = vec![
            ("", "zone is not a valid domain name: ".into()),
            (":53", "zone is not a valid domain name: ".into()),
            ("dns://", "zone is not a valid domain name: ".into()),
            (
                "example.org:",
                r#"expecting data after last colon: "example.org:""#.into(),
            ),
            (
                "example.org:abc",
                "invalid port 'abc' in key 'example.org:abc'".into(),
            ),
            (
                "example.org:65536",
                "invalid port '65536' in key 'example.org:65536'".into(),
            ),
            (
                "foo://example.org",
                "unknown scheme 'foo' in key 'foo://example.org'".into(),
            ),
            (
                "://example.org",
                "unknown scheme '' in key '://example.org'".into(),
            ),
            (
                "example..org",
                "zone is not a valid domain name: example..org".into(),
            ),
            (
                ".example.org",
                "zone is not a valid domain name: .example.org".into(),
            ),
            (
                "example.org{",
                "zone is not a valid domain name: example.org{".into(),
            ),
            ("}", "zone is not a valid domain name: }".into()),
            ("(snip)", "zone is not a valid domain name: (snip)".into()),
            (
                "exa mple.org",
                "zone is not a valid domain name: exa mple.org".into(),
            ),
            (
                "exämple.org",
                "zone is not a valid domain name: exämple.org".into(),
            ),
            (&long, format!("zone is not a valid domain name: {long}")),
            (&too_long, "specified zone is too long: 261 > 255".into()),
            (
                "10.0.0.0/33",
                "invalid CIDR '10.0.0.0/33' in key '10.0.0.0/33'".into(),
            ),
            (
                "10.0.0/24",
                "invalid CIDR '10.0.0/24' in key '10.0.0/24'".into(),
            ),
            (
                "fd00::/129",
                "invalid CIDR 'fd00::/129' in key 'fd00::/129'".into(),
            ),
            ("a/b", "invalid CIDR 'a/b' in key 'a/b'".into()),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_key(raw, 53), Err(want), "key {raw:?}");
        }
    }
}
