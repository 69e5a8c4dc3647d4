//! CoreDNS's cache metric families (plugin/cache/metrics.go): same names, help and labels.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec};

use crate::metrics::{counter_vec, gauge_vec};

/// `coredns_cache_entries{server,type,zones,view}`.
pub static ENTRIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "coredns_cache_entries",
        "The number of elements in the cache.",
        &["server", "type", "zones", "view"],
    )
});

/// `coredns_cache_requests_total{server,zones,view}`.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_cache_requests_total",
        "The count of cache requests.",
        &["server", "zones", "view"],
    )
});

/// `coredns_cache_hits_total{server,type,zones,view}`.
pub static HITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_cache_hits_total",
        "The count of cache hits.",
        &["server", "type", "zones", "view"],
    )
});

/// `coredns_cache_misses_total{server,zones,view}` (deprecated in CoreDNS, still exported).
pub static MISSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_cache_misses_total",
        "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
        &["server", "zones", "view"],
    )
});

/// `coredns_cache_prefetch_total{server,zones,view}`.
pub static PREFETCH: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_cache_prefetch_total",
        "The number of times the cache has prefetched a cached item.",
        &["server", "zones", "view"],
    )
});

/// `coredns_cache_drops_total{server,zones,view}`.
pub static DROPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_cache_drops_total",
        "The number responses that are not cached, because the reply is malformed.",
        &["server", "zones", "view"],
    )
});

/// `coredns_cache_served_stale_total{server,zones,view}`.
pub static SERVED_STALE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_cache_served_stale_total",
        "The number of requests served from stale cache entries.",
        &["server", "zones", "view"],
    )
});

/// `coredns_cache_evictions_total{server,type,zones,view}`.
pub static EVICTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_cache_evictions_total",
        "The count of cache evictions.",
        &["server", "type", "zones", "view"],
    )
});

/// Registers every family (CoreDNS registers them when the plugin is compiled in).
pub fn register() {
    LazyLock::force(&ENTRIES);
    LazyLock::force(&REQUESTS);
    LazyLock::force(&HITS);
    LazyLock::force(&MISSES);
    LazyLock::force(&PREFETCH);
    LazyLock::force(&DROPS);
    LazyLock::force(&SERVED_STALE);
    LazyLock::force(&EVICTIONS);
}
