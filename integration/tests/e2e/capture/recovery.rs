//! Crashes, graceful restarts, `--until` and killed replication connections: nothing lost, every
//! key in commit order, the checkpoint at the end.

use super::{config, end_position, state_dir};
use mysql_async::prelude::Queryable;
use sluice_capture::config::StartAt;
use sluice_event::ChangeEvent;
use sluice_integration::mysql::{self, conn};
use sluice_integration::wait;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
