//! `https3 { max_streams N; max_connections N }`: the DNS-over-HTTP/3 listener's limits, as
//! CoreDNS 1.14's *https3* plugin. It adds no handler: the options go to the block's listeners;
//! as in CoreDNS, an `https3://` listener takes them from the first server block that binds it,
//! and blocks of other schemes keep them without effect.
//!
//! * `max_streams`: concurrent request streams per QUIC connection; default 256 (CoreDNS's
//!   `DefaultHTTPS3MaxStreams`); 0: the QUIC transport's default (quinn's, 100).
//! * `max_connections`: QUIC connections open at once, more are refused; default 200 (CoreDNS's
//!   `DefaultHTTPSMaxConnections`); 0: no exdns limit.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::https::parse_props;
use crate::plugin::{Plugin, SetupCtx};

pub const NAME: &str = "https3";

/// CoreDNS's `DefaultHTTPS3MaxStreams`.
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// CoreDNS's `DefaultHTTPSMaxConnections`, which its DoH3 server uses too.
pub const DEFAULT_MAX_CONNECTIONS: usize = crate::plugin::https::DEFAULT_MAX_CONNECTIONS;

/// What a block's `https3` sets; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Https3Options {
    pub max_streams: Option<usize>,
    pub max_connections: Option<usize>,
}

impl Https3Options {
    /// Streams per connection; 0: the QUIC transport's default.
    pub fn max_streams(&self) -> usize {
        self.max_streams.unwrap_or(DEFAULT_MAX_STREAMS)
    }
    /// Connections at once; 0: unbounded.
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }
}

/// `https3 [{ max_streams N; max_connections N }]`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let opts = parse(d, ctx.config.https3)?;
    ctx.config.https3 = opts;
    Ok(None)
}

fn parse(d: &mut Dispenser, mut opts: Https3Options) -> Result<Https3Options, ParseError> {
    parse_props(
        d,
        &mut [
            ("max_streams", &mut opts.max_streams),
            ("max_connections", &mut opts.max_connections),
        ],
    )?;
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::{config_of, setup_err};

    /// CoreDNS's plugin/https3/setup_test.go cases (and the same for `max_connections`), with
    /// the whole error text.
    #[test]
    fn setup_table() {
        type Ok = (&'static str, Option<usize>, Option<usize>, usize, usize);
        let ok: &[Ok] = &[
            ("https3", None, None, 256, 200),
            ("https3 {\n}", None, None, 256, 200),
            ("https3 {\n max_streams 100\n}", Some(100), None, 100, 200),
            ("https3 {\n max_streams 0\n}", Some(0), None, 0, 200),
            ("https3 {\n max_connections 5\n}", None, Some(5), 256, 5),
            ("https3 {\n max_connections 0\n}", None, Some(0), 256, 0),
            (
                "https3 {\n max_streams 2\n max_connections 1\n}",
                Some(2),
                Some(1),
                2,
                1,
            ),
        ];
        for (text, streams, conns, eff_streams, eff_conns) in ok {
            let c = config_of(setup, text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(c.https3.max_streams, *streams, "{text:?}");
            assert_eq!(c.https3.max_connections, *conns, "{text:?}");
            assert_eq!(c.https3.max_streams(), *eff_streams, "{text:?}");
            assert_eq!(c.https3.max_connections(), *eff_conns, "{text:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("https3 {\n max_streams\n}", "Wrong argument count"),
            ("https3 {\n max_connections\n}", "Wrong argument count"),
            (
                "https3 {\n max_streams abc\n}",
                "Corefile:2 - Error during parsing: invalid max_streams value 'abc': strconv.Atoi: parsing \"abc\": invalid syntax",
            ),
            (
                "https3 {\n max_connections abc\n}",
                "invalid max_connections value 'abc': strconv.Atoi: parsing \"abc\": invalid syntax",
            ),
            (
                "https3 {\n max_streams -1\n}",
                "max_streams must be a non-negative integer: -1",
            ),
            (
                "https3 {\n max_connections -1\n}",
                "max_connections must be a non-negative integer: -1",
            ),
            (
                "https3 {\n max_streams 100\n max_streams 200\n}",
                "max_streams already defined for this server block",
            ),
            (
                "https3 {\n max_connections 1\n max_connections 2\n}",
                "max_connections already defined for this server block",
            ),
            (
                "https3 {\n unknown_option 123\n}",
                "unknown property 'unknown_option'",
            ),
            (
                "https3 extra_arg",
                "Wrong argument count or unexpected line ending after 'extra_arg'",
            ),
        ];
        for (text, want) in bad {
            let e = setup_err(setup, text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
