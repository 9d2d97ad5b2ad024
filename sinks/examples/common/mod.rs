//! What the sink benchmarks (`sink_bench`, `es_bench`, `mysql_bench`) share: building change
//! events, producing them to a new topic as the capture does (key, headers, murmur2), the
//! group's committed total, and a process's CPU time and peak RSS from /proc.

#![allow(dead_code)] // each benchmark uses its own subset

use anyhow::{bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};
use std::time::{Duration, Instant};

/// `seq` of event 0; every run uses the same seqs, so documents are identical across runs.
pub const SEQ_BASE: i64 = 1_763_716_502_000 << 20;

/// Event number `i` of a benchmark stream: one binlog transaction per event, `seq` increasing.
pub fn change_event(
    i: u64,
    database: &str,
    table: &str,
    kind: EventType,
    data: Row,
    old: Option<Row>,
) -> ChangeEvent {
    ChangeEvent {
        v: 1,
        seq: SEQ_BASE + i as i64,
        source: Source::Binlog,
        instance: "bench".into(),
        database: database.into(),
        table: table.into(),
        kind,
        ts_ms: 1_763_716_502_000,
        capture_ms: 1_763_716_502_013,
        pos: Position {
            file: "binlog.000001".into(),
            offset: 4 + i,
            row: 0,
            gtid: None,
        },
        xid: Some(i),
        txn_last: true,
        pk: vec!["id".into()],
        data,
        old,
        sql: None,
    }
}

/// Creates `topic` with `partitions` partitions (replication factor 1).
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&new], &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("create topic {t}: {e}"))?;
    }
    Ok(())
}

/// Produces `event(0..events)` to `topic` with the capture's key and headers, in large batches;
/// `props` override the producer settings. Returns once all are acknowledged, with the seconds
/// it took.
pub fn produce_events(
    brokers: &str,
    topic: &str,
    events: u64,
    props: &[(String, String)],
    event: impl Fn(u64) -> ChangeEvent,
) -> anyhow::Result<f64> {
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000");
    for (k, v) in props {
        pc.set(k, v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = pc.create()?;
    let started = Instant::now();
    let mut value = Vec::with_capacity(512);
    for i in 0..events {
        let e = event(i);
        value.clear();
        e.encode_into(&mut value);
        let key = e.key();
        let mut headers = OwnedHeaders::new_with_capacity(3);
        for (k, v) in &e.headers() {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("produce: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flush the producer")?;
    Ok(started.elapsed().as_secs_f64())
}

/// A consumer of `group` that only reads the group's committed offsets, and every partition of
/// `topic` (from the broker's metadata).
pub fn group_probe(
    brokers: &str,
    group: &str,
    topic: &str,
) -> anyhow::Result<(BaseConsumer, TopicPartitionList)> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let md = probe.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    Ok((probe, tpl))
}

/// The sum of the group's committed offsets over the partitions of `tpl` (unset counts 0).
pub fn committed_total(consumer: &BaseConsumer, tpl: &TopicPartitionList) -> KafkaResult<i64> {
    let committed = consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum())
}

/// User + system CPU seconds of a process so far, from /proc (Linux).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture this runs on.
    Some(ticks as f64 / 100.0)
}

/// Peak resident set size of a process, from /proc (Linux).
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
