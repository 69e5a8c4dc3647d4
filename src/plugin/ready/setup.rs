//! `ready [ADDR] { monitor until-ready|continuously }`.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::http::HttpEndpoint;
use crate::plugin::util::listen_addr_arg;
use crate::plugin::{Plugin, SetupCtx};

use super::{DEFAULT_ADDR, Ready};

/// Registers `/ready`; adds no handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "ready"
    let addr = listen_addr_arg(d, DEFAULT_ADDR)?;
    while d.next_block() {
        match d.val() {
            // exdns always asks the plugins on every request (CoreDNS's `continuously`); a plugin
            // with a readiness notion reports its current state, so both modes are accepted.
            "monitor" => {
                let args = d.remaining_args();
                let [mode] = args.as_slice() else {
                    return Err(d.arg_err());
                };
                if mode != "until-ready" && mode != "continuously" {
                    return Err(d.err(format!("monitor type '{mode}' not supported")));
                }
            }
            _ => return Err(d.unknown_property()),
        }
    }
    ctx.config
        .serve_http(HttpEndpoint::new(addr, Some("/ready"), Arc::new(Ready)));
    ctx.config.readiness = true;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::config_of;

    fn run(text: &str) -> Result<Option<String>, String> {
        Ok(config_of(setup, text)?
            .http_addr(Some("/ready"))
            .map(str::to_string))
    }

    #[test]
    fn defaults_and_addresses() {
        assert_eq!(run("ready"), Ok(Some(":8181".to_string())));
        assert_eq!(run("ready :8182"), Ok(Some(":8182".to_string())));
        assert_eq!(
            run("ready 127.0.0.1:0"),
            Ok(Some("127.0.0.1:0".to_string()))
        );
        assert_eq!(
            run("ready {\n monitor continuously\n}"),
            Ok(Some(":8181".to_string()))
        );
        assert_eq!(
            run("ready :1 {\n monitor until-ready\n}"),
            Ok(Some(":1".to_string()))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("ready :1 :2").unwrap_err(),
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after ':2'"
        );
        assert_eq!(
            run("ready 8181").unwrap_err(),
            "Corefile:1 - Error during parsing: address 8181: missing port in address"
        );
        assert_eq!(
            run("ready {\n monitor sometimes\n}").unwrap_err(),
            "Corefile:2 - Error during parsing: monitor type 'sometimes' not supported"
        );
        assert_eq!(
            run("ready {\n monitor\n}").unwrap_err(),
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'monitor'"
        );
        assert_eq!(
            run("ready {\n bogus\n}").unwrap_err(),
            "Corefile:2 - Error during parsing: unknown property 'bogus'"
        );
    }
}
