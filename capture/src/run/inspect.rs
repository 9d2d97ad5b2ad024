//! `check` and `position`: the start-up checks and where the capture stands, without reading.

use super::prepare::prepare;
use crate::checkpoint::{Checkpoint, FileStore};
use crate::clients;
use crate::config::CaptureConfig;
use crate::error::CaptureError;
use crate::source::{CheckResult, CheckStatus, SourceClient};
use crate::topics::Topics;

/// `position`: the stored checkpoint and the server's current position, as text lines.
pub async fn position(cfg: &CaptureConfig) -> Result<Vec<String>, CaptureError> {
    let (store, kafka) = crate::checkpoint_store::stores(cfg);
    let mut lines = Vec::new();
    let describe = |place: String, cp: Option<Checkpoint>| {
        match cp {
        Some(cp) => format!(
            "checkpoint ({place}): {}:{} gtid={} seq={} saved_ms={} server={} commit_ms={} owner={}",
            cp.file,
            cp.pos,
            cp.gtid.as_deref().unwrap_or("-"),
            cp.seq,
            cp.saved_ms,
            cp.server.as_deref().unwrap_or("-"),
            cp.commit_ms.map_or("-".to_owned(), |ms| ms.to_string()),
            cp.owner.as_deref().unwrap_or("-"),
        ),
        None => format!(
            "checkpoint ({place}): none yet; a new capture starts at source.start = {:?}",
            cfg.source.start
        ),
    }
    };
    // A transactional capture keeps its checkpoint in the topic only.
    if !cfg.publish.transactional {
        lines.push(describe(store.path().display().to_string(), store.load()?));
    }
    if let Some(k) = kafka {
        let place = format!("topic {}, key {}", k.topic, k.instance);
        lines.push(describe(place, k.load().await?));
    }
    let client = SourceClient::new(&cfg.source)?;
    let mut conn = client.connect().await?;
    let (file, pos) = client.current_end(&mut conn).await?;
    let facts = client.facts(&mut conn).await?;
    let gtid = facts
        .variables
        .get("gtid_binlog_pos")
        .or_else(|| facts.variables.get("gtid_executed"))
        .cloned()
        .unwrap_or_default();
    lines.push(format!(
        "server ({}): {file}:{pos} gtid={}",
        client.addr,
        if gtid.is_empty() { "-" } else { &gtid }
    ));
    let _ = conn.disconnect().await;
    Ok(lines)
}

/// `check`: every start-up check with its result.
pub async fn check(cfg: &CaptureConfig) -> Result<Vec<CheckResult>, CaptureError> {
    let store = FileStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let prep = prepare(cfg, store.load()?, None).await?;
    let mut checks = prep.checks;
    checks.push(check_kafka(cfg).await);
    Ok(checks)
}

/// The `kafka` check: the brokers accept this config's credentials and certificates, and the
/// topic exists (when it does not depend on the table).
async fn check_kafka(cfg: &CaptureConfig) -> CheckResult {
    let result = async {
        let producer = clients::producer(cfg)?;
        let mut topics = Topics::new(cfg);
        match topics.fixed_name() {
            Some(t) => {
                let n = topics.partitions(&producer, &t).await?;
                Ok::<_, CaptureError>(format!("topic {t} has {n} partitions"))
            }
            None => {
                let brokers = producer.probe().await?;
                Ok(format!("connected ({brokers} brokers); topics depend on the table, created or checked on first use"))
            }
        }
    };
    match result.await {
        Ok(message) => CheckResult {
            name: "kafka",
            status: CheckStatus::Ok,
            message,
        },
        Err(e) => CheckResult {
            name: "kafka",
            status: CheckStatus::Fail,
            message: e.to_string(),
        },
    }
}
