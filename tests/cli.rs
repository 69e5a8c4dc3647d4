//! The command line as CoreDNS users type it, and `-check`.

mod support;

use std::process::Command;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::*;

fn check(corefile: &str) -> (i32, String) {
    let out = run_corefile(corefile, &["-check"]);
    (
        out.code.unwrap(),
        out.output()
            .replace(&out.corefile.display().to_string(), "Corefile"),
    )
}

#[test]
fn version_and_plugins() {
    let (code, out) = run(bin().to_str().unwrap(), &["-version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("exdns-{}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let (code, out) = run(bin().to_str().unwrap(), &["-plugins"]);
    assert_eq!(code, 0);
    for p in [
        "dns.cache",
        "dns.health",
        "dns.whoami",
        "dns.log",
        "dns.errors",
        "dns.nsid",
        "dns.chaos",
        "dns.bufsize",
        "dns.minimal",
        "dns.header",
        "dns.local",
        "dns.multisocket",
        "dns.view",
        "dns.dnstap",
        "dns.proxyproto",
    ] {
        assert!(out.contains(p), "{p} missing from {out}");
    }
}

#[test]
fn check_accepts_a_good_corefile() {
    let (code, out) = check("example.org:1053 {\n  whoami\n  cache 30\n  log\n  errors\n}\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn check_rejects_with_file_line_and_coredns_wording() {
    let cases: &[(&str, &str)] = &[
        (
            ".:53 {\n  whoami\n  foo bar\n}\n",
            "Corefile:3 - Error during parsing: Unknown directive 'foo'",
        ),
        (
            ".:53 {\n  whoami\n",
            "Corefile:2 - Error during parsing: Unexpected EOF",
        ),
        (
            ".:53 {\n  whoami\n}\n}\n",
            "Corefile:4 - Error during parsing: Unexpected '}' because no matching opening brace",
        ),
        (
            ".:53 {\n  cache 30 {\n    bogus 1\n  }\n}\n",
            "plugin/cache: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'bogus'",
        ),
        (
            ".:53 {\n  health {\n    bogus\n  }\n}\n",
            "plugin/health: Corefile:3 - Error during parsing: unknown property 'bogus'",
        ),
        (
            ".:53 {\n  whoami\n  whoami\n}\n",
            "this plugin can only be used once per Server Block",
        ),
        (
            "example.org:53 {\n  whoami\n}\nexample.org:53 {\n  whoami\n}\n",
            "cannot serve dns://example.org.:53 - it is already defined",
        ),
        (
            "quic://.:853 {\n  whoami\n}\n",
            "Corefile:1 - Error during setup: quic://.:853 needs the tls directive (tls CERT KEY [CA])",
        ),
        (
            "quic://.:853 {\n  quic {\n    max_streams 0\n  }\n  whoami\n}\n",
            "plugin/quic: Corefile:3 - Error during parsing: max_streams must be a positive integer: 0",
        ),
        (
            "https://.:443 {\n  https {\n    max_connections -1\n  }\n  whoami\n}\n",
            "plugin/https: Corefile:3 - Error during parsing: max_connections must be a non-negative integer: -1",
        ),
        (
            "https://.:443 {\n  https {\n    max_connections abc\n  }\n  whoami\n}\n",
            "plugin/https: Corefile:3 - Error during parsing: invalid max_connections value 'abc': strconv.Atoi: parsing \"abc\": invalid syntax",
        ),
        (
            "https://.:443 {\n  https {\n    max_connections 1\n  }\n  https {\n    max_connections 2\n  }\n  whoami\n}\n",
            "plugin/https: Corefile:6 - Error during parsing: max_connections already defined for this server block",
        ),
        (
            "https://.:443 {\n  https extra\n  whoami\n}\n",
            "plugin/https: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'",
        ),
        (
            "https3://.:443 {\n  https3 {\n    max_streams\n  }\n  whoami\n}\n",
            "plugin/https3: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'max_streams'",
        ),
        (
            "https3://.:443 {\n  https3 {\n    max_connections -2\n  }\n  whoami\n}\n",
            "plugin/https3: Corefile:3 - Error during parsing: max_connections must be a non-negative integer: -2",
        ),
        (
            "https3://.:443 {\n  https3 {\n    x 1\n  }\n  whoami\n}\n",
            "plugin/https3: Corefile:3 - Error during parsing: unknown property 'x'",
        ),
        (
            ".:53 {\n  whoami extra\n}\n",
            "plugin/whoami: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'",
        ),
    ];
    for (cf, want) in cases {
        let (code, out) = check(cf);
        assert_eq!(code, 1, "{cf:?} should be rejected; got {out}");
        assert!(out.contains(want), "for {cf:?}\nwant: {want}\ngot:  {out}");
    }
}

#[test]
fn a_bad_corefile_stops_startup_with_exit_1() {
    let out = run_corefile(".:0 {\n  nosuchplugin\n}\n", &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains(":2 - Error during parsing: Unknown directive 'nosuchplugin'"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_conf_file_is_an_error() {
    let out = Command::new(bin())
        .args(["-conf", "/nonexistent/Corefile"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/Corefile"));
}

#[test]
fn default_config_is_whoami_and_log_on_the_dns_port() {
    // No -conf and no ./Corefile: `.:PORT { whoami log }`.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["-dns.port", "0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let mut addr = None;
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        lines.push(l.clone());
        if let Some(rest) = l.split("listening on dns://:0 at ").nth(1) {
            addr = Some(loopback(rest.trim().parse().unwrap()));
        }
        if l.contains("exdns ready to serve") {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no listener in {lines:?}"));
    assert!(
        lines.iter().any(|l| l == ".:0"),
        "banner names the default server: {lines:?}"
    );
    let r = udp(addr, &query("whoami.example.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        r.additionals.len(),
        2,
        "whoami answers in the additional section"
    );
    // `log` logs the query.
    let mut logged = false;
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_secs(3)) {
        if l.contains("\"A IN whoami.example. udp") {
            logged = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(logged, "the default log plugin logged the query");
}

#[test]
fn pidfile_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("exdns.pid");
    let ex = Exdns::start_with(
        ".:0 {\n  whoami\n}\n",
        &[],
        &["-pidfile", pid.to_str().unwrap(), "-quiet"],
    );
    let text = std::fs::read_to_string(&pid).unwrap();
    assert_eq!(text.trim(), ex.child.id().to_string());
    assert!(
        !ex.output().lines().any(|l| l == ".:0"),
        "quiet suppresses the banner"
    );
}
