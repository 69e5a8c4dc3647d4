use std::sync::Mutex as StdMutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::plugin::health::{HEALTH_DURATION, Health};
use crate::plugin::prometheus::Metrics;
use crate::plugin::ready::Ready;

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One request on a fresh connection, read to the end (`Connection: close`).
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    parse_reply(&raw)
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path).await
}

/// A keep-alive connection: sends a GET and reads exactly one response (by Content-Length).
async fn get_on(s: &mut TcpStream, path: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "connection closed early");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let r = parse_reply(format!("{head}\r\n\r\n").as_bytes());
            let len: usize = r.header("content-length").unwrap().parse().unwrap();
            if body.len() >= len {
                return parse_reply(&raw);
            }
        }
    }
}

fn addr_of(ops: &Ops, configured: &str) -> SocketAddr {
    ops.bound_addrs()
        .into_iter()
        .find(|(c, _)| c == configured)
        .unwrap_or_else(|| panic!("{configured} not bound: {:?}", ops.bound_addrs()))
        .1
}

/// What the `health`, `ready` and `prometheus` directives register for these addresses.
fn endpoints(health: &[&str], ready: &[&str], metrics: &[&str]) -> Vec<HttpEndpoint> {
    let mut v = Vec::new();
    for (addrs, path, handler) in [
        (
            health,
            "/health",
            Arc::new(Health::new()) as Arc<dyn HttpHandler>,
        ),
        (ready, "/ready", Arc::new(Ready)),
        (metrics, "/metrics", Arc::new(Metrics)),
    ] {
        for a in addrs {
            v.push(HttpEndpoint::new(*a, Some(path), handler.clone()));
        }
    }
    v
}

/// A ready function whose answer the test controls.
fn controlled_ready() -> (ReadyFn, Arc<StdMutex<Vec<&'static str>>>) {
    let state = Arc::new(StdMutex::new(Vec::new()));
    let s = state.clone();
    (Arc::new(move || s.lock().unwrap().clone()), state)
}

fn no_ready() -> ReadyFn {
    Arc::new(Vec::new)
}

async fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn serves_health_ready_and_metrics() {
    crate::metrics::init();
    let ops = Ops::new();
    let (ready, not_ready) = controlled_ready();
    // health and ready share one address (one listener); metrics has its own.
    ops.apply(
        &endpoints(&["127.0.0.1:0"], &["127.0.0.1:0"], &["localhost:0"]),
        ready,
    )
    .await
    .unwrap();
    assert_eq!(ops.bound_addrs().len(), 2);
    let hr = addr_of(&ops, "127.0.0.1:0");
    let m = addr_of(&ops, "localhost:0");
    assert_eq!(hr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(m.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_ne!(hr.port(), 0);
    assert_ne!(hr.port(), m.port());

    let r = get(hr, "/health").await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = get(hr, "/ready").await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));

    *not_ready.lock().unwrap() = vec!["k8s_gateway", "erratic", "k8s_gateway"];
    let r = get(hr, "/ready").await;
    assert_eq!((r.status, r.body.as_str()), (503, "erratic,k8s_gateway"));
    *not_ready.lock().unwrap() = vec![];
    assert_eq!(get(hr, "/ready").await.status, 200);

    let r = get(m, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        r.body.contains("# TYPE coredns_build_info gauge"),
        "{}",
        r.body
    );
    assert!(r.body.contains("coredns_build_info{"));
    assert!(
        r.body
            .contains("# TYPE coredns_health_request_duration_seconds histogram")
    );

    // Each path only where it is configured.
    assert_eq!(get(hr, "/metrics").await.status, 404);
    assert_eq!(get(m, "/health").await.status, 404);
    assert_eq!(get(m, "/ready").await.status, 404);
    let r = get(hr, "/nope").await;
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
    assert_eq!(get(hr, "/health/").await.status, 404);
    assert_eq!(get(hr, "/health?verbose=1").await.status, 200);

    let r = request(hr, "POST", "/health").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(request(m, "DELETE", "/metrics").await.status, 405);

    let r = request(hr, "HEAD", "/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "", "no body for HEAD");
    assert_eq!(r.header("content-length"), Some("2"));

    // Lameduck: ready says so, health stays up.
    ops.set_lameduck();
    let r = get(hr, "/ready").await;
    assert_eq!((r.status, r.body.as_str()), (503, "Shutting down"));
    assert_eq!(get(hr, "/health").await.status, 200);

    ops.shutdown().await;
    assert!(ops.bound_addrs().is_empty());
    assert!(refused(hr).await);
    assert!(refused(m).await);
}

#[tokio::test]
async fn apply_keeps_unchanged_listeners_and_stops_removed_ones() {
    let ops = Ops::new();
    ops.apply(
        &endpoints(&["127.0.0.1:0"], &["localhost:0"], &[]),
        no_ready(),
    )
    .await
    .unwrap();
    let h = addr_of(&ops, "127.0.0.1:0");
    let r = addr_of(&ops, "localhost:0");
    assert_eq!(get(r, "/ready").await.status, 200);

    // A keep-alive connection opened before the reload.
    let mut kept = TcpStream::connect(h).await.unwrap();
    assert_eq!(get_on(&mut kept, "/health").await.status, 200);

    // Reload: health stays, ready goes, metrics joins health's address, a new address appears.
    let res = ops
        .apply(
            &endpoints(&["127.0.0.1:0"], &[], &["127.0.0.1:0", "[::1]:0"]),
            no_ready(),
        )
        .await;
    match res {
        Ok(()) => assert_eq!(get(addr_of(&ops, "[::1]:0"), "/metrics").await.status, 200),
        Err(e) => {
            // Hosts without IPv6 cannot bind [::1]; the rest does not depend on it.
            assert!(e.starts_with("listen tcp [::1]:0: bind: "), "{e}");
            assert_eq!(ops.bound_addrs().len(), 2, "a failed apply changes nothing");
            ops.apply(
                &endpoints(&["127.0.0.1:0"], &[], &["127.0.0.1:0"]),
                no_ready(),
            )
            .await
            .unwrap();
        }
    }
    assert_eq!(addr_of(&ops, "127.0.0.1:0"), h, "same socket, same port");
    assert_eq!(
        get_on(&mut kept, "/health").await.status,
        200,
        "the connection from before the reload still works"
    );
    assert_eq!(
        get_on(&mut kept, "/metrics").await.status,
        200,
        "new path on the kept listener"
    );
    assert!(refused(r).await, "the removed ready listener is closed");
    assert!(ops.bound_addrs().iter().all(|(c, _)| c != "localhost:0"));

    // Paths removed from a kept listener stop being served there.
    ops.apply(&endpoints(&["127.0.0.1:0"], &[], &[]), no_ready())
        .await
        .unwrap();
    assert_eq!(addr_of(&ops, "127.0.0.1:0"), h);
    assert_eq!(get(h, "/metrics").await.status, 404);
    assert_eq!(get(h, "/health").await.status, 200);
    assert_eq!(ops.bound_addrs().len(), 1);

    // Nothing configured: everything closes.
    ops.apply(&[], no_ready()).await.unwrap();
    assert!(ops.bound_addrs().is_empty());
    assert!(refused(h).await);
}

#[tokio::test]
async fn bind_failure_is_reported_and_leaves_the_running_set_alone() {
    let ops = Ops::new();
    ops.apply(&endpoints(&["127.0.0.1:0"], &[], &[]), no_ready())
        .await
        .unwrap();
    let h = addr_of(&ops, "127.0.0.1:0");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let busy = format!("127.0.0.1:{port}");
    let err = ops
        .apply(
            &endpoints(&["127.0.0.1:0"], &[busy.as_str()], &[]),
            no_ready(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!("listen tcp {busy}: bind: address already in use")
    );
    assert_eq!(ops.bound_addrs(), vec![("127.0.0.1:0".to_string(), h)]);
    assert_eq!(get(h, "/health").await.status, 200);

    // Also when the failing address replaces the running one: the old one is restored.
    let err = ops
        .apply(&endpoints(&[busy.as_str()], &[], &[]), no_ready())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!("listen tcp {busy}: bind: address already in use")
    );
    let restored = addr_of(&ops, "127.0.0.1:0");
    assert_eq!(get(restored, "/health").await.status, 200);

    let err = ops
        .apply(&endpoints(&["localhost"], &[], &[]), no_ready())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "listen tcp localhost: address localhost: missing port in address"
    );
    ops.shutdown().await;
}

#[tokio::test]
async fn an_address_can_replace_one_it_collides_with() {
    let ops = Ops::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let specific = format!("127.0.0.1:{port}");
    let wildcard = format!(":{port}");
    ops.apply(&endpoints(&[specific.as_str()], &[], &[]), no_ready())
        .await
        .unwrap();
    // `:PORT` needs the port on every interface, which 127.0.0.1:PORT holds until it goes.
    ops.apply(&endpoints(&[wildcard.as_str()], &[], &[]), no_ready())
        .await
        .unwrap();
    let bound = ops.bound_addrs();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].0, wildcard);
    assert!(bound[0].1.ip().is_unspecified());
    assert_eq!(bound[0].1.port(), port);
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    assert_eq!(get(loopback, "/health").await.status, 200);
    ops.shutdown().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let ops = Ops::with_limits(Duration::from_millis(200), 2);
    ops.apply(&endpoints(&["127.0.0.1:0"], &[], &[]), no_ready())
        .await
        .unwrap();
    let h = addr_of(&ops, "127.0.0.1:0");

    // A client that never finishes its request head is disconnected.
    let mut slow = TcpStream::connect(h).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let mut buf = Vec::new();
    let started = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );

    // At most two connections: a third is closed at once, without an answer.
    let mut a = TcpStream::connect(h).await.unwrap();
    let mut b = TcpStream::connect(h).await.unwrap();
    assert_eq!(get_on(&mut a, "/health").await.status, 200);
    assert_eq!(get_on(&mut b, "/health").await.status, 200);
    let mut c = TcpStream::connect(h).await.unwrap();
    let _ = c
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut buf))
        .await
        .expect("closed at once");
    assert!(n.is_err() || buf.is_empty(), "no answer over the cap");
    // Once one closes, new connections are served again.
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(h, "/health").await.status, 200);
    ops.shutdown().await;
}

#[tokio::test]
async fn health_listener_probes_itself() {
    let ops = Ops::new();
    ops.set_health_probe_interval(Duration::from_millis(20));
    let before = HEALTH_DURATION.get_sample_count();
    ops.apply(&endpoints(&["127.0.0.1:0"], &[], &[]), no_ready())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while HEALTH_DURATION.get_sample_count() < before + 3 {
        assert!(Instant::now() < deadline, "no self-probes recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ops.shutdown().await;
}

#[tokio::test]
async fn probe_succeeds_on_http_and_fails_otherwise() {
    let ops = Ops::new();
    ops.apply(&endpoints(&[], &[], &["127.0.0.1:0"]), no_ready())
        .await
        .unwrap();
    let m = addr_of(&ops, "127.0.0.1:0");
    // Any HTTP answer is a success (even a 404), as with CoreDNS's Go client.
    assert_eq!(probe_once(m, "/health").await, Ok(()));
    ops.shutdown().await;
    assert!(
        probe_once(m, "/health").await.is_err(),
        "nothing listens any more"
    );

    // Something that is not HTTP.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
    });
    assert_eq!(
        probe_once(a, "/health").await,
        Err("malformed HTTP response".to_string())
    );
}

#[tokio::test]
async fn resolves_corefile_addresses() {
    assert_eq!(resolve(":8080").await, Ok(Target::All(8080)));
    assert_eq!(
        resolve("localhost:9153").await,
        Ok(Target::One("127.0.0.1:9153".parse().unwrap()))
    );
    assert_eq!(
        resolve("[::1]:9153").await,
        Ok(Target::One("[::1]:9153".parse().unwrap()))
    );
    assert_eq!(
        resolve("10.1.2.3:0").await,
        Ok(Target::One("10.1.2.3:0".parse().unwrap()))
    );
    assert_eq!(
        resolve(":http").await,
        Err(r#"listen tcp :http: invalid port "http""#.to_string())
    );
    assert_eq!(
        resolve("::1:53").await,
        Err("listen tcp ::1:53: address ::1:53: too many colons in address".to_string())
    );
}

#[test]
fn probes_wildcards_over_loopback() {
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(probe_target(sa("0.0.0.0:80"), false), sa("127.0.0.1:80"));
    assert_eq!(probe_target(sa("[::]:80"), true), sa("127.0.0.1:80"));
    assert_eq!(probe_target(sa("[::]:80"), false), sa("[::1]:80"));
    assert_eq!(probe_target(sa("10.0.0.1:80"), false), sa("10.0.0.1:80"));
}

#[test]
fn routes_merge_per_address() {
    let d = desired_routes(&endpoints(
        &[":8080"],
        &[":8080", ":8181"],
        &["localhost:9153"],
    ));
    let paths = |a: &str| -> Vec<&str> { d[a].paths.iter().map(|(p, _)| *p).collect() };
    assert_eq!(paths(":8080"), ["/health", "/ready"]);
    assert_eq!(paths(":8181"), ["/ready"]);
    assert_eq!(paths("localhost:9153"), ["/metrics"]);
    assert_eq!(d.len(), 3);
    assert!(d.values().all(|r| r.other.is_none()));
    assert_eq!(d[":8080"].probe().map(|(p, _)| p), Some("/health"));
    assert!(d[":8181"].probe().is_none());

    // The first registration of an address and path wins; a catch-all joins the paths.
    let pod = |addr: &str| HttpEndpoint::new(addr, None, Arc::new(Metrics));
    let mut e = endpoints(&[":8080"], &[], &[]);
    e.extend(endpoints(&[":8080"], &[], &[]));
    e.push(pod(":8080"));
    e.push(pod(":8080"));
    let d = desired_routes(&e);
    assert_eq!(d[":8080"].paths.len(), 1);
    assert!(Arc::ptr_eq(&d[":8080"].paths[0].1, &e[0].handler));
    assert!(Arc::ptr_eq(
        d[":8080"].other.as_ref().unwrap(),
        &e[2].handler
    ));
}
