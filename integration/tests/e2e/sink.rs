//! End-to-end tests: sink. Events are produced by the tests themselves (rdkafka + sluice_event).
//!
//! In-process tests run the real runtime (`sluice_sinks::Sink`) against a memory target wrapped
//! in the fault injector; process tests start `target/debug/sluice-sink` (built beforehand by
//! `cargo build --workspace --bins`, as scripts/test.sh does) and kill it. This file holds the
//! helpers; the tests are in `runtime` (failed writes, pauses, the in-flight bound),
//! `dead_letters` (the dead-letter topic and `on_error = "stop"`), `poison` (every kind of bad
//! message, and garbage answers of the search server, through OpenSearch), `start_at`, `redis_target` and
//! `process` (the binary: bad configs, kill -9, two processes in one group, SIGTERM).

mod dead_letters;
mod poison;
mod process;
mod redis_target;
mod runtime;
mod start_at;

use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};
use sluice_integration::sink::{OffsetProbe, RunningSink, SinkToml};
use sluice_integration::{kafka, kafka_brokers, redis_url, wait};
use sluice_sinks::targets::fault::{FaultTarget, Faults};
use sluice_sinks::targets::memory::MemoryTarget;
use sluice_sinks::targets::Target;
use sluice_sinks::{Sink, SinkConfig};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A v1 change event of `shop.users` for user `id`.
fn user_event(kind: EventType, id: i64, email: &str, seq: i64) -> ChangeEvent {
    let mut data = Row::new();
    data.insert("id".into(), json!(id));
    data.insert("email".into(), json!(email));
    ChangeEvent {
        v: 1,
        seq,
        source: Source::Binlog,
        instance: "shop-main".into(),
        database: "shop".into(),
        table: "users".into(),
        kind,
        ts_ms: now_ms(),
        capture_ms: now_ms(),
        pos: Position {
            file: "binlog.000001".into(),
            offset: seq as u64,
            row: 0,
            gtid: None,
        },
        xid: None,
        txn_last: true,
        pk: vec!["id".into()],
        data,
        old: None,
        sql: None,
    }
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Produces an event under its key with the three sluice headers; `partition` and `ts` pin
/// where and when, for tests that need it.
async fn send_event(
    p: &FutureProducer,
    topic: &str,
    e: &ChangeEvent,
    partition: Option<i32>,
    ts: Option<i64>,
) {
    let mut headers = OwnedHeaders::new();
    let hs = e.headers();
    for (k, v) in &hs {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    send_raw(
        p,
        topic,
        &e.key(),
        &e.encode(),
        Some(headers),
        partition,
        ts,
    )
    .await;
}

/// Produces a `shop.users` event for user `id` to partition 0.
async fn send_user(
    p: &FutureProducer,
    topic: &str,
    kind: EventType,
    id: i64,
    email: &str,
    seq: i64,
) {
    send_event(p, topic, &user_event(kind, id, email, seq), Some(0), None).await;
}

async fn send_raw(
    p: &FutureProducer,
    topic: &str,
    key: &[u8],
    value: &[u8],
    headers: Option<OwnedHeaders>,
    partition: Option<i32>,
    ts: Option<i64>,
) {
    let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key).payload(value);
    if let Some(h) = headers {
        r = r.headers(h);
    }
    if let Some(part) = partition {
        r = r.partition(part);
    }
    if let Some(t) = ts {
        r = r.timestamp(t);
    }
    p.send(r, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// A sink config for `topic`/`group` with one target `out` and one rule on `shop.users`.
fn config_text(topic: &str, group: &str, target: &str, rule_extra: &str) -> String {
    let head = SinkToml {
        session_timeout_ms: 15_000,
        max_poll_interval_ms: Some(60_000),
        commit_interval_ms: 1_000,
        linger_ms: 5,
        ..SinkToml::new(topic, group)
    };
    format!(
        r#"{head}[targets.out]
{target}
[[rules]]
name = "users"
target = "out"
match = {{ tables = ["shop.users"] }}
{rule_extra}
"#,
        head = head.text()
    )
}

fn parse_config(text: &str) -> SinkConfig {
    sluice_integration::sink::parse(text, &[])
}

/// Runs the real runtime in-process with a fault-injecting memory target named `out`.
fn start(config: SinkConfig, memory: &MemoryTarget, faults: &Faults) -> RunningSink {
    let target = Target::Fault(Box::new(FaultTarget::new(
        Target::Memory(memory.clone()),
        faults.clone(),
    )));
    RunningSink::start(Sink::new(config).with_target("out", target))
}

/// The group's committed offset per partition (`None`: nothing committed), through one
/// consumer per group kept for the whole test (creating one per poll would load the broker).
async fn committed(config: &SinkConfig) -> Vec<Option<i64>> {
    use std::sync::{Mutex, OnceLock};
    static PROBES: OnceLock<Mutex<BTreeMap<String, OffsetProbe>>> = OnceLock::new();
    let group = &config.consumer.group_id;
    let probe = PROBES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap()
        .entry(group.clone())
        .or_insert_with(|| OffsetProbe::new(config))
        .clone();
    let what = format!("the committed offsets of {group}");
    wait::until_ok(60, &what, async || {
        probe
            .committed()
            .await
            .ok_or_else(|| "the broker did not answer".to_owned())
    })
    .await
}

fn ids(items: &[sluice_sinks::targets::Item]) -> Vec<String> {
    items.iter().map(|i| i.mapped.id.clone()).collect()
}

/// One message read back: partition, offset, value, headers.
type ReadMessage = (i32, i64, Vec<u8>, BTreeMap<String, String>);

/// The first `expect` messages of `topic` (one partition), with headers, from the beginning.
fn read_all(topic: &str, expect: usize) -> Vec<ReadMessage> {
    let messages = kafka::read_messages(&kafka_brokers(), topic, 1, expect, 60);
    messages
        .iter()
        .map(|m| {
            let value = m.payload().unwrap_or_default().to_vec();
            (m.partition(), m.offset(), value, kafka::headers(m))
        })
        .collect()
}

/// A connection to the test Redis.
async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Whether the group has committed `total` messages over all partitions.
async fn all_committed(config: &SinkConfig, total: i64) -> bool {
    let c = committed(config).await;
    c.iter().map(|o| o.unwrap_or(0)).sum::<i64>() == total
}
