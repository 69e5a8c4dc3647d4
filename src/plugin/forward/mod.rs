//! `forward FROM TO... { ... }` — proxies queries to upstream resolvers over UDP, TCP or DNS over
//! TLS, with CoreDNS 1.14's semantics: FROM/except matching, the random, round_robin and
//! sequential policies, in-band health checking, `max_concurrent`, `failover`, `next`,
//! `failfast_all_unhealthy_upstreams`, and the proxy/forward metrics.
//!
//! Differences that matter (see docs/plugins/forward.md):
//! - Stream connections (TLS and TCP) are pipelined: many queries in flight per connection,
//!   replies matched by ID in any order (`dot.rs`); CoreDNS sends one query at a time per
//!   connection.
//! - `source_address IP` and `interface NAME` pin every upstream socket (`pin.rs`); when the
//!   interface is down or missing the query fails at once with SERVFAIL (fail closed).
//!
//! Module map: `setup.rs` (Corefile parsing), `upstream.rs` (one upstream: transports, health,
//! metrics), `dot.rs` (pipelined TLS/TCP client and pool), `plain.rs` (UDP socket pool),
//! `health.rs` (probe loop), `policy.rs`, `pin.rs`, `metrics.rs`.

pub mod doh;
pub mod dot;
pub mod health;
pub mod metrics;
pub mod pin;
pub mod plain;
pub mod policy;
pub mod setup;
pub mod upstream;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::ResponseCode;

use crate::dns::request::{Outcome, Proto, Request};
use crate::dns::wire::{self, Layout};
use crate::plugin::names::type_name;
use crate::plugin::zones::in_zone;
use crate::plugin::{Next, Plugin};

pub use dot::Limits;
pub use pin::{LinkState, Pin, PinError};
pub use policy::{MAX_UPSTREAMS, Policy};
pub use setup::setup;
pub use upstream::{ExchangeError, Transport, Upstream};

use health::Checker;
use upstream::Options;

pub const NAME: &str = "forward";

/// CoreDNS's whole-request deadline.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Default `expire`.
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(10);
/// Default `health_check` interval.
pub const DEFAULT_HC_INTERVAL: Duration = Duration::from_millis(500);
/// Default `read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// One upstream as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub addr: SocketAddr,
    /// `tls://`.
    pub tls: bool,
    /// `https://` (DNS over HTTPS; `tls` is false).
    pub https: bool,
    /// The TLS server name (`tls_servername` or `%NAME`); `None` for a TLS upstream means its
    /// IP address is the name (verified against the certificate's IP SANs, no SNI sent).
    pub server_name: Option<String>,
}

impl UpstreamSpec {
    /// The name a TLS upstream verifies: the server name, else the IP address.
    pub fn verify_name(&self) -> String {
        self.server_name
            .clone()
            .unwrap_or_else(|| self.addr.ip().to_string())
    }
}

/// The `tls [CERT KEY] [CA]` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsArgs {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca: Option<String>,
}

/// A parsed `forward` directive.
#[derive(Debug, Clone)]
pub struct Config {
    /// The zone queries must be in (normalised: `example.org.`).
    pub from: String,
    /// `except`: names under these zones go to the next plugin.
    pub ignored: Vec<String>,
    pub upstreams: Vec<UpstreamSpec>,
    pub force_tcp: bool,
    pub prefer_udp: bool,
    pub expire: Duration,
    pub max_fails: u32,
    pub hc_interval: Duration,
    pub hc_recursion_desired: bool,
    pub hc_domain: String,
    pub policy: Policy,
    pub tls: Option<TlsArgs>,
    pub tls_servername: Option<String>,
    /// 0: no limit.
    pub max_concurrent: i64,
    pub failfast_all_unhealthy_upstreams: bool,
    /// `next`: rcodes (numeric) that pass the query to the next forward instance.
    pub next_rcodes: Vec<u16>,
    /// `failover`: rcodes (numeric) that make the next upstream be tried.
    pub failover_rcodes: Vec<u16>,
    pub read_timeout: Duration,
    pub source_address: Option<IpAddr>,
    pub interface: Option<String>,
    /// The TLS client config shared by the TLS upstreams (built by the setup).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Stream pool sizing.
    pub limits: Limits,
    /// `doh_method GET|POST` for `https://` upstreams.
    pub doh_method: doh::Method,
}

impl Config {
    /// CoreDNS's defaults for `forward FROM` with no upstreams yet.
    pub fn new(from: &str) -> Self {
        Config {
            from: from.to_string(),
            ignored: Vec::new(),
            upstreams: Vec::new(),
            force_tcp: false,
            prefer_udp: false,
            expire: DEFAULT_EXPIRE,
            max_fails: 2,
            hc_interval: DEFAULT_HC_INTERVAL,
            hc_recursion_desired: true,
            hc_domain: ".".to_string(),
            policy: Policy::Random,
            tls: None,
            tls_servername: None,
            max_concurrent: 0,
            failfast_all_unhealthy_upstreams: false,
            next_rcodes: Vec::new(),
            failover_rcodes: Vec::new(),
            read_timeout: DEFAULT_READ_TIMEOUT,
            source_address: None,
            interface: None,
            tls_config: None,
            limits: Limits::default(),
            doh_method: doh::Method::Post,
        }
    }
}

/// The `forward` handler.
pub struct Forward {
    cfg: Config,
    upstreams: Vec<Arc<Upstream>>,
    pin: Arc<Pin>,
    checker: Arc<Checker>,
    robin: AtomicU32,
    concurrent: AtomicI64,
    last_error_log: AtomicU64,
}

impl Forward {
    /// Builds the handler and its upstreams. TLS upstreams need `cfg.tls_config`.
    pub fn new(cfg: Config) -> Result<Self, String> {
        let pin = Arc::new(Pin::new(cfg.source_address, cfg.interface.clone()));
        let opts = Options {
            expire: cfg.expire,
            // A dial (TCP connect and TLS handshake) gets what a reply gets: a stalled handshake
            // must not hold the queries waiting for it much longer than an unanswered query.
            dial_timeout: cfg.read_timeout.min(DEADLINE),
            limits: cfg.limits,
        };
        let mut upstreams = Vec::with_capacity(cfg.upstreams.len());
        for spec in &cfg.upstreams {
            let up = if spec.https {
                let config = cfg
                    .tls_config
                    .clone()
                    .ok_or_else(|| format!("no TLS config for https://{}", spec.addr))?;
                let name = rustls::pki_types::ServerName::try_from(spec.verify_name())
                    .map_err(|_| format!("invalid TLS server name '{}'", spec.verify_name()))?;
                Upstream::https(spec.addr, config, name, cfg.doh_method, pin.clone(), &opts)
            } else if spec.tls {
                let config = cfg
                    .tls_config
                    .clone()
                    .ok_or_else(|| format!("no TLS config for tls://{}", spec.addr))?;
                let name = rustls::pki_types::ServerName::try_from(spec.verify_name())
                    .map_err(|_| format!("invalid TLS server name '{}'", spec.verify_name()))?;
                Upstream::tls(spec.addr, config, name, pin.clone(), &opts)
            } else {
                Upstream::plain(spec.addr, pin.clone(), &opts)
            };
            upstreams.push(Arc::new(up));
        }
        Ok(Self::with_upstreams(cfg, upstreams, pin))
    }

    pub(crate) fn with_upstreams(
        cfg: Config,
        upstreams: Vec<Arc<Upstream>>,
        pin: Arc<Pin>,
    ) -> Self {
        let transport = if cfg.force_tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let checker = Arc::new(Checker::new(
            &cfg.hc_domain,
            cfg.hc_recursion_desired,
            cfg.hc_interval,
            cfg.read_timeout,
            transport,
        ));
        Forward {
            cfg,
            upstreams,
            pin,
            checker,
            robin: AtomicU32::new(0),
            concurrent: AtomicI64::new(0),
            last_error_log: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The socket pinning of this instance.
    pub fn pin(&self) -> &Pin {
        &self.pin
    }

    /// Readiness for the pod-IP endpoint: true when this instance cannot forward at all — its
    /// pinned interface is down or missing (checked now), or every upstream is marked down by
    /// health checking (never when `max_fails` is 0).
    pub fn all_upstreams_down(&self) -> bool {
        if self.pin.interface().is_some() && self.pin.check().is_err() {
            return true;
        }
        self.cfg.max_fails != 0
            && !self.upstreams.is_empty()
            && self.upstreams.iter().all(|u| u.down(self.cfg.max_fails))
    }

    /// Whether a query for `name` (lower-case, absolute) is this instance's: under FROM and,
    /// unless it is FROM itself, not under an `except` zone.
    pub fn matches(&self, name: &str) -> bool {
        if !in_zone(name, &self.cfg.from) {
            return false;
        }
        name == self.cfg.from || !self.cfg.ignored.iter().any(|z| in_zone(name, z))
    }

    /// The transport to a plain upstream for a query that came over `proto`.
    fn transport_for(&self, proto: Proto) -> Transport {
        if self.cfg.force_tcp {
            Transport::Tcp
        } else if self.cfg.prefer_udp {
            Transport::Udp
        } else if proto.is_stream() {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    /// Closes every pooled connection of every upstream.
    fn close_all(&self) {
        for u in &self.upstreams {
            u.close_all();
        }
    }

    /// Logs why a query got SERVFAIL, at most once a second.
    fn log_failure(&self, req: &Request, why: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_error_log.load(Ordering::Relaxed);
        if now > last
            && self
                .last_error_log
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("{} {}: {why}", req.name, type_name(req.qtype()));
        }
    }

    /// Forwards `req` to the upstreams (CoreDNS's `Forward.ServeDNS` loop).
    async fn forward(&self, req: &Request, next: Next<'_>) -> Outcome {
        let mut wire = match upstream_query(req).to_vec() {
            Ok(w) if w.len() >= 12 => w,
            _ => return Outcome::code(ResponseCode::ServFail, NAME),
        };
        let n = self.upstreams.len();
        if n == 0 {
            return Outcome::code(ResponseCode::ServFail, NAME);
        }
        let order = policy::order(self.cfg.policy, n, &self.robin);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let client_transport = self.transport_for(req.proto);
        let max_fails = self.cfg.max_fails;
        let (mut i, mut fails, mut attempts, mut failed_over) = (0usize, 0usize, 0usize, 0usize);
        let mut last_err: Option<String> = None;
        let mut last_failover: Option<UpstreamReply> = None;

        while tokio::time::Instant::now() < deadline && attempts < 2 * n {
            if i >= n {
                i = 0;
                fails = 0;
            }
            let mut up = &self.upstreams[order.get(i)];
            i += 1;
            if up.down(max_fails) {
                fails += 1;
                if fails < n {
                    continue;
                }
                metrics::HEALTHCHECK_BROKEN.inc();
                if self.cfg.failfast_all_unhealthy_upstreams {
                    last_err = Some("no healthy upstreams".to_string());
                    break;
                }
                up = &self.upstreams[policy::random_one(n)];
            }
            attempts += 1;

            let start = tokio::time::Instant::now();
            let mut transport = client_transport;
            let result = loop {
                let r = up
                    .exchange(&mut wire, transport, deadline, self.cfg.read_timeout)
                    .await;
                if let Ok(buf) = &r
                    && transport == Transport::Udp
                    && self.cfg.prefer_udp
                    && !up.is_tls()
                    && buf.len() > 2
                    && buf[2] & 0x02 != 0
                {
                    // Truncated with prefer_udp: ask again over TCP.
                    transport = Transport::Tcp;
                    continue;
                }
                break r;
            };
            let reply = result.and_then(UpstreamReply::parse);
            let reply = match reply {
                Ok(m) => m,
                Err(ExchangeError::Pin(_)) => {
                    // Fail closed: nothing is tried elsewhere. Pin::check logged it
                    // (rate-limited).
                    self.close_all();
                    return Outcome::code(ResponseCode::ServFail, NAME);
                }
                Err(e) => {
                    tracing::debug!("{}: {e}", up.display());
                    if max_fails != 0 {
                        health::start(up, &self.checker);
                    }
                    last_err = Some(format!("{}: {e}", up.display()));
                    if fails < n {
                        continue;
                    }
                    break;
                }
            };
            up.observe(reply.rcode, start.elapsed());

            if !reply.answers(req) {
                tracing::debug!(
                    "wrong reply from {} for {} {}",
                    up.display(),
                    req.name,
                    type_name(req.qtype())
                );
                return Outcome::reply(req.reply_code(ResponseCode::FormErr), NAME);
            }

            let rcode = u16::from(reply.rcode);
            if self.cfg.failover_rcodes.contains(&rcode) && failed_over + 1 < n {
                // Try the next upstream; once every upstream gave a failover rcode, the last
                // reply is returned.
                failed_over += 1;
                fails += 1;
                last_failover = Some(reply);
                continue;
            }
            if self.cfg.next_rcodes.contains(&rcode)
                && next.plugins().first().is_some_and(|p| p.name() == NAME)
            {
                return next.serve(req).await;
            }

            return reply.relay(req);
        }

        if let Some(reply) = last_failover {
            return reply.relay(req);
        }
        let why = last_err.unwrap_or_else(|| "no healthy upstreams".to_string());
        self.log_failure(req, &why);
        Outcome::code(ResponseCode::ServFail, NAME)
    }
}

/// An upstream's raw reply, checked in place (its ID was already matched by the transport: see
/// [`reply_id_matches`]). It is relayed as it came — rcode, flags, every section and the OPT
/// record's options — with only the client's ID and OPT parameters put in (`wire::finalize`);
/// nothing is decoded.
#[derive(Debug)]
pub struct UpstreamReply {
    pub bytes: Vec<u8>,
    pub layout: Layout,
    /// The full response code (with the OPT record's extended bits).
    pub rcode: ResponseCode,
}

impl UpstreamReply {
    /// Checks the reply's structure ([`wire::scan`]): a malformed reply counts as a failed
    /// exchange.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, ExchangeError> {
        let layout = wire::scan(&bytes)
            .ok_or_else(|| ExchangeError::Io("bad reply: malformed message".to_string()))?;
        let rcode = wire::rcode(&bytes, &layout);
        Ok(UpstreamReply {
            bytes,
            layout,
            rcode,
        })
    }

    /// CoreDNS's `request.Match`: a response whose one question is `req`'s name (any case) and
    /// type. When it is not, the client gets FORMERR, as from CoreDNS.
    pub fn answers(&self, req: &Request) -> bool {
        wire::is_reply_to(&self.bytes, &self.layout, req)
    }

    /// The reply for the client: the upstream's bytes with the client's ID and OPT parameters.
    pub fn relay(self, req: &Request) -> Outcome {
        wire::finalize_or_decode(req, self.bytes, &self.layout, self.rcode, NAME)
    }
}

/// Whether `buf` can be the reply to a query sent with ID `id`: a full header with that ID.
/// Datagrams that fail this are stale or spoofed and are skipped.
pub fn reply_id_matches(buf: &[u8], id: u16) -> bool {
    buf.len() >= 12 && buf[..2] == id.to_be_bytes()
}

/// Counts a query against `max_concurrent` while alive.
struct Admitted<'a>(&'a AtomicI64);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl Plugin for Forward {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        if !self.matches(&req.name) {
            return next.serve(req).await;
        }
        let _admitted = if self.cfg.max_concurrent > 0 {
            let count = self.concurrent.fetch_add(1, Ordering::AcqRel) + 1;
            let guard = Admitted(&self.concurrent);
            if count > self.cfg.max_concurrent {
                metrics::MAX_CONCURRENT_REJECTS.inc();
                return Outcome::code(ResponseCode::Refused, NAME);
            }
            Some(guard)
        } else {
            None
        };
        self.forward(req, next).await
    }

    fn upstreams_healthy(&self) -> Option<bool> {
        Some(!self.all_upstreams_down())
    }

    fn on_shutdown(&self) {
        for u in &self.upstreams {
            u.stop();
        }
    }
}

/// The query as sent upstream: the client's, less its DNS cookie (cookies are between one client
/// and one server: the upstream's cookie would be for exdns's address, and the server writes the
/// client its own).
fn upstream_query(req: &Request) -> std::borrow::Cow<'_, hickory_proto::op::Message> {
    let has_cookie = req.msg.edns.as_ref().is_some_and(|e| {
        e.options()
            .as_ref()
            .iter()
            .any(|(code, _)| *code == hickory_proto::rr::rdata::opt::EdnsCode::Cookie)
    });
    if !has_cookie {
        return std::borrow::Cow::Borrowed(&req.msg);
    }
    let mut msg = req.msg.clone();
    if let Some(e) = msg.edns.as_mut() {
        e.options_mut()
            .remove(hickory_proto::rr::rdata::opt::EdnsCode::Cookie);
    }
    std::borrow::Cow::Owned(msg)
}
