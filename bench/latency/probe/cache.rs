//! The Redis probe: every key of the run set beforehand, then each deletion's keyspace notification.

use super::{announce, PollStats, Ready, CACHE};
use crate::marks::Shared;
use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// SETs `<prefix>:<id>` for every id of the run, so each write has a key to delete.
pub async fn precreate_keys(url: &str, prefix: &str, total: u64) -> anyhow::Result<()> {
    let client = redis::Client::open(url).context("Redis URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connect to Redis at {url}"))?;
    for lo in (1..=total).step_by(1000) {
        let mut cmd = redis::cmd("MSET");
        for id in lo..=(lo + 999).min(total) {
            cmd.arg(format!("{prefix}:{id}")).arg("cached");
        }
        let () = cmd.query_async(&mut conn).await.context("MSET the keys")?;
    }
    Ok(())
}

/// Records, per write, when the server announced its key's deletion.
pub async fn watch(
    shared: &Shared,
    url: &str,
    prefix: &str,
    ready: &Ready,
) -> anyhow::Result<PollStats> {
    let setup = async {
        let client = redis::Client::open(url).context("Redis URL")?;
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .with_context(|| format!("connect to Redis at {url}"))?;
        pubsub
            .subscribe(format!("__keyevent@{}__:del", redis_db(url)))
            .await
            .context("SUBSCRIBE to the del keyevents")?;
        anyhow::Ok(pubsub)
    };
    let pubsub = announce(ready, setup.await)?;
    let by_id = shared.plan.wseq_by_id();
    let ours = format!("{prefix}:");
    let mut messages = pubsub.into_on_message();
    while !shared.stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => bail!("Redis closed the subscription"),
            Err(_) => continue,
        };
        let t = shared.now();
        let key = msg.get_payload_bytes();
        let id = key
            .strip_prefix(ours.as_bytes())
            .and_then(|id| std::str::from_utf8(id).ok()?.parse::<usize>().ok());
        if let Some(&w) = id.and_then(|id| by_id.get(id)) {
            shared.probes[CACHE].set_once(w, t);
        }
    }
    Ok(PollStats::default())
}

/// The database number of a `redis://host:port/N` URL (0 without one).
fn redis_db(url: &str) -> u32 {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split_once('/')
        .and_then(|(_, db)| db.split(['?', '#']).next()?.parse().ok())
        .unwrap_or(0)
}
