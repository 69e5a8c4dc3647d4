//! Corefile parsing: lexer, parser (server blocks, `import`, snippets, `{$ENV}`), server keys and
//! the [`Dispenser`] every plugin's setup reads its directive from.
//!
//! The grammar and the error wording follow CoreDNS (Caddy v1's parser); see docs/corefile.md.

mod dispenser;
mod keys;
mod lexer;
mod parser;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use dispenser::Dispenser;
pub(crate) use keys::reverse_zones;
pub use keys::{Key, Scheme, parse_key};
pub use lexer::{Token, tokenize};
pub use parser::{parse_file, parse_str, validate_directives};

/// The Corefile CoreDNS serves when none is given and `./Corefile` does not exist (port 53).
pub const DEFAULT_COREFILE: &str = ".:53 {\n    whoami\n    log\n}\n";

/// The default Corefile for the `-dns.port` value, as CoreDNS builds it: `.:PORT { whoami log }`.
pub fn default_corefile(dns_port: u16) -> String {
    format!(".:{dns_port} {{\n    whoami\n    log\n}}\n")
}

/// A parsed Corefile: its server blocks in file order (after `import` and snippet expansion).
#[derive(Debug, Clone)]
pub struct Corefile {
    /// The file it was read from (`<default>` or `<stdin>`-like labels for inline text).
    pub path: PathBuf,
    pub blocks: Vec<ServerBlock>,
}

/// `KEY [KEY...] { directives }`.
#[derive(Debug, Clone)]
pub struct ServerBlock {
    pub keys: Vec<Key>,
    /// Directives in file order. Each entry is one occurrence of one directive.
    pub directives: Vec<Directive>,
    pub file: Arc<str>,
    pub line: usize,
}

/// One occurrence of a directive: its name token and every token up to the end of its line,
/// including a nested `{ ... }` block (the `{` and `}` are tokens of their own).
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    /// All tokens, the name first.
    pub tokens: Vec<Token>,
}

impl Directive {
    pub fn file(&self) -> &str {
        &self.tokens[0].file
    }
    pub fn line(&self) -> usize {
        self.tokens[0].line
    }
    /// A dispenser over this directive's tokens, for a plugin named `plugin`.
    pub fn dispenser(&self) -> Dispenser {
        Dispenser::new(self.tokens.clone())
    }
}

/// A Corefile error, already worded as CoreDNS words it (`FILE:LINE - Error during parsing: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(file: impl Into<String>, line: usize, message: impl Into<String>) -> Self {
        ParseError {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} - Error during parsing: {}",
            self.file, self.line, self.message
        )
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests;
