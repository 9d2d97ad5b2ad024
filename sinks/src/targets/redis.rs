//! The Redis target: Cache-Aside invalidation (`DEL`) or refresh (`SET`/`HSET`), pipelined, on
//! one server (reconnecting connection manager) or a Redis Cluster.

mod config;
mod encoder;
mod retry;
mod service;

pub use config::{Format, Mode, RedisConfig, RedisRule, RedisRuleConfig, DEFAULT_REDIS_TIMEOUT_MS};
pub use encoder::{encode, Command};

use super::{Item, Outcome, TargetError, Write};
use service::Connection;
use sluice_config::Problems;
use sluice_rules::RuleSet;
use std::collections::HashMap;
use std::time::Duration;

/// A connected Redis target with the settings of every rule aimed at it.
pub struct RedisTarget {
    name: String,
    address: String,
    conn: Connection,
    rules: HashMap<usize, RedisRule>,
}

impl RedisTarget {
    /// Connects to the server or cluster of `config` and compiles the rules aimed at `name`.
    pub async fn connect(
        name: &str,
        config: &RedisConfig,
        rules: &RuleSet,
    ) -> Result<RedisTarget, TargetError> {
        let mut compiled = HashMap::new();
        let mut problems = Problems::default();
        for i in 0..rules.len() {
            let rule = rules.rule(i);
            if rule.target() == name {
                if let Some(r) = RedisRule::parse(&format!("rules[{i}]"), rule, &mut problems) {
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
        let timeout = Duration::from_millis(config.timeout_ms);
        let (address, conn) = match &config.url {
            Some(url) => {
                let address = redact(url.expose());
                let conn = connect_single(url.expose(), timeout)
                    .await
                    .map_err(|e| connect_error(name, &address, &e))?;
                (address, conn)
            }
            None => {
                let urls: Vec<&str> = config.cluster.iter().map(|s| s.expose()).collect();
                let address = urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",");
                let conn = connect_cluster(&urls, timeout)
                    .await
                    .map_err(|e| connect_error(name, &address, &e))?;
                (address, conn)
            }
        };
        Ok(RedisTarget {
            name: name.to_owned(),
            address,
            conn,
            rules: compiled,
        })
    }
}

impl Write for RedisTarget {
    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        service::write(&self.conn, &self.rules, items).await
    }

    async fn check(&self) -> Result<(), TargetError> {
        service::ping(&self.conn)
            .await
            .map_err(|e| connect_error(&self.name, &self.address, &e))
    }
}

async fn connect_single(url: &str, timeout: Duration) -> redis::RedisResult<Connection> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let manager = client.get_connection_manager_with_config(config).await?;
    Ok(Connection::Single(manager))
}

async fn connect_cluster(urls: &[&str], timeout: Duration) -> redis::RedisResult<Connection> {
    let client = redis::cluster::ClusterClient::builder(urls.iter().copied())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build()?;
    Ok(Connection::Cluster(client.get_async_connection().await?))
}

fn connect_error(name: &str, address: &str, e: &redis::RedisError) -> TargetError {
    TargetError::Connect {
        target: name.to_owned(),
        address: address.to_owned(),
        reason: e.to_string(),
    }
}

/// The URL without its user and password, for messages.
fn redact(url: &str) -> String {
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
        assert_eq!(redact("redis://u:pw@h:1/2"), "redis://h:1/2");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
