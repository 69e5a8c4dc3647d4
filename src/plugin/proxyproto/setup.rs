//! `proxyproto { allow CIDR...; default use|ignore|reject|skip; udp_session_tracking ... }`,
//! with CoreDNS's error wording.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::proxyproto::{Policy, ProxyProto};
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
                    return Err(d.err(
                        "udp_session_tracking is not supported by exdns (Cloudflare Spectrum's header-only datagrams)",
                    ));
                }
                other => return Err(d.err(format!("unknown option '{other}'"))),
            }
        }
    }
    ctx.config.proxyproto = Some(Arc::new(pp));
    Ok(None)
}
