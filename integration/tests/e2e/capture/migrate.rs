//! `sluice-capture migrate` between private MariaDB servers, run as the binaries: after a
//! fail-over to a promoted GTID replica (by GTID: every row exactly once), and to a server loaded
//! separately with the same writes (by time: every row at least once, the overlap within the
//! margin). `seq` keeps increasing across the switch.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use sluice_capture::checkpoint::{Checkpoint, FileStore};
use sluice_capture::config::CaptureConfig;
use sluice_event::ChangeEvent;
use sluice_integration::capture::CaptureToml;
use sluice_integration::mariadb::PrivateMariaDb;
use sluice_integration::mysql;
use sluice_integration::process::{self, capture_binary, run_to_end, spawn_run};
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEYS: u32 = 10;
const PARTITIONS: i32 = 3;

/// A capture config file for `db` on `url`, from `start`; with `kafka_store`, the checkpoints
/// also go to a topic of the test's own.
fn write_config(db: &str, url: &str, state: &Path, start: &str, kafka_store: bool) -> PathBuf {
    let mut text = CaptureToml {
        url: url.to_owned(),
        start: Some(start.to_owned()),
        checkpoint_interval_ms: Some(100),
        // A free port: the default one is taken by any other capture running at the time.
        metrics: true,
        ..CaptureToml::new(db, state)
    }
    .text();
    if kafka_store {
        text = text.replace(
            "[checkpoint]\n",
            &format!("[checkpoint]\nkafka = true\ntopic = \"sluice.checkpoints.{db}\"\n"),
        );
    }
    sluice_integration::write_temp_file(db, "capture.toml", &text)
}

/// Points the config at another server, as the user does after `migrate`.
fn set_url(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, text.replace(from, to)).unwrap();
}

/// Round `r` of the writes: one transaction setting every key's `version` to `r`.
async fn write_rounds(conns: &mut [&mut Conn], db: &str, rounds: Range<u32>) {
    for r in rounds {
        for c in conns.iter_mut() {
            let mut tx = c.start_transaction(Default::default()).await.unwrap();
            for k in 0..KEYS {
                tx.query_drop(format!(
                    "INSERT INTO {db}.t VALUES ({k}, {r}) ON DUPLICATE KEY UPDATE version = {r}"
                ))
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
        }
    }
}

/// Runs the capture binary on `config` until the topic holds `want` distinct (key, version)
/// pairs, then stops it with SIGTERM; returns its checkpoint afterwards.
async fn capture_until(db: &str, config: &Path, state: &Path, want: usize) -> Checkpoint {
    let log = std::env::temp_dir().join(format!("{db}-{}.log", rand::random::<u32>()));
    let mut child = spawn_run(&capture_binary(), config, &[], &[], &log);
    let topic = format!("sluice.{db}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        process::assert_running(&mut child, "sluice-capture", &log);
        let t = topic.clone();
        let have = tokio::task::spawn_blocking(move || distinct_rows(&read_all(&t, 2)).len())
            .await
            .unwrap();
        if have >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{have} of {want} rows on {topic}; capture log:\n{}",
            process::tail(&log, 30)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = process::terminate(&mut child, 30).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "capture did not stop cleanly: {status:?}\n{}",
        process::tail(&log, 30)
    );
    FileStore::new(state, db)
        .load()
        .unwrap()
        .expect("a checkpoint")
}

/// Every event on the topic, with its partition, in per-partition order.
fn read_all(topic: &str, secs: u64) -> Vec<(i32, ChangeEvent)> {
    let brokers = sluice_integration::kafka_brokers();
    sluice_integration::kafka::read_events(&brokers, topic, PARTITIONS, secs, |_| false)
}

fn distinct_rows(msgs: &[(i32, ChangeEvent)]) -> HashSet<(i64, i64)> {
    msgs.iter().map(|(_, e)| key_version(e)).collect()
}

fn key_version(e: &ChangeEvent) -> (i64, i64) {
    (
        e.data["id"].as_i64().unwrap(),
        e.data["version"].as_i64().unwrap(),
    )
}

/// `port` of a `mysql://user:pw@host:port` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

async fn gtid_binlog_pos(c: &mut Conn) -> String {
    c.query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn migrate(config: &Path, to: &str, extra: &[&str]) -> process::Finished {
    let config = config.display().to_string();
    let mut args = vec!["migrate", "--config", &config, "--to", to];
    args.extend_from_slice(extra);
    let out = run_to_end(&capture_binary(), &args, &[("RUST_LOG", "warn")], 120).await;
    assert!(out.success(), "migrate {extra:?} failed:\n{}", out.text());
    out
}

/// The switch to a promoted replica: the capture stops, the primary goes on and dies, the
/// replica is promoted and written to, `migrate` goes by GTID, and the capture resumes on the
/// replica at the next transaction: nothing lost, nothing repeated, `seq` increasing. The
/// checkpoints are in both stores (file and topic) here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_by_gtid_to_a_promoted_replica_loses_and_repeats_nothing() {
    let common = [
        "--log-bin=binlog",
        "--binlog-format=ROW",
        "--log-slave-updates",
    ];
    let primary_args = with(&common, &["--server-id=1", "--gtid-domain-id=0"]);
    let replica_args = with(&common, &["--server-id=2"]);
    let primary = PrivateMariaDb::start("mig_primary", &primary_args);
    let replica = PrivateMariaDb::start("mig_replica", &replica_args);
    let (primary, replica) = tokio::join!(primary, replica);
    let (primary, replica) = (primary.unwrap(), replica.unwrap());
    let primary_url = primary.url();
    let mut r = replica.root().await.unwrap();
    mysql::exec_all(
        &mut r,
        [
            format!(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='sluice', MASTER_PASSWORD='sluice', MASTER_USE_GTID=slave_pos",
                port_of(&primary.url())
            ),
            "START SLAVE".to_owned(),
        ],
    )
    .await;
    let db = sluice_integration::unique_name("mig_gtid");
    sluice_integration::create_topic(&format!("sluice.{db}"), PARTITIONS)
        .await
        .unwrap();
    let mut p = mysql::conn_to(&primary.url()).await;
    mysql::create_database(
        &mut p,
        &db,
        &["t (id INT PRIMARY KEY, version INT NOT NULL)"],
    )
    .await;
    let (file, pos) = mysql::binlog_end(&mut p).await;
    let state = std::env::temp_dir().join(format!("sluice-capture-test-{db}"));
    let config = write_config(&db, &primary.url(), &state, &format!("{file}:{pos}"), true);

    // Rounds 0-3 captured from the primary.
    write_rounds(&mut [&mut p], &db, 0..4).await;
    let before = capture_until(&db, &config, &state, (KEYS * 4) as usize).await;
    assert!(
        before.server.as_deref().unwrap().starts_with("mariadb:1@"),
        "{before:?}"
    );
    assert!(before.commit_ms.is_some(), "{before:?}");
    // Rounds 4-7 while the capture is stopped, replicated; then the primary dies.
    write_rounds(&mut [&mut p], &db, 4..8).await;
    let end = gtid_binlog_pos(&mut p).await;
    let caught_up: Option<i32> = r
        .query_first(format!("SELECT MASTER_GTID_WAIT('{end}', 60)"))
        .await
        .unwrap();
    assert_eq!(caught_up, Some(0), "the replica reaches {end}");
    drop(p);
    drop(primary);
    mysql::exec_all(&mut r, ["STOP SLAVE", "RESET SLAVE ALL"]).await;
    // Rounds 8-11 on the promoted replica.
    let mut c = mysql::conn_to(&replica.url()).await;
    write_rounds(&mut [&mut c], &db, 8..12).await;
    let replica_pos = gtid_binlog_pos(&mut c).await;

    // Pointed at the promoted replica without migrating, the capture would resume by GTID:
    // the replica's binlog holds the checkpoint's transactions.
    set_url(&config, &primary_url, &replica.url());
    let config_arg = config.display().to_string();
    let check = run_to_end(
        &capture_binary(),
        ["check", "--config", &config_arg],
        &[],
        60,
    )
    .await;
    assert!(check.success(), "{}", check.text());
    set_url(&config, &replica.url(), &primary_url);

    let dry = migrate(&config, &replica.url(), &["--dry-run"]).await;
    let gtid = before.gtid.clone().unwrap();
    for part in [
        format!("by GTID {gtid}: the new server's binlog has domain 0 up to {replica_pos}"),
        "dry run: nothing written".to_owned(),
    ] {
        assert!(
            dry.stdout.contains(&part),
            "{part:?} missing in\n{}",
            dry.stdout
        );
    }
    let unchanged = FileStore::new(&state, &db).load().unwrap().unwrap();
    assert_eq!(unchanged, before, "a dry run writes nothing");
    let out = migrate(&config, &replica.url(), &[]).await;
    eprintln!("{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("by GTID {gtid}")),
        "{}",
        out.stdout
    );
    let moved = FileStore::new(&state, &db).load().unwrap().unwrap();
    let cfg: CaptureConfig = sluice_config::load(&config).unwrap();
    let (_, kafka_store) = sluice_capture::checkpoint_store::stores(&cfg);
    let in_topic = kafka_store.unwrap().load().await.unwrap();
    assert_eq!(
        in_topic.as_ref(),
        Some(&moved),
        "migrate writes both stores"
    );
    assert_eq!(moved.seq, before.seq, "seq is kept");
    assert!(
        moved.server.as_deref().unwrap().starts_with("mariadb:2@"),
        "{moved:?}"
    );

    set_url(&config, &primary_url, &replica.url());
    let after = capture_until(&db, &config, &state, (KEYS * 12) as usize).await;
    assert!(after.seq > before.seq);
    assert!(
        !after.file.is_empty(),
        "a position on the replica: {after:?}"
    );

    let msgs = read_all(&format!("sluice.{db}"), 5);
    assert_eq!(distinct_rows(&msgs).len(), (KEYS * 12) as usize);
    let seqs: HashSet<i64> = msgs.iter().map(|(_, e)| e.seq).collect();
    assert_eq!(seqs.len(), (KEYS * 12) as usize, "no row published twice");
    // seq increases along each partition and every key's versions arrive in commit order,
    // across the switch.
    sluice_integration::events::assert_in_commit_order(&msgs);
}

/// `a` followed by `b`.
fn with(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    a.iter().chain(b).copied().collect()
}

/// The switch to a server that has the same data but its own GTIDs (loaded by replaying the
/// writes): a capture pointed at it without `migrate` stops naming both servers; `migrate`
/// goes by time, and the capture re-reads at most the margin's transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_by_time_to_a_separately_loaded_server_loses_nothing() {
    let common = ["--log-bin=binlog", "--binlog-format=ROW"];
    let old_args = with(&common, &["--server-id=1"]);
    let new_args = with(&common, &["--server-id=3"]);
    let old = PrivateMariaDb::start("mig_old", &old_args);
    let new = PrivateMariaDb::start("mig_new", &new_args);
    let (old, new) = tokio::join!(old, new);
    let (old, new) = (old.unwrap(), new.unwrap());
    let old_url = old.url();
    let db = sluice_integration::unique_name("mig_time");
    let topic = format!("sluice.{db}");
    sluice_integration::create_topic(&topic, PARTITIONS)
        .await
        .unwrap();
    let mut a = mysql::conn_to(&old.url()).await;
    let mut b = mysql::conn_to(&new.url()).await;
    for c in [&mut a, &mut b] {
        mysql::create_database(c, &db, &["t (id INT PRIMARY KEY, version INT NOT NULL)"]).await;
    }
    let (file, pos) = mysql::binlog_end(&mut a).await;
    let state = std::env::temp_dir().join(format!("sluice-capture-test-{db}"));
    let config = write_config(&db, &old.url(), &state, &format!("{file}:{pos}"), false);

    // Rounds 0-2, then 3-5 more than the margin later, on both servers.
    write_rounds(&mut [&mut a, &mut b], &db, 0..3).await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    write_rounds(&mut [&mut a, &mut b], &db, 3..6).await;
    let before = capture_until(&db, &config, &state, (KEYS * 6) as usize).await;
    let first_run = read_all(&topic, 2);
    // Rounds 6-8 on both while the capture is stopped; the old server dies; 9-11 on the new.
    write_rounds(&mut [&mut a, &mut b], &db, 6..9).await;
    drop(a);
    drop(old);
    write_rounds(&mut [&mut b], &db, 9..12).await;

    // Pointed at the new server without migrating: its history is another, so no GTID either.
    let stale = std::fs::read_to_string(&config).unwrap();
    set_url(&config, &old_url, &new.url());
    let refused = run_to_end(
        &capture_binary(),
        ["run", "--config", &config.display().to_string()],
        &[],
        60,
    )
    .await;
    let text = refused.text();
    assert!(!refused.success(), "{text}");
    for part in [
        before.server.as_deref().unwrap(),
        "mariadb:3@",
        "sluice-capture migrate",
        "did not replicate",
    ] {
        assert!(text.contains(part), "{part:?} missing in\n{text}");
    }
    std::fs::write(&config, stale).unwrap();

    let margin_ms = 1_000;
    let dry = migrate(&config, &new.url(), &["--margin-secs", "1", "--dry-run"]).await;
    for part in [
        "not by GTID",
        "by time: first transaction at or after",
        "minus 1 s margin",
    ] {
        assert!(
            dry.stdout.contains(part),
            "{part:?} missing in\n{}",
            dry.stdout
        );
    }
    let out = migrate(&config, &new.url(), &["--margin-secs", "1"]).await;
    eprintln!("{}", out.stdout);
    set_url(&config, &old_url, &new.url());
    let after = capture_until(&db, &config, &state, (KEYS * 12) as usize).await;
    assert!(after.seq > before.seq);

    let msgs = read_all(&topic, 5);
    assert_eq!(
        distinct_rows(&msgs).len(),
        (KEYS * 12) as usize,
        "no row lost"
    );
    let first: HashSet<i64> = first_run.iter().map(|(_, e)| e.seq).collect();
    let threshold = before.commit_ms.unwrap() - margin_ms;
    let delivered = distinct_rows(&first_run);
    let mut overlap = 0;
    let mut since: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (_, e) in msgs.iter().filter(|(_, e)| !first.contains(&e.seq)) {
        assert!(
            e.seq > before.seq,
            "seq {} after the switch, checkpoint {}",
            e.seq,
            before.seq
        );
        let (k, v) = key_version(e);
        if delivered.contains(&(k, v)) {
            overlap += 1;
            assert!(
                e.ts_ms >= threshold,
                "key {k} version {v} (committed {}) re-read although older than the last commit minus the margin ({threshold})",
                e.ts_ms
            );
            assert!(
                v >= 3,
                "key {k} version {v} of the rounds before the margin re-read"
            );
        }
        since.entry(k).or_default().push(v);
    }
    eprintln!("{overlap} rows re-read after the switch");
    // Per key, the rows read on the new server continue in commit order up to the last.
    for (k, versions) in since {
        let want: Vec<i64> = (versions[0]..12).collect();
        assert_eq!(versions, want, "key {k}");
        assert!(versions[0] <= 6, "key {k}: round 6 not re-read");
    }
    // Per partition, seq increases across the switch.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (p, e) in &msgs {
        if seen.insert(e.seq) {
            let prev = last.insert(*p, e.seq).unwrap_or(i64::MIN);
            assert!(e.seq > prev, "partition {p}: seq {} after {prev}", e.seq);
        }
    }
}
