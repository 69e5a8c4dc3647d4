//! `whoami` — placeholder until its implementation lands.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next();
    Err(d.err("not built yet"))
}
