//! The open connections of one stream listener (TCP or DoT), and the policy that keeps the
//! listener available under a connection flood (RFC 7766 §6.2.3: "a DNS server … should close
//! idle connections when under pressure").
//!
//! - **Shedding:** when the listener is at its cap, a new connection is admitted by closing the
//!   connection that has been idle longest (no query in flight, waiting for the next message, or
//!   still in its TLS handshake); failing that, the one that has been stuck longest in the middle
//!   of a message with no query in flight (a byte-at-a-time sender loses only its partial
//!   message). Only when every open connection owes replies is the newcomer closed.
//! - **Per source address:** one address may hold at most `per_source` connections; beyond that
//!   its own longest-idle connection makes room, or the newcomer is closed. One client cannot
//!   take the whole cap.
//! - **Adaptive idle timeout:** the idle timeout shrinks as the listener fills (full up to half
//!   the cap, then down to a tenth of it at the cap), as NSD and Knot shorten theirs.
//! - **Memory back after a flood:** once a listener that was more than half full is down to an
//!   eighth of its cap, freed heap pages are handed back to the system.
//! - **Out of file descriptors:** when `accept` fails for lack of descriptors, the longest-idle
//!   connection is closed so the next one can be accepted.
//!
//! Closing is a request: the connection stops reading, writes the replies it owes, and closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use tokio::sync::Notify;

use crate::plugin::config::StreamTimeouts;

/// `exdns_tcp_connections_shed_total{server,reason}`: idle connections closed to admit another.
static SHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "exdns_tcp_connections_shed_total",
        "Idle TCP/DoT connections closed to make room for new ones, by reason (cap, source, fd).",
        &["server", "reason"],
    )
});

/// `exdns_tcp_connections_refused_total{server,reason}`: connections closed at once on arrival.
static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "exdns_tcp_connections_refused_total",
        "New TCP/DoT connections closed unserved because every connection that could make room was busy, by reason (cap, source).",
        &["server", "reason"],
    )
});

/// Registers the connection metrics (so `/metrics` lists them before the first flood).
pub fn init_metrics() {
    LazyLock::force(&SHED);
    LazyLock::force(&REFUSED);
}

/// Limits for stream listeners.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// A connection with no query for this long is closed (RFC 7766 §6.2.3); shorter while the
    /// listener is more than half full.
    pub idle_timeout: Duration,
    /// Time allowed for a TLS handshake and for the rest of a message once its length arrived.
    pub read_timeout: Duration,
    /// Time allowed for writing replies: a client that stops reading is closed after it.
    pub write_timeout: Duration,
    /// Connections open at once per listener; beyond it the longest-idle one is closed to admit
    /// a new one (or the new one when every connection is busy).
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_source: usize,
    /// Queries in flight per connection; reading pauses beyond it.
    pub max_in_flight: usize,
    /// Queries served on one connection before it is closed (`timeouts { maxtcpqueries }`).
    pub max_queries: Option<usize>,
}

impl StreamLimits {
    /// These limits with what a listener's `timeouts` set.
    pub fn with(mut self, t: &StreamTimeouts) -> Self {
        self.read_timeout = t.read.unwrap_or(self.read_timeout);
        self.write_timeout = t.write.unwrap_or(self.write_timeout);
        self.idle_timeout = t.idle.unwrap_or(self.idle_timeout);
        self.max_queries = t.max_queries.or(self.max_queries);
        self
    }
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            idle_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_per_source: 128,
            max_in_flight: 128,
            max_queries: None,
        }
    }
}

/// One connection's state, shared by its task and the table.
pub struct ConnState {
    id: u64,
    ip: IpAddr,
    /// Waiting for the next message (or for its TLS handshake), not in the middle of one.
    waiting: AtomicBool,
    /// Queries read and not yet answered.
    queries: AtomicUsize,
    /// When it last became active (milliseconds since the table's epoch).
    active_at: AtomicU64,
    close: Notify,
}

impl ConnState {
    /// The connection waits for the next message from now on.
    pub fn wait(&self) {
        self.waiting.store(true, Ordering::Release);
    }

    /// A message began to arrive.
    pub fn active(&self, table: &ConnTable) {
        self.waiting.store(false, Ordering::Release);
        self.active_at.store(table.now_ms(), Ordering::Relaxed);
    }

    /// A query was read; [`ConnState::query_done`] when its reply is queued (or dropped).
    pub fn query_started(&self) {
        self.queries.fetch_add(1, Ordering::AcqRel);
    }

    pub fn query_done(&self) {
        self.queries.fetch_sub(1, Ordering::AcqRel);
    }

    /// Closing it loses no reply: no query in flight.
    pub fn owes_nothing(&self) -> bool {
        self.queries.load(Ordering::Acquire) == 0
    }

    /// Idle connections go before half-read ones, then the longest inactive first.
    fn shed_order(&self) -> (bool, u64, u64) {
        (
            !self.waiting.load(Ordering::Acquire),
            self.active_at.load(Ordering::Relaxed),
            self.id,
        )
    }

    /// Resolves when the table asks this connection to close.
    pub async fn closed(&self) {
        self.close.notified().await
    }
}

/// What [`ConnTable::admit`] decided.
pub enum Admit {
    /// Serve it; dropping the slot takes it off the table.
    Yes(Slot),
    /// Close it at once: every connection that could make room is busy.
    No,
}

/// A connection's place in the table.
pub struct Slot {
    table: Arc<ConnTable>,
    pub state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.remove(&self.state);
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Arc<ConnState>>,
    per_ip: HashMap<IpAddr, usize>,
    /// The listener was more than half full since it last gave memory back.
    flooded: bool,
}

/// The connections of one listener.
pub struct ConnTable {
    server: Arc<str>,
    /// The cap; a reload may change it ([`ConnTable::set_max`]).
    max: AtomicUsize,
    /// Connections from one address, at most the cap.
    per_source: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

impl ConnTable {
    /// A table for the listener labelled `server` (`dns://:53`), holding at most `max`
    /// connections, `per_source` of them from one address.
    pub fn new(server: Arc<str>, max: usize, per_source: usize) -> Arc<Self> {
        init_metrics();
        Arc::new(ConnTable {
            server,
            max: AtomicUsize::new(max.max(1)),
            per_source: per_source.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The cap now.
    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Changes the cap for the connections admitted from now on (a reload changed it): open
    /// connections beyond a lower cap stay until they close or are shed for a newcomer.
    pub fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Open connections right now.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a new connection from `ip`, closing idle ones to make room (see the module).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Admit {
        let mut inner = self.lock();
        let max = self.max();
        if inner.per_ip.get(&ip).copied().unwrap_or(0) >= self.per_source.min(max) {
            if !self.shed_locked(&mut inner, Some(ip), "source") {
                REFUSED.with_label_values(&[&self.server, "source"]).inc();
                return Admit::No;
            }
        } else if inner.conns.len() >= max && !self.shed_locked(&mut inner, None, "cap") {
            REFUSED.with_label_values(&[&self.server, "cap"]).inc();
            return Admit::No;
        }
        inner.next_id += 1;
        let state = Arc::new(ConnState {
            id: inner.next_id,
            ip,
            waiting: AtomicBool::new(true),
            queries: AtomicUsize::new(0),
            active_at: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        inner.conns.insert(state.id, state.clone());
        *inner.per_ip.entry(ip).or_insert(0) += 1;
        if inner.conns.len() > max / 2 {
            inner.flooded = true;
        }
        Admit::Yes(Slot {
            table: self.clone(),
            state,
        })
    }

    /// Closes the longest-idle connection (to free a file descriptor). False when every
    /// connection owes replies.
    pub fn shed_one(&self, reason: &str) -> bool {
        let mut inner = self.lock();
        self.shed_locked(&mut inner, None, reason)
    }

    /// Asks the longest-idle connection (of `ip`, if given) to close and takes it off the
    /// table at once, so its place is free now. False when every candidate owes replies.
    fn shed_locked(&self, inner: &mut Inner, ip: Option<IpAddr>, reason: &str) -> bool {
        let victim = inner
            .conns
            .values()
            .filter(|c| ip.is_none_or(|ip| c.ip == ip) && c.owes_nothing())
            .min_by_key(|c| c.shed_order())
            .cloned();
        let Some(victim) = victim else {
            return false;
        };
        Self::remove_locked(inner, &victim);
        victim.close.notify_one();
        SHED.with_label_values(&[&self.server, reason]).inc();
        true
    }

    fn remove(&self, state: &ConnState) {
        let mut inner = self.lock();
        Self::remove_locked(&mut inner, state);
        // A flood is over (an eighth of the cap left): give the closed connections' buffers
        // back to the system, a moment later, off the listener's tasks.
        if inner.flooded && inner.conns.len() <= self.max() / 8 {
            inner.flooded = false;
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(1));
                crate::mem::release_free_memory();
            });
        }
    }

    fn remove_locked(inner: &mut Inner, state: &ConnState) {
        if inner.conns.remove(&state.id).is_none() {
            return; // shed earlier
        }
        if let Some(n) = inner.per_ip.get_mut(&state.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&state.ip);
            }
        }
    }

    /// How long since `state` last became active.
    pub fn idle_for(&self, state: &ConnState) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(state.active_at.load(Ordering::Relaxed)),
        )
    }

    /// How long a connection may wait for its next message now: `idle` up to half the cap,
    /// then shrinking linearly to a tenth of it at the cap.
    pub fn idle_timeout(&self, idle: Duration) -> Duration {
        scaled_idle(idle, self.len(), self.max())
    }
}

/// Half the process's limit on open files (what Knot allows its TCP clients by default): the
/// cap of a listener never counts on more descriptors than the process may open.
pub fn fd_budget() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain system call filling a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return usize::MAX;
    }
    usize::try_from(rl.rlim_cur / 2).unwrap_or(usize::MAX)
}

/// The idle timeout for `open` connections of `max` (see [`ConnTable::idle_timeout`]).
fn scaled_idle(idle: Duration, open: usize, max: usize) -> Duration {
    let half = max / 2;
    if open <= half || max == 0 {
        return idle;
    }
    // From 1 at half the cap to 0.1 at the cap.
    let over = (open - half).min(max - half) as f64 / (max - half).max(1) as f64;
    idle.mul_f64(1.0 - 0.9 * over)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    fn yes(a: Admit) -> Slot {
        match a {
            Admit::Yes(s) => s,
            Admit::No => panic!("refused"),
        }
    }

    fn shed(server: &str, reason: &str) -> u64 {
        SHED.with_label_values(&[server, reason]).get()
    }

    fn refused(server: &str, reason: &str) -> u64 {
        REFUSED.with_label_values(&[server, reason]).get()
    }

    /// Every case: the table's state as a list of (source, idle), what a new connection from a
    /// source gets, and which connection (by index) was closed to make room.
    #[test]
    fn admission_sheds_the_longest_idle_connection() {
        struct Case {
            what: &'static str,
            open: &'static [(u8, bool)],
            from: u8,
            admitted: bool,
            closed: Option<usize>,
            reason: &'static str,
        }
        let cases = [
            Case {
                what: "room left: nothing closed",
                open: &[(1, true), (2, false)],
                from: 3,
                admitted: true,
                closed: None,
                reason: "",
            },
            Case {
                what: "at the cap: the oldest idle one goes",
                open: &[(1, false), (2, true), (3, true), (4, true)],
                from: 5,
                admitted: true,
                closed: Some(1),
                reason: "cap",
            },
            Case {
                what: "at the cap, all busy: refused",
                open: &[(1, false), (2, false), (3, false), (4, false)],
                from: 5,
                admitted: false,
                closed: None,
                reason: "cap",
            },
            Case {
                what: "source at its limit: its own oldest idle one goes, not another's",
                open: &[(1, true), (2, true), (2, true)],
                from: 2,
                admitted: true,
                closed: Some(1),
                reason: "source",
            },
            Case {
                what: "source at its limit, all busy: refused though the table has room",
                open: &[(1, true), (2, false), (2, false)],
                from: 2,
                admitted: false,
                closed: None,
                reason: "source",
            },
        ];
        for (n, c) in cases.iter().enumerate() {
            let server = format!("dns://:{}", 20000 + n);
            let table = ConnTable::new(Arc::from(server.as_str()), 4, 2);
            let slots: Vec<Slot> = c
                .open
                .iter()
                .map(|&(src, idle)| {
                    let s = yes(table.admit(ip(src)));
                    if !idle {
                        s.state.query_started();
                    }
                    s
                })
                .collect();
            let admitted = matches!(table.admit(ip(c.from)), Admit::Yes(_));
            assert_eq!(admitted, c.admitted, "{}", c.what);
            for (i, s) in slots.iter().enumerate() {
                let asked = s.state.close.notified();
                let mut asked = std::pin::pin!(asked);
                // A stored notification completes at once.
                let was_closed = futures::FutureExt::now_or_never(asked.as_mut()).is_some();
                assert_eq!(
                    was_closed,
                    c.closed == Some(i),
                    "{}: connection {i}",
                    c.what
                );
            }
            let (shed_n, refused_n) = match (c.closed, c.admitted) {
                (Some(_), _) => (1, 0),
                (None, false) => (0, 1),
                (None, true) => (0, 0),
            };
            if !c.reason.is_empty() {
                assert_eq!(shed(&server, c.reason), shed_n, "{}", c.what);
                assert_eq!(refused(&server, c.reason), refused_n, "{}", c.what);
            }
        }
    }

    /// A reload's new cap (`https { max_connections }`) counts for the next admissions, and
    /// the per-source limit follows it.
    #[test]
    fn the_cap_changes_for_new_connections() {
        let server = "https://:20101";
        let table = ConnTable::new(Arc::from(server), 2, 128);
        let _a = yes(table.admit(ip(1)));
        let _b = yes(table.admit(ip(1)));
        table.set_max(3);
        let _c = yes(table.admit(ip(1)));
        assert_eq!(table.len(), 3);
        assert_eq!(shed(server, "source") + shed(server, "cap"), 0);
        // Lower than what is open: nobody is closed until a newcomer needs a place.
        table.set_max(1);
        assert_eq!(table.len(), 3);
        let _d = yes(table.admit(ip(2)));
        assert_eq!(shed(server, "cap"), 1);
        let _e = yes(table.admit(ip(1)));
        assert_eq!(shed(server, "source"), 1);
    }

    #[test]
    fn slots_leave_the_table_once_and_shed_ones_free_their_place_at_once() {
        let table = ConnTable::new(Arc::from("dns://:20100"), 2, 2);
        let a = yes(table.admit(ip(1)));
        let b = yes(table.admit(ip(1)));
        assert_eq!(table.len(), 2);
        // `a` is older: shed for the newcomer, off the table before its task ends.
        let c = yes(table.admit(ip(1)));
        assert_eq!(table.len(), 2);
        drop(a); // its task ends later: no double removal
        assert_eq!(table.len(), 2);
        drop(b);
        drop(c);
        assert!(table.is_empty());
        assert!(table.lock().per_ip.is_empty());
        // A connection that became active again is no longer the oldest.
        let a = yes(table.admit(ip(1)));
        let b = yes(table.admit(ip(2)));
        a.state.active(&table);
        a.state.wait();
        std::thread::sleep(Duration::from_millis(2));
        b.state.active(&table);
        b.state.wait();
        assert!(table.shed_one("fd"));
        let mut b_closed = std::pin::pin!(b.state.close.notified());
        assert!(futures::FutureExt::now_or_never(b_closed.as_mut()).is_none());
        let mut a_closed = std::pin::pin!(a.state.close.notified());
        assert!(futures::FutureExt::now_or_never(a_closed.as_mut()).is_some());
        // A half-read connection goes only when no idle one is left; one that owes a reply never.
        let c = yes(table.admit(ip(3)));
        b.state.active(&table);
        assert!(table.shed_one("fd"));
        let mut c_closed = std::pin::pin!(c.state.close.notified());
        assert!(
            futures::FutureExt::now_or_never(c_closed.as_mut()).is_some(),
            "idle first"
        );
        assert!(table.shed_one("fd"));
        assert!(
            futures::FutureExt::now_or_never(b_closed.as_mut()).is_some(),
            "then half-read"
        );
        let d = yes(table.admit(ip(4)));
        d.state.active(&table);
        d.state.query_started();
        assert!(!table.shed_one("fd"), "a reply is owed");
        d.state.query_done();
        assert!(table.shed_one("fd"));
    }

    #[test]
    fn the_idle_timeout_shrinks_as_the_listener_fills() {
        let idle = Duration::from_secs(10);
        for (open, want_ms) in [
            (0, 10_000),
            (500, 10_000),
            (512, 10_000),
            (768, 5_500),
            (1000, 1_421),
            (1024, 1_000),
            (2000, 1_000),
        ] {
            assert_eq!(
                scaled_idle(idle, open, 1024).as_millis(),
                want_ms,
                "{open} open"
            );
        }
    }
}
