//! `prometheus [ADDR]`.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::http::HttpEndpoint;
use crate::plugin::util::listen_addr_arg;
use crate::plugin::{Plugin, SetupCtx};

use super::{DEFAULT_ADDR, Metrics, Prometheus};

/// Registers `/metrics` and returns the counting handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "prometheus"
    let addr = listen_addr_arg(d, DEFAULT_ADDR)?;
    if d.next_block() {
        return Err(match d.val() {
            "tls" => d.err("the tls block of prometheus is not supported by exdns"),
            other => d.err(format!("unknown option: {other}")),
        });
    }
    crate::metrics::init();
    ctx.config
        .serve_http(HttpEndpoint::new(addr, Some("/metrics"), Arc::new(Metrics)));
    Ok(Some(Arc::new(Prometheus::default())))
}
