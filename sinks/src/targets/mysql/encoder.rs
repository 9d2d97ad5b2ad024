//! What mapped rows mean in SQL: pure, so every case is a unit test.
//!
//! One item becomes one or two [`Op`]s (an UPDATE that moved its key also removes the old key);
//! [`plan`] turns the ops of consecutive items for one table into multi-row statements: the last
//! op per key wins, deletes first, then upserts, each a single statement per column set.

use super::config::MysqlRule;
use base64::Engine as _;
use rustc_hash::FxHashMap;
use serde_json::Value;
use sluice_event::{EventType, Row};
use sluice_rules::Mapped;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

/// Values one statement may carry (the prepared-statement limit is 65,535).
const MAX_PARAMS: usize = 60_000;

/// Bytes of values (as literals) one multi-row statement may carry: well below the servers'
/// default `max_allowed_packet` (16 MB on MariaDB, 64 MB on MySQL).
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// How a replica column wants its JSON value, from `information_schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// BINARY, VARBINARY, BLOB: the event's base64 is decoded to bytes.
    Binary,
    /// Spatial types: `{"srid","wkb"}` becomes `ST_GeomFromWKB(wkb, srid)`.
    Geometry,
    /// JSON (MySQL's type, or MariaDB's LONGTEXT with a `json_valid` check): JSON text.
    Json,
    /// DATETIME, TIMESTAMP: `2026-11-21T09:15:02Z` becomes `2026-11-21 09:15:02` (UTC session).
    DateTime,
    /// Integer types (a soft-delete flag column gets 1).
    Integer,
    Other,
}

/// The columns and primary key of one replica table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMeta {
    pub database: String,
    pub table: String,
    /// In table order, with the server's spelling.
    pub columns: Vec<(String, ColumnKind)>,
    pub primary_key: Vec<String>,
    /// Lower-case name to index in `columns` (MySQL column names ignore case).
    index: FxHashMap<String, usize>,
    /// `columns`' names, shared by every op that writes them.
    shared: Vec<Arc<str>>,
}

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

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// About how long `v` is as a literal.
fn literal_len(v: &SqlValue<'_>) -> usize {
    match v {
        SqlValue::Null | SqlValue::Int(_) | SqlValue::UInt(_) | SqlValue::Float(_) => 24,
        SqlValue::Text(t) => 12 + 2 * t.len(),
        SqlValue::Bytes(b) => 3 + 2 * b.len(),
    }
}

impl TableMeta {
    /// A table's description; `columns` in table order.
    pub fn new(
        database: &str,
        table: &str,
        columns: Vec<(String, ColumnKind)>,
        primary_key: Vec<String>,
    ) -> TableMeta {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.to_lowercase(), i))
            .collect();
        let shared = columns.iter().map(|(c, _)| Arc::from(c.as_str())).collect();
        TableMeta {
            database: database.to_owned(),
            table: table.to_owned(),
            columns,
            primary_key,
            index,
            shared,
        }
    }

    /// The column `name` (any case): its server spelling and kind.
    pub fn column(&self, name: &str) -> Option<(&str, ColumnKind)> {
        let i = self.position(name)?;
        self.columns.get(i).map(|(c, k)| (c.as_str(), *k))
    }

    /// The column `name` (any case): its server spelling, shared, and kind.
    fn column_shared(&self, name: &str) -> Option<(&Arc<str>, ColumnKind)> {
        let i = self.position(name)?;
        Some((self.shared.get(i)?, self.columns.get(i)?.1))
    }

    fn position(&self, name: &str) -> Option<usize> {
        match self.index.get(name) {
            Some(i) => Some(*i),
            None => self.index.get(&name.to_lowercase()).copied(),
        }
    }

    /// `` `db`.`table` ``
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote(&self.database), quote(&self.table))
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| c.as_str()).collect();
        names.join(", ")
    }
}

impl ColumnKind {
    /// The kind of an `information_schema.COLUMNS.DATA_TYPE`.
    pub fn from_data_type(data_type: &str) -> ColumnKind {
        match data_type.to_ascii_lowercase().as_str() {
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                ColumnKind::Binary
            }
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnKind::Geometry,
            "json" => ColumnKind::Json,
            "datetime" | "timestamp" => ColumnKind::DateTime,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                ColumnKind::Integer
            }
            _ => ColumnKind::Other,
        }
    }
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
fn push_key_id(id: &mut String, v: &SqlValue<'_>) {
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

/// The commit time carried in `seq` (`seq >> 20` is milliseconds), as UTC DATETIME text.
fn seq_time(seq: i64) -> String {
    let ms = seq >> 20;
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => "1970-01-01 00:00:00.000".to_owned(),
    }
}

/// The statements for `ops` of one table, in order: the last op per key wins (its position is
/// the key's first appearance); deletes go first, then upserts, so a key's final state is the
/// last event's whatever the mix.
pub fn plan<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    key: &[String],
    ops: &[&'a Op<'a>],
) -> Vec<Statement<'a>> {
    let mut slot: FxHashMap<&str, usize> =
        FxHashMap::with_capacity_and_hasher(ops.len(), Default::default());
    let mut last: Vec<&Op<'a>> = Vec::with_capacity(ops.len());
    for op in ops {
        match slot.get(op.key_id.as_str()) {
            Some(&i) => last[i] = op,
            None => {
                slot.insert(&op.key_id, last.len());
                last.push(op);
            }
        }
    }
    let mut out = Vec::new();
    let deletes: Vec<&Op<'a>> = last
        .iter()
        .copied()
        .filter(|o| o.kind == OpKind::Delete)
        .collect();
    let per = key.len() + usize::from(rule.version_column.is_some());
    for chunk in deletes.chunks((MAX_PARAMS / per.max(1)).max(1)) {
        out.push(delete_statement(rule, meta, key, chunk));
    }
    let mut run: Vec<&Op<'a>> = Vec::new();
    let (mut run_params, mut run_bytes) = (0, 0);
    for op in last.iter().copied().filter(|o| o.kind == OpKind::Upsert) {
        let (p, b) = (params(op), bytes(op));
        let fits = run.first().is_none_or(|f| {
            f.columns == op.columns
                && run_params + p <= MAX_PARAMS
                && run_bytes + b <= MAX_STATEMENT_BYTES
        });
        if !fits {
            out.push(upsert_statement(rule, meta, key, &run));
            run.clear();
            (run_params, run_bytes) = (0, 0);
        }
        run.push(op);
        run_params += p;
        run_bytes += b;
    }
    if !run.is_empty() {
        out.push(upsert_statement(rule, meta, key, &run));
    }
    out
}

/// About how many bytes the op's values take as literals.
fn bytes(op: &Op) -> usize {
    op.values
        .iter()
        .map(|b| match b {
            Bound::Value(v) => literal_len(v),
            Bound::Geometry { wkb, .. } => 40 + 2 * wkb.len(),
        })
        .sum()
}

fn params(op: &Op) -> usize {
    op.values
        .iter()
        .map(|b| match b {
            Bound::Value(_) => 1,
            Bound::Geometry { .. } => 2,
        })
        .sum()
}

/// `DELETE FROM t WHERE k IN (?,?)`, or one condition per row for composite keys and versions.
fn delete_statement<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    key: &[String],
    ops: &[&'a Op<'a>],
) -> Statement<'a> {
    let mut sql = format!("DELETE FROM {} WHERE ", meta.qualified());
    let mut args = Vec::new();
    let key_cols: Vec<String> = key
        .iter()
        .map(|k| quote(meta.column(k).map(|(c, _)| c).unwrap_or(k)))
        .collect();
    if key.len() == 1 && rule.version_column.is_none() {
        sql.push_str(&key_cols[0]);
        sql.push_str(" IN (");
        for (i, op) in ops.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ",?" });
            args.extend(op.key.iter().map(Cow::Borrowed));
        }
        sql.push(')');
        return Statement { sql, args };
    }
    let version = rule
        .version_column
        .as_deref()
        .map(|v| quote(meta.column(v).map(|(c, _)| c).unwrap_or(v)));
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push('(');
        for (j, c) in key_cols.iter().enumerate() {
            if j > 0 {
                sql.push_str(" AND ");
            }
            sql.push_str(c);
            sql.push_str(" = ?");
        }
        args.extend(op.key.iter().map(Cow::Borrowed));
        if let Some(v) = &version {
            sql.push_str(&format!(" AND ({v} IS NULL OR {v} <= ?)"));
            args.push(Cow::Owned(SqlValue::Int(op.seq)));
        }
        sql.push(')');
    }
    Statement { sql, args }
}

/// `INSERT INTO t (..) VALUES (..),(..) ON DUPLICATE KEY UPDATE ..`; with a version column
/// every assignment keeps the stored value unless the incoming `seq` is not older.
fn upsert_statement<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    key: &[String],
    ops: &[&'a Op<'a>],
) -> Statement<'a> {
    let Some(first) = ops.first() else {
        return Statement {
            sql: String::new(),
            args: Vec::new(),
        };
    };
    let cols: Vec<String> = first.columns.iter().map(|c| quote(c)).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        meta.qualified(),
        cols.join(",")
    );
    let mut args = Vec::with_capacity(ops.len() * cols.len());
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for (j, b) in op.values.iter().enumerate() {
            if j > 0 {
                sql.push(',');
            }
            match b {
                Bound::Value(v) => {
                    sql.push('?');
                    args.push(Cow::Borrowed(v));
                }
                Bound::Geometry { wkb, srid } => {
                    sql.push_str("ST_GeomFromWKB(?, ?)");
                    args.push(Cow::Owned(SqlValue::Bytes(Cow::Borrowed(wkb))));
                    args.push(Cow::Owned(SqlValue::UInt(u64::from(*srid))));
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON DUPLICATE KEY UPDATE ");
    let is_key = |c: &str| key.iter().any(|k| k.eq_ignore_ascii_case(c));
    let mut assignments: Vec<&Arc<str>> = first.columns.iter().filter(|c| !is_key(c)).collect();
    if assignments.is_empty() {
        // Only key columns: nothing to update, but the clause needs one assignment.
        assignments = first.columns.iter().take(1).collect();
    }
    let version = rule
        .version_column
        .as_deref()
        .and_then(|v| first.columns.iter().find(|c| c.eq_ignore_ascii_case(v)));
    for (i, c) in assignments.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        let c = quote(c);
        match version {
            Some(v) => {
                let v = quote(v);
                sql.push_str(&format!(
                    "{c} = IF({v} IS NULL OR VALUES({v}) >= {v}, VALUES({c}), {c})"
                ));
            }
            None => sql.push_str(&format!("{c} = VALUES({c})")),
        }
    }
    Statement { sql, args }
}

/// `` `name` `` with backticks doubled.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::super::config::TableName;
    use super::*;
    use serde_json::json;

    fn rule(soft: Option<&str>, version: Option<&str>) -> MysqlRule {
        MysqlRule {
            name: "r".into(),
            database: None,
            table: TableName::Fixed("t".into()),
            key: None,
            soft_delete: soft.map(Into::into),
            version_column: version.map(Into::into),
        }
    }

    fn meta() -> TableMeta {
        use ColumnKind::*;
        TableMeta::new(
            "db",
            "t",
            vec![
                ("id".into(), Integer),
                ("name".into(), Other),
                ("bin".into(), Binary),
                ("at".into(), DateTime),
                ("doc".into(), Json),
                ("geo".into(), Geometry),
                ("tags".into(), Other),
                ("deleted_at".into(), DateTime),
                ("gone".into(), Integer),
                ("version".into(), Integer),
            ],
            vec!["id".into()],
        )
    }

    fn row(v: Value) -> Row {
        v.as_object().cloned().unwrap_or_default()
    }

    fn mapped(kind: EventType, seq: i64, doc: Value, old: Option<Value>) -> Mapped {
        Mapped {
            kind,
            seq,
            id: String::new(),
            doc: row(doc),
            old_doc: old.map(row),
            changed: Vec::new(),
        }
    }

    fn key() -> Vec<String> {
        vec!["id".into()]
    }

    fn sql_of(r: &MysqlRule, items: &[Mapped]) -> Vec<(String, Vec<SqlValue<'static>>)> {
        let all: Vec<Op> = items
            .iter()
            .flat_map(|m| ops(r, &meta(), &key(), m).unwrap())
            .collect();
        let refs: Vec<&Op> = all.iter().collect();
        plan(r, &meta(), &key(), &refs)
            .into_iter()
            .map(|s| (s.sql, s.args.iter().map(|v| owned(v)).collect()))
            .collect()
    }

    fn owned(v: &SqlValue<'_>) -> SqlValue<'static> {
        match v {
            SqlValue::Null => SqlValue::Null,
            SqlValue::Int(i) => SqlValue::Int(*i),
            SqlValue::UInt(u) => SqlValue::UInt(*u),
            SqlValue::Float(f) => SqlValue::Float(*f),
            SqlValue::Text(t) => SqlValue::Text(Cow::Owned(t.to_string())),
            SqlValue::Bytes(b) => SqlValue::Bytes(Cow::Owned(b.to_vec())),
        }
    }

    #[test]
    fn binds_every_column_type() {
        use ColumnKind::*;
        use SqlValue::*;
        let cases: Vec<(ColumnKind, Value, Bound)> = vec![
            (Integer, json!(null), Bound::Value(Null)),
            (
                Integer,
                json!(-9223372036854775808i64),
                Bound::Value(Int(i64::MIN)),
            ),
            (
                Integer,
                json!(18446744073709551615u64),
                Bound::Value(UInt(u64::MAX)),
            ),
            (Other, json!(3.25), Bound::Value(Float(3.25))),
            (Other, json!("12.30"), Bound::Value(Text("12.30".into()))),
            (Other, json!(true), Bound::Value(Int(1))),
            (
                DateTime,
                json!("2026-11-21T09:15:02.123456"),
                Bound::Value(Text("2026-11-21 09:15:02.123456".into())),
            ),
            (
                DateTime,
                json!("2026-11-21T09:15:02.123Z"),
                Bound::Value(Text("2026-11-21 09:15:02.123".into())),
            ),
            (
                DateTime,
                json!("0000-00-00T00:00:00Z"),
                Bound::Value(Text("0000-00-00 00:00:00".into())),
            ),
            (
                Other,
                json!("-838:59:59.000000"),
                Bound::Value(Text("-838:59:59.000000".into())),
            ),
            (
                Binary,
                json!("AAECAP8="),
                Bound::Value(Bytes(vec![0, 1, 2, 0, 255].into())),
            ),
            (
                Other,
                json!(["red", "blue"]),
                Bound::Value(Text("red,blue".into())),
            ),
            (Other, json!([]), Bound::Value(Text("".into()))),
            (
                Json,
                json!({"tags": ["a", "b"]}),
                Bound::Value(Text(r#"{"tags":["a","b"]}"#.into())),
            ),
            (Json, json!("text"), Bound::Value(Text(r#""text""#.into()))),
            (Json, json!(1.5), Bound::Value(Text("1.5".into()))),
            (
                Other,
                json!({"a": 1}),
                Bound::Value(Text(r#"{"a":1}"#.into())),
            ),
            (
                Geometry,
                json!({"srid": 4326, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA"}),
                Bound::Geometry {
                    wkb: base64::engine::general_purpose::STANDARD
                        .decode("AQEAAAAAAAAAAADwPwAAAAAAAABA")
                        .unwrap(),
                    srid: 4326,
                },
            ),
            (Integer, json!(11), Bound::Value(Int(11))),
        ];
        for (kind, value, want) in cases {
            assert_eq!(bind(kind, &value).unwrap(), want, "{kind:?} {value}");
        }
        let bad = [
            (
                Binary,
                json!("not base64!"),
                "binary column value is not base64",
            ),
            (
                Geometry,
                json!({"srid": 0}),
                "expected {\"srid\":n,\"wkb\":\"<base64>\"}",
            ),
        ];
        for (kind, value, want) in bad {
            let err = bind(kind, &value).unwrap_err();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn upserts_and_deletes_by_key() {
        let r = rule(None, None);
        let got = sql_of(
            &r,
            &[
                mapped(EventType::Insert, 1, json!({"id": 1, "name": "a"}), None),
                mapped(
                    EventType::Update,
                    2,
                    json!({"id": 2, "name": "b"}),
                    Some(json!({"id": 2, "name": "x"})),
                ),
                mapped(EventType::Delete, 3, json!({"id": 3, "name": "c"}), None),
            ],
        );
        assert_eq!(
            got,
            vec![
                ("DELETE FROM `db`.`t` WHERE `id` IN (?)".into(), vec![SqlValue::Int(3)]),
                (
                    "INSERT INTO `db`.`t` (`id`,`name`) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)".into(),
                    vec![SqlValue::Int(1), SqlValue::Text("a".into()), SqlValue::Int(2), SqlValue::Text("b".into())]
                ),
            ]
        );
    }

    #[test]
    fn last_event_per_key_wins() {
        let r = rule(None, None);
        // insert 1, delete 1, insert 1 again: the row exists with the last values.
        let got = sql_of(
            &r,
            &[
                mapped(EventType::Insert, 1, json!({"id": 1, "name": "a"}), None),
                mapped(EventType::Delete, 2, json!({"id": 1, "name": "a"}), None),
                mapped(EventType::Insert, 3, json!({"id": 1, "name": "b"}), None),
                mapped(EventType::Insert, 4, json!({"id": 2, "name": "c"}), None),
                mapped(EventType::Delete, 5, json!({"id": 2, "name": "c"}), None),
            ],
        );
        assert_eq!(
            got,
            vec![
                ("DELETE FROM `db`.`t` WHERE `id` IN (?)".into(), vec![SqlValue::Int(2)]),
                (
                    "INSERT INTO `db`.`t` (`id`,`name`) VALUES (?,?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)".into(),
                    vec![SqlValue::Int(1), SqlValue::Text("b".into())]
                ),
            ]
        );
    }

    #[test]
    fn update_that_moves_the_key_deletes_the_old_one() {
        let r = rule(None, None);
        let m = mapped(
            EventType::Update,
            9,
            json!({"id": 2, "name": "a"}),
            Some(json!({"id": 1, "name": "a"})),
        );
        let got = ops(&r, &meta(), &key(), &m).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].kind, got[0].key.clone()),
            (OpKind::Delete, vec![SqlValue::Int(1)])
        );
        assert_eq!(
            (got[1].kind, got[1].key.clone()),
            (OpKind::Upsert, vec![SqlValue::Int(2)])
        );
    }

    #[test]
    fn key_ids_tell_apart_keys_that_print_alike() {
        let id = |values: &[SqlValue<'_>]| {
            let mut id = String::new();
            for v in values {
                push_key_id(&mut id, v);
            }
            id
        };
        let keys: Vec<Vec<SqlValue>> = vec![
            vec![SqlValue::Text("a;".into()), SqlValue::Text("b".into())],
            vec![SqlValue::Text("a".into()), SqlValue::Text(";b".into())],
            vec![SqlValue::Text("i1;".into())],
            vec![SqlValue::Int(1)],
            vec![SqlValue::UInt(1)],
            vec![SqlValue::Text("1".into())],
            vec![SqlValue::Bytes(b"1".to_vec().into())],
            vec![SqlValue::Null],
        ];
        let ids: std::collections::HashSet<String> = keys.iter().map(|k| id(k)).collect();
        assert_eq!(ids.len(), keys.len(), "{ids:?}");
        // An UPDATE that keeps its key writes one op, whatever else changed.
        let r = rule(None, None);
        let m = mapped(
            EventType::Update,
            9,
            json!({"id": 2, "name": "b"}),
            Some(json!({"id": 2, "name": "a"})),
        );
        assert_eq!(ops(&r, &meta(), &key(), &m).unwrap().len(), 1);
    }

    #[test]
    fn versioned_writes_never_regress() {
        let r = rule(None, Some("version"));
        let got = sql_of(
            &r,
            &[
                mapped(EventType::Insert, 7, json!({"id": 1, "name": "a"}), None),
                mapped(EventType::Delete, 8, json!({"id": 2, "name": "b"}), None),
            ],
        );
        assert_eq!(
            got,
            vec![
                (
                    "DELETE FROM `db`.`t` WHERE (`id` = ? AND (`version` IS NULL OR `version` <= ?))".into(),
                    vec![SqlValue::Int(2), SqlValue::Int(8)]
                ),
                (
                    "INSERT INTO `db`.`t` (`id`,`name`,`version`) VALUES (?,?,?) ON DUPLICATE KEY UPDATE `name` = IF(`version` IS NULL OR VALUES(`version`) >= `version`, VALUES(`name`), `name`),`version` = IF(`version` IS NULL OR VALUES(`version`) >= `version`, VALUES(`version`), `version`)".into(),
                    vec![SqlValue::Int(1), SqlValue::Text("a".into()), SqlValue::Int(7)]
                ),
            ]
        );
    }

    #[test]
    fn soft_delete_marks_the_row_and_upserts_clear_the_mark() {
        let seq = 1_763_716_502_123i64 << 20;
        let r = rule(Some("deleted_at"), None);
        let got = sql_of(
            &r,
            &[
                mapped(EventType::Delete, seq, json!({"id": 1, "name": "a"}), None),
                mapped(
                    EventType::Insert,
                    seq + 1,
                    json!({"id": 2, "name": "b"}),
                    None,
                ),
            ],
        );
        assert_eq!(
            got,
            vec![(
                "INSERT INTO `db`.`t` (`id`,`name`,`deleted_at`) VALUES (?,?,?),(?,?,?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`),`deleted_at` = VALUES(`deleted_at`)".into(),
                vec![
                    SqlValue::Int(1),
                    SqlValue::Text("a".into()),
                    SqlValue::Text("2025-11-21 09:15:02.123".into()),
                    SqlValue::Int(2),
                    SqlValue::Text("b".into()),
                    SqlValue::Null,
                ]
            )]
        );
        let flag = rule(Some("gone"), None);
        let deleted = mapped(EventType::Delete, 5, json!({"id": 1}), None);
        let op = ops(&flag, &meta(), &key(), &deleted).unwrap();
        assert_eq!(op[0].values.last(), Some(&Bound::Value(SqlValue::Int(1))));
    }

    #[test]
    fn geometry_and_composite_keys() {
        let r = rule(None, None);
        let m = TableMeta::new(
            "db",
            "t",
            vec![
                ("a".into(), ColumnKind::Integer),
                ("b".into(), ColumnKind::Other),
                ("g".into(), ColumnKind::Geometry),
            ],
            vec!["a".into(), "b".into()],
        );
        let k = vec!["a".to_string(), "b".to_string()];
        let inserted = mapped(
            EventType::Insert,
            1,
            json!({"a": 1, "b": "x", "g": {"srid": 0, "wkb": "AQ=="}}),
            None,
        );
        let deleted = mapped(
            EventType::Delete,
            2,
            json!({"a": 2, "b": "y", "g": null}),
            None,
        );
        let up = ops(&r, &m, &k, &inserted).unwrap();
        let del = ops(&r, &m, &k, &deleted).unwrap();
        let refs: Vec<&Op> = up.iter().chain(del.iter()).collect();
        let got: Vec<String> = plan(&r, &m, &k, &refs).into_iter().map(|s| s.sql).collect();
        assert_eq!(
            got,
            vec![
                "DELETE FROM `db`.`t` WHERE (`a` = ? AND `b` = ?)".to_string(),
                "INSERT INTO `db`.`t` (`a`,`b`,`g`) VALUES (?,?,ST_GeomFromWKB(?, ?)) ON DUPLICATE KEY UPDATE `g` = VALUES(`g`)".to_string(),
            ]
        );
    }

    #[test]
    fn rows_that_cannot_be_written_are_errors() {
        let r = rule(None, None);
        let cases = [
            (json!({"id": 1, "nope": 2}), "column `nope` of rule `r` is not in replica table `db`.`t` (columns: id, name, bin, at, doc, geo, tags, deleted_at, gone, version); add the column to the table or leave it out with [rules.fields] exclude"),
            (json!({"name": "a"}), "key column `id` is not in the mapped row of rule `r` (it has: name); keep it in [rules.fields] or set rules.mysql.key"),
            (json!({"id": null}), "key column `id` is null; rows of `db`.`t` need a value in every key column"),
            (json!({"id": 1, "bin": "%%"}), "column `bin`: binary column value is not base64 (Invalid symbol 37, offset 0.); events carry BINARY/BLOB values as standard base64"),
        ];
        for (doc, want) in cases {
            let err = ops(
                &r,
                &meta(),
                &key(),
                &mapped(EventType::Insert, 1, doc.clone(), None),
            )
            .unwrap_err();
            assert_eq!(err, want, "{doc}");
        }
    }

    #[test]
    fn different_column_sets_are_different_statements() {
        let r = rule(None, None);
        let got = sql_of(
            &r,
            &[
                mapped(EventType::Insert, 1, json!({"id": 1, "name": "a"}), None),
                mapped(EventType::Insert, 2, json!({"id": 2}), None),
            ],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1].0,
            "INSERT INTO `db`.`t` (`id`) VALUES (?) ON DUPLICATE KEY UPDATE `id` = VALUES(`id`)"
        );
    }

    #[test]
    fn inlined_values_are_literals_that_need_no_escaping() {
        let s = Statement {
            sql: "INSERT INTO `d?b`.`t``?` (`a`,`b`,`c`,`d`,`e`,`f`,`g`) VALUES (?,?,?,?,?,?,?,ST_GeomFromWKB(?, ?))"
                .into(),
            args: vec![
                Cow::Owned(SqlValue::Null),
                Cow::Owned(SqlValue::Int(-7)),
                Cow::Owned(SqlValue::UInt(u64::MAX)),
                Cow::Owned(SqlValue::Float(0.1)),
                Cow::Owned(SqlValue::Text("it's \\ é".into())),
                Cow::Owned(SqlValue::Text("".into())),
                Cow::Owned(SqlValue::Text("plain é".into())),
                Cow::Owned(SqlValue::Bytes(vec![0, 255].into())),
                Cow::Owned(SqlValue::UInt(4326)),
            ],
        };
        assert_eq!(
            s.inline(),
            "INSERT INTO `d?b`.`t``?` (`a`,`b`,`c`,`d`,`e`,`f`,`g`) VALUES (NULL,-7,18446744073709551615,1e-1,\
             _utf8mb4 X'69742773205C20C3A9','','plain é',ST_GeomFromWKB(X'00FF', 4326))"
        );
        assert!(s.inline_len() >= s.inline().len());
        for (v, want) in [
            (SqlValue::Float(-1.5e300), "-1.5e300"),
            (SqlValue::Text("a\0".into()), "_utf8mb4 X'6100'"),
            (SqlValue::Text("a\"b".into()), "'a\"b'"),
        ] {
            let mut out = String::new();
            push_literal(&mut out, &v);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn large_rows_are_split_by_bytes() {
        let r = rule(None, None);
        let text = "x".repeat(MAX_STATEMENT_BYTES / 5);
        let items: Vec<Mapped> = (0..6)
            .map(|i| mapped(EventType::Insert, i, json!({"id": i, "name": text}), None))
            .collect();
        let got = sql_of(&r, &items);
        // Each value is about 2/5 of the cap as hex: two rows per statement.
        assert_eq!(
            got.iter().map(|(_, a)| a.len() / 2).collect::<Vec<_>>(),
            [2, 2, 2]
        );
    }
}
