//! `multisocket [NUM_SOCKETS]`: how many SO_REUSEPORT sockets each listener of the block opens,
//! for UDP and for TCP, as CoreDNS's *multisocket* (which starts NUM_SOCKETS servers on one
//! port). The kernel spreads datagrams and connections over them. NUM_SOCKETS defaults to the
//! number of cores (CoreDNS: GOMAXPROCS) and may be 1 to 1024. As in CoreDNS, a listener takes
//! the value of the first server block that binds it.
//!
//! Without `multisocket`, exdns opens one UDP socket per core (at most 16) and one TCP socket.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::cache::go_atoi;
use crate::plugin::{Plugin, SetupCtx};

pub const NAME: &str = "multisocket";

/// The largest NUM_SOCKETS (CoreDNS's `maxNumSockets`).
pub const MAX_NUM_SOCKETS: usize = 1024;

/// The default NUM_SOCKETS: the number of cores (CoreDNS: `runtime.GOMAXPROCS(0)`).
pub fn default_num_sockets() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `multisocket [NUM_SOCKETS]`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    ctx.config.num_sockets = Some(parse(d)?);
    Ok(None)
}

fn parse(d: &mut Dispenser) -> Result<usize, ParseError> {
    d.next(); // multisocket
    let args = d.remaining_args();
    if args.len() > 1 {
        return Err(d.arg_err());
    }
    if d.next() {
        // CoreDNS's `c.ArgErr()` on a following `{`.
        if d.val() == "{" {
            return Err(d.err("Unexpected token '{', expecting argument"));
        }
        return Err(d.arg_err());
    }
    let Some(arg) = args.first() else {
        return Ok(default_num_sockets());
    };
    let n = go_atoi(arg).map_err(|e| d.err(format!("invalid num sockets: {e}")))?;
    if n < 1 {
        return Err(d.err(format!("num sockets can not be zero or negative: {n}")));
    }
    if n > MAX_NUM_SOCKETS as i64 {
        return Err(d.err(format!(
            "num sockets exceeds maximum ({MAX_NUM_SOCKETS}): {n}"
        )));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::{config_of, setup_err};

    /// CoreDNS's multisocket_test.go table.
    #[test]
    fn setup_table() {
        let ok: &[(&str, usize)] = &[
            ("multisocket", default_num_sockets()),
            ("multisocket 2", 2),
            ("multisocket 1024", 1024),
            (" multisocket 1", 1),
        ];
        for (text, want) in ok {
            let c = config_of(setup, text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(c.num_sockets, Some(*want), "{text:?}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "multisocket text",
                "Corefile:1 - Error during parsing: invalid num sockets: strconv.Atoi: parsing \"text\": invalid syntax",
            ),
            (
                "multisocket 0",
                "Corefile:1 - Error during parsing: num sockets can not be zero or negative: 0",
            ),
            (
                "multisocket -1",
                "Corefile:1 - Error during parsing: num sockets can not be zero or negative: -1",
            ),
            (
                "multisocket 1025",
                "Corefile:1 - Error during parsing: num sockets exceeds maximum (1024): 1025",
            ),
            (
                "multisocket 99999999999999999999",
                "Corefile:1 - Error during parsing: invalid num sockets: strconv.Atoi: parsing \"99999999999999999999\": value out of range",
            ),
            (
                "multisocket 2 2",
                "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '2'",
            ),
            (
                "multisocket 2 {\n block\n}",
                "Corefile:1 - Error during parsing: Unexpected token '{', expecting argument",
            ),
        ];
        for (text, want) in bad {
            assert_eq!(setup_err(setup, text), *want, "{text:?}");
        }
    }
}
