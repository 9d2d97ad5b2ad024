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

mod common;

use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::{BulkParts, Elasticsearch};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use sluice_event::{ChangeEvent, EventType, Row};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    common::change_event(i as u64, "shop", "orders", EventType::Insert, row(i), None)
}

fn produce(
    brokers: &str,
    topic: &str,
    partitions: i32,
    events: usize,
    rt: &tokio::runtime::Runtime,
) {
    rt.block_on(common::create_topic(brokers, topic, partitions))
        .unwrap();
    let secs =
        common::produce_events(brokers, topic, events as u64, &[], |i| event(i as usize)).unwrap();
    eprintln!("produced {events} events to {topic} in {secs:.1} s");
}

/// The sink's bulk body for orders `lo..hi`: what the target sends for these events.
fn bulk_body(index: &str, lo: usize, hi: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((hi - lo) * 400);
    for i in lo..hi {
        let meta = json!({"index": {"_index": index, "_id": i.to_string(),
            "version": common::SEQ_BASE + i as i64, "version_type": "external_gte"}});
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
/// `topic` (its offsets start at 0, so the committed offsets add up to the messages done);
/// prints the seconds it waited.
fn wait(brokers: &str, topic: &str, group: &str, events: i64) {
    let (c, tpl) = common::group_probe(brokers, group, topic).unwrap();
    let began = Instant::now();
    loop {
        if common::committed_total(&c, &tpl).is_ok_and(|sum| sum >= events) {
            println!("{:.3}", began.elapsed().as_secs_f64());
            return;
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
