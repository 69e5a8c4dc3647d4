//! The subset of CoreDNS's expression language (expr-lang/expr with CoreDNS's
//! `plugin/pkg/expression` functions) that `view` accepts, compiled once at setup and evaluated
//! per query without allocating in the common cases (`incidr(client_ip(), 'CIDR')`, `name() ==
//! '…'`, `type() in [...]`).
//!
//! Grammar (expr-lang precedence, lowest first):
//!
//! ```text
//! expr    = or
//! or      = and { ("or" | "||") and }
//! and     = cmp { ("and" | "&&") cmp }
//! cmp     = unary [ OP unary | ["not"] "in" list ]
//!           OP: == != < <= > >= matches contains startsWith endsWith
//! unary   = ("not" | "!") unary | primary
//! primary = STRING | INT | true | false | "(" expr ")" | FUNC "(" [expr {"," expr}] ")"
//! list    = "[" [literal {"," literal}] "]"
//! ```
//!
//! Functions: `name() type() class() proto() client_ip() port() server_ip() server_port()`
//! (strings), `id() opcode() size() bufsize()` (integers), `do()` (boolean), `incidr(IP, CIDR)`
//! and `metadata(LABEL)` (always "": exdns has no *metadata* plugin). Expressions are type
//! checked at setup as expr-lang does; anything outside the subset is a setup error.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use regex::Regex;

use crate::dns::request::Proto;

/// What a view's expressions can ask about a query. Built per query from the wire (or the
/// decoded request) without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Lower-case, absolute (`www.example.org.`).
    pub name: &'a str,
    pub qtype: u16,
    pub qclass: u16,
    pub src: SocketAddr,
    pub local: SocketAddr,
    pub proto: Proto,
    /// The query's size on the wire.
    pub size: usize,
    pub id: u16,
    pub opcode: u8,
    /// The OPT record's (UDP size, DO bit), when there is one.
    pub edns: Option<(u16, bool)>,
}

/// The type of an expression, checked at setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Bool,
}

impl Ty {
    fn as_str(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::Bool => "bool",
        }
    }
}

/// A function of the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Name,
    Type,
    Class,
    Proto,
    ClientIp,
    Port,
    ServerIp,
    ServerPort,
    Id,
    Opcode,
    Size,
    Bufsize,
    Do,
}

impl Func {
    fn lookup(name: &str) -> Option<Func> {
        Some(match name {
            "name" => Func::Name,
            "type" => Func::Type,
            "class" => Func::Class,
            "proto" => Func::Proto,
            "client_ip" => Func::ClientIp,
            "port" => Func::Port,
            "server_ip" => Func::ServerIp,
            "server_port" => Func::ServerPort,
            "id" => Func::Id,
            "opcode" => Func::Opcode,
            "size" => Func::Size,
            "bufsize" => Func::Bufsize,
            "do" => Func::Do,
            _ => return None,
        })
    }
    fn ty(self) -> Ty {
        match self {
            Func::Id | Func::Opcode | Func::Size | Func::Bufsize => Ty::Int,
            Func::Do => Ty::Bool,
            _ => Ty::Str,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    EndsWith,
}

/// A compiled expression.
#[derive(Debug)]
enum Node {
    Str(String),
    Int(i64),
    Bool(bool),
    Call(Func),
    Not(Box<Node>),
    /// Chains are flat (`a or b or c`): width never costs stack.
    And(Vec<Node>),
    Or(Vec<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Matches(Box<Node>, Regex),
    /// `x in [...]` (`negate`: `not in`).
    In(Box<Node>, Vec<Node>, bool),
    /// `incidr(client_ip(), 'CIDR')`: the client address checked as is.
    ClientInCidr(IpNet),
    /// `incidr(IP, CIDR)` in general; a CIDR given literally is parsed at setup.
    InCidr(Box<Node>, Result<IpNet, Box<Node>>),
}

/// A value during evaluation: strings are borrowed, or written into a stack buffer when they
/// are numbers or addresses.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Ip(IpAddr),
    Port(u16),
    Type(u16),
    Class(u16),
    Int(i64),
    Bool(bool),
}

/// A string of a [`Val`], formatted on the stack.
struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl StackStr {
    fn new() -> Self {
        StackStr {
            buf: [0; 64],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Runs `f` with the string form of a string-typed value.
fn with_str<R>(v: Val<'_>, f: impl FnOnce(&str) -> R) -> R {
    match v {
        Val::Str(s) => f(s),
        Val::Ip(ip) => {
            let mut s = StackStr::new();
            let _ = write!(s, "{ip}");
            f(s.as_str())
        }
        Val::Port(p) => {
            let mut s = StackStr::new();
            let _ = write!(s, "{p}");
            f(s.as_str())
        }
        Val::Type(t) => {
            let mut s = StackStr::new();
            write_type(&mut s, t);
            f(s.as_str())
        }
        Val::Class(c) => {
            let mut s = StackStr::new();
            write_class(&mut s, c);
            f(s.as_str())
        }
        Val::Int(i) => {
            let mut s = StackStr::new();
            let _ = write!(s, "{i}");
            f(s.as_str())
        }
        Val::Bool(b) => f(if b { "true" } else { "false" }),
    }
}

/// A runtime error (expr's `Run` error): the view does not match.
struct Fail;

impl Node {
    fn eval<'a>(&'a self, q: &Facts<'a>) -> Result<Val<'a>, Fail> {
        Ok(match self {
            Node::Str(s) => Val::Str(s),
            Node::Int(i) => Val::Int(*i),
            Node::Bool(b) => Val::Bool(*b),
            Node::Call(f) => call(*f, q),
            Node::Not(n) => Val::Bool(!n.truth(q)?),
            Node::And(v) => {
                for n in v {
                    if !n.truth(q)? {
                        return Ok(Val::Bool(false));
                    }
                }
                Val::Bool(true)
            }
            Node::Or(v) => {
                for n in v {
                    if n.truth(q)? {
                        return Ok(Val::Bool(true));
                    }
                }
                Val::Bool(false)
            }
            Node::Cmp(op, a, b) => Val::Bool(compare(*op, a.eval(q)?, b.eval(q)?)),
            Node::Matches(a, re) => Val::Bool(with_str(a.eval(q)?, |s| re.is_match(s))),
            Node::In(a, list, negate) => {
                let v = a.eval(q)?;
                let mut found = false;
                for item in list {
                    if compare(Cmp::Eq, v, item.eval(q)?) {
                        found = true;
                        break;
                    }
                }
                Val::Bool(found != *negate)
            }
            Node::ClientInCidr(net) => Val::Bool(net.contains(&q.src.ip().to_canonical())),
            Node::InCidr(ip, cidr) => {
                let ip = match ip.eval(q)? {
                    Val::Ip(ip) => ip,
                    v => with_str(v, parse_ip).ok_or(Fail)?,
                };
                let contains = match cidr {
                    Ok(net) => net.contains(&ip),
                    Err(node) => {
                        let net =
                            with_str(node.eval(q)?, |s| s.parse::<IpNet>().ok()).ok_or(Fail)?;
                        net.contains(&ip)
                    }
                };
                Val::Bool(contains)
            }
        })
    }

    /// A boolean operand (type checked at setup).
    fn truth(&self, q: &Facts<'_>) -> Result<bool, Fail> {
        match self.eval(q)? {
            Val::Bool(b) => Ok(b),
            _ => Err(Fail),
        }
    }
}

/// Go's `net.ParseIP` (an IPv4-mapped IPv6 address is its IPv4 address).
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn compare(op: Cmp, a: Val<'_>, b: Val<'_>) -> bool {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => match op {
            Cmp::Eq => x == y,
            Cmp::Ne => x != y,
            Cmp::Lt => x < y,
            Cmp::Le => x <= y,
            Cmp::Gt => x > y,
            Cmp::Ge => x >= y,
            _ => false,
        },
        (Val::Bool(x), Val::Bool(y)) => match op {
            Cmp::Eq => x == y,
            Cmp::Ne => x != y,
            _ => false,
        },
        (Val::Int(_) | Val::Bool(_), _) | (_, Val::Int(_) | Val::Bool(_)) => op == Cmp::Ne,
        (a, b) => with_str(a, |x| {
            with_str(b, |y| match op {
                Cmp::Eq => x == y,
                Cmp::Ne => x != y,
                Cmp::Lt => x < y,
                Cmp::Le => x <= y,
                Cmp::Gt => x > y,
                Cmp::Ge => x >= y,
                Cmp::Contains => x.contains(y),
                Cmp::StartsWith => x.starts_with(y),
                Cmp::EndsWith => x.ends_with(y),
            })
        }),
    }
}

fn call<'a>(f: Func, q: &Facts<'a>) -> Val<'a> {
    match f {
        Func::Name => Val::Str(q.name),
        Func::Type => Val::Type(q.qtype),
        Func::Class => Val::Class(q.qclass),
        Func::Proto => Val::Str(q.proto.as_str()),
        Func::ClientIp => Val::Ip(q.src.ip().to_canonical()),
        Func::Port => Val::Port(q.src.port()),
        Func::ServerIp => Val::Ip(q.local.ip().to_canonical()),
        Func::ServerPort => Val::Port(q.local.port()),
        Func::Id => Val::Int(i64::from(q.id)),
        Func::Opcode => Val::Int(i64::from(q.opcode)),
        Func::Size => Val::Int(q.size as i64),
        // CoreDNS's `state.Size()`: the EDNS size, at least 512; 512 without EDNS.
        Func::Bufsize => Val::Int(i64::from(q.edns.map_or(512, |(s, _)| s.max(512)))),
        Func::Do => Val::Bool(q.edns.is_some_and(|(_, d)| d)),
    }
}

/// The type's mnemonic as miekg/dns spells it (`TYPE65280` for unknown ones).
fn write_type(out: &mut StackStr, t: u16) {
    use hickory_proto::rr::RecordType;
    let name: &'static str = match RecordType::from(t) {
        RecordType::Unknown(_) => "Unknown",
        rt => rt.into(),
    };
    if name == "Unknown" {
        let _ = write!(out, "TYPE{t}");
    } else {
        let _ = out.write_str(name);
    }
}

/// The class's mnemonic as miekg/dns spells it (`CLASS<n>` for unknown ones).
fn write_class(out: &mut StackStr, c: u16) {
    let _ = match c {
        1 => out.write_str("IN"),
        3 => out.write_str("CH"),
        4 => out.write_str("HS"),
        254 => out.write_str("NONE"),
        255 => out.write_str("ANY"),
        _ => write!(out, "CLASS{c}"),
    };
}

/// A compiled `expr` line.
#[derive(Debug)]
pub struct Program {
    root: Node,
    source: String,
}

impl Program {
    /// Compiles `src`; the error is worded as expr-lang words its own, with the column.
    pub fn compile(src: &str) -> Result<Program, String> {
        let toks = lex(src)?;
        let mut p = Parser {
            toks,
            pos: 0,
            src_len: src.chars().count(),
            depth: 0,
        };
        let (root, _ty) = p.or()?;
        if let Some(t) = p.peek() {
            return Err(format!("unexpected token {} (1:{})", t.tok, t.col));
        }
        Ok(Program {
            root,
            source: src.to_string(),
        })
    }

    /// True when the expression evaluates to boolean true; anything else (another type, a
    /// runtime error such as `incidr` of something not an address) is false, as CoreDNS's view.
    pub fn matches(&self, q: &Facts<'_>) -> bool {
        matches!(self.root.eval(q), Ok(Val::Bool(true)))
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Op(&'static str),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "Identifier({s:?})"),
            Tok::Str(s) => write!(f, "String({s:?})"),
            Tok::Int(i) => write!(f, "Number(\"{i}\")"),
            Tok::Op(o) => write!(f, "Operator({o:?})"),
        }
    }
}

#[derive(Debug, Clone)]
struct Spanned {
    tok: Tok,
    /// 1-based column, as expr-lang reports it.
    col: usize,
}

const OPS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",",
];

fn lex(src: &str) -> Result<Vec<Spanned>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let quote = c;
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err(format!("literal not terminated (1:{col})"));
                };
                i += 1;
                if c == quote {
                    break;
                }
                if c == '\\' {
                    let Some(&e) = chars.get(i) else {
                        return Err(format!("literal not terminated (1:{col})"));
                    };
                    i += 1;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '\\' | '\'' | '"' => e,
                        other => {
                            return Err(format!("invalid char escape '\\{other}' (1:{})", i - 1));
                        }
                    });
                    continue;
                }
                s.push(c);
            }
            out.push(Spanned {
                tok: Tok::Str(s),
                col,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let n = text
                .parse::<i64>()
                .map_err(|_| format!("invalid number {text} (1:{col})"))?;
            out.push(Spanned {
                tok: Tok::Int(n),
                col,
            });
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Spanned {
                tok: Tok::Ident(chars[start..i].iter().collect()),
                col,
            });
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                out.push(Spanned {
                    tok: Tok::Op(op),
                    col,
                });
                i += op.len();
            }
            None => {
                return Err(format!(
                    "unrecognized character: U+{:04X} '{c}' (1:{col})",
                    c as u32
                ));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Spanned>,
    pos: usize,
    src_len: usize,
    depth: usize,
}

/// Nesting deeper than this is refused (no stack overflow on hostile input).
const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.toks.get(self.pos)
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Spanned { tok: Tok::Op(o), .. }) if *o == op)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Spanned { tok: Tok::Ident(i), .. }) if i == w)
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(t) => format!("unexpected token {} (1:{})", t.tok, t.col),
            None => format!("unexpected end of expression (1:{})", self.src_len + 1),
        }
    }

    fn col(&self) -> usize {
        self.peek().map_or(self.src_len + 1, |t| t.col)
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression nested too deeply (1:{})", self.col()));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<(Node, Ty), String> {
        self.enter()?;
        let r = self.or_inner();
        self.depth -= 1;
        r
    }

    fn or_inner(&mut self) -> Result<(Node, Ty), String> {
        let (mut left, mut ty) = self.and()?;
        while self.is_op("||") || self.is_word("or") {
            let col = self.col();
            self.pos += 1;
            let (right, rty) = self.and()?;
            check_bool("or", col, ty, rty)?;
            left = match left {
                Node::Or(mut v) if ty == Ty::Bool => {
                    v.push(right);
                    Node::Or(v)
                }
                left => Node::Or(vec![left, right]),
            };
            ty = Ty::Bool;
        }
        Ok((left, ty))
    }

    fn and(&mut self) -> Result<(Node, Ty), String> {
        let (mut left, mut ty) = self.cmp()?;
        while self.is_op("&&") || self.is_word("and") {
            let col = self.col();
            self.pos += 1;
            let (right, rty) = self.cmp()?;
            check_bool("and", col, ty, rty)?;
            left = match left {
                Node::And(mut v) if ty == Ty::Bool => {
                    v.push(right);
                    Node::And(v)
                }
                left => Node::And(vec![left, right]),
            };
            ty = Ty::Bool;
        }
        Ok((left, ty))
    }

    fn cmp(&mut self) -> Result<(Node, Ty), String> {
        let (left, lty) = self.unary()?;
        let col = self.col();
        let Some(t) = self.peek() else {
            return Ok((left, lty));
        };
        let (op, name): (Option<Cmp>, &str) = match &t.tok {
            Tok::Op("==") => (Some(Cmp::Eq), "=="),
            Tok::Op("!=") => (Some(Cmp::Ne), "!="),
            Tok::Op("<") => (Some(Cmp::Lt), "<"),
            Tok::Op("<=") => (Some(Cmp::Le), "<="),
            Tok::Op(">") => (Some(Cmp::Gt), ">"),
            Tok::Op(">=") => (Some(Cmp::Ge), ">="),
            Tok::Ident(w) if w == "contains" => (Some(Cmp::Contains), "contains"),
            Tok::Ident(w) if w == "startsWith" => (Some(Cmp::StartsWith), "startsWith"),
            Tok::Ident(w) if w == "endsWith" => (Some(Cmp::EndsWith), "endsWith"),
            Tok::Ident(w) if w == "matches" => (None, "matches"),
            Tok::Ident(w) if w == "in" => (None, "in"),
            Tok::Ident(w) if w == "not" => (None, "not in"),
            _ => return Ok((left, lty)),
        };
        self.pos += 1;
        match (op, name) {
            (Some(op), _) => {
                let (right, rty) = self.unary()?;
                let ok = match op {
                    Cmp::Eq | Cmp::Ne => lty == rty,
                    Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge => {
                        lty == rty && (lty == Ty::Int || lty == Ty::Str)
                    }
                    _ => lty == Ty::Str && rty == Ty::Str,
                };
                if !ok {
                    return Err(format!(
                        "invalid operation: {name} (mismatched types {} and {}) (1:{col})",
                        lty.as_str(),
                        rty.as_str()
                    ));
                }
                Ok((Node::Cmp(op, Box::new(left), Box::new(right)), Ty::Bool))
            }
            (None, "matches") => {
                if lty != Ty::Str {
                    return Err(format!(
                        "invalid operation: matches (mismatched types {} and string) (1:{col})",
                        lty.as_str()
                    ));
                }
                let pcol = self.col();
                let pattern = match self.peek() {
                    Some(Spanned {
                        tok: Tok::Str(s), ..
                    }) => s.clone(),
                    _ => {
                        return Err(format!("exdns: matches needs a literal pattern (1:{pcol})"));
                    }
                };
                self.pos += 1;
                let re = Regex::new(&pattern)
                    .map_err(|e| format!("error parsing regexp: {e} (1:{pcol})"))?;
                Ok((Node::Matches(Box::new(left), re), Ty::Bool))
            }
            (None, name) => {
                if name == "not in" {
                    if !self.is_word("in") {
                        return Err(self.unexpected());
                    }
                    self.pos += 1;
                }
                let list = self.list(lty)?;
                Ok((Node::In(Box::new(left), list, name == "not in"), Ty::Bool))
            }
        }
    }

    /// `[literal, ...]`, each of type `want`.
    fn list(&mut self, want: Ty) -> Result<Vec<Node>, String> {
        if !self.is_op("[") {
            return Err(format!(
                "exdns: in needs a list of literals such as ['A', 'AAAA'] (1:{})",
                self.col()
            ));
        }
        self.pos += 1;
        let mut out = Vec::new();
        if self.is_op("]") {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            let col = self.col();
            let (node, ty) = match self.peek().map(|t| t.tok.clone()) {
                Some(Tok::Str(s)) => (Node::Str(s), Ty::Str),
                Some(Tok::Int(i)) => (Node::Int(i), Ty::Int),
                Some(Tok::Ident(w)) if w == "true" || w == "false" => {
                    (Node::Bool(w == "true"), Ty::Bool)
                }
                _ => return Err(self.unexpected()),
            };
            if ty != want {
                return Err(format!(
                    "invalid operation: in (mismatched types {} and {}) (1:{col})",
                    want.as_str(),
                    ty.as_str()
                ));
            }
            self.pos += 1;
            out.push(node);
            if self.is_op(",") {
                self.pos += 1;
                if self.is_op("]") {
                    self.pos += 1;
                    return Ok(out);
                }
                continue;
            }
            if self.is_op("]") {
                self.pos += 1;
                return Ok(out);
            }
            return Err(self.unexpected());
        }
    }

    fn unary(&mut self) -> Result<(Node, Ty), String> {
        if self.is_op("!") || self.is_word("not") {
            let col = self.col();
            self.pos += 1;
            self.enter()?;
            let r = self.unary();
            self.depth -= 1;
            let (n, ty) = r?;
            if ty != Ty::Bool {
                return Err(format!("invalid operation: ! ({}) (1:{col})", ty.as_str()));
            }
            return Ok((Node::Not(Box::new(n)), Ty::Bool));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<(Node, Ty), String> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.unexpected());
        };
        match t.tok {
            Tok::Str(s) => {
                self.pos += 1;
                Ok((Node::Str(s), Ty::Str))
            }
            Tok::Int(i) => {
                self.pos += 1;
                Ok((Node::Int(i), Ty::Int))
            }
            Tok::Op("(") => {
                self.pos += 1;
                let inner = self.or()?;
                if !self.is_op(")") {
                    return Err(self.unexpected());
                }
                self.pos += 1;
                Ok(inner)
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                self.pos += 1;
                Ok((Node::Bool(w == "true"), Ty::Bool))
            }
            Tok::Ident(w) => {
                self.pos += 1;
                if !self.is_op("(") {
                    return Err(format!("unknown name {w} (1:{})", t.col));
                }
                self.pos += 1;
                let mut args = Vec::new();
                if !self.is_op(")") {
                    loop {
                        args.push(self.or()?);
                        if self.is_op(",") {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                }
                if !self.is_op(")") {
                    return Err(self.unexpected());
                }
                self.pos += 1;
                self.function(&w, t.col, args)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn function(&self, w: &str, col: usize, args: Vec<(Node, Ty)>) -> Result<(Node, Ty), String> {
        let arity = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else if args.len() < n {
                Err(format!("not enough arguments to call {w} (1:{col})"))
            } else {
                Err(format!("too many arguments to call {w} (1:{col})"))
            }
        };
        if let Some(f) = Func::lookup(w) {
            arity(0)?;
            return Ok((Node::Call(f), f.ty()));
        }
        match w {
            "incidr" => {
                arity(2)?;
                let mut it = args.into_iter();
                let (ip, ipty) = it.next().expect("two arguments");
                let (cidr, cty) = it.next().expect("two arguments");
                if ipty != Ty::Str || cty != Ty::Str {
                    return Err(format!(
                        "cannot use {} as argument (type string) to call incidr (1:{col})",
                        if ipty != Ty::Str { ipty } else { cty }.as_str()
                    ));
                }
                let cidr = match cidr {
                    Node::Str(s) => Ok(s
                        .parse::<IpNet>()
                        .map_err(|_| format!("exdns: invalid CIDR address: {s} (1:{col})"))?
                        .trunc()),
                    other => Err(Box::new(other)),
                };
                Ok((
                    match (ip, cidr) {
                        (Node::Call(Func::ClientIp), Ok(net)) => Node::ClientInCidr(net),
                        (ip, cidr) => Node::InCidr(Box::new(ip), cidr),
                    },
                    Ty::Bool,
                ))
            }
            "metadata" => {
                arity(1)?;
                if args[0].1 != Ty::Str {
                    return Err(format!(
                        "cannot use {} as argument (type string) to call metadata (1:{col})",
                        args[0].1.as_str()
                    ));
                }
                // exdns has no metadata plugin: every label is unset, "" as in CoreDNS.
                Ok((Node::Str(String::new()), Ty::Str))
            }
            _ => Err(format!("unknown func {w} (1:{col})")),
        }
    }
}

fn check_bool(op: &str, col: usize, a: Ty, b: Ty) -> Result<(), String> {
    if a == Ty::Bool && b == Ty::Bool {
        Ok(())
    } else {
        Err(format!(
            "invalid operation: {op} (mismatched types {} and {}) (1:{col})",
            a.as_str(),
            b.as_str()
        ))
    }
}
