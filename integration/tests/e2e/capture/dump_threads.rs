//! A stream the capture stops reading leaves no binlog dump thread on the server.

use super::{config, end_position, state_dir};
use mysql_async::prelude::Queryable;
use sluice_capture::decoder::Output;
use sluice_integration::mysql::{self, conn};
use sluice_integration::wait;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
