//! Test helpers shared by the plugin unit tests: a [`Dispenser`] over Corefile text read by the
//! real lexer, server blocks with given zones (and directives), setups run into a config,
//! queries/requests, and a tiny plugin that answers with a fixed outcome so a plugin can be
//! driven through a real [`Next`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::corefile::{
    Directive, Dispenser, Key, ParseError, Scheme, ServerBlock, Token, tokenize,
};
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::config::BlockConfig;
use crate::plugin::{Next, Plugin, SetupCtx, SetupFn};

/// The tokens of `text` as the real Corefile lexer reads them (file `Corefile`, 1-based lines).
pub fn tokens(text: &str) -> Vec<Token> {
    tokenize(text, &Arc::from("Corefile"))
}

pub fn dispenser(text: &str) -> Dispenser {
    Dispenser::new(tokens(text))
}

/// A server block with one `dns://ZONE:53` key per zone.
pub fn block(zones: &[&str]) -> ServerBlock {
    ServerBlock {
        keys: zones
            .iter()
            .map(|z| Key {
                scheme: Scheme::Dns,
                zone: z.to_string(),
                port: 53,
                raw: z.to_string(),
            })
            .collect(),
        directives: Vec::new(),
        file: Arc::from("Corefile"),
        line: 1,
    }
}

/// A server block for `zones` whose directives are read from `text` (the inside of the block):
/// a directive starts on each new line outside a `{ ... }`.
pub fn block_with(zones: &[&str], text: &str) -> ServerBlock {
    let mut b = block(zones);
    let mut depth = 0usize;
    let mut last_line = 0usize;
    for t in tokens(text) {
        let starts = depth == 0 && (b.directives.is_empty() || t.line != last_line);
        last_line = t.line;
        if t.is_open_brace() {
            depth += 1;
        } else if t.is_close_brace() {
            depth = depth.saturating_sub(1);
        }
        match b.directives.last_mut() {
            Some(dir) if !starts => dir.tokens.push(t),
            _ => b.directives.push(Directive {
                name: t.text.clone(),
                tokens: vec![t],
            }),
        }
    }
    b
}

/// Runs `setup` on `text` (one directive occurrence) in a block for `zones`, recording what it
/// configures for the server in `config`.
pub fn setup_into(
    setup: SetupFn,
    text: &str,
    zones: &[&str],
    config: &mut BlockConfig,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let block = block(zones);
    let mut ctx = SetupCtx {
        block: &block,
        config,
    };
    setup(&mut dispenser(text), &mut ctx)
}

/// The server settings a setup that adds no handler (health, ready, tls...) records for `text`
/// in a `.` block, or its error text.
pub fn config_of(setup: SetupFn, text: &str) -> Result<BlockConfig, String> {
    let mut config = BlockConfig::default();
    let handler = setup_into(setup, text, &["."], &mut config).map_err(|e| e.to_string())?;
    assert!(handler.is_none(), "{text:?} added a handler");
    Ok(config)
}

/// Runs `setup` for every directive of a block for `zones` whose directives are `text`, as the
/// server does, and returns the handlers they added.
pub fn setup_block(
    setup: SetupFn,
    zones: &[&str],
    text: &str,
) -> Result<Vec<Arc<dyn Plugin>>, ParseError> {
    let b = block_with(zones, text);
    let mut config = BlockConfig::default();
    let mut out = Vec::new();
    for dir in &b.directives {
        let mut ctx = SetupCtx {
            block: &b,
            config: &mut config,
        };
        if let Some(p) = setup(&mut dir.dispenser(), &mut ctx)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Runs `setup` on `text` (one directive occurrence) in a block for `zones`.
pub fn setup_in(
    setup: SetupFn,
    text: &str,
    zones: &[&str],
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    setup_into(setup, text, zones, &mut BlockConfig::default())
}

/// Runs `setup` on `text` in a `.` block and returns the error text (panics on success).
pub fn setup_err(setup: SetupFn, text: &str) -> String {
    match setup_in(setup, text, &["."]) {
        Ok(_) => panic!("setup of {text:?} succeeded"),
        Err(e) => e.to_string(),
    }
}

/// A query for `name`/`qtype` with RD set and the given ID.
pub fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

/// Adds an OPT record with `bufsize` and the DO bit.
pub fn with_edns(mut m: Message, bufsize: u16, dnssec_ok: bool) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(bufsize);
    e.set_dnssec_ok(dnssec_ok);
    m.edns = Some(e);
    m
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A request for `msg` from `src` to `127.0.0.1:53` over `proto`; size is the encoded length.
pub fn request_from(msg: Message, src: &str, proto: Proto) -> Request {
    let size = msg.to_vec().map(|v| v.len()).unwrap_or(0);
    let local = if addr(src).is_ipv4() {
        "127.0.0.1:53"
    } else {
        "[::1]:53"
    };
    Request::new(msg, addr(src), addr(local), proto, size)
}

/// A UDP request from `10.0.0.1:40000`.
pub fn request(name: &str, qtype: RecordType) -> Request {
    request_from(query(name, qtype), "10.0.0.1:40000", Proto::Udp)
}

type Answer = dyn Fn(&Request) -> Outcome + Send + Sync;

/// A plugin that answers every query with the outcome its closure builds, and counts calls.
pub struct Fixed {
    answer: Box<Answer>,
    pub calls: AtomicUsize,
}

impl Fixed {
    pub fn new(answer: impl Fn(&Request) -> Outcome + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Fixed {
            answer: Box::new(answer),
            calls: AtomicUsize::new(0),
        })
    }

    /// Answers with `req.reply()` after `edit` changed it.
    pub fn reply(edit: impl Fn(&mut Message) + Send + Sync + 'static) -> Arc<Self> {
        Fixed::new(move |req| {
            let mut m = req.reply();
            edit(&mut m);
            Outcome::reply(m, "fixed")
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Plugin for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (self.answer)(req)
    }
}

/// The end of a chain a query was passed on to: answers `req.reply()` tagged `next`, so a test
/// can tell "passed on" (`out.plugin() == "next"`) from "answered".
pub struct NextMarker;

#[async_trait]
impl Plugin for NextMarker {
    fn name(&self) -> &'static str {
        "next"
    }
    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        Outcome::reply(req.reply(), "next")
    }
}

/// Serves `req` through `plugin` followed by `rest`.
pub async fn serve(plugin: &dyn Plugin, req: &Request, rest: &[Arc<dyn Plugin>]) -> Outcome {
    plugin.serve(req, Next::new(rest)).await
}

/// Polls `cond` every 5 ms until it holds; fails after 3 s naming `what`.
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(3),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The reply of a `Reply` outcome (panics otherwise).
pub fn reply_of(out: Outcome) -> Message {
    match out {
        Outcome::Reply { msg, .. } => msg,
        Outcome::Wire { bytes, .. } => Message::from_vec(&bytes).expect("wire reply decodes"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Log lines captured by [`capture_logs`], as the fmt subscriber prints them without time
/// (`LEVEL TARGET: MESSAGE`).
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        let buf = self.0.lock().unwrap();
        String::from_utf8_lossy(&buf)
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every `tracing` event of the current thread (all levels) until the guard drops.
/// Use a current-thread runtime (`#[tokio::test]`) so spawned tasks log on this thread too.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let w = logs.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::TRACE)
        .finish();
    (tracing::subscriber::set_default(sub), logs)
}
