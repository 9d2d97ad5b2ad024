//! Start-up: connect, run the checks, and resolve where reading starts (checkpoint first).

use crate::checkpoint::Checkpoint;
use crate::config::{CaptureConfig, StartAt};
use crate::error::CaptureError;
use crate::source::{CheckResult, CheckStatus, Flavor, SourceClient};

/// What the start-up resolved: server family, where to start, and the checks' results.
pub struct Prepared {
    pub client: SourceClient,
    pub flavor: Flavor,
    pub start: Checkpoint,
    /// MariaDB GTID state to start from (first connection only).
    pub gtid: Option<String>,
    pub checks: Vec<CheckResult>,
    /// The server checksums binlog events.
    pub checksums: bool,
}

/// Connects, runs the start-up checks and resolves the start position (checkpoint first).
/// A start position that cannot be resolved becomes a failed `position` check.
pub async fn prepare(
    cfg: &CaptureConfig,
    checkpoint: Option<Checkpoint>,
    start_override: Option<StartAt>,
) -> Result<Prepared, CaptureError> {
    let client = SourceClient::new(&cfg.source)?;
    let mut conn = client.connect().await?;
    let facts = client.facts(&mut conn).await?;
    let flavor = facts.flavor();
    let resolved = resolve_start(
        &client,
        &mut conn,
        &facts,
        checkpoint,
        start_override.unwrap_or_else(|| cfg.start_at()),
    )
    .await;
    let _ = conn.disconnect().await;
    let (start, gtid, mut checks) = match resolved {
        Ok((start, gtid)) => {
            let position = (!start.file.is_empty()).then_some(start.file.as_str());
            let checks = facts.checks(&client.addr, cfg.source.allow_partial_row_image, position);
            (start, gtid, checks)
        }
        Err(e) => {
            let mut checks = facts.checks(&client.addr, cfg.source.allow_partial_row_image, None);
            checks.push(CheckResult {
                name: "position",
                status: CheckStatus::Fail,
                message: e.to_string(),
            });
            (fresh(String::new(), 4), None, checks)
        }
    };
    checks.sort_by_key(|c| c.name == "position");
    let checksums = facts
        .variables
        .get("binlog_checksum")
        .is_none_or(|v| !v.eq_ignore_ascii_case("NONE"));
    Ok(Prepared {
        client,
        flavor,
        start,
        gtid,
        checks,
        checksums,
    })
}

async fn resolve_start(
    client: &SourceClient,
    conn: &mut mysql_async::Conn,
    facts: &crate::source::ServerFacts,
    checkpoint: Option<Checkpoint>,
    start: StartAt,
) -> Result<(Checkpoint, Option<String>), CaptureError> {
    Ok(match (checkpoint, start) {
        (Some(cp), _) => (cp, None),
        (None, StartAt::End) => {
            let (file, pos) = client.current_end(conn).await?;
            (fresh(file, pos), None)
        }
        (None, StartAt::Oldest) => {
            let file = facts.binlogs.first().cloned().ok_or_else(|| {
                CaptureError::Check(format!("SHOW BINARY LOGS on {} lists no files (binary log off, or the user lacks REPLICATION CLIENT / BINLOG MONITOR)", client.addr))
            })?;
            (fresh(file, 4), None)
        }
        (None, StartAt::File { file, pos }) => (fresh(file, pos), None),
        (None, StartAt::Gtid(g)) => {
            let mut cp = fresh(String::new(), 4);
            cp.gtid = Some(g.clone());
            (cp, Some(g))
        }
    })
}

fn fresh(file: String, pos: u64) -> Checkpoint {
    Checkpoint {
        file,
        pos,
        ..Checkpoint::default()
    }
}

/// Fails with every failed check's message; logs warnings.
pub fn enforce(checks: &[CheckResult]) -> Result<(), CaptureError> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    for c in checks.iter().filter(|c| c.status == CheckStatus::Warn) {
        tracing::warn!(check = c.name, "{}", c.message);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CaptureError::Check(format!(
            "start-up checks failed:\n  {}",
            failed.join("\n  ")
        )))
    }
}
