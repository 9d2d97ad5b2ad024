//! The expression text as tokens, each with its offset for error messages.

use super::CmpOp;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    Op(CmpOp),
    And,
    Or,
    Not,
    In,
    Is,
    Null,
    True,
    False,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) kind: Tok,
    /// Byte offset in the expression text.
    pub(super) at: usize,
}

impl Tok {
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Num(n) => format!("`{n}`"),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::Not => "`!`".into(),
            Tok::In => "`in`".into(),
            Tok::Is => "`is`".into(),
            Tok::Null => "`null`".into(),
            Tok::True => "`true`".into(),
            Tok::False => "`false`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
        }
    }
}

pub(super) fn lex(text: &str) -> Result<Vec<Token>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let at = i;
        let two = bytes.get(i..i + 2).unwrap_or(&[]);
        let (kind, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            _ if two == b"&&" => (Tok::And, 2),
            _ if two == b"||" => (Tok::Or, 2),
            _ if two == b"==" => (Tok::Op(CmpOp::Eq), 2),
            _ if two == b"!=" => (Tok::Op(CmpOp::Ne), 2),
            _ if two == b"<=" => (Tok::Op(CmpOp::Le), 2),
            _ if two == b">=" => (Tok::Op(CmpOp::Ge), 2),
            b'<' => (Tok::Op(CmpOp::Lt), 1),
            b'>' => (Tok::Op(CmpOp::Gt), 1),
            b'!' => (Tok::Not, 1),
            b'=' => {
                return Err(format!(
                    "single `=` at character {}; write `==` to compare",
                    at + 1
                ))
            }
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b'.' => (Tok::Dot, 1),
            b'"' | b'\'' => {
                let (s, len) = lex_string(&text[i..]).ok_or_else(|| {
                    format!(
                        "text starting at character {} is not closed by {}",
                        at + 1,
                        c as char
                    )
                })?;
                (Tok::Str(s), len)
            }
            b'`' => {
                let end = text[i + 1..].find('`').ok_or_else(|| {
                    format!(
                        "column name quoted with ` at character {} is not closed",
                        at + 1
                    )
                })?;
                (Tok::Ident(text[i + 1..i + 1 + end].to_owned()), end + 2)
            }
            b'-' | b'0'..=b'9' => {
                let len = 1 + bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E'))
                    .count();
                let word = &text[i..i + len];
                let n = serde_json::from_str::<serde_json::Number>(word)
                    .map_err(|_| format!("`{word}` at character {} is not a number", at + 1))?;
                (Tok::Num(n), len)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$'))
                    .count();
                let word = &text[i..i + len];
                let kind = match word {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    "is" => Tok::Is,
                    "null" => Tok::Null,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    _ => Tok::Ident(word.to_owned()),
                };
                (kind, len)
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(format!(
                    "unexpected `{ch}` at character {}; quote text with \"...\" and odd column names with `...`",
                    at + 1
                ));
            }
        };
        out.push(Token { kind, at });
        i += len;
    }
    Ok(out)
}

/// A quoted string with `\\`, `\"`, `\'`, `\n`, `\t` escapes; returns it and its byte length.
fn lex_string(s: &str) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    let (_, quote) = chars.next()?;
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c if c == quote => return Some((out, i + 1)),
            c => out.push(c),
        }
    }
    None
}
