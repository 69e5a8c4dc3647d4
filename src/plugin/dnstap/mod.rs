//! `dnstap`: structured logs of client queries and responses (dnstap.info) sent to a dnstap
//! collector over a unix or TCP socket, as CoreDNS's *dnstap* plugin.
//!
//! The query path only hands a small [`Record`] to a bounded queue (10,000 × `queue` records);
//! when it is full the record is dropped and counted (`exdns_dnstap_dropped_total`, and a
//! warning every 10 s as CoreDNS logs). A task per tap encodes records into dnstap protobuf
//! messages in Frame Streams data frames (bidirectional handshake, content type
//! `protobuf:dnstap.Dnstap`) and writes them; while the collector is unreachable it drops what
//! comes and dials again with a backoff. With `full` the records carry the DNS messages in
//! wire form. The fast path is tapped too: a fast answer is logged as its query and response.

mod encode;
mod io;
mod setup;

pub use setup::setup;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::dns::request::{Outcome, Proto, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::plugin::{FastNext, Next, Plugin, StartupCtx};
pub use encode::Record;

pub const NAME: &str = "dnstap";

/// Records queued per `queue` unit, as CoreDNS.
pub const QUEUE_UNIT: usize = 10_000;

/// Where a tap writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(String),
    /// `host:port`.
    Tcp(String),
}

/// What `dnstap` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub full: bool,
    /// TCP send buffer, in MiB.
    pub write_buffer: usize,
    /// Queue length, in units of [`QUEUE_UNIT`].
    pub queue: usize,
    pub identity: Vec<u8>,
    pub version: Vec<u8>,
    pub extra: Option<Vec<u8>>,
}

/// One `dnstap` line: a handler and the writer task it starts.
pub struct Dnstap {
    settings: Arc<Settings>,
    tx: mpsc::Sender<Record>,
    rx: Mutex<Option<mpsc::Receiver<Record>>>,
    dropped: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

/// `exdns_dnstap_dropped_total`: records dropped (queue full, or no collector connected).
pub(crate) static DROPPED: std::sync::LazyLock<prometheus::IntCounter> =
    std::sync::LazyLock::new(|| {
        crate::metrics::counter(
            "exdns_dnstap_dropped_total",
            "dnstap messages dropped: the queue was full or the collector was not connected.",
        )
    });

impl Dnstap {
    pub fn new(settings: Settings) -> Self {
        // Registered at once: the counter shows 0 rather than nothing until a first drop.
        std::sync::LazyLock::force(&DROPPED);
        let (tx, rx) = mpsc::channel(settings.queue.max(1) * QUEUE_UNIT);
        Dnstap {
            settings: Arc::new(settings),
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: Arc::new(AtomicU64::new(0)),
            stop: watch::channel(false).0,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Queues `r`, or drops and counts it when the queue is full. Never waits.
    fn tap(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            DROPPED.inc();
        }
    }

    fn record(&self, proto: Proto, client: SocketAddr, qt: SystemTime) -> Record {
        Record {
            response: false,
            tcp: proto.is_stream(),
            client,
            query_time: qt,
            response_time: None,
            wire: None,
        }
    }
}

/// The reply the server sends for `out`, in wire form (without the cookie the server adds),
/// for `full`.
fn response_wire(req: &Request, out: &Outcome) -> Option<Box<[u8]>> {
    match out {
        Outcome::Wire { bytes, .. } => Some(Box::from(&bytes[..])),
        Outcome::Transfer { .. } | Outcome::Drop { .. } => None,
        other => {
            let m = other.to_message(req)?;
            Some(crate::dns::reply::encode_reply(req, m).into_boxed_slice())
        }
    }
}

#[async_trait]
impl Plugin for Dnstap {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let qt = SystemTime::now();
        let full = self.settings.full;
        // The query is logged before the rest of the chain runs, as CoreDNS.
        let mut q = self.record(req.proto, req.src, qt);
        if full {
            q.wire = req.msg.to_vec().ok().map(Vec::into_boxed_slice);
        }
        self.tap(q);
        let out = next.serve(req).await;
        // Nothing is written back for a dropped query, nor logged (CoreDNS taps in WriteMsg).
        if !matches!(out, Outcome::Drop { .. }) {
            let mut r = self.record(req.proto, req.src, qt);
            r.response = true;
            r.response_time = Some(SystemTime::now());
            if full {
                r.wire = response_wire(req, &out);
            }
            self.tap(r);
        }
        out
    }

    /// Transparent: a fast answer is logged as its query and its response.
    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        let qt = SystemTime::now();
        let reply = next.fast(q)?;
        let full = self.settings.full;
        let mut query = self.record(q.proto, q.src, qt);
        if full {
            query.wire = Some(Box::from(q.buf));
        }
        self.tap(query);
        let mut r = self.record(q.proto, q.src, qt);
        r.response = true;
        r.response_time = Some(SystemTime::now());
        if full {
            r.wire = Some(Box::from(&reply.bytes[..]));
        }
        self.tap(r);
        Some(reply)
    }

    async fn on_startup(&self, _ctx: &StartupCtx) -> Result<(), String> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(io::run(
                self.settings.clone(),
                rx,
                self.dropped.clone(),
                self.stop.subscribe(),
            ));
        }
        Ok(())
    }

    fn on_shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests;
