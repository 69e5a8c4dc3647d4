//! Health checking as CoreDNS does it (plugin/pkg/proxy/health.go, plugin/pkg/up): an upstream
//! exchange that fails starts a probe loop for that upstream, unless one runs already. The loop
//! sends `NAME IN NS` (`.` unless `health_check ... domain NAME`; RD set unless `no_rec`) over
//! the upstream's own transport (UDP, TCP with `force_tcp`, TLS for `tls://`), through the
//! upstream's pinned sockets. Any reply is healthy; only errors and timeouts fail. A failed
//! probe counts one more consecutive failure (and
//! `coredns_proxy_healthcheck_failures_total`) and the loop tries again after the interval; a
//! healthy one resets the count to 0 and ends the loop. The upstream is down while its count
//! is at least `max_fails` (0: never down, no probing). A probe that cannot be sent because the
//! pinned interface is down does not count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::metrics::{HEALTHCHECK_FAILURES, PROXY_NAME};
use super::upstream::{ExchangeError, Transport, Upstream};

/// The probe loop never spins faster than this (a `health_check 0` would otherwise).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The health state of one upstream.
#[derive(Debug)]
pub struct Health {
    fails: AtomicU32,
    probing: AtomicBool,
    /// `true` once stopped; the probe loop watches it.
    stop: tokio::sync::watch::Sender<bool>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            fails: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            stop: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Health {
    /// Consecutive failed probes.
    pub fn fails(&self) -> u32 {
        self.fails.load(Ordering::Acquire)
    }

    /// Down when `fails >= max_fails`; never when `max_fails` is 0.
    pub fn down(&self, max_fails: u32) -> bool {
        max_fails != 0 && self.fails() >= max_fails
    }

    /// Records a probe result.
    pub fn record(&self, healthy: bool) {
        if healthy {
            self.fails.store(0, Ordering::Release);
        } else {
            let _ = self
                .fails
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                    Some(f.saturating_add(1))
                });
        }
    }

    /// Whether a probe loop runs.
    pub fn probing(&self) -> bool {
        self.probing.load(Ordering::Acquire)
    }

    /// Stops the probe loop for good.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// How upstreams are probed.
#[derive(Debug, Clone)]
pub struct Checker {
    /// The probe query on the wire (ID 0; replaced per exchange).
    query: Vec<u8>,
    pub interval: Duration,
    /// How long a probe waits for its reply.
    pub timeout: Duration,
    /// The transport of probes to plain upstreams.
    pub transport: Transport,
}

impl Checker {
    pub fn new(
        domain: &str,
        recursion_desired: bool,
        interval: Duration,
        timeout: Duration,
        transport: Transport,
    ) -> Self {
        Checker {
            query: probe_query(domain, recursion_desired),
            interval,
            timeout,
            transport,
        }
    }

    /// The probe message: `DOMAIN IN NS`, RD as configured, no EDNS.
    pub fn query(&self) -> &[u8] {
        &self.query
    }

    /// One probe of `up`.
    pub async fn check(&self, up: &Upstream) -> Result<(), ExchangeError> {
        let mut wire = self.query.clone();
        let deadline = tokio::time::Instant::now() + self.timeout;
        up.exchange(&mut wire, self.transport, deadline, self.timeout)
            .await
            .map(|_| ())
    }
}

/// `DOMAIN IN NS` with RD as given, encoded.
pub fn probe_query(domain: &str, recursion_desired: bool) -> Vec<u8> {
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = recursion_desired;
    let name = Name::from_ascii(domain).unwrap_or_else(|_| Name::root());
    m.add_query(Query::query(name, RecordType::NS));
    m.to_vec().unwrap_or_default()
}

/// Starts the probe loop of `up` unless one runs (CoreDNS's `Proxy.Healthcheck`).
pub fn start(up: &Arc<Upstream>, checker: &Arc<Checker>) {
    let h = &up.health;
    if h.stopped() || h.probing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (up2, checker) = (up.clone(), checker.clone());
    let mut stop = h.stop.subscribe();
    tokio::spawn(async move {
        let failures = HEALTHCHECK_FAILURES.with_label_values(&[PROXY_NAME, up2.to()]);
        loop {
            let result = tokio::select! {
                r = checker.check(&up2) => r,
                _ = stop.wait_for(|s| *s) => break,
            };
            match result {
                Ok(()) => {
                    up2.health.record(true);
                    break;
                }
                // The pinned interface is down: not the upstream's fault, nothing was sent;
                // keep probing until the interface is back.
                Err(ExchangeError::Pin(_)) => {}
                Err(e) => {
                    tracing::debug!("health check of {} failed: {e}", up2.display());
                    failures.inc();
                    up2.health.record(false);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(checker.interval.max(MIN_INTERVAL)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        up2.health.probing.store(false, Ordering::Release);
    });
}
