//! A statement with its values, and those values written out as SQL literals.

use super::SqlValue;
use std::borrow::Cow;
use std::fmt::Write as _;

/// One statement with `?` placeholders and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement<'a> {
    pub sql: String,
    /// Borrowed from the ops where they are, so no value is copied on the way to the SQL.
    pub args: Vec<Cow<'a, SqlValue<'a>>>,
}

impl Statement<'_> {
    /// Appends the statement with each `?` replaced by its value as an SQL literal (text
    /// protocol: no prepare round trip, no server-side statement per row count).
    pub fn inline_into(&self, out: &mut String) {
        out.reserve(self.inline_len());
        let mut args = self.args.iter();
        let mut quoted = false;
        let mut from = 0;
        for (i, b) in self.sql.bytes().enumerate() {
            match b {
                // Identifiers are the only quoted text in generated SQL (`` ` `` doubled inside).
                b'`' => quoted = !quoted,
                b'?' if !quoted => {
                    out.push_str(&self.sql[from..i]);
                    match args.next() {
                        Some(v) => push_literal(out, v.as_ref()),
                        None => out.push_str("NULL"),
                    }
                    from = i + 1;
                }
                _ => {}
            }
        }
        out.push_str(&self.sql[from..]);
    }

    /// About how long the inlined statement is.
    pub fn inline_len(&self) -> usize {
        self.sql.len()
            + self
                .args
                .iter()
                .map(|v| literal_len(v.as_ref()))
                .sum::<usize>()
    }

    /// [`Statement::inline_into`] a new string.
    pub fn inline(&self) -> String {
        let mut out = String::new();
        self.inline_into(&mut out);
        out
    }
}

/// `v` as an SQL literal that means the same in every `sql_mode`: text in quotes when it holds
/// no quote, backslash or NUL, else as `_utf8mb4 X'…'` (hex, so no escaping rules apply);
/// bytes as `X'…'`, floats in exponent form (read back exactly), integers as they are.
pub fn push_literal(out: &mut String, v: &SqlValue<'_>) {
    match v {
        SqlValue::Null => out.push_str("NULL"),
        SqlValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        SqlValue::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        SqlValue::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:e}");
        }
        // JSON has no NaN or infinity, so no event carries one.
        SqlValue::Float(_) => out.push_str("NULL"),
        // Quotes are enough when nothing inside needs escaping; backslashes and quotes mean
        // different things under NO_BACKSLASH_ESCAPES, so such text goes as hex.
        SqlValue::Text(t) if !t.bytes().any(|b| matches!(b, b'\'' | b'\\' | 0)) => {
            out.push('\'');
            out.push_str(t);
            out.push('\'');
        }
        SqlValue::Text(t) => {
            out.push_str("_utf8mb4 X'");
            push_hex(out, t.as_bytes());
            out.push('\'');
        }
        SqlValue::Bytes(b) => {
            out.push_str("X'");
            push_hex(out, b);
            out.push('\'');
        }
    }
}

pub(super) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// About how long `v` is as a literal.
pub(super) fn literal_len(v: &SqlValue<'_>) -> usize {
    match v {
        SqlValue::Null | SqlValue::Int(_) | SqlValue::UInt(_) | SqlValue::Float(_) => 24,
        SqlValue::Text(t) => 12 + 2 * t.len(),
        SqlValue::Bytes(b) => 3 + 2 * b.len(),
    }
}
