//! `loadbalance [round_robin]`. CoreDNS's `weighted` policy is rejected (not supported).

use std::sync::Arc;

use super::LoadBalance;
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::{Plugin, SetupCtx};

/// `loadbalance [round_robin]`
pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // loadbalance
    let args = d.remaining_args();
    if let Some(policy) = args.first() {
        match policy.as_str() {
            "round_robin" => {
                if args.len() > 1 {
                    return Err(d.err("unknown property for round_robin"));
                }
            }
            "weighted" => {
                return Err(d.err(
                    "policy 'weighted' is not supported by exdns; use 'round_robin' (the default)",
                ));
            }
            other => return Err(d.err(format!("unknown policy: {other}"))),
        }
    }
    if d.next_block() {
        return Err(d.unknown_property());
    }
    Ok(Some(Arc::new(LoadBalance)))
}
