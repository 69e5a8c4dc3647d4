//! `cookie [off] { secret HEX; staging_secret HEX...; secret_file FILE }`.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::dns::cookie::{Cookies, Secret, parse_secret};
use crate::plugin::config::CookiePolicy;
use crate::plugin::{Plugin, SetupCtx};

/// Records the block's cookie policy; adds no handler.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "cookie"
    let args = d.remaining_args();
    let off = match args.as_slice() {
        [] => false,
        [a] if a == "off" => true,
        [a] => return Err(d.err(format!("unknown argument '{a}' (expected 'off')"))),
        _ => return Err(d.arg_err()),
    };
    let mut secrets: Vec<Secret> = Vec::new();
    let mut staging: Vec<Secret> = Vec::new();
    while d.next_block() {
        if off {
            return Err(d.err("cookie off takes no block"));
        }
        match d.val() {
            "secret" => {
                let args = d.remaining_args();
                let [hex] = args.as_slice() else {
                    return Err(d.arg_err());
                };
                if !secrets.is_empty() {
                    return Err(d.err("only one active cookie secret (secret or secret_file)"));
                }
                secrets.push(secret(d, hex)?);
            }
            "staging_secret" => {
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.arg_err());
                }
                for hex in &args {
                    staging.push(secret(d, hex)?);
                }
            }
            "secret_file" => {
                let args = d.remaining_args();
                let [file] = args.as_slice() else {
                    return Err(d.arg_err());
                };
                if !secrets.is_empty() {
                    return Err(d.err("only one active cookie secret (secret or secret_file)"));
                }
                let text = std::fs::read_to_string(file)
                    .map_err(|e| d.err(format!("cookie secret_file {file}: {e}")))?;
                let mut lines = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'));
                let Some(first) = lines.next() else {
                    return Err(d.err(format!("cookie secret_file {file}: no secret in it")));
                };
                secrets.push(secret(d, first)?);
                for l in lines {
                    staging.push(secret(d, l)?);
                }
            }
            _ => return Err(d.unknown_property()),
        }
    }
    ctx.config.cookie = match (off, secrets.first()) {
        (true, _) => CookiePolicy::Off,
        (false, Some(active)) => CookiePolicy::On(Arc::new(Cookies::new(*active, &staging, true))),
        (false, None) if !staging.is_empty() => {
            return Err(d.err("staging_secret needs a secret (or secret_file) to be active"));
        }
        (false, None) => CookiePolicy::Default,
    };
    Ok(None)
}

/// A secret as the Corefile spells it; the error never repeats the value (secrets stay out of
/// logs).
fn secret(d: &Dispenser, hex: &str) -> Result<Secret, ParseError> {
    parse_secret(hex).ok_or_else(|| {
        d.err("invalid cookie secret: 32 hexadecimal digits (128 bits) are expected")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::cookie::{COOKIE, ReplyCookie, Verdict};
    use crate::plugin::test_chain::config_of;

    /// RFC 9018 A.4: the active secret and the one before it, now staging.
    const ACTIVE: &str = "445536bcd2513298075a5d379663c962";
    const OLD: &str = "dd3bdf9344b678b185a6f5cb60fca715";

    fn policy(text: &str) -> Result<String, String> {
        Ok(match config_of(setup, text)?.cookie {
            CookiePolicy::Default => "default".into(),
            CookiePolicy::Off => "off".into(),
            CookiePolicy::On(c) => format!("{c:?}"),
        })
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The configured secrets at work: RFC 9018 A.4's query (made with the old secret) is
    /// valid and answered with a cookie from the active one.
    fn answers_rfc_9018_a4(text: &str) {
        let CookiePolicy::On(c) = config_of(setup, text).unwrap().cookie else {
            panic!("{text}: not on");
        };
        let mut opt = COOKIE.to_be_bytes().to_vec();
        opt.extend_from_slice(&[0, 24]);
        opt.extend_from_slice(&hex("22681ab97d52c298010000005cf7c57926556bd0934c72f8"));
        let v = (*c).clone().at_time(1559741961).judge(
            &opt,
            "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap(),
            true,
        );
        let want = hex("22681ab97d52c298010000005cf7c609a6bb79d16625507a");
        let want = ReplyCookie {
            bytes: want.try_into().unwrap(),
            valid: true,
        };
        assert_eq!(v, Verdict::Answer(want), "{text}");
    }

    #[test]
    fn policies() {
        assert_eq!(policy("cookie").unwrap(), "default");
        assert_eq!(policy("cookie off").unwrap(), "off");
        let text = format!("cookie {{\n secret {ACTIVE}\n staging_secret {OLD}\n}}");
        assert_eq!(
            policy(&text).unwrap(),
            "Cookies { secrets: 2, badcookie: true, .. }"
        );
        answers_rfc_9018_a4(&text);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cookie.secret");
        std::fs::write(&f, format!("# active first\n{ACTIVE}\n\n{OLD}\n")).unwrap();
        answers_rfc_9018_a4(&format!("cookie {{\n secret_file {}\n}}", f.display()));
    }

    #[test]
    fn errors() {
        for (text, want) in [
            (
                "cookie on",
                "Corefile:1 - Error during parsing: unknown argument 'on' (expected 'off')",
            ),
            (
                "cookie off on",
                "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'on'",
            ),
            (
                "cookie off {\n secret e5e973e5a6b2a43f48e7dc849e37bfcf\n}",
                "Corefile:2 - Error during parsing: cookie off takes no block",
            ),
            (
                "cookie {\n secret 1234\n}",
                "Corefile:2 - Error during parsing: invalid cookie secret: 32 hexadecimal digits (128 bits) are expected",
            ),
            (
                "cookie {\n secret\n}",
                "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'secret'",
            ),
            (
                "cookie {\n staging_secret e5e973e5a6b2a43f48e7dc849e37bfcf\n}",
                "Corefile:3 - Error during parsing: staging_secret needs a secret (or secret_file) to be active",
            ),
            (
                "cookie {\n secret_file /nonexistent/cookie\n}",
                "Corefile:2 - Error during parsing: cookie secret_file /nonexistent/cookie: No such file or directory (os error 2)",
            ),
            (
                "cookie {\n lifetime 1h\n}",
                "Corefile:2 - Error during parsing: unknown property 'lifetime'",
            ),
        ] {
            assert_eq!(policy(text).unwrap_err(), want, "{text}");
        }
    }
}
