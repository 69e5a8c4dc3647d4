//! Metrics of the cluster side (exdns's own; CoreDNS's k8s_gateway has none).

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntGaugeVec};

use crate::metrics::{gauge_vec, register, time_buckets};

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
