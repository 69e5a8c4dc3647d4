//! The writer task of one tap: dial, Frame Streams handshake, write batches of frames; on any
//! error drop the connection and dial again with a backoff, dropping (and counting) what
//! arrives meanwhile, as CoreDNS's dnstap does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::encode::{self, Meta, Record};
use super::{DROPPED, Endpoint, Settings};

/// As CoreDNS: dial and write timeouts.
const TIMEOUT: Duration = Duration::from_secs(4);
/// Redials start this far apart and double up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// CoreDNS redials every 10 s.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often dropped records are reported in the log (CoreDNS's errorCheckInterval).
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Frames written with one write, at most.
const BATCH: usize = 64 * 1024;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Ended {
    Stopped,
    Failed(String),
}

pub(super) async fn run(
    settings: Arc<Settings>,
    mut rx: mpsc::Receiver<Record>,
    dropped: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut last_warn = Instant::now();
    let mut logged_down = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let dialed = tokio::select! {
            _ = stop.changed() => return,
            r = tokio::time::timeout(TIMEOUT, dial(&settings)) => match r {
                Ok(r) => r,
                Err(_) => Err("timed out".to_string()),
            },
        };
        match dialed {
            Ok(conn) => {
                if logged_down {
                    tracing::info!("dnstap: connected to {}", show(&settings.endpoint));
                }
                backoff = MIN_BACKOFF;
                match serve(
                    conn,
                    &settings,
                    &mut rx,
                    &dropped,
                    &mut stop,
                    &mut last_warn,
                )
                .await
                {
                    Ended::Stopped => return,
                    Ended::Failed(e) => {
                        tracing::warn!(
                            "dnstap: connection to {} lost: {e}",
                            show(&settings.endpoint)
                        );
                        logged_down = true;
                        continue;
                    }
                }
            }
            Err(e) => {
                if !logged_down {
                    tracing::error!("No connection to dnstap endpoint: {e}");
                    logged_down = true;
                }
            }
        }
        // Down: what arrives is dropped until the next dial.
        let until = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep_until(until) => break,
                r = rx.recv() => match r {
                    Some(_) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        DROPPED.inc();
                    }
                    None => return,
                },
            }
        }
        warn_dropped(&dropped, &mut last_warn);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn show(e: &Endpoint) -> String {
    match e {
        Endpoint::Unix(p) => format!("unix://{p}"),
        Endpoint::Tcp(a) => format!("tcp://{a}"),
    }
}

fn warn_dropped(dropped: &AtomicU64, last: &mut Instant) {
    if last.elapsed() >= WARN_EVERY {
        *last = Instant::now();
        let n = dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::warn!("Dropped dnstap messages: {n}");
        }
    }
}

/// Connects and runs the bidirectional handshake: READY →, ← ACCEPT, START →.
async fn dial(settings: &Settings) -> Result<Box<dyn Stream>, String> {
    let mut s: Box<dyn Stream> = match &settings.endpoint {
        Endpoint::Unix(path) => Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("dial unix {path}: {e}"))?,
        ),
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| format!("dial tcp {addr}: {e}"))?;
            let _ = socket2::SockRef::from(&s).set_send_buffer_size(settings.write_buffer << 20);
            Box::new(s)
        }
    };
    let mut out = Vec::new();
    encode::control(&mut out, encode::CONTROL_READY, true);
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    let kind = read_control(&mut s).await?;
    if kind != encode::CONTROL_ACCEPT {
        return Err(format!("expected an ACCEPT control frame, got type {kind}"));
    }
    out.clear();
    encode::control(&mut out, encode::CONTROL_START, true);
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    Ok(s)
}

/// Reads one control frame; returns its type.
async fn read_control<S: AsyncRead + Unpin + ?Sized>(s: &mut S) -> Result<u32, String> {
    let mut head = [0u8; 8];
    s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
    let escape = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if escape != 0 || !(4..=512).contains(&len) {
        return Err("malformed control frame".to_string());
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    Ok(u32::from_be_bytes([body[0], body[1], body[2], body[3]]))
}

async fn serve(
    conn: Box<dyn Stream>,
    settings: &Settings,
    rx: &mut mpsc::Receiver<Record>,
    dropped: &AtomicU64,
    stop: &mut watch::Receiver<bool>,
    last_warn: &mut Instant,
) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let meta = Meta {
        identity: &settings.identity,
        version: &settings.version,
        extra: settings.extra.as_deref(),
    };
    let (mut out, mut scratch) = (Vec::with_capacity(BATCH), Vec::new());
    let mut junk = [0u8; 64];
    let mut tick = tokio::time::interval(WARN_EVERY);
    loop {
        let first = tokio::select! {
            _ = stop.changed() => {
                // STOP, then wait a little for FINISH.
                out.clear();
                encode::control(&mut out, encode::CONTROL_STOP, false);
                if wr.write_all(&out).await.is_ok() {
                    let finish = tokio::time::timeout(Duration::from_secs(1), read_control(&mut rd)).await;
                    if !matches!(finish, Ok(Ok(encode::CONTROL_FINISH))) {
                        tracing::debug!("dnstap: no FINISH from the collector");
                    }
                }
                let _ = wr.shutdown().await;
                return Ended::Stopped;
            }
            _ = tick.tick() => {
                warn_dropped(dropped, last_warn);
                continue;
            }
            // The collector sends nothing after ACCEPT but FINISH: a read means it went away.
            r = rd.read(&mut junk) => {
                return Ended::Failed(match r {
                    Ok(0) => "closed by the collector".to_string(),
                    Ok(_) => "unexpected data from the collector".to_string(),
                    Err(e) => e.to_string(),
                });
            }
            r = rx.recv() => match r {
                Some(r) => r,
                None => return Ended::Stopped,
            },
        };
        out.clear();
        encode::frame(&mut out, &mut scratch, &meta, &first);
        let mut n = 1u64;
        while out.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => {
                    encode::frame(&mut out, &mut scratch, &meta, &r);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        match tokio::time::timeout(TIMEOUT, wr.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                dropped.fetch_add(n, Ordering::Relaxed);
                DROPPED.inc_by(n);
                return Ended::Failed(e.to_string());
            }
            Err(_) => {
                dropped.fetch_add(n, Ordering::Relaxed);
                DROPPED.inc_by(n);
                return Ended::Failed("write timed out".to_string());
            }
        }
    }
}
