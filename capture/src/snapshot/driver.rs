//! The snapshot driver task: turns requests into jobs and runs them one table at a time.

mod chunk;

use super::hook::Hook;
use super::job::{Job, JobState};
use super::progress::ProgressStore;
use super::request::take_admin_requests;
use super::sql;
use super::table::{session, table_meta};
use crate::clock::now_ms;
use crate::config::snapshot::{split_table, Mode, SnapshotConfig, Watermarks};
use crate::config::CaptureConfig;
use crate::error::{Backoff, CaptureError};
use crate::filter::Filter;
use crate::source::SourceClient;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A running snapshot driver.
pub struct Snapshots {
    hook: Hook,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Snapshots {
    /// The reader's side.
    pub fn hook(&self) -> Hook {
        self.hook.clone()
    }

    /// Stops the driver (a chunk in flight is read again by the next run).
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Snapshots {
    /// A run loop dropped without `stop` (an aborted task) must not leave the driver writing
    /// watermarks nobody reads.
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// Starts the driver when `[snapshot]` is configured, reading through `client` (the source the
/// run loop prepared). `resumed_seq` is the `seq` of the checkpoint the capture starts from
/// (None for a new instance): progress it covers continues; a new instance with
/// `mode = "initial"` plans its tables (refusing tables without a key).
pub async fn start(
    cfg: &CaptureConfig,
    client: &SourceClient,
    resumed_seq: Option<i64>,
    cancel: &CancellationToken,
) -> Result<Option<Snapshots>, CaptureError> {
    let Some(snap) = cfg.snapshot.clone() else {
        return Ok(None);
    };
    let client = client.clone();
    let filter =
        Filter::new(&cfg.filter).map_err(|e| CaptureError::Check(format!("filter: {e}")))?;
    let store = ProgressStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let hook = Hook::new(cfg, &snap);
    let mut conn = session(&client).await?;
    if snap.watermarks == Watermarks::Table {
        for stmt in sql::create_signal_table(&hook.shared.signal.0, &hook.shared.signal.1) {
            conn.query_drop(stmt).await.map_err(|e| {
                CaptureError::Check(format!(
                    "cannot create the snapshot signalling table {} on {}: {e}; grant CREATE, SELECT, INSERT, DELETE on `{}`.* to the capture user, create the table yourself (docs/snapshots.md), or set snapshot.watermarks = \"position\" for a read-only user",
                    snap.signal_table, client.addr, hook.shared.signal.0
                ))
            })?;
        }
    }
    let mut jobs = store.reset_to(resumed_seq.unwrap_or(0))?;
    if snap.mode == Mode::Initial && resumed_seq.is_none() && jobs.is_empty() {
        jobs = initial_jobs(&mut conn, &client, &snap, &filter, &hook.shared.signal).await?;
        tracing::info!(tables = jobs.len(), "initial snapshot planned");
        store.save(0, &jobs)?;
    }
    let _ = conn.disconnect().await;
    for j in jobs.iter_mut().filter(|j| j.state == JobState::Running) {
        tracing::info!(table = %j.name(), rows = j.rows, "resuming the snapshot after the last acknowledged chunk");
    }
    let stop = cancel.child_token();
    let driver = Driver {
        hook: hook.clone(),
        client,
        filter,
        store,
        snap,
        jobs,
        run_id: format!("{:x}", now_ms()),
        chunk_no: 0,
        // Entries of this run come after the checkpoint it starts from.
        last_seq: resumed_seq.unwrap_or(0),
        cancel: stop.clone(),
    };
    let task = tokio::spawn(driver.run());
    Ok(Some(Snapshots { hook, stop, task }))
}

/// The jobs of an initial snapshot: `snapshot.tables`, or every base table the filter selects.
async fn initial_jobs(
    conn: &mut Conn,
    client: &SourceClient,
    snap: &SnapshotConfig,
    filter: &Filter,
    signal: &(String, String),
) -> Result<Vec<Job>, CaptureError> {
    let tables: Vec<(String, String)> = if snap.tables.is_empty() {
        let all: Vec<(String, String)> = conn
            .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys') ORDER BY TABLE_SCHEMA, TABLE_NAME")
            .await
            .map_err(|e| client.err(e))?;
        all.into_iter()
            .filter(|(d, t)| filter.table(d, t) && (d, t) != (&signal.0, &signal.1))
            .collect()
    } else {
        snap.tables.iter().filter_map(|t| split_table(t)).collect()
    };
    let mut problems = Vec::new();
    for (d, t) in &tables {
        if let Err(e) = table_meta(conn, client, d, t, filter).await {
            problems.push(e.to_string());
        }
    }
    if !problems.is_empty() {
        return Err(CaptureError::Check(format!(
            "snapshot.mode = \"initial\" cannot load every table:\n  {}\nlist the tables to load in snapshot.tables, or leave these out with filter.exclude",
            problems.join("\n  ")
        )));
    }
    Ok(tables
        .iter()
        .map(|(d, t)| Job::new("initial", d, t, None))
        .collect())
}

struct Driver {
    hook: Hook,
    client: SourceClient,
    filter: Filter,
    store: ProgressStore,
    snap: SnapshotConfig,
    jobs: Vec<Job>,
    run_id: String,
    chunk_no: u64,
    /// The highest stream `seq` progress was saved at.
    last_seq: i64,
    cancel: CancellationToken,
}

/// How a job attempt ended.
enum Outcome {
    Done,
    Stopped,
    /// A chunk has to be read again (see [`Emitted::lost`](super::hook::Emitted::lost)).
    Again,
}

impl Driver {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            self.take_requests();
            let Some(i) = self
                .jobs
                .iter()
                .position(|j| matches!(j.state, JobState::Pending | JobState::Running))
            else {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = self.hook.shared.wake.notified() => continue,
                    // Admin requests arrive without a wake-up.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            };
            let outcome = self.run_job(i).await;
            self.hook.forget_chunks();
            match outcome {
                Ok(Outcome::Done) => backoff.reset(),
                Ok(Outcome::Stopped) => return,
                Ok(Outcome::Again) => {
                    tracing::warn!(table = %self.jobs[i].name(), "a chunk's high watermark came without its rows; reading again after the last emitted chunk");
                }
                Err(e) if e.is_transient() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(table = %self.jobs[i].name(), error = %e, retry_in_ms = delay.as_millis() as u64, "snapshot interrupted; continuing after the last emitted chunk");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(table = %self.jobs[i].name(), "snapshot refused: {e}");
                    metrics::counter!("sluice_capture_snapshot_failed_total", "table" => self.jobs[i].name()).increment(1);
                    let job = &mut self.jobs[i];
                    job.state = JobState::Failed;
                    job.error = Some(e.to_string());
                    job.updated_ms = now_ms();
                    self.save(0);
                }
            }
        }
    }

    /// Moves requests the reader saw into the job list (a request seen again after a restart
    /// is recognised by its id).
    fn take_requests(&mut self) {
        let mut requests = std::mem::take(&mut self.hook.lock().requests);
        let admin = take_admin_requests();
        requests.extend(admin.into_iter().map(|r| (self.last_seq, r)));
        for (seq, req) in requests {
            if self.jobs.iter().any(|j| j.request == req.id) {
                continue;
            }
            for t in &req.tables {
                let mut job = match split_table(t) {
                    Some((d, tb)) => Job::new(&req.id, &d, &tb, req.filter.clone()),
                    None => {
                        let mut j = Job::new(&req.id, t, "", None);
                        j.state = JobState::Failed;
                        j.error = Some(format!("`{t}` is not database.table"));
                        j
                    }
                };
                job.updated_ms = now_ms();
                tracing::info!(request = %req.id, table = %job.name(), filter = ?req.filter, "snapshot requested");
                self.jobs.push(job);
            }
            self.save(seq);
        }
    }

    fn save(&mut self, seq: i64) {
        self.last_seq = self.last_seq.max(seq);
        if let Err(e) = self.store.save(self.last_seq, &self.jobs) {
            tracing::warn!(error = %e, "cannot save snapshot progress; a restart repeats more chunks");
        }
    }
}
