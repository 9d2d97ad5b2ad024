//! Snapshots by a user that can read the table and the binlog and write nothing.

use super::replica::{apply, assert_converged, snapshot_events};
use super::{
    config_text, conn, consume_all, parse, snapshot_with_workload, spawn_capture, start_refused,
    state_dir, tables, wait_caught_up, wait_snapshot_done, CHUNK, ROWS,
};
use mysql_async::prelude::Queryable;
use sluice_capture::snapshot::{self};
use tokio_util::sync::CancellationToken;

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
