//! Corefile parsing for `hosts`.
//!
//! ```text
//! hosts [FILE [ZONES...]] {
//!     [INLINE]
//!     ttl SECONDS
//!     no_reverse
//!     reload DURATION
//!     fallthrough [ZONES...]
//! }
//! ```

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::{DEFAULT_PATH, DEFAULT_RELOAD, DEFAULT_TTL, Hosts, HostsData, HostsMap};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::acl::origins_from_args;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let h = parse(d, ctx)?;
    // Serve the file's entries from the first query on; on_startup re-checks and starts the
    // periodic reload.
    h.data.reload_if_changed();
    h.data.publish_metrics();
    Ok(Some(Arc::new(h)))
}

/// Parses the directive without touching the file's contents (only its existence is checked).
pub(crate) fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<Hosts, ParseError> {
    LazyLock::force(&super::ENTRIES);
    LazyLock::force(&super::RELOAD_TIMESTAMP);

    d.next(); // "hosts"
    let mut args = d.remaining_args();
    let mut path = PathBuf::from(DEFAULT_PATH);
    if !args.is_empty() {
        path = PathBuf::from(args.remove(0));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                tracing::warn!("plugin/hosts: Hosts file {:?} is a directory", path)
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("plugin/hosts: File does not exist: {}", path.display())
            }
            Err(e) => {
                return Err(d.err(format!(
                    "unable to access hosts file '{}': {e}",
                    path.display()
                )));
            }
        }
    }
    let origins = origins_from_args(d, &args, &ctx.zones())?;

    let mut ttl = DEFAULT_TTL;
    let mut reload = DEFAULT_RELOAD;
    let mut auto_reverse = true;
    let mut fall: Vec<String> = Vec::new();
    let mut inline: Vec<String> = Vec::new();

    while d.next_block() {
        match d.val() {
            "fallthrough" => {
                let zones = d.remaining_args();
                fall = if zones.is_empty() {
                    vec![".".to_string()]
                } else {
                    origins_from_args(d, &zones, &[])?
                };
            }
            "no_reverse" => auto_reverse = false,
            "ttl" => {
                let rest = d.remaining_args();
                let Some(first) = rest.first() else {
                    return Err(d.err("ttl needs a time in second"));
                };
                let secs: i64 = first
                    .parse()
                    .map_err(|_| d.err("ttl needs a number of second"))?;
                if secs <= 0 || secs > 65535 {
                    return Err(d.err("ttl provided is invalid"));
                }
                ttl = secs as u32;
            }
            "reload" => {
                let rest = d.remaining_args();
                if rest.len() != 1 {
                    return Err(d.err("reload needs a duration (zero seconds to disable)"));
                }
                reload = match parse_go_duration(&rest[0]) {
                    Some((false, dur)) => dur,
                    Some((true, dur)) if dur.is_zero() => dur,
                    Some((true, _)) => {
                        return Err(d.err(format!(
                            "invalid negative duration for reload '{}'",
                            rest[0]
                        )));
                    }
                    None => {
                        return Err(d.err(format!("invalid duration for reload '{}'", rest[0])));
                    }
                };
            }
            _ => {
                // Lines before `fallthrough` are hosts-file lines; after it, unknown properties.
                if fall.is_empty() {
                    let mut line = d.val().to_string();
                    for a in d.remaining_args() {
                        line.push(' ');
                        line.push_str(&a);
                    }
                    inline.push(line);
                    continue;
                }
                return Err(d.unknown_property());
            }
        }
    }

    let inline_map = HostsMap::parse(&inline.join("\n"), &origins, auto_reverse);
    let data = HostsData::new(path, origins.clone(), auto_reverse, inline_map);
    Ok(Hosts::new(origins, fall, ttl, reload, Arc::new(data)))
}

/// Go's `time.ParseDuration`: `[-+]?(DECIMAL UNIT)+` with units ns, us (µs), ms, s, m, h, or a
/// bare `0`. Returns (negative, magnitude); `None` when the text is not a duration.
pub(crate) fn parse_go_duration(s: &str) -> Option<(bool, Duration)> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some((neg, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after) = rest.strip_prefix('.') {
            let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after[..frac_len];
            rest = &after[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit_ns: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut frac_ns: u128 = 0;
        let mut scale: u128 = 1;
        for b in frac_part.bytes().take(18) {
            frac_ns = frac_ns * 10 + u128::from(b - b'0');
            scale *= 10;
        }
        total_ns = total_ns.checked_add(whole.checked_mul(unit_ns)?)?;
        total_ns = total_ns.checked_add(frac_ns * unit_ns / scale)?;
    }
    // Go durations are int64 nanoseconds.
    if total_ns > i64::MAX as u128 {
        return None;
    }
    Some((neg, Duration::from_nanos(total_ns as u64)))
}
