use std::net::SocketAddr;

use super::*;
use crate::dns::request::Proto;
use crate::plugin::test_chain::{dispenser, setup_err};

fn facts<'a>(name: &'a str, qtype: u16, src: &str, proto: Proto) -> Facts<'a> {
    Facts {
        name,
        qtype,
        qclass: 1,
        src: src.parse::<SocketAddr>().unwrap(),
        local: "127.0.0.1:1053".parse().unwrap(),
        proto,
        size: 40,
        id: 4242,
        opcode: 0,
        edns: Some((1232, true)),
    }
}

fn eval(expr: &str, q: &Facts<'_>) -> bool {
    Program::compile(expr)
        .unwrap_or_else(|e| panic!("{expr:?}: {e}"))
        .matches(q)
}

/// CoreDNS's view setup_test.go: (input, error or number of programs).
#[test]
fn setup_table() {
    let ok: &[(&str, usize)] = &[
        ("view example {\n expr name() == 'example.com.'\n}", 1),
        (
            "view example {\n expr incidr(client_ip(), '10.0.0.0/24')\n}",
            1,
        ),
        (
            "view example {\n expr name() == 'example.com.'\n expr name() == 'example2.com.'\n}",
            2,
        ),
        ("view example", 0),
    ];
    for (text, n) in ok {
        let v = parse(&mut dispenser(text)).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(v.progs.len(), *n, "{text:?}");
        assert_eq!(&*v.name, "example");
    }
    let bad: &[(&str, &str)] = &[
        (
            "view",
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'view'",
        ),
        (
            "view a b {\n}",
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
        ),
        (
            "view example {\n expr invalid expression\n}",
            "Corefile:2 - Error during parsing: unknown name invalid (1:1)",
        ),
        (
            "view x {\n foo bar\n}\n",
            "Corefile:2 - Error during parsing: unknown property 'foo'",
        ),
        (
            "view x {\n expr\n}\n",
            "Corefile:2 - Error during parsing: unexpected end of expression (1:1)",
        ),
        (
            "view x {\n expr incidr(client_ip(), '10.0.0.0/33')\n}\n",
            "Corefile:2 - Error during parsing: exdns: invalid CIDR address: 10.0.0.0/33 (1:1)",
        ),
    ];
    for (text, want) in bad {
        assert_eq!(setup_err(setup, text), *want, "{text:?}");
    }
}

/// `view a { }` twice in one block: CoreDNS's ErrOnce.
#[test]
fn once_per_block() {
    let cf = crate::corefile::parse_str(
        ". {\n view a {\n }\n view b {\n }\n whoami\n}\n",
        std::path::Path::new("Corefile"),
        53,
    )
    .unwrap();
    let err = match crate::server::build::build(&cf) {
        Ok(_) => panic!("two views accepted"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        err,
        "plugin/view: Corefile:4 - Error during parsing: this plugin can only be used once per Server Block"
    );
}

/// CoreDNS's view_test.go TestFilter_ErrorPaths, and the functions of plugin/pkg/expression.
#[test]
fn evaluation_table() {
    let q = facts("example.com.", 1, "10.0.0.5:40000", Proto::Udp);
    let cases: &[(&str, bool)] = &[
        ("name() == 'example.com.'", true),
        ("name() == 'notexample.com.'", false),
        // Not a boolean: false, as CoreDNS.
        ("1", false),
        ("name()", false),
        // A runtime error: false.
        ("incidr('invalid', '1.2.3.0/24')", false),
        ("incidr(client_ip(), '10.0.0.0/24')", true),
        ("incidr(client_ip(), '10.0.1.0/24')", false),
        ("incidr(client_ip(), '10.0.0.9/8')", true),
        ("incidr(client_ip(), '::/0')", false),
        ("incidr('1.2.3.4', '1.2.0.0/16')", true),
        ("incidr('10.2.3.4', '1.2.0.0/16')", false),
        ("incidr('1:2::3:4', '1:2::/64')", true),
        ("incidr('A:2::3:4', '1:2::/64')", false),
        ("incidr('1.2.3.4', name())", false),
        ("client_ip() == '10.0.0.5'", true),
        ("client_ip() != '10.0.0.5'", false),
        ("port() == '40000'", true),
        (
            "server_ip() == '127.0.0.1' && server_port() == '1053'",
            true,
        ),
        ("type() == 'A'", true),
        ("type() in ['A', 'AAAA']", true),
        ("type() not in ['A', 'AAAA']", false),
        ("type() in ['MX']", false),
        ("class() == 'IN'", true),
        ("proto() == 'udp'", true),
        ("proto() == 'tcp'", false),
        ("id() == 4242", true),
        ("opcode() == 0", true),
        ("size() > 10 and size() <= 40", true),
        ("bufsize() == 1232", true),
        ("do()", true),
        ("!do()", false),
        ("not do()", false),
        ("do() == true", true),
        ("metadata('view/name') == ''", true),
        (
            "(type() == 'A' && name() == 'example.com.') || client_ip() == '1.2.3.4'",
            true,
        ),
        (
            "(type() == 'MX' && name() == 'example.com.') || client_ip() == '1.2.3.4'",
            false,
        ),
        ("type() == 'MX' or name() == 'example.com.' and true", true),
        ("not (type() == 'MX' or false)", true),
        ("name() matches '^example\\\\.com\\\\.$'", true),
        (
            "name() matches '^abc\\\\..*\\\\.example\\\\.com\\\\.$'",
            false,
        ),
        ("name() endsWith '.com.'", true),
        ("name() startsWith 'exa'", true),
        ("name() contains 'mple.c'", true),
        ("client_ip() matches '^10\\\\.'", true),
        ("\"double\" == 'double'", true),
    ];
    for (expr, want) in cases {
        assert_eq!(eval(expr, &q), *want, "{expr}");
    }
}

#[test]
fn names_types_and_addresses_as_coredns_spells_them() {
    let q = facts("x.", 65280, "[2001:db8::1]:53000", Proto::Tls);
    assert!(eval("type() == 'TYPE65280'", &q));
    assert!(eval("proto() == 'tcp'", &q));
    assert!(eval("client_ip() == '2001:db8::1'", &q));
    assert!(eval("incidr(client_ip(), '2001:0DB8::/32')", &q));
    let q = facts("x.", 28, "[::ffff:10.1.2.3]:53000", Proto::Tcp);
    assert!(eval("type() == 'AAAA'", &q));
    assert!(eval("client_ip() == '10.1.2.3'", &q));
    assert!(eval("incidr(client_ip(), '10.0.0.0/8')", &q));
    let mut q = facts("x.", 1, "10.0.0.1:1", Proto::Udp);
    q.edns = None;
    q.qclass = 3;
    assert!(eval("bufsize() == 512 && !do() && class() == 'CH'", &q));
}

/// Anything outside the subset, and mistyped expressions, fail at setup with the column.
#[test]
fn compile_errors() {
    let cases: &[(&str, &str)] = &[
        ("name() ==", "unexpected end of expression (1:10)"),
        ("name() == 'a", "literal not terminated (1:11)"),
        ("name() = 'a'", "unrecognized character: U+003D '=' (1:8)"),
        ("nome() == 'a'", "unknown func nome (1:1)"),
        ("name", "unknown name name (1:1)"),
        ("name(1)", "too many arguments to call name (1:1)"),
        (
            "incidr(client_ip())",
            "not enough arguments to call incidr (1:1)",
        ),
        (
            "incidr(client_ip(), 8)",
            "cannot use int as argument (type string) to call incidr (1:1)",
        ),
        (
            "name() == 1",
            "invalid operation: == (mismatched types string and int) (1:8)",
        ),
        (
            "name() and true",
            "invalid operation: and (mismatched types string and bool) (1:8)",
        ),
        ("!name()", "invalid operation: ! (string) (1:1)"),
        (
            "name() matches name()",
            "exdns: matches needs a literal pattern (1:16)",
        ),
        (
            "name() matches '('",
            "error parsing regexp: regex parse error:\n    (\n    ^\nerror: unclosed group (1:16)",
        ),
        (
            "type() in type()",
            "exdns: in needs a list of literals such as ['A', 'AAAA'] (1:11)",
        ),
        (
            "type() in ['A', 1]",
            "invalid operation: in (mismatched types string and int) (1:17)",
        ),
        ("(name() == 'a'", "unexpected end of expression (1:15)"),
        ("name() == 'a')", "unexpected token Operator(\")\") (1:14)"),
        ("name() == 'a' 'b'", "unexpected token String(\"b\") (1:15)"),
        ("len(name()) > 3", "unknown func len (1:1)"),
        ("name() ?? 'a'", "unrecognized character: U+003F '?' (1:8)"),
        ("'\\q'", "invalid char escape '\\q' (1:2)"),
    ];
    for (expr, want) in cases {
        match Program::compile(expr) {
            Ok(_) => panic!("{expr:?} compiled"),
            Err(e) => assert_eq!(e, *want, "{expr:?}"),
        }
    }
}

/// Hostile input: deep nesting is refused, never a stack overflow; long input is fine.
#[test]
fn hostile_expressions() {
    let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(
        Program::compile(&deep)
            .unwrap_err()
            .contains("nested too deeply")
    );
    let nots = format!("{}true", "!".repeat(10_000));
    assert!(
        Program::compile(&nots)
            .unwrap_err()
            .contains("nested too deeply")
    );
    let wide = vec!["(true)"; 5000].join(" or ");
    let q = facts("x.", 1, "10.0.0.1:1", Proto::Udp);
    assert!(eval(&wide, &q));
    for junk in [
        "", "\u{0}", "'", "[", "]", ",", "in", "not", "((", "incidr(", "é",
    ] {
        assert!(Program::compile(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn every_expression_must_pass() {
    let v = parse(&mut dispenser(
        "view v {\n expr name() == 'a.'\n expr incidr(client_ip(), '10.0.0.0/8')\n}",
    ))
    .unwrap();
    assert!(v.filter(&facts("a.", 1, "10.1.1.1:5", Proto::Udp)));
    assert!(!v.filter(&facts("b.", 1, "10.1.1.1:5", Proto::Udp)));
    assert!(!v.filter(&facts("a.", 1, "11.1.1.1:5", Proto::Udp)));
    let none = parse(&mut dispenser("view v")).unwrap();
    assert!(none.filter(&facts("b.", 1, "11.1.1.1:5", Proto::Udp)));
}

/// Random token soup never panics at setup or evaluation (a small deterministic fuzz).
#[test]
fn token_soup_never_panics() {
    const PARTS: &[&str] = &[
        "name()",
        "type()",
        "client_ip()",
        "port()",
        "do()",
        "size()",
        "incidr(",
        "metadata(",
        "'10.0.0.0/8'",
        "'a'",
        "\"b\"",
        "1",
        "true",
        ",",
        "(",
        ")",
        "[",
        "]",
        "==",
        "!=",
        "<",
        ">=",
        "and",
        "or",
        "not",
        "!",
        "in",
        "matches",
        "'^a.*'",
        "contains",
        "&&",
        "||",
        "é",
        "'",
        "\\",
    ];
    let q = facts("a.example.", 1, "10.1.2.3:53", Proto::Udp);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut src = String::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for k in 0..(x % 9) {
            let r = x.rotate_left((k * 7) as u32);
            src.push_str(PARTS[(r % PARTS.len() as u64) as usize]);
            src.push(' ');
        }
        if let Ok(p) = Program::compile(&src) {
            let _ = p.matches(&q);
        }
    }
}
