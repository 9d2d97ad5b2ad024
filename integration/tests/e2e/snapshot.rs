//! End-to-end tests: snapshots. A table is loaded through the capture (DBLog watermarks, or
//! binlog positions for a read-only user) while a workload updates, deletes, inserts and
//! re-keys rows in it. The topic is then applied to a replica table by a minimal upsert/delete
//! loop in partition order (what a sink does; the tests do not depend on a sink target) and the
//! replica is compared with the source, row by row and by checksum.

use mysql_async::prelude::Queryable;
use rand::Rng as _;
use serde_json::Value;
use sluice_capture::checkpoint::FileStore;
use sluice_capture::config::CaptureConfig;
use sluice_capture::snapshot::{self, JobState, ProgressStore};
use sluice_event::{ChangeEvent, EventType, Source};
use sluice_integration::capture::CaptureToml;
use sluice_integration::process::{capture_binary, sink_binary, spawn_run, tail};
use sluice_integration::sink::positions;
use sluice_integration::wait;
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// The replica: applies each partition's events in order (upsert by key, delete by key), then
/// writes the result into `db.r`. Checks on the way that `seq` increases along each partition
/// and that an event read again after a crash has the `seq` it had the first time.
async fn apply(db: &str, partitions: &[Vec<ChangeEvent>]) -> BTreeMap<i64, Value> {
    let mut rows: BTreeMap<i64, Value> = BTreeMap::new();
    for events in partitions {
        let mut last = i64::MIN;
        let mut seen: HashMap<i64, &ChangeEvent> = HashMap::new();
        for ev in events {
            match seen.get(&ev.seq) {
                Some(first) => assert!(
                    first.kind == ev.kind && first.data == ev.data && first.source == ev.source,
                    "seq {} names two different events:\n{first:?}\n{ev:?}",
                    ev.seq
                ),
                None => {
                    assert!(
                        ev.seq > last,
                        "seq {} after {last} in one partition",
                        ev.seq
                    );
                    last = ev.seq;
                    seen.insert(ev.seq, ev);
                }
            }
            let id = ev.data["id"].as_i64().unwrap();
            match ev.kind {
                EventType::Insert | EventType::Update => {
                    rows.insert(id, Value::Object(ev.data.clone()));
                }
                EventType::Delete => {
                    rows.remove(&id);
                }
                EventType::Ddl => {}
            }
        }
    }
    let mut c = conn().await;
    let all: Vec<&Value> = rows.values().collect();
    for batch in all.chunks(1_000) {
        let values: Vec<String> = batch
            .iter()
            .map(|r| {
                format!(
                    "({}, {}, {}, {}, {})",
                    r["id"],
                    r["grp"],
                    sql_string(&r["name"]),
                    sql_string(&r["amount"]),
                    sql_string(&r["updated"])
                )
            })
            .collect();
        c.query_drop(format!("INSERT INTO {db}.r VALUES {}", values.join(",")))
            .await
            .unwrap();
    }
    rows
}

fn sql_string(v: &Value) -> String {
    format!("'{}'", v.as_str().unwrap().replace('\'', "''"))
}

/// Row texts of `db.table` by id, for a readable diff.
async fn table_rows(db: &str, table: &str) -> BTreeMap<i64, String> {
    let mut c = conn().await;
    let rows: Vec<(i64, String)> = c
        .query(format!(
            "SELECT id, CONCAT_WS('|', grp, name, amount, DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s.%f')) FROM {db}.{table} ORDER BY id"
        ))
        .await
        .unwrap();
    rows.into_iter().collect()
}

async fn checksum(db: &str, table: &str) -> (u64, u64) {
    let mut c = conn().await;
    c.query_first(format!(
        "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, grp, name, amount, updated))), 0) FROM {db}.{table}"
    ))
    .await
    .unwrap()
    .unwrap()
}

/// Source and replica are equal, and no deleted key exists in the replica.
async fn assert_converged(db: &str, done: &Done, partitions: &[Vec<ChangeEvent>]) {
    let source = table_rows(db, "t").await;
    let replica = table_rows(db, "r").await;
    let missing: Vec<_> = source
        .keys()
        .filter(|k| !replica.contains_key(k))
        .take(5)
        .collect();
    let extra: Vec<_> = replica
        .keys()
        .filter(|k| !source.contains_key(k))
        .take(5)
        .collect();
    let differ: Vec<_> = source
        .iter()
        .filter(|(k, v)| replica.get(k).is_some_and(|r| r != *v))
        .take(5)
        .collect();
    let keys: HashSet<i64> = missing
        .iter()
        .chain(extra.iter())
        .map(|k| **k)
        .chain(differ.iter().map(|(k, _)| **k))
        .collect();
    let history: Vec<String> = partitions
        .iter()
        .flatten()
        .filter(|e| e.data["id"].as_i64().is_some_and(|id| keys.contains(&id)))
        .map(|e| {
            format!(
                "{:?} {:?} seq={} pos={:?} {:?}",
                e.source, e.kind, e.seq, e.pos, e.data
            )
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "replica differs: missing {missing:?}, extra {extra:?}, different {differ:?}; events of those keys:\n{}",
        history.join("\n")
    );
    assert_eq!(checksum(db, "t").await, checksum(db, "r").await);
    let resurrected: Vec<_> = done
        .deleted
        .iter()
        .filter(|id| replica.contains_key(id) && !source.contains_key(id))
        .collect();
    assert!(
        resurrected.is_empty(),
        "deleted rows in the replica: {resurrected:?}"
    );
}

fn snapshot_events(partitions: &[Vec<ChangeEvent>]) -> Vec<&ChangeEvent> {
    partitions
        .iter()
        .flatten()
        .filter(|e| e.source == Source::Snapshot)
        .collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_under_concurrent_writes_converges_on_a_replica() {
    let db = sluice_integration::unique_name("snap_conc");
    tables(&db, ROWS).await;
    let state = state_dir(&db);
    let cfg = parse(&config_text(
        &db,
        &db,
        &state,
        &sluice_integration::mysql_url(),
        // Throttled so the workload has a few seconds to change rows under the chunks.
        &format!(
            "mode = \"initial\"\ntables = [\"{db}.t\"]\nchunk_size = {CHUNK}\nmax_rows_per_sec = 2500"
        ),
    ));
    let (jobs, done, partitions) = snapshot_with_workload(&db, ROWS, &cfg).await;

    assert!(
        done.updates > 50 && done.deletes > 50 && done.inserts > 20 && done.rekeys > 5,
        "the workload did too little while the snapshot ran: {done:?}"
    );
    assert!(
        jobs[0].chunks as usize >= ROWS as usize / CHUNK / 2,
        "{jobs:?}"
    );
    let snap = snapshot_events(&partitions);
    // Chunk rows that the workload changed inside their window were dropped, so fewer snapshot
    // rows than the table had; and no snapshot row was emitted twice.
    let ids: HashSet<i64> = snap
        .iter()
        .map(|e| e.data["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), snap.len(), "a key was snapshotted twice");
    let most = ROWS + done.inserts + done.rekeys;
    assert!(
        snap.len() as u64 <= most && snap.len() as u64 > ROWS / 2,
        "{}",
        snap.len()
    );
    assert!(snap
        .iter()
        .all(|e| e.kind == EventType::Insert && e.pk == ["id"]));
    assert_eq!(
        jobs[0].rows,
        snap.len() as u64,
        "rows counted = rows in the topic"
    );
    apply(&db, &partitions).await;
    assert_converged(&db, &done, &partitions).await;
}

fn spawn_binary(config: &Path, log: &str) -> tokio::process::Child {
    spawn_run(
        &capture_binary(),
        config,
        &[],
        &[],
        &config.with_file_name(log),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_snapshot_resumes_from_the_next_chunk() {
    let db = sluice_integration::unique_name("snap_kill");
    tables(&db, ROWS).await;
    let topic = format!("sluice.{db}");
    let state = state_dir(&db);
    // Throttled so the kill lands in the middle of the table.
    let text = config_text(
        &db,
        &db,
        &state,
        &sluice_integration::mysql_url(),
        &format!(
            "mode = \"initial\"\ntables = [\"{db}.t\"]\nchunk_size = {CHUNK}\nmax_rows_per_sec = 1000"
        ),
    );
    let cfg = parse(&text);
    let path = state.join("capture.toml");
    std::fs::write(&path, &text).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(workload(db.clone(), ROWS, Arc::clone(&stop)));

    let mut first = spawn_binary(&path, "run1.log");
    let progress = ProgressStore::new(&state, &db);
    let checkpoints = FileStore::new(&state, &db);
    let acked_rows = wait::until_ok(60, "three chunks acknowledged", async || {
        let seq = checkpoints.load().unwrap().map_or(0, |c| c.seq);
        let jobs = progress.confirmed(seq).unwrap();
        match jobs.first().filter(|j| j.chunks >= 3) {
            Some(j) => {
                assert_eq!(
                    j.state,
                    JobState::Running,
                    "too fast to kill mid-table: {j:?}"
                );
                Ok(j.rows)
            }
            None => Err(format!(
                "jobs {jobs:?}; log:\n{}",
                tail(&state.join("run1.log"), 40)
            )),
        }
    })
    .await;
    assert!(acked_rows > 0, "no row acknowledged");
    sluice_integration::kill9(&mut first).await;
    let before_restart = progress
        .confirmed(checkpoints.load().unwrap().map_or(0, |c| c.seq))
        .unwrap();

    let mut second = spawn_binary(&path, "run2.log");
    let jobs = wait_snapshot_done(&cfg, 120).await;
    stop.store(true, Ordering::Relaxed);
    let done = writer.await.unwrap();
    wait_caught_up(&cfg, 60).await;
    sluice_integration::kill9(&mut second).await;
    let log2 = std::fs::read_to_string(state.join("run2.log")).unwrap_or_default();
    assert!(
        log2.contains("resuming the snapshot after the last acknowledged chunk"),
        "{log2}"
    );
    assert!(jobs[0].chunks > before_restart[0].chunks);

    let partitions = tokio::task::spawn_blocking(move || consume_all(&topic))
        .await
        .unwrap();
    let snap = snapshot_events(&partitions);
    // The chunks acknowledged before the kill were not read again: the first rows of the
    // table were snapshotted once, and the whole table fewer than twice.
    let first_rows = snap
        .iter()
        .filter(|e| e.data["id"].as_i64().unwrap() <= CHUNK as i64)
        .count();
    let first_ids: HashSet<i64> = snap
        .iter()
        .map(|e| e.data["id"].as_i64().unwrap())
        .filter(|id| *id <= CHUNK as i64)
        .collect();
    assert_eq!(
        first_rows,
        first_ids.len(),
        "rows of the first chunk emitted twice"
    );
    assert!(
        (snap.len() as u64) < ROWS + ROWS / 2,
        "{} snapshot rows",
        snap.len()
    );
    apply(&db, &partitions).await;
    assert_converged(&db, &done, &partitions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_without_primary_key_is_refused_with_the_fix() {
    let db = sluice_integration::unique_name("snap_nopk");
    let mut c = conn().await;
    c.query_drop(format!("CREATE DATABASE {db}")).await.unwrap();
    c.query_drop(format!("CREATE TABLE {db}.t (a INT, b INT)"))
        .await
        .unwrap();
    let state = state_dir(&db);
    let url = sluice_integration::mysql_url();
    // On demand: the CLI checks before it writes the request.
    let cfg = parse(&config_text(&db, &db, &state, &url, ""));
    let err = snapshot::request(&cfg, &[format!("{db}.t")], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{db}.t has no primary key")), "{err}");
    assert!(err.contains("ADD PRIMARY KEY"), "{err}");
    let err = snapshot::request(&cfg, &[format!("{db}.missing")], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    // Initial: the capture does not start.
    let cfg = parse(&config_text(
        &db,
        &db,
        &state,
        &url,
        &format!("mode = \"initial\"\ntables = [\"{db}.t\"]"),
    ));
    let err = start_refused(&cfg).await;
    assert!(
        err.contains("has no primary key") && err.contains("snapshot.tables"),
        "{err}"
    );
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

/// A user that can read `db` and the binlog, and write nothing; its name and source URL.
async fn read_only_user(db: &str, prefix: &str) -> (String, String) {
    let user = format!("{prefix}{}", &db[db.len().saturating_sub(12)..]).replace('_', "");
    let mut c = conn().await;
    for sql in [
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'ro-pw'"),
        format!("GRANT SELECT ON {db}.* TO '{user}'@'%'"),
        format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'"),
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let base = sluice_integration::mysql_url();
    let url = base.replacen("sluice:sluice@", &format!("{user}:ro-pw@"), 1);
    assert_ne!(
        url, base,
        "SLUICE_TEST_MYSQL_URL must be user:password@host for this test"
    );
    (user, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_user_snapshots_with_binlog_positions() {
    let db = sluice_integration::unique_name("snap_ro");
    tables(&db, ROWS / 2).await;
    let (user, url) = read_only_user(&db, "ro").await;
    let mut c = conn().await;
    let state = state_dir(&db);
    let tables_line = format!("mode = \"initial\"\ntables = [\"{db}.t\"]\nchunk_size = {CHUNK}");

    // With watermark rows the user cannot even create the signalling table: a clear error.
    let cfg = parse(&config_text(&db, &db, &state, &url, &tables_line));
    let err = start_refused(&cfg).await;
    assert!(
        err.contains("cannot create the snapshot signalling table")
            && err.contains("snapshot.watermarks = \"position\""),
        "{err}"
    );

    let text = config_text(
        &db,
        &db,
        &state,
        &url,
        &format!("{tables_line}\nwatermarks = \"position\""),
    )
    .replace(&format!("signal_table = \"{db}.sluice_signal\"\n"), "");
    let cfg = parse(&text);
    let (jobs, done, partitions) = snapshot_with_workload(&db, ROWS, &cfg).await;
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();

    assert!(jobs[0].rows > 0);
    assert!(!snapshot_events(&partitions).is_empty());
    apply(&db, &partitions).await;
    assert_converged(&db, &done, &partitions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_backfill_of_one_table_with_a_where_while_running() {
    let db = sluice_integration::unique_name("snap_req");
    tables(&db, ROWS).await;
    let topic = format!("sluice.{db}");
    let state = state_dir(&db);
    // No initial snapshot: the capture only streams until asked.
    let cfg = parse(&config_text(
        &db,
        &db,
        &state,
        &sluice_integration::mysql_url(),
        &format!("chunk_size = {CHUNK}"),
    ));
    let cancel = CancellationToken::new();
    let capture = spawn_capture(&cfg, &cancel);
    // The signalling table exists once the capture started.
    let mut c = conn().await;
    wait::until(10, "the signalling table", async || {
        let n: Option<u64> = c
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'sluice_signal'"
            ))
            .await
            .unwrap();
        n == Some(1)
    })
    .await;
    c.query_drop(format!("UPDATE {db}.t SET name = 'before' WHERE id = 5000"))
        .await
        .unwrap();
    let id = snapshot::request(&cfg, &[format!("{db}.t")], Some("id > 1000 AND id <= 3000"))
        .await
        .unwrap();
    assert!(id.starts_with("req-"), "{id}");
    let jobs = wait_snapshot_done(&cfg, 60).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].request, id);
    assert_eq!(jobs[0].filter.as_deref(), Some("id > 1000 AND id <= 3000"));
    wait_caught_up(&cfg, 60).await;
    cancel.cancel();
    capture.await.unwrap().unwrap();

    let partitions = tokio::task::spawn_blocking(move || consume_all(&topic))
        .await
        .unwrap();
    let snap: Vec<i64> = snapshot_events(&partitions)
        .iter()
        .map(|e| e.data["id"].as_i64().unwrap())
        .collect();
    let want: Vec<i64> = (1001..=3000).collect();
    let mut got = snap.clone();
    got.sort_unstable();
    assert_eq!(got, want, "exactly the rows of the --where, once each");
    // The live change before the request is there too, as a binlog event before the rows.
    let binlog: Vec<&ChangeEvent> = partitions
        .iter()
        .flatten()
        .filter(|e| e.source == Source::Binlog)
        .collect();
    assert!(binlog
        .iter()
        .any(|e| e.kind == EventType::Update && e.data["name"] == "before"));
    assert_eq!(snapshot::status(&cfg).unwrap()[0].rows, 2_000);
}

/// Rows of the table that `sluice-sink` applies to a replica (issue #7: a 200k-row snapshot with
/// a concurrent workload, applied to a replica).
const SINK_ROWS: u64 = 200_000;

/// A snapshot of `SINK_ROWS` rows under the same workload, applied by `sluice-sink` with its
/// MySQL replica target (upserts and deletes by key, `seq` as the row version) instead of the
/// test's loop. The sink's partition workers deadlock on the replica table now and then (MySQL
/// error 1213) and retry; while one retries its channel fills and its partition is paused. This
/// test once lost rows there on a broker that answered a fetch from inside a record batch with
/// the later batches only; on Apache Kafka it guards the pause/resume path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_applied_by_the_sink_to_a_mysql_replica_equals_the_source() {
    let db = sluice_integration::unique_name("snap_sink");
    tables(&db, SINK_ROWS).await;
    let rep = format!("{db}_rep");
    let mut c = conn().await;
    c.query_drop(format!("CREATE DATABASE {rep}"))
        .await
        .unwrap();
    c.query_drop(format!(
        "CREATE TABLE {rep}.t (id BIGINT PRIMARY KEY, grp INT NOT NULL, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL, updated DATETIME(3) NOT NULL, version BIGINT NULL) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    let state = state_dir(&db);
    let cfg = parse(&config_text(
        &db,
        &db,
        &state,
        &sluice_integration::mysql_url(),
        &format!("mode = \"initial\"\ntables = [\"{db}.t\"]\nchunk_size = 5000"),
    ));
    let (_, done, partitions) = snapshot_with_workload(&db, SINK_ROWS, &cfg).await;
    let total: usize = partitions.iter().map(Vec::len).sum();
    assert!(!snapshot_events(&partitions).is_empty());
    // The topic itself converges (the test's own loop), so a difference below is the sink's.
    apply(&db, &partitions).await;
    assert_converged(&db, &done, &partitions).await;

    let group = sluice_integration::unique_name("snapsink");
    let text = format!(
        r#"[kafka]
brokers = ["{brokers}"]
[consumer]
group_id = "{group}"
topics = ["sluice.{db}"]
commit_interval_ms = 100
[metrics]
listen = "127.0.0.1:0"
[targets.replica]
type = "mysql"
url = "{url}/{rep}"
[[rules]]
name = "t"
target = "replica"
match = {{ tables = ["{db}.t"] }}
[rules.mysql]
version_column = "version"
"#,
        brokers = sluice_integration::kafka_brokers(),
        url = sluice_integration::mysql_url(),
    );
    let path = state.join("sink.toml");
    std::fs::write(&path, &text).unwrap();
    let sink_cfg: sluice_sinks::SinkConfig =
        sluice_config::parse(&text, Path::new("sink.toml"), |_| None).unwrap();
    let log = state.join("sink.log");
    let mut sink = spawn_run(
        &sink_binary(),
        &path,
        &["--start-at", "earliest"],
        &[],
        &log,
    );
    let what = format!("the sink to commit all {total} messages");
    wait::until_ok(300, &what, async || {
        let committed: Option<i64> = positions(&sink_cfg)
            .await
            .map(|p| p.iter().map(|(c, _)| c.unwrap_or(0)).sum());
        match committed {
            Some(n) if n >= total as i64 => Ok(()),
            _ => Err(format!("{committed:?}; log:\n{}", tail(&log, 40))),
        }
    })
    .await;
    sluice_integration::kill9(&mut sink).await;
    let source = table_rows(&db, "t").await;
    let replica = table_rows(&rep, "t").await;
    let differ: Vec<_> = source
        .iter()
        .filter(|(k, v)| replica.get(k) != Some(*v))
        .take(5)
        .collect();
    let extra: Vec<_> = replica
        .keys()
        .filter(|k| !source.contains_key(k))
        .take(5)
        .collect();
    assert!(
        differ.is_empty() && extra.is_empty(),
        "replica differs: {differ:?}, extra {extra:?}"
    );
    assert_eq!(checksum(&db, "t").await, checksum(&rep, "t").await);
    assert!(done
        .deleted
        .iter()
        .all(|id| !replica.contains_key(id) || source.contains_key(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_request_backfills_with_a_read_only_user() {
    let db = sluice_integration::unique_name("snap_adm");
    tables(&db, ROWS).await;
    let (user, url) = read_only_user(&db, "ad").await;
    let mut c = conn().await;
    let state = state_dir(&db);
    let text = config_text(
        &db,
        &db,
        &state,
        &url,
        &format!("chunk_size = {CHUNK}\nwatermarks = \"position\""),
    )
    .replace(&format!("signal_table = \"{db}.sluice_signal\"\n"), "");
    let cfg = parse(&text);
    // The CLI cannot write a request for a read-only capture, and says what to do instead.
    let err = snapshot::request(&cfg, &[format!("{db}.t")], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("watermarks = \"position\""), "{err}");

    let cancel = CancellationToken::new();
    let capture = spawn_capture(&cfg, &cancel);
    let (status, body) = snapshot::admin(format!(
        "{{\"tables\":[\"{db}.t\"],\"where\":\"id <= 1500\"}}"
    ))
    .await;
    assert_eq!(status.as_u16(), 202, "{body}");
    let jobs = wait_snapshot_done(&cfg, 60).await;
    assert!(body.contains(&jobs[0].request), "{body} {jobs:?}");
    wait_caught_up(&cfg, 60).await;
    cancel.cancel();
    capture.await.unwrap().unwrap();
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    let topic = format!("sluice.{db}");
    let partitions = tokio::task::spawn_blocking(move || consume_all(&topic))
        .await
        .unwrap();
    let mut ids: Vec<i64> = snapshot_events(&partitions)
        .iter()
        .map(|e| e.data["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=1500).collect::<Vec<i64>>());
}
