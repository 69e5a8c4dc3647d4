//! `cache [TTL] [ZONES...] { ... }` parsing, following CoreDNS's `cacheParse` (plugin/cache/setup.go)
//! option for option, error for error.

use std::sync::Arc;
use std::time::Duration;

use super::{Cache, Config};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{go_quote, parse_go_duration};
use crate::plugin::{Plugin, SetupCtx};

/// Parses one `cache` directive and builds its handler (one cache shared by all the block's zones).
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let cfg = parse(d, &ctx.zones())?;
    super::metrics::register();
    Ok(Some(Arc::new(Cache::new(cfg))))
}

/// Parses the directive into a [`Config`]; `block_zones` are the server block's zones, the default
/// when the directive names none.
pub(crate) fn parse(d: &mut Dispenser, block_zones: &[String]) -> Result<Config, ParseError> {
    d.next(); // "cache"
    let mut cfg = Config::default();

    // cache [ttl] [zones..]: the first argument is the TTL if it is a number, else a zone.
    let mut args = d.remaining_args();
    if let Some(first) = args.first()
        && let Ok(ttl) = go_atoi(first)
    {
        if ttl <= 0 {
            return Err(d.err(format!("cache TTL can not be zero or negative: {ttl}")));
        }
        cfg.pttl = secs(ttl);
        cfg.nttl = secs(ttl);
        args.remove(0);
    }
    let zones = origins(&args, block_zones);

    while d.next_block() {
        match d.val() {
            "success" | "denial" => {
                let success = d.val() == "success";
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.arg_err());
                }
                let cap = go_atoi(&args[0]).map_err(|e| d.err(e))?;
                let (capacity, max, min) = if success {
                    (&mut cfg.pcap, &mut cfg.pttl, &mut cfg.minpttl)
                } else {
                    (&mut cfg.ncap, &mut cfg.nttl, &mut cfg.minnttl)
                };
                *capacity = cap;
                if args.len() > 1 {
                    let ttl = go_atoi(&args[1]).map_err(|e| d.err(e))?;
                    if ttl <= 0 {
                        return Err(d.err(format!("cache TTL can not be zero or negative: {ttl}")));
                    }
                    *max = secs(ttl);
                    if args.len() > 2 {
                        let minttl = go_atoi(&args[2]).map_err(|e| d.err(e))?;
                        if minttl < 0 {
                            return Err(
                                d.err(format!("cache min TTL can not be negative: {minttl}"))
                            );
                        }
                        *min = secs(minttl);
                    }
                }
            }
            "prefetch" => {
                let args = d.remaining_args();
                if args.is_empty() || args.len() > 3 {
                    return Err(d.arg_err());
                }
                let amount = go_atoi(&args[0]).map_err(|e| d.err(e))?;
                if amount < 0 {
                    return Err(d.err(format!("prefetch amount should be positive: {amount}")));
                }
                cfg.prefetch = amount.min(u32::MAX as i64) as u32;
                if args.len() > 1 {
                    // A negative window behaves as zero: every hit starts a new window.
                    let dur = parse_go_duration(&args[1]).map_err(|e| d.err(e))?;
                    cfg.duration = nanos_to_duration(dur);
                }
                if args.len() > 2 {
                    let pct = &args[2];
                    let Some(num) = pct.strip_suffix('%') else {
                        let last = pct.chars().last().map(|c| format!("'{c}'"));
                        return Err(d.err(format!(
                            "last character of percentage should be `%`, but is: {}",
                            last.unwrap_or_else(|| "nothing".to_string())
                        )));
                    };
                    let num = go_atoi(num).map_err(|e| d.err(e))?;
                    if !(10..=90).contains(&num) {
                        return Err(
                            d.err(format!("percentage should fall in range [10, 90]: {num}"))
                        );
                    }
                    cfg.percentage = num as u32;
                }
            }
            "serve_stale" => {
                let args = d.remaining_args();
                if args.len() > 2 {
                    return Err(d.arg_err());
                }
                cfg.stale_up_to = Duration::from_secs(3600);
                if let Some(arg) = args.first() {
                    let dur = parse_go_duration(arg).map_err(|e| d.err(e))?;
                    if dur < 0 {
                        return Err(d.err("invalid negative duration for serve_stale"));
                    }
                    cfg.stale_up_to = nanos_to_duration(dur);
                }
                cfg.verify_stale = false;
                if let Some(mode) = args.get(1) {
                    let mode = mode.to_lowercase();
                    if mode != "immediate" && mode != "verify" {
                        return Err(d.err(format!(
                            "invalid value for serve_stale refresh mode: {mode}"
                        )));
                    }
                    cfg.verify_stale = mode == "verify";
                }
            }
            "servfail" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                let dur = parse_go_duration(&args[0]).map_err(|e| d.err(e))?;
                if dur < 0 {
                    return Err(d.err("invalid negative ttl for servfail"));
                }
                let dur = nanos_to_duration(dur);
                if dur > Duration::from_secs(300) {
                    // RFC 2308 section 7.1: SERVFAIL must not be cached for longer than 5 minutes.
                    return Err(d.err("caching SERVFAIL responses over 5 minutes is not permitted"));
                }
                cfg.failttl = dur;
            }
            "disable" => {
                // disable success|denial [zones...]
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.arg_err());
                }
                let mut zones = Vec::new();
                if args.len() > 1 {
                    for z in &args[1..] {
                        let nz = normalize_name(z);
                        if nz.is_empty() {
                            return Err(d.err(format!("invalid disabled zone: {z}")));
                        }
                        zones.push(nz);
                    }
                } else {
                    zones.push(".".to_string());
                }
                match args[0].as_str() {
                    "denial" => cfg.nexcept = zones,
                    "success" => cfg.pexcept = zones,
                    _ => {
                        return Err(
                            d.err("cache type for disable must be \"success\" or \"denial\"")
                        );
                    }
                }
            }
            "keepttl" => {
                if !d.remaining_args().is_empty() {
                    return Err(d.arg_err());
                }
                cfg.keepttl = true;
            }
            // CoreDNS answers an unknown property with its argument-count error.
            _ => return Err(d.arg_err()),
        }
    }

    cfg.zones = zones;
    Ok(cfg)
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(n.max(0) as u64)
}

fn nanos_to_duration(n: i128) -> Duration {
    if n <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(n.min(u64::MAX as i128) as u64)
    }
}

/// The zones a directive applies to: its arguments, else the server block's zones. Arguments that
/// do not normalise are skipped, as CoreDNS's `OriginsFromArgsOrServerBlock` does. (The shared
/// [`crate::plugin::zones::origins_from_args`] that acl and hosts use refuses them instead, and
/// normalises differently in places: any `scheme://`, names checked, no duplicates; cache keeps
/// CoreDNS's lenient reading.)
fn origins(args: &[String], block_zones: &[String]) -> Vec<String> {
    if args.is_empty() {
        return block_zones.to_vec();
    }
    args.iter().flat_map(|a| normalize_host(a)).collect()
}

/// `plugin.Name(s).Normalize()`: lower-case and absolute. Go lower-cases all of Unicode, so this
/// is not [`crate::plugin::zones::fqdn_lower`] (ASCII only).
fn normalize_name(s: &str) -> String {
    let mut n = s.to_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// `plugin.Host(s).NormalizeExact()`: strips a scheme and a port, lower-cases, makes absolute; a
/// CIDR becomes the reverse zones covering it. Empty when `s` is not usable.
pub(crate) fn normalize_host(s: &str) -> Vec<String> {
    let mut s = s;
    for scheme in ["dns://", "tls://", "https://", "grpc://", "quic://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            s = rest;
            break;
        }
    }
    if s.contains('/') {
        // A CIDR, possibly followed by a port.
        let cidr = match s.rsplit_once(':') {
            Some((c, port)) if c.contains('/') && port.parse::<u16>().is_ok() => c,
            _ => s,
        };
        return match cidr.parse::<ipnet::IpNet>() {
            Ok(net) => crate::corefile::reverse_zones(net.trunc()),
            Err(_) => Vec::new(),
        };
    }
    let host = match s.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') => {
            if port.parse::<u16>().is_err() {
                return Vec::new();
            }
            h
        }
        _ => s,
    };
    if host.is_empty() {
        return vec![".".to_string()];
    }
    vec![normalize_name(host)]
}

/// Go's `strconv.Atoi`, with its error wording.
pub(crate) fn go_atoi(s: &str) -> Result<i64, String> {
    use std::num::IntErrorKind;
    match s.parse::<i64>() {
        Ok(n) => Ok(n),
        Err(e) => match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => Err(format!(
                "strconv.Atoi: parsing {}: value out of range",
                go_quote(s)
            )),
            _ => Err(format!(
                "strconv.Atoi: parsing {}: invalid syntax",
                go_quote(s)
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_chain::dispenser;

    fn block() -> Vec<String> {
        vec!["example.org.".to_string(), "example.net.".to_string()]
    }

    fn ok(text: &str) -> Config {
        match parse(&mut dispenser(text), &block()) {
            Ok(c) => c,
            Err(e) => panic!("{text:?}: unexpected error {e}"),
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn defaults() {
        let c = ok("cache");
        assert_eq!(c.zones, block());
        assert_eq!(c.pcap, 10000);
        assert_eq!(c.ncap, 10000);
        assert_eq!(super::super::effective_capacity(c.pcap), 9984);
        assert_eq!((c.pttl, c.minpttl), (s(3600), s(5)));
        assert_eq!((c.nttl, c.minnttl), (s(1800), s(5)));
        assert_eq!(c.failttl, s(5));
        assert_eq!(c.prefetch, 0);
        assert_eq!((c.duration, c.percentage), (s(60), 10));
        assert_eq!(c.stale_up_to, Duration::ZERO);
        assert!(!c.verify_stale);
        assert!(c.pexcept.is_empty() && c.nexcept.is_empty());
        assert!(!c.keepttl);
    }

    #[test]
    fn valid_configs() {
        let c = ok("cache 300");
        assert_eq!((c.pttl, c.nttl), (s(300), s(300)));
        assert_eq!(c.zones, block());

        let c = ok("cache 10 Example.COM sub.example.org:53 dns://x.test");
        assert_eq!(c.pttl, s(10));
        assert_eq!(c.zones, vec!["example.com.", "sub.example.org.", "x.test."]);

        let c = ok("cache example.com");
        assert_eq!(c.pttl, s(3600));
        assert_eq!(c.zones, vec!["example.com."]);

        let c = ok("cache 10.0.0.0/24 10.1.0.0/15 fd00::/8 fd00::/12");
        assert_eq!(
            c.zones,
            vec![
                "0.0.10.in-addr.arpa.",
                "0.10.in-addr.arpa.",
                "1.10.in-addr.arpa.",
                "d.f.ip6.arpa.",
                "0.d.f.ip6.arpa."
            ]
        );

        let c = ok("cache {\n success 5000 600 30\n denial 2500 60 1\n}");
        assert_eq!((c.pcap, c.pttl, c.minpttl), (5000, s(600), s(30)));
        assert_eq!((c.ncap, c.nttl, c.minnttl), (2500, s(60), s(1)));
        assert_eq!(super::super::effective_capacity(5000), 4864);
        assert_eq!(super::super::effective_capacity(0), 1024);
        assert_eq!(super::super::effective_capacity(-5), 1024);

        let c = ok("cache 30 {\n success 100\n}");
        assert_eq!((c.pcap, c.pttl, c.minpttl), (100, s(30), s(5)));

        let c = ok("cache {\n prefetch 2\n}");
        assert_eq!((c.prefetch, c.duration, c.percentage), (2, s(60), 10));
        let c = ok("cache {\n prefetch 3 30s 50%\n}");
        assert_eq!((c.prefetch, c.duration, c.percentage), (3, s(30), 50));
        let c = ok("cache {\n prefetch 1 1h30m\n}");
        assert_eq!(c.duration, s(5400));

        let c = ok("cache {\n serve_stale\n}");
        assert_eq!((c.stale_up_to, c.verify_stale), (s(3600), false));
        let c = ok("cache {\n serve_stale 20m VERIFY\n}");
        assert_eq!((c.stale_up_to, c.verify_stale), (s(1200), true));
        let c = ok("cache {\n serve_stale 1.5h immediate\n}");
        assert_eq!((c.stale_up_to, c.verify_stale), (s(5400), false));

        let c = ok("cache {\n servfail 0\n}");
        assert_eq!(c.failttl, Duration::ZERO);
        let c = ok("cache {\n servfail 5m\n}");
        assert_eq!(c.failttl, s(300));
        let c = ok("cache {\n servfail 500ms\n}");
        assert_eq!(c.failttl, Duration::from_millis(500));

        let c = ok("cache {\n disable success Example.org sub.example.net.\n disable denial\n}");
        assert_eq!(c.pexcept, vec!["example.org.", "sub.example.net."]);
        assert_eq!(c.nexcept, vec!["."]);

        let c = ok("cache {\n keepttl\n}");
        assert!(c.keepttl);
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            (
                "cache 0",
                "Corefile:1 - Error during parsing: cache TTL can not be zero or negative: 0",
            ),
            (
                "cache -10",
                "Corefile:1 - Error during parsing: cache TTL can not be zero or negative: -10",
            ),
            (
                "cache {\nsuccess\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'success'",
            ),
            (
                "cache {\nsuccess abc\n}",
                "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"abc\": invalid syntax",
            ),
            (
                "cache {\nsuccess 99999999999999999999\n}",
                "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"99999999999999999999\": value out of range",
            ),
            (
                "cache {\nsuccess 100 x\n}",
                "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "cache {\nsuccess 100 0\n}",
                "Corefile:2 - Error during parsing: cache TTL can not be zero or negative: 0",
            ),
            (
                "cache {\nsuccess 100 10 -1\n}",
                "Corefile:2 - Error during parsing: cache min TTL can not be negative: -1",
            ),
            (
                "cache {\nsuccess 100 10 y\n}",
                "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"y\": invalid syntax",
            ),
            (
                "cache {\ndenial\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'denial'",
            ),
            (
                "cache {\ndenial z\n}",
                "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"z\": invalid syntax",
            ),
            (
                "cache {\ndenial 10 -5\n}",
                "Corefile:2 - Error during parsing: cache TTL can not be zero or negative: -5",
            ),
            (
                "cache {\ndenial 10 5 -2\n}",
                "Corefile:2 - Error during parsing: cache min TTL can not be negative: -2",
            ),
            (
                "cache {\nprefetch\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'prefetch'",
            ),
            (
                "cache {\nprefetch 1 1m 10% extra\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'",
            ),
            (
                "cache {\nprefetch many\n}",
                "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"many\": invalid syntax",
            ),
            (
                "cache {\nprefetch -1\n}",
                "Corefile:2 - Error during parsing: prefetch amount should be positive: -1",
            ),
            (
                "cache {\nprefetch 1 10\n}",
                "Corefile:2 - Error during parsing: time: missing unit in duration \"10\"",
            ),
            (
                "cache {\nprefetch 1 soon\n}",
                "Corefile:2 - Error during parsing: time: invalid duration \"soon\"",
            ),
            (
                "cache {\nprefetch 1 10y\n}",
                "Corefile:2 - Error during parsing: time: unknown unit \"y\" in duration \"10y\"",
            ),
            (
                "cache {\nprefetch 1 1m 10\n}",
                "Corefile:2 - Error during parsing: last character of percentage should be `%`, but is: '0'",
            ),
            (
                "cache {\nprefetch 1 1m x%\n}",
                "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "cache {\nprefetch 1 1m 5%\n}",
                "Corefile:2 - Error during parsing: percentage should fall in range [10, 90]: 5",
            ),
            (
                "cache {\nprefetch 1 1m 91%\n}",
                "Corefile:2 - Error during parsing: percentage should fall in range [10, 90]: 91",
            ),
            (
                "cache {\nserve_stale 1h verify more\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'more'",
            ),
            (
                "cache {\nserve_stale 1x\n}",
                "Corefile:2 - Error during parsing: time: unknown unit \"x\" in duration \"1x\"",
            ),
            (
                "cache {\nserve_stale -1h\n}",
                "Corefile:2 - Error during parsing: invalid negative duration for serve_stale",
            ),
            (
                "cache {\nserve_stale 1h Later\n}",
                "Corefile:2 - Error during parsing: invalid value for serve_stale refresh mode: later",
            ),
            (
                "cache {\nservfail\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'servfail'",
            ),
            (
                "cache {\nservfail 1s 2s\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '2s'",
            ),
            (
                "cache {\nservfail five\n}",
                "Corefile:2 - Error during parsing: time: invalid duration \"five\"",
            ),
            (
                "cache {\nservfail -1s\n}",
                "Corefile:2 - Error during parsing: invalid negative ttl for servfail",
            ),
            (
                "cache {\nservfail 6m\n}",
                "Corefile:2 - Error during parsing: caching SERVFAIL responses over 5 minutes is not permitted",
            ),
            (
                "cache {\ndisable\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'disable'",
            ),
            (
                "cache {\ndisable positive example.org\n}",
                "Corefile:2 - Error during parsing: cache type for disable must be \"success\" or \"denial\"",
            ),
            (
                "cache {\nkeepttl 10\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '10'",
            ),
            (
                "cache {\nbogus 1\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'bogus'",
            ),
        ];
        for (text, want) in cases {
            match parse(&mut dispenser(text), &block()) {
                Ok(_) => panic!("{text:?}: expected error {want:?}"),
                Err(e) => assert_eq!(e.to_string(), *want, "input {text:?}"),
            }
        }
    }

    #[test]
    fn setup_builds_one_handler_for_the_block() {
        use crate::plugin::config::BlockConfig;
        let block =
            crate::plugin::test_chain::block(&["example.org.", "example.net.", "example.org."]);
        let mut config = BlockConfig::default();
        let mut ctx = SetupCtx {
            block: &block,
            config: &mut config,
        };
        let plugin = setup(&mut dispenser("cache 60"), &mut ctx)
            .expect("valid")
            .expect("a handler");
        assert_eq!(plugin.name(), "cache");

        let cache = Cache::new(parse(&mut dispenser("cache 60"), &ctx.zones()).unwrap());
        assert_eq!(cache.config().zones, vec!["example.org.", "example.net."]);
        assert_eq!(cache.config().pttl, s(60));

        let err = setup(&mut dispenser("cache {\nsuccess\n}"), &mut ctx)
            .err()
            .expect("an error");
        assert_eq!(
            err.to_string(),
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'success'"
        );
    }
}
