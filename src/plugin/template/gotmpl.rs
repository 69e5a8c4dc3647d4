//! The subset of Go's `text/template` that `template` RRs are written in.
//!
//! Parsed once at setup into a small tree; executed per matched query against [`Data`] (CoreDNS's
//! `templateData`). What is supported, with Go's semantics:
//!
//! - text, actions `{{ pipeline }}`, trim markers `{{- ` / ` -}}`, comments `{{/* … */}}`;
//! - fields of the data: `.Zone .Name .Regex .Match .Group .Class .Type .Remote`, `.Question`
//!   (`.Question.Name`, `.Question.Qtype`, `.Question.Qclass`), map keys `.Group.name`, the
//!   method `.Meta "name"`, and `.` (inside `with`);
//! - string (`"…"` with Go escapes, `` `raw` ``), integer (`12`, `0x1f`, `0o17`, `0b1`) and
//!   boolean constants, parenthesized pipelines `(index .Match 1)`, pipelines `a | b` (the value
//!   of a stage is the last argument of the next);
//! - the functions `index len print printf println eq ne lt le gt ge and or not` (Go's
//!   builtins) and CoreDNS's `parseInt` (`strconv.ParseUint`);
//! - `{{if}}` / `{{else if}}` / `{{else}}` / `{{end}}` and `{{with}}` / `{{else with}}`.
//!
//! Not supported, rejected at setup with the reason: variables (`$x`, `:=`), `range`,
//! `define`/`template`/`block`, `break`/`continue`, `nil`, floating-point and character
//! constants, `.Message`, field access on a parenthesized value, and the Go builtins `call html
//! js slice urlquery`. Field names of the data are checked at setup too (Go reports a misspelt
//! field only when a query executes the template).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a template is executed against (CoreDNS's `templateData`).
#[derive(Debug, Clone)]
pub struct Data<'a> {
    /// The matched zone (`example.org.`).
    pub zone: &'a str,
    /// The query name, lower-case, absolute.
    pub name: &'a str,
    /// The regex that matched, as written.
    pub regex: &'a str,
    /// The regex's submatches; `[0]` is the whole match ("" for a group that did not take part).
    pub matches: &'a [&'a str],
    /// Submatches by number (`"0"`, `"1"`, …) and by group name.
    pub group: &'a BTreeMap<Cow<'a, str>, &'a str>,
    /// The query class (`IN`); the template's own when the query asked for ANY.
    pub class: &'a str,
    /// The query type (`A`); the template's own when the query asked for ANY.
    pub qtype: &'a str,
    pub question: Question<'a>,
    /// The client's IP address.
    pub remote: &'a str,
}

/// `.Question`: the question as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// As sent (case kept), absolute.
    pub name: &'a str,
    pub qtype: u16,
    pub qclass: u16,
    /// `IN`, `CLASS7`: for printing the question as miekg/dns does.
    pub class_text: &'a str,
    /// `A`, `TYPE65280`.
    pub type_text: &'a str,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: &'static str,
    source: String,
    root: Vec<Node>,
    canonical: String,
    uses_group: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        value: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline {
    cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    /// `.A.B`: fields looked up from dot.
    Field(Vec<String>),
    Str {
        value: String,
        quoted: String,
    },
    Int {
        value: i128,
        text: String,
    },
    Bool(bool),
    Func(Func),
    Pipe(Box<Pipeline>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Index,
    Len,
    Print,
    Printf,
    Println,
    ParseInt,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Not,
}

impl Func {
    fn lookup(name: &str) -> Option<Func> {
        Some(match name {
            "index" => Func::Index,
            "len" => Func::Len,
            "print" => Func::Print,
            "printf" => Func::Printf,
            "println" => Func::Println,
            "parseInt" => Func::ParseInt,
            "eq" => Func::Eq,
            "ne" => Func::Ne,
            "lt" => Func::Lt,
            "le" => Func::Le,
            "gt" => Func::Gt,
            "ge" => Func::Ge,
            "and" => Func::And,
            "or" => Func::Or,
            "not" => Func::Not,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Index => "index",
            Func::Len => "len",
            Func::Print => "print",
            Func::Printf => "printf",
            Func::Println => "println",
            Func::ParseInt => "parseInt",
            Func::Eq => "eq",
            Func::Ne => "ne",
            Func::Lt => "lt",
            Func::Le => "le",
            Func::Gt => "gt",
            Func::Ge => "ge",
            Func::And => "and",
            Func::Or => "or",
            Func::Not => "not",
        }
    }

    /// (minimum, maximum) number of arguments, the piped value included.
    fn arity(self) -> (usize, Option<usize>) {
        match self {
            Func::Index | Func::Printf | Func::Eq | Func::And | Func::Or => (1, None),
            Func::Print | Func::Println => (0, None),
            Func::Len | Func::Not => (1, Some(1)),
            Func::Ne | Func::Lt | Func::Le | Func::Gt | Func::Ge => (2, Some(2)),
            Func::ParseInt => (3, Some(3)),
        }
    }
}

/// The fields of the template data, for the setup check and its message.
const DATA_FIELDS: &[&str] = &[
    "Zone", "Name", "Regex", "Match", "Group", "Class", "Type", "Question", "Remote", "Meta",
];

// ---------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Open,
    Close,
    Space,
    Ident(String),
    Field(String),
    Dot,
    Str { value: String, quoted: String },
    Int { value: i128, text: String },
    Bool(bool),
    Pipe,
    LParen,
    RParen,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer<'s> {
    name: &'static str,
    src: &'s str,
    toks: Vec<Token>,
}

impl<'s> Lexer<'s> {
    fn err(&self, pos: usize, msg: impl std::fmt::Display) -> String {
        let line = 1 + self.src[..pos.min(self.src.len())].matches('\n').count();
        format!("template: {}:{line}: {msg}", self.name)
    }

    fn push(&mut self, tok: Tok, pos: usize) {
        self.toks.push(Token { tok, pos });
    }

    fn run(mut self) -> Result<Vec<Token>, String> {
        let src = self.src;
        let mut pos = 0;
        let mut trim_next = false;
        loop {
            let Some(rel) = src[pos..].find("{{") else {
                let mut text = &src[pos..];
                if trim_next {
                    text = text.trim_start_matches(is_space);
                }
                if !text.is_empty() {
                    self.push(Tok::Text(text.to_string()), pos);
                }
                return Ok(self.toks);
            };
            let open = pos + rel;
            let after = &src[open + 2..];
            let left_trim = after.starts_with('-') && after[1..].starts_with(is_space);
            let mut text = &src[pos..open];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            if left_trim {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_string()), pos);
            }
            let inner = open + 2 + if left_trim { 2 } else { 0 };
            let (next, trim) = if src[inner..].starts_with("/*") {
                self.comment(inner)?
            } else {
                self.push(Tok::Open, open);
                self.action(inner)?
            };
            pos = next;
            trim_next = trim;
        }
    }

    /// `{{/* … */}}`: nothing is emitted. Returns the position after the delimiter and whether
    /// it trims.
    fn comment(&mut self, start: usize) -> Result<(usize, bool), String> {
        let Some(end) = self.src[start + 2..].find("*/") else {
            return Err(self.err(start, "unclosed comment"));
        };
        let after = start + 2 + end + 2;
        let rest = &self.src[after..];
        if rest.starts_with(" -}}") {
            Ok((after + 4, true))
        } else if rest.starts_with("}}") {
            Ok((after + 2, false))
        } else {
            Err(self.err(start, "comment ends before closing delimiter"))
        }
    }

    /// The tokens of one action from `start` up to its closing delimiter.
    fn action(&mut self, start: usize) -> Result<(usize, bool), String> {
        let src = self.src;
        let mut i = start;
        let mut parens = 0usize;
        loop {
            let rest = &src[i..];
            if rest.starts_with(" -}}") || rest.starts_with("}}") {
                if parens > 0 {
                    return Err(self.err(i, "unclosed left paren"));
                }
                let trim = rest.starts_with(' ');
                self.push(Tok::Close, i);
                return Ok((i + if trim { 4 } else { 2 }, trim));
            }
            let Some(c) = rest.chars().next() else {
                return Err(self.err(i, "unclosed action"));
            };
            match c {
                c if is_space(c) => {
                    let mut j = i;
                    while let Some(c) = src[j..].chars().next() {
                        if !is_space(c) || src[j..].starts_with(" -}}") {
                            break;
                        }
                        j += c.len_utf8();
                    }
                    // (A space starting ` -}}` is the trim marker, handled at the loop's top.)
                    self.push(Tok::Space, i);
                    i = j.max(i + 1);
                }
                '|' => {
                    self.push(Tok::Pipe, i);
                    i += 1;
                }
                '(' => {
                    parens += 1;
                    self.push(Tok::LParen, i);
                    i += 1;
                }
                ')' => {
                    if parens == 0 {
                        return Err(self.err(i, "unexpected right paren"));
                    }
                    parens -= 1;
                    self.push(Tok::RParen, i);
                    i += 1;
                }
                '"' => {
                    let end = self.quoted_end(i)?;
                    let quoted = &src[i..end];
                    let value = go_unquote(quoted).map_err(|e| self.err(i, e))?;
                    self.push(
                        Tok::Str {
                            value,
                            quoted: quoted.to_string(),
                        },
                        i,
                    );
                    i = end;
                }
                '`' => {
                    let Some(len) = src[i + 1..].find('`') else {
                        return Err(self.err(i, "unterminated raw quoted string"));
                    };
                    let end = i + 1 + len + 1;
                    self.push(
                        Tok::Str {
                            value: src[i + 1..end - 1].to_string(),
                            quoted: src[i..end].to_string(),
                        },
                        i,
                    );
                    i = end;
                }
                '\'' => {
                    return Err(self.err(i, "character constants are not supported by exdns"));
                }
                '.' => {
                    let next = rest[1..].chars().next();
                    match next {
                        Some(d) if d.is_ascii_digit() => {
                            return Err(
                                self.err(i, "floating-point constants are not supported by exdns")
                            );
                        }
                        Some(a) if is_alnum(a) => {
                            let len: usize = rest[1..]
                                .chars()
                                .take_while(|c| is_alnum(*c))
                                .map(char::len_utf8)
                                .sum();
                            self.push(Tok::Field(rest[1..1 + len].to_string()), i);
                            i += 1 + len;
                        }
                        _ => {
                            self.push(Tok::Dot, i);
                            i += 1;
                        }
                    }
                }
                '$' => {
                    return Err(self.err(i, "variables ($) are not supported by exdns"));
                }
                ':' | '=' => {
                    return Err(self.err(
                        i,
                        "variable declarations (:= and =) are not supported by exdns",
                    ));
                }
                c if c.is_ascii_digit() || c == '+' || c == '-' => {
                    let len = rest
                        .char_indices()
                        .skip(1)
                        .find(|(_, c)| !(is_alnum(*c) || *c == '.' || *c == '+' || *c == '-'))
                        .map(|(k, _)| k)
                        .unwrap_or(rest.len());
                    let text = &rest[..len];
                    let value = parse_go_int(text).map_err(|e| self.err(i, e))?;
                    self.push(
                        Tok::Int {
                            value,
                            text: text.to_string(),
                        },
                        i,
                    );
                    i += len;
                }
                c if is_alnum(c) => {
                    let len: usize = rest
                        .chars()
                        .take_while(|c| is_alnum(*c))
                        .map(char::len_utf8)
                        .sum();
                    let word = &rest[..len];
                    let tok = match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        _ => Tok::Ident(word.to_string()),
                    };
                    self.push(tok, i);
                    i += len;
                }
                c => {
                    return Err(self.err(
                        i,
                        format!("unrecognized character in action: U+{:04X} {c:?}", c as u32),
                    ));
                }
            }
        }
    }

    /// The end (exclusive) of the `"…"` string starting at `start`.
    fn quoted_end(&self, start: usize) -> Result<usize, String> {
        let bytes = self.src.as_bytes();
        let mut j = start + 1;
        while j < bytes.len() {
            match bytes[j] {
                b'\\' => j += 2,
                b'"' => return Ok(j + 1),
                b'\n' => break,
                _ => j += 1,
            }
        }
        Err(self.err(start, "unterminated quoted string"))
    }
}

/// An integer constant as Go writes it: decimal, `0x`, `0o`, `0b` or leading-`0` octal, with
/// `_` separators and an optional sign.
fn parse_go_int(text: &str) -> Result<i128, String> {
    let bad = || format!("bad number syntax: {text:?}");
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    if body.contains('.') || (radix == 10 && body.contains('e')) {
        return Err("floating-point constants are not supported by exdns".to_string());
    }
    let body: String = body.chars().filter(|c| *c != '_').collect();
    if body.is_empty() {
        return Err(bad());
    }
    let v = i128::from_str_radix(&body, radix).map_err(|_| bad())?;
    if v > u64::MAX as i128 {
        return Err(format!("number out of range: {text}"));
    }
    Ok(if neg { -v } else { v })
}

/// Go's `strconv.Unquote` for a `"…"` literal.
fn go_unquote(quoted: &str) -> Result<String, String> {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let b = inner.as_bytes();
    let mut i = 0;
    let bad = || format!("invalid syntax in string {quoted}");
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&e) = b.get(i + 1) else {
            return Err(bad());
        };
        i += 2;
        match e {
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            b'"' => out.push(b'"'),
            b'x' => {
                let h = inner.get(i..i + 2).ok_or_else(bad)?;
                out.push(u8::from_str_radix(h, 16).map_err(|_| bad())?);
                i += 2;
            }
            b'0'..=b'7' => {
                let o = inner.get(i - 1..i + 2).ok_or_else(bad)?;
                let v = u16::from_str_radix(o, 8).map_err(|_| bad())?;
                out.push(u8::try_from(v).map_err(|_| bad())?);
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let h = inner.get(i..i + n).ok_or_else(bad)?;
                let c = u32::from_str_radix(h, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(bad)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            _ => return Err(bad()),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// How a list of nodes ended.
enum Term {
    Eof,
    End,
    Else(Option<(Keyword, Pipeline)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    If,
    With,
}

struct Parser<'t> {
    name: &'static str,
    src: &'t str,
    toks: &'t [Token],
    i: usize,
}

/// Whether dot is the template data (top level, `if`) or some value (`with`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotKind {
    Data,
    Unknown,
}

impl Parser<'_> {
    fn err_at(&self, pos: usize, msg: impl std::fmt::Display) -> String {
        let line = 1 + self.src[..pos.min(self.src.len())].matches('\n').count();
        format!("template: {}:{line}: {msg}", self.name)
    }

    fn err(&self, msg: impl std::fmt::Display) -> String {
        let pos = self
            .toks
            .get(self.i.min(self.toks.len().saturating_sub(1)))
            .map(|t| t.pos)
            .unwrap_or(0);
        self.err_at(pos, msg)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .map(|t| t.pos)
            .unwrap_or(self.src.len())
    }

    fn skip_space(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.i += 1;
        }
    }

    fn list(&mut self) -> Result<(Vec<Node>, Term), String> {
        let mut nodes = Vec::new();
        loop {
            let Some(t) = self.toks.get(self.i) else {
                return Ok((nodes, Term::Eof));
            };
            self.i += 1;
            match &t.tok {
                Tok::Text(s) => nodes.push(Node::Text(s.clone())),
                Tok::Open => match self.action()? {
                    Ok(node) => nodes.push(node),
                    Err(term) => return Ok((nodes, term)),
                },
                other => return Err(self.err(format!("unexpected {}", describe(other)))),
            }
        }
    }

    /// One action after its `{{`: a node, or the `{{end}}`/`{{else}}` that ends a list.
    fn action(&mut self) -> Result<Result<Node, Term>, String> {
        self.skip_space();
        let keyword = match self.peek() {
            Some(Tok::Ident(w)) => w.clone(),
            _ => {
                let p = self.pipeline("command")?;
                return Ok(Ok(Node::Action(p)));
            }
        };
        match keyword.as_str() {
            "if" | "with" => {
                self.i += 1;
                let kw = if keyword == "if" {
                    Keyword::If
                } else {
                    Keyword::With
                };
                let cond = self.pipeline(&keyword)?;
                Ok(Ok(self.branch(kw, cond)?))
            }
            "end" => {
                self.i += 1;
                self.skip_space();
                self.expect_close("end")?;
                Ok(Err(Term::End))
            }
            "else" => {
                self.i += 1;
                self.skip_space();
                match self.peek() {
                    Some(Tok::Close) => {
                        self.i += 1;
                        Ok(Err(Term::Else(None)))
                    }
                    Some(Tok::Ident(w)) if w == "if" || w == "with" => {
                        let kw = if w == "if" {
                            Keyword::If
                        } else {
                            Keyword::With
                        };
                        let w = w.clone();
                        self.i += 1;
                        let cond = self.pipeline(&w)?;
                        Ok(Err(Term::Else(Some((kw, cond)))))
                    }
                    Some(other) => Err(self.err(format!("unexpected {} in else", describe(other)))),
                    None => Err(self.err("unexpected EOF")),
                }
            }
            "range" | "define" | "template" | "block" | "break" | "continue" => {
                Err(self.err(format!("{{{{{keyword}}}}} is not supported by exdns")))
            }
            "nil" => Err(self.err("nil is not a command")),
            _ => {
                let p = self.pipeline("command")?;
                Ok(Ok(Node::Action(p)))
            }
        }
    }

    fn expect_close(&mut self, context: &str) -> Result<(), String> {
        match self.peek() {
            Some(Tok::Close) => {
                self.i += 1;
                Ok(())
            }
            Some(other) => Err(self.err(format!("unexpected {} in {context}", describe(other)))),
            None => Err(self.err("unexpected EOF")),
        }
    }

    /// The body of an `if`/`with` whose condition was read, up to and including its `{{end}}`.
    fn branch(&mut self, kw: Keyword, cond: Pipeline) -> Result<Node, String> {
        let (then, term) = self.list()?;
        let otherwise = match term {
            Term::End => Vec::new(),
            Term::Eof => return Err(self.err("unexpected EOF")),
            Term::Else(None) => {
                let (otherwise, term) = self.list()?;
                match term {
                    Term::End => otherwise,
                    Term::Eof => return Err(self.err("unexpected EOF")),
                    Term::Else(_) => return Err(self.err("expected end; found {{else}}")),
                }
            }
            Term::Else(Some((kw2, cond2))) => vec![self.branch(kw2, cond2)?],
        };
        Ok(match kw {
            Keyword::If => Node::If {
                cond,
                then,
                otherwise,
            },
            Keyword::With => Node::With {
                value: cond,
                then,
                otherwise,
            },
        })
    }

    /// A pipeline up to the action's `}}` (consumed) or, inside parentheses, its `)` (consumed).
    fn pipeline(&mut self, context: &str) -> Result<Pipeline, String> {
        self.pipeline_until(context, false)
    }

    fn pipeline_until(&mut self, context: &str, in_parens: bool) -> Result<Pipeline, String> {
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Close) if !in_parens => {
                    self.i += 1;
                    break;
                }
                Some(Tok::RParen) if in_parens => {
                    self.i += 1;
                    break;
                }
                None => return Err(self.err("unclosed action")),
                _ => {}
            }
            let (cmd, piped) = self.command()?;
            cmds.push(cmd);
            if piped {
                self.skip_space();
                if matches!(self.peek(), Some(Tok::Close) | Some(Tok::RParen) | None) {
                    return Err(self.err("missing command after pipe"));
                }
            } else {
                self.skip_space();
                match self.peek() {
                    Some(Tok::Close) if !in_parens => {}
                    Some(Tok::RParen) if in_parens => {}
                    Some(other) => {
                        return Err(
                            self.err(format!("unexpected {} in {context}", describe(other)))
                        );
                    }
                    None => return Err(self.err("unclosed action")),
                }
            }
        }
        if cmds.is_empty() {
            return Err(self.err(format!("missing value for {context}")));
        }
        for (n, c) in cmds.iter().enumerate().skip(1) {
            if !matches!(c.args[0], Arg::Field(_) | Arg::Func(_)) {
                return Err(self.err_at(
                    c.pos,
                    format!("non executable command in pipeline stage {}", n + 1),
                ));
            }
        }
        Ok(Pipeline { cmds })
    }

    /// One command: operands separated by spaces. `true` when it ended at a `|`.
    fn command(&mut self) -> Result<(Command, bool), String> {
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            self.skip_space();
            let Some(arg) = self.operand()? else {
                break;
            };
            args.push(arg);
            match self.peek() {
                Some(Tok::Space) => continue,
                Some(Tok::Close) | Some(Tok::RParen) | Some(Tok::Pipe) | None => break,
                Some(other) => {
                    return Err(self.err(format!("unexpected {} in operand", describe(other))));
                }
            }
        }
        self.skip_space();
        let piped = self.peek() == Some(&Tok::Pipe);
        if piped {
            self.i += 1;
        }
        if args.is_empty() {
            return Err(match self.peek() {
                Some(t) if !piped && !matches!(t, Tok::Close | Tok::RParen) => {
                    self.err(format!("unexpected {} in command", describe(t)))
                }
                _ => self.err_at(pos, "empty command"),
            });
        }
        Ok((Command { pos, args }, piped))
    }

    fn operand(&mut self) -> Result<Option<Arg>, String> {
        let Some(t) = self.toks.get(self.i) else {
            return Ok(None);
        };
        let arg = match &t.tok {
            Tok::Ident(w) => match w.as_str() {
                "if" | "else" | "end" | "with" | "range" | "define" | "template" | "block"
                | "break" | "continue" | "nil" => {
                    return Err(self.err(format!("unexpected <{w}> in command")));
                }
                _ => match Func::lookup(w) {
                    Some(f) => Arg::Func(f),
                    None => {
                        let msg = match w.as_str() {
                            "call" | "html" | "js" | "slice" | "urlquery" => {
                                format!("function {w:?} is not supported by exdns")
                            }
                            _ => format!("function {w:?} not defined"),
                        };
                        return Err(self.err(msg));
                    }
                },
            },
            Tok::Field(f) => {
                let mut chain = vec![f.clone()];
                self.i += 1;
                while let Some(Tok::Field(f)) = self.peek() {
                    chain.push(f.clone());
                    self.i += 1;
                }
                return Ok(Some(Arg::Field(chain)));
            }
            Tok::Dot => Arg::Dot,
            Tok::Str { value, quoted } => Arg::Str {
                value: value.clone(),
                quoted: quoted.clone(),
            },
            Tok::Int { value, text } => Arg::Int {
                value: *value,
                text: text.clone(),
            },
            Tok::Bool(b) => Arg::Bool(*b),
            Tok::LParen => {
                self.i += 1;
                let p = self.pipeline_until("parenthesized pipeline", true)?;
                if let Some(Tok::Field(_)) = self.peek() {
                    return Err(self.err(
                        "field access on a parenthesized pipeline is not supported by exdns",
                    ));
                }
                return Ok(Some(Arg::Pipe(Box::new(p))));
            }
            _ => return Ok(None),
        };
        self.i += 1;
        if let Some(Tok::Field(_)) = self.peek() {
            return Err(self.err(format!("unexpected . after term {:?}", arg_string(&arg))));
        }
        Ok(Some(arg))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".to_string(),
        Tok::Open => "\"{{\"".to_string(),
        Tok::Close => "\"}}\"".to_string(),
        Tok::Space => "space".to_string(),
        Tok::Ident(w) => format!("<{w}>"),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Dot => "<.>".to_string(),
        Tok::Str { quoted, .. } => quoted.clone(),
        Tok::Int { text, .. } => format!("{text:?}"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Pipe => "\"|\"".to_string(),
        Tok::LParen => "\"(\"".to_string(),
        Tok::RParen => "\")\"".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Setup checks (what Go would only find when executing)

struct Checker<'a> {
    p: &'a Parser<'a>,
    uses_group: bool,
}

impl Checker<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: DotKind) -> Result<(), String> {
        for n in nodes {
            match n {
                Node::Text(_) => {}
                Node::Action(p) => {
                    if dot == DotKind::Data
                        && p.cmds.len() == 1
                        && matches!(p.cmds[0].args.as_slice(), [Arg::Dot])
                    {
                        return Err(self.p.err_at(
                            p.cmds[0].pos,
                            "printing the whole template data ({{.}}) is not supported by exdns",
                        ));
                    }
                    self.pipeline(p, dot)?;
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    self.pipeline(cond, dot)?;
                    self.nodes(then, dot)?;
                    self.nodes(otherwise, dot)?;
                }
                Node::With {
                    value,
                    then,
                    otherwise,
                } => {
                    self.pipeline(value, dot)?;
                    self.nodes(then, DotKind::Unknown)?;
                    self.nodes(otherwise, dot)?;
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: DotKind) -> Result<(), String> {
        for (n, c) in p.cmds.iter().enumerate() {
            let piped = usize::from(n > 0);
            let given = c.args.len() - 1 + piped;
            match &c.args[0] {
                Arg::Func(f) => {
                    let (min, max) = f.arity();
                    let ok = given >= min && max.is_none_or(|m| given <= m);
                    if !ok {
                        let want = match max {
                            Some(m) if m == min => format!("{m}"),
                            _ => format!("at least {min}"),
                        };
                        return Err(self.p.err_at(
                            c.pos,
                            format!(
                                "wrong number of args for {}: want {want} got {given}",
                                f.name()
                            ),
                        ));
                    }
                }
                Arg::Field(chain) => {
                    let method = dot == DotKind::Data && chain.len() == 1 && chain[0] == "Meta";
                    if method && given != 1 {
                        return Err(self.p.err_at(
                            c.pos,
                            format!("wrong number of args for Meta: want 1 got {given}"),
                        ));
                    }
                    if !method && given > 0 {
                        return Err(self.p.err_at(
                            c.pos,
                            format!("can't give argument to non-function .{}", chain.join(".")),
                        ));
                    }
                }
                other => {
                    if given > 0 {
                        return Err(self.p.err_at(
                            c.pos,
                            format!("can't give argument to non-function {}", arg_string(other)),
                        ));
                    }
                }
            }
            for (i, a) in c.args.iter().enumerate() {
                if i > 0
                    && dot == DotKind::Data
                    && matches!(a, Arg::Field(chain) if chain.len() == 1 && chain[0] == "Meta")
                {
                    return Err(self
                        .p
                        .err_at(c.pos, "wrong number of args for Meta: want 1 got 0"));
                }
                self.arg(a, c.pos, dot)?;
            }
        }
        Ok(())
    }

    fn arg(&mut self, a: &Arg, pos: usize, dot: DotKind) -> Result<(), String> {
        match a {
            Arg::Pipe(p) => self.pipeline(p, dot),
            Arg::Field(chain) if dot == DotKind::Data => self.field(chain, pos),
            _ => Ok(()),
        }
    }

    fn field(&mut self, chain: &[String], pos: usize) -> Result<(), String> {
        let first = chain[0].as_str();
        if first == "Message" {
            return Err(self.p.err_at(pos, ".Message is not supported by exdns"));
        }
        if !DATA_FIELDS.contains(&first) {
            return Err(self.p.err_at(
                pos,
                format!(
                    "can't evaluate field {first} in the template data (fields: .{})",
                    DATA_FIELDS.join(" .")
                ),
            ));
        }
        if first == "Group" {
            self.uses_group = true;
        }
        let Some(second) = chain.get(1) else {
            return Ok(());
        };
        let bad = |ty: &str| {
            self.p
                .err_at(pos, format!("can't evaluate field {second} in type {ty}"))
        };
        match first {
            "Group" if chain.len() == 2 => Ok(()),
            "Group" => Err(self.p.err_at(
                pos,
                format!("can't evaluate field {} in type string", chain[2]),
            )),
            "Question" => match second.as_str() {
                "Name" | "Qtype" | "Qclass" if chain.len() == 2 => Ok(()),
                "Name" => Err(self.p.err_at(
                    pos,
                    format!("can't evaluate field {} in type string", chain[2]),
                )),
                "Qtype" | "Qclass" => Err(self.p.err_at(
                    pos,
                    format!("can't evaluate field {} in type uint16", chain[2]),
                )),
                _ => Err(bad("*dns.Question")),
            },
            "Match" => Err(bad("[]string")),
            "Meta" => Err(bad("func(string) string")),
            _ => Err(bad("string")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Printing the tree back (Go's `Tree.Root.String()`)

fn nodes_string(nodes: &[Node], out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                out.push_str("{{");
                pipeline_string(p, out);
                out.push_str("}}");
            }
            Node::If {
                cond,
                then,
                otherwise,
            } => branch_string("if", cond, then, otherwise, out),
            Node::With {
                value,
                then,
                otherwise,
            } => branch_string("with", value, then, otherwise, out),
        }
    }
}

fn branch_string(kw: &str, p: &Pipeline, then: &[Node], otherwise: &[Node], out: &mut String) {
    out.push_str("{{");
    out.push_str(kw);
    out.push(' ');
    pipeline_string(p, out);
    out.push_str("}}");
    nodes_string(then, out);
    if !otherwise.is_empty() {
        out.push_str("{{else}}");
        nodes_string(otherwise, out);
    }
    out.push_str("{{end}}");
}

fn pipeline_string(p: &Pipeline, out: &mut String) {
    for (i, c) in p.cmds.iter().enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        command_string(c, out);
    }
}

fn command_string(c: &Command, out: &mut String) {
    for (i, a) in c.args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match a {
            Arg::Pipe(p) => {
                out.push('(');
                pipeline_string(p, out);
                out.push(')');
            }
            other => out.push_str(&arg_string(other)),
        }
    }
}

fn arg_string(a: &Arg) -> String {
    match a {
        Arg::Dot => ".".to_string(),
        Arg::Field(chain) => format!(".{}", chain.join(".")),
        Arg::Str { quoted, .. } => quoted.clone(),
        Arg::Int { text, .. } => text.clone(),
        Arg::Bool(b) => b.to_string(),
        Arg::Func(f) => f.name().to_string(),
        Arg::Pipe(p) => {
            let mut s = String::from("(");
            pipeline_string(p, &mut s);
            s.push(')');
            s
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The template

impl Template {
    /// Parses `text`; `name` is the section (`answer`, `additional`, `authority`), used in
    /// error messages as Go's template name. Errors read as Go's (`template: answer:1: …`).
    pub fn parse(name: &'static str, text: &str) -> Result<Template, String> {
        let toks = Lexer {
            name,
            src: text,
            toks: Vec::new(),
        }
        .run()?;
        let mut p = Parser {
            name,
            src: text,
            toks: &toks,
            i: 0,
        };
        let (root, term) = p.list()?;
        match term {
            Term::Eof => {}
            Term::End => return Err(p.err("unexpected {{end}}")),
            Term::Else(_) => return Err(p.err("unexpected {{else}}")),
        }
        let mut checker = Checker {
            p: &p,
            uses_group: false,
        };
        checker.nodes(&root, DotKind::Data)?;
        let uses_group = checker.uses_group;
        let mut canonical = String::new();
        nodes_string(&root, &mut canonical);
        Ok(Template {
            name,
            source: text.to_string(),
            root,
            canonical,
            uses_group,
        })
    }

    /// The template as Go prints its parse tree (`{{.Name}} 60 IN A {{index .Match 1}}`): the
    /// `template` label of the failure metrics.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The template text as written in the Corefile.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `.Group` (the handler builds the map only then).
    pub fn uses_group(&self) -> bool {
        self.uses_group
    }

    /// The text when the template has no actions (its output never changes).
    pub fn static_text(&self) -> Option<&str> {
        match self.root.as_slice() {
            [] => Some(""),
            [Node::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Executes the template into `out`. Errors read as Go's
    /// (`template: answer:1:3: executing "answer" at <index .Match 5>: error calling index: …`).
    pub fn execute(&self, data: &Data<'_>, out: &mut String) -> Result<(), String> {
        let ex = Exec { data };
        ex.nodes(&self.root, &Value::Data, out)
            .map_err(|(pos, ctx, msg)| {
                let before = &self.source[..pos.min(self.source.len())];
                let line = 1 + before.matches('\n').count();
                let col = match before.rfind('\n') {
                    Some(nl) => pos - nl - 1,
                    None => pos,
                };
                format!(
                    "template: {name}:{line}:{col}: executing {name:?} at <{ctx}>: {msg}",
                    name = self.name
                )
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Executing

#[derive(Debug, Clone)]
enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i128),
    /// An unsigned integer with its Go type name (`uint64` from parseInt, `uint16` Qtype).
    Uint(u64, &'static str),
    Bool(bool),
    List(&'a [&'a str]),
    Map(&'a BTreeMap<Cow<'a, str>, &'a str>),
    /// A map key that is not there (Go's invalid value, printed `<no value>`).
    Missing,
    Data,
    Question,
}

impl Value<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Uint(_, t) => t,
            Value::Bool(_) => "bool",
            Value::List(_) => "[]string",
            Value::Map(_) => "map[string]string",
            Value::Missing => "<nil>",
            Value::Data => "*template.templateData",
            Value::Question => "*dns.Question",
        }
    }

    fn truth(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Uint(u, _) => *u != 0,
            Value::Bool(b) => *b,
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Missing => false,
            Value::Data | Value::Question => true,
        }
    }
}

/// An execution error: position, the node as text, the message.
type ExecErr = (usize, String, String);

struct Exec<'d> {
    data: &'d Data<'d>,
}

impl<'d> Exec<'d> {
    fn nodes(&self, nodes: &[Node], dot: &Value<'d>, out: &mut String) -> Result<(), ExecErr> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    self.print(&v, out)
                        .map_err(|m| (p.cmds[0].pos, pipe_text(p), m))?;
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    if self.pipeline(cond, dot)?.truth() {
                        self.nodes(then, dot, out)?;
                    } else {
                        self.nodes(otherwise, dot, out)?;
                    }
                }
                Node::With {
                    value,
                    then,
                    otherwise,
                } => {
                    let v = self.pipeline(value, dot)?;
                    if v.truth() {
                        self.nodes(then, &v, out)?;
                    } else {
                        self.nodes(otherwise, dot, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn print(&self, v: &Value<'d>, out: &mut String) -> Result<(), String> {
        match v {
            Value::Data => Err("printing the whole template data is not supported".to_string()),
            other => {
                format_value(other, self.data, out);
                Ok(())
            }
        }
    }

    fn pipeline(&self, p: &Pipeline, dot: &Value<'d>) -> Result<Value<'d>, ExecErr> {
        let mut prev: Option<Value<'d>> = None;
        for c in &p.cmds {
            prev = Some(self.command(c, dot, prev)?);
        }
        Ok(prev.unwrap_or(Value::Missing))
    }

    fn command(
        &self,
        c: &Command,
        dot: &Value<'d>,
        piped: Option<Value<'d>>,
    ) -> Result<Value<'d>, ExecErr> {
        let at = |m: String| {
            let mut ctx = String::new();
            command_string(c, &mut ctx);
            (c.pos, ctx, m)
        };
        match &c.args[0] {
            Arg::Func(f) => self
                .call(*f, &c.args[1..], piped, dot, c.pos)
                .map_err(|e| match e {
                    CallErr::Inner(e) => e,
                    CallErr::Msg(m) => at(m),
                }),
            Arg::Field(chain) => {
                let mut args: Vec<Value<'d>> = Vec::new();
                for a in &c.args[1..] {
                    args.push(self.arg(a, dot, c.pos)?);
                }
                args.extend(piped);
                self.field(dot, chain, args).map_err(at)
            }
            other => {
                if c.args.len() > 1 || piped.is_some() {
                    return Err(at(format!(
                        "can't give argument to non-function {}",
                        arg_string(other)
                    )));
                }
                self.arg(other, dot, c.pos)
            }
        }
    }

    fn arg(&self, a: &Arg, dot: &Value<'d>, pos: usize) -> Result<Value<'d>, ExecErr> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(chain) => self
                .field(dot, chain, Vec::new())
                .map_err(|m| (pos, arg_string(a), m))?,
            Arg::Str { value, .. } => Value::Str(Cow::Owned(value.clone())),
            Arg::Int { value, .. } => Value::Int(*value),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Func(f) => self.call(*f, &[], None, dot, pos).map_err(|e| match e {
                CallErr::Inner(e) => e,
                CallErr::Msg(m) => (pos, f.name().to_string(), m),
            })?,
            Arg::Pipe(p) => self.pipeline(p, dot)?,
        })
    }

    /// `.A.B` on `dot`; `args` go to the last element when it is the method `Meta`.
    fn field(
        &self,
        dot: &Value<'d>,
        chain: &[String],
        args: Vec<Value<'d>>,
    ) -> Result<Value<'d>, String> {
        let d = self.data;
        let mut cur = dot.clone();
        for (i, f) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            cur = match cur {
                Value::Data => match f.as_str() {
                    "Zone" => Value::Str(Cow::Borrowed(d.zone)),
                    "Name" => Value::Str(Cow::Borrowed(d.name)),
                    "Regex" => Value::Str(Cow::Borrowed(d.regex)),
                    "Match" => Value::List(d.matches),
                    "Group" => Value::Map(d.group),
                    "Class" => Value::Str(Cow::Borrowed(d.class)),
                    "Type" => Value::Str(Cow::Borrowed(d.qtype)),
                    "Question" => Value::Question,
                    "Remote" => Value::Str(Cow::Borrowed(d.remote)),
                    "Meta" => {
                        if !last || args.len() != 1 {
                            return Err(format!(
                                "wrong number of args for Meta: want 1 got {}",
                                if last { args.len() } else { 0 }
                            ));
                        }
                        if !matches!(args[0], Value::Str(_)) {
                            return Err(format!(
                                "wrong type for value; expected string; got {}",
                                args[0].type_name()
                            ));
                        }
                        // No metadata plugin in exdns: every name is unset.
                        return Ok(Value::Str(Cow::Borrowed("")));
                    }
                    other => {
                        return Err(format!(
                            "can't evaluate field {other} in type *template.templateData"
                        ));
                    }
                },
                Value::Question => match f.as_str() {
                    "Name" => Value::Str(Cow::Borrowed(d.question.name)),
                    "Qtype" => Value::Uint(u64::from(d.question.qtype), "uint16"),
                    "Qclass" => Value::Uint(u64::from(d.question.qclass), "uint16"),
                    other => {
                        return Err(format!(
                            "can't evaluate field {other} in type *dns.Question"
                        ));
                    }
                },
                Value::Map(m) => match m.get(f.as_str()) {
                    Some(v) => Value::Str(Cow::Borrowed(v)),
                    None => Value::Missing,
                },
                Value::Missing => {
                    return Err(format!("nil pointer evaluating interface {{}}.{f}"));
                }
                other => {
                    return Err(format!(
                        "can't evaluate field {f} in type {}",
                        other.type_name()
                    ));
                }
            };
        }
        if !args.is_empty() {
            return Err(format!(
                "can't give argument to non-function .{}",
                chain.join(".")
            ));
        }
        Ok(cur)
    }

    fn call(
        &self,
        f: Func,
        args: &[Arg],
        piped: Option<Value<'d>>,
        dot: &Value<'d>,
        pos: usize,
    ) -> Result<Value<'d>, CallErr> {
        // and/or evaluate their arguments lazily (Go 1.18).
        if matches!(f, Func::And | Func::Or) {
            let mut last = Value::Bool(false);
            let n = args.len() + usize::from(piped.is_some());
            for i in 0..n {
                let v = match args.get(i) {
                    Some(a) => self.arg(a, dot, pos).map_err(CallErr::Inner)?,
                    None => piped.clone().unwrap_or(Value::Missing),
                };
                let t = v.truth();
                last = v;
                if (f == Func::And && !t) || (f == Func::Or && t) {
                    break;
                }
            }
            return Ok(last);
        }
        let mut vals: Vec<Value<'d>> = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(a, dot, pos).map_err(CallErr::Inner)?);
        }
        vals.extend(piped);
        let (min, max) = f.arity();
        if vals.len() < min || max.is_some_and(|m| vals.len() > m) {
            return Err(CallErr::Msg(format!(
                "wrong number of args for {}: want {} got {}",
                f.name(),
                match max {
                    Some(m) if m == min => m.to_string(),
                    _ => format!("at least {min}"),
                },
                vals.len()
            )));
        }
        let calling = |m: String| CallErr::Msg(format!("error calling {}: {m}", f.name()));
        Ok(match f {
            Func::Index => index(&vals[0], &vals[1..]).map_err(calling)?,
            Func::Len => Value::Int(match &vals[0] {
                Value::Str(s) => s.len() as i128,
                Value::List(l) => l.len() as i128,
                Value::Map(m) => m.len() as i128,
                other => return Err(calling(format!("len of type {}", other.type_name()))),
            }),
            Func::Print => Value::Str(Cow::Owned(sprint(&vals, self.data))),
            Func::Println => Value::Str(Cow::Owned(sprintln(&vals, self.data))),
            Func::Printf => {
                let Value::Str(fmt) = &vals[0] else {
                    return Err(CallErr::Msg(format!(
                        "wrong type for value; expected string; got {}",
                        vals[0].type_name()
                    )));
                };
                Value::Str(Cow::Owned(sprintf(fmt, &vals[1..], self.data)))
            }
            Func::ParseInt => {
                let s = match &vals[0] {
                    Value::Str(s) => s.as_ref(),
                    Value::Missing => {
                        return Err(CallErr::Msg("invalid value; expected string".to_string()));
                    }
                    other => {
                        return Err(CallErr::Msg(format!(
                            "wrong type for value; expected string; got {}",
                            other.type_name()
                        )));
                    }
                };
                let int = |v: &Value<'_>| match v {
                    Value::Int(i) => {
                        i64::try_from(*i).map_err(|_| CallErr::Msg(format!("{i} overflows int")))
                    }
                    other => Err(CallErr::Msg(format!(
                        "wrong type for value; expected int; got {}",
                        other.type_name()
                    ))),
                };
                let base = int(&vals[1])?;
                let bits = int(&vals[2])?;
                Value::Uint(go_parse_uint(s, base, bits).map_err(calling)?, "uint64")
            }
            Func::Not => Value::Bool(!vals[0].truth()),
            Func::Eq => {
                if vals.len() < 2 {
                    return Err(calling("missing argument for comparison".to_string()));
                }
                let mut any = false;
                for v in &vals[1..] {
                    if compare(&vals[0], v).map_err(calling)? == std::cmp::Ordering::Equal {
                        any = true;
                        break;
                    }
                }
                Value::Bool(any)
            }
            Func::Ne => Value::Bool(
                compare(&vals[0], &vals[1]).map_err(calling)? != std::cmp::Ordering::Equal,
            ),
            Func::Lt | Func::Le | Func::Gt | Func::Ge => {
                if matches!(vals[0], Value::Bool(_)) || matches!(vals[1], Value::Bool(_)) {
                    return Err(calling("invalid type for comparison".to_string()));
                }
                let o = compare(&vals[0], &vals[1]).map_err(calling)?;
                Value::Bool(match f {
                    Func::Lt => o.is_lt(),
                    Func::Le => o.is_le(),
                    Func::Gt => o.is_gt(),
                    _ => o.is_ge(),
                })
            }
            Func::And | Func::Or => unreachable!("handled above"),
        })
    }
}

enum CallErr {
    /// An error from evaluating an argument (already located).
    Inner(ExecErr),
    /// The function's own error, located at the command.
    Msg(String),
}

fn pipe_text(p: &Pipeline) -> String {
    let mut s = String::new();
    pipeline_string(p, &mut s);
    s
}

fn index<'d>(item: &Value<'d>, keys: &[Value<'d>]) -> Result<Value<'d>, String> {
    let mut cur = item.clone();
    for k in keys {
        cur = match cur {
            Value::List(l) => {
                let i = int_index(k, "slice/array")?;
                match usize::try_from(i).ok().and_then(|i| l.get(i)) {
                    Some(s) => Value::Str(Cow::Borrowed(s)),
                    None => return Err(format!("index out of range: {i}")),
                }
            }
            Value::Str(s) => {
                let i = int_index(k, "string")?;
                match usize::try_from(i).ok().and_then(|i| s.as_bytes().get(i)) {
                    Some(b) => Value::Uint(u64::from(*b), "uint8"),
                    None => return Err(format!("index out of range: {i}")),
                }
            }
            Value::Map(m) => match k {
                Value::Str(key) => match m.get(key.as_ref()) {
                    Some(v) => Value::Str(Cow::Borrowed(v)),
                    None => Value::Str(Cow::Borrowed("")),
                },
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ));
                }
            },
            Value::Missing => return Err("index of untyped nil".to_string()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(cur)
}

fn int_index(k: &Value<'_>, what: &str) -> Result<i128, String> {
    match k {
        Value::Int(i) => Ok(*i),
        Value::Uint(u, _) => Ok(i128::from(*u)),
        Value::Missing => Err("cannot index slice/array with nil".to_string()),
        other => Err(format!(
            "cannot index {what} with type {}",
            other.type_name()
        )),
    }
}

fn compare(a: &Value<'_>, b: &Value<'_>) -> Result<std::cmp::Ordering, String> {
    let num = |v: &Value<'_>| match v {
        Value::Int(i) => Some(*i),
        Value::Uint(u, _) => Some(i128::from(*u)),
        _ => None,
    };
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.as_ref().cmp(y.as_ref())),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::List(_) | Value::Map(_) | Value::Data | Value::Question, _)
        | (_, Value::List(_) | Value::Map(_) | Value::Data | Value::Question) => {
            Err("non-comparable type".to_string())
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => Ok(x.cmp(&y)),
            _ => Err("incompatible types for comparison".to_string()),
        },
    }
}

/// Go's `strconv.ParseUint(s, base, bitSize)`, with its error wording.
pub fn go_parse_uint(s: &str, base: i64, bits: i64) -> Result<u64, String> {
    let fn_err = |what: &str| format!("strconv.ParseUint: parsing {}: {what}", go_quote(s));
    if s.is_empty() {
        return Err(fn_err("invalid syntax"));
    }
    let base0 = base == 0;
    let mut body = s;
    let base = if base0 {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("0x") && s.len() > 2 {
            body = &s[2..];
            16
        } else if lower.starts_with("0o") && s.len() > 2 {
            body = &s[2..];
            8
        } else if lower.starts_with("0b") && s.len() > 2 {
            body = &s[2..];
            2
        } else if s.starts_with('0') && s.len() > 1 {
            body = &s[1..];
            8
        } else {
            10
        }
    } else if (2..=36).contains(&base) {
        base as u32
    } else {
        return Err(fn_err(&format!("invalid base {base}")));
    };
    let bits = match bits {
        0 => 64,
        1..=64 => bits as u32,
        _ => return Err(fn_err(&format!("invalid bit size {bits}"))),
    };
    let max: u64 = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for c in body.chars() {
        if c == '_' && base0 {
            underscores = true;
            continue;
        }
        let Some(d) = c.to_digit(36).filter(|d| *d < base) else {
            return Err(fn_err("invalid syntax"));
        };
        n = match n
            .checked_mul(u64::from(base))
            .and_then(|n| n.checked_add(u64::from(d)))
        {
            Some(n) if n <= max => n,
            _ => return Err(fn_err("value out of range")),
        };
    }
    if underscores && !underscore_ok(s) {
        return Err(fn_err("invalid syntax"));
    }
    Ok(n)
}

/// Go's `underscoreOK`: `_` only between digits or after a base prefix.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let hex = b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'x' | b'o' | b'b');
    if hex {
        i = 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            return false;
        }
        i += 1;
    }
    saw != b'_'
}

// ---------------------------------------------------------------------------------------------
// Formatting as Go's fmt does

/// `%v` of a value.
fn format_value(v: &Value<'_>, d: &Data<'_>, out: &mut String) {
    match v {
        Value::Str(s) => out.push_str(s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u, _) => {
            let _ = write!(out, "{u}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::List(l) => {
            out.push('[');
            out.push_str(&l.join(" "));
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                out.push_str(v);
            }
            out.push(']');
        }
        Value::Missing => out.push_str("<no value>"),
        Value::Data => out.push_str("<template data>"),
        Value::Question => {
            let q = d.question;
            let _ = write!(out, ";{}\t{}\t {}", q.name, q.class_text, q.type_text);
        }
    }
}

/// `%v` as an operand of print/printf (a missing key is Go's nil there).
fn format_operand(v: &Value<'_>, d: &Data<'_>, out: &mut String) {
    match v {
        Value::Missing => out.push_str("<nil>"),
        other => format_value(other, d, out),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(vals: &[Value<'_>], d: &Data<'_>) -> String {
    let mut out = String::new();
    for (i, v) in vals.iter().enumerate() {
        if i > 0 && !matches!(v, Value::Str(_)) && !matches!(vals[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        format_operand(v, d, &mut out);
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, a newline at the end.
fn sprintln(vals: &[Value<'_>], d: &Data<'_>) -> String {
    let mut out = String::new();
    for (i, v) in vals.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        format_operand(v, d, &mut out);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs `v s d q x X o b c t %`, flags `+ - # space 0`, width and
/// precision; mismatches print as Go does (`%!d(string=foo)`, `%!s(MISSING)`,
/// `%!(EXTRA int=1)`).
fn sprintf(f: &str, args: &[Value<'_>], d: &Data<'_>) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&fl) = chars.peek() {
            match fl {
                '+' => spec.plus = true,
                '-' => spec.minus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(&dg) = chars.peek() {
                let Some(v) = dg.to_digit(10) else { break };
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(v as usize));
                chars.next();
            }
            n
        };
        spec.width = num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        fmt_one(&mut out, verb, spec, a, d);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            bad_operand(&mut out, a, d);
        }
        out.push(')');
    }
    out
}

fn bad_operand(out: &mut String, a: &Value<'_>, d: &Data<'_>) {
    match a {
        Value::Missing => out.push_str("<nil>"),
        other => {
            out.push_str(other.type_name());
            out.push('=');
            format_value(other, d, out);
        }
    }
}

fn bad_verb(out: &mut String, verb: char, a: &Value<'_>, d: &Data<'_>) {
    let _ = write!(out, "%!{verb}(");
    bad_operand(out, a, d);
    out.push(')');
}

fn pad(out: &mut String, s: &str, spec: Spec, numeric: bool) {
    let len = s.chars().count();
    let w = spec.width.unwrap_or(0);
    if len >= w {
        out.push_str(s);
        return;
    }
    let fill = w - len;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero {
        // Zeros go after a sign or base prefix.
        let (sign, rest) = if numeric && (s.starts_with('-') || s.starts_with('+')) {
            s.split_at(1)
        } else {
            ("", s)
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

fn fmt_one(out: &mut String, verb: char, spec: Spec, a: &Value<'_>, d: &Data<'_>) {
    let int = match a {
        Value::Int(i) => Some(*i),
        Value::Uint(u, _) => Some(i128::from(*u)),
        _ => None,
    };
    if let Some(i) = int {
        let mag = i.unsigned_abs();
        let digits = match verb {
            'd' | 'v' => mag.to_string(),
            'x' => format!("{mag:x}"),
            'X' => format!("{mag:X}"),
            'o' | 'O' => format!("{mag:o}"),
            'b' => format!("{mag:b}"),
            'c' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                pad(out, &c.to_string(), spec, false);
                return;
            }
            'q' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                pad(out, &format!("{c:?}"), spec, false);
                return;
            }
            _ => return bad_verb(out, verb, a, d),
        };
        let mut digits = digits;
        if let Some(p) = spec.prec
            && digits.len() < p
        {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
        let prefix = match (verb, spec.sharp) {
            ('x', true) => "0x",
            ('X', true) => "0X",
            ('o', true) if !digits.starts_with('0') => "0",
            ('O', _) => "0o",
            ('b', true) => "0b",
            _ => "",
        };
        let sign = if i < 0 {
            "-"
        } else if spec.plus {
            "+"
        } else if spec.space {
            " "
        } else {
            ""
        };
        let s = format!("{sign}{prefix}{digits}");
        let spec = Spec {
            zero: spec.zero && spec.prec.is_none(),
            ..spec
        };
        pad(out, &s, spec, true);
        return;
    }
    match a {
        Value::Str(s) => {
            let s: &str = s;
            let truncated: String;
            let s = match spec.prec {
                Some(p) if matches!(verb, 's' | 'v' | 'q') => {
                    truncated = s.chars().take(p).collect();
                    truncated.as_str()
                }
                _ => s,
            };
            match verb {
                's' | 'v' => pad(out, s, spec, false),
                'q' => pad(out, &go_quote(s), spec, false),
                'x' | 'X' => {
                    let mut h = String::with_capacity(s.len() * 2);
                    for b in s.bytes() {
                        if verb == 'x' {
                            let _ = write!(h, "{b:02x}");
                        } else {
                            let _ = write!(h, "{b:02X}");
                        }
                    }
                    pad(out, &h, spec, false);
                }
                _ => bad_verb(out, verb, a, d),
            }
        }
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, &b.to_string(), spec, false),
            _ => bad_verb(out, verb, a, d),
        },
        Value::List(l) => match verb {
            's' | 'v' => {
                let mut s = String::new();
                format_value(a, d, &mut s);
                pad(out, &s, spec, false);
            }
            'q' => {
                let q: Vec<String> = l.iter().map(|x| go_quote(x)).collect();
                pad(out, &format!("[{}]", q.join(" ")), spec, false);
            }
            _ => {
                out.push('[');
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    bad_verb(out, verb, &Value::Str(Cow::Borrowed(x)), d);
                }
                out.push(']');
            }
        },
        Value::Missing => match verb {
            'v' => pad(out, "<nil>", spec, false),
            _ => {
                let _ = write!(out, "%!{verb}(<nil>)");
            }
        },
        other => match verb {
            's' | 'v' => {
                let mut s = String::new();
                format_value(other, d, &mut s);
                pad(out, &s, spec, false);
            }
            _ => bad_verb(out, verb, a, d),
        },
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `text` for the query `ip-10-1-2-3.example.` matched by
    /// `^ip-(?P<a>10)-(?P<b>[0-9]+)-([0-9]+)-(?P<d>[0-9]+)[.]example[.]$`.
    fn render(text: &str) -> Result<String, String> {
        let t = Template::parse("answer", text)?;
        let matches = ["ip-10-1-2-3.example.", "10", "1", "2", "3"];
        let mut group: BTreeMap<Cow<'_, str>, &str> = BTreeMap::new();
        for (i, m) in matches.iter().enumerate() {
            group.insert(Cow::Owned(i.to_string()), m);
        }
        group.insert(Cow::Borrowed("a"), "10");
        group.insert(Cow::Borrowed("b"), "1");
        group.insert(Cow::Borrowed("d"), "3");
        let data = Data {
            zone: "example.",
            name: "ip-10-1-2-3.example.",
            regex: "^ip-(?P<a>10)-(?P<b>[0-9]+)-([0-9]+)-(?P<d>[0-9]+)[.]example[.]$",
            matches: &matches,
            group: &group,
            class: "IN",
            qtype: "A",
            question: Question {
                name: "IP-10-1-2-3.Example.",
                qtype: 1,
                qclass: 1,
                class_text: "IN",
                type_text: "A",
            },
            remote: "192.0.2.7",
        };
        let mut out = String::new();
        t.execute(&data, &mut out).map(|()| out)
    }

    fn ok(text: &str) -> String {
        render(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn parse_err(text: &str) -> String {
        match Template::parse("answer", text) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn fields_of_the_data() {
        let table = [
            (
                "{{ .Name }} 60 IN A 10.0.0.1",
                "ip-10-1-2-3.example. 60 IN A 10.0.0.1",
            ),
            ("{{ .Zone }}", "example."),
            ("{{ .Class }} {{ .Type }}", "IN A"),
            ("{{ .Remote }}", "192.0.2.7"),
            (
                "{{ .Regex }}",
                "^ip-(?P<a>10)-(?P<b>[0-9]+)-([0-9]+)-(?P<d>[0-9]+)[.]example[.]$",
            ),
            ("{{ index .Match 0 }}", "ip-10-1-2-3.example."),
            ("{{ index .Match 3 }}", "2"),
            ("{{ .Match }}", "[ip-10-1-2-3.example. 10 1 2 3]"),
            ("{{ .Group.a }}.{{ .Group.b }}.{{ .Group.d }}", "10.1.3"),
            ("{{ index .Group \"b\" }}", "1"),
            ("{{ index .Group \"3\" }}", "2"),
            // A missing key: Go's <no value> through a field, "" through index.
            ("[{{ .Group.zz }}]", "[<no value>]"),
            ("[{{ index .Group \"zz\" }}]", "[]"),
            (
                "{{ .Question.Name }} {{ .Question.Qtype }} {{ .Question.Qclass }}",
                "IP-10-1-2-3.Example. 1 1",
            ),
            ("{{ .Question }}", ";IP-10-1-2-3.Example.\tIN\t A"),
            ("[{{ .Meta \"kubernetes/client-namespace\" }}]", "[]"),
            ("no actions at all", "no actions at all"),
            ("", ""),
        ];
        for (text, want) in table {
            assert_eq!(ok(text), want, "{text:?}");
        }
    }

    #[test]
    fn functions_and_pipelines() {
        let table = [
            ("{{ parseInt \"ff\" 16 8 }}", "255"),
            (
                "10.{{ parseInt .Group.b 16 8 }}.{{ parseInt (index .Match 4) 10 8 }}",
                "10.1.3",
            ),
            ("{{ parseInt \"0x1f\" 0 64 }}", "31"),
            (
                "{{ len .Match }} {{ len .Name }} {{ len .Group }}",
                "5 20 8",
            ),
            ("{{ .Name | len }}", "20"),
            ("{{ index .Match 2 | printf \"<%s>\" }}", "<1>"),
            (
                "{{ printf \"%s-%03d-%x-%5s|%-4s|\" .Zone 7 255 \"ab\" \"c\" }}",
                "example.-007-ff-   ab|c   |",
            ),
            ("{{ printf \"%d %s\" \"x\" }}", "%!d(string=x) %!s(MISSING)"),
            ("{{ printf \"%v\" 1 2 }}", "1%!(EXTRA int=2)"),
            (
                "{{ printf \"%q %v %t %%\" .Zone .Match true }}",
                "\"example.\" [ip-10-1-2-3.example. 10 1 2 3] true %",
            ),
            ("{{ print \"a\" 1 2 \"b\" }}", "a1 2b"),
            ("{{ println .Zone 1 }}", "example. 1\n"),
            ("{{ (index .Match 1) }}", "10"),
            (
                "{{ not true }} {{ and 1 0 }} {{ or 0 \"x\" }} {{ and 1 2 }}",
                "false 0 x 2",
            ),
            (
                "{{ eq .Type \"A\" }} {{ eq 1 2 3 1 }} {{ ne .Class \"IN\" }} {{ lt 1 2 }} {{ ge \"b\" \"a\" }}",
                "true true false true true",
            ),
            ("{{ index \"AB\" 1 }}", "66"),
            (
                "{{ 0x10 }} {{ -3 }} {{ 1_000 }} {{ true }} {{ `raw\\n` }} {{ \"tab\\there\" }}",
                "16 -3 1000 true raw\\n tab\there",
            ),
        ];
        for (text, want) in table {
            assert_eq!(ok(text), want, "{text:?}");
        }
    }

    #[test]
    fn control_flow_and_trimming() {
        let table = [
            ("{{ if eq .Type \"A\" }}a{{ else }}other{{ end }}", "a"),
            (
                "{{ if eq .Type \"AAAA\" }}6{{ else if eq .Type \"A\" }}4{{ else }}?{{ end }}",
                "4",
            ),
            ("{{ if .Group.zz }}yes{{ end }}", ""),
            (
                "{{ with index .Match 1 }}[{{ . }}]{{ else }}none{{ end }}",
                "[10]",
            ),
            ("{{ with .Group.zz }}{{ . }}{{ else }}none{{ end }}", "none"),
            ("{{ with .Group }}{{ .b }}{{ end }}", "1"),
            ("a  {{- .Zone -}}  b", "aexample.b"),
            ("a {{- /* a comment */ -}} b", "ab"),
            ("a{{/* comment */}}b", "ab"),
            ("{{\n.Zone\n}}", "example."),
        ];
        for (text, want) in table {
            assert_eq!(ok(text), want, "{text:?}");
        }
    }

    #[test]
    fn the_parse_tree_prints_as_go_prints_it() {
        let table = [
            (
                "{{ .Name }} 5 IN CNAME {{  index .Match 1 }}.dns01.clouddns.com",
                "{{.Name}} 5 IN CNAME {{index .Match 1}}.dns01.clouddns.com",
            ),
            (
                "{{- .Group.a -}} x {{ parseInt .Group.b 16 8 | printf \"%d\" }}",
                "{{.Group.a}}x {{parseInt .Group.b 16 8 | printf \"%d\"}}",
            ),
            (
                "{{ if eq .Type \"A\" }}a{{ else if .Zone }}b{{ else }}c{{ end }}",
                "{{if eq .Type \"A\"}}a{{else}}{{if .Zone}}b{{else}}c{{end}}{{end}}",
            ),
            (
                "{{ with (index .Match 1) }}{{ . }}{{ end }}",
                "{{with (index .Match 1)}}{{.}}{{end}}",
            ),
            ("x{{/* gone */}}y", "xy"),
        ];
        for (text, want) in table {
            let t = Template::parse("answer", text).unwrap();
            assert_eq!(t.canonical(), want, "{text:?}");
            assert_eq!(t.source(), text);
        }
    }

    #[test]
    fn static_text_and_group_use_are_known_at_setup() {
        let t = Template::parse("answer", "a.example. 60 IN A 192.0.2.1").unwrap();
        assert_eq!(t.static_text(), Some("a.example. 60 IN A 192.0.2.1"));
        assert!(!t.uses_group());
        let t = Template::parse("answer", "a{{/* c */}}").unwrap();
        assert_eq!(t.static_text(), Some("a"));
        let t = Template::parse("answer", "{{ .Name }}").unwrap();
        assert_eq!(t.static_text(), None);
        assert!(
            Template::parse("answer", "{{ .Group.a }}")
                .unwrap()
                .uses_group()
        );
        assert!(
            Template::parse("answer", "{{ if 1 }}{{ index .Group \"a\" }}{{ end }}")
                .unwrap()
                .uses_group()
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let table = [
            ("{{ .Name", "template: answer:1: unclosed action"),
            (
                "{{ .Name }",
                "template: answer:1: unrecognized character in action: U+007D '}'",
            ),
            (
                "{{ foo .Name }}",
                "template: answer:1: function \"foo\" not defined",
            ),
            (
                "{{ html .Name }}",
                "template: answer:1: function \"html\" is not supported by exdns",
            ),
            ("{{ }}", "template: answer:1: missing value for command"),
            ("{{ end }}", "template: answer:1: unexpected {{end}}"),
            ("{{ else }}", "template: answer:1: unexpected {{else}}"),
            ("{{ if .Name }}x", "template: answer:1: unexpected EOF"),
            (
                "{{ if .Name }}x{{ else }}y{{ else }}z{{ end }}",
                "template: answer:1: expected end; found {{else}}",
            ),
            (
                "{{ range .Match }}{{ end }}",
                "template: answer:1: {{range}} is not supported by exdns",
            ),
            (
                "{{ template \"x\" }}",
                "template: answer:1: {{template}} is not supported by exdns",
            ),
            (
                "{{ $x := 1 }}",
                "template: answer:1: variables ($) are not supported by exdns",
            ),
            (
                "{{ $ }}",
                "template: answer:1: variables ($) are not supported by exdns",
            ),
            (
                "{{ \"abc }}",
                "template: answer:1: unterminated quoted string",
            ),
            (
                "{{ `abc }}",
                "template: answer:1: unterminated raw quoted string",
            ),
            (
                "{{ 'a' }}",
                "template: answer:1: character constants are not supported by exdns",
            ),
            (
                "{{ 1.5 }}",
                "template: answer:1: floating-point constants are not supported by exdns",
            ),
            ("{{ 0x }}", "template: answer:1: bad number syntax: \"0x\""),
            ("{{ ( .Name }}", "template: answer:1: unclosed left paren"),
            (
                "{{ .Name ) }}",
                "template: answer:1: unexpected right paren",
            ),
            (
                "{{ .Name | }}",
                "template: answer:1: missing command after pipe",
            ),
            (
                "{{ .Name | \"x\" }}",
                "template: answer:1: non executable command in pipeline stage 2",
            ),
            (
                "{{ \"x\".Name }}",
                "template: answer:1: unexpected . after term \"\\\"x\\\"\"",
            ),
            (
                "{{ (.Question).Name }}",
                "template: answer:1: field access on a parenthesized pipeline is not supported by exdns",
            ),
            ("{{ nil }}", "template: answer:1: nil is not a command"),
            (
                "{{ # }}",
                "template: answer:1: unrecognized character in action: U+0023 '#'",
            ),
            ("{{/* open", "template: answer:1: unclosed comment"),
            (
                "{{/* c */ .Name }}",
                "template: answer:1: comment ends before closing delimiter",
            ),
            ("x\n{{ .Name", "template: answer:2: unclosed action"),
            // Checked at setup by exdns (Go finds these only when a query executes them).
            (
                "{{ .Nmae }}",
                "template: answer:1: can't evaluate field Nmae in the template data (fields: .Zone .Name .Regex .Match .Group .Class .Type .Question .Remote .Meta)",
            ),
            (
                "{{ .Message }}",
                "template: answer:1: .Message is not supported by exdns",
            ),
            (
                "{{ .Name.Foo }}",
                "template: answer:1: can't evaluate field Foo in type string",
            ),
            (
                "{{ .Match.Foo }}",
                "template: answer:1: can't evaluate field Foo in type []string",
            ),
            (
                "{{ .Group.a.b }}",
                "template: answer:1: can't evaluate field b in type string",
            ),
            (
                "{{ .Question.Foo }}",
                "template: answer:1: can't evaluate field Foo in type *dns.Question",
            ),
            (
                "{{ . }}",
                "template: answer:1: printing the whole template data ({{.}}) is not supported by exdns",
            ),
            (
                "{{ len .Match .Name }}",
                "template: answer:1: wrong number of args for len: want 1 got 2",
            ),
            (
                "{{ index }}",
                "template: answer:1: wrong number of args for index: want at least 1 got 0",
            ),
            (
                "{{ parseInt .Group.b 16 }}",
                "template: answer:1: wrong number of args for parseInt: want 3 got 2",
            ),
            (
                "{{ .Name | parseInt 16 8 | len .Zone }}",
                "template: answer:1: wrong number of args for len: want 1 got 2",
            ),
            (
                "{{ .Meta }}",
                "template: answer:1: wrong number of args for Meta: want 1 got 0",
            ),
            (
                "{{ print .Meta }}",
                "template: answer:1: wrong number of args for Meta: want 1 got 0",
            ),
            (
                "{{ .Name 1 }}",
                "template: answer:1: can't give argument to non-function .Name",
            ),
            (
                "{{ \"x\" 1 }}",
                "template: answer:1: can't give argument to non-function \"x\"",
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_err(text), want, "{text:?}");
        }
    }

    #[test]
    fn execution_errors_read_as_go() {
        let table = [
            (
                "{{ index .Match 5 }}",
                "template: answer:1:3: executing \"answer\" at <index .Match 5>: error calling index: index out of range: 5",
            ),
            (
                "x {{ index .Match -1 }}",
                "template: answer:1:5: executing \"answer\" at <index .Match -1>: error calling index: index out of range: -1",
            ),
            (
                "{{ index .Match \"a\" }}",
                "template: answer:1:3: executing \"answer\" at <index .Match \"a\">: error calling index: cannot index slice/array with type string",
            ),
            (
                "{{ index .Group 1 }}",
                "template: answer:1:3: executing \"answer\" at <index .Group 1>: error calling index: value has type int; should be string",
            ),
            (
                "{{ parseInt .Name 10 8 }}",
                "template: answer:1:3: executing \"answer\" at <parseInt .Name 10 8>: error calling parseInt: strconv.ParseUint: parsing \"ip-10-1-2-3.example.\": invalid syntax",
            ),
            (
                "{{ parseInt \"300\" 10 8 }}",
                "template: answer:1:3: executing \"answer\" at <parseInt \"300\" 10 8>: error calling parseInt: strconv.ParseUint: parsing \"300\": value out of range",
            ),
            (
                "{{ parseInt .Group.zz 10 8 }}",
                "template: answer:1:3: executing \"answer\" at <parseInt .Group.zz 10 8>: invalid value; expected string",
            ),
            (
                "{{ parseInt 5 10 8 }}",
                "template: answer:1:3: executing \"answer\" at <parseInt 5 10 8>: wrong type for value; expected string; got int",
            ),
            (
                "{{ lt true false }}",
                "template: answer:1:3: executing \"answer\" at <lt true false>: error calling lt: invalid type for comparison",
            ),
            (
                "{{ eq .Name 1 }}",
                "template: answer:1:3: executing \"answer\" at <eq .Name 1>: error calling eq: incompatible types for comparison",
            ),
            (
                "{{ with .Zone }}{{ .Foo }}{{ end }}",
                "template: answer:1:19: executing \"answer\" at <.Foo>: can't evaluate field Foo in type string",
            ),
            (
                "a\n  {{ index .Match 9 }}",
                "template: answer:2:5: executing \"answer\" at <index .Match 9>: error calling index: index out of range: 9",
            ),
        ];
        for (text, want) in table {
            assert_eq!(render(text).unwrap_err(), want, "{text:?}");
        }
    }

    #[test]
    fn parse_uint_as_go() {
        assert_eq!(go_parse_uint("255", 10, 8), Ok(255));
        assert_eq!(go_parse_uint("ff", 16, 8), Ok(255));
        assert_eq!(go_parse_uint("0b101", 0, 8), Ok(5));
        assert_eq!(go_parse_uint("0o17", 0, 8), Ok(15));
        assert_eq!(go_parse_uint("017", 0, 8), Ok(15));
        assert_eq!(go_parse_uint("1_000", 0, 16), Ok(1000));
        assert_eq!(go_parse_uint("18446744073709551615", 10, 0), Ok(u64::MAX));
        let e = |s: &str, base, bits| go_parse_uint(s, base, bits).unwrap_err();
        assert_eq!(
            e("", 10, 8),
            "strconv.ParseUint: parsing \"\": invalid syntax"
        );
        assert_eq!(
            e("256", 10, 8),
            "strconv.ParseUint: parsing \"256\": value out of range"
        );
        assert_eq!(
            e("-1", 10, 8),
            "strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            e("1_000", 10, 16),
            "strconv.ParseUint: parsing \"1_000\": invalid syntax"
        );
        assert_eq!(
            e("1__0", 0, 16),
            "strconv.ParseUint: parsing \"1__0\": invalid syntax"
        );
        assert_eq!(
            e("1", 1, 8),
            "strconv.ParseUint: parsing \"1\": invalid base 1"
        );
        assert_eq!(
            e("1", 10, 65),
            "strconv.ParseUint: parsing \"1\": invalid bit size 65"
        );
        assert_eq!(
            e("70000", 10, 16),
            "strconv.ParseUint: parsing \"70000\": value out of range"
        );
    }

    #[test]
    fn quote_as_go() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }
}
