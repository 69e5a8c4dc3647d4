//! Well-known labels and annotations, and the name checks every kind shares.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::kube::model::Address;

/// Label: objects with value `"true"` are never indexed.
pub const IGNORE_LABEL: &str = "k8s-gateway.dns/ignore";
/// Annotation on Services: answer with the ready EndpointSlice addresses (any Service type).
pub const RESOLVE_ENDPOINTS: &str = "k8s-gateway.dns/resolve-endpoints";
/// Annotation on Services: comma-separated hostnames (preferred).
pub const COREDNS_HOSTNAME: &str = "coredns.io/hostname";
/// Annotation on Services: comma-separated hostnames (used when `coredns.io/hostname` is absent).
pub const EXTERNAL_DNS_HOSTNAME: &str = "external-dns.alpha.kubernetes.io/hostname";
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
