//! Least privilege, checked on the real binary: exdns serves k8s_gateway zones, forwards pinned to
//! an interface (SO_BINDTODEVICE) and serves its HTTP endpoints as an unprivileged user with no
//! capabilities at all; binding port 53 is the one thing that needs CAP_NET_BIND_SERVICE; and no
//! secret (bearer token, TLS private key) ever reaches the log, even at trace level.
//!
//! The tests drop privileges with util-linux's `setpriv`, so they need root to start from (CI runs
//! as root); without root they say so and skip.

mod support;

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use support::fake_apiserver::{FakeApiServer, TOKEN};
use support::fwd::{POLL, a_of, ask, wait_until};
use support::netns::in_netns;
use support::tlsecho::{TlsEcho, TlsEchoOpts};
use support::*;

/// `setpriv` as user/group 65534 (nobody) with no supplementary groups, no capabilities in any
/// set (bounding set included) and no_new_privs.
const NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
];

fn root() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: dropping privileges needs root to start from (CI runs as root)");
        return false;
    }
    assert!(have("setpriv"), "setpriv (util-linux) is missing");
    true
}

/// A `Name:\tvalue` line of /proc/PID/status.
fn status(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

#[test]
fn serves_forwards_pinned_and_reports_health_with_no_capabilities() {
    if !root() {
        return;
    }
    let up = TlsEcho::start(TlsEchoOpts::new());
    let corefile = format!(
        "example.com:0 {{\n  bind 127.0.0.1\n  k8s_gateway {{\n    manifests demo\n  }}\n  health 127.0.0.1:0\n  ready 127.0.0.2:0\n  prometheus 127.0.0.3:0\n}}\n\
         .:0 {{\n  bind 127.0.0.1\n  forward . {} {{\n    interface lo\n  }}\n}}\n",
        up.addr
    );
    let files = demo_files();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    let ex = Exdns::start_wrapped_env(NOBODY, &corefile, &files, &[], &[]);
    let pid = ex.child.id();

    // The process itself (setpriv execs it): nobody, no capability in any set.
    assert_eq!(status(pid, "Name"), "exdns");
    assert_eq!(status(pid, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status(pid, "Gid"), "65534\t65534\t65534\t65534");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status(pid, set), "0000000000000000", "{set}");
    }
    assert_eq!(status(pid, "NoNewPrivs"), "1");

    assert!(
        wait_until(POLL, || http_get(ex.http_addr("127.0.0.2:0"), "/ready").0
            == 200),
        "{}",
        ex.output()
    );
    // Authoritative from the manifests (both blocks share the one 127.0.0.1 listener).
    let (r, _) = ask(ex.dns(), "www.example.com.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert_eq!(
        a_of(&r),
        ["198.51.100.10".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    // Forwarded through a socket bound to `lo` (SO_BINDTODEVICE needs no CAP_NET_RAW since
    // Linux 5.7 for a socket not yet bound to a device).
    let (r, _) = ask(ex.dns(), "pinned.example.test.", RecordType::A);
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        ex.output()
    );
    assert_eq!(up.queries_for("pinned.example.test"), 1);
    // The HTTP endpoints.
    assert!(wait_until(POLL, || http_get(
        ex.http_addr("127.0.0.2:0"),
        "/ready"
    )
    .0 == 200));
    assert_eq!(http_get(ex.http_addr("127.0.0.1:0"), "/health").0, 200);
    assert_eq!(http_get(ex.http_addr("127.0.0.3:0"), "/metrics").0, 200);
}

/// A fresh network namespace with only `lo` up: port 53 is free there and
/// `net.ipv4.ip_unprivileged_port_start` has its default (1024).
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let name = format!("exdns-lp-{}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        assert_eq!(run("ip", &["netns", "add", &name]).0, 0);
        assert_eq!(run("ip", &["-n", &name, "link", "set", "lo", "up"]).0, 0);
        let (_, start) = run(
            "ip",
            &[
                "netns",
                "exec",
                &name,
                "sysctl",
                "-n",
                "net.ipv4.ip_unprivileged_port_start",
            ],
        );
        assert_eq!(start.trim(), "1024", "the namespace default");
        Ns(name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

const PORT53: &str =
    "example.org:53 {\n  bind 127.0.0.1\n  hosts {\n    192.0.2.53 www.example.org\n  }\n}\n";

#[test]
fn port_53_needs_cap_net_bind_service_and_nothing_more() {
    if !root() {
        return;
    }
    let ns = Ns::new();

    // Without the capability: a clear error and exit 1.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let conf = dir.path().join("Corefile");
    std::fs::write(&conf, PORT53).unwrap();
    let mut args: Vec<&str> = vec!["netns", "exec", &ns.0];
    args.extend_from_slice(NOBODY);
    let bin = bin();
    args.extend_from_slice(&[bin.to_str().unwrap(), "-conf", conf.to_str().unwrap()]);
    let out = support::netns::run_bounded(
        std::process::Command::new("ip").args(&args),
        Duration::from_secs(10),
    );
    assert!(!out.ok(), "binding port 53 without the capability fails");
    let text = out.text();
    assert!(
        text.contains("127.0.0.1:53") && text.to_lowercase().contains("permission denied"),
        "a clear error naming the address: {text}"
    );

    // With CAP_NET_BIND_SERVICE (ambient, so it survives the exec) and nothing else: it serves.
    let mut wrapper: Vec<&str> = vec!["ip", "netns", "exec", &ns.0];
    wrapper.extend_from_slice(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all,+net_bind_service",
        "--ambient-caps=+net_bind_service",
        "--bounding-set=-all,+net_bind_service",
        "--no-new-privs",
    ]);
    let ex = Exdns::start_wrapped_env(&wrapper, PORT53, &[], &[], &[]);
    let pid = ex.child.id();
    // CAP_NET_BIND_SERVICE is bit 10.
    assert_eq!(status(pid, "CapEff"), "0000000000000400");
    assert_eq!(status(pid, "Uid"), "65534\t65534\t65534\t65534");
    let addr = ex.dns();
    assert_eq!(addr.port(), 53);
    let r = in_netns(&ns.0, move || {
        udp(addr, &query("www.example.org.", RecordType::A, None))
    });
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        a_of(&r),
        ["192.0.2.53".parse::<std::net::Ipv4Addr>().unwrap()]
    );
}

#[test]
fn bearer_tokens_and_tls_keys_never_reach_the_log_even_at_trace_level() {
    let c = FakeApiServer::start_with_defaults();
    c.create(
        "networking.k8s.io",
        "v1",
        "ingresses",
        serde_json::json!({
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": {"rules": [{"host": "shop.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}},
        }),
    );
    let certs = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = make_certs(certs.path(), "dns.example.test");
    let key_pem = std::fs::read_to_string(&key).unwrap();
    // A line from the middle of the key's base64 body.
    let key_body: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let key_line = key_body[key_body.len() / 2].to_string();
    assert!(key_line.len() >= 32);

    let good = c.kubeconfig_yaml();
    let wrong_token = "wrong-token-3c1f9e0b7d";
    let bad = good.replace(TOKEN, wrong_token);
    assert_ne!(good, bad);
    let corefile = format!(
        "example.com:0 {{\n  k8s_gateway {{\n    kubeconfig good.yaml\n  }}\n}}\n\
         tls://example.com:0 {{\n  tls {} {}\n  k8s_gateway {{\n    kubeconfig bad.yaml\n  }}\n}}\n",
        cert.display(),
        key.display()
    );
    let ex = Exdns::start_with_env(
        &corefile,
        &[("good.yaml", &good), ("bad.yaml", &bad)],
        &[],
        &[("RUST_LOG", "trace")],
    );
    // The good credentials work; the wrong ones are refused (401) and that is logged.
    assert!(wait_until(POLL, || {
        let (r, _) = ask(ex.dns(), "shop.example.com.", RecordType::A);
        r.metadata.response_code == ResponseCode::NoError
    }));
    assert!(
        wait_until(POLL, || ex.output().to_lowercase().contains("unauthorized")),
        "the 401 is logged:\n{}",
        ex.output()
    );
    let out = ex.output();
    assert!(out.lines().count() > 50, "trace logging was on");
    for secret in [TOKEN, wrong_token, key_line.as_str()] {
        assert!(!out.contains(secret), "{secret} appears in the log");
    }
}
