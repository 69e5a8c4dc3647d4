//! `errors`: logs the errors of the rest of the chain. exdns plugins report an error by
//! returning [`Outcome::Code`] with SERVFAIL, REFUSED, NOTIMP or FORMERR; each such outcome is
//! logged at error level as
//!
//! ```text
//! plugin/errors: 2 example.org. A: forward returned SERVFAIL
//! ```
//!
//! (CoreDNS's `RCODE QNAME QTYPE: ERROR`, with the numeric rcode first). `consolidate DURATION
//! REGEXP [LEVEL]` collects the errors whose message matches REGEXP and logs one summary line
//! `N errors like 'REGEXP' occurred in last DURATION` DURATION after the first one.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use regex::Regex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::plugin::names::{rcode_name, type_name};
use crate::plugin::util::format_duration;
use crate::plugin::{FastNext, Next, Plugin, StartupCtx};

pub const NAME: &str = "errors";

/// The level a consolidated summary is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

/// One `consolidate DURATION REGEXP [LEVEL]` line.
#[derive(Debug)]
pub struct Pattern {
    pub period: Duration,
    pub regex: Regex,
    pub level: Level,
    count: AtomicU32,
    /// Woken when `count` goes from 0 to 1: starts the period.
    first: Notify,
}

impl Pattern {
    pub fn new(period: Duration, regex: Regex, level: Level) -> Self {
        Pattern {
            period,
            regex,
            level,
            count: AtomicU32::new(0),
            first: Notify::new(),
        }
    }

    /// Errors counted since the last summary.
    pub fn pending(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    /// Logs (and resets) the summary; returns it, `None` when nothing was counted.
    fn flush(&self) -> Option<String> {
        let n = self.count.swap(0, Ordering::SeqCst);
        if n == 0 {
            return None;
        }
        let line = summary(n, self.regex.as_str(), self.period);
        match self.level {
            Level::Error => tracing::error!("plugin/errors: {line}"),
            Level::Warning => tracing::warn!("plugin/errors: {line}"),
            Level::Info => tracing::info!("plugin/errors: {line}"),
            Level::Debug => tracing::debug!("plugin/errors: {line}"),
        }
        Some(line)
    }
}

/// `N errors like 'REGEXP' occurred in last DURATION` (DURATION in Go's notation).
pub fn summary(n: u32, regex: &str, period: Duration) -> String {
    format!(
        "{n} errors like '{regex}' occurred in last {}",
        format_duration(period)
    )
}

/// The `errors` handler.
#[derive(Debug, Default)]
pub struct Errors {
    pub patterns: Vec<Arc<Pattern>>,
    /// `stacktrace` / `panicRecoveryStacktrace` was given (accepted; exdns logs no stack).
    pub stacktrace: bool,
    stopped: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Errors {
    pub fn new(patterns: Vec<Pattern>, stacktrace: bool) -> Self {
        Errors {
            patterns: patterns.into_iter().map(Arc::new).collect(),
            stacktrace,
            ..Errors::default()
        }
    }

    /// Records one error; returns the line logged for it, or `None` when a consolidate
    /// pattern took it.
    pub fn report(&self, req: &Request, rcode: ResponseCode, message: &str) -> Option<String> {
        if !self.stopped.load(Ordering::SeqCst)
            && let Some(p) = self.patterns.iter().find(|p| p.regex.is_match(message))
        {
            if p.count.fetch_add(1, Ordering::SeqCst) == 0 {
                p.first.notify_one();
            }
            return None;
        }
        let line = error_line(req, rcode, message);
        tracing::error!("plugin/errors: {line}");
        Some(line)
    }
}

/// Whether an outcome code is an error `errors` reports.
pub fn is_error(rcode: ResponseCode) -> bool {
    matches!(
        rcode,
        ResponseCode::ServFail
            | ResponseCode::Refused
            | ResponseCode::NotImp
            | ResponseCode::FormErr
    )
}

/// The error text of a `Code` outcome: `PLUGIN returned RCODE` (`no next plugin found` when the
/// chain ran out).
pub fn error_message(plugin: &str, rcode: ResponseCode) -> String {
    if plugin.is_empty() {
        "no next plugin found".to_string()
    } else {
        format!("{plugin} returned {}", rcode_name(rcode))
    }
}

/// `RCODE QNAME QTYPE: MESSAGE`, the rcode as a number (CoreDNS's `%d`).
pub fn error_line(req: &Request, rcode: ResponseCode, message: &str) -> String {
    format!(
        "{} {} {}: {message}",
        u16::from(rcode),
        req.name,
        type_name(req.qtype())
    )
}

#[async_trait]
impl Plugin for Errors {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let out = next.serve(req).await;
        if let Outcome::Code { rcode, plugin } = &out
            && is_error(*rcode)
        {
            self.report(req, *rcode, &error_message(plugin, *rcode));
        }
        out
    }

    /// Transparent: a fast-path answer is never an error to report.
    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        next.fast(q)
    }

    async fn on_startup(&self, _ctx: &StartupCtx) -> Result<(), String> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if !tasks.is_empty() || self.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        for p in &self.patterns {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    p.first.notified().await;
                    tokio::time::sleep(p.period).await;
                    p.flush();
                }
            }));
        }
        Ok(())
    }

    /// Stops the summary tasks and logs what they still held, as CoreDNS does.
    fn on_shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
        for p in &self.patterns {
            p.flush();
        }
    }
}
