//! The rule kinds of `rewrite` and the response rules they leave behind: what a rule matches
//! and how it changes the question, and how a reply is rewritten back.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use regex::{Captures, Regex};

use super::edns0::Edns0Rule;

/// What happens after a rule that rewrote the request: `stop` ends the rule list, `continue`
/// goes on with the next rule. CoreDNS's default is `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stop,
    Continue,
}

/// One `rewrite` line (or block).
#[derive(Debug)]
pub struct Rule {
    pub mode: Mode,
    pub kind: RuleKind,
}

#[derive(Debug)]
pub enum RuleKind {
    /// The question name; answers may be rewritten back.
    Name(NameRule),
    /// The question type (`type ANY HINFO`).
    Type { from: RecordType, to: RecordType },
    /// The question class (`class CH IN`).
    Class { from: DNSClass, to: DNSClass },
    /// TTLs of the reply to a matching name ([`ResponseRule::Ttl`]).
    Ttl {
        matcher: Matcher,
        response: ResponseRule,
    },
    /// The rcode of the reply to a matching name ([`ResponseRule::Rcode`]).
    Rcode {
        matcher: Matcher,
        response: ResponseRule,
    },
    /// An EDNS0 option of the request.
    Edns0(Edns0Rule),
    /// CNAME targets of every reply ([`ResponseRule::Cname`]).
    Cname(ResponseRule),
}

/// How a rule matches the (lower-case, absolute) query name.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Substring(String),
    Regex(Regex),
}

impl Matcher {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Exact(s) => name == s,
            Matcher::Prefix(s) => name.starts_with(s.as_str()),
            Matcher::Suffix(s) => name.ends_with(s.as_str()),
            Matcher::Substring(s) => name.contains(s.as_str()),
            Matcher::Regex(re) => re.is_match(name),
        }
    }
}

/// `name [exact|prefix|suffix|substring|regex] FROM TO [answer ...]`.
#[derive(Debug)]
pub struct NameRule {
    /// FROM (the pattern for `regex`).
    pub matcher: Matcher,
    /// TO; for `regex` with `{N}` group references.
    pub replacement: String,
    /// Map the rewritten name back to the asked one in the reply (owner names and name-valued
    /// rdata): `answer auto`, always on for `exact`.
    pub auto: bool,
    /// Response rules that apply whenever this rule rewrote the question (`answer name|value`,
    /// and the reversed suffix mapping of a `suffix ... answer auto` rule).
    pub answers: Vec<ResponseRule>,
}

impl NameRule {
    /// The rewritten name, or `None` when `name` does not match.
    pub fn rewrite(&self, name: &str) -> Option<String> {
        let to = self.replacement.as_str();
        match &self.matcher {
            Matcher::Exact(from) => (name == from).then(|| to.to_string()),
            Matcher::Prefix(p) => name
                .strip_prefix(p.as_str())
                .map(|rest| format!("{to}{rest}")),
            Matcher::Suffix(s) => name
                .strip_suffix(s.as_str())
                .map(|head| format!("{head}{to}")),
            Matcher::Substring(s) => name
                .contains(s.as_str())
                .then(|| name.replace(s.as_str(), to)),
            // `is_match` first: most queries do not match, and it needs no capture slots.
            Matcher::Regex(re) => re
                .is_match(name)
                .then(|| re.captures(name).map(|c| expand_groups(to, &c)))
                .flatten(),
        }
    }
}

/// Replaces `{0}`, `{1}`, … in `template` with the groups of `caps`, one index after the other
/// (a group that did not take part is empty), as CoreDNS substitutes them.
pub fn expand_groups(template: &str, caps: &Captures<'_>) -> String {
    let mut s = template.to_string();
    for i in 0..caps.len() {
        let key = format!("{{{i}}}");
        if s.contains(&key) {
            s = s.replace(&key, caps.get(i).map(|m| m.as_str()).unwrap_or(""));
        }
    }
    s
}

/// Maps one name to another, for response rules.
#[derive(Debug, Clone)]
pub enum StringRewriter {
    /// `answer name|value FROM TO`: FROM is a regex, TO may use its groups.
    Regex { pattern: Regex, replacement: String },
    /// `answer auto`: the rewritten name (and its subdomains) back to the asked name.
    Remap { orig: String, replacement: String },
    /// `suffix ... answer auto`: the replacement suffix back to the original suffix.
    Suffix { suffix: String, replacement: String },
}

impl StringRewriter {
    /// The new text, or `None` when `src` is left as it is.
    pub fn rewrite(&self, src: &str) -> Option<String> {
        match self {
            StringRewriter::Regex {
                pattern,
                replacement,
            } => pattern
                .captures(src)
                .map(|c| expand_groups(replacement, &c)),
            StringRewriter::Remap { orig, replacement } => {
                if src == orig {
                    return Some(replacement.clone());
                }
                let head = src.strip_suffix(orig.as_str())?;
                head.ends_with('.').then(|| format!("{head}{replacement}"))
            }
            StringRewriter::Suffix {
                suffix,
                replacement,
            } => src
                .strip_suffix(suffix.as_str())
                .map(|head| format!("{head}{replacement}")),
        }
    }
}

/// What a matching rule does to the reply. Rules are applied in the reverse order of the
/// request rules that produced them.
#[derive(Debug, Clone)]
pub enum ResponseRule {
    /// Owner names of every record.
    Name(StringRewriter),
    /// Name-valued rdata: CNAME, NS, PTR, MX exchange, SRV target, NAPTR replacement, SOA MNAME.
    Value(StringRewriter),
    /// Each record's TTL is raised to `min` / lowered to `max`.
    Ttl { min: u32, max: u32 },
    /// The reply's rcode `from` becomes `to`.
    Rcode { from: u16, to: u16 },
    /// A CNAME target is rewritten and the new target resolved by the rest of the chain.
    Cname(CnameTarget),
    /// EDNS0 `revert`: the option the request rule set is taken out of the reply again (or put
    /// back as the client sent it).
    EdnsRevert {
        code: u16,
        original: Option<EdnsOption>,
    },
}

impl ResponseRule {
    /// Applies a per-record rule to `rr` (message-level and CNAME rules do nothing here).
    pub fn rewrite_record(&self, rr: &mut Record) {
        match self {
            ResponseRule::Name(rw) => {
                if let Some(new) = rw.rewrite(&name_text(&rr.name))
                    && let Ok(name) = Name::from_ascii(&new)
                {
                    rr.name = name;
                }
            }
            ResponseRule::Value(rw) => rewrite_value(rr, rw),
            ResponseRule::Ttl { min, max } => {
                if rr.ttl < *min {
                    rr.ttl = *min;
                } else if rr.ttl > *max {
                    rr.ttl = *max;
                }
            }
            _ => {}
        }
    }

    /// Applies a message-level rule (rcode, EDNS revert) to `msg`.
    pub fn rewrite_message(&self, msg: &mut Message) {
        match self {
            ResponseRule::Rcode { from, to } if u16::from(msg.metadata.response_code) == *from => {
                msg.metadata.response_code = <ResponseCode as From<u16>>::from(*to);
            }
            ResponseRule::EdnsRevert { code, original } => {
                let Some(edns) = msg.edns.as_mut() else {
                    return;
                };
                let opts = &mut edns.options_mut().options;
                if !opts.iter().any(|(c, _)| u16::from(*c) == *code) {
                    return;
                }
                opts.retain(|(c, _)| u16::from(*c) != *code);
                if let Some(o) = original {
                    opts.push((EdnsCode::from(*code), o.clone()));
                }
            }
            _ => {}
        }
    }
}

/// `cname [exact|prefix|suffix|substring|regex] FROM TO` (FROM and TO lower-cased as written;
/// names in replies are absolute, so FROM usually ends in a dot).
#[derive(Debug, Clone)]
pub struct CnameTarget {
    pub kind: CnameMatch,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone)]
pub enum CnameMatch {
    Exact,
    Prefix,
    Suffix,
    Substring,
    Regex(Regex),
}

impl CnameTarget {
    /// The new target for a CNAME pointing at `target`, if this rule applies to it.
    pub fn new_target(&self, target: &str) -> Option<String> {
        let (from, to) = (self.from.as_str(), self.to.as_str());
        match &self.kind {
            CnameMatch::Exact => (target == from).then(|| to.to_string()),
            CnameMatch::Prefix => target.strip_prefix(from).map(|rest| format!("{to}{rest}")),
            CnameMatch::Suffix => target.strip_suffix(from).map(|head| format!("{head}{to}")),
            CnameMatch::Substring => target.contains(from).then(|| target.replace(from, to)),
            CnameMatch::Regex(re) => re.captures(target).map(|c| expand_groups(to, &c)),
        }
    }
}

/// A name as text, absolute (`www.example.org.`), case as the record has it.
pub fn name_text(name: &Name) -> String {
    let mut s = name.to_ascii();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// The name-valued rdata a `value` rule rewrites.
fn value_name(rdata: &mut RData) -> Option<&mut Name> {
    match rdata {
        RData::CNAME(n) => Some(&mut n.0),
        RData::NS(n) => Some(&mut n.0),
        RData::PTR(n) => Some(&mut n.0),
        RData::MX(mx) => Some(&mut mx.exchange),
        RData::SRV(srv) => Some(&mut srv.target),
        RData::NAPTR(naptr) => Some(&mut naptr.replacement),
        RData::SOA(soa) => Some(&mut soa.mname),
        _ => None,
    }
}

fn rewrite_value(rr: &mut Record, rw: &StringRewriter) {
    let Some(name) = value_name(&mut rr.data) else {
        return;
    };
    let text = name_text(name);
    if let Some(new) = rw.rewrite(&text)
        && new != text
        && let Ok(n) = Name::from_ascii(&new)
    {
        *name = n;
    }
}

/// The CNAME target of `rr`, if it is a CNAME.
pub fn cname_target(rr: &Record) -> Option<&Name> {
    match &rr.data {
        RData::CNAME(n) => Some(&n.0),
        _ => None,
    }
}

/// Sets the target of a CNAME record.
pub fn set_cname_target(rr: &mut Record, target: &Name) {
    if let RData::CNAME(n) = &mut rr.data {
        n.0 = target.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remap_maps_the_name_and_its_subdomains() {
        let rw = StringRewriter::Remap {
            orig: "b.org.".into(),
            replacement: "a.com.".into(),
        };
        assert_eq!(rw.rewrite("b.org.").as_deref(), Some("a.com."));
        assert_eq!(rw.rewrite("www.b.org.").as_deref(), Some("www.a.com."));
        assert_eq!(rw.rewrite("xb.org."), None, "only on a label boundary");
        assert_eq!(rw.rewrite("c.org."), None);
    }

    #[test]
    fn groups_are_substituted_in_index_order() {
        let re = Regex::new(r"(.*)-(us-west-1)\.example\.org\.").unwrap();
        let caps = re.captures("ftp-us-west-1.example.org.").unwrap();
        assert_eq!(
            expand_groups("{1}.service.{2}.consul.", &caps),
            "ftp.service.us-west-1.consul."
        );
        let re = Regex::new(r"(a)|(b)").unwrap();
        let caps = re.captures("a").unwrap();
        assert_eq!(expand_groups("<{1}|{2}>", &caps), "<a|>");
    }
}
