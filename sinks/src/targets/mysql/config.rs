//! What users write for a MySQL/MariaDB replica: `[targets.<name>] type = "mysql"` and
//! `[rules.mysql]`.

use super::super::parse_rule_table;
use serde::Deserialize;
use sluice_config::{Problems, Secret};
use sluice_rules::{Rule, Template};
use std::path::PathBuf;
use std::str::FromStr;

/// Connections the target keeps open unless configured.
pub const DEFAULT_MYSQL_POOL_SIZE: u32 = 8;
/// How long connecting (or waiting for a free pooled connection) may take, in milliseconds.
pub const DEFAULT_MYSQL_TIMEOUT_MS: u64 = 10_000;

/// `[targets.<name>] type = "mysql"`: the replica server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `mysql://user:${REPLICA_PASSWORD}@host:port/database`; the database is the default for
    /// rules that do not name one.
    pub url: Secret,
    /// Connections in the pool; partitions write concurrently, each write holds one.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// `disabled`, `preferred` (default), `required`, `verify_ca` or `verify_identity`.
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file of the certificate authority for `verify_ca` / `verify_identity`.
    pub ca_file: Option<PathBuf>,
    /// Connect and pool-acquire timeout in milliseconds; a timeout is a transient error.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// How the connection uses TLS; the same setting as the capture's `source.tls`.
pub use sluice_config::TlsMode;

/// `[rules.mysql]`: which replica table a rule writes and how.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlRuleConfig {
    /// Replica database; default: the database of the target's `url`.
    pub database: Option<String>,
    /// Replica table, a template over the mapped row (`orders`, `orders_{tenant}`); default:
    /// the source table's name, when `match` names exactly one table name.
    pub table: Option<String>,
    /// Key columns of the replica table (mapped names); default: its PRIMARY KEY.
    pub key: Option<Vec<String>>,
    /// `upsert` (the only mode): INSERT … ON DUPLICATE KEY UPDATE, DELETE by key.
    #[serde(default)]
    pub mode: WriteMode,
    /// A column that a DELETE sets (to the commit time, or 1 for integer columns) instead of
    /// deleting the row; upserts set it back to NULL.
    pub soft_delete: Option<String>,
    /// A BIGINT column storing the event's `seq`; writes with an older `seq` change nothing.
    pub version_column: Option<String>,
}

/// How rows are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    #[default]
    Upsert,
}

/// The replica table of a rule: fixed, or rendered per row.
#[derive(Debug, Clone)]
pub enum TableName {
    Fixed(String),
    Template(Template),
}

/// A rule's MySQL settings, parsed and checked.
#[derive(Debug, Clone)]
pub struct MysqlRule {
    /// The rule's name, for messages.
    pub name: String,
    pub database: Option<String>,
    pub table: TableName,
    pub key: Option<Vec<String>>,
    pub soft_delete: Option<String>,
    pub version_column: Option<String>,
}

impl MysqlConfig {
    /// Checks `[targets.<name>]`; `path` is `targets.<name>`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let url = self.url.expose();
        let scheme_ok = url.starts_with("mysql://") || url.starts_with("mariadb://");
        if !scheme_ok {
            problems.add(
                format!("{path}.url"),
                "not a MySQL URL; write mysql://user:${PASSWORD}@host:3306/database",
            );
        } else if let Err(e) = sqlx::mysql::MySqlConnectOptions::from_str(url) {
            problems.add(
                format!("{path}.url"),
                format!(
                    "not a MySQL URL ({}); write mysql://user:${{PASSWORD}}@host:3306/database",
                    redact_error(&e.to_string(), self.url.expose())
                ),
            );
        }
        if self.pool_size == 0 {
            problems.add(format!("{path}.pool_size"), "must be at least 1");
        }
        if self.timeout_ms == 0 {
            problems.add(format!("{path}.timeout_ms"), "must be at least 1");
        }
        let verifies = matches!(self.tls, TlsMode::VerifyCa | TlsMode::VerifyIdentity);
        if self.ca_file.is_some() && !verifies {
            problems.add(
                format!("{path}.ca_file"),
                "only used with tls = \"verify_ca\" or \"verify_identity\"; set tls or remove ca_file",
            );
        }
    }
}

impl MysqlRule {
    /// Parses and checks `rules[i].mysql`; `path` is `rules[i]`.
    pub fn parse(path: &str, rule: &Rule, problems: &mut Problems) -> Option<MysqlRule> {
        let path = format!("{path}.mysql");
        let empty = toml::Table::new();
        let table = rule.config().mysql.as_ref().unwrap_or(&empty);
        let config: MysqlRuleConfig = parse_rule_table(&path, table, problems)?;
        let before = problems.iter().count();
        let table = match &config.table {
            Some(text) => match Template::parse(text) {
                Ok(t) if t.columns().next().is_none() => {
                    check_name(&format!("{path}.table"), text, problems);
                    TableName::Fixed(text.clone())
                }
                Ok(t) => {
                    rule.check_template(&t, &format!("{path}.table"), problems);
                    TableName::Template(t)
                }
                Err(e) => {
                    problems.add(format!("{path}.table"), e.to_string());
                    TableName::Fixed(String::new())
                }
            },
            None => match source_table(&rule.config().matcher.tables) {
                Some(name) => TableName::Fixed(name),
                None => {
                    problems.add(
                        format!("{path}.table"),
                        "missing; `match` does not name one table, so say which replica table the rows go to, e.g. table = \"orders\"",
                    );
                    TableName::Fixed(String::new())
                }
            },
        };
        if let Some(db) = &config.database {
            check_name(&format!("{path}.database"), db, problems);
        }
        let mut columns: Vec<(String, &str)> = Vec::new();
        if let Some(key) = &config.key {
            if key.is_empty() {
                problems.add(
                    format!("{path}.key"),
                    "empty; list the key columns, or leave `key` out to use the table's PRIMARY KEY",
                );
            }
            for (i, k) in key.iter().enumerate() {
                columns.push((format!("{path}.key[{i}]"), k));
            }
        }
        if let Some(c) = &config.soft_delete {
            columns.push((format!("{path}.soft_delete"), c));
        }
        if let Some(c) = &config.version_column {
            columns.push((format!("{path}.version_column"), c));
        }
        for (p, name) in &columns {
            check_name(p, name, problems);
        }
        // Key columns come from the mapped row: prove they survive the rule's field mapping.
        if let Some(key) = &config.key {
            for (i, k) in key.iter().enumerate() {
                if let Ok(t) = Template::parse(&format!("{{{k}}}")) {
                    rule.check_template(&t, &format!("{path}.key[{i}]"), problems);
                }
            }
        }
        if let (Some(s), Some(v)) = (&config.soft_delete, &config.version_column) {
            if s == v {
                problems.add(
                    format!("{path}.version_column"),
                    format!("`{v}` is also the soft_delete column; use two different columns"),
                );
            }
        }
        (problems.iter().count() == before).then(|| MysqlRule {
            name: rule.name().to_owned(),
            database: config.database,
            table,
            key: config.key,
            soft_delete: config.soft_delete,
            version_column: config.version_column,
        })
    }

    /// Validation only: the problems [`MysqlRule::parse`] would report.
    pub fn validate(path: &str, rule: &Rule, problems: &mut Problems) {
        let _ = MysqlRule::parse(path, rule, problems);
    }
}

/// The one table name every exact `match` entry shares (`shop.orders`, `shop_02.orders`).
fn source_table(entries: &[String]) -> Option<String> {
    let mut name: Option<&str> = None;
    for e in entries {
        let exact = !e.starts_with('/') && !e.contains(['*', '?', '[', '{']);
        let (_, table) = e.split_once('.')?;
        if !exact || name.is_some_and(|n| n != table) {
            return None;
        }
        name = Some(table);
    }
    name.map(str::to_owned)
}

/// Identifiers are quoted with backticks; a name that cannot be quoted is a config error.
fn check_name(path: &str, name: &str, problems: &mut Problems) {
    if name.trim().is_empty() {
        problems.add(path, "empty name");
    } else if name.contains('`') || name.contains('\0') {
        problems.add(
            path,
            format!("`{name}`: names with backticks or NUL are not supported"),
        );
    }
}

/// The URL parser's message without the password, should it quote the URL.
fn redact_error(message: &str, url: &str) -> String {
    match url.split_once("://").map(|(_, rest)| rest) {
        Some(rest) => match rest.rfind('@') {
            Some(at) if at > 0 => message.replace(&rest[..at], "***"),
            _ => message.to_owned(),
        },
        None => message.to_owned(),
    }
}

fn default_pool_size() -> u32 {
    DEFAULT_MYSQL_POOL_SIZE
}

fn default_timeout_ms() -> u64 {
    DEFAULT_MYSQL_TIMEOUT_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_rules::{RuleConfig, RuleSet};

    #[derive(serde::Deserialize)]
    struct File {
        rules: Vec<RuleConfig>,
    }

    fn problems_of(rule: &str) -> String {
        let file: File = toml::from_str(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        let mut problems = Problems::default();
        let set = RuleSet::compile(&file.rules, &mut problems);
        assert!(problems.is_empty(), "{problems}");
        MysqlRule::validate("rules[0]", set.rule(0), &mut problems);
        problems.to_string()
    }

    #[test]
    fn rule_errors_have_their_key_path() {
        let head = "[[rules]]\nname = 'r'\ntarget = 'replica'\n";
        let cases = [
            ("match = { tables = ['shop.orders'] }", ""),
            ("match = { tables = ['shop_1.orders', 'shop_2.orders'] }", ""),
            (
                "match = { tables = ['shop.orders_*'] }",
                "  rules[0].mysql.table: missing; `match` does not name one table, so say which replica table the rows go to, e.g. table = \"orders\"",
            ),
            (
                "match = { tables = ['shop.orders_*'] }\n[rules.mysql]\ntable = 'orders'\ndatabase = 'shop_replica'",
                "",
            ),
            (
                "match = { tables = ['shop.orders'] }\n[rules.mysql]\ntable = 'orders_{tenant}'",
                "",
            ),
            (
                "match = { tables = ['shop.orders'] }\n[rules.mysql]\nmode = 'merge'",
                "  rules[0].mysql: unknown variant `merge`, expected `upsert`",
            ),
            (
                "match = { tables = ['shop.orders'] }\n[rules.mysql]\nkeys = ['id']",
                "  rules[0].mysql: unknown field `keys`, expected one of `database`, `table`, `key`, `mode`, `soft_delete`, `version_column`",
            ),
            (
                "match = { tables = ['shop.orders'] }\nfields = { include = ['id', 'status'] }\n[rules.mysql]\nkey = ['tenant', 'id']\ntable = 't_{region}'",
                "  rules[0].mysql.table: unknown column `region` in template `t_{region}`: fields.include does not keep it; add it to fields.include (kept: id, status)\n  rules[0].mysql.key[0]: unknown column `tenant` in template `{tenant}`: fields.include does not keep it; add it to fields.include (kept: id, status)",
            ),
            (
                "match = { tables = ['shop.orders'] }\n[rules.mysql]\nkey = []\nsoft_delete = 'v'\nversion_column = 'v'",
                "  rules[0].mysql.key: empty; list the key columns, or leave `key` out to use the table's PRIMARY KEY\n  rules[0].mysql.version_column: `v` is also the soft_delete column; use two different columns",
            ),
            (
                "match = { tables = ['shop.orders'] }\n[rules.mysql]\ntable = 'a`b'",
                "  rules[0].mysql.table: `a`b`: names with backticks or NUL are not supported",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(problems_of(&format!("{head}{body}")), want, "{body}");
        }
    }

    #[test]
    fn target_errors_have_their_key_path() {
        let cases = [
            ("url = 'mysql://u:p@127.0.0.1:3307/shop'", ""),
            (
                "url = 'postgres://u:secret@h/db'\npool_size = 0",
                "  targets.replica.url: not a MySQL URL; write mysql://user:${PASSWORD}@host:3306/database\n  targets.replica.pool_size: must be at least 1",
            ),
            (
                "url = 'mysql://u:secret@h:port/db'",
                "  targets.replica.url: not a MySQL URL (error with configuration: invalid port number); write mysql://user:${PASSWORD}@host:3306/database",
            ),
            (
                "url = 'mysql://h/db'\nca_file = '/ca.pem'\ntimeout_ms = 0",
                "  targets.replica.timeout_ms: must be at least 1\n  targets.replica.ca_file: only used with tls = \"verify_ca\" or \"verify_identity\"; set tls or remove ca_file",
            ),
            ("url = 'mysql://h/db'\nca_file = '/ca.pem'\ntls = 'verify_ca'", ""),
        ];
        for (body, want) in cases {
            let config: MysqlConfig = toml::from_str(body).unwrap_or_else(|e| panic!("{e}"));
            let mut problems = Problems::default();
            config.validate("targets.replica", &mut problems);
            assert_eq!(problems.to_string(), want, "{body}");
        }
        let unknown = toml::from_str::<MysqlConfig>("url = 'mysql://h/db'\ntls = 'yes'")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown variant `yes`"), "{unknown}");
    }

    #[test]
    fn example_config_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/examples/sink-replica.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let c = sluice_config::parse::<crate::SinkConfig>(&text, &path, |_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(crate::targets::TargetConfig::Mysql(t)) = c.targets.get("replica") else {
            panic!("targets.replica is not a mysql target");
        };
        assert_eq!(
            t.url.expose(),
            "mysql://sluice:sluice@127.0.0.1:3307/shop_replica"
        );
        let mut problems = Problems::default();
        let set = RuleSet::compile(&c.rules, &mut problems);
        let orders = MysqlRule::parse("rules[1]", set.rule(1), &mut problems);
        let users = MysqlRule::parse("rules[0]", set.rule(0), &mut problems);
        assert!(problems.is_empty(), "{problems}");
        let orders = orders.unwrap_or_else(|| panic!("orders rule"));
        assert!(matches!(&orders.table, TableName::Fixed(t) if t == "orders"));
        assert_eq!(orders.version_column.as_deref(), Some("version"));
        let users = users.unwrap_or_else(|| panic!("users rule"));
        assert!(matches!(&users.table, TableName::Fixed(t) if t == "users"));
    }

    #[test]
    fn source_table_is_the_one_exact_name() {
        let s = |v: &[&str]| source_table(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["shop.orders"]), Some("orders".into()));
        assert_eq!(s(&["a.orders", "b.orders"]), Some("orders".into()));
        assert_eq!(s(&["a.orders", "a.users"]), None);
        assert_eq!(s(&["a.orders_*"]), None);
        assert_eq!(s(&["/^a\\.orders$/"]), None);
        assert_eq!(s(&[]), None);
    }
}
