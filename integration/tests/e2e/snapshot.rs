//! End-to-end tests: snapshots. A table is loaded through the capture (DBLog watermarks, or
//! binlog positions for a read-only user) while a workload updates, deletes, inserts and
//! re-keys rows in it. The topic is then applied to a replica table by a minimal upsert/delete
//! loop in partition order (what a sink does; the tests do not depend on a sink target) and the
//! replica is compared with the source, row by row and by checksum.
//!
//! This file holds the tables, the capture config, the workload and the waits; the replica loop
//! and the comparison are in `replica`. The tests: `initial` (initial snapshots under writes, a
//! kill -9, the sink as the replica's writer), `on_demand` (requests, and the tables refused)
//! and `read_only` (a user that can write nothing).

mod initial;
mod on_demand;
mod read_only;
mod replica;

use mysql_async::prelude::Queryable;
use rand::Rng as _;
use sluice_capture::checkpoint::FileStore;
use sluice_capture::config::CaptureConfig;
use sluice_capture::snapshot::{self, JobState};
use sluice_event::ChangeEvent;
use sluice_integration::capture::CaptureToml;
use sluice_integration::wait;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows of the snapshotted table: 10k rows in 20 chunks keep each test short on a 2-core machine
/// that runs the suite in parallel; bench/snapshot.sh covers size.
const ROWS: u64 = 10_000;
const CHUNK: usize = 500;
const PARTITIONS: i32 = 4;

async fn conn_to(url: &str) -> mysql_async::Conn {
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(url).unwrap())
        .await
        .unwrap();
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    c
}

async fn conn() -> mysql_async::Conn {
    conn_to(&sluice_integration::mysql_url()).await
}

/// Database `db` with the source table `t` (`rows` rows) and an empty replica table `r`.
async fn tables(db: &str, rows: u64) {
    let mut c = conn().await;
    c.query_drop(format!("CREATE DATABASE {db}")).await.unwrap();
    for t in ["t", "r"] {
        c.query_drop(format!(
            "CREATE TABLE {db}.{t} (id BIGINT PRIMARY KEY, grp INT NOT NULL, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL, updated DATETIME(3) NOT NULL) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
    }
    c.query_drop(format!(
        "INSERT INTO {db}.t SELECT seq, seq % 7, CONCAT('row-', seq), seq * 1.25, TIMESTAMP'2026-01-01 00:00:00.000' + INTERVAL seq SECOND FROM {db}.seq_1_to_{rows}"
    ))
    .await
    .unwrap();
}

fn config_text(instance: &str, db: &str, state: &Path, url: &str, snapshot: &str) -> String {
    CaptureToml {
        url: url.to_owned(),
        // A range of replica ids of their own, apart from the other tests' ids.
        server_id: 2_000_000 + rand::random::<u32>() % 1_000_000,
        heartbeat_secs: Some(1),
        checkpoint_interval_ms: Some(100),
        include: format!(r"^{db}\.(t|sluice_signal)$"),
        extra: format!(
            "[publish]\ncreate_topics = true\npartitions = {PARTITIONS}\n\
             [snapshot]\nsignal_table = \"{db}.sluice_signal\"\n{snapshot}\n"
        ),
        ..CaptureToml::new(instance, state)
    }
    .text()
}

fn parse(text: &str) -> CaptureConfig {
    sluice_config::parse(text, Path::new("test.toml"), |_| None).unwrap()
}

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-snapshot-test-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the workload did to the source table while the snapshot ran.
#[derive(Default, Debug)]
struct Done {
    updates: u64,
    deletes: u64,
    inserts: u64,
    rekeys: u64,
    deleted: HashSet<i64>,
}

/// Random single-row changes until `stop`: updates, deletes, inserts of new keys, and key
/// changes (UPDATE of the primary key), spread over the whole key range `1..=rows`.
async fn workload(db: String, rows: u64, stop: Arc<AtomicBool>) -> Done {
    let mut c = conn().await;
    let mut done = Done::default();
    let mut next_id = rows as i64 + 1;
    while !stop.load(Ordering::Relaxed) {
        // About 300 changes a second: enough to hit chunks in their windows, few enough
        // messages for the test broker.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let (op, id, n): (u32, i64, i64) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..100),
                rng.random_range(1..=rows as i64),
                rng.random_range(0..1_000_000),
            )
        };
        match op {
            0..=49 => {
                c.query_drop(format!(
                    "UPDATE {db}.t SET grp = {n} % 100, name = CONCAT('upd-', {n}), amount = amount + 1, updated = NOW(3) WHERE id = {id}"
                ))
                .await
                .unwrap();
                done.updates += c.affected_rows();
            }
            50..=79 => {
                c.query_drop(format!("DELETE FROM {db}.t WHERE id = {id}"))
                    .await
                    .unwrap();
                if c.affected_rows() == 1 {
                    done.deletes += 1;
                    done.deleted.insert(id);
                }
            }
            80..=94 => {
                c.query_drop(format!(
                    "INSERT INTO {db}.t VALUES ({next_id}, 1, 'new', {n} / 100, NOW(3))"
                ))
                .await
                .unwrap();
                next_id += 1;
                done.inserts += 1;
            }
            _ => {
                // A key change is a DELETE of the old key and an INSERT of the new one.
                let new_id = 10_000_000 + id;
                let r = c
                    .query_drop(format!("UPDATE {db}.t SET id = {new_id} WHERE id = {id}"))
                    .await;
                if r.is_ok() && c.affected_rows() == 1 {
                    done.rekeys += 1;
                    done.deleted.insert(id);
                }
            }
        }
    }
    done
}

/// Waits until every snapshot job of `cfg` is done (the capture's progress file).
async fn wait_snapshot_done(cfg: &CaptureConfig, secs: u64) -> Vec<snapshot::Job> {
    wait::until_ok(secs, "every snapshot job done", async || {
        let jobs = snapshot::status(cfg).unwrap();
        assert!(
            jobs.iter().all(|j| j.state != JobState::Failed),
            "snapshot failed: {jobs:?}"
        );
        if !jobs.is_empty() && jobs.iter().all(|j| j.state == JobState::Done) {
            Ok(jobs)
        } else {
            Err(format!("{jobs:?}"))
        }
    })
    .await
}

/// Waits until the capture's checkpoint covers the current end of the binlog: everything
/// written so far is acknowledged by Kafka.
async fn wait_caught_up(cfg: &CaptureConfig, secs: u64) {
    let mut c = conn().await;
    let row: mysql_async::Row = c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let (file, pos): (String, u64) = (row.get(0).unwrap(), row.get(1).unwrap());
    let store = FileStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let what = format!("the checkpoint to reach {file}:{pos}");
    wait::until_ok(secs, &what, async || match store.load().unwrap() {
        Some(cp) if (cp.file.as_str(), cp.pos) >= (file.as_str(), pos) => Ok(()),
        other => Err(format!("checkpoint {other:?}")),
    })
    .await
}

/// Every message of `topic`, per partition in offset order.
fn consume_all(topic: &str) -> Vec<Vec<ChangeEvent>> {
    sluice_integration::kafka::read_to_end(
        &sluice_integration::kafka_brokers(),
        topic,
        PARTITIONS,
        240,
    )
}

/// Runs an in-process capture until `cancel`.
fn spawn_capture(
    cfg: &CaptureConfig,
    cancel: &CancellationToken,
) -> tokio::task::JoinHandle<Result<(), sluice_capture::error::CaptureError>> {
    let (cfg, cancel) = (cfg.clone(), cancel.clone());
    tokio::spawn(async move {
        sluice_capture::run::run(&cfg, None, cancel, Arc::new(AtomicBool::new(false))).await
    })
}

/// Runs an in-process capture with the workload until its snapshot is done and acknowledged;
/// returns the jobs, what the workload did, and the topic.
async fn snapshot_with_workload(
    db: &str,
    rows: u64,
    cfg: &CaptureConfig,
) -> (Vec<snapshot::Job>, Done, Vec<Vec<ChangeEvent>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(workload(db.to_owned(), rows, Arc::clone(&stop)));
    let cancel = CancellationToken::new();
    let capture = spawn_capture(cfg, &cancel);
    let jobs = wait_snapshot_done(cfg, 120).await;
    stop.store(true, Ordering::Relaxed);
    let done = writer.await.unwrap();
    wait_caught_up(cfg, 60).await;
    cancel.cancel();
    capture.await.unwrap().unwrap();
    let topic = format!("sluice.{}", cfg.instance);
    let partitions = tokio::task::spawn_blocking(move || consume_all(&topic))
        .await
        .unwrap();
    (jobs, done, partitions)
}

/// The error a capture run with `cfg` stops with before it starts (it must not start).
async fn start_refused(cfg: &CaptureConfig) -> String {
    sluice_capture::run::run(
        cfg,
        None,
        CancellationToken::new(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect_err("the capture must refuse to start")
    .to_string()
}
