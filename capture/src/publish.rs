//! The publisher: sends encoded batches to Kafka and saves checkpoints behind acknowledgements.
//!
//! One message per event (key, explicit murmur2 partition, headers), a bounded window of
//! unacknowledged messages, and checkpoints saved only once everything before them is
//! acknowledged. The batches are built by the reader (`encoded`).

mod encoded;
mod txn;

pub use encoded::{Encoded, Spares};
pub use txn::Txn;

use crate::acks::{AckContext, Acks};
use crate::checkpoint::{Checkpoint, FileStore};
use crate::clients::{producer_config, Producer};
use crate::clock::now_ms;
use crate::config::CaptureConfig;
use crate::error::CaptureError;
use crate::kafka_store::KafkaStore;
use crate::topics::{partition_count, Topics};
use encoded::{Item, Names};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use sluice_config::KafkaWatch;
use sluice_event::{partition_for_key, EventType};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Re-exported where the end-to-end tests look for it (they build a [`KafkaStore`] with it).
pub use crate::clients::admin_config;

/// Builds the data producer: librdkafka reports deliveries to `acks` (no per-message future)
/// when the publisher polls it ([`Publisher`]); no thread of its own polls it.
pub fn fast_producer(
    cfg: &CaptureConfig,
    acks: Arc<Acks>,
) -> Result<BaseProducer<AckContext>, CaptureError> {
    let mut config = producer_config(cfg);
    if cfg.publish.transactional {
        // Only this producer: a second one with the same id would fence it.
        config.set("transactional.id", cfg.transactional_id());
    }
    config.create_with_context(AckContext(acks)).map_err(|e| {
        CaptureError::kafka(
            format!("creating a producer for {}", cfg.kafka.brokers.join(",")),
            KafkaWatch::new(&cfg.kafka).explain(e),
        )
    })
}

/// Opens the data producer's broker connections, so librdkafka has its idempotent producer id
/// before the first message. librdkafka asks for the id when a metadata response arrives and a
/// broker connection is up, else only on a 500 ms timer: the first metadata request goes to the
/// bootstrap address, the second to the broker it named, whose connection is then up. Returns
/// the partition count of `topic` when the metadata lists it; errors are left to what follows.
pub async fn connect(
    producer: Arc<BaseProducer<AckContext>>,
    topic: Option<String>,
) -> Option<u32> {
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let mut partitions = None;
        for _ in 0..2 {
            let md = producer
                .client()
                .fetch_metadata(topic.as_deref(), Duration::from_secs(2))?;
            partitions = topic.as_deref().and_then(|t| partition_count(&md, t));
        }
        Ok::<_, KafkaError>(partitions)
    })
    .await;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        ok = matches!(result, Ok(Ok(_))),
        "data producer connected"
    );
    result.ok().and_then(Result::ok).flatten()
}

/// Sends events and saves checkpoints once everything before them is acknowledged.
pub struct Publisher {
    /// Metadata lookups and the Kafka checkpoint store.
    pub producer: Producer,
    /// The data path. Its delivery reports are served by `Publisher::serve`, on this task's
    /// thread: librdkafka frees each delivered message where its report is served, and the
    /// message was allocated here too. With rdkafka's `ThreadedProducer`, a polling thread of
    /// its own freed them: mimalloc's cross-thread frees were ~7% of the capture's samples,
    /// plus a wake-up of that thread per produce request (docs/performance.md).
    pub fast: Arc<BaseProducer<AckContext>>,
    pub acks: Arc<Acks>,
    pub topics: Topics,
    pub store: FileStore,
    pub kafka_store: Option<KafkaStore>,
    pub window: usize,
    pub interval: Duration,
    /// Where sent batches go back to the reader.
    pub spares: Spares,
    /// Exactly once (`publish.transactional`): events and their checkpoint are committed in
    /// Kafka transactions; the file and plain Kafka stores are then not written.
    pub txn: Option<Txn>,
}

impl Publisher {
    /// Runs until `rx` closes (then waits for every acknowledgement) or `cancel` fires.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Encoded>,
        cancel: CancellationToken,
    ) -> Result<(), CaptureError> {
        // Checkpoints waiting for the messages sent before them: (messages sent, checkpoint).
        let mut waiting: VecDeque<(u64, Checkpoint)> = VecDeque::new();
        let mut acked: Option<Checkpoint> = None;
        let mut saved: Option<Checkpoint> = None;
        // The checkpoint being written: one at a time, in order, off this loop, because an
        // fsync on a busy disk took up to 40 ms and stopped sending for that long.
        let mut saving: Option<Saving> = None;
        let mut sent: u64 = 0;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        let fixed_topic = self.topics.fixed_name();
        // How long to wait before serving delivery reports again while messages are
        // unacknowledged: short while reports keep coming, longer while none do (a broker
        // outage), so waiting costs no more than a few wake-ups a second.
        let mut nap = NAP_MIN;
        let tally = crate::tally::get();
        tally.restart_numbering();
        loop {
            if self.serve() {
                nap = NAP_MIN;
            }
            let (low, unacked) = self.watermark()?;
            tally.acknowledged(low);
            while waiting.front().is_some_and(|(n, _)| *n <= low) {
                acked = waiting.pop_front().map(|(_, cp)| cp);
            }
            if !open && unacked == 0 && waiting.is_empty() {
                break;
            }
            let full = unacked >= self.window;
            let is_saving = saving.is_some();
            let save_done = async {
                match saving.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                done = save_done, if is_saving => {
                    saving = None;
                    saved = Some(self.saved(done)?);
                }
                _ = tick.tick() => {
                    if self.txn.as_ref().is_some_and(|t| t.due(std::time::Instant::now())) {
                        self.commit().await?;
                    } else if self.txn.is_none() && saving.is_none() {
                        saving = self.start_save(&acked, &saved);
                    }
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        let (low, unacked) = self.watermark()?;
                        tracing::debug!(sent, acked = low, unacked, batches_queued = rx.len(), checkpoints_waiting = waiting.len(), "publisher");
                    }
                }
                // Serve delivery reports again: acknowledgements pop checkpoints and make room.
                _ = tokio::time::sleep(nap), if unacked > 0 => nap = (nap * 2).min(NAP_MAX),
                batch = rx.recv(), if open && !full => match batch {
                    None => open = false,
                    Some(batch) => {
                        sent = self.send_batch(batch, fixed_topic.as_deref(), sent, &mut waiting).await?;
                    }
                },
            }
        }
        if self.txn.is_some() {
            return self.end_transaction().await;
        }
        let (low, _) = self.watermark()?;
        while waiting.front().is_some_and(|(n, _)| *n <= low) {
            acked = waiting.pop_front().map(|(_, cp)| cp);
        }
        if let Some(task) = saving.take() {
            saved = Some(self.saved(task.await)?);
        }
        if let Some(task) = self.start_save(&acked, &saved) {
            self.saved(task.await)?;
        }
        Ok(())
    }

    /// Handles the delivery reports librdkafka has ready (acknowledgements and failures, into
    /// [`Acks`]); returns whether there were any.
    fn serve(&self) -> bool {
        let start = self.acks.reports();
        let mut seen = start;
        loop {
            // One queued event per call: a delivery report covers one produce request's
            // messages, or an error event (logged by the context).
            self.fast.poll(Duration::ZERO);
            let now = self.acks.reports();
            if now == seen {
                return now != start;
            }
            seen = now;
        }
    }

    fn watermark(&self) -> Result<(u64, usize), CaptureError> {
        self.acks
            .state()
            .map_err(|(source, what)| self.failure(what, source))
    }

    /// A Kafka error as the capture reports it (a fenced transactional producer told apart).
    fn failure(&self, what: String, source: KafkaError) -> CaptureError {
        match &self.txn {
            Some(t) => t.failure(
                what,
                source,
                self.fast.client().fatal_error().map(|(code, _)| code),
            ),
            None => CaptureError::Kafka { what, source },
        }
    }

    /// Starts writing `acked` (to the file, then the Kafka store) unless it is saved already.
    fn start_save(&self, acked: &Option<Checkpoint>, saved: &Option<Checkpoint>) -> Option<Saving> {
        let cp = acked.as_ref()?;
        if saved.as_ref() == Some(cp) {
            return None;
        }
        let cp = cp.clone();
        let store = self.store.clone();
        let kafka_store = self.kafka_store.clone();
        let producer = self.producer.client.clone();
        Some(tokio::spawn(async move {
            let mut stamped = cp.clone();
            let now = now_ms();
            stamped.saved_ms = now;
            let file = stamped.clone();
            let path = store.path().display().to_string();
            tokio::task::spawn_blocking(move || store.save(&file))
                .await
                .map_err(|e| CaptureError::CheckpointIo {
                    path,
                    source: std::io::Error::other(e.to_string()),
                })??;
            if let Some(k) = &kafka_store {
                k.save(&producer, &stamped).await?;
            }
            metrics::gauge!("sluice_capture_last_checkpoint_timestamp_seconds")
                .set(now as f64 / 1000.0);
            crate::tally::get().checkpoint_saved(now);
            Ok(cp)
        }))
    }

    /// The checkpoint a finished save wrote, or its error.
    fn saved(
        &self,
        done: Result<Result<Checkpoint, CaptureError>, tokio::task::JoinError>,
    ) -> Result<Checkpoint, CaptureError> {
        done.map_err(|e| CaptureError::CheckpointIo {
            path: self.store.path().display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// Hands a batch's messages to librdkafka; queues its checkpoints behind them. Returns the
    /// count of messages sent so far.
    async fn send_batch(
        &mut self,
        mut batch: Encoded,
        fixed_topic: Option<&str>,
        mut sent: u64,
        waiting: &mut VecDeque<(u64, Checkpoint)>,
    ) -> Result<u64, CaptureError> {
        // Per table of the batch: its topic and the topic's partition count.
        let mut topics: Vec<(std::borrow::Cow<'_, str>, u32)> =
            Vec::with_capacity(batch.tables.len());
        for n in &batch.tables {
            let topic: std::borrow::Cow<'_, str> = match fixed_topic {
                Some(t) => t.into(),
                None => self.topics.name_of(&n.database, &n.table).into(),
            };
            let partitions = self.topics.partitions(&self.producer, &topic).await?;
            topics.push((topic, partitions));
        }
        // The batch's messages are numbered at once (one lock instead of one per message).
        let mut id = self.acks.register(batch.messages);
        // The `sluice-seq` header's text, rewritten for every message (librdkafka copies it).
        let mut seq = Vec::with_capacity(20);
        // Events counted per run of the same table and type, to keep allocations off this loop.
        let mut run_of: Option<Run> = None;
        let now = now_ms();
        let mut start = 0;
        let mut result = Ok(());
        for item in batch.items.drain(..) {
            let (key_end, value_end, seq_no, kind, table, ts_ms) = match item {
                Item::Commit(cp) => {
                    match self.txn.as_mut() {
                        Some(t) => {
                            t.boundary(cp);
                            if t.due(std::time::Instant::now()) {
                                if let Err(e) = self.commit().await {
                                    result = Err(e);
                                    break;
                                }
                            }
                        }
                        None => waiting.push_back((sent, cp)),
                    }
                    continue;
                }
                Item::Message {
                    key_end,
                    value_end,
                    seq,
                    kind,
                    table,
                    ts_ms,
                } => (key_end, value_end, seq, kind, table, ts_ms),
            };
            let size = (value_end - start) as u64;
            match &mut run_of {
                Some(r) if r.table == table && r.kind == kind => {
                    r.n += 1;
                    r.last = id;
                    r.bytes += size;
                }
                _ => {
                    count_events(&batch.tables, run_of.take(), now);
                    run_of = Some(Run {
                        table,
                        kind,
                        n: 1,
                        last: id,
                        first_ts_ms: ts_ms,
                        bytes: size,
                    });
                }
            }
            seq.clear();
            sluice_event::write_i64(&mut seq, seq_no);
            let message = Message {
                id,
                topic: &topics[table].0,
                partitions: topics[table].1,
                key: &batch.bytes[start..key_end],
                value: &batch.bytes[key_end..value_end],
                seq: &seq,
                kind: kind.as_str(),
                qualified: &batch.tables[table].qualified,
            };
            start = value_end;
            if let Err(e) = self.begin_if_needed().await {
                self.acks.unregister_from(id);
                result = Err(e);
                break;
            }
            result = self.produce(message).await;
            if result.is_err() {
                // This message and the rest of the batch were not sent.
                self.acks.unregister_from(id);
                break;
            }
            if let Some(t) = self.txn.as_mut() {
                t.sent();
            }
            sent += 1;
            id += 1;
        }
        if result.is_err() {
            // The run's last message was not sent.
            run_of = run_of.filter(|r| r.n > 1).map(|r| Run {
                n: r.n - 1,
                last: r.last - 1,
                ..r
            });
        }
        count_events(&batch.tables, run_of, now);
        self.spares.put(batch);
        result.map(|()| sent)
    }

    async fn produce(&mut self, m: Message<'_>) -> Result<(), CaptureError> {
        let Message {
            id,
            topic,
            partitions,
            key,
            value,
            seq,
            kind,
            qualified,
        } = m;
        let partition = partition_for_key(key, partitions) as i32;
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: sluice_event::HEADER_SEQ,
                value: Some(seq),
            })
            .insert(Header {
                key: sluice_event::HEADER_TYPE,
                value: Some(kind.as_bytes()),
            })
            .insert(Header {
                key: sluice_event::HEADER_TABLE,
                value: Some(qualified.as_bytes()),
            });
        let mut record = BaseRecord::with_opaque_to(topic, id as usize)
            .key(key)
            .payload(value)
            .partition(partition)
            .headers(headers);
        loop {
            match self.fast.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // librdkafka's queue is full: serve acknowledgements to drain it.
                    record = r;
                    if !self.serve() {
                        tokio::time::sleep(NAP_MIN).await;
                    }
                    self.watermark()?;
                }
                Err((source, _)) => {
                    metrics::counter!("sluice_capture_kafka_errors_total").increment(1);
                    crate::tally::get().error();
                    return Err(self.failure(format!("sending to {topic}"), source));
                }
            }
        }
    }
}

/// The publisher serves delivery reports again after this long while messages are
/// unacknowledged and reports keep coming (librdkafka cannot wake it without `unsafe` FFI) ...
const NAP_MIN: Duration = Duration::from_millis(1);
/// ... doubling up to this while none come.
const NAP_MAX: Duration = Duration::from_millis(16);

/// A checkpoint being written; yields it once saved.
type Saving = tokio::task::JoinHandle<Result<Checkpoint, CaptureError>>;

/// One message as librdkafka gets it.
struct Message<'a> {
    /// Its number in [`Acks`].
    id: u64,
    topic: &'a str,
    partitions: u32,
    key: &'a [u8],
    value: &'a [u8],
    seq: &'a [u8],
    kind: &'static str,
    qualified: &'a str,
}

/// Consecutive messages of one table and type.
struct Run {
    table: usize,
    kind: EventType,
    n: u64,
    /// The number (in [`Acks`]) of its last message.
    last: u64,
    first_ts_ms: i64,
    bytes: u64,
}

/// Counts a run of messages handed to librdkafka (metrics, and the tally's lag per table).
fn count_events(tables: &[Names], run: Option<Run>, now_ms: i64) {
    if let Some(r) = run {
        let names = &tables[r.table];
        crate::tally::get().sent(
            &names.database,
            &names.table,
            r.kind,
            r.n,
            r.last,
            r.first_ts_ms,
            r.bytes,
            now_ms,
        );
    }
}
