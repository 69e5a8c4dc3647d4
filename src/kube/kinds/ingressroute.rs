//! Traefik's IngressRoute, IngressRouteTCP and IngressRouteUDP, in `traefik.io/v1alpha1` and
//! the legacy `traefik.containo.us/v1alpha1`, as ExternalDNS's `traefik-proxy` source reads
//! them: names from the `Host(…)`, `HostHeader(…)` and `HostSNI(…)` matchers of
//! `spec.routes[].match` (every backquoted value; `*` skipped; IngressRoute and
//! IngressRouteTCP only — an IngressRouteUDP has no rules) plus the hostname annotation's;
//! data only from the `…/target` annotation (these kinds have no status: without a target an
//! object contributes nothing); TTL from `…/ttl`.
//!
//! Only `metadata` and `spec.routes[].match` are deserialized (of an IngressRouteUDP only
//! `metadata`, as ExternalDNS).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::annotations;
use super::{annotated, hostnames, names_with, object_key, parse, with_annotated_names};
use crate::kube::model::{Contribution, ObjKey, ObjKind};

#[derive(Deserialize)]
struct IngressRouteView {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<SpecView>,
}

#[derive(Deserialize, Default)]
struct SpecView {
    #[serde(default)]
    routes: Option<Vec<RouteView>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RouteView {
    #[serde(default, rename = "match")]
    matcher: Option<String>,
}

/// The hosts of a Traefik rule, as ExternalDNS's regular expressions find them:
/// `(HostSNI|HostHeader|Host)\s*\(\s*(`…`)\s*\)`, then every `` `value` `` (no comma, no
/// backquote) inside the matched argument list.
pub(super) fn rule_hosts(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = rule.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &rule[i..];
        let Some(name_len) = ["HostSNI", "HostHeader", "Host"]
            .iter()
            .find(|n| rest.starts_with(**n))
            .map(|n| n.len())
        else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let mut j = i + name_len;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'(' {
            i += name_len;
            continue;
        }
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'`' {
            i += name_len;
            continue;
        }
        // `.*?` up to the first backquote followed by optional spaces and `)`.
        let start = j;
        let mut end = None;
        let mut k = j + 1;
        while k < b.len() {
            if b[k] == b'`' {
                let mut m = k + 1;
                while m < b.len() && b[m].is_ascii_whitespace() {
                    m += 1;
                }
                if m < b.len() && b[m] == b')' {
                    end = Some((k + 1, m + 1));
                    break;
                }
            }
            k += 1;
        }
        let Some((arg_end, next)) = end else {
            i += name_len;
            continue;
        };
        for v in rule[start..arg_end].split('`').skip(1).step_by(2) {
            if !v.is_empty() && !v.contains(',') && v != "*" {
                out.push(v.to_string());
            }
        }
        i = next;
    }
    out
}

#[derive(Deserialize)]
struct MetaView {
    #[serde(default)]
    metadata: ObjectMeta,
}

/// Whether objects of `kind` carry `spec.routes[].match` rules (not IngressRouteUDP).
fn has_rules(kind: ObjKind) -> bool {
    !matches!(
        kind,
        ObjKind::IngressRouteUDP | ObjKind::LegacyIngressRouteUDP
    )
}

/// An IngressRoute, IngressRouteTCP or IngressRouteUDP of either API group.
pub(super) fn contribute(
    kind: ObjKind,
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let (metadata, spec) = if has_rules(kind) {
        let ir: IngressRouteView = parse(kind, obj)?;
        (ir.metadata, ir.spec)
    } else {
        (parse::<MetaView>(kind, obj)?.metadata, None)
    };
    let key = object_key(kind, &metadata)?;
    if annotations::is_ignored(&metadata) {
        return Ok((key, None));
    }
    let ann = annotated(kind, &key, &metadata);
    let hosts: Vec<String> = spec
        .iter()
        .flat_map(|s| s.routes.iter().flatten())
        .filter_map(|r| r.matcher.as_deref())
        .flat_map(rule_hosts)
        .collect();
    let names = with_annotated_names(
        hostnames(
            kind,
            &key,
            "spec.routes[].match",
            hosts.iter().map(String::as_str),
        ),
        &ann,
    );
    Ok((key, names_with(names, ann.target, ann.ttl)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::rule_hosts;
    use crate::kube::kinds::contribute;
    use crate::kube::kinds::tests::addr;
    use crate::kube::model::{Contribution, Filters, NameData, ObjKey, ObjKind};

    #[test]
    fn rule_hosts_table() {
        for (rule, want) in [
            ("Host(`a.example.com`)", vec!["a.example.com"]),
            (
                "Host(`a.example.com`, `b.example.com`) && PathPrefix(`/x`)",
                vec!["a.example.com", "b.example.com"],
            ),
            (
                "Host(`a.example.com`) || HostHeader( `c.example.com` )",
                vec!["a.example.com", "c.example.com"],
            ),
            ("HostSNI(`*`)", vec![]),
            ("PathPrefix(`/x`)", vec![]),
            ("Host(a.example.com)", vec![]),
            ("Host(`unterminated", vec![]),
            ("HostRegexp(`{sub:.+}.example.com`)", vec![]),
            ("", vec![]),
        ] {
            assert_eq!(rule_hosts(rule), want, "{rule}");
        }
    }

    fn ir(annotations: serde_json::Value, rule: &str) -> serde_json::Value {
        json!({
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": "web", "namespace": "apps", "annotations": annotations},
            "spec": {"entryPoints": ["websecure"],
                     "routes": [{"match": rule, "kind": "Rule",
                                 "services": [{"name": "web", "port": 80}]}]}
        })
    }

    #[test]
    fn names_and_target() {
        let run = |o: &serde_json::Value| {
            contribute(ObjKind::IngressRoute, o, &Filters::default())
                .unwrap()
                .1
        };
        // Without a target annotation: nothing (ExternalDNS publishes no targets).
        assert_eq!(run(&ir(json!({}), "Host(`Web.Example.com`)")), None);
        let o = ir(
            json!({"external-dns.alpha.kubernetes.io/target": "192.0.2.44",
                   "external-dns.alpha.kubernetes.io/hostname": "alias.example.com",
                   "external-dns.alpha.kubernetes.io/ttl": "90"}),
            "Host(`Web.Example.com`) && PathPrefix(`/`)",
        );
        let nd = |n: &str| NameData {
            name: n.into(),
            addrs: vec![addr("192.0.2.44")],
            ttl: Some(90),
            ..Default::default()
        };
        assert_eq!(
            run(&o),
            Some(Contribution::Names(vec![
                nd("web.example.com"),
                nd("alias.example.com")
            ]))
        );
        // A hostname target is a CNAME.
        let o = ir(
            json!({"external-dns.alpha.kubernetes.io/target": "lb.example.net"}),
            "Host(`web.example.com`)",
        );
        assert_eq!(
            run(&o),
            Some(Contribution::Names(vec![NameData {
                name: "web.example.com".into(),
                cname: vec!["lb.example.net".into()],
                ..Default::default()
            }]))
        );
        // Malformed: an error naming the object.
        let bad = json!({"kind": "IngressRoute", "metadata": {"name": "web", "namespace": "apps"},
                         "spec": {"routes": "nope"}});
        let e = contribute(ObjKind::IngressRoute, &bad, &Filters::default()).unwrap_err();
        assert!(e.starts_with("IngressRoute apps/web: "), "{e}");
        assert_eq!(
            contribute(
                ObjKind::IngressRoute,
                &ir(json!({}), ""),
                &Filters::default()
            )
            .unwrap()
            .0,
            ObjKey::new("apps", "web")
        );
    }

    #[test]
    fn rule_hosts_tcp_table() {
        for (rule, want) in [
            ("HostSNI(`db.example.com`)", vec!["db.example.com"]),
            (
                "HostSNI(`a.example.com`, `b.example.com`)",
                vec!["a.example.com", "b.example.com"],
            ),
            (
                "HostSNI(`a.example.com`) || HostSNI(`b.example.com`)",
                vec!["a.example.com", "b.example.com"],
            ),
            (
                "HostSNI(`a.example.com`) && ClientIP(`10.0.0.0/8`) || HostSNI ( `c.example.com` )",
                vec!["a.example.com", "c.example.com"],
            ),
            // TLS passthrough of everything: no name.
            ("HostSNI(`*`)", vec![]),
            ("HostSNI(`*`, `d.example.com`)", vec!["d.example.com"]),
            // Only backquoted values count (ExternalDNS's expressions).
            ("HostSNI(\"q.example.com\")", vec![]),
            ("HostSNI('q.example.com')", vec![]),
            ("HostSNIRegexp(`^.+\\.example\\.com$`)", vec![]),
            ("HostSNI(`a.example.com`", vec![]),
            ("HostSNI(``)", vec![]),
            ("ClientIP(`10.0.0.1`)", vec![]),
        ] {
            assert_eq!(rule_hosts(rule), want, "{rule}");
        }
    }

    /// Malformed rules of every shape (cut anywhere, multi-byte characters next to the
    /// matchers) give some list of hosts, never a panic.
    #[test]
    fn rule_hosts_never_panics() {
        let parts = [
            "Host",
            "HostSNI",
            "HostHeader",
            "(",
            ")",
            "`",
            ",",
            " ",
            "é",
            "日本",
            "*",
            "a.b",
            "||",
            "&&",
            "\"",
            "\u{0}",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut rule = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let mut x = seed;
            for _ in 0..len {
                rule.push_str(parts[(x % parts.len() as u64) as usize]);
                x /= parts.len() as u64;
                if x == 0 {
                    x = seed.rotate_left(7);
                }
            }
            for h in rule_hosts(&rule) {
                assert!(
                    !h.is_empty() && h != "*" && !h.contains(['`', ',']),
                    "{rule:?}: {h:?}"
                );
            }
            for cut in 0..=rule.len() {
                if rule.is_char_boundary(cut) {
                    let _ = rule_hosts(&rule[..cut]);
                }
            }
        }
    }

    fn obj(
        api: &str,
        kind: &str,
        annotations: serde_json::Value,
        spec: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "apiVersion": api,
            "kind": kind,
            "metadata": {"name": "r", "namespace": "apps", "annotations": annotations},
            "spec": spec,
        })
    }

    fn names(c: Option<Contribution>) -> Vec<(String, Vec<crate::kube::model::Address>)> {
        match c {
            Some(Contribution::Names(nds)) => {
                nds.into_iter().map(|nd| (nd.name, nd.addrs)).collect()
            }
            None => Vec::new(),
            other => panic!("{other:?}"),
        }
    }

    /// IngressRouteTCP: HostSNI names plus the annotation's; IngressRouteUDP: the annotation's
    /// only (its spec is not read, even when malformed). The legacy group's kinds read alike.
    #[test]
    fn tcp_udp_and_legacy() {
        let target = json!({"external-dns.alpha.kubernetes.io/target": "192.0.2.50",
                            "external-dns.alpha.kubernetes.io/hostname": "ann.example.com"});
        let tcp_spec = json!({"entryPoints": ["pg"],
            "routes": [{"match": "HostSNI(`db.example.com`) || HostSNI(`*`)",
                        "services": [{"name": "pg", "port": 5432}]}],
            "tls": {"passthrough": true}});
        let a = vec![addr("192.0.2.50")];
        for (api, kind, ok) in [
            (
                "traefik.io/v1alpha1",
                "IngressRouteTCP",
                ObjKind::IngressRouteTCP,
            ),
            (
                "traefik.containo.us/v1alpha1",
                "IngressRouteTCP",
                ObjKind::LegacyIngressRouteTCP,
            ),
        ] {
            let o = obj(api, kind, target.clone(), tcp_spec.clone());
            let (key, c) = contribute(ok, &o, &Filters::default()).unwrap();
            assert_eq!(key, ObjKey::new("apps", "r"));
            assert_eq!(
                names(c),
                vec![
                    ("db.example.com".into(), a.clone()),
                    ("ann.example.com".into(), a.clone())
                ],
                "{ok}"
            );
            // No target: nothing.
            let o = obj(api, kind, json!({}), tcp_spec.clone());
            assert_eq!(contribute(ok, &o, &Filters::default()).unwrap().1, None);
        }
        for ok in [ObjKind::IngressRouteUDP, ObjKind::LegacyIngressRouteUDP] {
            // A `match` on a UDP route is not Traefik's and not read; a malformed spec neither.
            for spec in [
                json!({"routes": [{"match": "HostSNI(`x.example.com`)",
                                   "services": [{"name": "dns", "port": 53}]}]}),
                json!({"routes": "nope"}),
            ] {
                let o = obj(
                    "traefik.io/v1alpha1",
                    "IngressRouteUDP",
                    target.clone(),
                    spec,
                );
                assert_eq!(
                    names(contribute(ok, &o, &Filters::default()).unwrap().1),
                    vec![("ann.example.com".into(), a.clone())],
                    "{ok}"
                );
            }
            let o = obj(
                "traefik.io/v1alpha1",
                "IngressRouteUDP",
                json!({"external-dns.alpha.kubernetes.io/target": "192.0.2.50"}),
                json!({}),
            );
            assert_eq!(
                contribute(ok, &o, &Filters::default()).unwrap().1,
                None,
                "{ok}"
            );
        }
        // Malformed rules: an error naming the kind (and group, for the legacy one).
        let bad = obj(
            "traefik.containo.us/v1alpha1",
            "IngressRouteTCP",
            json!({}),
            json!({"routes": [{"match": 5}]}),
        );
        let e = contribute(ObjKind::LegacyIngressRouteTCP, &bad, &Filters::default()).unwrap_err();
        assert!(
            e.starts_with("IngressRouteTCP.traefik.containo.us apps/r: "),
            "{e}"
        );
        let e = contribute(ObjKind::IngressRouteTCP, &bad, &Filters::default()).unwrap_err();
        assert!(e.starts_with("IngressRouteTCP apps/r: "), "{e}");
        // Ignored by label.
        let mut o = obj("traefik.io/v1alpha1", "IngressRouteTCP", target, tcp_spec);
        o["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(
            contribute(ObjKind::IngressRouteTCP, &o, &Filters::default())
                .unwrap()
                .1,
            None
        );
    }
}
