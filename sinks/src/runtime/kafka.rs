//! librdkafka settings of the sink's clients, and Kafka errors as the sink reports them.

use crate::config::SinkConfig;
use crate::error::SinkError;
use rdkafka::config::ClientConfig;

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
    // Only events of committed transactions (librdkafka's default, set so it is explicit): a
    // transactional capture's events appear once their checkpoint is committed with them, and
    // what a fenced or crashed capture left open never does. `kafka.options` may override it.
    c.set("isolation.level", "read_committed");
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
