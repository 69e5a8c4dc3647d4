//! The token cursor a plugin's setup reads its directive with; Caddy v1's `Dispenser` semantics,
//! so setups port line for line from CoreDNS.

use super::{ParseError, Token};

/// A cursor over one directive's tokens (the directive name first).
///
/// Like Caddy's: the cursor starts before the first token; `next()` loads it.
#[derive(Debug, Clone)]
pub struct Dispenser {
    tokens: Vec<Token>,
    cursor: isize,
    nesting: usize,
}

impl Dispenser {
    pub fn new(tokens: Vec<Token>) -> Self {
        Dispenser {
            tokens,
            cursor: -1,
            nesting: 0,
        }
    }

    /// Loads the next token, wherever it is. False at the end.
    #[allow(clippy::should_implement_trait)] // Caddy's name; not an iterator
    pub fn next(&mut self) -> bool {
        if self.cursor < self.tokens.len() as isize - 1 {
            self.cursor += 1;
            true
        } else {
            false
        }
    }

    /// Loads the next token if it is on the same line as the current one.
    pub fn next_arg(&mut self) -> bool {
        if self.cursor < 0 {
            self.cursor += 1;
            return !self.tokens.is_empty();
        }
        let c = self.cursor as usize;
        if c + 1 < self.tokens.len() {
            let cur = &self.tokens[c];
            let nxt = &self.tokens[c + 1];
            // Inside a block, a `}` on the same line closes it (`log { class error }`), as
            // CoreDNS accepts; it is never an argument.
            if self.nesting > 0 && nxt.is_close_brace() {
                return false;
            }
            if cur.file == nxt.file && cur.line + cur.line_breaks() == nxt.line {
                self.cursor += 1;
                return true;
            }
        }
        false
    }

    /// Moves to the first token of the next line of the current block, opening the block if the
    /// current line ends in `{`. False when the block closes (or there is none).
    pub fn next_block(&mut self) -> bool {
        if self.nesting > 0 {
            if !self.next() {
                return false;
            }
            if self.is_close() {
                self.nesting -= 1;
                return false;
            }
            return true;
        }
        if !self.next_arg() {
            return false;
        }
        if !self.is_open() {
            self.cursor -= 1;
            return false;
        }
        if !self.next() {
            return false;
        }
        if self.is_close() {
            return false;
        }
        self.nesting += 1;
        true
    }

    /// Every remaining argument on the current line, stopping before a `{`.
    pub fn remaining_args(&mut self) -> Vec<String> {
        let mut args = Vec::new();
        while self.next_arg() {
            if self.is_open() {
                self.cursor -= 1;
                break;
            }
            args.push(self.val().to_string());
        }
        args
    }

    /// The current token is an (unquoted) `{`.
    fn is_open(&self) -> bool {
        self.token().is_some_and(Token::is_open_brace)
    }

    /// The current token is an (unquoted) `}`.
    fn is_close(&self) -> bool {
        self.token().is_some_and(Token::is_close_brace)
    }

    /// The current token's text ("" before the first `next`).
    pub fn val(&self) -> &str {
        self.token().map(|t| t.text.as_str()).unwrap_or("")
    }

    pub fn token(&self) -> Option<&Token> {
        if self.cursor < 0 {
            None
        } else {
            self.tokens.get(self.cursor as usize)
        }
    }

    pub fn line(&self) -> usize {
        self.token()
            .or(self.tokens.first())
            .map(|t| t.line)
            .unwrap_or(0)
    }

    pub fn file(&self) -> &str {
        self.token()
            .or(self.tokens.first())
            .map(|t| &*t.file)
            .unwrap_or("")
    }

    /// Whether a nested block is open.
    pub fn nesting(&self) -> usize {
        self.nesting
    }

    /// `Wrong argument count or unexpected line ending after 'VAL'`, at the current token.
    pub fn arg_err(&self) -> ParseError {
        self.err(format!(
            "Wrong argument count or unexpected line ending after '{}'",
            self.val()
        ))
    }

    /// `unknown property 'VAL'`, at the current token.
    pub fn unknown_property(&self) -> ParseError {
        self.err(format!("unknown property '{}'", self.val()))
    }

    /// An error at the current token: `FILE:LINE - Error during parsing: MSG`.
    pub fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.file(), self.line(), msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn toks(spec: &[(&str, usize)]) -> Vec<Token> {
        let f: Arc<str> = Arc::from("Corefile");
        spec.iter()
            .map(|(t, l)| Token {
                text: t.to_string(),
                file: f.clone(),
                line: *l,
                quoted: false,
            })
            .collect()
    }

    #[test]
    fn args_stop_at_line_end_and_brace() {
        let mut d = Dispenser::new(toks(&[
            ("forward", 1),
            (".", 1),
            ("1.1.1.1", 1),
            ("{", 1),
            ("max_fails", 2),
            ("3", 2),
            ("}", 3),
        ]));
        assert!(d.next());
        assert_eq!(d.val(), "forward");
        assert_eq!(d.remaining_args(), vec![".", "1.1.1.1"]);
        assert!(d.next_block());
        assert_eq!(d.val(), "max_fails");
        assert_eq!(d.remaining_args(), vec!["3"]);
        assert!(!d.next_block());
        assert!(!d.next());
    }

    #[test]
    fn empty_block_and_no_block() {
        let mut d = Dispenser::new(toks(&[("cache", 1), ("{", 1), ("}", 1)]));
        d.next();
        assert!(!d.next_block());
        let mut d = Dispenser::new(toks(&[("cache", 1), ("30", 1)]));
        d.next();
        assert!(!d.next_block());
        assert!(d.next_arg());
        assert_eq!(d.val(), "30");
    }

    #[test]
    fn a_block_closing_on_its_own_line_ends_the_arguments() {
        // `log { class error }` on one line, as the pod-gateway chart writes it.
        let mut d = Dispenser::new(toks(&[
            ("log", 1),
            ("{", 1),
            ("class", 1),
            ("error", 1),
            ("}", 1),
        ]));
        d.next();
        assert!(d.next_block());
        assert_eq!(d.val(), "class");
        assert_eq!(d.remaining_args(), vec!["error"]);
        assert!(!d.next_block());
        assert!(!d.next());
    }

    #[test]
    fn errors_carry_file_and_line() {
        let mut d = Dispenser::new(toks(&[("cache", 4), ("{", 4), ("bogus", 5), ("}", 6)]));
        d.next();
        assert!(d.next_block());
        assert_eq!(
            d.unknown_property().to_string(),
            "Corefile:5 - Error during parsing: unknown property 'bogus'"
        );
        assert_eq!(
            d.arg_err().to_string(),
            "Corefile:5 - Error during parsing: Wrong argument count or unexpected line ending after 'bogus'"
        );
    }
}
