//! Go's `time.ParseDuration` and `time.Duration.String()`, for Corefile options and log lines
//! that must read exactly as CoreDNS's (`30s`, `1m30s`, `1.5s`, `100ms`, `5m0s`).

use std::time::Duration;

const NS: u128 = 1;
const US: u128 = 1_000;
const MS: u128 = 1_000_000;
const S: u128 = 1_000_000_000;
const M: u128 = 60 * S;
const H: u128 = 60 * M;

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `0`). Negative durations are rejected.
/// Errors are worded like Go's (`time: invalid duration "x"`).
pub fn parse_duration(orig: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if s.starts_with('-') {
        if s == "-0" {
            return Ok(Duration::ZERO);
        }
        return Err(format!("time: negative duration {orig:?} not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let int: u128 = if int_len > 0 {
            s[..int_len].parse().map_err(|_| invalid())?
        } else {
            0
        };
        s = &s[int_len..];
        // Fraction.
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            for c in s.bytes().take_while(|c| c.is_ascii_digit()) {
                frac_len += 1;
                // Digits beyond nanosecond precision of any unit are dropped, as Go does.
                if scale < 1_000_000_000_000_000_000 {
                    frac = frac * 10 + u128::from(c - b'0');
                    scale *= 10;
                }
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .bytes()
            .take_while(|c| *c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let u = &s[..unit_len];
        s = &s[unit_len..];
        let unit = match u {
            "ns" => NS,
            "us" | "µs" | "μs" => US,
            "ms" => MS,
            "s" => S,
            "m" => M,
            "h" => H,
            _ => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        total = total
            .checked_add(int.checked_mul(unit).ok_or_else(invalid)?)
            .and_then(|t| t.checked_add(frac * unit / scale))
            .ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats like Go's `Duration.String()`: `0s`, `1.5µs`, `100ms`, `30s`, `5m0s`, `1h0m0s`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < S {
        return if ns < US {
            format!("{ns}ns")
        } else if ns < MS {
            format!("{}µs", frac(ns, 3))
        } else {
            format!("{}ms", frac(ns, 6))
        };
    }
    let mut out = String::new();
    let mins = ns / M;
    if mins > 0 {
        let (h, m) = (mins / 60, mins % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(ns % M, 9));
    out.push('s');
    out
}

/// `v / 10^prec` with the fraction's trailing zeros (and a bare `.`) removed.
fn frac(v: u128, prec: u32) -> String {
    let p = 10u128.pow(prec);
    let (int, mut f) = (v / p, v % p);
    if f == 0 {
        return int.to_string();
    }
    let mut digits = prec as usize;
    while f % 10 == 0 {
        f /= 10;
        digits -= 1;
    }
    format!("{int}.{f:0digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let ok = [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("100ms", Duration::from_millis(100)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("1h30m", Duration::from_secs(5400)),
            (
                "2h45m10.5s",
                Duration::from_millis((2 * 3600 + 45 * 60) * 1000 + 10_500),
            ),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("+1m", Duration::from_secs(60)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        let bad = [
            ("", "time: invalid duration \"\""),
            ("abc", "time: invalid duration \"abc\""),
            ("10", "time: missing unit in duration \"10\""),
            ("10x", "time: unknown unit \"x\" in duration \"10x\""),
            ("1s2", "time: missing unit in duration \"1s2\""),
            (".s", "time: invalid duration \".s\""),
            ("-1s", "time: negative duration \"-1s\" not allowed"),
        ];
        for (s, want) in bad {
            assert_eq!(parse_duration(s), Err(want.to_string()), "{s}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(123), "123ns"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3661), "1h1m1s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
    }
}
