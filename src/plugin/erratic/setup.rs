//! `erratic { drop [AMOUNT]; truncate [AMOUNT]; delay [AMOUNT [DURATION]] }`.

use std::sync::Arc;
use std::time::Duration;

use super::Erratic;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::parse_unsigned_duration;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(Some(Arc::new(parse(d)?)))
}

/// Parses one `erratic` occurrence.
pub fn parse(d: &mut Dispenser) -> Result<Erratic, ParseError> {
    d.next(); // erratic
    if !d.remaining_args().is_empty() {
        return Err(d.arg_err());
    }
    let mut e = Erratic {
        drop: 2,
        ..Erratic::default()
    };
    let mut drop_seen = false;
    while d.next_block() {
        match d.val() {
            "drop" => {
                let args = d.remaining_args();
                if args.len() > 1 {
                    return Err(d.arg_err());
                }
                drop_seen = true;
                if let Some(a) = args.first() {
                    e.drop = amount(d, a)?;
                }
            }
            "truncate" => {
                let args = d.remaining_args();
                if args.len() > 1 {
                    return Err(d.arg_err());
                }
                e.truncate = match args.first() {
                    Some(a) => amount(d, a)?,
                    None => 2,
                };
            }
            "delay" => {
                let args = d.remaining_args();
                if args.len() > 2 {
                    return Err(d.arg_err());
                }
                e.delay = 2;
                e.duration = Duration::from_millis(100);
                if let Some(a) = args.first() {
                    e.delay = amount(d, a)?;
                }
                if let Some(dur) = args.get(1) {
                    e.duration = parse_unsigned_duration(dur).map_err(|m| d.err(m))?;
                }
            }
            "large" => {
                if d.next_arg() {
                    return Err(d.arg_err());
                }
                e.large = true;
            }
            _ => return Err(d.unknown_property()),
        }
    }
    // Only `delay`/`truncate` given: don't drop by default.
    if (e.delay > 0 || e.truncate > 0) && !drop_seen {
        e.drop = 0;
    }
    Ok(e)
}

fn amount(d: &Dispenser, s: &str) -> Result<u64, ParseError> {
    match s.parse::<i32>() {
        Ok(n) if n >= 0 => Ok(n as u64),
        _ => Err(d.err(format!("illegal amount value given {s:?}"))),
    }
}
