//! The topic probe: a plain consumer of the capture's topic, the capture's and Kafka's share.

use super::{announce, PollStats, Ready, TOPIC};
use crate::marks::Shared;
use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Reads the topic from its beginning with a plain consumer (assigned, no group) and records
/// when each write's event arrived: what the capture, Kafka and one fetch add.
pub fn watch(
    shared: &Shared,
    brokers: &str,
    topic: &str,
    ready: &Ready,
) -> anyhow::Result<PollStats> {
    let setup = || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "sluice-latency-probe")
            .set("enable.auto.commit", "false")
            .create()?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("metadata of {topic}"))?;
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
        consumer.assign(&tpl)?;
        anyhow::Ok(consumer)
    };
    let consumer = announce(ready, setup())?;
    let marks = &shared.probes[TOPIC];
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let t = shared.now();
        let w = m
            .payload()
            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
            .and_then(|v| v["data"]["wseq"].as_u64());
        if let Some(w) = w {
            marks.set_once(w, t);
        }
    }
    Ok(PollStats::default())
}
