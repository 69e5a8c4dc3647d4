use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::metrics::{PLUGIN_ENABLED, gather_text, record_plugins_enabled};
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::{self, Fixed, request_from, setup_into};

fn query(name: &str, qtype: RecordType, edns: Option<Edns>) -> Message {
    let mut m = Message::new(4711, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.edns = edns;
    m
}

fn request(server: &str, msg: Message, src: &str, proto: Proto) -> Request {
    let mut r = request_from(msg, src, proto);
    r.server = Arc::from(server);
    r.zone = Arc::from("example.org.");
    r
}

/// Runs `req` through prometheus followed by a plugin returning `out`.
async fn run(req: &Request, out: Outcome) -> Outcome {
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(move |_| out.dup())];
    test_chain::serve(&Prometheus::default(), req, &rest).await
}

fn answer(req: &Request) -> Message {
    let mut m = req.reply();
    m.add_answer(Record::from_rdata(
        req.qname().clone(),
        300,
        RData::A(A::new(192, 0, 2, 1)),
    ));
    m
}

fn requests(server: &str, proto: &str, fam: &str, t: &str) -> u64 {
    REQUESTS
        .with_label_values(&[server, "example.org.", "", proto, fam, t])
        .get()
}

fn responses(server: &str, rcode: &str, plugin: &str) -> u64 {
    RESPONSES
        .with_label_values(&[server, "example.org.", "", rcode, plugin])
        .get()
}

fn sizes(h: &prometheus::HistogramVec, server: &str, proto: &str) -> (u64, f64) {
    let h = h.with_label_values(&[server, "example.org.", "", proto]);
    (h.get_sample_count(), h.get_sample_sum())
}

#[tokio::test]
async fn counts_a_reply() {
    let s = "dns://:10001";
    let req = request(
        s,
        query("www.example.org.", RecordType::A, None),
        "192.0.2.9:5353",
        Proto::Udp,
    );
    let reply = answer(&req);
    let wire = reply.to_vec().unwrap().len();
    let out = run(&req, Outcome::reply(reply, "whoami")).await;
    assert_eq!(
        out.plugin(),
        "whoami",
        "the outcome passes through unchanged"
    );
    assert_eq!(requests(s, "udp", "1", "A"), 1);
    assert_eq!(responses(s, "NOERROR", "whoami"), 1);
    assert_eq!(sizes(&REQUEST_SIZE, s, "udp"), (1, req.size as f64));
    assert_eq!(sizes(&RESPONSE_SIZE, s, "udp"), (1, wire as f64));
    let d = REQUEST_DURATION.with_label_values(&[s, "example.org.", ""]);
    assert_eq!(d.get_sample_count(), 1);
    assert_eq!(
        DO_REQUESTS
            .with_label_values(&[s, "example.org.", ""])
            .get(),
        0
    );
}

#[tokio::test]
async fn code_outcome_counts_the_servers_empty_reply() {
    let s = "dns://:10002";
    let req = request(
        s,
        query("x.example.org.", RecordType::NAPTR, None),
        "[2001:db8::1]:4000",
        Proto::Tcp,
    );
    let empty = req
        .reply_code(ResponseCode::ServFail)
        .to_vec()
        .unwrap()
        .len();
    run(&req, Outcome::code(ResponseCode::ServFail, "forward")).await;
    assert_eq!(
        requests(s, "tcp", "2", "other"),
        1,
        "NAPTR is not monitored"
    );
    assert_eq!(
        responses(s, "SERVFAIL", ""),
        1,
        "nobody wrote: empty plugin label"
    );
    assert_eq!(responses(s, "SERVFAIL", "forward"), 0);
    assert_eq!(sizes(&RESPONSE_SIZE, s, "tcp"), (1, empty as f64));
}

#[tokio::test]
async fn drop_counts_the_request_only() {
    let s = "dns://:10003";
    let req = request(
        s,
        query("x.example.org.", RecordType::AAAA, None),
        "192.0.2.9:53",
        Proto::Udp,
    );
    run(&req, Outcome::Drop { plugin: "acl" }).await;
    assert_eq!(requests(s, "udp", "1", "AAAA"), 1);
    let text = gather_text();
    let needle = format!("server=\"{s}\"");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("coredns_dns_responses_total") && l.contains(&needle)),
        "no response counted for a drop"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("coredns_dns_response_size_bytes") && l.contains(&needle)),
        "no response size for a drop"
    );
}

#[tokio::test]
async fn do_bit_and_opt_record_size() {
    let s = "dns://:10004";
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    let req = request(
        s,
        query("www.example.org.", RecordType::A, Some(edns)),
        "192.0.2.9:53",
        Proto::Udp,
    );
    let reply = answer(&req);
    let wire = reply.to_vec().unwrap().len();
    run(&req, Outcome::reply(reply, "hosts")).await;
    assert_eq!(
        DO_REQUESTS
            .with_label_values(&[s, "example.org.", ""])
            .get(),
        1
    );
    assert_eq!(
        sizes(&RESPONSE_SIZE, s, "udp"),
        (1, (wire + 11) as f64),
        "the OPT record the server adds is counted"
    );
}

#[tokio::test]
async fn udp_reply_size_is_capped_at_the_client_limit() {
    let s = "dns://:10005";
    let req = request(
        s,
        query("big.example.org.", RecordType::TXT, None),
        "192.0.2.9:53",
        Proto::Udp,
    );
    let mut reply = req.reply();
    for i in 0..10 {
        reply.add_answer(Record::from_rdata(
            req.qname().clone(),
            60,
            RData::TXT(TXT::new(vec![format!("{i}").repeat(200)])),
        ));
    }
    assert!(reply.to_vec().unwrap().len() > 512);
    run(&req, Outcome::reply(reply.clone(), "hosts")).await;
    assert_eq!(sizes(&RESPONSE_SIZE, s, "udp"), (1, 512.0));
    // Over TCP the whole reply goes out.
    let s = "dns://:10006";
    let req = request(
        s,
        query("big.example.org.", RecordType::TXT, None),
        "192.0.2.9:53",
        Proto::Tcp,
    );
    let wire = reply.to_vec().unwrap().len();
    run(&req, Outcome::reply(reply, "hosts")).await;
    assert_eq!(sizes(&RESPONSE_SIZE, s, "tcp"), (1, wire as f64));
}

#[test]
fn labels_as_coredns() {
    assert_eq!(qtype_label(RecordType::A), "A");
    assert_eq!(qtype_label(RecordType::HTTPS), "HTTPS");
    assert_eq!(qtype_label(RecordType::AXFR), "AXFR");
    assert_eq!(qtype_label(RecordType::ANY), "ANY");
    assert_eq!(qtype_label(RecordType::CAA), "other");
    assert_eq!(qtype_label(RecordType::HINFO), "other");
    assert_eq!(qtype_label(RecordType::Unknown(65280)), "other");
    use RecordType as T;
    let monitored = [
        (T::A, "A"),
        (T::AAAA, "AAAA"),
        (T::CNAME, "CNAME"),
        (T::DNSKEY, "DNSKEY"),
        (T::DS, "DS"),
        (T::MX, "MX"),
        (T::NSEC3, "NSEC3"),
        (T::NSEC, "NSEC"),
        (T::NS, "NS"),
        (T::PTR, "PTR"),
        (T::RRSIG, "RRSIG"),
        (T::SOA, "SOA"),
        (T::SRV, "SRV"),
        (T::TXT, "TXT"),
        (T::HTTPS, "HTTPS"),
        (T::IXFR, "IXFR"),
        (T::AXFR, "AXFR"),
        (T::ANY, "ANY"),
    ];
    for (t, name) in monitored {
        assert_eq!(qtype_label(t), name);
    }
    assert_eq!(rcode_label(ResponseCode::Unknown(11)), "DSOTYPENI");
    assert_eq!(rcode_label(ResponseCode::NoError), "NOERROR");
    assert_eq!(rcode_label(ResponseCode::NXDomain), "NXDOMAIN");
    assert_eq!(rcode_label(ResponseCode::NotImp), "NOTIMP");
    assert_eq!(rcode_label(ResponseCode::Refused), "REFUSED");
    assert_eq!(rcode_label(ResponseCode::FormErr), "FORMERR");
    assert_eq!(rcode_label(ResponseCode::BADVERS), "BADSIG");
    assert_eq!(rcode_label(ResponseCode::Unknown(3841)), "RCODE3841");
}

#[test]
fn plugins_enabled_gauge() {
    record_plugins_enabled("dns://:10007", "example.org.", &["prometheus", "whoami"]);
    let g = |n: &str| {
        PLUGIN_ENABLED
            .with_label_values(&["dns://:10007", "example.org.", "", n])
            .get()
    };
    assert_eq!(g("prometheus"), 1);
    assert_eq!(g("whoami"), 1);
    assert_eq!(g("cache"), 0);
}

fn setup_run(text: &str) -> Result<(Option<String>, bool), String> {
    let mut config = BlockConfig::default();
    let h = setup_into(setup, text, &["example.org."], &mut config).map_err(|e| e.to_string())?;
    Ok((
        config.http_addr(Some("/metrics")).map(str::to_string),
        h.is_some_and(|h| h.name() == "prometheus"),
    ))
}

#[test]
fn setup_records_address_and_adds_handler() {
    assert_eq!(
        setup_run("prometheus"),
        Ok((Some("localhost:9153".to_string()), true))
    );
    assert_eq!(
        setup_run("prometheus :9253"),
        Ok((Some(":9253".to_string()), true))
    );
    assert_eq!(
        setup_run("prometheus [::]:9153"),
        Ok((Some("[::]:9153".to_string()), true))
    );
    assert!(gather_text().contains("coredns_build_info{"));
}

#[test]
fn setup_errors() {
    assert_eq!(
        setup_run("prometheus :1 :2").unwrap_err(),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after ':2'"
    );
    assert_eq!(
        setup_run("prometheus 9153").unwrap_err(),
        "Corefile:1 - Error during parsing: address 9153: missing port in address"
    );
    assert_eq!(
        setup_run("prometheus :9153 {\n tls a b\n}").unwrap_err(),
        "Corefile:2 - Error during parsing: the tls block of prometheus is not supported by exdns"
    );
    assert_eq!(
        setup_run("prometheus :9153 {\n path /m\n}").unwrap_err(),
        "Corefile:2 - Error during parsing: unknown option: path"
    );
}
