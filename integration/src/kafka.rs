//! Reading topics back in tests: a consumer that reads from the beginning without a group's
//! offsets, change events until the test has what it expects, message headers.
//!
//! Readers stop on the messages they expect, so a test that waits for events says which ones
//! were missing when they do not come.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use sluice_event::ChangeEvent;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A consumer on `brokers` assigned to partitions `0..partitions` of `topic` from the beginning;
/// its group (a unique one) never commits.
pub fn reader(brokers: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", crate::unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("a partition offset");
    }
    consumer
        .assign(&tpl)
        .unwrap_or_else(|e| panic!("assign {topic}: {e}"));
    consumer
}

/// The change events of partitions `0..partitions` of `topic` with their partition, in the
/// order they arrive, until `enough` (called with each event) returns true or `secs` s pass.
pub fn read_events(
    brokers: &str,
    topic: &str,
    partitions: i32,
    secs: u64,
    mut enough: impl FnMut(&ChangeEvent) -> bool,
) -> Vec<(i32, ChangeEvent)> {
    let consumer = reader(brokers, topic, partitions);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let e = ChangeEvent::decode(m.payload().unwrap_or_default())
                    .unwrap_or_else(|err| panic!("offset {} of {topic}: {err}", m.offset()));
                let done = enough(&e);
                out.push((m.partition(), e));
                if done {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    out
}

/// Every change event of partitions `0..partitions` of `topic`, per partition in offset order: up
/// to the high watermarks it finds at the start (panics if they are not reached within `secs`
/// s), then whatever else arrives until nothing has for two seconds, as a broker may report a
/// high watermark before the last appends are readable.
pub fn read_to_end(
    brokers: &str,
    topic: &str,
    partitions: i32,
    secs: u64,
) -> Vec<Vec<ChangeEvent>> {
    let consumer = reader(brokers, topic, partitions);
    let high: Vec<i64> = (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("high watermark of {topic}/{p}: {e}"))
                .1
        })
        .collect();
    let decode = |m: &rdkafka::message::BorrowedMessage<'_>| {
        ChangeEvent::decode(m.payload().unwrap_or_default())
            .unwrap_or_else(|err| panic!("offset {} of {topic}: {err}", m.offset()))
    };
    let mut out: Vec<Vec<ChangeEvent>> = vec![Vec::new(); high.len()];
    let mut next = vec![0i64; high.len()];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    while (0..high.len()).any(|p| next[p] < high[p]) {
        assert!(
            Instant::now() < deadline,
            "{topic} not read to its end within {secs} s"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let p = m.partition() as usize;
            next[p] = m.offset() + 1;
            out[p].push(decode(&m));
        }
    }
    let mut quiet = Instant::now();
    let mut late = 0;
    while quiet.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            late += 1;
            quiet = Instant::now();
            out[m.partition() as usize].push(decode(&m));
        }
    }
    eprintln!("{late} messages after the high watermarks {high:?}");
    eprintln!(
        "read {} messages of {topic} in {:?}",
        out.iter().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );
    out
}

/// The first `expect` messages of partitions `0..partitions` of `topic` (fewer if they do not
/// arrive within `secs` s), in the order they arrive.
pub fn read_messages(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expect: usize,
    secs: u64,
) -> Vec<OwnedMessage> {
    let consumer = reader(brokers, topic, partitions);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.detach());
        }
    }
    out
}

/// The headers of message `m`, name → value (lossy UTF-8; a header without a value is "").
pub fn headers<M: Message>(m: &M) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(hs) = m.headers() {
        for i in 0..hs.count() {
            let h = hs.get(i);
            out.insert(
                h.key.to_owned(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            );
        }
    }
    out
}
