use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use super::*;
use crate::dns::request::Proto;
use crate::plugin::test_chain::{
    self, Fixed, block, query, request, request_from, setup_err, setup_in,
};

/// A loop detector whose action records the messages instead of exiting.
fn detector(zone: &str, timing: ProbeTiming) -> (Arc<Loop>, Arc<Mutex<Vec<String>>>) {
    let fired = Arc::new(Mutex::new(Vec::new()));
    let f = fired.clone();
    let l = Loop::new(zone)
        .with_timing(timing)
        .with_action(Arc::new(move |m: &str| {
            f.lock().unwrap().push(m.to_string())
        }));
    (Arc::new(l), fired)
}

fn fast() -> ProbeTiming {
    ProbeTiming {
        deadline: Duration::from_secs(5),
        timeout: Duration::from_millis(200),
        retry: Duration::from_millis(50),
    }
}

fn startup(addr: SocketAddr) -> StartupCtx {
    StartupCtx {
        dns_addrs: vec![addr],
        zones: vec![".".to_string()],
    }
}

async fn wait_until(what: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if what() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[test]
fn setup_zone_and_name() {
    let p = setup_in(setup, "loop", &["example.org.", "example.net."])
        .unwrap()
        .unwrap();
    assert_eq!(p.name(), "loop");
    let l = Loop::new("example.org.");
    let re = regex::Regex::new(r"^\d+\.\d+\.example\.org\.$").unwrap();
    assert!(re.is_match(l.qname()), "{}", l.qname());
    let root = Loop::new(".");
    let re = regex::Regex::new(r"^\d+\.\d+\.$").unwrap();
    assert!(re.is_match(root.qname()), "{}", root.qname());
    assert_ne!(root.qname(), Loop::new(".").qname());
    assert_eq!(
        setup_err(setup, "loop 1"),
        "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '1'"
    );
    // The zone comes from the block's first key.
    let b = block(&["example.org.", "example.net."]);
    let mut config = crate::plugin::config::BlockConfig::default();
    let ctx = crate::plugin::SetupCtx {
        block: &b,
        config: &mut config,
    };
    let l = setup::parse(&mut test_chain::dispenser("loop"), &ctx).unwrap();
    assert_eq!(l.zone(), "example.org.");
    assert!(l.qname().ends_with(".example.org."));
}

#[tokio::test]
async fn counts_only_the_probe_query() {
    let (l, fired) = detector(".", fast());
    let next = Fixed::reply(|_| {});
    let rest: Vec<Arc<dyn Plugin>> = vec![next.clone()];
    let probe = l.qname().to_string();
    // (qname, qtype, counted)
    let cases = [
        (probe.as_str(), RecordType::A, false),
        ("1.2.", RecordType::HINFO, false),
        (probe.as_str(), RecordType::HINFO, true),
        (probe.as_str(), RecordType::HINFO, true),
    ];
    let mut want = 0;
    for (name, qtype, counted) in cases {
        let out = test_chain::serve(&*l, &request(name, qtype), &rest).await;
        assert_eq!(out.plugin(), "fixed", "always passes on");
        want += u32::from(counted);
        assert_eq!(l.seen(), want, "{name} {qtype}");
    }
    assert!(fired.lock().unwrap().is_empty(), "twice is not a loop");
    // The third time is.
    let req = request_from(
        query(&probe, RecordType::HINFO),
        "127.0.0.1:55953",
        Proto::Udp,
    );
    let out = test_chain::serve(&*l, &req, &rest).await;
    assert_eq!(out.plugin(), "fixed");
    assert_eq!(next.calls(), 5);
    assert_eq!(
        *fired.lock().unwrap(),
        [format!(
            "Loop (127.0.0.1:55953 -> ) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {probe}\""
        )]
    );
}

#[tokio::test]
async fn probe_name_outside_zone_is_ignored() {
    let (l, _) = detector("example.org.", fast());
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::reply(|_| {})];
    for _ in 0..3 {
        test_chain::serve(&*l, &request("1.2.example.net.", RecordType::HINFO), &rest).await;
    }
    assert_eq!(l.seen(), 0);
}

/// A UDP "server" for the probe: either answers it, or feeds it through `l` three times (the
/// query coming back through a forward to ourselves) and never answers.
async fn fake_server(l: Arc<Loop>, looping: bool) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let msg = Message::from_vec(&buf[..n]).unwrap();
            let req = crate::dns::request::Request::new(msg, peer, local, Proto::Udp, n);
            if looping {
                let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::reply(|_| {})];
                for _ in 0..3 {
                    l.serve(&req, Next::new(&rest)).await;
                }
            } else {
                let mut m = req.reply();
                m.metadata.message_type = MessageType::Response;
                sock.send_to(&m.to_vec().unwrap(), peer).await.unwrap();
            }
        }
    });
    local
}

#[tokio::test]
async fn answered_probe_disables_the_plugin() {
    let (l, fired) = detector(".", fast());
    let addr = fake_server(l.clone(), false).await;
    l.on_startup(&startup(addr)).await.unwrap();
    assert!(wait_until(|| l.disabled()).await);
    // Disabled: the probe name no longer counts.
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::reply(|_| {})];
    for _ in 0..3 {
        test_chain::serve(&*l, &request(l.qname(), RecordType::HINFO), &rest).await;
    }
    assert_eq!(l.seen(), 0);
    assert!(fired.lock().unwrap().is_empty());
    l.on_shutdown();
}

#[tokio::test]
async fn looping_probe_fires_with_coredns_message() {
    for wildcard in [false, true] {
        let (l, fired) = detector(".", fast());
        let addr = fake_server(l.clone(), true).await;
        let listen = if wildcard {
            SocketAddr::new("0.0.0.0".parse().unwrap(), addr.port())
        } else {
            addr
        };
        l.on_startup(&startup(listen)).await.unwrap();
        assert!(wait_until(|| !fired.lock().unwrap().is_empty()).await);
        let msg = fired.lock().unwrap()[0].clone();
        let shown = if wildcard {
            format!(":{}", addr.port())
        } else {
            addr.to_string()
        };
        let re = regex::Regex::new(&format!(
            r#"^Loop \(127\.0\.0\.1:\d+ -> {}\) detected for zone "\.", see https://coredns\.io/plugins/loop#troubleshooting\. Query: "HINFO {}"$"#,
            regex::escape(&shown),
            regex::escape(l.qname())
        ))
        .unwrap();
        assert!(re.is_match(&msg), "{msg}");
        l.on_shutdown();
    }
}

#[tokio::test]
async fn unanswered_probe_gives_up_after_the_deadline() {
    let (l, fired) = detector(
        ".",
        ProbeTiming {
            deadline: Duration::from_millis(300),
            timeout: Duration::from_millis(100),
            retry: Duration::from_millis(20),
        },
    );
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    l.on_startup(&startup(silent.local_addr().unwrap()))
        .await
        .unwrap();
    assert!(!l.disabled());
    assert!(wait_until(|| l.disabled()).await);
    assert!(fired.lock().unwrap().is_empty());
}

#[tokio::test]
async fn no_listener_disables() {
    let (l, _) = detector(".", fast());
    l.on_startup(&StartupCtx {
        dns_addrs: vec![],
        zones: vec![".".to_string()],
    })
    .await
    .unwrap();
    assert!(l.disabled());
}

#[test]
fn probe_targets() {
    let cases = [
        ("0.0.0.0:53", "127.0.0.1:53", ":53"),
        ("[::]:1053", "[::1]:1053", ":1053"),
        ("127.0.0.2:53", "127.0.0.2:53", "127.0.0.2:53"),
        ("[fd00::1]:53", "[fd00::1]:53", "[fd00::1]:53"),
    ];
    for (listen, target, shown) in cases {
        let (t, s) = probe_target(listen.parse().unwrap());
        assert_eq!((t.to_string(), s.as_str()), (target.to_string(), shown));
    }
}
