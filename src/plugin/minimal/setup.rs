//! `minimal` takes no arguments.

use std::sync::Arc;

use super::Minimal;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{Occurrence, occurrence};
use crate::plugin::{Plugin, SetupCtx};

/// `minimal`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    if matches!(occurrence(d, ctx.block, "minimal"), Occurrence::Later) {
        // CoreDNS reads the block's first `minimal` line and never looks at the others.
        return Ok(None);
    }
    d.next(); // minimal
    if d.next_arg() {
        return Err(d.arg_err());
    }
    Ok(Some(Arc::new(Minimal)))
}
