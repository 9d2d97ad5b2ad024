//! The ops of one table turned into multi-row statements: the last op per key, deletes first.

use super::statement::literal_len;
use super::{quote, Bound, MysqlRule, Op, OpKind, SqlValue, Statement, TableMeta};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::sync::Arc;

/// Values one statement may carry (the prepared-statement limit is 65,535).
const MAX_PARAMS: usize = 60_000;

/// Bytes of values (as literals) one multi-row statement may carry: well below the servers'
/// default `max_allowed_packet` (16 MB on MariaDB, 64 MB on MySQL).
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;

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
