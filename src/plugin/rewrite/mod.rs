//! `rewrite`: rewrites the request before the rest of the chain sees it, and the reply back, as
//! CoreDNS's *rewrite* does.
//!
//! The rules of all `rewrite` lines of a server block form one ordered list. Request rules are
//! tried in order; a rule that rewrote the request ends the list when its mode is `stop` (the
//! default) and lets the next rule try when it is `continue`. Rules may leave response rules
//! behind (answer name/value rewrites, TTL and rcode rules, EDNS0 `revert`), which are applied to
//! the reply in reverse order. The request is not modified in place: a copy with the rewritten
//! question goes down the chain, and (after a `stop` rule, or when there are response rules) the
//! reply gets the client's original question back, as CoreDNS's response reverter does.

mod edns0;
mod rules;
mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::borrow::Cow;

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, Record};

use crate::dns::request::{Outcome, Request, lower_fqdn};
use crate::plugin::{Next, Plugin};
use rules::{Mode, ResponseRule, Rule, RuleKind, StringRewriter, name_text};

pub const NAME: &str = "rewrite";

/// The handler: every rule of the server block's `rewrite` lines, in file order.
#[derive(Debug)]
pub struct Rewrite {
    rules: Vec<Rule>,
}

/// What the request rules produced: the rewritten request (or the original when no rule
/// changed it), the response rules in request order, and whether a `stop` rule ended the list.
struct Rewritten<'r, 'a> {
    req: Cow<'r, Request>,
    responses: Vec<Cow<'a, ResponseRule>>,
    stopped: bool,
}

impl Rewrite {
    /// Runs the request rules over `req`. `Err` carries the invalid name a rule produced.
    fn rewrite_request<'r, 'a>(&'a self, req: &'r Request) -> Result<Rewritten<'r, 'a>, String> {
        let mut out = Rewritten {
            req: Cow::Borrowed(req),
            responses: Vec::new(),
            stopped: false,
        };
        for rule in &self.rules {
            let Some(responses) = apply(rule, &mut out.req)? else {
                continue;
            };
            out.responses.extend(responses);
            if rule.mode == Mode::Stop {
                out.stopped = true;
                break;
            }
        }
        Ok(out)
    }
}

/// Applies one rule to the current request: `None` when it does not apply, else the response
/// rules it leaves.
fn apply<'a>(
    rule: &'a Rule,
    cur: &mut Cow<'_, Request>,
) -> Result<Option<Vec<Cow<'a, ResponseRule>>>, String> {
    if cur.msg.queries.is_empty() {
        return Ok(None);
    }
    Ok(match &rule.kind {
        RuleKind::Name(n) => {
            let Some(new) = n.rewrite(&cur.name) else {
                return Ok(None);
            };
            let name =
                domain_name(&new).ok_or_else(|| format!("invalid name after rewrite: {new}"))?;
            let r = cur.to_mut();
            r.msg.queries[0].set_name(name);
            let old = std::mem::replace(&mut r.name, lower_fqdn(r.msg.queries[0].name()));
            let mut out = Vec::with_capacity(n.answers.len() + 2);
            if n.auto {
                let back = StringRewriter::Remap {
                    orig: new,
                    replacement: old,
                };
                out.push(Cow::Owned(ResponseRule::Name(back.clone())));
                out.push(Cow::Owned(ResponseRule::Value(back)));
            }
            out.extend(n.answers.iter().map(Cow::Borrowed));
            Some(out)
        }
        RuleKind::Type { from, to } => {
            if cur.qtype() != *from {
                return Ok(None);
            }
            cur.to_mut().msg.queries[0].set_query_type(*to);
            Some(Vec::new())
        }
        RuleKind::Class { from, to } => {
            if cur.qclass() != *from {
                return Ok(None);
            }
            cur.to_mut().msg.queries[0].set_query_class(*to);
            Some(Vec::new())
        }
        RuleKind::Ttl { matcher, response } | RuleKind::Rcode { matcher, response } => matcher
            .matches(&cur.name)
            .then(|| vec![Cow::Borrowed(response)]),
        RuleKind::Edns0(e) => e
            .rewrite(cur)
            .map(|v| v.into_iter().map(Cow::Owned).collect()),
        RuleKind::Cname(response) => Some(vec![Cow::Borrowed(response)]),
    })
}

/// A rewritten question name, if it is a valid domain name (miekg/dns's `IsDomainName`: no
/// empty label, labels of at most 63 octets, at most 255 octets in all).
fn domain_name(s: &str) -> Option<Name> {
    if s.is_empty() {
        return None;
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    if s != "." && (body.is_empty() || body.split('.').any(str::is_empty)) {
        return None;
    }
    let mut name = Name::from_ascii(s).ok()?;
    name.set_fqdn(true);
    Some(name)
}

#[async_trait]
impl Plugin for Rewrite {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let rw = match self.rewrite_request(req) {
            Ok(rw) => rw,
            Err(e) => {
                tracing::error!("plugin/rewrite: {e}");
                return Outcome::code(ResponseCode::ServFail, NAME);
            }
        };
        // CoreDNS reverts the reply after a `stop` rule, or when response rules are pending;
        // otherwise the reply goes out as the chain wrote it.
        let revert = rw.stopped || !rw.responses.is_empty();
        let out = next.serve(&rw.req).await;
        if !revert {
            return out;
        }
        let out = out.decoded(&rw.req);
        match out {
            Outcome::Reply { mut msg, plugin } => {
                revert_reply(req, &rw.req, &mut msg, &rw.responses, next).await;
                Outcome::Reply { msg, plugin }
            }
            Outcome::Code { rcode, plugin } if !rw.responses.is_empty() => {
                // Nothing was written: rewrite writes the reply itself so the response rules
                // (an rcode rule, above all) apply to it.
                let mut msg = req.reply_code(rcode);
                revert_reply(req, &rw.req, &mut msg, &rw.responses, next).await;
                if msg.metadata.response_code == rcode {
                    Outcome::Code { rcode, plugin }
                } else {
                    Outcome::reply(msg, NAME)
                }
            }
            other => other,
        }
    }
}

/// Rewrites a reply back: the client's question, then the response rules in reverse order on
/// every record (authority, answer, additional), then the message-level ones (rcode, EDNS).
async fn revert_reply(
    original: &Request,
    rewritten: &Request,
    msg: &mut Message,
    rules: &[Cow<'_, ResponseRule>],
    next: Next<'_>,
) {
    if let (Some(q), Some(orig)) = (msg.queries.first_mut(), original.msg.queries.first()) {
        *q = orig.clone();
    }
    if rules.is_empty() {
        return;
    }
    let per_record = |rr: &mut Record| {
        for r in rules.iter().rev() {
            r.rewrite_record(rr);
        }
    };
    msg.authorities.iter_mut().for_each(per_record);
    let fetched = rewrite_cname_targets(rewritten, msg, rules, next).await;
    msg.answers.iter_mut().for_each(per_record);
    msg.answers.extend(fetched);
    msg.additionals.iter_mut().for_each(per_record);
    for r in rules.iter().rev() {
        r.rewrite_message(msg);
    }
}

/// The `cname` rules: the first CNAME of the answer whose target a rule applies to gets the new
/// target, every CNAME of the answer is pointed at it, the other records are dropped, and the
/// new target is resolved (same type) by the rest of the chain. Returns the records found for
/// the new target, to be appended to the answer after the other response rules ran.
async fn rewrite_cname_targets(
    rewritten: &Request,
    msg: &mut Message,
    rules: &[Cow<'_, ResponseRule>],
    next: Next<'_>,
) -> Vec<Record> {
    for r in rules.iter().rev() {
        let ResponseRule::Cname(rule) = &**r else {
            continue;
        };
        let target = msg.answers.iter().find_map(|rr| {
            let t = rules::cname_target(rr)?;
            rule.new_target(&name_text(t))
        });
        let Some(target) = target else {
            continue;
        };
        let Ok(mut to) = Name::from_ascii(&target) else {
            tracing::error!("plugin/rewrite: invalid CNAME target after rewrite: {target}");
            continue;
        };
        to.set_fqdn(true);
        msg.answers.retain(|rr| rules::cname_target(rr).is_some());
        for rr in msg.answers.iter_mut() {
            rules::set_cname_target(rr, &to);
        }
        let mut lookup = rewritten.clone();
        lookup.msg.queries[0].set_name(to.clone());
        lookup.name = lower_fqdn(&to);
        return match next.serve(&lookup).await.decoded(&lookup) {
            Outcome::Reply { msg: up, .. } => up
                .answers
                .into_iter()
                .filter(|rr| name_text(&rr.name) == target)
                .collect(),
            other => {
                tracing::error!(
                    "plugin/rewrite: looking up the new CNAME target {target} failed: {:?}",
                    other.rcode()
                );
                Vec::new()
            }
        };
    }
    Vec::new()
}
