//! DNS-over-TLS client tests against an in-process TLS server (tokio-rustls, rcgen certificates
//! from a test CA) that records the ClientHello's SNI, counts connections and resumed
//! handshakes, and can answer in reverse order, answer one name slowly, close idle connections
//! or close a connection on a given query without answering.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::setup::parse;
use super::*;
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::test_chain::{
    capture_logs, dispenser, query, reply_of, request_from, serve, wait_for,
};

const NAME_OK: &str = "dns.example.test";

/// A test CA and a server certificate it signed for `dns.example.test` and 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    other_ca: String,
    key: Arc<CertifiedKey>,
}

fn ca(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    (params.self_signed(&key).unwrap(), key)
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ca_cert, ca_key) = ca("exdns forward test CA");
    let (other, _) = ca("some other CA");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![NAME_OK.to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.pem()).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
    Pki {
        ca: ca.display().to_string(),
        other_ca: other_ca.display().to_string(),
        key: Arc::new(CertifiedKey::new(vec![leaf.der().clone()], signer)),
        dir,
    }
}

/// Serves the one certificate and records the SNI of every full handshake.
#[derive(Debug)]
struct RecordSni {
    key: Arc<CertifiedKey>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl ResolvesServerCert for RecordSni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.seen
            .lock()
            .unwrap()
            .push(hello.server_name().map(str::to_string));
        Some(self.key.clone())
    }
}

#[derive(Clone, Default)]
struct Behaviour {
    /// Hold replies until this many queries came on a connection, then answer them in reverse.
    reverse_batch: usize,
    /// Answer this name after this long (others at once).
    slow: Option<(&'static str, Duration)>,
    /// On the first connection, close it on receiving this query (1-based) without answering.
    drop_on_query: Option<usize>,
    /// Close a connection that has been quiet this long.
    idle_close: Option<Duration>,
    /// While true, accepted connections get no TLS handshake (held open, read and ignored).
    stall: Option<Arc<AtomicBool>>,
}

struct TlsServer {
    addr: SocketAddr,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    accepts: Arc<AtomicUsize>,
    resumed: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    queries: Arc<AtomicUsize>,
}

impl TlsServer {
    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
    fn resumed(&self) -> usize {
        self.resumed.load(Ordering::SeqCst)
    }
    fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }
    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
    /// `tls://127.0.0.1%dns.example.test:PORT`: this server, verified by its name.
    fn named(&self) -> String {
        format!("tls://127.0.0.1%{NAME_OK}:{}", self.addr.port())
    }
}

async fn tls_server(pki: &Pki, b: Behaviour) -> TlsServer {
    let sni = Arc::new(Mutex::new(Vec::new()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(RecordSni {
        key: pki.key.clone(),
        seen: sni.clone(),
    }));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let srv = TlsServer {
        addr: listener.local_addr().unwrap(),
        sni,
        accepts: Arc::new(AtomicUsize::new(0)),
        resumed: Arc::new(AtomicUsize::new(0)),
        ended: Arc::new(AtomicUsize::new(0)),
        queries: Arc::new(AtomicUsize::new(0)),
    };
    let (accepts, resumed, ended, queries) = (
        srv.accepts.clone(),
        srv.resumed.clone(),
        srv.ended.clone(),
        srv.queries.clone(),
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let first = accepts.fetch_add(1, Ordering::SeqCst) == 0;
            let (acceptor, b) = (acceptor.clone(), b.clone());
            let (resumed, ended, queries) = (resumed.clone(), ended.clone(), queries.clone());
            tokio::spawn(async move {
                if b.stall.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
                    let mut tcp = tcp;
                    let mut sink = [0u8; 1024];
                    while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                    ended.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let Ok(tls) = acceptor.accept(tcp).await else {
                    ended.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    resumed.fetch_add(1, Ordering::SeqCst);
                }
                serve_conn(tls, b, first, queries).await;
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    srv
}

/// `qN.example.` → A 10.0.N/256.N%256; other names → A 192.0.2.1. AD and RA set.
fn tls_answer(q: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(q).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.authentic_data = true;
    m.queries = q.queries.clone();
    let name = q.queries[0].name().clone();
    m.answers.push(Record::from_rdata(
        name.clone(),
        60,
        RData::A(A(ip_for(&name.to_ascii()).into())),
    ));
    m.to_vec().unwrap()
}

fn ip_for(name: &str) -> [u8; 4] {
    match name
        .strip_prefix('q')
        .and_then(|r| r.split('.').next())
        .and_then(|n| n.parse::<u16>().ok())
    {
        Some(n) => [10, 0, (n >> 8) as u8, n as u8],
        None => [192, 0, 2, 1],
    }
}

fn frame(msg: Vec<u8>) -> Vec<u8> {
    let mut f = (msg.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&msg);
    f
}

async fn serve_conn<S>(tls: S, b: Behaviour, first: bool, queries: Arc<AtomicUsize>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(tls);
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut batch = Vec::new();
    let mut n = 0usize;
    loop {
        let mut len = [0u8; 2];
        let read = match b.idle_close {
            Some(d) => match tokio::time::timeout(d, rd.read_exact(&mut len)).await {
                Ok(r) => r,
                Err(_) => break,
            },
            None => rd.read_exact(&mut len).await,
        };
        if read.is_err() {
            break;
        }
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        if rd.read_exact(&mut q).await.is_err() {
            break;
        }
        n += 1;
        queries.fetch_add(1, Ordering::SeqCst);
        if first && b.drop_on_query == Some(n) {
            break;
        }
        let reply = frame(tls_answer(&q));
        let qname = Message::from_vec(&q).unwrap().queries[0].name().to_ascii();
        match b.slow {
            Some((slow, delay)) if qname == slow => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(reply);
                });
            }
            _ if b.reverse_batch > 0 => {
                batch.push(reply);
                if batch.len() == b.reverse_batch {
                    for r in batch.drain(..).rev() {
                        let _ = tx.send(r);
                    }
                }
            }
            _ => {
                let _ = tx.send(reply);
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn forward_to(pki: &Pki, to: &str, extra: &str) -> Arc<Forward> {
    forward_with_ca(&pki.ca, to, extra)
}

fn forward_with_ca(ca: &str, to: &str, extra: &str) -> Arc<Forward> {
    forward_of(tls_config(ca, to, extra))
}

/// `forward . TO { tls CA EXTRA }`, parsed.
fn tls_config(ca: &str, to: &str, extra: &str) -> Config {
    let text = format!("forward . {to} {{\n tls {ca}\n {extra}\n}}");
    match parse(&mut dispenser(&text)) {
        Ok(c) => c,
        Err(e) => panic!("{text}: {e}"),
    }
}

fn forward_of(cfg: Config) -> Arc<Forward> {
    super::metrics::register();
    Arc::new(Forward::new(cfg).unwrap())
}

/// A test PKI, a server behaving as `b`, and a forward to it by name (`extra` in its block).
async fn setup(b: Behaviour, extra: &str) -> (Pki, TlsServer, Arc<Forward>) {
    let pki = pki();
    let srv = tls_server(&pki, b).await;
    let f = forward_to(&pki, &srv.named(), extra);
    (pki, srv, f)
}

fn req(name: &str, id: u16) -> Request {
    let mut q = query(name, RecordType::A);
    q.metadata.id = id;
    request_from(q, "10.0.0.1:40000", Proto::Udp)
}

/// `qI.example.` with ID `id_base + I`, for I in 1..=n.
fn q_reqs(n: u16, id_base: u16) -> Vec<Request> {
    (1..=n)
        .map(|i| req(&format!("q{i}.example."), id_base + i))
        .collect()
}

/// Serves every request at once.
async fn serve_all(f: &Forward, reqs: &[Request]) -> Vec<Outcome> {
    futures::future::join_all(reqs.iter().map(|r| serve(f, r, &[]))).await
}

/// Checks the answers to [`q_reqs`]`(_, id_base)`, in order.
fn check_q_answers(outs: Vec<Outcome>, id_base: u16) {
    for (i, out) in outs.into_iter().enumerate() {
        let i = i as u16 + 1;
        check_answer(out, &format!("q{i}.example."), id_base + i);
    }
}

/// Serves `name` (ID `id`) and checks the answer ([`check_answer`]).
async fn expect_answer(f: &Forward, name: &str, id: u16) {
    check_answer(serve(f, &req(name, id), &[]).await, name, id);
}

fn check_answer(out: Outcome, name: &str, id: u16) {
    let m = reply_of(out);
    assert_eq!(m.metadata.id, id, "client ID restored for {name}");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authentic_data && m.metadata.recursion_available);
    assert_eq!(m.queries[0].name().to_ascii(), name);
    match m.answers.first().map(|r| &r.data) {
        Some(RData::A(a)) => assert_eq!(a.0.octets(), ip_for(name), "{name}"),
        other => panic!("{name}: {other:?}"),
    }
}

fn counters(to: &str) -> (u64, u64) {
    (
        metrics::CONN_CACHE_HITS
            .with_label_values(&["forward", to, "tcp-tls"])
            .get(),
        metrics::CONN_CACHE_MISSES
            .with_label_values(&["forward", to, "tcp-tls"])
            .get(),
    )
}

#[tokio::test]
async fn sni_is_sent_and_the_certificate_is_verified_against_it() {
    let pki = pki();
    let srv = tls_server(&pki, Behaviour::default()).await;

    // Per-upstream server name.
    let f = forward_to(&pki, &srv.named(), "");
    expect_answer(&f, "q1.example.", 11).await;
    assert_eq!(*srv.sni.lock().unwrap(), vec![Some(NAME_OK.to_string())]);
    assert_eq!(f.upstreams()[0].tls_name(), Some(NAME_OK));

    // tls_servername for every TLS upstream.
    let f = forward_to(
        &pki,
        &format!("tls://{}", srv.addr),
        &format!("tls_servername {NAME_OK}"),
    );
    expect_answer(&f, "q2.example.", 12).await;
    assert_eq!(
        srv.sni.lock().unwrap().last().unwrap().as_deref(),
        Some(NAME_OK)
    );

    // No server name: the IP address is verified (IP SAN) and no SNI is sent, as RFC 6066 says.
    let f = forward_to(&pki, &format!("tls://{}", srv.addr), "");
    expect_answer(&f, "q3.example.", 13).await;
    assert_eq!(srv.sni.lock().unwrap().last().unwrap(), &None);
    assert_eq!(srv.queries(), 3);
}

#[tokio::test]
async fn replies_out_of_order_on_one_connection_are_matched_by_id() {
    let (_pki, srv, f) = setup(
        Behaviour {
            reverse_batch: 5,
            ..Behaviour::default()
        },
        "",
    )
    .await;
    let reqs = q_reqs(5, 1000);
    let outs = serve_all(&f, &reqs).await;
    check_q_answers(outs, 1000);
    assert_eq!(srv.accepts(), 1, "all five on one connection");
    assert_eq!(srv.queries(), 5);
}

#[tokio::test]
async fn many_concurrent_queries_share_one_connection() {
    let (_pki, srv, f) = setup(Behaviour::default(), "").await;
    let to = srv.addr.to_string();
    let (hits0, misses0) = counters(&to);
    let reqs = q_reqs(40, 0);
    let outs = serve_all(&f, &reqs).await;
    check_q_answers(outs, 0);
    assert_eq!(srv.accepts(), 1);
    let (hits, misses) = counters(&to);
    assert_eq!(misses - misses0, 1, "one connection opened");
    assert_eq!(hits - hits0, 39, "every other query reused it");
    assert_eq!(f.upstreams()[0].stream_pool().unwrap().open_conns(), 1);

    // Later queries keep using it.
    expect_answer(&f, "q41.example.", 41).await;
    assert_eq!(counters(&to).0 - hits0, 40);
    assert_eq!(srv.accepts(), 1);
    let d = metrics::REQUEST_DURATION
        .with_label_values(&["forward", &to, "NOERROR"])
        .get_sample_count();
    assert_eq!(d, 41);
}

#[tokio::test]
async fn a_pool_grows_when_a_connection_is_busy() {
    let pki = pki();
    let srv = tls_server(
        &pki,
        Behaviour {
            slow: Some(("slow.example.", Duration::from_millis(400))),
            ..Behaviour::default()
        },
    )
    .await;
    let mut cfg = tls_config(&pki.ca, &srv.named(), "");
    cfg.limits = Limits {
        max_conns: 2,
        open_above: 2,
    };
    let f = forward_of(cfg);
    let slow: Vec<Request> = (0..3).map(|i| req("slow.example.", 500 + i)).collect();
    let f2 = f.clone();
    let first = tokio::spawn(async move { serve_all(&f2, &slow).await });
    wait_for("3 queries in flight", || srv.queries() == 3).await;
    assert_eq!(srv.accepts(), 1, "a burst on a cold pool: one dial");
    // The busy connection still takes the next query, and a second one is dialled meanwhile.
    expect_answer(&f, "q7.example.", 7).await;
    let pool = f.upstreams()[0].stream_pool().unwrap();
    wait_for("two connections open", || pool.open_conns() == 2).await;
    assert_eq!(srv.accepts(), 2);
    // Both busy, max_conns reached: no third connection.
    let more: Vec<Request> = (0..4).map(|i| req("slow.example.", 600 + i)).collect();
    let outs = serve_all(&f, &more).await;
    for out in outs.into_iter().chain(first.await.unwrap()) {
        assert_eq!(reply_of(out).metadata.response_code, ResponseCode::NoError);
    }
    assert_eq!(srv.accepts(), 2);
    assert_eq!(srv.queries(), 8);
}

#[tokio::test]
async fn a_slow_answer_does_not_hold_back_the_others() {
    let (_pki, srv, f) = setup(
        Behaviour {
            slow: Some(("slow.example.", Duration::from_millis(700))),
            ..Behaviour::default()
        },
        "",
    )
    .await;
    // Warm up so the connection exists.
    expect_answer(&f, "q100.example.", 100).await;

    let started = Instant::now();
    let f2 = f.clone();
    let slow = tokio::spawn(async move { serve(&*f2, &req("slow.example.", 9), &[]).await });
    wait_for("the slow query sent", || srv.queries() == 2).await;
    let reqs = q_reqs(10, 0);
    let outs = serve_all(&f, &reqs).await;
    let fast_done = started.elapsed();
    check_q_answers(outs, 0);
    assert!(!slow.is_finished(), "the slow answer is still pending");
    assert!(
        fast_done < Duration::from_millis(500),
        "fast answers took {fast_done:?}"
    );
    check_answer(slow.await.unwrap(), "slow.example.", 9);
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(srv.accepts(), 1, "all on the one connection");
}

#[tokio::test]
async fn reconnects_after_the_upstream_closed_an_idle_connection_and_resumes_tls() {
    let (_pki, srv, f) = setup(
        Behaviour {
            idle_close: Some(Duration::from_millis(100)),
            ..Behaviour::default()
        },
        "",
    )
    .await;
    expect_answer(&f, "q1.example.", 1).await;
    wait_for("the server closed", || srv.ended() == 1).await;
    let pool = f.upstreams()[0].stream_pool().unwrap();
    wait_for("the close noticed", || pool.open_conns() == 0).await;
    expect_answer(&f, "q2.example.", 2).await;
    assert_eq!(srv.accepts(), 2);
    assert_eq!(srv.resumed(), 1, "the second handshake resumed the session");
}

#[tokio::test]
async fn a_connection_closed_under_a_query_is_retried_once_on_a_fresh_one() {
    let (_pki, srv, f) = setup(
        Behaviour {
            drop_on_query: Some(2),
            ..Behaviour::default()
        },
        "max_fails 0",
    )
    .await;
    expect_answer(&f, "q1.example.", 1).await;
    let start = Instant::now();
    expect_answer(&f, "q2.example.", 2).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no timeout on the way"
    );
    assert_eq!(srv.accepts(), 2);
    assert_eq!(srv.queries(), 3, "q2 twice: dropped, then answered");
}

/// A dial whose TLS handshake stalls gives up at `read_timeout` (not at the request's deadline),
/// so the queries that waited for it make their next attempt on a fresh dial: once the upstream
/// answers again they are answered within their own deadline instead of failing with the dial.
#[tokio::test]
async fn queries_waiting_on_a_stalled_handshake_move_to_a_fresh_dial() {
    let pki = pki();
    let stall = Arc::new(AtomicBool::new(true));
    let srv = tls_server(
        &pki,
        Behaviour {
            stall: Some(stall.clone()),
            ..Behaviour::default()
        },
    )
    .await;
    let f = forward_to(&pki, &srv.named(), "max_fails 0\n read_timeout 1s");
    let reqs = q_reqs(3, 0);
    let waiting = serve_all(&f, &reqs);
    let recover = async {
        wait_for("the stalled dial", || srv.accepts() == 1).await;
        stall.store(false, Ordering::SeqCst);
    };
    let (outs, ()) = futures::join!(waiting, recover);
    check_q_answers(outs, 0);
    assert_eq!(
        srv.accepts(),
        2,
        "the stalled dial, then one fresh dial shared by the three queries"
    );
    assert_eq!(srv.queries(), 3);
    let pool = f.upstreams()[0].stream_pool().unwrap();
    assert_eq!(pool.dials(), 2);
    wait_for("the stalled connection to close", || srv.ended() == 1).await;
}

#[tokio::test]
async fn expire_closes_idle_connections() {
    let (_pki, srv, f) = setup(Behaviour::default(), "expire 100ms").await;
    expect_answer(&f, "q1.example.", 1).await;
    let pool = f.upstreams()[0].stream_pool().unwrap();
    assert_eq!(pool.open_conns(), 1);
    wait_for("our side closed the idle connection", || srv.ended() == 1).await;
    assert_eq!(pool.open_conns(), 0);
    expect_answer(&f, "q2.example.", 2).await;
    assert_eq!(srv.accepts(), 2);
}

#[tokio::test]
async fn a_wrong_server_name_or_an_untrusted_ca_fails_with_servfail() {
    let (_g, logs) = capture_logs();
    let pki = pki();
    let srv = tls_server(&pki, Behaviour::default()).await;
    let port = srv.addr.port();

    let f = forward_to(
        &pki,
        &format!("tls://127.0.0.1%wrong.example.test:{port}"),
        "",
    );
    let out = serve(&*f, &req("q1.example.", 1), &[]).await;
    assert!(
        matches!(
            out,
            Outcome::Code {
                rcode: ResponseCode::ServFail,
                plugin: "forward"
            }
        ),
        "{out:?}"
    );
    let up = f.upstreams()[0].clone();
    let mut wire = query("q1.example.", RecordType::A).to_vec().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let e = up
        .exchange(&mut wire, Transport::Tcp, deadline, Duration::from_secs(1))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "tls handshake with 127.0.0.1:{port} (wrong.example.test): invalid peer certificate: certificate not valid for name \"wrong.example.test\""
        )),
        "{text}"
    );

    let f = forward_with_ca(
        &pki.other_ca,
        &format!("tls://127.0.0.1%{NAME_OK}:{port}"),
        "",
    );
    let out = serve(&*f, &req("q2.example.", 2), &[]).await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            ..
        }
    ));
    let e = f.upstreams()[0]
        .exchange(&mut wire, Transport::Tcp, deadline, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "tls handshake with 127.0.0.1:{port} ({NAME_OK}): invalid peer certificate: UnknownIssuer"
        )
    );
    assert_eq!(srv.queries(), 0, "no query was sent");
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| *l == format!(
            "WARN exdns::plugin::forward: q2.example. A: tls://127.0.0.1:{port}: tls handshake with 127.0.0.1:{port} ({NAME_OK}): invalid peer certificate: UnknownIssuer"
        )),
        "{lines:?}"
    );
    drop(pki.dir);
}
