//! One JSON value of an event as the value a replica column of a given kind wants.

use super::ColumnKind;
use base64::Engine as _;
use serde_json::Value;
use std::borrow::Cow;

/// One value as it is sent to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Borrowed from the mapped row where the text is the row's own.
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
}

/// A value and how it appears in the statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound<'a> {
    /// `?`
    Value(SqlValue<'a>),
    /// `ST_GeomFromWKB(?, ?)`
    Geometry { wkb: Vec<u8>, srid: u32 },
}

/// One JSON value (docs/event-format.md) as the replica column of `kind` wants it.
pub fn bind(kind: ColumnKind, value: &Value) -> Result<Bound<'_>, String> {
    let v = match (kind, value) {
        (_, Value::Null) => SqlValue::Null,
        (ColumnKind::Json, v) => SqlValue::Text(Cow::Owned(v.to_string())),
        (ColumnKind::Geometry, Value::Object(o)) => {
            let srid = o.get("srid").and_then(Value::as_u64).unwrap_or(0);
            let wkb = o.get("wkb").and_then(Value::as_str).ok_or_else(|| {
                format!("expected {{\"srid\":n,\"wkb\":\"<base64>\"}} for a spatial column, got {value}")
            })?;
            return Ok(Bound::Geometry {
                wkb: base64_decode(wkb)?,
                srid: u32::try_from(srid).map_err(|_| format!("SRID {srid} is out of range"))?,
            });
        }
        (_, Value::Bool(b)) => SqlValue::Int(i64::from(*b)),
        (_, Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => SqlValue::Int(i),
            (_, Some(u), _) => SqlValue::UInt(u),
            (_, _, Some(f)) => SqlValue::Float(f),
            _ => SqlValue::Text(Cow::Owned(n.to_string())),
        },
        (ColumnKind::Binary, Value::String(s)) => SqlValue::Bytes(Cow::Owned(base64_decode(s)?)),
        (ColumnKind::DateTime, Value::String(s)) => SqlValue::Text(datetime(s)),
        (_, Value::String(s)) => SqlValue::Text(Cow::Borrowed(s)),
        // SET members: MySQL's own text form is the members joined by commas.
        (_, Value::Array(items)) if items.iter().all(Value::is_string) => {
            let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            SqlValue::Text(Cow::Owned(parts.join(",")))
        }
        (_, v) => SqlValue::Text(Cow::Owned(v.to_string())),
    };
    Ok(Bound::Value(v))
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("binary column value is not base64 ({e}); events carry BINARY/BLOB values as standard base64"))
}

/// `2026-11-21T09:15:02.123Z` → `2026-11-21 09:15:02.123` (the session time zone is UTC).
fn datetime(s: &str) -> Cow<'_, str> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    match (s.get(..10), s.as_bytes().get(10), s.get(11..)) {
        (Some(date), Some(b'T'), Some(time)) => {
            let mut out = String::with_capacity(s.len());
            out.push_str(date);
            out.push(' ');
            out.push_str(time);
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(s),
    }
}
