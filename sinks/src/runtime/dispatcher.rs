//! The dispatcher: one loop that reads the consumer, hands each message to its partition's
//! worker, applies backpressure (pause, resume, the byte budget), commits and reports lag.

use super::worker::{self, Stop};
use super::{Budget, Ctx, Env, Handle, Msg, Position, RateLimit, Shared, Tp};
use crate::error::SinkError;
use futures::FutureExt as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_ops::now_ms;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendError;
use tokio::time::error::Elapsed;
use tokio_util::sync::CancellationToken;

/// How often the partitions' lag is taken.
const LAG_INTERVAL: Duration = Duration::from_secs(1);
/// Messages the dispatcher hands on after one received through its select, as long as the
/// consumer has them ready.
const BURST: usize = 256;

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

pub(super) struct Dispatcher {
    pub(super) env: Arc<Env>,
    pub(super) shared: Arc<Shared>,
    pub(super) consumer: Arc<StreamConsumer<Ctx>>,
    pub(super) budget: Arc<Budget>,
}

impl Dispatcher {
    pub(super) async fn run(self, cancel: CancellationToken) -> Result<(), SinkError> {
        let (fatal_tx, mut fatal_rx) = mpsc::channel::<SinkError>(16);
        let mut commit_tick = tokio::time::interval(self.env.config.consumer.commit_interval());
        let mut flush_tick = tokio::time::interval(Duration::from_millis(10));
        let mut errors = RateLimit::new(Duration::from_secs(10));
        // Errors that hold partitions back until the config changes: their own limit, so the
        // broker errors that follow them do not hide them.
        let mut stuck = RateLimit::new(Duration::from_secs(10));
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
                        match super::kafka::consumer_error_advice(&self.env.config, &e) {
                            Some(advice) => {
                                if let Some(held_back) = stuck.allow(Instant::now()) {
                                    tracing::error!(held_back, "Kafka consumer: {e}; {advice}");
                                }
                            }
                            None => {
                                if let Some(held_back) = errors.allow(Instant::now()) {
                                    tracing::warn!(held_back, "Kafka consumer: {e}; retrying");
                                }
                            }
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

    /// Takes every partition's position to the tally (lag in messages and seconds) and sets
    /// the per-partition gauges. The high watermarks come from librdkafka's statistics (what
    /// the consumer heard with its fetches; no broker call), so this runs on the loop.
    fn report_lag(&self) {
        let (positions, assigned) = {
            let state = self.shared.lock();
            let positions: Vec<Position> = state
                .workers
                .iter()
                .map(|(tp, h)| Position {
                    tp: tp.clone(),
                    done: h.done.load(Ordering::Acquire),
                    done_ts_ms: h.done_ts.load(Ordering::Acquire),
                    high: state.highs.get(tp).copied().unwrap_or(-1),
                })
                .collect();
            let mut assigned: BTreeMap<String, usize> = BTreeMap::new();
            for (topic, _) in &state.assigned {
                *assigned.entry(topic.clone()).or_default() += 1;
            }
            (positions, assigned)
        };
        for (topic, n) in assigned {
            metrics::gauge!("sluice_sink_assigned_partitions", "topic" => topic).set(n as f64);
        }
        for ((topic, partition), behind, lag) in self.env.tally.positions(positions, now_ms()) {
            let partition = partition.to_string();
            metrics::gauge!("sluice_sink_lag_messages",
                "topic" => topic.clone(), "partition" => partition.clone())
            .set(behind as f64);
            metrics::gauge!("sluice_sink_partition_lag_seconds",
                "topic" => topic, "partition" => partition)
            .set(lag);
        }
    }
}

fn spawn_worker(env: &Arc<Env>, (topic, partition): &Tp, fatal: mpsc::Sender<SinkError>) -> Handle {
    let (tx, rx) = mpsc::channel(env.config.consumer.max_in_flight);
    let done = Arc::new(AtomicI64::new(-1));
    let done_ts = Arc::new(AtomicI64::new(0));
    let stop = Stop::default();
    let join = tokio::spawn({
        let (env, topic, partition, done, done_ts, stop) = (
            env.clone(),
            topic.clone(),
            *partition,
            done.clone(),
            done_ts.clone(),
            stop.clone(),
        );
        async move {
            if let Err(e) = worker::run(env, topic, partition, rx, done, done_ts, stop).await {
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
        done_ts,
        committed: -1,
        next: -1,
        stop,
        join,
    }
}
