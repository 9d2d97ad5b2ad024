//! The capture's Kafka client settings, and the producer for metadata lookups and checkpoints.

use crate::config::CaptureConfig;
use crate::error::CaptureError;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, Producer as _};
use sluice_config::kafka::watched;
use sluice_config::KafkaWatch;
use std::time::Duration;

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
    .set("queue.buffering.max.kbytes", "65536")
    // librdkafka waits half of this between opening broker connections, also at start-up:
    // after the bootstrap address named the broker, 50 ms passed (default 100) before the
    // connection to it opened, twice per start. Backoff after failures still doubles up to
    // reconnect.backoff.max.ms (10 s).
    .set("reconnect.backoff.ms", "20")
    // Connect to every broker as soon as the metadata names it, not when the first request for
    // it is due: the capture writes to every partition of its topic anyway. Start-up to the
    // producer id took 5-7.5 ms instead of 13.5-14.5 ms (three runs each).
    .set("enable.sparse.connections", "false");
    for (k, v) in cfg.kafka.client_properties() {
        c.set(k, v);
    }
    c
}

/// Connection settings for admin and consumer clients.
pub fn admin_config(cfg: &CaptureConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in cfg.kafka.client_properties() {
        c.set(k, v);
    }
    c
}

/// The producer for metadata lookups and the Kafka checkpoint store, with what librdkafka
/// reported about its connections (its own thread serves the reports as they come).
#[derive(Clone)]
pub struct Producer {
    pub client: FutureProducer<KafkaWatch>,
    pub watch: KafkaWatch,
}

/// How long a metadata lookup may take before it counts as failed (transient: retried).
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the producer.
pub fn producer(cfg: &CaptureConfig) -> Result<Producer, CaptureError> {
    let watch = KafkaWatch::new(&cfg.kafka);
    let client = producer_config(cfg)
        .create_with_context(watch.clone())
        .map_err(|e| {
            CaptureError::kafka(
                format!("creating a producer for {}", cfg.kafka.brokers.join(",")),
                watch.explain(e),
            )
        })?;
    Ok(Producer { client, watch })
}

impl Producer {
    /// Connects and reads the cluster's metadata; returns the number of brokers. A setting the
    /// brokers refuse is a definite error, a broker that does not answer a transient one.
    pub async fn probe(&self) -> Result<usize, CaptureError> {
        let p = self.clone();
        tokio::task::spawn_blocking(move || {
            watched(
                &p.watch,
                METADATA_TIMEOUT,
                || {},
                |t| p.client.client().fetch_metadata(None, t),
            )
            .map(|md| md.brokers().len())
        })
        .await
        .map_err(|e| CaptureError::Topic(format!("Kafka metadata lookup failed: {e}")))?
        .map_err(|f| CaptureError::kafka("reading the cluster metadata", f))
    }
}
