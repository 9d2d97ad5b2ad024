//! The second checkpoint store: a compacted Kafka topic (`sluice.checkpoints`, key = instance).
//!
//! With it a capture on another machine can take over where this one stopped.

use crate::checkpoint::Checkpoint;
use crate::error::CaptureError;
use crate::topics::create_topic;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use std::time::Duration;

/// Checkpoints in a compacted Kafka topic.
#[derive(Debug, Clone)]
pub struct KafkaStore {
    pub topic: String,
    pub instance: String,
    pub client: ClientConfig,
}

impl KafkaStore {
    /// Creates the compacted topic if it is missing.
    pub async fn ensure_topic(&self) -> Result<(), CaptureError> {
        create_topic(
            &self.client,
            &self.topic,
            1,
            1,
            &[("cleanup.policy", "compact")],
        )
        .await
    }

    /// Writes the checkpoint and waits for the acknowledgement.
    pub async fn save(
        &self,
        producer: &FutureProducer<sluice_config::KafkaWatch>,
        cp: &Checkpoint,
    ) -> Result<(), CaptureError> {
        let value = serde_json::to_vec(cp)
            .map_err(|e| CaptureError::Topic(format!("encoding checkpoint: {e}")))?;
        let record = FutureRecord::to(&self.topic)
            .key(&self.instance)
            .payload(&value);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(source, _)| CaptureError::Kafka {
                what: format!("saving the checkpoint to {}", self.topic),
                source,
            })
    }

    /// The newest checkpoint of this instance in the topic, reading it from start to end.
    pub async fn load(&self) -> Result<Option<Checkpoint>, CaptureError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.load_blocking())
            .await
            .map_err(|e| CaptureError::Topic(format!("reading {}: {e}", self.topic)))?
    }

    fn load_blocking(&self) -> Result<Option<Checkpoint>, CaptureError> {
        let kafka = |what: &str| {
            let what = format!("{what} {}", self.topic);
            move |source| CaptureError::Kafka {
                what: what.clone(),
                source,
            }
        };
        let mut cfg = self.client.clone();
        cfg.set(
            "group.id",
            format!("sluice-capture-checkpoint-{}", self.instance),
        )
        .set("enable.auto.commit", "false")
        // Only committed checkpoints (transactional captures write them in transactions), up
        // to the last stable offset, where the end of the partition is reported: a
        // transaction's commit marker takes an offset, so the last checkpoint's offset + 1 is
        // below the high watermark.
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
        let consumer: BaseConsumer<EndIsNoError> = cfg
            .create_with_context(EndIsNoError)
            .map_err(kafka("creating a consumer for"))?;
        let md = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .map_err(kafka("reading metadata of"))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut best: Option<Checkpoint> = None;
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                .map_err(kafka("reading watermarks of"))?;
            if high <= low {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(low))
                .map_err(kafka("assigning"))?;
            consumer.assign(&tpl).map_err(kafka("assigning"))?;
            let mut idle = 0;
            loop {
                match consumer.poll(Duration::from_millis(500)) {
                    Some(Ok(m)) => {
                        idle = 0;
                        if m.key() == Some(self.instance.as_bytes()) {
                            if let Some(cp) = m
                                .payload()
                                .and_then(|v| serde_json::from_slice::<Checkpoint>(v).ok())
                            {
                                best = Some(cp);
                            }
                        }
                        if m.offset() + 1 >= high {
                            break;
                        }
                    }
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                    Some(Err(source)) => {
                        return Err(CaptureError::Kafka {
                            what: format!("reading {}", self.topic),
                            source,
                        })
                    }
                    None => {
                        idle += 1;
                        if idle > 20 {
                            break;
                        }
                    }
                }
            }
        }
        Ok(best)
    }
}

/// The checkpoint reader's context: the end of a partition is what it reads up to, not an
/// error to log (librdkafka reports it as one).
struct EndIsNoError;

impl rdkafka::client::ClientContext for EndIsNoError {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if !matches!(error, rdkafka::error::KafkaError::PartitionEOF(_)) {
            tracing::warn!(error = %error, "checkpoint reader: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndIsNoError {}
