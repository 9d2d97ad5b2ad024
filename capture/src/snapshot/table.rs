//! What a snapshot needs to know about a table (columns, key, estimate), and its connection.

use super::sql;
use super::value::Kind;
use crate::error::CaptureError;
use crate::filter::Filter;
use crate::source::SourceClient;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashSet;

/// A connection for snapshot reads: UTC timestamps and utf8mb4 text, as the decoder renders.
pub(super) async fn session(client: &SourceClient) -> Result<Conn, CaptureError> {
    let mut conn = client.connect().await?;
    conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4")
        .await
        .map_err(|e| client.err(e))?;
    Ok(conn)
}

/// What a chunk SELECT needs to know about a table.
#[derive(Debug, Clone)]
pub(super) struct TableMeta {
    /// Columns in events, in table order, with how to read them.
    pub(super) columns: Vec<(String, Kind)>,
    pub(super) pk: Vec<String>,
    /// Position of each key column in the SELECT list.
    pub(super) pk_index: Vec<usize>,
    /// The SELECT list: `columns`, then key columns the filter drops from events.
    pub(super) select: Vec<String>,
    /// Per column of `columns`: its `[filter.mask]` masking; empty when none is masked.
    pub(super) masks: Vec<Option<sluice_rules::Masking>>,
    pub(super) estimate: u64,
}

/// Columns, key and row estimate; a missing table, a table without a primary key, or one the
/// filter does not publish is a definite error with what to do.
pub(super) async fn table_meta(
    conn: &mut Conn,
    client: &SourceClient,
    database: &str,
    table: &str,
    filter: &Filter,
) -> Result<TableMeta, CaptureError> {
    let cols: Vec<(String, String, Option<String>, Option<u64>)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, DATETIME_PRECISION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| client.err(e))?;
    if cols.is_empty() {
        return Err(CaptureError::Check(format!(
            "{database}.{table} does not exist on {} (or the capture user cannot see it); check the name and grant SELECT on it",
            client.addr
        )));
    }
    if !filter.table(database, table) {
        return Err(CaptureError::Check(format!(
            "{database}.{table} is not published by this capture's [filter]; a snapshot of it would go nowhere: add it to filter.include"
        )));
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| client.err(e))?;
    if pk.is_empty() {
        return Err(CaptureError::Check(format!(
            "{database}.{table} has no primary key; Sluice snapshots read by key ranges and refuse tables without one: add a primary key (ALTER TABLE {} ADD PRIMARY KEY (...)), or backfill its targets another way (docs/snapshots.md)",
            sql::qualified(database, table)
        )));
    }
    let has_longtext = cols.iter().any(|c| c.1.eq_ignore_ascii_case("longtext"));
    let json: HashSet<String> = if has_longtext {
        let checks: Vec<String> = conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (database, table),
            )
            .await
            .unwrap_or_default();
        checks
            .iter()
            .filter_map(|c| {
                let inner = c.trim().strip_prefix("json_valid(")?.strip_suffix(')')?;
                Some(inner.trim_matches('`').to_owned())
            })
            .collect()
    } else {
        HashSet::new()
    };
    let dropped = filter.dropped(database, table);
    let columns: Vec<(String, Kind)> = cols
        .iter()
        .filter(|c| dropped.is_none_or(|d| !d.contains(&c.0)))
        .map(|(name, data_type, charset, fsp)| {
            (
                name.clone(),
                Kind::of(data_type, charset.as_deref(), *fsp, json.contains(name)),
            )
        })
        .collect();
    let masks = match filter.masks(database, table) {
        Some(m) => columns.iter().map(|c| m.get(&c.0).cloned()).collect(),
        None => Vec::new(),
    };
    let mut select: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
    let mut pk_index = Vec::with_capacity(pk.len());
    for k in &pk {
        match select.iter().position(|c| c == k) {
            Some(i) => pk_index.push(i),
            None => {
                select.push(k.clone());
                pk_index.push(select.len() - 1);
            }
        }
    }
    let estimate: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, table),
        )
        .await
        .map_err(|e| client.err(e))?;
    Ok(TableMeta {
        columns,
        pk,
        pk_index,
        select,
        masks,
        estimate: estimate.flatten().unwrap_or(0),
    })
}
