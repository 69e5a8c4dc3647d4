//! Test helpers shared by the plugin unit tests: a Corefile-ish tokenizer for building a
//! [`Dispenser`], a server block with given zones, queries/requests, and a tiny plugin that
//! answers with a fixed outcome so a plugin can be driven through a real [`Next`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::corefile::{Dispenser, Key, ParseError, Scheme, ServerBlock, Token};
use crate::plugin::{Next, Plugin, SetupCtx, SetupFn};
use crate::server::config::BlockConfig;
use crate::server::request::{Outcome, Proto, Request};

/// Splits `text` into tokens: whitespace separated, `"..."` quoted (with `\"`), `{`/`}` as
/// tokens of their own when separated by whitespace. Lines are 1-based; file is `Corefile`.
pub fn tokens(text: &str) -> Vec<Token> {
    let file: Arc<str> = Arc::from("Corefile");
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == '\n' {
            line += 1;
            chars.next();
        } else if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let start = line;
            let mut s = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => {
                        s.push('"');
                        chars.next();
                    }
                    '"' => break,
                    '\n' => {
                        line += 1;
                        s.push('\n');
                    }
                    c => s.push(c),
                }
            }
            out.push(Token {
                text: s,
                file: file.clone(),
                line: start,
                quoted: true,
            });
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(Token {
                text: s,
                file: file.clone(),
                line,
                quoted: false,
            });
        }
    }
    out
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

/// Runs `setup` on `text` (one directive occurrence) in a block for `zones`.
pub fn setup_in(
    setup: SetupFn,
    text: &str,
    zones: &[&str],
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let block = block(zones);
    let mut config = BlockConfig::default();
    let mut ctx = SetupCtx {
        block: &block,
        config: &mut config,
    };
    setup(&mut dispenser(text), &mut ctx)
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

/// Serves `req` through `plugin` followed by `rest`.
pub async fn serve(plugin: &dyn Plugin, req: &Request, rest: &[Arc<dyn Plugin>]) -> Outcome {
    plugin.serve(req, Next::new(rest)).await
}

/// The reply of a `Reply` outcome (panics otherwise).
pub fn reply_of(out: Outcome) -> Message {
    match out {
        Outcome::Reply { msg, .. } => msg,
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
