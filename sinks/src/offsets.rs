//! Where the group starts (`--start-at`) and where it is (`sluice-sink offsets`).
//!
//! These are blocking librdkafka calls: call them from `spawn_blocking` in async code.

use crate::config::SinkConfig;
use crate::error::SinkError;
use crate::runtime::{kafka_client_config, kafka_error};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_config::kafka::{watched, KafkaFailure};
use sluice_config::KafkaWatch;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long one metadata, offsets or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `sluice-sink run --start-at` puts the group before consuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Keep the group's committed offsets (new groups start at the earliest offset).
    Committed,
    Earliest,
    Latest,
    /// The first message whose timestamp is at or after this time (ms since the epoch).
    Time(i64),
}

/// One partition's position, as `sluice-sink offsets` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset, if it has one.
    pub committed: Option<i64>,
    pub low: i64,
    pub high: i64,
}

impl PartitionOffsets {
    /// Messages not yet committed: from the committed offset (or the low watermark) to the high one.
    pub fn lag(&self) -> i64 {
        (self.high - self.committed.unwrap_or(self.low)).max(0)
    }
}

impl FromStr for StartAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "committed" => Ok(StartAt::Committed),
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            _ => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| StartAt::Time(t.timestamp_millis()))
                .map_err(|e| format!("`{s}` is not earliest, latest, committed or an RFC 3339 time such as 2026-11-20T10:00:00Z ({e})")),
        }
    }
}

impl fmt::Display for StartAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartAt::Committed => f.write_str("committed"),
            StartAt::Earliest => f.write_str("earliest"),
            StartAt::Latest => f.write_str("latest"),
            StartAt::Time(ms) => match chrono::DateTime::from_timestamp_millis(*ms) {
                Some(t) => write!(f, "{}", t.to_rfc3339()),
                None => write!(f, "{ms} ms"),
            },
        }
    }
}

/// Looks up the offsets for `start` on every partition of the configured topics and commits
/// them for the group; returns `(topic, partition, offset)` as committed. The group must have
/// no running members (the broker refuses commits from outside a live group).
pub fn apply_start_at(
    config: &SinkConfig,
    start: StartAt,
) -> Result<Vec<(String, i32, i64)>, SinkError> {
    if start == StartAt::Committed {
        return Ok(Vec::new());
    }
    let consumer = group_consumer(config, &config.consumer.group_id)?;
    let mut chosen = Vec::new();
    for topic in &config.consumer.topics {
        let partitions = partitions(config, &consumer, topic)?;
        let found = match start {
            StartAt::Time(ms) => {
                let mut q = TopicPartitionList::new();
                for p in &partitions {
                    q.add_partition_offset(topic, *p, Offset::Offset(ms))
                        .map_err(|e| SinkError::StartAt(e.to_string()))?;
                }
                let answer = consumer
                    .offsets_for_times(q, REQUEST_TIMEOUT)
                    .map_err(|e| {
                        kafka_error(config, &format!("look up offsets by time in {topic}"), e)
                    })?;
                answer
                    .elements()
                    .iter()
                    .map(|e| (e.partition(), e.offset()))
                    .collect::<Vec<_>>()
            }
            _ => partitions.iter().map(|p| (*p, Offset::End)).collect(),
        };
        for (p, offset) in found {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                .map_err(|e| kafka_error(config, &format!("read watermarks of {topic}/{p}"), e))?;
            let at = match (start, offset) {
                (StartAt::Earliest, _) => low,
                (StartAt::Latest, _) => high,
                // The first message whose record timestamp is at or after the time.
                (StartAt::Time(_), Offset::Offset(o)) => o.clamp(low, high),
                // No message at or after the time (Kafka answers the end, -1): start there.
                _ => high,
            };
            chosen.push((topic.clone(), p, at));
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in &chosen {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))
            .map_err(|e| SinkError::StartAt(e.to_string()))?;
    }
    consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
        SinkError::StartAt(format!(
            "cannot commit the start offsets for group `{}`: {e}; stop every running sink of this group first",
            config.consumer.group_id
        ))
    })?;
    Ok(chosen)
}

/// Committed offset, watermarks and lag of `group` on every partition of the configured topics.
pub fn list(config: &SinkConfig, group: &str) -> Result<Vec<PartitionOffsets>, SinkError> {
    let consumer = group_consumer(config, group)?;
    let mut out = Vec::new();
    for topic in &config.consumer.topics {
        let mut tpl = TopicPartitionList::new();
        for p in partitions(config, &consumer, topic)? {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|e| {
                kafka_error(
                    config,
                    &format!("read committed offsets of group `{group}`"),
                    e,
                )
            })?;
        for e in committed.elements() {
            let (low, high) = consumer
                .fetch_watermarks(topic, e.partition(), REQUEST_TIMEOUT)
                .map_err(|er| {
                    kafka_error(
                        config,
                        &format!("read watermarks of {topic}/{}", e.partition()),
                        er,
                    )
                })?;
            out.push(PartitionOffsets {
                topic: topic.clone(),
                partition: e.partition(),
                committed: match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                },
                low,
                high,
            });
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// Connects to Kafka and checks that every configured topic exists; returns the partition count.
/// Credentials or certificates the brokers refuse are a [`SinkError::KafkaSecurity`] naming the
/// setting to fix.
pub fn check_kafka(config: &SinkConfig) -> Result<usize, SinkError> {
    let consumer = group_consumer(config, &config.consumer.group_id)?;
    let mut n = 0;
    for topic in &config.consumer.topics {
        n += partitions(config, &consumer, topic)?.len();
    }
    Ok(n)
}

/// Formats [`list`]'s result as the table `sluice-sink offsets` prints.
pub fn render_table(rows: &[PartitionOffsets]) -> String {
    let mut out = format!(
        "{:<40} {:>9} {:>12} {:>12} {:>10}\n",
        "TOPIC", "PARTITION", "COMMITTED", "HIGH", "LAG"
    );
    for r in rows {
        let committed = r
            .committed
            .map_or_else(|| "-".to_owned(), |o| o.to_string());
        out.push_str(&format!(
            "{:<40} {:>9} {:>12} {:>12} {:>10}\n",
            r.topic,
            r.partition,
            committed,
            r.high,
            r.lag()
        ));
    }
    out
}

/// At start-up, before anything else talks to Kafka: connects and reads the cluster's metadata,
/// so credentials or certificates the brokers refuse stop the sink with a message naming the
/// setting, instead of a consumer that retries them forever. A broker that does not answer
/// within `within` is not an error here: the consumer waits for it, as before.
pub fn preflight(config: &SinkConfig, within: Duration) -> Result<(), SinkError> {
    let watch = KafkaWatch::new(&config.kafka);
    let consumer: BaseConsumer<KafkaWatch> = kafka_client_config(config)
        .create_with_context(watch.clone())
        .map_err(|e| failure(config, "create a consumer", watch.explain(e)))?;
    match watched(&watch, within, serve(&consumer), |t| {
        consumer.fetch_metadata(None, t)
    }) {
        Ok(_) => Ok(()),
        Err(KafkaFailure::Settings(e)) => Err(e.into()),
        Err(KafkaFailure::Request(e)) => {
            tracing::warn!(error = %e, brokers = %config.kafka.brokers.join(","), "Kafka is not reachable yet; the consumer keeps trying");
            Ok(())
        }
    }
}

fn group_consumer(config: &SinkConfig, group: &str) -> Result<BaseConsumer<KafkaWatch>, SinkError> {
    let watch = KafkaWatch::new(&config.kafka);
    kafka_client_config(config)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(watch.clone())
        .map_err(|e| failure(config, "create a consumer", watch.explain(e)))
}

/// Polls `consumer` briefly, so the reports librdkafka queued reach its [`KafkaWatch`]. Only
/// for consumers that have no partitions: a message polled here would be lost.
fn serve(consumer: &BaseConsumer<KafkaWatch>) -> impl FnMut() + '_ {
    || {
        let _ = consumer.poll(Duration::from_millis(20));
    }
}

/// A failed Kafka request (`what`) as the definite error it is when librdkafka reported a
/// setting the brokers refuse, else as [`SinkError::Kafka`].
fn failure(config: &SinkConfig, what: &str, f: KafkaFailure) -> SinkError {
    match f {
        KafkaFailure::Settings(e) => e.into(),
        KafkaFailure::Request(e) => kafka_error(config, what, e),
    }
}

fn partitions(
    config: &SinkConfig,
    consumer: &BaseConsumer<KafkaWatch>,
    topic: &str,
) -> Result<Vec<i32>, SinkError> {
    let md = watched(consumer.context(), REQUEST_TIMEOUT, serve(consumer), |t| {
        consumer.fetch_metadata(Some(topic), t)
    })
    .map_err(|f| failure(config, &format!("read metadata of topic {topic}"), f))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if parts.is_empty() {
        return Err(SinkError::NoTopic {
            topic: topic.to_owned(),
            brokers: config.kafka.brokers.join(","),
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_at_parses_names_and_times() {
        assert_eq!("earliest".parse::<StartAt>(), Ok(StartAt::Earliest));
        assert_eq!("latest".parse::<StartAt>(), Ok(StartAt::Latest));
        assert_eq!("committed".parse::<StartAt>(), Ok(StartAt::Committed));
        assert_eq!(
            "2026-11-20T10:00:00Z".parse::<StartAt>(),
            Ok(StartAt::Time(1_795_168_800_000))
        );
        assert_eq!(
            "2026-11-20T11:00:00+01:00".parse::<StartAt>(),
            Ok(StartAt::Time(1_795_168_800_000))
        );
        let err = "yesterday".parse::<StartAt>().unwrap_err();
        assert!(
            err.starts_with("`yesterday` is not earliest, latest, committed or an RFC 3339 time"),
            "{err}"
        );
        assert_eq!(
            StartAt::Time(1_795_168_800_000).to_string(),
            "2026-11-20T10:00:00+00:00"
        );
    }

    #[test]
    fn lag_counts_from_committed_or_low() {
        let mut r = PartitionOffsets {
            topic: "t".into(),
            partition: 0,
            committed: Some(7),
            low: 2,
            high: 10,
        };
        assert_eq!(r.lag(), 3);
        r.committed = None;
        assert_eq!(r.lag(), 8);
    }
}
