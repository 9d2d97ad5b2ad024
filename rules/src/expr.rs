//! The `where` language: comparisons, `in`, null checks and `&&`/`||`/`!` over column values.
//! Parsed once at start-up; evaluated against borrowed row values without allocating in the
//! common cases. docs/rules.md says why this is not CEL. This file holds the compiled form; the
//! text becomes tokens in `lexer` and a tree in `parser`, the tree is evaluated in `eval`, with
//! exact numeric comparison in `number`.

mod eval;
mod lexer;
mod number;
mod parser;

use eval::Image;
use lexer::lex;
use parser::Parser;
use serde_json::Value;
use sluice_event::{ChangeEvent, EventType, Row};

/// A compiled `where` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Expr,
    /// Every column the expression reads (through `col`, `data.col` or `old.col`).
    columns: Vec<String>,
}

impl Filter {
    /// Parses an expression; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            text,
            depth: 0,
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

#[cfg(test)]
mod tests;
