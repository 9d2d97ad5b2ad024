//! `sluice-sink verify`: compares a rule's source tables with its replica table chunk by chunk
//! of keys (row count and `BIT_XOR(CRC32(...))` of the compared columns per chunk) and reports
//! the key ranges that differ.
//!
//! Chunk boundaries are keys of the source table (of the replica when shards merge into it),
//! every `chunk_rows` rows in key order;
//! the first chunk is open below and the last open above, so rows the replica has and the source
//! does not are counted too.

use super::config::{MysqlConfig, MysqlRule, TableName};
use super::encoder::{quote, ColumnKind, TableMeta};
use super::service::load_table;
use super::{connect_options, redact};
use crate::targets::{Outcome, TargetConfig};
use crate::SinkConfig;
use sluice_config::Problems;
use sluice_rules::RuleSet;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::Row;
use std::fmt;

/// Source rows per chunk unless `--chunk-rows` says otherwise.
pub const DEFAULT_CHUNK_ROWS: u64 = 10_000;

/// Why verify could not compare.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Setup(String),
    #[error("{what} on {address}: {source}")]
    Sql {
        what: String,
        address: String,
        source: sqlx::Error,
    },
}

/// The outcome of one comparison.
#[derive(Debug, Clone)]
pub struct Report {
    pub rule: String,
    /// `db.table` of each source table.
    pub sources: Vec<String>,
    /// `db.table` of the replica table.
    pub replica: String,
    /// `source column = replica column` pairs compared.
    pub compared: Vec<(String, String)>,
    /// Replica columns left out of the comparison, with why.
    pub skipped: Vec<Skipped>,
    pub chunks: usize,
    pub source_rows: i64,
    pub replica_rows: i64,
    pub differences: Vec<Chunk>,
}

/// One key range and what each side holds in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Inclusive lower bound (key values as text); `None` = from the smallest key.
    pub from: Option<Vec<String>>,
    /// Exclusive upper bound; `None` = to the largest key.
    pub to: Option<Vec<String>>,
    pub source_rows: i64,
    pub source_sum: i64,
    pub replica_rows: i64,
    pub replica_sum: i64,
}

impl Report {
    /// True when every chunk has the same count and checksum on both sides.
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Compares the tables of rule `rule_name`. `source_url` defaults to the replica's server.
pub async fn verify(
    config: &SinkConfig,
    rule_name: &str,
    source_url: Option<&str>,
    chunk_rows: u64,
) -> Result<Report, VerifyError> {
    let setup = |m: String| VerifyError::Setup(m);
    let mut problems = Problems::default();
    let rules = RuleSet::compile(&config.rules, &mut problems);
    let Some(index) = (0..rules.len()).find(|&i| rules.rule(i).name() == rule_name) else {
        let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
        return Err(setup(format!(
            "no rule named `{rule_name}`; rules: [{}]",
            names.join(", ")
        )));
    };
    let rule = rules.rule(index);
    let Some(TargetConfig::Mysql(target)) = config.targets.get(rule.target()) else {
        return Err(setup(format!(
            "rule `{rule_name}` writes to target `{}`, which is not of type mysql; verify compares MySQL replicas only",
            rule.target()
        )));
    };
    let path = format!("rules[{index}]");
    let Some(mysql) = MysqlRule::parse(&path, rule, &mut problems) else {
        return Err(setup(format!("invalid rule settings:\n{problems}")));
    };
    let TableName::Fixed(table) = &mysql.table else {
        return Err(setup(format!(
            "rule `{rule_name}` renders its replica table per row; verify needs a fixed rules.mysql.table"
        )));
    };
    let replica_address = redact(target.url.expose());
    let replica = pool(target.url.expose(), target, &replica_address).await?;
    let replica_db = match (&mysql.database, replica_database(target)) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d,
        (None, None) => {
            return Err(setup(format!(
                "rule `{rule_name}` names no replica database; set rules.mysql.database or put it in the target's url"
            )))
        }
    };
    let source_url = source_url.unwrap_or(target.url.expose());
    let source_address = redact(source_url);
    let source = pool(source_url, target, &source_address).await?;
    let replica_meta = meta(&replica, &replica_db, table, &replica_address).await?;

    // Every source table the rule matches.
    let instance = rule.config().matcher.source.clone().unwrap_or_default();
    let listed: Vec<(String, String)> = sqlx::query(
        "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
    )
    .fetch_all(&source)
    .await
    .map_err(|e| sql_error("listing tables", &source_address, e))?
    .iter()
    .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
    .collect();
    let mut sources = Vec::new();
    for (db, t) in listed {
        let same = db == replica_db && t == *table && source_address == replica_address;
        if !same && rules.matching(&instance, &db, &t).contains(&index) {
            sources.push(meta(&source, &db, &t, &source_address).await?);
        }
    }
    if sources.is_empty() {
        return Err(setup(format!(
            "rule `{rule_name}` matches no table on {source_address}; check --source-url and the rule's match"
        )));
    }

    let key: Vec<String> = match &mysql.key {
        Some(k) => k.clone(),
        None => replica_meta.primary_key.clone(),
    };
    if key.is_empty() {
        return Err(setup(format!(
            "replica table {} has no PRIMARY KEY; set rules.mysql.key",
            replica_meta.qualified()
        )));
    }
    let (compared, skipped) = pairs(rule.config(), &mysql, &replica_meta, &sources);
    let mut key_pairs = Vec::new();
    for k in &key {
        match compared.iter().find(|(_, r)| r.eq_ignore_ascii_case(k)) {
            Some(p) => key_pairs.push(p.clone()),
            None => {
                return Err(setup(format!(
                    "key column `{k}` of {} has no source column to compare with",
                    replica_meta.qualified()
                )))
            }
        }
    }

    let first = &sources[0];
    let key_kinds: Vec<ColumnKind> = key_pairs
        .iter()
        .map(|(s, _)| first.column(s).map(|(_, k)| k).unwrap_or(ColumnKind::Other))
        .collect();
    let source_keys: Vec<String> = key_pairs.iter().map(|(s, _)| s.clone()).collect();
    let replica_keys: Vec<String> = key_pairs.iter().map(|(_, r)| r.clone()).collect();
    let source_cols: Vec<String> = compared.iter().map(|(s, _)| s.clone()).collect();
    let replica_cols: Vec<String> = compared.iter().map(|(_, r)| r.clone()).collect();
    let live = mysql
        .soft_delete
        .as_ref()
        .map(|c| format!("{} IS NULL", quote(c)));

    // Boundaries: every chunk_rows-th key of the source table, or of the replica when several
    // source tables (shards) merge into it; any bounds are correct, these make even chunks.
    let (bound_pool, bound_meta, bound_keys, bound_address) = if sources.len() == 1 {
        (&source, first, &source_keys, &source_address)
    } else {
        (&replica, &replica_meta, &replica_keys, &replica_address)
    };
    let mut bounds: Vec<Vec<String>> = Vec::new();
    loop {
        let select: Vec<String> = bound_keys
            .iter()
            .zip(&key_kinds)
            .map(|(k, kind)| text_of(k, *kind))
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {}",
            select.join(", "),
            bound_meta.qualified()
        );
        if !bounds.is_empty() {
            sql.push_str(&format!(" WHERE {}", compare(bound_keys, &key_kinds, ">=")));
        }
        sql.push_str(&format!(
            " ORDER BY {} LIMIT 1 OFFSET {}",
            quoted(bound_keys).join(", "),
            chunk_rows.max(1)
        ));
        let mut q = sqlx::query(&sql);
        if let Some(last) = bounds.last() {
            for v in last {
                q = q.bind(v.as_str());
            }
        }
        let row = q
            .fetch_optional(bound_pool)
            .await
            .map_err(|e| sql_error("reading chunk boundaries", bound_address, e))?;
        let Some(row) = row else { break };
        let mut b = Vec::with_capacity(bound_keys.len());
        for i in 0..bound_keys.len() {
            let v: Option<String> = row
                .try_get(i)
                .map_err(|e| sql_error("reading chunk boundaries", bound_address, e))?;
            b.push(v.unwrap_or_default());
        }
        bounds.push(b);
    }

    let mut report = Report {
        rule: rule_name.to_owned(),
        sources: sources
            .iter()
            .map(|m| format!("{}.{}", m.database, m.table))
            .collect(),
        replica: format!("{}.{}", replica_meta.database, replica_meta.table),
        compared: compared.clone(),
        skipped,
        chunks: bounds.len() + 1,
        source_rows: 0,
        replica_rows: 0,
        differences: Vec::new(),
    };
    for i in 0..=bounds.len() {
        let from = i.checked_sub(1).and_then(|j| bounds.get(j));
        let to = bounds.get(i);
        let mut source_rows = 0;
        let mut source_sum = 0;
        for s in &sources {
            let (n, sum) = chunk(
                &source,
                s,
                &source_keys,
                &key_kinds,
                &source_cols,
                None,
                from,
                to,
                &source_address,
            )
            .await?;
            source_rows += n;
            source_sum ^= sum;
        }
        let (replica_rows, replica_sum) = chunk(
            &replica,
            &replica_meta,
            &replica_keys,
            &key_kinds,
            &replica_cols,
            live.as_deref(),
            from,
            to,
            &replica_address,
        )
        .await?;
        report.source_rows += source_rows;
        report.replica_rows += replica_rows;
        if (source_rows, source_sum) != (replica_rows, replica_sum) {
            report.differences.push(Chunk {
                from: from.cloned(),
                to: to.cloned(),
                source_rows,
                source_sum,
                replica_rows,
                replica_sum,
            });
        }
    }
    source.close().await;
    replica.close().await;
    Ok(report)
}

/// Row count and checksum of the rows of `meta` with keys in `[from, to)`.
#[allow(clippy::too_many_arguments)]
async fn chunk(
    pool: &MySqlPool,
    meta: &TableMeta,
    keys: &[String],
    kinds: &[ColumnKind],
    cols: &[String],
    live: Option<&str>,
    from: Option<&Vec<String>>,
    to: Option<&Vec<String>>,
    address: &str,
) -> Result<(i64, i64), VerifyError> {
    let values: Vec<String> = cols.iter().map(|c| quote(c)).collect();
    let nulls: Vec<String> = cols
        .iter()
        .map(|c| format!("ISNULL({})", quote(c)))
        .collect();
    let mut conditions = Vec::new();
    if from.is_some() {
        conditions.push(compare(keys, kinds, ">="));
    }
    if to.is_some() {
        conditions.push(compare(keys, kinds, "<"));
    }
    if let Some(l) = live {
        conditions.push(l.to_owned());
    }
    let mut sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', {}, CONCAT({})))), 0) AS SIGNED) FROM {}",
        values.join(", "),
        nulls.join(", "),
        meta.qualified()
    );
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let mut q = sqlx::query(&sql);
    for b in from.into_iter().chain(to) {
        for v in b {
            q = q.bind(v.as_str());
        }
    }
    let row = q
        .fetch_one(pool)
        .await
        .map_err(|e| sql_error(&format!("checksum of {}", meta.qualified()), address, e))?;
    let n: i64 = row
        .try_get(0)
        .map_err(|e| sql_error("reading a checksum", address, e))?;
    let sum: i64 = row
        .try_get(1)
        .map_err(|e| sql_error("reading a checksum", address, e))?;
    Ok((n, sum))
}

/// A replica column left out of the comparison, and why.
type Skipped = (String, &'static str);

/// Pairs of (source column, replica column) to compare, from the rule's field mapping; and
/// the replica columns that cannot be compared in SQL.
fn pairs(
    rule: &sluice_rules::RuleConfig,
    mysql: &MysqlRule,
    replica: &TableMeta,
    sources: &[TableMeta],
) -> (Vec<(String, String)>, Vec<Skipped>) {
    let f = &rule.fields;
    let mut compared = Vec::new();
    let mut skipped = Vec::new();
    for (column, _) in &replica.columns {
        let is = |o: &Option<String>| o.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(column));
        if is(&mysql.version_column) || is(&mysql.soft_delete) {
            continue;
        }
        if f.constants.contains_key(column) || f.json_path.contains_key(column) {
            skipped.push((column.clone(), "a constant or JSONPath field"));
            continue;
        }
        let source = f
            .rename
            .iter()
            .find(|(_, out)| out.eq_ignore_ascii_case(column))
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| column.clone());
        let kept =
            f.include.as_ref().is_none_or(|i| i.contains(&source)) && !f.exclude.contains(&source);
        if !kept {
            skipped.push((column.clone(), "not written by the rule"));
        } else if f.convert.contains_key(&source) {
            skipped.push((column.clone(), "converted by the rule"));
        } else if !sources.iter().all(|s| s.column(&source).is_some()) {
            skipped.push((column.clone(), "not in the source table"));
        } else {
            compared.push((source, column.clone()));
        }
    }
    (compared, skipped)
}

/// `(k1, k2) >= (?, ?)` with binary keys compared as bytes.
fn compare(keys: &[String], kinds: &[ColumnKind], op: &str) -> String {
    let params: Vec<&str> = kinds
        .iter()
        .map(|k| {
            if *k == ColumnKind::Binary {
                "UNHEX(?)"
            } else {
                "?"
            }
        })
        .collect();
    format!("({}) {op} ({})", quoted(keys).join(", "), params.join(", "))
}

/// A key column as text that binds back to the same value.
fn text_of(column: &str, kind: ColumnKind) -> String {
    match kind {
        ColumnKind::Binary => format!("HEX({})", quote(column)),
        _ => format!("CAST({} AS CHAR)", quote(column)),
    }
}

fn quoted(columns: &[String]) -> Vec<String> {
    columns.iter().map(|c| quote(c)).collect()
}

fn replica_database(target: &MysqlConfig) -> Option<String> {
    connect_options(target.url.expose(), target)
        .ok()
        .and_then(|o| o.get_database().map(str::to_owned))
}

async fn pool(url: &str, target: &MysqlConfig, address: &str) -> Result<MySqlPool, VerifyError> {
    let options = connect_options(url, target).map_err(|e| sql_error("connecting", address, e))?;
    MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_millis(target.timeout_ms))
        .connect_with(options)
        .await
        .map_err(|e| sql_error("connecting", address, e))
}

async fn meta(
    pool: &MySqlPool,
    db: &str,
    table: &str,
    address: &str,
) -> Result<TableMeta, VerifyError> {
    load_table(pool, db, table).await.map_err(|o| match o {
        Outcome::Retry(r) | Outcome::Reject(r) => VerifyError::Setup(format!("{address}: {r}")),
        Outcome::Done => VerifyError::Setup(String::new()),
    })
}

fn sql_error(what: &str, address: &str, source: sqlx::Error) -> VerifyError {
    VerifyError::Sql {
        what: what.to_owned(),
        address: address.to_owned(),
        source,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rule {}: {} -> {}",
            self.rule,
            self.sources.join(", "),
            self.replica
        )?;
        let cols: Vec<String> = self
            .compared
            .iter()
            .map(|(s, r)| {
                if s == r {
                    s.clone()
                } else {
                    format!("{s}={r}")
                }
            })
            .collect();
        writeln!(f, "compared columns: {}", cols.join(", "))?;
        for (c, why) in &self.skipped {
            writeln!(f, "not compared: {c} ({why})")?;
        }
        writeln!(
            f,
            "{} chunks, source {} rows, replica {} rows",
            self.chunks, self.source_rows, self.replica_rows
        )?;
        for d in &self.differences {
            let bound = |b: &Option<Vec<String>>, open: &str| match b {
                Some(v) => format!("({})", v.join(", ")),
                None => open.to_owned(),
            };
            writeln!(
                f,
                "differs: keys [{}, {}): source {} rows (checksum {}), replica {} rows (checksum {})",
                bound(&d.from, "start"),
                bound(&d.to, "end"),
                d.source_rows,
                d.source_sum,
                d.replica_rows,
                d.replica_sum
            )?;
        }
        if self.differences.is_empty() {
            write!(f, "equal")
        } else {
            write!(
                f,
                "{} of {} chunks differ",
                self.differences.len(),
                self.chunks
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_compare_binary_keys_as_bytes() {
        let keys = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            compare(&keys, &[ColumnKind::Integer, ColumnKind::Binary], ">="),
            "(`a`, `b`) >= (?, UNHEX(?))"
        );
        assert_eq!(text_of("b", ColumnKind::Binary), "HEX(`b`)");
        assert_eq!(text_of("a", ColumnKind::Other), "CAST(`a` AS CHAR)");
    }

    #[test]
    fn pairs_follow_the_field_mapping() {
        let rule: sluice_rules::RuleConfig = toml::from_str(
            "name = 'r'\ntarget = 't'\nmatch = { tables = ['s.t'] }\n\
             fields = { exclude = ['secret'], rename = { amount = 'total' }, constants = { origin = 'x' }, convert = { tags = 'split' } }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mysql = MysqlRule {
            name: "r".into(),
            database: None,
            table: TableName::Fixed("t".into()),
            key: None,
            soft_delete: Some("deleted_at".into()),
            version_column: Some("v".into()),
        };
        let o = ColumnKind::Other;
        let replica = TableMeta::new(
            "r",
            "t",
            [
                "id",
                "total",
                "origin",
                "tags",
                "secret",
                "extra",
                "deleted_at",
                "v",
            ]
            .iter()
            .map(|c| (c.to_string(), o))
            .collect(),
            vec!["id".into()],
        );
        let source = TableMeta::new(
            "s",
            "t",
            ["id", "amount", "tags", "secret"]
                .iter()
                .map(|c| (c.to_string(), o))
                .collect(),
            vec!["id".into()],
        );
        let (compared, skipped) = pairs(&rule, &mysql, &replica, &[source]);
        assert_eq!(
            compared,
            vec![
                ("id".into(), "id".into()),
                ("amount".into(), "total".into())
            ]
        );
        assert_eq!(
            skipped,
            vec![
                ("origin".into(), "a constant or JSONPath field"),
                ("tags".into(), "converted by the rule"),
                ("secret".into(), "not written by the rule"),
                ("extra".into(), "not in the source table"),
            ]
        );
    }
}
