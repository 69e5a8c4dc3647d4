//! CoreDNS's small everyday plugins against the real binary and real `dig`: `nsid`, `chaos`,
//! `bufsize`, `minimal`, `header` and `local`.

mod support;

use support::*;

/// `dig @127.0.0.1 -p PORT ARGS...`; fails the test when dig does.
fn dig(ex: &Exdns, args: &[&str]) -> String {
    let port = ex.dns().port().to_string();
    let mut all = vec!["@127.0.0.1", "-p", &port, "+time=5", "+tries=1"];
    all.extend_from_slice(args);
    let (code, out) = run("dig", &all);
    assert_eq!(code, 0, "dig {args:?}: {out}");
    out
}

/// The lines of dig's output that start with `prefix`.
fn lines<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn nsid_on_misses_cache_hits_and_errors_over_udp_and_tcp() {
    if !require("dig") {
        return;
    }
    let ex = Exdns::start(
        "example.org:0 {\n    bind 127.0.0.1\n    nsid Use The Force\n    cache\n    whoami\n}\n",
    );
    let want = "; NSID: 55 73 65 20 54 68 65 20 46 6f 72 63 65 (\"Use The Force\")";
    for transport in ["+notcp", "+tcp"] {
        // A miss, then the same question answered from the cache.
        for round in 0..2 {
            let out = dig(&ex, &[transport, "+nsid", "example.org", "A"]);
            assert!(out.contains("status: NOERROR"), "{out}");
            assert!(out.contains("flags: qr aa rd;"), "{out}");
            assert_eq!(lines(&out, "; NSID:"), [want], "{transport} {round}: {out}");
            assert_eq!(
                lines(&out, "; EDNS:"),
                ["; EDNS: version: 0, flags:; udp: 1232"]
            );
        }
        // Without +nsid: no option (the cache hit is answered on the fast path).
        let out = dig(&ex, &[transport, "example.org", "A"]);
        assert!(lines(&out, "; NSID:").is_empty(), "{out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        // A name outside the block: REFUSED by the server, before any plugin, no NSID.
        let out = dig(&ex, &[transport, "+nsid", "example.com", "A"]);
        assert!(out.contains("status: REFUSED"), "{out}");
        assert!(lines(&out, "; NSID:").is_empty(), "{out}");
    }
    // Without EDNS there is no OPT record to carry it.
    let out = dig(&ex, &["+noedns", "example.org", "A"]);
    assert!(!out.contains("OPT PSEUDOSECTION"), "{out}");
}
