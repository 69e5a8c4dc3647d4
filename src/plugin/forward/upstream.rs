//! One upstream (CoreDNS's `proxy.Proxy`): its address, its transports, its health and its
//! per-upstream metrics.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use prometheus::Histogram;

use super::doh::DohClient;
use super::dot::{Connector, Limits, StreamPool};
use super::health::Health;
use super::metrics::{PROXY_NAME, REQUEST_DURATION};
use super::pin::{Pin, PinError};
use super::plain::UdpPool;
use crate::plugin::names::rcode_name;

/// Why an exchange with an upstream produced no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The pinned interface is unusable: fail the whole request, try nothing else.
    #[error("{0}")]
    Pin(#[from] PinError),
    /// The connection could not be opened (TCP connect, TLS handshake, socket setup).
    #[error("{0}")]
    Dial(String),
    #[error("i/o timeout")]
    Timeout,
    /// The connection closed before the reply came.
    #[error("connection closed by upstream")]
    Closed,
    #[error("{0}")]
    Io(String),
}

/// The transport of an exchange with a plain upstream (TLS upstreams always use TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A scripted upstream for tests: gets the query as sent (fresh ID in place) and whether TCP
/// was asked for, returns the reply bytes.
#[cfg(test)]
pub(crate) type FakeNet = Arc<
    dyn Fn(
            Vec<u8>,
            Transport,
        ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, ExchangeError>>
        + Send
        + Sync,
>;

pub(crate) enum Net {
    Plain {
        udp: UdpPool,
        tcp: StreamPool,
    },
    Tls(StreamPool),
    Https(DohClient),
    #[cfg(test)]
    Fake(FakeNet),
}

/// One upstream server.
pub struct Upstream {
    addr: SocketAddr,
    /// The `to` metric label: `IP:port`.
    to: Arc<str>,
    /// For TLS upstreams, the server name verified (and sent as SNI).
    tls_name: Option<String>,
    pin: Arc<Pin>,
    pub(crate) net: Net,
    pub(crate) health: Health,
    durations: [OnceLock<Histogram>; 24],
}

/// What an upstream is built from.
pub(crate) struct Options {
    pub expire: Duration,
    pub dial_timeout: Duration,
    pub limits: Limits,
}

impl Upstream {
    /// A plain DNS upstream (UDP and TCP).
    pub(crate) fn plain(addr: SocketAddr, pin: Arc<Pin>, o: &Options) -> Self {
        let to = addr.to_string();
        let udp = UdpPool::new(addr, pin.clone(), &to, o.expire);
        let tcp = StreamPool::new(
            addr,
            Connector::Tcp,
            pin.clone(),
            &to,
            o.expire,
            o.dial_timeout,
            o.limits,
        );
        Self::with_net(addr, None, pin, Net::Plain { udp, tcp })
    }

    /// A DNS-over-TLS upstream verifying `name`.
    pub(crate) fn tls(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        pin: Arc<Pin>,
        o: &Options,
    ) -> Self {
        let to = addr.to_string();
        let tls_name = name.to_str().into_owned();
        let pool = StreamPool::new(
            addr,
            Connector::Tls { config, name },
            pin.clone(),
            &to,
            o.expire,
            o.dial_timeout,
            o.limits,
        );
        Self::with_net(addr, Some(tls_name), pin, Net::Tls(pool))
    }

    /// A DNS-over-HTTPS upstream verifying `name`.
    pub(crate) fn https(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        method: super::doh::Method,
        pin: Arc<Pin>,
        o: &Options,
    ) -> Self {
        let tls_name = name.to_str().into_owned();
        let client = DohClient::new(
            addr,
            config,
            name,
            method,
            pin.clone(),
            o.expire,
            o.dial_timeout,
        );
        Self::with_net(addr, Some(tls_name), pin, Net::Https(client))
    }

    #[cfg(test)]
    pub(crate) fn fake(addr: SocketAddr, pin: Arc<Pin>, net: FakeNet) -> Self {
        Self::with_net(addr, None, pin, Net::Fake(net))
    }

    fn with_net(addr: SocketAddr, tls_name: Option<String>, pin: Arc<Pin>, net: Net) -> Self {
        Upstream {
            addr,
            to: Arc::from(addr.to_string()),
            tls_name,
            pin,
            net,
            health: Health::default(),
            durations: Default::default(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `IP:port`, as the `to` metric label.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// `tls://IP:port`, `https://IP:port` or `IP:port`, for logs.
    pub fn display(&self) -> String {
        match (&self.net, &self.tls_name) {
            (Net::Https(_), _) => format!("https://{}", self.addr),
            (_, Some(_)) => format!("tls://{}", self.addr),
            (_, None) => self.addr.to_string(),
        }
    }

    /// The TLS server name, for TLS and HTTPS upstreams.
    pub fn tls_name(&self) -> Option<&str> {
        self.tls_name.as_deref()
    }

    /// Over TLS: DoT or DoH (never plain UDP or TCP).
    pub fn is_tls(&self) -> bool {
        matches!(self.net, Net::Tls(_) | Net::Https(_))
    }

    /// Consecutive failed health checks.
    pub fn fails(&self) -> u32 {
        self.health.fails()
    }

    /// Down after `max_fails` consecutive failed health checks (never when 0).
    pub fn down(&self, max_fails: u32) -> bool {
        self.health.down(max_fails)
    }

    /// One exchange: the pinned interface is checked, `wire` goes out with a fresh ID (written
    /// into `wire`'s first two bytes for UDP; per connection for streams), the raw reply (still
    /// with the upstream ID) comes back. `deadline` bounds the whole exchange, `read_timeout`
    /// the wait for the reply.
    pub(crate) async fn exchange(
        &self,
        wire: &mut [u8],
        transport: Transport,
        deadline: tokio::time::Instant,
        read_timeout: Duration,
    ) -> Result<Vec<u8>, ExchangeError> {
        self.pin.check()?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(ExchangeError::Timeout);
        }
        match &self.net {
            Net::Plain { udp, tcp } => match transport {
                Transport::Udp => udp.exchange(wire, read_timeout.min(left)).await,
                Transport::Tcp => tcp.exchange(wire, deadline, read_timeout).await,
            },
            Net::Tls(pool) => pool.exchange(wire, deadline, read_timeout).await,
            Net::Https(client) => client.exchange(wire, deadline, read_timeout).await,
            #[cfg(test)]
            Net::Fake(f) => {
                let id: u16 = rand::random();
                wire[..2].copy_from_slice(&id.to_be_bytes());
                match tokio::time::timeout(read_timeout.min(left), f(wire.to_vec(), transport))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(ExchangeError::Timeout),
                }
            }
        }
    }

    /// Records the duration of an exchange that got a reply with `rcode`.
    pub(crate) fn observe(&self, rcode: ResponseCode, elapsed: Duration) {
        let code = u16::from(rcode) as usize;
        let h = match self.durations.get(code) {
            Some(slot) => slot.get_or_init(|| self.duration_histogram(rcode)),
            None => &self.duration_histogram(rcode),
        };
        h.observe(elapsed.as_secs_f64());
    }

    fn duration_histogram(&self, rcode: ResponseCode) -> Histogram {
        REQUEST_DURATION.with_label_values(&[PROXY_NAME, &self.to, &rcode_name(rcode)])
    }

    /// Closes every pooled connection and socket.
    pub fn close_all(&self) {
        match &self.net {
            Net::Plain { udp, tcp } => {
                udp.close_all();
                tcp.close_all();
            }
            Net::Tls(pool) => pool.close_all(),
            Net::Https(client) => client.close_all(),
            #[cfg(test)]
            Net::Fake(_) => {}
        }
    }

    /// Stops health checking and closes everything for good.
    pub fn stop(&self) {
        self.health.stop();
        match &self.net {
            Net::Plain { udp, tcp } => {
                udp.stop();
                tcp.stop();
            }
            Net::Tls(pool) => pool.stop(),
            Net::Https(client) => client.close_all(),
            #[cfg(test)]
            Net::Fake(_) => {}
        }
    }

    /// The stream pool (TLS, or TCP for plain upstreams), for tests and diagnostics.
    pub fn stream_pool(&self) -> Option<&StreamPool> {
        match &self.net {
            Net::Plain { tcp, .. } => Some(tcp),
            Net::Tls(pool) => Some(pool),
            Net::Https(_) => None,
            #[cfg(test)]
            Net::Fake(_) => None,
        }
    }

    /// The UDP pool of a plain upstream.
    pub fn udp_pool(&self) -> Option<&UdpPool> {
        match &self.net {
            Net::Plain { udp, .. } => Some(udp),
            _ => None,
        }
    }
}
