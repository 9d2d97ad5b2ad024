//! The consumer-group runtime: one worker task per assigned partition (ordered within a
//! partition, concurrent across partitions), bounded channels with pause/resume for
//! backpressure, a contiguous watermark per partition, commits, rebalance drains and shutdown.
//! This file sets the sink up and holds the partitions' state and the rebalance callbacks; the
//! read loop is in `dispatcher`, the message copy and byte budget in `message`, librdkafka's
//! settings in `kafka`, the per-partition writer in `worker`.

mod backoff;
mod dispatcher;
mod dlq;
mod kafka;
mod message;
mod prepare;
mod tally;
mod worker;

pub use backoff::{backoff, ceiling, RateLimit};
pub use dlq::{
    HEADER_ERROR, HEADER_ERROR_CLASS, HEADER_ORIGINAL_OFFSET, HEADER_ORIGINAL_PARTITION,
    HEADER_ORIGINAL_TOPIC, HEADER_RULE, HEADER_TARGET,
};
pub(crate) use kafka::kafka_error;
pub use kafka::{kafka_client_config, kafka_producer_config};
pub use message::{Budget, Msg};
pub use prepare::{Failure, Prepared, Routing};
pub use tally::{Position, Tally};

use crate::config::SinkConfig;
use crate::error::SinkError;
use crate::targets::{Target, Write};
use dispatcher::Dispatcher;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use sluice_config::Problems;
use sluice_rules::RuleSet;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use worker::Stop;

/// What every worker shares: the config, the rules, the targets, the dead-letter producer.
pub struct Env {
    pub config: SinkConfig,
    pub routing: Routing,
    pub targets: Vec<Target>,
    pub producer: FutureProducer,
    /// Counts for the operators: per rule and per partition.
    pub tally: Arc<Tally>,
}

/// Readiness as `/readyz` reports it: set once the sink has joined its group and can write.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// A configured sink, ready to run.
pub struct Sink {
    config: SinkConfig,
    overrides: BTreeMap<String, Target>,
    health: Health,
    tally: Arc<Tally>,
}

type Tp = (String, i32);

/// A partition's worker as the dispatcher and the rebalance callback see it.
struct Handle {
    tx: mpsc::Sender<Msg>,
    /// Messages read while the worker's channel was full; the partition is paused meanwhile.
    overflow: VecDeque<Msg>,
    paused: bool,
    /// Paused because all workers together held `max_in_flight_bytes`: resumed only once they
    /// are below half of it (a partition paused for its own queue resumes when that has room).
    waits_for_budget: bool,
    /// Next offset to commit (every earlier message is done or dead-lettered); -1 before any.
    done: Arc<AtomicI64>,
    /// The source commit time (`ts_ms`) of the newest message done; 0 before any.
    done_ts: Arc<AtomicI64>,
    /// The offset after the last message read for this partition; -1 before any.
    next: i64,
    committed: i64,
    stop: Stop,
    join: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    workers: HashMap<Tp, Handle>,
    /// Every assigned partition: a message of any other was revoked meanwhile and is dropped.
    assigned: HashSet<Tp>,
    /// Each partition's high watermark, from librdkafka's statistics once a second.
    highs: HashMap<Tp, i64>,
}

struct Shared {
    state: Mutex<State>,
    drain_timeout: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The consumer's context: on revoke, drains the revoked partitions' workers and commits.
struct Ctx {
    shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    /// librdkafka's statistics (every `statistics.interval.ms`): keeps the partitions' high
    /// watermarks for the lag, which otherwise costs a broker round trip per partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut state = self.shared.lock();
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                if partition >= 0 && p.hi_offset >= 0 {
                    state.highs.insert((topic.clone(), partition), p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<Tp> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            let handles: Vec<(Tp, Handle)> = {
                let mut state = self.shared.lock();
                for tp in &revoked {
                    state.assigned.remove(tp);
                }
                revoked
                    .iter()
                    .filter_map(|tp| state.workers.remove(tp).map(|h| (tp.clone(), h)))
                    .collect()
            };
            if handles.is_empty() {
                return;
            }
            // Lost, not revoked: the session expired (the broker was unreachable for longer
            // than session.timeout.ms) and the partitions may already have a new owner. Their
            // writes are abandoned at once and nothing is committed (the broker would refuse a
            // commit of the old generation anyway); librdkafka rejoins the group by itself, and
            // the new owner re-reads from the last committed offsets.
            if base.assignment_lost() {
                tracing::warn!(
                    partitions = handles.len(),
                    "group session lost; abandoning in-flight writes and rejoining the group"
                );
                drop(abandon_now(handles));
                return;
            }
            tracing::info!(
                partitions = handles.len(),
                "partitions revoked; draining in-flight writes"
            );
            let timeout = self.shared.drain_timeout;
            // The rebalance callback runs inside the task polling the consumer: wait for the
            // workers on this thread without stalling the runtime's other threads.
            let tpl = match tokio::runtime::Handle::try_current() {
                Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| rt.block_on(drain(handles, timeout)))
                }
                _ => done_offsets(abandon_now(handles)),
            };
            commit_now(base, &tpl, "revoked partitions");
        }
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // A partition paused for backpressure before a revoke starts afresh when it returns.
            if let Err(e) = base.resume(tpl) {
                tracing::debug!("resume of newly assigned partitions: {e}");
            }
            // Nothing here may wait on the broker: this runs inside the consumer's poll, and
            // the group's join and sync wait for it.
            let mut state = self.shared.lock();
            for e in tpl.elements() {
                state.assigned.insert((e.topic().to_owned(), e.partition()));
            }
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!("offset commit failed: {e}; the next commit retries it");
        }
    }
}

impl Sink {
    /// A sink for `config`; targets are connected when it runs.
    pub fn new(config: SinkConfig) -> Sink {
        Sink {
            tally: Arc::new(Tally::new(config.rules.len())),
            config,
            overrides: BTreeMap::new(),
            health: Health::default(),
        }
    }

    /// Uses `target` for the target `name` instead of building it from the config (tests).
    pub fn with_target(mut self, name: &str, target: Target) -> Sink {
        self.overrides.insert(name.to_owned(), target);
        self
    }

    /// The readiness flag this sink sets; give it to the `/readyz` endpoint.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The counts this sink keeps per rule and partition; give them to the monitor.
    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }

    /// Compiles the rules and connects every target.
    async fn build(mut self) -> Result<(Env, Health), SinkError> {
        let mut problems = Problems::default();
        let rules = RuleSet::compile(&self.config.rules, &mut problems);
        if !problems.is_empty() {
            return Err(sluice_config::ConfigError::Invalid {
                path: "rules".into(),
                problems,
            }
            .into());
        }
        let target_names: Vec<String> = self.config.targets.keys().cloned().collect();
        let mut targets = Vec::with_capacity(target_names.len());
        for name in &target_names {
            let target = match self.overrides.remove(name) {
                Some(t) => t,
                None => Target::connect(name, &self.config.targets[name], &rules).await?,
            };
            target.check().await?;
            targets.push(target);
        }
        let rule_target = (0..rules.len())
            .map(|i| {
                let t = rules.rule(i).target();
                target_names.iter().position(|n| n == t).unwrap_or(0)
            })
            .collect();
        let producer: FutureProducer = kafka_producer_config(&self.config)
            .set("enable.idempotence", "false")
            .create()
            .map_err(|e| kafka_error(&self.config, "create the dead-letter producer", e))?;
        let env = Env {
            config: self.config,
            routing: Routing {
                rules,
                rule_target,
                target_names,
            },
            targets,
            producer,
            tally: self.tally,
        };
        Ok((env, self.health))
    }

    /// Joins the group and writes until `cancel` fires (then drains and commits) or a rule
    /// with `on_error = "stop"` fails.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), SinkError> {
        let (env, health) = self.build().await?;
        let env = Arc::new(env);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            drain_timeout: env.config.consumer.drain_timeout(),
        });
        let consumer: StreamConsumer<Ctx> = kafka_client_config(&env.config)
            .set("group.id", &env.config.consumer.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "1000")
            .create_with_context(Ctx {
                shared: shared.clone(),
            })
            .map_err(|e| kafka_error(&env.config, "create the consumer", e))?;
        let topics: Vec<&str> = env
            .config
            .consumer
            .topics
            .iter()
            .map(String::as_str)
            .collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| kafka_error(&env.config, "subscribe", e))?;
        let consumer = Arc::new(consumer);
        health.set_ready(true);
        let dispatcher = Dispatcher {
            env: env.clone(),
            shared: shared.clone(),
            consumer: consumer.clone(),
            budget: Budget::new(env.config.consumer.max_in_flight_bytes),
        };
        // On a runtime thread, so the rebalance callback may wait for workers in place.
        let result = match tokio::spawn(dispatcher.run(cancel)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("the consumer task failed: {e}");
                Ok(())
            }
        };
        health.set_ready(false);
        // Stop every worker, let them finish the batch in hand, commit what is done.
        let handles: Vec<(Tp, Handle)> = shared.lock().workers.drain().collect();
        let tpl = drain(handles, env.config.consumer.drain_timeout()).await;
        let c = consumer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if tpl.count() > 0 {
                if let Err(e) = c.commit(&tpl, CommitMode::Sync) {
                    tracing::warn!("final offset commit failed: {e}");
                }
            }
            c.unsubscribe();
        })
        .await;
        result
    }
}

/// Tells workers to finish the batch in hand, waits up to `timeout`, abandons the rest, and
/// returns the offsets to commit.
async fn drain(handles: Vec<(Tp, Handle)>, timeout: Duration) -> TopicPartitionList {
    for (_, h) in &handles {
        h.stop.drain.cancel();
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut finished = Vec::with_capacity(handles.len());
    for (tp, mut h) in handles {
        if tokio::time::timeout_at(deadline, &mut h.join)
            .await
            .is_err()
        {
            tracing::warn!(topic = %tp.0, partition = tp.1,
                "in-flight writes did not finish within consumer.drain_timeout_ms; the next owner re-processes them");
            h.stop.abandon.cancel();
            let _ = (&mut h.join).await;
        }
        finished.push((tp, h));
    }
    done_offsets(finished)
}

fn abandon_now(handles: Vec<(Tp, Handle)>) -> Vec<(Tp, Handle)> {
    for (_, h) in &handles {
        h.stop.drain.cancel();
        h.stop.abandon.cancel();
    }
    handles
}

fn done_offsets(handles: Vec<(Tp, Handle)>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), h) in handles {
        let done = h.done.load(Ordering::Acquire);
        if done >= 0 {
            let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(done));
        }
    }
    tpl
}

fn commit_now<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
    what: &str,
) {
    if tpl.count() == 0 {
        return;
    }
    match consumer.commit(tpl, CommitMode::Sync) {
        Ok(()) => tracing::info!(partitions = tpl.count(), "committed offsets of {what}"),
        Err(e) => tracing::warn!("offset commit of {what} failed: {e}"),
    }
}
