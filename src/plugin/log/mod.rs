//! `log`: query logging, CoreDNS's log plugin. For a query under one of the rule's names, the
//! rest of the chain runs, the reply is classified (success, denial, error) and, if the rule
//! wants that class (or the query was slower than `minDuration`), one line in the rule's format
//! is logged through `tracing` at info level with target [`TARGET`]. The line is formatted on
//! the query path (no I/O); writing it is the subscriber's job (non-blocking in exdns).

mod format;
mod setup;
#[cfg(test)]
mod tests;

pub use format::{EMPTY_VALUE, Format};
pub use setup::setup;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::Message;

use crate::dns::request::{Outcome, Request};
use crate::plugin::response::{RespType, typify};
use crate::plugin::zones::in_zone;
use crate::plugin::{Next, Plugin};

pub const NAME: &str = "log";

/// The `tracing` target of query log lines.
pub const TARGET: &str = "exdns::log";

/// CoreDNS's Common Log Format.
pub const COMMON_LOG_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration}";
/// The Common Log Format plus the query opcode.
pub const COMBINED_LOG_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration} \"{>opcode}\"";
/// The format used when none is given.
pub const DEFAULT_LOG_FORMAT: &str = COMMON_LOG_FORMAT;
/// `minDuration` without a value.
pub const DEFAULT_MIN_DURATION: Duration = Duration::from_millis(100);

/// Response classes a rule can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    All,
    /// NOERROR with data, or a delegation.
    Success,
    /// NXDOMAIN or NODATA (with an SOA in the authority section).
    Denial,
    /// Everything else: SERVFAIL, REFUSED, NOTIMP, FORMERR, no reply at all…
    Error,
}

impl Class {
    pub fn parse(s: &str) -> Option<Class> {
        Some(match s {
            "all" => Class::All,
            "success" => Class::Success,
            "denial" => Class::Denial,
            "error" => Class::Error,
            _ => return None,
        })
    }
}

/// Classifies a reply as CoreDNS's `response.Typify` + `Classify` do (`None`: nothing sent).
pub fn classify(reply: Option<&Message>) -> Class {
    let Some(m) = reply else {
        return Class::Error;
    };
    match typify(m) {
        RespType::NoError | RespType::Delegation => Class::Success,
        RespType::NameError | RespType::NoData => Class::Denial,
        // Updates, NOTIFY and zone transfers are "meta" and land in the error class.
        RespType::ServerError | RespType::Meta | RespType::Update | RespType::OtherError => {
            Class::Error
        }
    }
}

/// The log line for `req` in `format` (a format string with CoreDNS placeholders), given the
/// reply the client got (`None`: dropped) and how long the chain took.
pub fn format_entry(
    format: &str,
    req: &Request,
    reply: Option<&Message>,
    duration: Duration,
) -> String {
    Format::parse(format).render(req, reply, duration)
}

/// One name with its format and classes.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Lower-case absolute name; queries at or below it are logged.
    pub name: String,
    pub format: Format,
    pub classes: Vec<Class>,
    /// Also log slower queries than this, whatever their class (zero: off).
    pub min_duration: Duration,
}

impl Rule {
    fn wants(&self, reply: Option<&Message>, took: Duration) -> bool {
        if self.classes.contains(&Class::All) {
            return true;
        }
        if self.classes.contains(&classify(reply)) {
            return true;
        }
        !self.min_duration.is_zero() && took > self.min_duration
    }
}

/// The `log` handler: the first rule whose name covers the query applies.
#[derive(Debug, Clone)]
pub struct Log {
    pub rules: Vec<Rule>,
}

#[async_trait]
impl Plugin for Log {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let Some(rule) = self.rules.iter().find(|r| in_zone(&req.name, &r.name)) else {
            return next.serve(req).await;
        };
        let start = Instant::now();
        let out = next.serve(req).await;
        let took = start.elapsed();

        // What the client gets: a Code becomes an empty reply with that rcode.
        let written;
        let reply = match &out {
            Outcome::Reply { msg, .. } => Some(msg),
            Outcome::Code { .. } | Outcome::Wire { .. } | Outcome::Transfer { .. } => {
                written = out.to_message(req);
                written.as_ref()
            }
            Outcome::Drop { .. } => None,
        };
        if rule.wants(reply, took) {
            let line = rule.format.render(req, reply, took);
            tracing::info!(target: TARGET, "{line}");
        }
        out
    }
}
