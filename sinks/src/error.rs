//! Errors of `sluice-sink` that end a run (per-message failures are dead-lettered instead).

use crate::targets::TargetError;
use rdkafka::error::KafkaError;

/// Why the sink stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Config(Box<sluice_config::ConfigError>),
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A Kafka client could not be created or a Kafka request failed at start-up.
    #[error("Kafka ({brokers}): cannot {what}: {error}; check [kafka] brokers and credentials and that the broker is up")]
    Kafka {
        brokers: String,
        what: String,
        error: Box<KafkaError>,
    },
    /// A `[kafka]` setting the brokers refuse (credentials, CA, client certificate).
    #[error(transparent)]
    KafkaSecurity(#[from] sluice_config::KafkaSecurityError),
    /// A configured topic is not on the broker.
    #[error("topic `{topic}` does not exist on {brokers}; create it or fix consumer.topics")]
    NoTopic { topic: String, brokers: String },
    /// A rule with `on_error = "stop"` could not map a message, or its target rejected it.
    #[error("stopped by rule `{rule}` (on_error = \"stop\") at {topic}/{partition}@{offset}: {reason}; fix the rule or the data, or set on_error = \"dead_letter\", then restart (offsets before this message are committed)")]
    RuleStopped {
        rule: String,
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    /// `--start-at` could not be applied.
    #[error("--start-at: {0}")]
    StartAt(String),
    /// The metrics endpoint could not listen.
    #[error("metrics.listen {listen}: {reason}; choose a free host:port")]
    Metrics { listen: String, reason: String },
}

impl From<sluice_config::ConfigError> for SinkError {
    fn from(e: sluice_config::ConfigError) -> Self {
        SinkError::Config(Box::new(e))
    }
}
