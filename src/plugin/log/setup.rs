//! `log [NAMES...] [FORMAT] { class CLASSES...; minDuration [DURATION] }`.
//!
//! CoreDNS parses every `log` line of a server block into one handler whose first matching rule
//! wins. exdns calls a setup per line, so the first `log` line of the block parses them all and
//! the later ones add no handler (a query is logged once, by the first rule covering it).

use std::sync::Arc;
use std::time::Duration;

use super::{
    COMBINED_LOG_FORMAT, COMMON_LOG_FORMAT, Class, DEFAULT_LOG_FORMAT, DEFAULT_MIN_DURATION,
    Format, Log, Rule,
};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{Occurrence, occurrence, parse_unsigned_duration};
use crate::plugin::zones::fqdn_lower;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let place = occurrence(d, ctx.block, "log");
    let mut rules = parse(d)?;
    match place {
        Occurrence::Alone => {}
        Occurrence::First(lines) => {
            for other in &lines[1..] {
                rules.extend(parse(&mut other.dispenser())?);
            }
        }
        Occurrence::Later => return Ok(None),
    }
    Ok(Some(Arc::new(Log { rules })))
}

/// Parses one `log` occurrence into its rules (one per name).
pub fn parse(d: &mut Dispenser) -> Result<Vec<Rule>, ParseError> {
    d.next(); // log
    let mut args = d.remaining_args();
    let mut format = DEFAULT_LOG_FORMAT;
    // The last argument is the format when it has a placeholder (CoreDNS only looks at it with
    // two or more arguments; a lone `{combined}` would be a name there).
    if args.last().is_some_and(|a| a.contains('{')) {
        let f = args.pop().unwrap_or_default();
        format = match f.as_str() {
            "{common}" => COMMON_LOG_FORMAT,
            "{combined}" => COMBINED_LOG_FORMAT,
            _ => {
                let parsed = Format::parse(&f);
                return finish(d, names(args), parsed);
            }
        };
    }
    finish(d, names(args), Format::parse(format))
}

fn names(args: Vec<String>) -> Vec<String> {
    if args.is_empty() {
        return vec![".".to_string()];
    }
    args.iter().map(|a| fqdn_lower(a)).collect()
}

fn finish(d: &mut Dispenser, names: Vec<String>, format: Format) -> Result<Vec<Rule>, ParseError> {
    let mut classes = Vec::new();
    let mut min_duration = Duration::ZERO;
    while d.next_block() {
        match d.val() {
            "class" => {
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.arg_err());
                }
                for a in args {
                    let c = Class::parse(&a).ok_or_else(|| d.err(format!("invalid Class: {a}")))?;
                    if !classes.contains(&c) {
                        classes.push(c);
                    }
                }
            }
            "minDuration" => {
                let args = d.remaining_args();
                min_duration = match args.as_slice() {
                    [] => DEFAULT_MIN_DURATION,
                    [a] => parse_unsigned_duration(a)
                        .map_err(|_| d.err(format!("Illegal duration found: '{a}'")))?,
                    _ => return Err(d.arg_err()),
                };
            }
            _ => return Err(d.unknown_property()),
        }
    }
    if classes.is_empty() {
        classes.push(Class::All);
    }
    Ok(names
        .into_iter()
        .map(|name| Rule {
            name,
            format: format.clone(),
            classes: classes.clone(),
            min_duration,
        })
        .collect())
}
