//! `loop` (folder `loop_detect`): detects a forwarding loop at startup. Once the listeners are
//! up it sends `<random>.<random>.<zone> HINFO` to its own server over UDP, retrying for up to
//! 30 seconds until one exchange completes. If the query comes back through this plugin more
//! than twice before that, the server is forwarding to itself: the loop is logged as CoreDNS
//! logs it and the process exits with status 1. After the first completed exchange (or the 30
//! seconds) the plugin disables itself, so later queries cannot trigger it.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

use crate::dns::request::{Outcome, Request};
use crate::plugin::util::TaskSlot;
use crate::plugin::zones::in_zone;
use crate::plugin::{Next, Plugin, StartupCtx};

pub const NAME: &str = "loop";

/// What to do once a loop is detected; gets the message (without the `plugin/loop: ` prefix).
pub type LoopAction = Arc<dyn Fn(&str) + Send + Sync>;

/// Logs the loop and exits the process with status 1 (CoreDNS's `log.Fatalf`).
pub fn exit_on_loop(msg: &str) {
    // Straight to stderr: the log writer is a background thread that exit() would not flush.
    eprintln!("[FATAL] plugin/loop: {msg}");
    std::process::exit(1);
}

/// Timing of the startup probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    /// Give up (and disable the plugin) after this long.
    pub deadline: Duration,
    /// Timeout of one exchange.
    pub timeout: Duration,
    /// Pause after a failed exchange.
    pub retry: Duration,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            deadline: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            retry: Duration::from_secs(1),
        }
    }
}

struct Shared {
    zone: String,
    qname: String,
    seen: AtomicU32,
    off: AtomicBool,
    /// The probed listener as CoreDNS prints it (`:53` for a wildcard address).
    addr: Mutex<String>,
}

/// The `loop` handler.
pub struct Loop {
    shared: Arc<Shared>,
    on_loop: LoopAction,
    timing: ProbeTiming,
    task: TaskSlot,
}

impl std::fmt::Debug for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("zone", &self.shared.zone)
            .field("qname", &self.shared.qname)
            .field("timing", &self.timing)
            .finish()
    }
}

impl Loop {
    /// A detector for `zone` (lower-case, absolute) with a fresh random probe name.
    pub fn new(zone: &str) -> Self {
        Loop {
            shared: Arc::new(Shared {
                zone: zone.to_string(),
                qname: probe_name(zone),
                seen: AtomicU32::new(0),
                off: AtomicBool::new(false),
                addr: Mutex::new(String::new()),
            }),
            on_loop: Arc::new(exit_on_loop),
            timing: ProbeTiming::default(),
            task: TaskSlot::default(),
        }
    }

    /// Replaces the exit-the-process action (for tests).
    pub fn with_action(mut self, action: LoopAction) -> Self {
        self.on_loop = action;
        self
    }

    pub fn with_timing(mut self, timing: ProbeTiming) -> Self {
        self.timing = timing;
        self
    }

    pub fn zone(&self) -> &str {
        &self.shared.zone
    }

    /// The probe query name, `<random>.<random>.<zone>`.
    pub fn qname(&self) -> &str {
        &self.shared.qname
    }

    /// Times the probe query came through.
    pub fn seen(&self) -> u32 {
        self.shared.seen.load(Ordering::SeqCst)
    }

    /// Whether the plugin stopped watching (probe answered, or gave up).
    pub fn disabled(&self) -> bool {
        self.shared.off.load(Ordering::SeqCst)
    }

    /// The fatal message, CoreDNS's wording.
    fn message(&self, remote: SocketAddr) -> String {
        let addr = self
            .shared
            .addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        format!(
            "Loop ({remote} -> {addr}) detected for zone {:?}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
            self.shared.zone, self.shared.qname
        )
    }
}

/// `<n1>.<n2>.<zone>` with two random non-negative 63-bit numbers (Go's `rand.Int()`).
pub fn probe_name(zone: &str) -> String {
    let l1 = rand::random::<u64>() >> 1;
    let l2 = rand::random::<u64>() >> 1;
    if zone == "." {
        format!("{l1}.{l2}.")
    } else {
        format!("{l1}.{l2}.{zone}")
    }
}

#[async_trait]
impl Plugin for Loop {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        if req.qtype() != RecordType::HINFO || self.disabled() {
            return next.serve(req).await;
        }
        if !in_zone(&req.name, &self.shared.zone) {
            return next.serve(req).await;
        }
        if req.name == self.shared.qname {
            self.shared.seen.fetch_add(1, Ordering::SeqCst);
        }
        if self.seen() > 2 {
            (self.on_loop)(&self.message(req.src));
        }
        next.serve(req).await
    }

    async fn on_startup(&self, ctx: &StartupCtx) -> Result<(), String> {
        let Some(&listen) = ctx.dns_addrs.first() else {
            // No plain-DNS listener to probe.
            self.shared.off.store(true, Ordering::SeqCst);
            return Ok(());
        };
        let (target, shown) = probe_target(listen);
        *self.shared.addr.lock().unwrap_or_else(|e| e.into_inner()) = shown;
        let shared = self.shared.clone();
        let timing = self.timing;
        let task = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timing.deadline;
            while tokio::time::Instant::now() < deadline {
                match exchange(target, &shared.qname, timing.timeout).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!("plugin/loop: probe of {target} failed: {e}");
                        shared.seen.store(0, Ordering::SeqCst);
                        tokio::time::sleep(timing.retry).await;
                    }
                }
            }
            shared.off.store(true, Ordering::SeqCst);
        });
        self.task.set(task);
        Ok(())
    }

    fn on_shutdown(&self) {
        self.task.stop();
    }
}

/// Where to send the probe for a listener, and how CoreDNS prints the listener: a wildcard
/// address is probed on the loopback of its family and shown as `:PORT`.
pub fn probe_target(listen: SocketAddr) -> (SocketAddr, String) {
    if listen.ip().is_unspecified() {
        let lo = match listen.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        (
            SocketAddr::new(lo, listen.port()),
            format!(":{}", listen.port()),
        )
    } else {
        (listen, listen.to_string())
    }
}

/// One UDP exchange of `qname HINFO` (RD set) with `target`: any reply with our ID completes it.
pub async fn exchange(
    target: SocketAddr,
    qname: &str,
    timeout: Duration,
) -> Result<Message, String> {
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let name = Name::from_ascii(qname).map_err(|e| e.to_string())?;
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(name, RecordType::HINFO));
    let id = q.metadata.id;
    let wire = q.to_vec().map_err(|e| e.to_string())?;
    let exchange = async {
        let sock = UdpSocket::bind(bind).await?;
        sock.connect(target).await?;
        sock.send(&wire).await?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock.recv(&mut buf).await?;
            if let Ok(m) = Message::from_vec(&buf[..n])
                && m.metadata.id == id
            {
                return Ok::<_, std::io::Error>(m);
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("i/o timeout".to_string()),
    }
}
