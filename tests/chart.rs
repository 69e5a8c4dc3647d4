//! The Helm chart in `charts/exdns`, rendered by the real Helm renderer and linted by Helm's own
//! linter (helm-python-sdk: Helm v4's Go library as a Python wheel, driven by
//! `charts/exdns/tests/render.py`). The rendered Corefiles go through `exdns -check` (and, for the
//! dual deployment and a `zoneFiles` entry, are run and queried); the rendered manifests are checked against the
//! Kubernetes API types (see [`validate`]) and against each other (selectors, ports, names).
//!
//! Needs `pip install helm-python-sdk` (scripts/test.sh installs it); without it every test here
//! fails with that instruction.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use exdns::kube::model::Kind;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

// ---------------------------------------------------------------------------------------------
// Driving Helm

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/exdns")
}

/// Runs `render.py` on `jobs`; one result per job (template errors are `Err`).
fn helm(jobs: &[Value]) -> Vec<Result<Value, String>> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = chart_dir().join("tests/render.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {python} ({e}): the chart tests need Python 3 with helm-python-sdk \
                 (pip install helm-python-sdk)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(jobs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "the chart tests cannot run: {}; scripts/test.sh installs it",
            stderr.trim()
        ),
        _ => panic!("{} failed ({}): {stderr}", script.display(), out.status),
    }
    let results: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("render.py printed no JSON list ({e}); stderr: {stderr}"));
    assert_eq!(results.len(), jobs.len());
    results
        .into_iter()
        .map(|r| match (r.get("ok"), r.get("error")) {
            (Some(ok), _) => Ok(ok.clone()),
            (_, Some(e)) => Err(e.as_str().unwrap_or_default().to_string()),
            _ => panic!("unexpected result {r}"),
        })
        .collect()
}

fn render_job(name: &str, namespace: &str, set: &[&str], values: Value) -> Value {
    json!({
        "op": "render",
        "chart": chart_dir(),
        "name": name,
        "namespace": namespace,
        "set": set,
        "values": values,
    })
}

/// One rendered release.
struct Release {
    name: String,
    namespace: String,
    /// `templates/x.yaml` → rendered text.
    templates: BTreeMap<String, String>,
    /// Every object, as JSON.
    objects: Vec<Value>,
}

impl Release {
    fn new(name: &str, namespace: &str, rendered: Value) -> Release {
        let templates: BTreeMap<String, String> = serde_json::from_value(rendered).unwrap();
        let mut objects = Vec::new();
        for (path, text) in &templates {
            if !path.ends_with(".yaml") {
                continue;
            }
            for doc in serde_yaml::Deserializer::from_str(text) {
                let v = serde_yaml::Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{path} is not YAML: {e}\n{text}"));
                if v.is_null() {
                    continue;
                }
                objects.push(serde_json::to_value(v).unwrap());
            }
        }
        Release {
            name: name.to_string(),
            namespace: namespace.to_string(),
            templates,
            objects,
        }
    }

    fn kinds_and_names(&self) -> BTreeSet<(String, String)> {
        self.objects
            .iter()
            .map(|o| (s(&o["kind"]), s(&o["metadata"]["name"])))
            .collect()
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", self.kinds_and_names()))
    }

    fn one(&self, kind: &str) -> &Value {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "{kind}: {:?}", self.kinds_and_names());
        all[0]
    }

    fn corefile(&self) -> String {
        s(&self.one("ConfigMap")["data"]["Corefile"])
    }

    fn notes(&self) -> &str {
        &self.templates["templates/NOTES.txt"]
    }

    fn container(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    }
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn render(name: &str, namespace: &str, set: &[&str]) -> Release {
    render_values(name, namespace, set, json!({}))
}

fn render_values(name: &str, namespace: &str, set: &[&str], values: Value) -> Release {
    let r = helm(&[render_job(name, namespace, set, values)]).remove(0);
    let r = r.unwrap_or_else(|e| panic!("render {name} {set:?}: {e}"));
    let rel = Release::new(name, namespace, r);
    validate_release(&rel);
    rel
}

/// A configuration Helm must refuse (`--set` expressions, a values document) and a fragment of
/// the message it must refuse it with.
type Refused<'a> = (&'a [&'a str], Value, &'a str);

/// Renders every case (release `exdns` in `default`) in one Helm run; each must fail with its
/// message. `skip_schema`: as `helm install --skip-schema-validation`, which reaches the
/// templates' own checks behind the values schema.
fn assert_refused(cases: &[Refused], skip_schema: bool) {
    let jobs: Vec<Value> = cases
        .iter()
        .map(|(set, values, _)| {
            let mut job = render_job("exdns", "default", set, values.clone());
            job["skip_schema"] = json!(skip_schema);
            job
        })
        .collect();
    for ((set, values, want), r) in cases.iter().zip(helm(&jobs)) {
        match r {
            Ok(_) => panic!("{set:?} {values} rendered, expected an error with {want:?}"),
            Err(e) => assert!(e.contains(want), "{set:?} {values}: {e}"),
        }
    }
}

/// `exdns -conf FILE -check` on a Corefile.
fn check_corefile(corefile: &str) -> Result<(), String> {
    let out = run_corefile(corefile, &["-check"]);
    if out.code == Some(0) && out.output().contains("OK") {
        Ok(())
    } else {
        Err(out.output())
    }
}

fn assert_check_ok(rel: &Release) {
    if let Err(e) = check_corefile(&rel.corefile()) {
        panic!(
            "exdns -check rejects the rendered Corefile:\n{e}\n{}",
            rel.corefile()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Validating the rendered objects
//
// Schema check: each object is deserialized into its k8s-openapi type (apps/v1 Deployment,
// core/v1 Service, …; k8s-openapi also checks apiVersion and kind) and serialized back; the
// round trip must give back exactly what was rendered. The deserializers reject wrong types
// (a string where an int belongs, a map where a list belongs); they silently skip unknown
// fields, so a field the API type does not have (a typo, a field at the wrong level) shows up
// as a difference after the round trip. (kubeconform is not on PyPI, and k8s-openapi is
// already a dependency.) The ServiceMonitor, a Prometheus Operator CRD, is checked against the
// subset of its schema this chart uses, with unknown fields denied.
// On top of that, consistency checks an API server or kubelet would otherwise fail on:
// names, labels, port names, selectors, referenced ports/volumes/ConfigMaps/ServiceAccounts.

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).unwrap();
    let mut diffs = Vec::new();
    diff("", obj, &back, &mut diffs);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not part of the API type (or of the wrong type): {}",
            diffs.join(", ")
        ))
    }
}

fn diff(path: &str, rendered: &Value, typed: &Value, out: &mut Vec<String>) {
    match (rendered, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k} (added)"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<NamespaceSelector>,
    endpoints: Vec<ServiceMonitorEndpoint>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    #[serde(skip_serializing_if = "Option::is_none")]
    match_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    any: Option<bool>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorEndpoint {
    port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scrape_timeout: Option<String>,
}

/// The schema check of one object.
fn validate(obj: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps, core, policy, rbac};
    match obj["kind"].as_str().unwrap_or_default() {
        "ConfigMap" => roundtrip::<core::v1::ConfigMap>(obj),
        "Deployment" => roundtrip::<apps::v1::Deployment>(obj),
        "Service" => roundtrip::<core::v1::Service>(obj),
        "ServiceAccount" => roundtrip::<core::v1::ServiceAccount>(obj),
        "ClusterRole" => roundtrip::<rbac::v1::ClusterRole>(obj),
        "ClusterRoleBinding" => roundtrip::<rbac::v1::ClusterRoleBinding>(obj),
        "PodDisruptionBudget" => roundtrip::<policy::v1::PodDisruptionBudget>(obj),
        "ServiceMonitor" => {
            if obj["apiVersion"] != "monitoring.coreos.com/v1" {
                return Err(format!("apiVersion {}", obj["apiVersion"]));
            }
            roundtrip::<ServiceMonitor>(obj)
        }
        other => Err(format!("unexpected kind {other:?}")),
    }
}

fn is_dns1123_label(x: &str) -> bool {
    let re = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").unwrap();
    x.len() <= 63 && re.is_match(x)
}

fn is_dns1123_subdomain(x: &str) -> bool {
    x.len() <= 253 && x.split('.').all(is_dns1123_label)
}

/// A port name: IANA_SVC_NAME (at most 15 characters, a-z0-9 and '-', a letter, no "--").
fn is_port_name(x: &str) -> bool {
    x.len() <= 15
        && is_dns1123_label(x)
        && x.bytes().any(|b| b.is_ascii_lowercase())
        && !x.contains("--")
}

fn check_labels(what: &str, labels: &Value) -> Result<(), String> {
    let value_re = regex::Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").unwrap();
    let name_re = regex::Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").unwrap();
    for (k, v) in labels.as_object().into_iter().flatten() {
        let (prefix, name) = match k.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if prefix.is_some_and(|p| !is_dns1123_subdomain(p))
            || name.len() > 63
            || !name_re.is_match(name)
        {
            return Err(format!("{what}: invalid label key {k:?}"));
        }
        let v = v
            .as_str()
            .ok_or(format!("{what}: label {k} is not a string"))?;
        if v.len() > 63 || !value_re.is_match(v) {
            return Err(format!("{what}: invalid label value {k}={v:?}"));
        }
    }
    Ok(())
}

fn subset(sel: &Value, labels: &Value) -> bool {
    sel.as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The schema check of every object, then the consistency checks across them. Returns every
/// problem found.
fn problems(rel: &Release) -> Vec<String> {
    let mut out = Vec::new();
    for o in &rel.objects {
        let id = format!("{} {}", o["kind"], o["metadata"]["name"]);
        if let Err(e) = validate(o) {
            out.push(format!("{id}: {e}"));
        }
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let name_ok = if o["kind"] == "Service" {
            is_dns1123_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
        } else {
            is_dns1123_subdomain(name)
        };
        if !name_ok {
            out.push(format!("{id}: invalid name"));
        }
        let cluster_scoped = matches!(
            o["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding")
        );
        let ns = &o["metadata"]["namespace"];
        if cluster_scoped != ns.is_null()
            || (!cluster_scoped && ns.as_str() != Some(rel.namespace.as_str()))
        {
            out.push(format!("{id}: namespace {ns}"));
        }
        if let Err(e) = check_labels(&id, &o["metadata"]["labels"]) {
            out.push(e);
        }
    }
    let deps = rel.all("Deployment");
    if deps.len() != 1 {
        out.push(format!("{} Deployments", deps.len()));
        return out;
    }
    let pod = &deps[0]["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    if let Err(e) = check_labels("pod", pod_labels) {
        out.push(e);
    }
    if !subset(&deps[0]["spec"]["selector"]["matchLabels"], pod_labels) {
        out.push("Deployment selector does not match its pod labels".into());
    }
    let spec = &pod["spec"];
    let c = &spec["containers"][0];
    // (name, protocol) → port
    let mut ports: BTreeMap<(String, String), i64> = BTreeMap::new();
    for p in c["ports"].as_array().into_iter().flatten() {
        let n = p["name"].as_str().unwrap_or_default().to_string();
        if !is_port_name(&n) {
            out.push(format!("container port name {n:?}"));
        }
        let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
        if ports
            .insert((n.clone(), proto), p["containerPort"].as_i64().unwrap_or(0))
            .is_some()
        {
            out.push(format!("container port name {n} twice"));
        }
    }
    let tcp_ports: BTreeSet<i64> = ports
        .iter()
        .filter(|((_, proto), _)| proto == "TCP")
        .map(|(_, p)| *p)
        .collect();
    for probe in ["livenessProbe", "readinessProbe"] {
        if let Some(p) = c[probe]["httpGet"]["port"].as_i64()
            && !tcp_ports.contains(&p)
        {
            out.push(format!("{probe} port {p} is not a container port"));
        }
    }
    let volumes: BTreeSet<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| s(&v["name"]))
        .collect();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        if !volumes.contains(&s(&m["name"])) {
            out.push(format!("volumeMount {} has no volume", m["name"]));
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(cm) = v["configMap"]["name"].as_str() {
            match rel
                .objects
                .iter()
                .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == cm)
            {
                None => out.push(format!("volume {} names a missing ConfigMap", v["name"])),
                Some(o) => {
                    for item in v["configMap"]["items"].as_array().into_iter().flatten() {
                        if o["data"][s(&item["key"])].is_null() {
                            out.push(format!("ConfigMap {cm} has no key {}", item["key"]));
                        }
                    }
                }
            }
        }
    }
    let sa = spec["serviceAccountName"].as_str().unwrap_or("default");
    let sas: Vec<_> = rel.all("ServiceAccount");
    // With serviceAccount.create=false the account exists outside the release.
    if !sas.is_empty() && !sas.iter().any(|o| o["metadata"]["name"] == sa) {
        out.push(format!("serviceAccountName {sa} is not rendered"));
    }
    for svc in rel.all("Service") {
        let id = format!("Service {}", svc["metadata"]["name"]);
        if !subset(&svc["spec"]["selector"], pod_labels) {
            out.push(format!("{id}: selector does not match the pods"));
        }
        let mut names = BTreeSet::new();
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            let n = p["name"].as_str().unwrap_or_default().to_string();
            if !is_port_name(&n) || !names.insert(n.clone()) {
                out.push(format!("{id}: port name {n:?}"));
            }
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
            match &p["targetPort"] {
                Value::String(t) if !ports.contains_key(&(t.clone(), proto.clone())) => out.push(
                    format!("{id}: targetPort {t}/{proto} is not a container port"),
                ),
                Value::Number(n)
                    if !ports
                        .iter()
                        .any(|((_, pr), v)| *pr == proto && Some(*v) == n.as_i64()) =>
                {
                    out.push(format!(
                        "{id}: targetPort {n}/{proto} is not a container port"
                    ))
                }
                _ => {}
            }
        }
    }
    for crb in rel.all("ClusterRoleBinding") {
        let role = &crb["roleRef"]["name"];
        if !rel
            .all("ClusterRole")
            .iter()
            .any(|r| r["metadata"]["name"] == *role)
        {
            out.push(format!(
                "ClusterRoleBinding names a missing ClusterRole {role}"
            ));
        }
        for sub in crb["subjects"].as_array().into_iter().flatten() {
            if sub["name"] != sa || sub["namespace"].as_str() != Some(rel.namespace.as_str()) {
                out.push(format!("ClusterRoleBinding subject {sub} is not the pod's"));
            }
        }
    }
    for pdb in rel.all("PodDisruptionBudget") {
        if !subset(&pdb["spec"]["selector"]["matchLabels"], pod_labels) {
            out.push("PodDisruptionBudget selects no pod of this release".into());
        }
    }
    for sm in rel.all("ServiceMonitor") {
        let sel = &sm["spec"]["selector"]["matchLabels"];
        let svcs: Vec<_> = rel
            .all("Service")
            .into_iter()
            .filter(|svc| subset(sel, &svc["metadata"]["labels"]))
            .collect();
        if svcs.len() != 1 {
            out.push(format!("ServiceMonitor selects {} Services", svcs.len()));
            continue;
        }
        for ep in sm["spec"]["endpoints"].as_array().into_iter().flatten() {
            let has = svcs[0]["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == ep["port"]);
            if !has {
                out.push(format!(
                    "ServiceMonitor port {} not on the Service",
                    ep["port"]
                ));
            }
        }
    }
    out
}

fn validate_release(rel: &Release) {
    let p = problems(rel);
    assert!(
        p.is_empty(),
        "release {} renders invalid objects:\n{}",
        rel.name,
        p.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The server block's lines from the default `extraZonePlugins`, after `k8s_gateway`.
const DEFAULT_PLUGINS: &str = "    log
    errors
    health {
        lameduck 5s
    }
    ready
    prometheus 0.0.0.0:9153
    forward . /etc/resolv.conf
    loop
    reload
    loadbalance
";

#[test]
fn helm_lint_is_clean() {
    let lint = |set: &[&str]| {
        json!({"op": "lint", "chart": chart_dir(), "namespace": "default", "set": set,
               "strict": true})
    };
    let cases: &[&[&str]] = &[
        &["domain=example.com"],
        &["domain=zone.example.com", "secondary=exdns-2.kube-system"],
        &[
            "domain=example.com",
            "podip.enabled=true",
            "forward.upstreams={tls://9.9.9.9}",
            "forward.serverName=dns.quad9.net",
            "forward.interface=tun0",
            "cache.enabled=true",
            "dnsChallenge.enabled=true",
            "serviceMonitor.enabled=true",
            "podDisruptionBudget.enabled=true",
        ],
        &[
            "domain=example.com",
            "zoneFiles[0].filename=example.org.db",
            "zoneFiles[0].domains=example.org",
            "zoneFiles[0].reload=30s",
            "zoneFiles[0].fallthrough.enabled=true",
            "zoneFiles[0].contents=$TTL 60",
        ],
    ];
    let mut jobs: Vec<Value> = vec![json!({"op": "version"})];
    jobs.extend(cases.iter().map(|c| lint(c)));
    jobs.push(lint(&[]));
    let mut results = helm(&jobs).into_iter();
    let version = results.next().unwrap().unwrap();
    assert!(
        s(&version["helm"]).starts_with("v4."),
        "the real Helm library: {version}"
    );
    for (case, r) in cases.iter().zip(&mut results) {
        let report = r.unwrap();
        assert_eq!(report["total_charts_linted"], 1, "{report}");
        assert_eq!(report["errors"], json!([]), "{case:?}: {report}");
        // Severity 1 is info ("icon is recommended"); nothing at warning (2) or error (3).
        for m in report["messages"].as_array().unwrap() {
            assert!(m["severity"].as_i64().unwrap() < 2, "{case:?}: {m}");
        }
    }
    // `helm lint charts/exdns` with no values at all: Helm lints `required`/`fail` as
    // informational, so this is clean too (installing without a domain fails, see
    // missing_or_bad_values_are_clear_errors).
    let report = results.next().unwrap().unwrap();
    assert_eq!(report["errors"], json!([]), "{report}");
    for m in report["messages"].as_array().unwrap() {
        assert!(m["severity"].as_i64().unwrap() < 2, "no values: {m}");
    }
}

#[test]
fn default_values_render_the_k8s_gateway_setup() {
    let rel = render("exdns", "default", &["domain=example.com"]);
    let want: BTreeSet<(String, String)> = [
        ("ConfigMap", "exdns"),
        ("Deployment", "exdns"),
        ("Service", "exdns"),
        ("ServiceAccount", "exdns"),
        ("ClusterRole", "default-exdns"),
        ("ClusterRoleBinding", "default-exdns"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(rel.kinds_and_names(), want);
    assert_eq!(
        rel.corefile(),
        format!(
            ".:1053 {{
    k8s_gateway example.com {{
        ttl 300
        apex exdns.default
    }}
{DEFAULT_PLUGINS}}}"
        )
    );
    assert_check_ok(&rel);

    // Deployment: the CoreDNS command line, probes, config checksum, hardening.
    let dep = rel.one("Deployment");
    let c = rel.container();
    assert_eq!(c["args"], json!(["-conf", "/etc/coredns/Corefile"]));
    assert_eq!(s(&c["image"]), "ghcr.io/exdns/exdns:0.1.0");
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/health", "port": 8080, "scheme": "HTTP"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/ready", "port": 8181, "scheme": "HTTP"})
    );
    let ports: Vec<(String, i64, String)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                s(&p["name"]),
                p["containerPort"].as_i64().unwrap(),
                s(&p["protocol"]),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dns-udp", 1053, "UDP"),
            ("dns-tcp", 1053, "TCP"),
            ("health", 8080, "TCP"),
            ("ready", 8181, "TCP"),
            ("metrics", 9153, "TCP"),
        ]
        .map(|(a, b, c)| (a.to_string(), b, c.to_string()))
    );
    let checksum = hex(&Sha256::digest(
        rel.templates["templates/configmap.yaml"].as_bytes(),
    ));
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
        json!(checksum)
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "privileged": false, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "config", "mountPath": "/etc/coredns", "readOnly": true}])
    );
    assert!(c.get("env").is_none(), "{c}");

    // Service: LoadBalancer, 53 → 1053 over UDP and TCP.
    let svc = rel.get("Service", "exdns");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(
        svc["spec"]["ports"],
        json!([
            {"name": "dns-udp", "port": 53, "targetPort": "dns-udp", "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp", "protocol": "TCP"},
        ])
    );
    // The apex is the Service's name.namespace: its LoadBalancer address is the glue.
    assert!(rel.corefile().contains("apex exdns.default\n"));

    // NOTES: find the address, delegate, check with dig.
    let notes = rel.notes();
    for line in [
        "kubectl -n default get svc exdns -o jsonpath='{.status.loadBalancer.ingress[0].ip}'",
        "example.com.  NS  exdns.default.example.com.",
        "exdns.default.example.com.  A  $EXTERNAL_IP",
        "dig @$EXTERNAL_IP example.com NS +norec",
        "--set secondary=exdns.default",
    ] {
        assert!(notes.contains(line), "NOTES lack {line:?}:\n{notes}");
    }
    assert!(!notes.contains("WARNING"), "{notes}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn missing_or_bad_values_are_clear_errors() {
    // The templates' checks, for what a schema cannot say (an empty domain, values that need
    // each other); the same with and without schema validation.
    let template_checks: &[Refused] = &[
        (
            &[],
            json!({}),
            "domain is required: the zone(s) to serve, e.g. --set domain=example.com",
        ),
        (&["domain=  "], json!({}), "domain is required"),
        (
            &["domain=example.com", "forward.interface=tun0"],
            json!({}),
            "forward.interface needs forward.upstreams",
        ),
        (
            &["domain=example.com", "serviceMonitor.enabled=true"],
            json!({"extraZonePlugins": [{"name": "errors"}]}),
            "serviceMonitor.enabled needs the prometheus plugin",
        ),
    ];
    assert_refused(template_checks, false);
    assert_refused(template_checks, true);
    // An unknown kind: the schema's error (the_values_schema_rejects_bad_values), and the
    // templates' own behind it.
    assert_refused(
        &[(
            &["domain=example.com", "watchedResources={Ingress,Pod}"],
            json!({}),
            r#"watchedResources: unknown kind "Pod" (known: HTTPRoute, TLSRoute, GRPCRoute, TCPRoute, UDPRoute, DNSEndpoint, VirtualServer, IngressRoute, IngressRouteTCP, IngressRouteUDP, IstioGateway, IstioVirtualService, Ingress, Service, Node)"#,
        )],
        true,
    );
}

#[test]
fn the_values_schema_rejects_bad_values() {
    // Helm validates the values against values.schema.json before rendering: a mistyped value
    // is refused with its path instead of rendering silently. `helm install --set ttl=abc`:
    let schema = "values don't meet the specifications of the schema(s) in the following chart(s):\nexdns:\n- at '/ttl': got string, want integer";
    let kinds = "value must be one of 'HTTPRoute', 'TLSRoute', 'GRPCRoute', 'TCPRoute', 'UDPRoute', 'DNSEndpoint', 'VirtualServer', 'IngressRoute', 'IngressRouteTCP', 'IngressRouteUDP', 'IstioGateway', 'IstioVirtualService', 'Ingress', 'Service', 'Node'";
    let sixteen: Vec<String> = (1..=16).map(|i| format!("tls://192.0.2.{i}")).collect();
    let d = "domain=example.com";
    assert_refused(
        &[
            (&[d, "ttl=abc"], json!({}), schema),
            (
                &[d, "ttl=5000"],
                json!({}),
                "at '/ttl': maximum: got 5,000, want 3,600",
            ),
            (
                &[d, "ttl=-1"],
                json!({}),
                "at '/ttl': minimum: got -1, want 0",
            ),
            (&["domain=null"], json!({}), "missing property 'domain'"),
            (
                &[],
                json!({"domain": {"zone": "example.com"}}),
                "at '/domain': got object, want string or array",
            ),
            (
                &[d, "tll=30"],
                json!({}),
                "additional properties 'tll' not allowed",
            ),
            (
                &[d, "forward.upstream={tls://9.9.9.9}"],
                json!({}),
                "at '/forward': additional properties 'upstream' not allowed",
            ),
            (
                &[d, "watchedResources={Ingress,Pod}"],
                json!({}),
                &format!("at '/watchedResources/1': {kinds}"),
            ),
            (
                &[d],
                json!({"watchedResources": "Ingress"}),
                "at '/watchedResources': got string, want array",
            ),
            (
                &[d, "forward.policy=fastest"],
                json!({}),
                "at '/forward/policy': value must be one of '', 'random', 'round_robin', 'sequential'",
            ),
            (
                &[d],
                json!({"forward": {"upstreams": sixteen}}),
                "at '/forward/upstreams': maxItems: got 16, want 15",
            ),
            (
                &[d, "nodeAddressType=Hostname"],
                json!({}),
                "at '/nodeAddressType': value must be one of '', 'InternalIP', 'ExternalIP'",
            ),
            (
                &[d, "service.type=ExternalName"],
                json!({}),
                "at '/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'",
            ),
            (
                &[d, "service.ipFamilies={IPv5}"],
                json!({}),
                "at '/service/ipFamilies/0': value must be one of 'IPv4', 'IPv6'",
            ),
            (
                &[d, "service.externalTrafficPolicy=local"],
                json!({}),
                "at '/service/externalTrafficPolicy': value must be one of '', 'Cluster', 'Local'",
            ),
            (
                &[d, "image.pullPolicy=Sometimes"],
                json!({}),
                "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
            ),
            (
                &[d, "containerPort=70000"],
                json!({}),
                "at '/containerPort': maximum: got 70,000, want 65,535",
            ),
            (
                &[d, "podip.enabled=yes"],
                json!({}),
                "at '/podip/enabled': got string, want boolean",
            ),
            (
                &[d, "cache.ttl=0"],
                json!({}),
                "at '/cache/ttl': minimum: got 0, want 1",
            ),
            (
                &[d, "replicaCount=two"],
                json!({}),
                "at '/replicaCount': got string, want integer",
            ),
            (
                &[d],
                json!({"extraZonePlugins": [{"parameters": ". 9.9.9.9"}]}),
                "at '/extraZonePlugins/0': missing property 'name'",
            ),
            (
                &[d],
                json!({"extraZonePlugins": [{"name": "log", "config": "x"}]}),
                "at '/extraZonePlugins/0': additional properties 'config' not allowed",
            ),
            (
                &[d],
                json!({"zoneFiles": ["a.db"]}),
                "at '/zoneFiles/0': got string, want object",
            ),
            (
                &[d],
                json!({"zoneFiles": [{"filename": "a.db", "contents": "x", "reload": true}]}),
                "at '/zoneFiles/0/reload': got boolean, want null or integer or string",
            ),
            (
                &[d],
                json!({"livenessProbe": {"periodSeconds": 0}}),
                "at '/livenessProbe/periodSeconds': minimum: got 0, want 1",
            ),
            (
                &[d],
                json!({"customLabels": {"team": ["net"]}}),
                "at '/customLabels/team': got array, want string",
            ),
        ],
        false,
    );

    // Free-form values stay free-form, and every shape the templates accept is accepted.
    let rel = render_values(
        "exdns",
        "default",
        &[
            d,
            "watchedResources={service,INGRESS}",
            "podDisruptionBudget.minAvailable=50%",
        ],
        json!({
            "image": {"tag": 2},
            "extraZonePlugins": [{"name": "cache", "parameters": 30}, {"name": "ready"}],
            "resources": {"limits": {"memory": "64Mi", "cpu": "1"}},
            "podSecurityContext": {"fsGroup": 1000, "supplementalGroups": [1]},
            "securityContext": {"capabilities": {"drop": ["ALL"]}},
            "affinity": {"nodeAffinity": {}},
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "zoneFiles": [{"filename": "a.db", "domains": ["a.example"], "reload": null,
                           "zoneName": "a.example.", "contents": "$TTL 60\n"}],
        }),
    );
    assert_eq!(rel.container()["image"], "ghcr.io/exdns/exdns:2");
    assert!(
        rel.corefile().contains("    cache 30\n"),
        "{}",
        rel.corefile()
    );
}

#[test]
fn set_values_as_on_the_helm_command_line() {
    let rel = render(
        "dns",
        "edge",
        &[
            "domain=example.com example.org",
            "ttl=30",
            "watchedResources={HTTPRoute,ingress,Service}",
            "filters.ingressClasses={nginx,traefik}",
            "filters.gatewayClasses={public}",
            r"filters.serviceLabelSelectors={app=web,tier in (a\,b)}",
            "fallthrough.enabled=true",
            "fallthrough.zones={example.org}",
            "nodeAddressType=ExternalIP",
        ],
    );
    assert_eq!(
        rel.corefile(),
        r#".:1053 {
    k8s_gateway example.com example.org {
        resources HTTPRoute Ingress Service
        ingressClasses nginx traefik
        gatewayClasses public
        serviceLabelSelectors "app=web" "tier in (a,b)"
        ttl 30
        apex dns-exdns.edge
        fallthrough example.org
        nodeAddressType ExternalIP
    }
"#
        .to_string()
            + DEFAULT_PLUGINS
            + "}"
    );
    assert_check_ok(&rel);
    // The release name lacks the chart name: resources are `<release>-exdns`, so is the apex.
    assert_eq!(rel.one("Service")["metadata"]["name"], json!("dns-exdns"));

    // A YAML list for domain, an explicit apex, fallthrough for every zone, fullnameOverride.
    let rel = render_values(
        "dns",
        "edge",
        &[
            "apex=ns1.edge",
            "fallthrough.enabled=true",
            "fullnameOverride=edge-dns",
        ],
        json!({"domain": ["a.example", "b.example"]}),
    );
    let cf = rel.corefile();
    assert!(cf.starts_with(".:1053 {\n    k8s_gateway a.example b.example {\n        ttl 300\n        apex ns1.edge\n        fallthrough\n    }\n"), "{cf}");
    assert_check_ok(&rel);
    assert_eq!(rel.one("Deployment")["metadata"]["name"], json!("edge-dns"));

    // extraZonePlugins replaced as a whole; the probes and metrics port follow it.
    let rel = render_values(
        "exdns",
        "default",
        &["domain=example.com"],
        json!({"extraZonePlugins": [
            {"name": "errors"},
            {"name": "health", "parameters": ":8086"},
            {"name": "prometheus", "parameters": "0.0.0.0:9253"},
            {"name": "hosts", "configBlock": "192.0.2.1 gw.example.net\nfallthrough"},
        ]}),
    );
    assert_eq!(
        rel.corefile(),
        ".:1053 {
    k8s_gateway example.com {
        ttl 300
        apex exdns.default
    }
    errors
    health :8086
    prometheus 0.0.0.0:9253
    hosts {
        192.0.2.1 gw.example.net
        fallthrough
    }
}"
    );
    assert_check_ok(&rel);
    let c = rel.container();
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], 8086);
    assert!(c.get("readinessProbe").is_none(), "no ready plugin: {c}");
    let names: Vec<String> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}:{}", s(&p["name"]), p["containerPort"]))
        .collect();
    assert_eq!(
        names,
        [
            "dns-udp:1053",
            "dns-tcp:1053",
            "health:8086",
            "metrics:9253"
        ]
    );
}

#[test]
fn exdns_check_catches_a_bad_rendered_corefile() {
    // The check is real: a value exdns refuses is reported with exdns's own error. (The schema
    // refuses `--set ttl=5000` before rendering, so the rendered Corefile is edited to it.)
    let rel = render("exdns", "default", &["domain=example.com", "ttl=300"]);
    let cf = rel.corefile();
    assert!(cf.contains("\n        ttl 300\n"), "{cf}");
    let e = check_corefile(&cf.replace("\n        ttl 300\n", "\n        ttl 5000\n")).unwrap_err();
    assert!(
        e.contains("plugin/k8s_gateway:") && e.contains("ttl must be in range [0, 3600]: 5000"),
        "{e}"
    );
    let rel = render(
        "exdns",
        "default",
        &[
            "domain=example.com",
            "forward.upstreams={https://dns.example}",
        ],
    );
    assert!(check_corefile(&rel.corefile()).is_err());
}

#[test]
fn vpn_gateway_options_forward_podip_cache() {
    let rel = render(
        "gw",
        "vpn",
        &[
            "domain=vpn.example.com",
            "forward.upstreams={tls://9.9.9.9,tls://149.112.112.112}",
            "forward.serverName=dns.quad9.net",
            "forward.interface=tun0",
            "forward.policy=sequential",
            "forward.healthCheck=5s",
            "forward.failfastAllUnhealthyUpstreams=true",
            "forward.extraOptions={max_fails 3}",
            "podip.enabled=true",
            "podip.requireUpstream=true",
            "podip.interface=vxlan0",
            "cache.enabled=true",
            "cache.ttl=60",
        ],
    );
    assert_eq!(
        rel.corefile(),
        ".:1053 {
    k8s_gateway vpn.example.com {
        ttl 300
        apex gw-exdns.vpn
    }
"
        .to_string()
            + &DEFAULT_PLUGINS.replace("    forward . /etc/resolv.conf\n", "")
            + "    forward . tls://9.9.9.9 tls://149.112.112.112 {
        tls_servername dns.quad9.net
        interface tun0
        policy sequential
        health_check 5s
        failfast_all_unhealthy_upstreams
        max_fails 3
    }
    cache 60
    podip :3150 {
        interface vxlan0
        require_upstream
    }
}"
    );
    assert_check_ok(&rel);
    let c = rel.container();
    // POD_IP from the downward API is what podip reports.
    assert_eq!(
        c["env"],
        json!([{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}])
    );
    assert_eq!(
        c["ports"][5],
        json!({"name": "podip", "containerPort": 3150, "protocol": "TCP"})
    );
    // SO_BINDTODEVICE needs no capability (Linux ≥ 5.7, the chart's floor for `interface`);
    // no NET_BIND_SERVICE either (ports ≥ 1024).
    assert_eq!(
        c["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]})
    );
    // `curl -fs http://gw-exdns-podip.vpn`: port 80 → the endpoint.
    let svc = rel.get("Service", "gw-exdns-podip");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": "podip", "protocol": "TCP"}])
    );
    assert!(
        rel.notes().contains("curl -fs http://gw-exdns-podip.vpn\n"),
        "{}",
        rel.notes()
    );

    // Plain upstreams, no options: a one-line forward.
    let rel = render(
        "gw",
        "vpn",
        &[
            "domain=vpn.example.com",
            "forward.upstreams={10.0.0.10:53}",
            "forward.from=cluster.local",
        ],
    );
    assert!(
        rel.corefile()
            .contains("\n    forward cluster.local 10.0.0.10:53\n}"),
        "{}",
        rel.corefile()
    );
    assert!(!rel.corefile().contains("/etc/resolv.conf"));
    assert_check_ok(&rel);
}

#[test]
fn privileges_follow_the_configuration() {
    // No capability is ever added while every port is 1024 or above, whatever else is set:
    // pinning forwarding to an interface (SO_BINDTODEVICE) needs none since Linux 5.7, the
    // chart's kernel floor for `forward.interface`.
    let unprivileged: &[&[&str]] = &[
        &["domain=example.com"],
        &[
            "domain=example.com",
            "forward.upstreams={tls://9.9.9.9}",
            "forward.interface=tun0",
        ],
        &[
            "domain=example.com",
            "forward.upstreams={tls://9.9.9.9}",
            "forward.interface=wg0",
            "podip.enabled=true",
            "podip.interface=vxlan0",
            "cache.enabled=true",
            "serviceMonitor.enabled=true",
        ],
    ];
    let jobs: Vec<Value> = unprivileged
        .iter()
        .map(|set| render_job("exdns", "default", set, json!({})))
        .collect();
    for (set, r) in unprivileged.iter().zip(helm(&jobs)) {
        let rel = Release::new("exdns", "default", r.unwrap());
        validate_release(&rel);
        assert_eq!(
            rel.container()["securityContext"]["capabilities"],
            json!({"drop": ["ALL"]}),
            "{set:?}"
        );
        let pod = &rel.one("Deployment")["spec"]["template"]["spec"];
        assert!(pod["securityContext"].get("sysctls").is_none(), "{set:?}");
    }
    // A port below 1024: NET_BIND_SERVICE, and the unprivileged-port sysctl (which is what lets
    // a non-root process bind it: added capabilities do not reach a non-root process's
    // effective set).
    let rel = render(
        "exdns",
        "default",
        &["domain=example.com", "containerPort=53"],
    );
    let pod = &rel.one("Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["sysctls"],
        json!([{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}])
    );
    assert_eq!(
        rel.container()["securityContext"]["capabilities"]["add"],
        json!(["NET_BIND_SERVICE"])
    );
    assert!(rel.corefile().starts_with(".:53 {\n"));
    assert_eq!(
        rel.container()["ports"][0],
        json!({"name": "dns-udp", "containerPort": 53, "protocol": "UDP"})
    );
    // podip on port 80 counts too.
    let rel = render(
        "exdns",
        "default",
        &["domain=example.com", "podip.enabled=true", "podip.port=80"],
    );
    assert_eq!(
        rel.one("Deployment")["spec"]["template"]["spec"]["securityContext"]["sysctls"][0]["value"],
        "80"
    );
    // User settings are merged over the defaults and win.
    let rel = render(
        "exdns",
        "default",
        &[
            "domain=example.com",
            "securityContext.readOnlyRootFilesystem=false",
            "podSecurityContext.runAsUser=1000",
            "podSecurityContext.fsGroup=1000",
        ],
    );
    let c = rel.container();
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], false);
    assert_eq!(
        c["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]})
    );
    assert_eq!(
        rel.one("Deployment")["spec"]["template"]["spec"]["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 65532, "fsGroup": 1000,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    // secure=false drops the defaults entirely.
    let rel = render("exdns", "default", &["domain=example.com", "secure=false"]);
    assert!(rel.container().get("securityContext").is_none());
    assert!(
        rel.one("Deployment")["spec"]["template"]["spec"]
            .get("securityContext")
            .is_none()
    );
}

#[test]
fn checksum_follows_the_corefile_only() {
    let jobs = [
        render_job("exdns", "default", &["domain=example.com"], json!({})),
        render_job(
            "exdns",
            "default",
            &["domain=example.com", "replicaCount=3"],
            json!({}),
        ),
        render_job(
            "exdns",
            "default",
            &["domain=example.com", "ttl=60"],
            json!({}),
        ),
    ];
    let sums: Vec<Value> = helm(&jobs)
        .into_iter()
        .map(|r| {
            let rel = Release::new("exdns", "default", r.unwrap());
            rel.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                .clone()
        })
        .collect();
    assert_eq!(sums[0], sums[1]);
    assert_ne!(sums[0], sums[2]);
}

#[test]
fn service_options() {
    let rel = render(
        "exdns",
        "default",
        &[
            "domain=example.com",
            "service.loadBalancerIP=192.0.2.53",
            "service.loadBalancerClass=example.com/lb",
            "service.externalTrafficPolicy=Local",
            "service.externalIPs={192.0.2.54}",
            "service.ipFamilyPolicy=PreferDualStack",
            "service.ipFamilies={IPv4,IPv6}",
            "service.nodePort=30053",
            "service.annotations.metallb\\.universe\\.tf/allow-shared-ip=dns",
            "service.labels.tier=edge",
            "customLabels.team=net",
        ],
    );
    let svc = rel.one("Service");
    assert_eq!(
        svc["spec"],
        json!({
            "type": "LoadBalancer",
            "selector": {"app.kubernetes.io/name": "exdns", "app.kubernetes.io/instance": "exdns"},
            "loadBalancerIP": "192.0.2.53",
            "loadBalancerClass": "example.com/lb",
            "externalTrafficPolicy": "Local",
            "externalIPs": ["192.0.2.54"],
            "ipFamilyPolicy": "PreferDualStack",
            "ipFamilies": ["IPv4", "IPv6"],
            "ports": [
                {"name": "dns-udp", "port": 53, "targetPort": "dns-udp", "protocol": "UDP", "nodePort": 30053},
                {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp", "protocol": "TCP", "nodePort": 30053},
            ],
        })
    );
    assert_eq!(
        svc["metadata"]["annotations"],
        json!({"metallb.universe.tf/allow-shared-ip": "dns"})
    );
    assert_eq!(svc["metadata"]["labels"]["tier"], "edge");
    // customLabels on every object and on the pods.
    for o in &rel.objects {
        assert_eq!(o["metadata"]["labels"]["team"], "net", "{o}");
    }
    assert_eq!(
        rel.one("Deployment")["spec"]["template"]["metadata"]["labels"]["team"],
        "net"
    );

    // useTcp=false (the k8s_gateway chart's default): UDP only; ClusterIP with a fixed address.
    let rel = render(
        "exdns",
        "default",
        &[
            "domain=example.com",
            "service.useTcp=false",
            "service.type=ClusterIP",
            "service.clusterIP=10.43.0.53",
        ],
    );
    let svc = rel.one("Service");
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.53");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "dns-udp", "port": 53, "targetPort": "dns-udp", "protocol": "UDP"}])
    );
    assert!(
        rel.notes().contains("WARNING: service.type is ClusterIP"),
        "{}",
        rel.notes()
    );
}

#[test]
fn every_optional_part_renders_valid_objects() {
    let rel = render_values(
        "exdns",
        "dns",
        &[
            "domain=example.com",
            "podip.enabled=true",
            "forward.upstreams={tls://9.9.9.9}",
            "forward.interface=wg0",
            "cache.enabled=true",
            "dnsChallenge.enabled=true",
            "serviceMonitor.enabled=true",
            "serviceMonitor.labels.release=prom",
            "serviceMonitor.scrapeTimeout=10s",
            "podDisruptionBudget.enabled=true",
            "replicaCount=2",
            "priorityClassName=system-cluster-critical",
            "imagePullSecrets[0].name=regcred",
            "image.registry=registry.example.com/",
            "image.repository=net/exdns",
            "image.tag=1.2.3",
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/x",
            "podAnnotations.example\\.com/owner=net",
            "env[0].name=RUST_LOG",
            "env[0].value=info",
        ],
        json!({
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                 "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "exdns"}}}}]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "exdns"}}}],
            "extraVolumes": [{"name": "vpn-ca", "secret": {"secretName": "vpn-ca"}}],
            "extraVolumeMounts": [{"name": "vpn-ca", "mountPath": "/etc/exdns", "readOnly": true}],
        }),
    );
    assert_check_ok(&rel);
    let kinds: BTreeSet<String> = rel.kinds_and_names().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
        .map(String::from)
        .into_iter()
        .collect()
    );
    assert_eq!(rel.all("Service").len(), 3, "dns, podip, metrics");
    let dep = rel.one("Deployment");
    let spec = &dep["spec"]["template"]["spec"];
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(spec["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(spec["tolerations"][0]["key"], "CriticalAddonsOnly");
    assert_eq!(spec["topologySpreadConstraints"][0]["maxSkew"], 1);
    assert_eq!(
        spec["volumes"][1],
        json!({"name": "vpn-ca", "secret": {"secretName": "vpn-ca"}})
    );
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["example.com/owner"],
        "net"
    );
    let c = rel.container();
    assert_eq!(c["image"], "registry.example.com/net/exdns:1.2.3");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(c["env"][1], json!({"name": "RUST_LOG", "value": "info"}));
    assert_eq!(c["volumeMounts"][1]["mountPath"], "/etc/exdns");
    let pdb = rel.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let sm = rel.one("ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}])
    );
    assert_eq!(
        rel.get("Service", "exdns-metrics")["spec"]["type"],
        "ClusterIP"
    );
    assert_eq!(
        rel.one("ServiceAccount")["metadata"]["annotations"],
        json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"})
    );

    // An existing ServiceAccount, no RBAC objects; PDB by maxUnavailable.
    let rel = render(
        "exdns",
        "dns",
        &[
            "domain=example.com",
            "serviceAccount.create=false",
            "serviceAccount.name=dns-reader",
            "rbac.create=false",
            "podDisruptionBudget.enabled=true",
            "podDisruptionBudget.maxUnavailable=1",
        ],
    );
    assert!(rel.all("ServiceAccount").is_empty());
    assert!(rel.all("ClusterRole").is_empty() && rel.all("ClusterRoleBinding").is_empty());
    assert_eq!(
        rel.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "dns-reader"
    );
    assert_eq!(
        rel.one("PodDisruptionBudget")["spec"],
        json!({"maxUnavailable": 1, "selector": {"matchLabels":
            {"app.kubernetes.io/name": "exdns", "app.kubernetes.io/instance": "exdns"}}})
    );

    // Long release names stay within Kubernetes' limits.
    let long = "a-very-long-release-name-for-the-exdns-chart-tests-x";
    let rel = render(
        long,
        "dns",
        &[
            "domain=example.com",
            "podip.enabled=true",
            "serviceMonitor.enabled=true",
        ],
    );
    for (_, name) in rel.kinds_and_names() {
        assert!(name.len() <= 63, "{name}");
    }
}

#[test]
fn the_validator_rejects_what_the_api_server_would() {
    let rel = render("exdns", "default", &["domain=example.com"]);
    let dep = rel.one("Deployment").clone();
    assert_eq!(validate(&dep), Ok(()));
    // A misspelt field (silently dropped by a lenient decoder).
    let mut bad = dep.clone();
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = json!({});
    let e = validate(&bad).unwrap_err();
    assert!(e.contains("containers[0].readinesProbe"), "{e}");
    // A field at the wrong level.
    let mut bad = dep.clone();
    bad["spec"]["template"]["spec"]["readOnlyRootFilesystem"] = json!(true);
    assert!(
        validate(&bad)
            .unwrap_err()
            .contains(".spec.template.spec.readOnlyRootFilesystem")
    );
    // A wrong type.
    let mut bad = dep.clone();
    bad["spec"]["replicas"] = json!("1");
    assert!(validate(&bad).is_err());
    // A wrong apiVersion for the kind.
    let mut bad = dep;
    bad["apiVersion"] = json!("extensions/v1beta1");
    assert!(validate(&bad).is_err());
    // ServiceMonitor: unknown fields are denied.
    let sm = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "x"}, "spec": {"selector": {}, "endpoints": [{"port": "m", "bogus": 1}]}});
    assert!(validate(&sm).unwrap_err().contains("bogus"));
    // Cross-object checks: a Service whose targetPort names no container port.
    let mut rel = render("exdns", "default", &["domain=example.com"]);
    let i = rel
        .objects
        .iter()
        .position(|o| o["kind"] == "Service")
        .unwrap();
    rel.objects[i]["spec"]["ports"][0]["targetPort"] = json!("dns");
    let p = problems(&rel);
    assert_eq!(
        p,
        ["Service \"exdns\": targetPort dns/UDP is not a container port"]
    );
}

/// The API resources (group, plural) exdns lists and watches for `kinds`, from exdns itself.
fn needed_by_exdns(kinds: &[Kind]) -> BTreeSet<(String, String)> {
    let kinds: &[Kind] = if kinds.is_empty() {
        &Kind::DEFAULT
    } else {
        kinds
    };
    kinds
        .iter()
        .flat_map(|k| k.watched().iter())
        .map(|o| {
            let (group, _, plural) = o.api();
            (group.to_string(), plural.to_string())
        })
        .collect()
}

/// The rendered ClusterRole's rules as (group, resource); every rule must be list+watch only.
fn granted(rel: &Release) -> BTreeSet<(String, String)> {
    let role = rel.one("ClusterRole");
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(rule["verbs"], json!(["list", "watch"]), "{rule}");
        let keys: BTreeSet<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["apiGroups", "resources", "verbs"]),
            "{rule}"
        );
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                assert!(!s(r).contains('*') && !s(g).contains('*'), "{rule}");
                assert!(out.insert((s(g), s(r))), "({g}, {r}) granted twice: {role}");
            }
        }
    }
    out
}

#[test]
fn rbac_is_exactly_what_the_watched_resources_need() {
    // The spec's table, written out, for each kind alone; exdns's own model must agree.
    let table: &[(&str, &[(&str, &str)])] = &[
        (
            "HTTPRoute",
            &[
                ("gateway.networking.k8s.io", "gateways"),
                ("gateway.networking.k8s.io", "httproutes"),
            ],
        ),
        (
            "TLSRoute",
            &[
                ("gateway.networking.k8s.io", "gateways"),
                ("gateway.networking.k8s.io", "tlsroutes"),
            ],
        ),
        (
            "GRPCRoute",
            &[
                ("gateway.networking.k8s.io", "gateways"),
                ("gateway.networking.k8s.io", "grpcroutes"),
            ],
        ),
        (
            "TCPRoute",
            &[
                ("gateway.networking.k8s.io", "gateways"),
                ("gateway.networking.k8s.io", "tcproutes"),
            ],
        ),
        (
            "UDPRoute",
            &[
                ("gateway.networking.k8s.io", "gateways"),
                ("gateway.networking.k8s.io", "udproutes"),
            ],
        ),
        ("DNSEndpoint", &[("externaldns.k8s.io", "dnsendpoints")]),
        ("VirtualServer", &[("k8s.nginx.org", "virtualservers")]),
        // Traefik's kinds in both API groups (the legacy traefik.containo.us too).
        (
            "IngressRoute",
            &[
                ("traefik.io", "ingressroutes"),
                ("traefik.containo.us", "ingressroutes"),
            ],
        ),
        (
            "IngressRouteTCP",
            &[
                ("traefik.io", "ingressroutetcps"),
                ("traefik.containo.us", "ingressroutetcps"),
            ],
        ),
        (
            "IngressRouteUDP",
            &[
                ("traefik.io", "ingressrouteudps"),
                ("traefik.containo.us", "ingressrouteudps"),
            ],
        ),
        // Istio Gateways answer with the addresses of the Services their selector picks.
        (
            "IstioGateway",
            &[("networking.istio.io", "gateways"), ("", "services")],
        ),
        (
            "IstioVirtualService",
            &[
                ("networking.istio.io", "gateways"),
                ("networking.istio.io", "virtualservices"),
                ("", "services"),
            ],
        ),
        ("Ingress", &[("networking.k8s.io", "ingresses")]),
        (
            "Service",
            &[("", "services"), ("discovery.k8s.io", "endpointslices")],
        ),
        ("Node", &[("", "nodes")]),
    ];
    for (kind, want) in table {
        let want: BTreeSet<(String, String)> = want
            .iter()
            .map(|(g, r)| (g.to_string(), r.to_string()))
            .collect();
        assert_eq!(
            needed_by_exdns(&[Kind::parse(kind).unwrap()]),
            want,
            "exdns's model and the RBAC table disagree on {kind}"
        );
    }

    // No kind at all, each kind alone, every pair, every kind but one and every kind, in
    // exdns's order (the grants are a union per kind, so pairs show any interaction: Istio's
    // Services next to Service's own, shared Gateway grants); and a few in other orders and
    // spellings. (Every subset was 2^15 renders and as many `exdns -check` runs: minutes of CI
    // for nothing pairs do not show.)
    let all: Vec<Kind> = Kind::ALL.to_vec();
    let names = |ks: &[Kind]| {
        ks.iter()
            .map(|k| k.as_str().to_string())
            .collect::<Vec<_>>()
    };
    let mut cases: Vec<Vec<String>> = vec![Vec::new()];
    for (i, a) in all.iter().enumerate() {
        cases.push(names(&[*a]));
        for b in &all[i + 1..] {
            cases.push(names(&[*a, *b]));
        }
        let rest: Vec<Kind> = all.iter().copied().filter(|k| k != a).collect();
        cases.push(names(&rest));
    }
    for extra in [
        &["service", "Ingress", "SERVICE"][..],
        &["Node", "tlsroute", "HTTPRoute"],
        &["dnsendpoint", "virtualserver"],
        &["istiovirtualservice", "Service", "ISTIOGATEWAY"],
        &["IngressRouteTCP"],
        &["ingressrouteudp"],
        &["IngressRouteUDP", "ingressroutetcp", "IngressRoute"],
    ] {
        cases.push(extra.iter().map(|x| x.to_string()).collect());
    }
    cases.push(Kind::ALL.iter().map(|k| k.as_str().to_string()).collect());
    let jobs: Vec<Value> = cases
        .iter()
        .map(|c| {
            render_job(
                "exdns",
                "dns",
                &[],
                json!({"domain": "example.com", "watchedResources": c}),
            )
        })
        .collect();
    let started = Instant::now();
    let results = helm(&jobs);
    eprintln!("{} renders in {:?}", jobs.len(), started.elapsed());
    for (case, r) in cases.iter().zip(results) {
        let rel = Release::new(
            "exdns",
            "dns",
            r.unwrap_or_else(|e| panic!("{case:?}: {e}")),
        );
        validate_release(&rel);
        let kinds: Vec<Kind> = case.iter().map(|k| Kind::parse(k).unwrap()).collect();
        assert_eq!(
            granted(&rel),
            needed_by_exdns(&kinds),
            "watchedResources {case:?}"
        );
        // The Corefile names the kinds in the given order, canonical spelling, once each
        // (or omits `resources` for exdns's default); exdns accepts it.
        let mut canonical: Vec<&str> = Vec::new();
        for k in &kinds {
            if !canonical.contains(&k.as_str()) {
                canonical.push(k.as_str());
            }
        }
        let cf = rel.corefile();
        let line = cf
            .lines()
            .find(|l| l.trim_start().starts_with("resources "))
            .map(|l| l.trim().to_string());
        if canonical.is_empty() {
            assert_eq!(line, None, "{cf}");
        } else {
            assert_eq!(line, Some(format!("resources {}", canonical.join(" "))));
        }
        if let Err(e) = check_corefile(&cf) {
            panic!("{case:?}: exdns -check: {e}\n{cf}");
        }
        // Without Service there is no glue; the NOTES say so.
        let glue_warning = rel
            .notes()
            .contains("watchedResources does not include Service");
        assert_eq!(
            glue_warning,
            !canonical.is_empty() && !canonical.contains(&"Service"),
            "{case:?}"
        );
    }
}

/// The `k8s_gateway` block of a rendered Corefile, with `manifests DIR` added (no API server in
/// tests), in a server block on an ephemeral port with `ready` for the sync.
fn runnable(corefile: &str, dir: &str) -> String {
    let mut lines = corefile.lines();
    let mut block = Vec::new();
    for l in lines.by_ref() {
        if l.trim_start().starts_with("k8s_gateway ") {
            block.push(l.to_string());
            block.push(format!("        manifests {dir}"));
            break;
        }
    }
    for l in lines {
        block.push(l.to_string());
        if l.trim() == "}" {
            break;
        }
    }
    assert!(block.len() > 2, "no k8s_gateway block in {corefile}");
    format!(".:0 {{\n{}\n    ready 127.0.0.1:0\n}}\n", block.join("\n"))
}

fn with_lb_status(svc: &Value, ip: &str) -> String {
    let mut svc = svc.clone();
    svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
    serde_yaml::to_string(&svc).unwrap()
}

/// kdig with `args`, run again until the zone answers (the manifests source may not have
/// indexed its objects when the listener opens; until then k8s_gateway answers SERVFAIL), for
/// at most 10 s: the last run.
fn kdig_synced(args: &[&str]) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out) = support::run("kdig", args);
        if (code == 0 && !out.contains("status: SERVFAIL")) || Instant::now() >= deadline {
            return (code, out);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_ready(ex: &Exdns) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 != 200 {
        assert!(Instant::now() < deadline, "not ready:\n{}", ex.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ns_and_glue(m: &Message) -> (Vec<String>, Vec<(String, IpAddr)>) {
    let mut ns: Vec<String> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::NS(n) => n.0.to_ascii(),
            o => panic!("{o:?}"),
        })
        .collect();
    ns.sort();
    let mut glue: Vec<(String, IpAddr)> = m
        .additionals
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((r.name.to_ascii(), IpAddr::V4(a.0))),
            RData::AAAA(a) => Some((r.name.to_ascii(), IpAddr::V6(a.0))),
            _ => None,
        })
        .collect();
    glue.sort();
    (ns, glue)
}

#[test]
fn dual_deployment_with_two_helm_installs() {
    // The seed README's commands, verbatim (with this chart):
    //   helm install -n kube-system exdns-1 --set domain=zone.example.com --set secondary=exdns-2.kube-system
    //   helm install -n kube-system exdns-2 --set domain=zone.example.com --set secondary=exdns-1.kube-system
    let results = helm(&[
        render_job(
            "exdns-1",
            "kube-system",
            &["domain=zone.example.com", "secondary=exdns-2.kube-system"],
            json!({}),
        ),
        render_job(
            "exdns-2",
            "kube-system",
            &["domain=zone.example.com", "secondary=exdns-1.kube-system"],
            json!({}),
        ),
    ]);
    let mut rels = results
        .into_iter()
        .zip(["exdns-1", "exdns-2"])
        .map(|(r, n)| {
            let rel = Release::new(n, "kube-system", r.unwrap());
            validate_release(&rel);
            assert_check_ok(&rel);
            rel
        });
    let (r1, r2) = (rels.next().unwrap(), rels.next().unwrap());

    // Each apex is its own Service's name.namespace; each secondary is the other's apex.
    for (me, peer) in [(&r1, &r2), (&r2, &r1)] {
        let block = format!(
            "    k8s_gateway zone.example.com {{\n        ttl 300\n        apex {}.kube-system\n        secondary {}.kube-system\n    }}\n",
            me.name, peer.name
        );
        assert!(me.corefile().contains(&block), "{}", me.corefile());
        let svc = me.one("Service");
        assert_eq!(svc["metadata"]["name"], json!(me.name));
        assert_eq!(svc["metadata"]["namespace"], "kube-system");
        assert_eq!(svc["spec"]["type"], "LoadBalancer");
        // Separate ClusterRoles: the two releases do not collide.
        assert_eq!(
            me.one("ClusterRole")["metadata"]["name"],
            json!(format!("kube-system-{}", me.name))
        );
        for line in [
            format!(
                "zone.example.com.  NS  {}.kube-system.zone.example.com.",
                me.name
            ),
            format!(
                "zone.example.com.  NS  {}.kube-system.zone.example.com.",
                peer.name
            ),
            format!("{}.kube-system.zone.example.com.  A  $EXTERNAL_IP", me.name),
        ] {
            assert!(me.notes().contains(&line), "{line}\n{}", me.notes());
        }
    }

    // Run both rendered k8s_gateway configurations against the two rendered Services (with the
    // addresses a load balancer gave them): both must publish the same NS set, glue and SOA.
    let services = [
        (
            "objects/exdns-1.yaml",
            with_lb_status(r1.one("Service"), "198.51.100.1"),
        ),
        (
            "objects/exdns-2.yaml",
            with_lb_status(r2.one("Service"), "203.0.113.11"),
        ),
    ];
    let files: Vec<(&str, &str)> = services.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let ex1 = Exdns::start_with(&runnable(&r1.corefile(), "objects"), &files, &[]);
    let ex2 = Exdns::start_with(&runnable(&r2.corefile(), "objects"), &files, &[]);
    wait_ready(&ex1);
    wait_ready(&ex2);
    let want_ns = vec![
        "exdns-1.kube-system.zone.example.com.".to_string(),
        "exdns-2.kube-system.zone.example.com.".to_string(),
    ];
    let want_glue: Vec<(String, IpAddr)> = vec![
        (want_ns[0].clone(), "198.51.100.1".parse().unwrap()),
        (want_ns[1].clone(), "203.0.113.11".parse().unwrap()),
    ];
    let mut soas = Vec::new();
    for ex in [&ex1, &ex2] {
        let m = udp(ex.dns(), &query("zone.example.com.", RecordType::NS, None));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(ns_and_glue(&m), (want_ns.clone(), want_glue.clone()));
        for (name, ip) in &want_glue {
            let m = udp(ex.dns(), &query(name, RecordType::A, None));
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
            assert_eq!(m.answers.len(), 1);
            match &m.answers[0].data {
                RData::A(a) => assert_eq!(IpAddr::V4(a.0), *ip),
                o => panic!("{name}: {o:?}"),
            }
        }
        let m = udp(ex.dns(), &query("zone.example.com.", RecordType::SOA, None));
        match &m.answers[0].data {
            RData::SOA(soa) => soas.push((soa.mname.to_ascii(), soa.serial)),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(soas[0], soas[1], "both instances publish the same SOA");
    assert_eq!(soas[0].0, "exdns-1.kube-system.zone.example.com.");
}

#[test]
fn dev_loop_values_fit_the_kind_cluster() {
    // The Tiltfile installs the chart with hack/values-kind.yaml; hack/kind.yaml maps the
    // Service's node port to localhost:1053.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| -> Value {
        let text = std::fs::read_to_string(root.join(p)).unwrap();
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
    };
    let rel = render_values("exdns", "default", &[], read("hack/values-kind.yaml"));
    assert_check_ok(&rel);
    assert!(rel.corefile().contains("apex exdns.default\n"));
    assert_eq!(rel.container()["image"], "exdns:dev");
    let kind = read("hack/kind.yaml");
    let mapped: BTreeSet<(i64, i64, String)> = kind["nodes"][0]["extraPortMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["containerPort"].as_i64().unwrap(),
                m["hostPort"].as_i64().unwrap(),
                s(&m["protocol"]),
            )
        })
        .collect();
    let svc: BTreeSet<(i64, i64, String)> = rel.one("Service")["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["nodePort"].as_i64().unwrap(), 1053, s(&p["protocol"])))
        .collect();
    assert_eq!(svc, mapped);
}

#[test]
fn chart_image_and_changelog_versions_follow_cargo() {
    // One version for a release: the tag vX.Y.Z, Cargo.toml's version, the chart's version and
    // appVersion, the image the chart deploys by default, and a CHANGELOG.md section (the
    // release notes). The release workflow refuses a tag that disagrees with Cargo.toml.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = env!("CARGO_PKG_VERSION");
    let yaml = |p: &str| -> Value {
        let text = std::fs::read_to_string(root.join(p)).unwrap();
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
    };
    let chart = yaml("charts/exdns/Chart.yaml");
    assert_eq!(
        chart["appVersion"], version,
        "Chart.yaml appVersion vs Cargo.toml"
    );
    assert_eq!(
        chart["version"], version,
        "Chart.yaml version vs Cargo.toml"
    );
    // The default image tag is empty (the appVersion) or the same version.
    let tag = yaml("charts/exdns/values.yaml")["image"]["tag"].clone();
    assert!(
        tag == "" || tag == version,
        "values.yaml image.tag {tag} vs Cargo.toml {version}"
    );
    let rel = render("exdns", "default", &["domain=example.com"]);
    let image = s(&rel.container()["image"]);
    assert!(image.ends_with(&format!(":{version}")), "{image}");
    assert_eq!(
        rel.one("Deployment")["metadata"]["labels"]["app.kubernetes.io/version"],
        version
    );
    // The release notes of the version: its CHANGELOG.md section, as the release workflow
    // extracts it.
    let out = Command::new("bash")
        .arg(root.join("scripts/release-notes.sh"))
        .arg(version)
        .output()
        .unwrap();
    let notes = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && notes.contains("### Added"),
        "scripts/release-notes.sh {version}: {notes}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!notes.contains("## ["), "one section only: {notes}");
    let out = Command::new("bash")
        .arg(root.join("scripts/release-notes.sh"))
        .arg("0.0.0-none")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a version without a section fails");
}

// ---------------------------------------------------------------------------------------------
// dnsChallenge: the ACME DNS-01 CNAME template

#[test]
fn dns_challenge_renders_the_k8s_gateway_acme_template() {
    // Off by default (default_values_render_the_k8s_gateway_setup shows the whole file).
    let rel = render("exdns", "default", &["domain=example.com"]);
    assert!(!rel.corefile().contains("template"), "{}", rel.corefile());

    // As the k8s_gateway chart renders it: a template for the zone, in front of k8s_gateway.
    let rel = render(
        "exdns",
        "default",
        &["domain=example.com", "dnsChallenge.enabled=true"],
    );
    assert_eq!(
        rel.corefile(),
        r#".:1053 {
    template IN ANY example.com {
        match "_acme-challenge[.](.*)[.]example[.]com"
        answer "{{ .Name }} 5 IN CNAME {{ index .Match 1 }}.dns01.clouddns.com"
        fallthrough
    }
    k8s_gateway example.com {
        ttl 300
        apex exdns.default
    }
"#
        .to_string()
            + DEFAULT_PLUGINS
            + "}"
    );
    assert_check_ok(&rel);

    // Another challenge zone; several zones (a string or a list) get one regex each.
    for rel in [
        render(
            "exdns",
            "default",
            &[
                "domain=example.com a.example.org",
                "dnsChallenge.enabled=true",
                "dnsChallenge.domain=acme.example.net",
            ],
        ),
        render_values(
            "exdns",
            "default",
            &[],
            json!({"domain": ["example.com", "a.example.org"],
                   "dnsChallenge": {"enabled": true, "domain": "acme.example.net"}}),
        ),
    ] {
        let block = r#"
    template IN ANY example.com a.example.org {
        match "_acme-challenge[.](.*)[.]example[.]com" "_acme-challenge[.](.*)[.]a[.]example[.]org"
        answer "{{ .Name }} 5 IN CNAME {{ index .Match 1 }}.acme.example.net"
        fallthrough
    }
    k8s_gateway example.com a.example.org {
"#;
        assert!(rel.corefile().contains(block), "{}", rel.corefile());
        assert_check_ok(&rel);
    }

    // Enabled without a challenge zone: a clear error.
    assert_refused(
        &[(
            &[
                "domain=example.com",
                "dnsChallenge.enabled=true",
                "dnsChallenge.domain=",
            ],
            json!({}),
            "dnsChallenge.domain is required with dnsChallenge.enabled: the zone ACME DNS-01 challenges are delegated to, e.g. dns01.clouddns.com",
        )],
        false,
    );
}

// zoneFiles

/// The zone file of the `zoneFiles` tests (the k8s_gateway chart's example, with a `$TTL`).
const ZONE_FILE: &str = "$TTL 3600
example.org.      IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300
example.org.      IN NS  ns1.example.org.
ns1.example.org.  IN A   192.0.2.53
example.org.      IN A   192.0.2.10
www.example.org.  IN CNAME example.org.
*.dev.example.org. IN A  192.0.2.11
";

#[test]
fn zone_files_render_file_blocks_config_map_keys_and_mounts() {
    // The k8s_gateway chart's own test case, then the other shapes the value takes.
    let rel = render_values(
        "exdns",
        "default",
        &["domain=example.com"],
        json!({"zoneFiles": [
            {"domains": "example.com.", "zoneName": "example.com.", "filename": "example.com.db",
             "fallthrough": {"enabled": true, "zones": ["test.example.com"]},
             "contents": ZONE_FILE.replace("example.org.", "example.com.")},
            {"domains": ["example.org", "example.net"], "filename": "shared.db", "reload": "30s",
             "fallthrough": {"enabled": false, "zones": ["x.example.org"]}, "contents": ZONE_FILE},
            {"domains": "example.edu", "filename": "edu.db", "reload": "1m",
             "fallthrough": {"enabled": true}, "contents": " leading blank\n\tand a tab\n"},
        ]}),
    );
    assert_check_ok(&rel);
    let corefile = rel.corefile();
    let blocks = "    file /etc/coredns/example.com.db example.com. {
        fallthrough test.example.com
    }
    file /etc/coredns/shared.db example.org example.net {
        reload 30s
    }
    file /etc/coredns/edu.db example.edu {
        fallthrough
        reload 1m
    }
}";
    assert!(corefile.ends_with(blocks), "{corefile}");
    assert!(!corefile.contains("x.example.org"), "{corefile}");

    // The contents are ConfigMap keys, byte for byte.
    let cm = rel.one("ConfigMap");
    assert_eq!(
        cm["data"]["example.com.db"],
        json!(ZONE_FILE.replace("example.org.", "example.com."))
    );
    assert_eq!(cm["data"]["shared.db"], json!(ZONE_FILE));
    assert_eq!(cm["data"]["edu.db"], " leading blank\n\tand a tab\n");

    // Mounted next to the Corefile, where the file lines point.
    let spec = &rel.one("Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        spec["volumes"][0]["configMap"]["items"],
        json!([
            {"key": "Corefile", "path": "Corefile"},
            {"key": "example.com.db", "path": "example.com.db"},
            {"key": "shared.db", "path": "shared.db"},
            {"key": "edu.db", "path": "edu.db"},
        ])
    );
    assert_eq!(
        rel.container()["volumeMounts"][0],
        json!({"name": "config", "mountPath": "/etc/coredns", "readOnly": true})
    );

    // Without options: the bare line; `reload: 0` is kept (it disables the reload).
    let rel = render_values(
        "exdns",
        "default",
        &["domain=example.com"],
        json!({"zoneFiles": [
            {"filename": "a.db", "domains": "example.org", "contents": ZONE_FILE},
            {"filename": "b.db", "domains": "example.org", "reload": 0, "contents": ZONE_FILE},
        ]}),
    );
    assert!(
        rel.corefile().ends_with(
            "    file /etc/coredns/a.db example.org\n    file /etc/coredns/b.db example.org {\n        reload 0\n    }\n}"
        ),
        "{}",
        rel.corefile()
    );
    // A new zone file rolls the pods (the checksum covers the whole ConfigMap).
    let before = render("exdns", "default", &["domain=example.com"]);
    let sum = |r: &Release| {
        r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .clone()
    };
    assert_ne!(sum(&before), sum(&rel));

    // Bad entries are clear errors: the templates' own (the schema checks only the types).
    let zone_files = |entries: Value| json!({"zoneFiles": entries});
    let d: &[&str] = &["domain=example.com"];
    assert_refused(
        &[
            (
                d,
                zone_files(json!([{"contents": "x"}])),
                "zoneFiles[0]: filename is required (the file's key in the ConfigMap, mounted at /etc/coredns/FILENAME)",
            ),
            (
                d,
                zone_files(json!([{"filename": "Corefile", "contents": "x"}])),
                r#"zoneFiles[0]: filename "Corefile" is not a valid ConfigMap key (letters, digits, '-', '_', '.') or is Corefile"#,
            ),
            (
                d,
                zone_files(json!([{"filename": "zones/a.db", "contents": "x"}])),
                r#"zoneFiles[0]: filename "zones/a.db" is not a valid ConfigMap key"#,
            ),
            (
                d,
                zone_files(json!([{"filename": "a.db"}])),
                "zoneFiles[0] (a.db): contents is required: the zone file text, as a string",
            ),
            (
                d,
                zone_files(
                    json!([{"filename": "a.db", "contents": "x"}, {"filename": "a.db", "contents": "y"}]),
                ),
                r#"zoneFiles[1]: filename "a.db" is used twice"#,
            ),
        ],
        false,
    );
    // Not a map: the schema's error first (the_values_schema_rejects_bad_values), the
    // templates' behind it.
    assert_refused(
        &[(
            d,
            zone_files(json!(["a.db"])),
            "zoneFiles[0]: expected a map with filename and contents",
        )],
        true,
    );
}

/// `dig @exdns +norec [OPTIONS] NAME TYPE`; dig's output.
fn dig(ex: &Exdns, options: &[&str], name: &str, qtype: &str) -> String {
    let port = ex.dns().port().to_string();
    let mut args = vec!["@127.0.0.1", "-p", &port, "+norec"];
    args.extend_from_slice(options);
    args.extend([name, qtype]);
    let (code, out) = run("dig", &args);
    assert_eq!(code, 0, "{out}");
    out
}

/// Asserts dig's output: `status`, an authoritative reply (flags qr aa), and exactly `want` in
/// `section`.
fn assert_dig(out: &str, status: &str, section: &str, want: &[&str]) {
    assert!(
        out.contains(&format!("status: {status},")) && out.contains("flags: qr aa;"),
        "{out}"
    );
    assert_eq!(digout::section(out, section), want, "{out}");
}

/// A rendered Corefile as is, but for what a test machine needs: an ephemeral DNS port,
/// loopback HTTP endpoints on ephemeral ports, k8s_gateway reading the manifests in `objects/`
/// instead of an API server, and the ConfigMap's files in the test's directory instead of
/// /etc/coredns.
fn runnable_as_rendered(rendered: &str) -> String {
    let mut corefile = String::new();
    let (mut key, mut k8s) = (0, 0);
    for line in rendered.lines() {
        let t = line.trim();
        let line = if t == ".:1053 {" {
            key += 1;
            ".:0 {".to_string()
        } else if t.starts_with("k8s_gateway ") {
            k8s += 1;
            format!("{line}\n        manifests objects")
        } else if t == "health {" {
            line.replace("health {", "health 127.0.0.1:0 {")
        } else if t == "ready" {
            line.replace("ready", "ready 127.0.0.1:0")
        } else if t.starts_with("prometheus ") {
            line.replace("0.0.0.0:9153", "127.0.0.1:0")
        } else {
            line.replace("/etc/coredns/", "")
        };
        corefile.push_str(&line);
        corefile.push('\n');
    }
    assert_eq!((key, k8s), (1, 1), "{rendered}");
    corefile
}

#[test]
fn dns_challenge_corefile_answers_acme_cnames_with_dig() {
    assert!(have("dig"), "dig is not installed (make test installs it)");
    // The chart's Corefile with dnsChallenge, with operations plugins on ephemeral ports.
    let rel = render_values(
        "exdns",
        "default",
        &["domain=example.com", "dnsChallenge.enabled=true"],
        json!({"extraZonePlugins": [
            {"name": "log"},
            {"name": "errors"},
            {"name": "ready", "parameters": "127.0.0.1:0"},
        ]}),
    );
    // Run as rendered, on an ephemeral port, k8s_gateway reading manifests (no API server).
    let runnable = runnable_as_rendered(&rel.corefile());
    let ingress = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: www
  namespace: web
spec:
  rules:
    - host: www.example.com
status:
  loadBalancer:
    ingress:
      - ip: 198.51.100.80
";
    let ex = Exdns::start_with(&runnable, &[("objects/ingress.yaml", ingress)], &[]);
    wait_ready(&ex);

    // The challenge name: a CNAME into the challenge zone, authoritative, whatever the type.
    for qtype in ["TXT", "CNAME", "ANY"] {
        let out = dig(&ex, &[], "_acme-challenge.foo.example.com", qtype);
        assert_dig(
            &out,
            "NOERROR",
            "ANSWER",
            &["_acme-challenge.foo.example.com. 5 IN CNAME foo.dns01.clouddns.com."],
        );
    }
    let out = dig(&ex, &[], "_acme-challenge.a.b.example.com", "TXT");
    assert_dig(
        &out,
        "NOERROR",
        "ANSWER",
        &["_acme-challenge.a.b.example.com. 5 IN CNAME a.b.dns01.clouddns.com."],
    );
    // Every other name falls through to k8s_gateway.
    let out = dig(&ex, &[], "www.example.com", "A");
    assert_dig(
        &out,
        "NOERROR",
        "ANSWER",
        &["www.example.com. 300 IN A 198.51.100.80"],
    );
    let out = dig(&ex, &[], "_acme-challenge.example.com", "TXT");
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let soa = digout::section(&out, "AUTHORITY");
    assert_eq!(soa.len(), 1, "{out}");
    assert!(soa[0].starts_with("example.com. "), "{out}");
    assert!(
        soa[0].contains(" IN SOA exdns.default.example.com. "),
        "{out}"
    );
}

#[test]
fn a_rendered_zone_file_and_dns_challenge_answer_over_dig() {
    assert!(
        have("dig"),
        "dig is not installed (run `make test`, which installs the test tools)"
    );
    let rel = render_values(
        "exdns",
        "default",
        &["domain=example.com"],
        json!({"zoneFiles": [{
            "filename": "example.org.db", "domains": "example.org", "reload": "1s",
            "contents": ZONE_FILE,
        }], "dnsChallenge": {"enabled": true, "domain": "acme.example.net"}}),
    );
    assert_check_ok(&rel);
    let rendered = rel.corefile();
    assert!(
        rendered.contains("template IN ANY example.com {"),
        "{rendered}"
    );
    let zone = s(&rel.one("ConfigMap")["data"]["example.org.db"]);
    assert_eq!(zone, ZONE_FILE);

    let corefile = runnable_as_rendered(&rendered);
    let ex = Exdns::start_with(
        &corefile,
        &[("example.org.db", &zone), ("objects/none.yaml", "")],
        &[],
    );
    wait_ready(&ex);
    let dig = |name: &str, qtype: &str| dig(&ex, &["+tcp"], name, qtype);
    // dnsChallenge, in the same Corefile: the ACME CNAME from the template.
    assert_dig(
        &dig("_acme-challenge.shop.example.com", "TXT"),
        "NOERROR",
        "ANSWER",
        &["_acme-challenge.shop.example.com. 5 IN CNAME shop.acme.example.net."],
    );
    let out = dig("www.example.org", "A");
    assert_dig(
        &out,
        "NOERROR",
        "ANSWER",
        &[
            "www.example.org. 3600 IN CNAME example.org.",
            "example.org. 3600 IN A 192.0.2.10",
        ],
    );
    assert_dig(
        &out,
        "NOERROR",
        "AUTHORITY",
        &["example.org. 3600 IN NS ns1.example.org."],
    );
    assert_dig(
        &dig("a.b.dev.example.org", "A"),
        "NOERROR",
        "ANSWER",
        &["a.b.dev.example.org. 3600 IN A 192.0.2.11"],
    );
    assert_dig(
        &dig("nope.example.org", "A"),
        "NXDOMAIN",
        "AUTHORITY",
        &[
            "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300",
        ],
    );
    // The k8s_gateway zone next to it still answers (its SOA).
    let out = dig("example.com", "SOA");
    assert!(
        out.contains("status: NOERROR") && out.contains("flags: qr aa;"),
        "{out}"
    );

    // A ConfigMap update with a new serial reaches the answers (the rendered `reload 1s`).
    ex.write(
        "example.org.db",
        &zone
            .replace("2024010101", "2024010102")
            .replace("192.0.2.10", "192.0.2.20"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !digout::section(&dig("example.org", "A"), "ANSWER")
        .contains(&"example.org. 3600 IN A 192.0.2.20".to_string())
    {
        assert!(Instant::now() < deadline, "not reloaded:\n{}", ex.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn transfers_render_validate_and_serve_axfr() {
    let rel = render(
        "exdns",
        "dns",
        &[
            "domain=example.com",
            "transfer.to={127.0.0.1,192.0.2.10:5353,198.51.100.0/24}",
        ],
    );
    validate_release(&rel);
    assert_check_ok(&rel);
    let block = "    transfer example.com. {\n        to 127.0.0.1 192.0.2.10:5353 198.51.100.0/24\n    }\n";
    let cf = rel.corefile();
    assert!(
        cf.contains(block) || cf.contains(&block.replace("example.com.", "example.com")),
        "{cf}"
    );
    assert!(!cf.contains("tsig"), "{cf}");
    // hostnameAsCNAME reaches the k8s_gateway block, and exdns -check takes it.
    let cname = render(
        "exdns",
        "dns",
        &["domain=example.com", "hostnameAsCNAME=true"],
    );
    assert!(
        cname
            .corefile()
            .contains("        hostnameAsCNAME\n    }\n"),
        "{}",
        cname.corefile()
    );
    assert_check_ok(&cname);
    // With a TSIG key from a Secret: the tsig block, and the Secret mounted where it points.
    let signed = render(
        "exdns",
        "dns",
        &[
            "domain=example.com",
            "transfer.to={192.0.2.10}",
            "transfer.tsig.existingSecret=transfer-key",
        ],
    );
    validate_release(&signed);
    let cf = signed.corefile();
    assert!(
        cf.contains("        secrets /etc/exdns/tsig/tsig.conf\n        require AXFR IXFR\n"),
        "{cf}"
    );
    let pod = &signed.one("Deployment")["spec"]["template"]["spec"];
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tsig")
        .unwrap();
    assert_eq!(vol["secret"]["secretName"], "transfer-key");
    assert_eq!(vol["secret"]["items"][0]["key"], "tsig.conf");
    let mount = signed.container()["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tsig")
        .unwrap()
        .clone();
    assert_eq!(mount["mountPath"], "/etc/exdns/tsig");
    assert_eq!(mount["readOnly"], true);
    // No transfers without TCP.
    assert_refused(
        &[(
            &[
                "domain=example.com",
                "transfer.to={192.0.2.10}",
                "service.useTcp=false",
            ],
            json!({}),
            "transfer.to needs service.useTcp: zone transfers run over TCP",
        )],
        false,
    );
    // The rendered transfer block serves the cluster's zone.
    let mut text = runnable(&rel.corefile(), "objects");
    let xfr = cf_block(&rel.corefile(), "transfer ");
    text = text.replace(
        "    ready 127.0.0.1:0\n",
        &format!("{xfr}\n    ready 127.0.0.1:0\n"),
    );
    let svc = with_lb_status(rel.one("Service"), "198.51.100.1");
    let ex = Exdns::start_with(&text, &[("objects/exdns.yaml", svc.as_str())], &[]);
    wait_ready(&ex);
    let (code, out) = support::run(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &ex.dns().port().to_string(),
            "example.com",
            "AXFR",
            "+nostats",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("exdns.dns.example.com.\t300\tIN\tA\t198.51.100.1"),
        "{out}\n{text}"
    );
    assert_eq!(out.matches("\tSOA\t").count(), 2, "{out}");
    drop(ex);

    // The signed variant, with the Secret's file where the chart mounts it: transfers must be
    // signed with the key (dig -y), unsigned ones are refused.
    let secret = "c2VjcmV0LWtleS1mb3ItdGhlLWNoYXJ0LXRlc3QtMTIzNDU2Nzg5MA==";
    let key =
        format!("key \"transfer.\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n");
    let mut text = runnable(&signed.corefile(), "objects").replace("192.0.2.10", "127.0.0.1");
    let blocks = format!(
        "{}\n{}\n",
        cf_block(&signed.corefile(), "transfer ").replace("192.0.2.10", "127.0.0.1"),
        cf_block(&signed.corefile(), "tsig ").replace("/etc/exdns/tsig/tsig.conf", "tsig.conf")
    );
    text = text.replace(
        "    ready 127.0.0.1:0\n",
        &format!("{blocks}    ready 127.0.0.1:0\n"),
    );
    let svc = with_lb_status(signed.one("Service"), "198.51.100.1");
    let ex = Exdns::start_with(
        &text,
        &[
            ("objects/exdns.yaml", svc.as_str()),
            ("tsig.conf", key.as_str()),
        ],
        &[],
    );
    wait_ready(&ex);
    let port = ex.dns().port().to_string();
    let y = format!("hmac-sha256:transfer.:{secret}");
    let (code, out) = support::run(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "-y",
            &y,
            "example.com",
            "AXFR",
            "+nostats",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("\tSOA\t").count(), 2, "{out}\n{text}");
    assert!(!out.contains("tsig verify failure"), "{out}");
    let (_, out) = support::run("dig", &["@127.0.0.1", "-p", &port, "example.com", "AXFR"]);
    assert!(out.contains("Transfer failed"), "{out}");
    assert_eq!(out.matches("\tSOA\t").count(), 0, "{out}");
}

/// `https`, `https3` and `quic` render their block with the certificate, and listen on TCP (DoH)
/// or UDP (QUIC) only, in the Service and the container; the rendered DoH block serves `kdig
/// +https` with a real certificate.
#[test]
fn doh_and_quic_schemes_render_their_block_and_ports() {
    for (scheme, key, protocol) in [
        ("https", "https://", "TCP"),
        ("https://", "https://", "TCP"),
        ("https3", "https3://", "UDP"),
        ("quic", "quic://", "UDP"),
    ] {
        let set = format!("scheme={scheme}");
        let rel = render(
            "exdns",
            "dns",
            &["domain=example.com", &set, "tls.secretName=exdns-cert"],
        );
        validate_release(&rel);
        let cf = rel.corefile();
        let want =
            format!("{key}.:1053 {{\n    tls /etc/exdns/tls/tls.crt /etc/exdns/tls/tls.key\n");
        assert!(cf.starts_with(&want), "{scheme}: {cf}");
        let protocols = |ports: &serde_json::Value| -> Vec<String> {
            ports
                .as_array()
                .unwrap()
                .iter()
                .map(|p| s(&p["protocol"]))
                .collect()
        };
        assert_eq!(
            protocols(&rel.one("Service")["spec"]["ports"]),
            [protocol],
            "{scheme}: Service"
        );
        let pod = &rel.one("Deployment")["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let dns_ports: Vec<String> = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| s(&p["name"]).starts_with("dns-"))
            .map(|p| s(&p["protocol"]))
            .collect();
        assert_eq!(dns_ports, [protocol], "{scheme}: container");
        let vol = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "tls")
            .unwrap_or_else(|| panic!("{scheme}: no tls volume"));
        assert_eq!(vol["secret"]["secretName"], "exdns-cert");
    }
    if !support::require("kdig") {
        return;
    }
    let out = serve_rendered_scheme("https", "+https");
    assert!(out.contains("HTTP/2-POST"), "{out}");
}

/// The k8s_gateway block the chart renders for `scheme` (with `tls.secretName`), served by
/// exdns on that scheme with a test certificate and the chart's own Service as the only object:
/// kdig (with `flag`) asks for the zone's SOA, which must come back NOERROR. kdig's output.
fn serve_rendered_scheme(scheme: &str, flag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::make_certs(dir.path(), "dns.example.test");
    let rel = render(
        "exdns",
        "dns",
        &[
            "domain=example.com",
            &format!("scheme={scheme}"),
            "tls.secretName=c",
        ],
    );
    let block = cf_block(&rel.corefile(), "k8s_gateway ");
    let text = format!(
        "{scheme}://.:0 {{\n    tls {} {}\n{block}\n        manifests objects\n    }}\n}}\n",
        cert.display(),
        key.display()
    )
    .replace(
        "    }\n        manifests objects\n    }",
        "        manifests objects\n    }",
    );
    let svc = with_lb_status(rel.one("Service"), "198.51.100.1");
    let ex = Exdns::start_with(&text, &[("objects/exdns.yaml", svc.as_str())], &[]);
    let (code, out) = kdig_synced(&[
        "@127.0.0.1",
        "-p",
        &ex.addr(&format!("{scheme}://")).port().to_string(),
        flag,
        &format!("+tls-ca={}", ca.display()),
        "+tls-hostname=dns.example.test",
        "example.com",
        "SOA",
    ]);
    assert_eq!(code, 0, "{out}\n{text}");
    assert!(
        out.contains("status: NOERROR") && out.contains("\tSOA\t"),
        "{out}\n{text}"
    );
    out
}

/// The lines of the first directive starting with `prefix` (its `{ … }` block included).
fn cf_block(corefile: &str, prefix: &str) -> String {
    let mut out = Vec::new();
    let mut lines = corefile.lines();
    for l in lines.by_ref() {
        if l.trim_start().starts_with(prefix) {
            out.push(l);
            break;
        }
    }
    for l in lines {
        out.push(l);
        if l.trim() == "}" {
            break;
        }
    }
    out.join("\n")
}

#[test]
fn encrypted_scheme_renders_a_tls_block_with_its_certificate() {
    let rel = render(
        "exdns",
        "dns",
        &[
            "domain=example.com",
            "scheme=tls",
            "tls.secretName=exdns-cert",
        ],
    );
    validate_release(&rel);
    let cf = rel.corefile();
    assert!(
        cf.starts_with("tls://.:1053 {\n    tls /etc/exdns/tls/tls.crt /etc/exdns/tls/tls.key\n"),
        "{cf}"
    );
    let pod = &rel.one("Deployment")["spec"]["template"]["spec"];
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(vol["secret"]["secretName"], "exdns-cert");
    let ports: Vec<String> = rel.one("Service")["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| s(&p["protocol"]))
        .collect();
    assert_eq!(ports, ["TCP"], "DoT listens on TCP only");
    // The fork's spelling and a client CA.
    let rel = render(
        "exdns",
        "dns",
        &[
            "domain=example.com",
            "scheme=tls://",
            "tls.secretName=c",
            "tls.clientCA=true",
        ],
    );
    assert!(
        rel.corefile()
            .contains("tls /etc/exdns/tls/tls.crt /etc/exdns/tls/tls.key /etc/exdns/tls/ca.crt\n")
    );
    // The rendered block serves DoT with a real certificate.
    serve_rendered_scheme("tls", "+tls");
    // Refused: an encrypted scheme without its certificate, and transports exdns does not serve.
    assert_refused(
        &[
            (
                &["domain=example.com", "scheme=tls"],
                json!({}),
                "scheme tls needs tls.secretName",
            ),
            (
                &["domain=example.com", "scheme=https"],
                json!({}),
                "scheme https needs tls.secretName",
            ),
            (
                &["domain=example.com", "scheme=quic://"],
                json!({}),
                "scheme quic needs tls.secretName",
            ),
            (
                &["domain=example.com", "scheme=grpc", "tls.secretName=c"],
                json!({}),
                "scheme grpc: exdns does not serve grpc://",
            ),
        ],
        false,
    );
}
