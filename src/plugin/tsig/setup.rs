//! Corefile parsing for `tsig`, as CoreDNS's setup parses it (its wording): `secret` and
//! `secrets` may repeat (a key defined twice is an error), `require` and `require_opcode`
//! replace what an earlier one set, `require` takes miekg/dns's type mnemonics (upper case)
//! and `require_opcode` QUERY, IQUERY, STATUS, NOTIFY, UPDATE. Unlike CoreDNS, which reports
//! every error as a wrong argument count and would only fail on a bad secret when a request
//! uses it, exdns reports the error itself and checks at setup that each secret is base64 and
//! each key file's `algorithm` is one it implements (the key is then restricted to it;
//! CoreDNS ignores it). Keys are global to the block's zones in CoreDNS; here they belong to
//! the block's `tsig` (one per block).

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::dns::tsig::{Algorithm, Key, Keyring, parse_key_file};
use crate::plugin::names::type_from_mnemonic;
use crate::plugin::util::io_error_text;
use crate::plugin::zones::origins_from_args;
use crate::plugin::{Plugin, SetupCtx};

use super::{Require, Tsig};

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    Ok(Some(Arc::new(parse(d, ctx)?)))
}

/// miekg/dns's `StringToOpcode`.
fn opcode_from_mnemonic(s: &str) -> Option<u8> {
    Some(match s {
        "QUERY" => 0,
        "IQUERY" => 1,
        "STATUS" => 2,
        "NOTIFY" => 4,
        "UPDATE" => 5,
        _ => return None,
    })
}

pub(crate) fn parse(d: &mut Dispenser, ctx: &SetupCtx<'_>) -> Result<Tsig, ParseError> {
    d.next(); // "tsig"
    let args = d.remaining_args();
    let zones = origins_from_args(d, &args, &ctx.zones())?;
    let mut keys: Vec<Key> = Vec::new();
    let mut require = Require::default();
    let add = |d: &Dispenser, keys: &mut Vec<Key>, key: Key| -> Result<(), ParseError> {
        if keys.iter().any(|k| k.name() == key.name()) {
            return Err(d.err(format!("key {:?} redefined", key.name())));
        }
        keys.push(key);
        Ok(())
    };
    while d.next_block() {
        match d.val() {
            "secret" => {
                let args = d.remaining_args();
                let [name, secret] = args.as_slice() else {
                    // CoreDNS's wording, but after `secret`: the last token may be the key.
                    return Err(
                        d.err("Wrong argument count or unexpected line ending after 'secret'")
                    );
                };
                let key = Key::new(name, None, secret).map_err(|e| d.err(e.to_string()))?;
                add(d, &mut keys, key)?;
            }
            "secrets" => {
                let args = d.remaining_args();
                let [file] = args.as_slice() else {
                    return Err(d.arg_err());
                };
                let text = std::fs::read_to_string(file)
                    .map_err(|e| d.err(format!("open {file}: {}", io_error_text(&e))))?;
                for entry in parse_key_file(&text).map_err(|e| d.err(e))? {
                    let algorithm = match entry.algorithm.as_deref() {
                        None => None,
                        Some(a) => Some(Algorithm::from_name(a).ok_or_else(|| {
                            d.err(format!("unknown algorithm {a:?} for key {:?}", entry.name))
                        })?),
                    };
                    let key = Key::new(&entry.name, algorithm, &entry.secret)
                        .map_err(|e| d.err(e.to_string()))?;
                    add(d, &mut keys, key)?;
                }
            }
            "require" => {
                require.types.clear();
                let args = d.remaining_args();
                let Some(first) = args.first() else {
                    return Err(d.arg_err());
                };
                if first == "all" {
                    require.all_types = true;
                    continue;
                }
                if first == "none" {
                    continue;
                }
                for a in &args {
                    let t = type_from_mnemonic(a)
                        .ok_or_else(|| d.err(format!("unknown query type '{a}'")))?;
                    let t = u16::from(t);
                    if !require.types.contains(&t) {
                        require.types.push(t);
                    }
                }
            }
            "require_opcode" => {
                require.opcodes.clear();
                let args = d.remaining_args();
                let Some(first) = args.first() else {
                    return Err(d.arg_err());
                };
                if first == "all" {
                    require.all_opcodes = true;
                    continue;
                }
                if first == "none" {
                    continue;
                }
                for a in &args {
                    let op = opcode_from_mnemonic(a)
                        .ok_or_else(|| d.err(format!("unknown opcode '{a}'")))?;
                    if !require.opcodes.contains(&op) {
                        require.opcodes.push(op);
                    }
                }
            }
            // A key pasted on a line of its own is not quoted back.
            p if p.len() <= 32 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                return Err(d.unknown_property());
            }
            _ => return Err(d.err("unknown property (not shown: it may be a secret)")),
        }
    }
    Ok(Tsig {
        zones,
        keys: Keyring::new(keys),
        require,
    })
}
