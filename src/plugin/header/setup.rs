//! `header { SELECTOR ACTION FLAGS... }`, with CoreDNS's errors (each prefixed, as there,
//! `setting up rule: `).

use std::sync::Arc;

use super::{Flag, Header, Rule};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{Occurrence, occurrence};
use crate::plugin::{Plugin, SetupCtx};

/// `header { query|response set|clear FLAGS... }`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    if matches!(occurrence(d, ctx.block, "header"), Occurrence::Later) {
        // CoreDNS uses the block's first `header` with rules and never looks at the others.
        return Ok(None);
    }
    d.next(); // header
    let mut h = Header::default();
    while d.next_block() {
        let selector = d.val().to_lowercase();
        if selector != "query" && selector != "response" {
            return Err(d.err(format!(
                "setting up rule: invalid selector={selector} should be query or response"
            )));
        }
        let action = if d.next_arg() {
            d.val().to_string()
        } else {
            String::new()
        };
        let args = d.remaining_args();
        let rules = rules(&action, &args).map_err(|e| d.err(format!("setting up rule: {e}")))?;
        if selector == "response" {
            h.response.extend(rules);
        } else {
            h.query.extend(rules);
        }
    }
    if h.query.is_empty() && h.response.is_empty() {
        // CoreDNS reads on to the directive's last token before its argument error (`header {}`
        // is one token: "after '{}'").
        while d.next() {}
        return Err(d.arg_err());
    }
    Ok(Some(Arc::new(h)))
}

/// CoreDNS's `newRules`: the rules of one line.
fn rules(action: &str, flags: &[String]) -> Result<Vec<Rule>, String> {
    if action.is_empty() {
        return Err("no flag action provided".into());
    }
    if flags.is_empty() {
        return Err("invalid length for flags, at least one should be provided".into());
    }
    let action = action.to_lowercase();
    let state = match action.as_str() {
        "set" => true,
        "clear" => false,
        _ => {
            return Err(format!(
                "unknown flag action={action}, should be set or clear"
            ));
        }
    };
    flags
        .iter()
        .map(|f| {
            let f = f.to_lowercase();
            Flag::from_name(&f)
                .map(|flag| Rule { flag, state })
                .ok_or_else(|| format!("unknown/unsupported flag={f}"))
        })
        .collect()
}
