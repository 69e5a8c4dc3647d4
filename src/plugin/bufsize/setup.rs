//! `bufsize [SIZE]`: one integer 512–4096, default 1232. Every error is CoreDNS's argument
//! error (`Wrong argument count or unexpected line ending after '…'`).

use std::sync::Arc;

use super::{Bufsize, DEFAULT_SIZE, MAX_SIZE, MIN_SIZE};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{Occurrence, occurrence};
use crate::plugin::{Plugin, SetupCtx};

/// `bufsize [SIZE]`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    if matches!(occurrence(d, ctx.block, "bufsize"), Occurrence::Later) {
        // CoreDNS reads the block's first `bufsize` line and never looks at the others.
        return Ok(None);
    }
    d.next(); // bufsize
    let size = match d.remaining_args().as_slice() {
        [] => DEFAULT_SIZE,
        [s] => match s.parse::<i64>() {
            Ok(n) if (i64::from(MIN_SIZE)..=i64::from(MAX_SIZE)).contains(&n) => n as u16,
            _ => return Err(d.arg_err()),
        },
        _ => return Err(d.arg_err()),
    };
    ctx.config.bufsize = Some(size);
    Ok(Some(Arc::new(Bufsize::new(size))))
}
