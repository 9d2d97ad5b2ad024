//! One partition's worker: reads its messages in order, batches them, writes every target,
//! retries transient failures, dead-letters definite ones, and moves the partition's watermark.

use super::backoff::{backoff, RateLimit};
use super::dlq::DeadLetter;
use super::prepare::{Failure, MatchCache};
use super::{Env, Msg};
use crate::error::SinkError;
use crate::targets::{Item, Outcome, Write};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a worker is told to stop.
#[derive(Clone, Default)]
pub struct Stop {
    /// Take no new messages; finish the batch in hand (with retries).
    pub drain: CancellationToken,
    /// Give up the batch in hand now (the drain timeout passed).
    pub abandon: CancellationToken,
}

/// Why a batch was not finished.
enum Halt {
    /// `abandon` fired: the batch is left for the next owner of the partition.
    Abandoned,
    /// A rule with `on_error = "stop"` failed, or the dead-letter topic refused a message.
    Fatal(SinkError),
}

/// Runs until the channel closes or `stop` says so. `done` is the next offset to commit.
pub async fn run(
    env: Arc<Env>,
    topic: String,
    partition: i32,
    mut rx: mpsc::Receiver<Msg>,
    done: Arc<AtomicI64>,
    done_ts: Arc<AtomicI64>,
    stop: Stop,
) -> Result<(), SinkError> {
    let mut worker = Worker {
        env,
        topic,
        partition,
        stop,
        log_limit: Mutex::new(RateLimit::new(Duration::from_secs(10))),
        matching: MatchCache::default(),
    };
    let linger = Duration::from_millis(worker.env.config.batch.linger_ms);
    let max_items = worker.env.config.batch.max_items;
    let max_bytes = worker.env.config.batch.max_bytes;
    loop {
        let first = tokio::select! {
            biased;
            _ = worker.stop.drain.cancelled() => return Ok(()),
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let mut bytes = first.size();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max_items && bytes < max_bytes {
            let next = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                    biased;
                    _ = worker.stop.drain.cancelled() => None,
                    r = tokio::time::timeout_at(deadline, rx.recv()) => r.ok().flatten(),
                },
            };
            match next {
                Some(m) => {
                    bytes += m.size();
                    batch.push(m);
                }
                None => break,
            }
        }
        let last = batch.last().map(|m| m.offset).unwrap_or(0);
        match worker.process(&batch).await {
            Ok(ts_ms) => {
                done_ts.fetch_max(ts_ms, Ordering::Release);
                done.store(last + 1, Ordering::Release);
            }
            Err(Halt::Abandoned) => return Ok(()),
            Err(Halt::Fatal(e)) => return Err(e),
        }
    }
}

struct Worker {
    env: Arc<Env>,
    topic: String,
    partition: i32,
    stop: Stop,
    log_limit: Mutex<RateLimit>,
    matching: MatchCache,
}

impl Worker {
    /// Writes one batch of messages to every target until each item is done or dead-lettered;
    /// returns the newest source commit time (`ts_ms`) among them.
    async fn process(&mut self, batch: &[Msg]) -> Result<i64, Halt> {
        let routing = &self.env.routing;
        let cache = &mut self.matching;
        let mut failures: Vec<(usize, Failure)> = Vec::new();
        // Per target: the index of each item's message in the batch, and the items.
        let mut per_target: Vec<(Vec<usize>, Vec<Item>)> = (0..self.env.targets.len())
            .map(|_| {
                (
                    Vec::with_capacity(batch.len()),
                    Vec::with_capacity(batch.len()),
                )
            })
            .collect();
        let format = self.env.config.consumer.format_of(&self.topic);
        // Each message's source commit time, 0 for one that does not decode.
        let mut ts = Vec::with_capacity(batch.len());
        for (msg_idx, m) in batch.iter().enumerate() {
            let commit_ms = routing.prepare_into(
                format,
                m.key(),
                m.payload(),
                cache,
                |t, item| {
                    if let Some((idx, items)) = per_target.get_mut(t) {
                        idx.push(msg_idx);
                        items.push(item);
                    }
                },
                |f| failures.push((msg_idx, f)),
            );
            ts.push(commit_ms.unwrap_or(0));
        }
        // A rule that must stop the sink stops it before anything of this batch is written.
        if let Some((i, f)) = failures.iter().find(|(_, f)| f.stop) {
            return Err(Halt::Fatal(self.stopped(&batch[*i], f)));
        }
        let writes = per_target
            .into_iter()
            .enumerate()
            .filter(|(_, (_, items))| !items.is_empty())
            .map(|(t, (idx, items))| self.write_target(t, idx, items, &ts));
        let results = futures::future::join_all(writes).await;
        for r in results {
            failures.extend(r?);
        }
        if let Some((i, f)) = failures.iter().find(|(_, f)| f.stop) {
            return Err(Halt::Fatal(self.stopped(&batch[*i], f)));
        }
        failures.sort_by_key(|(i, _)| *i);
        for (i, f) in &failures {
            self.dead_letter(&batch[*i], f).await?;
        }
        let topic = self.topic.clone();
        metrics::counter!("sluice_sink_messages_total", "topic" => topic)
            .increment(batch.len() as u64);
        Ok(ts.into_iter().max().unwrap_or(0))
    }

    /// Writes `items` to target `t`, retrying from the first transient failure; returns the
    /// rejected items as failures. `idx[k]` is the batch index of the message of `items[k]`.
    async fn write_target(
        &self,
        t: usize,
        idx: Vec<usize>,
        items: Vec<Item>,
        ts: &[i64],
    ) -> Result<Vec<(usize, Failure)>, Halt> {
        let target = &self.env.targets[t];
        let name = &self.env.routing.target_names[t];
        let mut rejected = Vec::new();
        let mut start = 0;
        let mut attempt: u32 = 0;
        metrics::histogram!("sluice_sink_batch_items", "target" => name.clone())
            .record(items.len() as f64);
        loop {
            let began = Instant::now();
            let outcomes = tokio::select! {
                biased;
                _ = self.stop.abandon.cancelled() => return Err(Halt::Abandoned),
                o = target.write(&items[start..]) => o,
            };
            metrics::histogram!("sluice_sink_write_seconds", "target" => name.clone())
                .record(began.elapsed().as_secs_f64());
            let mut first_retry: Option<(usize, String)> = None;
            // Counted per (rule, outcome) and reported once per write: labels cost allocations.
            let mut counts: BTreeMap<(usize, &'static str), u64> = BTreeMap::new();
            // Per rule: items written and the newest source commit time among them.
            let mut written: BTreeMap<usize, (u64, i64)> = BTreeMap::new();
            for (k, item) in items[start..].iter().enumerate() {
                let outcome = outcomes.get(k).cloned().unwrap_or_else(|| {
                    Outcome::Retry(format!(
                        "target `{name}` returned fewer outcomes than items"
                    ))
                });
                *counts.entry((item.rule, outcome.label())).or_default() += 1;
                match outcome {
                    Outcome::Done => {
                        let w = written.entry(item.rule).or_default();
                        w.0 += 1;
                        w.1 = w.1.max(ts.get(idx[start + k]).copied().unwrap_or(0));
                    }
                    Outcome::Reject(reason) => rejected.push((
                        idx[start + k],
                        Failure {
                            rule: Some(self.env.routing.rule_name(item.rule).to_owned()),
                            target: Some(name.clone()),
                            reason,
                            stop: self.env.routing.stops(item.rule),
                            class: "rejected",
                        },
                    )),
                    Outcome::Retry(reason) => {
                        first_retry = Some((start + k, reason));
                        break;
                    }
                }
            }
            for ((rule, outcome), n) in counts {
                // Failed writes count as the rule's failures (for `errors` alerts), as do its
                // dead letters; a rejected item is counted when it is dead-lettered.
                if outcome == "retry" {
                    self.env.tally.failed(rule, n);
                }
                metrics::counter!("sluice_sink_items_total",
                    "topic" => self.topic.clone(),
                    "rule" => self.env.routing.rule_name(rule).to_owned(),
                    "target" => name.clone(), "outcome" => outcome)
                .increment(n);
            }
            let now = sluice_ops::now_ms();
            for (rule, (n, newest)) in written {
                self.env.tally.written(rule, n, newest, now);
            }
            let Some((from, reason)) = first_retry else {
                return Ok(rejected);
            };
            // Rejections after the first retry are re-reported by the next try.
            rejected.retain(|(i, _)| *i < idx[from]);
            start = from;
            attempt = attempt.saturating_add(1);
            metrics::counter!("sluice_sink_retries_total", "target" => name.clone()).increment(1);
            if let Some(max) = self.env.config.retry.max_retries {
                if attempt > max {
                    for (k, item) in items[start..].iter().enumerate() {
                        rejected.push((
                            idx[start + k],
                            Failure {
                                rule: Some(self.env.routing.rule_name(item.rule).to_owned()),
                                target: Some(name.clone()),
                                reason: format!("gave up after {max} retries: {reason}"),
                                stop: self.env.routing.stops(item.rule),
                                class: "retries",
                            },
                        ));
                    }
                    return Ok(rejected);
                }
            }
            let pause = backoff(&self.env.config.retry, attempt);
            if let Some(held_back) = self.log_limit_allow() {
                tracing::warn!(
                    target_name = %name, topic = %self.topic, partition = self.partition,
                    attempt, retry_in_ms = pause.as_millis() as u64, held_back,
                    "write to target `{name}` failed, retrying; the partition waits meanwhile: {reason}"
                );
            }
            tokio::select! {
                biased;
                _ = self.stop.abandon.cancelled() => return Err(Halt::Abandoned),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// `write_target` runs concurrently for several targets, so the limiter sits in a mutex.
    fn log_limit_allow(&self) -> Option<u64> {
        match self.log_limit.lock() {
            Ok(mut l) => l.allow(Instant::now()),
            Err(poisoned) => poisoned.into_inner().allow(Instant::now()),
        }
    }

    /// Sends `msg` to the dead-letter topic, retrying until the broker takes it.
    async fn dead_letter(&self, msg: &Msg, f: &Failure) -> Result<(), Halt> {
        let dlq = self.env.config.dlq_topic(&self.topic);
        let letter = DeadLetter {
            topic: &dlq,
            original_topic: &self.topic,
            partition: self.partition,
            msg,
            failure: f,
        };
        let mut attempt = 0u32;
        loop {
            let sent = tokio::select! {
                biased;
                _ = self.stop.abandon.cancelled() => return Err(Halt::Abandoned),
                r = letter.send(&self.env.producer) => r,
            };
            match sent {
                Ok(()) => {
                    metrics::counter!("sluice_sink_dead_letters_total",
                        "topic" => self.topic.clone(),
                        "rule" => f.rule.clone().unwrap_or_default(),
                        "reason" => f.class)
                    .increment(1);
                    if let Some(rule) = f
                        .rule
                        .as_deref()
                        .and_then(|r| self.env.routing.rule_index(r))
                    {
                        self.env.tally.failed(rule, 1);
                    }
                    tracing::warn!(topic = %self.topic, partition = self.partition, offset = msg.offset,
                        rule = f.rule.as_deref().unwrap_or(""), "dead-lettered to {dlq}: {}", f.reason);
                    return Ok(());
                }
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    let pause = backoff(&self.env.config.retry, attempt);
                    let size = msg.size() + f.reason.len();
                    tracing::warn!(topic = %self.topic, partition = self.partition, offset = msg.offset,
                        attempt, "{}", dead_letter_refused(&dlq, &e, size));
                    tokio::select! {
                        biased;
                        _ = self.stop.abandon.cancelled() => return Err(Halt::Abandoned),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    fn stopped(&self, msg: &Msg, f: &Failure) -> SinkError {
        SinkError::RuleStopped {
            rule: f.rule.clone().unwrap_or_default(),
            topic: self.topic.clone(),
            partition: self.partition,
            offset: msg.offset,
            reason: f.reason.clone(),
        }
    }
}

/// Why a dead letter of about `size` bytes was not taken by `dlq`, and what to do; the
/// partition waits meanwhile.
fn dead_letter_refused(dlq: &str, e: &rdkafka::error::KafkaError, size: usize) -> String {
    use rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge;
    if e.rdkafka_error_code() == Some(MessageSizeTooLarge) {
        format!(
            "dead-letter topic {dlq} refused a letter of about {size} bytes as too large ({e}); \
             the partition waits and retries: raise the topic's max.message.bytes \
             (kafka-configs.sh --alter --entity-type topics --entity-name {dlq} --add-config \
             max.message.bytes=<bytes>), or kafka.options message.max.bytes if you set it"
        )
    } else {
        format!(
            "cannot write to dead-letter topic {dlq}: {e}; the partition waits and retries \
             (create the topic if the broker does not create topics)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkConfig;
    use crate::runtime::Routing;
    use crate::targets::fault::{FaultTarget, Faults};
    use crate::targets::memory::MemoryTarget;
    use crate::targets::Target;
    use sluice_config::Problems;
    use sluice_rules::RuleSet;

    const CONFIG: &str = r#"
[kafka]
brokers = ["127.0.0.1:1"]
[consumer]
group_id = "g"
topics = ["t"]
[batch]
max_items = 3
linger_ms = 1
[retry]
initial_backoff_ms = 1
max_backoff_ms = 4
[targets.out]
type = "noop"
[[rules]]
name = "users"
target = "out"
match = { tables = ["shop.users"] }
"#;

    fn env(faults: &Faults, memory: &MemoryTarget, extra: &str) -> Arc<Env> {
        let config: SinkConfig = sluice_config::parse(
            &format!("{CONFIG}{extra}"),
            std::path::Path::new("t.toml"),
            |_| None,
        )
        .unwrap();
        let mut problems = Problems::default();
        let rules = RuleSet::compile(&config.rules, &mut problems);
        let producer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .unwrap();
        Arc::new(Env {
            tally: Arc::new(super::super::Tally::new(rules.len())),
            config,
            routing: Routing {
                rule_target: vec![0; rules.len()],
                rules,
                target_names: vec!["out".into()],
            },
            targets: vec![Target::Fault(Box::new(FaultTarget::new(
                Target::Memory(memory.clone()),
                faults.clone(),
            )))],
            producer,
        })
    }

    fn msg(offset: i64) -> Msg {
        let payload = serde_json::json!({
            "v": 1, "seq": offset, "source": "binlog", "instance": "i", "database": "shop",
            "table": "users", "type": "INSERT", "ts_ms": 1, "capture_ms": 1,
            "pos": {"file": "b.1", "offset": 4}, "pk": ["id"], "data": {"id": offset}
        });
        let payload = serde_json::to_vec(&payload).unwrap();
        Msg::new(offset, None, Some(&payload), std::iter::empty())
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        for _ in 0..2_000 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never happened: {what}");
    }

    #[tokio::test]
    async fn watermark_waits_for_failed_writes_and_moves_after_recovery() {
        let (faults, memory) = (Faults::default(), MemoryTarget::default());
        faults.down();
        let (tx, rx) = mpsc::channel(100);
        let done = Arc::new(AtomicI64::new(-1));
        let done_ts = Arc::new(AtomicI64::new(0));
        let stop = Stop::default();
        let env = env(&faults, &memory, "");
        let task = tokio::spawn(run(
            env.clone(),
            "t".into(),
            0,
            rx,
            done.clone(),
            done_ts.clone(),
            stop.clone(),
        ));
        for o in 0..7 {
            tx.send(msg(o)).await.unwrap();
        }
        until("ten failed tries", || faults.writes() >= 10).await;
        assert_eq!(
            done.load(Ordering::Acquire),
            -1,
            "moved past a failed write"
        );
        assert!(memory.written().is_empty());

        faults.recover();
        until("all seven done", || done.load(Ordering::Acquire) == 7).await;
        let seqs: Vec<i64> = memory.written().iter().map(|i| i.mapped.seq).collect();
        assert_eq!(seqs, (0..7).collect::<Vec<_>>());
        // Counted for the operators once written, not when tried.
        let frame = env.tally.frame(&[("r".into(), "out".into())], 0);
        assert_eq!(frame.subjects[0].events_total, 7);
        assert_eq!(done_ts.load(Ordering::Acquire), 1, "the events' ts_ms");

        // A second outage, then a stop: the batch in hand is abandoned, the watermark stays.
        faults.down();
        let before = faults.writes();
        tx.send(msg(7)).await.unwrap();
        until("a failed try", || faults.writes() > before).await;
        stop.drain.cancel();
        stop.abandon.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(done.load(Ordering::Acquire), 7);
    }

    #[test]
    fn a_dead_letter_too_large_for_its_topic_names_the_setting() {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaErrorCode;
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let text = dead_letter_refused("t.dlq", &e, 12_000_000);
        assert!(
            text.starts_with(
                "dead-letter topic t.dlq refused a letter of about 12000000 bytes as too large"
            ),
            "{text}"
        );
        assert!(
            text.contains("--entity-name t.dlq --add-config max.message.bytes="),
            "{text}"
        );
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert!(dead_letter_refused("t.dlq", &e, 1).contains("create the topic"));
    }

    #[tokio::test]
    async fn rule_with_on_error_stop_halts_before_writing_its_batch() {
        let (faults, memory) = (Faults::default(), MemoryTarget::default());
        let (tx, rx) = mpsc::channel(100);
        let done = Arc::new(AtomicI64::new(-1));
        let task = tokio::spawn(run(
            env(&faults, &memory, "id = \"{email}\"\non_error = \"stop\"\n"),
            "t".into(),
            0,
            rx,
            done.clone(),
            Arc::new(AtomicI64::new(0)),
            Stop::default(),
        ));
        tx.send(msg(0)).await.unwrap();
        let err = task.await.unwrap().unwrap_err().to_string();
        assert!(
            err.starts_with("stopped by rule `users` (on_error = \"stop\") at t/0@0: "),
            "{err}"
        );
        assert_eq!(done.load(Ordering::Acquire), -1);
        assert!(memory.written().is_empty());
    }
}
