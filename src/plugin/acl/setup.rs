//! Corefile parsing for `acl`.
//!
//! ```text
//! acl [ZONES...] {
//!     ACTION [type QTYPE...] [net SOURCE...]
//! }
//! ```
//!
//! CoreDNS hands every `acl` occurrence of a server block to one setup call and builds one handler
//! whose rules are tried in file order (an `allow` in an earlier occurrence ends the evaluation).
//! exdns calls a setup per occurrence, so the first occurrence builds the handler from all of the
//! block's `acl` occurrences and the later ones add no handler.

use std::sync::{Arc, LazyLock};

use ipnet::IpNet;

use super::{Acl, Action, IpSet, Policy, Rule};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::names::type_from_mnemonic;
use crate::plugin::util::{Occurrence, occurrence};
use crate::plugin::zones::origins_from_args;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(parse(d, ctx)?.map(|a| Arc::new(a) as Arc<dyn Plugin>))
}

/// Parses this occurrence. When it is the block's first `acl`, the rules of every `acl` occurrence
/// of the block are gathered into the returned handler; later occurrences return `None`.
pub(crate) fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<Option<Acl>, ParseError> {
    let block_zones = ctx.zones();
    // The same snippet imported twice into one block makes each copy build the full handler,
    // which decides exactly as one would (only the allowed counter counts such a query twice).
    let mut rules = Vec::new();
    match occurrence(d, ctx.block, "acl") {
        Occurrence::Alone => rules.push(parse_rule(d, &block_zones)?),
        Occurrence::First(all) => {
            for dir in all {
                rules.push(parse_rule(&mut dir.dispenser(), &block_zones)?);
            }
        }
        Occurrence::Later => return Ok(None),
    }
    LazyLock::force(&super::BLOCKED);
    LazyLock::force(&super::FILTERED);
    LazyLock::force(&super::ALLOWED);
    LazyLock::force(&super::DROPPED);
    Ok(Some(Acl::new(rules)))
}

/// One `acl [ZONES...] { ... }` occurrence.
fn parse_rule(d: &mut Dispenser, block_zones: &[String]) -> Result<Rule, ParseError> {
    d.next(); // "acl"
    let args = d.remaining_args();
    let zones = origins_from_args(d, &args, block_zones)?;

    let mut policies = Vec::new();
    while d.next_block() {
        let action = match d.val().to_ascii_lowercase().as_str() {
            "allow" => Action::Allow,
            "block" => Action::Block,
            "filter" => Action::Filter,
            "drop" => Action::Drop,
            _ => {
                return Err(d.err(format!(
                    "unexpected token {:?}; expect 'allow', 'block', 'filter' or 'drop'",
                    d.val()
                )));
            }
        };
        let rest = d.remaining_args();
        policies.push(parse_policy(d, action, &rest)?);
    }
    Ok(Rule { zones, policies })
}

fn is_section(token: &str) -> bool {
    token.eq_ignore_ascii_case("type") || token.eq_ignore_ascii_case("net")
}

/// `[type QTYPE...] [net SOURCE...]`, sections in any order and repeatable.
fn parse_policy(d: &Dispenser, action: Action, args: &[String]) -> Result<Policy, ParseError> {
    let mut qtypes: Vec<u16> = Vec::new();
    let mut all_types = false;
    let mut has_type = false;
    let mut nets: Vec<IpNet> = Vec::new();
    let mut all_nets = false;
    let mut has_net = false;

    let mut rest = args;
    while let Some(first) = rest.first() {
        if !is_section(first) {
            return Err(d.err(format!("unexpected token {first:?}; expect 'type | net'")));
        }
        let section = first.to_ascii_lowercase();
        let end = rest[1..]
            .iter()
            .position(|t| is_section(t))
            .map(|i| i + 1)
            .unwrap_or(rest.len());
        let tokens = &rest[1..end];
        rest = &rest[end..];
        if tokens.is_empty() {
            return Err(d.err(format!("no token specified in {section:?} section")));
        }
        if section == "type" {
            has_type = true;
            for t in tokens {
                if t == "*" {
                    all_types = true;
                    break;
                }
                match type_from_mnemonic(t).map(u16::from) {
                    Some(code) => {
                        if !qtypes.contains(&code) {
                            qtypes.push(code);
                        }
                    }
                    None => {
                        return Err(d.err(format!("unexpected token {t:?}; expect legal QTYPE")));
                    }
                }
            }
        } else {
            has_net = true;
            for t in tokens {
                if t == "*" {
                    all_nets = true;
                    break;
                }
                let normalized = normalize_source(t);
                match normalized.parse::<IpNet>() {
                    Ok(net) => nets.push(net.trunc()),
                    Err(_) => {
                        return Err(d.err(format!("illegal CIDR notation {normalized:?}")));
                    }
                }
            }
        }
    }

    let qtypes = if !has_type || all_types {
        None
    } else {
        Some(qtypes)
    };
    let sources = if !has_net || all_nets {
        IpSet::any()
    } else {
        IpSet::from_nets(&nets)
    };
    Ok(Policy {
        action,
        qtypes,
        sources,
    })
}

/// A single address becomes a host network (`/32`, `/128`), as CoreDNS's `normalize`.
fn normalize_source(raw: &str) -> String {
    if raw.contains('/') {
        raw.to_string()
    } else if raw.contains(':') {
        format!("{raw}/128")
    } else {
        format!("{raw}/32")
    }
}
