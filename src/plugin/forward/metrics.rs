//! CoreDNS's forward/proxy metric families (plugin/pkg/proxy/metrics.go and
//! plugin/forward/metrics.go): same names, help and labels. `proxy_name` is always `forward`.

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounter, IntCounterVec};

use crate::metrics::{counter, counter_vec, histogram_vec, time_buckets};

/// The `proxy_name` label value.
pub const PROXY_NAME: &str = "forward";

/// `coredns_proxy_request_duration_seconds{proxy_name,to,rcode}`: one observation per upstream
/// exchange that got a reply.
pub static REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "coredns_proxy_request_duration_seconds",
        "Histogram of the time each request took.",
        &["proxy_name", "to", "rcode"],
        time_buckets(),
    )
});

/// `coredns_proxy_healthcheck_failures_total{proxy_name,to}`.
pub static HEALTHCHECK_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_proxy_healthcheck_failures_total",
        "Counter of the number of failed healthchecks.",
        &["proxy_name", "to"],
    )
});

/// `coredns_proxy_conn_cache_hits_total{proxy_name,to,proto}`: an exchange used an open
/// connection (or a pooled UDP socket). `proto` is `udp`, `tcp` or `tcp-tls`.
pub static CONN_CACHE_HITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_proxy_conn_cache_hits_total",
        "Counter of connection cache hits per upstream and protocol.",
        &["proxy_name", "to", "proto"],
    )
});

/// `coredns_proxy_conn_cache_misses_total{proxy_name,to,proto}`: an exchange had to open a
/// connection (or socket) first.
pub static CONN_CACHE_MISSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_proxy_conn_cache_misses_total",
        "Counter of connection cache misses per upstream and protocol.",
        &["proxy_name", "to", "proto"],
    )
});

/// `coredns_forward_healthcheck_broken_total`: every upstream was down for a query.
pub static HEALTHCHECK_BROKEN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "coredns_forward_healthcheck_broken_total",
        "Counter of the number of complete failures of the healthchecks.",
    )
});

/// `coredns_forward_max_concurrent_rejects_total`: queries refused over `max_concurrent`.
pub static MAX_CONCURRENT_REJECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "coredns_forward_max_concurrent_rejects_total",
        "Counter of the number of queries rejected because the concurrent queries were at maximum.",
    )
});

/// Registers every family (CoreDNS registers them when the plugin is compiled in).
pub fn register() {
    LazyLock::force(&REQUEST_DURATION);
    LazyLock::force(&HEALTHCHECK_FAILURES);
    LazyLock::force(&CONN_CACHE_HITS);
    LazyLock::force(&CONN_CACHE_MISSES);
    LazyLock::force(&HEALTHCHECK_BROKEN);
    LazyLock::force(&MAX_CONCURRENT_REJECTS);
}

/// The connection-cache counters of one upstream and protocol, resolved once.
#[derive(Clone)]
pub(crate) struct ConnCounters {
    pub hits: IntCounter,
    pub misses: IntCounter,
}

impl ConnCounters {
    pub fn new(to: &str, proto: &str) -> Self {
        ConnCounters {
            hits: CONN_CACHE_HITS.with_label_values(&[PROXY_NAME, to, proto]),
            misses: CONN_CACHE_MISSES.with_label_values(&[PROXY_NAME, to, proto]),
        }
    }
}
