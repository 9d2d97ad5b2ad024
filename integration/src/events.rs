//! Change events made by a test and produced to Kafka the way `sluice-capture` does (key, murmur2
//! partition, the three sluice headers), for sink tests that need no MariaDB.

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::Value;
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};
use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

/// A v1 binlog event of `database.table` with primary key `id`; `data` is the row (after the
/// change; before it for a DELETE), `old` the changed columns' previous values of an UPDATE.
pub fn row_event(
    database: &str,
    table: &str,
    kind: EventType,
    seq: i64,
    data: Value,
    old: Option<Value>,
) -> ChangeEvent {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    ChangeEvent {
        v: 1,
        seq,
        source: Source::Binlog,
        instance: "test".into(),
        database: database.into(),
        table: table.into(),
        kind,
        ts_ms: now,
        capture_ms: now,
        pos: Position {
            file: "binlog.000001".into(),
            offset: seq.unsigned_abs(),
            row: 0,
            gtid: None,
        },
        xid: None,
        txn_last: true,
        pk: vec!["id".into()],
        data: as_row(data),
        old: old.map(as_row),
        sql: None,
    }
}

fn as_row(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        other => panic!("a row is a JSON object, not {other}"),
    }
}

/// Produces `events` in order to `topic` on `brokers`, keyed and partitioned as the capture does,
/// and waits until Kafka acknowledged each before sending the next, so their order on a
/// partition is the order given even without the idempotent producer's guarantees.
pub async fn produce(brokers: &str, topic: &str, events: &[ChangeEvent]) -> Result<(), String> {
    let producer = producer(brokers)?;
    for e in events {
        acked(send(&producer, topic, e)?, topic, e.seq).await?;
    }
    Ok(())
}

/// [`produce`] with up to 500 messages in flight (the idempotent producer keeps them in order),
/// for many events.
pub async fn produce_many(
    brokers: &str,
    topic: &str,
    events: &[ChangeEvent],
) -> Result<(), String> {
    let producer = producer(brokers)?;
    for chunk in events.chunks(500) {
        let mut acks = Vec::with_capacity(chunk.len());
        for e in chunk {
            acks.push((send(&producer, topic, e)?, e.seq));
        }
        for (ack, seq) in acks {
            acked(ack, topic, seq).await?;
        }
    }
    Ok(())
}

fn producer(brokers: &str) -> Result<FutureProducer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .map_err(|e| format!("producer for {brokers}: {e}"))
}

/// Enqueues `e` under its key with the three sluice headers.
fn send(producer: &FutureProducer, topic: &str, e: &ChangeEvent) -> Result<DeliveryFuture, String> {
    let mut headers = OwnedHeaders::new();
    for (k, v) in &e.headers() {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let (key, value) = (e.key(), e.encode());
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .key(key.as_slice())
        .payload(value.as_slice())
        .headers(headers);
    producer
        .send_result(record)
        .map_err(|(err, _)| format!("produce seq {} to {topic}: {err}", e.seq))
}

async fn acked(ack: DeliveryFuture, topic: &str, seq: i64) -> Result<(), String> {
    ack.await
        .map_err(|_| format!("produce seq {seq} to {topic}: the producer went away"))?
        .map(|_| ())
        .map_err(|(err, _)| format!("produce seq {seq} to {topic}: {err}"))
}

/// Asserts the capture's order guarantees on `msgs` (partition, event) read from a topic of a
/// table `(id, version)` whose transactions set each key's `version` to 0, 1, 2, ...: once
/// repeats are dropped (a retried send or a replay repeats an event with its `seq`), `seq`
/// increases along each partition, and each key's versions arrive in commit order, none skipped.
pub fn assert_in_commit_order(msgs: &[(i32, ChangeEvent)]) {
    let mut seen = HashSet::new();
    let mut last_seq: HashMap<i32, i64> = HashMap::new();
    let mut last_version: HashMap<i64, i64> = HashMap::new();
    for (p, e) in msgs {
        if !seen.insert(e.seq) {
            continue;
        }
        let prev = last_seq.insert(*p, e.seq).unwrap_or(i64::MIN);
        assert!(e.seq > prev, "partition {p}: seq {} after {prev}", e.seq);
        let id = e.data["id"].as_i64().expect("an integer `id`");
        let v = e.data["version"].as_i64().expect("an integer `version`");
        let pv = last_version.insert(id, v).unwrap_or(-1);
        assert_eq!(v, pv + 1, "key {id}: version {v} arrived after {pv}");
    }
}
