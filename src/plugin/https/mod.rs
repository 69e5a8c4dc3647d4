//! `https { max_connections N }`: the DNS-over-HTTPS listener's connection cap, as CoreDNS
//! 1.14's *https* plugin. It adds no handler: the option goes to the block's listeners; as in
//! CoreDNS, an `https://` listener takes it from the first server block that binds it, and
//! blocks of other schemes keep it without effect.
//!
//! * `max_connections`: connections open at once; default 200 (CoreDNS's
//!   `DefaultHTTPSMaxConnections`); 0: no cap of its own (the listener's TCP cap, which the
//!   descriptor budget bounds).

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::cache::go_atoi;
use crate::plugin::{Plugin, SetupCtx};

pub const NAME: &str = "https";

/// CoreDNS's `DefaultHTTPSMaxConnections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 200;

/// What a block's `https` sets; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpsOptions {
    pub max_connections: Option<usize>,
}

impl HttpsOptions {
    /// The cap; 0: unbounded.
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }
}

/// `https [{ max_connections N }]`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let opts = parse(d, ctx.config.https)?;
    ctx.config.https = opts;
    Ok(None)
}

fn parse(d: &mut Dispenser, mut opts: HttpsOptions) -> Result<HttpsOptions, ParseError> {
    parse_props(d, &mut [("max_connections", &mut opts.max_connections)])?;
    Ok(opts)
}

/// `NAME [{ PROP N … }]` as CoreDNS's *https* and *https3* read it: no arguments, each of
/// `props` (its name and where its value goes) at most once, anything else an unknown property.
pub(crate) fn parse_props(
    d: &mut Dispenser,
    props: &mut [(&str, &mut Option<usize>)],
) -> Result<(), ParseError> {
    d.next(); // the directive
    if !d.remaining_args().is_empty() {
        return Err(d.arg_err());
    }
    while d.next_block() {
        let prop = d.val().to_string();
        let Some((_, slot)) = props.iter_mut().find(|(name, _)| *name == prop) else {
            return Err(d.err(format!("unknown property '{prop}'")));
        };
        **slot = Some(non_negative(d, &prop, slot.is_some())?);
    }
    Ok(())
}

/// The one argument of `what` as CoreDNS's *https* and *https3* read it: a Go `int`, at least
/// 0, set once per block.
pub(crate) fn non_negative(d: &mut Dispenser, what: &str, set: bool) -> Result<usize, ParseError> {
    let args = d.remaining_args();
    if args.len() != 1 {
        return Err(d.arg_err());
    }
    let val =
        go_atoi(&args[0]).map_err(|e| d.err(format!("invalid {what} value '{}': {e}", args[0])))?;
    if val < 0 {
        return Err(d.err(format!("{what} must be a non-negative integer: {val}")));
    }
    if set {
        return Err(d.err(format!("{what} already defined for this server block")));
    }
    Ok(usize::try_from(val).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::{config_of, setup_err};

    /// CoreDNS's plugin/https/setup_test.go cases, with the whole error text.
    #[test]
    fn setup_table() {
        let ok: &[(&str, Option<usize>, usize)] = &[
            ("https", None, 200),
            ("https {\n}", None, 200),
            ("https {\n max_connections 200\n}", Some(200), 200),
            ("https {\n max_connections 0\n}", Some(0), 0),
            ("https {\n max_connections 7\n}", Some(7), 7),
        ];
        for (text, set, effective) in ok {
            let c = config_of(setup, text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(c.https.max_connections, *set, "{text:?}");
            assert_eq!(c.https.max_connections(), *effective, "{text:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("https {\n max_connections\n}", "Wrong argument count"),
            ("https {\n max_connections 1 2\n}", "Wrong argument count"),
            (
                "https {\n max_connections abc\n}",
                "Corefile:2 - Error during parsing: invalid max_connections value 'abc': strconv.Atoi: parsing \"abc\": invalid syntax",
            ),
            (
                "https {\n max_connections 99999999999999999999\n}",
                "invalid max_connections value '99999999999999999999': strconv.Atoi: parsing \"99999999999999999999\": value out of range",
            ),
            (
                "https {\n max_connections -1\n}",
                "max_connections must be a non-negative integer: -1",
            ),
            (
                "https {\n max_connections 100\n max_connections 200\n}",
                "max_connections already defined for this server block",
            ),
            (
                "https {\n unknown_option 123\n}",
                "unknown property 'unknown_option'",
            ),
            (
                "https extra_arg",
                "Wrong argument count or unexpected line ending after 'extra_arg'",
            ),
        ];
        for (text, want) in bad {
            let e = setup_err(setup, text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
