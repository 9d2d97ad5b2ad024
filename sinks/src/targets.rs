//! Targets: where mapped rows are written. One module per target type; see docs/sink-targets.md.
//!
//! The runtime hands a target a batch of [`Item`]s (one rule applied to one message each, in
//! partition order) and gets back one [`Outcome`] per item. Targets never retry by themselves and
//! never decide about offsets: they say what happened to each item, the runtime does the rest.

pub mod elasticsearch;
pub mod fault;
pub mod memory;
pub mod mysql;
pub mod noop;
pub mod redis;

use serde::Deserialize;
use sluice_config::Problems;
use sluice_rules::{Mapped, Rule, RuleSet};
use std::fmt;
use std::future::Future;

/// One write for a target: what one rule made of one message.
#[derive(Debug, Clone)]
pub struct Item {
    /// Index of the rule in the [`RuleSet`] (and in `[[rules]]`); targets keep per-rule settings by it.
    pub rule: usize,
    /// The mapped row: kind, seq, id, document, before-image, changed columns.
    pub mapped: Mapped,
    /// Approximate size in bytes, for `batch.max_bytes`.
    pub bytes: usize,
}

/// What happened to one item of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written (or already there: writes are idempotent).
    Done,
    /// Not written, for a reason that may pass (connection lost, timeout, 429, 5xx, deadlock):
    /// the runtime backs off and writes this item (and every later one of the batch) again.
    Retry(String),
    /// Never writable as it is (the target rejects the document, a key cannot render): the
    /// runtime dead-letters the message with this reason, or stops if the rule says so.
    Reject(String),
}

/// What every target does. Plain methods returning futures, dispatched by the [`Target`] enum.
pub trait Write {
    /// Writes `items` in order; returns exactly one outcome per item, in the same order.
    ///
    /// A failure of the whole request is reported as `Retry` (or `Reject`) for every item.
    fn write(&self, items: &[Item]) -> impl Future<Output = Vec<Outcome>> + Send;

    /// Connects and proves the target answers (used by `sluice-sink check` and at start-up).
    fn check(&self) -> impl Future<Output = Result<(), TargetError>> + Send;
}

/// A configured target, ready to write.
pub enum Target {
    Noop(noop::NoopTarget),
    Redis(redis::RedisTarget),
    Mysql(mysql::MysqlTarget),
    Elasticsearch(elasticsearch::ElasticsearchTarget),
    /// Records what it is given; for tests.
    Memory(memory::MemoryTarget),
    /// Wraps another target and injects failures and delays; for tests.
    Fault(Box<fault::FaultTarget>),
}

/// `[targets.<name>]`: the `type` key selects the variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TargetConfig {
    Noop(noop::NoopConfig),
    Redis(redis::RedisConfig),
    Mysql(mysql::MysqlConfig),
    Elasticsearch(elasticsearch::ElasticsearchConfig),
}

impl TargetConfig {
    /// The `type` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Noop(_) => "noop",
            TargetConfig::Redis(_) => "redis",
            TargetConfig::Mysql(_) => "mysql",
            TargetConfig::Elasticsearch(_) => "elasticsearch",
        }
    }
}

/// A target that could not be set up or reached.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target's server did not answer.
    #[error("target `{target}`: cannot reach {address}: {reason}; check targets.{target} in the config and that the server is up")]
    Connect {
        target: String,
        address: String,
        reason: String,
    },
    /// A setting that only shows up when the target is built.
    #[error("target `{target}`: {message}")]
    Config { target: String, message: String },
}

impl Target {
    /// Builds the target `name` from its config, with the settings of every rule aimed at it.
    pub async fn connect(
        name: &str,
        config: &TargetConfig,
        rules: &RuleSet,
    ) -> Result<Target, TargetError> {
        Ok(match config {
            TargetConfig::Noop(_) => Target::Noop(noop::NoopTarget),
            TargetConfig::Redis(c) => {
                Target::Redis(redis::RedisTarget::connect(name, c, rules).await?)
            }
            TargetConfig::Mysql(c) => {
                Target::Mysql(mysql::MysqlTarget::connect(name, c, rules).await?)
            }
            TargetConfig::Elasticsearch(c) => Target::Elasticsearch(
                elasticsearch::ElasticsearchTarget::connect(name, c, rules).await?,
            ),
        })
    }

    /// A short name for metrics and logs: `redis`, `noop`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Noop(_) => "noop",
            Target::Redis(_) => "redis",
            Target::Mysql(_) => "mysql",
            Target::Elasticsearch(_) => "elasticsearch",
            Target::Memory(_) => "memory",
            Target::Fault(f) => f.kind(),
        }
    }
}

impl Write for Target {
    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        match self {
            Target::Noop(t) => t.write(items).await,
            Target::Redis(t) => t.write(items).await,
            Target::Mysql(t) => t.write(items).await,
            Target::Elasticsearch(t) => t.write(items).await,
            Target::Memory(t) => t.write(items).await,
            Target::Fault(t) => t.write(items).await,
        }
    }

    async fn check(&self) -> Result<(), TargetError> {
        match self {
            Target::Noop(t) => t.check().await,
            Target::Redis(t) => t.check().await,
            Target::Mysql(t) => t.check().await,
            Target::Elasticsearch(t) => t.check().await,
            Target::Memory(t) => t.check().await,
            Target::Fault(t) => t.check().await,
        }
    }
}

impl TargetConfig {
    /// Checks the `[targets.<name>]` section; `path` is `targets.<name>`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        match self {
            TargetConfig::Noop(_) => {}
            TargetConfig::Redis(c) => c.validate(path, problems),
            TargetConfig::Mysql(c) => c.validate(path, problems),
            TargetConfig::Elasticsearch(c) => c.validate(path, problems),
        }
    }

    /// Checks the target-specific part of a rule aimed at this target; `path` is `rules[i]`.
    pub fn validate_rule(&self, path: &str, rule: &Rule, problems: &mut Problems) {
        let config = rule.config();
        let own = match self {
            TargetConfig::Noop(_) => None,
            TargetConfig::Redis(_) => Some("redis"),
            TargetConfig::Mysql(_) => Some("mysql"),
            TargetConfig::Elasticsearch(_) => Some("elasticsearch"),
        };
        for (section, present) in [
            ("redis", config.redis.is_some()),
            ("elasticsearch", config.elasticsearch.is_some()),
            ("mysql", config.mysql.is_some()),
        ] {
            if present && own != Some(section) {
                problems.add(
                    format!("{path}.{section}"),
                    format!(
                        "target `{}` is not of type {section}; remove [rules.{section}] or point the rule at a {section} target",
                        config.target
                    ),
                );
            }
        }
        match self {
            TargetConfig::Noop(_) => {}
            TargetConfig::Redis(_) => redis::RedisRule::validate(path, rule, problems),
            TargetConfig::Mysql(_) => mysql::MysqlRule::validate(path, rule, problems),
            TargetConfig::Elasticsearch(_) => {
                elasticsearch::ElasticsearchRule::validate(path, rule, problems)
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done => f.write_str("done"),
            Outcome::Retry(r) => write!(f, "retry: {r}"),
            Outcome::Reject(r) => write!(f, "rejected: {r}"),
        }
    }
}

impl Outcome {
    /// The metric label: `done`, `retry` or `rejected`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Retry(_) => "retry",
            Outcome::Reject(_) => "rejected",
        }
    }
}

/// Parses a rule's target-specific table (`[rules.redis]`) into `T`, reporting errors at `path`.
pub(crate) fn parse_rule_table<T: serde::de::DeserializeOwned>(
    path: &str,
    table: &toml::Table,
    problems: &mut Problems,
) -> Option<T> {
    match toml::Value::Table(table.clone()).try_into::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            problems.add(path, e.message().trim_end().to_owned());
            None
        }
    }
}
