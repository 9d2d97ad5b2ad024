//! The MySQL/MariaDB replica target: upserts and deletes by key, batched into multi-row
//! statements in one transaction per batch, so a replica table converges to its source whatever
//! the replays. Users' documentation: docs/mysql.md.

mod config;
mod encoder;
mod retry;
mod service;
pub mod verify;

pub use config::{
    MysqlConfig, MysqlRule, MysqlRuleConfig, TableName, TlsMode, WriteMode,
    DEFAULT_MYSQL_POOL_SIZE, DEFAULT_MYSQL_TIMEOUT_MS,
};
pub use encoder::{ColumnKind, TableMeta};

use super::{Item, Outcome, TargetError, Write};
use service::{Context, Schema};
use sluice_config::Problems;
use sluice_rules::RuleSet;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::ConnectOptions as _;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// A connected replica with the settings of every rule aimed at it.
pub struct MysqlTarget {
    name: String,
    address: String,
    /// `tls` and `ca_file`, to name them when a later connection fails.
    config: MysqlConfig,
    pool: MySqlPool,
    default_database: Option<String>,
    schema: Schema,
    rules: HashMap<usize, MysqlRule>,
}

impl MysqlTarget {
    /// Connects the pool, compiles the rules aimed at `name` and reads their replica tables.
    pub async fn connect(
        name: &str,
        config: &MysqlConfig,
        rules: &RuleSet,
    ) -> Result<MysqlTarget, TargetError> {
        let mut compiled = HashMap::new();
        let mut problems = Problems::default();
        for i in 0..rules.len() {
            let rule = rules.rule(i);
            if rule.target() == name {
                if let Some(r) = MysqlRule::parse(&format!("rules[{i}]"), rule, &mut problems) {
                    compiled.insert(i, r);
                }
            }
        }
        if !problems.is_empty() {
            return Err(TargetError::Config {
                target: name.to_owned(),
                message: format!("invalid rule settings:\n{problems}"),
            });
        }
        let address = redact(config.url.expose());
        let (pool, default_database) = connect_pool(config)
            .await
            .map_err(|e| connect_error(name, &address, config, &e))?;
        let target = MysqlTarget {
            name: name.to_owned(),
            address,
            config: config.clone(),
            pool,
            default_database,
            schema: Schema::default(),
            rules: compiled,
        };
        target.check_tables().await?;
        Ok(target)
    }

    /// Reads every fixed replica table now, so a missing table or key is a start-up error.
    async fn check_tables(&self) -> Result<(), TargetError> {
        let mut problems = Problems::default();
        let mut indices: Vec<&usize> = self.rules.keys().collect();
        indices.sort();
        for i in indices {
            let rule = &self.rules[i];
            let TableName::Fixed(table) = &rule.table else {
                continue;
            };
            let path = format!("rules[{i}].mysql");
            let Some(db) = rule
                .database
                .as_deref()
                .or(self.default_database.as_deref())
            else {
                problems.add(
                    format!("{path}.database"),
                    "missing; the target's url names no database, so set database = \"...\"",
                );
                continue;
            };
            let meta = match self.schema.get(&self.pool, db, table).await {
                Ok(m) => m,
                Err(o) => {
                    problems.add(format!("{path}.table"), reason(&o));
                    continue;
                }
            };
            let key: Vec<String> = match &rule.key {
                Some(k) => k.clone(),
                None => meta.primary_key.clone(),
            };
            if key.is_empty() {
                problems.add(
                    format!("{path}.key"),
                    format!(
                        "replica table {} has no PRIMARY KEY; add one or list the key columns in key = [...]",
                        meta.qualified()
                    ),
                );
            }
            let named = key
                .iter()
                .map(|k| ("key", k))
                .chain(rule.soft_delete.iter().map(|c| ("soft_delete", c)))
                .chain(rule.version_column.iter().map(|c| ("version_column", c)));
            for (setting, column) in named {
                if meta.column(column).is_none() {
                    let names: Vec<&str> = meta.columns.iter().map(|(c, _)| c.as_str()).collect();
                    problems.add(
                        format!("{path}.{setting}"),
                        format!(
                            "column `{column}` is not in replica table {} (columns: {}); add it to the table or fix the setting",
                            meta.qualified(),
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TargetError::Config {
                target: self.name.clone(),
                message: format!("replica tables do not fit the rules:\n{problems}"),
            })
        }
    }

    /// The connection pool (for `sluice-sink verify`).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The rule settings by rule index.
    pub fn rule(&self, index: usize) -> Option<&MysqlRule> {
        self.rules.get(&index)
    }

    /// The database of the target's URL.
    pub fn default_database(&self) -> Option<&str> {
        self.default_database.as_deref()
    }
}

impl Write for MysqlTarget {
    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        let cx = Context {
            pool: &self.pool,
            schema: &self.schema,
            rules: &self.rules,
            default_database: self.default_database.as_deref(),
        };
        service::write(&cx, items).await
    }

    async fn check(&self) -> Result<(), TargetError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| connect_error(&self.name, &self.address, &self.config, &e))
    }
}

/// The pool of `config`, connected once to prove the server answers; and the URL's database.
pub async fn connect_pool(
    config: &MysqlConfig,
) -> Result<(MySqlPool, Option<String>), sqlx::Error> {
    let options = connect_options(config.url.expose(), config)?;
    let database = options.get_database().map(str::to_owned);
    let pool = MySqlPoolOptions::new()
        .max_connections(config.pool_size)
        .acquire_timeout(Duration::from_millis(config.timeout_ms))
        .connect_with(options)
        .await?;
    Ok((pool, database))
}

/// Options for `url` with the target's TLS settings; the session time zone is UTC so TIMESTAMP
/// values (UTC in events) are stored as they are.
pub fn connect_options(
    url: &str,
    config: &MysqlConfig,
) -> Result<MySqlConnectOptions, sqlx::Error> {
    let mut options = MySqlConnectOptions::from_str(url)?
        .ssl_mode(match config.tls {
            TlsMode::Disabled => MySqlSslMode::Disabled,
            TlsMode::Preferred => MySqlSslMode::Preferred,
            TlsMode::Required => MySqlSslMode::Required,
            TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
            TlsMode::VerifyIdentity => MySqlSslMode::VerifyIdentity,
        })
        .timezone(Some("+00:00".to_owned()))
        .charset("utf8mb4")
        .disable_statement_logging();
    if let Some(ca) = &config.ca_file {
        options = options.ssl_ca(ca);
    }
    Ok(options)
}

fn reason(o: &Outcome) -> String {
    match o {
        Outcome::Done => String::new(),
        Outcome::Retry(r) | Outcome::Reject(r) => r.clone(),
    }
}

/// A failed connection: TLS failures and a server that requires TLS name `tls` / `ca_file`.
fn connect_error(name: &str, address: &str, config: &MysqlConfig, e: &sqlx::Error) -> TargetError {
    match tls_failure(name, address, config, e) {
        Some(message) => TargetError::Config {
            target: name.to_owned(),
            message,
        },
        None => TargetError::Connect {
            target: name.to_owned(),
            address: address.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// What to fix when `e` is a TLS failure or the server's refusal of plaintext.
fn tls_failure(name: &str, address: &str, config: &MysqlConfig, e: &sqlx::Error) -> Option<String> {
    let text = e.to_string();
    let key = format!("targets.{name}");
    let tls = config.tls;
    if text.contains("insecure transport") {
        return Some(format!(
            "{address} requires TLS (require_secure_transport), but {key}.tls is \"{tls}\": set {key}.tls = \"verify_identity\" (or \"verify_ca\") and {key}.ca_file to the CA that signed the server's certificate ({text})"
        ));
    }
    // MariaDB refuses a plaintext login under require_secure_transport as access denied.
    if text.contains("Access denied") && tls == TlsMode::Disabled {
        return Some(format!(
            "{address}: {text}: check the user and password in {key}.url; a server that requires TLS (require_secure_transport) refuses plaintext logins with this error too, and {key}.tls is \"disabled\": then set {key}.tls = \"verify_identity\" (or \"verify_ca\") and {key}.ca_file"
        ));
    }
    // rustls's verdict on the certificate arrives as an I/O error of the handshake.
    let certificate = text.contains("peer certificate") || text.contains("NotValidForName");
    if !certificate && !matches!(e, sqlx::Error::Tls(_)) {
        return None;
    }
    let ca = match &config.ca_file {
        Some(path) => format!("the CA in {key}.ca_file ({})", path.display()),
        None => format!("a built-in root CA ({key}.ca_file is not set)"),
    };
    Some(if text.contains("NotValidForName") {
        format!(
            "the TLS certificate of {address} does not name its host: connect by a name or address the certificate has, or set {key}.tls = \"verify_ca\" to check only who signed it ({text})"
        )
    } else if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!(
            "the TLS certificate of {address} is not signed by {ca}: point {key}.ca_file at the CA that signed the server's certificate, with {key}.tls = \"{tls}\" ({text})"
        )
    } else if text.contains("not support") || text.contains("does not offer") {
        format!(
            "{address} does not offer TLS, but {key}.tls is \"{tls}\": give the server a certificate (ssl_cert, ssl_key in my.cnf), or set {key}.tls = \"preferred\" or \"disabled\" ({text})"
        )
    } else {
        format!("TLS to {address} failed with {key}.tls = \"{tls}\": {text}")
    })
}

/// The URL without its user and password, for messages.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_credentials() {
        assert_eq!(redact("mysql://u:pw@h:1/db"), "mysql://h:1/db");
        assert_eq!(redact("mysql://h:1"), "mysql://h:1");
    }
}
