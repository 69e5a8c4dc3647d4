//! `errors [stdout] { consolidate DURATION REGEXP [LEVEL]; stacktrace }`.

use std::sync::Arc;

use regex::Regex;

use super::{Errors, Level, Pattern};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::parse_unsigned_duration;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(Some(Arc::new(parse(d)?)))
}

/// Parses one `errors` occurrence.
pub fn parse(d: &mut Dispenser) -> Result<Errors, ParseError> {
    d.next(); // errors
    let args = d.remaining_args();
    match args.as_slice() {
        [] => {}
        [file] if file == "stdout" => {}
        [file] => return Err(d.err(format!("invalid log file: {file}"))),
        _ => return Err(d.arg_err()),
    }
    let mut patterns = Vec::new();
    let mut stacktrace = false;
    while d.next_block() {
        match d.val() {
            "consolidate" => patterns.push(consolidate(d)?),
            "stacktrace" | "panicRecoveryStacktrace" => {
                if d.next_arg() {
                    return Err(d.arg_err());
                }
                stacktrace = true;
            }
            _ => return Err(d.unknown_property()),
        }
    }
    Ok(Errors::new(patterns, stacktrace))
}

fn consolidate(d: &mut Dispenser) -> Result<Pattern, ParseError> {
    let args = d.remaining_args();
    if args.len() < 2 || args.len() > 3 {
        return Err(d.arg_err());
    }
    let period = parse_unsigned_duration(&args[0]).map_err(|e| d.err(e))?;
    let regex = Regex::new(&args[1]).map_err(|e| d.err(e.to_string()))?;
    let level = match args.get(2).map(String::as_str) {
        None | Some("error") => Level::Error,
        Some("warning") => Level::Warning,
        Some("info") => Level::Info,
        Some("debug") => Level::Debug,
        Some(other) => {
            return Err(d.err(format!(
                "unknown log level argument in consolidate: {other}"
            )));
        }
    };
    Ok(Pattern::new(period, regex, level))
}
