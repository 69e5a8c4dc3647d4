//! Self-test of `support::tlsecho`: the in-process DoT upstream records SNI, answers pipelined
//! queries out of order, resumes sessions, closes idle connections and misbehaves on request.

mod support;

use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::tlsecho::{
    Behavior, DotClient, TlsEcho, TlsEchoOpts, Transport, a_record, client_config, reply_to,
};
use support::{query, read_framed, tcp, udp, udp_raw, write_framed};

const NAME: &str = "dns.example.test";

fn a_of(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[test]
fn records_sni_and_rejects_wrong_names() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    let mut c = echo.client(NAME).expect("handshake");
    let q = query("www.example.test.", RecordType::A, Some(1232));
    let r = c.query(&q).unwrap();
    assert_eq!(r.metadata.id, q.metadata.id);
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(echo.snis(), vec![Some(NAME.to_string())]);
    assert_eq!(echo.hello_snis(), vec![Some(NAME.to_string())]);
    assert_eq!(echo.tls_handshakes(), 1);

    // A client expecting another name sends that SNI and rejects the certificate.
    assert!(echo.client("other.example.test").is_err());
    // An IP address as server name sends no SNI (and the certificate has no IP SAN).
    assert!(echo.client("127.0.0.1").is_err());
    assert_eq!(
        echo.hello_snis(),
        vec![
            Some(NAME.to_string()),
            Some("other.example.test".to_string()),
            None
        ]
    );
    assert_eq!(echo.tls_handshakes(), 1);
    wait_until(|| echo.tls_failures() == 2);
    assert_eq!(echo.connections(), 3);
    let seen = echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name, "www.example.test.");
    assert_eq!(seen[0].transport, Transport::Tls);
    assert_eq!(seen[0].qtype, RecordType::A);
    assert_eq!(seen[0].conn, 1);
}

#[test]
fn pipelined_queries_are_answered_out_of_order() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    echo.set_delay("Slow.Example.Test", Duration::from_millis(500));
    let mut c = echo.client(NAME).unwrap();
    let slow = query("slow.example.test.", RecordType::A, None);
    let fast: Vec<Message> = (0..5)
        .map(|i| query(&format!("fast{i}.example.test."), RecordType::A, None))
        .collect();
    let start = Instant::now();
    c.send(&slow).unwrap();
    for q in &fast {
        c.send(q).unwrap();
    }
    // The five fast replies overtake the slow one, which comes last.
    let mut ids = vec![];
    for _ in 0..5 {
        ids.push(c.recv().unwrap().metadata.id);
    }
    let fast_done = start.elapsed();
    let last = c.recv().unwrap();
    assert_eq!(last.metadata.id, slow.metadata.id);
    assert!(
        fast_done < Duration::from_millis(400),
        "fast replies were held back: {fast_done:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(500));
    let mut want: Vec<u16> = fast.iter().map(|q| q.metadata.id).collect();
    want.sort();
    ids.sort();
    assert_eq!(ids, want);
    assert!(echo.max_in_flight() >= 2, "{}", echo.max_in_flight());
    assert_eq!(echo.connections(), 1);
    assert_eq!(echo.queries_for("slow.example.test"), 1);
}

#[test]
fn sessions_resume_and_connections_are_counted() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    let cfg = client_config(echo.root_store());
    let mut a = DotClient::connect(echo.addr, NAME, &cfg).unwrap();
    assert!(!a.resumed());
    a.query(&query("a.example.test.", RecordType::A, None))
        .unwrap();
    let mut b = DotClient::connect(echo.addr, NAME, &cfg).unwrap();
    assert!(b.resumed());
    b.query(&query("b.example.test.", RecordType::A, None))
        .unwrap();
    assert_eq!(echo.tls_handshakes(), 2);
    assert_eq!(echo.tls_resumed(), 1);
    // Every handshake's SNI, resumed ones included.
    assert_eq!(echo.snis(), vec![Some(NAME.into()), Some(NAME.into())]);
    assert_eq!(echo.hello_snis(), echo.snis());
    assert_eq!(echo.open_connections(), 2);
    drop(a);
    drop(b);
    wait_until(|| echo.open_connections() == 0);
}

#[test]
fn idle_connections_are_closed() {
    let echo = TlsEcho::start(TlsEchoOpts::new().idle_timeout(Duration::from_millis(200)));
    let mut c = echo.client(NAME).unwrap();
    c.query(&query("a.example.test.", RecordType::A, None))
        .unwrap();
    std::thread::sleep(Duration::from_millis(250));
    // Still busy (a slow reply pending) is not idle.
    echo.set_delay("slow.example.test", Duration::from_millis(400));
    let mut d = echo.client(NAME).unwrap();
    let q = query("slow.example.test.", RecordType::A, None);
    d.send(&q).unwrap();
    assert_eq!(d.recv().unwrap().metadata.id, q.metadata.id);
    // The first connection was closed by the server (EOF / close_notify).
    assert!(c.recv().is_err());
    // The second one closes 200 ms after its reply.
    // The counters move one after the other: wait for both.
    wait_until(|| echo.idle_closed() == 2 && echo.open_connections() == 0);
    assert_eq!(echo.idle_closed(), 2);
}

#[test]
fn closes_after_max_queries_and_on_request() {
    let echo = TlsEcho::start(TlsEchoOpts::new().max_queries_per_conn(2));
    let mut c = echo.client(NAME).unwrap();
    let q1 = query("one.example.test.", RecordType::A, None);
    let q2 = query("two.example.test.", RecordType::A, None);
    c.send(&q1).unwrap();
    c.send(&q2).unwrap();
    let mut got = [c.recv().unwrap().metadata.id, c.recv().unwrap().metadata.id];
    got.sort();
    let mut want = [q1.metadata.id, q2.metadata.id];
    want.sort();
    assert_eq!(got, want, "both replies written before the close");
    assert!(c.recv().is_err(), "closed after two queries");

    let mut d = echo.client(NAME).unwrap();
    d.query(&q1).unwrap();
    echo.close_connections();
    assert!(d.recv().is_err());
    wait_until(|| echo.open_connections() == 0);
}

#[test]
fn misbehaves_on_request() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    let q = query("www.example.test.", RecordType::A, None);

    echo.set_behavior(Behavior::WrongId);
    let r = echo.client(NAME).unwrap().query(&q).unwrap();
    assert_eq!(r.metadata.id, q.metadata.id.wrapping_add(1));

    echo.set_behavior(Behavior::WrongQuestion);
    let r = echo.client(NAME).unwrap().query(&q).unwrap();
    assert_eq!(r.queries[0].name().to_ascii(), "wrong-question.example.");

    echo.set_behavior(Behavior::Garbage);
    let mut c = echo.client(NAME).unwrap();
    c.send(&q).unwrap();
    let raw = c.recv_raw().unwrap();
    assert!(Message::from_vec(&raw).is_err());

    echo.set_behavior(Behavior::Hang);
    let mut c = echo.client(NAME).unwrap();
    c.set_read_timeout(Duration::from_millis(300));
    c.send(&q).unwrap();
    assert!(c.recv().is_err(), "hanging server answered");
    assert!(echo.wait_queries(4, Duration::from_secs(2)));

    echo.set_behavior(Behavior::CloseOnQuery);
    let mut c = echo.client(NAME).unwrap();
    c.send(&q).unwrap();
    assert!(c.recv().is_err());

    echo.set_behavior(Behavior::CloseOnAccept);
    assert!(echo.client(NAME).is_err());

    echo.set_behavior(Behavior::StallHandshake);
    let s = TcpStream::connect(echo.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut s2 = s.try_clone().unwrap();
    // A ClientHello-looking first byte gets no ServerHello.
    use std::io::{Read, Write};
    s2.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let mut buf = [0u8; 16];
    assert!((&s).read(&mut buf).is_err(), "stalled handshake got data");
    echo.close_connections();

    echo.set_behavior(Behavior::Answer);
    let r = echo.client(NAME).unwrap().query(&q).unwrap();
    assert_eq!(r.metadata.id, q.metadata.id);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn default_answers_and_plain_transports() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    // UDP on the same port.
    let r = udp(
        echo.addr,
        &query("www.example.test.", RecordType::A, Some(1232)),
    );
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert!(r.metadata.authentic_data, "default answers carry AD");
    assert!(r.metadata.recursion_available);
    assert!(r.edns.is_some());
    // Plain TCP on the same port.
    let r = tcp(
        echo.addr,
        &query("nxdomain.example.test.", RecordType::A, None),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.authorities.len(), 1);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(r.authorities[0].name.to_ascii(), "example.test.");
    let r = udp(
        echo.addr,
        &query("www.example.test.", RecordType::AAAA, None),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities.len(), 1);
    let r = udp(
        echo.addr,
        &query("servfail.example.test.", RecordType::A, None),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let r = udp(
        echo.addr,
        &query("txt.example.test.", RecordType::TXT, None),
    );
    assert_eq!(r.answers.len(), 1);

    // Truncate: UDP gets TC and no answer, TCP the full answer.
    echo.set_behavior(Behavior::Truncate);
    let q = query("www.example.test.", RecordType::A, None);
    let r = udp(echo.addr, &q);
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    let r = tcp(echo.addr, &q);
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 1);

    // UDP hang: no reply at all.
    echo.set_behavior(Behavior::Hang);
    assert!(udp_raw(echo.addr, &q.to_vec().unwrap(), Duration::from_millis(300)).is_none());

    // A custom handler.
    echo.set_behavior(Behavior::Answer);
    echo.set_handler(|q| {
        let mut r = reply_to(q);
        r.answers.push(a_record(
            "custom.example.test.",
            Ipv4Addr::new(198, 51, 100, 7),
            42,
        ));
        r
    });
    let r = udp(echo.addr, &q);
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(198, 51, 100, 7)]);
    assert_eq!(r.answers[0].ttl, 42);
    assert!(!r.metadata.authentic_data);

    let transports: Vec<Transport> = echo.seen().iter().map(|s| s.transport).collect();
    assert!(transports.contains(&Transport::Udp) && transports.contains(&Transport::Tcp));
    assert!(!transports.contains(&Transport::Tls));
    // A raw framed exchange over plain TCP, for good measure.
    let mut s = TcpStream::connect(echo.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_framed(&mut s, &q.to_vec().unwrap());
    let r = Message::from_vec(&read_framed(&mut s).unwrap()).unwrap();
    assert_eq!(r.metadata.id, q.metadata.id);
}

#[test]
fn stop_closes_everything() {
    let mut echo = TlsEcho::start(TlsEchoOpts::new().udp(false));
    let addr = echo.addr;
    let mut c = echo.client(NAME).unwrap();
    c.query(&query("a.example.test.", RecordType::A, None))
        .unwrap();
    echo.stop();
    assert!(c.recv().is_err());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

fn wait_until(f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(f(), "condition not met in 3 s");
}
