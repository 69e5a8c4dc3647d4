//! `health`: an HTTP endpoint answering `GET /health` with `200 OK` while the process runs.
//!
//! The directive adds no handler to the chain; its setup records the address and the lameduck
//! duration in the block's config and the server's [`crate::server::ops::Ops`] serves the
//! endpoint. Like CoreDNS, exdns probes its own `/health` once a second and exports how long that
//! took ([`HEALTH_DURATION`]) and how often it failed ([`HEALTH_FAILURES`]).

use std::sync::LazyLock;

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

/// Registers the health metrics (so `/metrics` lists them before the first probe).
pub fn init_metrics() {
    LazyLock::force(&HEALTH_DURATION);
    LazyLock::force(&HEALTH_FAILURES);
}
