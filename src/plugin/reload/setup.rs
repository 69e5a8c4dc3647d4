//! `reload [INTERVAL [JITTER]]`.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::config::ReloadConfig;
use crate::plugin::util::{format_duration, parse_duration};
use crate::plugin::{Plugin, SetupCtx};

use super::{DEFAULT_INTERVAL, DEFAULT_JITTER, MIN_INTERVAL, MIN_JITTER};

/// Records the reload settings in `ctx.config.reload`; adds no handler. As in CoreDNS, a jitter
/// larger than half the interval is lowered to half the interval.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "reload"
    let args = d.remaining_args();
    if args.len() > 2 {
        return Err(d.arg_err());
    }
    let interval = match args.first() {
        Some(a) => parse_duration(a).map_err(|e| d.err(e))?,
        None => DEFAULT_INTERVAL,
    };
    if interval < MIN_INTERVAL {
        return Err(d.err(format!(
            "interval value must be greater or equal to {}",
            format_duration(MIN_INTERVAL)
        )));
    }
    let mut jitter = match args.get(1) {
        Some(a) => parse_duration(a).map_err(|e| d.err(e))?,
        None => DEFAULT_JITTER,
    };
    if jitter < MIN_JITTER {
        return Err(d.err(format!(
            "jitter value must be greater or equal to {}",
            format_duration(MIN_JITTER)
        )));
    }
    if jitter > interval / 2 {
        jitter = interval / 2;
    }
    // `reload` takes no block; anything in one is an error.
    if d.next_block() {
        return Err(d.unknown_property());
    }
    ctx.config.reload = Some(ReloadConfig { interval, jitter });
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plugin::test_chain::config_of;

    fn run(text: &str) -> Result<ReloadConfig, String> {
        Ok(config_of(setup, text)?.reload.expect("reload recorded"))
    }

    fn rc(interval: u64, jitter_ms: u64) -> ReloadConfig {
        ReloadConfig {
            interval: Duration::from_secs(interval),
            jitter: Duration::from_millis(jitter_ms),
        }
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(run("reload"), Ok(rc(30, 15_000)));
        assert_eq!(
            run("reload 10s"),
            Ok(rc(10, 5_000)),
            "jitter capped at half"
        );
        assert_eq!(run("reload 1m"), Ok(rc(60, 15_000)));
        assert_eq!(run("reload 20s 2s"), Ok(rc(20, 2_000)));
        assert_eq!(run("reload 2s 1s"), Ok(rc(2, 1_000)));
        assert_eq!(run("reload 3s 1s"), Ok(rc(3, 1_000)));
        assert_eq!(run("reload 5s 5s"), Ok(rc(5, 2_500)));
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("reload 1s").unwrap_err(),
            "Corefile:1 - Error during parsing: interval value must be greater or equal to 2s"
        );
        assert_eq!(
            run("reload 10s 500ms").unwrap_err(),
            "Corefile:1 - Error during parsing: jitter value must be greater or equal to 1s"
        );
        assert_eq!(
            run("reload 10s 2s 3s").unwrap_err(),
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '3s'"
        );
        assert_eq!(
            run("reload often").unwrap_err(),
            r#"Corefile:1 - Error during parsing: time: invalid duration "often""#
        );
        assert_eq!(
            run("reload 10s 2").unwrap_err(),
            r#"Corefile:1 - Error during parsing: time: missing unit in duration "2""#
        );
        assert_eq!(
            run("reload {\n interval 5s\n}").unwrap_err(),
            "Corefile:2 - Error during parsing: unknown property 'interval'"
        );
    }
}
