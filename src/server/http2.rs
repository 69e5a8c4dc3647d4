//! DoH over HTTP/2 on the `h2` crate's server, every stream of a connection served inside the
//! connection's own task.
//!
//! hyper's HTTP/2 server (which exdns used first) spawns a task per stream and writes each reply
//! as soon as its task finishes: a TLS record and a `write` per answer, and wake-ups across the
//! runtime's workers. Here a connection is one task that, each time it wakes, accepts every
//! request that has arrived, answers those the fast path answers at once (the rest — POST bodies
//! still arriving, queries the chain has to wait for — run as futures polled by the same task),
//! and only then writes: the replies of one burst leave in one TLS record and one `write`
//! ([`Corked`]). With 16 streams in flight per connection the server's CPU per answer went from
//! 12.1 to 5.4 µs and the client's per request from 7.1 to 2.2 µs (`bench/doh.sh`; user-space
//! instructions per answer from 45k to 30k).
//!
//! Limits are the ones exdns gave hyper: [`MAX_STREAMS`] streams at once (more are
//! refused with `REFUSED_STREAM`), a header list of at most [`doh::MAX_HEAD`] octets, the
//! preface within `read_timeout`, a POST body within `read_timeout`, and the connection closed
//! once idle for the (adaptive) idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use h2::RecvStream;
use h2::server::SendResponse;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::server::doh::{self, Ctx, Head};

/// Concurrent HTTP/2 streams per connection (CoreDNS's DoH3 default is 256; Go's HTTP/2
/// server allows 250).
pub const MAX_STREAMS: u32 = 256;

/// Bytes of replies held back while the connection still has requests to answer; past it,
/// writes go out at once.
const CORK_LIMIT: usize = 64 * 1024;

/// A connection's stream with the replies of one burst held back (the "cork") until the
/// connection has answered every request it has read, then written at once; and the octets
/// read while telling HTTP/2 from HTTP/1.1 given back first.
pub struct Corked<S> {
    io: S,
    /// Read ahead (the sniffed start of the connection), not yet handed to the reader.
    head: Bytes,
    out: Vec<u8>,
    /// Of `out`, written already.
    sent: usize,
    cork: Arc<AtomicBool>,
    /// A read while corked found nothing: the connection's further polls in the same round
    /// (which cannot expect more) skip the TLS read attempt; the round's last, uncorked poll
    /// reads for real.
    dry: bool,
}

impl<S> Corked<S> {
    pub fn new(io: S, head: Bytes) -> Self {
        Corked {
            io,
            head,
            out: Vec::new(),
            sent: 0,
            cork: Arc::new(AtomicBool::new(false)),
            dry: false,
        }
    }

    fn corked(&self) -> bool {
        self.cork.load(Ordering::Relaxed)
    }
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    /// Writes what is held back.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let corked = self.corked();
        if corked && self.dry {
            return Poll::Pending;
        }
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        self.dry = corked && r.is_pending();
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.corked() || this.out.len() + buf.len() > CORK_LIMIT {
            ready!(this.poll_drain(cx))?;
            if !this.corked() || buf.len() > CORK_LIMIT {
                return Pin::new(&mut this.io).poll_write(cx, buf);
            }
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Gathered into one buffer either way: one TLS record rather than one per slice.
        let this = &mut *self;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if this.out.len() + len > CORK_LIMIT {
            ready!(this.poll_drain(cx))?;
            if len > CORK_LIMIT {
                let first = bufs.iter().find(|b| !b.is_empty());
                return Pin::new(&mut this.io).poll_write(cx, first.map_or(&[][..], |b| b));
            }
        }
        for b in bufs {
            this.out.extend_from_slice(b);
        }
        if !this.corked() {
            // Written through now as far as the socket takes it; the rest on flush.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.corked() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves one HTTP/2 connection (its preface may be in `io`'s read-ahead) until the client
/// closes it, it idles out (`idle`, shortened as the listener fills), the table sheds it or
/// `stop` fires (requests in flight are answered first).
pub async fn serve<S>(io: Corked<S>, ctx: Arc<Ctx>, idle: Duration, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let src = ctx.peer.src;
    let cork = io.cork.clone();
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(doh::MAX_HEAD as u32);
    let handshake = tokio::time::timeout(ctx.read_timeout, b.handshake::<_, Bytes>(io));
    let mut conn = tokio::select! {
        r = handshake => match r {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!("https connection from {src}: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("https connection from {src}: no HTTP/2 preface in time");
                return;
            }
        },
        _ = ctx.state.closed() => return,
        _ = stop.changed() => return,
    };
    let mut streams = Streams::new(ctx.clone());
    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
    let mut closed = std::pin::pin!(ctx.state.closed());
    let mut stopped = std::pin::pin!(stop.changed());
    let mut stopping = false;
    let mut timer = std::pin::pin!(tokio::time::sleep(ctx.table.idle_timeout(idle)));
    std::future::poll_fn(|cx| {
        // Polls that another poll in the same round follows take a waker that does nothing:
        // a reply sent in between would otherwise wake this very task, and the runtime would
        // rouse an idle worker to run it. The round's last polls (connection, futures,
        // signals, timer) register the real one before it sleeps.
        let mut quiet = Context::from_waker(std::task::Waker::noop());
        loop {
            if !stopping
                && (closed.as_mut().poll(cx).is_ready() || stopped.as_mut().poll(cx).is_ready())
            {
                // Shed by the table (only while nothing is in flight) or the listener stops:
                // GOAWAY, requests in flight answered, then the connection closes.
                stopping = true;
                conn.graceful_shutdown();
            }
            // Every request that has arrived, answered now where the fast path can; replies
            // held back.
            cork.store(true, Ordering::Relaxed);
            let mut accepted = false;
            loop {
                match conn.poll_accept(&mut quiet) {
                    Poll::Ready(Some(Ok((req, respond)))) => {
                        accepted = true;
                        if let Some(fut) = streams.start(req, respond) {
                            pending.push(fut);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!("https connection from {src}: {e}");
                        return Poll::Ready(());
                    }
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            if accepted {
                // Active now: one look at the clock for the burst.
                ctx.touch();
            }
            let mut finished = false;
            while let Poll::Ready(Some(())) = pending.poll_next_unpin(cx) {
                finished = true;
            }
            if finished {
                // Their replies are framed by the next poll of the connection.
                continue;
            }
            // Nothing more to answer now: what is held back goes out in one write.
            cork.store(false, Ordering::Relaxed);
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, respond)))) => {
                    if let Some(fut) = streams.start(req, respond) {
                        pending.push(fut);
                    }
                    ctx.touch();
                    continue;
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!("https connection from {src}: {e}");
                    return Poll::Ready(());
                }
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => {}
            }
            // No request for the idle timeout: a client that never finishes its headers, never
            // reads its replies or just sits there is closed.
            if timer.as_mut().poll(cx).is_ready() {
                let idle = ctx.table.idle_timeout(idle);
                let idle_for = ctx.table.idle_for(&ctx.state);
                if pending.is_empty() && ctx.idle() && idle_for >= idle {
                    tracing::debug!("https connection from {src}: idle, closing");
                    return Poll::Ready(());
                }
                let wait = idle.saturating_sub(idle_for).max(Duration::from_millis(10));
                timer.as_mut().reset(tokio::time::Instant::now() + wait);
                continue;
            }
            return Poll::Pending;
        }
    })
    .await;
}

/// What the streams of one connection share: the context, and the last `Cache-Control` and
/// `Content-Length` values (the same answer asked again and again makes the same headers).
struct Streams {
    ctx: Arc<Ctx>,
    age: Option<(u32, HeaderValue)>,
    len: Option<(usize, HeaderValue)>,
}

impl Streams {
    fn new(ctx: Arc<Ctx>) -> Self {
        Streams {
            ctx,
            age: None,
            len: None,
        }
    }

    /// Answers a request now if it can; otherwise the future that will.
    fn start(
        &mut self,
        req: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
    ) -> Option<Pending> {
        let (parts, body) = req.into_parts();
        let head = doh::request_head(&parts.method, &parts.uri, &parts.headers);
        // A body that has arrived whole (as a POST's usually has, with its head) is taken now;
        // the rest of one still arriving is read by a future.
        let mut quiet = Context::from_waker(std::task::Waker::noop());
        let mut body = body;
        let mut read = Body::default();
        let reply = match head {
            Ok(Head::Get(wire)) => {
                drop(body);
                doh::check_wire(&wire).map(|()| wire)
            }
            Ok(Head::Post) => match read.poll(&mut body, &mut quiet) {
                Poll::Ready(r) => r.and_then(doh::check_body),
                Poll::Pending => {
                    let ctx = self.ctx.clone();
                    return Some(self.later(
                        async move {
                            let bytes = read.finish(body, ctx.read_timeout).await?;
                            let wire = doh::check_body(bytes)?;
                            doh::answer(&ctx.router, &ctx.tracker, &wire, &ctx.peer).await
                        },
                        respond,
                    ));
                }
            },
            // A refused request's body is read (up to DRAIN_MAX, within read_timeout) before
            // the reply: a client still sending it would see its stream reset instead of the
            // status.
            Err(status) => match read.poll(&mut body, &mut quiet) {
                Poll::Ready(_) => Err(status),
                Poll::Pending => {
                    let timeout = self.ctx.read_timeout;
                    return Some(self.later(
                        async move {
                            let _ = read.finish(body, timeout).await;
                            Err(status)
                        },
                        respond,
                    ));
                }
            },
        };
        let reply = match reply {
            Ok(wire) => {
                match doh::answer_now(&self.ctx.router, &self.ctx.tracker, &wire, &self.ctx.peer) {
                    Ok(reply) => reply,
                    Err(fut) => return Some(self.later(fut, respond)),
                }
            }
            Err(status) => Err(status),
        };
        self.reply(&mut respond, reply);
        None
    }

    /// A request answered by a future polled in the connection's task (in flight until then;
    /// one answered at once never is).
    fn later<F>(&self, reply: F, mut respond: SendResponse<Bytes>) -> Pending
    where
        F: Future<Output = Result<Vec<u8>, u16>> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        ctx.begin();
        Box::pin(async move {
            let r = reply.await;
            Streams::new(ctx.clone()).reply(&mut respond, r);
            ctx.end();
        })
    }

    fn reply(&mut self, respond: &mut SendResponse<Bytes>, reply: Result<Vec<u8>, u16>) {
        let (resp, body) = match reply {
            Ok(bytes) => {
                let age = doh::max_age(&bytes);
                self.ctx.count_ok();
                let mut resp = Response::new(());
                let h = resp.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static(doh::MIME));
                h.insert(
                    CACHE_CONTROL,
                    cached(&mut self.age, age, |a| format!("max-age={a}")),
                );
                h.insert(
                    CONTENT_LENGTH,
                    cached(&mut self.len, bytes.len(), |n| n.to_string()),
                );
                (resp, Bytes::from(bytes))
            }
            Err(status) => {
                self.ctx.count(status);
                (doh::error_head(status), doh::error_bytes(status))
            }
        };
        match respond.send_response(resp, body.is_empty()) {
            Ok(mut stream) => {
                if !body.is_empty() {
                    let _ = stream.send_data(body, true);
                }
            }
            Err(e) => tracing::debug!("https reply to {}: {e}", self.ctx.peer.src),
        }
    }
}

/// A header value made once per distinct value in a row.
fn cached<T: Copy + PartialEq>(
    slot: &mut Option<(T, HeaderValue)>,
    v: T,
    make: impl FnOnce(T) -> String,
) -> HeaderValue {
    match slot {
        Some((k, h)) if *k == v => h.clone(),
        _ => {
            let h =
                HeaderValue::try_from(make(v)).unwrap_or_else(|_| HeaderValue::from_static("0"));
            *slot = Some((v, h.clone()));
            h
        }
    }
}

/// A request body as read so far: 413 beyond [`doh::MAX_MESSAGE`] (after reading on up to
/// [`doh::DRAIN_MAX`]), 400 when it breaks off or does not arrive within the read timeout.
/// What is read is given back to the connection's flow-control window.
#[derive(Default)]
struct Body {
    buf: Vec<u8>,
    seen: usize,
}

impl Body {
    /// Takes what has arrived: ready at the body's end (or its error), pending while more is
    /// to come.
    fn poll(&mut self, body: &mut RecvStream, cx: &mut Context<'_>) -> Poll<Result<Vec<u8>, u16>> {
        loop {
            match ready!(body.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = body.flow_control().release_capacity(data.len());
                    self.seen += data.len();
                    if self.seen <= doh::MAX_MESSAGE {
                        self.buf.extend_from_slice(&data);
                    } else if self.seen > doh::DRAIN_MAX {
                        return Poll::Ready(Err(doh::PAYLOAD_TOO_LARGE));
                    }
                }
                Some(Err(_)) => return Poll::Ready(Err(doh::BAD_REQUEST)),
                None if self.seen > doh::MAX_MESSAGE => {
                    return Poll::Ready(Err(doh::PAYLOAD_TOO_LARGE));
                }
                None => return Poll::Ready(Ok(std::mem::take(&mut self.buf))),
            }
        }
    }

    /// Reads the rest within `timeout`.
    async fn finish(mut self, mut body: RecvStream, timeout: Duration) -> Result<Vec<u8>, u16> {
        tokio::time::timeout(timeout, std::future::poll_fn(|cx| self.poll(&mut body, cx)))
            .await
            .unwrap_or(Err(doh::BAD_REQUEST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// What the other end can read now.
    async fn available(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut buf = vec![0u8; 256 * 1024];
        match tokio::time::timeout(Duration::from_millis(50), peer.read(&mut buf)).await {
            Ok(Ok(n)) => buf[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn corked_writes_wait_for_the_uncorked_flush() {
        rt().block_on(async {
            let (a, mut peer) = tokio::io::duplex(1 << 20);
            let mut c = Corked::new(a, Bytes::new());
            let cork = c.cork.clone();
            cork.store(true, Ordering::Relaxed);
            c.write_all(b"one ").await.unwrap();
            let n = c
                .write_vectored(&[io::IoSlice::new(b"two "), io::IoSlice::new(b"three")])
                .await
                .unwrap();
            assert_eq!(n, 9);
            c.flush().await.unwrap();
            assert_eq!(available(&mut peer).await, b"");
            cork.store(false, Ordering::Relaxed);
            c.flush().await.unwrap();
            // All of it in one write.
            assert_eq!(available(&mut peer).await, b"one two three");
            // Uncorked, a write goes straight through.
            c.write_all(b"four").await.unwrap();
            assert_eq!(available(&mut peer).await, b"four");
        });
    }

    #[test]
    fn corked_writes_past_the_limit_go_out() {
        rt().block_on(async {
            let (a, mut peer) = tokio::io::duplex(1 << 20);
            let mut c = Corked::new(a, Bytes::new());
            c.cork.store(true, Ordering::Relaxed);
            let chunk = vec![7u8; CORK_LIMIT / 2 + 1];
            c.write_all(&chunk).await.unwrap();
            assert_eq!(available(&mut peer).await.len(), 0);
            // The second would pass the limit: the first goes out, the second is held.
            c.write_all(&chunk).await.unwrap();
            assert_eq!(available(&mut peer).await.len(), chunk.len());
            c.cork.store(false, Ordering::Relaxed);
            c.flush().await.unwrap();
            assert_eq!(available(&mut peer).await.len(), chunk.len());
            // One larger than the limit is written through at once.
            c.cork.store(true, Ordering::Relaxed);
            let big = vec![9u8; CORK_LIMIT + 10];
            c.write_all(&big).await.unwrap();
            let mut got = Vec::new();
            while got.len() < big.len() {
                let more = available(&mut peer).await;
                assert!(
                    !more.is_empty(),
                    "only {} of {} written",
                    got.len(),
                    big.len()
                );
                got.extend(more);
            }
            assert_eq!(got, big);
        });
    }

    /// A reader that counts its polls and has nothing to give.
    struct Empty(usize);

    impl AsyncRead for Empty {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.0 += 1;
            Poll::Pending
        }
    }

    #[test]
    fn a_dry_read_while_corked_is_not_tried_again_until_uncorked() {
        let mut c = Corked::new(Empty(0), Bytes::new());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut raw = [0u8; 16];
        let mut poll = |c: &mut Corked<Empty>| {
            let mut buf = ReadBuf::new(&mut raw);
            Pin::new(c).poll_read(&mut cx, &mut buf).is_pending()
        };
        c.cork.store(true, Ordering::Relaxed);
        assert!(poll(&mut c) && poll(&mut c) && poll(&mut c));
        assert_eq!(c.io.0, 1, "corked: one real read per round");
        c.cork.store(false, Ordering::Relaxed);
        assert!(poll(&mut c) && poll(&mut c));
        assert_eq!(c.io.0, 3, "uncorked: every poll reads");
        c.cork.store(true, Ordering::Relaxed);
        assert!(poll(&mut c) && poll(&mut c));
        assert_eq!(c.io.0, 4, "the next round reads once again");
    }

    #[test]
    fn read_ahead_comes_first() {
        rt().block_on(async {
            let (a, mut peer) = tokio::io::duplex(1024);
            let mut c = Corked::new(a, Bytes::from_static(b"PRI * "));
            peer.write_all(b"HTTP/2.0").await.unwrap();
            let mut buf = [0u8; 14];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"PRI * HTTP/2.0");
        });
    }
}
