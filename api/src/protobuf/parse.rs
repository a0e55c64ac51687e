//! A parser for the proto2 subset Kubernetes' `generated.proto` files use:
//! `syntax`, `package`, `import`, `option`, `reserved`, nested `message`s, and
//! `optional|required|repeated <type> <name> = <n>;` and
//! `map<k, v> <name> = <n>;` fields (field options in `[...]` are skipped).
//! Anything else (`enum`, `oneof`, `extend`, `service`, groups) is an error.

use std::fmt;

/// One parsed `.proto` file; type names are not resolved yet.
#[derive(Debug, Default)]
pub(crate) struct ProtoFile {
    pub package: String,
    pub imports: Vec<String>,
    pub messages: Vec<MessageDecl>,
}

/// A `message` and the messages nested in it.
#[derive(Debug)]
pub(crate) struct MessageDecl {
    pub name: String,
    pub fields: Vec<FieldDecl>,
    pub nested: Vec<MessageDecl>,
}

/// One field as written.
#[derive(Debug)]
pub(crate) struct FieldDecl {
    pub name: String,
    pub number: u32,
    pub label: DeclLabel,
    /// The (value) type as written: a scalar name or a message name.
    pub type_name: String,
    pub line: usize,
}

/// How often a field may occur.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeclLabel {
    Optional,
    Repeated,
    /// `map<key, value>`: the key's scalar type name.
    Map(String),
}

/// Where and why a file did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An identifier, possibly dotted and possibly with a leading dot.
    Ident(String),
    Int(u64),
    Str(String),
    Sym(char),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "`{s}`"),
            Token::Int(n) => write!(f, "`{n}`"),
            Token::Str(s) => write!(f, "{s:?}"),
            Token::Sym(c) => write!(f, "`{c}`"),
        }
    }
}

/// Splits `text` into tokens with their line numbers, dropping comments.
fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line) = (0, 1);
    let mut tokens = Vec::new();
    let err = |line, message: String| ParseError { line, message };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = line;
            i += 2;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('*'), Some('/')) => break i += 2,
                    (Some(ch), _) => {
                        line += usize::from(*ch == '\n');
                        i += 1;
                    }
                    (None, _) => return Err(err(start, "unterminated /* comment".into())),
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.".contains(chars[i])) {
                i += 1;
            }
            tokens.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text
                .parse()
                .map_err(|_| err(line, format!("bad number `{text}`")))?;
            tokens.push((Token::Int(n), line));
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c && chars[i] != '\n' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            if chars.get(i) != Some(&c) {
                return Err(err(line, "unterminated string".into()));
            }
            i += 1;
            tokens.push((Token::Str(chars[start + 1..i - 1].iter().collect()), line));
        } else if "{}[]<>()=;,-+:".contains(c) {
            tokens.push((Token::Sym(c), line));
            i += 1;
        } else {
            return Err(err(line, format!("unexpected character {c:?}")));
        }
    }
    Ok(tokens)
}

/// Parses one file's text.
pub(crate) fn parse(text: &str) -> Result<ProtoFile, ParseError> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
    };
    let mut file = ProtoFile::default();
    while let Some(tok) = p.peek().cloned() {
        match tok {
            Token::Sym(';') => p.pos += 1,
            Token::Ident(word) if word == "syntax" => p.syntax()?,
            Token::Ident(word) if word == "package" => {
                p.pos += 1;
                file.package = p.ident()?;
                p.expect(';')?;
            }
            Token::Ident(word) if word == "import" => {
                p.pos += 1;
                if matches!(p.peek(), Some(Token::Ident(w)) if w == "public" || w == "weak") {
                    p.pos += 1;
                }
                file.imports.push(p.string()?);
                p.expect(';')?;
            }
            Token::Ident(word) if word == "option" => p.skip_statement()?,
            Token::Ident(word) if word == "message" => file.messages.push(p.message()?),
            other => return Err(p.error(format!("unexpected {other} at the top level"))),
        }
    }
    Ok(file)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(1, |(_, l)| *l)
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            line: self.line(),
            message,
        }
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| self.error("unexpected end of file".into()))?;
        self.pos += 1;
        Ok(tok)
    }

    fn expect(&mut self, sym: char) -> Result<(), ParseError> {
        match self.next()? {
            Token::Sym(c) if c == sym => Ok(()),
            other => {
                self.pos -= 1;
                Err(self.error(format!("expected `{sym}`, found {other}")))
            }
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        match self.next()? {
            Token::Ident(s) => Ok(s),
            other => {
                self.pos -= 1;
                Err(self.error(format!("expected a name, found {other}")))
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.next()? {
            Token::Str(s) => Ok(s),
            other => {
                self.pos -= 1;
                Err(self.error(format!("expected a string, found {other}")))
            }
        }
    }

    fn syntax(&mut self) -> Result<(), ParseError> {
        self.pos += 1;
        self.expect('=')?;
        let syntax = self.string()?;
        if syntax != "proto2" {
            return Err(self.error(format!("syntax {syntax:?} is not supported, only proto2")));
        }
        self.expect(';')
    }

    /// Skips an `option` or `reserved` statement up to its `;`, over any
    /// braces or brackets in its value.
    fn skip_statement(&mut self) -> Result<(), ParseError> {
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Token::Sym('{' | '[' | '(') => depth += 1,
                Token::Sym('}' | ']' | ')') => depth = depth.saturating_sub(1),
                Token::Sym(';') if depth == 0 => return Ok(()),
                _ => {}
            }
        }
    }

    /// `message Name { ... }`, with the `message` keyword next.
    fn message(&mut self) -> Result<MessageDecl, ParseError> {
        self.pos += 1;
        let mut msg = MessageDecl {
            name: self.ident()?,
            fields: Vec::new(),
            nested: Vec::new(),
        };
        self.expect('{')?;
        loop {
            match self.peek().cloned() {
                Some(Token::Sym('}')) => {
                    self.pos += 1;
                    return Ok(msg);
                }
                Some(Token::Sym(';')) => self.pos += 1,
                Some(Token::Ident(word)) => match word.as_str() {
                    "message" => msg.nested.push(self.message()?),
                    "option" | "reserved" | "extensions" => self.skip_statement()?,
                    "optional" | "required" | "repeated" | "map" => msg.fields.push(self.field()?),
                    _ => {
                        return Err(self.error(format!(
                            "`{word}` in message {} is not supported by this proto2 subset",
                            msg.name
                        )))
                    }
                },
                Some(other) => return Err(self.error(format!("unexpected {other} in message"))),
                None => return Err(self.error(format!("message {} is not closed", msg.name))),
            }
        }
    }

    /// One field declaration, with its label (or `map`) next.
    fn field(&mut self) -> Result<FieldDecl, ParseError> {
        let line = self.line();
        let word = self.ident()?;
        let (label, type_name) = if word == "map" {
            self.expect('<')?;
            let key = self.ident()?;
            self.expect(',')?;
            let value = self.ident()?;
            self.expect('>')?;
            (DeclLabel::Map(key), value)
        } else {
            let label = match word.as_str() {
                "repeated" => DeclLabel::Repeated,
                _ => DeclLabel::Optional,
            };
            let type_name = self.ident()?;
            if type_name == "group" {
                return Err(self.error("groups are not supported".into()));
            }
            (label, type_name)
        };
        let name = self.ident()?;
        self.expect('=')?;
        let number = match self.next()? {
            Token::Int(n) if (1..=(1 << 29) - 1).contains(&n) => n as u32,
            other => return Err(self.error(format!("bad field number {other} for {name}"))),
        };
        if self.peek() == Some(&Token::Sym('[')) {
            while self.next()? != Token::Sym(']') {}
        }
        self.expect(';')?;
        Ok(FieldDecl {
            name,
            number,
            label,
            type_name,
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let file = parse(
            r#"
            /* header */
            syntax = "proto2";
            package a.b;
            import "x/y.proto";
            option go_package = "a/b";
            // a comment
            message Outer {
              option (ext) = { x: 1 };
              reserved 5, 6;
              message Inner { optional int32 n = 1 [default = 3]; }
              optional Inner inner = 1;
              repeated .a.b.Outer children = 2;
              map<string, bytes> data = 3;
              required string name = 4;
            }
            "#,
        )
        .unwrap();
        assert_eq!(file.package, "a.b");
        assert_eq!(file.imports, ["x/y.proto"]);
        let outer = &file.messages[0];
        assert_eq!(outer.nested[0].name, "Inner");
        assert_eq!(outer.nested[0].fields[0].number, 1);
        let shapes: Vec<_> = outer
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.as_str(),
                    f.number,
                    f.label.clone(),
                    f.type_name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shapes,
            [
                ("inner", 1, DeclLabel::Optional, "Inner"),
                ("children", 2, DeclLabel::Repeated, ".a.b.Outer"),
                ("data", 3, DeclLabel::Map("string".into()), "bytes"),
                ("name", 4, DeclLabel::Optional, "string"),
            ]
        );
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        let cases = [
            (
                r#"syntax = "proto3";"#,
                "line 1: syntax \"proto3\" is not supported",
            ),
            (
                "message M { enum E { A = 0; } }",
                "line 1: `enum` in message M",
            ),
            (
                "message M {\n optional int32 a = 0; }",
                "line 2: bad field number `0`",
            ),
            (
                "message M { optional int32 a = 1 }",
                "line 1: expected `;`, found `}`",
            ),
            ("message M {\n\n", "line 1: message M is not closed"),
            ("/* open", "line 1: unterminated /* comment"),
            (
                "service S {}",
                "line 1: unexpected `service` at the top level",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err().to_string();
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
    }
}
