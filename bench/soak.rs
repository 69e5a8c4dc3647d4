//! Soak, not a test of the default suite: `make soak` (SOAK_SECS, default 600).
//!
//! One exdns process serves, for SOAK_SECS seconds, a mixed load while its cluster churns:
//! - authoritative over UDP: dnsperf at SOAK_AUTH_QPS (90 % names that exist, 10 % NXDOMAIN) for
//!   `soak.test`, served by k8s_gateway from the fake Kubernetes API server (OBJECTS Ingresses);
//! - authoritative over TCP: dnsperf `-m tcp` at SOAK_TCP_QPS on persistent connections;
//! - forwarded over DNS over TLS: dnsperf at SOAK_FWD_QPS for names under `fwd.test`, which a real
//!   unbound answers (TLS, its own CA and server name), with exdns's `cache` (TTL 5 s) in front;
//! - churn: SOAK_CHURN updates/s to the Ingresses' addresses, plus one Ingress deleted and one
//!   created per second.
//!
//! Every 10 s it samples exdns's RSS and open file descriptors. At the end it writes
//! `bench/results/soak.md` and fails when: any query was lost, any answer had an rcode other than
//! NOERROR/NXDOMAIN, RSS over the last quarter of the run exceeds the peak of the second quarter
//! (after warm-up) by more than 10 % + 4 MiB, or the open fds grew by more than 4.
//!
//! `cargo test --release --test soak -- --ignored --nocapture` (what `make soak` runs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::fake_apiserver::FakeApiServer;
use support::unbound::{Unbound, UnboundOpts};
use support::{Exdns, have, http_get};

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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
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

    // Samples every 10 s while the churn runs.
    let started = Instant::now();
    let mut samples: Vec<(u64, u64, usize)> = Vec::new();
    let mut results = Vec::new();
    thread::scope(|sc| {
        let ch = sc.spawn(|| churner(&api));
        while started.elapsed() < Duration::from_secs(secs) {
            samples.push((started.elapsed().as_secs(), rss_kib(pid), fds(pid)));
            let left = Duration::from_secs(secs).saturating_sub(started.elapsed());
            thread::sleep(left.min(Duration::from_secs(10)));
        }
        for p in perfs {
            let out = p.child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            results.push((p.what, parse(&text), text));
        }
        stop.store(true, Ordering::Relaxed);
        ch.join().unwrap();
    });
    thread::sleep(Duration::from_secs(1));
    samples.push((started.elapsed().as_secs(), rss_kib(pid), fds(pid)));

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
    writeln!(md, "# Soak: {secs} s of mixed load with churn\n").unwrap();
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
