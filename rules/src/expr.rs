//! The `where` language: comparisons, `in`, null checks and `&&`/`||`/`!` over column values.
//! Parsed once at start-up; evaluated against borrowed row values without allocating in the
//! common cases. docs/rules.md says why this is not CEL.

use serde_json::Value;
use sluice_event::{ChangeEvent, EventType, Row};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A compiled `where` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Expr,
    /// Every column the expression reads (through `col`, `data.col` or `old.col`).
    columns: Vec<String>,
}

/// The row images an expression is evaluated on.
struct Image<'a> {
    kind: EventType,
    data: &'a Row,
    old: Option<&'a Row>,
    database: &'a str,
    table: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Operand, CmpOp, Operand),
    In(Operand, Operand),
    Truthy(Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// A column of `data` (`status`, `data.status`).
    Data(String),
    /// A column of the before-image (`old.status`).
    Old(String),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Null, shared by every `old.col` of an INSERT.
static NULL: Value = Value::Null;

impl Filter {
    /// Parses an expression; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            text,
        };
        let root = p.or()?;
        if let Some(t) = p.tokens.get(p.pos) {
            return Err(format!(
                "unexpected {} at character {}; combine conditions with && or ||",
                t.kind.describe(),
                t.at + 1
            ));
        }
        let mut columns = Vec::new();
        root.columns(&mut columns);
        columns.sort();
        columns.dedup();
        Ok(Filter { root, columns })
    }

    /// True if the expression reads any of `changed` (source column names).
    pub fn reads_any<'c>(&self, mut changed: impl Iterator<Item = &'c String>) -> bool {
        changed.any(|c| self.columns.binary_search(c).is_ok())
    }

    /// Evaluates against an event's `data` (and `old` for `old.col`).
    pub fn eval(&self, event: &ChangeEvent) -> Result<bool, String> {
        self.root.eval(&Image {
            kind: event.kind,
            data: &event.data,
            old: event.old.as_ref(),
            database: &event.database,
            table: &event.table,
        })
    }

    /// Evaluates against the before-image of an UPDATE, as if the row were being deleted.
    pub fn eval_before(&self, event: &ChangeEvent, before: &Row) -> Result<bool, String> {
        self.root.eval(&Image {
            kind: EventType::Delete,
            data: before,
            old: None,
            database: &event.database,
            table: &event.table,
        })
    }
}

impl Expr {
    fn columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Or(v) | Expr::And(v) => v.iter().for_each(|e| e.columns(out)),
            Expr::Not(e) => e.columns(out),
            Expr::Compare(a, _, b) | Expr::In(a, b) => {
                out.extend(a.column().cloned());
                out.extend(b.column().cloned());
            }
            Expr::Truthy(a) => out.extend(a.column().cloned()),
        }
    }

    fn eval(&self, event: &Image<'_>) -> Result<bool, String> {
        match self {
            Expr::Or(v) => {
                for e in v {
                    if e.eval(event)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Expr::And(v) => {
                for e in v {
                    if !e.eval(event)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Expr::Not(e) => Ok(!e.eval(event)?),
            Expr::Compare(a, op, b) => compare(a.value(event)?, *op, b.value(event)?)
                .map_err(|m| format!("{} {} {}: {m}", a.show(), op.symbol(), b.show())),
            Expr::In(a, b) => {
                let needle = a.value(event)?;
                match b.value(event)? {
                    Value::Array(items) => Ok(items.iter().any(|i| equal(needle, i))),
                    Value::Null => Ok(false),
                    other => Err(format!(
                        "`in` needs a list on its right, but {} is {}",
                        b.show(),
                        short(other)
                    )),
                }
            }
            Expr::Truthy(a) => match a.value(event)? {
                Value::Bool(b) => Ok(*b),
                Value::Null => Ok(false),
                Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
                other => Err(format!(
                    "{} is {}, not true/false; compare it, e.g. {} == \"...\"",
                    a.show(),
                    short(other),
                    a.show()
                )),
            },
        }
    }
}

impl Operand {
    fn show(&self) -> String {
        match self {
            Operand::Data(c) => c.clone(),
            Operand::Old(c) => format!("old.{c}"),
            Operand::Literal(v) => v.to_string(),
        }
    }

    fn column(&self) -> Option<&String> {
        match self {
            Operand::Data(c) | Operand::Old(c) => Some(c),
            Operand::Literal(_) => None,
        }
    }

    fn value<'a>(&'a self, event: &Image<'a>) -> Result<&'a Value, String> {
        match self {
            Operand::Literal(v) => Ok(v),
            Operand::Data(c) => event.data.get(c).ok_or_else(|| missing(c, event)),
            Operand::Old(c) => match event.kind {
                EventType::Insert | EventType::Ddl => Ok(&NULL),
                EventType::Delete => event.data.get(c).ok_or_else(|| missing(c, event)),
                EventType::Update => event
                    .old
                    .and_then(|old| old.get(c))
                    .or_else(|| event.data.get(c))
                    .ok_or_else(|| missing(c, event)),
            },
        }
    }
}

fn missing(column: &str, event: &Image<'_>) -> String {
    format!(
        "column `{column}` is not in {}.{} (it has: {}); check the column name",
        event.database,
        event.table,
        crate::template::column_list(event.data)
    )
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// `==`/`!=` never fail; ordering fails for values that have no order between them.
fn compare(a: &Value, op: CmpOp, b: &Value) -> Result<bool, String> {
    match op {
        CmpOp::Eq => return Ok(equal(a, b)),
        CmpOp::Ne => return Ok(!equal(a, b)),
        _ => {}
    }
    let ord = match (a, b) {
        // Like SQL, an ordering with null is not true.
        (Value::Null, _) | (_, Value::Null) => return Ok(false),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                return Err(format!(
                    "cannot order {} against {}; compare numbers (or DECIMAL text) with numbers, text with text",
                    short(a),
                    short(b)
                ))
            }
        },
    };
    Ok(match op {
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
        CmpOp::Eq | CmpOp::Ne => false,
    })
}

/// Equality: numbers, numeric text and booleans compare by value; other values by JSON equality.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(_), _) | (_, Value::Number(_)) => match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => a == b,
    }
}

/// A number as exact decimal text, or an integer.
#[derive(Debug)]
enum Num<'a> {
    Int(i128),
    Text(Cow<'a, str>),
}

/// The numeric view of a value: JSON numbers, booleans (MySQL BOOL is TINYINT), and text that
/// is a plain decimal (`-12.30`, DECIMAL's JSON form).
fn numeric(v: &Value) -> Option<Num<'_>> {
    match v {
        Value::Bool(b) => Some(Num::Int(i128::from(*b))),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Num::Int(i128::from(i)))
            } else if let Some(u) = n.as_u64() {
                Some(Num::Int(i128::from(u)))
            } else {
                // Rust's Display of f64 is the shortest round-trip text and never uses exponents.
                n.as_f64().map(|f| Num::Text(Cow::Owned(f.to_string())))
            }
        }
        Value::String(s) => {
            if !is_decimal(s) {
                return None;
            }
            match s.parse::<i128>() {
                Ok(i) => Some(Num::Int(i)),
                Err(_) => Some(Num::Text(Cow::Borrowed(s))),
            }
        }
        _ => None,
    }
}

impl PartialEq for Num<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Num<'_> {
    fn cmp(&self, other: &Num<'_>) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(b),
            _ => cmp_decimal(&self.text(), &other.text()),
        }
    }

    fn text(&self) -> Cow<'_, str> {
        match self {
            Num::Int(i) => Cow::Owned(i.to_string()),
            Num::Text(t) => Cow::Borrowed(t),
        }
    }
}

/// `[+-]digits[.digits]`.
fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit())
}

/// Exact comparison of two texts that passed [`is_decimal`] (or came from f64/i128 Display).
fn cmp_decimal(a: &str, b: &str) -> Ordering {
    let (na, ia, fa) = split_decimal(a);
    let (nb, ib, fb) = split_decimal(b);
    let magnitude = ia
        .len()
        .cmp(&ib.len())
        .then_with(|| ia.cmp(ib))
        .then_with(|| fa.cmp(fb));
    match (na, nb) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// Sign (false for zero), integer digits without leading zeros, fraction without trailing zeros.
fn split_decimal(s: &str) -> (bool, &str, &str) {
    let neg = s.starts_with('-');
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    (neg && !(int.is_empty() && frac.is_empty()), int, frac)
}

/// A value for an error message, cut to a readable length.
fn short(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let mut text = v.to_string();
    if text.len() > 40 {
        let cut = (0..=37)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{kind} ({text})")
}

// ---- lexer ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
struct Token {
    kind: Tok,
    /// Byte offset in the expression text.
    at: usize,
}

impl Tok {
    fn describe(&self) -> String {
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

fn lex(text: &str) -> Result<Vec<Token>, String> {
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

// ---- parser ----

struct Parser<'t> {
    tokens: Vec<Token>,
    pos: usize,
    text: &'t str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn eat(&mut self, kind: &Tok) -> bool {
        if self.peek() == Some(kind) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expected(&self, what: &str) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => format!(
                "expected {what} at character {}, found {}",
                t.at + 1,
                t.kind.describe()
            ),
            None => format!(
                "expected {what} at the end (character {})",
                self.text.len() + 1
            ),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.chain(&Tok::Or, Self::and, Expr::Or)
    }

    fn and(&mut self) -> Result<Expr, String> {
        self.chain(&Tok::And, Self::not, Expr::And)
    }

    /// `next (sep next)*`, as one node when there is more than one operand.
    fn chain(
        &mut self,
        sep: &Tok,
        next: fn(&mut Self) -> Result<Expr, String>,
        make: fn(Vec<Expr>) -> Expr,
    ) -> Result<Expr, String> {
        let mut items = vec![next(self)?];
        while self.eat(sep) {
            items.push(next(self)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            make(items)
        })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat(&Tok::Not) {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.eat(&Tok::LParen) {
            let e = self.or()?;
            if !self.eat(&Tok::RParen) {
                return Err(self.expected("`)`"));
            }
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.operand()?;
        match self.peek().cloned() {
            Some(Tok::Op(op)) => {
                self.pos += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(left, op, right))
            }
            Some(Tok::In) => {
                self.pos += 1;
                Ok(Expr::In(left, self.operand()?))
            }
            Some(Tok::Not) if self.tokens.get(self.pos + 1).map(|t| &t.kind) == Some(&Tok::In) => {
                self.pos += 2;
                Ok(Expr::Not(Box::new(Expr::In(left, self.operand()?))))
            }
            Some(Tok::Is) => {
                self.pos += 1;
                let negated = self.eat(&Tok::Not);
                if !self.eat(&Tok::Null) {
                    return Err(self.expected("`null` after `is`"));
                }
                let op = if negated { CmpOp::Ne } else { CmpOp::Eq };
                Ok(Expr::Compare(left, op, Operand::Literal(Value::Null)))
            }
            _ => match left {
                Operand::Literal(v) => Err(format!(
                    "{v} alone is not a condition; compare a column with it, e.g. status == {v}"
                )),
                column => Ok(Expr::Truthy(column)),
            },
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.expected("a column, text, number, list, true, false or null"));
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Str(s) => Operand::Literal(Value::String(s)),
            Tok::Num(n) => Operand::Literal(Value::Number(n)),
            Tok::True => Operand::Literal(Value::Bool(true)),
            Tok::False => Operand::Literal(Value::Bool(false)),
            Tok::Null => Operand::Literal(Value::Null),
            Tok::LBracket => Operand::Literal(Value::Array(self.list()?)),
            Tok::Ident(name) => {
                if (name == "old" || name == "data") && self.eat(&Tok::Dot) {
                    let column = match self.peek().cloned() {
                        Some(Tok::Ident(c)) => c,
                        _ => return Err(self.expected(&format!("a column name after `{name}.`"))),
                    };
                    self.pos += 1;
                    if name == "old" {
                        Operand::Old(column)
                    } else {
                        Operand::Data(column)
                    }
                } else {
                    Operand::Data(name)
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.expected("a column, text, number, list, true, false or null"));
            }
        })
    }

    fn list(&mut self) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        if self.eat(&Tok::RBracket) {
            return Ok(items);
        }
        loop {
            match self.operand()? {
                Operand::Literal(v) => items.push(v),
                _ => {
                    self.pos -= 1;
                    return Err(self.expected("text, a number, true, false or null in a list"));
                }
            }
            if self.eat(&Tok::RBracket) {
                return Ok(items);
            }
            if !self.eat(&Tok::Comma) {
                return Err(self.expected("`,` or `]`"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: EventType, data: Value, old: Option<Value>) -> ChangeEvent {
        crate::test_util::event(kind, &["id"], data, old)
    }

    #[test]
    fn evaluates() {
        let e = event(
            EventType::Update,
            json!({"id": 7, "status": "paid", "amount": "12.30", "price": 99.5, "big": u64::MAX,
                   "note": null, "active": 1, "flag": true, "tags": ["a", "b"], "neg": "-0.50",
                   "day": "2026-11-21", "odd name": "x"}),
            Some(json!({"status": "new", "amount": "10.00"})),
        );
        let cases = [
            (r#"status != "deleted" && amount > 100"#, false),
            (r#"status != "deleted" && amount > 12"#, true),
            ("amount == 12.3", true),
            ("amount == 12.30", true),
            ("amount >= 12.3 && amount <= 12.300", true),
            ("amount < 12.31", true),
            (r#"amount == "12.3""#, false), // text vs text compares as text
            ("price > 99.4999 && price < 100", true),
            ("price == 99.5", true),
            ("big > 18446744073709551614", true),
            ("big == 18446744073709551615", true),
            ("id == 7 && id == 7.0", true),
            (r#"id == "7""#, true),
            ("id in [1, 7, 9]", true),
            ("id not in [1, 7, 9]", false),
            (r#"status in ["paid", "shipped"]"#, true),
            (r#"!(status in ["paid"])"#, false),
            (r#""a" in tags && !("c" in tags)"#, true),
            ("id in []", false),
            ("note == null && note is null", true),
            ("note is not null || note != null", false),
            ("status is not null", true),
            ("note > 1 || note < 1", false),
            ("active && active == true && flag && flag == 1", true),
            ("!active", false),
            ("not note", true),
            ("neg < 0 && neg > -1 && neg == -0.5", true),
            (r#"day >= "2026-01-01" && day < "2027-01-01""#, true),
            (r#"old.status == "new" && status == "paid""#, true),
            ("old.amount < amount", true),
            ("old.id == id", true), // unchanged column: before == after
            (r#"data.status == "paid""#, true),
            ("`odd name` == 'x'", true),
            ("status != 'héllo 🌊' && status != \"it\\\"s\"", true),
            ("status == 'x' or id == 7 and status == 'paid'", true),
            ("(id == 1 || id == 7) && !(status == 'new')", true),
            ("id == 1 || id == 2 || id == 7", true),
            (
                "id == 1 && status == 'paid' || id == 7 && status == 'paid'",
                true,
            ),
        ];
        for (text, want) in cases {
            let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(f.eval(&e), Ok(want), "{text}");
        }
    }

    #[test]
    fn old_by_event_type() {
        let insert = event(EventType::Insert, json!({"status": "new"}), None);
        let delete = event(EventType::Delete, json!({"status": "gone"}), None);
        let cases = [
            (&insert, "old.status == null", true),
            (&delete, "old.status == 'gone'", true),
            (&delete, "status == 'gone'", true),
        ];
        for (e, text, want) in cases {
            assert_eq!(Filter::parse(text).unwrap().eval(e), Ok(want), "{text}");
        }
    }

    #[test]
    fn evaluation_errors() {
        let e = event(
            EventType::Insert,
            json!({"id": 1, "status": "paid", "attrs": {"a": 1}}),
            None,
        );
        let cases = [
            ("amount > 1", "column `amount` is not in shop.orders (it has: id, status, attrs); check the column name"),
            ("status > 1", "status > 1: cannot order text (\"paid\") against a number (1); compare numbers (or DECIMAL text) with numbers, text with text"),
            ("id in status", "`in` needs a list on its right, but status is text (\"paid\")"),
            ("status", "status is text (\"paid\"), not true/false; compare it, e.g. status == \"...\""),
            ("attrs < 1", "attrs < 1: cannot order an object ({\"a\":1}) against a number (1); compare numbers (or DECIMAL text) with numbers, text with text"),
        ];
        for (text, want) in cases {
            assert_eq!(
                Filter::parse(text).unwrap().eval(&e),
                Err(want.to_owned()),
                "{text}"
            );
        }
        // Short-circuit: the missing column on the right is never read.
        assert_eq!(
            Filter::parse("id == 2 && amount > 1").unwrap().eval(&e),
            Ok(false)
        );
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("status = 1", "single `=` at character 8; write `==` to compare"),
            ("status ==", "expected a column, text, number, list, true, false or null at the end (character 10)"),
            ("(a == 1", "expected `)` at the end (character 8)"),
            ("a == 1 b == 2", "unexpected `b` at character 8; combine conditions with && or ||"),
            ("a == 'x", "text starting at character 6 is not closed by '"),
            ("a in [1, b]", "expected text, a number, true, false or null in a list at character 10, found `b`"),
            ("a in [1 2]", "expected `,` or `]` at character 9, found `2`"),
            ("a is 1", "expected `null` after `is` at character 6, found `1`"),
            ("old. == 1", "expected a column name after `old.` at character 6, found `==`"),
            ("a == 1.2.3", "`1.2.3` at character 6 is not a number"),
            ("a == #", "unexpected `#` at character 6; quote text with \"...\" and odd column names with `...`"),
            ("'x'", "\"x\" alone is not a condition; compare a column with it, e.g. status == \"x\""),
            ("", "expected a column, text, number, list, true, false or null at the end (character 1)"),
            ("a == )", "expected a column, text, number, list, true, false or null at character 6, found `)`"),
            ("`a == 1", "column name quoted with ` at character 1 is not closed"),
            ("é == 1", "unexpected `é` at character 1; quote text with \"...\" and odd column names with `...`"),
        ];
        for (text, want) in cases {
            assert_eq!(Filter::parse(text), Err(want.to_owned()), "{text}");
        }
    }

    #[test]
    fn decimal_order() {
        let cases = [
            ("1", "1.0", Ordering::Equal),
            ("-0", "0.000", Ordering::Equal),
            ("012.50", "12.5", Ordering::Equal),
            ("12.5", "12.49", Ordering::Greater),
            ("-12.5", "-12.49", Ordering::Less),
            ("99", "100", Ordering::Less),
            ("-1", "0.1", Ordering::Less),
            ("0.001", "0.01", Ordering::Less),
            (
                "123456789012345678901234567890.5",
                "123456789012345678901234567890.4",
                Ordering::Greater,
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(cmp_decimal(a, b), want, "{a} vs {b}");
            assert_eq!(cmp_decimal(b, a), want.reverse(), "{b} vs {a}");
        }
        for (s, want) in [
            ("12.30", true),
            ("-1", true),
            ("+1.5", true),
            ("1.", false),
            (".5", false),
            ("1e5", false),
            ("", false),
            ("-", false),
            ("abc", false),
        ] {
            assert_eq!(is_decimal(s), want, "{s}");
        }
    }

    /// `digits` scaled down by 10^`scale`, as DECIMAL text (`-12.30` for -1230, 2).
    fn decimal_text(digits: i64, scale: u32) -> String {
        let sign = if digits < 0 { "-" } else { "" };
        let abs = digits.unsigned_abs().to_string();
        let scale = scale as usize;
        if scale == 0 {
            return format!("{sign}{abs}");
        }
        let padded = format!("{abs:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{sign}{int}.{frac}")
    }

    proptest::proptest! {
        /// Exact decimal order agrees with integer order at a common scale.
        #[test]
        fn decimal_order_matches_integers(a in -10_000_000i64..10_000_000, sa in 0u32..5, b in -10_000_000i64..10_000_000, sb in 0u32..5) {
            let scale = sa.max(sb);
            let ia = i128::from(a) * 10i128.pow(scale - sa);
            let ib = i128::from(b) * 10i128.pow(scale - sb);
            let (ta, tb) = (decimal_text(a, sa), decimal_text(b, sb));
            proptest::prop_assert!(is_decimal(&ta) && is_decimal(&tb));
            proptest::prop_assert_eq!(cmp_decimal(&ta, &tb), ia.cmp(&ib), "{} vs {}", ta, tb);
            // And through the where language, DECIMAL text against a number literal.
            let e = event(EventType::Insert, json!({"amount": ta}), None);
            let f = Filter::parse(&format!("amount < {tb}")).unwrap();
            proptest::prop_assert_eq!(f.eval(&e), Ok(ia < ib));
        }
    }
}
