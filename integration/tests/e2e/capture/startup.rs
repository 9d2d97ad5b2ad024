//! What stops a capture before it streams: a missing topic, and the startup checks with their fix.

use super::{config, state_dir};
use mysql_async::prelude::Queryable;
use sluice_capture::source::CheckStatus;
use sluice_integration::mysql::{self, conn};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
