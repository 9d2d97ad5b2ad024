//! The workload writer: paced transactions from several connections, each row's commit time noted.

use crate::marks::Shared;
use crate::mysql;
use anyhow::Context as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes `lo..=hi` in transactions of `txn_rows`, transaction `j` at `j * txn_rows / rate` s
/// after the start, from `writers` connections, recording each row's commit time. Returns how
/// late the latest transaction started against its schedule.
pub async fn write(
    shared: &Arc<Shared>,
    url: &str,
    db: &str,
    lo: u64,
    hi: u64,
    rate: u64,
    writers: usize,
) -> anyhow::Result<Duration> {
    let txn_rows = shared.plan.txn_rows;
    let txns = (hi - lo + 1).div_ceil(txn_rows);
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers.max(1) {
        let mut conn = mysql::connect(url).await?;
        let (shared, next, db) = (shared.clone(), next.clone(), db.to_owned());
        tasks.spawn(async move {
            let mut late = Duration::ZERO;
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= txns {
                    return anyhow::Ok(late);
                }
                let due = start + Duration::from_secs_f64((j * txn_rows) as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
                late = late.max(tokio::time::Instant::now().saturating_duration_since(due));
                let first = lo + j * txn_rows;
                let last = (first + txn_rows - 1).min(hi);
                let sql = shared.plan.transaction(&db, first, last);
                // A &str runs as a plain text-protocol query (several statements, one round
                // trip); sqlx::raw_sql's future is not Send-general enough for a spawned task.
                sqlx::Executor::execute(&mut conn, sql.as_str())
                    .await
                    .with_context(|| format!("write rows {first}..={last}"))?;
                let t = shared.now();
                for w in first..=last {
                    shared.commits.set_once(w, t);
                }
            }
        });
    }
    let mut late = Duration::ZERO;
    while let Some(r) = tasks.join_next().await {
        late = late.max(r??);
    }
    Ok(late)
}
