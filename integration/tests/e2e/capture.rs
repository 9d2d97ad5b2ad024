//! End-to-end tests: capture. The capture runs in-process through its library API
//! (`sluice_capture::run`), against the local MariaDB and Kafka; a crash is an aborted task.

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_capture::config::{CaptureConfig, StartAt};
use sluice_capture::decoder::Output;
use sluice_capture::source::CheckStatus;
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::capture::CaptureToml;
use sluice_integration::mysql::{self, conn};
use sluice_integration::wait;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A capture of the tables of database `instance` only (other tests write to the same server).
fn config(instance: &str, state: &Path) -> CaptureConfig {
    CaptureToml {
        checkpoint_interval_ms: Some(100),
        ..CaptureToml::new(instance, state)
    }
    .parse()
}

fn state_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-capture-test-{name}"))
}

async fn end_position(c: &mut mysql_async::Conn) -> StartAt {
    let (file, pos) = mysql::binlog_end(c).await;
    StartAt::File { file, pos }
}

fn events_of(outputs: Vec<Output>, db: &str) -> Vec<ChangeEvent> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(e) if e.database == db => Some(*e),
            _ => None,
        })
        .collect()
}

/// Column, SQL type, and the SQL expression that renders the design's JSON for it.
const ALL_TYPES: &[(&str, &str, &str)] = &[
    ("ti", "TINYINT", "CAST(ti AS CHAR)"),
    ("tiu", "TINYINT UNSIGNED", "CAST(tiu AS CHAR)"),
    ("si", "SMALLINT", "CAST(si AS CHAR)"),
    ("siu", "SMALLINT UNSIGNED", "CAST(siu AS CHAR)"),
    ("mi", "MEDIUMINT", "CAST(mi AS CHAR)"),
    ("miu", "MEDIUMINT UNSIGNED", "CAST(miu AS CHAR)"),
    ("i", "INT", "CAST(i AS CHAR)"),
    ("iu", "INT UNSIGNED", "CAST(iu AS CHAR)"),
    ("bi", "BIGINT", "CAST(bi AS CHAR)"),
    ("biu", "BIGINT UNSIGNED", "CAST(biu AS CHAR)"),
    ("d65", "DECIMAL(65,30)", "JSON_QUOTE(CAST(d65 AS CHAR))"),
    ("d10", "DECIMAL(10,2)", "JSON_QUOTE(CAST(d10 AS CHAR))"),
    ("d0", "DECIMAL(5,0)", "JSON_QUOTE(CAST(d0 AS CHAR))"),
    ("f", "FLOAT", "CAST(f AS CHAR)"),
    ("db", "DOUBLE", "CAST(db AS CHAR)"),
    ("dt", "DATE", "JSON_QUOTE(DATE_FORMAT(dt, '%Y-%m-%d'))"),
    ("dtm0", "DATETIME", "JSON_QUOTE(DATE_FORMAT(dtm0, '%Y-%m-%dT%H:%i:%s'))"),
    ("dtm3", "DATETIME(3)", "JSON_QUOTE(LEFT(DATE_FORMAT(dtm3, '%Y-%m-%dT%H:%i:%s.%f'), 23))"),
    ("dtm6", "DATETIME(6)", "JSON_QUOTE(DATE_FORMAT(dtm6, '%Y-%m-%dT%H:%i:%s.%f'))"),
    ("ts0", "TIMESTAMP NULL", "JSON_QUOTE(CONCAT(DATE_FORMAT(ts0, '%Y-%m-%dT%H:%i:%s'), 'Z'))"),
    ("ts3", "TIMESTAMP(3) NULL", "JSON_QUOTE(CONCAT(LEFT(DATE_FORMAT(ts3, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z'))"),
    ("tm0", "TIME", "JSON_QUOTE(CAST(tm0 AS CHAR))"),
    ("tm1", "TIME(1)", "JSON_QUOTE(CAST(tm1 AS CHAR))"),
    ("tm6", "TIME(6)", "JSON_QUOTE(CAST(tm6 AS CHAR))"),
    ("yr", "YEAR", "CAST(yr + 0 AS CHAR)"),
    ("vc", "VARCHAR(300) CHARACTER SET utf8mb4", "JSON_QUOTE(vc)"),
    ("ch", "CHAR(10) CHARACTER SET utf8mb4", "JSON_QUOTE(ch)"),
    ("lat", "VARCHAR(50) CHARACTER SET latin1", "JSON_QUOTE(CONVERT(lat USING utf8mb4))"),
    ("txt", "TEXT", "JSON_QUOTE(txt)"),
    ("bin", "BINARY(6)", "JSON_QUOTE(REPLACE(TO_BASE64(bin), CHAR(10), ''))"),
    ("vb", "VARBINARY(20)", "JSON_QUOTE(REPLACE(TO_BASE64(vb), CHAR(10), ''))"),
    ("bl", "BLOB", "JSON_QUOTE(REPLACE(TO_BASE64(bl), CHAR(10), ''))"),
    ("en", "ENUM('new','paid','shipped')", "JSON_QUOTE(en)"),
    ("st", "SET('a','b','c','d')", "CONCAT('[', IF(st = '', '', CONCAT('\"', REPLACE(st, ',', '\",\"'), '\"')), ']')"),
    ("b1", "BIT(1)", "CAST(b1 + 0 AS CHAR)"),
    ("b64", "BIT(64)", "CAST(b64 + 0 AS CHAR)"),
    ("js", "JSON", "js"),
    ("geo", "GEOMETRY", "CONCAT('{\"srid\":', ST_SRID(geo), ',\"wkb\":', JSON_QUOTE(REPLACE(TO_BASE64(ST_AsBinary(geo)), CHAR(10), '')), '}')"),
];

/// Edge-value rows: (id, values in ALL_TYPES order as SQL literals).
fn edge_rows() -> Vec<(u32, Vec<&'static str>)> {
    vec![
        (1, vec![
            "-128", "255", "-32768", "65535", "-8388608", "16777215", "-2147483648", "4294967295",
            "-9223372036854775808", "18446744073709551615",
            "'99999999999999999999999999999999999.999999999999999999999999999999'", "'-12.30'", "'-0'",
            "1.1", "-2.5e-300", "'2026-11-21'", "'1000-01-01 00:00:00'", "'2026-11-21 09:15:02.123'",
            "'9999-12-31 23:59:59.999999'", "'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999'",
            "'-838:59:59'", "'-00:00:00.5'", "'838:59:59.000001'", "2155",
            "'héllo 🌊 \"quoted\" \\\\ back'", "'ab'", "CONVERT(_utf8mb4'café €' USING latin1)", "REPEAT('t', 1000)",
            "x'000100000000'", "x'00ff00'", "x'00000000ff'", "'new'", "'a,b,c,d'", "b'1'",
            "b'1111111111111111111111111111111111111111111111111111111111111111'",
            "'{\"a\":[1,{\"b\":null}],\"c\":\"ü\",\"n\":1.5e300,\"deep\":{\"x\":{\"y\":[true,false]}}}'",
            "ST_GeomFromText('POINT(1 2)', 4326)",
        ]),
        (2, vec![
            "127", "0", "32767", "0", "8388607", "0", "2147483647", "0", "9223372036854775807", "0",
            "'-99999999999999999999999999999999999.999999999999999999999999999999'", "'0.01'", "'99999'",
            "-3.40282e38", "1.7976931348623157e308", "'0000-00-00'", "'2000-02-29 12:00:00'", "'2000-01-01 00:00:00.000'",
            "'2000-01-01 00:00:00.000001'", "NULL", "NULL", "'00:00:00'", "'12:34:56.7'", "'-01:02:03.040506'", "0",
            "''", "''", "''", "''", "x'00'", "x''", "x''", "'shipped'", "''", "b'0'", "b'0'", "'[]'",
            "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)')",
        ]),
        (3, vec!["NULL"; ALL_TYPES.len()]),
    ]
}

async fn expected_rows(
    c: &mut mysql_async::Conn,
    db: &str,
) -> BTreeMap<u64, serde_json::Map<String, Value>> {
    let exprs: Vec<String> = ALL_TYPES
        .iter()
        .map(|(_, _, e)| format!("IFNULL({e}, 'null')"))
        .collect();
    let sql = format!("SELECT id, {} FROM {db}.t ORDER BY id", exprs.join(", "));
    let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
    let mut out = BTreeMap::new();
    for row in rows {
        let id: u64 = row.get(0).unwrap();
        let mut m = serde_json::Map::new();
        m.insert("id".into(), Value::from(id));
        for (i, (name, _, _)) in ALL_TYPES.iter().enumerate() {
            let text: String = row.get(i + 1).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}"));
            m.insert((*name).to_owned(), v);
        }
        out.insert(id, m);
    }
    out
}

/// Equal, with FLOAT compared at its 6 significant digits (MySQL prints floats rounded).
fn assert_row_eq(
    got: &serde_json::Map<String, Value>,
    want: &serde_json::Map<String, Value>,
    what: &str,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: columns"
    );
    for (k, w) in want {
        let g = &got[k];
        if k == "f" {
            if let (Some(g), Some(w)) = (g.as_f64(), w.as_f64()) {
                assert!(
                    (g - w).abs() <= w.abs() * 1e-6,
                    "{what}.{k}: got {g}, want {w}"
                );
                continue;
            }
        }
        assert_eq!(g, w, "{what}.{k}");
    }
}

#[tokio::test]
async fn all_types_insert_update_delete_match_select() {
    let db = sluice_integration::unique_name("cap_types");
    let mut c = conn().await;
    c.query_drop("SET time_zone = '+00:00', sql_mode = ''")
        .await
        .unwrap();
    let cols: Vec<String> = ALL_TYPES
        .iter()
        .map(|(n, t, _)| format!("{n} {t}"))
        .collect();
    let t = format!("t (id INT UNSIGNED PRIMARY KEY, {})", cols.join(", "));
    mysql::create_database(&mut c, &db, &[&t]).await;
    let start = end_position(&mut c).await;
    let names: Vec<&str> = ALL_TYPES.iter().map(|(n, _, _)| *n).collect();
    for (id, values) in edge_rows() {
        c.query_drop(format!(
            "INSERT INTO {db}.t (id, {}) VALUES ({id}, {})",
            names.join(", "),
            values.join(", ")
        ))
        .await
        .unwrap();
    }
    let inserted = expected_rows(&mut c, &db).await;
    c.query_drop(format!("UPDATE {db}.t SET vc = CONCAT('v2-', IFNULL(vc, '')), d10 = 7.5, st = 'b', js = '{{\"k\":[1,2]}}' WHERE id IN (1, 3)"))
        .await
        .unwrap();
    let updated = expected_rows(&mut c, &db).await;
    c.query_drop(format!("DELETE FROM {db}.t")).await.unwrap();

    let cfg = config(&db, &state_dir(&db));
    let events = events_of(
        sluice_capture::run::collect(&cfg, start).await.unwrap(),
        &db,
    );
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    use EventType::*;
    assert_eq!(
        kinds,
        [Insert, Insert, Insert, Update, Update, Delete, Delete, Delete]
    );
    for e in &events[0..3] {
        let id = e.data["id"].as_u64().unwrap();
        assert_row_eq(&e.data, &inserted[&id], &format!("INSERT id={id}"));
        assert_eq!(e.pk, vec!["id".to_owned()]);
        assert_eq!(e.key(), format!("[\"{db}\",\"t\",{id}]").into_bytes());
    }
    for e in &events[3..5] {
        let id = e.data["id"].as_u64().unwrap();
        assert_row_eq(&e.data, &updated[&id], &format!("UPDATE id={id}"));
        let old = e.old.as_ref().unwrap();
        let changed: Vec<&String> = updated[&id]
            .keys()
            .filter(|k| updated[&id][*k] != inserted[&id][*k])
            .collect();
        assert_eq!(
            old.keys().collect::<Vec<_>>(),
            changed,
            "UPDATE id={id}: old has exactly the changed columns"
        );
        for k in old.keys() {
            assert_eq!(old[k], inserted[&id][k], "old.{k}");
        }
    }
    for e in &events[5..] {
        let id = e.data["id"].as_u64().unwrap();
        assert_row_eq(&e.data, &updated[&id], &format!("DELETE id={id}"));
    }
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq strictly increasing"
    );
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
}

#[tokio::test]
async fn ddl_mid_stream_decodes_before_and_after() {
    let db = sluice_integration::unique_name("cap_ddl");
    let mut c = conn().await;
    let t = "t (id INT PRIMARY KEY, a VARCHAR(10), b INT)";
    mysql::create_database(&mut c, &db, &[t]).await;
    let start = end_position(&mut c).await;
    let statements = [
        "INSERT INTO {db}.t VALUES (1, 'x', 10)",
        "ALTER TABLE {db}.t ADD COLUMN c DECIMAL(6,2) AFTER a",
        "INSERT INTO {db}.t VALUES (2, 'y', 1.25, 20)",
        "ALTER TABLE {db}.t DROP COLUMN b",
        "INSERT INTO {db}.t VALUES (3, 'z', 2.50)",
        "ALTER TABLE {db}.t RENAME COLUMN a TO name",
        "UPDATE {db}.t SET name = 'zz' WHERE id = 3",
        "CREATE TABLE {db}.u (k VARCHAR(5) PRIMARY KEY, v JSON)",
        "INSERT INTO {db}.u VALUES ('k1', '[1]')",
    ];
    mysql::exec_all(&mut c, statements.map(|sql| sql.replace("{db}", &db))).await;
    let mut cfg = config(&db, &state_dir(&db));
    cfg.filter.ddl = true;
    let events = events_of(
        sluice_capture::run::collect(&cfg, start).await.unwrap(),
        &db,
    );
    let summary: Vec<String> = events
        .iter()
        .map(|e| match e.kind {
            EventType::Ddl => format!("DDL {}", e.table),
            k => format!("{k} {}", Value::Object(e.data.clone())),
        })
        .collect();
    assert_eq!(
        summary,
        [
            r#"INSERT {"id":1,"a":"x","b":10}"#.to_owned(),
            "DDL t".into(),
            r#"INSERT {"id":2,"a":"y","c":"1.25","b":20}"#.into(),
            "DDL t".into(),
            r#"INSERT {"id":3,"a":"z","c":"2.50"}"#.into(),
            "DDL t".into(),
            r#"UPDATE {"id":3,"name":"zz","c":"2.50"}"#.into(),
            "DDL u".into(),
            r#"INSERT {"k":"k1","v":[1]}"#.into(),
        ]
    );
    assert!(events[1].sql.as_deref().unwrap().contains("ADD COLUMN c"));
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
}

/// `run` without its topic (create_topics off) stops with the fix, also while the tables it
/// captures are quiet: reading starts while Kafka connects, so the publisher's error has to
/// stop a reader that has nothing to hand on.
#[tokio::test]
async fn run_without_its_topic_stops_with_the_fix() {
    let db = sluice_integration::unique_name("cap_notopic");
    let cfg = config(&db, &state_dir(&db));
    let run = sluice_capture::run::run(
        &cfg,
        None,
        CancellationToken::new(),
        Arc::new(AtomicBool::new(false)),
    );
    let err = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("run went on without its topic")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("topic sluice.{db} does not exist"))
            && err.contains("create_topics = true"),
        "{err}"
    );
}

#[tokio::test]
async fn startup_checks_name_the_fix() {
    let db = sluice_integration::unique_name("cap_chk");
    let cfg = config(&db, &state_dir(&db));
    let checks = sluice_capture::run::check(&cfg).await.unwrap();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.to_string())
        .collect();
    // The topic does not exist and create_topics is off: the only failure, with the fix.
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains(&format!("topic sluice.{db} does not exist"))
            && failed[0].contains("create_topics = true"),
        "{}",
        failed[0]
    );

    // A purged (here: never existing) start file names the oldest file that is there.
    let mut gone = cfg.clone();
    gone.source.start = "binlog.000000:4".into();
    let checks = sluice_capture::run::check(&gone).await.unwrap();
    let pos = checks.iter().find(|c| c.name == "position").unwrap();
    assert_eq!(pos.status, CheckStatus::Fail);
    assert!(
        pos.message.contains("the oldest binlog there is"),
        "{}",
        pos.message
    );

    // A user without replication grants is told which grant to give.
    let user = sluice_integration::unique_name("capu");
    let mut c = conn().await;
    mysql::create_user(&mut c, &user, "pw", "SELECT").await;
    let mut weak = cfg.clone();
    let url = sluice_integration::mysql_url().replacen("sluice:sluice@", &format!("{user}:pw@"), 1);
    weak.source.url = sluice_config::Secret::new(url);
    let checks = sluice_capture::run::check(&weak).await.unwrap();
    let grants = checks.iter().find(|c| c.name == "grants").unwrap();
    assert_eq!(grants.status, CheckStatus::Fail);
    assert!(
        grants
            .message
            .contains("GRANT REPLICATION SLAVE, REPLICATION CLIENT"),
        "{}",
        grants.message
    );
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
}

/// Every message of `topic` from the beginning, until `want` distinct seqs arrived or time is up.
fn consume_all(topic: &str, partitions: i32, want: usize) -> Vec<(i32, ChangeEvent)> {
    let brokers = sluice_integration::kafka_brokers();
    let mut seqs = std::collections::HashSet::new();
    sluice_integration::kafka::read_events(&brokers, topic, partitions, 60, |e| {
        seqs.insert(e.seq);
        seqs.len() >= want
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_restart_lose_nothing_and_keep_order() {
    let db = sluice_integration::unique_name("cap_crash");
    let topic = format!("sluice.{db}");
    sluice_integration::create_topic(&topic, 3).await.unwrap();
    let mut c = conn().await;
    let t = "t (id INT PRIMARY KEY, version INT NOT NULL)";
    mysql::create_database(&mut c, &db, &[t]).await;
    let state = state_dir(&db);
    let cfg = config(&db, &state);
    let start_cfg = {
        let mut s = cfg.clone();
        if let StartAt::File { file, pos } = end_position(&mut c).await {
            s.source.start = format!("{file}:{pos}");
        }
        s
    };
    const KEYS: u32 = 20;
    const ROUNDS: u32 = 30;
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut c = conn().await;
            for round in 0..ROUNDS {
                let mut tx = c.start_transaction(Default::default()).await.unwrap();
                for k in 0..KEYS {
                    tx.query_drop(format!("INSERT INTO {db}.t VALUES ({k}, {round}) ON DUPLICATE KEY UPDATE version = {round}"))
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // 1: crash (the task is dropped mid-stream: no drain, no final checkpoint).
    let run1 = tokio::spawn({
        let cfg = start_cfg.clone();
        async move {
            sluice_capture::run::run(
                &cfg,
                None,
                CancellationToken::new(),
                Arc::new(AtomicBool::new(false)),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    run1.abort();
    let _ = run1.await;
    // 2: a graceful stop mid-stream.
    let cancel = CancellationToken::new();
    let run2 = tokio::spawn({
        let (cfg, cancel) = (start_cfg.clone(), cancel.clone());
        async move {
            sluice_capture::run::run(&cfg, None, cancel, Arc::new(AtomicBool::new(false))).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    run2.await.unwrap().unwrap();
    writer.await.unwrap();
    // 3: run to the end of what was written (`run --until`): it stops by itself once
    // everything is acknowledged and checkpointed.
    let end = mysql::binlog_end(&mut c).await;
    tokio::time::timeout(
        Duration::from_secs(60),
        sluice_capture::run::run(
            &cfg,
            Some(end.clone()),
            CancellationToken::new(),
            Arc::new(AtomicBool::new(false)),
        ),
    )
    .await
    .expect("run --until stops by itself")
    .unwrap();
    let want = (KEYS * ROUNDS) as usize;
    let msgs = tokio::task::spawn_blocking(move || consume_all(&topic, 3, want))
        .await
        .unwrap();

    // Same seq means the same event: a replay repeats events exactly.
    let mut by_seq: HashMap<i64, &ChangeEvent> = HashMap::new();
    for (_, e) in &msgs {
        if let Some(prev) = by_seq.insert(e.seq, e) {
            assert_eq!(
                prev.data, e.data,
                "seq {} reused for a different event",
                e.seq
            );
        }
    }
    assert_eq!(by_seq.len(), want, "every committed row change arrives");
    // Per partition, after dropping replayed duplicates, seq strictly increases; per key the
    // versions arrive in commit order.
    sluice_integration::events::assert_in_commit_order(&msgs);
    let cp = sluice_capture::checkpoint::FileStore::new(&state, &db)
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(
        cp.seq,
        *by_seq.keys().max().unwrap(),
        "the checkpoint covers the last event"
    );
    assert!(
        (cp.file.as_str(), cp.pos) >= (end.0.as_str(), end.1),
        "the checkpoint {}:{} is at the --until position {}:{}",
        cp.file,
        cp.pos,
        end.0,
        end.1
    );
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replication_connection_resumes_without_loss() {
    let db = sluice_integration::unique_name("cap_kill");
    let user = sluice_integration::unique_name("capk");
    let topic = format!("sluice.{db}");
    sluice_integration::create_topic(&topic, 2).await.unwrap();
    let mut c = conn().await;
    mysql::create_database(&mut c, &db, &["t (id INT PRIMARY KEY, v INT)"]).await;
    // A user of its own, so killing its connections touches no other test.
    let grants = "SELECT, REPLICATION SLAVE, BINLOG MONITOR";
    mysql::create_user(&mut c, &user, "pw", grants).await;
    let state = state_dir(&db);
    let mut cfg = config(&db, &state);
    cfg.checkpoint.kafka = true;
    cfg.checkpoint.topic = format!("{db}.checkpoints");
    cfg.source.url = sluice_config::Secret::new(sluice_integration::mysql_url().replacen(
        "sluice:sluice@",
        &format!("{user}:pw@"),
        1,
    ));
    let cancel = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn({
        let (cfg, cancel, ready) = (cfg.clone(), cancel.clone(), ready.clone());
        async move { sluice_capture::run::run(&cfg, None, cancel, ready).await }
    });
    wait::until(15, "the capture to be ready", async || {
        ready.load(std::sync::atomic::Ordering::Relaxed) || run.is_finished()
    })
    .await;
    if run.is_finished() {
        panic!("capture stopped: {:?}", run.await);
    }
    const ROWS: u32 = 200;
    for id in 0..ROWS {
        c.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, {id})"))
            .await
            .unwrap();
        if id % 50 == 25 {
            let ids: Vec<u64> = wait::until_ok(5, "the capture's binlog connection listed", async || {
                let ids: Vec<u64> = c
                    .query(format!("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{user}' AND COMMAND = 'Binlog Dump'"))
                    .await
                    .unwrap();
                if ids.is_empty() {
                    Err(String::new())
                } else {
                    Ok(ids)
                }
            })
            .await;
            for pid in ids {
                let _ = c.query_drop(format!("KILL CONNECTION {pid}")).await;
            }
        }
    }
    let msgs = tokio::task::spawn_blocking(move || consume_all(&topic, 2, ROWS as usize))
        .await
        .unwrap();
    let ids: std::collections::BTreeSet<i64> = msgs
        .iter()
        .map(|(_, e)| e.data["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        ROWS as usize,
        "every row arrives despite the killed connections"
    );
    cancel.cancel();
    run.await.unwrap().unwrap();

    // The compacted-topic store holds the same checkpoint as the file store.
    let file_cp = sluice_capture::checkpoint::FileStore::new(&state, &db)
        .load()
        .unwrap()
        .unwrap();
    let store = sluice_capture::kafka_store::KafkaStore {
        topic: cfg.checkpoint.topic.clone(),
        instance: db.clone(),
        client: sluice_capture::publish::admin_config(&cfg),
    };
    let kafka_cp = store.load().await.unwrap().unwrap();
    assert_eq!(
        (kafka_cp.file, kafka_cp.pos, kafka_cp.seq),
        (file_cp.file, file_cp.pos, file_cp.seq)
    );
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
    let _ = std::fs::remove_dir_all(&state);
}

/// Binlog dump threads of `user` on the server.
async fn dump_threads(c: &mut mysql_async::Conn, user: &str) -> u64 {
    c.query_first(format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}' AND COMMAND = 'Binlog Dump'"))
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Waits (2 s at most) until `user` has `want` dump threads; `when` names the moment.
async fn wait_dump_threads(c: &mut mysql_async::Conn, user: &str, want: u64, when: &str) {
    let what = format!("{want} binlog dump threads of {user} {when}");
    wait::until_ok(2, &what, async || match dump_threads(c, user).await {
        n if n == want => Ok(()),
        n => Err(format!("{n} threads")),
    })
    .await
}

/// A stream the capture stops reading, at `--until` or when cancelled, leaves no dump thread on
/// the server. One left waiting for new events would stay until its next heartbeat (an hour
/// here), listed as a replica, and hold up the next registration with the same server_id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_leaves_no_dump_thread_behind() {
    use sluice_capture::run::{prepare, read_binlog, Emit, ReadOptions};
    let db = sluice_integration::unique_name("cap_stop");
    let user = sluice_integration::unique_name("caps");
    let mut c = conn().await;
    mysql::create_database(&mut c, &db, &["t (id INT PRIMARY KEY)"]).await;
    // A user of its own, so other tests' streams do not count.
    mysql::create_user(
        &mut c,
        &user,
        "pw",
        "SELECT, REPLICATION SLAVE, BINLOG MONITOR",
    )
    .await;
    let start = end_position(&mut c).await;
    c.query_drop(format!("INSERT INTO {db}.t VALUES (1)"))
        .await
        .unwrap();
    let (file, pos) = mysql::binlog_end(&mut c).await;
    let mut cfg = config(&db, &state_dir(&db));
    cfg.source.heartbeat_secs = 3600;
    cfg.source.url = sluice_config::Secret::new(sluice_integration::mysql_url().replacen(
        "sluice:sluice@",
        &format!("{user}:pw@"),
        1,
    ));
    let prep = prepare(&cfg, None, Some(start)).await.unwrap();

    // Up to a position the server has written: the row arrives, and the stream ends with it.
    let mut emit = Emit::Memory(Vec::new());
    let opts = ReadOptions {
        until_end: false,
        ready: Arc::new(AtomicBool::new(false)),
        snapshot: None,
        until: Some((file, pos)),
    };
    read_binlog(&cfg, &prep, &mut emit, &opts, &CancellationToken::new())
        .await
        .unwrap();
    let Emit::Memory(outputs) = emit else {
        unreachable!()
    };
    assert_eq!(
        outputs
            .iter()
            .filter(|o| matches!(o, Output::Row(_)))
            .count(),
        1
    );
    wait_dump_threads(&mut c, &user, 0, "after --until").await;

    // Waiting for new events, then cancelled.
    let cancel = CancellationToken::new();
    let reader = tokio::spawn({
        let (cfg, prep, cancel) = (cfg.clone(), prep, cancel.clone());
        async move {
            let opts = ReadOptions {
                until_end: false,
                ready: Arc::new(AtomicBool::new(false)),
                snapshot: None,
                until: None,
            };
            let mut emit = Emit::Memory(Vec::new());
            read_binlog(&cfg, &prep, &mut emit, &opts, &cancel)
                .await
                .map(|_| ())
        }
    });
    wait_dump_threads(&mut c, &user, 1, "while reading").await;
    cancel.cancel();
    reader.await.unwrap().unwrap();
    wait_dump_threads(&mut c, &user, 0, "after cancel").await;
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
}
