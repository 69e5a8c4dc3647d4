//! Metrics of the cluster side (`exdns_k8s_gateway_*`): the index builder and the API-server
//! source. CoreDNS's k8s_gateway has none; these are exdns additions.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec};

use crate::metrics::{counter_vec, gauge_vec, register, time_buckets};

/// `exdns_k8s_gateway_index_build_seconds`: how long one snapshot build took.
pub static INDEX_BUILD_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "exdns_k8s_gateway_index_build_seconds",
                "Time (in seconds) each k8s_gateway index build took.",
            )
            .buckets(time_buckets()),
        )
        .expect("valid metric"),
    )
});

/// `exdns_k8s_gateway_index_names{kind}`: names (exact and wildcard) in the latest snapshot.
pub static INDEX_NAMES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "exdns_k8s_gateway_index_names",
        "Number of names in the k8s_gateway index per resource kind.",
        &["kind"],
    )
});

/// `exdns_k8s_gateway_watch_errors_total{kind,reason}`: failed discovery, list and watch calls.
/// `reason` is one of `forbidden`, `unauthorized`, `not_found`, `expired` (410, a re-list
/// follows), `api_error` (any other API status), `unreachable`, `decode`, `other`.
pub static WATCH_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "exdns_k8s_gateway_watch_errors_total",
        "Errors from Kubernetes API discovery, list and watch calls, per object kind and reason.",
        &["kind", "reason"],
    )
});

/// `exdns_k8s_gateway_events_total{kind,type}`: watch events received; `type` is `apply`
/// (added or modified), `delete`, or `list` (a complete initial list or re-list).
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "exdns_k8s_gateway_events_total",
        "Kubernetes watch events received, per object kind and type.",
        &["kind", "type"],
    )
});

/// `exdns_k8s_gateway_kind_served{kind}`: 1 while the API server serves the kind's API, 0 when
/// it does not (CRD not installed); absent until the first discovery answer.
pub static KIND_SERVED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "exdns_k8s_gateway_kind_served",
        "Whether the Kubernetes API server serves the API of an object kind (1) or not (0).",
        &["kind"],
    )
});

/// Registers the families (so `/metrics` lists them before the first event).
pub fn init() {
    LazyLock::force(&WATCH_ERRORS);
    LazyLock::force(&EVENTS);
    LazyLock::force(&KIND_SERVED);
}
