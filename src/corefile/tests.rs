//! Parser tests: structure, snippets, imports, environment, keys and every error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::parser::{parse_with_env, replace_env};
use super::*;

/// Fake environment for deterministic tests.
fn env(name: &str) -> Option<String> {
    let vars: HashMap<&str, &str> = [
        ("ZONE", "Example.ORG"),
        ("PORT", "1053"),
        ("UP", "1.1.1.1"),
        ("BRACE", "{"),
        ("SPACE", "a b"),
        ("DIR", "whoami"),
        ("SELF", "{$SELF}"),
    ]
    .into_iter()
    .collect();
    vars.get(name).map(|v| v.to_string())
}

fn parse(text: &str) -> Result<Corefile, ParseError> {
    parse_with_env(text, Path::new("Corefile"), 53, &env)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(cf) => panic!("expected an error for {text:?}, got {:?}", summary(&cf)),
        Err(e) => e.to_string(),
    }
}

type Summary = Vec<(Vec<String>, Vec<Vec<String>>)>;

/// Keys as `dns://zone:port` and each directive's token texts.
fn summary(cf: &Corefile) -> Summary {
    cf.blocks
        .iter()
        .map(|b| {
            (
                b.keys.iter().map(|k| k.to_string()).collect(),
                b.directives
                    .iter()
                    .map(|d| d.tokens.iter().map(|t| t.text.clone()).collect())
                    .collect(),
            )
        })
        .collect()
}

fn ok(text: &str) -> Summary {
    summary(&parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn block(keys: &[&str], dirs: &[&[&str]]) -> (Vec<String>, Vec<Vec<String>>) {
    (s(keys), dirs.iter().map(|d| s(d)).collect())
}

#[test]
fn structure_table() {
    let cases: Vec<(&str, Summary)> = vec![
        ("", vec![]),
        ("# nothing here\n\n   # at all\n", vec![]),
        (
            "example.org {\n    whoami\n    log\n}\n",
            vec![block(&["dns://example.org.:53"], &[&["whoami"], &["log"]])],
        ),
        // Keys: spaces, commas, a trailing comma continuing on the next line, commas inside.
        (
            "a.org b.org {\n whoami\n}",
            vec![block(
                &["dns://a.org.:53", "dns://b.org.:53"],
                &[&["whoami"]],
            )],
        ),
        (
            "a.org, b.org {\n whoami\n}",
            vec![block(
                &["dns://a.org.:53", "dns://b.org.:53"],
                &[&["whoami"]],
            )],
        ),
        (
            "a.org,\nb.org,\n  c.org {\n whoami\n}",
            vec![block(
                &["dns://a.org.:53", "dns://b.org.:53", "dns://c.org.:53"],
                &[&["whoami"]],
            )],
        ),
        (
            "a.org,b.org:54 {\n}",
            vec![block(&["dns://a.org.:53", "dns://b.org.:54"], &[])],
        ),
        // The opening brace may sit on its own line.
        (
            "example.org\n{\n whoami\n}",
            vec![block(&["dns://example.org.:53"], &[&["whoami"]])],
        ),
        // Braces on the key line, directive on the same line as `{`.
        (
            "example.org { whoami\n}",
            vec![block(&["dns://example.org.:53"], &[&["whoami"]])],
        ),
        // A single block may leave out the braces.
        (
            ".:1053\nwhoami\nlog\n",
            vec![block(&["dns://.:1053"], &[&["whoami"], &["log"]])],
        ),
        // Keys and nothing else.
        ("example.org", vec![block(&["dns://example.org.:53"], &[])]),
        (
            "example.org {\n}",
            vec![block(&["dns://example.org.:53"], &[])],
        ),
        // Arguments are the rest of the line; nested blocks belong to the directive.
        (
            ". {\n forward . 8.8.8.8 9.9.9.9 {\n  max_fails 3\n  policy sequential\n }\n cache 30\n}",
            vec![block(
                &["dns://.:53"],
                &[
                    &[
                        "forward",
                        ".",
                        "8.8.8.8",
                        "9.9.9.9",
                        "{",
                        "max_fails",
                        "3",
                        "policy",
                        "sequential",
                        "}",
                    ],
                    &["cache", "30"],
                ],
            )],
        ),
        // Depth is counted.
        (
            ". {\n a {\n  b {\n   c\n  }\n  d\n }\n e\n}",
            vec![block(
                &["dns://.:53"],
                &[&["a", "{", "b", "{", "c", "}", "d", "}"], &["e"]],
            )],
        ),
        // An empty nested block.
        (
            ". {\n cache {\n }\n}",
            vec![block(&["dns://.:53"], &[&["cache", "{", "}"]])],
        ),
        // A `{` on the line after a directive still opens the directive's block (as Caddy).
        (
            ". {\n cache\n {\n  success 10\n }\n}",
            vec![block(
                &["dns://.:53"],
                &[&["cache", "{", "success", "10", "}"]],
            )],
        ),
        // Several blocks, schemes and ports.
        (
            "example.org {\n whoami\n}\n\ntls://example.org:8853 {\n log\n}\n.:1053 {\n}\n",
            vec![
                block(&["dns://example.org.:53"], &[&["whoami"]]),
                block(&["tls://example.org.:8853"], &[&["log"]]),
                block(&["dns://.:1053"], &[]),
            ],
        ),
        // Quoted tokens: a quoted brace is an argument; a multi-line quoted argument does not end
        // the directive's line early.
        (
            ". {\n template \"{\" \"}\"\n log \"a\nb\" c\n whoami\n}",
            vec![block(
                &["dns://.:53"],
                &[&["template", "{", "}"], &["log", "a\nb", "c"], &["whoami"]],
            )],
        ),
        // A brace attached to a word is part of the word.
        (
            ". {\n rewrite name a{ b\n}",
            vec![block(&["dns://.:53"], &[&["rewrite", "name", "a{", "b"]])],
        ),
        // CIDR keys expand to reverse zones.
        (
            "10.0.0.0/23 fd00::/64 {\n}",
            vec![block(
                &[
                    "dns://0.0.10.in-addr.arpa.:53",
                    "dns://1.0.10.in-addr.arpa.:53",
                    "dns://0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.:53",
                ],
                &[],
            )],
        ),
        // Comments anywhere.
        (
            "example.org { # the zone\n whoami#inline\n log # trailing\n} # end",
            vec![block(&["dns://example.org.:53"], &[&["whoami"], &["log"]])],
        ),
    ];
    for (input, want) in cases {
        assert_eq!(ok(input), want, "input {input:?}");
    }
}

#[test]
fn positions_and_raw_keys() {
    let cf = parse(
        "\n# c\nA.org:54 10.0.0.0/24 {\n  forward . \"1.1.1.1\" {\n    max_fails 3\n  }\n}\n",
    )
    .unwrap();
    assert_eq!(cf.path, PathBuf::from("Corefile"));
    let b = &cf.blocks[0];
    assert_eq!((&*b.file, b.line), ("Corefile", 3));
    assert_eq!(b.keys[0].raw, "A.org:54");
    assert_eq!(b.keys[0].zone, "a.org.");
    assert_eq!(b.keys[0].scheme, Scheme::Dns);
    assert_eq!(b.keys[1].raw, "10.0.0.0/24");
    let d = &b.directives[0];
    assert_eq!(d.name, "forward");
    assert_eq!((d.file(), d.line()), ("Corefile", 4));
    let lines: Vec<(usize, bool)> = d.tokens.iter().map(|t| (t.line, t.quoted)).collect();
    assert_eq!(
        lines,
        vec![
            (4, false),
            (4, false),
            (4, true),
            (4, false),
            (5, false),
            (5, false),
            (6, false)
        ]
    );
    // The dispenser walks the directive as a setup would.
    let mut disp = d.dispenser();
    assert!(disp.next());
    assert_eq!(disp.val(), "forward");
    assert_eq!(disp.remaining_args(), vec![".", "1.1.1.1"]);
    assert!(disp.next_block());
    assert_eq!(disp.val(), "max_fails");
    assert_eq!(disp.remaining_args(), vec!["3"]);
    assert!(!disp.next_block());
}

#[test]
fn dns_port_applies_to_dns_keys_only() {
    let cf = parse_with_env(
        "example.org tls://example.org {\n}",
        Path::new("Corefile"),
        1053,
        &env,
    )
    .unwrap();
    let keys: Vec<String> = cf.blocks[0].keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys, ["dns://example.org.:1053", "tls://example.org.:853"]);
}

#[test]
fn environment_table() {
    let cases: Vec<(&str, Summary)> = vec![
        (
            "{$ZONE}:{$PORT} {\n forward . {$UP}\n}",
            vec![block(
                &["dns://example.org.:1053"],
                &[&["forward", ".", "1.1.1.1"]],
            )],
        ),
        // Windows form, mid-token, unset variables, quoted tokens.
        (
            ". {\n log pre{%UP%}post x{$NOPE}y \"{$SPACE}\"\n}",
            vec![block(
                &["dns://.:53"],
                &[&["log", "pre1.1.1.1post", "xy", "a b"]],
            )],
        ),
        // A directive name from the environment.
        (
            ". {\n {$DIR}\n}",
            vec![block(&["dns://.:53"], &[&["whoami"]])],
        ),
        // A value of "{" is text, not a brace; a value is not expanded again.
        (
            ". {\n log {$BRACE} {$SELF}\n}",
            vec![block(&["dns://.:53"], &[&["log", "{", "{$SELF}"]])],
        ),
        // Not references.
        (
            ". {\n log {$} {$X {%%} {abc} {%Y\n}",
            vec![block(
                &["dns://.:53"],
                &[&["log", "{$}", "{$X", "{%%}", "{abc}", "{%Y"]],
            )],
        ),
    ];
    for (input, want) in cases {
        assert_eq!(ok(input), want, "input {input:?}");
    }
    // The quoted-ness and line of a substituted token are kept.
    let cf = parse(". {\n log \"{$SPACE}\"\n}").unwrap();
    assert!(cf.blocks[0].directives[0].tokens[1].quoted);
}

#[test]
fn replace_env_unit() {
    let cases = [
        ("", ""),
        ("plain", "plain"),
        ("{$UP}", "1.1.1.1"),
        ("{$UP}:{$PORT}", "1.1.1.1:1053"),
        ("{$UP}{$UP}", "1.1.1.11.1.1.1"),
        ("{%UP%}", "1.1.1.1"),
        ("{$NOPE}", ""),
        ("a{$", "a{$"),
        ("{$=}", ""),
    ];
    for (input, want) in cases {
        assert_eq!(replace_env(input, &env), want, "input {input:?}");
    }
}

#[test]
fn real_environment_is_used() {
    // PATH is set in any test environment; a name nobody sets reads as empty.
    let path = std::env::var("PATH").unwrap_or_default();
    let cf = parse_str(
        ". {\n log {$PATH} x{$EXDNS_SURELY_UNSET_VARIABLE_8d1f}y\n}",
        Path::new("Corefile"),
        53,
    )
    .unwrap();
    let toks = &cf.blocks[0].directives[0].tokens;
    assert_eq!(toks[1].text, path);
    assert_eq!(toks[2].text, "xy");
}

#[test]
fn snippets_table() {
    let cases: Vec<(&str, Summary)> = vec![
        // Defined before use, pulled into a block; not a server block itself.
        (
            "(common) {\n errors\n log\n}\nexample.org {\n import common\n whoami\n}",
            vec![block(
                &["dns://example.org.:53"],
                &[&["errors"], &["log"], &["whoami"]],
            )],
        ),
        // Used twice and in two blocks; the same directive twice stays two directives.
        (
            "(l) {\n log\n}\na.org {\n import l\n import l\n}\nb.org {\n import l\n}",
            vec![
                block(&["dns://a.org.:53"], &[&["log"], &["log"]]),
                block(&["dns://b.org.:53"], &[&["log"]]),
            ],
        ),
        // A snippet with nested blocks and a snippet importing another one.
        (
            "(fw) {\n forward . 1.1.1.1 {\n  max_fails 2\n }\n}\n(all) {\n import fw\n cache\n}\n. {\n import all\n}",
            vec![block(
                &["dns://.:53"],
                &[
                    &["forward", ".", "1.1.1.1", "{", "max_fails", "2", "}"],
                    &["cache"],
                ],
            )],
        ),
        // Imported inside a directive's nested block.
        (
            "(opts) {\n max_fails 3\n expire 5s\n}\n. {\n forward . 1.1.1.1 {\n  import opts\n  policy random\n }\n}",
            vec![block(
                &["dns://.:53"],
                &[&[
                    "forward",
                    ".",
                    "1.1.1.1",
                    "{",
                    "max_fails",
                    "3",
                    "expire",
                    "5s",
                    "policy",
                    "random",
                    "}",
                ]],
            )],
        ),
        // At top level, a snippet can hold whole server blocks.
        (
            "(blocks) {\n a.org {\n  whoami\n }\n}\nimport blocks\nb.org {\n}",
            vec![
                block(&["dns://a.org.:53"], &[&["whoami"]]),
                block(&["dns://b.org.:53"], &[]),
            ],
        ),
        // An empty snippet; the brace on the next line.
        (
            "(empty)\n{\n}\n. {\n import empty\n whoami\n}",
            vec![block(&["dns://.:53"], &[&["whoami"]])],
        ),
        // A snippet name with parentheses inside a multi-key block is a key, not a snippet: the
        // key is then invalid (see the error table).
    ];
    for (input, want) in cases {
        assert_eq!(ok(input), want, "input {input:?}");
    }
    // Expanded tokens keep the snippet's file and lines.
    let cf = parse("(c) {\n  log\n}\n. {\n  import c\n}").unwrap();
    let d = &cf.blocks[0].directives[0];
    assert_eq!((d.file(), d.line()), ("Corefile", 2));
}

#[test]
fn error_table() {
    let cases: Vec<(&str, &str)> = vec![
        // Braces.
        (
            "example.org {\n whoami }\n",
            "Corefile:2 - Error during parsing: Unexpected '}' because no matching opening brace",
        ),
        (
            ". { whoami }",
            "Corefile:1 - Error during parsing: Unexpected '}' because no matching opening brace",
        ),
        (
            ". {\n}\n}",
            "Corefile:3 - Error during parsing: Unexpected '}' because no matching opening brace",
        ),
        (
            ".\nwhoami\n}",
            "Corefile:3 - Error during parsing: Unexpected '}' because no matching opening brace",
        ),
        (
            "example.org {\n whoami\n",
            "Corefile:2 - Error during parsing: Unexpected EOF",
        ),
        (
            "example.org {",
            "Corefile:1 - Error during parsing: Unexpected EOF",
        ),
        (
            ". {\n forward . 1.1.1.1 {\n  max_fails 3\n",
            "Corefile:3 - Error during parsing: Unexpected EOF",
        ),
        (
            ". {\n forward . 1.1.1.1 {\n  max_fails 3\n }\n",
            "Corefile:4 - Error during parsing: Unexpected EOF",
        ),
        (
            "a.org,\n",
            "Corefile:1 - Error during parsing: Unexpected EOF",
        ),
        (
            "a.org, {\n}",
            "Corefile:1 - Error during parsing: Expected another address but had '{' - check for extra comma",
        ),
        (
            "{\n whoami\n}",
            "Corefile:1 - Error during parsing: Unexpected token '{', expecting a server block key",
        ),
        (
            ". {\n {\n }\n}",
            "Corefile:2 - Error during parsing: Unexpected token '{', expecting a directive",
        ),
        // `example.org{` is one token and not a valid zone.
        (
            "example.org{\n whoami\n",
            "Corefile:1 - Error during parsing: zone is not a valid domain name: example.org{",
        ),
        // Keys.
        (
            "foo://example.org {\n}",
            "Corefile:1 - Error during parsing: unknown scheme 'foo' in key 'foo://example.org'",
        ),
        (
            ". {\n}\n\nexample.org:99999 {\n}",
            "Corefile:4 - Error during parsing: invalid port '99999' in key 'example.org:99999'",
        ),
        (
            "a..org {\n}",
            "Corefile:1 - Error during parsing: zone is not a valid domain name: a..org",
        ),
        (
            "10.0.0.0/40 {\n}",
            "Corefile:1 - Error during parsing: invalid CIDR '10.0.0.0/40' in key '10.0.0.0/40'",
        ),
        (
            "(a) b.org {\n}",
            "Corefile:1 - Error during parsing: zone is not a valid domain name: (a)",
        ),
        // Duplicates.
        (
            "example.org {\n}\nexample.org {\n}",
            "Corefile:3 - Error during parsing: cannot serve dns://example.org.:53 - it is already defined",
        ),
        (
            "example.org Example.org. {\n}",
            "Corefile:1 - Error during parsing: cannot serve dns://example.org.:53 - it is already defined",
        ),
        (
            ".:53 {\n}\ndns://. {\n}",
            "Corefile:3 - Error during parsing: cannot serve dns://.:53 - it is already defined",
        ),
        (
            "10.0.0.0/24 {\n}\n0.0.10.in-addr.arpa {\n}",
            "Corefile:3 - Error during parsing: cannot serve dns://0.0.10.in-addr.arpa.:53 - it is already defined",
        ),
        (
            "tls://a.org {\n}\n\n\ntls://a.org:853 {\n}",
            "Corefile:5 - Error during parsing: cannot serve tls://a.org.:853 - it is already defined",
        ),
        // Snippets.
        (
            "(s)\nwhoami\n",
            "Corefile:2 - Error during parsing: Unexpected token 'whoami', expecting '{'",
        ),
        (
            "(s) {\n whoami\n",
            "Corefile:2 - Error during parsing: Unexpected EOF",
        ),
        ("(s)", "Corefile:1 - Error during parsing: Unexpected EOF"),
        (
            "(s) {\n}\n(s) {\n}",
            "Corefile:3 - Error during parsing: redeclaration of previously declared snippet s",
        ),
        (
            "(s) {\n log\n import s\n}",
            "Corefile:3 - Error during parsing: Import cycle detected: snippet 's' imports itself",
        ),
        (
            "(a) {\n import b\n}\n(b) {\n import a\n}\n. {\n import a\n}",
            "Corefile:5 - Error during parsing: Import cycle detected: Corefile -> snippet 'a' -> snippet 'b' -> snippet 'a'",
        ),
        // Import syntax.
        (
            "import",
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'import'",
        ),
        (
            ". {\n import\n whoami\n}",
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'import'",
        ),
        (
            ". {\n import a b\n}",
            "Corefile:2 - Error during parsing: Import takes only one argument (glob pattern or file)",
        ),
        (
            ". {\n import \"\"\n}",
            "Corefile:2 - Error during parsing: Import requires a non-empty filepath",
        ),
        (
            ". {\n import {$NOPE}\n}",
            "Corefile:2 - Error during parsing: Import requires a non-empty filepath",
        ),
        (
            ". {\n import {\n }\n}",
            "Corefile:2 - Error during parsing: Unexpected token '{', expecting argument",
        ),
        (
            ". {\n import exdns-no-such-file-3f9a.conf\n}",
            "Corefile:2 - Error during parsing: File to import not found: exdns-no-such-file-3f9a.conf",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), want, "input {input:?}");
    }
}

#[test]
fn expansion_limits_stop_blowups() {
    // 1001 uses of one snippet.
    let mut text = String::from("(a) {\n whoami\n}\n. {\n");
    for _ in 0..1001 {
        text.push_str(" import a\n");
    }
    text.push('}');
    let e = err(&text);
    assert!(
        e.ends_with("Error during parsing: maximum snippet import depth (1000) exceeded"),
        "{e}"
    );

    // Each snippet doubles the previous one: 2^12 expansions are refused, not attempted.
    let mut text = String::from("(s0) {\n whoami\n}\n");
    for i in 1..=12 {
        text.push_str(&format!(
            "(s{i}) {{\n import s{}\n import s{}\n}}\n",
            i - 1,
            i - 1
        ));
    }
    text.push_str(". {\n import s12\n}\n");
    let e = err(&text);
    assert!(
        e.contains("maximum snippet import depth (1000) exceeded"),
        "{e}"
    );
}

#[test]
fn validate_directives_reports_first_unknown() {
    let cf = parse("a.org {\n whoami\n log\n}\nb.org {\n whoami\n foo bar\n bogus\n}").unwrap();
    let known = |n: &str| matches!(n, "whoami" | "log");
    assert_eq!(
        validate_directives(&cf, known).unwrap_err().to_string(),
        "Corefile:7 - Error during parsing: Unknown directive 'foo'"
    );
    assert!(validate_directives(&cf, |_| true).is_ok());
    // No blocks: nothing to reject.
    assert!(validate_directives(&parse("").unwrap(), |_| false).is_ok());
}

#[test]
fn bind_blocks_are_left_to_the_server() {
    // CoreDNS serves one zone in several blocks bound to different addresses.
    let got = ok(". {\n bind 127.0.0.1\n}\n. {\n bind ::1\n}");
    assert_eq!(got.len(), 2);
    // Without bind on both, the duplicate is still an error.
    assert_eq!(
        err(". {\n whoami\n}\n. {\n bind ::1\n}\n. {\n log\n}"),
        "Corefile:7 - Error during parsing: cannot serve dns://.:53 - it is already defined"
    );
    // Different ports and schemes are different listeners.
    assert_eq!(
        ok(".:53 {\n}\n.:54 {\n}\ntls://. {\n}\nhttps://. {\n}\ngrpc://. {\n}\nquic://. {\n}")
            .len(),
        6
    );
}

// ---- imports (files on disk) ----

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    /// The absolute label imported files get in tokens and errors.
    fn label(&self, rel: &str) -> String {
        std::path::absolute(self.path(rel))
            .unwrap()
            .display()
            .to_string()
    }
}

fn file_summary(path: &Path) -> Summary {
    summary(&parse_file(path, 53).unwrap_or_else(|e| panic!("{e}")))
}

fn file_err(path: &Path) -> String {
    match parse_file(path, 53) {
        Ok(cf) => panic!("expected an error, got {:?}", summary(&cf)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn import_inside_block_relative_to_importing_file() {
    let d = Dir::new();
    d.write("conf/plugins.conf", "errors\nlog\n");
    let main = d.write("Corefile", ". {\n import conf/plugins.conf\n whoami\n}\n");
    assert_eq!(
        file_summary(&main),
        vec![block(
            &["dns://.:53"],
            &[&["errors"], &["log"], &["whoami"]]
        )]
    );
    let cf = parse_file(&main, 53).unwrap();
    assert_eq!(cf.path, main);
    // Imported tokens carry the imported file's absolute path and their own lines.
    let d0 = &cf.blocks[0].directives[1];
    assert_eq!(
        (d0.file(), d0.line()),
        (d.label("conf/plugins.conf").as_str(), 2)
    );
    let d2 = &cf.blocks[0].directives[2];
    assert_eq!(d2.file(), main.display().to_string());
}

#[test]
fn import_top_level_blocks_glob_and_nested() {
    let d = Dir::new();
    d.write("zones/b.server", "b.org {\n import ../common\n}\n");
    d.write("zones/a.server", "a.org {\n whoami\n}\n");
    d.write("zones/skip.txt", "not.imported {\n}\n");
    d.write("common", "log\n");
    let main = d.write(
        "Corefile",
        "import zones/*.server\n. {\n forward . 1.1.1.1\n}\n",
    );
    assert_eq!(
        file_summary(&main),
        vec![
            block(&["dns://a.org.:53"], &[&["whoami"]]),
            block(&["dns://b.org.:53"], &[&["log"]]),
            block(&["dns://.:53"], &[&["forward", ".", "1.1.1.1"]]),
        ]
    );
}

#[test]
fn import_absolute_path_env_and_nested_block() {
    let d = Dir::new();
    let opts = d.write("opts.conf", "max_fails 3\n");
    let main = d.write(
        "Corefile",
        &format!(
            ". {{\n forward . 1.1.1.1 {{\n  import {}\n  expire 1s\n }}\n}}\n",
            opts.display()
        ),
    );
    assert_eq!(
        file_summary(&main),
        vec![block(
            &["dns://.:53"],
            &[&[
                "forward",
                ".",
                "1.1.1.1",
                "{",
                "max_fails",
                "3",
                "expire",
                "1s",
                "}"
            ]],
        )]
    );
    // A snippet defined in an imported file is usable after the import.
    d.write("snips.conf", "(s) {\n whoami\n}\n");
    let main = d.write("Corefile", "import snips.conf\n. {\n import s\n}\n");
    assert_eq!(
        file_summary(&main),
        vec![block(&["dns://.:53"], &[&["whoami"]])]
    );
}

#[test]
fn import_glob_without_match_is_not_an_error() {
    let d = Dir::new();
    let main = d.write(
        "Corefile",
        "import custom/*.server\n. {\n import custom/*.override\n whoami\n}\n",
    );
    assert_eq!(
        file_summary(&main),
        vec![block(&["dns://.:53"], &[&["whoami"]])]
    );
    // A file of only a glob import that matches nothing gives no blocks.
    let main = d.write("Corefile", "import nothing/*\n");
    assert_eq!(file_summary(&main), vec![]);
}

#[test]
fn import_errors() {
    let d = Dir::new();
    let main = d.write("Corefile", ". {\n whoami\n import missing.conf\n}\n");
    assert_eq!(
        file_err(&main),
        format!(
            "{}:3 - Error during parsing: File to import not found: missing.conf",
            main.display()
        )
    );

    std::fs::create_dir_all(d.path("adir")).unwrap();
    let main = d.write("Corefile", ". {\n import adir\n}\n");
    assert_eq!(
        file_err(&main),
        format!(
            "{}:2 - Error during parsing: Could not import {}: is a directory",
            main.display(),
            d.label("adir")
        )
    );

    let main = d.write("Corefile", ". {\n import *.a.*\n}\n");
    let e = file_err(&main);
    assert!(
        e.starts_with(&format!(
            "{}:2 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: ",
            main.display()
        )) && e.ends_with("*.a.*"),
        "{e}"
    );

    // Errors inside an imported file name that file.
    d.write("bad.conf", "log\nwhoami }\n");
    let main = d.write("Corefile", ". {\n import bad.conf\n}\n");
    assert_eq!(
        file_err(&main),
        format!(
            "{}:2 - Error during parsing: Unexpected '}}' because no matching opening brace",
            d.label("bad.conf")
        )
    );

    // Reading a Corefile that does not exist.
    let missing = d.path("nope/Corefile");
    let e = file_err(&missing);
    assert!(
        e.starts_with(&format!(
            "{}:0 - Error during parsing: Could not read {}: ",
            missing.display(),
            missing.display()
        )),
        "{e}"
    );
}

#[test]
fn import_cycles_are_detected() {
    let d = Dir::new();
    // A file importing itself.
    let main = d.write("Corefile", ". {\n import Corefile\n}\n");
    assert_eq!(
        file_err(&main),
        format!(
            "{m}:2 - Error during parsing: Import cycle detected: {m} -> {l}",
            m = main.display(),
            l = d.label("Corefile")
        )
    );

    // a -> b -> a, through a subdirectory and a relative path back up.
    d.write("a.conf", "import sub/b.conf\n");
    d.write("sub/b.conf", "import ../a.conf\n");
    let main = d.write("Corefile", ". {\n import a.conf\n}\n");
    let e = file_err(&main);
    assert_eq!(
        e,
        format!(
            "{b}:1 - Error during parsing: Import cycle detected: {m} -> {a} -> {b} -> {a2}",
            m = main.display(),
            a = d.label("a.conf"),
            b = d.label("sub/b.conf"),
            a2 = d.label("sub/../a.conf"),
        )
    );

    // A glob that matches the importing file.
    d.write("g/x.conf", "import *.conf\n");
    let main = d.write("Corefile", "import g/x.conf\n");
    let e = file_err(&main);
    assert!(e.contains("Import cycle detected"), "{e}");

    // The same file imported twice in a row is not a cycle.
    d.write("log.conf", "log\n");
    let main = d.write("Corefile", ". {\n import log.conf\n import log.conf\n}\n");
    assert_eq!(
        file_summary(&main),
        vec![block(&["dns://.:53"], &[&["log"], &["log"]])]
    );
}

#[test]
fn stock_kubernetes_corefile() {
    let text = r#".:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
    import /exdns-test-nonexistent-dir/*.override
}
import /exdns-test-nonexistent-dir/*.server
"#;
    let cf = parse(text).unwrap();
    assert_eq!(cf.blocks.len(), 1);
    let names: Vec<&str> = cf.blocks[0]
        .directives
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "errors",
            "health",
            "ready",
            "kubernetes",
            "prometheus",
            "forward",
            "cache",
            "loop",
            "reload",
            "loadbalance"
        ]
    );
    let kube = &cf.blocks[0].directives[3];
    assert_eq!(kube.tokens.len(), 13);
    assert_eq!(kube.tokens.last().map(|t| t.line), Some(11));
    assert_eq!(cf.blocks[0].directives[9].line(), 19);
}
