//! `sluice-sink reindex`: backfill a new index for one rule from Kafka, then swap the alias
//! the rule writes to, so a mapping change needs no downtime (docs/elasticsearch.md).
//!
//! The backfill is an ordinary sink run with its own consumer group, the rule alone, and the
//! rule's index replaced by the new one. Writes are versioned by `seq` (mode `upsert`: by the
//! `seq` its script keeps in the document), so the backfill and the live sink may write the
//! same documents in any order; only upsert-mode whole-document deletes are not.

use super::config::{DeleteMode, ElasticsearchRule, Mode};
use super::service::{client, ensure_index, name_kind, replace_index_with_alias, swap_alias};
use super::NameKind;
use crate::config::SinkConfig;
use crate::offsets::{self, StartAt};
use crate::runtime::Sink;
use crate::targets::TargetConfig;
use sluice_config::Problems;
use sluice_rules::RuleSet;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the backfill's committed offsets are compared with the goal.
const POLL: Duration = Duration::from_millis(500);

/// What `sluice-sink reindex` was asked to do.
#[derive(Debug, Clone)]
pub struct Reindex {
    /// The rule's name.
    pub rule: String,
    /// The new index, e.g. `orders_v2`.
    pub to: String,
    /// Where the backfill starts reading (default: the earliest offsets).
    pub start_at: StartAt,
    /// Settings/mappings for the new index; default: the rule's `create_index` file.
    pub create_index: Option<PathBuf>,
    /// The rule's index is a concrete index, not an alias: delete it and put the alias in its
    /// place in the same atomic request.
    pub replace_index: bool,
}

/// What a finished reindex did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub alias: String,
    pub to: String,
    /// Indices the alias pointed to before (or the replaced index).
    pub before: Vec<String>,
    /// The consumer group of the backfill.
    pub group: String,
}

/// Why a reindex could not be done.
#[derive(Debug, thiserror::Error)]
#[error("reindex: {0}")]
pub struct ReindexError(pub String);

impl From<crate::SinkError> for ReindexError {
    fn from(e: crate::SinkError) -> Self {
        ReindexError(e.to_string())
    }
}

/// Backfills `job.to` from `job.start_at` until the group has caught up with the high
/// watermarks seen at its start, swaps the alias, catches up once more (with what the live
/// sink wrote to the old index meanwhile) and stops. `progress` is told about each step.
pub async fn reindex(
    config: &SinkConfig,
    job: &Reindex,
    cancel: CancellationToken,
    progress: impl Fn(&str),
) -> Result<Report, ReindexError> {
    let err = |m: String| ReindexError(m);
    let i = config
        .rules
        .iter()
        .position(|r| r.name == job.rule)
        .ok_or_else(|| {
            let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
            err(format!(
                "no rule named `{}`; the config has: {}",
                job.rule,
                names.join(", ")
            ))
        })?;
    let rule_config = &config.rules[i];
    let Some(TargetConfig::Elasticsearch(target)) = config.targets.get(&rule_config.target) else {
        return Err(err(format!(
            "rule `{}` writes to target `{}`, which is not an Elasticsearch target",
            job.rule, rule_config.target
        )));
    };
    let mut problems = Problems::default();
    let rules = RuleSet::compile(std::slice::from_ref(rule_config), &mut problems);
    let parsed = ElasticsearchRule::parse(&format!("rules[{i}]"), rules.rule(0), &mut problems);
    let Some(es_rule) = parsed.filter(|_| problems.is_empty()) else {
        return Err(err(format!("rule `{}` is invalid:\n{problems}", job.rule)));
    };
    let alias = es_rule.index.as_str().to_owned();
    if es_rule.index.columns().next().is_some() {
        return Err(err(format!(
            "rule `{}` writes to the index template `{alias}`; reindex swaps one alias, so the rule's index must be a fixed name (the alias)",
            job.rule
        )));
    }
    if job.to == alias {
        return Err(err(format!(
            "--to `{}` is the rule's own index; name a new index, e.g. {alias}_v2",
            job.to
        )));
    }
    if es_rule.mode == Mode::Upsert && es_rule.delete == DeleteMode::Document {
        progress("note: in mode = \"upsert\" a whole-document delete is not versioned: a row deleted between the alias swap and the end of the backfill may come back with older fields until its next change (docs/elasticsearch.md)");
    }
    let es = client(target).map_err(err)?;

    let kind = name_kind(&es, &alias).await.map_err(err)?;
    let before = match &kind {
        NameKind::Index if !job.replace_index => {
            return Err(err(format!(
                "`{alias}` is an index, not an alias, so it cannot be swapped; add --replace-index to delete it and create the alias `{alias}` → `{}` in one atomic request (searches of `{alias}` keep working)",
                job.to
            )))
        }
        NameKind::Index => vec![alias.clone()],
        NameKind::Alias(indices) => indices.clone(),
        NameKind::Missing => Vec::new(),
    };
    let settings = match &job.create_index {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            Some(serde_json::from_slice(&text).map_err(|e| {
                err(format!(
                    "{} is not JSON ({e}); it must hold the body of PUT /<index>",
                    path.display()
                ))
            })?)
        }
        None => es_rule.create_index.clone(),
    };
    if let Some(body) = settings {
        if ensure_index(&es, &job.to, &body).await.map_err(err)? {
            progress(&format!("created index {}", job.to));
        }
    }

    // The backfill: this rule alone, into the new index, under its own group.
    let mut backfill = config.clone();
    backfill.consumer.group_id = format!("{}.reindex.{}", config.consumer.group_id, job.to);
    let mut rule = rule_config.clone();
    if let Some(t) = rule.elasticsearch.as_mut() {
        t.insert("index".into(), toml::Value::String(job.to.clone()));
        t.remove("create_index");
    }
    backfill.rules = vec![rule];
    backfill
        .targets
        .retain(|name, _| *name == rule_config.target);
    let group = backfill.consumer.group_id.clone();
    let start = match job.start_at {
        StartAt::Committed => StartAt::Earliest,
        s => s,
    };
    let c = backfill.clone();
    tokio::task::spawn_blocking(move || offsets::apply_start_at(&c, start))
        .await
        .map_err(|e| err(format!("start-at task: {e}")))??;
    let goal = highs(&backfill).await?;
    progress(&format!(
        "backfilling {} from {start} with group {group} up to {} messages",
        job.to,
        goal.values().sum::<i64>()
    ));
    let run_cancel = cancel.child_token();
    let sink = tokio::spawn(Sink::new(backfill.clone()).run(run_cancel.clone()));
    let result = async {
        wait_until(&backfill, &goal, &cancel, &sink).await?;
        match kind {
            NameKind::Index => replace_index_with_alias(&es, &alias, &job.to).await,
            _ => swap_alias(&es, &alias, &before, &job.to).await,
        }
        .map_err(err)?;
        progress(&format!(
            "alias {alias} → {} (was: {})",
            job.to,
            if before.is_empty() {
                "no alias".to_owned()
            } else {
                before.join(", ")
            }
        ));
        // What reached the old index between the goal and the swap goes to the new one too.
        let after = highs(&backfill).await?;
        wait_until(&backfill, &after, &cancel, &sink).await
    }
    .await;
    run_cancel.cancel();
    let stopped = sink
        .await
        .map_err(|e| err(format!("the backfill task failed: {e}")))?;
    // A backfill that stopped by itself says why; that comes first.
    stopped?;
    result?;
    Ok(Report {
        alias,
        to: job.to.clone(),
        before,
        group,
    })
}

/// The high watermark of every partition the config reads.
async fn highs(config: &SinkConfig) -> Result<HashMap<(String, i32), i64>, ReindexError> {
    let c = config.clone();
    let rows = tokio::task::spawn_blocking(move || offsets::list(&c, &c.consumer.group_id))
        .await
        .map_err(|e| ReindexError(format!("offsets task: {e}")))??;
    Ok(rows
        .into_iter()
        .map(|r| ((r.topic, r.partition), r.high))
        .collect())
}

/// Waits until the group has committed at least `goal` on every partition.
async fn wait_until(
    config: &SinkConfig,
    goal: &HashMap<(String, i32), i64>,
    cancel: &CancellationToken,
    sink: &tokio::task::JoinHandle<Result<(), crate::SinkError>>,
) -> Result<(), ReindexError> {
    loop {
        if sink.is_finished() {
            return Err(ReindexError(
                "the backfill stopped before it caught up".into(),
            ));
        }
        let c = config.clone();
        let rows = tokio::task::spawn_blocking(move || offsets::list(&c, &c.consumer.group_id))
            .await
            .map_err(|e| ReindexError(format!("offsets task: {e}")))??;
        let done = rows.iter().all(|r| {
            let want = goal
                .get(&(r.topic.clone(), r.partition))
                .copied()
                .unwrap_or(0);
            want == 0 || r.committed.is_some_and(|c| c >= want)
        });
        if done {
            return Ok(());
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(ReindexError("cancelled before the backfill caught up; the alias was not changed if the backfill had not finished, run it again to continue".into())),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
