//! `bind ADDR|IFACE... { except ADDR|IFACE... }`.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::config::BindSpec;
use crate::plugin::{Plugin, SetupCtx};

use super::parse_bind_spec;

/// Adds this line's addresses and interfaces to `ctx.config.bind` (and its `except` ones to
/// `ctx.config.bind_except`), without duplicates; adds no handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "bind"
    let args = d.remaining_args();
    if args.is_empty() {
        return Err(d.err("at least one address or interface name is expected"));
    }
    let mut include = Vec::with_capacity(args.len());
    for a in &args {
        include.push(parse_bind_spec(a).map_err(|e| d.err(e))?);
    }
    let mut except = Vec::new();
    while d.next_block() {
        match d.val() {
            "except" => {
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.err(
                        "at least one address or interface must be given to except subdirective",
                    ));
                }
                for a in &args {
                    except.push(parse_bind_spec(a).map_err(|e| d.err(e))?);
                }
            }
            other => return Err(d.err(format!("invalid option {other:?}"))),
        }
    }
    merge(&mut ctx.config.bind, include);
    merge(&mut ctx.config.bind_except, except);
    Ok(None)
}

fn merge(into: &mut Vec<BindSpec>, specs: Vec<BindSpec>) {
    for s in specs {
        if !into.contains(&s) {
            into.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::plugin::config::BlockConfig;
    use crate::plugin::test_chain::setup_into;

    fn run_all(lines: &[&str]) -> Result<BlockConfig, String> {
        let mut config = BlockConfig::default();
        for text in lines {
            let handler =
                setup_into(setup, text, &["."], &mut config).map_err(|e| e.to_string())?;
            assert!(handler.is_none(), "bind adds no handler");
        }
        Ok(config)
    }

    fn addr(s: &str) -> BindSpec {
        BindSpec::Addr(s.parse::<IpAddr>().unwrap())
    }

    fn iface(s: &str) -> BindSpec {
        BindSpec::Interface(s.to_string())
    }

    #[test]
    fn addresses_and_interfaces() {
        let c = run_all(&["bind 127.0.0.1 ::1 eth0"]).unwrap();
        assert_eq!(c.bind, vec![addr("127.0.0.1"), addr("::1"), iface("eth0")]);
        assert!(c.bind_except.is_empty());
    }

    #[test]
    fn lines_merge_without_duplicates() {
        let c = run_all(&[
            "bind 10.0.0.1 lo",
            "bind lo 10.0.0.2 {\n except 10.0.0.3 wg0\n}",
        ])
        .unwrap();
        assert_eq!(
            c.bind,
            vec![addr("10.0.0.1"), iface("lo"), addr("10.0.0.2")]
        );
        assert_eq!(c.bind_except, vec![addr("10.0.0.3"), iface("wg0")]);
    }

    #[test]
    fn except_block() {
        let c = run_all(&["bind eth0 {\n except 192.168.1.1 fe80::1\n}"]).unwrap();
        assert_eq!(c.bind, vec![iface("eth0")]);
        assert_eq!(c.bind_except, vec![addr("192.168.1.1"), addr("fe80::1")]);
    }

    #[test]
    fn interface_names_follow_linux_rules() {
        assert_eq!(parse_bind_spec("tun0"), Ok(iface("tun0")));
        assert_eq!(
            parse_bind_spec("a23456789012345"),
            Ok(iface("a23456789012345"))
        );
        assert_eq!(
            parse_bind_spec("a234567890123456").unwrap_err(),
            r#"not a valid IP address or interface name: "a234567890123456""#
        );
        assert!(parse_bind_spec("eth0:1").is_err());
        assert!(parse_bind_spec("a/b").is_err());
        assert!(parse_bind_spec("..").is_err());
        assert!(parse_bind_spec("").is_err());
    }

    #[test]
    fn errors() {
        assert_eq!(
            run_all(&["bind"]).unwrap_err(),
            "Corefile:1 - Error during parsing: at least one address or interface name is expected"
        );
        assert_eq!(
            run_all(&["bind 10.0.0.1 {\n except\n}"]).unwrap_err(),
            "Corefile:2 - Error during parsing: at least one address or interface must be given to except subdirective"
        );
        assert_eq!(
            run_all(&["bind 10.0.0.1 {\n only 10.0.0.2\n}"]).unwrap_err(),
            r#"Corefile:2 - Error during parsing: invalid option "only""#
        );
        assert_eq!(
            run_all(&["bind 10.0.0.1 fe80::1%eth0"]).unwrap_err(),
            r#"Corefile:1 - Error during parsing: not a valid IP address or interface name: "fe80::1%eth0""#
        );
    }
}
