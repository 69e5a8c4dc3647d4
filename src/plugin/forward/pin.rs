//! Socket pinning (exdns extensions `source_address IP` and `interface NAME`): every upstream
//! socket, UDP and TCP, is bound to the source address and/or to the network interface
//! (`SO_BINDTODEVICE`), so upstream traffic can only leave through that interface.
//!
//! Before each upstream attempt the interface is checked (one `SIOCGIFFLAGS` and one
//! `SIOCGIFINDEX` ioctl on a socket kept for that purpose): missing, administratively down or
//! without carrier (`IFF_UP` and `IFF_RUNNING` both required) → the attempt fails at once, fail
//! closed. Every change of the interface (down, gone, re-created with a new index) bumps a
//! generation number; pooled connections opened under an older generation are never reused.
//!
//! Binding a socket to a device needs `CAP_NET_RAW` on kernels before 5.7.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::plugin::util::io_error_text;

/// How often "interface is down" is logged again while it stays down.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why an upstream socket may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("interface {0} is down; not forwarding (fail closed)")]
    Down(String),
    #[error("interface {0} does not exist; not forwarding (fail closed)")]
    Missing(String),
    #[error("interface {0}: {1}; not forwarding (fail closed)")]
    Other(String, String),
}

impl PinError {
    /// 1: down, 2: missing, 3: other.
    fn kind(&self) -> u8 {
        match self {
            PinError::Down(_) => 1,
            PinError::Missing(_) => 2,
            PinError::Other(..) => 3,
        }
    }
}

/// The state of a network interface as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Up and running, with its interface index.
    Up(i32),
    /// Present but not `IFF_UP` or not `IFF_RUNNING` (no carrier).
    Down,
    /// No interface of that name.
    Missing,
}

/// Where upstream sockets are pinned.
#[derive(Debug)]
pub struct Pin {
    source: Option<IpAddr>,
    interface: Option<String>,
    /// The socket the ioctls are made on (created on first use, in the caller's network
    /// namespace).
    ctl: OnceLock<OwnedFd>,
    generation: AtomicU64,
    /// The interface index last seen up (-1: none yet).
    index: AtomicI32,
    down: AtomicBool,
    last_log: AtomicU64,
    /// Why the last check failed (see [`PinError::kind`]); 0 after a successful one.
    last_reason: AtomicU8,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

impl Pin {
    pub fn new(source: Option<IpAddr>, interface: Option<String>) -> Self {
        Pin {
            source,
            interface,
            ctl: OnceLock::new(),
            generation: AtomicU64::new(0),
            index: AtomicI32::new(-1),
            down: AtomicBool::new(false),
            last_log: AtomicU64::new(0),
            last_reason: AtomicU8::new(0),
        }
    }

    /// No pinning at all.
    pub fn none() -> Self {
        Pin::new(None, None)
    }

    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }

    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// Bumped at every change of the pinned interface; connections opened under an older
    /// generation are dropped.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the last check found the interface unusable.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Checks that the pinned interface (if any) exists and is up; logs (rate-limited) when it
    /// is not and once when it comes back.
    pub fn check(&self) -> Result<(), PinError> {
        let Some(name) = &self.interface else {
            return Ok(());
        };
        let state = self.link_state(name);
        match state {
            Ok(LinkState::Up(index)) => {
                let old = self.index.swap(index, Ordering::AcqRel);
                let was_down = self.down.swap(false, Ordering::AcqRel);
                self.last_reason.store(0, Ordering::Release);
                if old != index || was_down {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                if was_down {
                    tracing::info!("interface {name} is up; forwarding resumed");
                }
                Ok(())
            }
            other => {
                let err = match other {
                    Ok(LinkState::Missing) => PinError::Missing(name.clone()),
                    Ok(_) => PinError::Down(name.clone()),
                    Err(e) => PinError::Other(name.clone(), io_error_text(&e)),
                };
                let was_down = self.down.swap(true, Ordering::AcqRel);
                if !was_down {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                // A new reason (down → missing, ...) is logged at once.
                let changed = self.last_reason.swap(err.kind(), Ordering::AcqRel) != err.kind();
                let now = now_ms();
                let last = self.last_log.load(Ordering::Relaxed);
                let due = !was_down
                    || changed
                    || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
                if due
                    && self
                        .last_log
                        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::error!("{err}");
                }
                Err(err)
            }
        }
    }

    fn link_state(&self, name: &str) -> io::Result<LinkState> {
        let fd = match self.ctl.get() {
            Some(fd) => fd,
            None => {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
                let _ = self.ctl.set(OwnedFd::from(s));
                self.ctl
                    .get()
                    .ok_or_else(|| io::Error::other("no control socket"))?
            }
        };
        link_state_on(fd.as_raw_fd(), name)
    }

    /// A UDP socket connected to `peer`, pinned.
    pub async fn udp(&self, peer: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
        let s = Socket::new(Domain::for_address(peer), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_nonblocking(true)?;
        self.apply(&s, peer)?;
        let sock = tokio::net::UdpSocket::from_std(s.into())?;
        sock.connect(peer).await?;
        Ok(sock)
    }

    /// A TCP connection to `peer`, pinned, with Nagle off.
    pub async fn tcp(&self, peer: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let s = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        self.apply(&s, peer)?;
        let std: std::net::TcpStream = s.into();
        let sock = tokio::net::TcpSocket::from_std_stream(std);
        sock.connect(peer).await
    }

    /// Binds `s` to the interface and the source address.
    fn apply(&self, s: &Socket, peer: SocketAddr) -> io::Result<()> {
        if let Some(name) = &self.interface {
            s.bind_device(Some(name.as_bytes())).map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EPERM) {
                    " (binding to an interface needs CAP_NET_RAW)"
                } else {
                    ""
                };
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind to interface {name}: {}{hint}",
                        io_error_text(&e)
                    ),
                )
            })?;
        }
        if let Some(src) = self.source {
            if src.is_ipv4() != peer.is_ipv4() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("source address {src} and upstream {peer} are of different families"),
                ));
            }
            s.bind(&SockAddr::from(SocketAddr::new(src, 0)))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot bind to source address {src}: {}", io_error_text(&e)),
                    )
                })?;
        }
        Ok(())
    }
}

/// An `ifreq` carrying `name` (at most 15 bytes, checked by the setup).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = *src as libc::c_char;
    }
    req
}

/// The state of interface `name`, asked with ioctls on socket `fd`.
pub fn link_state_on(fd: libc::c_int, name: &str) -> io::Result<LinkState> {
    let mut req = ifreq(name);
    // SAFETY: fd is a socket, req a properly initialised ifreq that outlives the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => Ok(LinkState::Missing),
            _ => Err(e),
        };
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as libc::c_int;
    if flags & libc::IFF_UP == 0 || flags & libc::IFF_RUNNING == 0 {
        return Ok(LinkState::Down);
    }
    let mut req = ifreq(name);
    // SAFETY: as above.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFINDEX as _, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => Ok(LinkState::Missing),
            _ => Err(e),
        };
    }
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    Ok(LinkState::Up(unsafe { req.ifr_ifru.ifru_ifindex }))
}

/// Sets or clears `IFF_UP` on interface `name` (tests: needs CAP_NET_ADMIN).
#[cfg(test)]
pub fn set_link_up(name: &str, up: bool) -> io::Result<()> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let fd = s.as_raw_fd();
    let mut req = ifreq(name);
    // SAFETY: see link_state_on.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    let mut flags = unsafe { req.ifr_ifru.ifru_flags };
    if up {
        flags |= libc::IFF_UP as libc::c_short;
    } else {
        flags &= !(libc::IFF_UP as libc::c_short);
    }
    req.ifr_ifru.ifru_flags = flags;
    // SAFETY: as above.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Checks an interface name as the kernel would take it: 1 to 15 bytes, no `/`, no whitespace,
/// not `.` or `..`.
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}
