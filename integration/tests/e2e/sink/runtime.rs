//! The sink runtime in-process against a failing or slow target: nothing committed past a
//! failed write, nothing skipped by pauses, the in-flight byte bound held.

use super::{
    all_committed, committed, config_text, ids, parse_config, producer, send_event, start,
    user_event,
};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::{create_topic, kafka_brokers, unique_name, wait};
use sluice_sinks::targets::fault::Faults;
use sluice_sinks::targets::memory::MemoryTarget;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_never_commits_past_a_failed_write_and_resumes_after_recovery() {
    let topic = unique_name("sink_fail");
    create_topic(&topic, 1).await.unwrap();
    create_topic(&format!("{topic}.dlq"), 1).await.unwrap();
    let config = parse_config(&config_text(
        &topic,
        &unique_name("g"),
        "type = \"noop\"",
        "",
    ));
    let p = producer();
    for id in 1..=10 {
        let e = user_event(EventType::Insert, id, "a@x", id);
        send_event(&p, &topic, &e, Some(0), None).await;
    }
    let memory = MemoryTarget::default();
    let faults = Faults::default();
    faults.down();
    let sink = start(config.clone(), &memory, &faults);

    // The target is down: the sink retries, and nothing is committed meanwhile.
    wait::until(90, "several failed tries", async || faults.writes() >= 5).await;
    assert_eq!(committed(&config).await, vec![None]);
    let tries = faults.writes();
    wait::until(90, "more failed tries", async || {
        faults.writes() >= tries + 3
    })
    .await;
    assert_eq!(
        committed(&config).await,
        vec![None],
        "committed past a failed write"
    );
    assert!(memory.written().is_empty());

    // Recovery: everything is written once, in order, and committed.
    faults.recover();
    wait::until(90, "offset 10 committed", async || {
        committed(&config).await == vec![Some(10)]
    })
    .await;
    let want: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    assert_eq!(ids(&memory.written()), want);

    // One failing write in the middle of a stream: retried, nothing lost or reordered.
    let next = faults.writes() + 1;
    faults.fail_write(next).fail_write(next + 1);
    for id in 11..=40 {
        let e = user_event(EventType::Update, id % 5, &format!("{id}@x"), id);
        send_event(&p, &topic, &e, Some(0), None).await;
    }
    wait::until(90, "offset 40 committed", async || {
        committed(&config).await == vec![Some(40)]
    })
    .await;
    // The injected failures fail whole writes before the memory target sees them, so the
    // retried batches arrive exactly once: every event, in partition order.
    let tail: Vec<i64> = memory.written()[10..]
        .iter()
        .map(|i| i.mapped.seq)
        .collect();
    assert_eq!(tail, (11..=40).collect::<Vec<i64>>());
    assert!(
        faults.writes() >= next + 2,
        "the injected failures were not hit"
    );
    sink.stop().await.unwrap();
}

/// Issue #4, "nothing is skipped": a slow target makes the runtime pause and resume the
/// partition many times. librdkafka resumes (and a new owner starts) at the next offset, which is
/// usually inside a stored record batch (the broker answers with the whole batch and librdkafka
/// skips the records before the offset). Every offset must be processed once, in order, and
/// exactly the end committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_pausing_a_partition_skips_nothing_with_large_broker_batches() {
    const TOTAL: i64 = 40_000;
    let topic = unique_name("sink_gap");
    create_topic(&topic, 1).await.unwrap();
    // Large record batches: everything produced within 100 ms goes into one batch.
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("linger.ms", "100")
        .set("batch.num.messages", "10000")
        .set("batch.size", "16000000")
        .create()
        .unwrap();
    let events: Vec<ChangeEvent> = (0..TOTAL)
        .map(|i| user_event(EventType::Update, i % 1000, "e", i))
        .collect();
    let (bulk, tail) = events.split_at(events.len() - 20);
    for chunk in bulk.chunks(10_000) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|e| send_event(&p, &topic, e, Some(0), None)),
        )
        .await;
    }
    // Small batches at the end, as a live topic has after a backlog.
    for e in tail {
        send_event(&p, &topic, e, Some(0), None).await;
    }
    // Channels of 200 messages, pausing as soon as one is full, and a target that takes 2 ms
    // per write of at most 50: the consumer reads far faster, so the partition is paused and
    // resumed about a hundred times.
    let text = config_text(&topic, &unique_name("g"), "type = \"noop\"", "").replace(
        "[consumer]",
        "[consumer]\nmax_in_flight = 200\npause_after_ms = 0",
    );
    let config = parse_config(&text);
    let memory = MemoryTarget::default();
    let faults = Faults::default();
    faults.delay(Duration::from_millis(2));
    // The first sink stops part-way, so the second starts from a committed offset that is
    // (almost surely) inside a record batch.
    let first = start(config.clone(), &memory, &faults);
    wait::until(120, "a quarter committed", async || {
        committed(&config).await[0].is_some_and(|o| o >= TOTAL / 4)
    })
    .await;
    first.stop().await.unwrap();
    let restart_at = committed(&config).await[0].unwrap();
    let second = start(config.clone(), &memory, &faults);
    wait::until(120, "every offset committed", async || {
        committed(&config).await[0].is_some_and(|o| o >= TOTAL)
    })
    .await;
    second.stop().await.unwrap();
    assert_eq!(committed(&config).await, vec![Some(TOTAL)]);
    let seqs: Vec<i64> = memory.written().iter().map(|i| i.mapped.seq).collect();
    let written: std::collections::BTreeSet<i64> = seqs.iter().copied().collect();
    let missing: Vec<i64> = (0..TOTAL).filter(|s| !written.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {TOTAL} offsets were never processed, yet all were committed (restart at {restart_at}); the first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // The first sink may have written a little past what it committed; the second re-writes
    // that tail (at-least-once), then everything else exactly once and in order.
    let second_start = seqs.iter().rposition(|&s| s == restart_at).unwrap();
    let (before, after) = seqs.split_at(second_start);
    assert_eq!(
        before,
        (0..before.len() as i64).collect::<Vec<_>>(),
        "first sink"
    );
    assert_eq!(
        after,
        (restart_at..TOTAL).collect::<Vec<_>>(),
        "second sink"
    );
}

/// Issue #4, "bounded in-flight messages": with `max_in_flight_bytes` far below the backlog
/// and a slow target, reading stops at the bound and, after `pause_after_ms` without room,
/// every partition is paused and later resumed, over and over. Nothing is lost, per-key order
/// holds, and the budget's accounting never leaks (a leak would stop reading for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_in_flight_bytes_bound_holds_and_pauses_without_loss() {
    const TOTAL: i64 = 3_000;
    let topic = unique_name("sink_budget");
    create_topic(&topic, 4).await.unwrap();
    let p = producer();
    futures::future::join_all((0..TOTAL).map(|seq| {
        let e = user_event(EventType::Update, seq % 97, "e", seq);
        let (p, topic) = (&p, &topic);
        async move { send_event(p, topic, &e, None, None).await }
    }))
    .await;
    let text = config_text(&topic, &unique_name("g"), "type = \"noop\"", "").replace(
        "[consumer]",
        "[consumer]\nmax_in_flight_bytes = 8000\npause_after_ms = 20",
    );
    let config = parse_config(&text);
    let memory = MemoryTarget::default();
    let faults = Faults::default();
    faults.delay(Duration::from_millis(5));
    let sink = start(config.clone(), &memory, &faults);
    wait::until(120, "every offset committed", async || {
        all_committed(&config, TOTAL).await
    })
    .await;
    sink.stop().await.unwrap();
    let written = memory.written();
    let seqs: std::collections::BTreeSet<i64> = written.iter().map(|i| i.mapped.seq).collect();
    assert_eq!(seqs.len() as i64, TOTAL, "every event written");
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for item in &written {
        let prev = last.insert(item.mapped.id.clone(), item.mapped.seq);
        assert!(
            prev.is_none_or(|p| p < item.mapped.seq),
            "key {} went back from seq {prev:?} to {}",
            item.mapped.id,
            item.mapped.seq
        );
    }
}
