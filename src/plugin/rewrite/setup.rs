//! Corefile parsing for `rewrite`.
//!
//! ```text
//! rewrite [continue|stop] FIELD [TYPE] [FROM TO|...] [OPTIONS]
//! rewrite [continue|stop] {
//!     FIELD ...
//!     [answer ...]
//! }
//! ```
//!
//! CoreDNS hands every `rewrite` occurrence of a server block to one setup call and builds one
//! handler with an ordered rule list. exdns calls a setup per occurrence, so the first
//! occurrence builds the handler from all of the block's `rewrite` occurrences and the later
//! ones add no handler. A line with fewer than two arguments takes the tokens of its block as
//! the rest of the rule (all of them form one rule, as in CoreDNS).
//!
//! Rule errors are worded as CoreDNS's.

use std::sync::Arc;

use hickory_proto::rr::{DNSClass, RecordType};
use regex::Regex;

use super::Rewrite;
use super::edns0::{Action, Edns0Kind, Edns0Rule, LocalData, Variable};
use super::rules::{
    CnameMatch, CnameTarget, Matcher, Mode, NameRule, ResponseRule, Rule, RuleKind, StringRewriter,
};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::names::{class_from_mnemonic, rcode_mnemonic, type_from_mnemonic};
use crate::plugin::util::{Occurrence, go_quote, occurrence};
use crate::plugin::{Plugin, SetupCtx};

/// The longest regular expression a rule may hold (CoreDNS's limit against huge patterns).
pub const MAX_REGEX_LEN: usize = 10000;

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(parse(d, ctx)?.map(|r| Arc::new(r) as Arc<dyn Plugin>))
}

/// Parses this occurrence. The block's first `rewrite` gathers the rules of every `rewrite` of
/// the block, in file order; later occurrences return `None`.
pub(crate) fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<Option<Rewrite>, ParseError> {
    let mut rules = Vec::new();
    match occurrence(d, ctx.block, "rewrite") {
        Occurrence::Alone => rules.push(parse_occurrence(d)?),
        Occurrence::First(all) => {
            for dir in all {
                rules.push(parse_occurrence(&mut dir.dispenser())?);
            }
        }
        Occurrence::Later => return Ok(None),
    }
    Ok(Some(Rewrite { rules }))
}

/// One `rewrite ...` occurrence: its line, plus its block's tokens when the line holds fewer
/// than two arguments.
fn parse_occurrence(d: &mut Dispenser) -> Result<Rule, ParseError> {
    d.next(); // "rewrite"
    let (file, line) = (d.file().to_string(), d.line());
    let mut args = d.remaining_args();
    if args.len() < 2 {
        while d.next_block() {
            args.push(d.val().to_string());
        }
    } else if d.next_block() {
        return Err(d.err(format!(
            "unexpected block after the rule {:?}: a block is only read after `rewrite`, `rewrite stop` or `rewrite continue`",
            args.join(" ")
        )));
    }
    // A rule error points at its `rewrite` line, also for a rule written in a block.
    new_rule(&args).map_err(|e| ParseError::new(file, line, e))
}

/// A rule from its arguments (CoreDNS's `newRule`).
pub fn new_rule(args: &[String]) -> Result<Rule, String> {
    let Some(first) = args.first() else {
        return Err("no rule type specified for rewrite".to_string());
    };
    let arg0 = first.to_lowercase();
    let (mode, start) = match arg0.as_str() {
        "continue" | "stop" => {
            if args.len() < 2 {
                return Err(format!("{arg0} rule must begin with a rule type"));
            }
            let mode = if arg0 == "stop" {
                Mode::Stop
            } else {
                Mode::Continue
            };
            (mode, 2)
        }
        _ => (Mode::Stop, 1),
    };
    let rule_type = args[start - 1].to_lowercase();
    let rest = &args[start..];
    let kind = match rule_type.as_str() {
        "answer" => return Err("response rewrites must begin with a name rule".to_string()),
        "name" => RuleKind::Name(name_rule(rest)?),
        "class" | "type" => {
            if rest.len() != 2 {
                return Err(format!("{rule_type} rules must have exactly two arguments"));
            }
            if rule_type == "class" {
                RuleKind::Class {
                    from: class_of(&rest[0])?,
                    to: class_of(&rest[1])?,
                }
            } else {
                RuleKind::Type {
                    from: type_of(&rest[0])?,
                    to: type_of(&rest[1])?,
                }
            }
        }
        "edns0" => RuleKind::Edns0(edns0_rule(rest)?),
        "ttl" => ttl_rule(rest)?,
        "rcode" => rcode_rule(rest)?,
        "cname" => RuleKind::Cname(ResponseRule::Cname(cname_rule(rest)?)),
        _ => return Err(format!("invalid rule type {}", go_quote(&args[start - 1]))),
    };
    Ok(Rule { mode, kind })
}

/// miekg/dns's `StringToType`, upper-cased first: `invalid type "X"`.
fn type_of(s: &str) -> Result<RecordType, String> {
    let up = s.to_uppercase();
    type_from_mnemonic(&up).ok_or_else(|| format!("invalid type {}", go_quote(&up)))
}

/// miekg/dns's `StringToClass`, upper-cased first: `invalid class "X"`.
fn class_of(s: &str) -> Result<DNSClass, String> {
    let up = s.to_uppercase();
    class_from_mnemonic(&up).ok_or_else(|| format!("invalid class {}", go_quote(&up)))
}

/// CoreDNS's `plugin.Name(s).Normalize()`: lower-cased and absolute.
pub fn normalize(s: &str) -> String {
    let mut n = s.to_lowercase();
    if !is_fqdn(&n) {
        n.push('.');
    }
    n
}

/// miekg/dns's `IsFqdn`: ends in a dot that is not escaped.
fn is_fqdn(s: &str) -> bool {
    let Some(body) = s.strip_suffix('.') else {
        return false;
    };
    let backslashes = body.len() - body.trim_end_matches('\\').len();
    backslashes % 2 == 0
}

/// Compiles a rule's regular expression, refusing overlong ones.
fn compile(pattern: &str) -> Result<Regex, ()> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(());
    }
    Regex::new(pattern).map_err(|_| ())
}

fn too_long(pattern: &str) -> Option<String> {
    (pattern.len() > MAX_REGEX_LEN).then(|| {
        format!(
            "regex pattern too long: {} characters, at most {MAX_REGEX_LEN} allowed",
            pattern.len()
        )
    })
}

/// CoreDNS's `isValidRegexPattern`: FROM compiles, and TO refers to no more groups than FROM has.
fn regex_pair(from: &str, to: &str) -> Result<Regex, String> {
    if let Some(e) = too_long(from) {
        return Err(e);
    }
    let re = compile(from).map_err(|_| format!("invalid regex matching pattern: {from}"))?;
    let used = (0..=100)
        .filter(|i| to.contains(&format!("{{{i}}}")))
        .count();
    if used > re.captures_len() - 1 {
        return Err(format!(
            "the rewrite regex pattern ({to}) uses more subexpressions than its corresponding matching regex pattern ({from})"
        ));
    }
    Ok(re)
}

/// `name [TYPE] FROM TO [answer ...]`.
fn name_rule(args: &[String]) -> Result<NameRule, String> {
    if args.len() < 2 {
        return Err("too few arguments for a name rule".to_string());
    }
    let (match_type, from, to) = if args.len() == 2 {
        (
            "exact".to_string(),
            normalize(&args[0]),
            normalize(&args[1]),
        )
    } else {
        let t = args[0].to_lowercase();
        if t == "regex" {
            (t, args[1].clone(), args[2].clone())
        } else {
            (t, normalize(&args[1]), normalize(&args[2]))
        }
    };
    let (auto, answers) = if args.len() > 3 {
        answer_rules(&match_type, &args[3..])?
    } else {
        (false, Vec::new())
    };
    let rule = |matcher, auto, answers| NameRule {
        matcher,
        replacement: to.clone(),
        auto,
        answers,
    };
    Ok(match match_type.as_str() {
        "exact" => {
            // CoreDNS checks TO as a pattern against FROM here; an exact rule always maps its
            // answers back.
            regex_pair(&to, &from)?;
            rule(Matcher::Exact(from.clone()), true, answers)
        }
        "prefix" => rule(Matcher::Prefix(from.clone()), auto, answers),
        "substring" => rule(Matcher::Substring(from.clone()), auto, answers),
        "suffix" => {
            // For a suffix the best answer mapping is the reverse suffix rewrite.
            let mut all = Vec::new();
            if auto {
                let back = StringRewriter::Suffix {
                    suffix: to.clone(),
                    replacement: from.clone(),
                };
                all.push(ResponseRule::Name(back.clone()));
                all.push(ResponseRule::Value(back));
            }
            all.extend(answers);
            rule(Matcher::Suffix(from.clone()), false, all)
        }
        "regex" => {
            let re = regex_pair(&from, &to)?;
            NameRule {
                matcher: Matcher::Regex(re),
                replacement: normalize(&args[2]),
                auto,
                answers,
            }
        }
        other => {
            return Err(format!(
                "name rule supports only exact, prefix, suffix, substring, and regex name matching, received: {other}"
            ));
        }
    })
}

/// The `answer auto | answer name FROM TO | answer value FROM TO ...` options of a name rule
/// (after the first, the keyword `answer` may be left out).
fn answer_rules(name: &str, args: &[String]) -> Result<(bool, Vec<ResponseRule>), String> {
    if args.len() < 2 {
        return Err(format!("invalid arguments for {name} rule"));
    }
    let mut auto = false;
    let mut rules = Vec::new();
    let mut name_rules = 0;
    let mut i = 0;
    let mut first = true;
    while i < args.len() {
        if first && args[i] != "answer" {
            return Err(format!(
                "exceeded the number of arguments for a non-answer rule argument for {name} rule"
            ));
        }
        first = false;
        if args[i] == "answer" {
            i += 1;
        }
        let Some(kind) = args.get(i) else {
            return Err(format!("type missing for answer rule for {name} rule"));
        };
        i += 1;
        match kind.as_str() {
            "auto" => auto = true,
            "name" | "value" => {
                if args.len() - i < 2 {
                    return Err(format!(
                        "{kind} answer rule for {name} rule: 2 arguments required"
                    ));
                }
                let (from, to) = (&args[i], &args[i + 1]);
                let pattern = regex_pair(from, to)
                    .map_err(|e| format!("{kind} answer rule for {name} rule: {e}"))?;
                let rw = StringRewriter::Regex {
                    pattern,
                    replacement: normalize(to),
                };
                if kind == "name" {
                    rules.push(ResponseRule::Name(rw));
                    name_rules += 1;
                } else {
                    rules.push(ResponseRule::Value(rw));
                }
                i += 2;
            }
            other => {
                return Err(format!(
                    "invalid type {} for answer rule for {name} rule",
                    go_quote(other)
                ));
            }
        }
    }
    if auto && name_rules > 0 {
        return Err(
            "auto name answer rule cannot be combined with explicit name answer rules".to_string(),
        );
    }
    Ok((auto, rules))
}

/// A name matcher of a `ttl` or `rcode` rule: `[TYPE] NAME`.
fn name_matcher(kind: Option<&str>, name: &str, rule: &str) -> Result<Matcher, String> {
    Ok(match kind.map(str::to_lowercase).as_deref() {
        None | Some("exact") => Matcher::Exact(normalize(name)),
        Some("prefix") => Matcher::Prefix(normalize(name)),
        Some("suffix") => Matcher::Suffix(normalize(name)),
        Some("substring") => Matcher::Substring(normalize(name)),
        Some("regex") => {
            if let Some(e) = too_long(name) {
                return Err(e);
            }
            Matcher::Regex(
                compile(name)
                    .map_err(|_| format!("invalid regex pattern in a {rule} rule: {name}"))?,
            )
        }
        Some(_) => {
            return Err(format!(
                "{rule} rule supports only exact, prefix, suffix, substring, and regex name matching"
            ));
        }
    })
}

/// `ttl [TYPE] NAME SECONDS|MIN-MAX`.
fn ttl_rule(args: &[String]) -> Result<RuleKind, String> {
    if args.len() < 2 {
        return Err(format!("too few ({}) arguments for a ttl rule", args.len()));
    }
    if args.len() > 3 {
        return Err(format!(
            "too many ({}) arguments for a ttl rule",
            args.len()
        ));
    }
    let value = &args[args.len() - 1];
    let (min, max) =
        ttl_range(value).ok_or_else(|| format!("invalid TTL '{value}' for a ttl rule"))?;
    let matcher = if args.len() == 3 {
        name_matcher(Some(&args[0]), &args[1], "ttl")?
    } else {
        name_matcher(None, &args[0], "ttl")?
    };
    Ok(RuleKind::Ttl {
        matcher,
        response: ResponseRule::Ttl { min, max },
    })
}

/// A decimal number of at most 32 bits, as Go's `strconv.ParseUint(s, 10, 32)` reads it.
fn dec_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `N` (N-N), `MIN-MAX`, `MIN-` (up to 2147483647) or `-MAX` (from 0).
fn ttl_range(v: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = v.split('-').collect();
    match parts.as_slice() {
        [n] => dec_u32(n).map(|n| (n, n)),
        [lo, hi] => {
            if lo.is_empty() && hi.is_empty() {
                return None;
            }
            let min = if lo.is_empty() { 0 } else { dec_u32(lo)? };
            let max = if hi.is_empty() {
                2147483647
            } else {
                dec_u32(hi)?
            };
            (min <= max).then_some((min, max))
        }
        _ => None,
    }
}

/// `rcode [TYPE] NAME FROM TO`.
fn rcode_rule(args: &[String]) -> Result<RuleKind, String> {
    if args.len() < 3 {
        return Err(format!(
            "too few ({}) arguments for a rcode rule",
            args.len()
        ));
    }
    if args.len() > 4 {
        return Err(format!(
            "too many ({}) arguments for a rcode rule",
            args.len()
        ));
    }
    let (old, new) = (&args[args.len() - 2], &args[args.len() - 1]);
    let from =
        rcode_of(old).ok_or_else(|| format!("invalid matching RCODE '{old}' for a rcode rule"))?;
    let to = rcode_of(new)
        .ok_or_else(|| format!("invalid replacement RCODE '{new}' for a rcode rule"))?;
    let matcher = if args.len() == 4 {
        name_matcher(Some(&args[0]), &args[1], "rcode")?
    } else {
        name_matcher(None, &args[0], "rcode")?
    };
    Ok(RuleKind::Rcode {
        matcher,
        response: ResponseRule::Rcode { from, to },
    })
}

/// A number 0..=23 or a name miekg/dns prints (`SERVFAIL`, any case).
fn rcode_of(v: &str) -> Option<u16> {
    if let Some(n) = dec_u32(v) {
        return (n <= 23).then_some(n as u16);
    }
    (0u16..=23).find(|c| {
        rcode_mnemonic(<hickory_proto::op::ResponseCode as From<u16>>::from(*c))
            .is_some_and(|name| name.eq_ignore_ascii_case(v))
    })
}

/// `cname [TYPE] FROM TO`.
fn cname_rule(args: &[String]) -> Result<CnameTarget, String> {
    let (kind, from, to) = match args {
        [from, to] => ("exact".to_string(), from, to),
        [kind, from, to] => (kind.to_lowercase(), from, to),
        _ if args.len() > 3 => {
            return Err(format!(
                "too many ({}) arguments for a cname rule",
                args.len()
            ));
        }
        _ => {
            return Err(format!(
                "too few ({}) arguments for a cname rule",
                args.len()
            ));
        }
    };
    let (from, to) = (from.to_lowercase(), to.to_lowercase());
    let kind = match kind.as_str() {
        "exact" => CnameMatch::Exact,
        "prefix" => CnameMatch::Prefix,
        "suffix" => CnameMatch::Suffix,
        "substring" => CnameMatch::Substring,
        "regex" => {
            if let Some(e) = too_long(&from) {
                return Err(e);
            }
            CnameMatch::Regex(
                compile(&from)
                    .map_err(|_| format!("invalid regex pattern in a cname rule: {from}"))?,
            )
        }
        other => return Err(format!("unknown cname rewrite type: {other}")),
    };
    Ok(CnameTarget { kind, from, to })
}

/// `edns0 local|nsid|subnet ACTION ... [revert]`.
fn edns0_rule(args: &[String]) -> Result<Edns0Rule, String> {
    if args.len() < 2 {
        return Err("too few arguments for an EDNS0 rule".to_string());
    }
    let rule_type = args[0].to_lowercase();
    let action_text = args[1].to_lowercase();
    let action = Action::parse(&action_text)
        .ok_or_else(|| format!("invalid action: {}", go_quote(&action_text)))?;
    let mut rest = &args[2..];
    let mut revert = false;
    if let Some((last, head)) = rest.split_last()
        && last.eq_ignore_ascii_case("revert")
    {
        if action == Action::Unset {
            return Err("the unset action cannot be reverted".to_string());
        }
        revert = true;
        rest = head;
    }
    let kind = match rule_type.as_str() {
        "local" => {
            let want = if action == Action::Unset { 1 } else { 2 };
            if rest.len() != want {
                return Err(if action == Action::Unset {
                    "EDNS0 local unset rules require exactly one arg".to_string()
                } else {
                    "EDNS0 local rules require exactly three args".to_string()
                });
            }
            let code = go_parse_uint(&rest[0], 16)? as u16;
            let data = match rest.get(1) {
                None => LocalData::Bytes(Vec::new()),
                Some(d) if d.starts_with('{') && d.ends_with('}') => LocalData::Variable(
                    Variable::parse(d)
                        .ok_or_else(|| format!("unsupported variable name {}", go_quote(d)))?,
                ),
                Some(d) => match d.strip_prefix("0x") {
                    Some(hex) => LocalData::Bytes(go_hex_decode(hex)?),
                    None => LocalData::Bytes(d.as_bytes().to_vec()),
                },
            };
            Edns0Kind::Local { code, data }
        }
        "nsid" => {
            if !rest.is_empty() {
                return Err("EDNS0 NSID rules do not accept args".to_string());
            }
            Edns0Kind::Nsid
        }
        "subnet" => {
            if action == Action::Unset {
                if !rest.is_empty() {
                    return Err("EDNS0 subnet unset rules do not accept args".to_string());
                }
                Edns0Kind::Subnet { v4: 0, v6: 0 }
            } else {
                if rest.len() != 2 {
                    return Err("EDNS0 subnet rules require exactly three args".to_string());
                }
                let v4 = go_parse_uint(&rest[0], 16)?;
                if v4 > 32 {
                    return Err(format!("invalid IPv4 bit mask length {v4}"));
                }
                let v6 = go_parse_uint(&rest[1], 16)?;
                if v6 > 128 {
                    return Err(format!("invalid IPv6 bit mask length {v6}"));
                }
                Edns0Kind::Subnet {
                    v4: v4 as u8,
                    v6: v6 as u8,
                }
            }
        }
        _ => return Err(format!("invalid rule type {}", go_quote(&rule_type))),
    };
    Ok(Edns0Rule {
        action,
        kind,
        revert,
    })
}

/// Go's `strconv.ParseUint(s, 0, bits)`: decimal, `0x`/`0o`/`0b` prefixes, a leading `0` for
/// octal, `_` between digits; errors worded as Go's.
pub fn go_parse_uint(s: &str, bits: u32) -> Result<u64, String> {
    let syntax = || format!("strconv.ParseUint: parsing {}: invalid syntax", go_quote(s));
    let range = || {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )
    };
    if s.is_empty() {
        return Err(syntax());
    }
    let lower = s.to_ascii_lowercase();
    let (base, body, prefixed) = if lower.len() >= 3 && lower.starts_with("0x") {
        (16, &s[2..], true)
    } else if lower.len() >= 3 && lower.starts_with("0o") {
        (8, &s[2..], true)
    } else if lower.len() >= 3 && lower.starts_with("0b") {
        (2, &s[2..], true)
    } else if let Some(octal) = s.strip_prefix('0') {
        (8, octal, true)
    } else {
        (10, s, false)
    };
    if s.contains('_') {
        // Underscores only between digits (a base prefix counts as a digit).
        let ok =
            !body.ends_with('_') && !body.contains("__") && (prefixed || !body.starts_with('_'));
        if !ok {
            return Err(syntax());
        }
    }
    let max: u64 = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut n: u64 = 0;
    for c in body.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(36).filter(|d| *d < base).ok_or_else(syntax)?;
        n = n
            .checked_mul(u64::from(base))
            .and_then(|n| n.checked_add(u64::from(d)))
            .filter(|n| *n <= max)
            .ok_or_else(range)?;
    }
    Ok(n)
}

/// Go's `hex.DecodeString`, errors worded as Go's.
pub fn go_hex_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let invalid = |b: u8| {
        let c = b as char;
        if c.is_ascii_graphic() || c == ' ' {
            format!("encoding/hex: invalid byte: U+{:04X} '{c}'", b)
        } else {
            format!("encoding/hex: invalid byte: U+{:04X}", b)
        }
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        let hi = val(pair[0]).ok_or_else(|| invalid(pair[0]))?;
        let Some(&lo_byte) = pair.get(1) else {
            return Err("encoding/hex: odd length hex string".to_string());
        };
        let lo = val(lo_byte).ok_or_else(|| invalid(lo_byte))?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}
