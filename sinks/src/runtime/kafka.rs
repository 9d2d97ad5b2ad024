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

/// The dead-letter producer's `message.max.bytes` unless `kafka.options` sets one: librdkafka's
/// upper bound, so the broker (the dead-letter topic's `max.message.bytes`) decides what is too
/// large. librdkafka's default, 1,000,000, would refuse any letter of a bigger message than
/// that, which the consumer reads without trouble (a 10 MB message, say), and the partition
/// would wait for it forever.
const DLQ_MESSAGE_MAX_BYTES: &str = "1000000000";

/// [`kafka_client_config`] for the dead-letter producer: without the consumer-only properties,
/// and able to send any message the consumer could read.
pub fn kafka_producer_config(config: &SinkConfig) -> ClientConfig {
    let mut c = kafka_client_config(config);
    for k in CONSUMER_ONLY {
        c.remove(k);
    }
    if c.get("message.max.bytes").is_none() {
        c.set("message.max.bytes", DLQ_MESSAGE_MAX_BYTES);
    }
    c
}

/// librdkafka's default `receive.message.max.bytes`.
const DEFAULT_RECEIVE_MAX: &str = "100000000";

/// What to do about a consumer error that, left alone, holds partitions back for good; `None`
/// for the errors librdkafka gets over by itself. A message bigger than
/// `receive.message.max.bytes` cannot be received at all: librdkafka drops the connection
/// (`BadMessage`, "Invalid response size"), reconnects and fetches the same offset again, so
/// the partitions behind it never move, and no message of theirs reaches the sink to be
/// dead-lettered.
pub(crate) fn consumer_error_advice(
    config: &SinkConfig,
    e: &rdkafka::error::KafkaError,
) -> Option<String> {
    use rdkafka::types::RDKafkaErrorCode::BadMessage;
    if e.rdkafka_error_code() != Some(BadMessage) {
        return None;
    }
    let c = kafka_client_config(config);
    let receive = c
        .get("receive.message.max.bytes")
        .unwrap_or(DEFAULT_RECEIVE_MAX);
    Some(format!(
        "librdkafka could not read a fetch answer, usually because a message is bigger than \
         receive.message.max.bytes ({receive}; librdkafka's own log line above says \
         \"Invalid response size\" then). The partitions behind it do not move and nothing is \
         skipped until it can be read: raise kafka.options receive.message.max.bytes above \
         the largest message (fetch.max.bytes must stay at least 512 bytes below it)"
    ))
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
    use super::{consumer_error_advice, kafka_client_config, kafka_producer_config};
    use crate::config::SinkConfig;

    #[test]
    fn a_fetch_answer_too_big_to_receive_names_the_setting() {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaErrorCode;
        let text = "[kafka]\nbrokers = [\"b:9092\"]\noptions = { \"receive.message.max.bytes\" = \"1049088\" }\n[consumer]\ngroup_id = \"g\"\ntopics = [\"t\"]\n[targets.cache]\ntype = \"redis\"\nurl = \"redis://h:6379\"\n[[rules]]\nname = \"r\"\ntarget = \"cache\"\nmatch = { tables = [\"d.t\"] }\n[rules.redis]\nkeys = [\"k:{id}\"]\n";
        let c = sluice_config::parse::<SinkConfig>(text, std::path::Path::new("s.toml"), |_| None)
            .unwrap();
        let bad = KafkaError::MessageConsumption(RDKafkaErrorCode::BadMessage);
        let advice = consumer_error_advice(&c, &bad).unwrap();
        assert!(
            advice.contains("bigger than receive.message.max.bytes (1049088;"),
            "{advice}"
        );
        assert!(
            advice.contains("raise kafka.options receive.message.max.bytes"),
            "{advice}"
        );
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(consumer_error_advice(&c, &down), None);
    }

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
        assert_eq!(producer.get("message.max.bytes"), Some("1000000000"));
        assert_eq!(consumer.get("message.max.bytes"), None);
    }
}
