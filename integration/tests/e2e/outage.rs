//! End-to-end test of a Kafka outage (issue #3): the broker stops answering for 20 s while rows
//! are written to MariaDB, and nothing is lost when it returns.
//!
//! The shared test broker must not be stopped (other tests use it), and a TCP proxy in front of
//! it would be bypassed after bootstrap (clients connect to the address the broker advertises),
//! so the test starts a private Apache Kafka broker and freezes it with SIGSTOP: connections hang
//! as in a network partition, and the broker keeps its state, as a broker behind a partitioned
//! network does.
//! `sluice-capture` runs as a process, as in production.

use mysql_async::prelude::Queryable;
use sluice_capture::checkpoint::{Checkpoint, FileStore};
use sluice_event::ChangeEvent;
use sluice_integration::broker::PrivateBroker;
use sluice_integration::capture::{kafka_table, CaptureToml};
use sluice_integration::process::{assert_running, capture_binary, spawn_run, terminate};
use sluice_integration::wait::Deadline;
use sluice_integration::{kafka, mysql};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;
const KEYS: u32 = 12;
const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_frozen_for_20s_loses_nothing_and_keeps_order() {
    let broker = PrivateBroker::start("outage_kafka").await.unwrap();
    let db = sluice_integration::unique_name("outage");
    let topic = format!("sluice.{db}");
    sluice_integration::create_topic_on(&broker.brokers(), &topic, PARTITIONS)
        .await
        .unwrap();
    let mut c = mysql::conn().await;
    let t = "t (id INT PRIMARY KEY, version INT NOT NULL)";
    mysql::create_database(&mut c, &db, &[t]).await;
    let state = std::env::temp_dir().join(sluice_integration::unique_name("outage_state"));
    std::fs::create_dir_all(&state).unwrap();
    let (file, pos) = mysql::binlog_end(&mut c).await;
    let start = format!("{file}:{pos}");
    let config = state.join("capture.toml");
    std::fs::write(&config, config_text(&db, &broker.brokers(), &state, &start)).unwrap();
    let log = state.join("capture.log");
    let mut capture = spawn_run(&capture_binary(), &config, &[], &[], &log);
    let checkpoints = FileStore::new(&state, &db);

    // Before the outage: one round, acknowledged and checkpointed.
    let (domain, before) = write_round(&mut c, &db, 0).await;
    let deadline = Deadline::after(60);
    loop {
        assert_running(&mut capture, "sluice-capture (before the outage)", &log);
        if checkpoint_gtid(&checkpoints.load().unwrap(), &domain).is_some_and(|s| s >= before) {
            break;
        }
        let what = || {
            format!(
                "the first round checkpointed (checkpoint {:?}); capture log:\n{}",
                checkpoints.load().unwrap(),
                tail(&log)
            )
        };
        deadline.sleep(Duration::from_millis(100), what).await;
    }

    // The outage: a round per second, each its own transaction. The checkpoint must not move
    // past the first unacknowledged transaction, and the capture must not exit.
    broker.freeze().unwrap();
    let frozen = Instant::now();
    let mut rounds = 1;
    let mut first_unacked = None;
    let mut next_write = frozen;
    while frozen.elapsed() < OUTAGE {
        if Instant::now() >= next_write {
            let (_, gtid) = write_round(&mut c, &db, rounds).await;
            first_unacked.get_or_insert(gtid);
            rounds += 1;
            next_write += Duration::from_secs(1);
        }
        assert_running(&mut capture, "sluice-capture (during the outage)", &log);
        let cp = checkpoints.load().unwrap();
        if let (Some(seq), Some(first)) = (checkpoint_gtid(&cp, &domain), first_unacked) {
            assert!(
                seq < first,
                "checkpoint {cp:?} covers transaction {domain}-*-{first}, written while the \
                 broker was frozen, so not acknowledged"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = {
        // One more round right before the broker returns.
        let (_, gtid) = write_round(&mut c, &db, rounds).await;
        rounds += 1;
        gtid
    };
    let frozen_cp = checkpoints.load().unwrap();
    broker.thaw().unwrap();
    assert_running(
        &mut capture,
        "sluice-capture (right after the outage)",
        &log,
    );

    // Every row arrives, per key in commit order.
    let want: BTreeSet<(i64, i64)> = (0..KEYS as i64)
        .flat_map(|k| (0..rounds as i64).map(move |r| (k, r)))
        .collect();
    let msgs = {
        let (brokers, topic, want) = (broker.brokers(), topic.clone(), want.clone());
        tokio::task::spawn_blocking(move || consume(&brokers, &topic, &want))
            .await
            .unwrap()
    };
    let got: BTreeSet<(i64, i64)> = msgs.iter().map(|(_, e)| id_version(e)).collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{} of {} row changes never arrived, e.g. (id, version) {:?}; capture log:\n{}\nbroker log:\n{}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(10)],
        tail(&log),
        broker.log_tail()
    );
    // A retried send may repeat an event (same seq, same event); its first copy counts.
    sluice_integration::events::assert_in_commit_order(&msgs);

    // Once acknowledged, the checkpoint moves past the outage's transactions.
    let deadline = Deadline::after(30);
    while checkpoint_gtid(&checkpoints.load().unwrap(), &domain).is_none_or(|s| s < last) {
        assert_running(&mut capture, "sluice-capture (after the outage)", &log);
        let what = || {
            format!(
                "the checkpoint to reach transaction {domain}-*-{last} after the broker's return \
                 (it is at {:?}; at the thaw: {frozen_cp:?}); capture log:\n{}",
                checkpoints.load().unwrap(),
                tail(&log)
            )
        };
        deadline.sleep(Duration::from_millis(100), what).await;
    }

    // A graceful stop still works: SIGTERM drains and exits 0.
    let status = terminate(&mut capture, 30)
        .await
        .expect("sluice-capture did not stop within 30 s of SIGTERM");
    assert!(
        status.success(),
        "sluice-capture exited with {status}; log:\n{}",
        tail(&log)
    );
    // Its log is a file, not a terminal: plain text, no colour escapes.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("reading the binlog") && !text.contains('\u{1b}'),
        "capture log:\n{}",
        tail(&log)
    );
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
    let _ = std::fs::remove_dir_all(&state);
}

/// A capture of database `db` only (other tests write to the same server), on `brokers`.
fn config_text(db: &str, brokers: &str, state: &Path, start: &str) -> String {
    CaptureToml {
        start: Some(start.to_owned()),
        // Shorter than the outage, so requests time out and are retried while the broker is
        // frozen, as in a long partition (the default, 60 s, would just wait).
        kafka: format!(
            "{}[kafka.options]\n\"socket.timeout.ms\" = \"5000\"\n",
            kafka_table(brokers)
        ),
        checkpoint_interval_ms: Some(100),
        metrics: true,
        ..CaptureToml::new(db, state)
    }
    .text()
}

/// Sets every key to `version` in one transaction; returns the transaction's GTID domain and
/// sequence number (`@@last_gtid`, `domain-server-seq`).
async fn write_round(c: &mut mysql_async::Conn, db: &str, version: u32) -> (String, u64) {
    let mut tx = c.start_transaction(Default::default()).await.unwrap();
    for k in 0..KEYS {
        tx.query_drop(format!(
            "INSERT INTO {db}.t VALUES ({k}, {version}) ON DUPLICATE KEY UPDATE version = {version}"
        ))
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let gtid: String = c.query_first("SELECT @@last_gtid").await.unwrap().unwrap();
    let mut parts = gtid.split('-');
    let domain = parts.next().unwrap_or_default().to_owned();
    let seq = parts
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("@@last_gtid is {gtid:?}, not domain-server-seq"));
    (domain, seq)
}

/// The checkpoint's GTID sequence number in `domain` (MariaDB GTID state: `d-s-n,d-s-n`).
fn checkpoint_gtid(cp: &Option<Checkpoint>, domain: &str) -> Option<u64> {
    let gtid = cp.as_ref()?.gtid.as_deref()?;
    gtid.split(',').find_map(|g| {
        let mut parts = g.trim().split('-');
        (parts.next()? == domain)
            .then(|| parts.nth(1)?.parse().ok())
            .flatten()
    })
}

fn tail(path: &Path) -> String {
    sluice_integration::process::tail(path, 40)
}

fn id_version(e: &ChangeEvent) -> (i64, i64) {
    (
        e.data["id"].as_i64().unwrap(),
        e.data["version"].as_i64().unwrap(),
    )
}

/// The topic's messages from the beginning, until every `(id, version)` of `want` arrived or
/// 60 s passed.
fn consume(brokers: &str, topic: &str, want: &BTreeSet<(i64, i64)>) -> Vec<(i32, ChangeEvent)> {
    let mut missing = want.clone();
    kafka::read_events(brokers, topic, PARTITIONS, 60, |e| {
        missing.remove(&id_version(e));
        missing.is_empty()
    })
}
