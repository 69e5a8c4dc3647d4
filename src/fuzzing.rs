//! Entry points for the fuzz targets under `fuzz/` and for `tests/fuzz_regressions.rs`, which
//! replays their corpora in the normal test suite. Not part of exdns's API.
//!
//! Each entry point drives the real code and panics when an invariant is broken, so that the
//! fuzzer (and the replay test) reports it:
//! - [`QueryHarness::check`]: raw bytes → [`query::prepare`] / [`query::run`] /
//!   [`reply::encode_reply`](crate::dns::reply::encode_reply) over UDP and TCP against a small realistic configuration. A reply
//!   or a drop, never a panic (not even one the server would catch), never a UDP reply larger
//!   than allowed (512 without EDNS, else the client's size clamped to 512..=1232); replies
//!   keep the query's ID and opcode, have QR set and decode.
//! - [`corefile`]: text → lexer, parser and the setup of every directive → a config or an error.
//! - [`manifests`]: bytes → the manifest loader (YAML and JSON) → objects or errors, then the
//!   index built from them.
//! - [`forward_relay`]: a query and an upstream's raw reply → forward's ID, structure and question
//!   checks → the reply the client would get, with the client's ID and question, well-formed.
//! - [`doh`]: a DoH request (method, path and query, content type, body) → the RFC 8484 request
//!   rules of `server::doh` → a DNS message or an HTTP status, and the reply's `max-age`.
//! - [`tsig`]: a signed request's bytes → TSIG verification (RFC 8945) against a fixed key →
//!   a signed reply or error reply that parses back with the right TSIG record.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};

use crate::corefile;
use crate::dns::request::ADVERTISED_UDP_SIZE;
use crate::dns::request::{Outcome, Proto, Request};
use crate::dns::wire;
use crate::kube::index::{self, IndexConfig};
use crate::kube::model::{Event, Filters, Kind, ObjKind};
use crate::kube::source::Feed;
use crate::plugin::StartupCtx;
use crate::server::build::{self, Config};
use crate::server::query::{self, Prepared};
use crate::server::router::Router;

/// The configuration the query target runs; `{MANIFESTS}` is the demo cluster's directory
/// (fixtures/demo). Every plugin answers locally (no upstream, no log output). The chains of
/// apps.example.com (k8s_gateway's addresses) and example.org (cache hits) answer on the fast
/// path (`server::view`).
pub const QUERY_COREFILE: &str = r#"
example.com:53 {
    errors
    any
    rewrite name regex (.*)\.alias\.example\.com\. {1}.example.com. answer auto
    cache 30
    k8s_gateway {
        manifests {MANIFESTS}
        apex exdns.kube-system
        secondary exdns-secondary.kube-system
    }
    transfer {
        to 192.0.2.0/24
    }
}
example.net:53 10.0.0.0/8:53 {
    acl {
        block type AXFR
        drop type IXFR
        filter type MX
    }
    rewrite stop type ANY HINFO
    rrl {
        responses-per-second 50
        nxdomains-per-second 20
        slip-ratio 2
    }
    hosts {
        192.0.2.1 www.example.net
        2001:db8::1 www.example.net v6.example.net
        10.1.2.3 host.example.net
        fallthrough
    }
    loadbalance
    whoami
}
apps.example.com:53 {
    prometheus 127.0.0.1:0
    errors
    k8s_gateway {
        manifests {MANIFESTS}
    }
}
example.org:53 {
    prometheus 127.0.0.1:0
    errors
    cache 30
    hosts {
        192.0.2.9 www.example.org
        2001:db8::9 www.example.org
    }
}
tsig.example.org:53 {
    tsig {
        secret fuzz.key. ZnV6ei1rZXktc2VjcmV0LWZvci10aGUtdHNpZy10YXJnZXQ=
        require MX AXFR
    }
    cache 30
    hosts {
        192.0.2.10 www.tsig.example.org
    }
}
.:53 {
    whoami
}
"#;

/// The query path over one listener of [`QUERY_COREFILE`], started and synced.
pub struct QueryHarness {
    router: Arc<Router>,
    config: Config,
    rt: tokio::runtime::Runtime,
}

impl QueryHarness {
    /// Builds [`QUERY_COREFILE`] with `manifests` as the k8s_gateway source, starts its plugins
    /// and waits until they are ready.
    pub fn new(manifests: &Path) -> Result<Self, String> {
        let text = QUERY_COREFILE.replace("{MANIFESTS}", &manifests.display().to_string());
        let cf =
            corefile::parse_str(&text, Path::new("Corefile"), 53).map_err(|e| e.to_string())?;
        let mut config = build::build(&cf).map_err(|e| e.to_string())?;
        let (_, router) = config
            .listeners
            .pop_first()
            .ok_or_else(|| "no listener".to_string())?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            for (block, _) in config.blocks.iter().zip(&config.block_listeners) {
                let ctx = StartupCtx {
                    dns_addrs: Vec::new(),
                    zones: block.zones.clone(),
                };
                for p in &block.chain {
                    p.on_startup(&ctx).await?;
                }
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            // Every plugin, not only those `/ready` would ask (the Corefile has no `ready`).
            let not_ready =
                || -> Vec<&str> { config.blocks.iter().flat_map(|b| b.not_ready()).collect() };
            while !not_ready().is_empty() {
                if Instant::now() > deadline {
                    return Err(format!("not ready: {:?}", not_ready()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<(), String>(())
        })?;
        Ok(QueryHarness {
            router: Arc::new(router),
            config,
            rt,
        })
    }

    /// What the server sends back for `data` received over `proto` (`None`: nothing).
    pub fn answer(&self, data: &[u8], proto: Proto) -> Option<Vec<u8>> {
        let _guard = self.rt.enter();
        let src = SocketAddr::from(([192, 0, 2, 7], 53535));
        let local = SocketAddr::from(([127, 0, 0, 1], 53));
        match query::prepare(&self.router, data, src, local, proto) {
            Prepared::Done(bytes) => bytes,
            Prepared::Query(req, block) if proto.is_stream() => {
                let reply = match query::try_now(Box::pin(query::run_stream(req, block))) {
                    Ok(v) => v,
                    Err(fut) => self.rt.block_on(fut),
                };
                match reply? {
                    query::Reply::One(bytes) => Some(bytes),
                    // A transfer: every message must satisfy the invariants; the first stands
                    // for them.
                    query::Reply::Stream(mut rx) => {
                        let mut first = None;
                        while let Some(m) = self.rt.block_on(rx.recv()) {
                            check_query_reply(data, Some(&m), proto);
                            first.get_or_insert(m);
                        }
                        first
                    }
                }
            }
            Prepared::Query(req, block) => match query::try_now(Box::pin(query::run(req, block))) {
                Ok(v) => v,
                Err(fut) => self.rt.block_on(fut),
            },
        }
    }

    /// Runs `data` over UDP and TCP and checks every invariant (panics when one is broken).
    pub fn check(&self, data: &[u8]) {
        let panics = crate::metrics::PANICS.get();
        for proto in [Proto::Udp, Proto::Tcp] {
            let reply = self.answer(data, proto);
            check_query_reply(data, reply.as_deref(), proto);
        }
        assert_eq!(
            crate::metrics::PANICS.get(),
            panics,
            "a plugin panicked (caught by the server)"
        );
    }

    /// The plugins' configuration, kept alive while the harness runs.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// The invariants of a reply to the raw query `query` over `proto`.
pub fn check_query_reply(query: &[u8], reply: Option<&[u8]>, proto: Proto) {
    check_query_reply_with(query, reply, proto, true)
}

/// [`check_query_reply`], with the decoding of the reply by hickory only when `decodes`.
fn check_query_reply_with(query: &[u8], reply: Option<&[u8]>, proto: Proto, decodes: bool) {
    let Some(reply) = reply else {
        return;
    };
    assert!(query.len() >= 12, "a reply to {} bytes", query.len());
    assert_eq!(query[2] & 0x80, 0, "a reply to a response");
    assert!(reply.len() >= 12, "a reply of {} bytes", reply.len());
    assert_eq!(reply[..2], query[..2], "the reply's ID");
    assert_ne!(reply[2] & 0x80, 0, "QR is not set");
    assert_eq!((reply[2] >> 3) & 0xf, (query[2] >> 3) & 0xf, "the opcode");
    let decoded_query = Message::from_vec(query).ok();
    let limit = match proto {
        Proto::Udp => decoded_query
            .as_ref()
            .and_then(|q| q.edns.as_ref())
            .map_or(512, |e| e.max_payload().clamp(512, ADVERTISED_UDP_SIZE))
            as usize,
        _ => u16::MAX as usize,
    };
    assert!(
        reply.len() <= limit,
        "a {}-byte reply over {proto:?}; the limit is {limit}",
        reply.len()
    );
    let r = match Message::from_vec(reply) {
        Ok(r) => r,
        Err(_) if !decodes => return,
        Err(e) => panic!("the reply does not decode: {e}"),
    };
    assert!(r.queries.len() <= 1, "{} questions echoed", r.queries.len());
    if let Some(q) = &decoded_query
        && q.queries.len() == 1
        && !r.queries.is_empty()
    {
        // A rewrite with `answer auto` gives back the client's name, in any case.
        assert_eq!(
            r.queries[0].query_type(),
            q.queries[0].query_type(),
            "the echoed question's type"
        );
    }
}

/// Parses `text` as a Corefile and sets up every directive of every block (nothing is bound or
/// started). Returns the config error, worded for the user.
/// Every error names the file and line it is about (`Corefile:3 - Error during ...`).
pub fn corefile(text: &str) -> Result<(), String> {
    let located = |e: String| {
        assert!(
            e.starts_with("Corefile:") || e.starts_with("plugin/"),
            "an error without its location: {e:?}"
        );
        assert!(
            e.contains("Corefile:"),
            "an error without its location: {e:?}"
        );
        e
    };
    let cf =
        corefile::parse_str(text, Path::new("Corefile"), 53).map_err(|e| located(e.to_string()))?;
    let cfg = build::build(&cf).map_err(|e| located(e.to_string()))?;
    assert_eq!(cfg.blocks.len(), cfg.block_listeners.len());
    Ok(())
}

/// Loads `data` as one manifest file (YAML, and JSON when it is UTF-8), then builds the index of
/// every record kind from what loaded. Returns how many objects loaded.
pub fn manifests(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0; // the loader reads files as UTF-8; others are an I/O error
    };
    let filters = Filters::default();
    let mut loaded = 0;
    for json in [false, true] {
        let (objects, errors) =
            crate::kube::manifests::parse_text(text, json, &ObjKind::ALL, &filters);
        for e in &errors {
            assert!(!e.is_empty(), "an empty error message");
        }
        let feed = Feed::new();
        for (kind, items) in objects {
            loaded += items.len();
            feed.apply(kind, Event::Replace(items));
            feed.set_synced(kind, true);
        }
        let cfg = IndexConfig {
            kinds: Kind::ALL.to_vec(),
            zones: vec!["example.com.".to_string(), ".".to_string()],
            filters: filters.clone(),
        };
        let snap = index::build(&cfg, &feed, None);
        assert!(snap.synced(), "every kind was marked synced");
    }
    loaded
}

/// forward's handling of an upstream reply: `data` is `[query length: 1 byte][query][the
/// upstream's reply]`. The query must be one the server would forward; the reply goes through
/// the ID check of the UDP transport (the query is sent with ID 0x4242), the structure check
/// (`wire::scan`) and the question check, then is finalized for the client as the server does. Returns the bytes the client would get, or
/// `None` when the exchange counts as failed (the next upstream would be tried).
pub fn forward_relay(data: &[u8]) -> Option<Vec<u8>> {
    use crate::plugin::forward;
    const SENT_ID: u16 = 0x4242;
    let (&qlen, rest) = data.split_first()?;
    let qlen = (qlen as usize).min(rest.len());
    let (qbytes, upstream) = rest.split_at(qlen);
    let msg = Message::from_vec(qbytes).ok()?;
    if msg.metadata.message_type != MessageType::Query || msg.queries.len() != 1 {
        return None; // the server answers these itself
    }
    let src = SocketAddr::from(([192, 0, 2, 7], 53535));
    let local = SocketAddr::from(([127, 0, 0, 1], 53));
    let req = Request::new(msg, src, local, Proto::Udp, qbytes.len());
    if !forward::reply_id_matches(upstream, SENT_ID) {
        return None;
    }
    let reply = forward::UpstreamReply::parse(upstream.to_vec()).ok()?;
    let out = if reply.answers(&req) {
        reply.relay(&req)
    } else {
        Outcome::code(ResponseCode::FormErr, forward::NAME)
    };
    // The server's last step for a wire reply, else its encoder.
    let bytes = match out {
        Outcome::Wire { bytes, .. } => wire::fit(&req, bytes),
        other => crate::dns::reply::encode_reply(&req, other.into_message(&req).expect("a reply")),
    };
    // A relayed reply is the upstream's bytes: it must be well-formed, not necessarily of
    // record types hickory decodes.
    check_query_reply_with(qbytes, Some(&bytes), Proto::Udp, false);
    let layout = wire::scan(&bytes).expect("a relayed reply is well-formed");
    assert_eq!(bytes[..2], req.id().to_be_bytes(), "the client's ID");
    assert_eq!(layout.qtype, u16::from(req.qtype()), "the client's type");
    assert!(
        wire::qname_is(&bytes, &layout, req.qname()),
        "the client's name"
    );
    Some(bytes)
}

/// The key of the [`tsig`] target and its seeds: `fuzz.key.`, any algorithm, this secret.
pub const TSIG_KEY: &str = "fuzz.key.";
pub const TSIG_SECRET: &str = "ZnV6ei1rZXktc2VjcmV0LWZvci10aGUtdHNpZy10YXJnZXQ=";
/// The time the [`tsig`] target verifies at (the seeds were signed at it).
pub const TSIG_TIME: u64 = 1_700_000_000;

/// TSIG: `data` is a request as received. It is verified against [`TSIG_KEY`] at
/// [`TSIG_TIME`]; a valid one gets a two-message reply signed (the request's header and
/// question echoed), a rejected one its error reply. Whatever exdns appends must parse back
/// as the last record, with the request's key name, the reply's ID as Original ID and the
/// right error. `None`: unsigned; `Some(true)`: valid; `Some(false)`: rejected.
pub fn tsig(data: &[u8]) -> Option<bool> {
    use crate::dns::tsig::{self, Key, Keyring, Verified};
    let keys = Keyring::new(vec![
        Key::new(TSIG_KEY, None, TSIG_SECRET).expect("the key"),
    ]);
    let found = tsig::find_tsig(data);
    let verified = tsig::verify(&keys, data, TSIG_TIME);
    // The reply: the request's header with QR set and no records.
    let header = || {
        let mut r = data[..wire::HEADER].to_vec();
        r[2] |= 0x80;
        r[4..12].fill(0);
        r
    };
    let check = |reply: &[u8], error: u16| {
        let rec = tsig::find_tsig(reply)
            .expect("a signed reply parses")
            .expect("a signed reply has a TSIG record");
        let req = found
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref())
            .expect("a TSIG record");
        assert_eq!(rec.key_name, req.key_name);
        assert_eq!(rec.algorithm, req.algorithm);
        assert_eq!(rec.original_id.to_be_bytes(), reply[..2]);
        assert_eq!(rec.error, error);
        assert_eq!(rec.start, wire::HEADER);
    };
    match verified {
        Verified::Unsigned => {
            assert!(matches!(found, Ok(None)), "unsigned: no TSIG record");
            None
        }
        Verified::Valid(mut signer) => {
            for _ in 0..2 {
                let mut r = header();
                signer.sign_at(&mut r, TSIG_TIME);
                check(&r, 0);
            }
            Some(true)
        }
        Verified::Rejected(rejection) => {
            let error = rejection.error;
            if data.len() >= wire::HEADER {
                let mut r = header();
                rejection.sign(&mut r);
                if error == tsig::TsigError::FormErr {
                    assert_eq!(r.len(), wire::HEADER, "FORMERR: nothing appended");
                } else {
                    check(&r, error.code());
                }
            }
            Some(false)
        }
    }
}

/// DoH: `data` is `METHOD\nPATH[?QUERY]\nCONTENT-TYPE\nBODY` (missing lines are empty). The
/// request rules of [`crate::server::doh`] judge it: only the statuses they name, 404 exactly
/// when the path is not `/dns-query`, a POST body accepted unchanged and refused with 413 exactly
/// beyond 65535 octets, every accepted message a query miekg/dns accepts, and a message a POST
/// carries is accepted as the same message in a GET `?dns=`. `max_age` of the body never exceeds
/// an hour. Returns the status (200 for an accepted message).
pub fn doh(data: &[u8]) -> u16 {
    use crate::server::doh::{self, Head};
    use base64::Engine;
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let target = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let ctype = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target.as_str(), None),
    };
    let accepted = |wire: &[u8]| {
        assert!(
            wire.len() >= wire::HEADER,
            "accepted a message shorter than a header"
        );
        assert_eq!(wire[2] & 0x80, 0, "accepted a response");
        assert!(matches!((wire[2] >> 3) & 0xf, 0 | 4), "accepted opcode");
        assert_eq!(
            u16::from_be_bytes([wire[4], wire[5]]),
            1,
            "accepted QDCOUNT"
        );
    };
    assert!(doh::max_age(body) <= 3600);
    let head = doh::head(&method, path, query, Some(ctype), Some(body.len() as u64));
    if path != doh::PATH {
        assert_eq!(head, Err(doh::NOT_FOUND));
    }
    let status = match head {
        Ok(Head::Get(wire)) => match doh::check_wire(&wire) {
            Ok(()) => {
                accepted(&wire);
                200
            }
            Err(s) => s,
        },
        Ok(Head::Post) => match doh::check_body(body.to_vec()) {
            Ok(b) => {
                assert_eq!(b, body, "the body is the message");
                accepted(&b);
                200
            }
            Err(s) => {
                assert_eq!(s == doh::PAYLOAD_TOO_LARGE, body.len() > doh::MAX_MESSAGE);
                s
            }
        },
        Err(s) => s,
    };
    assert!(
        [200, 400, 404, 405, 413, 415].contains(&status),
        "status {status}"
    );
    // A body that is an acceptable message is the same message as a GET.
    if body.len() <= doh::MAX_MESSAGE && doh::check_wire(body).is_ok() {
        let q = format!(
            "dns={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
        );
        assert_eq!(
            doh::head("GET", doh::PATH, Some(&q), None, None),
            Ok(Head::Get(body.to_vec()))
        );
    }
    status
}
