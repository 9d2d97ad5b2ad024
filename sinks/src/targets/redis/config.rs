//! What users write for Redis: `[targets.<name>] type = "redis"` and `[rules.redis]`.

use super::super::parse_rule_table;
use serde::Deserialize;
use sluice_config::{Problems, Secret};
use sluice_rules::{Rule, Template};

/// Connect and response timeout for Redis unless configured.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 5_000;

/// `[targets.<name>] type = "redis"`: one server (`url`) or a cluster (`cluster`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`) of a single server.
    pub url: Option<Secret>,
    /// Seed nodes of a Redis Cluster, as URLs; set this instead of `url` for cluster mode.
    #[serde(default)]
    pub cluster: Vec<Secret>,
    /// Connect and response timeout in milliseconds; a timeout is a transient error.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[rules.redis]`: which keys a rule touches and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisRuleConfig {
    /// Key templates rendered from the mapped row, e.g. `["user:{id}", "user:email:{email}"]`.
    pub keys: Vec<String>,
    /// `invalidate` (default): DEL the keys. `refresh`: write the row to the keys.
    #[serde(default)]
    pub mode: Mode,
    /// For `refresh`: `json` (default, SET of the row as JSON) or `hash` (HSET of its fields).
    #[serde(default)]
    pub format: Format,
    /// For `refresh`: expire written keys after this many seconds.
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Invalidate,
    Refresh,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Hash,
}

/// A rule's Redis settings, parsed and checked.
#[derive(Debug)]
pub struct RedisRule {
    pub keys: Vec<Template>,
    pub mode: Mode,
    pub format: Format,
    pub ttl_secs: Option<u64>,
}

impl RedisConfig {
    /// Checks `[targets.<name>]`; `path` is `targets.<name>`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        match (&self.url, self.cluster.is_empty()) {
            (None, true) => problems.add(
                path,
                "set `url` (one server, e.g. \"redis://127.0.0.1:6379\") or `cluster` (seed nodes)",
            ),
            (Some(_), false) => problems.add(
                format!("{path}.cluster"),
                "set either `url` or `cluster`, not both",
            ),
            _ => {}
        }
        if let Some(url) = &self.url {
            check_url(&format!("{path}.url"), url, problems);
        }
        for (i, url) in self.cluster.iter().enumerate() {
            check_url(&format!("{path}.cluster[{i}]"), url, problems);
        }
        if self.timeout_ms == 0 {
            problems.add(format!("{path}.timeout_ms"), "must be at least 1");
        }
    }
}

impl RedisRule {
    /// Parses and checks `rules[i].redis`; `path` is `rules[i]`.
    pub fn parse(path: &str, rule: &Rule, problems: &mut Problems) -> Option<RedisRule> {
        let path = format!("{path}.redis");
        let Some(table) = &rule.config().redis else {
            problems.add(
                path,
                format!(
                    "missing; target `{}` is Redis, so the rule needs [rules.redis] with keys = [\"prefix:{{id}}\"]",
                    rule.target()
                ),
            );
            return None;
        };
        let config: RedisRuleConfig = parse_rule_table(&path, table, problems)?;
        let before = problems.iter().count();
        if config.keys.is_empty() {
            problems.add(
                format!("{path}.keys"),
                "no key templates; list at least one, e.g. [\"user:{id}\"]",
            );
        }
        let mut keys = Vec::with_capacity(config.keys.len());
        for (k, text) in config.keys.iter().enumerate() {
            match Template::parse(text) {
                Ok(t) => {
                    rule.check_template(&t, &format!("{path}.keys[{k}]"), problems);
                    keys.push(t)
                }
                Err(e) => problems.add(format!("{path}.keys[{k}]"), e.to_string()),
            }
        }
        if config.mode == Mode::Invalidate {
            if config.ttl_secs.is_some() {
                problems.add(
                    format!("{path}.ttl_secs"),
                    "only applies to mode = \"refresh\"; invalidation deletes keys",
                );
            }
            if config.format != Format::Json {
                problems.add(
                    format!("{path}.format"),
                    "only applies to mode = \"refresh\"; invalidation deletes keys",
                );
            }
        }
        if config.ttl_secs == Some(0) {
            problems.add(format!("{path}.ttl_secs"), "must be at least 1");
        }
        (problems.iter().count() == before).then_some(RedisRule {
            keys,
            mode: config.mode,
            format: config.format,
            ttl_secs: config.ttl_secs,
        })
    }

    /// Validation only: the problems [`RedisRule::parse`] would report.
    pub fn validate(path: &str, rule: &Rule, problems: &mut Problems) {
        let _ = RedisRule::parse(path, rule, problems);
    }
}

fn check_url(path: &str, url: &Secret, problems: &mut Problems) {
    use redis::IntoConnectionInfo;
    if let Err(e) = url.expose().into_connection_info() {
        problems.add(
            path,
            format!("not a Redis URL ({e}); write redis://host:port or rediss://host:port"),
        );
    }
}

fn default_timeout_ms() -> u64 {
    DEFAULT_REDIS_TIMEOUT_MS
}
