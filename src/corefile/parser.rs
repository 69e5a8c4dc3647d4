//! Builds server blocks from tokens: braces, snippets, `import`, `{$ENV}`.

use std::path::Path;

use super::{Corefile, ParseError};

/// Reads and parses a Corefile from disk (imports resolved relative to it).
pub fn parse_file(_path: &Path, _dns_port: u16) -> Result<Corefile, ParseError> {
    todo!("parser")
}

/// Parses Corefile text; `file` names it in errors and is the base for relative imports.
pub fn parse_str(_text: &str, _file: &Path, _dns_port: u16) -> Result<Corefile, ParseError> {
    todo!("parser")
}
