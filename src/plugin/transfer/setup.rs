//! Corefile parsing for `transfer`.
//!
//! ```text
//! transfer [ZONE...] {
//!     to ADDRESS...
//!     source ADDRESS
//! }
//! ```
//!
//! As CoreDNS: `to` is required and may repeat; each entry is `*` or an IP address with an
//! optional port (53); several `transfer` occurrences in a block make one handler. exdns also
//! takes networks (`10.0.0.0/8`) in `to`: they may transfer but get no NOTIFY.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use super::{To, Transfer, Xfr};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{Occurrence, occurrence, split_host_port};
use crate::plugin::zones::origins_from_args;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(parse(d, ctx)?.map(|t| Arc::new(t) as Arc<dyn Plugin>))
}

pub(crate) fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<Option<Transfer>, ParseError> {
    let zones = ctx.zones();
    let mut xfrs = Vec::new();
    match occurrence(d, ctx.block, "transfer") {
        Occurrence::Alone => xfrs.push(parse_one(d, &zones)?),
        Occurrence::First(all) => {
            for dir in all {
                xfrs.push(parse_one(&mut dir.dispenser(), &zones)?);
            }
        }
        Occurrence::Later => return Ok(None),
    }
    Ok(Some(Transfer::new(xfrs)))
}

fn parse_one(d: &mut Dispenser, block_zones: &[String]) -> Result<Xfr, ParseError> {
    d.next(); // transfer
    let args = d.remaining_args();
    let zones = origins_from_args(d, &args, block_zones)?;
    let mut x = Xfr {
        zones,
        to: Vec::new(),
        source: None,
    };
    while d.next_block() {
        match d.val() {
            "to" => {
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.arg_err());
                }
                for a in args {
                    x.to.push(parse_to(&a).map_err(|e| d.err(e))?);
                }
            }
            "source" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                if x.source.is_some() {
                    return Err(d.err("source already specified"));
                }
                let ip: IpAddr = args[0]
                    .parse()
                    .map_err(|_| d.err(format!("invalid source address \"{}\"", args[0])))?;
                x.source = Some(ip);
            }
            _ => return Err(d.unknown_property()),
        }
    }
    if x.to.is_empty() {
        return Err(d.err("'to' is required"));
    }
    Ok(x)
}

/// `*`, `ADDRESS`, `ADDRESS:PORT`, `[V6]:PORT` (CoreDNS's parse.HostPort, a zone index such as
/// `%eth0` dropped) or a network.
fn parse_to(s: &str) -> Result<To, String> {
    if s == "*" {
        return Ok(To::Any);
    }
    if s.contains('/') {
        return s
            .parse::<IpNet>()
            .map(|n| To::Net(n.trunc()))
            .map_err(|_| format!("must specify an IP address: `{s}'"));
    }
    let ip = |h: &str| -> Result<IpAddr, String> {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        let h = h.split('%').next().unwrap_or(h);
        h.parse()
            .map_err(|_| format!("must specify an IP address: `{h}'"))
    };
    match split_host_port(s) {
        Ok((host, port)) => {
            let port: u16 = port.parse().map_err(|_| format!("invalid port in `{s}'"))?;
            Ok(To::Addr(SocketAddr::new(ip(host)?, port)))
        }
        Err(_) => Ok(To::Addr(SocketAddr::new(ip(s)?, 53))),
    }
}

#[cfg(test)]
pub(crate) fn parse_to_for_tests(s: &str) -> Result<To, String> {
    parse_to(s)
}
