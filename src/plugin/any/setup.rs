//! `any` takes no arguments and no block.

use std::sync::Arc;

use super::Any;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::{Plugin, SetupCtx};

/// `any`
pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // any
    if d.next_arg() {
        return Err(d.arg_err());
    }
    Ok(Some(Arc::new(Any)))
}
