//! `podip [ADDR] { interface NAME; require_upstream }`.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::http::HttpEndpoint;
use crate::plugin::util::listen_addr_arg;
use crate::plugin::{Plugin, SetupCtx};

use super::{PodIp, PodIpConfig};

/// Default listen address (the pod-gateway Services target port 3150).
pub const DEFAULT_ADDR: &str = ":3150";
/// Default interface for the IP when `POD_IP` is unset.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// Registers the endpoint (every path and method of its address); adds no handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let cfg = parse(d)?;
    ctx.config.serve_http(HttpEndpoint::new(
        cfg.addr.clone(),
        None,
        Arc::new(PodIp(cfg)),
    ));
    Ok(None)
}

pub fn parse(d: &mut Dispenser) -> Result<PodIpConfig, ParseError> {
    d.next();
    let addr = listen_addr_arg(d, DEFAULT_ADDR)?;
    let mut cfg = PodIpConfig {
        addr,
        interface: DEFAULT_INTERFACE.to_string(),
        require_upstream: false,
    };
    while d.next_block() {
        match d.val() {
            "interface" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                let name = &args[0];
                if name.is_empty()
                    || name.len() > 15
                    || name.contains('/')
                    || name.chars().any(char::is_whitespace)
                {
                    return Err(d.err(format!("invalid interface name '{name}'")));
                }
                cfg.interface = name.clone();
            }
            "require_upstream" => {
                if d.next_arg() {
                    return Err(d.arg_err());
                }
                cfg.require_upstream = true;
            }
            _ => return Err(d.unknown_property()),
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::dispenser;

    #[test]
    fn defaults_and_options() {
        assert_eq!(
            parse(&mut dispenser("podip")).unwrap(),
            PodIpConfig {
                addr: ":3150".into(),
                interface: "eth0".into(),
                require_upstream: false
            }
        );
        assert_eq!(
            parse(&mut dispenser(
                "podip 127.0.0.1:8080 {\n interface vxlan0\n require_upstream\n}"
            ))
            .unwrap(),
            PodIpConfig {
                addr: "127.0.0.1:8080".into(),
                interface: "vxlan0".into(),
                require_upstream: true
            }
        );
    }

    #[test]
    fn errors() {
        for (text, want) in [
            ("podip a b", "Wrong argument count"),
            ("podip {\n interface\n}", "Wrong argument count"),
            ("podip {\n interface a/b\n}", "invalid interface name 'a/b'"),
            ("podip {\n require_upstream yes\n}", "Wrong argument count"),
            ("podip {\n bogus\n}", "unknown property 'bogus'"),
            ("podip nohost", "nohost"),
        ] {
            let e = parse(&mut dispenser(text)).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
