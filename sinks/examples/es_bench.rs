//! Helper of bench/elasticsearch.sh: produce change events, send the same documents to the
//! server directly (the ceiling), and wait until a consumer group has committed everything.
//!
//! ```text
//! es_bench produce --brokers B --topic T --partitions 8 --events N
//! es_bench direct  --url U --index I --events N [--batch 1000] [--concurrency 8]
//! es_bench wait    --brokers B --topic T --group G --events N
//! es_bench count   --brokers B --topic T    (messages a plain consumer reads vs. offsets)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::{BulkParts, Elasticsearch};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every run uses the same seqs: documents are identical across the direct and the sink run.
const SEQ_BASE: i64 = 1_763_716_502_000 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let req = |name: &str| opt(name).unwrap_or_else(|| panic!("missing {name}"));
    let num = |name: &str, default: usize| opt(name).map_or(default, |v| v.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("produce") => produce(
            &req("--brokers"),
            &req("--topic"),
            num("--partitions", 8) as i32,
            num("--events", 1_000_000),
            &rt,
        ),
        Some("direct") => rt.block_on(direct(
            &req("--url"),
            &req("--index"),
            num("--events", 1_000_000),
            num("--batch", 1000),
            num("--concurrency", 8),
        )),
        Some("wait") => wait(
            &req("--brokers"),
            &req("--topic"),
            &req("--group"),
            num("--events", 1_000_000) as i64,
        ),
        Some("count") => count(&req("--brokers"), &req("--topic")),
        _ => panic!("usage: es_bench produce|direct|wait|count ..."),
    }
}

/// The row of order `i`: ints, a decimal, text, a datetime, JSON.
fn row(i: usize) -> Row {
    let status = ["new", "paid", "shipped", "cancelled"][i % 4];
    let v = json!({
        "id": i,
        "user_id": i % 5000,
        "amount": format!("{}.{:02}", i % 100_000, i % 100),
        "status": status,
        "note": format!("note for order {i}: leave at the door"),
        "created_at": format!("2026-01-01T00:{:02}:{:02}.123", (i / 60) % 60, i % 60),
        "items": {"sku": format!("A-{}", i % 97), "qty": i % 7, "tags": ["x", "y"]},
    });
    v.as_object().cloned().unwrap_or_default()
}

fn event(i: usize) -> ChangeEvent {
    let seq = SEQ_BASE + i as i64;
    ChangeEvent {
        v: 1,
        seq,
        source: Source::Binlog,
        instance: "bench".into(),
        database: "shop".into(),
        table: "orders".into(),
        kind: EventType::Insert,
        ts_ms: seq >> 20,
        capture_ms: seq >> 20,
        pos: Position {
            file: "binlog.000001".into(),
            offset: i as u64,
            row: 0,
            gtid: None,
        },
        xid: None,
        txn_last: true,
        pk: vec!["id".into()],
        data: row(i),
        old: None,
        sql: None,
    }
}

fn produce(
    brokers: &str,
    topic: &str,
    partitions: i32,
    events: usize,
    rt: &tokio::runtime::Runtime,
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap()
    {
        r.map_err(|(t, e)| format!("create {t}: {e}")).unwrap();
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    let began = Instant::now();
    for i in 0..events {
        let e = event(i);
        let (key, value) = (e.key(), e.encode());
        let mut headers = OwnedHeaders::new();
        for (k, v) in e.headers().iter() {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = BaseRecord::to(topic)
            .key(key.as_slice())
            .payload(value.as_slice())
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    eprintln!(
        "produced {events} events to {topic} in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

/// The sink's bulk body for orders `lo..hi`: what the target sends for these events.
fn bulk_body(index: &str, lo: usize, hi: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((hi - lo) * 400);
    for i in lo..hi {
        let meta = json!({"index": {"_index": index, "_id": i.to_string(),
            "version": SEQ_BASE + i as i64, "version_type": "external_gte"}});
        serde_json::to_writer(&mut out, &meta).unwrap();
        out.push(b'\n');
        serde_json::to_writer(&mut out, &row(i)).unwrap();
        out.push(b'\n');
    }
    out
}

/// Sends every document in bulk requests of `batch`, `concurrency` at a time, bodies prepared
/// beforehand (so only the server and the HTTP client are measured); prints docs/s.
async fn direct(url: &str, index: &str, events: usize, batch: usize, concurrency: usize) {
    let pool = SingleNodeConnectionPool::new(Url::parse(url).unwrap());
    let es = Arc::new(Elasticsearch::new(
        TransportBuilder::new(pool).build().unwrap(),
    ));
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..events)
            .step_by(batch)
            .map(|lo| bulk_body(index, lo, (lo + batch).min(events)))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (es, bodies, next) = (es.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(k) else { return };
                let r = es
                    .bulk(BulkParts::None)
                    .body(vec![body.as_slice()])
                    .send()
                    .await
                    .unwrap();
                let v: serde_json::Value = r.json().await.unwrap();
                assert_eq!(v["errors"], json!(false), "bulk errors: {v}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = began.elapsed().as_secs_f64();
    println!("{events} {s:.3}");
}

/// Waits until `group` has committed `events` messages over all partitions of the fresh
/// `topic` (offsets start at 0; the benchmark broker's high watermarks are not reliable);
/// prints the seconds it waited.
fn wait(brokers: &str, topic: &str, group: &str, events: i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let began = Instant::now();
    loop {
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            tpl.add_partition(topic, *p);
        }
        if let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(10)) {
            let sum: i64 = committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum();
            if sum >= events {
                println!("{:.3}", began.elapsed().as_secs_f64());
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads every partition of `topic` from the beginning with a plain consumer until nothing
/// arrives for 3 s; prints the messages read and the offsets they span (equal on a sound broker).
fn count(brokers: &str, topic: &str) {
    use rdkafka::message::Message;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-count"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    let (mut read, mut last) = (0u64, std::collections::BTreeMap::<i32, i64>::new());
    let mut idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            read += 1;
            last.insert(m.partition(), m.offset());
            idle = Instant::now();
        }
    }
    let spanned: i64 = last.values().map(|o| o + 1).sum();
    println!("read {read} messages; offsets span {spanned}");
}
