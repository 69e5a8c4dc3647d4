//! Soak, not a test of the default suite: `make soak` (SOAK_SECS, default 600).
//!
//! One exdns process serves, for SOAK_SECS seconds, a mixed load while its cluster churns:
//! - authoritative over UDP: dnsperf at SOAK_AUTH_QPS (90 % names that exist, 10 % NXDOMAIN) for
//!   `soak.test`, served by k8s_gateway from the fake Kubernetes API server (OBJECTS Ingresses);
//! - authoritative over TCP: dnsperf `-m tcp` at SOAK_TCP_QPS on persistent connections;
//! - forwarded over DNS over TLS: dnsperf at SOAK_FWD_QPS for names under `fwd.test`, which a real
//!   unbound answers (TLS, its own CA and server name), with exdns's `cache` (TTL 5 s) in front;
//! - churn: SOAK_CHURN updates/s to the Ingresses' addresses, plus one Ingress deleted and one
//!   created per second;
//! - a connection flood (SOAK_FLOOD_CONNS, 1200; 0: none): from a tenth of the run until a tenth
//!   before its end, cycles of SOAK_FLOOD_CONNS idle TCP connections — more than the listener's
//!   cap of 1024 — from SOAK_FLOOD_SOURCES (10) loopback addresses 127.0.2.x, held
//!   SOAK_FLOOD_HOLD seconds (5) while a new TCP client asks one query every 0.5 s, then closed,
//!   then SOAK_FLOOD_PAUSE seconds (5) without.
//!
//! Every 10 s it samples exdns's RSS and open file descriptors, between flood cycles (a sample
//! waits for the flood's quiet phase). At the end it writes `bench/results/soak.md` and fails
//! when: any query was lost, any answer had an rcode other than NOERROR/NXDOMAIN, RSS over the
//! last quarter of the run exceeds the peak of the second quarter (after warm-up) by more than
//! 10 % + 4 MiB, the open fds grew by more than 4; and, with the flood: no connection was shed
//! (`exdns_tcp_connections_shed_total`), a new TCP client's query went unanswered (2 s), no TCP
//! query was answered while a flood was held, the fds did not come back within 4 of their
//! pre-flood count after the last cycle, or the RSS at the last cycle's peak exceeds the first
//! half's cycle peaks by more than 10 % + 4 MiB.
//!
//! `cargo test --release --test soak -- --ignored --nocapture` (what `make soak` runs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::fake_apiserver::FakeApiServer;
use support::unbound::{Unbound, UnboundOpts};
use support::{Exdns, connect_from, fd_count, have, http_get, raise_nofile, rss_kib};

const ZONE: &str = "soak.test";
const READY: &str = "127.0.0.2:0";
const METRICS: &str = "127.0.0.3:0";

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn ingress(i: usize, ip: Ipv4Addr) -> Value {
    let host = format!("ing{i}.{ZONE}");
    json!({
        "metadata": {"name": format!("ing{i}"), "namespace": format!("team{}", i % 20)},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}},
    })
}

/// One query (`ing1.soak.test A`) over a new TCP connection from 127.0.0.1: the time to its
/// answer, None if none came within 2 s (or the connection failed).
fn tcp_probe(to: SocketAddr, id: u16) -> Option<Duration> {
    let t = Instant::now();
    let mut s = connect_from(Ipv4Addr::LOCALHOST, to)?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut q = vec![0, 0];
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["ing1", "soak", "test"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let len = (q.len() - 2) as u16;
    q[..2].copy_from_slice(&len.to_be_bytes());
    s.write_all(&q).ok()?;
    let mut head = [0u8; 6];
    s.read_exact(&mut head).ok()?;
    // The ID matches and the rcode is NOERROR or NXDOMAIN (a name churned away for a moment).
    let rcode = head[5] & 0x0f;
    (u16::from_be_bytes([head[2], head[3]]) == id && (rcode == 0 || rcode == 3))
        .then(|| t.elapsed())
}

/// The sum of every sample of metric `name` whose labels contain `filter` (e.g. `proto="tcp"`).
fn metric_sum(metrics: SocketAddr, name: &str, filter: &str) -> f64 {
    let (status, _, body) = http_get(metrics, "/metrics");
    assert_eq!(status, 200, "/metrics");
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && l.contains(filter)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One cycle of the connection flood.
#[derive(Debug, Default)]
struct Cycle {
    /// Seconds into the run when it began.
    t: u64,
    opened: usize,
    /// Connections not established within 2 s.
    failed: usize,
    /// exdns's open fds and RSS (KiB) once the flood was open.
    held_fds: usize,
    held_rss: u64,
    /// exdns's open fds once the flood was closed and had settled (≤ 5 s).
    fds_after: usize,
    /// Connections exdns shed during the cycle.
    shed: u64,
    probes: usize,
    answered: usize,
    probe_max: Duration,
    /// TCP answers exdns gave while the flood was held (mostly dnsperf's), and over how long.
    tcp_answers: u64,
    held_for: Duration,
}

/// Flood settings (SOAK_FLOOD_*).
struct Flood {
    conns: usize,
    sources: u8,
    hold: Duration,
    pause: Duration,
}

/// Cycles of the connection flood from `start` until `end` (time since `started`), or until
/// `stop`. Each cycle holds `quiet` while it runs, so samples are taken between cycles.
#[allow(clippy::too_many_arguments)]
fn flood(
    cfg: &Flood,
    dns: SocketAddr,
    metrics: SocketAddr,
    pid: u32,
    started: Instant,
    (start, end): (Duration, Duration),
    quiet: &Mutex<()>,
    stop: &AtomicBool,
) -> (usize, Vec<Cycle>) {
    let sleep_until = |t: Duration| {
        while !stop.load(Ordering::Relaxed) && started.elapsed() < t {
            thread::sleep(Duration::from_millis(100).min(t.saturating_sub(started.elapsed())));
        }
    };
    sleep_until(start);
    let base_fds = fd_count(pid);
    let shed_total = || metric_sum(metrics, "exdns_tcp_connections_shed_total", "");
    let tcp_answers = || {
        metric_sum(
            metrics,
            "coredns_dns_response_size_bytes_count",
            "proto=\"tcp\"",
        )
    };
    let mut cycles = Vec::new();
    let mut id = 0u16;
    // A cycle lasts about hold + pause + the time to open and settle (~1–2 s).
    while !stop.load(Ordering::Relaxed)
        && started.elapsed() + cfg.hold + Duration::from_secs(2) < end
    {
        let guard = quiet.lock().unwrap();
        let mut c = Cycle {
            t: started.elapsed().as_secs(),
            ..Default::default()
        };
        let shed0 = shed_total();
        let mut held = Vec::with_capacity(cfg.conns);
        for i in 0..cfg.conns {
            let from = Ipv4Addr::new(127, 0, 2, 1 + (i % cfg.sources as usize) as u8);
            match connect_from(from, dns) {
                Some(s) => held.push(s),
                None => c.failed += 1,
            }
        }
        c.opened = held.len();
        c.held_fds = fd_count(pid);
        c.held_rss = rss_kib(pid);
        let tcp0 = tcp_answers();
        let held_at = Instant::now();
        while held_at.elapsed() < cfg.hold && !stop.load(Ordering::Relaxed) {
            id = id.wrapping_add(1);
            c.probes += 1;
            if let Some(d) = tcp_probe(dns, id) {
                c.answered += 1;
                c.probe_max = c.probe_max.max(d);
            }
            thread::sleep(
                Duration::from_millis(500).min(cfg.hold.saturating_sub(held_at.elapsed())),
            );
        }
        c.tcp_answers = (tcp_answers() - tcp0) as u64;
        c.held_for = held_at.elapsed();
        drop(held);
        let settle = Instant::now();
        while fd_count(pid) > base_fds + 4 && settle.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(50));
        }
        c.fds_after = fd_count(pid);
        c.shed = (shed_total() - shed0) as u64;
        drop(guard);
        cycles.push(c);
        sleep_until(started.elapsed() + cfg.pause);
    }
    (base_fds, cycles)
}

/// A dnsperf run in the background; its report is parsed at the end.
struct Perf {
    what: &'static str,
    child: Child,
}

/// What one dnsperf run reported.
#[derive(Debug, Default)]
struct PerfResult {
    sent: u64,
    completed: u64,
    lost: u64,
    /// rcode name → count
    rcodes: Vec<(String, u64)>,
    qps: f64,
}

/// dnsperf at `qps` for SOAK_SECS: `-n` passes through the file (not `-l`, which ends the run
/// with up to `-q` queries still in flight and counts them as lost).
fn dnsperf(
    what: &'static str,
    port: u16,
    data: &std::path::Path,
    qps: u64,
    extra: &[&str],
) -> Perf {
    let secs = env_or("SOAK_SECS", 600u64);
    let lines = std::fs::read_to_string(data).unwrap().lines().count() as u64;
    let passes = (qps * secs).div_ceil(lines.max(1)).max(1).to_string();
    let child = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(data)
        .args(["-n", &passes, "-t", "3", "-Q", &qps.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dnsperf");
    Perf { what, child }
}

fn parse(out: &str) -> PerfResult {
    let num = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let mut r = PerfResult {
        sent: num("Queries sent:"),
        completed: num("Queries completed:"),
        lost: num("Queries lost:"),
        ..Default::default()
    };
    if let Some(l) = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Response codes:"))
    {
        // "NOERROR 123 (90.00%), NXDOMAIN 12 (10.00%)"
        for part in l.split(',') {
            let mut it = part.split_whitespace();
            if let (Some(code), Some(n)) = (it.next(), it.next().and_then(|n| n.parse().ok())) {
                r.rcodes.push((code.to_string(), n));
            }
        }
    }
    r.qps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    r
}

#[test]
#[ignore = "a 10-minute soak: make soak"]
fn soak() {
    for t in ["dnsperf", "unbound"] {
        assert!(have(t), "{t} is missing (apt-get install dnsperf unbound)");
    }
    let secs: u64 = env_or("SOAK_SECS", 600);
    let objects: usize = env_or("SOAK_OBJECTS", 2000);
    let auth_qps: u64 = env_or("SOAK_AUTH_QPS", 3000);
    let tcp_qps: u64 = env_or("SOAK_TCP_QPS", 1000);
    let fwd_qps: u64 = env_or("SOAK_FWD_QPS", 1000);
    let churn: u64 = env_or("SOAK_CHURN", 20);
    let fwd_names = 2000;
    let flood_cfg = Flood {
        conns: env_or("SOAK_FLOOD_CONNS", 1200),
        sources: env_or("SOAK_FLOOD_SOURCES", 10u8).max(1),
        hold: Duration::from_secs(env_or("SOAK_FLOOD_HOLD", 5)),
        pause: Duration::from_secs(env_or("SOAK_FLOOD_PAUSE", 5)),
    };
    // The flood's window: a tenth of the run (≥ 5 s) of warm-up before, as much quiet after.
    let margin = Duration::from_secs((secs / 10).max(5));
    let flood_window = (margin, Duration::from_secs(secs).saturating_sub(margin));
    if flood_cfg.conns > 0 {
        let limit = raise_nofile();
        assert!(
            limit > flood_cfg.conns as libc::rlim_t + 256,
            "the limit on open files ({limit}) is too low for a flood of {} connections",
            flood_cfg.conns
        );
    }

    // The cluster.
    let api = FakeApiServer::start_with_defaults();
    for i in 0..objects {
        api.create(
            "networking.k8s.io",
            "v1",
            "ingresses",
            ingress(i, Ipv4Addr::from(0x0A00_0000 + i as u32)),
        );
    }
    // The DoT upstream: fwd.test answered from memory, TTL 5 s.
    let mut ub = UnboundOpts::new().static_zone("fwd.test.").threads(1);
    for i in 0..fwd_names {
        ub = ub.data(&format!(
            "n{i}.fwd.test. 5 IN A {}",
            Ipv4Addr::from(0xC000_0200 + (i as u32 % 250))
        ));
    }
    let ub = Unbound::start(ub);

    let work = tempfile::tempdir().unwrap();
    let corefile = format!(
        "{ZONE}:0 {{\n  bind 127.0.0.1\n  k8s_gateway {{\n    kubeconfig kubeconfig.yaml\n  }}\n  ready {READY}\n  prometheus {METRICS}\n  errors\n}}\n\
         fwd.test:0 {{\n  bind 127.0.0.1\n  cache 30\n  forward . tls://{} {{\n    tls ca.pem\n    tls_servername {}\n  }}\n  errors\n}}\n",
        ub.tls_addr(),
        ub.server_name()
    );
    let ca = std::fs::read_to_string(&ub.ca_pem).unwrap();
    let ex = Exdns::start_with(
        &corefile,
        &[("kubeconfig.yaml", &api.kubeconfig_yaml()), ("ca.pem", &ca)],
        &[],
    );
    let pid = ex.child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(ex.http_addr(READY), "/ready").0 != 200 {
        assert!(Instant::now() < deadline, "not ready:\n{}", ex.output());
        thread::sleep(Duration::from_millis(100));
    }
    let port = ex.dns().port();

    // Query files.
    let auth = work.path().join("auth.txt");
    let mut s = String::new();
    for i in 0..objects {
        if i % 10 == 9 {
            writeln!(s, "missing{i}.{ZONE} A").unwrap();
        } else {
            writeln!(s, "ing{i}.{ZONE} A").unwrap();
        }
    }
    std::fs::write(&auth, s).unwrap();
    let fwd = work.path().join("fwd.txt");
    let s: String = (0..fwd_names)
        .map(|i| format!("n{i}.fwd.test A\n"))
        .collect();
    std::fs::write(&fwd, s).unwrap();

    // Churn: addresses change; one Ingress deleted and re-created per second. Names that are
    // deleted for a moment answer NXDOMAIN, which the rcode check allows.
    let stop = AtomicBool::new(false);
    let updates = AtomicUsize::new(0);
    let churner = |api: &FakeApiServer| {
        let period = Duration::from_micros(1_000_000 / churn.max(1));
        let mut j = 0usize;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let i = (j * 7919) % objects;
            let ip = Ipv4Addr::from(0xAC10_0000 + (j as u32 % 0x0010_0000));
            if j.is_multiple_of(churn as usize) {
                let ns = format!("team{}", i % 20);
                api.delete(
                    "networking.k8s.io",
                    "v1",
                    "ingresses",
                    &ns,
                    &format!("ing{i}"),
                );
                api.create("networking.k8s.io", "v1", "ingresses", ingress(i, ip));
            } else {
                api.update("networking.k8s.io", "v1", "ingresses", ingress(i, ip));
            }
            updates.fetch_add(1, Ordering::Relaxed);
            j += 1;
            next += period;
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                thread::sleep(d);
            }
        }
    };

    let perfs = vec![
        dnsperf("authoritative UDP", port, &auth, auth_qps, &["-c", "4"]),
        dnsperf(
            "authoritative TCP",
            port,
            &auth,
            tcp_qps,
            &["-m", "tcp", "-c", "8"],
        ),
        dnsperf("forwarded DoT (cached)", port, &fwd, fwd_qps, &["-c", "2"]),
    ];

    // Samples every 10 s while the churn (and the flood) runs; a sample waits for the flood's
    // quiet phase.
    let started = Instant::now();
    let metrics = ex.http_addr(METRICS);
    let dns = support::loopback(ex.dns());
    let shed_before = metric_sum(metrics, "exdns_tcp_connections_shed_total", "");
    let quiet = Mutex::new(());
    let flood_stop = AtomicBool::new(false);
    let mut samples: Vec<(u64, u64, usize)> = Vec::new();
    let mut results = Vec::new();
    let mut flood_out = (0, Vec::new());
    thread::scope(|sc| {
        let ch = sc.spawn(|| churner(&api));
        let fl = (flood_cfg.conns > 0).then(|| {
            sc.spawn(|| {
                flood(
                    &flood_cfg,
                    dns,
                    metrics,
                    pid,
                    started,
                    flood_window,
                    &quiet,
                    &flood_stop,
                )
            })
        });
        while started.elapsed() < Duration::from_secs(secs) {
            {
                let _quiet = quiet.lock().unwrap();
                samples.push((started.elapsed().as_secs(), rss_kib(pid), fd_count(pid)));
            }
            let left = Duration::from_secs(secs).saturating_sub(started.elapsed());
            thread::sleep(left.min(Duration::from_secs(10)));
        }
        flood_stop.store(true, Ordering::Relaxed);
        if let Some(fl) = fl {
            flood_out = fl.join().unwrap();
        }
        for p in perfs {
            let out = p.child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            results.push((p.what, parse(&text), text));
        }
        stop.store(true, Ordering::Relaxed);
        ch.join().unwrap();
    });
    let (flood_base_fds, cycles) = flood_out;
    let shed = metric_sum(metrics, "exdns_tcp_connections_shed_total", "") - shed_before;
    thread::sleep(Duration::from_secs(1));
    samples.push((started.elapsed().as_secs(), rss_kib(pid), fd_count(pid)));

    // Verdicts.
    let n = samples.len();
    let q2 = &samples[n / 4..(n / 2).max(n / 4 + 1)];
    let q4 = &samples[(3 * n / 4).min(n - 1)..];
    let warm_peak = q2.iter().map(|s| s.1).max().unwrap();
    let end_peak = q4.iter().map(|s| s.1).max().unwrap();
    let warm_fds = q2.iter().map(|s| s.2).max().unwrap();
    let end_fds = samples.last().unwrap().2;
    let mut failures = Vec::new();
    if end_peak > warm_peak + warm_peak / 10 + 4096 {
        failures.push(format!("RSS grew: {warm_peak} KiB → {end_peak} KiB"));
    }
    if end_fds > warm_fds + 4 {
        failures.push(format!("open fds grew: {warm_fds} → {end_fds}"));
    }
    if flood_cfg.conns > 0 {
        if cycles.is_empty() {
            failures.push(format!(
                "no flood cycle ran (SOAK_SECS {secs} too short for SOAK_FLOOD_HOLD)"
            ));
        }
        if shed < 1.0 {
            failures.push("the flood made exdns shed no connection".to_string());
        }
        let (probes, answered) = cycles
            .iter()
            .fold((0, 0), |(p, a), c| (p + c.probes, a + c.answered));
        if answered < probes {
            failures.push(format!(
                "a new TCP client during the flood: {} of {probes} queries unanswered within 2 s",
                probes - answered
            ));
        }
        if let Some(c) = cycles.iter().find(|c| c.tcp_answers == 0) {
            failures.push(format!(
                "no TCP query answered while the flood of {} s was held",
                c.t
            ));
        }
        if let Some(last) = cycles.last()
            && last.fds_after > flood_base_fds + 4
        {
            failures.push(format!(
                "open fds after the last flood: {} (before the first: {flood_base_fds})",
                last.fds_after
            ));
        }
        let first_half = cycles[..cycles.len().div_ceil(2)]
            .iter()
            .map(|c| c.held_rss)
            .max()
            .unwrap_or(0);
        if let Some(last) = cycles.last()
            && last.held_rss > first_half + first_half / 10 + 4096
        {
            failures.push(format!(
                "RSS at the flood's peak grew: {first_half} KiB (first half) → {} KiB (last cycle)",
                last.held_rss
            ));
        }
    }
    for (what, r, text) in &results {
        if r.sent == 0 {
            failures.push(format!("{what}: dnsperf sent nothing:\n{text}"));
        }
        if r.lost > 0 {
            failures.push(format!("{what}: {} of {} queries lost", r.lost, r.sent));
        }
        for (code, count) in &r.rcodes {
            if code != "NOERROR" && code != "NXDOMAIN" {
                failures.push(format!("{what}: {count} × {code}"));
            }
        }
    }

    let mut md = String::new();
    writeln!(
        md,
        "# Soak: {secs} s of mixed load with churn{}\n",
        if flood_cfg.conns > 0 {
            " and connection floods"
        } else {
            ""
        }
    )
    .unwrap();
    writeln!(
        md,
        "exdns {}, {objects} Ingresses from the fake API server, {churn} updates/s ({} made), \
         unbound DoT upstream; machine: {} cores.\n",
        support::bin().display(),
        updates.load(Ordering::Relaxed),
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    )
    .unwrap();
    writeln!(
        md,
        "| load | target qps | achieved qps | sent | completed | lost | rcodes |"
    )
    .unwrap();
    writeln!(md, "|---|---|---|---|---|---|---|").unwrap();
    for ((what, r, _), target) in results.iter().zip([auth_qps, tcp_qps, fwd_qps]) {
        let codes: Vec<String> = r.rcodes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        writeln!(
            md,
            "| {what} | {target} | {:.0} | {} | {} | {} | {} |",
            r.qps,
            r.sent,
            r.completed,
            r.lost,
            codes.join(", ")
        )
        .unwrap();
    }
    if flood_cfg.conns > 0 {
        let (probes, answered, tcp, held) =
            cycles
                .iter()
                .fold((0, 0, 0, Duration::ZERO), |(p, a, t, h), c| {
                    (
                        p + c.probes,
                        a + c.answered,
                        t + c.tcp_answers,
                        h + c.held_for,
                    )
                });
        let probe_max = cycles.iter().map(|c| c.probe_max).max().unwrap_or_default();
        writeln!(
            md,
            "\nConnection flood: {} cycles between {} s and {} s, each {} idle TCP connections from {} \
             addresses (127.0.2.x) held {} s, then {} s without; exdns's cap is 1024 per listener, 128 \
             per address. Connections shed by exdns: {shed:.0}. A new TCP client, one query every 0.5 s \
             while a flood was held: {answered} of {probes} answered, slowest in {:.1} ms. TCP answers \
             while floods were held: {tcp} ({:.0}/s, mostly dnsperf's). Open fds before the first \
             cycle: {flood_base_fds}.\n",
            cycles.len(),
            flood_window.0.as_secs(),
            flood_window.1.as_secs(),
            flood_cfg.conns,
            flood_cfg.sources,
            flood_cfg.hold.as_secs(),
            flood_cfg.pause.as_secs(),
            probe_max.as_secs_f64() * 1000.0,
            tcp as f64 / held.as_secs_f64().max(1e-9),
        )
        .unwrap();
        writeln!(
            md,
            "| t (s) | opened | failed | exdns fds held | RSS held (MiB) | fds after | shed | new client answered | slowest (ms) | TCP answers held |\n|---|---|---|---|---|---|---|---|---|---|"
        )
        .unwrap();
        for c in &cycles {
            writeln!(
                md,
                "| {} | {} | {} | {} | {:.1} | {} | {} | {}/{} | {:.1} | {} |",
                c.t,
                c.opened,
                c.failed,
                c.held_fds,
                c.held_rss as f64 / 1024.0,
                c.fds_after,
                c.shed,
                c.answered,
                c.probes,
                c.probe_max.as_secs_f64() * 1000.0,
                c.tcp_answers
            )
            .unwrap();
        }
    }
    writeln!(md, "\n| t (s) | RSS (MiB) | open fds |\n|---|---|---|").unwrap();
    for (t, rss, f) in &samples {
        writeln!(md, "| {t} | {:.1} | {f} |", *rss as f64 / 1024.0).unwrap();
    }
    writeln!(
        md,
        "\nRSS peak, second quarter: {:.1} MiB; last quarter: {:.1} MiB. Open fds: {warm_fds} → {end_fds}.\n\nVerdict: {}",
        warm_peak as f64 / 1024.0,
        end_peak as f64 / 1024.0,
        if failures.is_empty() { "pass".to_string() } else { failures.join("; ") }
    )
    .unwrap();
    let out = std::env::var("SOAK_OUT").unwrap_or_else(|_| "bench/results/soak.md".into());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(out);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, &md).unwrap();
    println!("{md}");
    let errors_logged = ex
        .output()
        .lines()
        .filter(|l| l.contains("[ERROR]"))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        failures.is_empty(),
        "{}\nfirst errors logged:\n{errors_logged}",
        failures.join("\n")
    );
}
