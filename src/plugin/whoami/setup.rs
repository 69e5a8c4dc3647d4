//! `whoami` takes no arguments (a `{` block counts as one).

use std::sync::Arc;

use super::Whoami;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::{Plugin, SetupCtx};

/// `whoami`
pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // whoami
    if d.next_arg() {
        return Err(d.arg_err());
    }
    Ok(Some(Arc::new(Whoami)))
}
