//! End-to-end tests: sink. Events are produced by the tests themselves (rdkafka + sluice_event).
//!
//! In-process tests run the real runtime (`sluice_sinks::Sink`) against a memory target wrapped
//! in the fault injector; process tests start `target/debug/sluice-sink` (built beforehand by
//! `cargo build --workspace --bins`, as scripts/test.sh does) and kill it.

use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};
use sluice_integration::process::{kill9, run_to_end, sink_binary, spawn_run, terminate};
use sluice_integration::sink::{OffsetProbe, RunningSink, SinkToml};
use sluice_integration::{
    create_topic, kafka, kafka_brokers, redis_exists, redis_url, unique_name, wait,
};
use sluice_sinks::offsets::{self, StartAt};
use sluice_sinks::targets::fault::{FaultTarget, Faults};
use sluice_sinks::targets::memory::MemoryTarget;
use sluice_sinks::targets::Target;
use sluice_sinks::{Sink, SinkConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// In-process runtime tests
// ---------------------------------------------------------------------------------------------

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_dead_letters_definite_errors_with_all_headers() {
    let topic = unique_name("sink_dlq");
    create_topic(&topic, 1).await.unwrap();
    create_topic(&format!("{topic}.dlq"), 1).await.unwrap();
    // The id template needs `email`; an event without it cannot render.
    let config = parse_config(&config_text(
        &topic,
        &unique_name("g"),
        "type = \"noop\"",
        "id = \"{id}:{email}\"",
    ));
    let p = producer();
    send_user(&p, &topic, EventType::Insert, 1, "a@x", 1).await;
    send_raw(&p, &topic, b"k", b"{not json", None, Some(0), None).await;
    let mut v2 = serde_json::to_value(user_event(EventType::Insert, 3, "c@x", 3)).unwrap();
    v2["v"] = json!(2);
    send_raw(
        &p,
        &topic,
        b"k",
        v2.to_string().as_bytes(),
        None,
        Some(0),
        None,
    )
    .await;
    send_user(&p, &topic, EventType::Insert, 4, "d@x", 4).await;
    let mut no_email = user_event(EventType::Insert, 5, "x", 5);
    no_email.data.remove("email");
    send_event(&p, &topic, &no_email, Some(0), None).await;
    send_user(&p, &topic, EventType::Insert, 6, "f@x", 6).await;

    let memory = MemoryTarget::default();
    let faults = Faults::default();
    faults.reject_id("4:d@x");
    let sink = start(config.clone(), &memory, &faults);
    wait::until(90, "offset 6 committed", async || {
        committed(&config).await == vec![Some(6)]
    })
    .await;
    sink.stop().await.unwrap();
    assert_eq!(ids(&memory.written()), ["1:a@x", "6:f@x"]);

    let dlq = read_all(&format!("{topic}.dlq"), 4);
    assert_eq!(dlq.len(), 4, "{dlq:?}");
    let offsets: Vec<&str> = dlq
        .iter()
        .map(|(_, _, _, h)| h["sluice-original-offset"].as_str())
        .collect();
    assert_eq!(offsets, ["1", "2", "3", "4"]);
    for (_, _, _, h) in &dlq {
        assert_eq!(h["sluice-original-topic"], topic);
        assert_eq!(h["sluice-original-partition"], "0");
    }
    let h = &dlq[0].3;
    assert!(
        h["sluice-error"].starts_with("message is not a Sluice change event: "),
        "{h:?}"
    );
    assert!(!h.contains_key("sluice-rule"));
    assert_eq!(dlq[0].2, b"{not json");
    assert_eq!(
        dlq[1].3["sluice-error"],
        "event version 2 is not supported (this build reads v1); upgrade sluice-sink or send v1 events"
    );
    let h = &dlq[2].3;
    assert_eq!(h["sluice-error"], "injected rejection of id 4:d@x");
    assert_eq!(h["sluice-rule"], "users");
    assert_eq!(h["sluice-target"], "out");
    // The original headers travel along.
    assert_eq!(h["sluice-seq"], "4");
    assert_eq!(h["sluice-table"], "shop.users");
    let h = &dlq[3].3;
    assert_eq!(h["sluice-rule"], "users");
    assert!(
        h["sluice-error"].contains("template `{id}:{email}`"),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_rule_with_on_error_stop_halts_at_the_message() {
    let topic = unique_name("sink_stop");
    create_topic(&topic, 1).await.unwrap();
    let config = parse_config(&config_text(
        &topic,
        &unique_name("g"),
        "type = \"noop\"",
        "id = \"{email}\"\non_error = \"stop\"",
    ));
    let p = producer();
    send_user(&p, &topic, EventType::Insert, 1, "a@x", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bad = user_event(EventType::Insert, 2, "x", 2);
    bad.data.remove("email");
    send_event(&p, &topic, &bad, Some(0), None).await;
    send_user(&p, &topic, EventType::Insert, 3, "c@x", 3).await;

    let memory = MemoryTarget::default();
    let faults = Faults::default();
    let sink = start(config.clone(), &memory, &faults);
    let err = sink.finished(90).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "stopped by rule `users` (on_error = \"stop\") at {topic}/0@1: "
        )),
        "{err}"
    );
    assert!(!ids(&memory.written()).contains(&"c@x".to_owned()));
    let done = committed(&config).await;
    assert!(done == vec![Some(1)] || done == vec![None], "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_start_at_a_time_between_two_batches() {
    let topic = unique_name("sink_start");
    create_topic(&topic, 3).await.unwrap();
    let p = producer();
    let t0 = now_ms() - 600_000;
    let between = t0 + 60_000;
    let t1 = t0 + 120_000;
    // Batch A before `between`, batch B after, spread over all partitions.
    let mut first_b = [None::<i64>; 3];
    let mut counts = [0i64; 3];
    for id in 0..30 {
        let part = (id % 3) as i32;
        let (ts, seq) = if id < 15 {
            (t0 + id, id)
        } else {
            (t1 + id, id)
        };
        if id >= 15 && first_b[part as usize].is_none() {
            first_b[part as usize] = Some(counts[part as usize]);
        }
        counts[part as usize] += 1;
        send_event(
            &p,
            &topic,
            &user_event(EventType::Insert, id, "e", seq),
            Some(part),
            Some(ts),
        )
        .await;
    }
    let config = parse_config(&config_text(
        &topic,
        &unique_name("g"),
        "type = \"noop\"",
        "",
    ));
    let c = config.clone();
    let set =
        tokio::task::spawn_blocking(move || offsets::apply_start_at(&c, StartAt::Time(between)))
            .await
            .unwrap()
            .unwrap();
    let mut got: Vec<(i32, i64)> = set.iter().map(|(_, p, o)| (*p, *o)).collect();
    got.sort();
    assert_eq!(got, vec![(0, 5), (1, 5), (2, 5)]);
    assert_eq!(first_b, [Some(5), Some(5), Some(5)]);
    assert_eq!(committed(&config).await, vec![Some(5), Some(5), Some(5)]);

    // The group resumes there: exactly batch B is written.
    let memory = MemoryTarget::default();
    let sink = start(config.clone(), &memory, &Faults::default());
    wait::until(90, "all partitions committed at 10", async || {
        committed(&config).await == vec![Some(10), Some(10), Some(10)]
    })
    .await;
    sink.stop().await.unwrap();
    // `sluice-sink offsets` reads the same: committed at the end, no lag.
    let c = config.clone();
    let rows = tokio::task::spawn_blocking(move || offsets::list(&c, &c.consumer.group_id))
        .await
        .unwrap()
        .unwrap();
    let seen: Vec<(i32, Option<i64>, i64, i64)> = rows
        .iter()
        .map(|r| (r.partition, r.committed, r.high, r.lag()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, Some(10), 10, 0),
            (1, Some(10), 10, 0),
            (2, Some(10), 10, 0)
        ]
    );
    let mut seqs: Vec<i64> = memory.written().iter().map(|i| i.mapped.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (15..30).collect::<Vec<i64>>());

    // A time after the last message: the end of every partition (not offset 0).
    let c = config.clone();
    let set = tokio::task::spawn_blocking(move || {
        offsets::apply_start_at(&c, StartAt::Time(now_ms() + 3_600_000))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(set.iter().all(|(_, _, o)| *o == 10), "{set:?}");
    let c = config.clone();
    let set = tokio::task::spawn_blocking(move || offsets::apply_start_at(&c, StartAt::Earliest))
        .await
        .unwrap()
        .unwrap();
    assert!(set.iter().all(|(_, _, o)| *o == 0), "{set:?}");
}

// ---------------------------------------------------------------------------------------------
// Redis target
// ---------------------------------------------------------------------------------------------

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_redis_invalidates_new_and_old_keys_and_refreshes() {
    let topic = unique_name("sink_redis");
    create_topic(&topic, 2).await.unwrap();
    let prefix = unique_name("u");
    let text = format!(
        "{}\n[rules.redis]\nkeys = [\"{prefix}:{{id}}\", \"{prefix}:email:{{email}}\"]\n\
         [[rules]]\nname = \"users-copy\"\ntarget = \"out\"\nmatch = {{ tables = [\"shop.users\"] }}\n\
         [rules.redis]\nkeys = [\"{prefix}:copy:{{id}}\"]\nmode = \"refresh\"\nttl_secs = 600\n",
        config_text(
            &topic,
            &unique_name("g"),
            &format!("type = \"redis\"\nurl = \"{}\"", redis_url()),
            ""
        )
    );
    let config = parse_config(&text);
    let mut conn = redis_conn().await;
    for k in ["1", "email:a@x", "email:b@x", "2", "email:z@x", "copy:2"] {
        let () = redis::cmd("SET")
            .arg(format!("{prefix}:{k}"))
            .arg("cached")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let p = producer();
    // User 1 changes email a -> b: both email keys and the id key must go.
    let mut upd = user_event(EventType::Update, 1, "b@x", 10);
    let mut old = Row::new();
    old.insert("email".into(), json!("a@x"));
    upd.old = Some(old);
    send_event(&p, &topic, &upd, None, None).await;
    // User 2 is deleted: its keys and its refreshed copy go.
    send_event(
        &p,
        &topic,
        &user_event(EventType::Delete, 2, "z@x", 11),
        None,
        None,
    )
    .await;
    // User 3 is inserted: the refresh rule writes its JSON copy with a TTL.
    send_event(
        &p,
        &topic,
        &user_event(EventType::Insert, 3, "c@x", 12),
        None,
        None,
    )
    .await;

    let sink = RunningSink::start(Sink::new(config.clone()));
    let copy3 = format!("{prefix}:copy:3");
    wait::until(90, "the refreshed copy of user 3", async || {
        redis_exists(&mut conn, &copy3).await
    })
    .await;
    wait::until(90, "all offsets committed", async || {
        let c = committed(&config).await;
        let total: i64 = c.iter().map(|o| o.unwrap_or(0)).sum();
        total == 3
    })
    .await;
    sink.stop().await.unwrap();
    for k in ["1", "email:a@x", "email:b@x", "2", "email:z@x", "copy:2"] {
        assert!(
            !redis_exists(&mut conn, &format!("{prefix}:{k}")).await,
            "{prefix}:{k} still cached"
        );
    }
    let copy: String = redis::cmd("GET")
        .arg(&copy3)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&copy).unwrap(),
        json!({"id":3,"email":"c@x"})
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&copy3)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600, "{ttl}");
}

// ---------------------------------------------------------------------------------------------
// The binary: bad configs, kill -9, two processes in one group
// ---------------------------------------------------------------------------------------------

fn write_config(text: &str) -> PathBuf {
    sluice_integration::write_temp_file("sinkcfg", "sink.toml", text)
}

#[tokio::test]
async fn sink_bad_config_files_fail_with_exact_messages() {
    let base = config_text(
        "t",
        "g",
        "type = \"redis\"\nurl = \"redis://127.0.0.1:6380\"",
        "",
    );
    let cases: Vec<(String, String)> = vec![
        (
            format!("{base}\n[rules.redis]\nkeys = [\"u:{{id}}\"]\n").replace("[batch]", "[batch]\nlinger = 5"),
            "TOML parse error at line 11, column 1\n   |\n11 | linger = 5\n   | ^^^^^^\nunknown field `linger`, expected one of `max_items`, `max_bytes`, `linger_ms`".into(),
        ),
        (
            format!("{base}\n[rules.redis]\nkeys = [\"u:{{id}}\"]\n").replace("[\"shop.users\"]", "[\"/shop\\\\.(users/\"]"),
            "invalid configuration:\n  rules[0].match.tables[0]".into(),
        ),
        (
            format!("{base}fields = {{ include = [\"id\"] }}\n[rules.redis]\nkeys = [\"u:{{email}}\"]\n"),
            "invalid configuration:\n  rules[0].redis.keys[0]: unknown column `email` in template `u:{email}`: fields.include does not keep it; add it to fields.include (kept: id)".into(),
        ),
        (
            format!("{base}fields = {{ json_path = {{ city = {{ column = \"attrs\", path = \"$.[\" }} }} }}\n[rules.redis]\nkeys = [\"u:{{id}}\"]\n"),
            "invalid configuration:\n  rules[0].fields.json_path.city".into(),
        ),
    ];
    let bin = sink_binary();
    for (text, want) in cases {
        let path = write_config(&text);
        let args = ["check".as_ref(), "--config".as_ref(), path.as_os_str()];
        let out = run_to_end(&bin, args, &[], 60).await;
        let stderr = &out.stderr;
        assert!(!out.success(), "{text}");
        let want = format!("sluice-sink: {}: {want}", path.display());
        assert!(stderr.starts_with(&want), "want:\n{want}\ngot:\n{stderr}");
    }
}

/// A `sluice-sink run` child process logging to a file.
struct SinkProcess {
    child: tokio::process::Child,
    log: PathBuf,
}

fn spawn_sink(config: &Path, name: &str) -> SinkProcess {
    let log = config.with_file_name(format!("{name}.log"));
    let child = spawn_run(&sink_binary(), config, &[], &[], &log);
    SinkProcess { child, log }
}

impl SinkProcess {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sets `prefix:{id}` for `ids` to "stale", produces one UPDATE per id, and returns how many.
async fn stale_keys_and_events(topic: &str, prefix: &str, ids: std::ops::Range<i64>) -> i64 {
    let mut conn = redis_conn().await;
    let mut pipe = redis::pipe();
    for id in ids.clone() {
        pipe.set(format!("{prefix}:{id}"), "stale").ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let p = producer();
    let events: Vec<ChangeEvent> = ids
        .clone()
        .map(|id| user_event(EventType::Update, id, "e", id + 1))
        .collect();
    for chunk in events.chunks(500) {
        futures::future::join_all(chunk.iter().map(|e| send_event(&p, topic, e, None, None))).await;
    }
    ids.end - ids.start
}

async fn remaining(prefix: &str) -> usize {
    let mut conn = redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

fn redis_sink_config(topic: &str, group: &str, prefix: &str) -> String {
    format!(
        "{}\n[rules.redis]\nkeys = [\"{prefix}:{{id}}\"]\n",
        config_text(
            topic,
            group,
            &format!("type = \"redis\"\nurl = \"{}\"", redis_url()),
            ""
        )
    )
}

async fn all_committed(config: &SinkConfig, total: i64) -> bool {
    let c = committed(config).await;
    c.iter().map(|o| o.unwrap_or(0)).sum::<i64>() == total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_process_killed_with_sigkill_resumes_and_leaves_no_stale_key() {
    let topic = unique_name("sink_kill");
    create_topic(&topic, 4).await.unwrap();
    let prefix = unique_name("k");
    let group = unique_name("g");
    let text = redis_sink_config(&topic, &group, &prefix);
    let config = parse_config(&text);
    let path = write_config(&text);
    let total = stale_keys_and_events(&topic, &prefix, 0..5000).await;

    let mut first = spawn_sink(&path, "first");
    wait::until(120, "the first sink to make progress", async || {
        remaining(&prefix).await < total as usize
    })
    .await;
    kill9(&mut first.child).await;
    // More stale keys and events arrive while no sink runs.
    let more = stale_keys_and_events(&topic, &prefix, 5000..6000).await;
    // The second joins at once: the broker holds the rebalance until the dead member's session
    // (15 s) has expired, then gives the second every partition from the committed offsets.
    let mut second = spawn_sink(&path, "second");
    wait::until(120, "every message committed", async || {
        all_committed(&config, total + more).await
    })
    .await;
    assert_eq!(remaining(&prefix).await, 0, "stale keys left in Redis");
    kill9(&mut second.child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_two_processes_share_a_group_and_survive_a_kill() {
    let topic = unique_name("sink_pair");
    create_topic(&topic, 4).await.unwrap();
    let prefix = unique_name("p");
    let group = unique_name("g");
    let text = redis_sink_config(&topic, &group, &prefix);
    let config = parse_config(&text);
    let path = write_config(&text);

    let mut a = spawn_sink(&path, "a");
    let mut b = spawn_sink(&path, "b");
    // Both joined and the partitions are split between them.
    wait::until(120, "both sinks to own partitions", async || {
        let (la, lb) = (a.log_text(), b.log_text());
        assigned_last(&la).is_some_and(|n| n > 0 && n < 4)
            && assigned_last(&lb).is_some_and(|n| n > 0 && n < 4)
    })
    .await;
    let total = stale_keys_and_events(&topic, &prefix, 0..1000).await;
    wait::until(120, "the first batch committed", async || {
        all_committed(&config, total).await
    })
    .await;
    kill9(&mut a.child).await;
    let more = stale_keys_and_events(&topic, &prefix, 1000..2000).await;
    // Nobody else joins: the broker expires a's session (15 s) and rebalances, and the survivor
    // takes over a's partitions from their committed offsets and finishes the work alone.
    wait::until(90, "the survivor to own all four partitions", async || {
        assigned_last(&b.log_text()) == Some(4)
    })
    .await;
    wait::until(90, "the survivor to commit everything", async || {
        all_committed(&config, total + more).await
    })
    .await;
    assert_eq!(remaining(&prefix).await, 0, "stale keys left in Redis");
    kill9(&mut b.child).await;
}

/// The partition count of the last "partitions assigned" log line.
fn assigned_last(log: &str) -> Option<usize> {
    log.lines()
        .rev()
        .filter(|l| l.contains("partitions assigned"))
        .filter_map(|l| {
            let rest = l.split("partitions=").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_process_stops_on_sigterm_with_a_final_commit() {
    let topic = unique_name("sink_term");
    create_topic(&topic, 2).await.unwrap();
    let prefix = unique_name("t");
    // Periodic commits are an hour apart: only the final commit on SIGTERM can commit.
    let text = redis_sink_config(&topic, &unique_name("g"), &prefix)
        .replace("commit_interval_ms = 1000", "commit_interval_ms = 3600000");
    let config = parse_config(&text);
    let path = write_config(&text);
    let total = stale_keys_and_events(&topic, &prefix, 0..200).await;
    let mut sink = spawn_sink(&path, "term");
    wait::until(120, "every stale key invalidated", async || {
        remaining(&prefix).await == 0
    })
    .await;
    let exit = terminate(&mut sink.child, 60)
        .await
        .expect("sluice-sink did not stop within 60 s of SIGTERM");
    assert!(exit.success(), "{exit:?}\n{}", sink.log_text());
    assert!(
        all_committed(&config, total).await,
        "{:?}",
        committed(&config).await
    );
}
