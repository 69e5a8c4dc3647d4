//! `local [{ localhost_prefix on|off }]`, with CoreDNS's errors. As CoreDNS, every `local` of a
//! block is read (the last `localhost_prefix` wins) into one handler.

use std::sync::Arc;

use super::Local;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{Occurrence, go_quote, occurrence};
use crate::plugin::{Plugin, SetupCtx};

/// `local [{ localhost_prefix on|off }]`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let mut l = Local::default();
    match occurrence(d, ctx.block, "local") {
        Occurrence::Later => return Ok(None),
        Occurrence::Alone => parse(d, &mut l)?,
        Occurrence::First(all) => {
            for dir in all {
                parse(&mut dir.dispenser(), &mut l)?;
            }
        }
    }
    Ok(Some(Arc::new(l)))
}

/// One `local` line and its block.
fn parse(d: &mut Dispenser, l: &mut Local) -> Result<(), ParseError> {
    d.next(); // local
    if !d.remaining_args().is_empty() {
        return Err(d.arg_err());
    }
    while d.next_block() {
        match d.val() {
            "localhost_prefix" => {
                let args = d.remaining_args();
                let [v] = args.as_slice() else {
                    return Err(d.arg_err());
                };
                l.localhost_prefix = match v.as_str() {
                    "on" => true,
                    "off" => false,
                    other => {
                        return Err(d.err(format!(
                            "localhost_prefix expects 'on' or 'off', got {}",
                            go_quote(other)
                        )));
                    }
                };
            }
            _ => return Err(d.unknown_property()),
        }
    }
    Ok(())
}
