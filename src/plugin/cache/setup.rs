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
    let mut serve_stale_configured = false;
    let mut serve_stale_policy_configured = false;

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
                serve_stale_configured = true;
                let args = d.remaining_args();
                if args.len() > 5 {
                    return Err(d.arg_err());
                }
                cfg.stale_up_to = Duration::from_secs(3600);
                cfg.stale_ttl = None;
                cfg.stale_recheck = Duration::ZERO;
                if let Some(arg) = args.first() {
                    let dur = parse_go_duration(arg).map_err(|e| d.err(e))?;
                    if dur < 0 {
                        return Err(d.err("invalid negative duration for serve_stale"));
                    }
                    cfg.stale_up_to = nanos_to_duration(dur);
                }
                cfg.verify_stale = false;
                cfg.verify_stale_timeout = Duration::ZERO;
                if let Some(mode) = args.get(1) {
                    let mode = mode.to_lowercase();
                    if mode != "immediate" && mode != "verify" {
                        return Err(d.err(format!(
                            "invalid value for serve_stale refresh mode: {mode}"
                        )));
                    }
                    cfg.verify_stale = mode == "verify";
                }
                // verify: [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]];
                // immediate: [RESPONSE_TTL [FAILURE_RECHECK]].
                let mut rest = args.iter().skip(2);
                if cfg.verify_stale {
                    if let Some(t) = rest.next() {
                        let t = parse_go_duration(t).map_err(|e| {
                            d.err(format!("invalid serve_stale verify timeout: {e}"))
                        })?;
                        if t < 0 {
                            return Err(d.err("invalid negative timeout for serve_stale verify"));
                        }
                        cfg.verify_stale_timeout = nanos_to_duration(t);
                    }
                } else if args.len() > 4 {
                    return Err(d.arg_err());
                }
                if let Some(ttl) = rest.next() {
                    cfg.stale_ttl = Some(parse_stale_ttl(ttl).map_err(|e| d.err(e))?);
                }
                if let Some(r) = rest.next() {
                    cfg.stale_recheck = parse_stale_recheck(r).map_err(|e| d.err(e))?;
                }
            }
            "serve_stale_policy" => {
                if serve_stale_policy_configured {
                    return Err(d.err("serve_stale_policy can only be specified once"));
                }
                serve_stale_policy_configured = true;
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                match args[0].to_lowercase().as_str() {
                    "prefer_positive" => cfg.prefer_positive = true,
                    _ => {
                        return Err(d.err(format!("invalid serve_stale_policy: {}", args[0])));
                    }
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

    if serve_stale_policy_configured && !serve_stale_configured {
        return Err(d.err("serve_stale_policy requires serve_stale"));
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

/// serve_stale's RESPONSE_TTL: whole seconds within the DNS TTL range (CoreDNS's
/// `parseServeStaleTTL`).
fn parse_stale_ttl(value: &str) -> Result<u32, String> {
    let ttl =
        parse_go_duration(value).map_err(|e| format!("invalid serve_stale response TTL: {e}"))?;
    if ttl < 0 {
        return Err("invalid negative response TTL for serve_stale".to_string());
    }
    if ttl % 1_000_000_000 != 0 {
        return Err("serve_stale response TTL must be a whole number of seconds".to_string());
    }
    u32::try_from(ttl / 1_000_000_000)
        .map_err(|_| "serve_stale response TTL exceeds the DNS TTL range".to_string())
}

/// serve_stale's FAILURE_RECHECK: at most 5 minutes (CoreDNS's `parseServeStaleRecheck`).
fn parse_stale_recheck(value: &str) -> Result<Duration, String> {
    let r = parse_go_duration(value)
        .map_err(|e| format!("invalid serve_stale failure recheck: {e}"))?;
    if r < 0 {
        return Err("invalid negative failure recheck for serve_stale".to_string());
    }
    if r > 300 * 1_000_000_000 {
        return Err("serve_stale failure recheck cannot exceed 5 minutes".to_string());
    }
    Ok(nanos_to_duration(r))
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

    /// CoreDNS 1.14's serve_stale arguments and serve_stale_policy (setup_test.go).
    #[test]
    fn serve_stale_full_syntax_and_policy() {
        let c = ok("cache {\n serve_stale 1h immediate 30s 20s\n}");
        assert_eq!(
            (c.stale_up_to, c.verify_stale, c.stale_ttl, c.stale_recheck),
            (s(3600), false, Some(30), s(20))
        );
        let c = ok("cache {\n serve_stale 1h verify 100ms 30s 30s\n}");
        assert_eq!(
            (
                c.verify_stale,
                c.verify_stale_timeout,
                c.stale_ttl,
                c.stale_recheck
            ),
            (true, Duration::from_millis(100), Some(30), s(30))
        );
        let c = ok("cache {\n serve_stale 1h verify 0 30s\n}");
        assert_eq!(
            (c.verify_stale_timeout, c.stale_ttl),
            (Duration::ZERO, Some(30))
        );
        let c = ok("cache {\n serve_stale 1h verify 100ms\n}");
        assert_eq!(
            (c.verify_stale_timeout, c.stale_ttl),
            (Duration::from_millis(100), None)
        );
        let c = ok("cache {\n serve_stale\n serve_stale_policy PREFER_POSITIVE\n}");
        assert!(c.prefer_positive);
        let c = ok("cache {\n serve_stale_policy prefer_positive\n serve_stale 1h\n}");
        assert!(c.prefer_positive);
        assert!(!ok("cache {\n serve_stale\n}").prefer_positive);
        let p = "Corefile:2 - Error during parsing: ";
        let cases: &[(&str, String)] = &[
            (
                "cache {\n serve_stale 1h immediate 30s 30s 1s\n}",
                format!("{p}Wrong argument count or unexpected line ending after '1s'"),
            ),
            (
                "cache {\n serve_stale 1h verify 1s 30s 30s 1s\n}",
                format!("{p}Wrong argument count or unexpected line ending after '1s'"),
            ),
            (
                "cache {\n serve_stale 1h verify x\n}",
                format!("{p}invalid serve_stale verify timeout: time: invalid duration \"x\""),
            ),
            (
                "cache {\n serve_stale 1h verify -1s\n}",
                format!("{p}invalid negative timeout for serve_stale verify"),
            ),
            (
                "cache {\n serve_stale 1h immediate x\n}",
                format!("{p}invalid serve_stale response TTL: time: invalid duration \"x\""),
            ),
            (
                "cache {\n serve_stale 1h immediate -30s\n}",
                format!("{p}invalid negative response TTL for serve_stale"),
            ),
            (
                "cache {\n serve_stale 1h immediate 1500ms\n}",
                format!("{p}serve_stale response TTL must be a whole number of seconds"),
            ),
            (
                "cache {\n serve_stale 1h immediate 2000000h\n}",
                format!("{p}serve_stale response TTL exceeds the DNS TTL range"),
            ),
            (
                "cache {\n serve_stale 1h immediate 30s x\n}",
                format!("{p}invalid serve_stale failure recheck: time: invalid duration \"x\""),
            ),
            (
                "cache {\n serve_stale 1h immediate 30s -1s\n}",
                format!("{p}invalid negative failure recheck for serve_stale"),
            ),
            (
                "cache {\n serve_stale 1h verify 0 30s 301s\n}",
                format!("{p}serve_stale failure recheck cannot exceed 5 minutes"),
            ),
            (
                "cache {\n serve_stale\n serve_stale_policy prefer_negative\n}",
                "Corefile:3 - Error during parsing: invalid serve_stale_policy: prefer_negative".to_string(),
            ),
            (
                "cache {\n serve_stale\n serve_stale_policy\n}",
                "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'serve_stale_policy'".to_string(),
            ),
            (
                "cache {\n serve_stale\n serve_stale_policy prefer_positive prefer_positive\n}",
                "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'prefer_positive'".to_string(),
            ),
            (
                "cache {\n serve_stale\n serve_stale_policy prefer_positive\n serve_stale_policy prefer_positive\n}",
                "Corefile:4 - Error during parsing: serve_stale_policy can only be specified once".to_string(),
            ),
            (
                "cache {\n serve_stale_policy prefer_positive\n}",
                "Corefile:3 - Error during parsing: serve_stale_policy requires serve_stale".to_string(),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), *want, "{text:?}");
        }
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

    fn err(text: &str) -> String {
        match parse(&mut dispenser(text), &block()) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => e.to_string(),
        }
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
                // CoreDNS 1.14: the third argument of `verify` is VERIFY_TIMEOUT.
                "cache {\nserve_stale 1h verify more\n}",
                "Corefile:2 - Error during parsing: invalid serve_stale verify timeout: time: invalid duration \"more\"",
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
