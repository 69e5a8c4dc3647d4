//! `loop` takes no arguments; it watches the block's first zone.

use std::sync::Arc;

use super::Loop;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(Some(Arc::new(parse(d, ctx)?)))
}

/// Parses one `loop` occurrence.
pub fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<Loop, ParseError> {
    d.next(); // loop
    if d.next_arg() {
        return Err(d.arg_err());
    }
    let zone = ctx
        .zones()
        .into_iter()
        .next()
        .unwrap_or_else(|| ".".to_string());
    Ok(Loop::new(&zone))
}
