use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::*;
use crate::plugin::test_chain::{
    self, Fixed, capture_logs, dispenser, request, setup_err, setup_in,
};

fn parsed(text: &str) -> Errors {
    setup::parse(&mut dispenser(text)).unwrap()
}

fn startup() -> StartupCtx {
    StartupCtx {
        dns_addrs: vec![],
        zones: vec![".".to_string()],
    }
}

#[tokio::test]
async fn logs_error_codes_of_the_chain() {
    // (outcome of the next plugin, expected log line)
    let cases: Vec<(Outcome, Option<&str>)> = vec![
        (
            Outcome::code(ResponseCode::ServFail, "forward"),
            Some(
                "ERROR exdns::plugin::errors: plugin/errors: 2 example.org. A: forward returned SERVFAIL",
            ),
        ),
        (
            Outcome::code(ResponseCode::Refused, "acl"),
            Some(
                "ERROR exdns::plugin::errors: plugin/errors: 5 example.org. A: acl returned REFUSED",
            ),
        ),
        (
            Outcome::code(ResponseCode::NotImp, "file"),
            Some(
                "ERROR exdns::plugin::errors: plugin/errors: 4 example.org. A: file returned NOTIMP",
            ),
        ),
        (
            Outcome::code(ResponseCode::FormErr, "forward"),
            Some(
                "ERROR exdns::plugin::errors: plugin/errors: 1 example.org. A: forward returned FORMERR",
            ),
        ),
        (Outcome::code(ResponseCode::NXDomain, "file"), None),
        (Outcome::Drop { plugin: "acl" }, None),
    ];
    for (outcome, want) in cases {
        let (_guard, logs) = capture_logs();
        let o = outcome.dup();
        let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(move |_| o.dup())];
        let e = parsed("errors");
        let out = test_chain::serve(&e, &request("Example.ORG.", RecordType::A), &rest).await;
        assert_eq!(out.rcode(), outcome.rcode());
        assert_eq!(out.plugin(), outcome.plugin());
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        assert_eq!(logs.lines(), want);
    }
}

#[tokio::test]
async fn written_replies_are_not_errors() {
    let (_guard, logs) = capture_logs();
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::reply(|m| {
        m.metadata.response_code = ResponseCode::ServFail;
    })];
    let e = parsed("errors");
    let out = test_chain::serve(&e, &request("example.org.", RecordType::A), &rest).await;
    assert_eq!(out.rcode(), Some(ResponseCode::ServFail));
    assert!(logs.lines().is_empty());
}

#[tokio::test]
async fn end_of_chain_is_no_next_plugin() {
    let (_guard, logs) = capture_logs();
    let e = parsed("errors");
    let out = e
        .serve(&request("example.org.", RecordType::MX), Next::new(&[]))
        .await;
    assert_eq!(out.rcode(), Some(ResponseCode::ServFail));
    assert_eq!(
        logs.lines(),
        ["ERROR exdns::plugin::errors: plugin/errors: 2 example.org. MX: no next plugin found"]
    );
}

#[tokio::test]
async fn consolidates_matching_errors() {
    let (_guard, logs) = capture_logs();
    let e = parsed("errors {\n consolidate 100ms \"^forward returned\" warning\n}");
    e.on_startup(&startup()).await.unwrap();
    let fwd: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| {
        Outcome::code(ResponseCode::ServFail, "forward")
    })];
    let acl: Vec<Arc<dyn Plugin>> =
        vec![Fixed::new(|_| Outcome::code(ResponseCode::Refused, "acl"))];
    let req = request("example.org.", RecordType::A);
    for _ in 0..3 {
        test_chain::serve(&e, &req, &fwd).await;
    }
    // Not matching: logged at once.
    test_chain::serve(&e, &req, &acl).await;
    assert_eq!(e.patterns[0].pending(), 3);
    assert_eq!(
        logs.lines(),
        ["ERROR exdns::plugin::errors: plugin/errors: 5 example.org. A: acl returned REFUSED"]
    );
    // One summary after the period.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while e.patterns[0].pending() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        logs.lines()[1..],
        [
            "WARN exdns::plugin::errors: plugin/errors: 3 errors like '^forward returned' occurred in last 100ms"
        ]
    );
    // A new period starts with the next matching error.
    test_chain::serve(&e, &req, &fwd).await;
    assert_eq!(e.patterns[0].pending(), 1);
    e.on_shutdown();
    // Shutdown flushes what is pending; after it errors are logged one by one.
    assert_eq!(e.patterns[0].pending(), 0);
    test_chain::serve(&e, &req, &fwd).await;
    assert_eq!(
        logs.lines()[2..],
        [
            "WARN exdns::plugin::errors: plugin/errors: 1 errors like '^forward returned' occurred in last 100ms",
            "ERROR exdns::plugin::errors: plugin/errors: 2 example.org. A: forward returned SERVFAIL",
        ]
    );
}

#[tokio::test]
async fn first_matching_pattern_wins_and_levels() {
    let e = parsed(
        "errors {\n consolidate 1m returned info\n consolidate 5m SERVFAIL debug\n consolidate 30s x\n}",
    );
    assert_eq!(e.patterns.len(), 3);
    assert_eq!(e.patterns[0].level, Level::Info);
    assert_eq!(e.patterns[1].level, Level::Debug);
    assert_eq!(e.patterns[2].level, Level::Error);
    assert_eq!(e.patterns[1].period, Duration::from_secs(300));
    let req = request("example.org.", RecordType::A);
    assert_eq!(
        e.report(&req, ResponseCode::ServFail, "forward returned SERVFAIL"),
        None
    );
    assert_eq!(e.patterns[0].pending(), 1);
    assert_eq!(e.patterns[1].pending(), 0);
    assert_eq!(
        summary(7, "^x$", Duration::from_secs(300)),
        "7 errors like '^x$' occurred in last 5m0s"
    );
}

#[test]
fn setup_forms() {
    for ok in ["errors", "errors stdout", "errors {\n stacktrace\n}"] {
        assert_eq!(
            setup_in(setup, ok, &["."]).unwrap().unwrap().name(),
            "errors"
        );
    }
    assert!(parsed("errors {\n panicRecoveryStacktrace\n}").stacktrace);
    assert!(!parsed("errors").stacktrace);
    let l1 = "Corefile:1 - Error during parsing: ";
    let l2 = "Corefile:2 - Error during parsing: ";
    let cases = [
        ("errors stderr", format!("{l1}invalid log file: stderr")),
        (
            "errors stdout extra",
            format!("{l1}Wrong argument count or unexpected line ending after 'extra'"),
        ),
        (
            "errors {\n consolidate 1m\n}",
            format!("{l2}Wrong argument count or unexpected line ending after '1m'"),
        ),
        (
            "errors {\n consolidate 1m a warning b\n}",
            format!("{l2}Wrong argument count or unexpected line ending after 'b'"),
        ),
        (
            "errors {\n consolidate 1x re\n}",
            format!("{l2}time: unknown unit \"x\" in duration \"1x\""),
        ),
        (
            "errors {\n consolidate 1m re fatal\n}",
            format!("{l2}unknown log level argument in consolidate: fatal"),
        ),
        (
            "errors {\n bogus\n}",
            format!("{l2}unknown property 'bogus'"),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(setup_err(setup, text), want, "{text}");
    }
    let bad_re = setup_err(setup, "errors {\n consolidate 1m (\n}");
    assert!(
        bad_re.starts_with(&format!("{l2}regex parse error")),
        "{bad_re}"
    );
}
