//! `quic { max_streams N; worker_pool_size N }`: the DNS-over-QUIC listener's limits, as
//! CoreDNS's *quic* plugin. It adds no handler: the options go to the block's listeners; as in
//! CoreDNS, a `quic://` listener takes them from the first server block that binds it.
//!
//! * `max_streams`: concurrent streams (queries) per QUIC connection; default 256.
//! * `worker_pool_size`: streams served at once across all connections of the listener;
//!   default 1024 (CoreDNS's `DefaultQUICStreamWorkers`).

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::cache::go_atoi;
use crate::plugin::{Plugin, SetupCtx};

pub const NAME: &str = "quic";

/// CoreDNS's `DefaultMaxQUICStreams`.
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// CoreDNS's `DefaultQUICStreamWorkers`.
pub const DEFAULT_WORKER_POOL_SIZE: usize = 1024;
/// CoreDNS's `DefaultQUICMaxConnections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 200;

/// What a block's `quic` sets; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicOptions {
    pub max_streams: Option<usize>,
    pub worker_pool_size: Option<usize>,
}

impl QuicOptions {
    pub fn max_streams(&self) -> usize {
        self.max_streams.unwrap_or(DEFAULT_MAX_STREAMS)
    }
    pub fn worker_pool_size(&self) -> usize {
        self.worker_pool_size.unwrap_or(DEFAULT_WORKER_POOL_SIZE)
    }
}

/// `quic [{ max_streams N; worker_pool_size N }]`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let opts = parse(d, ctx.config.quic)?;
    ctx.config.quic = opts;
    Ok(None)
}

fn parse(d: &mut Dispenser, mut opts: QuicOptions) -> Result<QuicOptions, ParseError> {
    d.next(); // quic
    if !d.remaining_args().is_empty() {
        return Err(d.arg_err());
    }
    while d.next_block() {
        let prop = d.val().to_string();
        let (slot, what) = match prop.as_str() {
            "max_streams" => (&mut opts.max_streams, "max_streams"),
            "worker_pool_size" => (&mut opts.worker_pool_size, "worker_pool_size"),
            _ => return Err(d.err(format!("unknown property '{prop}'"))),
        };
        let args = d.remaining_args();
        if args.len() != 1 {
            return Err(d.arg_err());
        }
        let val = go_atoi(&args[0])
            .map_err(|e| d.err(format!("invalid {what} value '{}': {e}", args[0])))?;
        if val <= 0 {
            return Err(d.err(format!("{what} must be a positive integer: {val}")));
        }
        if slot.is_some() {
            return Err(d.err(format!("{what} already defined for this server block")));
        }
        *slot = Some(val as usize);
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::{config_of, setup_err};

    /// CoreDNS's plugin/quic/setup_test.go cases.
    #[test]
    fn setup_table() {
        let ok: &[(&str, Option<usize>, Option<usize>)] = &[
            ("quic", None, None),
            ("quic {\n}", None, None),
            ("quic {\n max_streams 100\n}", Some(100), None),
            ("quic {\n worker_pool_size 1000\n}", None, Some(1000)),
            (
                "quic {\n max_streams 100\n worker_pool_size 1000\n}",
                Some(100),
                Some(1000),
            ),
        ];
        for (text, streams, workers) in ok {
            let c = config_of(setup, text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(c.quic.max_streams, *streams, "{text:?}");
            assert_eq!(c.quic.worker_pool_size, *workers, "{text:?}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "quic arg",
                "Wrong argument count or unexpected line ending after 'arg'",
            ),
            ("quic {\n max_streams\n}", "Wrong argument count"),
            (
                "quic {\n max_streams abc\n}",
                "invalid max_streams value 'abc': strconv.Atoi: parsing \"abc\": invalid syntax",
            ),
            (
                "quic {\n max_streams 0\n}",
                "max_streams must be a positive integer: 0",
            ),
            (
                "quic {\n max_streams -1\n}",
                "max_streams must be a positive integer: -1",
            ),
            (
                "quic {\n max_streams 10\n max_streams 20\n}",
                "max_streams already defined for this server block",
            ),
            (
                "quic {\n worker_pool_size 0\n}",
                "worker_pool_size must be a positive integer: 0",
            ),
            (
                "quic {\n worker_pool_size 10\n worker_pool_size 20\n}",
                "worker_pool_size already defined for this server block",
            ),
            (
                "quic {\n unknown_option 10\n}",
                "unknown property 'unknown_option'",
            ),
        ];
        for (text, want) in bad {
            let e = setup_err(setup, text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
