//! `cancel [TIMEOUT]`: gives up on a request after TIMEOUT (default 5001 ms, just over a stub
//! resolver's 5 s), as CoreDNS's *cancel* cancels the request's context: whatever the rest of
//! the chain is still waiting for (an upstream), nothing is written back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::corefile::{Dispenser, ParseError};
use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::plugin::util::{go_quote, parse_go_duration};
use crate::plugin::{FastNext, Next, Plugin, SetupCtx};

const NAME: &str = "cancel";

/// CoreDNS's default: 5001 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5001);

pub struct Cancel {
    timeout: Duration,
}

#[async_trait]
impl Plugin for Cancel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        match tokio::time::timeout(self.timeout, next.serve(req)).await {
            Ok(out) => out,
            // CoreDNS: a cancelled request writes nothing back.
            Err(_) => Outcome::Drop { plugin: NAME },
        }
    }

    /// A fast-path answer is immediate: nothing to cancel.
    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        next.fast(q)
    }
}

/// `cancel [TIMEOUT]`.
pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let timeout = parse(d)?;
    Ok(Some(Arc::new(Cancel { timeout })))
}

/// The timeout of one `cancel` line, with CoreDNS's errors.
fn parse(d: &mut Dispenser) -> Result<Duration, ParseError> {
    d.next(); // "cancel"
    let args = d.remaining_args();
    match args.as_slice() {
        [] => Ok(DEFAULT_TIMEOUT),
        [arg] => {
            let ns = parse_go_duration(arg)
                .map_err(|_| d.err(format!("invalid duration: {}", go_quote(arg))))?;
            if ns <= 0 {
                return Err(d.err(format!("invalid negative duration: {}", go_quote(arg))));
            }
            Ok(Duration::from_nanos(ns as u64))
        }
        _ => Err(d.arg_err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::request::Proto;
    use crate::plugin::test_chain::{Fixed, dispenser, query, request_from, serve};
    use hickory_proto::rr::RecordType;

    #[test]
    fn timeouts_and_errors() {
        for (text, want) in [
            ("cancel", Ok(Duration::from_millis(5001))),
            ("cancel 1s", Ok(Duration::from_secs(1))),
            ("cancel 250ms", Ok(Duration::from_millis(250))),
            (
                "cancel abc",
                Err("Corefile:1 - Error during parsing: invalid duration: \"abc\""),
            ),
            (
                "cancel -1s",
                Err("Corefile:1 - Error during parsing: invalid negative duration: \"-1s\""),
            ),
            (
                "cancel 0s",
                Err("Corefile:1 - Error during parsing: invalid negative duration: \"0s\""),
            ),
            (
                "cancel 1s 2s",
                Err(
                    "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '2s'",
                ),
            ),
        ] {
            let got = parse(&mut dispenser(text)).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{text}");
        }
    }

    /// A chain still waiting at the timeout is given up: nothing is written back. One that
    /// answers in time passes through.
    #[tokio::test]
    async fn a_request_still_waiting_at_the_timeout_is_dropped() {
        struct Slow(Duration);
        #[async_trait]
        impl Plugin for Slow {
            fn name(&self) -> &'static str {
                "slow"
            }
            async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
                tokio::time::sleep(self.0).await;
                Outcome::reply(req.reply(), "slow")
            }
        }
        let cancel = Cancel {
            timeout: Duration::from_millis(100),
        };
        let req = request_from(
            query("a.example.org.", RecordType::A),
            "192.0.2.1:53",
            Proto::Udp,
        );
        let slow: Vec<Arc<dyn Plugin>> = vec![Arc::new(Slow(Duration::from_secs(30)))];
        assert!(matches!(
            serve(&cancel, &req, &slow).await,
            Outcome::Drop { plugin: "cancel" }
        ));
        let quick: Vec<Arc<dyn Plugin>> = vec![Arc::new(Slow(Duration::ZERO))];
        assert_eq!(serve(&cancel, &req, &quick).await.plugin(), "slow");
        let fixed = Fixed::reply(|_| {});
        let rest: Vec<Arc<dyn Plugin>> = vec![fixed.clone()];
        let _ = serve(&cancel, &req, &rest).await;
        assert_eq!(fixed.calls(), 1);
    }
}
