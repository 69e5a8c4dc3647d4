//! Traefik IngressRoute (traefik.io/v1alpha1), as ExternalDNS's `traefik-proxy` source reads
//! it: names from the `Host(…)`, `HostHeader(…)` and `HostSNI(…)` matchers of
//! `spec.routes[].match` (every backquoted value; `*` skipped) plus the hostname annotation's;
//! data only from the `…/target` annotation (an IngressRoute has no status: without a target it
//! contributes nothing); TTL from `…/ttl`.
//!
//! Only `metadata` and `spec.routes[].match` are deserialized.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::annotations;
use super::{annotated, hostnames, names_with, object_key, parse, with_annotated_names};
use crate::kube::model::{Contribution, ObjKey, ObjKind};

const KIND: ObjKind = ObjKind::IngressRoute;

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

pub(super) fn contribute(
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let ir: IngressRouteView = parse(KIND, obj)?;
    let key = object_key(KIND, &ir.metadata)?;
    if annotations::is_ignored(&ir.metadata) {
        return Ok((key, None));
    }
    let ann = annotated(KIND, &key, &ir.metadata);
    let hosts: Vec<String> = ir
        .spec
        .iter()
        .flat_map(|s| s.routes.iter().flatten())
        .filter_map(|r| r.matcher.as_deref())
        .flat_map(rule_hosts)
        .collect();
    let names = with_annotated_names(
        hostnames(
            KIND,
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
}
