//! `debug`: debug logging, as CoreDNS's *debug* turns on its `[DEBUG]` lines.
//!
//! The directive adds no handler; its setup marks the block's config and, while any block of the
//! running configuration has it, the server logs exdns's debug lines (unless `RUST_LOG` chooses
//! the filter). Unlike CoreDNS, exdns keeps recovering from a panic in a query's handling: one
//! bad query costs a SERVFAIL, never the process.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::{Plugin, SetupCtx};

/// `debug` takes no arguments.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "debug"
    if d.next_arg() {
        return Err(d.arg_err());
    }
    ctx.config.debug = true;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::config_of;

    #[test]
    fn marks_the_block_and_takes_no_arguments() {
        assert!(config_of(setup, "debug").unwrap().debug);
        assert_eq!(
            config_of(setup, "debug on").unwrap_err(),
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'on'"
        );
    }
}
