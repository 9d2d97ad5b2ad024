//! Tokens to an expression tree by recursive descent: `||` binds loosest, then `&&`, then `!`.

use super::lexer::{Tok, Token};
use super::{CmpOp, Expr, Operand};
use serde_json::Value;

pub(super) struct Parser<'t> {
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
    pub(super) text: &'t str,
    /// Parentheses, `!` and list brackets open around the current token.
    pub(super) depth: usize,
}

/// How deeply parentheses, `!` and lists may nest. Parsing, evaluating and dropping an
/// expression recurse once per level: without a bound, a long enough `((((…` overflowed the
/// stack (found by fuzzing).
pub(super) const MAX_NESTING: usize = 64;

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

    pub(super) fn or(&mut self) -> Result<Expr, String> {
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

    /// One level deeper, or the error that says the expression nests too deeply.
    fn nest<T>(&mut self, inner: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        if self.depth >= MAX_NESTING {
            return Err(format!(
                "the expression nests parentheses, `!` and lists more than {MAX_NESTING} deep at character {}; write it flatter",
                self.tokens.get(self.pos).map_or(self.text.len(), |t| t.at) + 1
            ));
        }
        self.depth += 1;
        let result = inner(self);
        self.depth -= 1;
        result
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat(&Tok::Not) {
            return self.nest(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        if self.eat(&Tok::LParen) {
            return self.nest(|p| {
                let e = p.or()?;
                if !p.eat(&Tok::RParen) {
                    return Err(p.expected("`)`"));
                }
                Ok(e)
            });
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
            Tok::LBracket => Operand::Literal(Value::Array(self.nest(Self::list)?)),
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
