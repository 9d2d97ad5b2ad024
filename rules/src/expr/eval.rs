//! Evaluating a parsed expression against the row images of one event.

use super::number::numeric;
use super::{CmpOp, Expr, Operand};
use serde_json::Value;
use sluice_event::{EventType, Row};
use std::cmp::Ordering;

/// The row images an expression is evaluated on.
pub(super) struct Image<'a> {
    pub(super) kind: EventType,
    pub(super) data: &'a Row,
    pub(super) old: Option<&'a Row>,
    pub(super) database: &'a str,
    pub(super) table: &'a str,
}

/// Null, shared by every `old.col` of an INSERT.
static NULL: Value = Value::Null;

impl Expr {
    pub(super) fn eval(&self, event: &Image<'_>) -> Result<bool, String> {
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
