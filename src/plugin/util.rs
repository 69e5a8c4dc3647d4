//! Small parsers shared by several directives' setups: Go-style durations (`1m30s`) and
//! `host:port` listen addresses (`:8080`, `localhost:9153`, `[::1]:53`), with Go's error wording
//! so messages read as CoreDNS's do. Every plugin parses and prints durations with these.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hickory_proto::rr::Name;
use tokio::task::JoinHandle;

use crate::corefile::{Directive, Dispenser, ParseError, ServerBlock};
use crate::dns::request::Request;

/// Go's `time.ParseDuration`, signed, in nanoseconds: a sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`), after an optional
/// sign, like `300ms`, `-1.5h`, `2h45m`; a bare `0` is zero. The range is Go's (an `int64` of
/// nanoseconds) and errors are worded as Go's: `time: invalid duration "abc"`,
/// `time: missing unit in duration "5"`, `time: unknown unit "x" in duration "5x"`.
pub fn parse_go_duration(orig: &str) -> Result<i128, String> {
    const LIMIT: u128 = 1 << 63;
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let (negative, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // The number: digits, optionally '.' and more digits; at least one digit overall.
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        if whole > LIMIT {
            return Err(invalid());
        }
        let mut frac_part = "";
        if let Some(r) = s.strip_prefix('.') {
            let frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &r[..frac_len];
            s = &r[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        // The unit: everything up to the next digit or '.'.
        let unit_len = s
            .bytes()
            .take_while(|c| *c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(orig)
                ));
            }
        };
        // Fraction digits beyond what any unit can resolve to a nanosecond are dropped.
        let (mut num, mut den) = (0u128, 1u128);
        for b in frac_part.bytes().take(18) {
            num = num * 10 + u128::from(b - b'0');
            den *= 10;
        }
        total += whole * scale + num * scale / den;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        return Ok(-(total as i128));
    }
    if total == LIMIT {
        return Err(invalid());
    }
    Ok(total as i128)
}

/// A Go duration that may not be negative (a negative zero is zero), for options where a
/// negative value makes no sense: `negative duration "-5s" is not allowed`; other errors as
/// [`parse_go_duration`]'s.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let ns = parse_go_duration(s)?;
    if ns < 0 {
        return Err(format!("negative duration {} is not allowed", go_quote(s)));
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// A Go duration written without a minus sign: any leading `-` (but in `-0`) is refused before
/// the text is read, as `time: negative duration "-1s" not allowed`; other errors as
/// [`parse_go_duration`]'s.
pub fn parse_unsigned_duration(s: &str) -> Result<Duration, String> {
    if s.starts_with('-') && s != "-0" {
        return Err(format!(
            "time: negative duration {} not allowed",
            go_quote(s)
        ));
    }
    parse_duration(s)
}

/// Formats a duration the way Go prints `time.Duration` (`1m30s`, `500ms`, `0s`), for messages.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", trim_frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim_frac(ns, 1_000_000));
    }
    let secs_total = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let h = secs_total / 3600;
    let m = (secs_total % 3600) / 60;
    let s = secs_total % 60;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&trim_frac(
        u128::from(s as u64) * 1_000_000_000 + frac,
        1_000_000_000,
    ));
    out.push('s');
    out
}

fn trim_frac(v: u128, unit: u128) -> String {
    let whole = v / unit;
    let frac = v % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `%q`/`strconv.Quote` for the plain strings Corefiles hold.
pub fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Splits `host:port` like Go's `net.SplitHostPort`: `[::1]:53` → (`::1`, `53`), `:8080` →
/// (``, `8080`). Errors read as Go's: `address foo: missing port in address`.
pub fn split_host_port(hostport: &str) -> Result<(&str, &str), String> {
    let err = |why: &str| format!("address {hostport}: {why}");
    const MISSING_PORT: &str = "missing port in address";
    const TOO_MANY_COLONS: &str = "too many colons in address";
    let Some(i) = hostport.rfind(':') else {
        return Err(err(MISSING_PORT));
    };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err(err("missing ']' in address"));
        };
        if end + 1 == hostport.len() {
            return Err(err(MISSING_PORT));
        } else if end + 1 != i {
            if hostport.as_bytes()[end + 1] == b':' {
                return Err(err(TOO_MANY_COLONS));
            }
            return Err(err(MISSING_PORT));
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..i];
        if host.contains(':') {
            return Err(err(TOO_MANY_COLONS));
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') {
        return Err(err("unexpected '[' in address"));
    }
    if hostport[k..].contains(']') {
        return Err(err("unexpected ']' in address"));
    }
    Ok((host, &hostport[i + 1..]))
}

/// Checks a listen address for an HTTP endpoint (`:8080`, `localhost:9153`, `[::1]:9153`):
/// Go's `SplitHostPort` rules plus a numeric port (0 picks a free port).
pub fn check_listen_addr(addr: &str) -> Result<(), String> {
    let (_, port) = split_host_port(addr)?;
    parse_port(port).map(|_| ()).ok_or_else(|| {
        format!(
            "address {addr}: invalid port {}: a number from 0 to 65535 is expected",
            go_quote(port)
        )
    })
}

/// The optional `[ADDR]` argument of an HTTP endpoint directive (`health`, `ready`,
/// `prometheus`), read from the rest of the directive's line: `default` when there is none, else
/// the address checked by [`check_listen_addr`]; more than one is an argument-count error.
pub fn listen_addr_arg(d: &mut Dispenser, default: &str) -> Result<String, ParseError> {
    let args = d.remaining_args();
    match args.as_slice() {
        [] => Ok(default.to_string()),
        [addr] => {
            check_listen_addr(addr).map_err(|e| d.err(e))?;
            Ok(addr.clone())
        }
        _ => Err(d.arg_err()),
    }
}

/// A decimal port number 0..=65535.
pub fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// Where the occurrence a setup is called for stands among its directive's occurrences in the
/// server block, for directives whose occurrences make one handler (acl, log): the first builds
/// it from all of them, later ones add none.
#[derive(Debug)]
pub enum Occurrence<'a> {
    /// The dispenser is not one of the block's directives (a hand-made one): it stands alone.
    Alone,
    /// The block's first occurrence; all occurrences of the directive, in file order.
    First(Vec<&'a Directive>),
    /// A later occurrence, already part of the first one's handler.
    Later,
}

/// Which [`Occurrence`] of directive `name` in `block` the dispenser `d` (not yet advanced) is.
/// An occurrence is recognised by its name token (text, file, line). The same snippet imported
/// twice into one block yields identical tokens: each copy then counts as the first.
pub fn occurrence<'a>(d: &Dispenser, block: &'a ServerBlock, name: &str) -> Occurrence<'a> {
    let mut probe = d.clone();
    probe.next();
    let Some(mine) = probe.token() else {
        return Occurrence::Alone;
    };
    let all: Vec<&Directive> = block.directives.iter().filter(|x| x.name == name).collect();
    match all.iter().position(|x| x.tokens.first() == Some(mine)) {
        None => Occurrence::Alone,
        Some(0) => Occurrence::First(all),
        Some(_) => Occurrence::Later,
    }
}

/// The query name as the client spelled it (case kept), the root for a message without a
/// question; for owner names of synthesized answers.
pub fn qname_as_sent(req: &Request) -> Name {
    req.msg
        .queries
        .first()
        .map(|q| q.name().clone())
        .unwrap_or_else(Name::root)
}

/// The one background task of a plugin (hosts' reload loop, loop's probe): starting a new one
/// aborts the one before, `stop` (on shutdown) aborts it. Dropping the slot leaves the task be.
#[derive(Debug, Default)]
pub struct TaskSlot(Mutex<Option<JoinHandle<()>>>);

impl TaskSlot {
    fn lock(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `task`, aborting the task held before.
    pub fn set(&self, task: JoinHandle<()>) {
        if let Some(old) = self.lock().replace(task) {
            old.abort();
        }
    }

    /// Aborts the task held, if any.
    pub fn stop(&self) {
        if let Some(task) = self.lock().take() {
            task.abort();
        }
    }

    /// Whether a task is held (started and not stopped).
    pub fn is_set(&self) -> bool {
        self.lock().is_some()
    }
}

/// An I/O error as Go prints it: the OS message without Rust's ` (os error N)` suffix, starting
/// lower-case (`no such file or directory`, `address already in use`).
pub fn io_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first)
            if first.is_ascii_uppercase()
                && !chars.clone().next().is_some_and(|c| c.is_ascii_uppercase()) =>
        {
            first.to_ascii_lowercase().to_string() + chars.as_str()
        }
        _ => text,
    }
}

/// The host's name as Go's `os.Hostname` gives it (the kernel's node name), or `localhost`
/// when it cannot be read: the default of `nsid` and of `chaos`'s `hostname.bind`/`id.server`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_in_go_syntax() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("1.s"), Ok(ms(1000)));
        assert_eq!(parse_duration("300ms"), Ok(ms(300)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("10μs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("+2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h1m1s1ms"), Ok(ms(3_661_001)));
        assert_eq!(
            parse_duration("2562047h"),
            Ok(Duration::from_secs(2562047 * 3600))
        );
    }

    #[test]
    fn duration_errors_worded_as_go() {
        assert_eq!(
            parse_duration("abc").unwrap_err(),
            r#"time: invalid duration "abc""#
        );
        assert_eq!(
            parse_duration("").unwrap_err(),
            r#"time: invalid duration """#
        );
        assert_eq!(
            parse_duration("5").unwrap_err(),
            r#"time: missing unit in duration "5""#
        );
        assert_eq!(
            parse_duration("5x").unwrap_err(),
            r#"time: unknown unit "x" in duration "5x""#
        );
        assert_eq!(
            parse_duration("1s5").unwrap_err(),
            r#"time: missing unit in duration "1s5""#
        );
        assert_eq!(
            parse_duration(".s").unwrap_err(),
            r#"time: invalid duration ".s""#
        );
        assert_eq!(
            parse_duration("9999999999h").unwrap_err(),
            r#"time: invalid duration "9999999999h""#
        );
        assert_eq!(
            parse_duration("-5s").unwrap_err(),
            r#"negative duration "-5s" is not allowed"#
        );
    }

    #[test]
    fn durations_more_go_syntax() {
        let ok = [
            ("30s", Duration::from_secs(30)),
            ("100ms", ms(100)),
            ("2h45m10.5s", ms((2 * 3600 + 45 * 60) * 1000 + 10_500)),
            ("+1m", Duration::from_secs(60)),
            ("1.5h", Duration::from_secs(5400)),
            ("2us", Duration::from_micros(2)),
            ("0s", Duration::ZERO),
            ("-0s", Duration::ZERO),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn signed_go_durations() {
        let ns = 1_000_000_000i128;
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("1s"), Ok(ns));
        assert_eq!(parse_go_duration("-1s"), Ok(-ns));
        assert_eq!(parse_go_duration("+1s"), Ok(ns));
        assert_eq!(parse_go_duration("-1.5m"), Ok(-90 * ns));
        assert_eq!(
            parse_go_duration("+2h3m4s"),
            Ok((2 * 3600 + 3 * 60 + 4) * ns)
        );
        assert_eq!(parse_go_duration(".5s"), Ok(ns / 2));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("7ns"), Ok(7));
        assert_eq!(parse_go_duration("-0"), Ok(0));
        assert_eq!(
            parse_go_duration("-9223372036854775808ns"),
            Ok(-(1i128 << 63)),
            "Go's int64 range"
        );
        assert_eq!(
            parse_go_duration("").unwrap_err(),
            r#"time: invalid duration """#
        );
        assert_eq!(
            parse_go_duration(".").unwrap_err(),
            r#"time: invalid duration ".""#
        );
        assert_eq!(
            parse_go_duration("s").unwrap_err(),
            r#"time: invalid duration "s""#
        );
        assert_eq!(
            parse_go_duration("-").unwrap_err(),
            r#"time: invalid duration "-""#
        );
        assert_eq!(
            parse_go_duration("3000000h").unwrap_err(),
            r#"time: invalid duration "3000000h""#
        );
        assert_eq!(
            parse_go_duration("9223372036854775808ns").unwrap_err(),
            r#"time: invalid duration "9223372036854775808ns""#
        );
        assert_eq!(
            parse_go_duration("99999999999999999999x").unwrap_err(),
            r#"time: invalid duration "99999999999999999999x""#,
            "an overlong number is refused before its unit is read, as Go does"
        );
    }

    #[test]
    fn unsigned_durations_refuse_a_minus_sign() {
        assert_eq!(
            parse_unsigned_duration("1m30s"),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(parse_unsigned_duration("+1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_unsigned_duration("-0"), Ok(Duration::ZERO));
        for s in ["-1s", "-0s", "-abc"] {
            assert_eq!(
                parse_unsigned_duration(s).unwrap_err(),
                format!("time: negative duration {s:?} not allowed")
            );
        }
        assert_eq!(
            parse_unsigned_duration("10x").unwrap_err(),
            r#"time: unknown unit "x" in duration "10x""#
        );
        assert_eq!(
            parse_unsigned_duration("10").unwrap_err(),
            r#"time: missing unit in duration "10""#
        );
    }

    #[test]
    fn durations_print_as_go() {
        assert_eq!(format_duration(Duration::from_nanos(123)), "123ns");
        assert_eq!(format_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format_duration(ms(100)), "100ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(format_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(ms(1500)), "1.5s");
        assert_eq!(format_duration(ms(250)), "250ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_nanos(12)), "12ns");
    }

    #[test]
    fn host_port_split_as_go() {
        assert_eq!(split_host_port(":8080"), Ok(("", "8080")));
        assert_eq!(split_host_port("localhost:9153"), Ok(("localhost", "9153")));
        assert_eq!(split_host_port("[::1]:9153"), Ok(("::1", "9153")));
        assert_eq!(split_host_port("127.0.0.1:0"), Ok(("127.0.0.1", "0")));
        assert_eq!(
            split_host_port("localhost").unwrap_err(),
            "address localhost: missing port in address"
        );
        assert_eq!(
            split_host_port("::1:53").unwrap_err(),
            "address ::1:53: too many colons in address"
        );
        assert_eq!(
            split_host_port("[::1]").unwrap_err(),
            "address [::1]: missing port in address"
        );
        assert_eq!(
            split_host_port("[::1:53").unwrap_err(),
            "address [::1:53: missing ']' in address"
        );
        assert_eq!(
            split_host_port("[::1]x:53").unwrap_err(),
            "address [::1]x:53: missing port in address"
        );
        assert_eq!(
            split_host_port("a]:53").unwrap_err(),
            "address a]:53: unexpected ']' in address"
        );
    }

    #[test]
    fn occurrences_of_a_directive() {
        use crate::plugin::test_chain::{block_with, dispenser};
        let b = block_with(&["."], "log a\nwhoami\nlog b {\n}\nlog c");
        let logs: Vec<_> = b.directives.iter().filter(|x| x.name == "log").collect();
        match occurrence(&logs[0].dispenser(), &b, "log") {
            Occurrence::First(all) => assert_eq!(all.len(), 3),
            other => panic!("{other:?}"),
        }
        for later in &logs[1..] {
            assert!(matches!(
                occurrence(&later.dispenser(), &b, "log"),
                Occurrence::Later
            ));
        }
        assert!(matches!(
            occurrence(&dispenser("\n\n\n\n\nlog e"), &b, "log"),
            Occurrence::Alone
        ));
        assert!(matches!(
            occurrence(&b.directives[1].dispenser(), &b, "whoami"),
            Occurrence::First(_)
        ));
    }

    #[test]
    fn io_errors_read_as_go() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_error_text(&e), "no such file or directory");
        let e = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(io_error_text(&e), "address already in use");
    }

    #[test]
    fn listen_addr_needs_numeric_port() {
        assert_eq!(check_listen_addr(":8080"), Ok(()));
        assert_eq!(check_listen_addr("[::]:0"), Ok(()));
        assert_eq!(
            check_listen_addr(":http").unwrap_err(),
            r#"address :http: invalid port "http": a number from 0 to 65535 is expected"#
        );
        assert_eq!(
            check_listen_addr(":65536").unwrap_err(),
            r#"address :65536: invalid port "65536": a number from 0 to 65535 is expected"#
        );
        assert_eq!(
            check_listen_addr(":").unwrap_err(),
            r#"address :: invalid port "": a number from 0 to 65535 is expected"#
        );
    }
}
