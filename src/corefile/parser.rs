//! Builds server blocks from tokens: braces, snippets, `import`, `{$ENV}`.
//!
//! This follows Caddy v1's `caddyfile` parser, which CoreDNS uses:
//! - a server block is `KEY [KEY...] { directives }`; keys may be separated by spaces or commas
//!   and continue on the next line after a trailing comma; a file holding a single block may leave
//!   out the braces;
//! - a directive is its name and the rest of its line; a `{` opens a nested block that runs to the
//!   matching `}` (depth counted), and those tokens belong to the directive;
//! - `(name) { ... }` defines a snippet; `import name` pulls in a snippet defined earlier, and
//!   `import PATTERN` the tokens of a file (relative to the importing file) or of every file a glob
//!   matches; `import` may appear where a server block or a directive may start, or at the start
//!   of a line inside a directive's block;
//! - `{$VAR}` and `{%VAR%}` are replaced by the environment variable (unset: empty).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::keys::{Key, parse_key};
use super::lexer::{Token, tokenize};
use super::{Corefile, Directive, ParseError, ServerBlock};

/// Expansions of snippets (and, separately, of file imports) allowed in one parse, as CoreDNS.
const MAX_EXPANSIONS: usize = 1000;

/// Reads and parses a Corefile from disk (imports resolved relative to it).
pub fn parse_file(path: &Path, dns_port: u16) -> Result<Corefile, ParseError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ParseError::new(
            path.display().to_string(),
            0,
            format!("Could not read {}: {e}", path.display()),
        )
    })?;
    parse_str(&text, path, dns_port)
}

/// Parses Corefile text; `file` names it in errors and is the base for relative imports.
pub fn parse_str(text: &str, file: &Path, dns_port: u16) -> Result<Corefile, ParseError> {
    parse_with_env(text, file, dns_port, &env_var)
}

/// `Unknown directive 'NAME'` for the first directive `known` rejects, in file order.
pub fn validate_directives(cf: &Corefile, known: impl Fn(&str) -> bool) -> Result<(), ParseError> {
    for block in &cf.blocks {
        for d in &block.directives {
            if !known(&d.name) {
                return Err(ParseError::new(
                    d.file(),
                    d.line(),
                    format!("Unknown directive '{}'", d.name),
                ));
            }
        }
    }
    Ok(())
}

fn env_var(name: &str) -> Option<String> {
    // Names the OS cannot hold are simply unset (and must not reach getenv).
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    std::env::var(name).ok()
}

/// Replaces `{$VAR}` and `{%VAR%}` in `s` (one pass; replaced text is not scanned again).
pub(crate) fn replace_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains("{$") && !s.contains("{%") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(off) = s[i..].find('{') {
        let at = i + off;
        out.push_str(&s[i..at]);
        let tail = &s[at..];
        let found = if let Some(body) = tail.strip_prefix("{$") {
            body.find('}')
                .filter(|&j| j > 0)
                .map(|j| (&body[..j], 2 + j + 1))
        } else if let Some(body) = tail.strip_prefix("{%") {
            body.find("%}")
                .filter(|&j| j > 0)
                .map(|j| (&body[..j], 2 + j + 2))
        } else {
            None
        };
        match found {
            Some((name, len)) => {
                out.push_str(&env(name).unwrap_or_default());
                i = at + len;
            }
            None => {
                out.push('{');
                i = at + 1;
            }
        }
    }
    out.push_str(&s[i..]);
    out
}

/// Where a run of tokens came from: the root file, an imported file or an expanded snippet, with
/// the chain of imports that led there (for cycle detection).
#[derive(Debug)]
struct Origin {
    kind: OriginKind,
    parent: Option<Rc<Origin>>,
}

#[derive(Debug, PartialEq, Eq)]
enum OriginKind {
    /// A file: its canonical path (when it has one) and how to name it.
    File {
        canon: Option<PathBuf>,
        label: String,
    },
    Snippet(String),
}

impl Origin {
    fn ancestors(self: &Rc<Self>) -> impl Iterator<Item = &Origin> {
        std::iter::successors(Some(&**self), |o| o.parent.as_deref())
    }

    fn has_file(self: &Rc<Self>, canon: &Path) -> bool {
        self.ancestors()
            .any(|o| matches!(&o.kind, OriginKind::File { canon: Some(c), .. } if c == canon))
    }

    fn has_snippet(self: &Rc<Self>, name: &str) -> bool {
        self.ancestors()
            .any(|o| matches!(&o.kind, OriginKind::Snippet(n) if n == name))
    }

    /// `Corefile -> /etc/a.conf -> snippet 'x' -> NEXT`.
    fn cycle(self: &Rc<Self>, next: &str) -> String {
        let mut names: Vec<String> = self
            .ancestors()
            .map(|o| match &o.kind {
                OriginKind::File { label, .. } => label.clone(),
                OriginKind::Snippet(n) => format!("snippet '{n}'"),
            })
            .collect();
        names.reverse();
        names.push(next.to_string());
        format!("Import cycle detected: {}", names.join(" -> "))
    }
}

/// A token during parsing.
#[derive(Debug, Clone)]
struct Tok {
    /// Text already has `{$VAR}` replaced.
    tok: Token,
    /// Brace-ness is decided on the text as written: `{$X}` is never a brace, nor is `"{"`.
    open: bool,
    close: bool,
    origin: Rc<Origin>,
}

fn make_toks(
    tokens: Vec<Token>,
    origin: &Rc<Origin>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Tok> {
    tokens
        .into_iter()
        .map(|mut tok| {
            let open = tok.is_open_brace();
            let close = tok.is_close_brace();
            tok.text = replace_env(&tok.text, env);
            Tok {
                tok,
                open,
                close,
                origin: origin.clone(),
            }
        })
        .collect()
}

/// A block as parsed, before its keys are normalised.
struct RawBlock {
    keys: Vec<Token>,
    directives: Vec<Directive>,
}

struct Parser<'e> {
    toks: Vec<Tok>,
    pos: usize,
    snippets: HashMap<String, Vec<Tok>>,
    snippet_expansions: usize,
    file_expansions: usize,
    env: &'e dyn Fn(&str) -> Option<String>,
}

pub(crate) fn parse_with_env(
    text: &str,
    file: &Path,
    dns_port: u16,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Corefile, ParseError> {
    let label = file.display().to_string();
    let root = Rc::new(Origin {
        kind: OriginKind::File {
            canon: std::fs::canonicalize(file).ok(),
            label: label.clone(),
        },
        parent: None,
    });
    let file_arc: Arc<str> = Arc::from(label.as_str());
    let mut p = Parser {
        toks: make_toks(tokenize(text, &file_arc), &root, env),
        pos: 0,
        snippets: HashMap::new(),
        snippet_expansions: 0,
        file_expansions: 0,
        env,
    };
    let raw = p.parse_all()?;
    let blocks = normalize_blocks(raw, dns_port)?;
    Ok(Corefile {
        path: file.to_path_buf(),
        blocks,
    })
}

/// Parses every key and rejects a scheme+zone+port served twice.
///
/// Blocks that use `bind` are left out of the duplicate check: CoreDNS allows the same zone in
/// several blocks bound to different addresses, so the server checks those with the addresses.
/// So are blocks with a `view`, which may share their zone and port with any block (the server
/// still refuses two without a view).
fn normalize_blocks(raw: Vec<RawBlock>, dns_port: u16) -> Result<Vec<ServerBlock>, ParseError> {
    let mut seen = HashSet::new();
    let mut blocks = Vec::with_capacity(raw.len());
    for rb in raw {
        let has_bind = rb
            .directives
            .iter()
            .any(|d| d.name == "bind" || d.name == "view");
        let mut keys: Vec<Key> = Vec::new();
        for kt in &rb.keys {
            let parsed = parse_key(&kt.text, dns_port)
                .map_err(|m| ParseError::new(&*kt.file, kt.line, m))?;
            for k in parsed {
                if !has_bind && !seen.insert((k.scheme, k.zone.clone(), k.port)) {
                    return Err(ParseError::new(
                        &*kt.file,
                        kt.line,
                        format!("cannot serve {k} - it is already defined"),
                    ));
                }
                keys.push(k);
            }
        }
        let first = &rb.keys[0];
        blocks.push(ServerBlock {
            keys,
            directives: rb.directives,
            file: first.file.clone(),
            line: first.line,
        });
    }
    Ok(blocks)
}

impl Parser<'_> {
    fn err_at(&self, i: usize, msg: impl Into<String>) -> ParseError {
        match self.toks.get(i).or(self.toks.last()) {
            Some(t) => ParseError::new(&*t.tok.file, t.tok.line, msg),
            None => ParseError::new("", 0, msg),
        }
    }

    /// `Unexpected EOF`, reported at the last token (as Caddy does).
    fn eof_err(&self) -> ParseError {
        match self.toks.last() {
            Some(t) => ParseError::new(&*t.tok.file, t.tok.line, "Unexpected EOF"),
            None => ParseError::new("", 0, "Unexpected EOF"),
        }
    }

    /// Whether token `i` starts a line: it is the first token, comes from another file or
    /// expansion than the one before it, or sits on a later line.
    fn is_new_line(&self, i: usize) -> bool {
        if i == 0 {
            return true;
        }
        let (a, b) = (&self.toks[i - 1], &self.toks[i]);
        !Rc::ptr_eq(&a.origin, &b.origin)
            || a.tok.file != b.tok.file
            || a.tok.line + a.tok.line_breaks() < b.tok.line
    }

    fn parse_all(&mut self) -> Result<Vec<RawBlock>, ParseError> {
        let mut blocks = Vec::new();
        while self.pos < self.toks.len() {
            if let Some(b) = self.parse_block()? {
                blocks.push(b);
            }
        }
        Ok(blocks)
    }

    /// One server block or snippet definition, starting at `self.pos`.
    fn parse_block(&mut self) -> Result<Option<RawBlock>, ParseError> {
        let mut keys: Vec<Token> = Vec::new();
        let mut expecting_another = false;
        let mut at_eof = false;

        // The keys: up to a `{` or the end of the line (a trailing comma continues the list).
        loop {
            if self.pos >= self.toks.len() {
                if expecting_another {
                    return Err(self.eof_err());
                }
                at_eof = true;
                break;
            }
            let t = &self.toks[self.pos];
            if t.tok.text == "import" && self.is_new_line(self.pos) {
                self.do_import()?;
                continue;
            }
            if t.open {
                if expecting_another {
                    return Err(self.err_at(
                        self.pos,
                        "Expected another address but had '{' - check for extra comma",
                    ));
                }
                break;
            }
            if t.close {
                return Err(
                    self.err_at(self.pos, "Unexpected '}' because no matching opening brace")
                );
            }
            let text = t.tok.text.as_str();
            expecting_another = text.ends_with(',');
            for part in text.split(',').filter(|p| !p.is_empty()) {
                let mut kt = t.tok.clone();
                kt.text = part.to_string();
                keys.push(kt);
            }
            self.pos += 1;
            if self.pos < self.toks.len() && !expecting_another && self.is_new_line(self.pos) {
                break;
            }
        }

        // A snippet: `(name)` alone, then a braced body.
        if keys.len() == 1 {
            let k = &keys[0].text;
            if k.len() >= 2 && k.starts_with('(') && k.ends_with(')') {
                let name = k[1..k.len() - 1].to_string();
                self.define_snippet(name, at_eof)?;
                return Ok(None);
            }
        }

        if keys.is_empty() {
            if at_eof {
                return Ok(None);
            }
            return Err(self.err_at(
                self.pos,
                "Unexpected token '{', expecting a server block key",
            ));
        }
        if at_eof {
            return Ok(Some(RawBlock {
                keys,
                directives: Vec::new(),
            }));
        }

        let braced = self.toks[self.pos].open;
        if braced {
            self.pos += 1;
        }
        let mut directives = Vec::new();
        loop {
            if self.pos >= self.toks.len() {
                if braced {
                    return Err(self.eof_err());
                }
                break;
            }
            let t = &self.toks[self.pos];
            if t.close {
                if braced {
                    self.pos += 1;
                    break;
                }
                return Err(
                    self.err_at(self.pos, "Unexpected '}' because no matching opening brace")
                );
            }
            if t.open {
                return Err(self.err_at(self.pos, "Unexpected token '{', expecting a directive"));
            }
            if t.tok.text == "import" {
                self.do_import()?;
                continue;
            }
            directives.push(self.directive()?);
        }
        Ok(Some(RawBlock { keys, directives }))
    }

    /// Stores the tokens of `{ ... }` at `self.pos` as snippet `name`.
    fn define_snippet(&mut self, name: String, at_eof: bool) -> Result<(), ParseError> {
        if at_eof {
            return Err(self.eof_err());
        }
        if self.snippets.contains_key(&name) {
            return Err(self.err_at(
                self.pos,
                format!("redeclaration of previously declared snippet {name}"),
            ));
        }
        if !self.toks[self.pos].open {
            let found = self.toks[self.pos].tok.text.clone();
            return Err(self.err_at(
                self.pos,
                format!("Unexpected token '{found}', expecting '{{'"),
            ));
        }
        self.pos += 1;
        let start = self.pos;
        let mut depth = 1usize;
        loop {
            let Some(t) = self.toks.get(self.pos) else {
                return Err(self.eof_err());
            };
            if t.open {
                depth += 1;
            } else if t.close {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            self.pos += 1;
        }
        let body: Vec<Tok> = self.toks[start..self.pos].to_vec();
        self.pos += 1; // the closing brace
        // A snippet importing itself can never be expanded.
        for (i, t) in body.iter().enumerate() {
            let line_start = i == 0 || self.is_new_line(start + i);
            if line_start
                && t.tok.text == "import"
                && body.get(i + 1).is_some_and(|n| n.tok.text == name)
            {
                return Err(self.err_at(
                    start + i,
                    format!("Import cycle detected: snippet '{name}' imports itself"),
                ));
            }
        }
        self.snippets.insert(name, body);
        Ok(())
    }

    /// One directive: its name and the rest of its line, with any nested `{ ... }` blocks.
    fn directive(&mut self) -> Result<Directive, ParseError> {
        let name_tok = self.toks[self.pos].tok.clone();
        let mut tokens = vec![name_tok.clone()];
        let mut nesting = 0usize;
        self.pos += 1;
        loop {
            if self.pos >= self.toks.len() {
                if nesting > 0 {
                    return Err(self.eof_err());
                }
                break;
            }
            let t = &self.toks[self.pos];
            if t.open {
                nesting += 1;
            } else if nesting == 0 && self.is_new_line(self.pos) {
                break;
            } else if t.close {
                if nesting == 0 {
                    return Err(
                        self.err_at(self.pos, "Unexpected '}' because no matching opening brace")
                    );
                }
                nesting -= 1;
            } else if t.tok.text == "import" && self.is_new_line(self.pos) {
                self.do_import()?;
                continue;
            }
            tokens.push(self.toks[self.pos].tok.clone());
            self.pos += 1;
        }
        Ok(Directive {
            name: name_tok.text,
            tokens,
        })
    }

    /// Replaces `import ARG` at `self.pos` with the tokens it names; `self.pos` is then on the
    /// first imported token.
    fn do_import(&mut self) -> Result<(), ParseError> {
        let at = self.pos;
        let arg = at + 1;
        if arg >= self.toks.len() || self.is_new_line(arg) {
            return Err(self.err_at(
                at,
                "Wrong argument count or unexpected line ending after 'import'",
            ));
        }
        if self.toks[arg].open {
            return Err(self.err_at(arg, "Unexpected token '{', expecting argument"));
        }
        let pattern = self.toks[arg].tok.text.clone();
        if pattern.is_empty() {
            return Err(self.err_at(arg, "Import requires a non-empty filepath"));
        }
        if arg + 1 < self.toks.len() && !self.is_new_line(arg + 1) {
            return Err(self.err_at(
                arg + 1,
                "Import takes only one argument (glob pattern or file)",
            ));
        }
        let parent = self.toks[at].origin.clone();

        let imported: Vec<Tok> = if let Some(body) = self.snippets.get(&pattern) {
            if parent.has_snippet(&pattern) {
                return Err(self.err_at(arg, parent.cycle(&format!("snippet '{pattern}'"))));
            }
            if self.snippet_expansions >= MAX_EXPANSIONS {
                return Err(self.err_at(
                    arg,
                    format!("maximum snippet import depth ({MAX_EXPANSIONS}) exceeded"),
                ));
            }
            self.snippet_expansions += 1;
            let origin = Rc::new(Origin {
                kind: OriginKind::Snippet(pattern.clone()),
                parent: Some(parent),
            });
            body.iter()
                .map(|t| Tok {
                    origin: origin.clone(),
                    ..t.clone()
                })
                .collect()
        } else {
            if self.file_expansions >= MAX_EXPANSIONS {
                return Err(self.err_at(
                    arg,
                    format!("maximum file import depth ({MAX_EXPANSIONS}) exceeded"),
                ));
            }
            self.file_expansions += 1;
            let files = self.import_matches(arg, &pattern)?;
            let mut all = Vec::new();
            for path in files {
                all.extend(self.import_file(arg, &path, &parent)?);
            }
            all
        };
        self.toks.splice(at..arg + 1, imported);
        Ok(())
    }

    /// The files `pattern` names, relative to the directory of the file holding token `arg`.
    fn import_matches(&self, arg: usize, pattern: &str) -> Result<Vec<PathBuf>, ParseError> {
        let importing = Path::new(&*self.toks[arg].tok.file);
        let base = std::path::absolute(importing)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let is_glob = pattern.contains(['*', '?', '[', ']']);
        if !is_glob {
            let path = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                base.join(pattern)
            };
            if std::fs::symlink_metadata(&path).is_err() {
                return Err(self.err_at(arg, format!("File to import not found: {pattern}")));
            }
            return Ok(vec![path]);
        }
        let full = if Path::new(pattern).is_absolute() {
            pattern.to_string()
        } else {
            let mut b = glob::Pattern::escape(&base.to_string_lossy());
            if !b.ends_with(std::path::MAIN_SEPARATOR) {
                b.push(std::path::MAIN_SEPARATOR);
            }
            b + pattern
        };
        if pattern.matches('*').count() > 1
            || pattern.matches('?').count() > 1
            || (pattern.contains('[') && pattern.contains(']'))
        {
            return Err(self.err_at(
                arg,
                format!("Glob pattern may only contain one wildcard (*), but has others: {full}"),
            ));
        }
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let paths = glob::glob_with(&full, opts).map_err(|e| {
            self.err_at(arg, format!("Failed to use import pattern {pattern}: {e}"))
        })?;
        let mut matches: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        matches.sort();
        if matches.is_empty() {
            tracing::warn!("No files matching import glob pattern: {pattern}");
        }
        Ok(matches)
    }

    /// The tokens of one imported file, labelled with its absolute path.
    fn import_file(
        &self,
        arg: usize,
        path: &Path,
        parent: &Rc<Origin>,
    ) -> Result<Vec<Tok>, ParseError> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let label = abs.display().to_string();
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(self.err_at(arg, format!("Could not import {label}: is a directory")));
        }
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| abs.clone());
        if parent.has_file(&canon) {
            return Err(self.err_at(arg, parent.cycle(&label)));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| self.err_at(arg, format!("Could not import {label}: {e}")))?;
        let origin = Rc::new(Origin {
            kind: OriginKind::File {
                canon: Some(canon),
                label: label.clone(),
            },
            parent: Some(parent.clone()),
        });
        let file: Arc<str> = Arc::from(label.as_str());
        Ok(make_toks(tokenize(&text, &file), &origin, self.env))
    }
}
