//! `health`: an HTTP endpoint answering `GET /health` with `200 OK` while the process runs.
//!
//! The directive adds no handler to the chain; its setup registers the endpoint
//! ([`crate::plugin::http`]) and records the lameduck duration in the block's config. Like
//! CoreDNS, exdns probes its own `/health` once a second and exports how long that took
//! ([`HEALTH_DURATION`]) and how often it failed ([`HEALTH_FAILURES`]).

use std::sync::LazyLock;
use std::time::Duration;

use crate::plugin::http::{HttpHandler, HttpResponse, ServerState, TEXT_PLAIN};

use prometheus::{Histogram, HistogramOpts, IntCounter};

mod setup;

pub use setup::setup;

/// Where `health` listens when no address is given.
pub const DEFAULT_ADDR: &str = ":8080";

/// CoreDNS's `plugin.SlimTimeBuckets`: 0.25 ms to 2.5 s, ×10.
fn slim_time_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.00025, 10.0, 5).expect("valid buckets")
}

/// `coredns_health_request_duration_seconds`: how long the self-probe of `/health` took.
pub static HEALTH_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    crate::metrics::register(
        Histogram::with_opts(
            HistogramOpts::new(
                "coredns_health_request_duration_seconds",
                "Histogram of the time (in seconds) each request took.",
            )
            .buckets(slim_time_buckets()),
        )
        .expect("valid metric"),
    )
});

/// `coredns_health_request_failures_total`: self-probes of `/health` that failed.
pub static HEALTH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    crate::metrics::counter(
        "coredns_health_request_failures_total",
        "The number of times the health check failed.",
    )
});

/// A self-probe slower than this is logged (as CoreDNS does).
const PROBE_SLOW: Duration = Duration::from_secs(1);

/// `/health`: `200 OK` while the process runs (lameduck included, as CoreDNS).
pub struct Health;

impl Health {
    /// The handler, with its metrics registered (so `/metrics` lists them before the first probe).
    pub fn new() -> Self {
        LazyLock::force(&HEALTH_DURATION);
        LazyLock::force(&HEALTH_FAILURES);
        Health
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpHandler for Health {
    fn respond(&self, _server: &dyn ServerState) -> HttpResponse {
        HttpResponse::new(200, TEXT_PLAIN, "OK")
    }

    fn self_probe(&self) -> bool {
        true
    }

    /// Any HTTP answer counts as success; connection errors and timeouts are failures.
    fn probed(&self, url: &str, elapsed: Duration, result: Result<(), String>) {
        HEALTH_DURATION.observe(elapsed.as_secs_f64());
        match result {
            Ok(()) if elapsed > PROBE_SLOW => {
                tracing::warn!("Local health request to {url:?} took more than 1s: {elapsed:?}");
            }
            Ok(()) => {}
            Err(e) => {
                HEALTH_FAILURES.inc();
                tracing::warn!("Local health request to {url:?} failed: {e}");
            }
        }
    }
}
