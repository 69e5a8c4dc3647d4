//! `template`: answers queries from Go-template RRs, as CoreDNS's *template* plugin does.
//!
//! ```text
//! template CLASS TYPE [ZONE...] {
//!     match REGEX...
//!     answer RR
//!     additional RR
//!     authority RR
//!     rcode CODE
//!     ederror EXTENDED_ERROR_CODE [EXTRA_REASON]
//!     fallthrough [ZONE...]
//! }
//! ```
//!
//! Each `template` line is one handler; several keep file order. A query whose name is outside
//! the template's zones, or whose class/type the template does not cover (ANY on either side
//! covers all), goes to the next plugin. Otherwise the regexes are tried in order against the
//! lower-case query name; the first that matches answers: an authoritative reply with the rcode
//! (default NOERROR) and the rendered RRs in the answer, authority and additional sections
//! (`rcode SERVFAIL` returns SERVFAIL without RRs). A CNAME answer to an A/AAAA query is followed
//! through the rest of the chain and the target's answers are appended (CoreDNS's upstream
//! lookup). When no regex matches the name goes on when `fallthrough` covers it, else the
//! reply is SERVFAIL. A template that fails to render, or renders an invalid RR, makes the
//! reply SERVFAIL (logged, counted).

mod gotmpl;
mod setup;
#[cfg(test)]
mod tests;

pub use gotmpl::Template as RrTemplate;
pub use setup::setup;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use prometheus::IntCounterVec;
use regex::Regex;

use crate::dns::request::{Outcome, Request, lower_fqdn};
use crate::metrics::counter_vec;
use crate::plugin::names::{class_mnemonic, class_name, type_mnemonic, type_name};
use crate::plugin::zones::{in_zone, match_zone};
use crate::plugin::{Next, Plugin};
use gotmpl::{Data, Question};

pub const NAME: &str = "template";

/// The `view` label: exdns has no views.
const VIEW: &str = "";

/// `coredns_template_matches_total{server,zone,view,class,type}`.
pub(crate) static MATCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_template_matches_total",
        "Counter of template regex matches.",
        &["server", "zone", "view", "class", "type"],
    )
});

/// `coredns_template_template_failures_total{server,zone,view,class,type,section,template}`.
pub(crate) static TEMPLATE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_template_template_failures_total",
        "Counter of go template failures.",
        &[
            "server", "zone", "view", "class", "type", "section", "template",
        ],
    )
});

/// `coredns_template_rr_failures_total{server,zone,view,class,type,section,template}`.
pub(crate) static RR_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_template_rr_failures_total",
        "Counter of mis-templated RRs.",
        &[
            "server", "zone", "view", "class", "type", "section", "template",
        ],
    )
});

/// The reply section an RR template fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer,
    Additional,
    Authority,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Answer => "answer",
            Section::Additional => "additional",
            Section::Authority => "authority",
        }
    }
}

/// One `answer`/`additional`/`authority` RR: its template, and the record when the template has
/// no actions and parses (it is then built once, at setup).
#[derive(Debug, Clone)]
pub struct Rr {
    pub template: RrTemplate,
    pub fixed: Option<Record>,
}

/// `ederror CODE [REASON]`: an RFC 8914 Extended DNS Error added to the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedError {
    pub code: u16,
    pub reason: String,
}

/// One `template` directive.
#[derive(Debug)]
pub struct TemplatePlugin {
    /// CLASS; ANY matches every class.
    pub class: DNSClass,
    /// TYPE; ANY matches every type.
    pub qtype: RecordType,
    /// Absolute, lower-case zones.
    pub zones: Vec<String>,
    /// The `match` regexes in order (`.*` when there are none), with their text.
    pub regexes: Vec<(Regex, String)>,
    pub answer: Vec<Rr>,
    pub additional: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub rcode: ResponseCode,
    pub ederror: Option<ExtendedError>,
    /// Fallthrough zones; empty: no fallthrough.
    pub fall: Vec<String>,
    /// Whether any RR template uses `.Group` (the map is built per match only then).
    uses_group: bool,
}

impl TemplatePlugin {
    fn falls_through(&self, name: &str) -> bool {
        self.fall.iter().any(|z| in_zone(name, z))
    }

    /// Renders and parses the RRs of one section; `Err` is the log line of the first failure
    /// (already counted).
    fn section(
        &self,
        section: Section,
        rrs: &[Rr],
        data: &Data<'_>,
        server: &str,
        out: &mut Vec<Record>,
    ) -> Result<(), String> {
        for rr in rrs {
            if let Some(r) = &rr.fixed {
                out.push(r.clone());
                continue;
            }
            let labels = |t: &RrTemplate| {
                [
                    server.to_string(),
                    data.zone.to_string(),
                    VIEW.to_string(),
                    data.class.to_string(),
                    data.qtype.to_string(),
                    section.as_str().to_string(),
                    t.canonical().to_string(),
                ]
            };
            let mut text = String::new();
            if let Err(e) = rr.template.execute(data, &mut text) {
                let l = labels(&rr.template);
                TEMPLATE_FAILURES
                    .with_label_values(&l.each_ref().map(String::as_str))
                    .inc();
                return Err(e);
            }
            match parse_rr(&text) {
                Ok(r) => out.push(r),
                Err(e) => {
                    let l = labels(&rr.template);
                    RR_FAILURES
                        .with_label_values(&l.each_ref().map(String::as_str))
                        .inc();
                    return Err(format!(
                        "{section} RR {text:?}: {e}",
                        section = section.as_str()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether the template's CLASS/TYPE covers the query's (ANY on either side covers all).
fn covers<T: PartialEq>(template: T, query: T, any: T) -> bool {
    template == any || query == any || template == query
}

#[async_trait]
impl Plugin for TemplatePlugin {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let Some(q) = req.msg.queries.first() else {
            return next.serve(req).await;
        };
        let Some(zone) = match_zone(&self.zones, &req.name) else {
            return next.serve(req).await;
        };
        let (qclass, qtype) = (q.query_class(), q.query_type());
        if !covers(self.class, qclass, DNSClass::ANY) || !covers(self.qtype, qtype, RecordType::ANY)
        {
            return next.serve(req).await;
        }
        // `is_match` first: no allocation for the (common) names no regex matches.
        let Some((re, regex_text, caps)) = self
            .regexes
            .iter()
            .filter(|(re, _)| re.is_match(&req.name))
            .find_map(|(re, text)| re.captures(&req.name).map(|c| (re, text, c)))
        else {
            if self.falls_through(&req.name) {
                return next.serve(req).await;
            }
            return Outcome::code(ResponseCode::ServFail, NAME);
        };

        let class = class_mnemonic(if qclass == DNSClass::ANY {
            self.class
        } else {
            qclass
        });
        let rtype = type_mnemonic(if qtype == RecordType::ANY {
            self.qtype
        } else {
            qtype
        });
        MATCHES
            .with_label_values(&[&req.server, zone, VIEW, class, rtype])
            .inc();
        if self.rcode == ResponseCode::ServFail {
            return Outcome::code(ResponseCode::ServFail, NAME);
        }

        let matches: Vec<&str> = caps
            .iter()
            .map(|m| m.map(|m| m.as_str()).unwrap_or(""))
            .collect();
        let mut group: BTreeMap<Cow<'_, str>, &str> = BTreeMap::new();
        if self.uses_group {
            for (i, m) in matches.iter().enumerate() {
                group.insert(Cow::Owned(i.to_string()), m);
            }
            for (i, name) in re.capture_names().enumerate() {
                if let Some(name) = name {
                    group.insert(Cow::Borrowed(name), matches[i]);
                }
            }
        }
        let remote = req.src.ip().to_string();
        let qname_sent = q.name().to_ascii();
        let class_text = class_name(qclass);
        let type_text = type_name(qtype);
        let data = Data {
            zone,
            name: &req.name,
            regex: regex_text,
            matches: &matches,
            group: &group,
            class,
            qtype: rtype,
            question: Question {
                name: &qname_sent,
                qtype: u16::from(qtype),
                qclass: u16::from(qclass),
                class_text: &class_text,
                type_text: &type_text,
            },
            remote: &remote,
        };

        let mut msg = req.reply();
        msg.metadata.authoritative = true;
        msg.metadata.response_code = self.rcode;
        let sections = [
            (Section::Answer, &self.answer),
            (Section::Additional, &self.additional),
            (Section::Authority, &self.authority),
        ];
        for (section, rrs) in sections {
            let mut out = Vec::with_capacity(rrs.len());
            if let Err(e) = self.section(section, rrs, &data, &req.server, &mut out) {
                tracing::error!("plugin/template: {} {}: {e}", req.name, type_name(qtype));
                return Outcome::code(ResponseCode::ServFail, NAME);
            }
            match section {
                Section::Answer => msg.answers = out,
                Section::Additional => msg.additionals = out,
                Section::Authority => msg.authorities = out,
            }
        }

        // CoreDNS looks the target of each CNAME answer to an A/AAAA query up (through the whole
        // server) and appends what it finds right after that CNAME; exdns asks the rest of the
        // chain.
        if matches!(qtype, RecordType::A | RecordType::AAAA)
            && msg
                .answers
                .iter()
                .any(|r| matches!(r.data, RData::CNAME(_)))
        {
            let answers = std::mem::take(&mut msg.answers);
            for r in answers {
                let target = match &r.data {
                    RData::CNAME(c) => Some(c.0.clone()),
                    _ => None,
                };
                msg.answers.push(r);
                let Some(target) = target else { continue };
                let mut sub = req.clone();
                sub.msg.queries[0].set_name(target);
                sub.msg.metadata.recursion_desired = true;
                sub.name = lower_fqdn(sub.msg.queries[0].name());
                if let Outcome::Reply { msg: up, .. } = next.serve(&sub).await.decoded(&sub) {
                    msg.metadata.truncation = up.metadata.truncation;
                    msg.answers.extend(up.answers);
                }
            }
        }

        if let Some(ede) = &self.ederror {
            let mut data = Vec::with_capacity(2 + ede.reason.len());
            data.extend_from_slice(&ede.code.to_be_bytes());
            data.extend_from_slice(ede.reason.as_bytes());
            let mut edns = msg.edns.take().unwrap_or_default();
            edns.options_mut()
                .insert(EdnsOption::Unknown(EDE_OPTION, data));
            msg.edns = Some(edns);
        }
        Outcome::reply(msg, NAME)
    }
}

/// The EDNS option code of Extended DNS Errors (RFC 8914).
pub const EDE_OPTION: u16 = 15;

/// The first resource record of `text` in zone-file syntax, as miekg/dns's `NewRR` reads it:
/// relative names are completed with the root, the TTL defaults to 3600 and the class to IN.
/// Directives (`$ORIGIN`, `$TTL`, `$INCLUDE`) are refused.
pub fn parse_rr(text: &str) -> Result<Record, String> {
    let first = first_rr_text(text);
    if first.trim_start().starts_with('$') {
        return Err("zone-file directives are not allowed in a templated RR".to_string());
    }
    let input = format!("$TTL 3600\n{first}\n");
    let (_, records) = Parser::new(input, None, Some(Name::root()))
        .parse()
        .map_err(|e| e.to_string())?;
    records
        .into_values()
        .flat_map(|set| set.into_iter())
        .next()
        .ok_or_else(|| "no resource record".to_string())
}

/// The text of the first record: up to the first line break outside quotes and parentheses.
fn first_rr_text(text: &str) -> &str {
    let mut depth = 0usize;
    let mut quoted = false;
    let mut comment = false;
    let mut escaped = false;
    let mut started = false;
    for (i, c) in text.char_indices() {
        if comment {
            if c == '\n' {
                comment = false;
            } else {
                continue;
            }
        }
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => comment = true,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            '\n' if !quoted && depth == 0 && started => return &text[..i],
            c if !c.is_whitespace() => started = true,
            _ => {}
        }
    }
    text
}
