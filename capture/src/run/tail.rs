//! `tail` and `collect`: the binlog as JSON lines on stdout, or into memory, without Kafka.

use super::prepare::{enforce, prepare};
use super::read::{read_binlog, Emit, ReadOptions, STDOUT_CHUNK};
use crate::config::{CaptureConfig, StartAt};
use crate::error::CaptureError;
use crate::output::Output;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// `tail`: binlog → JSON lines on stdout, from the configured start (or `start`).
pub async fn tail(
    cfg: &CaptureConfig,
    start: Option<StartAt>,
    until_end: bool,
    until: Option<(String, u64)>,
    cancel: CancellationToken,
) -> Result<(), CaptureError> {
    let prep = prepare(cfg, None, start).await?;
    enforce(&prep.checks)?;
    let mut emit = Emit::Stdout {
        out: std::io::stdout(),
        buf: Vec::with_capacity(STDOUT_CHUNK + (64 << 10)),
    };
    let opts = ReadOptions {
        until_end,
        ready: Arc::new(AtomicBool::new(false)),
        snapshot: None,
        until,
    };
    read_binlog(cfg, &prep, &mut emit, &opts, &cancel).await?;
    emit.flush()
}

/// Decodes from `start` to the current end of the binlog into memory (tests and tools); rows
/// come back as [`Output::Event`].
pub async fn collect(cfg: &CaptureConfig, start: StartAt) -> Result<Vec<Output>, CaptureError> {
    Ok(collect_raw(cfg, start)
        .await?
        .into_iter()
        .map(|o| match o {
            Output::Row(r) => Output::Event(Box::new(r.to_change_event())),
            Output::Snapshot(r) => Output::Event(Box::new(r.to_change_event())),
            other => other,
        })
        .collect())
}

/// [`collect`], with binlog rows left as the [`Output::Row`] the publisher encodes.
pub async fn collect_raw(cfg: &CaptureConfig, start: StartAt) -> Result<Vec<Output>, CaptureError> {
    let prep = prepare(cfg, None, Some(start)).await?;
    enforce(&prep.checks)?;
    let mut emit = Emit::Memory(Vec::new());
    let opts = ReadOptions {
        until_end: true,
        ready: Arc::new(AtomicBool::new(false)),
        snapshot: None,
        until: None,
    };
    read_binlog(cfg, &prep, &mut emit, &opts, &CancellationToken::new()).await?;
    match emit {
        Emit::Memory(v) => Ok(v),
        _ => Ok(Vec::new()),
    }
}
