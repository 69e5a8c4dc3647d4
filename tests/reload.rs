//! `reload`: editing the Corefile changes answers without dropping queries; a broken edit is
//! logged and counted, and the old config keeps serving.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::fwd::{POLL, wait_until};
use support::*;

fn corefile(ip: &str) -> String {
    format!(
        "example.org:0 {{\n  reload 2s 1s\n  prometheus 127.0.0.1:0\n  hosts {{\n    {ip} www.example.org\n  }}\n}}\n"
    )
}

fn answer(ex: &Exdns) -> String {
    let r = udp(ex.dns(), &query("www.example.org.", RecordType::A, None));
    match &r.answers[0].data {
        RData::A(a) => a.0.to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn edit_changes_answers_without_dropping_queries() {
    let ex = Exdns::start(&corefile("192.0.2.1"));
    assert_eq!(answer(&ex), "192.0.2.1");
    let addr = ex.dns();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let loader = {
        let (stop, sent, lost, bad) = (stop.clone(), sent.clone(), lost.clone(), bad.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let q = query("www.example.org.", RecordType::A, None);
                sent.fetch_add(1, Ordering::Relaxed);
                match udp_raw(addr, &q.to_vec().unwrap(), Duration::from_secs(2)) {
                    None => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(raw) => {
                        let r = Message::from_vec(&raw).unwrap();
                        if r.metadata.response_code != ResponseCode::NoError || r.answers.len() != 1
                        {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    ex.write("Corefile", &corefile("192.0.2.2"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while answer(&ex) != "192.0.2.2" {
        assert!(
            Instant::now() < deadline,
            "reload did not happen:\n{}",
            ex.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    assert!(sent.load(Ordering::Relaxed) > 50);
    assert_eq!(
        lost.load(Ordering::Relaxed),
        0,
        "no query dropped across the reload"
    );
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "every reply was a full answer"
    );
    assert!(ex.wait_for_line("Running configuration SHA512 = ", Duration::from_secs(1)));
}

#[test]
fn broken_edit_keeps_the_old_config_and_is_counted() {
    let ex = Exdns::start(&corefile("192.0.2.1"));
    ex.write("Corefile", "example.org:0 {\n  reload 2s 1s\n  hosts {\n    192.0.2.9 www.example.org\n  }\n  nonsense\n}\n");
    assert!(
        ex.wait_for_line("reload failed", Duration::from_secs(10)),
        "{}",
        ex.output()
    );
    assert!(
        ex.output().contains("Unknown directive 'nonsense'"),
        "{}",
        ex.output()
    );
    assert_eq!(answer(&ex), "192.0.2.1");
    let (status, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.lines()
            .any(|l| l.starts_with("coredns_reload_failed_total") && !l.ends_with(" 0")),
        "{body}"
    );
    // A later good edit is picked up.
    ex.write("Corefile", &corefile("192.0.2.3"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while answer(&ex) != "192.0.2.3" {
        assert!(Instant::now() < deadline, "{}", ex.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigusr1_reloads_at_once() {
    let ex = Exdns::start("example.org:0 {\n  hosts {\n    192.0.2.1 www.example.org\n  }\n}\n");
    ex.write(
        "Corefile",
        "example.org:0 {\n  hosts {\n    192.0.2.7 www.example.org\n  }\n}\n",
    );
    ex.signal(libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while answer(&ex) != "192.0.2.7" {
        assert!(Instant::now() < deadline, "{}", ex.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The process's threads that serve UDP sockets (one per socket, named `exdns-udp`).
fn udp_threads(ex: &Exdns) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", ex.child.id()))
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "exdns-udp")
        })
        .count()
}

#[test]
fn a_listener_removed_by_a_reload_stops_its_threads_and_its_socket() {
    let both = "example.org:0 {\n  hosts {\n    192.0.2.1 www.example.org\n  }\n}\n\
                example.net:0 {\n  bind 127.0.0.2\n  hosts {\n    192.0.2.2 www.example.net\n  }\n}\n";
    let ex = Exdns::start(both);
    let kept = ex.addr("dns://:");
    let gone = ex.addr("dns://127.0.0.2:");
    let ask = |addr, name: &str| {
        let q = query(name, RecordType::A, None);
        udp_raw(addr, &q.to_vec().unwrap(), Duration::from_millis(500))
    };
    assert!(ask(gone, "www.example.net.").is_some(), "{}", ex.output());
    // One socket and thread per core and listener (the threads start just after "ready").
    let per_listener = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    assert!(
        wait_until(POLL, || udp_threads(&ex) == 2 * per_listener),
        "a thread per core and listener\n{}",
        ex.output()
    );

    ex.replace(
        "Corefile",
        "example.org:0 {\n  hosts {\n    192.0.2.1 www.example.org\n  }\n}\n",
    );
    ex.signal(libc::SIGUSR1);
    // The removed listener's threads exit and its sockets close: nothing answers there any more.
    assert!(
        wait_until(POLL, || udp_threads(&ex) == per_listener),
        "threads of the removed listener still running\n{}",
        ex.output()
    );
    assert_eq!(ask(gone, "www.example.net."), None, "{}", ex.output());
    // The listener that stays keeps its threads and answers.
    let r =
        Message::from_vec(&ask(kept, "www.example.org.").expect("kept listener answers")).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(udp_threads(&ex), per_listener);
}
