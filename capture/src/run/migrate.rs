//! `sluice-capture migrate`: moves an instance's checkpoint to another server, by GTID when
//! the new server has the checkpoint's transactions in its binlog, else by commit time.
//!
//! The checkpoint keeps its `seq`, so events read on the new server continue the numbering and
//! sinks (idempotent by `seq`) absorb the overlap a time-based switch re-reads.

mod by_time;

pub use by_time::{start_file, Found, TimeSearch};

use crate::checkpoint::Checkpoint;
use crate::checkpoint_store;
use crate::config::CaptureConfig;
use crate::decoder::Header;
use crate::error::CaptureError;
use crate::source::{Flavor, ServerFacts, SourceClient};
use futures::StreamExt as _;
use sluice_ops::rfc3339;
use std::path::PathBuf;

/// `sluice-capture migrate`. The capture must be stopped while it runs; afterwards set
/// `source.url` to the new server (a capture started against another server than its checkpoint
/// names refuses to resume by position).
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The new server: mysql://user:password@host:port (the same grants as source.url).
    #[arg(long)]
    pub to: String,
    /// auto: by GTID when the new server is MariaDB and has the checkpoint's GTID state in its
    /// binlog, else by time; gtid: by GTID or fail; time: by commit time.
    #[arg(long, value_enum, default_value_t = By::Auto)]
    pub by: By,
    /// By time: start this many seconds before the checkpoint's last commit time (clock skew,
    /// transactions committed in a different order on the new server).
    #[arg(long, default_value_t = 60)]
    pub margin_secs: u64,
    /// Print the position it would use and why; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// How `migrate` finds the position on the new server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Auto,
    Gtid,
    Time,
}

/// Where the stream continues on the new server, and why there.
struct Plan {
    file: String,
    pos: u64,
    gtid: Option<String>,
    why: String,
}

/// Runs `migrate`; returns the lines to print (what it chose and why).
pub async fn migrate(cfg: &CaptureConfig, args: &MigrateArgs) -> Result<Vec<String>, CaptureError> {
    let cp = checkpoint_store::load(cfg).await?.ok_or_else(|| {
        CaptureError::Check(format!(
            "instance {} has no checkpoint in {}{}: there is nothing to migrate; set source.url to the new server, and the capture starts where source.start says",
            cfg.instance,
            cfg.checkpoint.dir.display(),
            if cfg.checkpoint.kafka { format!(" or {}", cfg.checkpoint.topic) } else { String::new() }
        ))
    })?;
    if !args.to.starts_with("mysql://") {
        return Err(CaptureError::Check(
            "--to must be a URL of the new server: mysql://user:password@host:port".into(),
        ));
    }
    let mut source = cfg.source.clone();
    source.url = sluice_config::Secret::new(args.to.clone());
    let target = SourceClient::new(&source)?;
    let mut conn = target.connect().await?;
    let facts = target.facts(&mut conn).await?;
    let flavor = facts.flavor();
    let server = target.identity(&mut conn, flavor).await?;
    let mut lines = vec![
        format!("checkpoint of instance {}: {}", cfg.instance, describe(&cp)),
        format!("new server: {} ({server})", target.addr),
    ];
    if cp.server.as_deref() == Some(server.as_str()) {
        let _ = conn.disconnect().await;
        lines.push("the checkpoint is already on this server: nothing to migrate".into());
        return Ok(lines);
    }
    let by_gtid = match args.by {
        By::Time => None,
        By::Auto | By::Gtid => Some(by_gtid(&target, &mut conn, flavor, &facts, &cp).await?),
    };
    let _ = conn.disconnect().await;
    let plan = match by_gtid {
        Some(Ok(plan)) => plan,
        Some(Err(why)) if args.by == By::Gtid => {
            return Err(CaptureError::Check(format!(
                "cannot migrate instance {} to {} by GTID: {why}; try --by time",
                cfg.instance, target.addr
            )))
        }
        Some(Err(why)) => {
            lines.push(format!("not by GTID: {why}"));
            by_time(&target, flavor, &facts, &cp, args.margin_secs).await?
        }
        None => by_time(&target, flavor, &facts, &cp, args.margin_secs).await?,
    };
    lines.push(plan.why.clone());
    let new = Checkpoint {
        file: plan.file,
        pos: plan.pos,
        gtid: plan.gtid,
        server: Some(server),
        // Written by no capture: a capture that checks who owns the instance (a transactional
        // one) must not take this fresh checkpoint for a live one's.
        owner: None,
        ..cp
    };
    lines.push(format!("new checkpoint: {}", describe(&new)));
    if args.dry_run {
        lines.push("dry run: nothing written".into());
        return Ok(lines);
    }
    checkpoint_store::save_all(cfg, &new).await?;
    let (file, kafka) = checkpoint_store::stores(cfg);
    lines.push(match kafka {
        Some(k) => format!("written to {} and {}", file.path().display(), k.topic),
        None => format!("written to {}", file.path().display()),
    });
    lines.push(format!(
        "next: set source.url to the new server ({}) and start the capture",
        target.addr
    ));
    Ok(lines)
}

/// A checkpoint in one line.
fn describe(cp: &Checkpoint) -> String {
    let mut s = if cp.file.is_empty() {
        "by GTID (the binlog position follows at the first transaction read)".to_owned()
    } else {
        format!("{}:{}", cp.file, cp.pos)
    };
    if let Some(g) = &cp.gtid {
        s.push_str(&format!(", GTID {g}"));
    }
    s.push_str(&format!(", seq {}", cp.seq));
    if let Some(ms) = cp.commit_ms {
        s.push_str(&format!(", last commit {}", rfc3339(ms)));
    }
    match &cp.server {
        Some(server) => s.push_str(&format!(", server {server}")),
        None => s.push_str(", server not recorded"),
    }
    s
}

/// The plan by GTID, or why there is none (as text for the user). Errors only on I/O.
async fn by_gtid(
    target: &SourceClient,
    conn: &mut mysql_async::Conn,
    flavor: Flavor,
    facts: &ServerFacts,
    cp: &Checkpoint,
) -> Result<Result<Plan, String>, CaptureError> {
    if flavor != Flavor::MariaDb {
        return Ok(Err(
            "the new server is MySQL, where migrating by GTID is not built".into(),
        ));
    }
    let Some(state) = cp.gtid.as_deref().filter(|g| !g.is_empty()) else {
        return Ok(Err("the checkpoint has no GTID state".into()));
    };
    let has = match target.continues_gtid(conn, facts, state).await? {
        Ok(has) => has,
        Err(why) => return Ok(Err(why)),
    };
    Ok(Ok(Plan {
        file: String::new(),
        pos: 4,
        gtid: Some(state.to_owned()),
        why: format!("by GTID {state}: the new server's binlog has {has}"),
    }))
}

/// The plan by commit time: the first transaction in the new server's binlog committed at or
/// after the checkpoint's last commit minus `margin_secs`.
async fn by_time(
    target: &SourceClient,
    flavor: Flavor,
    facts: &ServerFacts,
    cp: &Checkpoint,
    margin_secs: u64,
) -> Result<Plan, CaptureError> {
    let commit_ms = cp.commit_ms.ok_or_else(|| {
        CaptureError::Check(
            "the checkpoint records no commit time (it was written before Sluice recorded one): migrating by time cannot know where to start; run the capture against the old server until it checkpoints a transaction, or migrate by GTID".into(),
        )
    })?;
    let margin_ms = i64::try_from(margin_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let threshold = commit_ms.saturating_sub(margin_ms);
    // The first event's time of each file, newest first, until one is old enough.
    let mut firsts = Vec::new();
    for file in facts.binlogs.iter().rev() {
        let ts = first_timestamp(target, flavor, file).await?;
        firsts.push((file.clone(), ts));
        if i64::from(ts) * 1000 <= threshold {
            break;
        }
    }
    firsts.reverse();
    let Some(i) = start_file(&firsts, threshold) else {
        let (file, ts) = firsts.first().cloned().unwrap_or_default();
        return Err(CaptureError::Check(format!(
            "the oldest binlog on {} ({file}) begins at {}, after {} ({} minus {margin_secs} s): transactions committed between may be missing from its binlog; migrating by time needs a binlog reaching back to then",
            target.addr,
            rfc3339(i64::from(ts) * 1000),
            rfc3339(threshold),
            rfc3339(commit_ms),
        )));
    };
    let file = firsts[i].0.clone();
    let from = Checkpoint {
        file: file.clone(),
        pos: 4,
        ..Checkpoint::default()
    };
    let mut dump = target.stream(flavor, &from, None, true, None).await?;
    let mut search = TimeSearch::new(threshold, &file);
    let mut found = None;
    while let Some(event) = dump.stream.next().await {
        let event = event.map_err(|e| target.err(e))?;
        if let Some(f) = search.event(header(&event), event.data()) {
            found = Some(f);
            break;
        }
    }
    drop(dump);
    let since = format!(
        "{} minus {margin_secs} s margin",
        rfc3339(commit_ms).replace(".000Z", "Z")
    );
    let plan = match found {
        Some(f) => Plan {
            why: format!(
                "by time: first transaction at or after {since} is at {}:{} (committed {})",
                f.file,
                f.pos,
                rfc3339(f.commit_ms.unwrap_or_default()).replace(".000Z", "Z")
            ),
            file: f.file,
            pos: f.pos,
            gtid: f.gtid,
        },
        None => {
            let end = search.end();
            Plan {
                why: format!(
                    "by time: no transaction on the new server committed at or after {since}: from the end of its binlog, {}:{}",
                    end.file, end.pos
                ),
                file: end.file,
                pos: end.pos,
                gtid: end.gtid,
            }
        }
    };
    Ok(plan)
}

/// The timestamp of `file`'s first event (its FORMAT_DESCRIPTION: when the file was begun).
async fn first_timestamp(
    target: &SourceClient,
    flavor: Flavor,
    file: &str,
) -> Result<u32, CaptureError> {
    let from = Checkpoint {
        file: file.to_owned(),
        pos: 4,
        ..Checkpoint::default()
    };
    let mut dump = target.stream(flavor, &from, None, true, None).await?;
    while let Some(event) = dump.stream.next().await {
        let h = header(&event.map_err(|e| target.err(e))?);
        if h.log_pos > 0 && h.timestamp > 0 {
            return Ok(h.timestamp);
        }
    }
    Err(CaptureError::Check(format!(
        "binlog {file} on {} has no events",
        target.addr
    )))
}

fn header(event: &mysql_async::binlog::events::Event) -> Header {
    let h = event.header();
    Header {
        event_type: h.event_type_raw(),
        timestamp: h.timestamp(),
        server_id: h.server_id(),
        log_pos: h.log_pos(),
        event_size: h.event_size(),
    }
}
