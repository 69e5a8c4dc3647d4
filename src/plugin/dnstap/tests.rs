use std::sync::Arc;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::dns::view::with_view;
use crate::plugin::test_chain::dispenser;

fn parsed(text: &str) -> Result<Settings, String> {
    setup::parse(&mut dispenser(text)).map_err(|e| e.to_string())
}

#[test]
fn settings() {
    let s = parsed("dnstap /tmp/dnstap.sock").unwrap();
    assert_eq!(s.endpoint, Endpoint::Unix("/tmp/dnstap.sock".into()));
    assert!(!s.full);
    assert_eq!((s.write_buffer, s.queue), (1, 1));
    assert_eq!(s.identity, crate::plugin::util::hostname().into_bytes());
    assert_eq!(
        s.version,
        format!("exdns-{}", env!("CARGO_PKG_VERSION")).into_bytes()
    );
    assert_eq!(s.extra, None);

    let s = parsed("dnstap unix:///tmp/d.sock full 1024 2048 {\n identity my-dns\n version V-1\n extra \"x y\"\n skipverify\n}").unwrap();
    assert_eq!(s.endpoint, Endpoint::Unix("/tmp/d.sock".into()));
    assert!(s.full);
    assert_eq!((s.write_buffer, s.queue), (1024, 2048));
    assert_eq!(s.identity, b"my-dns");
    assert_eq!(s.version, b"V-1");
    assert_eq!(s.extra.as_deref(), Some(&b"x y"[..]));

    let s = parsed("dnstap tcp://127.0.0.1:6000 full").unwrap();
    assert_eq!(s.endpoint, Endpoint::Tcp("127.0.0.1:6000".into()));
    // Positional, as CoreDNS: the third argument is the write buffer whatever the second is.
    let s = parsed("dnstap tcp://example.com:6000/ x 2").unwrap();
    assert_eq!(s.endpoint, Endpoint::Tcp("example.com:6000".into()));
    assert!(!s.full);
    assert_eq!(s.write_buffer, 2);
}

/// CoreDNS's messages (its setup.go and setup_test.go).
#[test]
fn setup_errors() {
    for (text, want) in [
        (
            "dnstap",
            "Wrong argument count or unexpected line ending after 'dnstap'",
        ),
        (
            "dnstap /s full x",
            "dnstap: invalid MultipleTcpWriteBuf \"x\": strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "dnstap /s full 0",
            "dnstap: MultipleTcpWriteBuf must be between 1 and 1024 (MiB units): 0",
        ),
        (
            "dnstap /s full 1025",
            "dnstap: MultipleTcpWriteBuf must be between 1 and 1024 (MiB units): 1025",
        ),
        (
            "dnstap /s full 1 y",
            "dnstap: invalid MultipleQueue \"y\": strconv.Atoi: parsing \"y\": invalid syntax",
        ),
        (
            "dnstap /s full 1 4097",
            "dnstap: MultipleQueue must be between 1 and 4096 (x10k messages): 4097",
        ),
        (
            "dnstap /s {\n identity\n}",
            "Wrong argument count or unexpected line ending after 'identity'",
        ),
        ("dnstap /s {\n bogus 1\n}", "unknown property 'bogus'"),
        (
            "dnstap /s {\n tls a b\n}",
            "tls directive only valid for listeners",
        ),
        (
            "dnstap listen /s",
            "dnstap listen is not supported by exdns",
        ),
        (
            "dnstap tls://127.0.0.1:6000",
            "tls:// dnstap endpoints are not supported by exdns",
        ),
    ] {
        let got = parsed(text).unwrap_err();
        assert!(
            got.ends_with(&format!("Error during parsing: {want}")),
            "{text}: {got}"
        );
    }
}

/// Answers everything on the fast path (fixed bytes) and on the full path (REFUSED).
struct Answer;

#[async_trait]
impl Plugin for Answer {
    fn name(&self) -> &'static str {
        "answer"
    }
    async fn serve(&self, _req: &Request, _next: Next<'_>) -> Outcome {
        Outcome::code(ResponseCode::Refused, "answer")
    }
    fn fast(&self, _q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        Some(FastReply {
            bytes: vec![1, 2, 3],
            rcode: ResponseCode::NoError,
            plugin: "answer",
        })
    }
}

fn tap(full: bool, queue_records: usize) -> (Dnstap, mpsc::Receiver<Record>) {
    let mut t = Dnstap::new(Settings {
        endpoint: Endpoint::Unix("/nonexistent".into()),
        full,
        write_buffer: 1,
        queue: 1,
        identity: b"id".to_vec(),
        version: b"v".to_vec(),
        extra: None,
    });
    // A smaller queue for the drop test.
    let (tx, rx) = mpsc::channel(queue_records);
    t.tx = tx;
    *t.rx.get_mut().unwrap() = None;
    (t, rx)
}

fn query_bytes() -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.org.").unwrap(),
        RecordType::A,
    ));
    m.to_vec().unwrap()
}

#[test]
fn fast_answers_are_tapped() {
    let (t, mut rx) = tap(true, 16);
    let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(Answer)];
    let buf = query_bytes();
    let reply = with_view(&buf, Proto::Udp, |q| t.fast(q, FastNext::new(&rest)))
        .unwrap()
        .expect("answered fast");
    assert_eq!(reply.bytes, [1, 2, 3]);
    let q = rx.try_recv().unwrap();
    let r = rx.try_recv().unwrap();
    assert!(rx.try_recv().is_err());
    assert!(!q.response && r.response && !q.tcp);
    assert_eq!(q.client, "192.0.2.200:5353".parse().unwrap());
    assert_eq!(q.wire.as_deref(), Some(&buf[..]));
    assert_eq!(r.wire.as_deref(), Some(&[1u8, 2, 3][..]));
    assert!(r.response_time.unwrap() >= r.query_time);

    // Without `full`, no message bytes; a chain that declines the fast path taps nothing.
    let (t, mut rx) = tap(false, 16);
    with_view(&buf, Proto::Tcp, |q| t.fast(q, FastNext::new(&rest))).unwrap();
    let q = rx.try_recv().unwrap();
    assert!(q.wire.is_none() && q.tcp);
    let empty: Vec<Arc<dyn Plugin>> = vec![];
    assert!(
        with_view(&buf, Proto::Udp, |q| t.fast(q, FastNext::new(&empty)))
            .unwrap()
            .is_none()
    );
    rx.try_recv().unwrap();
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn full_path_is_tapped_and_a_full_queue_drops() {
    let (t, mut rx) = tap(true, 3);
    let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(Answer)];
    let buf = query_bytes();
    let msg = Message::from_vec(&buf).unwrap();
    let src = "[2001:db8::1]:999".parse().unwrap();
    let req = Request::new(
        msg,
        src,
        "127.0.0.1:53".parse().unwrap(),
        Proto::Udp,
        buf.len(),
    );
    let before = DROPPED.get();
    t.serve(&req, Next::new(&rest)).await;
    let q = rx.try_recv().unwrap();
    let r = rx.try_recv().unwrap();
    assert_eq!(q.client, src);
    assert_eq!(
        Message::from_vec(q.wire.as_deref().unwrap())
            .unwrap()
            .metadata
            .id,
        7
    );
    let reply = Message::from_vec(r.wire.as_deref().unwrap()).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert_eq!(reply.metadata.id, 7);
    // Three slots: the fourth and later records of two queries are dropped, and counted.
    t.serve(&req, Next::new(&rest)).await;
    t.serve(&req, Next::new(&rest)).await;
    assert_eq!(t.dropped.load(Ordering::Relaxed), 1);
    assert!(DROPPED.get() > before);
}
