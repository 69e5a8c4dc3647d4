//! `health [ADDR] { lameduck DURATION }`.

use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::http::HttpEndpoint;
use crate::plugin::util::{listen_addr_arg, parse_duration};
use crate::plugin::{Plugin, SetupCtx};

use super::{DEFAULT_ADDR, Health};

/// Registers `/health` and records the lameduck duration; adds no handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "health"
    let addr = listen_addr_arg(d, DEFAULT_ADDR)?;
    let mut lameduck = Duration::ZERO;
    while d.next_block() {
        match d.val() {
            "lameduck" => {
                let args = d.remaining_args();
                let [value] = args.as_slice() else {
                    return Err(d.arg_err());
                };
                lameduck = parse_duration(value).map_err(|e| {
                    d.err(format!(
                        "unable to parse lameduck duration value: {value:?}: {e}"
                    ))
                })?;
            }
            _ => return Err(d.unknown_property()),
        }
    }
    ctx.config.serve_http(HttpEndpoint::new(
        addr,
        Some("/health"),
        Arc::new(Health::new()),
    ));
    ctx.config.lameduck = Some(lameduck);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::config_of;

    /// The registered address and the lameduck duration.
    fn run(text: &str) -> Result<Option<(String, Duration)>, String> {
        let config = config_of(setup, text)?;
        assert_eq!(config.http.len(), 1, "{config:?}");
        Ok(config
            .http_addr(Some("/health"))
            .map(|a| (a.to_string(), config.lameduck.expect("lameduck recorded"))))
    }

    fn hc(addr: &str, lameduck: Duration) -> Option<(String, Duration)> {
        Some((addr.to_string(), lameduck))
    }

    #[test]
    fn defaults_and_addresses() {
        assert_eq!(run("health"), Ok(hc(":8080", Duration::ZERO)));
        assert_eq!(run("health :8091"), Ok(hc(":8091", Duration::ZERO)));
        assert_eq!(
            run("health localhost:8080"),
            Ok(hc("localhost:8080", Duration::ZERO))
        );
        assert_eq!(run("health [::1]:0"), Ok(hc("[::1]:0", Duration::ZERO)));
    }

    #[test]
    fn lameduck_block() {
        assert_eq!(
            run("health {\n lameduck 5s\n}"),
            Ok(hc(":8080", Duration::from_secs(5)))
        );
        assert_eq!(
            run("health :8081 {\n lameduck 1m30s\n}"),
            Ok(hc(":8081", Duration::from_secs(90)))
        );
        assert_eq!(run("health {\n}"), Ok(hc(":8080", Duration::ZERO)));
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("health :8080 :8081").unwrap_err(),
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after ':8081'"
        );
        assert_eq!(
            run("health localhost").unwrap_err(),
            "Corefile:1 - Error during parsing: address localhost: missing port in address"
        );
        assert_eq!(
            run("health :http").unwrap_err(),
            r#"Corefile:1 - Error during parsing: address :http: invalid port "http": a number from 0 to 65535 is expected"#
        );
        assert_eq!(
            run("health {\n lameduck\n}").unwrap_err(),
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'lameduck'"
        );
        assert_eq!(
            run("health {\n lameduck 5s 6s\n}").unwrap_err(),
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '6s'"
        );
        assert_eq!(
            run("health {\n lameduck five\n}").unwrap_err(),
            r#"Corefile:2 - Error during parsing: unable to parse lameduck duration value: "five": time: invalid duration "five""#
        );
        assert_eq!(
            run("health {\n bogus 1\n}").unwrap_err(),
            "Corefile:2 - Error during parsing: unknown property 'bogus'"
        );
    }
}
