//! `dnstap SOCKET [full] [WRITEBUFFER] [QUEUE] { identity …; version …; extra …; skipverify }`,
//! with CoreDNS's bounds and error wording.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::dnstap::{Dnstap, Endpoint, Settings};
use crate::plugin::util::go_quote;
use crate::plugin::{Plugin, SetupCtx};

/// Upper bounds of the write buffer (MiB) and queue (× 10,000) multipliers, as CoreDNS.
const MAX_WRITE_BUFFER: i64 = 1024;
const MAX_QUEUE: i64 = 4096;

pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(Some(Arc::new(Dnstap::new(parse(d)?))))
}

/// Go's strconv.Atoi on `s`, worded as its errors are.
fn atoi(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(s)))
}

pub(super) fn parse(d: &mut Dispenser) -> Result<Settings, ParseError> {
    d.next(); // "dnstap"
    let args = d.remaining_args();
    if args.is_empty() {
        return Err(d.arg_err());
    }
    if args[0] == "listen" {
        return Err(d.err("dnstap listen is not supported by exdns"));
    }
    let mut write_buffer = 1;
    let mut queue = 1;
    if let Some(v) = args.get(2) {
        let n = atoi(v).map_err(|e| {
            d.err(format!(
                "dnstap: invalid MultipleTcpWriteBuf {}: {e}",
                go_quote(v)
            ))
        })?;
        if !(1..=MAX_WRITE_BUFFER).contains(&n) {
            return Err(d.err(format!(
                "dnstap: MultipleTcpWriteBuf must be between 1 and {MAX_WRITE_BUFFER} (MiB units): {n}"
            )));
        }
        write_buffer = n as usize;
    }
    if let Some(v) = args.get(3) {
        let n = atoi(v).map_err(|e| {
            d.err(format!(
                "dnstap: invalid MultipleQueue {}: {e}",
                go_quote(v)
            ))
        })?;
        if !(1..=MAX_QUEUE).contains(&n) {
            return Err(d.err(format!(
                "dnstap: MultipleQueue must be between 1 and {MAX_QUEUE} (x10k messages): {n}"
            )));
        }
        queue = n as usize;
    }
    let endpoint = &args[0];
    let endpoint = if let Some(rest) = endpoint.strip_prefix("tcp://") {
        // url.Parse's Host: up to the first '/'.
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() {
            return Err(d.arg_err());
        }
        Endpoint::Tcp(host.to_string())
    } else if endpoint.starts_with("tls://") {
        return Err(d.err("tls:// dnstap endpoints are not supported by exdns"));
    } else {
        Endpoint::Unix(
            endpoint
                .strip_prefix("unix://")
                .unwrap_or(endpoint)
                .to_string(),
        )
    };
    let full = args.get(1).is_some_and(|a| a == "full");
    let mut s = Settings {
        endpoint,
        full,
        write_buffer,
        queue,
        identity: crate::plugin::util::hostname().into_bytes(),
        version: crate::plugin::chaos::default_version().into_bytes(),
        extra: None,
    };
    while d.next_block() {
        let prop = d.val().to_string();
        match prop.as_str() {
            // Only meaningful for tls:// endpoints.
            "skipverify" => {}
            "tls" => return Err(d.err("tls directive only valid for listeners")),
            "identity" | "version" | "extra" => {
                if !d.next_arg() {
                    return Err(d.arg_err());
                }
                let v = d.val().as_bytes().to_vec();
                match prop.as_str() {
                    "identity" => s.identity = v,
                    "version" => s.version = v,
                    _ => s.extra = Some(v),
                }
            }
            other => return Err(d.err(format!("unknown property '{other}'"))),
        }
    }
    Ok(s)
}
