//! Faults, with the real binary: the API server failing and slow, DoT upstreams misbehaving in
//! every way the harness knows, reloads and SIGTERM under load. Each test checks that answers stay
//! correct throughout, that exdns recovers by itself, and that memory and file descriptors stay
//! bounded (RSS and open fds read from /proc before and after).
//!
//! Every wait is a bounded poll; the only timing assertions are "answered before the client gave
//! up", which is behaviour, not speed.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::json;

use support::fake_apiserver::FakeApiServer;
use support::fwd::{POLL, a_of, ca_bundle, udp_timed, wait_until};
use support::tlsecho::{Behavior, TlsEcho, TlsEchoOpts};
use support::*;

const NET: &str = "networking.k8s.io";
const READY: &str = "127.0.0.2:0";

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn ipv4s(m: &Message) -> Vec<String> {
    a_of(m).iter().map(|a| a.to_string()).collect()
}

/// One A query over UDP with a 3 s client timeout; `None` when no reply came.
fn ask_a(addr: SocketAddr, name: &str) -> Option<Message> {
    udp_timed(
        addr,
        &query(name, RecordType::A, Some(1232)),
        Duration::from_secs(3),
    )
    .0
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes API server failing and slow

fn ingress(host: &str, ip: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "shop", "port": {"number": 80}}}}]}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    })
}

#[test]
fn api_server_500s_and_slowness_keep_the_last_good_answers_and_recover() {
    let c = FakeApiServer::start_with_defaults();
    c.create(
        NET,
        "v1",
        "ingresses",
        ingress("shop.example.com", "203.0.113.5"),
    );
    let kubeconfig = c.kubeconfig_yaml();
    let ex = Exdns::start_with(
        &format!(
            "example.com:0 {{\n  k8s_gateway {{\n    kubeconfig kubeconfig.yaml\n  }}\n  ready {READY}\n}}\n"
        ),
        &[("kubeconfig.yaml", &kubeconfig)],
        &[],
    );
    let pid = ex.child.id();
    assert!(wait_until(POLL, || http_get(ex.http_addr(READY), "/ready")
        .0
        == 200));
    let shop = |ex: &Exdns| ipv4s(&ask_a(ex.dns(), "shop.example.com.").expect("a reply"));
    assert_eq!(shop(&ex), ["203.0.113.5"]);
    let (rss0, fds0) = (rss_kib(pid), fds(pid));

    // Every watch is cut and the next requests fail with 500 InternalError: the watchers back off
    // and retry, and meanwhile the last good data is served and exdns stays ready.
    c.fail_next(6, 500);
    c.drop_watches();
    c.update(
        NET,
        "v1",
        "ingresses",
        ingress("shop.example.com", "203.0.113.6"),
    );
    let mut answers_during = 0;
    let ok = wait_until(POLL, || {
        let a = shop(&ex);
        assert!(
            a == ["203.0.113.5"] || a == ["203.0.113.6"],
            "only the old or the new address: {a:?}"
        );
        answers_during += 1;
        a == ["203.0.113.6"]
    });
    assert!(
        ok,
        "the change made during the 500s arrives after them\n{}",
        ex.output()
    );
    assert!(
        answers_during > 1,
        "queries were answered during the errors"
    );
    assert_eq!(http_get(ex.http_addr(READY), "/ready").0, 200);

    // A slow API server (1.5 s per request): queries are answered from the snapshot, never
    // waiting for it; the change arrives once the slow watch delivers it.
    c.set_latency(Duration::from_millis(1500));
    c.drop_watches();
    c.update(
        NET,
        "v1",
        "ingresses",
        ingress("shop.example.com", "203.0.113.7"),
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1000) {
        let (m, took) = udp_timed(
            ex.dns(),
            &query("shop.example.com.", RecordType::A, None),
            Duration::from_secs(1),
        );
        let m = m.unwrap_or_else(|| panic!("no answer while the API server is slow ({took:?})"));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(wait_until(POLL, || shop(&ex) == ["203.0.113.7"]));
    c.set_latency(Duration::ZERO);

    // Nothing piled up: a few MiB of slack for allocator noise, no leaked sockets.
    let (rss1, fds1) = (rss_kib(pid), fds(pid));
    assert!(rss1 < rss0 + 16 * 1024, "RSS {rss0} KiB → {rss1} KiB");
    assert!(fds1 <= fds0 + 4, "open fds {fds0} → {fds1}");
    assert!(
        !ex.output().contains("failed with status"),
        "no bare kube client lines:\n{}",
        ex.output()
    );
    assert!(
        ex.output()
            .lines()
            .any(|l| l.contains("list/watch of ingresses failed") && l.contains("injected fault")),
        "the API errors are logged with the Status message:\n{}",
        ex.output()
    );
}

// ---------------------------------------------------------------------------------------------
// DoT upstreams misbehaving

#[test]
fn every_upstream_misbehaviour_is_a_servfail_within_the_timeout_and_recovers() {
    let up = TlsEcho::start(TlsEchoOpts::new());
    let dir = tempfile::tempdir().unwrap();
    let bundle = ca_bundle(dir.path(), "ca.pem", &[up.ca_pem.as_path()]);
    let corefile = format!(
        ".:0 {{\n  hosts {{\n    192.0.2.1 local.test\n    fallthrough\n  }}\n  forward . tls://{} {{\n    tls {}\n    tls_servername dns.example.test\n    read_timeout 500ms\n    health_check 200ms\n  }}\n}}\n",
        up.addr,
        bundle.display()
    );
    let ex = Exdns::start(&corefile);
    let pid = ex.child.id();
    // No reply within ask_a's 3 s counts as not yet recovered: a health probe or query that
    // began a handshake while the upstream stalled handshakes keeps waiting for it (up to the
    // 5 s dial timeout) after the upstream answers again, and queries queued behind it with it.
    let good = |i: &str| {
        ask_a(ex.dns(), &format!("good-{i}.example.test.")).is_some_and(|m| {
            m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
        })
    };
    assert!(good("0"));
    let (rss0, fds0) = (rss_kib(pid), fds(pid));

    // A reply for another question is FORMERR, as CoreDNS's forward answers it; every other
    // failure is SERVFAIL.
    for (round, (b, rcode)) in [
        (Behavior::Garbage, ResponseCode::ServFail),
        (Behavior::WrongId, ResponseCode::ServFail),
        (Behavior::WrongQuestion, ResponseCode::FormErr),
        (Behavior::CloseOnQuery, ResponseCode::ServFail),
        (Behavior::Hang, ResponseCode::ServFail),
        (Behavior::CloseOnAccept, ResponseCode::ServFail),
        (Behavior::StallHandshake, ResponseCode::ServFail),
    ]
    .into_iter()
    .enumerate()
    {
        up.set_behavior(b);
        up.close_connections();
        // The failing name: an error rcode within forward's 5 s whole-request deadline (as
        // CoreDNS's), before a stub resolver's usual 5–6 s timeout; a stalled handshake is the
        // slowest case (dial timeout = that deadline).
        let name = format!("bad-{round}.example.test.");
        let (m, took) = udp_timed(
            ex.dns(),
            &query(&name, RecordType::A, Some(1232)),
            Duration::from_secs(6),
        );
        let m = m.unwrap_or_else(|| panic!("{b:?}: no answer within 6 s\n{}", ex.output()));
        assert_eq!(m.metadata.response_code, rcode, "{b:?}: {m:?}");
        assert!(m.answers.is_empty(), "{b:?}: nothing relayed");
        assert!(took < Duration::from_millis(5500), "{b:?} took {took:?}");
        // The rest of the server is unaffected.
        let local = ask_a(ex.dns(), "local.test.").expect("hosts answers");
        assert_eq!(ipv4s(&local), ["192.0.2.1"], "{b:?}");

        // The upstream behaves again: forwarding resumes by itself.
        up.set_behavior(Behavior::Answer);
        let mut n = 0;
        assert!(
            wait_until(POLL, || {
                n += 1;
                good(&format!("{round}-{n}"))
            }),
            "{b:?}: no recovery\n{}",
            ex.output()
        );
    }

    let (rss1, fds1) = (rss_kib(pid), fds(pid));
    assert!(rss1 < rss0 + 16 * 1024, "RSS {rss0} KiB → {rss1} KiB");
    assert!(
        fds1 <= fds0 + 4,
        "open fds {fds0} → {fds1}: no leaked upstream sockets"
    );
}

// ---------------------------------------------------------------------------------------------
// Signals under load

/// What the load threads saw.
#[derive(Default)]
struct Tally {
    /// (sent at, answered, the A addresses answered)
    queries: Vec<(Instant, bool, Vec<String>)>,
}

/// `threads` UDP clients and one TCP client (one connection, one query at a time) asking
/// `name` A until `stop`; a UDP query unanswered within 2 s counts as lost.
fn load(
    addr: SocketAddr,
    name: &'static str,
    threads: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut hs = Vec::new();
    for _ in 0..threads {
        let (stop, tally) = (stop.clone(), tally.clone());
        hs.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let (m, _) = udp_timed(
                    addr,
                    &query(name, RecordType::A, None),
                    Duration::from_secs(2),
                );
                let ips = m.as_ref().map(ipv4s).unwrap_or_default();
                tally.lock().unwrap().queries.push((at, m.is_some(), ips));
            }
        }));
    }
    let (stop, tally) = (stop.clone(), tally.clone());
    hs.push(std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return;
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            let q = query(name, RecordType::A, None);
            write_framed(&mut s, &q.to_vec().unwrap());
            let m = read_framed(&mut s).and_then(|b| Message::from_vec(&b).ok());
            let answered = m.is_some();
            let ips = m.as_ref().map(ipv4s).unwrap_or_default();
            tally.lock().unwrap().queries.push((at, answered, ips));
            if !answered {
                return; // the connection is gone
            }
        }
    }));
    hs
}

fn hosts_corefile(ip: &str) -> String {
    format!(
        ".:0 {{\n  bind 127.0.0.1\n  health 127.0.0.1:0 {{\n    lameduck 1s\n  }}\n  hosts {{\n    {ip} svc.test\n  }}\n}}\n"
    )
}

#[test]
fn reloads_under_load_lose_no_query_and_switch_answers() {
    let ex = Exdns::start(&hosts_corefile("192.0.2.1"));
    let pid = ex.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let hs = load(ex.dns(), "svc.test.", 3, stop.clone(), tally.clone());
    std::thread::sleep(Duration::from_millis(200));
    let (rss0, fds0) = (rss_kib(pid), fds(pid));

    // Ten edits, each followed by SIGHUP, alternating the address. Each reload is awaited (its
    // log line) before the next edit: signals sent while a reload runs are coalesced, as they
    // should be, and on a slow machine that would make the count below depend on timing.
    const RELOADED: &str = "Running configuration SHA512";
    for i in 0..10 {
        let ip = if i % 2 == 0 { "192.0.2.2" } else { "192.0.2.1" };
        ex.replace("Corefile", &hosts_corefile(ip));
        ex.signal(libc::SIGHUP);
        assert!(
            wait_until(POLL, || ex.count_lines(RELOADED) > i),
            "reload {i} done\n{}",
            ex.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The last edit (i = 9) set 192.0.2.1; make the final state distinct and wait for it.
    ex.replace("Corefile", &hosts_corefile("192.0.2.3"));
    ex.signal(libc::SIGHUP);
    assert!(wait_until(POLL, || {
        ask_a(ex.dns(), "svc.test.").map(|m| ipv4s(&m)) == Some(vec!["192.0.2.3".to_string()])
    }));
    assert!(
        wait_until(POLL, || ex.count_lines(RELOADED) >= 11),
        "11 reloads logged\n{}",
        ex.output()
    );
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }

    let t = tally.lock().unwrap();
    let lost = t.queries.iter().filter(|q| !q.1).count();
    assert!(
        t.queries.len() > 100,
        "load ran: {} queries",
        t.queries.len()
    );
    assert_eq!(lost, 0, "{lost} of {} queries lost", t.queries.len());
    for (_, _, ips) in &t.queries {
        assert!(
            matches!(
                ips.as_slice(),
                [a] if ["192.0.2.1", "192.0.2.2", "192.0.2.3"].contains(&a.as_str())
            ),
            "each answer is one whole config's: {ips:?}"
        );
    }
    let seen2 = t
        .queries
        .iter()
        .filter(|q| q.2 == ["192.0.2.2".to_string()])
        .count();
    assert!(seen2 > 0, "the reloaded address was served under load");
    let (rss1, fds1) = (rss_kib(pid), fds(pid));
    assert!(rss1 < rss0 + 16 * 1024, "RSS {rss0} KiB → {rss1} KiB");
    assert!(fds1 <= fds0 + 4, "open fds {fds0} → {fds1}");
}

#[test]
fn sigterm_under_load_answers_every_query_sent_in_the_lameduck_window() {
    let mut ex = Exdns::start(&hosts_corefile("192.0.2.1"));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let hs = load(ex.dns(), "svc.test.", 3, stop.clone(), tally.clone());
    std::thread::sleep(Duration::from_millis(300));
    let term = Instant::now();
    ex.signal(libc::SIGTERM);
    let code = ex.wait_exit(Duration::from_secs(10));
    let exited = Instant::now();
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(code, Some(0), "{}", ex.output());
    assert!(
        exited - term >= Duration::from_millis(900),
        "lameduck lasted ~1 s"
    );

    let t = tally.lock().unwrap();
    // Everything sent before SIGTERM + most of the lameduck second was answered, correctly.
    let window = term + Duration::from_millis(800);
    let inside: Vec<_> = t.queries.iter().filter(|q| q.0 < window).collect();
    let during = inside.iter().filter(|q| q.0 >= term).count();
    assert!(
        during > 20,
        "load continued into lameduck: {during} queries"
    );
    let lost: Vec<_> = inside.iter().filter(|q| !q.1).collect();
    assert!(
        lost.is_empty(),
        "{} of {} queries sent before the lameduck ended were lost",
        lost.len(),
        inside.len()
    );
    assert!(
        inside.iter().all(|q| q.2 == ["192.0.2.1".to_string()]),
        "every answer correct"
    );
}
