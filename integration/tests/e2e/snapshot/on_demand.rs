//! Snapshots on request while the capture runs, and the tables a snapshot refuses.

use super::replica::snapshot_events;
use super::{
    config_text, conn, consume_all, parse, spawn_capture, start_refused, state_dir, tables,
    wait_caught_up, wait_snapshot_done, CHUNK, ROWS,
};
use mysql_async::prelude::Queryable;
use sluice_capture::snapshot::{self};
use sluice_event::{ChangeEvent, EventType, Source};
use sluice_integration::wait;
use tokio_util::sync::CancellationToken;

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
