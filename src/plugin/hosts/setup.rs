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
use crate::plugin::util::parse_go_duration;
use crate::plugin::zones::origins_from_args;
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
                    Ok(ns) if ns >= 0 => Duration::from_nanos(ns as u64),
                    Ok(_) => {
                        return Err(d.err(format!(
                            "invalid negative duration for reload '{}'",
                            rest[0]
                        )));
                    }
                    Err(_) => {
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
