//! What one mapped item asks of one row: an upsert or a delete by key.

use super::statement::push_hex;
use super::{bind, Bound, ColumnKind, MysqlRule, SqlValue, TableMeta};
use sluice_event::{EventType, Row};
use sluice_rules::Mapped;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

/// What one item asks of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Op<'a> {
    pub kind: OpKind,
    /// The key values, in key-column order.
    pub key: Vec<SqlValue<'a>>,
    /// The key as text, to find the last op per key.
    pub key_id: String,
    /// Upserts: the columns written (server spelling) and their values.
    pub columns: Vec<Arc<str>>,
    pub values: Vec<Bound<'a>>,
    pub seq: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Upsert,
    Delete,
}

/// The ops of one item. An error is definite: the row cannot be written as it is.
pub fn ops<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    key: &[String],
    mapped: &'a Mapped,
) -> Result<Vec<Op<'a>>, String> {
    let mut out = Vec::with_capacity(2);
    match mapped.kind {
        EventType::Ddl => return Ok(out),
        EventType::Delete => out.push(delete(rule, meta, key, &mapped.doc, mapped.seq)?),
        EventType::Insert | EventType::Update => {
            let new = upsert(rule, meta, key, &mapped.doc, mapped.seq, None)?;
            // The row moved to another key: its old key must not stay behind.
            if let Some(old) = &mapped.old_doc {
                if !same_key(key, old, &mapped.doc)
                    && key_values(rule, meta, key, old)?.1 != new.key_id
                {
                    out.push(delete(rule, meta, key, old, mapped.seq)?);
                }
            }
            out.push(new);
        }
    }
    Ok(out)
}

fn delete<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    key: &[String],
    row: &'a Row,
    seq: i64,
) -> Result<Op<'a>, String> {
    match &rule.soft_delete {
        // A soft delete keeps the row as it was, marked.
        Some(column) => {
            let (_, kind) = meta.column(column).ok_or_else(|| {
                format!(
                    "soft_delete column `{column}` is not in replica table {} (columns: {}); add it or fix rules.mysql.soft_delete",
                    meta.qualified(),
                    meta.names()
                )
            })?;
            let mark = match kind {
                ColumnKind::Integer => SqlValue::Int(1),
                _ => SqlValue::Text(Cow::Owned(seq_time(seq))),
            };
            upsert(rule, meta, key, row, seq, Some(mark))
        }
        None => {
            let (values, key_id) = key_values(rule, meta, key, row)?;
            Ok(Op {
                kind: OpKind::Delete,
                key: values,
                key_id,
                columns: Vec::new(),
                values: Vec::new(),
                seq,
            })
        }
    }
}

/// An upsert of `row`; `mark` is the soft-delete column's value (NULL when the row is live).
fn upsert<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    key: &[String],
    row: &'a Row,
    seq: i64,
    mark: Option<SqlValue<'a>>,
) -> Result<Op<'a>, String> {
    let (key_values, key_id) = key_values(rule, meta, key, row)?;
    let mut columns = Vec::with_capacity(row.len() + 2);
    let mut values = Vec::with_capacity(row.len() + 2);
    let mut has_mark = false;
    for (name, value) in row {
        let Some((column, kind)) = meta.column_shared(name) else {
            return Err(format!(
                "column `{name}` of rule `{}` is not in replica table {} (columns: {}); add the column to the table or leave it out with [rules.fields] exclude",
                rule.name,
                meta.qualified(),
                meta.names()
            ));
        };
        if rule.version_column.as_deref() == Some(&**column) {
            continue;
        }
        let bound = bind(kind, value).map_err(|e| format!("column `{name}`: {e}"))?;
        if rule.soft_delete.as_deref() == Some(&**column) {
            has_mark = true;
            columns.push(column.clone());
            values.push(match &mark {
                Some(m) => Bound::Value(m.clone()),
                None => bound,
            });
            continue;
        }
        columns.push(column.clone());
        values.push(bound);
    }
    if let (Some(column), false) = (&rule.soft_delete, has_mark) {
        columns.push(column_name(meta, column, "soft_delete")?);
        values.push(Bound::Value(mark.unwrap_or(SqlValue::Null)));
    }
    // Last, so the ON DUPLICATE KEY UPDATE assignments compare against the stored version.
    if let Some(column) = &rule.version_column {
        columns.push(column_name(meta, column, "version_column")?);
        values.push(Bound::Value(SqlValue::Int(seq)));
    }
    Ok(Op {
        kind: OpKind::Upsert,
        key: key_values,
        key_id,
        columns,
        values,
        seq,
    })
}

fn column_name(meta: &TableMeta, column: &str, setting: &str) -> Result<Arc<str>, String> {
    meta.column_shared(column).map(|(c, _)| c.clone()).ok_or_else(|| {
        format!(
            "{setting} column `{column}` is not in replica table {} (columns: {}); add it or fix rules.mysql.{setting}",
            meta.qualified(),
            meta.names()
        )
    })
}

/// Whether both rows hold the same JSON in every key column (then the key did not move).
fn same_key(key: &[String], old: &Row, new: &Row) -> bool {
    key.iter().all(|k| {
        let (o, n) = (old.get(k.as_str()), new.get(k.as_str()));
        o.is_some() && o == n
    })
}

/// The key's values and its identity text.
fn key_values<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    key: &[String],
    row: &'a Row,
) -> Result<(Vec<SqlValue<'a>>, String), String> {
    let mut values = Vec::with_capacity(key.len());
    let mut id = String::new();
    for k in key {
        let Some(v) = row.get(k.as_str()) else {
            let have: Vec<&str> = row.keys().map(String::as_str).collect();
            return Err(format!(
                "key column `{k}` is not in the mapped row of rule `{}` (it has: {}); keep it in [rules.fields] or set rules.mysql.key",
                rule.name,
                have.join(", ")
            ));
        };
        if v.is_null() {
            return Err(format!(
                "key column `{k}` is null; rows of {} need a value in every key column",
                meta.qualified()
            ));
        }
        let kind = meta
            .column(k)
            .map(|(_, kind)| kind)
            .unwrap_or(ColumnKind::Other);
        match bind(kind, v).map_err(|e| format!("key column `{k}`: {e}"))? {
            Bound::Value(sv) => {
                push_key_id(&mut id, &sv);
                values.push(sv);
            }
            Bound::Geometry { .. } => {
                return Err(format!("key column `{k}` is spatial; use another key"))
            }
        }
    }
    Ok((values, id))
}

/// Appends one key value to a key's identity text: a type letter, then the value; text and
/// bytes with their length first, so no two different keys give the same text.
pub(super) fn push_key_id(id: &mut String, v: &SqlValue<'_>) {
    let _ = match v {
        SqlValue::Null => write!(id, "n;"),
        SqlValue::Int(i) => write!(id, "i{i};"),
        SqlValue::UInt(u) => write!(id, "u{u};"),
        SqlValue::Float(f) => write!(id, "f{f:e};"),
        SqlValue::Text(t) => write!(id, "t{}:{t}", t.len()),
        SqlValue::Bytes(b) => {
            let _ = write!(id, "b{}:", b.len());
            push_hex(id, b);
            Ok(())
        }
    };
}

/// The commit time carried in `seq` (`seq >> 20` is milliseconds), as UTC DATETIME text.
fn seq_time(seq: i64) -> String {
    let ms = seq >> 20;
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => "1970-01-01 00:00:00.000".to_owned(),
    }
}
