//! information_schema lookups that complete a TABLE_MAP, cached per table until the next DDL.

use super::checks::Flavor;
use super::SourceClient;
use crate::binlog::{Charset, FixedBin, TableMap};
use crate::error::CaptureError;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::{HashMap, HashSet};

/// Column facts from information_schema, for MariaDB JSON columns and servers without
/// binlog_row_metadata=FULL.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub unsigned: bool,
    pub charset: Charset,
    pub members: Vec<String>,
    pub json_text: bool,
    /// MariaDB's UUID, INET4 and INET6, which the binlog calls BINARY.
    pub fixed_bin: Option<FixedBin>,
}

/// information_schema lookups, cached per table until the next DDL.
pub struct SchemaCache {
    conn: Option<Conn>,
    tables: HashMap<(String, String), (Vec<ColumnInfo>, Vec<String>)>,
    pub flavor: Flavor,
}

impl SchemaCache {
    pub fn new(flavor: Flavor) -> SchemaCache {
        SchemaCache {
            conn: None,
            tables: HashMap::new(),
            flavor,
        }
    }

    /// Forgets every table after a schema change.
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// Fills in what the TABLE_MAP did not carry: JSON, UUID and INET columns on MariaDB, and
    /// everything but the types when binlog_row_metadata is not FULL (checking the column count).
    pub async fn enrich(
        &mut self,
        client: &SourceClient,
        map: &mut TableMap,
    ) -> Result<(), CaptureError> {
        if map.full_metadata && self.flavor == Flavor::MySql {
            return Ok(());
        }
        let key = (map.database.clone(), map.table.clone());
        if !self.tables.contains_key(&key) {
            if self.conn.is_none() {
                self.conn = Some(client.connect().await?);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            let info = match lookup(conn, &key.0, &key.1).await {
                Ok(i) => i,
                Err(e) => {
                    self.conn = None;
                    return Err(client.err(e));
                }
            };
            self.tables.insert(key.clone(), info);
        }
        let Some((cols, pk)) = self.tables.get(&key) else {
            return Ok(());
        };
        if map.full_metadata {
            for c in map.columns.iter_mut() {
                let info = cols.iter().find(|i| i.name == c.name);
                c.json_text = info.is_some_and(|i| i.json_text);
                c.fixed_bin = info.and_then(|i| i.fixed_bin);
            }
            return Ok(());
        }
        if cols.len() != map.columns.len() {
            return Err(CaptureError::Check(format!(
                "{}.{}: the binlog has {} columns but information_schema has {}: the table changed after this event was written, and without binlog_row_metadata=FULL its columns cannot be named safely. SET GLOBAL binlog_row_metadata=FULL on the source; to continue, start past this event",
                map.database, map.table, map.columns.len(), cols.len()
            )));
        }
        for (c, i) in map.columns.iter_mut().zip(cols) {
            c.name = i.name.clone();
            c.unsigned = i.unsigned;
            c.charset = i.charset;
            c.members = i.members.clone();
            c.json_text = i.json_text;
            c.fixed_bin = i.fixed_bin;
        }
        map.pk = pk
            .iter()
            .filter_map(|n| map.columns.iter().position(|c| &c.name == n))
            .collect();
        map.refresh_pk_names();
        Ok(())
    }
}

type Lookup = (Vec<ColumnInfo>, Vec<String>);

async fn lookup(conn: &mut Conn, db: &str, table: &str) -> Result<Lookup, mysql_async::Error> {
    let rows: Vec<(String, String, Option<String>, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let json: HashSet<String> = if rows.iter().any(|r| r.3.eq_ignore_ascii_case("longtext")) {
        let checks: Vec<String> = conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (db, table),
            )
            .await
            .unwrap_or_default();
        checks.iter().filter_map(|c| json_valid_column(c)).collect()
    } else {
        HashSet::new()
    };
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let cols = rows
        .into_iter()
        .map(|(name, column_type, charset, data_type)| {
            let lower = column_type.to_ascii_lowercase();
            let charset = match charset.as_deref() {
                Some("latin1") => Charset::Latin1,
                Some(_) => Charset::Utf8,
                None if [
                    "char",
                    "varchar",
                    "text",
                    "tinytext",
                    "mediumtext",
                    "longtext",
                ]
                .contains(&data_type.as_str()) =>
                {
                    Charset::Utf8
                }
                None => Charset::Binary,
            };
            ColumnInfo {
                json_text: json.contains(&name) || data_type.eq_ignore_ascii_case("json"),
                fixed_bin: FixedBin::of(&data_type),
                unsigned: lower.contains("unsigned"),
                members: if lower.starts_with("enum(") || lower.starts_with("set(") {
                    members(&column_type)
                } else {
                    Vec::new()
                },
                charset,
                name,
            }
        })
        .collect();
    Ok((cols, pk))
}

/// `json_valid(`col`)` → `col`.
fn json_valid_column(clause: &str) -> Option<String> {
    let rest = clause.trim().strip_prefix("json_valid(")?;
    let inner = rest.strip_suffix(')')?;
    Some(inner.trim_matches('`').to_owned())
}

/// Member names of `enum('a','b''c')` / `set(...)`.
fn members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let body = column_type[open + 1..].trim_end_matches(')');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_str = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (false, '\'') => in_str = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                cur.push('\'');
                chars.next();
            }
            (true, '\'') => {
                in_str = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, c) => cur.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_members_and_json_checks() {
        assert_eq!(members("enum('a','b''c','')"), vec!["a", "b'c", ""]);
        assert_eq!(
            json_valid_column("json_valid(`doc`)").as_deref(),
            Some("doc")
        );
        assert_eq!(json_valid_column("`x` > 0"), None);
    }
}
