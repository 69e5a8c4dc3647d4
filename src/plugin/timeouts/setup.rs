//! `timeouts { read DURATION; write DURATION; idle DURATION; maxtcpqueries MAXIMUM }`, with
//! CoreDNS's bounds and error wording.

use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{format_duration, parse_go_duration};
use crate::plugin::{Plugin, SetupCtx};

/// Records the block's stream timeouts; adds no handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "timeouts"
    if !d.remaining_args().is_empty() {
        return Err(d.arg_err());
    }
    let t = &mut ctx.config.timeouts;
    let mut options = 0;
    while d.next_block() {
        let option = d.val().to_string();
        let args = d.remaining_args();
        let [arg] = args.as_slice() else {
            return Err(d.arg_err());
        };
        if option == "maxtcpqueries" {
            let n: i64 = arg.parse().map_err(|_| {
                d.err(format!(
                    "invalid value for maxtcpqueries '{arg}': strconv.Atoi: parsing {}: invalid syntax",
                    crate::plugin::util::go_quote(arg)
                ))
            })?;
            if n == 0 || n < -1 {
                return Err(d.err(format!(
                    "maxtcpqueries provided '{n}' needs to be -1 (unlimited) or a positive integer"
                )));
            }
            t.max_queries = usize::try_from(n).ok();
            options += 1;
            continue;
        }
        // CoreDNS's durations.NewDurationFromArg: a bare number is seconds.
        let text = if arg.parse::<i64>().is_ok() {
            format!("{arg}s")
        } else {
            arg.clone()
        };
        let ns = parse_go_duration(&text)
            .map_err(|_| d.err(format!("failed to parse duration '{text}'")))?;
        if !(1_000_000_000..=86_400_000_000_000).contains(&ns) {
            let shown = if ns < 0 {
                format!(
                    "-{}",
                    format_duration(Duration::from_nanos(ns.unsigned_abs() as u64))
                )
            } else {
                format_duration(Duration::from_nanos(ns as u64))
            };
            return Err(d.err(format!(
                "timeout provided '{shown}' needs to be between 1 second and 24 hours"
            )));
        }
        let timeout = Duration::from_nanos(ns as u64);
        match option.as_str() {
            "read" => t.read = Some(timeout),
            "write" => t.write = Some(timeout),
            "idle" => t.idle = Some(timeout),
            other => return Err(d.err(format!("unknown option: '{other}'"))),
        }
        options += 1;
    }
    if options == 0 {
        return Err(d.err("timeouts block with no timeouts specified"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::config::StreamTimeouts;
    use crate::plugin::test_chain::config_of;

    fn run(text: &str) -> Result<StreamTimeouts, String> {
        Ok(config_of(setup, text)?.timeouts)
    }

    #[test]
    fn values() {
        let s = Duration::from_secs;
        for (text, want) in [
            (
                "timeouts {\n read 10s\n write 20\n idle 1m\n}",
                StreamTimeouts {
                    read: Some(s(10)),
                    write: Some(s(20)),
                    idle: Some(s(60)),
                    max_queries: None,
                },
            ),
            (
                "timeouts {\n idle 24h\n maxtcpqueries 128\n}",
                StreamTimeouts {
                    idle: Some(s(86400)),
                    max_queries: Some(128),
                    ..StreamTimeouts::default()
                },
            ),
            (
                "timeouts {\n maxtcpqueries -1\n read 1s\n}",
                StreamTimeouts {
                    read: Some(s(1)),
                    ..StreamTimeouts::default()
                },
            ),
        ] {
            assert_eq!(run(text), Ok(want), "{text}");
        }
    }

    /// CoreDNS's messages (its plugin/timeouts tests and source).
    #[test]
    fn errors() {
        for (text, want) in [
            (
                "timeouts",
                "Corefile:1 - Error during parsing: timeouts block with no timeouts specified",
            ),
            (
                "timeouts {\n}",
                "Corefile:2 - Error during parsing: timeouts block with no timeouts specified",
            ),
            (
                "timeouts 10s",
                "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '10s'",
            ),
            (
                "timeouts {\n read\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'read'",
            ),
            (
                "timeouts {\n read 10s 20s\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '20s'",
            ),
            (
                "timeouts {\n read abc\n}",
                "Corefile:2 - Error during parsing: failed to parse duration 'abc'",
            ),
            (
                "timeouts {\n read 500ms\n}",
                "Corefile:2 - Error during parsing: timeout provided '500ms' needs to be between 1 second and 24 hours",
            ),
            (
                "timeouts {\n idle 25h\n}",
                "Corefile:2 - Error during parsing: timeout provided '25h0m0s' needs to be between 1 second and 24 hours",
            ),
            (
                "timeouts {\n sleep 10s\n}",
                "Corefile:2 - Error during parsing: unknown option: 'sleep'",
            ),
            (
                "timeouts {\n maxtcpqueries 0\n}",
                "Corefile:2 - Error during parsing: maxtcpqueries provided '0' needs to be -1 (unlimited) or a positive integer",
            ),
            (
                "timeouts {\n maxtcpqueries -2\n}",
                "Corefile:2 - Error during parsing: maxtcpqueries provided '-2' needs to be -1 (unlimited) or a positive integer",
            ),
            (
                "timeouts {\n maxtcpqueries many\n}",
                "Corefile:2 - Error during parsing: invalid value for maxtcpqueries 'many': strconv.Atoi: parsing \"many\": invalid syntax",
            ),
        ] {
            assert_eq!(run(text).unwrap_err(), want, "{text}");
        }
    }
}
