//! Corefile parsing for `dnssec`, as CoreDNS's setup parses it (its wording):
//!
//! ```text
//! dnssec [ZONES...] {
//!     key file KEY...
//!     cache_capacity CAPACITY
//! }
//! ```
//!
//! `KEY` is a base name (`Kexample.org.+013+45330`) or either file of the pair. Every key must
//! be able to sign one of the zones (its owner is the zone or above it). Stricter than CoreDNS,
//! which starts and then signs nothing: a block with no key, an unknown key source and
//! `key aws_secretsmanager` (exdns has no AWS client) are errors.

use std::path::PathBuf;
use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::dns::dnssec::SigningKey;
use crate::dns::request::lower_fqdn;
use crate::plugin::zones::{in_zone, origins_from_args};
use crate::plugin::{Plugin, SetupCtx};

use super::{DEFAULT_CAPACITY, Dnssec};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(Some(Arc::new(parse(d, ctx)?)))
}

/// CoreDNS's check: each key can sign one of the zones.
pub(crate) fn check_keys(
    keys: &[SigningKey],
    zones: &[String],
) -> Result<(), crate::dns::dnssec::KeyError> {
    for k in keys {
        let owner = lower_fqdn(&k.owner);
        if !zones.iter().any(|z| in_zone(z, &owner)) {
            return Err(crate::dns::dnssec::KeyError(format!(
                "key {owner} (keyid: {}) can not sign any of the zones",
                k.tag
            )));
        }
    }
    Ok(())
}

pub(crate) fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<Dnssec, ParseError> {
    d.next(); // "dnssec"
    let args = d.remaining_args();
    let zones = origins_from_args(d, &args, &ctx.zones())?;
    let mut keys: Vec<SigningKey> = Vec::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut capacity = DEFAULT_CAPACITY;
    while d.next_block() {
        match d.val() {
            "key" => {
                let args = d.remaining_args();
                let Some((source, files)) = args.split_first() else {
                    return Err(d.arg_err());
                };
                match source.as_str() {
                    "file" => {
                        if files.is_empty() {
                            return Err(d.arg_err());
                        }
                        for f in files {
                            let path = PathBuf::from(f);
                            let k = SigningKey::load(&path).map_err(|e| d.err(e.to_string()))?;
                            if let Some(dup) =
                                keys.iter().find(|o| o.tag == k.tag && o.public == k.public)
                            {
                                return Err(
                                    d.err(format!("key {} (keyid: {}) given twice", f, dup.tag))
                                );
                            }
                            keys.push(k);
                            paths.push(path);
                        }
                    }
                    "aws_secretsmanager" => {
                        return Err(d.err(
                            "key aws_secretsmanager is not supported by exdns: mount the key files (a Kubernetes Secret) and use key file",
                        ));
                    }
                    other => {
                        return Err(d.err(format!("unknown key source '{other}' (want file)")));
                    }
                }
            }
            "cache_capacity" => {
                let args = d.remaining_args();
                let [n] = args.as_slice() else {
                    return Err(d.arg_err());
                };
                // Go's strconv.Atoi wording.
                capacity = n
                    .parse::<i64>()
                    .map_err(|_| d.err(format!("strconv.Atoi: parsing {n:?}: invalid syntax")))?
                    .max(0) as u64;
            }
            _ => return Err(d.unknown_property()),
        }
    }
    if keys.is_empty() {
        return Err(d.err("no key: dnssec needs at least one `key file KEY`"));
    }
    check_keys(&keys, &zones).map_err(|e| d.err(e.to_string()))?;
    Ok(Dnssec::new(zones, keys, paths, capacity))
}
