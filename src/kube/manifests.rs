//! The manifests source (`manifests DIR`): Kubernetes objects read from YAML/JSON files instead
//! of an API server, watched for changes.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file under DIR (recursively; entries whose name starts
//! with `.` are skipped, which also skips the `..data` / `..2024_…` directories of a mounted
//! ConfigMap) is read: multi-document YAML, `kind: List` (and typed lists such as
//! `ServiceList`) with `items`. Objects of the watched kinds (matched by `kind` and the API group
//! of `apiVersion`, so an Istio `Gateway` is not taken for a Gateway API one) go through
//! [`contribute`]; a missing namespace means `default`.
//!
//! After every (re)load each watched kind gets one [`Event::Replace`] with everything loaded, so
//! objects removed from the files disappear. A file with a problem (YAML error, an object that
//! fails to convert) is logged with its path and document number; if an earlier version of the
//! file loaded cleanly, that version's objects keep serving until the file is fixed, otherwise
//! the file's valid objects are used. A missing directory is logged and waited for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IntoDeserializer};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::kube::kinds::contribute;
use crate::kube::model::{Contribution, Event, Filters, ObjKey, ObjKind};
use crate::kube::source::Feed;

/// Quiet time after a file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A reload happens at the latest this long after the first event of a burst.
const DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// How often a missing directory is looked for.
const POLL: Duration = Duration::from_secs(1);

/// Objects per kind, as [`Event::Replace`] wants them.
pub type Objects = HashMap<ObjKind, Vec<(ObjKey, Contribution)>>;

/// One object loaded from a file.
#[derive(Debug, Clone)]
struct Loaded {
    kind: ObjKind,
    key: ObjKey,
    contribution: Contribution,
    /// `PATH: document N[, item M]`, for duplicate warnings.
    origin: String,
}

/// Loads DIR once, with a fresh state: every watched kind is present in the map (possibly
/// empty); the second value lists every problem found (also when DIR does not exist).
pub fn load_dir(dir: &Path, kinds: &[ObjKind], filters: &Filters) -> (Objects, Vec<String>) {
    let mut loader = Loader::new(kinds.to_vec(), filters.clone());
    match loader.load(dir) {
        Ok(r) => r,
        Err(e) => (empty(kinds), vec![e]),
    }
}

/// Reads one file's text as a load does (`json`: the file is `*.json`, else YAML): the objects
/// of `kinds` it holds, and the problems found. Used by the fuzz target and its regression tests.
pub fn parse_text(
    text: &str,
    json: bool,
    kinds: &[ObjKind],
    filters: &Filters,
) -> (Objects, Vec<String>) {
    let loader = Loader::new(kinds.to_vec(), filters.clone());
    let path = Path::new(if json { "input.json" } else { "input.yaml" });
    let (items, errors) = loader.parse_file(path, text);
    let mut out = empty(kinds);
    for l in items {
        out.entry(l.kind).or_default().push((l.key, l.contribution));
    }
    (out, errors)
}

fn empty(kinds: &[ObjKind]) -> Objects {
    kinds.iter().map(|k| (*k, Vec::new())).collect()
}

/// Loads directories, remembering each file's last clean parse.
struct Loader {
    kinds: Vec<ObjKind>,
    filters: Filters,
    last_good: HashMap<PathBuf, Vec<Loaded>>,
}

impl Loader {
    fn new(kinds: Vec<ObjKind>, filters: Filters) -> Self {
        Loader {
            kinds,
            filters,
            last_good: HashMap::new(),
        }
    }

    /// Reads every manifest under `dir`. `Err`: `dir` itself is unusable.
    fn load(&mut self, dir: &Path) -> Result<(Objects, Vec<String>), String> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory", dir.display())),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
        let mut errors = Vec::new();
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        walk(dir, &mut files, &mut errors, &mut seen);
        files.sort();

        let mut per_kind: HashMap<ObjKind, BTreeMap<ObjKey, Loaded>> = HashMap::new();
        for path in &files {
            let (items, errs) = match std::fs::read_to_string(path) {
                Ok(text) => self.parse_file(path, &text),
                Err(e) => (Vec::new(), vec![format!("{}: {e}", path.display())]),
            };
            let items = if errs.is_empty() {
                self.last_good.insert(path.clone(), items.clone());
                items
            } else {
                errors.extend(errs);
                match self.last_good.get(path) {
                    Some(good) => {
                        errors.push(format!(
                            "{}: keeping the {} object(s) of its last good version until it is fixed",
                            path.display(),
                            good.len()
                        ));
                        good.clone()
                    }
                    None => items,
                }
            };
            for l in items {
                let map = per_kind.entry(l.kind).or_default();
                if let Some(prev) = map.get(&l.key) {
                    errors.push(format!(
                        "{}: {} {} is also defined at {}; using the later one",
                        l.origin, l.kind, l.key, prev.origin
                    ));
                }
                map.insert(l.key.clone(), l);
            }
        }
        let present: HashSet<&PathBuf> = files.iter().collect();
        self.last_good.retain(|p, _| present.contains(p));

        let mut out = empty(&self.kinds);
        for (kind, map) in per_kind {
            out.insert(
                kind,
                map.into_values().map(|l| (l.key, l.contribution)).collect(),
            );
        }
        Ok((out, errors))
    }

    /// The objects of one file and its problems.
    fn parse_file(&self, path: &Path, text: &str) -> (Vec<Loaded>, Vec<String>) {
        let mut items = Vec::new();
        let mut errs = Vec::new();
        let json = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if json {
            let origin = path.display().to_string();
            if !self.json_list(&origin, text, &mut items, &mut errs) {
                match serde_json::from_str::<Value>(text) {
                    Ok(v) => self.document(v, &origin, &mut items, &mut errs),
                    Err(e) => errs.push(format!("{origin}: {e}")),
                }
            }
            return (items, errs);
        }
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let origin = format!("{}: document {}", path.display(), i + 1);
            let read = DocSeed.deserialize(doc).or_else(|e| {
                // Something the one-pass reader does not take: the document read again as one
                // tree, which takes it or gives the error it always gave.
                match serde_yaml::Deserializer::from_str(text).nth(i) {
                    Some(doc) => Value::deserialize(doc).map(Doc::Value),
                    None => Err(e),
                }
            });
            match read {
                Ok(doc) => self.yaml_document(doc, &origin, &mut items, &mut errs),
                Err(e) => {
                    // The YAML parser cannot resume after an error: the rest of the file is
                    // unreadable.
                    errs.push(format!("{origin}: {e}"));
                    break;
                }
            }
        }
        (items, errs)
    }

    /// A JSON file holding a list (`kind: …List` with `items`), read one item at a time: each
    /// item becomes a tree of its own, is converted and dropped before the next is parsed, where
    /// a tree of the whole file would take ~20 times the file's size (10k Ingresses: ~90 MB for
    /// a 5 MB file). `false`: not such a list, or something unusual (malformed JSON, repeated
    /// keys, `items` not an array...) — nothing was added, and the whole-tree path reads the file
    /// and reports its problems as it always has.
    fn json_list(
        &self,
        origin: &str,
        text: &str,
        items: &mut Vec<Loaded>,
        errs: &mut Vec<String>,
    ) -> bool {
        // The list's own fields may follow `items` (`kubectl get -o json` sorts the keys): a
        // first pass reads them and skips the items without building them.
        let Ok(head) = serde_json::from_str::<ListHead>(text) else {
            return false;
        };
        let Some(kind) = head.kind.as_ref().and_then(Value::as_str) else {
            return false;
        };
        if !(kind.ends_with("List") && head.items) {
            return false;
        }
        let mut got = Vec::new();
        let mut problems = Vec::new();
        let seed = ListSeed {
            loader: self,
            kind,
            api: head.api_version.as_ref(),
            origin,
            items: &mut got,
            errs: &mut problems,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        if DeserializeSeed::deserialize(seed, &mut de)
            .and_then(|()| de.end())
            .is_err()
        {
            return false;
        }
        items.append(&mut got);
        errs.append(&mut problems);
        true
    }

    /// One YAML document as [`DocSeed`] read it: a list's items are converted one at a time
    /// (their compact text parsed again), anything else as [`document`](Self::document) does.
    fn yaml_document(
        &self,
        doc: Doc,
        origin: &str,
        items: &mut Vec<Loaded>,
        errs: &mut Vec<String>,
    ) {
        let (mut fields, buffered) = match doc {
            Doc::Value(v) => return self.document(v, origin, items, errs),
            Doc::Map(fields, buffered) => (fields, buffered),
        };
        let list_kind = fields
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| k.ends_with("List"));
        match (list_kind, buffered) {
            (Some(kind), Some(Buffered::Compact(list))) => {
                let api = fields.get("apiVersion");
                for (j, text) in list.into_iter().enumerate() {
                    match serde_json::from_str(&text) {
                        Ok(item) => self.list_item(item, j + 1, kind, api, origin, items, errs),
                        // Not expected: serde_json wrote it, from a tree no deeper than
                        // serde_yaml allows.
                        Err(e) => errs.push(format!("{origin}, item {}: {e}", j + 1)),
                    }
                }
            }
            (_, buffered) => {
                if let Some(b) = buffered {
                    fields.insert("items".into(), b.into_value());
                }
                self.document(Value::Object(fields), origin, items, errs);
            }
        }
    }

    /// One YAML document or JSON file: an object, a list, or nothing (empty document).
    fn document(&self, v: Value, origin: &str, items: &mut Vec<Loaded>, errs: &mut Vec<String>) {
        match v {
            Value::Null => {}
            Value::Object(_) => self.object(v, origin, items, errs),
            other => errs.push(format!(
                "{origin}: expected a Kubernetes object, found {}",
                match other {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    _ => "a boolean",
                }
            )),
        }
    }

    fn object(&self, mut v: Value, origin: &str, items: &mut Vec<Loaded>, errs: &mut Vec<String>) {
        let Some(kind) = v.get("kind").and_then(Value::as_str).map(str::to_string) else {
            errs.push(format!("{origin}: the object has no `kind`"));
            return;
        };
        if kind.ends_with("List") && v.get("items").is_some() {
            let api = v.get("apiVersion").cloned();
            let list = match v.get_mut("items").map(Value::take) {
                Some(Value::Array(list)) => list,
                Some(Value::Null) | None => return,
                Some(_) => {
                    errs.push(format!("{origin}: `items` of a {kind} must be a list"));
                    return;
                }
            };
            for (j, item) in list.into_iter().enumerate() {
                self.list_item(item, j + 1, &kind, api.as_ref(), origin, items, errs);
            }
            return;
        }
        let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group = (!api.is_empty()).then(|| api.rsplit_once('/').map_or("", |(g, _)| g));
        let Some(ok) = ObjKind::from_kind(&kind, group) else {
            return; // not a kind exdns reads (ConfigMap, Deployment, ...)
        };
        if !self.kinds.contains(&ok) {
            return;
        }
        if group.is_some_and(|g| g != ok.api().0) {
            tracing::debug!("{origin}: {kind} of {api} is not the one exdns reads; skipped");
            return;
        }
        if ok.namespaced()
            && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
            && meta
                .get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            meta.insert("namespace".into(), Value::from("default"));
        }
        match contribute(ok, &v, &self.filters) {
            Ok((key, Some(contribution))) => items.push(Loaded {
                kind: ok,
                key,
                contribution,
                origin: origin.to_string(),
            }),
            Ok((_, None)) => {}
            Err(e) => errs.push(format!("{origin}: {e}")),
        }
    }

    /// Item `j` (from 1) of the list of kind `list_kind` at `origin`, whose `apiVersion` is `api`.
    #[allow(clippy::too_many_arguments)]
    fn list_item(
        &self,
        mut item: Value,
        j: usize,
        list_kind: &str,
        api: Option<&Value>,
        origin: &str,
        items: &mut Vec<Loaded>,
        errs: &mut Vec<String>,
    ) {
        let origin = format!("{origin}, item {j}");
        // Typed lists (`ServiceList` from the API) may omit the items' kind.
        let item_kind = list_kind.strip_suffix("List").filter(|k| !k.is_empty());
        if let (Some(k), Some(o)) = (item_kind, item.as_object_mut()) {
            o.entry("kind").or_insert_with(|| Value::from(k));
            if let Some(a) = api {
                o.entry("apiVersion").or_insert_with(|| a.clone());
            }
        }
        if item.is_object() {
            self.object(item, &origin, items, errs);
        } else {
            errs.push(format!("{origin}: expected a Kubernetes object"));
        }
    }
}

/// The fields of a JSON file that tell a list, read without building anything else. Repeated
/// keys fail (the whole-tree path then decides, keeping the last one as it always has).
#[derive(Deserialize)]
struct ListHead {
    #[serde(default, deserialize_with = "present_value")]
    kind: Option<Value>,
    #[serde(rename = "apiVersion", default, deserialize_with = "present_value")]
    api_version: Option<Value>,
    /// `items` is there (`null` included).
    #[serde(default, deserialize_with = "present")]
    items: bool,
}

/// A field that is there, `null` included (`Option<Value>` alone reads `null` as absent).
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A JSON list document, its items converted as they are parsed (see [`Loader::json_list`]).
struct ListSeed<'a> {
    loader: &'a Loader,
    kind: &'a str,
    api: Option<&'a Value>,
    origin: &'a str,
    items: &'a mut Vec<Loaded>,
    errs: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ListSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes list")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                map.next_value_seed(Items(ListSeed {
                    items: &mut *self.items,
                    errs: &mut *self.errs,
                    ..self
                }))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A list's `items` array, one item at a time. Anything but an array or `null` fails, for the
/// whole-tree path to report.
struct Items<'a>(ListSeed<'a>);

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut j = 0;
        let l = self.0;
        while let Some(item) = seq.next_element::<Value>()? {
            j += 1;
            l.loader
                .list_item(item, j, l.kind, l.api, l.origin, l.items, l.errs);
        }
        Ok(())
    }
}

/// A YAML document read in one pass by [`DocSeed`].
enum Doc {
    /// Not a mapping: the tree `Value::deserialize` gives.
    Value(Value),
    /// A mapping: its fields but `items`, and `items` if there.
    Map(serde_json::Map<String, Value>, Option<Buffered>),
}

/// A mapping's `items`.
enum Buffered {
    /// An array: each element's tree written as compact JSON, a tenth of the tree's size or
    /// less, until the mapping's other fields (which may follow, as in `kubectl get -o yaml`)
    /// tell whether it is a list.
    Compact(Vec<Box<str>>),
    /// Anything else.
    Value(Value),
}

impl Buffered {
    fn into_value(self) -> Value {
        match self {
            Buffered::Value(v) => v,
            Buffered::Compact(list) => Value::Array(
                list.iter()
                    .map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
                    .collect(),
            ),
        }
    }
}

/// `Value`'s own visits of everything but mappings and sequences, each wrapped by `$wrap`: the
/// same value `Value::deserialize` builds.
macro_rules! value_visits {
    ($wrap:expr) => {
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Value::deserialize(v.into_deserializer()).map($wrap)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Value::Null))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Value::Null))
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            Value::deserialize(d).map($wrap)
        }
    };
}

/// Reads a YAML document as `Value::deserialize` would (the same keys, values and order of
/// reading), except that a mapping's `items` array is kept compact (see [`Buffered`]): a
/// 10k-object `kind: List` then never exists as one tree. Whatever it does not take fails, and
/// the caller reads the document again as a tree.
struct DocSeed;

impl<'de> DeserializeSeed<'de> for DocSeed {
    type Value = Doc;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Doc, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocSeed {
    type Value = Doc;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    value_visits!(Doc::Value);

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Doc, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Doc::Value)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut fields = serde_json::Map::new();
        let mut items = None;
        // As `Value` does: the first key through a string-only seed, the others as `String`s.
        let mut key = map.next_key_seed(FirstKey)?;
        while let Some(k) = key {
            if k == "items" {
                items = Some(map.next_value_seed(ItemsSeed)?);
            } else {
                fields.insert(k, map.next_value()?);
            }
            key = map.next_key::<String>()?;
        }
        Ok(Doc::Map(fields, items))
    }
}

/// A mapping's first key, read as `Value` reads it.
struct FirstKey;

impl<'de> DeserializeSeed<'de> for FirstKey {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for FirstKey {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
        Ok(s.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<String, E> {
        Ok(s)
    }
}

/// A mapping's `items` (see [`Buffered`]).
struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Buffered;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Buffered, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ItemsSeed {
    type Value = Buffered;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    value_visits!(Buffered::Value);

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Buffered, A::Error> {
        let mut list = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            list.push(item.to_string().into_boxed_str());
        }
        Ok(Buffered::Compact(list))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Buffered, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Buffered::Value)
    }
}

/// Collects manifest files under `dir`, following symlinks (each real directory once).
fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<String>,
    seen: &mut HashSet<PathBuf>,
) {
    match std::fs::canonicalize(dir) {
        Ok(c) => {
            if !seen.insert(c) {
                return;
            }
        }
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks; a dangling link is skipped.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, files, errors, seen);
        } else if meta.is_file()
            && path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["yaml", "yml", "json"]
                    .iter()
                    .any(|x| e.eq_ignore_ascii_case(x))
            })
        {
            files.push(path);
        }
    }
}

/// Serves the objects in `dir` to `feed` until the task is aborted: loads, marks every kind
/// synced, then reloads on every change (debounced).
pub async fn run(dir: PathBuf, kinds: Vec<ObjKind>, filters: Filters, feed: Feed) {
    let mut loader = Some(Loader::new(kinds.clone(), filters.clone()));
    let mut synced = false;
    let mut waiting_logged = false;
    loop {
        let is_dir = tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir());
        if !is_dir {
            if !waiting_logged {
                tracing::error!(
                    "manifests directory {} does not exist; waiting for it to appear",
                    dir.display()
                );
                waiting_logged = true;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        waiting_logged = false;

        let (tx, mut rx) = mpsc::unbounded_channel();
        // Watch before loading, so a change during the load is not missed.
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let _ = tx.send(res);
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::Recursive).map(|()| w));
        let _watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("manifests directory {}: cannot watch: {e}", dir.display());
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        tracing::info!("manifests: watching {}", dir.display());

        if !reload(&mut loader, &dir, &kinds, &filters, &feed).await {
            tokio::time::sleep(POLL).await;
            continue;
        }
        if !synced {
            for k in &kinds {
                feed.set_synced(*k, true);
            }
            synced = true;
        }

        loop {
            match tokio::time::timeout(POLL, rx.recv()).await {
                Ok(Some(ev)) => {
                    if !relevant(&ev) {
                        continue;
                    }
                    debounce(&mut rx).await;
                    if !reload(&mut loader, &dir, &kinds, &filters, &feed).await {
                        break;
                    }
                }
                Ok(None) => break, // the watcher stopped
                Err(_) => {
                    if !tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
                        tracing::error!(
                            "manifests directory {} disappeared; keeping its objects and waiting for it",
                            dir.display()
                        );
                        waiting_logged = true;
                        break;
                    }
                }
            }
        }
    }
}

/// Whether a watcher event may change what is loaded (our own reads are not changes).
fn relevant(ev: &notify::Result<notify::Event>) -> bool {
    match ev {
        Ok(e) => !matches!(e.kind, EventKind::Access(_)),
        // e.g. a queue overflow: rescan to be safe
        Err(_) => true,
    }
}

/// Waits until events stop for [`DEBOUNCE`] (at most [`DEBOUNCE_MAX`]).
async fn debounce(rx: &mut mpsc::UnboundedReceiver<notify::Result<notify::Event>>) {
    let deadline = tokio::time::Instant::now() + DEBOUNCE_MAX;
    loop {
        let wait = DEBOUNCE.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        if wait.is_zero() {
            return;
        }
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

/// Loads `dir` off the async threads and publishes the result. `false`: `dir` is unusable
/// (logged; the feed keeps what it had).
async fn reload(
    loader: &mut Option<Loader>,
    dir: &Path,
    kinds: &[ObjKind],
    filters: &Filters,
    feed: &Feed,
) -> bool {
    let mut l = loader
        .take()
        .unwrap_or_else(|| Loader::new(kinds.to_vec(), filters.clone()));
    let d = dir.to_path_buf();
    let res = tokio::task::spawn_blocking(move || {
        let r = l.load(&d);
        (l, r)
    })
    .await;
    let result = match res {
        Ok((l, r)) => {
            *loader = Some(l);
            r
        }
        Err(e) => Err(format!("{}: loading failed: {e}", dir.display())),
    };
    match result {
        Ok((objects, errors)) => {
            for e in &errors {
                tracing::warn!("manifests: {e}");
            }
            let mut counts = Vec::new();
            for (kind, mut items) in objects {
                items.sort_by(|a, b| a.0.cmp(&b.0));
                counts.push(format!("{kind}={}", items.len()));
                feed.apply(kind, Event::Replace(items));
            }
            counts.sort();
            tracing::debug!("manifests: loaded {} ({})", dir.display(), counts.join(" "));
            // The files' text and trees are gone, and so are the previous load's objects.
            crate::mem::release_free_memory();
            true
        }
        Err(e) => {
            tracing::error!("manifests directory {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests;
