//! `prometheus`: exports metrics on `/metrics` and counts every request that passes through it.
//!
//! The setup registers `/metrics` ([`crate::plugin::http`]) and adds a handler that calls the
//! rest of the chain, then records CoreDNS's `coredns_dns_*` families for the request and its
//! outcome.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use prometheus::IntCounterVec;

use crate::dns::request::{Outcome, Proto, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::metrics::{REQUEST_DURATION, REQUEST_SIZE, REQUESTS, RESPONSE_SIZE, RESPONSES, family};
use crate::plugin::names::rcode_mnemonic;
use crate::plugin::{FastNext, Next, Plugin};

mod setup;

/// `/metrics`: every registered metric in Prometheus's text format.
pub struct Metrics;

impl crate::plugin::http::HttpHandler for Metrics {
    fn respond(
        &self,
        _server: &dyn crate::plugin::http::ServerState,
    ) -> crate::plugin::http::HttpResponse {
        crate::plugin::http::HttpResponse::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::gather_text(),
        )
    }
}

pub use setup::setup;

/// Where `/metrics` is served when no address is given.
pub const DEFAULT_ADDR: &str = "localhost:9153";

/// The `view` label of requests no view routed.
const VIEW: &str = "";

/// The size of the OPT record the server adds to a reply when the query had EDNS (root owner,
/// type, class, TTL, RDLENGTH; no options).
const OPT_RR_SIZE: usize = 11;

/// `coredns_dns_do_requests_total{server,zone,view}`.
pub static DO_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "coredns_dns_do_requests_total",
        "Counter of DNS requests with DO bit set per zone.",
        &["server", "zone", "view"],
    )
});

/// The chain handler: runs the rest of the chain, then records the request.
#[derive(Debug, Default)]
pub struct Prometheus {
    /// The block's view name (the `view` label), set when the chain is linked.
    view: std::sync::OnceLock<Arc<str>>,
}

impl Prometheus {
    fn view(&self) -> &str {
        self.view.get().map_or(VIEW, |v| v)
    }
}

#[async_trait]
impl Plugin for Prometheus {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let start = Instant::now();
        let out = next.serve(req).await;
        report_in(req, &out, start, self.view());
        out
    }

    fn link(&self, chain: &[Arc<dyn Plugin>]) {
        if let Some(v) = crate::plugin::view_of(chain) {
            let _ = self.view.set(v);
        }
    }

    /// Transparent: records what the rest of the chain answered on the fast path.
    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        let start = Instant::now();
        let reply = next.fast(q)?;
        let seen = Seen {
            server: q.server,
            zone: q.zone,
            view: self.view(),
            proto: q.proto,
            src: &q.src,
            qtype: q.qtype,
            do_bit: q.do_bit(),
            size: q.buf.len(),
        };
        record(
            &seen,
            start,
            Some((
                reply.rcode,
                reply.plugin,
                reply.bytes.len() + q.cookie.map_or(0, |_| crate::dns::cookie::OPTION_SIZE),
            )),
        );
        Some(reply)
    }
}

/// Records one request and its outcome, as CoreDNS's `vars.Report`: requests, DO requests,
/// duration since `start` and request size always; response size and rcode unless the outcome
/// is a drop (nothing was sent). The `plugin` label is the plugin that wrote the reply; for an
/// [`Outcome::Code`] the server writes it, so the label is empty, as in CoreDNS. The server may
/// call this for requests it answers without running the chain.
pub fn report(req: &Request, out: &Outcome, start: Instant) {
    report_in(req, out, start, VIEW)
}

/// [`report`] for a request a view routed: `view` is its name.
fn report_in(req: &Request, out: &Outcome, start: Instant, view: &str) {
    let reply = match out {
        Outcome::Drop { .. } => None,
        Outcome::Reply { msg, plugin } => {
            Some((msg.metadata.response_code, *plugin, reply_size(req, msg)))
        }
        Outcome::Code { rcode, .. } => Some((*rcode, "", reply_size(req, &req.reply_code(*rcode)))),
        // Already the bytes the server sends, but for truncation.
        Outcome::Wire {
            bytes,
            rcode,
            plugin,
        } => Some((
            *rcode,
            *plugin,
            (bytes.len() + wire_cookie_size(req, bytes)).min(req.max_reply_size()),
        )),
        // CoreDNS reports a transfer's first envelope; its size is not known up front.
        Outcome::Transfer { plugin, .. } => Some((ResponseCode::NoError, *plugin, 0)),
    };
    let seen = Seen {
        server: &req.server,
        zone: &req.zone,
        view,
        proto: req.proto,
        src: &req.src,
        qtype: req.qtype(),
        do_bit: req.do_bit(),
        size: req.size,
    };
    record(&seen, start, reply);
}

/// What the metrics take from a request.
struct Seen<'a> {
    server: &'a str,
    zone: &'a str,
    view: &'a str,
    proto: Proto,
    src: &'a SocketAddr,
    qtype: RecordType,
    do_bit: bool,
    size: usize,
}

/// Records one request; `reply` is the (rcode, plugin, size) of what was sent, `None` when
/// nothing was.
fn record(q: &Seen<'_>, start: Instant, reply: Option<(ResponseCode, &str, usize)>) {
    let (server, zone, view) = (q.server, q.zone, q.view);
    let proto = q.proto.as_str();
    if q.do_bit {
        DO_REQUESTS.with_label_values(&[server, zone, view]).inc();
    }
    REQUESTS
        .with_label_values(&[
            server,
            zone,
            view,
            proto,
            family(q.src),
            qtype_label(q.qtype),
        ])
        .inc();
    REQUEST_DURATION
        .with_label_values(&[server, zone, view])
        .observe(start.elapsed().as_secs_f64());
    REQUEST_SIZE
        .with_label_values(&[server, zone, view, proto])
        .observe(q.size as f64);
    let Some((rcode, plugin, size)) = reply else {
        return;
    };
    RESPONSE_SIZE
        .with_label_values(&[server, zone, view, proto])
        .observe(size as f64);
    RESPONSES
        .with_label_values(&[server, zone, view, rcode_label(rcode), plugin])
        .inc();
}

/// The size of `msg` on the wire as the server will send it: encoded (with name compression),
/// plus the OPT record the server adds when the query had EDNS, capped at the client's UDP size
/// (the server truncates larger UDP replies). Encodes into a per-thread buffer, so no allocation
/// once the buffer has grown.
pub fn reply_size(req: &Request, msg: &Message) -> usize {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
    }
    let encoded = BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        if crate::dns::wire::encode::encode_into(msg, &mut buf).is_some() {
            return buf.len();
        }
        buf.clear();
        let mut enc = BinEncoder::new(&mut buf);
        match msg.emit(&mut enc) {
            Ok(()) => buf.len(),
            Err(_) => 0,
        }
    });
    // A reply the tsig plugin signed has its cookie already (the server adds none after the
    // TSIG record).
    let signed = req.is_tsig_signed()
        && (msg.signature.is_some()
            || msg
                .additionals
                .last()
                .is_some_and(|r| r.record_type() == RecordType::TSIG));
    let mut size = encoded + if signed { 0 } else { cookie_size(req) };
    if msg.edns.is_none() && req.msg.edns.is_some() {
        size += OPT_RR_SIZE;
    }
    size.min(req.max_reply_size())
}

/// [`cookie_size`] for a reply in wire form: none when the tsig plugin signed it (its cookie
/// is in already). Only a signed request's reply is looked at.
fn wire_cookie_size(req: &Request, bytes: &[u8]) -> usize {
    if req.is_tsig_signed() && matches!(crate::dns::tsig::find_tsig(bytes), Ok(Some(_))) {
        0
    } else {
        cookie_size(req)
    }
}

/// The cookie option the server adds to the reply (forward strips the client's cookie from
/// what it sends upstream, so a reply from a plugin carries none of its own).
fn cookie_size(req: &Request) -> usize {
    if req.cookie.is_some() {
        crate::dns::cookie::OPTION_SIZE
    } else {
        0
    }
}

/// The `type` label: CoreDNS's monitored types by name, every other type as `other`.
pub fn qtype_label(t: RecordType) -> &'static str {
    match t {
        RecordType::A
        | RecordType::AAAA
        | RecordType::CNAME
        | RecordType::DNSKEY
        | RecordType::DS
        | RecordType::MX
        | RecordType::NSEC3
        | RecordType::NSEC
        | RecordType::NS
        | RecordType::PTR
        | RecordType::RRSIG
        | RecordType::SOA
        | RecordType::SRV
        | RecordType::TXT
        | RecordType::HTTPS
        | RecordType::IXFR
        | RecordType::AXFR
        | RecordType::ANY => t.into(),
        _ => "other",
    }
}

/// The `rcode` label as CoreDNS spells it (miekg/dns `RcodeToString`; unknown codes `RCODE<n>`).
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    rcode_mnemonic(rcode).unwrap_or_else(|| rcode_other(u16::from(rcode)))
}

/// `RCODE<n>` for codes without a name; interned so the label stays a `&'static str`.
fn rcode_other(n: u16) -> &'static str {
    static NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        (0..4096u16)
            .map(|i| &*Box::leak(format!("RCODE{i}").into_boxed_str()))
            .collect()
    });
    NAMES.get(usize::from(n)).copied().unwrap_or("RCODE")
}

#[cfg(test)]
mod tests;
