//! `proxyproto { allow CIDR...; default use|ignore|reject|skip; udp_session_tracking TTL [MAX] }`,
//! with CoreDNS's error wording.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use std::time::Duration;

use crate::plugin::proxyproto::{DEFAULT_MAX_SESSIONS, Policy, ProxyProto, SessionTracking};
use crate::plugin::util::{go_quote, parse_go_duration};
use crate::plugin::{Plugin, SetupCtx};

/// Records the block's PROXY protocol policy; adds no handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    if ctx.config.proxyproto.is_some() {
        return Err(d.err("proxy protocol already configured for this server instance"));
    }
    let mut pp = ProxyProto::default();
    d.next(); // "proxyproto"
    if !d.remaining_args().is_empty() {
        return Err(d.arg_err());
    }
    {
        while d.next_block() {
            let option = d.val().to_string();
            match option.as_str() {
                "allow" => {
                    for v in d.remaining_args() {
                        let net = v
                            .parse::<ipnet::IpNet>()
                            .map_err(|_| d.err(format!("{v}: invalid CIDR address: {v}")))?;
                        // Go's ParseCIDR gives the network, host bits cleared.
                        pp.allow.push(net.trunc());
                    }
                }
                "default" => {
                    let args = d.remaining_args();
                    let [v] = args.as_slice() else {
                        return Err(d.arg_err());
                    };
                    pp.default = Some(Policy::parse(v).ok_or_else(|| d.arg_err())?);
                }
                "udp_session_tracking" => {
                    let args = d.remaining_args();
                    if args.is_empty() || args.len() > 2 {
                        return Err(d.arg_err());
                    }
                    let ns = parse_go_duration(&args[0]).map_err(|e| {
                        d.err(format!(
                            "udp_session_tracking: invalid duration {}: {e}",
                            go_quote(&args[0])
                        ))
                    })?;
                    let mut max = DEFAULT_MAX_SESSIONS;
                    if let Some(v) = args.get(1) {
                        max = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            d.err(format!(
                                "udp_session_tracking: invalid max sessions {}: must be a positive integer",
                                go_quote(v)
                            ))
                        })?;
                    }
                    // A zero or negative duration leaves tracking off, as CoreDNS.
                    pp.sessions = (ns > 0).then(|| {
                        SessionTracking::new(
                            Duration::from_nanos(ns.min(u64::MAX as i128) as u64),
                            max,
                        )
                    });
                }
                other => return Err(d.err(format!("unknown option '{other}'"))),
            }
        }
    }
    ctx.config.proxyproto = Some(Arc::new(pp));
    Ok(None)
}
