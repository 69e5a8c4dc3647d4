//! Plain DNS to one upstream: UDP through a pool of connected sockets, TCP through the pipelined
//! [`StreamPool`](super::dot::StreamPool) (see `dot.rs`).
//!
//! A UDP exchange takes an idle socket (oldest first, as CoreDNS, for source-port diversity) or
//! opens one, sends the query with a fresh random ID and reads until a datagram with that ID
//! comes (others are stale replies and are dropped) or the read timeout ends. The socket goes
//! back to the pool only after a clean exchange; a socket that timed out or failed is closed.
//! Idle sockets older than `expire` and sockets opened before the pinned interface changed are
//! closed instead of reused.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::metrics::ConnCounters;
use super::pin::Pin;
use super::upstream::ExchangeError;
use crate::plugin::util::io_error_text;

/// Idle sockets kept per upstream at most.
const MAX_IDLE: usize = 256;

struct UdpConn {
    sock: UdpSocket,
    buf: Box<[u8]>,
    used: Instant,
    generation: u64,
}

/// The idle UDP sockets to one upstream.
pub struct UdpPool {
    addr: SocketAddr,
    pin: Arc<Pin>,
    expire: Duration,
    counters: ConnCounters,
    idle: Mutex<VecDeque<UdpConn>>,
    stopped: AtomicBool,
}

impl UdpPool {
    pub fn new(addr: SocketAddr, pin: Arc<Pin>, to: &str, expire: Duration) -> Self {
        UdpPool {
            addr,
            pin,
            expire,
            counters: ConnCounters::new(to, "udp"),
            idle: Mutex::new(VecDeque::new()),
            stopped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<UdpConn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idle sockets right now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    /// Closes every idle socket.
    pub fn close_all(&self) {
        let idle = std::mem::take(&mut *self.lock());
        drop(idle);
    }

    /// Closes everything for good.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.close_all();
    }

    fn take(&self) -> Option<UdpConn> {
        let generation = self.pin.generation();
        let mut idle = self.lock();
        while let Some(c) = idle.pop_front() {
            if c.generation == generation && c.used.elapsed() <= self.expire {
                return Some(c);
            }
        }
        None
    }

    fn put(&self, c: UdpConn) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut idle = self.lock();
        idle.push_back(c);
        if idle.len() > MAX_IDLE {
            idle.pop_front();
        }
    }

    async fn open(&self) -> Result<UdpConn, ExchangeError> {
        let generation = self.pin.generation();
        let sock = self.pin.udp(self.addr).await.map_err(|e| {
            ExchangeError::Dial(format!("dial udp {}: {}", self.addr, io_error_text(&e)))
        })?;
        Ok(UdpConn {
            sock,
            buf: vec![0u8; 65535].into_boxed_slice(),
            used: Instant::now(),
            generation,
        })
    }

    /// One exchange over UDP: `wire` (its first two bytes are overwritten with a fresh ID) out,
    /// the reply with that ID back within `timeout`.
    pub async fn exchange(
        &self,
        wire: &mut [u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ExchangeError> {
        let mut c = match self.take() {
            Some(c) => {
                self.counters.hits.inc();
                c
            }
            None => {
                self.counters.misses.inc();
                self.open().await?
            }
        };
        let id: u16 = rand::random();
        wire[..2].copy_from_slice(&id.to_be_bytes());
        let res = tokio::time::timeout(timeout, async {
            c.sock.send(wire).await?;
            loop {
                let n = c.sock.recv(&mut c.buf).await?;
                if super::reply_id_matches(&c.buf[..n], id) {
                    return Ok::<_, std::io::Error>(c.buf[..n].to_vec());
                }
            }
        })
        .await;
        match res {
            Ok(Ok(reply)) => {
                c.used = Instant::now();
                self.put(c);
                Ok(reply)
            }
            Ok(Err(e)) => Err(ExchangeError::Io(format!(
                "udp {}: {}",
                self.addr,
                io_error_text(&e)
            ))),
            Err(_) => Err(ExchangeError::Timeout),
        }
    }
}
