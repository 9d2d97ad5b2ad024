//! The sink in tests: config text, the real runtime run in-process as a task, and the offsets
//! its consumer group committed.

use crate::wait::failure;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_sinks::{Sink, SinkConfig, SinkError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The `[kafka]`, `[consumer]`, `[batch]`, `[retry]` and `[metrics]` tables of a sink config that
/// reads `topic` as `group` from the test broker; a test appends its targets and rules. The
/// timings are fields because tests tune them (a session timeout a test waits out, say).
#[derive(Debug, Clone)]
pub struct SinkToml<'a> {
    /// Bootstrap servers: the shared test broker unless a test has its own.
    pub brokers: String,
    /// The topic read.
    pub topic: &'a str,
    /// The consumer group.
    pub group: &'a str,
    /// `session.timeout.ms` (the heartbeat is every second).
    pub session_timeout_ms: u32,
    /// `max.poll.interval.ms`, if given.
    pub max_poll_interval_ms: Option<u32>,
    /// `consumer.commit_interval_ms`.
    pub commit_interval_ms: u32,
    /// `batch.linger_ms`.
    pub linger_ms: u32,
    /// `batch.max_items`.
    pub max_items: u32,
    /// `retry.initial_backoff_ms`.
    pub initial_backoff_ms: u32,
    /// `retry.max_backoff_ms`.
    pub max_backoff_ms: u32,
}

impl<'a> SinkToml<'a> {
    /// Short timings, for a test that waits for the sink.
    pub fn new(topic: &'a str, group: &'a str) -> SinkToml<'a> {
        SinkToml {
            brokers: crate::kafka_brokers(),
            topic,
            group,
            session_timeout_ms: 6_000,
            max_poll_interval_ms: None,
            commit_interval_ms: 100,
            linger_ms: 20,
            max_items: 50,
            initial_backoff_ms: 20,
            max_backoff_ms: 200,
        }
    }

    /// The tables as TOML text, ending with `[metrics]` (a free port).
    pub fn text(&self) -> String {
        format!(
            r#"
[kafka]
brokers = ["{brokers}"]
options = {{ "session.timeout.ms" = "{session}", "heartbeat.interval.ms" = "1000"{max_poll} }}
[consumer]
group_id = "{group}"
topics = ["{topic}"]
commit_interval_ms = {commit}
drain_timeout_ms = 5000
[batch]
linger_ms = {linger}
max_items = {max_items}
[retry]
initial_backoff_ms = {initial}
max_backoff_ms = {max}
[metrics]
listen = "127.0.0.1:0"
"#,
            brokers = self.brokers,
            session = self.session_timeout_ms,
            max_poll = self
                .max_poll_interval_ms
                .map(|ms| format!(", \"max.poll.interval.ms\" = \"{ms}\""))
                .unwrap_or_default(),
            group = self.group,
            topic = self.topic,
            commit = self.commit_interval_ms,
            linger = self.linger_ms,
            max_items = self.max_items,
            initial = self.initial_backoff_ms,
            max = self.max_backoff_ms,
        )
    }
}

/// Parses sink config `text` with `env` as the environment of `${NAME}` interpolation, as the
/// binary does with the process environment.
pub fn parse(text: &str, env: &[(&str, &str)]) -> SinkConfig {
    sluice_config::parse::<SinkConfig>(text, Path::new("sink-test.toml"), |name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The real sink runtime, running in-process as a task until [`RunningSink::stop`].
pub struct RunningSink {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), SinkError>>,
}

impl RunningSink {
    /// Starts `sink`.
    pub fn start(sink: Sink) -> RunningSink {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sink.run(cancel.clone()));
        RunningSink { cancel, task }
    }

    /// Calls `check` every 100 ms until it returns `Ok`, and returns its value. Panics if the
    /// sink stops first (with how it ended) or after `secs` s, naming `what` and the last `Err`.
    pub async fn until<T>(
        &mut self,
        secs: u64,
        what: &str,
        mut check: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let task = &mut self.task;
        crate::wait::until_ok(secs, what, async || {
            let result = check().await;
            if let Err(now) = &result {
                if task.is_finished() {
                    let ended = (&mut *task).await;
                    panic!(
                        "the sink stopped ({ended:?}) while waiting for {}",
                        failure(what, now)
                    );
                }
            }
            result
        })
        .await
    }

    /// Waits for the sink to stop by itself (`secs` s at most, then panics); how it ended.
    pub async fn finished(self, secs: u64) -> Result<(), SinkError> {
        tokio::time::timeout(Duration::from_secs(secs), self.task)
            .await
            .unwrap_or_else(|_| panic!("the sink did not stop by itself within {secs} s"))
            .expect("the sink task panicked")
    }

    /// Cancels the sink and waits for its drain and final commit (60 s at most); how it ended.
    pub async fn stop(self) -> Result<(), SinkError> {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the sink did not stop within 60 s")
            .expect("the sink task panicked")
    }
}

/// (committed offset, high watermark) per partition of the topic of `config` for its group;
/// `None` when the broker did not answer in time (a busy shared broker), so callers ask again.
pub async fn positions(config: &SinkConfig) -> Option<Vec<(Option<i64>, i64)>> {
    let c = config.clone();
    let rows =
        tokio::task::spawn_blocking(move || sluice_sinks::offsets::list(&c, &c.consumer.group_id))
            .await
            .expect("the offsets task panicked")
            .ok()?;
    Some(rows.into_iter().map(|r| (r.committed, r.high)).collect())
}

/// Moves the group of `config` to `start` as `sluice-sink run --start-at` does (off the async
/// runtime: it blocks); the (topic, partition, offset) it set.
pub async fn apply_start_at(
    config: &SinkConfig,
    start: sluice_sinks::offsets::StartAt,
) -> Vec<(String, i32, i64)> {
    let c = config.clone();
    tokio::task::spawn_blocking(move || sluice_sinks::offsets::apply_start_at(&c, start))
        .await
        .expect("the start-at task panicked")
        .unwrap_or_else(|e| panic!("apply the start position: {e}"))
}

/// Reads a group's committed offsets through one long-lived client: tests poll them often, and a
/// client per poll would load the shared broker.
#[derive(Clone)]
pub struct OffsetProbe {
    consumer: Arc<BaseConsumer>,
    topic: String,
}

impl OffsetProbe {
    /// A probe of the group and the first topic of `config`, on the shared test broker.
    pub fn new(config: &SinkConfig) -> OffsetProbe {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", crate::kafka_brokers())
            .set("group.id", &config.consumer.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .expect("create the offset probe's consumer");
        OffsetProbe {
            consumer: Arc::new(consumer),
            topic: config.consumer.topics[0].clone(),
        }
    }

    /// The committed offset of each partition, in partition order (`None`: nothing committed);
    /// `None` when the broker did not answer in time, so callers ask again.
    pub async fn committed(&self) -> Option<Vec<Option<i64>>> {
        let (consumer, topic) = (self.consumer.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || {
            let md = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .ok()?;
            let mut tpl = TopicPartitionList::new();
            for t in md.topics() {
                for p in t.partitions() {
                    tpl.add_partition(&topic, p.id());
                }
            }
            let tpl = consumer
                .committed_offsets(tpl, Duration::from_secs(10))
                .ok()?;
            let mut offsets: Vec<(i32, Option<i64>)> = tpl
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => (e.partition(), Some(o)),
                    _ => (e.partition(), None),
                })
                .collect();
            offsets.sort();
            Some(offsets.into_iter().map(|(_, o)| o).collect())
        })
        .await
        .expect("the offset probe's task panicked")
    }

    /// The sum of the committed offsets (nothing committed counts as 0); `None` as in
    /// [`OffsetProbe::committed`].
    pub async fn committed_sum(&self) -> Option<i64> {
        let offsets = self.committed().await?;
        Some(offsets.iter().map(|o| o.unwrap_or(0)).sum())
    }
}
