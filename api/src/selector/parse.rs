//! The label selector string grammar: a lexer and a recursive-descent parser.

use std::fmt;

use super::label::{Operator, Requirement};
use super::{check_key, Result, SelectorError};

/// Parses a label selector string into requirements (unsorted).
pub(super) fn parse(s: &str) -> Result<Vec<Requirement>> {
    Parser::new(s).selector()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Bang,
    Eq,
    NotEq,
    Open,
    Close,
    Comma,
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "'{s}'"),
            Token::Bang => f.write_str("'!'"),
            Token::Eq => f.write_str("'='"),
            Token::NotEq => f.write_str("'!='"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
            Token::End => f.write_str("end of string"),
        }
    }
}

/// Recursive-descent parser over a token list; `in`/`notin` are keywords only
/// in operator position, so they remain usable as keys and values.
struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Parser<'a> {
        Parser {
            input,
            tokens: lex(input),
            pos: 0,
        }
    }

    fn next(&mut self) -> Token {
        let t = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        self.pos += 1;
        t
    }

    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn error<T>(&self, found: &Token, expected: &str) -> Result<T> {
        Err(SelectorError::Syntax {
            selector: self.input.to_string(),
            message: format!("found {found}, expected: {expected}"),
        })
    }

    fn selector(&mut self) -> Result<Vec<Requirement>> {
        let mut reqs = Vec::new();
        if *self.peek() == Token::End {
            return Ok(reqs);
        }
        loop {
            reqs.push(self.requirement()?);
            match self.next() {
                Token::Comma => {}
                Token::End => return Ok(reqs),
                t => return self.error(&t, "',' or end of string"),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement> {
        let key = match self.next() {
            Token::Bang => match self.next() {
                Token::Ident(k) => return Requirement::new(&k, Operator::DoesNotExist, vec![]),
                t => return self.error(&t, "identifier after '!'"),
            },
            Token::Ident(k) => k,
            t => return self.error(&t, "'!' or identifier"),
        };
        check_key(&key)?;
        let op = match self.peek() {
            Token::Comma | Token::End => return Requirement::new(&key, Operator::Exists, vec![]),
            Token::Eq => Operator::Equals,
            Token::NotEq => Operator::NotEquals,
            Token::Ident(w) if w == "in" => Operator::In,
            Token::Ident(w) if w == "notin" => Operator::NotIn,
            t => return self.error(t, "'=', '==', '!=', 'in', 'notin', ',' or end of string"),
        };
        self.pos += 1;
        let values = match op {
            Operator::Equals | Operator::NotEquals => vec![self.exact_value()],
            _ => self.value_set()?,
        };
        Requirement::new(&key, op, values)
    }

    /// `k=` with nothing after it selects the empty value.
    fn exact_value(&mut self) -> String {
        match self.peek().clone() {
            Token::Ident(v) => {
                self.pos += 1;
                v
            }
            _ => String::new(),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>> {
        match self.next() {
            Token::Open => {}
            t => return self.error(&t, "'(' after 'in' or 'notin'"),
        }
        let mut values = Vec::new();
        let mut current: Option<String> = None;
        loop {
            match self.next() {
                Token::Ident(v) if current.is_none() => current = Some(v),
                Token::Comma => values.push(current.take().unwrap_or_default()),
                Token::Close => {
                    if current.is_some() || !values.is_empty() {
                        values.push(current.take().unwrap_or_default());
                    }
                    return Ok(values);
                }
                t => return self.error(&t, "',', ')' or identifier"),
            }
        }
    }
}

fn lex(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::NotEq
            }
            '!' => Token::Bang,
            '=' => {
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                Token::Eq
            }
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            c => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "!=(),".contains(n) {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                Token::Ident(word)
            }
        };
        tokens.push(token);
    }
    tokens
}
