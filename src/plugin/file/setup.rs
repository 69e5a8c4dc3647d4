//! Corefile parsing for `file`.
//!
//! ```text
//! file DBFILE [ZONES...] {
//!     reload DURATION
//!     fallthrough [ZONES...]
//! }
//! ```

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::zone::Zone;
use super::{DEFAULT_RELOAD, File, ZoneSlot};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::util::{TaskSlot, format_duration, io_error_text, parse_go_duration};
use crate::plugin::zones::origins_from_args;
use crate::plugin::{Plugin, SetupCtx};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(Some(Arc::new(parse(d, ctx)?)))
}

/// Parses the directive and loads its zones from the file.
pub(crate) fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<File, ParseError> {
    LazyLock::force(&super::ENTRIES);

    d.next(); // "file"
    if !d.next_arg() {
        return Err(d.arg_err());
    }
    // Like CoreDNS without a *root* directive: a relative path is relative to the working
    // directory.
    let path = PathBuf::from(d.val());
    // Load errors point at the DBFILE argument.
    let (err_file, err_line) = (d.file().to_string(), d.line());
    let load_err = |msg: String| ParseError::new(err_file.clone(), err_line, msg);
    let args = d.remaining_args();
    let origins = origins_from_args(d, &args, &ctx.zones())?;

    let mut reload = DEFAULT_RELOAD;
    let mut fall: Vec<String> = Vec::new();
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
            "reload" => {
                let rest = d.remaining_args();
                let Some(value) = rest.first() else {
                    return Err(d.err("reload duration value is expected"));
                };
                reload = match parse_go_duration(value) {
                    Ok(ns) if ns >= 0 => Duration::from_nanos(ns as u64),
                    Ok(_) => {
                        return Err(
                            d.err(format!("invalid negative duration for reload '{value}'"))
                        );
                    }
                    Err(e) => return Err(d.err(e)),
                };
            }
            // Deprecated in CoreDNS and ignored there too.
            "upstream" => {
                d.remaining_args();
            }
            _ => return Err(d.unknown_property()),
        }
    }

    let zones: Vec<Arc<ZoneSlot>> = origins
        .iter()
        .map(|o| Arc::new(ZoneSlot::new(o.clone(), path.clone())))
        .collect();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for slot in &zones {
                let zone = Zone::parse(&text, &path, &slot.origin)
                    .map_err(|e| load_err(e.with_path(&path)))?;
                slot.install(zone, &text);
            }
        }
        // CoreDNS: fatal only when nothing would try again.
        Err(e) if reload.is_zero() => {
            return Err(load_err(format!(
                "open {}: {}",
                path.display(),
                io_error_text(&e)
            )));
        }
        Err(e) => tracing::warn!(
            "plugin/file: Failed to open \"open {}: {}\": trying again in {}",
            path.display(),
            io_error_text(&e),
            format_duration(reload)
        ),
    }
    Ok(File {
        zones,
        fall,
        reload,
        task: TaskSlot::default(),
    })
}
