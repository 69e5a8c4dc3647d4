//! One zone of the *file* plugin: an RFC 1035 master file read with hickory's zone-file parser
//! into an immutable name → node map, and the authoritative lookup over it (RFC 1034 4.3.2 with
//! RFC 4592 wildcards, RFC 2308 negative answers, RFC 6604 CNAME chains).
//!
//! Every name in the zone is a node, including the empty non-terminals (names that own no
//! records but have descendants that do): they exist, so they answer NODATA and they stop
//! wildcard synthesis below them. A node with NS records below the apex is a zone cut: every
//! name at or below it gets a referral (except a DS query for the cut itself, answered from the
//! parent side), so glue below a cut is never answered authoritatively.
//!
//! Names are kept as lower-case absolute text (`www.example.org.`, the form [`lower_fqdn`]
//! produces for queries), so a lookup walks the query name's suffixes as string slices without
//! allocating.

use std::collections::HashMap;
use std::path::Path;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::{LexerError, ParseError, Parser};

use crate::dns::request::lower_fqdn;
use crate::plugin::zones::in_zone;

/// Longest CNAME chain followed inside the zone (CoreDNS follows at most 8 links after the first).
pub(crate) const MAX_CHAIN: usize = 8;

/// Why a zone file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError {
    /// The line of the file the parser stopped at, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl LoadError {
    /// The error as `PATH:LINE: MESSAGE` (errors without a line name the file themselves).
    pub(crate) fn with_path(&self, path: &Path) -> String {
        match self.line {
            Some(l) => format!("{}:{l}: {}", path.display(), self.message),
            None => self.message.clone(),
        }
    }
}

/// All records of one owner name, grouped by type.
#[derive(Debug, Default)]
struct Node {
    /// RRsets in type order; empty for an empty non-terminal.
    sets: Vec<(RecordType, Vec<Record>)>,
    /// NS records at a name below the apex: a delegation.
    cut: bool,
    /// The node of `*.<this name>`, when the zone has one.
    wildcard: Option<usize>,
}

impl Node {
    fn get(&self, t: RecordType) -> Option<&[Record]> {
        self.sets
            .iter()
            .find(|(ty, _)| *ty == t)
            .map(|(_, rrs)| rrs.as_slice())
    }
}

/// Nodes by name while a zone is built.
#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
}

impl Builder {
    fn node(&mut self, name: &str) -> &mut Node {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.nodes.push(Node::default());
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }
}

/// A loaded zone. Never mutated: a reload builds a new one.
#[derive(Debug)]
pub(crate) struct Zone {
    /// Lower-case absolute origin (`example.org.`).
    origin: String,
    serial: u32,
    /// The apex SOA with its TTL lowered to the SOA MINIMUM (RFC 2308 section 3), for the
    /// authority section of negative answers.
    negative_soa: Record,
    /// The apex NS RRset (authority section of positive answers).
    apex_ns: Vec<Record>,
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    /// Records per owner name, for `coredns_file_entries`.
    entries: Vec<(String, usize)>,
}

/// How a lookup ended, in CoreDNS's terms (they decide `fallthrough`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Records in the answer section (possibly a CNAME chain that ends in a negative answer).
    Answer,
    /// The name owns records, none of the asked type.
    NoData,
    /// NODATA for an empty non-terminal or from a wildcard: CoreDNS's "success without
    /// answer", which `fallthrough` passes on.
    EmptySuccess,
    /// The name does not exist.
    NameError,
    /// A referral to a delegated child zone.
    Delegation,
}

/// A lookup's reply sections.
#[derive(Debug)]
pub(crate) struct Answer {
    pub kind: Kind,
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

/// Where a name lands in the zone.
enum Found<'a> {
    /// At or below a zone cut: the cut's node.
    Cut(&'a Node),
    /// The name exists (records or empty non-terminal).
    Exact(&'a Node),
    /// The name does not exist; the wildcard at its closest encloser does.
    Wildcard(&'a Node),
    /// The name does not exist and no wildcard covers it.
    Missing,
}

impl Zone {
    /// Parses `text` (the contents of `path`; relative `$INCLUDE`s are read next to it) with
    /// `origin` (lower-case absolute) as the initial `$ORIGIN`.
    pub(crate) fn parse(text: &str, path: &Path, origin: &str) -> Result<Zone, LoadError> {
        let origin_name = Name::from_ascii(origin).map_err(|e| LoadError {
            line: None,
            message: format!("invalid origin {origin}: {e}"),
        })?;
        let parsed = Parser::new(text, Some(path.to_path_buf()), Some(origin_name.clone())).parse();
        let (_, sets) = match parsed {
            Ok(v) => v,
            Err(e) => {
                return Err(LoadError {
                    line: error_line(text, path, &origin_name),
                    message: explain(e.to_string()),
                });
            }
        };

        let mut b = Builder::default();
        let mut soa: Option<Record> = None;
        let mut apex_ns: Vec<Record> = Vec::new();
        let mut ignored = 0usize;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for set in sets.into_values() {
            for mut record in set {
                let owner = lower_fqdn(&record.name);
                if !in_zone(&owner, origin) {
                    ignored += 1;
                    continue;
                }
                record.name = record.name.to_lowercase();
                *counts.entry(owner.clone()).or_default() += 1;
                if owner == origin {
                    match &record.data {
                        RData::SOA(_) => soa = Some(record.clone()),
                        RData::NS(_) => apex_ns.push(record.clone()),
                        _ => {}
                    }
                }
                let rtype = record.record_type();
                let node = b.node(&owner);
                match node.sets.iter_mut().find(|(t, _)| *t == rtype) {
                    Some((_, rrs)) => rrs.push(record),
                    None => node.sets.push((rtype, vec![record])),
                }
            }
        }
        if ignored > 0 {
            tracing::warn!(
                "plugin/file: {}: ignored {ignored} record(s) outside the zone {origin}",
                path.display()
            );
        }
        let Some(mut negative_soa) = soa else {
            return Err(LoadError {
                line: None,
                message: format!(
                    "file \"{}\" has no SOA record for origin {origin}",
                    path.display()
                ),
            });
        };
        let serial = match &negative_soa.data {
            RData::SOA(s) => {
                negative_soa.ttl = negative_soa.ttl.min(s.minimum);
                s.serial
            }
            _ => 0,
        };

        // Empty non-terminals: every ancestor of an owner name, up to the apex, exists.
        let owners: Vec<String> = b.index.keys().cloned().collect();
        for owner in &owners {
            let mut name = owner.as_str();
            while name.len() > origin.len() {
                let Some(p) = parent(name) else { break };
                b.node(p);
                name = p;
            }
        }
        // Cuts, wildcards, RRsets in type order.
        let Builder { mut nodes, index } = b;
        for (name, &i) in &index {
            let wild = if name == "." {
                "*.".to_string()
            } else {
                format!("*.{name}")
            };
            let node = &mut nodes[i];
            node.wildcard = index.get(&wild).copied();
            node.cut = name != origin && node.get(RecordType::NS).is_some();
            node.sets.sort_by_key(|(t, _)| u16::from(*t));
        }
        let mut entries: Vec<(String, usize)> = counts.into_iter().collect();
        entries.sort();
        Ok(Zone {
            origin: origin.to_string(),
            serial,
            negative_soa,
            apex_ns,
            nodes,
            index,
            entries,
        })
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub(crate) fn serial(&self) -> u32 {
        self.serial
    }

    /// Every record for a zone transfer: the apex SOA first, then every other record by owner
    /// name and type (delegations and glue included).
    pub(crate) fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(soa) = self.node(&self.origin).and_then(|n| n.get(RecordType::SOA)) {
            out.extend(soa.iter().take(1).cloned());
        }
        for (name, _) in &self.entries {
            let Some(node) = self.node(name) else {
                continue;
            };
            for (t, rrs) in &node.sets {
                if *t != RecordType::SOA {
                    out.extend(rrs.iter().cloned());
                }
            }
        }
        out
    }

    /// Records per owner name (sorted by name).
    pub(crate) fn entries(&self) -> &[(String, usize)] {
        &self.entries
    }

    /// Where `name` (lower-case absolute, in the zone) lands: walks from the apex down one label
    /// at a time, stopping at a zone cut or at the first name that does not exist (the closest
    /// encloser is then the last name that did).
    fn find(&self, name: &str, qtype: RecordType) -> Found<'_> {
        let Some(apex) = self.node(&self.origin) else {
            return Found::Missing;
        };
        let mut encloser = apex;
        for suffix in Suffixes::new(name, &self.origin) {
            let Some(node) = self.node(suffix) else {
                return match encloser.wildcard {
                    Some(w) => Found::Wildcard(&self.nodes[w]),
                    None => Found::Missing,
                };
            };
            // The parent side of a cut answers DS for the cut itself.
            if node.cut && !(qtype == RecordType::DS && suffix.len() == name.len()) {
                return Found::Cut(node);
            }
            encloser = node;
        }
        Found::Exact(encloser)
    }

    /// Answers `qtype` for `qname` (`name` is its lower-case absolute text, in the zone).
    pub(crate) fn lookup(&self, name: &str, qname: &Name, qtype: RecordType) -> Answer {
        if name == self.origin && qtype == RecordType::NS {
            // The apex NS RRset with the addresses of in-zone name servers; no authority.
            return Answer {
                kind: Kind::Answer,
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: self.apex_ns.clone(),
                authority: Vec::new(),
                additional: self.glue(&self.apex_ns, &self.origin),
            };
        }
        let (node, synthesized) = match self.find(name, qtype) {
            Found::Cut(cut) => return self.referral(cut, Vec::new()),
            Found::Missing => return self.negative(Vec::new(), Kind::NameError),
            Found::Exact(node) => (node, false),
            Found::Wildcard(node) => (node, true),
        };
        let owner = synthesized.then(|| qname.to_lowercase());
        if qtype != RecordType::CNAME
            && let Some(cname) = node.get(RecordType::CNAME)
        {
            return self.chase(with_owner(cname, owner.as_ref()), qtype);
        }
        match node.get(qtype) {
            Some(rrs) => self.positive(with_owner(rrs, owner.as_ref())),
            None if synthesized || node.sets.is_empty() => {
                self.negative(Vec::new(), Kind::EmptySuccess)
            }
            None => self.negative(Vec::new(), Kind::NoData),
        }
    }

    /// Follows the CNAME at the end of `answers` through the zone (RFC 1034 4.3.2 step 3a,
    /// RFC 6604): the chain ends at the target's records, at a negative answer for the target
    /// (whose rcode and SOA the reply then carries), at a referral, or at a target outside the
    /// zone (answered with the chain only, as CoreDNS does when its upstream lookup fails).
    fn chase(&self, mut answers: Vec<Record>, qtype: RecordType) -> Answer {
        // Owners already in the chain: a CNAME back to one of them is a loop.
        let mut seen: Vec<String> = answers.iter().map(|r| lower_fqdn(&r.name)).collect();
        for _ in 0..=MAX_CHAIN {
            let target = match answers.last().map(|r| &r.data) {
                Some(RData::CNAME(c)) => c.0.to_lowercase(),
                _ => break,
            };
            let target_text = lower_fqdn(&target);
            if !in_zone(&target_text, &self.origin) || seen.contains(&target_text) {
                break;
            }
            let (node, synthesized) = match self.find(&target_text, qtype) {
                Found::Cut(cut) => return self.referral(cut, answers),
                Found::Missing => return self.negative(answers, Kind::NameError),
                Found::Exact(node) => (node, false),
                Found::Wildcard(node) => (node, true),
            };
            let owner = synthesized.then_some(&target);
            if let Some(cname) = node.get(RecordType::CNAME) {
                answers.extend(with_owner(cname, owner));
                seen.push(target_text);
                continue;
            }
            return match node.get(qtype) {
                Some(rrs) => {
                    answers.extend(with_owner(rrs, owner));
                    self.positive(answers)
                }
                None => self.negative(answers, Kind::NoData),
            };
        }
        // The chain leaves the zone, loops or is too long: the CNAMEs found so far.
        self.positive(answers)
    }

    /// A positive answer: the records, the apex NS RRset as authority, and the addresses of
    /// in-zone MX and SRV targets as additional data.
    fn positive(&self, answers: Vec<Record>) -> Answer {
        Answer {
            kind: Kind::Answer,
            rcode: ResponseCode::NoError,
            authoritative: true,
            additional: self.additional(&answers),
            authority: self.apex_ns.clone(),
            answers,
        }
    }

    /// NXDOMAIN (kind NameError) or NODATA with the SOA (TTL capped by its MINIMUM) as
    /// authority, after the CNAMEs in `answers` (if any).
    fn negative(&self, answers: Vec<Record>, kind: Kind) -> Answer {
        Answer {
            kind: if answers.is_empty() {
                kind
            } else {
                Kind::Answer
            },
            rcode: if kind == Kind::NameError {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            },
            authoritative: true,
            answers,
            authority: vec![self.negative_soa.clone()],
            additional: Vec::new(),
        }
    }

    /// A referral to the child zone at `cut`: its NS RRset as authority, the addresses of name
    /// servers below the cut as glue; not authoritative unless CNAMEs from this zone lead there.
    fn referral(&self, cut: &Node, answers: Vec<Record>) -> Answer {
        let ns: Vec<Record> = cut.get(RecordType::NS).unwrap_or_default().to_vec();
        let cut_name = ns.first().map(|r| lower_fqdn(&r.name)).unwrap_or_default();
        let additional = self.glue(&ns, &cut_name);
        // The DS RRset follows the NS RRset (RFC 4035 §3.1.4; the plugin drops it without DO).
        let mut authority = ns;
        authority.extend(cut.get(RecordType::DS).unwrap_or_default().iter().cloned());
        Answer {
            kind: if answers.is_empty() {
                Kind::Delegation
            } else {
                Kind::Answer
            },
            rcode: ResponseCode::NoError,
            authoritative: !answers.is_empty(),
            answers,
            additional,
            authority,
        }
    }

    /// A and AAAA records of the NS targets in `ns` that are at or below `below`.
    fn glue(&self, ns: &[Record], below: &str) -> Vec<Record> {
        let mut out = Vec::new();
        for r in ns {
            if let RData::NS(target) = &r.data {
                let target = lower_fqdn(&target.0);
                if in_zone(&target, below) {
                    self.push_addresses(&target, &mut out);
                }
            }
        }
        out
    }

    /// A and AAAA records of the in-zone targets of the MX and SRV records in `answers`.
    fn additional(&self, answers: &[Record]) -> Vec<Record> {
        let mut out = Vec::new();
        for r in answers {
            let target = match &r.data {
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                _ => continue,
            };
            let target = lower_fqdn(target);
            if in_zone(&target, &self.origin) {
                self.push_addresses(&target, &mut out);
            }
        }
        out
    }

    fn push_addresses(&self, name: &str, out: &mut Vec<Record>) {
        if let Some(node) = self.node(name) {
            for t in [RecordType::A, RecordType::AAAA] {
                for r in node.get(t).unwrap_or_default() {
                    if !out.contains(r) {
                        out.push(r.clone());
                    }
                }
            }
        }
    }
}

/// hickory's wording for the DNSSEC types it only builds itself (`NSEC should be dynamically
/// generated`), said plainly: a pre-signed zone is not served as such; the `dnssec` plugin signs
/// answers online (DS records, the parent side of a delegation, are read).
fn explain(message: String) -> String {
    match message.strip_suffix(" should be dynamically generated") {
        Some(t) => format!(
            "{t} records are not supported (pre-signed zones are not served: sign online with dnssec)"
        ),
        None => message,
    }
}

/// `rrs` with their owner replaced by `owner` (wildcard synthesis), or as stored.
fn with_owner(rrs: &[Record], owner: Option<&Name>) -> Vec<Record> {
    rrs.iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = owner {
                r.name = o.clone();
            }
            r
        })
        .collect()
}

/// Whether the `.` at byte `i` of `name` separates labels (is not escaped with a backslash).
fn is_separator(name: &[u8], i: usize) -> bool {
    if name[i] != b'.' {
        return false;
    }
    let backslashes = name[..i].iter().rev().take_while(|&&b| b == b'\\').count();
    backslashes % 2 == 0
}

/// The parent of a lower-case absolute name (`a.b.` → `b.`, `b.` → `.`); `None` for the root.
fn parent(name: &str) -> Option<&str> {
    if name == "." {
        return None;
    }
    let b = name.as_bytes();
    (0..b.len() - 1)
        .find(|&i| is_separator(b, i))
        .map(|i| &name[i + 1..])
        .or(Some("."))
}

/// The suffixes of `name` below `origin`, shortest first, ending with `name` itself
/// (`a.b.example.org.` below `example.org.`: `b.example.org.`, `a.b.example.org.`).
struct Suffixes<'a> {
    name: &'a str,
    /// Start of the last suffix returned (initially where `origin` starts).
    start: usize,
}

impl<'a> Suffixes<'a> {
    fn new(name: &'a str, origin: &str) -> Self {
        let start = if name == origin {
            0
        } else if origin == "." {
            name.len()
        } else {
            name.len() - origin.len()
        };
        Suffixes { name, start }
    }
}

impl<'a> Iterator for Suffixes<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.start == 0 {
            return None;
        }
        // `start - 1` is the separator before the current suffix; find the one before it.
        let b = self.name.as_bytes();
        let end = self.start - 1;
        self.start = (0..end)
            .rev()
            .find(|&i| is_separator(b, i))
            .map_or(0, |i| i + 1);
        Some(&self.name[self.start..])
    }
}

/// Whether a parse error only says the input ended early (a prefix cut inside parentheses or
/// quotes), which more lines would fix.
fn is_incomplete(e: &ParseError) -> bool {
    matches!(
        e,
        ParseError::Lexer(
            LexerError::EOF | LexerError::UnclosedList | LexerError::UnclosedQuotedString
        )
    )
}

/// The line a parse error is on. hickory's parser does not report positions, so this finds the
/// shortest prefix of the file (in lines) that fails to parse for a reason other than ending
/// early (binary search: parsing stops at the first bad entry, so longer prefixes fail too).
fn error_line(text: &str, path: &Path, origin: &Name) -> Option<usize> {
    let ends: Vec<usize> = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain((!text.ends_with('\n') && !text.is_empty()).then_some(text.len()))
        .collect();
    let parse = |lines: usize| {
        let prefix = &text[..ends[lines - 1]];
        Parser::new(prefix, Some(path.to_path_buf()), Some(origin.clone())).parse()
    };
    if ends.is_empty() {
        return None;
    }
    // A file that ends inside parentheses or quotes: the line where they open, i.e. the first
    // prefix that fails at all. Otherwise the first prefix that fails for another reason.
    let incomplete = match parse(ends.len()) {
        Ok(_) => return None,
        Err(e) => is_incomplete(&e),
    };
    let fails = |lines: usize| match parse(lines) {
        Ok(_) => false,
        Err(e) => incomplete || !is_incomplete(&e),
    };
    // The smallest n in 1..=len with fails(n).
    let (mut lo, mut hi) = (1, ends.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_walk_down_from_the_origin() {
        fn all<'a>(n: &'a str, o: &str) -> Vec<&'a str> {
            Suffixes::new(n, o).collect()
        }
        assert_eq!(
            all("a.b.example.org.", "example.org."),
            vec!["b.example.org.", "a.b.example.org."]
        );
        assert_eq!(all("example.org.", "example.org."), Vec::<&str>::new());
        assert_eq!(all("a.b.", "."), vec!["b.", "a.b."]);
        assert_eq!(all(".", "."), Vec::<&str>::new());
        // An escaped dot is part of a label.
        assert_eq!(
            all("a\\.b.example.org.", "example.org."),
            vec!["a\\.b.example.org."]
        );
        assert_eq!(
            all("x.a\\\\.example.org.", "example.org."),
            vec!["a\\\\.example.org.", "x.a\\\\.example.org."]
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent("a.b.example.org."), Some("b.example.org."));
        assert_eq!(parent("org."), Some("."));
        assert_eq!(parent("."), None);
        assert_eq!(parent("a\\.b.org."), Some("org."));
    }
}
