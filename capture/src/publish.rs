//! Publishing to Kafka: one message per event (key, explicit murmur2 partition, headers), a
//! bounded window of unacknowledged messages, and checkpoints saved only behind acknowledgements.

use crate::checkpoint::{Checkpoint, FileStore};
use crate::config::CaptureConfig;
use crate::decoder::Output;
use crate::error::CaptureError;
use futures::FutureExt as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use sluice_event::{partition_for_key, ChangeEvent};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The librdkafka producer settings the capture relies on, before the user's own.
pub fn producer_config(cfg: &CaptureConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set(
        "enable.idempotence",
        if cfg.publish.idempotence {
            "true"
        } else {
            "false"
        },
    )
    .set("acks", "all")
    .set("compression.codec", &cfg.publish.compression)
    // Never give up on a message: a broker outage blocks the capture instead of losing data.
    .set("message.timeout.ms", "0")
    .set("allow.auto.create.topics", "false")
    .set("linger.ms", "5")
    .set("batch.num.messages", "10000")
    .set("queue.buffering.max.messages", "200000")
    .set("queue.buffering.max.kbytes", "65536");
    for (k, v) in cfg.kafka.client_properties() {
        c.set(k, v);
    }
    c
}

/// Builds the producer.
pub fn producer(cfg: &CaptureConfig) -> Result<FutureProducer, CaptureError> {
    producer_config(cfg)
        .create()
        .map_err(|source| CaptureError::Kafka {
            what: format!("creating a producer for {}", cfg.kafka.brokers.join(",")),
            source,
        })
}

/// Topic names from the template and their partition counts.
pub struct Topics {
    template: String,
    instance: String,
    partitions: HashMap<String, u32>,
    create: Option<(i32, i32)>,
    brokers: String,
    admin: ClientConfig,
}

impl Topics {
    pub fn new(cfg: &CaptureConfig) -> Topics {
        Topics {
            template: cfg.publish.topic.clone(),
            instance: cfg.instance.clone(),
            partitions: HashMap::new(),
            create: cfg
                .publish
                .create_topics
                .then_some((cfg.publish.partitions, cfg.publish.replication_factor)),
            brokers: cfg.kafka.brokers.join(","),
            admin: admin_config(cfg),
        }
    }

    /// The topic of an event.
    pub fn name(&self, ev: &ChangeEvent) -> String {
        render(&self.template, &self.instance, &ev.database, &ev.table)
    }

    /// The topic when the template does not depend on the table (checked at start-up).
    pub fn fixed_name(&self) -> Option<String> {
        (!self.template.contains("{database}") && !self.template.contains("{table}"))
            .then(|| render(&self.template, &self.instance, "", ""))
    }

    /// Partition count of `topic`, creating it if configured; a missing topic is a clear error.
    pub async fn partitions(
        &mut self,
        producer: &FutureProducer,
        topic: &str,
    ) -> Result<u32, CaptureError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let mut n = metadata_partitions(producer, topic).await?;
        if n == 0 {
            let Some((partitions, replication)) = self.create else {
                return Err(CaptureError::Topic(format!(
                    "topic {topic} does not exist on {}; create it (kafka-topics.sh --create --topic {topic} --partitions 6) or set publish.create_topics = true",
                    self.brokers
                )));
            };
            create_topic(&self.admin, topic, partitions, replication, &[]).await?;
            for _ in 0..50 {
                n = metadata_partitions(producer, topic).await?;
                if n > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if n == 0 {
                return Err(CaptureError::Topic(format!(
                    "topic {topic} was created but does not appear in the metadata of {}",
                    self.brokers
                )));
            }
        }
        self.partitions.insert(topic.to_owned(), n);
        Ok(n)
    }
}

fn render(template: &str, instance: &str, database: &str, table: &str) -> String {
    template
        .replace("{instance}", instance)
        .replace("{database}", database)
        .replace("{table}", table)
}

/// Partitions of `topic` per the brokers' metadata; 0 when it does not exist.
async fn metadata_partitions(producer: &FutureProducer, topic: &str) -> Result<u32, CaptureError> {
    let p = producer.clone();
    let t = topic.to_owned();
    let md = tokio::task::spawn_blocking(move || {
        p.client()
            .fetch_metadata(Some(&t), Duration::from_secs(10))
            .map(|md| {
                md.topics()
                    .iter()
                    .find(|x| x.name() == t)
                    .map(|x| {
                        if x.error().is_some() {
                            0
                        } else {
                            x.partitions().len() as u32
                        }
                    })
                    .unwrap_or(0)
            })
    })
    .await
    .map_err(|e| CaptureError::Topic(format!("metadata lookup for {topic} failed: {e}")))?;
    md.map_err(|source| CaptureError::Kafka {
        what: format!("reading metadata of topic {topic}"),
        source,
    })
}

/// Creates `topic` with the producer's connection settings; an existing topic is fine.
pub async fn create_topic(
    admin: &ClientConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
    config: &[(&str, &str)],
) -> Result<(), CaptureError> {
    let admin: AdminClient<DefaultClientContext> =
        admin.create().map_err(|source| CaptureError::Kafka {
            what: "creating an admin client".into(),
            source,
        })?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in config {
        new = new.set(k, v);
    }
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|source| CaptureError::Kafka {
            what: format!("creating topic {topic}"),
            source,
        })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(CaptureError::Topic(format!(
                    "creating topic {t} failed: {code}; create it by hand or check the user's CREATE permission"
                )))
            }
        }
    }
    Ok(())
}

/// Connection settings for admin and consumer clients.
pub fn admin_config(cfg: &CaptureConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in cfg.kafka.client_properties() {
        c.set(k, v);
    }
    c
}

enum Pending {
    Delivery(DeliveryFuture, Instant),
    Checkpoint(Checkpoint),
}

/// Sends events and saves checkpoints once everything before them is acknowledged.
pub struct Publisher {
    pub producer: FutureProducer,
    pub topics: Topics,
    pub store: FileStore,
    pub kafka_store: Option<crate::kafka_store::KafkaStore>,
    pub window: usize,
    pub interval: Duration,
}

impl Publisher {
    /// Runs until `rx` closes (then drains every acknowledgement) or `cancel` fires.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Vec<Output>>,
        cancel: CancellationToken,
    ) -> Result<(), CaptureError> {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut acked: Option<Checkpoint> = None;
        let mut saved: Option<Checkpoint> = None;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        let fixed_topic = self.topics.fixed_name();
        // Events counted per run of the same table and type, to keep allocations off the hot path.
        let mut run_of: Option<(String, String, &'static str, u64)> = None;
        loop {
            settle(&mut pending, &mut acked, false).await?;
            if !open {
                while !pending.is_empty() {
                    settle(&mut pending, &mut acked, true).await?;
                }
                break;
            }
            if pending.len() >= self.window {
                settle(&mut pending, &mut acked, true).await?;
                continue;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    self.save(&acked, &mut saved).await?;
                }
                batch = rx.recv() => {
                    match batch {
                        None => open = false,
                        Some(batch) => {
                            for out in batch {
                                match out {
                                    Output::Event(ev) => {
                                        let kind = ev.kind.as_str();
                                        match &mut run_of {
                                            Some((d, t, k, n)) if *d == ev.database && *t == ev.table && *k == kind => *n += 1,
                                            _ => {
                                                count_events(run_of.take());
                                                run_of = Some((ev.database.clone(), ev.table.clone(), kind, 1));
                                            }
                                        }
                                        self.send(&ev, fixed_topic.as_deref(), &mut pending, &mut acked).await?;
                                    }
                                    Output::Commit(cp) => pending.push_back(Pending::Checkpoint(cp)),
                                }
                            }
                            count_events(run_of.take());
                        }
                    }
                }
                // Wake up when the oldest message is acknowledged.
                done = front(&mut pending), if !pending.is_empty() => {
                    let (result, started) = done;
                    pending.pop_front();
                    delivered(result, started)?;
                }
            }
        }
        settle(&mut pending, &mut acked, false).await?;
        self.save(&acked, &mut saved).await?;
        Ok(())
    }

    async fn save(
        &mut self,
        acked: &Option<Checkpoint>,
        saved: &mut Option<Checkpoint>,
    ) -> Result<(), CaptureError> {
        let Some(cp) = acked else { return Ok(()) };
        if saved.as_ref() == Some(cp) {
            return Ok(());
        }
        let mut cp = cp.clone();
        let now = now_ms();
        cp.saved_ms = now;
        self.store.save(&cp)?;
        if let Some(k) = &self.kafka_store {
            k.save(&self.producer, &cp).await?;
        }
        metrics::gauge!("sluice_capture_last_checkpoint_timestamp_seconds")
            .set(now as f64 / 1000.0);
        cp.saved_ms = 0;
        *saved = Some(cp);
        Ok(())
    }

    async fn send(
        &mut self,
        ev: &ChangeEvent,
        fixed_topic: Option<&str>,
        pending: &mut VecDeque<Pending>,
        acked: &mut Option<Checkpoint>,
    ) -> Result<(), CaptureError> {
        let topic: std::borrow::Cow<'_, str> = match fixed_topic {
            Some(t) => t.into(),
            None => self.topics.name(ev).into(),
        };
        let partitions = self.topics.partitions(&self.producer, &topic).await?;
        let key = ev.key();
        let value = ev.encode();
        let partition = partition_for_key(&key, partitions) as i32;
        let mut headers = OwnedHeaders::new_with_capacity(3);
        for (name, v) in ev.headers() {
            headers = headers.insert(Header {
                key: name,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&value)
            .partition(partition)
            .headers(headers);
        loop {
            match self.producer.send_result(record) {
                Ok(fut) => {
                    pending.push_back(Pending::Delivery(fut, Instant::now()));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    if pending.iter().any(|p| matches!(p, Pending::Delivery(..))) {
                        settle(pending, acked, true).await?;
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err((source, _)) => {
                    metrics::counter!("sluice_capture_kafka_errors_total").increment(1);
                    return Err(CaptureError::Kafka {
                        what: format!("sending to {topic}"),
                        source,
                    });
                }
            }
        }
    }
}

type DeliveryResult = Result<
    rdkafka::producer::future_producer::OwnedDeliveryResult,
    futures::channel::oneshot::Canceled,
>;

/// Waits for the oldest pending delivery; the caller pops it. Never completes when the front
/// is a checkpoint (`settle` removes those first).
async fn front(pending: &mut VecDeque<Pending>) -> (DeliveryResult, Instant) {
    match pending.front_mut() {
        Some(Pending::Delivery(fut, started)) => ((&mut *fut).await, *started),
        _ => futures::future::pending().await,
    }
}

/// Pops acknowledged messages and the checkpoints behind them; with `wait`, waits for at least
/// the front message first.
async fn settle(
    pending: &mut VecDeque<Pending>,
    acked: &mut Option<Checkpoint>,
    wait: bool,
) -> Result<(), CaptureError> {
    let mut waited = !wait;
    loop {
        match pending.front_mut() {
            None => return Ok(()),
            Some(Pending::Checkpoint(_)) => {
                if let Some(Pending::Checkpoint(cp)) = pending.pop_front() {
                    *acked = Some(cp);
                }
            }
            Some(Pending::Delivery(fut, started)) => {
                let started = *started;
                let result = if waited {
                    match fut.now_or_never() {
                        Some(r) => r,
                        None => return Ok(()),
                    }
                } else {
                    waited = true;
                    fut.await
                };
                pending.pop_front();
                delivered(result, started)?;
            }
        }
    }
}

fn delivered(result: DeliveryResult, started: Instant) -> Result<(), CaptureError> {
    match result {
        Ok(Ok(_)) => {
            metrics::histogram!("sluice_capture_kafka_delivery_seconds")
                .record(started.elapsed().as_secs_f64());
            Ok(())
        }
        Ok(Err((source, msg))) => {
            metrics::counter!("sluice_capture_kafka_errors_total").increment(1);
            use rdkafka::Message as _;
            Err(CaptureError::Kafka {
                what: format!(
                    "delivering to {} partition {}",
                    msg.topic(),
                    msg.partition()
                ),
                source,
            })
        }
        Err(_) => Err(CaptureError::Kafka {
            what: "delivery report".into(),
            source: KafkaError::Canceled,
        }),
    }
}

fn count_events(run: Option<(String, String, &'static str, u64)>) {
    if let Some((database, table, kind, n)) = run {
        metrics::counter!("sluice_capture_events_total", "table" => format!("{database}.{table}"), "type" => kind)
            .increment(n);
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_templates() {
        assert_eq!(
            render("sluice.{instance}", "shop-main", "d", "t"),
            "sluice.shop-main"
        );
        assert_eq!(
            render("{instance}.{database}.{table}", "i", "d", "t"),
            "i.d.t"
        );
    }
}
