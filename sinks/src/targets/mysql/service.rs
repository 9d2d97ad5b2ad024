//! The request: one transaction per batch, multi-row statements per table, one outcome per item.

use super::config::{MysqlRule, TableName};
use super::encoder::{self, quote, ColumnKind, Op, Statement, TableMeta, MAX_STATEMENT_BYTES};
use super::retry::classify;
use crate::targets::{Item, Outcome};
use sqlx::mysql::{MySql, MySqlPool};
use sqlx::{Executor, Row, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Replica tables read from `information_schema`, cached per `(database, table)`.
#[derive(Default)]
pub struct Schema {
    tables: Mutex<HashMap<(String, String), Arc<TableMeta>>>,
}

impl Schema {
    /// The cached description of `db.table`, read from the server the first time.
    pub async fn get(
        &self,
        pool: &MySqlPool,
        db: &str,
        table: &str,
    ) -> Result<Arc<TableMeta>, Outcome> {
        let k = (db.to_owned(), table.to_owned());
        if let Some(m) = self.lock().get(&k) {
            return Ok(m.clone());
        }
        self.reload(pool, db, table).await
    }

    /// Reads `db.table` again (after an ALTER TABLE on the replica).
    pub async fn reload(
        &self,
        pool: &MySqlPool,
        db: &str,
        table: &str,
    ) -> Result<Arc<TableMeta>, Outcome> {
        let meta = Arc::new(load_table(pool, db, table).await?);
        self.lock()
            .insert((db.to_owned(), table.to_owned()), meta.clone());
        Ok(meta)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<TableMeta>>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads the columns, their kinds and the primary key of `db.table`. A missing table is a
/// `Retry` (someone has to create it; no row is at fault), a server error as classified.
pub async fn load_table(pool: &MySqlPool, db: &str, table: &str) -> Result<TableMeta, Outcome> {
    let fail = |e: sqlx::Error| match classify(&e) {
        Outcome::Reject(r) => Outcome::Retry(r),
        o => o,
    };
    let rows = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(fail)?;
    if rows.is_empty() {
        return Err(Outcome::Retry(format!(
            "replica table {}.{} does not exist (or the user cannot see it); create it on the replica",
            quote(db),
            quote(table)
        )));
    }
    let mut columns = Vec::with_capacity(rows.len());
    for r in &rows {
        let name: String = r.try_get(0).map_err(fail)?;
        let data_type: String = r.try_get(1).map_err(fail)?;
        columns.push((name, ColumnKind::from_data_type(&data_type)));
    }
    let pk: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(fail)?;
    // MariaDB's JSON is LONGTEXT with CHECK (json_valid(`c`)); MySQL says `json` itself.
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for (name, kind) in &mut columns {
        let check = format!("json_valid({})", quote(name));
        if checks.iter().any(|c| c.eq_ignore_ascii_case(&check)) {
            *kind = ColumnKind::Json;
        }
    }
    Ok(TableMeta::new(db, table, columns, pk))
}

/// Everything `write` needs.
pub struct Context<'a> {
    pub pool: &'a MySqlPool,
    pub schema: &'a Schema,
    pub rules: &'a HashMap<usize, MysqlRule>,
    /// The database of the target URL, for rules that name none.
    pub default_database: Option<&'a str>,
}

/// Items of consecutive runs for one table, with their ops.
struct Group<'a> {
    meta: Arc<TableMeta>,
    rule: usize,
    key: Vec<String>,
    /// `(item index, its ops)`.
    items: Vec<(usize, Vec<Op<'a>>)>,
}

/// Writes `items` in one transaction. A data error in a multi-row statement rolls that table's
/// statements back to a savepoint and writes its items one by one, so only the bad row is
/// rejected; a transient error anywhere rolls everything back and retries every item.
pub async fn write(cx: &Context<'_>, items: &[Item]) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    let mut groups: Vec<Group> = Vec::new();
    let mut reloaded: HashSet<(String, String)> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(rule) = cx.rules.get(&item.rule) else {
            outcomes[i] = Some(Outcome::Reject(format!(
                "rule {} has no MySQL settings in this target",
                item.rule
            )));
            continue;
        };
        let (db, table) = match target_table(rule, cx.default_database, item) {
            Ok(t) => t,
            Err(reason) => {
                outcomes[i] = Some(Outcome::Reject(reason));
                continue;
            }
        };
        let meta = match cx.schema.get(cx.pool, &db, &table).await {
            Ok(m) => m,
            Err(o) => return retry_rest(outcomes, o),
        };
        let mut encoded = encode(rule, &meta, &item.mapped);
        if encoded.is_err() && !reloaded.contains(&(db.clone(), table.clone())) {
            // Maybe the replica table gained the column since it was read: read it once more
            // (once per table and batch).
            reloaded.insert((db.clone(), table.clone()));
            if let Ok(fresh) = cx.schema.reload(cx.pool, &db, &table).await {
                encoded = encode(rule, &fresh, &item.mapped);
            }
        }
        match encoded {
            Ok((key, ops)) => {
                let same = groups.last().is_some_and(|g: &Group| {
                    g.rule == item.rule && g.meta.database == db && g.meta.table == table
                });
                if !same {
                    groups.push(Group {
                        meta,
                        rule: item.rule,
                        key,
                        items: Vec::new(),
                    });
                }
                if let Some(g) = groups.last_mut() {
                    g.items.push((i, ops));
                }
            }
            Err(reason) => outcomes[i] = Some(Outcome::Reject(reason)),
        }
    }
    if groups.is_empty() {
        return finish(outcomes);
    }
    match write_groups(cx, &groups, &mut outcomes).await {
        Ok(()) => finish(outcomes),
        Err(o) => retry_rest(outcomes, o),
    }
}

async fn write_groups(
    cx: &Context<'_>,
    groups: &[Group<'_>],
    outcomes: &mut [Option<Outcome>],
) -> Result<(), Outcome> {
    let mut tx = cx.pool.begin().await.map_err(|e| transient(&e))?;
    for g in groups {
        let Some(rule) = cx.rules.get(&g.rule) else {
            continue;
        };
        let ops: Vec<&Op> = g.items.iter().flat_map(|(_, ops)| ops.iter()).collect();
        let statements = encoder::plan(rule, &g.meta, &g.key, &ops);
        // The savepoint and the table's statements in as few round trips as fit a packet; the
        // server stops at the first statement that fails.
        let mut sql = String::from("SAVEPOINT sluice_group");
        let mut failed = None;
        for s in &statements {
            let len = s.inline_len();
            if sql.len() + len > MAX_STATEMENT_BYTES && !sql.is_empty() {
                if let Err(e) = (&mut *tx).execute(sql.as_str()).await {
                    failed = Some(classify(&e));
                }
                sql.clear();
                if failed.is_some() {
                    break;
                }
            }
            if !sql.is_empty() {
                sql.push(';');
            }
            s.inline_into(&mut sql);
        }
        if failed.is_none() && !sql.is_empty() {
            if let Err(e) = (&mut *tx).execute(sql.as_str()).await {
                failed = Some(classify(&e));
            }
        }
        match failed {
            None => {}
            Some(Outcome::Reject(_)) => {
                // Find the bad rows: the table's items again, one by one, in order.
                exec(&mut tx, "ROLLBACK TO SAVEPOINT sluice_group").await?;
                for (i, ops) in &g.items {
                    if let Some(reason) = write_one(&mut tx, rule, g, ops).await? {
                        outcomes[*i] = Some(Outcome::Reject(reason));
                    }
                }
            }
            Some(other) => return Err(other),
        }
    }
    tx.commit().await.map_err(|e| transient(&e))
}

/// One item's ops, atomically; `Some(reason)` if the replica refuses it.
async fn write_one(
    tx: &mut Transaction<'_, MySql>,
    rule: &MysqlRule,
    g: &Group<'_>,
    ops: &[Op<'_>],
) -> Result<Option<String>, Outcome> {
    exec(tx, "SAVEPOINT sluice_item").await?;
    for op in ops {
        for s in encoder::plan(rule, &g.meta, &g.key, &[op]) {
            if let Err(e) = run(tx, &s).await {
                return match classify(&e) {
                    Outcome::Reject(reason) => {
                        exec(tx, "ROLLBACK TO SAVEPOINT sluice_item").await?;
                        Ok(Some(format!("{reason} (writing {})", g.meta.qualified())))
                    }
                    other => Err(other),
                };
            }
        }
    }
    Ok(None)
}

/// One statement, values inlined (text protocol).
async fn run(tx: &mut Transaction<'_, MySql>, s: &Statement<'_>) -> Result<(), sqlx::Error> {
    (&mut **tx).execute(s.inline().as_str()).await.map(|_| ())
}

async fn exec(tx: &mut Transaction<'_, MySql>, sql: &str) -> Result<(), Outcome> {
    (&mut **tx)
        .execute(sql)
        .await
        .map(|_| ())
        .map_err(|e| transient(&e))
}

/// The key columns and ops of one item.
fn encode<'a>(
    rule: &MysqlRule,
    meta: &TableMeta,
    mapped: &'a sluice_rules::Mapped,
) -> Result<(Vec<String>, Vec<Op<'a>>), String> {
    let key = match &rule.key {
        Some(k) => k.clone(),
        None if meta.primary_key.is_empty() => {
            return Err(format!(
                "replica table {} has no PRIMARY KEY; add one or set rules.mysql.key",
                meta.qualified()
            ))
        }
        None => meta.primary_key.clone(),
    };
    let ops = encoder::ops(rule, meta, &key, mapped)?;
    Ok((key, ops))
}

/// `(database, table)` of an item.
pub fn target_table(
    rule: &MysqlRule,
    default_database: Option<&str>,
    item: &Item,
) -> Result<(String, String), String> {
    let db = match (&rule.database, default_database) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => {
            return Err(format!(
                "rule `{}` names no replica database; set rules.mysql.database or put the database in the target's url",
                rule.name
            ))
        }
    };
    let table = match &rule.table {
        TableName::Fixed(t) => t.clone(),
        TableName::Template(t) => t
            .render(&item.mapped.doc)
            .map_err(|e| format!("cannot render the replica table name: {e}"))?,
    };
    Ok((db, table))
}

fn transient(e: &sqlx::Error) -> Outcome {
    match classify(e) {
        Outcome::Reject(r) => Outcome::Retry(r),
        o => o,
    }
}

/// Every item without an outcome yet gets `outcome` (rejections found so far stay).
fn retry_rest(outcomes: Vec<Option<Outcome>>, outcome: Outcome) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| outcome.clone()))
        .collect()
}

fn finish(outcomes: Vec<Option<Outcome>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Done))
        .collect()
}
