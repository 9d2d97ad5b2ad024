//! `sluice-sink` with the MySQL replica target as a process: kills, a replay, every column
//! type, a row the replica refuses.

use super::workload::{random_values, workload, Capture};
use super::{checksum, conn, produce, rows, setup, spawn_sink, verify, wait_committed};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rdkafka::Message;
use serde_json::Value;
use sluice_event::EventType;
use sluice_integration::process::terminate;
use sluice_integration::wait::{self};
use sluice_integration::{kafka, kafka_brokers, mysql};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_replica_random_workload_with_kills_and_replay_converges() {
    let (src, rep, topic, path, probe) = setup("wl", 4).await;
    let log = |n: &str| path.with_file_name(n);
    let mut rng = StdRng::seed_from_u64(0x5_1u64 ^ 6);
    let mut c = conn().await;
    let mut cap = Capture::new(&src);

    // Three rounds: changes arrive, a sink runs for a while and is killed with SIGKILL.
    let mut produced = 0;
    for round in 0..3 {
        workload(&mut c, &mut cap, &mut rng, 250, 300).await;
        produce(&topic, &cap.events[produced..]).await;
        produced = cap.events.len();
        let name = format!("run{round}.log");
        let mut sink = spawn_sink(&path, &name, &[]);
        let target = if round < 2 {
            produced as i64 / 2
        } else {
            produced as i64
        };
        wait_committed(&probe, target, 240, &log(&name)).await;
        if round < 2 {
            // The next process joins at once; the broker gives it the partitions when the
            // dead member's session (10 s here) has expired.
            sluice_integration::kill9(&mut sink).await;
        } else {
            // The last one stops cleanly, so the replay's member owns every partition at once.
            let _ = terminate(&mut sink, 30).await;
        }
    }
    // One replay of everything from the start: the replica must not move away from the source.
    let mut replay = spawn_sink(&path, "replay.log", &["--start-at", "earliest"]);
    wait::until(30, "the replay's start position in its log", async || {
        let text = std::fs::read_to_string(log("replay.log")).unwrap_or_default();
        text.contains("start at")
    })
    .await;
    // Changes made during the replay land too.
    workload(&mut c, &mut cap, &mut rng, 100, 300).await;
    produce(&topic, &cap.events[produced..]).await;
    produced = cap.events.len();
    wait_committed(&probe, produced as i64, 240, &log("replay.log")).await;
    sluice_integration::kill9(&mut replay).await;

    let kinds = |k: EventType| cap.events.iter().filter(|e| e.kind == k).count();
    assert!(
        kinds(EventType::Insert) > 100
            && kinds(EventType::Update) > 100
            && kinds(EventType::Delete) > 50,
        "workload too small"
    );
    let source = rows(&mut c, &src, None).await;
    let replica = rows(&mut c, &rep, None).await;
    assert!(source.len() > 50, "{}", source.len());
    assert_eq!(source.len(), replica.len());
    for (id, row) in &source {
        assert_eq!(Some(row), replica.get(id), "row {id}");
    }
    assert_eq!(checksum(&mut c, &src).await, checksum(&mut c, &rep).await);
    let (ok, out) = verify(&path).await;
    assert!(ok, "{out}");
    assert!(out.contains("\nequal"), "{out}");

    // verify sees a changed and a missing row, and names their key ranges.
    let ids: Vec<i64> = source.keys().copied().collect();
    let (changed, missing) = (ids[3], ids[ids.len() - 1]);
    mysql::exec_all(
        &mut c,
        [
            format!("UPDATE {rep}.t SET name = 'changed' WHERE id = {changed}"),
            format!("DELETE FROM {rep}.t WHERE id = {missing}"),
        ],
    )
    .await;
    let (ok, out) = verify(&path).await;
    assert!(!ok, "{out}");
    assert_eq!(out.matches("differs: keys").count(), 2, "{out}");
    assert!(out.contains("differs: keys [start, ("), "{out}");
    assert!(
        out.contains("the replica differs from the source in 2 key ranges"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_replica_every_column_type_round_trips_and_a_bad_row_goes_to_the_dlq() {
    let (src, rep, topic, path, probe) = setup("rt", 2).await;
    let mut c = conn().await;
    let mut rng = StdRng::seed_from_u64(42);
    // Edge values, a row of NULLs, and random rows.
    let edges = [
        "1, 18446744073709551615, -32768, '-9999999999.99', -1.25, 1e300, '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '-838:59:59.00', 2155, 'naïve 🌊 \"q\" \\\\ ''', REPEAT('x', 2000), x'00ff0001', x'', 'shipped', 'red,green,blue', 1023, '{\"a\":[1,{\"b\":null}],\"s\":\"ü\"}', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)', 4326), '550e8400-e29b-41d4-a716-446655440000', '255.255.255.255', '::ffff:1.2.3.4'",
        "2, 0, 0, '0.00', 0, 0, '0000-00-00', '0000-00-00 00:00:00', '1970-01-01 00:00:01', '00:00:00', 0, '', '', x'00', x'00', 'new', '', 0, '[]', ST_GeomFromText('POINT(0 0)'), '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::'",
    ];
    let random = (4..60).map(|id| random_values(&mut rng, id).join(","));
    let values = edges.map(String::from).into_iter().chain(random);
    let mut inserts: Vec<String> = values
        .map(|v| format!("INSERT INTO {src}.t VALUES ({v})"))
        .collect();
    inserts.insert(2, format!("INSERT INTO {src}.t (id) VALUES (3)"));
    mysql::exec_all(&mut c, inserts).await;
    let source = rows(&mut c, &src, None).await;
    let mut cap = Capture::new(&src);
    for row in source.values() {
        cap.push(EventType::Insert, row.clone(), None);
    }
    // A row the replica refuses (DECIMAL(12,2) out of range), in the middle of the stream.
    let mut bad = source[&5].clone();
    bad.insert("id".into(), Value::from(1_000_000));
    bad.insert("amount".into(), Value::from("123456789012345.00"));
    cap.events.insert(30, cap.events[0].clone());
    cap.events[30].data = bad;
    produce(&topic, &cap.events).await;

    let mut sink = spawn_sink(&path, "run.log", &[]);
    let run_log = path.with_file_name("run.log");
    wait_committed(&probe, cap.events.len() as i64, 240, &run_log).await;
    sluice_integration::kill9(&mut sink).await;

    let replica = rows(&mut c, &rep, None).await;
    assert_eq!(replica.len(), source.len());
    for (id, row) in &source {
        assert_eq!(Some(row), replica.get(id), "row {id}");
    }
    assert_eq!(checksum(&mut c, &src).await, checksum(&mut c, &rep).await);
    let (ok, out) = verify(&path).await;
    assert!(ok && out.contains("\nequal"), "{out}");

    // The refused row is in the dead-letter topic with the server's message.
    let dlq = read_topic(&format!("{topic}.dlq"), 1).await;
    assert_eq!(dlq.len(), 1);
    let (key, error) = &dlq[0];
    assert!(key.contains("1000000"), "{key}");
    assert!(
        error.contains("error 1264") && error.contains("Out of range value for column 'amount'"),
        "{error}"
    );
}

/// (key, sluice-error header) of the first `expect` messages of `topic` (one partition).
async fn read_topic(topic: &str, expect: usize) -> Vec<(String, String)> {
    let topic = topic.to_owned();
    let messages = tokio::task::spawn_blocking(move || {
        kafka::read_messages(&kafka_brokers(), &topic, 1, expect, 30)
    })
    .await
    .unwrap();
    messages
        .iter()
        .map(|m| {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let error = kafka::headers(m).remove("sluice-error").unwrap_or_default();
            (key, error)
        })
        .collect()
}
