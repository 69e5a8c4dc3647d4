//! Zone helpers shared by the plugins: CoreDNS's `OriginsFromArgsOrServerBlock` for a
//! directive's zone arguments, and label-aligned zone matching of lower-case, absolute names.

use ipnet::IpNet;

use crate::corefile::{self, Dispenser, ParseError};

/// `name` lower-cased (ASCII) and made absolute: `Example.ORG` → `example.org.`.
pub fn fqdn_lower(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// Whether `name` equals `zone` or is below it (both lower-case, absolute).
pub fn in_zone(name: &str, zone: &str) -> bool {
    if zone == "." {
        return true;
    }
    if name.len() == zone.len() {
        return name == zone;
    }
    name.len() > zone.len()
        && name.ends_with(zone)
        && name.as_bytes()[name.len() - zone.len() - 1] == b'.'
}

/// The longest of `zones` that `name` (lower-case, absolute) is in or below.
pub fn match_zone<'a>(zones: &'a [String], name: &str) -> Option<&'a str> {
    let mut best: Option<&'a str> = None;
    for z in zones {
        if in_zone(name, z) && best.is_none_or(|b| z.len() > b.len()) {
            best = Some(z);
        }
    }
    best
}

/// CoreDNS's `OriginsFromArgsOrServerBlock`: the zone arguments normalized, or the block's zones
/// when there are none.
pub fn origins_from_args(
    d: &Dispenser,
    args: &[String],
    block_zones: &[String],
) -> Result<Vec<String>, ParseError> {
    if args.is_empty() {
        return Ok(block_zones.to_vec());
    }
    let mut zones: Vec<String> = Vec::new();
    for a in args {
        for z in normalize_zone(a).map_err(|e| d.err(e))? {
            if !zones.contains(&z) {
                zones.push(z);
            }
        }
    }
    Ok(zones)
}

/// CoreDNS's `plugin.Host(s).NormalizeExact()`: drops a `scheme://` prefix and a `:port` suffix,
/// lower-cases and makes the name absolute. A CIDR becomes its reverse zone(s); a prefix that is
/// not on an octet (IPv4) or nibble (IPv6) boundary expands to every zone it covers.
pub fn normalize_zone(raw: &str) -> Result<Vec<String>, String> {
    let s = raw.split_once("://").map(|(_, rest)| rest).unwrap_or(raw);
    if let Some((addr, len)) = s.split_once('/') {
        // `10.0.0.0/8:53`: a port after the prefix length.
        let len = len.split_once(':').map(|(l, _)| l).unwrap_or(len);
        let net: IpNet = format!("{addr}/{len}")
            .parse()
            .map_err(|_| format!("invalid zone '{raw}': not a valid CIDR"))?;
        return Ok(corefile::reverse_zones(net.trunc()));
    }
    let host = match s.rsplit_once(':') {
        Some((h, port))
            if !h.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            h
        }
        _ => s,
    };
    if host.is_empty() {
        return Err(format!("invalid zone '{raw}'"));
    }
    let z = fqdn_lower(host);
    if z != "." && hickory_proto::rr::Name::from_ascii(&z).is_err() {
        return Err(format!("invalid zone '{raw}'"));
    }
    Ok(vec![z])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_matching() {
        assert!(in_zone("a.b.", "."));
        assert!(in_zone("b.", "b."));
        assert!(in_zone("a.b.", "b."));
        assert!(!in_zone("ab.", "b."));
        assert!(!in_zone("b.", "a.b."));
    }

    #[test]
    fn zone_matching_is_label_aligned_and_longest() {
        let zones = vec!["example.org.".to_string(), "a.example.org.".to_string()];
        assert_eq!(match_zone(&zones, "example.org."), Some("example.org."));
        assert_eq!(
            match_zone(&zones, "x.a.example.org."),
            Some("a.example.org.")
        );
        assert_eq!(match_zone(&zones, "ba.example.org."), Some("example.org."));
        assert_eq!(match_zone(&zones, "badexample.org."), None);
        assert_eq!(match_zone(&zones, "org."), None);
        assert_eq!(match_zone(&[".".to_string()], "anything."), Some("."));
    }

    #[test]
    fn normalize_zone_handles_names_ports_and_cidrs() {
        assert_eq!(normalize_zone("Example.ORG").unwrap(), vec!["example.org."]);
        assert_eq!(normalize_zone(".").unwrap(), vec!["."]);
        assert_eq!(
            normalize_zone("dns://example.org:1053").unwrap(),
            vec!["example.org."]
        );
        assert_eq!(
            normalize_zone("10.0.0.9/8").unwrap(),
            vec!["10.in-addr.arpa."]
        );
        assert_eq!(
            normalize_zone("192.168.0.0/23").unwrap(),
            vec!["0.168.192.in-addr.arpa.", "1.168.192.in-addr.arpa."]
        );
        assert_eq!(normalize_zone("0.0.0.0/0").unwrap(), vec!["in-addr.arpa."]);
        assert_eq!(
            normalize_zone("2001:db8::/32").unwrap(),
            vec!["8.b.d.0.1.0.0.2.ip6.arpa."]
        );
        assert_eq!(
            normalize_zone("2001:db8::/31").unwrap(),
            vec!["8.b.d.0.1.0.0.2.ip6.arpa.", "9.b.d.0.1.0.0.2.ip6.arpa."]
        );
        assert!(normalize_zone("").is_err());
        assert!(normalize_zone("10.0.0.0/33").is_err());
    }
}
