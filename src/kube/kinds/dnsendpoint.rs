//! DNSEndpoint (externaldns.k8s.io/v1alpha1): per `spec.endpoints[]` entry, its `dnsName` with
//! that entry's own targets: `A`/`AAAA` → addresses (of the matching family), `TXT` → TXT
//! strings, `CNAME` → CNAME targets. Other record types are skipped with a warning. Entries with
//! the same `dnsName` merge. `recordTTL` is not used (answers carry the directive's `ttl`).

use super::annotations::{self, normalize_name};
use super::{object_key, parse, warn};
use crate::kube::crds::DNSEndpoint;
use crate::kube::model::{Address, Contribution, NameData, ObjKey, ObjKind};

const KIND: ObjKind = ObjKind::DNSEndpoint;

pub(super) fn contribute(
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let d: DNSEndpoint = parse(KIND, obj)?;
    let key = object_key(KIND, &d.metadata)?;
    if annotations::is_ignored(&d.metadata) {
        return Ok((key, None));
    }
    let mut out: Vec<NameData> = Vec::new();
    // Name → its entry in `out`: a DNSEndpoint may carry thousands of endpoints.
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, ep) in d.spec.endpoints.iter().enumerate() {
        let w = |m: String| warn(KIND, &key, &format!("spec.endpoints[{i}]: {m}"));
        let name = match normalize_name(&ep.dns_name, true) {
            Ok(n) => n,
            Err(e) => {
                w(format!("invalid dnsName skipped: {e}"));
                continue;
            }
        };
        let idx = match at.get(&name) {
            Some(&i) => i,
            None => {
                at.insert(name.clone(), out.len());
                out.push(NameData {
                    name,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let nd = &mut out[idx];
        let rtype = ep.record_type.trim().to_ascii_uppercase();
        match rtype.as_str() {
            "A" | "AAAA" => {
                let v6 = rtype == "AAAA";
                for t in &ep.targets {
                    match annotations::parse_ip(t) {
                        Some(ip) if ip.is_ipv6() == v6 => nd.addrs.push(Address::Ip(ip)),
                        _ => w(format!("\"{t}\" is not a valid {rtype} target; skipped")),
                    }
                }
            }
            "TXT" => {
                for t in &ep.targets {
                    if !nd.txt.contains(t) {
                        nd.txt.push(t.clone());
                    }
                }
            }
            "CNAME" => {
                for t in &ep.targets {
                    match normalize_name(t, false) {
                        Ok(c) => {
                            if !nd.cname.contains(&c) {
                                nd.cname.push(c);
                            }
                        }
                        Err(e) => w(format!("invalid CNAME target skipped: {e}")),
                    }
                }
            }
            other => w(format!("record type \"{other}\" is not served; skipped")),
        }
    }
    out.retain_mut(|nd| {
        nd.addrs = annotations::dedup_addrs(std::mem::take(&mut nd.addrs));
        if !nd.cname.is_empty() && (!nd.addrs.is_empty() || !nd.txt.is_empty()) {
            warn(
                KIND,
                &key,
                &format!("{}: a CNAME name should have no other data", nd.name),
            );
        }
        !(nd.addrs.is_empty() && nd.txt.is_empty() && nd.cname.is_empty())
    });
    if out.is_empty() {
        return Ok((key, None));
    }
    Ok((key, Some(Contribution::Names(out))))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kube::kinds::contribute;
    use crate::kube::kinds::tests::addr;
    use crate::kube::model::{Contribution, Filters, NameData, ObjKey, ObjKind};

    fn dnsep(endpoints: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "externaldns.k8s.io/v1alpha1",
            "kind": "DNSEndpoint",
            "metadata": {"name": "records", "namespace": "dns"},
            "spec": {"endpoints": endpoints}
        })
    }

    fn run(obj: &serde_json::Value) -> Option<Contribution> {
        let (key, c) = contribute(ObjKind::DNSEndpoint, obj, &Filters::default()).unwrap();
        assert_eq!(key, ObjKey::new("dns", "records"));
        c
    }

    #[test]
    fn each_endpoint_has_its_own_targets() {
        // The fork answers every name with the targets of every endpoint in the object.
        let obj = dnsep(json!([
            {"dnsName": "a.example.com", "recordType": "A", "targets": ["192.0.2.1"], "recordTTL": 30},
            {"dnsName": "b.example.com", "recordType": "A", "targets": ["192.0.2.2", "192.0.2.3"]},
            {"dnsName": "B.example.com.", "recordType": "AAAA", "targets": ["2001:db8::2"]},
            {"dnsName": "a.example.com", "recordType": "TXT", "targets": ["v=spf1 -all", "hello world"]},
            {"dnsName": "www.example.com", "recordType": "CNAME", "targets": ["A.Example.com."]},
        ]));
        assert_eq!(
            run(&obj),
            Some(Contribution::Names(vec![
                NameData {
                    name: "a.example.com".into(),
                    addrs: vec![addr("192.0.2.1")],
                    txt: vec!["v=spf1 -all".into(), "hello world".into()],
                    ..Default::default()
                },
                NameData {
                    name: "b.example.com".into(),
                    addrs: vec![addr("192.0.2.2"), addr("192.0.2.3"), addr("2001:db8::2")],
                    ..Default::default()
                },
                NameData {
                    name: "www.example.com".into(),
                    cname: vec!["a.example.com".into()],
                    ..Default::default()
                },
            ]))
        );
    }

    #[test]
    fn invalid_entries_table() {
        let cases = vec![
            // invalid IPs and wrong families skipped, the rest kept
            (
                json!([{"dnsName": "a.example.com", "recordType": "A",
                        "targets": ["192.0.2.1", "bogus", "2001:db8::1", "192.0.2.1"]}]),
                Some(vec![("a.example.com", vec![addr("192.0.2.1")])]),
            ),
            (
                json!([{"dnsName": "a.example.com", "recordType": "AAAA", "targets": ["192.0.2.1"]}]),
                None,
            ),
            // unsupported record types
            (
                json!([{"dnsName": "a.example.com", "recordType": "MX", "targets": ["10 mx.example.com"]},
                       {"dnsName": "b.example.com", "recordType": "a", "targets": ["192.0.2.9"]}]),
                Some(vec![("b.example.com", vec![addr("192.0.2.9")])]),
            ),
            // invalid dnsName
            (
                json!([{"dnsName": "my.*.host", "recordType": "A", "targets": ["192.0.2.1"]},
                       {"recordType": "A", "targets": ["192.0.2.1"]}]),
                None,
            ),
            // wildcard names are fine
            (
                json!([{"dnsName": "*.dev.example.com", "recordType": "A", "targets": ["192.0.2.4"]}]),
                Some(vec![("*.dev.example.com", vec![addr("192.0.2.4")])]),
            ),
            (json!([]), None),
        ];
        for (eps, want) in cases {
            let got = run(&dnsep(eps.clone()));
            let want = want.map(|v| {
                Contribution::Names(
                    v.into_iter()
                        .map(|(n, a)| NameData {
                            name: n.into(),
                            addrs: a,
                            ..Default::default()
                        })
                        .collect(),
                )
            });
            assert_eq!(got, want, "endpoints {eps}");
        }
    }

    #[test]
    fn ignore_label_and_missing_spec() {
        let mut obj = dnsep(
            json!([{"dnsName": "a.example.com", "recordType": "A", "targets": ["192.0.2.1"]}]),
        );
        obj["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(run(&obj), None);
        let obj =
            json!({"kind": "DNSEndpoint", "metadata": {"name": "records", "namespace": "dns"}});
        assert_eq!(
            contribute(ObjKind::DNSEndpoint, &obj, &Filters::default()).unwrap_err(),
            "DNSEndpoint dns/records: missing field `spec`"
        );
    }
}
