//! Kubernetes label selectors (the `-l` / `labelSelector` string syntax) for
//! `serviceLabelSelectors`: a parser and a matcher.
//!
//! Supported requirements, comma-separated (all must hold):
//! `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1)`, `key`
//! (exists), `!key` (does not exist). An empty selector matches everything. Keys may carry a
//! DNS prefix (`app.kubernetes.io/name`). As in Kubernetes, `!=` and `notin` also match objects
//! that lack the label.

use std::collections::BTreeMap;
use std::fmt;

/// One parsed requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k).is_some_and(|l| l == v),
            Requirement::NotEquals(k, v) => labels.get(k).is_none_or(|l| l != v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed selector: every requirement must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Comma,
    Open,
    Close,
    Eq,
    DoubleEq,
    NotEq,
    Not,
    In,
    NotIn,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "'{s}'"),
            Token::Comma => f.write_str("','"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Eq => f.write_str("'='"),
            Token::DoubleEq => f.write_str("'=='"),
            Token::NotEq => f.write_str("'!='"),
            Token::Not => f.write_str("'!'"),
            Token::In => f.write_str("'in'"),
            Token::NotIn => f.write_str("'notin'"),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '<' | '>')
}

fn lex(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        match c {
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '=' => {
                chars.next();
                if chars.peek().is_some_and(|&(_, c)| c == '=') {
                    chars.next();
                    out.push(Token::DoubleEq);
                } else {
                    out.push(Token::Eq);
                }
            }
            '!' => {
                chars.next();
                if chars.peek().is_some_and(|&(_, c)| c == '=') {
                    chars.next();
                    out.push(Token::NotEq);
                } else {
                    out.push(Token::Not);
                }
            }
            '<' | '>' => {
                return Err(format!(
                    "operator '{c}' is not supported (only =, ==, !=, in, notin, exists and !)"
                ));
            }
            _ => {
                let start = i;
                let mut end = s.len();
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_whitespace() || is_special(c) {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                let word = &s[start..end];
                out.push(match word {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word.to_string()),
                });
            }
        }
    }
    Ok(out)
}

/// `[prefix/]name`: the prefix a DNS subdomain (≤ 253), the name 1..63 characters of
/// `[A-Za-z0-9-_.]` starting and ending with an alphanumeric.
fn validate_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!("invalid label key '{k}': bad prefix '{p}'"));
        }
    }
    if name.is_empty() || name.len() > 63 || !valid_name_part(name) {
        return Err(format!(
            "invalid label key '{k}': the name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// A label value: empty, or up to 63 characters of `[A-Za-z0-9-_.]` starting and ending with
/// an alphanumeric.
fn validate_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !valid_name_part(v) {
        return Err(format!(
            "invalid label value '{v}': must be at most 63 characters of [A-Za-z0-9-_.], starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

fn valid_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.last().is_some_and(|c| c.is_ascii_alphanumeric())
}

impl Selector {
    /// Parses a selector string. Errors name the offending token.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let toks = lex(s)?;
        let mut reqs = Vec::new();
        let mut i = 0;
        let at = |i: usize| toks.get(i);
        while i < toks.len() {
            let req = match &toks[i] {
                Token::Not => {
                    i += 1;
                    match at(i) {
                        Some(Token::Ident(k)) => {
                            validate_key(k)?;
                            i += 1;
                            Requirement::DoesNotExist(k.clone())
                        }
                        Some(t) => {
                            return Err(format!("expected a label key after '!', found {t}"));
                        }
                        None => return Err("expected a label key after '!'".to_string()),
                    }
                }
                Token::Ident(k) => {
                    validate_key(k)?;
                    let key = k.clone();
                    i += 1;
                    match at(i) {
                        None | Some(Token::Comma) => Requirement::Exists(key),
                        Some(op @ (Token::Eq | Token::DoubleEq | Token::NotEq)) => {
                            let neg = *op == Token::NotEq;
                            i += 1;
                            let value = match at(i) {
                                Some(Token::Ident(v)) => {
                                    i += 1;
                                    v.clone()
                                }
                                // `a=` (empty value) is valid.
                                None | Some(Token::Comma) => String::new(),
                                Some(t) => {
                                    return Err(format!(
                                        "expected a value after {op} for key '{key}', found {t}"
                                    ));
                                }
                            };
                            validate_value(&value)?;
                            if neg {
                                Requirement::NotEquals(key, value)
                            } else {
                                Requirement::Equals(key, value)
                            }
                        }
                        Some(op @ (Token::In | Token::NotIn)) => {
                            let negate = *op == Token::NotIn;
                            i += 1;
                            if at(i) != Some(&Token::Open) {
                                return Err(format!("expected '(' after {op} for key '{key}'"));
                            }
                            i += 1;
                            let mut values = Vec::new();
                            loop {
                                match at(i) {
                                    Some(Token::Ident(v)) => {
                                        validate_value(v)?;
                                        values.push(v.clone());
                                        i += 1;
                                    }
                                    Some(Token::Close) if values.is_empty() => {
                                        return Err(format!(
                                            "the set of values for {op} on key '{key}' can't be empty"
                                        ));
                                    }
                                    Some(t) => {
                                        return Err(format!(
                                            "expected a value in the set for key '{key}', found {t}"
                                        ));
                                    }
                                    None => {
                                        return Err(format!(
                                            "unterminated value set for key '{key}': missing ')'"
                                        ));
                                    }
                                }
                                match at(i) {
                                    Some(Token::Comma) => i += 1,
                                    Some(Token::Close) => {
                                        i += 1;
                                        break;
                                    }
                                    Some(t) => {
                                        return Err(format!(
                                            "expected ',' or ')' in the set for key '{key}', found {t}"
                                        ));
                                    }
                                    None => {
                                        return Err(format!(
                                            "unterminated value set for key '{key}': missing ')'"
                                        ));
                                    }
                                }
                            }
                            if negate {
                                Requirement::NotIn(key, values)
                            } else {
                                Requirement::In(key, values)
                            }
                        }
                        Some(t) => {
                            return Err(format!("unexpected {t} after label key '{key}'"));
                        }
                    }
                }
                t => return Err(format!("expected a label key, found {t}")),
            };
            reqs.push(req);
            match at(i) {
                None => {}
                Some(Token::Comma) => {
                    i += 1;
                    if i == toks.len() {
                        return Err("expected a requirement after ','".to_string());
                    }
                }
                Some(t) => return Err(format!("expected ',' between requirements, found {t}")),
            }
        }
        Ok(Selector { requirements: reqs })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// Whether `labels` match any of `selectors` (an empty list keeps everything). A selector that
/// does not parse is an error.
pub fn matches_any(
    selectors: &[String],
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    if selectors.is_empty() {
        return Ok(true);
    }
    let mut any = false;
    for s in selectors {
        let sel = Selector::parse(s).map_err(|e| format!("label selector \"{s}\": {e}"))?;
        any |= sel.matches(labels);
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        use Requirement::*;
        let s = Selector::parse(
            "a=b, c==d,e!=f, g in (x, y), h notin (z), app.kubernetes.io/name, !tier",
        )
        .unwrap();
        assert_eq!(
            s.requirements,
            vec![
                Equals("a".into(), "b".into()),
                Equals("c".into(), "d".into()),
                NotEquals("e".into(), "f".into()),
                In("g".into(), vec!["x".into(), "y".into()]),
                NotIn("h".into(), vec!["z".into()]),
                Exists("app.kubernetes.io/name".into()),
                DoesNotExist("tier".into()),
            ]
        );
        assert_eq!(
            Selector::parse("a=").unwrap().requirements,
            vec![Equals("a".into(), String::new())]
        );
        assert!(Selector::parse("").unwrap().requirements.is_empty());
        assert!(Selector::parse("   ").unwrap().requirements.is_empty());
    }

    #[test]
    fn matches_table() {
        let l = labels(&[("app", "web"), ("env", "prod"), ("tier", "front")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("env in (prod, staging)", true),
            ("env in (staging)", false),
            ("missing in (x)", false),
            ("env notin (staging)", true),
            ("env notin (prod)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,env=prod", true),
            ("app=web,env=dev", false),
            ("app=web, env in (prod), !canary, tier!=back", true),
            ("app in (web,api),env notin (prod)", false),
        ];
        for (sel, want) in cases {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), *want, "selector {sel:?}");
        }
    }

    #[test]
    fn rejects_bad_selectors() {
        let cases: &[(&str, &str)] = &[
            (
                "a in ()",
                "the set of values for 'in' on key 'a' can't be empty",
            ),
            ("a in (x", "unterminated value set for key 'a': missing ')'"),
            ("a in x", "expected '(' after 'in' for key 'a'"),
            ("a=b,", "expected a requirement after ','"),
            (",a", "expected a label key, found ','"),
            ("a b", "unexpected 'b' after label key 'a'"),
            ("!", "expected a label key after '!'"),
            (
                "a>1",
                "operator '>' is not supported (only =, ==, !=, in, notin, exists and !)",
            ),
            ("a=(", "expected a value after '=' for key 'a', found '('"),
            (
                "-a=b",
                "invalid label key '-a': the name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending with an alphanumeric",
            ),
            (
                "Bad_Prefix/a=b",
                "invalid label key 'Bad_Prefix/a': bad prefix 'Bad_Prefix'",
            ),
            ("a=b c", "expected ',' between requirements, found 'c'"),
        ];
        for (sel, want) in cases {
            assert_eq!(Selector::parse(sel).unwrap_err(), *want, "selector {sel:?}");
        }
        let long = format!("a={}", "v".repeat(64));
        assert!(
            Selector::parse(&long)
                .unwrap_err()
                .starts_with("invalid label value")
        );
    }

    #[test]
    fn any_of_several_selectors() {
        let l = labels(&[("app", "web")]);
        assert!(matches_any(&[], &l).unwrap());
        assert!(matches_any(&["app=api".into(), "app=web".into()], &l).unwrap());
        assert!(!matches_any(&["app=api".into(), "env=prod".into()], &l).unwrap());
        assert_eq!(
            matches_any(&["a in (".into()], &l).unwrap_err(),
            "label selector \"a in (\": unterminated value set for key 'a': missing ')'"
        );
    }
}
