//! The consumer-group runtime: one worker task per assigned partition (ordered within a
//! partition, concurrent across partitions), bounded channels with pause/resume for
//! backpressure, a contiguous watermark per partition, commits, rebalance drains and shutdown.

mod backoff;
mod dlq;
mod prepare;
mod worker;

pub use backoff::{backoff, ceiling, RateLimit};
pub use dlq::{
    HEADER_ERROR, HEADER_ORIGINAL_OFFSET, HEADER_ORIGINAL_PARTITION, HEADER_ORIGINAL_TOPIC,
    HEADER_RULE, HEADER_TARGET,
};
pub use prepare::{Failure, Prepared, Routing};

use crate::config::SinkConfig;
use crate::error::SinkError;
use crate::targets::{Target, Write};
use futures::FutureExt as _;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use sluice_config::Problems;
use sluice_rules::RuleSet;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::SendError;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::error::Elapsed;
use tokio_util::sync::CancellationToken;
use worker::Stop;

/// One Kafka message, copied out of the consumer's buffer into one allocation: the key, the
/// payload, then each header as name length, name, value length, value (lengths `u32` LE).
/// One allocation instead of one per part and per header name and value: the dispatcher copies
/// every message, and the whole backlog may sit in the channels.
#[derive(Debug)]
pub struct Msg {
    pub offset: i64,
    bytes: Box<[u8]>,
    /// The message's share of the in-flight budget, given back when the message is dropped.
    charge: Option<Charge>,
    /// Length of the key at the start of `bytes`; `None` when the message has no key.
    key_len: Option<u32>,
    /// Length of the payload after the key; `None` for a tombstone.
    payload_len: Option<u32>,
}

impl Msg {
    /// A message from its parts; a header without a value is kept with an empty one.
    pub fn new<'h>(
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
    ) -> Msg {
        let len = key.map_or(0, <[u8]>::len)
            + payload.map_or(0, <[u8]>::len)
            + headers
                .clone()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>();
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(key.unwrap_or_default());
        bytes.extend_from_slice(payload.unwrap_or_default());
        for (k, v) in headers {
            for part in [k.as_bytes(), v] {
                bytes.extend_from_slice(&len_u32(part.len()).to_le_bytes());
                bytes.extend_from_slice(part);
            }
        }
        Msg {
            offset,
            bytes: bytes.into_boxed_slice(),
            charge: None,
            key_len: key.map(|k| len_u32(k.len())),
            payload_len: payload.map(|p| len_u32(p.len())),
        }
    }

    /// Counts the message against `budget` until it is dropped.
    fn charged(mut self, budget: &Arc<Budget>) -> Msg {
        let bytes = self.size();
        budget.used.fetch_add(bytes, Ordering::AcqRel);
        self.charge = Some(Charge {
            budget: budget.clone(),
            bytes,
        });
        self
    }

    fn from_kafka(m: &BorrowedMessage<'_>) -> Msg {
        // Each header read from librdkafka once (reading one checks its name's UTF-8): up to
        // eight (Sluice's events carry three) on the stack, the rest in a Vec.
        let mut few: [(&str, &[u8]); 8] = [("", &[]); 8];
        let (mut n, mut more) = (0, Vec::new());
        if let Some(hs) = m.headers() {
            for h in hs.iter() {
                let h = (h.key, h.value.unwrap_or_default());
                match few.get_mut(n) {
                    Some(slot) => {
                        *slot = h;
                        n += 1;
                    }
                    None => more.push(h),
                }
            }
        }
        let headers = few[..n].iter().copied().chain(more.iter().copied());
        Msg::new(m.offset(), m.key(), m.payload(), headers)
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.bytes[..n as usize])
    }

    pub fn payload(&self) -> Option<&[u8]> {
        let start = self.key_len.unwrap_or(0) as usize;
        self.payload_len
            .map(|n| &self.bytes[start..start + n as usize])
    }

    /// The headers in the order the message had them.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let start = self.key_len.unwrap_or(0) as usize + self.payload_len.unwrap_or(0) as usize;
        let mut rest = &self.bytes[start..];
        std::iter::from_fn(move || {
            let name = take_part(&mut rest)?;
            let value = take_part(&mut rest)?;
            // Names were `&str` when stored.
            Some((std::str::from_utf8(name).unwrap_or_default(), value))
        })
    }

    fn size(&self) -> usize {
        self.payload_len.unwrap_or(0) as usize + self.key_len.unwrap_or(0) as usize
    }
}

/// A Kafka message is far below 4 GiB (`message.max.bytes` is an `i32`).
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Splits one length-prefixed part off the front of `rest`.
fn take_part<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let part = tail.get(..len)?;
    *rest = &tail[len..];
    Some(part)
}

/// Bytes of the messages read from Kafka and not yet dropped (queued for a worker, held back
/// while its partition is paused, or in a batch being written), all partitions together.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
    /// Signalled when `used` falls below `limit`.
    room: Notify,
}

impl Budget {
    fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
            room: Notify::new(),
        })
    }

    fn full(&self) -> bool {
        self.used.load(Ordering::Acquire) >= self.limit
    }

    /// Below half the limit: paused partitions may be resumed.
    fn low(&self) -> bool {
        self.used.load(Ordering::Acquire) < self.limit / 2
    }
}

/// One message's bytes in the [`Budget`].
#[derive(Debug)]
struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let b = &self.budget;
        let before = b.used.fetch_sub(self.bytes, Ordering::AcqRel);
        if before >= b.limit && before - self.bytes < b.limit {
            b.room.notify_one();
        }
    }
}

/// What every worker shares: the config, the rules, the targets, the dead-letter producer.
pub struct Env {
    pub config: SinkConfig,
    pub routing: Routing,
    pub targets: Vec<Target>,
    pub producer: FutureProducer,
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
}

type Tp = (String, i32);

/// How often the lag gauge asks the broker for high watermarks.
const LAG_INTERVAL: Duration = Duration::from_secs(10);
/// Messages the dispatcher hands on after one received through its select, as long as the
/// consumer has them ready.
const BURST: usize = 256;

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

impl ClientContext for Ctx {}

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

/// A message its worker had no room for yet.
struct Blocked {
    tp: Tp,
    tx: mpsc::Sender<Msg>,
    msg: Msg,
    since: tokio::time::Instant,
}

/// What ended the dispatcher's wait, besides its timers.
enum Woke<'c> {
    /// The workers fell below `max_in_flight_bytes` (`room`), or `pause_after_ms` passed.
    Budget {
        room: bool,
    },
    /// The blocked message's worker has room (a permit), stopped (`Ok(Err)`), or
    /// `pause_after_ms` passed (`Err`).
    Worker(Result<Result<mpsc::OwnedPermit<Msg>, SendError<()>>, Elapsed>),
    Message(KafkaResult<BorrowedMessage<'c>>),
}

struct Dispatcher {
    env: Arc<Env>,
    shared: Arc<Shared>,
    consumer: Arc<StreamConsumer<Ctx>>,
    budget: Arc<Budget>,
}

impl Dispatcher {
    async fn run(self, cancel: CancellationToken) -> Result<(), SinkError> {
        let (fatal_tx, mut fatal_rx) = mpsc::channel::<SinkError>(16);
        let mut commit_tick = tokio::time::interval(self.env.config.consumer.commit_interval());
        let mut flush_tick = tokio::time::interval(Duration::from_millis(10));
        let mut errors = RateLimit::new(Duration::from_secs(10));
        let mut lag_tick = tokio::time::interval(LAG_INTERVAL);
        // A message whose worker's channel is full: nothing more is read until it has room
        // (librdkafka's own prefetch bound then holds the rest back, and nothing fetched is
        // dropped), or until `pause_after` passes and its partition is paused instead, so one
        // stuck worker cannot hold up the other partitions for long.
        let pause_after = Duration::from_millis(self.env.config.consumer.pause_after_ms);
        let mut blocked: Option<Blocked> = None;
        // The workers hold max_in_flight_bytes: nothing more is read until they are below it,
        // or for `pause_after`; then every partition is paused (flush_overflow resumes them
        // when the workers are below half of it), and the consumer is polled again meanwhile.
        let mut full_since: Option<tokio::time::Instant> = None;
        let mut paused_for_room = false;
        loop {
            if !self.budget.full() {
                (full_since, paused_for_room) = (None, false);
            }
            // Besides its timers, the loop waits for one thing: room in the blocked message's
            // worker, else room under the byte bound, else the next message.
            let worker = blocked.as_ref().map(|b| (b.tx.clone(), b.since));
            let budget_since = (worker.is_none() && self.budget.full() && !paused_for_room)
                .then(|| *full_since.get_or_insert_with(tokio::time::Instant::now));
            let next = async {
                if let Some((tx, since)) = worker {
                    return Woke::Worker(
                        tokio::time::timeout_at(since + pause_after, tx.reserve_owned()).await,
                    );
                }
                if let Some(since) = budget_since {
                    let room = self.budget.room.notified();
                    let room = tokio::time::timeout_at(since + pause_after, room).await;
                    return Woke::Budget { room: room.is_ok() };
                }
                Woke::Message(self.consumer.recv().await)
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                Some(e) = fatal_rx.recv() => return Err(e),
                _ = commit_tick.tick() => self.commit(),
                _ = flush_tick.tick() => self.flush_overflow(),
                _ = lag_tick.tick() => self.report_lag(),
                woke = next => match woke {
                    Woke::Budget { room: true } => {}
                    Woke::Budget { room: false } => {
                        self.pause_all();
                        paused_for_room = true;
                    }
                    Woke::Worker(room) => {
                        if let Some(b) = blocked.take() {
                            match room {
                                Ok(Ok(permit)) => {
                                    permit.send(b.msg);
                                }
                                // The worker stopped with a fatal error; the loop receives it
                                // next.
                                Ok(Err(_)) => {}
                                Err(_) => self.hold_back(b),
                            }
                        }
                    }
                    Woke::Message(Ok(m)) => {
                        blocked = self.dispatch(&m, &fatal_tx);
                        drop(m);
                        // What the consumer already holds goes out without a trip through
                        // the select per message (its timers cost more than a dispatch).
                        for _ in 0..BURST {
                            if blocked.is_some() || self.budget.full() {
                                break;
                            }
                            match self.consumer.recv().now_or_never() {
                                Some(Ok(m)) => blocked = self.dispatch(&m, &fatal_tx),
                                _ => break,
                            }
                        }
                    }
                    Woke::Message(Err(e)) => {
                        if let Some(held_back) = errors.allow(Instant::now()) {
                            tracing::warn!(held_back, "Kafka consumer: {e}; retrying");
                        }
                    }
                },
            }
        }
    }

    /// Pauses every partition with a worker, until the workers are below half the budget.
    fn pause_all(&self) {
        let tps: Vec<Tp> = {
            let mut state = self.shared.lock();
            state
                .workers
                .iter_mut()
                .filter(|(_, h)| !h.paused)
                .map(|(tp, h)| {
                    h.paused = true;
                    h.waits_for_budget = true;
                    tp.clone()
                })
                .collect()
        };
        tracing::debug!(
            partitions = tps.len(),
            "the workers hold consumer.max_in_flight_bytes; pausing every partition until they are below half of it"
        );
        for tp in &tps {
            self.pause(tp, true);
        }
    }

    /// A blocked message whose worker found no room within `pause_after_ms`: it waits in the
    /// partition's overflow, and the partition is paused until the worker catches up.
    fn hold_back(&self, b: Blocked) {
        let mut state = self.shared.lock();
        let Some(handle) = state.workers.get_mut(&b.tp) else {
            return;
        };
        handle.overflow.push_back(b.msg);
        if !handle.paused {
            handle.paused = true;
            drop(state);
            self.pause(&b.tp, true);
        }
    }

    /// Hands the message to its partition's worker; returns it when the worker's channel is
    /// full.
    fn dispatch(
        &self,
        m: &BorrowedMessage<'_>,
        fatal: &mpsc::Sender<SinkError>,
    ) -> Option<Blocked> {
        let tp = (m.topic().to_owned(), m.partition());
        let mut state = self.shared.lock();
        if !state.assigned.contains(&tp) {
            // A message of a partition revoked in the meantime; its next owner reads it.
            return None;
        }
        let msg = Msg::from_kafka(m).charged(&self.budget);
        if !state.workers.contains_key(&tp) {
            let handle = spawn_worker(&self.env, &tp, fatal.clone());
            state.workers.insert(tp.clone(), handle);
        }
        let handle = state.workers.get_mut(&tp)?;
        handle.next = msg.offset + 1;
        let msg = if handle.overflow.is_empty() {
            match handle.tx.try_send(msg) {
                Ok(()) => return None,
                Err(mpsc::error::TrySendError::Full(msg)) if !handle.paused => {
                    return Some(Blocked {
                        tx: handle.tx.clone(),
                        tp,
                        msg,
                        since: tokio::time::Instant::now(),
                    })
                }
                Err(mpsc::error::TrySendError::Full(msg)) => msg,
                // The worker stopped with a fatal error, which the loop is about to receive.
                Err(mpsc::error::TrySendError::Closed(_)) => return None,
            }
        } else {
            msg
        };
        handle.overflow.push_back(msg);
        // Pausing makes the consumer drop what it prefetched and fetch again from this offset on
        // resume, so it is kept for real backlogs: as many messages again as the channel holds.
        if !handle.paused && handle.overflow.len() >= self.env.config.consumer.max_in_flight {
            handle.paused = true;
            self.pause(&tp, true);
        }
        None
    }

    /// Moves held-back messages into workers that have room again; resumes their partitions.
    fn flush_overflow(&self) {
        let mut resume = Vec::new();
        {
            let mut state = self.shared.lock();
            for (tp, h) in state.workers.iter_mut() {
                while let Some(msg) = h.overflow.pop_front() {
                    match h.tx.try_send(msg) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(msg)) => {
                            h.overflow.push_front(msg);
                            break;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            h.overflow.clear();
                            break;
                        }
                    }
                }
                if h.paused && h.overflow.is_empty() && (!h.waits_for_budget || self.budget.low()) {
                    h.paused = false;
                    h.waits_for_budget = false;
                    resume.push((tp.clone(), h.next));
                }
            }
        }
        for (tp, next) in resume {
            self.pause(&tp, false);
            self.wake_fetcher(&tp, next);
        }
    }

    /// Seeks a resumed partition to where it already is, without waiting. librdkafka (2.12)
    /// does not wake its broker thread on a resume: the partition's next fetch waited for that
    /// thread's idle timeout, about 1 s after the pause, on every resume (measured against
    /// Apache Kafka 4.3: 970 ms per pause of 30 ms; 2 ms with this seek). A seek is an
    /// operation on the broker thread, which starts the fetch at once.
    fn wake_fetcher(&self, (topic, partition): &Tp, next: i64) {
        if next < 0 {
            return;
        }
        if let Err(e) = self
            .consumer
            .seek(topic, *partition, Offset::Offset(next), Duration::ZERO)
        {
            tracing::debug!(topic, partition, next, "seek after resume: {e}");
        }
    }

    fn pause(&self, (topic, partition): &Tp, pause: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, *partition);
        let r = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        if let Err(e) = r {
            tracing::warn!(topic, partition, "cannot pause/resume partition: {e}");
        }
    }

    /// Commits every partition whose watermark moved; reports lag per partition.
    fn commit(&self) {
        let mut tpl = TopicPartitionList::new();
        {
            let mut state = self.shared.lock();
            for ((topic, partition), h) in state.workers.iter_mut() {
                let done = h.done.load(Ordering::Acquire);
                if done > h.committed
                    && tpl
                        .add_partition_offset(topic, *partition, Offset::Offset(done))
                        .is_ok()
                {
                    h.committed = done;
                }
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!("offset commit failed: {e}; the next commit retries it");
            }
        }
    }

    /// Sets `sluice_sink_lag_messages` per partition: high watermark minus the done offset.
    /// Asks the broker for the watermarks, so it runs on a blocking thread, off the loop.
    fn report_lag(&self) {
        let positions: Vec<(Tp, i64)> = {
            let state = self.shared.lock();
            state
                .workers
                .iter()
                .map(|(tp, h)| (tp.clone(), h.done.load(Ordering::Acquire)))
                .filter(|(_, done)| *done >= 0)
                .collect()
        };
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            for ((topic, partition), done) in positions {
                if let Ok((_, high)) =
                    consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5))
                {
                    metrics::gauge!("sluice_sink_lag_messages",
                        "topic" => topic, "partition" => partition.to_string())
                    .set((high - done).max(0) as f64);
                }
            }
        });
    }
}

fn spawn_worker(env: &Arc<Env>, (topic, partition): &Tp, fatal: mpsc::Sender<SinkError>) -> Handle {
    let (tx, rx) = mpsc::channel(env.config.consumer.max_in_flight);
    let done = Arc::new(AtomicI64::new(-1));
    let stop = Stop::default();
    let join = tokio::spawn({
        let (env, topic, partition, done, stop) = (
            env.clone(),
            topic.clone(),
            *partition,
            done.clone(),
            stop.clone(),
        );
        async move {
            if let Err(e) = worker::run(env, topic, partition, rx, done, stop).await {
                let _ = fatal.try_send(e);
            }
        }
    });
    Handle {
        tx,
        overflow: VecDeque::new(),
        paused: false,
        waits_for_budget: false,
        done,
        committed: -1,
        next: -1,
        stop,
        join,
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

/// librdkafka properties shared by the consumer, the producer and the admin clients.
pub fn kafka_client_config(config: &SinkConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    // Bounded prefetch: a paused or slow partition cannot fill memory.
    c.set("queued.max.messages.kbytes", "16384");
    // Once that prefetch is full librdkafka waits this long before it fetches the partition
    // again, even when the sink has long since taken the messages (default 1000 ms): a sink
    // held by its in-flight bound then read in bursts with ~1 s gaps. Against Apache Kafka 4.3,
    // 300,000 events through a no-op target took 4.0 s with the default and 1.5 s with 10 ms.
    c.set("fetch.queue.backoff.ms", "10");
    for (k, v) in config.kafka.client_properties() {
        c.set(k, v);
    }
    c
}

/// librdkafka properties only a consumer reads (scope `C` in librdkafka's CONFIGURATION.md). A
/// producer given one logs a CONFWARN at every start, and `kafka.options` are the consumer's.
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
];

/// [`kafka_client_config`] for the dead-letter producer: without the consumer-only properties.
pub fn kafka_producer_config(config: &SinkConfig) -> ClientConfig {
    let mut c = kafka_client_config(config);
    for k in CONSUMER_ONLY {
        c.remove(k);
    }
    c
}

pub(crate) fn kafka_error(
    config: &SinkConfig,
    what: &str,
    source: rdkafka::error::KafkaError,
) -> SinkError {
    SinkError::Kafka {
        brokers: config.kafka.brokers.join(","),
        what: what.to_owned(),
        error: Box::new(source),
    }
}

#[cfg(test)]
mod config_tests {
    use super::{kafka_client_config, kafka_producer_config};
    use crate::config::SinkConfig;

    #[test]
    fn the_dead_letter_producer_gets_no_consumer_only_properties() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/sink.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text = text.replacen(
            "[kafka]\n",
            "[kafka]\noptions = { \"fetch.wait.max.ms\" = \"10\", \"socket.timeout.ms\" = \"5000\" }\n",
            1,
        );
        let c = sluice_config::parse::<SinkConfig>(&text, &path, |_| None).unwrap();
        let consumer = kafka_client_config(&c);
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("10"));
        assert!(consumer.get("queued.max.messages.kbytes").is_some());
        let producer = kafka_producer_config(&c);
        assert_eq!(producer.get("fetch.wait.max.ms"), None);
        assert_eq!(producer.get("queued.max.messages.kbytes"), None);
        assert_eq!(producer.get("socket.timeout.ms"), Some("5000"));
        assert!(producer.get("bootstrap.servers").is_some());
    }
}

#[cfg(test)]
mod msg_tests {
    use super::{Budget, Msg};
    use futures::FutureExt as _;

    #[test]
    fn the_budget_counts_messages_until_they_are_dropped_and_signals_room() {
        let budget = Budget::new(100);
        let msg = |n: usize| Msg::new(0, None, Some(&vec![b'x'; n]), std::iter::empty());
        let a = msg(60).charged(&budget);
        assert!(!budget.full() && !budget.low());
        let b = msg(45).charged(&budget);
        assert!(budget.full());
        // Nothing has been given back yet: no room to signal.
        assert!(budget.room.notified().now_or_never().is_none());
        drop(a);
        assert!(!budget.full() && budget.low());
        assert!(
            budget.room.notified().now_or_never().is_some(),
            "room signalled"
        );
        drop(b);
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::Acquire), 0);
        // An uncharged message (tests, the DLQ) counts nothing.
        drop(msg(500));
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::Acquire), 0);
    }

    #[test]
    fn a_message_keeps_its_parts() {
        let headers: [(&str, &[u8]); 3] = [("sluice-seq", b"7"), ("empty", b""), ("é", b"\0\xff")];
        let m = Msg::new(9, Some(b"k"), Some(b"{}"), headers.into_iter());
        assert_eq!(m.offset, 9);
        assert_eq!(m.key(), Some(&b"k"[..]));
        assert_eq!(m.payload(), Some(&b"{}"[..]));
        assert_eq!(m.headers().collect::<Vec<_>>(), headers);
        assert_eq!(m.size(), 3);

        let m = Msg::new(0, None, None, std::iter::empty());
        assert_eq!((m.key(), m.payload(), m.headers().count()), (None, None, 0));
        let m = Msg::new(0, Some(b""), Some(b""), std::iter::empty());
        assert_eq!((m.key(), m.payload()), (Some(&b""[..]), Some(&b""[..])));
        let m = Msg::new(0, None, Some(b"p"), headers[..1].iter().copied());
        assert_eq!(m.payload(), Some(&b"p"[..]));
        assert_eq!(m.headers().collect::<Vec<_>>(), &headers[..1]);
    }
}
