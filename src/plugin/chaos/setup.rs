//! `chaos [VERSION] [AUTHORS...]`, parsed as CoreDNS parses it: no argument gives the default
//! version and authors; one gives VERSION and the default authors; more give VERSION and the
//! AUTHORS de-duplicated and sorted (by their first 255 bytes, which is all a TXT string holds;
//! the handler cuts every string to that).

use std::sync::Arc;

use super::{Chaos, default_authors, default_version, trim};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{Occurrence, occurrence};
use crate::plugin::{Plugin, SetupCtx};

/// `chaos [VERSION] [AUTHORS...]`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    if matches!(occurrence(d, ctx.block, "chaos"), Occurrence::Later) {
        // CoreDNS reads the block's first `chaos` line and never looks at the others.
        return Ok(None);
    }
    d.next(); // chaos
    let args = d.remaining_args();
    let (version, authors) = match args.as_slice() {
        [] => (default_version(), default_authors()),
        [v] => (v.clone(), default_authors()),
        [v, rest @ ..] => {
            let mut list: Vec<String> = rest.to_vec();
            list.sort();
            list.dedup();
            list.sort_by(|a, b| trim(a).cmp(trim(b)));
            (v.clone(), list)
        }
    };
    if d.next_block() {
        return Err(d.unknown_property());
    }
    Ok(Some(Arc::new(Chaos { version, authors })))
}
