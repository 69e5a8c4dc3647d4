//! Corefile parsing for `rrl`, with the original plugin's defaults and error wording.
//!
//! ```text
//! rrl [ZONES...] {
//!     window SECONDS
//!     ipv4-prefix-length LENGTH
//!     ipv6-prefix-length LENGTH
//!     responses-per-second ALLOWANCE
//!     nodata-per-second ALLOWANCE
//!     nxdomains-per-second ALLOWANCE
//!     referrals-per-second ALLOWANCE
//!     errors-per-second ALLOWANCE
//!     slip-ratio N
//!     requests-per-second ALLOWANCE
//!     max-table-size SIZE
//!     report-only
//! }
//! ```

use std::num::IntErrorKind;
use std::sync::{Arc, LazyLock};

use super::{Config, REQUESTS_EXCEEDED, RESPONSES_EXCEEDED, Rrl, SECOND};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::go_quote;
use crate::plugin::zones::origins_from_args;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let cfg = parse(d, &ctx.zones())?;
    LazyLock::force(&RESPONSES_EXCEEDED);
    LazyLock::force(&REQUESTS_EXCEEDED);
    Ok(Some(Arc::new(Rrl::new(cfg))))
}

/// Parses one `rrl` occurrence (the dispenser before its name) in a block for `block_zones`.
pub fn parse(d: &mut Dispenser, block_zones: &[String]) -> Result<Config, ParseError> {
    d.next(); // "rrl"
    let args = d.remaining_args();
    let zones = origins_from_args(d, &args, block_zones)?;
    let mut cfg = Config::new(zones);
    let (mut nodata, mut nxdomains, mut referrals, mut errors) = (None, None, None, None);
    while d.next_block() {
        match d.val() {
            "window" => {
                let v = one_arg(d)?;
                let w = float(d, &v)?;
                if w <= 0.0 {
                    return Err(d.err("window must be greater than zero"));
                }
                cfg.window = (w * SECOND as f64) as i64;
            }
            "ipv4-prefix-length" => {
                let v = one_arg(d)?;
                let n = int(d, &v)?;
                if !(1..=32).contains(&n) {
                    return Err(d.err(format!("{v} must be between 1 and 32")));
                }
                cfg.ipv4_prefix_length = n as u8;
            }
            "ipv6-prefix-length" => {
                let v = one_arg(d)?;
                let n = int(d, &v)?;
                if !(1..=128).contains(&n) {
                    return Err(d.err(format!("{v} must be between 1 and 128")));
                }
                cfg.ipv6_prefix_length = n as u8;
            }
            "responses-per-second" => cfg.responses_interval = allowance(d)?,
            "nodata-per-second" => nodata = Some(allowance(d)?),
            "nxdomains-per-second" => nxdomains = Some(allowance(d)?),
            "referrals-per-second" => referrals = Some(allowance(d)?),
            "errors-per-second" => errors = Some(allowance(d)?),
            "requests-per-second" => cfg.requests_interval = allowance(d)?,
            "slip-ratio" => {
                let v = one_arg(d)?;
                let n = int(d, &v)?;
                if n < 0 {
                    return Err(d.err(format!("{v} cannot be negative")));
                }
                cfg.slip_ratio = u32::try_from(n).unwrap_or(u32::MAX);
            }
            "max-table-size" => {
                let v = one_arg(d)?;
                let n = int(d, &v)?;
                if n < 0 {
                    return Err(d.err(format!("{v} cannot be negative")));
                }
                cfg.max_table_size = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "report-only" => {
                if !d.remaining_args().is_empty() {
                    return Err(d.arg_err());
                }
                cfg.report_only = true;
            }
            _ => return Err(d.unknown_property()),
        }
    }
    // The other allowances default to responses-per-second.
    cfg.nodata_interval = nodata.unwrap_or(cfg.responses_interval);
    cfg.nxdomains_interval = nxdomains.unwrap_or(cfg.responses_interval);
    cfg.referrals_interval = referrals.unwrap_or(cfg.responses_interval);
    cfg.errors_interval = errors.unwrap_or(cfg.responses_interval);
    Ok(cfg)
}

fn one_arg(d: &mut Dispenser) -> Result<String, ParseError> {
    let mut args = d.remaining_args();
    if args.len() != 1 {
        return Err(d.arg_err());
    }
    Ok(args.remove(0))
}

/// An ALLOWANCE (responses per second, fractions allowed) as nanoseconds per response; 0 for
/// an allowance of 0 (not limited).
fn allowance(d: &mut Dispenser) -> Result<i64, ParseError> {
    let v = one_arg(d)?;
    let rps = float(d, &v)?;
    if rps < 0.0 {
        return Err(d.err(format!("{v} cannot be negative")));
    }
    if rps == 0.0 {
        return Ok(0);
    }
    Ok(((SECOND as f64 / rps) as i64).max(1))
}

/// A finite number, or an error worded as the original's (Go's `strconv.ParseFloat`).
fn float(d: &Dispenser, v: &str) -> Result<f64, ParseError> {
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        Ok(_) => Err(d.err(format!("{v} invalid value. not a finite number"))),
        Err(_) => Err(d.err(format!(
            "{v} invalid value. strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(v)
        ))),
    }
}

/// An integer, or an error worded as the original's (Go's `strconv.Atoi`).
fn int(d: &Dispenser, v: &str) -> Result<i64, ParseError> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        d.err(format!(
            "{v} invalid value. strconv.Atoi: parsing {}: {why}",
            go_quote(v)
        ))
    })
}
