//! `view NAME { expr EXPRESSION }`: split horizon, as CoreDNS's *view*. Server blocks sharing a
//! zone and port are tried top to bottom for each query; the first whose view's expressions are
//! all true (or that has no view) serves it. When none of a zone's blocks takes the query, the
//! next shorter zone is tried, as CoreDNS's server does, then REFUSED.
//!
//! The expressions are compiled once at setup ([`expr`]); the listener evaluates them while
//! routing, on the fast path too. The plugin itself only passes queries on (CoreDNS's handler
//! does the same); it is in the chain so `coredns_plugin_enabled` lists it.

pub mod expr;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;

use crate::corefile::{Dispenser, ParseError};
use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::plugin::{FastNext, Next, Plugin, SetupCtx};

pub use expr::{Facts, Program};

pub const NAME: &str = "view";

/// A block's view: its name (the `view` metric label) and its expressions.
#[derive(Debug)]
pub struct View {
    pub name: Arc<str>,
    pub progs: Vec<Program>,
}

impl View {
    /// Every expression is true for the query (CoreDNS's `Filter`; no expression: true).
    pub fn filter(&self, q: &Facts<'_>) -> bool {
        self.progs.iter().all(|p| p.matches(q))
    }
}

/// The chain's `view` handler: passes every query on; other plugins of the block take its name
/// for their metrics' `view` label.
pub struct ViewPlugin {
    pub name: Arc<str>,
}

#[async_trait]
impl Plugin for ViewPlugin {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        next.serve(req).await
    }

    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        next.fast(q)
    }

    fn view_name(&self) -> Option<&Arc<str>> {
        Some(&self.name)
    }
}

/// `view NAME { expr EXPRESSION ... }`
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let view = parse(d)?;
    let name = view.name.clone();
    ctx.config.view = Some(Arc::new(view));
    Ok(Some(Arc::new(ViewPlugin { name })))
}

pub fn parse(d: &mut Dispenser) -> Result<View, ParseError> {
    d.next(); // view
    let args = d.remaining_args();
    if args.len() != 1 {
        return Err(d.arg_err());
    }
    let mut view = View {
        name: Arc::from(args[0].as_str()),
        progs: Vec::new(),
    };
    while d.next_block() {
        match d.val() {
            "expr" => {
                let args = d.remaining_args();
                let src = args.join(" ");
                let prog = Program::compile(&src).map_err(|e| d.err(e))?;
                view.progs.push(prog);
            }
            _ => return Err(d.unknown_property()),
        }
    }
    Ok(view)
}
