//! The sink in tests: config text, the real runtime run in-process as a task, and the offsets
//! its consumer group committed.

use crate::wait::failure;
use sluice_sinks::{Sink, SinkConfig, SinkError};
use std::path::Path;
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
options = {{ "session.timeout.ms" = "{session}", "heartbeat.interval.ms" = "1000" }}
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
