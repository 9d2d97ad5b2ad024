//! The replica probe: polls the replica table for rows above the lowest write not yet seen.

use super::{announce, PollStats, Ready, REPLICA};
use crate::marks::Shared;
use crate::mysql::redact;
use anyhow::Context as _;
use sqlx::mysql::MySqlConnection;
use sqlx::Connection as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Polls the replica for rows whose `wseq` is above every write seen so far.
pub async fn watch(
    shared: &Shared,
    url: &str,
    poll: Duration,
    ready: &Ready,
) -> anyhow::Result<PollStats> {
    let connected = MySqlConnection::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("connect to {}: {e}", redact(url)));
    let mut conn = announce(ready, connected)?;
    let marks = &shared.probes[REPLICA];
    let mut stats = PollStats::default();
    let mut low = 0;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = Instant::now();
        // Autocommit: every SELECT reads the latest committed rows.
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT wseq FROM items WHERE wseq > ?")
            .bind(low as i64)
            .fetch_all(&mut conn)
            .await
            .context("poll the replica")?;
        let t = shared.now();
        stats.add(sent.elapsed());
        for (w,) in rows {
            marks.set_once(w as u64, t);
        }
        while low < shared.plan.total && marks.get(low + 1).is_some() {
            low += 1;
        }
    }
    Ok(stats)
}
