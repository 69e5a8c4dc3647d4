//! Corefile parsing for `template`, with CoreDNS's wording for every error.
//!
//! ```text
//! template CLASS TYPE [ZONE...] {
//!     match REGEX...
//!     answer RR...
//!     additional RR...
//!     authority RR...
//!     rcode CODE
//!     ederror EXTENDED_ERROR_CODE [EXTRA_REASON]
//!     fallthrough [ZONE...]
//!     upstream            # accepted and ignored (always on), as in CoreDNS
//! }
//! ```

use std::sync::{Arc, LazyLock};

use hickory_proto::op::ResponseCode;
use regex::Regex;

use super::gotmpl::{Template, go_parse_uint};
use super::{
    ExtendedError, MATCHES, NAME, RR_FAILURES, Rr, Section, TEMPLATE_FAILURES, TemplatePlugin,
    parse_rr,
};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::names::{class_from_mnemonic, rcode_mnemonic, type_from_mnemonic};
use crate::plugin::zones::origins_from_args;
use crate::plugin::{Plugin, SetupCtx};

/// CoreDNS's limit on the length of one `match` pattern.
pub const MAX_REGEX_LEN: usize = 10000;

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    LazyLock::force(&MATCHES);
    LazyLock::force(&TEMPLATE_FAILURES);
    LazyLock::force(&RR_FAILURES);
    Ok(Some(Arc::new(parse(d, &ctx.zones())?)))
}

/// Parses one `template` directive; `block_zones` are the server block's zones.
pub(crate) fn parse(
    d: &mut Dispenser,
    block_zones: &[String],
) -> Result<TemplatePlugin, ParseError> {
    d.next(); // "template"
    if !d.next_arg() {
        return Err(d.arg_err());
    }
    let class = class_from_mnemonic(d.val())
        .ok_or_else(|| d.err(format!("invalid query class {}", d.val())))?;
    if !d.next_arg() {
        return Err(d.arg_err());
    }
    // (sic: CoreDNS says "RR class" for a bad type.)
    let qtype = type_from_mnemonic(d.val())
        .ok_or_else(|| d.err(format!("invalid RR class {}", d.val())))?;
    let args = d.remaining_args();
    let zones = origins_from_args(d, &args, block_zones)?;

    let mut t = TemplatePlugin {
        class,
        qtype,
        zones,
        regexes: Vec::new(),
        answer: Vec::new(),
        additional: Vec::new(),
        authority: Vec::new(),
        rcode: ResponseCode::NoError,
        ederror: None,
        fall: Vec::new(),
        uses_group: false,
    };
    while d.next_block() {
        match d.val() {
            "match" => {
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.arg_err());
                }
                for re in args {
                    if re.len() > MAX_REGEX_LEN {
                        return Err(d.err(format!(
                            "regex pattern too long: {} > {MAX_REGEX_LEN}",
                            re.len()
                        )));
                    }
                    let compiled = Regex::new(&re).map_err(|e| {
                        d.err(format!(
                            "could not parse regex: {re}, {}",
                            go_regex_error(&re, &e)
                        ))
                    })?;
                    t.regexes.push((compiled, re));
                }
            }
            section @ ("answer" | "additional" | "authority") => {
                let section = match section {
                    "answer" => Section::Answer,
                    "additional" => Section::Additional,
                    _ => Section::Authority,
                };
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.arg_err());
                }
                for text in &args {
                    let template = Template::parse(section.as_str(), text).map_err(|e| {
                        d.err(format!("could not compile template: {}, {e}", d.val()))
                    })?;
                    let rr = fixed_rr(d, template);
                    match section {
                        Section::Answer => t.answer.push(rr),
                        Section::Additional => t.additional.push(rr),
                        Section::Authority => t.authority.push(rr),
                    }
                }
            }
            "rcode" => {
                if !d.next_arg() {
                    return Err(d.arg_err());
                }
                t.rcode = rcode_from_mnemonic(d.val())
                    .ok_or_else(|| d.err(format!("unknown rcode {}", d.val())))?;
            }
            "ederror" => {
                let args = d.remaining_args();
                if args.is_empty() || args.len() > 2 {
                    return Err(d.arg_err());
                }
                // CoreDNS names the line's last token here.
                let code = go_parse_uint(&args[0], 10, 16).map_err(|e| {
                    d.err(format!(
                        "error parsing extended DNS error code {}, {e}",
                        d.val()
                    ))
                })?;
                t.ederror = Some(ExtendedError {
                    code: code as u16,
                    reason: args.get(1).cloned().unwrap_or_default(),
                });
            }
            "fallthrough" => {
                let zones = d.remaining_args();
                t.fall = if zones.is_empty() {
                    vec![".".to_string()]
                } else {
                    origins_from_args(d, &zones, &[])?
                };
            }
            "upstream" => {
                // Deprecated in CoreDNS: CNAME targets are always looked up.
                d.remaining_args();
            }
            // CoreDNS answers an unknown property with an argument error.
            _ => return Err(d.arg_err()),
        }
    }
    if t.regexes.is_empty() {
        t.regexes
            .push((Regex::new(".*").expect("valid regex"), ".*".to_string()));
    }
    t.uses_group = [&t.answer, &t.additional, &t.authority]
        .iter()
        .any(|rrs| rrs.iter().any(|rr| rr.template.uses_group()));
    Ok(t)
}

/// An RR whose template has no actions is built once; one that does not parse stays a
/// template, failing (and counted) per query as in CoreDNS, with a warning now.
fn fixed_rr(d: &Dispenser, template: Template) -> Rr {
    let fixed = template.static_text().and_then(|text| match parse_rr(text) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(
                "plugin/{NAME}: {}:{} - {text:?} is not a valid resource record ({e}): matching queries will get SERVFAIL",
                d.file(),
                d.line()
            );
            None
        }
    });
    Rr { template, fixed }
}

/// miekg/dns's `StringToRcode` (with its alias `NOTIMPL`).
pub fn rcode_from_mnemonic(s: &str) -> Option<ResponseCode> {
    if s == "NOTIMPL" {
        return Some(ResponseCode::NotImp);
    }
    (0u16..=23)
        .map(<ResponseCode as From<u16>>::from)
        .find(|r| rcode_mnemonic(*r) == Some(s))
}

/// A regex error worded as Go's `regexp.Compile` does: `error parsing regexp: WHAT: `RE``.
fn go_regex_error(re: &str, e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            let what = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(text.trim());
            format!("error parsing regexp: {what}: `{re}`")
        }
        regex::Error::CompiledTooBig(_) => {
            format!("error parsing regexp: expression too large: `{re}`")
        }
        other => format!("error parsing regexp: {other}: `{re}`"),
    }
}
