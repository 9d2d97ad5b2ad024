//! Start-up: connect, run the checks, and resolve where reading starts (checkpoint first).

use crate::checkpoint::Checkpoint;
use crate::config::{CaptureConfig, Resume, StartAt};
use crate::error::CaptureError;
use crate::source::{CheckResult, CheckStatus, Flavor, SourceClient};

/// What the start-up resolved: server family, where to start, and the checks' results.
pub struct Prepared {
    pub client: SourceClient,
    pub flavor: Flavor,
    pub start: Checkpoint,
    /// GTID position to start from (first connection only): a MariaDB GTID state or a MySQL
    /// GTID set.
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
    let resolved = match client.identity(&mut conn, flavor).await {
        Ok(server) => {
            let start = start_override.unwrap_or_else(|| cfg.start_at());
            let found = resolve_start(&client, &mut conn, &facts, checkpoint, start).await;
            match found {
                Ok((from, Some(g))) => Ok((from, Some(g))),
                Ok((from, None)) => {
                    resume(cfg, &client, &mut conn, &facts, from, &server, flavor).await
                }
                Err(e) => Err(e),
            }
            .map(|(mut from, gtid)| {
                from.server = Some(server);
                (from, gtid)
            })
        }
        Err(e) => Err(e),
    };
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

/// How a checkpoint resumes on the connected server ([`resume_by`]), logged when by GTID. On
/// another server, GTID is only taken when that server's binlog holds the checkpoint's
/// transactions (a server loaded separately may have the same domain with another history).
async fn resume(
    cfg: &CaptureConfig,
    client: &SourceClient,
    conn: &mut mysql_async::Conn,
    facts: &crate::source::ServerFacts,
    cp: Checkpoint,
    server: &str,
    flavor: Flavor,
) -> Result<(Checkpoint, Option<String>), CaptureError> {
    // A fresh start (no checkpoint) has `seq` 0 and no server: always by position.
    let refused = |e: ResumeRefused| CaptureError::Check(e.message(&cfg.instance, &client.addr));
    match resume_by(cfg.resume(), &cp, server, flavor).map_err(refused)? {
        ResumeBy::Position => Ok((cp, None)),
        ResumeBy::Gtid(state) => {
            let moved = cp.server.as_deref().filter(|old| *old != server);
            let why = match moved {
                Some(old) => {
                    if let Err(gap) = client.continues_gtid(conn, facts, &state).await? {
                        let e = ResumeRefused::OtherServer {
                            checkpoint: old.to_owned(),
                            server: server.to_owned(),
                        };
                        return Err(CaptureError::Check(format!(
                            "{}. Resuming by GTID is not possible either: {gap}",
                            e.message(&cfg.instance, &client.addr)
                        )));
                    }
                    format!("the checkpoint was taken on {old}, this is {server}")
                }
                None if cp.file.is_empty() => "the checkpoint has no binlog position".to_owned(),
                None => "source.resume = \"gtid\"".to_owned(),
            };
            tracing::info!(gtid = %state, "resuming by GTID, not by {}:{}: {why}", cp.file, cp.pos);
            let from = Checkpoint {
                file: String::new(),
                pos: 4,
                gtid: Some(state.clone()),
                ..cp
            };
            Ok((from, Some(state)))
        }
    }
}

/// How a checkpoint resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeBy {
    /// By its binlog file and position.
    Position,
    /// By its GTID state.
    Gtid(String),
}

/// Why a checkpoint cannot resume on the connected server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeRefused {
    /// It was taken on another server and has no GTID state to resume by there (or the server
    /// is MySQL, where `auto` does not go by GTID).
    OtherServer { checkpoint: String, server: String },
    /// `source.resume = "gtid"`, but the checkpoint has no GTID state.
    NoGtid,
    /// `source.resume = "gtid"` on MySQL: its checkpoints hold the last transaction's GTID, not
    /// the executed set the server needs.
    MySqlGtid,
}

impl ResumeRefused {
    /// The message, naming what to do.
    pub fn message(&self, instance: &str, addr: &str) -> String {
        match self {
            ResumeRefused::OtherServer { checkpoint, server } => format!(
                "the checkpoint of instance {instance} was taken on server {checkpoint}, but source.url ({addr}) is server {server}: its binlog position means nothing there. If the instance moved to this server (a promoted replica, a migrated database), keep the capture stopped and run `sluice-capture migrate --config <this config> --to <source.url>`, which finds the position on it; if source.url names the wrong server, correct it"
            ),
            ResumeRefused::NoGtid => format!(
                "source.resume = \"gtid\", but the checkpoint of instance {instance} has no GTID state (the server wrote no GTIDs when it was taken); set source.resume = \"auto\", or run `sluice-capture migrate --by time` if the server changed"
            ),
            ResumeRefused::MySqlGtid => format!(
                "source.resume = \"gtid\" on MySQL ({addr}): the checkpoint of instance {instance} holds the last transaction's GTID, not the executed GTID set MySQL needs; set source.resume = \"auto\", or run `sluice-capture migrate --by time` if the server changed"
            ),
        }
    }
}

/// The decision table of resuming `cp` on the server `server` (its identity) of `flavor`:
///
/// | source.resume | same server (or unrecorded) | another server |
/// |---|---|---|
/// | auto | position | GTID on MariaDB with a GTID state, else refused |
/// | position | position | refused |
/// | gtid | GTID (MariaDB, with a state), else refused | the same |
///
/// A checkpoint without a file (written by `migrate --by gtid`) resumes by GTID, on another
/// server too unless `source.resume = "position"`.
pub fn resume_by(
    mode: Resume,
    cp: &Checkpoint,
    server: &str,
    flavor: Flavor,
) -> Result<ResumeBy, ResumeRefused> {
    let same = cp.server.as_deref().is_none_or(|s| s == server);
    let gtid = cp.gtid.clone().filter(|g| !g.is_empty());
    let other = || ResumeRefused::OtherServer {
        checkpoint: cp.server.clone().unwrap_or_default(),
        server: server.to_owned(),
    };
    let by_gtid = |gtid: Option<String>| match (gtid, flavor) {
        (Some(g), Flavor::MariaDb) => Ok(ResumeBy::Gtid(g)),
        (Some(_), Flavor::MySql) => Err(ResumeRefused::MySqlGtid),
        (None, _) => Err(ResumeRefused::NoGtid),
    };
    if cp.file.is_empty() {
        if !same && mode == Resume::Position {
            return Err(other());
        }
        return by_gtid(gtid);
    }
    match (mode, same) {
        (Resume::Gtid, _) => by_gtid(gtid),
        (_, true) => Ok(ResumeBy::Position),
        (Resume::Position, false) => Err(other()),
        (Resume::Auto, false) => match (gtid, flavor) {
            (Some(g), Flavor::MariaDb) => Ok(ResumeBy::Gtid(g)),
            _ => Err(other()),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(server: Option<&str>, gtid: Option<&str>) -> Checkpoint {
        Checkpoint {
            file: "binlog.000003".into(),
            pos: 1234,
            gtid: gtid.map(str::to_owned),
            seq: 99,
            server: server.map(str::to_owned),
            ..Checkpoint::default()
        }
    }

    #[test]
    fn resume_decision_table() {
        use Flavor::{MariaDb, MySql};
        use Resume::{Auto, Gtid, Position};
        let a = "mariadb:1@db1:3306";
        let b = "mariadb:2@db2:3306";
        let pos = Ok(ResumeBy::Position);
        let by_gtid = Ok(ResumeBy::Gtid("0-1-42".into()));
        let other = Err(ResumeRefused::OtherServer {
            checkpoint: a.into(),
            server: b.into(),
        });
        let cases = [
            // mode, checkpoint's server, its GTID state, connected server, flavor, decision
            (Auto, Some(a), Some("0-1-42"), a, MariaDb, pos.clone()),
            (Auto, None, Some("0-1-42"), b, MariaDb, pos.clone()),
            (Auto, Some(a), Some("0-1-42"), b, MariaDb, by_gtid.clone()),
            (Auto, Some(a), None, b, MariaDb, other.clone()),
            (Auto, Some(a), Some("u:1"), b, MySql, other.clone()),
            (Position, Some(a), Some("0-1-42"), a, MariaDb, pos.clone()),
            (Position, Some(a), Some("0-1-42"), b, MariaDb, other.clone()),
            (Gtid, Some(a), Some("0-1-42"), a, MariaDb, by_gtid.clone()),
            (Gtid, Some(a), Some("0-1-42"), b, MariaDb, by_gtid.clone()),
            (Gtid, Some(a), None, a, MariaDb, Err(ResumeRefused::NoGtid)),
            (
                Gtid,
                Some(a),
                Some("u:1"),
                a,
                MySql,
                Err(ResumeRefused::MySqlGtid),
            ),
        ];
        for (mode, at, gtid, server, flavor, want) in cases {
            assert_eq!(
                resume_by(mode, &cp(at, gtid), server, flavor),
                want,
                "{mode:?} {at:?} {gtid:?} on {server} ({flavor:?})"
            );
        }
        let mut no_file = cp(Some(a), Some("0-1-42"));
        no_file.file.clear();
        assert_eq!(resume_by(Position, &no_file, a, MariaDb), by_gtid);
        assert_eq!(resume_by(Auto, &no_file, b, MariaDb), by_gtid);
        assert_eq!(resume_by(Position, &no_file, b, MariaDb), other);
        let msg = ResumeRefused::OtherServer {
            checkpoint: a.into(),
            server: b.into(),
        }
        .message("shop", "10.0.0.2:3306");
        for part in [a, b, "10.0.0.2:3306", "sluice-capture migrate"] {
            assert!(msg.contains(part), "{part} missing in {msg}");
        }
    }
}
