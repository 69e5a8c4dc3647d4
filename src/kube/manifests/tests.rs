use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::kube::model::{Address, NameData, Store};

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

fn svc(name: &str, ns: Option<&str>, ip: &str) -> String {
    let ns = ns
        .map(|n| format!("\n  namespace: {n}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}{ns}\nspec:\n  type: LoadBalancer\nstatus:\n  loadBalancer:\n    ingress:\n      - ip: {ip}\n"
    )
}

fn ip(s: &str) -> Address {
    Address::Ip(s.parse().unwrap())
}

/// name → addresses of every `Names` contribution of `kind`.
fn names(objs: &Objects, kind: ObjKind) -> HashMap<String, Vec<Address>> {
    let mut out = HashMap::new();
    for (_, c) in objs.get(&kind).into_iter().flatten() {
        if let Contribution::Names(v) = c {
            for nd in v {
                out.insert(nd.name.clone(), nd.addrs.clone());
            }
        }
    }
    out
}

fn store_names(s: &Store, kind: ObjKind) -> Vec<String> {
    let mut v: Vec<String> = s
        .get(kind)
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|c| match c {
            Contribution::Names(v) => v.iter().map(|n| n.name.clone()).collect(),
            _ => vec![],
        })
        .collect();
    v.sort();
    v
}

const ALL: [ObjKind; 20] = ObjKind::ALL;

#[test]
fn multi_document_yaml() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "{}---\n# only a comment\n---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n---\n{}",
        svc("a", Some("apps"), "192.0.2.1"),
        svc("b", None, "192.0.2.2"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n  namespace: web\nspec:\n  rules:\n    - host: I.example.com\nstatus:\n  loadBalancer:\n    ingress:\n      - ip: 192.0.2.3\n"
    );
    write(d.path(), "all.yaml", &text);
    let (objs, errs) = load_dir(d.path(), &ALL, &Filters::default());
    assert!(errs.is_empty(), "{errs:?}");
    let svcs = &objs[&ObjKind::Service];
    let keys: Vec<&ObjKey> = svcs.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![&ObjKey::new("apps", "a"), &ObjKey::new("default", "b")]
    );
    assert_eq!(
        names(&objs, ObjKind::Service),
        HashMap::from([
            ("a.apps".to_string(), vec![ip("192.0.2.1")]),
            ("b.default".to_string(), vec![ip("192.0.2.2")]),
        ])
    );
    assert_eq!(
        names(&objs, ObjKind::Ingress),
        HashMap::from([("i.example.com".to_string(), vec![ip("192.0.2.3")])])
    );
    // Every requested kind is present, even without objects.
    for k in ALL {
        assert!(objs.contains_key(&k), "{k}");
    }
}

#[test]
fn lists_and_json() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "list.yml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n{}",
            [
                svc("a", Some("x"), "192.0.2.1"),
                svc("b", Some("x"), "192.0.2.2")
            ]
            .iter()
            .map(|s| {
                let mut lines = s.lines();
                let first = format!("  - {}\n", lines.next().unwrap());
                first + &lines.map(|l| format!("    {l}\n")).collect::<String>()
            })
            .collect::<String>()
        ),
    );
    // A typed list whose items omit kind and apiVersion, in JSON.
    write(
        d.path(),
        "sub/list.JSON",
        r#"{"apiVersion": "v1", "kind": "ServiceList", "items": [
            {"metadata": {"name": "c", "namespace": "x"}, "spec": {"type": "LoadBalancer"},
             "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.3"}]}}}]}"#,
    );
    write(
        d.path(),
        "empty-list.yaml",
        "apiVersion: v1\nkind: List\nitems: []\n",
    );
    write(d.path(), "notes.txt", "kind: Service\n");
    let (objs, errs) = load_dir(d.path(), &[ObjKind::Service], &Filters::default());
    assert!(errs.is_empty(), "{errs:?}");
    let mut got: Vec<String> = names(&objs, ObjKind::Service).into_keys().collect();
    got.sort();
    assert_eq!(got, vec!["a.x", "b.x", "c.x"]);
    assert_eq!(objs.len(), 1);
}

#[test]
fn kinds_groups_and_hidden_entries() {
    let d = tempfile::tempdir().unwrap();
    // Only the requested kinds are read.
    write(d.path(), "svc.yaml", &svc("a", Some("x"), "192.0.2.1"));
    // An Istio Gateway is not a Gateway API Gateway.
    write(
        d.path(),
        "istio.yaml",
        "apiVersion: networking.istio.io/v1beta1\nkind: Gateway\nmetadata:\n  name: g\n  namespace: x\nspec:\n  servers: []\n",
    );
    write(
        d.path(),
        "gw.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: g\nspec:\n  gatewayClassName: c\nstatus:\n  addresses:\n    - value: 192.0.2.9\n",
    );
    // A mounted ConfigMap's hidden directories and editor files are skipped.
    write(
        d.path(),
        "..2025_01_01/svc.yaml",
        &svc("hidden", Some("x"), "192.0.2.2"),
    );
    write(
        d.path(),
        ".svc.yaml.swp",
        &svc("swap", Some("x"), "192.0.2.3"),
    );
    let (objs, errs) = load_dir(d.path(), &[ObjKind::Gateway], &Filters::default());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        objs,
        HashMap::from([(
            ObjKind::Gateway,
            vec![(
                ObjKey::new("default", "g"),
                Contribution::Gateway {
                    class: "c".into(),
                    addrs: vec![ip("192.0.2.9")],
                    cname: None,
                    listeners: vec![],
                }
            )]
        )])
    );
    let (objs, _) = load_dir(d.path(), &[ObjKind::Service], &Filters::default());
    assert_eq!(
        names(&objs, ObjKind::Service)
            .into_keys()
            .collect::<Vec<_>>(),
        vec!["a.x"]
    );
}

#[test]
fn broken_files_are_reported_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "good.yaml", &svc("good", Some("x"), "192.0.2.1"));
    write(
        d.path(),
        "bad-yaml.yaml",
        &format!(
            "{}---\nkind: Service\nmetadata: [unclosed\n",
            svc("first", Some("x"), "192.0.2.2")
        ),
    );
    write(
        d.path(),
        "bad-object.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\nspec:\n  type: LoadBalancer\n",
            svc("ok", Some("x"), "192.0.2.3")
        ),
    );
    write(
        d.path(),
        "no-kind.yaml",
        "apiVersion: v1\nmetadata:\n  name: x\n",
    );
    write(d.path(), "scalar.yaml", "just a string\n");
    write(d.path(), "bad.json", "{\"kind\": ");
    let (objs, errs) = load_dir(d.path(), &[ObjKind::Service], &Filters::default());
    let p = |f: &str| d.path().join(f).display().to_string();
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert_eq!(
        errs[0],
        format!(
            "{}: document 2: Service: metadata.name is missing",
            p("bad-object.yaml")
        )
    );
    assert_eq!(
        errs[1],
        format!(
            "{}: document 2: did not find expected ',' or ']' at line 15 column 1, while parsing a flow sequence at line 14 column 11",
            p("bad-yaml.yaml")
        )
    );
    assert_eq!(
        errs[2],
        format!(
            "{}: EOF while parsing a value at line 1 column 9",
            p("bad.json")
        )
    );
    assert_eq!(
        errs[3],
        format!(
            "{}: document 1: the object has no `kind`",
            p("no-kind.yaml")
        )
    );
    assert_eq!(
        errs[4],
        format!(
            "{}: document 1: expected a Kubernetes object, found a string",
            p("scalar.yaml")
        )
    );
    // The valid objects of never-good files are used.
    let mut got: Vec<String> = names(&objs, ObjKind::Service).into_keys().collect();
    got.sort();
    assert_eq!(got, vec!["first.x", "good.x", "ok.x"]);
}

#[test]
fn a_file_that_breaks_keeps_its_last_good_objects() {
    let d = tempfile::tempdir().unwrap();
    let mut loader = Loader::new(vec![ObjKind::Service], Filters::default());
    write(d.path(), "a.yaml", &svc("a", Some("x"), "192.0.2.1"));
    write(d.path(), "b.yaml", &svc("b", Some("x"), "192.0.2.2"));
    let (objs, errs) = loader.load(d.path()).unwrap();
    assert!(errs.is_empty());
    assert_eq!(objs[&ObjKind::Service].len(), 2);

    // a.yaml breaks (an edit in progress) while b.yaml changes.
    write(
        d.path(),
        "a.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x\n",
    );
    write(d.path(), "b.yaml", &svc("b", Some("x"), "192.0.2.22"));
    let (objs, errs) = loader.load(d.path()).unwrap();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[1],
        format!(
            "{}: keeping the 1 object(s) of its last good version until it is fixed",
            d.path().join("a.yaml").display()
        )
    );
    assert_eq!(
        names(&objs, ObjKind::Service),
        HashMap::from([
            ("a.x".to_string(), vec![ip("192.0.2.1")]),
            ("b.x".to_string(), vec![ip("192.0.2.22")]),
        ])
    );

    // An object that fails to convert also counts as broken.
    write(
        d.path(),
        "a.yaml",
        &format!(
            "{}---\nkind: Service\nmetadata: {{namespace: x}}\n",
            svc("a2", Some("x"), "192.0.2.9")
        ),
    );
    let (objs, errs) = loader.load(d.path()).unwrap();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(names(&objs, ObjKind::Service).contains_key("a.x"));
    assert!(!names(&objs, ObjKind::Service).contains_key("a2.x"));

    // Fixed: the new content replaces the old.
    write(d.path(), "a.yaml", &svc("a3", Some("x"), "192.0.2.3"));
    let (objs, errs) = loader.load(d.path()).unwrap();
    assert!(errs.is_empty());
    let mut got: Vec<String> = names(&objs, ObjKind::Service).into_keys().collect();
    got.sort();
    assert_eq!(got, vec!["a3.x", "b.x"]);

    // A deleted file is forgotten, also as a last good version.
    std::fs::remove_file(d.path().join("a.yaml")).unwrap();
    let (objs, _) = loader.load(d.path()).unwrap();
    assert_eq!(
        names(&objs, ObjKind::Service)
            .into_keys()
            .collect::<Vec<_>>(),
        vec!["b.x"]
    );
    assert!(!loader.last_good.contains_key(&d.path().join("a.yaml")));
}

#[test]
fn duplicates_and_missing_dir() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "1.yaml", &svc("a", Some("x"), "192.0.2.1"));
    write(d.path(), "2.yaml", &svc("a", Some("x"), "192.0.2.2"));
    let (objs, errs) = load_dir(d.path(), &[ObjKind::Service], &Filters::default());
    assert_eq!(
        errs,
        vec![format!(
            "{}: document 1: Service x/a is also defined at {}: document 1; using the later one",
            d.path().join("2.yaml").display(),
            d.path().join("1.yaml").display()
        )]
    );
    assert_eq!(names(&objs, ObjKind::Service)["a.x"], vec![ip("192.0.2.2")]);

    let missing = d.path().join("nope");
    let (objs, errs) = load_dir(&missing, &[ObjKind::Service], &Filters::default());
    assert_eq!(objs, HashMap::from([(ObjKind::Service, vec![])]));
    assert_eq!(
        errs,
        vec![format!(
            "{}: No such file or directory (os error 2)",
            missing.display()
        )]
    );
}

#[test]
fn filters_apply() {
    let d = tempfile::tempdir().unwrap();
    let mut labelled = svc("a", Some("x"), "192.0.2.1");
    labelled = labelled.replace("  name: a\n", "  name: a\n  labels:\n    expose: public\n");
    write(d.path(), "a.yaml", &labelled);
    write(d.path(), "b.yaml", &svc("b", Some("x"), "192.0.2.2"));
    let f = Filters {
        service_label_selectors: vec!["expose in (public, partner)".into()],
        ..Default::default()
    };
    let (objs, errs) = load_dir(d.path(), &[ObjKind::Service], &f);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        names(&objs, ObjKind::Service)
            .into_keys()
            .collect::<Vec<_>>(),
        vec!["a.x"]
    );
}

/// A loaded object: kind, key, contribution, origin.
type Flat = (ObjKind, ObjKey, Contribution, String);

fn flat(items: Vec<Loaded>) -> Vec<Flat> {
    items
        .into_iter()
        .map(|l| (l.kind, l.key, l.contribution, l.origin))
        .collect()
}

/// A JSON file read by [`Loader::parse_file`] (streaming a list's items when it can), and by
/// the whole-tree path it replaces (the oracle): both must give the same objects and problems.
/// Returns them, and whether the streaming path took the file.
fn parse_json_both_ways(text: &str) -> (Vec<Flat>, Vec<String>, bool) {
    let loader = Loader::new(ALL.to_vec(), Filters::default());
    let (items, errs) = loader.parse_file(Path::new("l.json"), text);
    let got = (flat(items), errs);

    let (mut items, mut errs) = (Vec::new(), Vec::new());
    match serde_json::from_str::<Value>(text) {
        Ok(v) => loader.document(v, "l.json", &mut items, &mut errs),
        Err(e) => errs.push(format!("l.json: {e}")),
    }
    assert_eq!(got, (flat(items), errs), "streamed vs whole tree:\n{text}");

    let (mut items, mut errs) = (Vec::new(), Vec::new());
    let streamed = loader.json_list("l.json", text, &mut items, &mut errs);
    (got.0, got.1, streamed)
}

fn ingress_json(name: &str, ns: &str, ip: &str) -> String {
    format!(
        r#"{{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {{"name": "{name}", "namespace": "{ns}"}},
            "spec": {{"rules": [{{"host": "{name}.example.com"}}]}},
            "status": {{"loadBalancer": {{"ingress": [{{"ip": "{ip}"}}]}}}}}}"#
    )
}

fn svc_json(name: &str, ip: &str) -> String {
    format!(
        r#"{{"metadata": {{"name": "{name}"}}, "spec": {{"type": "LoadBalancer"}},
            "status": {{"loadBalancer": {{"ingress": [{{"ip": "{ip}"}}]}}}}}}"#
    )
}

#[test]
fn json_lists_stream_with_the_whole_tree_results() {
    // `kubectl get -o json` order: `items` before `kind`; mixed kinds, one not read by exdns.
    let text = format!(
        r#"{{"apiVersion": "v1", "items": [{}, {{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "cm"}}}},
            {}], "kind": "List", "metadata": {{"resourceVersion": ""}}}}"#,
        ingress_json("i", "web", "192.0.2.1"),
        svc_json("s", "192.0.2.2").replacen('{', r#"{"apiVersion": "v1", "kind": "Service", "#, 1),
    );
    let (items, errs, streamed) = parse_json_both_ways(&text);
    assert!(streamed);
    assert!(errs.is_empty(), "{errs:?}");
    let got: Vec<(ObjKind, String, &str)> = items
        .iter()
        .map(|(k, key, _, origin)| (*k, key.to_string(), origin.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (ObjKind::Ingress, "web/i".to_string(), "l.json, item 1"),
            (ObjKind::Service, "default/s".to_string(), "l.json, item 3"),
        ]
    );

    // A typed list whose items take kind and apiVersion from it, given after the items.
    let text = format!(
        r#"{{"items": [{}, {}], "kind": "ServiceList", "apiVersion": "v1"}}"#,
        svc_json("a", "192.0.2.3"),
        svc_json("b", "192.0.2.4")
    );
    let (items, errs, streamed) = parse_json_both_ways(&text);
    assert!(streamed);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(items.len(), 2);

    // A list inside a list.
    let text = format!(
        r#"{{"kind": "List", "items": [{{"kind": "List", "items": [{}]}}, {}]}}"#,
        ingress_json("inner", "x", "192.0.2.5"),
        ingress_json("outer", "x", "192.0.2.6")
    );
    let (items, errs, streamed) = parse_json_both_ways(&text);
    assert!(streamed);
    assert!(errs.is_empty(), "{errs:?}");
    let origins: Vec<&str> = items.iter().map(|i| i.3.as_str()).collect();
    assert_eq!(origins, vec!["l.json, item 1, item 1", "l.json, item 2"]);
}

#[test]
fn json_lists_empty_and_null() {
    for text in [
        r#"{"apiVersion": "v1", "kind": "List", "items": []}"#,
        r#"{"items": [], "kind": "IngressList"}"#,
        r#"{"apiVersion": "v1", "kind": "List", "items": null}"#,
    ] {
        let (items, errs, streamed) = parse_json_both_ways(text);
        assert!(streamed, "{text}");
        assert!(
            items.is_empty() && errs.is_empty(),
            "{text}: {items:?} {errs:?}"
        );
    }
}

#[test]
fn json_list_items_with_problems() {
    // Items that fail one by one are reported with their number; the others load.
    let text = format!(
        r#"{{"kind": "List", "items": [{}, "a string", {{"apiVersion": "v1", "kind": "Service", "metadata": {{"namespace": "x"}}}},
            {{"metadata": {{"name": "no-kind"}}}}, {}]}}"#,
        ingress_json("a", "x", "192.0.2.1"),
        ingress_json("b", "x", "192.0.2.2")
    );
    let (items, errs, streamed) = parse_json_both_ways(&text);
    assert!(streamed);
    assert_eq!(
        errs,
        vec![
            "l.json, item 2: expected a Kubernetes object",
            "l.json, item 3: Service: metadata.name is missing",
            "l.json, item 4: the object has no `kind`",
        ]
    );
    assert_eq!(items.len(), 2);

    // Malformed JSON in an item: the file is unreadable, none of its objects load, and the
    // message is the parser's, as before.
    let text = format!(
        r#"{{"kind": "List", "items": [{}, {{"kind": "Ingress", "metadata": }}]}}"#,
        ingress_json("a", "x", "192.0.2.1")
    );
    let (items, errs, streamed) = parse_json_both_ways(&text);
    assert!(!streamed);
    assert!(items.is_empty());
    assert_eq!(errs, vec!["l.json: expected value at line 4 column 110"]);
    // A number out of range passes the first pass (which skips the items) but not the second.
    let text = format!(
        r#"{{"kind": "List", "items": [{}, {{"kind": "Ingress", "x": 1e999}}]}}"#,
        ingress_json("a", "x", "192.0.2.1")
    );
    let (items, errs, streamed) = parse_json_both_ways(&text);
    assert!(!streamed);
    assert!(items.is_empty());
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("l.json: number out of range"),
        "{errs:?}"
    );

    // `items` that is not an array; the list's fields repeated (the last one counts).
    let (items, errs, streamed) =
        parse_json_both_ways(r#"{"kind": "List", "items": {"kind": "Ingress"}}"#);
    assert!(!streamed && items.is_empty());
    assert_eq!(errs, vec!["l.json: `items` of a List must be a list"]);
    let text = format!(
        r#"{{"kind": "List", "items": [{}], "items": [{}]}}"#,
        ingress_json("a", "x", "192.0.2.1"),
        ingress_json("b", "x", "192.0.2.2")
    );
    let (items, errs, streamed) = parse_json_both_ways(&text);
    assert!(!streamed);
    assert!(errs.is_empty(), "{errs:?}");
    let keys: Vec<&ObjKey> = items.iter().map(|i| &i.1).collect();
    assert_eq!(keys, vec![&ObjKey::new("x", "b")]);

    // Not lists: whole-tree path.
    for text in [
        "null",
        "[1, 2]",
        r#"{"kind": "Ingress", "items": []}"#,
        r#"{"kind": 5, "items": []}"#,
        r#"{"items": []}"#,
        r#"["List", "v1", []]"#,
    ] {
        let (_, _, streamed) = parse_json_both_ways(text);
        assert!(!streamed, "{text}");
    }
}

/// A YAML file read by [`Loader::parse_file`] and by the whole-tree reading of each document it
/// replaces (the oracle): both must give the same objects and problems, which are returned.
fn parse_yaml_both_ways(text: &str) -> (Vec<Flat>, Vec<String>) {
    let loader = Loader::new(ALL.to_vec(), Filters::default());
    let (items, errs) = loader.parse_file(Path::new("l.yaml"), text);
    let got = (flat(items), errs);

    let (mut items, mut errs) = (Vec::new(), Vec::new());
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = format!("l.yaml: document {}", i + 1);
        match Value::deserialize(doc) {
            Ok(v) => loader.document(v, &origin, &mut items, &mut errs),
            Err(e) => {
                errs.push(format!("{origin}: {e}"));
                break;
            }
        }
    }
    assert_eq!(got, (flat(items), errs), "one pass vs whole tree:\n{text}");
    got
}

fn ingress_yaml(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: x\nspec:\n  rules:\n    - host: {name}.example.com\nstatus:\n  loadBalancer:\n    ingress:\n      - ip: {ip}\n"
    )
}

/// `text`'s lines as one item of a YAML block sequence indented by `indent`.
fn yaml_item(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut lines = text.lines();
    let first = format!("{pad}- {}\n", lines.next().unwrap());
    first + &lines.map(|l| format!("{pad}  {l}\n")).collect::<String>()
}

#[test]
fn yaml_lists_read_in_one_pass_with_the_whole_tree_results() {
    // `kubectl get -o yaml` order: `items` before `kind`; mixed kinds, one not read by exdns,
    // a nested list, an item that is not an object, one that fails, one without a kind, and a
    // float and a tag in the items (kept as compact JSON until the list is known).
    let nested = format!(
        "kind: List\nitems:\n{}",
        yaml_item(&ingress_yaml("inner", "192.0.2.5"), 0)
    );
    let text = format!(
        "apiVersion: v1\nitems:\n{}{}{}  - just a string\n  - apiVersion: v1\n    kind: Service\n    metadata: {{namespace: x}}\n  - metadata: {{name: no-kind}}\n    weight: 0.30000000000000004\n  - !!map {{kind: ConfigMap, metadata: {{name: cm}}}}\n{}kind: List\nmetadata:\n  resourceVersion: \"\"\n",
        yaml_item(&ingress_yaml("a", "192.0.2.1"), 2),
        yaml_item(&svc("s", Some("x"), "192.0.2.2"), 2),
        yaml_item(&nested, 2),
        yaml_item(&ingress_yaml("b", "192.0.2.3"), 2),
    );
    let (items, errs) = parse_yaml_both_ways(&text);
    let origins: Vec<&str> = items.iter().map(|i| i.3.as_str()).collect();
    assert_eq!(
        origins,
        vec![
            "l.yaml: document 1, item 1",
            "l.yaml: document 1, item 2",
            "l.yaml: document 1, item 3, item 1",
            "l.yaml: document 1, item 8",
        ]
    );
    assert_eq!(
        errs,
        vec![
            "l.yaml: document 1, item 4: expected a Kubernetes object",
            "l.yaml: document 1, item 5: Service: metadata.name is missing",
            "l.yaml: document 1, item 6: the object has no `kind`",
        ]
    );

    // The one-pass reader keeps the items compact until the list is known.
    let doc = serde_yaml::Deserializer::from_str(&text).next().unwrap();
    let Doc::Map(fields, Some(Buffered::Compact(list))) = DocSeed.deserialize(doc).unwrap() else {
        panic!("not read as a list");
    };
    assert_eq!((fields.len(), list.len()), (3, 8));

    // A typed list whose items take kind and apiVersion from it, given after the items; a list
    // among other documents.
    let text = format!(
        "{}---\nitems:\n{}kind: ServiceList\napiVersion: v1\n---\n{}",
        ingress_yaml("first", "192.0.2.1"),
        yaml_item(
            "metadata: {name: t}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.9}]}}",
            0
        ),
        ingress_yaml("last", "192.0.2.2"),
    );
    let (items, errs) = parse_yaml_both_ways(&text);
    assert!(errs.is_empty(), "{errs:?}");
    let keys: Vec<String> = items.iter().map(|i| i.1.to_string()).collect();
    assert_eq!(keys, vec!["x/first", "default/t", "x/last"]);
}

#[test]
fn yaml_lists_odd_shapes_and_errors() {
    for text in [
        // Empty lists, `items` null or not a list.
        "apiVersion: v1\nkind: List\nitems: []\n",
        "items: []\nkind: IngressList\n",
        "kind: List\nitems:\n",
        "kind: List\nitems: {kind: Ingress}\n",
        "kind: List\nitems: 5\n",
        // Repeated `items` (the last counts); `items` in something that is not a list.
        &format!(
            "kind: List\nitems:\n{}items:\n{}",
            yaml_item(&ingress_yaml("a", "192.0.2.1"), 0),
            yaml_item(&ingress_yaml("b", "192.0.2.2"), 0)
        ),
        &format!(
            "{}items:\n{}",
            ingress_yaml("a", "192.0.2.1"),
            yaml_item(&ingress_yaml("b", "192.0.2.2"), 0)
        ),
        // No kind, a kind that is not a string.
        "items: [{kind: Ingress}]\n",
        "kind: [List]\nitems: []\n",
        // Keys that are not strings: the first and a later one.
        "1: a\nkind: List\nitems: []\n",
        "kind: List\n[a]: b\nitems: []\n",
        // A tag the tree does not take; empty documents; not objects.
        "kind: List\nitems: !custom [1]\n",
        "---\n# nothing\n---\n",
        "- a\n- b\n",
        "12\n",
        // A syntax error inside the items stops the file, as before.
        &format!(
            "{}---\nkind: List\nitems:\n{}  - metadata: [unclosed\n---\n{}",
            ingress_yaml("before", "192.0.2.1"),
            yaml_item(&ingress_yaml("in", "192.0.2.2"), 2),
            ingress_yaml("after", "192.0.2.3"),
        ),
    ] {
        parse_yaml_both_ways(text);
    }
    let (items, errs) = parse_yaml_both_ways(&format!(
        "{}---\nkind: List\nitems:\n{}  - metadata: [unclosed\n",
        ingress_yaml("before", "192.0.2.1"),
        yaml_item(&ingress_yaml("in", "192.0.2.2"), 2),
    ));
    assert_eq!(items.len(), 1);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("l.yaml: document 2: "), "{errs:?}");
}

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo")
}

#[test]
fn demo_fixtures_load_cleanly() {
    let (objs, errs) = load_dir(&demo_dir(), &ALL, &Filters::default());
    assert!(errs.is_empty(), "{errs:#?}");
    let svc = names(&objs, ObjKind::Service);
    assert_eq!(
        svc["exdns.kube-system"],
        vec![ip("192.0.2.53"), ip("2001:db8::53")]
    );
    assert_eq!(
        svc["exdns-secondary.kube-system"],
        vec![ip("192.0.2.54"), ip("2001:db8::54")]
    );
    assert_eq!(svc["*.apps.example.com"], vec![ip("203.0.113.40")]);
    assert_eq!(
        svc["smtp.example.com"],
        vec![ip("203.0.113.41"), ip("2001:db8:203::41")]
    );
    assert_eq!(svc["gitlab.dev"], vec![ip("203.0.113.42")]);
    assert!(!svc.contains_key("canary.example.com"));
    assert!(!svc.contains_key("storefront.shop"));
    let prom = objs[&ObjKind::Service]
        .iter()
        .find(|(k, _)| k == &ObjKey::new("monitoring", "prometheus"))
        .map(|(_, c)| c.clone());
    assert_eq!(
        prom,
        Some(Contribution::Names(vec![NameData {
            name: "prometheus.example.com".into(),
            endpoints_of: Some(ObjKey::new("monitoring", "prometheus")),
            ..Default::default()
        }]))
    );
    assert!(objs[&ObjKind::EndpointSlice].contains(&(
        ObjKey::new("monitoring", "prometheus-7xk2p"),
        Contribution::EndpointSlice {
            service: ObjKey::new("monitoring", "prometheus"),
            addrs: vec![
                "198.51.100.60".parse().unwrap(),
                "198.51.100.61".parse().unwrap()
            ],
        }
    )));

    let ing = names(&objs, ObjKind::Ingress);
    assert_eq!(
        ing["blog.example.com"],
        vec![ip("203.0.113.30"), ip("2001:db8:203::30")]
    );
    assert_eq!(ing["old.example.com"], vec![ip("203.0.113.31")]);

    let gw: HashMap<ObjKey, Contribution> = objs[&ObjKind::Gateway].iter().cloned().collect();
    assert_eq!(
        gw[&ObjKey::new("gateway-system", "internal")],
        Contribution::Gateway {
            class: "envoy".into(),
            addrs: vec![
                ip("198.51.100.20"),
                Address::Hostname("lb.internal.example.com".into())
            ],
            cname: None,
            listeners: vec![(
                "dashboard".into(),
                "HTTPS".into(),
                "dashboard.internal.example.com".into()
            )],
        }
    );
    let routes: HashMap<ObjKey, Contribution> = objs[&ObjKind::HTTPRoute].iter().cloned().collect();
    assert_eq!(
        routes[&ObjKey::new("docs", "wiki")],
        Contribution::Route {
            hostnames: vec!["wiki.example.com".into()],
            parents: vec![
                ObjKey::new("gateway-system", "internal"),
                ObjKey::new("docs", "public")
            ],
            ttl: None,
            inherit: false,
            sections: vec![],
        }
    );
    assert_eq!(
        routes[&ObjKey::new("monitoring", "dashboard")],
        Contribution::Route {
            hostnames: vec![],
            parents: vec![ObjKey::new("gateway-system", "internal")],
            ttl: None,
            inherit: true,
            sections: vec![(
                ObjKey::new("gateway-system", "internal"),
                "dashboard".into()
            )],
        }
    );
    assert_eq!(objs[&ObjKind::HTTPRoute].len(), 7);
    assert_eq!(objs[&ObjKind::GRPCRoute].len(), 1);
    assert_eq!(objs[&ObjKind::TLSRoute].len(), 1);
    assert_eq!(objs[&ObjKind::TCPRoute].len(), 1);
    assert_eq!(objs[&ObjKind::UDPRoute].len(), 1);

    let dns: HashMap<String, NameData> = match &objs[&ObjKind::DNSEndpoint][0].1 {
        Contribution::Names(v) => v.iter().map(|n| (n.name.clone(), n.clone())).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        dns["vpn.example.com"].addrs,
        vec![ip("203.0.113.50"), ip("2001:db8:203::50")]
    );
    assert_eq!(
        dns["info.example.com"].txt,
        vec!["exdns demo cluster", "contact=hostmaster@example.com"]
    );
    assert_eq!(dns["docs.example.com"].cname, vec!["wiki.example.com"]);
    assert_eq!(
        names(&objs, ObjKind::VirtualServer)["cafe.example.com"],
        vec![ip("203.0.113.60")]
    );

    // externaldns.yaml and the ExternalName Services: every contribution exactly.
    let contribution = |kind: ObjKind, ns: &str, name: &str| {
        objs[&kind]
            .iter()
            .find(|(k, _)| k == &ObjKey::new(ns, name))
            .map(|(_, c)| c.clone())
    };
    let nd = |name: &str, addrs: Vec<Address>, cname: &[&str], ttl: Option<u32>| NameData {
        name: name.into(),
        addrs,
        cname: cname.iter().map(|c| c.to_string()).collect(),
        ttl,
        ..Default::default()
    };
    let want: Vec<(ObjKind, &str, &str, Contribution)> = vec![
        (
            ObjKind::Service,
            "shop",
            "checkout",
            Contribution::Names(vec![nd(
                "checkout.example.com",
                vec![ip("203.0.113.44")],
                &[],
                Some(300),
            )]),
        ),
        (
            ObjKind::Service,
            "dev",
            "registry",
            Contribution::Names(vec![nd(
                "registry.example.com",
                vec![ip("203.0.113.45"), ip("2001:db8:203::45")],
                &[],
                None,
            )]),
        ),
        (
            ObjKind::Ingress,
            "web",
            "status-page",
            Contribution::Names(vec![
                nd(
                    "status-page.example.com",
                    vec![],
                    &["status-page.cdn.example.net"],
                    Some(90),
                ),
                nd(
                    "uptime.example.com",
                    vec![],
                    &["status-page.cdn.example.net"],
                    Some(90),
                ),
            ]),
        ),
        (
            ObjKind::HTTPRoute,
            "shop",
            "promo",
            Contribution::Route {
                hostnames: vec!["promo.example.com".into()],
                parents: vec![ObjKey::new("gateway-system", "public")],
                ttl: Some(120),
                inherit: true,
                sections: vec![(ObjKey::new("gateway-system", "public"), "http".into())],
            },
        ),
        (
            ObjKind::Gateway,
            "gateway-system",
            "edge",
            Contribution::Gateway {
                class: "envoy".into(),
                addrs: vec![],
                cname: Some("edge-lb.example.net".into()),
                listeners: vec![],
            },
        ),
        (
            ObjKind::VirtualServer,
            "cafe",
            "tea",
            Contribution::Names(vec![
                nd("tea.example.com", vec![ip("203.0.113.61")], &[], Some(45)),
                nd("chai.example.com", vec![ip("203.0.113.61")], &[], Some(45)),
            ]),
        ),
        (
            ObjKind::Service,
            "data",
            "postgres",
            Contribution::Names(vec![nd(
                "postgres.data",
                vec![],
                &["db.prod.example.net"],
                None,
            )]),
        ),
        (
            ObjKind::Service,
            "web",
            "docs-mirror",
            Contribution::Names(vec![nd(
                "mirror.example.com",
                vec![],
                &["blog.example.com"],
                Some(30),
            )]),
        ),
    ];
    for (kind, ns, name, c) in want {
        assert_eq!(contribution(kind, ns, name), Some(c), "{kind} {ns}/{name}");
    }
}

/// Polls `feed` until `f` holds (or fails after 10 s).
async fn wait_for(feed: &Feed, what: &str, f: impl Fn(&Store) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if feed.with_store(&f) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_the_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("manifests");
    let feed = Feed::new();
    let kinds = vec![ObjKind::Service, ObjKind::Ingress];
    let task = tokio::spawn(run(dir.clone(), kinds, Filters::default(), feed.clone()));

    // The directory does not exist yet: nothing is synced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!feed.with_store(|s| s.is_synced(ObjKind::Service)));

    std::fs::create_dir(&dir).unwrap();
    write(&dir, "a.yaml", &svc("a", Some("x"), "192.0.2.1"));
    wait_for(&feed, "sync", |s| {
        s.is_synced(ObjKind::Service) && s.is_synced(ObjKind::Ingress)
    })
    .await;
    wait_for(&feed, "a.x", |s| {
        store_names(s, ObjKind::Service) == ["a.x"]
    })
    .await;

    // add
    write(&dir, "sub/b.yaml", &svc("b", Some("x"), "192.0.2.2"));
    wait_for(&feed, "b.x added", |s| {
        store_names(s, ObjKind::Service) == ["a.x", "b.x"]
    })
    .await;

    // edit
    write(&dir, "a.yaml", &svc("a", Some("x"), "192.0.2.11"));
    wait_for(&feed, "a.x edited", |s| {
        s.get(ObjKind::Service)
            .and_then(|m| m.get(&ObjKey::new("x", "a")))
            .is_some_and(|c| match c {
                Contribution::Names(v) => v[0].addrs == vec![ip("192.0.2.11")],
                _ => false,
            })
    })
    .await;

    // broken: keeps the last good objects
    write(&dir, "a.yaml", "kind: Service\nmetadata: [\n");
    write(&dir, "c.yaml", &svc("c", Some("x"), "192.0.2.3"));
    wait_for(&feed, "c.x added", |s| {
        store_names(s, ObjKind::Service) == ["a.x", "b.x", "c.x"]
    })
    .await;

    // delete
    std::fs::remove_file(dir.join("sub/b.yaml")).unwrap();
    std::fs::remove_file(dir.join("a.yaml")).unwrap();
    wait_for(&feed, "deletions", |s| {
        store_names(s, ObjKind::Service) == ["c.x"]
    })
    .await;
    assert!(feed.with_store(|s| s.is_synced(ObjKind::Ingress)));

    // The directory disappears: its objects keep serving until it comes back.
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        feed.with_store(|s| store_names(s, ObjKind::Service)),
        ["c.x"]
    );
    assert!(feed.with_store(|s| s.is_synced(ObjKind::Service)));
    std::fs::create_dir(&dir).unwrap();
    write(&dir, "d.yaml", &svc("d", Some("x"), "192.0.2.4"));
    wait_for(&feed, "the directory's return", |s| {
        store_names(s, ObjKind::Service) == ["d.x"]
    })
    .await;
    write(&dir, "e.yaml", &svc("e", Some("x"), "192.0.2.5"));
    wait_for(&feed, "watching again", |s| {
        store_names(s, ObjKind::Service) == ["d.x", "e.x"]
    })
    .await;

    task.abort();
}
