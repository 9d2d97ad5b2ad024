//! `sluice-capture snapshot`: asks the running capture for a backfill, or shows progress.

use super::job::{Job, JobState};
use super::progress::ProgressStore;
use super::request::request;
use crate::config::CaptureConfig;
use crate::error::CaptureError;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The jobs as last saved by the capture of this config (this machine's state dir).
pub fn status(cfg: &CaptureConfig) -> Result<Vec<Job>, CaptureError> {
    ProgressStore::new(&cfg.checkpoint.dir, &cfg.instance).latest()
}

/// `sluice-capture snapshot`: ask the running capture to backfill tables, or show progress.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Tables to snapshot, `database.table`, comma-separated; none: show progress.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Only rows matching this SQL condition (e.g. "created_at >= '2026-01-01'").
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// Print progress until the requested tables are done (needs this machine's state dir).
    #[arg(long)]
    pub wait: bool,
}

/// Runs `sluice-capture snapshot`: prints the request id, then progress lines with `--wait`.
pub async fn command(
    cfg: &CaptureConfig,
    args: &SnapshotArgs,
    cancel: CancellationToken,
) -> Result<(), CaptureError> {
    if args.tables.is_empty() {
        let jobs = status(cfg)?;
        if jobs.is_empty() {
            println!(
                "no snapshot recorded for instance {} in {}",
                cfg.instance,
                cfg.checkpoint.dir.display()
            );
        }
        for j in jobs {
            println!("{}", j.line());
        }
        return Ok(());
    }
    let id = request(cfg, &args.tables, args.filter.as_deref()).await?;
    println!(
        "snapshot {id} requested for {}; the running capture picks it up from the binlog",
        args.tables.join(", ")
    );
    if !args.wait {
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let jobs: Vec<Job> = status(cfg)?
            .into_iter()
            .filter(|j| j.request == id)
            .collect();
        if jobs.is_empty() {
            continue;
        }
        for j in &jobs {
            println!("{}", j.line());
        }
        if jobs
            .iter()
            .all(|j| matches!(j.state, JobState::Done | JobState::Failed))
        {
            let failed: Vec<String> = jobs
                .iter()
                .filter(|j| j.state == JobState::Failed)
                .map(|j| format!("{}: {}", j.name(), j.error.clone().unwrap_or_default()))
                .collect();
            return if failed.is_empty() {
                Ok(())
            } else {
                Err(CaptureError::Check(format!(
                    "snapshot {id} failed:\n  {}",
                    failed.join("\n  ")
                )))
            };
        }
    }
}
