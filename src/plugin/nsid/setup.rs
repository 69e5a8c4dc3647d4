//! `nsid [DATA]`: DATA's words joined by single spaces; the host's name when there is none.

use std::sync::Arc;

use super::Nsid;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::hostname;
use crate::plugin::{Plugin, SetupCtx};

/// `nsid [DATA]`
pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // nsid
    let args = d.remaining_args();
    let data = if args.is_empty() {
        hostname()
    } else {
        args.join(" ")
    };
    if d.next_arg() {
        // CoreDNS's setup loops over its tokens and takes the `{` for a second `nsid`.
        return Err(d.err("this plugin can only be used once per Server Block"));
    }
    Ok(Some(Arc::new(Nsid::new(data))))
}
