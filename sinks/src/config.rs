//! The `sluice-sink` config file: Kafka, the consumer group, batching, retries, targets and rules.
//!
//! Every section is documented for users in `docs/sink.md`; `config/examples/sink.toml` is a
//! complete, commented example that a unit test loads.

use crate::targets::TargetConfig;
use serde::Deserialize;
use sluice_config::{KafkaConfig, LogConfig, MetricsConfig, Problems, Validate};
use sluice_rules::{RuleConfig, RuleSet};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Messages one partition may have read but not yet committed before its reading stops.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 20_000;
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_PAUSE_AFTER_MS: u64 = 1_000;
/// How often finished offsets are committed to the group.
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 1_000;
/// How long a revoked partition (or a stopping sink) may take to finish in-flight writes.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;
/// The dead-letter topic of a topic `t` is `t.dlq` unless `consumer.dlq_topic` says otherwise.
pub const DEFAULT_DLQ_TEMPLATE: &str = "{topic}.dlq";
/// Items one target write may carry.
pub const DEFAULT_BATCH_MAX_ITEMS: usize = 1_000;
/// Approximate bytes (of the messages' values) one batch may carry.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long a partition waits for more messages before writing a batch that is not full.
pub const DEFAULT_BATCH_LINGER_MS: u64 = 20;
/// First pause after a transient error.
pub const DEFAULT_RETRY_INITIAL_MS: u64 = 100;
/// Longest pause between two tries.
pub const DEFAULT_RETRY_MAX_MS: u64 = 30_000;

/// The whole `sluice-sink` config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// The Kafka cluster (`sluice_config::KafkaConfig`).
    pub kafka: KafkaConfig,
    /// The consumer group: its id, the topics it reads, in-flight bounds, commits, the DLQ.
    pub consumer: ConsumerConfig,
    /// How items are grouped into target writes.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Backoff for transient errors.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Named targets; rules refer to them by name.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// Mapping rules, see docs/rules.md.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Built-in alerts over the rules (docs/operations.md).
    #[serde(default)]
    pub alerts: Vec<sluice_ops::alerts::AlertConfig>,
    /// Where alert notices are POSTed.
    #[serde(default)]
    pub webhooks: Vec<sluice_ops::alerts::WebhookConfig>,
}

/// `[consumer]`: the consumer group and its bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Kafka consumer group id; every sink process of one deployment uses the same one.
    pub group_id: String,
    /// Topics to read, e.g. `["sluice.shop-main"]`.
    pub topics: Vec<String>,
    /// Dead-letter topic; `{topic}` is the topic the message came from. Default `{topic}.dlq`.
    #[serde(default = "default_dlq_template")]
    pub dlq_topic: String,
    /// Messages per partition queued for its worker. A partition with this many waiting holds
    /// the reading up for up to a second; then it is paused in the consumer and up to as many
    /// again are held for it (so at most 2x this many are in memory per partition).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Bytes of messages read and not yet written (queued or in a batch), all partitions
    /// together. Reading stops at this many; after a second without room every partition is
    /// paused until the workers are below half of it.
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: usize,
    /// How long reading waits for room (in one partition's queue, or under
    /// `max_in_flight_bytes`) before it pauses the partition (or all of them) and reads on, in
    /// milliseconds. Pausing drops what the consumer prefetched for the partition, so a short
    /// wait is cheaper; a long one holds the other partitions up behind a stuck one.
    #[serde(default = "default_pause_after_ms")]
    pub pause_after_ms: u64,
    /// How often finished offsets are committed, in milliseconds.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// On revoke or shutdown, how long in-flight writes may take before they are abandoned.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// How the topics' messages are written: Sluice's events (the default), another capture's
    /// (`canal`, `maxwell`, `debezium`), or `auto` (detected per message). docs/formats.md.
    #[serde(default)]
    pub format: InputFormat,
    /// A format per topic, over `format`: `{ "legacy.orders" = "canal" }`.
    #[serde(default)]
    pub formats: BTreeMap<String, InputFormat>,
}

/// How one topic's messages are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    #[default]
    Sluice,
    Canal,
    Maxwell,
    Debezium,
    /// Detected per message from its fields; `sluice_sink_formats_total` counts what was seen.
    Auto,
}

impl ConsumerConfig {
    /// The format of `topic`'s messages.
    pub fn format_of(&self, topic: &str) -> InputFormat {
        self.formats.get(topic).copied().unwrap_or(self.format)
    }
}

/// `[batch]`: how items for one target are grouped into one write.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_batch_max_items")]
    pub max_items: usize,
    #[serde(default = "default_batch_max_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_batch_linger_ms")]
    pub linger_ms: u64,
}

/// `[retry]`: capped exponential backoff with full jitter for transient errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_retry_initial_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub max_backoff_ms: u64,
    /// Tries before a transient failure is dead-lettered; unset (the default) retries forever.
    pub max_retries: Option<u32>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_items: DEFAULT_BATCH_MAX_ITEMS,
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
            linger_ms: DEFAULT_BATCH_LINGER_MS,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: DEFAULT_RETRY_INITIAL_MS,
            max_backoff_ms: DEFAULT_RETRY_MAX_MS,
            max_retries: None,
        }
    }
}

impl SinkConfig {
    /// Reads, interpolates and validates a config file.
    pub fn load(path: &Path) -> Result<SinkConfig, sluice_config::ConfigError> {
        sluice_config::load(path)
    }

    /// The dead-letter topic for messages read from `topic`.
    pub fn dlq_topic(&self, topic: &str) -> String {
        self.consumer.dlq_topic.replace("{topic}", topic)
    }
}

impl ConsumerConfig {
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

impl Validate for SinkConfig {
    fn validate(&self, problems: &mut Problems) {
        for topic in self.consumer.formats.keys() {
            if !self.consumer.topics.contains(topic) {
                problems.add(
                    format!("consumer.formats.{topic}"),
                    format!("`{topic}` is not one of consumer.topics; add it there or remove this entry"),
                );
            }
        }
        self.kafka.validate("kafka", problems);
        self.consumer.validate(problems);
        self.batch.validate(problems);
        self.retry.validate(problems);
        sluice_ops::alerts::validate(&self.alerts, &self.webhooks, "rule names", problems);
        if self.targets.is_empty() {
            problems.add(
                "targets",
                "no targets configured; add one, e.g. [targets.cache] type = \"redis\"",
            );
        }
        for (name, target) in &self.targets {
            target.validate(&format!("targets.{name}"), problems);
        }
        if self.rules.is_empty() {
            problems.add(
                "rules",
                "no rules configured; add at least one [[rules]] naming a target",
            );
        }
        let rules = RuleSet::compile(&self.rules, problems);
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("rules[{i}]");
            match self.targets.get(rule.target()) {
                Some(target) => target.validate_rule(&path, rule, problems),
                None if rule.target().trim().is_empty() => {}
                None => {
                    let known: Vec<&str> = self.targets.keys().map(String::as_str).collect();
                    problems.add(
                        format!("{path}.target"),
                        format!(
                            "no target named `{}`; configured targets: [{}]",
                            rule.target(),
                            known.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

impl ConsumerConfig {
    fn validate(&self, problems: &mut Problems) {
        if self.group_id.trim().is_empty() {
            problems.add(
                "consumer.group_id",
                "empty; name the consumer group, e.g. \"search-indexer\"",
            );
        }
        if self.topics.is_empty() {
            problems.add(
                "consumer.topics",
                "no topics given; list at least one, e.g. [\"sluice.shop-main\"]",
            );
        }
        for (i, t) in self.topics.iter().enumerate() {
            if t.is_empty() || t.contains(char::is_whitespace) {
                problems.add(
                    format!("consumer.topics[{i}]"),
                    format!("`{t}` is not a topic name"),
                );
            }
        }
        if !self.dlq_topic.contains("{topic}") && self.topics.len() > 1 {
            problems.add(
                "consumer.dlq_topic",
                "one dead-letter topic for several topics loses where a message came from in its name; use `{topic}` in it, e.g. \"{topic}.dlq\" (headers still carry the original topic)",
            );
        }
        if self.dlq_topic.replace("{topic}", "").is_empty() {
            problems.add(
                "consumer.dlq_topic",
                "must add something to `{topic}`, or messages would be dead-lettered into the topic they came from",
            );
        }
        positive(
            problems,
            "consumer.max_in_flight",
            self.max_in_flight as u64,
        );
        positive(
            problems,
            "consumer.max_in_flight_bytes",
            self.max_in_flight_bytes as u64,
        );
        positive(
            problems,
            "consumer.commit_interval_ms",
            self.commit_interval_ms,
        );
    }
}

impl BatchConfig {
    fn validate(&self, problems: &mut Problems) {
        positive(problems, "batch.max_items", self.max_items as u64);
        positive(problems, "batch.max_bytes", self.max_bytes as u64);
    }
}

impl RetryConfig {
    fn validate(&self, problems: &mut Problems) {
        positive(
            problems,
            "retry.initial_backoff_ms",
            self.initial_backoff_ms,
        );
        if self.max_backoff_ms < self.initial_backoff_ms {
            problems.add(
                "retry.max_backoff_ms",
                format!(
                    "{} is below retry.initial_backoff_ms ({}); raise it",
                    self.max_backoff_ms, self.initial_backoff_ms
                ),
            );
        }
    }
}

fn positive(problems: &mut Problems, path: &str, value: u64) {
    if value == 0 {
        problems.add(path, "must be at least 1");
    }
}

fn default_dlq_template() -> String {
    DEFAULT_DLQ_TEMPLATE.to_owned()
}
fn default_pause_after_ms() -> u64 {
    DEFAULT_PAUSE_AFTER_MS
}

fn default_max_in_flight_bytes() -> usize {
    DEFAULT_MAX_IN_FLIGHT_BYTES
}

fn default_max_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}
fn default_commit_interval_ms() -> u64 {
    DEFAULT_COMMIT_INTERVAL_MS
}
fn default_drain_timeout_ms() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}
fn default_batch_max_items() -> usize {
    DEFAULT_BATCH_MAX_ITEMS
}
fn default_batch_max_bytes() -> usize {
    DEFAULT_BATCH_MAX_BYTES
}
fn default_batch_linger_ms() -> u64 {
    DEFAULT_BATCH_LINGER_MS
}
fn default_retry_initial_ms() -> u64 {
    DEFAULT_RETRY_INITIAL_MS
}
fn default_retry_max_ms() -> u64 {
    DEFAULT_RETRY_MAX_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[kafka]
brokers = ["127.0.0.1:9092"]
[consumer]
group_id = "g"
topics = ["t"]
[targets.cache]
type = "redis"
url = "redis://127.0.0.1:6380"
"#;

    fn parse(text: &str) -> Result<SinkConfig, String> {
        sluice_config::parse::<SinkConfig>(text, Path::new("sink.toml"), |_| None)
            .map_err(|e| e.to_string())
    }

    fn with_rule(rule: &str) -> String {
        format!("{BASE}\n[[rules]]\nname = \"users\"\ntarget = \"cache\"\nmatch = {{ tables = [\"shop.users\"] }}\n{rule}")
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/sink.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = sluice_config::parse::<SinkConfig>(&text, &path, |_| None).unwrap();
        assert_eq!(c.consumer.group_id, "shop-cache");
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.dlq_topic("sluice.shop-main"), "sluice.shop-main.dlq");
        assert!(matches!(c.targets["cache"], TargetConfig::Redis(_)));
        assert_eq!(
            c.consumer.format_of("sluice.shop-main"),
            InputFormat::Sluice
        );
        assert_eq!(c.alerts.len(), 3);
        assert_eq!(c.webhooks[0].name, "oncall");
        assert!(c.alerts[1].hours.is_some());
    }

    #[test]
    fn defaults() {
        let c = parse(&with_rule("[rules.redis]\nkeys = [\"user:{id}\"]\n")).unwrap();
        assert_eq!(c.batch.max_items, DEFAULT_BATCH_MAX_ITEMS);
        assert_eq!(c.retry.max_retries, None);
        assert_eq!(c.consumer.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(c.dlq_topic("t"), "t.dlq");
    }

    /// Each bad config with the exact message a user sees.
    #[test]
    fn bad_configs_say_what_and_where() {
        let cases: Vec<(String, &str)> = vec![
            (
                with_rule("[rules.redis]\nkeys = [\"u:{id}\"]\n").replace("[consumer]\n", "[consumer]\nformats = { \"other\" = \"canal\" }\n"),
                "sink.toml: invalid configuration:\n  consumer.formats.other: `other` is not one of consumer.topics; add it there or remove this entry",
            ),
            (
                format!("{}\n[rules.redis]\nkeys = [\"u:{{id}}\"]\n[[alerts]]\nname = \"late\"\nkind = \"lag\"\nwebhooks = [\"pager\"]\n", with_rule("")),
                "sink.toml: invalid configuration:\n  alerts[0].threshold_seconds: a `lag` alert needs threshold_seconds (lag in seconds above which it fires)\n  alerts[0].webhooks[0]: no [[webhooks]] entry is named `pager`",
            ),
            (
                with_rule("[rules.redis]\nkeys = [\"user:{id}\"]\nttl = 5\n"),
                "sink.toml: invalid configuration:\n  rules[0].redis: unknown field `ttl`, expected one of `keys`, `mode`, `format`, `ttl_secs`",
            ),
            (
                with_rule("[rules.redis]\nkeys = [\"user:{id\"]\n"),
                "sink.toml: invalid configuration:\n  rules[0].redis.keys[0]: template `user:{id`: `{` at character 6 is not closed by `}`; write `{{` for a literal brace",
            ),
            (
                with_rule("fields = { include = [\"id\"] }\n[rules.redis]\nkeys = [\"user:{email}\"]\n"),
                "sink.toml: invalid configuration:\n  rules[0].redis.keys[0]: unknown column `email` in template `user:{email}`: fields.include does not keep it; add it to fields.include (kept: id)",
            ),
            (
                with_rule("[rules.redis]\nkeys = [\"u:{id}\"]\nttl_secs = 60\n"),
                "sink.toml: invalid configuration:\n  rules[0].redis.ttl_secs: only applies to mode = \"refresh\"; invalidation deletes keys",
            ),
            (
                with_rule(""),
                "sink.toml: invalid configuration:\n  rules[0].redis: missing; target `cache` is Redis, so the rule needs [rules.redis] with keys = [\"prefix:{id}\"]",
            ),
            (
                format!("{BASE}\n[[rules]]\nname = \"x\"\ntarget = \"search\"\nmatch = {{ tables = [\"a.b\"] }}\n"),
                "sink.toml: invalid configuration:\n  rules[0].target: no target named `search`; configured targets: [cache]",
            ),
            (
                format!("{BASE}\n[targets.other]\ntype = \"kafka\"\n"),
                "unknown variant `kafka`, expected one of `noop`, `redis`",
            ),
            (
                with_rule("[rules.redis]\nkeys = [\"u:{id}\"]\n").replace("[consumer]", "[consumer]\nmax_inflight = 3"),
                "unknown field `max_inflight`",
            ),
            (
                with_rule("[rules.redis]\nkeys = [\"u:{id}\"]\n").replace("url = \"redis://127.0.0.1:6380\"", "url = \"http://x\""),
                "targets.cache.url: not a Redis URL",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(want), "want {want:?}\n got {err:?}");
        }
    }
}
