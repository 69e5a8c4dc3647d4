//! Well-known labels and annotations, and the name checks every kind shares.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::kube::model::Address;

/// Label: objects with value `"true"` are never indexed.
pub const IGNORE_LABEL: &str = "k8s-gateway.dns/ignore";
/// Annotation on Services: answer with the ready EndpointSlice addresses (any Service type).
pub const RESOLVE_ENDPOINTS: &str = "k8s-gateway.dns/resolve-endpoints";
/// Annotation: comma-separated hostnames (k8s_gateway's own; preferred).
pub const COREDNS_HOSTNAME: &str = "coredns.io/hostname";
/// ExternalDNS's hostname annotation since ExternalDNS 0.22.
pub const EXTERNAL_DNS_HOSTNAME: &str = "external-dns.kubernetes.io/hostname";
/// ExternalDNS's hostname annotation before 0.22.
pub const EXTERNAL_DNS_ALPHA_HOSTNAME: &str = "external-dns.alpha.kubernetes.io/hostname";
/// The hostname annotations, in precedence order: the first one present (and not empty) is
/// the object's; the others are not read.
pub const HOSTNAME_ANNOTATIONS: [&str; 3] = [
    COREDNS_HOSTNAME,
    EXTERNAL_DNS_HOSTNAME,
    EXTERNAL_DNS_ALPHA_HOSTNAME,
];
/// ExternalDNS's per-object TTL (seconds, or a Go duration), new prefix first.
pub const TTL_ANNOTATIONS: [&str; 2] = [
    "external-dns.kubernetes.io/ttl",
    "external-dns.alpha.kubernetes.io/ttl",
];
/// ExternalDNS's target override (comma-separated IPs, or a hostname), new prefix first.
pub const TARGET_ANNOTATIONS: [&str; 2] = [
    "external-dns.kubernetes.io/target",
    "external-dns.alpha.kubernetes.io/target",
];
/// The highest TTL an object may set (the directive's own bound).
pub const MAX_TTL: u32 = 3600;
/// Legacy Ingress class annotation (before `spec.ingressClassName`).
pub const INGRESS_CLASS: &str = "kubernetes.io/ingress.class";
/// Label on EndpointSlices naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

fn is_true(map: &Option<BTreeMap<String, String>>, key: &str) -> bool {
    map.as_ref()
        .and_then(|m| m.get(key))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether the object carries `k8s-gateway.dns/ignore: "true"`.
pub fn is_ignored(meta: &ObjectMeta) -> bool {
    is_true(&meta.labels, IGNORE_LABEL)
}

/// Whether an annotation is set to `"true"`.
pub fn annotation_true(meta: &ObjectMeta, key: &str) -> bool {
    is_true(&meta.annotations, key)
}

/// An annotation's value, if present.
pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|m| m.get(key))
        .map(String::as_str)
}

/// A label's value, if present.
pub fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels
        .as_ref()
        .and_then(|m| m.get(key))
        .map(String::as_str)
}

/// The first of `keys` the object carries with a non-blank value: `(key, value)`.
pub fn first_annotation<'a>(
    meta: &'a ObjectMeta,
    keys: &[&'static str],
) -> Option<(&'static str, &'a str)> {
    keys.iter().find_map(|&k| {
        annotation(meta, k)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (k, v))
    })
}

/// The object's own TTL from the `…/ttl` annotation (new prefix first): seconds (`300`) or a
/// Go duration (`5m`, `1h30m`, `1.5s` → 1), in 0..=3600. An invalid or out-of-range value is
/// reported through `warn` and ignored (`None`: the directive's `ttl`).
pub fn ttl(meta: &ObjectMeta, warn: &mut impl FnMut(String)) -> Option<u32> {
    let (key, value) = first_annotation(meta, &TTL_ANNOTATIONS)?;
    match parse_ttl(value) {
        Ok(t) => Some(t),
        Err(e) => {
            warn(format!(
                "annotation {key}: {e}; the directive's ttl is used"
            ));
            None
        }
    }
}

/// Parses a TTL annotation value as ExternalDNS does (a Go duration first, then an integer
/// number of seconds; fractions of a second are dropped), within 0..=[`MAX_TTL`].
pub fn parse_ttl(value: &str) -> Result<u32, String> {
    let v = value.trim();
    let secs = match go_duration_secs(v) {
        Some(s) => s,
        None => v
            .parse::<i64>()
            .map_err(|_| format!("\"{v}\" is not a valid TTL (seconds, or a duration like 1m)"))?,
    };
    if !(0..=i64::from(MAX_TTL)).contains(&secs) {
        return Err(format!("TTL {secs} is outside 0..{MAX_TTL}"));
    }
    Ok(secs as u32)
}

/// A Go `time.ParseDuration` string in whole seconds (truncated towards zero), or `None` when
/// it is not one. `"0"` is a duration; any other bare number is not (it needs a unit).
fn go_duration_secs(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    // Nanoseconds, as Go counts them (saturating far beyond any valid TTL).
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    let secs = (total / 1e9).trunc();
    let secs = if secs > i64::MAX as f64 {
        i64::MAX
    } else {
        secs as i64
    };
    Some(if neg { -secs } else { secs })
}

/// What a `…/target` annotation (or an ExternalName) points a name at: addresses, or one
/// hostname to answer as a CNAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addrs(Vec<Address>),
    Cname(String),
}

/// The object's `…/target` annotation (new prefix first), when it has a usable entry; problems
/// are reported through `warn`.
pub fn target(meta: &ObjectMeta, warn: &mut impl FnMut(String)) -> Option<Target> {
    let (key, value) = first_annotation(meta, &TARGET_ANNOTATIONS)?;
    let mut w = |m: String| warn(format!("annotation {key}: {m}"));
    let t = parse_target(value, &mut w);
    if t.is_none() {
        w("no valid target; the object's own addresses are used".to_string());
    }
    t
}

/// A comma-separated target list, as ExternalDNS reads it: IP entries are addresses, any other
/// entry a hostname (CNAME). A name cannot have a CNAME and other data, nor two CNAMEs: a
/// hostname wins over IPs, the first hostname over later ones (the rest reported through
/// `warn`). `None` when no entry is valid.
pub fn parse_target(value: &str, warn: &mut impl FnMut(String)) -> Option<Target> {
    let mut addrs = Vec::new();
    let mut cnames: Vec<String> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if let Some(ip) = parse_ip(entry) {
            addrs.push(Address::Ip(ip));
            continue;
        }
        match normalize_name(entry, false) {
            Ok(n) => {
                if !cnames.contains(&n) {
                    cnames.push(n);
                }
            }
            Err(e) => warn(format!("invalid target skipped: {e}")),
        }
    }
    let mut cnames = cnames.into_iter();
    match cnames.next() {
        Some(c) => {
            let dropped: Vec<String> = addrs
                .iter()
                .map(|a| match a {
                    Address::Ip(ip) => ip.to_string(),
                    Address::Hostname(h) => h.clone(),
                })
                .chain(cnames)
                .collect();
            if !dropped.is_empty() {
                warn(format!(
                    "a name with a CNAME ({c}) can have no other data; {} skipped",
                    dropped.join(", ")
                ));
            }
            Some(Target::Cname(c))
        }
        None if addrs.is_empty() => None,
        None => Some(Target::Addrs(dedup_addrs(addrs))),
    }
}

/// The hostnames of the hostname annotation in effect ([`HOSTNAME_ANNOTATIONS`]):
/// `Some((annotation, names))` when one is present (names may be empty when every entry is
/// invalid; each rejected entry is reported through `warn`).
pub fn annotated_hostnames(
    meta: &ObjectMeta,
    warn: &mut impl FnMut(String),
) -> Option<(&'static str, Vec<String>)> {
    let (key, value) = first_annotation(meta, &HOSTNAME_ANNOTATIONS)?;
    let (names, bad) = hostname_list(value);
    for b in &bad {
        warn(format!("annotation {key}: invalid hostname skipped: {b}"));
    }
    Some((key, names))
}

/// Normalizes and validates a hostname: trims whitespace, lower-cases, removes one trailing
/// dot. Valid: at most 253 characters, labels of 1..63 characters of `[a-z0-9-_]` that neither
/// start nor end with `-`; `*.` is allowed as the whole first label when `wildcard` is true.
pub fn normalize_name(raw: &str, wildcard: bool) -> Result<String, String> {
    let t = raw.trim();
    let t = t.strip_suffix('.').unwrap_or(t);
    let name = t.to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    if name.len() > 253 {
        return Err(format!(
            "\"{name}\" is longer than 253 characters ({})",
            name.len()
        ));
    }
    let rest = match name.strip_prefix("*.") {
        Some(r) if wildcard => r,
        Some(_) => return Err(format!("\"{name}\": a wildcard is not allowed here")),
        None => name.as_str(),
    };
    for l in rest.split('.') {
        if l.is_empty() {
            return Err(format!("\"{name}\" has an empty label"));
        }
        if l.len() > 63 {
            return Err(format!(
                "\"{name}\" has a label longer than 63 characters ({})",
                l.len()
            ));
        }
        if l.contains('*') {
            return Err(format!(
                "\"{name}\": '*' is only allowed as a leading \"*.\" label"
            ));
        }
        if let Some(c) = l
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(format!("\"{name}\" contains the invalid character '{c}'"));
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err(format!(
                "\"{name}\" has a label starting or ending with '-'"
            ));
        }
    }
    Ok(name)
}

/// A comma-separated hostname list (Service annotations): the valid entries (normalized,
/// de-duplicated, in order) and the rejected ones with the reason. Empty entries are skipped.
pub fn hostname_list(value: &str) -> (Vec<String>, Vec<String>) {
    let mut names = Names::default();
    let mut bad = Vec::new();
    for entry in value.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        match normalize_name(entry, true) {
            Ok(n) => names.push(n),
            Err(e) => bad.push(e),
        }
    }
    (names.into_vec(), bad)
}

/// An ordered, de-duplicated list of names.
#[derive(Debug, Default)]
pub struct Names(Vec<String>);

impl Names {
    pub fn push(&mut self, n: String) {
        if !self.0.contains(&n) {
            self.0.push(n);
        }
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Parses an IP address from a status or spec field (surrounding whitespace ignored).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// An address from a status entry that may carry an `ip` and/or a `hostname` (the IP wins when
/// both are set, as a load balancer reports both only when the IP is the real one). Invalid
/// values are reported through `warn`.
pub fn status_address(
    ip: Option<&str>,
    hostname: Option<&str>,
    warn: &mut impl FnMut(String),
) -> Option<Address> {
    if let Some(ip) = ip.filter(|s| !s.trim().is_empty()) {
        match parse_ip(ip) {
            Some(a) => return Some(Address::Ip(a)),
            None => warn(format!("invalid IP address \"{ip}\" skipped")),
        }
    }
    if let Some(h) = hostname.filter(|s| !s.trim().is_empty()) {
        match normalize_name(h, false) {
            Ok(n) => return Some(Address::Hostname(n)),
            Err(e) => warn(format!("invalid address hostname skipped: {e}")),
        }
    }
    None
}

/// Sorts and de-duplicates addresses (so equal objects give equal contributions).
pub fn dedup_addrs(mut v: Vec<Address>) -> Vec<Address> {
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_validation_table() {
        let ok: &[(&str, &str)] = &[
            ("My.Host.", "my.host"),
            (" a.example.com ", "a.example.com"),
            ("*.example.com", "*.example.com"),
            ("_acme-challenge.example.com", "_acme-challenge.example.com"),
            ("a_b.example.com", "a_b.example.com"),
            ("x1-2.example.com", "x1-2.example.com"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_name(raw, true).as_deref(), Ok(*want), "{raw}");
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        let long_name = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        let bad: Vec<(&str, String)> = vec![
            (
                "*my.host",
                "\"*my.host\": '*' is only allowed as a leading \"*.\" label".into(),
            ),
            (
                "**my.host",
                "\"**my.host\": '*' is only allowed as a leading \"*.\" label".into(),
            ),
            (
                "my.*.host",
                "\"my.*.host\": '*' is only allowed as a leading \"*.\" label".into(),
            ),
            (
                "*.*.host",
                "\"*.*.host\": '*' is only allowed as a leading \"*.\" label".into(),
            ),
            (
                "*",
                "\"*\": '*' is only allowed as a leading \"*.\" label".into(),
            ),
            (
                &long_label,
                format!("\"{long_label}\" has a label longer than 63 characters (64)"),
            ),
            (
                &long_name,
                format!("\"{long_name}\" is longer than 253 characters (259)"),
            ),
            ("a..b", "\"a..b\" has an empty label".into()),
            (
                "-a.b",
                "\"-a.b\" has a label starting or ending with '-'".into(),
            ),
            (
                "a-.b",
                "\"a-.b\" has a label starting or ending with '-'".into(),
            ),
            (
                "a b.c",
                "\"a b.c\" contains the invalid character ' '".into(),
            ),
            ("", "empty name".into()),
            (".", "empty name".into()),
        ];
        for (raw, want) in &bad {
            assert_eq!(normalize_name(raw, true).unwrap_err(), *want, "{raw:?}");
        }
        assert_eq!(
            normalize_name("*.a.b", false).unwrap_err(),
            "\"*.a.b\": a wildcard is not allowed here"
        );
    }

    #[test]
    fn hostname_lists() {
        let (ok, bad) = hostname_list("a.example.com, *.b.example.com,A.example.com.,,*my.host");
        assert_eq!(ok, vec!["a.example.com", "*.b.example.com"]);
        assert_eq!(bad.len(), 1);
        let (ok, bad) = hostname_list("**my.host,my.*.host");
        assert!(ok.is_empty());
        assert_eq!(bad.len(), 2);
    }

    #[test]
    fn status_addresses() {
        let mut warnings = Vec::new();
        let mut w = |s: String| warnings.push(s);
        assert_eq!(
            status_address(Some("192.0.2.1"), None, &mut w),
            Some(Address::Ip("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            status_address(None, Some("LB.Example.NET."), &mut w),
            Some(Address::Hostname("lb.example.net".into()))
        );
        assert_eq!(
            status_address(Some("bogus"), Some("lb.example.net"), &mut w),
            Some(Address::Hostname("lb.example.net".into()))
        );
        assert_eq!(status_address(Some("nope"), None, &mut w), None);
        assert_eq!(
            warnings,
            vec![
                "invalid IP address \"bogus\" skipped".to_string(),
                "invalid IP address \"nope\" skipped".to_string()
            ]
        );
    }
}
