//! Splits Corefile text into tokens (CoreDNS/Caddy lexer rules).
//!
//! - Tokens are separated by whitespace. `{` and `}` are only braces when they stand alone
//!   (`example.org{` is a single token); the parser decides what a token means.
//! - A `"` at the start of a token starts a quoted token that runs to the next unescaped `"` and may
//!   span lines. Inside it only `\"` is an escape; any other backslash is kept as written.
//!   A quote in the middle of a word is an ordinary character.
//! - `#` outside a quoted token starts a comment that runs to the end of the line, even in the
//!   middle of a word (`foo#bar` is the token `foo`).
//! - A leading byte order mark is ignored.

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

    /// An unquoted `{`.
    pub fn is_open_brace(&self) -> bool {
        !self.quoted && self.text == "{"
    }

    /// An unquoted `}`.
    pub fn is_close_brace(&self) -> bool {
        !self.quoted && self.text == "}"
    }
}

/// Tokenizes `input`, labelling tokens with `file`.
pub fn tokenize(input: &str, file: &Arc<str>) -> Vec<Token> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut tokens = Vec::new();
    let mut line = 1usize;
    let mut word = String::new();
    let mut word_line = 0usize;
    let mut in_word = false;
    let mut chars = input.chars();

    let make = |text: String, line: usize, quoted: bool| Token {
        text,
        file: file.clone(),
        line,
        quoted,
    };

    while let Some(ch) = chars.next() {
        match ch {
            '#' => {
                if in_word {
                    tokens.push(make(std::mem::take(&mut word), word_line, false));
                    in_word = false;
                }
                // Skip to the end of the line; the newline itself still counts.
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' if !in_word => {
                let start = line;
                let mut text = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some('"') => text.push('"'),
                            Some(other) => {
                                if other == '\n' {
                                    line += 1;
                                }
                                text.push('\\');
                                text.push(other);
                            }
                            None => text.push('\\'),
                        },
                        '\n' => {
                            line += 1;
                            text.push('\n');
                        }
                        _ => text.push(c),
                    }
                }
                // An unterminated quote at EOF still yields what it collected (as Caddy does).
                if closed || !text.is_empty() {
                    tokens.push(make(text, start, true));
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    tokens.push(make(std::mem::take(&mut word), word_line, false));
                    in_word = false;
                }
                if c == '\n' {
                    line += 1;
                }
            }
            c => {
                if !in_word {
                    in_word = true;
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    if in_word {
        tokens.push(make(word, word_line, false));
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text, line, quoted.
    type Lexed = (String, usize, bool);

    fn lex(input: &str) -> Vec<Lexed> {
        let f: Arc<str> = Arc::from("Corefile");
        tokenize(input, &f)
            .into_iter()
            .map(|t| {
                assert_eq!(&*t.file, "Corefile");
                (t.text, t.line, t.quoted)
            })
            .collect()
    }

    fn t(text: &str, line: usize) -> Lexed {
        (text.to_string(), line, false)
    }

    fn q(text: &str, line: usize) -> Lexed {
        (text.to_string(), line, true)
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Vec<Lexed>)> = vec![
            ("", vec![]),
            ("   \n\t \n", vec![]),
            ("a b\tc", vec![t("a", 1), t("b", 1), t("c", 1)]),
            (
                "example.org {\n    whoami\n}\n",
                vec![t("example.org", 1), t("{", 1), t("whoami", 2), t("}", 3)],
            ),
            // Braces are only tokens when separate.
            ("example.org{", vec![t("example.org{", 1)]),
            ("{a} }b", vec![t("{a}", 1), t("}b", 1)]),
            // Comments, including mid-word, run to the end of the line.
            ("a # comment { }\nb", vec![t("a", 1), t("b", 2)]),
            ("foo#bar baz\nqux", vec![t("foo", 1), t("qux", 2)]),
            ("# only a comment", vec![]),
            ("#\n#\nx", vec![t("x", 3)]),
            // Quoted tokens.
            (r#""a b" c"#, vec![q("a b", 1), t("c", 1)]),
            (r#""""#, vec![q("", 1)]),
            (r#""{""#, vec![q("{", 1)]),
            (r#""say \"hi\"""#, vec![q(r#"say "hi""#, 1)]),
            (r#""a\nb\\c""#, vec![q(r"a\nb\\c", 1)]),
            (r#""a#b" c"#, vec![q("a#b", 1), t("c", 1)]),
            (
                "\"two\nlines\" x\ny",
                vec![q("two\nlines", 1), t("x", 2), t("y", 3)],
            ),
            (r#""a"b"#, vec![q("a", 1), t("b", 1)]),
            (r#"a"b" c"#, vec![t(r#"a"b""#, 1), t("c", 1)]),
            // Unterminated quote: what was collected is kept.
            ("\"abc", vec![q("abc", 1)]),
            ("\"", vec![]),
            // CRLF line endings and a BOM.
            ("a\r\nb\r\n", vec![t("a", 1), t("b", 2)]),
            ("a\rb", vec![t("a", 1), t("b", 1)]),
            ("\u{feff}a", vec![t("a", 1)]),
            // Line numbers across blank lines.
            ("\n\n  a\n\n b c\n", vec![t("a", 3), t("b", 5), t("c", 5)]),
        ];
        for (input, want) in cases {
            assert_eq!(lex(input), want, "input {input:?}");
        }
    }

    #[test]
    fn line_breaks_and_braces() {
        let f: Arc<str> = Arc::from("x");
        let toks = tokenize("\"a\nb\nc\" { } \"{\" \"}\"", &f);
        assert_eq!(toks[0].line_breaks(), 2);
        assert!(toks[1].is_open_brace());
        assert!(toks[2].is_close_brace());
        assert!(!toks[3].is_open_brace());
        assert!(!toks[4].is_close_brace());
        assert_eq!(toks[1].line_breaks(), 0);
    }
}
