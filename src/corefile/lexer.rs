//! Splits Corefile text into tokens (CoreDNS/Caddy lexer rules).

use std::sync::Arc;

/// One token with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// The file the token was read from (for error messages).
    pub file: Arc<str>,
    /// The line the token starts on (1-based).
    pub line: usize,
    /// Whether the token was quoted (a quoted `{` is not a brace).
    pub quoted: bool,
}

impl Token {
    /// Newlines inside the token (a quoted token may span lines).
    pub fn line_breaks(&self) -> usize {
        if self.quoted {
            self.text.matches('\n').count()
        } else {
            0
        }
    }
}

/// Tokenizes `input`, labelling tokens with `file`.
pub fn tokenize(_input: &str, _file: &Arc<str>) -> Vec<Token> {
    todo!("lexer")
}
