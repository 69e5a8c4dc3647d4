//! One process-wide Prometheus registry with CoreDNS's metric names and labels, so existing
//! dashboards and alerts keep working. Plugins register their own families here too.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// The registry `/metrics` exposes.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// CoreDNS's `plugin.TimeBuckets`: 0.25 ms to 8 s, doubling.
pub fn time_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.00025, 2.0, 16).expect("valid buckets")
}

/// CoreDNS's size buckets for request/response size histograms.
pub fn size_buckets() -> Vec<f64> {
    vec![
        0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3,
        64e3,
    ]
}

/// Registers `c` in [`REGISTRY`] and returns it (panics only on a programming error: a name
/// registered twice with different labels).
pub fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

pub fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"))
}

pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

pub fn float_gauge_vec(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

pub fn float_gauge(name: &str, help: &str) -> Gauge {
    register(Gauge::with_opts(Opts::new(name, help)).expect("valid metric"))
}

pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    register(
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid metric"),
    )
}

/// `coredns_dns_requests_total{server,zone,view,proto,family,type}`.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_dns_requests_total",
        "Counter of DNS requests made per zone, protocol and family.",
        &["server", "zone", "view", "proto", "family", "type"],
    )
});

/// `coredns_dns_request_duration_seconds{server,zone,view}`.
pub static REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "coredns_dns_request_duration_seconds",
        "Histogram of the time (in seconds) each request took per zone.",
        &["server", "zone", "view"],
        time_buckets(),
    )
});

/// `coredns_dns_request_size_bytes{server,zone,view,proto}`.
pub static REQUEST_SIZE: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "coredns_dns_request_size_bytes",
        "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
        &["server", "zone", "view", "proto"],
        size_buckets(),
    )
});

/// `coredns_dns_response_size_bytes{server,zone,view,proto}`.
pub static RESPONSE_SIZE: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "coredns_dns_response_size_bytes",
        "Size of the returned response in bytes.",
        &["server", "zone", "view", "proto"],
        size_buckets(),
    )
});

/// `coredns_dns_responses_total{server,zone,view,rcode,plugin}`.
pub static RESPONSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_dns_responses_total",
        "Counter of response status codes.",
        &["server", "zone", "view", "rcode", "plugin"],
    )
});

/// `coredns_dns_https_responses_total{server,status}`: DoH replies by HTTP status.
pub static HTTPS_RESPONSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_dns_https_responses_total",
        "Counter of DoH responses per server and http status code.",
        &["server", "status"],
    )
});

/// `coredns_dns_https3_responses_total{server,status}`: DoH3 replies by HTTP status.
pub static HTTPS3_RESPONSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "coredns_dns_https3_responses_total",
        "Counter of DoH3 responses per server and http status code.",
        &["server", "status"],
    )
});

/// `coredns_panics_total`.
pub static PANICS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "coredns_panics_total",
        "A metrics that counts the number of panics.",
    )
});

/// `coredns_build_info{version,revision,goversion}` (goversion carries the Rust version).
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "coredns_build_info",
        "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
        &["version", "revision", "goversion"],
    )
});

/// `coredns_plugin_enabled{server,zone,view,name}`.
pub static PLUGIN_ENABLED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "coredns_plugin_enabled",
        "A metric that monitors which plugin(s) is(are) enabled.",
        &["server", "zone", "view", "name"],
    )
});

/// Sets `coredns_plugin_enabled{server,zone,view,name}` to 1 for each handler of a server block
/// (the `view` label empty: exdns has no views; CoreDNS does it at startup for every listen address of a block that uses `prometheus`).
pub fn record_plugins_enabled(server: &str, zone: &str, names: &[&str]) {
    for name in names {
        PLUGIN_ENABLED
            .with_label_values(&[server, zone, "", name])
            .set(1);
    }
}

/// Clears `coredns_plugin_enabled` (CoreDNS resets it on every reload, before the new config
/// records its plugins).
pub fn reset_plugins_enabled() {
    PLUGIN_ENABLED.reset();
}

/// `coredns_reload_failed_total`.
pub static RELOAD_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "coredns_reload_failed_total",
        "Counter of the number of failed reload attempts.",
    )
});

/// `coredns_reload_version_info{hash,value}`.
pub static RELOAD_VERSION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "coredns_reload_version_info",
        "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
        &["hash", "value"],
    )
});

/// Forces registration of the core families (so `/metrics` lists them before the first query).
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&REQUEST_DURATION);
    LazyLock::force(&REQUEST_SIZE);
    LazyLock::force(&RESPONSE_SIZE);
    LazyLock::force(&RESPONSES);
    LazyLock::force(&PANICS);
    LazyLock::force(&PLUGIN_ENABLED);
    LazyLock::force(&RELOAD_FAILED);
    LazyLock::force(&RELOAD_VERSION);
    BUILD_INFO
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            option_env!("EXDNS_REVISION").unwrap_or(""),
            "rust",
        ])
        .set(1);
}

/// The text exposition of every registered metric.
pub fn gather_text() -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut buf)
        .expect("text encoding");
    String::from_utf8(buf).unwrap_or_default()
}

/// The `family` label: 1 for IPv4, 2 for IPv6.
pub fn family(addr: &std::net::SocketAddr) -> &'static str {
    if addr.is_ipv4() { "1" } else { "2" }
}
