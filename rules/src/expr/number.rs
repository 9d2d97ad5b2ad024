//! Numbers compared exactly: JSON numbers, booleans and decimal text, without floating point.

use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// A number as exact decimal text, or an integer.
#[derive(Debug)]
pub(super) enum Num<'a> {
    Int(i128),
    Text(Cow<'a, str>),
}

/// The numeric view of a value: JSON numbers, booleans (MySQL BOOL is TINYINT), and text that
/// is a plain decimal (`-12.30`, DECIMAL's JSON form).
pub(super) fn numeric(v: &Value) -> Option<Num<'_>> {
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
    pub(super) fn cmp(&self, other: &Num<'_>) -> Ordering {
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
pub(super) fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit())
}

/// Exact comparison of two texts that passed [`is_decimal`] (or came from f64/i128 Display).
pub(super) fn cmp_decimal(a: &str, b: &str) -> Ordering {
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
